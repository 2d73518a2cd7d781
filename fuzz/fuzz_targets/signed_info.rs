//! Fuzzes what sits behind the signature: each input is signed with a fixed key as an
//! info payload, then `signing::verify_info` must get past the envelope and the
//! signature every time and hand the exact bytes to the info parser, whose answer must
//! be the one `Info::from_json` gives. The input is also signed under a payload type
//! taken from its first line, and `signing::verify` must give the payload back byte for
//! byte. Signed as a key set by the root key, `keyset::verify` must get past the
//! signature and, if it accepts the set, signing that set again must verify to the same
//! set.
#![no_main]

use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use sitecast_common::info::Info;
use sitecast_common::keyset::{self, KeySetError, KEYSET_PAYLOAD_TYPE};
use sitecast_common::signing::{sign, verify, verify_info, VerifyError, INFO_PAYLOAD_TYPE};

fn key() -> &'static (SigningKey, VerifyingKey) {
    static KEY: OnceLock<(SigningKey, VerifyingKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key();
        (key, public)
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, public) = key();
    let trusted = std::slice::from_ref(public);

    let envelope = sign(key, INFO_PAYLOAD_TYPE, data);
    match verify_info(&envelope, trusted) {
        Ok(info) => assert_eq!(Info::from_json(data), Ok(info)),
        Err(VerifyError::BadInfo(e)) => assert_eq!(Info::from_json(data), Err(e)),
        Err(e) => panic!("a correctly signed payload was refused before parsing: {e}"),
    }

    let (payload_type, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (String::from_utf8_lossy(&data[..at]), &data[at + 1..]),
        None => (String::from_utf8_lossy(&[]), data),
    };
    let envelope = sign(key, &payload_type, payload);
    assert_eq!(
        verify(&envelope, &payload_type, trusted).as_deref(),
        Ok(payload)
    );

    // The fixed key doubles as the root that signs key sets.
    let envelope = sign(key, KEYSET_PAYLOAD_TYPE, data);
    match keyset::verify(&envelope, public) {
        Ok(set) => {
            let again = keyset::sign(key, set.doc());
            assert_eq!(keyset::verify(&again, public).as_ref(), Ok(&set));
        }
        Err(KeySetError::Signature(e)) => {
            panic!("a correctly signed key set was refused before parsing: {e}")
        }
        Err(_) => {}
    }
});
