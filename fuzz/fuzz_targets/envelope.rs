//! Fuzzes the DSSE envelope verifiers on arbitrary envelope bytes against fixed trusted
//! keys: `signing::verify` and `signing::verify_info` (infos), `keyset::verify` (key
//! sets, against a root key) and `keyset::verify_downgrade` (downgrade tickets).
//! Malformed JSON, wrong payload types, bad base64, unknown key ids and bad signatures
//! must all be refused without a panic, and the verifiers must agree with each other:
//! `verify_info` is `verify` then `Info::from_json`, nothing verifies without a key,
//! whatever verifies names a trusted key among its `signers`, and an envelope that
//! `resign` accepts verifies under the new key with the same payload. (A fuzzer cannot
//! forge a signature, so the parsers behind it are reached by the `signed_info`
//! target, which signs its input.)
#![no_main]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use sitecast_common::info::Info;
use sitecast_common::keyset::{self, KeySetError};
use sitecast_common::signing::{
    key_id, resign, signers, verify, verify_info, Envelope, VerifyError, INFO_PAYLOAD_TYPE,
};

/// The key the seed envelopes were signed with (`examples/make_seeds.rs`), so that
/// mutations of a seed reach the signature check itself, and a second, unrelated key.
fn trusted() -> [VerifyingKey; 2] {
    [
        SigningKey::from_bytes(&[7; 32]).verifying_key(),
        SigningKey::from_bytes(&[8; 32]).verifying_key(),
    ]
}

fuzz_target!(|data: &[u8]| {
    let keys = trusted();
    let payload = verify(data, INFO_PAYLOAD_TYPE, &keys);
    let info = verify_info(data, &keys);
    match (&payload, &info) {
        (Ok(payload), Ok(info)) => {
            assert_eq!(Info::from_json(payload).as_ref(), Ok(info));
        }
        (Ok(payload), Err(VerifyError::BadInfo(e))) => {
            assert_eq!(Info::from_json(payload).as_ref(), Err(e));
        }
        (Ok(_), Err(e)) => panic!("verify accepted what verify_info refused before parsing: {e}"),
        (Err(a), Err(b)) => assert_eq!(a, b, "verify and verify_info disagree"),
        (Err(e), Ok(_)) => panic!("verify refused ({e}) what verify_info accepted"),
    }
    if payload.is_ok() {
        let ids = signers(data).expect("a verified envelope lists its signers");
        assert!(
            keys.iter().any(|k| ids.contains(&key_id(k))),
            "verified, but no trusted key among the signers {ids:?}"
        );
    }
    // No key at all: nothing may verify.
    assert!(verify(data, INFO_PAYLOAD_TYPE, &[]).is_err());

    // Central re-signs envelopes it recorded: the payload and its type must survive.
    let new_key = SigningKey::from_bytes(&[9; 32]);
    if let Ok(resigned) = resign(&new_key, data) {
        let env: Envelope = serde_json::from_slice(data).expect("resign read this envelope");
        let original = BASE64
            .decode(env.payload.as_bytes())
            .expect("resign decoded this payload");
        assert_eq!(
            verify(&resigned, &env.payload_type, &[new_key.verifying_key()]),
            Ok(original),
            "a re-signed envelope does not verify to its payload"
        );
    }

    // A key set is checked against the root alone; a ticket against the info keys.
    match keyset::verify(data, &keys[0]) {
        Ok(set) => {
            assert!(!set.doc().keys.is_empty());
            for entry in &set.doc().keys {
                assert!(set.lists(&entry.keyid));
            }
        }
        Err(KeySetError::Signature(_) | KeySetError::Malformed(_))
        | Err(KeySetError::Empty | KeySetError::BadKey { .. }) => {}
        Err(e) => panic!("keyset::verify judged more than the signature and keys: {e}"),
    }
    let computer = "pc-001".parse().expect("a fixed computer id");
    let package = "hello-1.0-abc123".parse().expect("a fixed package id");
    if let Ok(text) = std::str::from_utf8(data) {
        match keyset::verify_downgrade(text, &keys, &computer, &package) {
            Ok(()) | Err(KeySetError::Ticket(_)) => {}
            Err(e) => panic!("a ticket was refused for something else: {e}"),
        }
    }
});
