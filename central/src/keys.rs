//! Central's keys: the root key that signs the key set, the key set itself, and
//! the one active key that signs infos now ([`KeyRing`]), and the
//! `sitecast-central key` commands that rotate, revoke and renew them.
//!
//! The commands work on files only (`DIR/keys/`), so they run beside a serving
//! central, which takes a new key set up within [`RELOAD_EVERY`], and the root
//! key may live elsewhere (`--root PATH`, an offline medium): only `root.pub`
//! must stay in DIR. Each command writes the new key set before the new active
//! key, so a crash between the two leaves a set that still lists the active key.

use std::fs;
use std::path::Path;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use jiff::Timestamp;
use rand_core::OsRng;
use sitecast_common::keyset::{self, KeyEntry, KeySet, KeySetDoc};
use sitecast_common::signing;
use sitecast_common::wire::PublicKey;

use crate::error::CentralError;
use sitecast_common::layout::CentralLayout as Layout;

/// How often a serving central looks at `keys/keyset.dsse.json` for a new set.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// How long a new key set is valid unless told otherwise.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Central warns in its log when the key set expires sooner than this.
pub const WARN_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The keys a serving central signs and answers with.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// Signs every new info.
    pub signing: SigningKey,
    pub root: VerifyingKey,
    /// `root.pub`, as agents and relays pin it.
    pub root_pem: String,
    pub set: KeySet,
    /// The key set's envelope, byte for byte as the root signed it.
    pub envelope: String,
}

impl KeyRing {
    /// The active key's id.
    pub fn keyid(&self) -> String {
        signing::key_id(&self.signing.verifying_key())
    }

    /// The set's keys as older agents and relays take them (`signing_keys`).
    pub fn public_keys(&self) -> Vec<PublicKey> {
        PublicKey::all_of(&self.set)
    }
}

fn entry(key: &VerifyingKey) -> Result<KeyEntry, CentralError> {
    Ok(KeyEntry {
        keyid: signing::key_id(key),
        pem: signing::verifying_key_to_pem(key)?,
    })
}

fn read(path: &Path) -> Result<String, CentralError> {
    fs::read_to_string(path).map_err(CentralError::io(path))
}

fn keyset_error(path: &Path) -> impl FnOnce(keyset::KeySetError) -> CentralError + '_ {
    move |source| CentralError::KeySet {
        path: path.to_owned(),
        source,
    }
}

/// Writes a new DIR's root key, `root.pub` and the first key set, listing `active`.
pub fn create(layout: &Layout, active: &SigningKey, now: Timestamp) -> Result<(), CentralError> {
    let root = SigningKey::generate(&mut OsRng);
    sitecast_io::write_secret(
        &layout.root_key(),
        signing::signing_key_to_pem(&root)?.as_bytes(),
    )?;
    sitecast_io::write_atomically(
        &layout.root_pub(),
        signing::verifying_key_to_pem(&root.verifying_key())?.as_bytes(),
    )?;
    let doc = KeySetDoc {
        version: 1,
        expires: expiry(now, DEFAULT_EXPIRY)?,
        keys: vec![entry(&active.verifying_key())?],
    };
    sitecast_io::write_atomically(&layout.keyset(), &keyset::sign(&root, &doc))?;
    Ok(())
}

fn expiry(now: Timestamp, valid: Duration) -> Result<Timestamp, CentralError> {
    let span = jiff::SignedDuration::try_from(valid)
        .map_err(|e| CentralError::Invalid(format!("bad --expires: {e}")))?;
    now.checked_add(span)
        .map_err(|e| CentralError::Invalid(format!("bad --expires: {e}")))
}

/// Loads the keys of DIR; a DIR made before key sets existed gets its root key
/// and first set now, listing the signing key it has.
pub fn load(layout: &Layout, now: Timestamp) -> Result<KeyRing, CentralError> {
    let signing_path = layout.signing_key();
    let active = signing::signing_key_from_pem(&read(&signing_path)?)?;
    if !layout.keyset().exists() && !layout.root_pub().exists() {
        tracing::info!(dir = %layout.dir.display(), "no key set yet: creating a root key and the first key set");
        create(layout, &active, now)?;
    }
    let root_pem = read(&layout.root_pub())?;
    let root = signing::verifying_key_from_pem(&root_pem)?;
    let path = layout.keyset();
    let envelope = read(&path)?;
    let set = keyset::verify(envelope.as_bytes(), &root).map_err(keyset_error(&path))?;
    let keyid = signing::key_id(&active.verifying_key());
    if !set.lists(&keyid) {
        return Err(CentralError::Config {
            path: signing_path,
            reason: format!(
                "the active signing key {keyid} is not in the key set (version {})",
                set.version()
            ),
        });
    }
    Ok(KeyRing {
        signing: active,
        root,
        root_pem,
        set,
        envelope,
    })
}

