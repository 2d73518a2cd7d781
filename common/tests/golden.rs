//! Golden info documents: the bytes central signs and agents verify must not
//! drift silently. Run with `SITECAST_BLESS=1` to rewrite the files after an
//! intended format change, and review the diff.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use sitecast_common::info::{Action, Archive, Info, InfoError, Os};
use sitecast_common::signing::{self, VerifyError};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

/// The golden key: a fixed seed, so signatures are reproducible (Ed25519 is deterministic).
fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn check_or_bless(name: &str, bytes: &[u8]) {
    if std::env::var_os("SITECAST_BLESS").is_some() {
        std::fs::write(data(name), bytes).unwrap();
    }
    assert_eq!(
        String::from_utf8_lossy(&read(name)),
        String::from_utf8_lossy(bytes),
        "{name} differs from what the code produces"
    );
}

#[test]
fn golden_info_parses_to_the_expected_values() {
    let info = Info::from_json(&read("info.json")).unwrap();
    assert_eq!(info.id().as_str(), "hello-1.0-0a1b2c");
    assert_eq!(info.os(), Os::Linux);
    assert_eq!(info.priority().get(), 5);
    assert_eq!(
        info.action(),
        &Action::Launch {
            command: "install.sh --quiet".into()
        }
    );
    assert_eq!(info.archive(), Archive::TarGz);
    assert_eq!(info.plan().size(), 10_000);
    assert_eq!(info.plan().count(), 3);
    assert_eq!(info.success_exit_codes(), &[0, 3010]);
    assert_eq!(info.notify().unwrap().countdown_s, 300);
    assert_eq!(info.supersedes().unwrap().as_str(), "hello-0.9-99aa00");
    assert_eq!(info.uninstall().unwrap().command, "uninstall.sh");
    // Writing it back out gives the same bytes: the payload is stable.
    check_or_bless("info.json", &info.to_json());
}

#[test]
fn golden_envelope_is_reproducible_and_verifies() {
    let info = Info::from_json(&read("info.json")).unwrap();
    check_or_bless("info.signed.json", &signing::sign_info(&key(), &info));
    check_or_bless(
        "signing.pub",
        signing::verifying_key_to_pem(&key().verifying_key())
            .unwrap()
            .as_bytes(),
    );
    let public =
        signing::verifying_key_from_pem(&String::from_utf8(read("signing.pub")).unwrap()).unwrap();
    let verified = signing::verify_info(&read("info.signed.json"), &[public]).unwrap();
    assert_eq!(verified, info);
}

#[test]
fn golden_forgery_is_refused() {
    let public = key().verifying_key();
    // Same signature, payload with the command changed.
    assert_eq!(
        signing::verify_info(&read("info.forged.json"), &[public]),
        Err(VerifyError::BadSignature {
            keyid: signing::key_id(&public)
        })
    );
}

#[test]
fn golden_bad_infos_name_the_field() {
    for (file, field) in [
        ("bad-priority.json", "priority"),
        ("bad-fragments.json", "fragments"),
        ("bad-command.json", "command"),
    ] {
        match Info::from_json(&read(file)) {
            Err(InfoError::Field { field: f, .. }) => assert_eq!(f, field, "{file}"),
            other => panic!("{file}: {other:?}"),
        }
    }
}
