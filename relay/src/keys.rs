//! Central's info-signing public keys, remembered in `DIR/signing-keys.json`.
//!
//! Central sends its root key and its key set in every Welcome, and a new key set
//! whenever it changes. The relay pins the root at its first welcome
//! (`DIR/root-key.pem`; TLS to central is what makes it trustworthy then) and from
//! then on takes a key set only if that root signed it, its version is not older
//! than the one held (`DIR/keyset.dsse.json`) and it has not expired. The set's keys
//! are written down (atomically, only when they changed) so that what needs them
//! without a link — `sitecast-relay import` from offline media, the scrub before
//! the first connection — can still verify signed infos. A held set that expires
//! later still verifies what the relay caches (agents refuse an expired set; a
//! relay that dropped its cache then would only cost WAN bytes).

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use sitecast_common::keyset::{self, KeySet};
use sitecast_common::signing;
use sitecast_common::wire::PublicKey;

use crate::error::RelayError;

/// Where the keys are kept.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("signing-keys.json")
}

/// Where the root key pinned at the first welcome is kept.
pub fn root_path(dir: &Path) -> PathBuf {
    dir.join("root-key.pem")
}

/// Where the key set last taken is kept.
pub fn keyset_path(dir: &Path) -> PathBuf {
    dir.join("keyset.dsse.json")
}

fn config_error(path: PathBuf) -> impl FnOnce(String) -> RelayError {
    move |reason| RelayError::Config { path, reason }
}

/// The pinned root, pinning `offered` if there is none yet; an error if central
/// offers another root than the pinned one.
fn pin_root(dir: &Path, offered: &str) -> Result<VerifyingKey, RelayError> {
    let path = root_path(dir);
    let offered_key = signing::verifying_key_from_pem(offered)
        .map_err(|e| config_error(path.clone())(format!("central's root key: {e}")))?;
    match std::fs::read_to_string(&path) {
        Ok(pinned) => {
            let pinned = signing::verifying_key_from_pem(&pinned)
                .map_err(|e| config_error(path.clone())(e.to_string()))?;
            if pinned != offered_key {
                return Err(RelayError::Refused(format!(
                    "central offers root key {}, but this relay pinned {} ({}): re-enroll the relay if central's root really changed",
                    signing::key_id(&offered_key),
                    signing::key_id(&pinned),
                    path.display()
                )));
            }
            Ok(pinned)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::cache::write_atomically(&path, offered.as_bytes())?;
            tracing::info!(root = %signing::key_id(&offered_key), "pinned central's root key");
            Ok(offered_key)
        }
        Err(e) => Err(RelayError::io(path)(e)),
    }
}

/// The key set held, verified against the pinned root (none if never taken).
fn held(dir: &Path, root: &VerifyingKey) -> Result<Option<KeySet>, RelayError> {
    let path = keyset_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => keyset::verify(&bytes, root)
            .map(Some)
            .map_err(|e| config_error(path)(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RelayError::io(path)(e)),
    }
}

/// Takes what a welcome or a key-set message carries and answers the keys to
/// verify infos with: the offered set if it is acceptable, else the one held
/// (the refusal is logged: a rollback or a frozen set never replaces it).
pub fn take(
    dir: &Path,
    root: &str,
    offered: &str,
    now: Timestamp,
) -> Result<Vec<VerifyingKey>, RelayError> {
    let root = pin_root(dir, root)?;
    let held = held(dir, &root)?;
    let set = match keyset::accept(offered.as_bytes(), &root, held.as_ref(), now) {
        Ok(set) => {
            if held.as_ref().map(KeySet::version) != Some(set.version()) {
                crate::cache::write_atomically(&keyset_path(dir), offered.as_bytes())?;
                tracing::info!(version = set.version(), expires = %set.expires(), "took central's key set");
            }
            set
        }
        Err(e) => {
            tracing::error!(error = %e, "refused the key set central offered");
            held.ok_or_else(|| RelayError::Refused(format!("central's key set: {e}")))?
        }
    };
    remember(dir, &PublicKey::all_of(&set))?;
    load(dir)
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

    fn entry(k: &ed25519_dalek::SigningKey) -> keyset::KeyEntry {
        keyset::KeyEntry {
            keyid: signing::key_id(&k.verifying_key()),
            pem: signing::verifying_key_to_pem(&k.verifying_key()).unwrap(),
        }
    }

    #[test]
    fn a_relay_pins_the_root_and_takes_only_newer_sets_it_signed() {
        let dir = tempfile::tempdir().unwrap();
        let root = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
        let root_pem = signing::verifying_key_to_pem(&root.verifying_key()).unwrap();
        let (a, b) = (
            ed25519_dalek::SigningKey::from_bytes(&[10u8; 32]),
            ed25519_dalek::SigningKey::from_bytes(&[11u8; 32]),
        );
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let doc = |version, keys: Vec<keyset::KeyEntry>| keyset::KeySetDoc {
            version,
            expires: "2027-12-01T00:00:00Z".parse().unwrap(),
            keys,
        };
        let text = |d: &keyset::KeySetDoc| String::from_utf8(keyset::sign(&root, d)).unwrap();
        let v1 = text(&doc(1, vec![entry(&a)]));
        assert_eq!(
            take(dir.path(), &root_pem, &v1, now).unwrap(),
            vec![a.verifying_key()]
        );
        // Rotated, then a revoked: b alone.
        let v3 = text(&doc(3, vec![entry(&b)]));
        assert_eq!(
            take(dir.path(), &root_pem, &v3, now).unwrap(),
            vec![b.verifying_key()]
        );
        // A replayed older set is refused; the held one stays.
        assert_eq!(
            take(dir.path(), &root_pem, &v1, now).unwrap(),
            vec![b.verifying_key()]
        );
        assert_eq!(load(dir.path()).unwrap(), vec![b.verifying_key()]);
        // An expired newer one is refused too.
        let late = "2028-01-01T00:00:00Z".parse().unwrap();
        let v4 = text(&doc(4, vec![entry(&a)]));
        assert_eq!(
            take(dir.path(), &root_pem, &v4, late).unwrap(),
            vec![b.verifying_key()]
        );
        // Another root: the connection is refused, nothing changes.
        let other = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
        let other_pem = signing::verifying_key_to_pem(&other.verifying_key()).unwrap();
        let forged = String::from_utf8(keyset::sign(&other, &doc(9, vec![entry(&a)]))).unwrap();
        assert!(matches!(
            take(dir.path(), &other_pem, &forged, now),
            Err(RelayError::Refused(_))
        ));
        assert_eq!(load(dir.path()).unwrap(), vec![b.verifying_key()]);
    }

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
