//! Central's info-signing public keys, remembered in `DIR/signing-keys.json`.
//!
//! Central sends its keys in every Welcome; the relay writes them down
//! (atomically, only when they changed) so that what needs them without a link
//! — `sitecast-relay import` from offline media, the scrub before the first
//! connection — can still verify signed infos. TLS to central is what makes the
//! keys trustworthy: a relay that never connected knows none and verifies nothing.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use sitecast_common::signing;
use sitecast_common::wire::PublicKey;

use crate::error::RelayError;

/// Where the keys are kept.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("signing-keys.json")
}

/// Writes the keys central sent, unless the file already says exactly that.
pub fn remember(dir: &Path, keys: &[PublicKey]) -> Result<(), RelayError> {
    let path = path(dir);
    let body = serde_json::to_vec_pretty(keys).map_err(|e| RelayError::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if std::fs::read(&path).is_ok_and(|old| old == body) {
        return Ok(());
    }
    crate::cache::write_atomically(&path, &body).map_err(Into::into)
}

/// The keys remembered so far, as central sent them (none if never connected).
pub fn load_public(dir: &Path) -> Result<Vec<PublicKey>, RelayError> {
    let path = path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RelayError::io(path)(e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| RelayError::Config {
        path,
        reason: e.to_string(),
    })
}

/// The keys remembered so far, ready to verify with.
pub fn load(dir: &Path) -> Result<Vec<VerifyingKey>, RelayError> {
    let path = path(dir);
    load_public(dir)?
        .iter()
        .map(|k| {
            signing::verifying_key_from_pem(&k.pem).map_err(|e| RelayError::Config {
                path: path.clone(),
                reason: format!("key {}: {e}", k.keyid),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_a_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public = PublicKey {
            keyid: signing::key_id(&key.verifying_key()),
            pem: signing::verifying_key_to_pem(&key.verifying_key()).unwrap(),
        };
        remember(dir.path(), std::slice::from_ref(&public)).unwrap();
        let modified = std::fs::metadata(path(dir.path()))
            .unwrap()
            .modified()
            .unwrap();
        // The same keys again: the file is not rewritten.
        remember(dir.path(), std::slice::from_ref(&public)).unwrap();
        assert_eq!(
            std::fs::metadata(path(dir.path()))
                .unwrap()
                .modified()
                .unwrap(),
            modified
        );
        assert_eq!(load(dir.path()).unwrap(), vec![key.verifying_key()]);
        std::fs::write(path(dir.path()), b"[{\"keyid\":\"x\",\"pem\":\"nope\"}]").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("signing-keys.json") && err.contains("key x"),
            "{err}"
        );
    }
}
