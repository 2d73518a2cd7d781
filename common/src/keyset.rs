//! Keys that rotate: a root key signs the *key set*, the info-signing keys that
//! agents and relays trust, with a version and an expiry (TUF's root and targets
//! roles, reduced to what Sitecast needs).
//!
//! Agents and relays pin central's root public key when they enroll. From then on
//! they accept a key set only if the root signed it, its version is not below the
//! one they hold (a replayed older set is a rollback), and it has not expired (a
//! set nobody renews is a freeze: whoever blocks updates could keep a revoked key
//! trusted forever). A key is revoked by leaving it out of the next set.
//!
//! The same module signs and checks *downgrade tickets*: central's statement that
//! one computer may install one package although a newer version of its name is
//! installed there (the version floor of [`compare_versions`] refuses it otherwise).

use ed25519_dalek::{SigningKey, VerifyingKey};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{ComputerId, PackageId};
use crate::signing::{self, VerifyError};

/// The DSSE payload type of a key set.
pub const KEYSET_PAYLOAD_TYPE: &str = "application/vnd.sitecast.keyset.v1+json";
/// The DSSE payload type of a downgrade ticket.
pub const DOWNGRADE_PAYLOAD_TYPE: &str = "application/vnd.sitecast.downgrade.v1+json";

/// Why a key set (or a downgrade ticket) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("key set: {0}")]
    Signature(#[from] VerifyError),
    #[error("key set payload: {0}")]
    Malformed(String),
    #[error("key set lists no key")]
    Empty,
    #[error("key set key {keyid}: {reason}")]
    BadKey { keyid: String, reason: String },
    #[error(
        "key set version {found} is older than the version {held} already trusted (a rollback)"
    )]
    Rollback { found: u64, held: u64 },
    #[error("key set version {version} differs from the one trusted under the same version")]
    Forked { version: u64 },
    #[error("key set version {version} expired at {expires}: central must renew it (sitecast-central key renew)")]
    Expired { version: u64, expires: Timestamp },
    #[error("downgrade ticket: {0}")]
    Ticket(String),
}

/// One trusted key as the key set lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub keyid: String,
    /// SubjectPublicKeyInfo PEM.
    pub pem: String,
}

/// The key set's JSON payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetDoc {
    pub version: u64,
    pub expires: Timestamp,
    pub keys: Vec<KeyEntry>,
}

/// A key set whose root signature held, with its keys parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    doc: KeySetDoc,
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    pub fn version(&self) -> u64 {
        self.doc.version
    }
    pub fn expires(&self) -> Timestamp {
        self.doc.expires
    }
    pub fn doc(&self) -> &KeySetDoc {
        &self.doc
    }
    /// Whether `keyid` is one of the set's keys.
    pub fn lists(&self, keyid: &str) -> bool {
        self.doc.keys.iter().any(|k| k.keyid == keyid)
    }
    /// The keys infos may be signed with now; none once the set has expired.
    pub fn trusted(&self, now: Timestamp) -> Result<&[VerifyingKey], KeySetError> {
        if now >= self.doc.expires {
            return Err(KeySetError::Expired {
                version: self.doc.version,
                expires: self.doc.expires,
            });
        }
        Ok(&self.keys)
    }
}

/// Signs a key set with the root key into the JSON bytes of an envelope.
pub fn sign(root: &SigningKey, doc: &KeySetDoc) -> Vec<u8> {
    // Serialising strings, numbers and a timestamp into memory cannot fail.
    let payload = serde_json::to_vec(doc).unwrap_or_default();
    signing::sign(root, KEYSET_PAYLOAD_TYPE, &payload)
}

/// Checks a key set's root signature and parses it; neither its version nor its
/// expiry is judged here (see [`accept`]).
pub fn verify(envelope: &[u8], root: &VerifyingKey) -> Result<KeySet, KeySetError> {
    let payload = signing::verify(envelope, KEYSET_PAYLOAD_TYPE, std::slice::from_ref(root))?;
    let doc: KeySetDoc =
        serde_json::from_slice(&payload).map_err(|e| KeySetError::Malformed(e.to_string()))?;
    if doc.keys.is_empty() {
        return Err(KeySetError::Empty);
    }
    let keys = doc
        .keys
        .iter()
        .map(|k| {
            let key = signing::verifying_key_from_pem(&k.pem).map_err(|e| KeySetError::BadKey {
                keyid: k.keyid.clone(),
                reason: e.to_string(),
            })?;
            if signing::key_id(&key) != k.keyid {
                return Err(KeySetError::BadKey {
                    keyid: k.keyid.clone(),
                    reason: format!("its key's id is {}", signing::key_id(&key)),
                });
            }
            Ok(key)
        })
        .collect::<Result<_, _>>()?;
    Ok(KeySet { doc, keys })
}

