//! A new key set taken into use while central serves: every info signed only by
//! keys the set no longer lists is signed again with the active key, then the
//! ring is replaced and the relays are told (each link sends them the set, then
//! the activated packages with their new info digests).

use sitecast_common::fragment::sha256_hex;
use sitecast_common::signing;

use crate::error::CentralError;
use crate::keys::{self, KeyRing};
use crate::state::Central;

/// Looks for a newer key set in DIR and takes it up; true if it did.
pub fn reload(c: &Central) -> Result<bool, CentralError> {
    let held = c.keys();
    let now = c.clock.now();
    let Some(ring) = keys::reload(&c.layout, &held, now)? else {
        return Ok(false);
    };
    let resigned = resign_unlisted(c, &ring)?;
    tracing::info!(
        version = ring.set.version(),
        active = %ring.keyid(),
        resigned,
        "new key set taken into use"
    );
    keys::warn_if_expiring(&ring, now);
    c.replace_keys(ring);
    c.notify_relays();
    Ok(true)
}

/// Signs again, with the active key, each package's info that no key of the set
/// signed (its key was revoked); the number signed again. The file's digest must
/// be the one recorded when central signed it: central vouches only for its own.
pub fn resign_unlisted(c: &Central, ring: &KeyRing) -> Result<usize, CentralError> {
    let mut count = 0;
    for p in c.store.packages()? {
        let path = c.files.info_path(&p.id);
        let envelope = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Deleted meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CentralError::io(&path)(e)),
        };
        let signed_by = signing::signers(&envelope).map_err(|e| CentralError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if signed_by.iter().any(|k| ring.set.lists(k)) {
            continue;
        }
        let again =
            signing::resign(&ring.signing, &envelope).map_err(|e| CentralError::Config {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let digest = sha256_hex(&again);
        // Ed25519 signs deterministically: a record already naming `again` is a
        // re-signing that a crash cut short between the record and the file.
        if sha256_hex(&envelope) != p.info_sha256 && digest != p.info_sha256 {
            tracing::error!(package = %p.id, path = %path.display(), "the info file is not the one central signed; not signing it again");
            continue;
        }
        // The record first: agents then refuse the old envelope, never the new one.
        c.store.set_info_sha256(&p.id, &digest)?;
        sitecast_io::write_atomically(&path, &again)?;
        count += 1;
    }
    Ok(count)
}