/// Says in the log when the key set has expired or soon will.
pub fn warn_if_expiring(ring: &KeyRing, now: Timestamp) {
    let expires = ring.set.expires();
    let left = expires.duration_since(now);
    if left <= jiff::SignedDuration::ZERO {
        tracing::error!(%expires, "the key set has expired: agents and relays refuse every info; run 'sitecast-central key renew'");
    } else if left
        < jiff::SignedDuration::try_from(WARN_BEFORE).unwrap_or(jiff::SignedDuration::MAX)
    {
        tracing::warn!(%expires, "the key set expires soon; run 'sitecast-central key renew'");
    }
}

/// The root key from `path`, checked to be the one `root.pub` says.
fn root_key(layout: &Layout, path: &Path) -> Result<SigningKey, CentralError> {
    let root = signing::signing_key_from_pem(&read(path)?)?;
    let pinned = signing::verifying_key_from_pem(&read(&layout.root_pub())?)?;
    if root.verifying_key() != pinned {
        return Err(CentralError::Invalid(format!(
            "{} is not this central's root key (its id is {}, {} says {})",
            path.display(),
            signing::key_id(&root.verifying_key()),
            layout.root_pub().display(),
            signing::key_id(&pinned)
        )));
    }
    Ok(root)
}

/// What a key command changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub version: u64,
    pub expires: Timestamp,
    pub active: String,
    pub keys: Vec<String>,
}

/// Signs and writes the next key set, then (if given) the new active key.
fn publish(
    layout: &Layout,
    root: &SigningKey,
    doc: KeySetDoc,
    new_active: Option<&SigningKey>,
) -> Result<Changed, CentralError> {
    sitecast_io::write_atomically(&layout.keyset(), &keyset::sign(root, &doc))?;
    if let Some(key) = new_active {
        sitecast_io::write_secret(
            &layout.signing_key(),
            signing::signing_key_to_pem(key)?.as_bytes(),
        )?;
        sitecast_io::write_atomically(
            &layout.signing_pub(),
            signing::verifying_key_to_pem(&key.verifying_key())?.as_bytes(),
        )?;
    }
    let active = signing::key_id(
        &signing::signing_key_from_pem(&read(&layout.signing_key())?)?.verifying_key(),
    );
    Ok(Changed {
        version: doc.version,
        expires: doc.expires,
        active,
        keys: doc.keys.into_iter().map(|k| k.keyid).collect(),
    })
}

/// The key set now, for `key list`.
pub fn current(layout: &Layout, now: Timestamp) -> Result<(KeySetDoc, String), CentralError> {
    let ring = load(layout, now)?;
    let active = ring.keyid();
    Ok((ring.set.doc().clone(), active))
}

/// `key rotate`: a new active key; the old ones stay trusted until revoked, so
/// what they signed still verifies.
pub fn rotate(
    layout: &Layout,
    root_path: &Path,
    valid: Duration,
    now: Timestamp,
) -> Result<Changed, CentralError> {
    let (root, mut doc) = renewed(layout, root_path, valid, now)?;
    let new = SigningKey::generate(&mut OsRng);
    doc.keys.push(entry(&new.verifying_key())?);
    publish(layout, &root, doc, Some(&new))
}

/// `key revoke KEYID`: the key leaves the set; central re-signs what it signed.
pub fn revoke(
    layout: &Layout,
    root_path: &Path,
    keyid: &str,
    now: Timestamp,
) -> Result<Changed, CentralError> {
    let root = root_key(layout, root_path)?;
    let ring = load(layout, now)?;
    if !ring.set.lists(keyid) {
        return Err(CentralError::not_found("key", keyid));
    }
    if ring.keyid() == keyid {
        return Err(CentralError::Conflict(format!(
            "key {keyid} is the active signing key: run 'sitecast-central key rotate' first, then revoke it"
        )));
    }
    let mut doc = ring.set.doc().clone();
    doc.version += 1;
    doc.keys.retain(|k| k.keyid != keyid);
    // A revocation must not leave agents with a set about to expire.
    doc.expires = doc.expires.max(now);
    publish(layout, &root, doc, None)
}

/// `key renew`: the same keys under a new expiry.
pub fn renew(
    layout: &Layout,
    root_path: &Path,
    valid: Duration,
    now: Timestamp,
) -> Result<Changed, CentralError> {
    let (root, doc) = renewed(layout, root_path, valid, now)?;
    publish(layout, &root, doc, None)
}