/// Whether a key set offered now replaces the one `held` (if any): the root signed
/// it, it is not older (an equal version must be the same set) and not expired.
pub fn accept(
    envelope: &[u8],
    root: &VerifyingKey,
    held: Option<&KeySet>,
    now: Timestamp,
) -> Result<KeySet, KeySetError> {
    let set = verify(envelope, root)?;
    if let Some(held) = held {
        if set.version() < held.version() {
            return Err(KeySetError::Rollback {
                found: set.version(),
                held: held.version(),
            });
        }
        if set.version() == held.version() && set.doc != held.doc {
            return Err(KeySetError::Forked {
                version: set.version(),
            });
        }
    }
    set.trusted(now)?;
    Ok(set)
}

/// The payload of a downgrade ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketDoc {
    computer: ComputerId,
    package: PackageId,
}

/// Central's signed word that `computer` may install `package` below its version floor.
pub fn sign_downgrade(key: &SigningKey, computer: &ComputerId, package: &PackageId) -> String {
    let doc = TicketDoc {
        computer: computer.clone(),
        package: package.clone(),
    };
    let payload = serde_json::to_vec(&doc).unwrap_or_default();
    String::from_utf8(signing::sign(key, DOWNGRADE_PAYLOAD_TYPE, &payload)).unwrap_or_default()
}

/// Checks a downgrade ticket: signed by a trusted key, for this computer and package.
pub fn verify_downgrade(
    ticket: &str,
    trusted: &[VerifyingKey],
    computer: &ComputerId,
    package: &PackageId,
) -> Result<(), KeySetError> {
    let payload = signing::verify(ticket.as_bytes(), DOWNGRADE_PAYLOAD_TYPE, trusted)
        .map_err(|e| KeySetError::Ticket(e.to_string()))?;
    let doc: TicketDoc =
        serde_json::from_slice(&payload).map_err(|e| KeySetError::Ticket(e.to_string()))?;
    if &doc.computer != computer || &doc.package != package {
        return Err(KeySetError::Ticket(format!(
            "it is for {} on {}, not {package} on {computer}",
            doc.package, doc.computer
        )));
    }
    Ok(())
}

