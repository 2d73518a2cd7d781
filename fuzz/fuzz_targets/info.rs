//! Fuzzes the info document parser, `Info::from_json`, on arbitrary bytes: it must
//! refuse or accept without panicking, and an accepted document must survive its own
//! serialisation (`from_json(to_json(info)) == info`) and serialise to the same bytes
//! again, since `to_json` is what central signs and agents compare digests of.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitecast_common::info::Info;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = Info::from_json(data) {
        let json = info.to_json();
        let again = Info::from_json(&json).expect("an info's own JSON parses");
        assert_eq!(again, info, "an info changed across to_json/from_json");
        assert_eq!(again.to_json(), json, "to_json is not stable");
    }
});