/// The root key and the next version of the set, valid for `valid` from `now`.
fn renewed(
    layout: &Layout,
    root_path: &Path,
    valid: Duration,
    now: Timestamp,
) -> Result<(SigningKey, KeySetDoc), CentralError> {
    let root = root_key(layout, root_path)?;
    let mut doc = load(layout, now)?.set.doc().clone();
    doc.version += 1;
    doc.expires = expiry(now, valid)?;
    Ok((root, doc))
}

/// A serving central's check for a new key set: `Some` when the files hold a newer
/// one, signed by the pinned root, that lists the active key.
pub fn reload(
    layout: &Layout,
    held: &KeyRing,
    now: Timestamp,
) -> Result<Option<KeyRing>, CentralError> {
    let path = layout.keyset();
    let envelope = read(&path)?;
    if envelope == held.envelope {
        return Ok(None);
    }
    keyset::verify(envelope.as_bytes(), &held.root)
        .and_then(|set| {
            if set.version() <= held.set.version() {
                Err(keyset::KeySetError::Rollback {
                    found: set.version(),
                    held: held.set.version(),
                })
            } else {
                Ok(set)
            }
        })
        .map_err(keyset_error(&path))?;
    let mut ring = load(layout, now)?;
    // The root a running central serves never changes under it.
    if ring.root != held.root {
        return Err(CentralError::Config {
            path: layout.root_pub(),
            reason: "the root key changed while central was serving; restart it to take it up"
                .into(),
        });
    }
    ring.root_pem = held.root_pem.clone();
    Ok(Some(ring))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        fs::create_dir(tmp.path().join("keys")).unwrap();
        let key = SigningKey::generate(&mut OsRng);
        sitecast_io::write_secret(
            &layout.signing_key(),
            signing::signing_key_to_pem(&key).unwrap().as_bytes(),
        )
        .unwrap();
        (tmp, layout)
    }

    #[test]
    fn rotate_twice_then_revoke_keeps_a_valid_chain() {
        let (_tmp, layout) = dir();
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let first = load(&layout, now).unwrap();
        assert_eq!(first.set.version(), 1);
        let one = rotate(&layout, &layout.root_key(), DEFAULT_EXPIRY, now).unwrap();
        let two = rotate(&layout, &layout.root_key(), DEFAULT_EXPIRY, now).unwrap();
        assert_eq!((one.version, two.version), (2, 3));
        assert_eq!(two.keys.len(), 3);
        assert_eq!(two.active, *two.keys.last().unwrap());
        let reloaded = reload(&layout, &first, now).unwrap().unwrap();
        assert_eq!(reloaded.keyid(), two.active);
        assert!(reload(&layout, &reloaded, now).unwrap().is_none());
        // The active key cannot go; the first one can.
        assert!(matches!(
            revoke(&layout, &layout.root_key(), &two.active, now),
            Err(CentralError::Conflict(_))
        ));
        let gone = revoke(&layout, &layout.root_key(), &first.keyid(), now).unwrap();
        assert_eq!(gone.version, 4);
        assert!(!gone.keys.contains(&first.keyid()));
        assert!(matches!(
            revoke(&layout, &layout.root_key(), &first.keyid(), now),
            Err(CentralError::NotFound { .. })
        ));
        let renewed = renew(&layout, &layout.root_key(), Duration::from_secs(3600), now).unwrap();
        assert_eq!(renewed.version, 5);
        assert_eq!(renewed.keys, gone.keys);
    }

    #[test]
    fn a_root_key_that_is_not_central_s_and_an_older_set_are_refused() {
        let (tmp, layout) = dir();
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let held = load(&layout, now).unwrap();
        let stranger = tmp.path().join("other-root.key");
        let other = SigningKey::generate(&mut OsRng);
        fs::write(&stranger, signing::signing_key_to_pem(&other).unwrap()).unwrap();
        let err = rotate(&layout, &stranger, DEFAULT_EXPIRY, now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not this central's root key"), "{err}");
        // A set signed by another root is refused by a serving central.
        let doc = held.set.doc().clone();
        let forged = KeySetDoc { version: 9, ..doc };
        fs::write(layout.keyset(), keyset::sign(&other, &forged)).unwrap();
        assert!(matches!(
            reload(&layout, &held, now),
            Err(CentralError::KeySet { .. })
        ));
        // So is one older than what it serves.
        fs::write(layout.keyset(), &held.envelope).unwrap();
        let root = signing::signing_key_from_pem(&read(&layout.root_key()).unwrap()).unwrap();
        rotate(&layout, &layout.root_key(), DEFAULT_EXPIRY, now).unwrap();
        let newer = load(&layout, now).unwrap();
        let old = KeySetDoc {
            version: 1,
            ..newer.set.doc().clone()
        };
        fs::write(layout.keyset(), keyset::sign(&root, &old)).unwrap();
        assert!(matches!(
            reload(&layout, &newer, now),
            Err(CentralError::KeySet { .. })
        ));
    }
}