/// Orders two version strings as people read them: runs of digits compare as
/// numbers, other runs as text, so `1.10 > 1.9` and `128.0.1 > 128.0`; a version
/// that is a prefix of the other (`2.1` of `2.1.3`) is the older.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (runs(a), runs(b));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                // A run is all digits or none, so its first character says which. Digit
                // runs compare as numbers of any length (leading zeros dropped, then the
                // longer is bigger): parsing them would make a number too long to parse
                // compare as text, and the order would no longer be transitive.
                let digits = |r: &str| r.starts_with(|c: char| c.is_ascii_digit());
                let order = match (digits(x), digits(y)) {
                    (true, true) => {
                        let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                        x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                    }
                    // A number sorts after text (`1.0 > 1.rc`: a release after its candidates).
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    (false, false) => x.cmp(y),
                };
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// The digit and letter runs of a version; separators (`.`, `-`, `_`, `+`, `~`) only split.
fn runs(v: &str) -> impl Iterator<Item = &str> {
    let mut rest = v;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let first = rest.chars().next()?;
        let digits = first.is_ascii_digit();
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() || c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cmp::Ordering::{Equal, Greater, Less};

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn entry(k: &SigningKey) -> KeyEntry {
        KeyEntry {
            keyid: signing::key_id(&k.verifying_key()),
            pem: signing::verifying_key_to_pem(&k.verifying_key()).unwrap(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn doc(version: u64, keys: &[&SigningKey]) -> KeySetDoc {
        KeySetDoc {
            version,
            expires: at("2027-06-01T00:00:00Z"),
            keys: keys.iter().map(|k| entry(k)).collect(),
        }
    }

    #[test]
    fn rotating_twice_and_revoking_changes_what_is_trusted() {
        let (root, now) = (key(1), at("2026-12-01T00:00:00Z"));
        let (a, b, c) = (key(10), key(11), key(12));
        let v1 = accept(
            &sign(&root, &doc(1, &[&a])),
            &root.verifying_key(),
            None,
            now,
        )
        .unwrap();
        let v2 = accept(
            &sign(&root, &doc(2, &[&a, &b])),
            &root.verifying_key(),
            Some(&v1),
            now,
        )
        .unwrap();
        let v3 = accept(
            &sign(&root, &doc(3, &[&a, &b, &c])),
            &root.verifying_key(),
            Some(&v2),
            now,
        )
        .unwrap();
        // Revoking a: the next set leaves it out.
        let v4 = accept(
            &sign(&root, &doc(4, &[&b, &c])),
            &root.verifying_key(),
            Some(&v3),
            now,
        )
        .unwrap();
        let info = signing::sign(&a, signing::INFO_PAYLOAD_TYPE, b"x");
        assert!(
            signing::verify(&info, signing::INFO_PAYLOAD_TYPE, v3.trusted(now).unwrap()).is_ok()
        );
        assert!(matches!(
            signing::verify(&info, signing::INFO_PAYLOAD_TYPE, v4.trusted(now).unwrap()),
            Err(VerifyError::UnknownKey { .. })
        ));
        let by_c = signing::sign(&c, signing::INFO_PAYLOAD_TYPE, b"x");
        assert!(
            signing::verify(&by_c, signing::INFO_PAYLOAD_TYPE, v4.trusted(now).unwrap()).is_ok()
        );
        assert!(v4.lists(&signing::key_id(&b.verifying_key())));
        assert!(!v4.lists(&signing::key_id(&a.verifying_key())));
    }

    #[test]
    fn an_older_a_forked_an_expired_or_a_foreign_set_is_refused() {
        let (root, now) = (key(1), at("2026-12-01T00:00:00Z"));
        let held = accept(
            &sign(&root, &doc(5, &[&key(10)])),
            &root.verifying_key(),
            None,
            now,
        )
        .unwrap();
        let older = sign(&root, &doc(4, &[&key(10), &key(11)]));
        assert_eq!(
            accept(&older, &root.verifying_key(), Some(&held), now),
            Err(KeySetError::Rollback { found: 4, held: 5 })
        );
        let forked = sign(&root, &doc(5, &[&key(11)]));
        assert_eq!(
            accept(&forked, &root.verifying_key(), Some(&held), now),
            Err(KeySetError::Forked { version: 5 })
        );
        // The same set again is fine.
        let same = sign(&root, &doc(5, &[&key(10)]));
        assert!(accept(&same, &root.verifying_key(), Some(&held), now).is_ok());
        let late = at("2027-06-01T00:00:00Z");
        assert!(matches!(
            accept(&same, &root.verifying_key(), Some(&held), late),
            Err(KeySetError::Expired { version: 5, .. })
        ));
        assert!(matches!(
            held.trusted(late),
            Err(KeySetError::Expired { .. })
        ));
        let foreign = sign(&key(2), &doc(6, &[&key(10)]));
        assert!(matches!(
            accept(&foreign, &root.verifying_key(), Some(&held), now),
            Err(KeySetError::Signature(VerifyError::UnknownKey { .. }))
        ));
        // An info envelope is not a key set, even signed by the root.
        let relabelled = signing::sign(&root, signing::INFO_PAYLOAD_TYPE, b"{}");
        assert!(matches!(
            verify(&relabelled, &root.verifying_key()),
            Err(KeySetError::Signature(VerifyError::WrongPayloadType { .. }))
        ));
    }

    #[test]
    fn a_set_whose_key_ids_lie_or_that_is_empty_is_refused() {
        let root = key(1);
        let mut lying = doc(1, &[&key(10)]);
        lying.keys[0].keyid = "0000000000000000".into();
        assert!(matches!(
            verify(&sign(&root, &lying), &root.verifying_key()),
            Err(KeySetError::BadKey { .. })
        ));
        assert_eq!(
            verify(&sign(&root, &doc(1, &[])), &root.verifying_key()),
            Err(KeySetError::Empty)
        );
    }

    #[test]
    fn a_downgrade_ticket_holds_only_for_its_computer_and_package() {
        let k = key(10);
        let pc: ComputerId = "pc-1".parse().unwrap();
        let other: ComputerId = "pc-2".parse().unwrap();
        let pkg: PackageId = "hello-1.0-1a2b3c4d".parse().unwrap();
        let ticket = sign_downgrade(&k, &pc, &pkg);
        let trusted = [k.verifying_key()];
        assert!(verify_downgrade(&ticket, &trusted, &pc, &pkg).is_ok());
        assert!(verify_downgrade(&ticket, &trusted, &other, &pkg).is_err());
        assert!(verify_downgrade(&ticket, &[key(11).verifying_key()], &pc, &pkg).is_err());
        assert!(verify_downgrade("{}", &trusted, &pc, &pkg).is_err());
    }

    #[test]
    fn versions_compare_as_people_read_them() {
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("128.0.1", "128.0"), Greater);
        assert_eq!(compare_versions("2.1", "2.1.3"), Less);
        assert_eq!(compare_versions("1.0", "1.0"), Equal);
        assert_eq!(compare_versions("1.01", "1.1"), Equal);
        assert_eq!(compare_versions("1.0", "1.0rc1"), Less);
        assert_eq!(compare_versions("1.0.rc1", "1.0.1"), Less);
        assert_eq!(compare_versions("10.0-beta", "10.0-alpha"), Greater);
        assert_eq!(
            compare_versions("99999999999999999999999999999999999999999", "1"),
            Greater
        );
        assert_eq!(compare_versions("", "1"), Less);
        // Found by fuzzing: a number too long for u128 compared as text with text, so
        // `O > 8000…` although `O < 0 < 8000…`: the order was not transitive.
        let long = "8000000000000000000000000000000000000000000";
        assert_eq!(compare_versions("O", long), Less);
        assert_eq!(compare_versions(long, "O"), Greater);
        assert_eq!(compare_versions("1.rc", &format!("1.{long}")), Less);
        assert_eq!(compare_versions(&format!("00{long}"), long), Equal);
        assert_eq!(compare_versions("...", ""), Equal);
    }
}
