//! Fuzzes the DSSE envelope verifier, `signing::verify` and `signing::verify_info`, on
//! arbitrary envelope bytes against fixed trusted keys: malformed JSON, wrong payload
//! types, bad base64, unknown key ids and bad signatures must all be refused without a
//! panic. (A fuzzer cannot forge a signature, so the parser behind it is reached by the
//! `signed_info` target, which signs its input.)
#![no_main]

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use sitecast_common::info::Info;
use sitecast_common::signing::{verify, verify_info, VerifyError, INFO_PAYLOAD_TYPE};

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
    // No key at all: nothing may verify.
    assert!(verify(data, INFO_PAYLOAD_TYPE, &[]).is_err());
});
