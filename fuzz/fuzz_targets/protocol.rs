//! Fuzzes the QUIC wire decoder of the replication protocol (`protocol::body_len` and
//! `protocol::decode`): the input is a stream of frames, each a 4-byte big-endian length
//! and a JSON body, as central and relays read them off a stream. Every body is decoded
//! as each of `RelayMessage`, `CentralMessage`, `Request` and `Response`; what decodes
//! must encode and decode back to itself, and the signing keys of a `Welcome` go through
//! the PEM reader a relay hands them to.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sitecast_common::protocol::{
    body_len, decode, encode, CentralMessage, RelayMessage, Request, Response,
};
use sitecast_common::signing::verifying_key_from_pem;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(body: &[u8]) -> Option<T> {
    let message: T = decode(body).ok()?;
    let frame = encode(&message);
    let (header, again) = frame
        .split_first_chunk::<4>()
        .expect("a frame has a header");
    assert_eq!(body_len(*header), Ok(again.len()));
    assert_eq!(decode::<T>(again).as_ref(), Ok(&message));
    Some(message)
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // A few frames are enough to cover a control stream's sequence of messages.
    for _ in 0..8 {
        let Some((header, after)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let Ok(len) = body_len(*header) else {
            break;
        };
        // A short body is what a stream that ends early leaves: decode what is there.
        let body = &after[..len.min(after.len())];
        rest = &after[body.len()..];

        round_trip::<RelayMessage>(body);
        if let Some(CentralMessage::Welcome { signing_keys, .. }) =
            round_trip::<CentralMessage>(body)
        {
            for key in &signing_keys {
                let _ = verifying_key_from_pem(&key.pem);
            }
        }
        if let Some(request) = round_trip::<Request>(body) {
            let _ = request.package_id();
        }
        round_trip::<Response>(body);
    }
});
