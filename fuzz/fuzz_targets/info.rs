//! Fuzzes the info document parser, `Info::from_json`, on arbitrary bytes: it must
//! refuse or accept without panicking, and an accepted document must survive its own
//! serialisation (`from_json(to_json(info)) == info`), since `to_json` is what central signs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitecast_common::info::Info;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = Info::from_json(data) {
        let again = Info::from_json(&info.to_json()).expect("an info's own JSON parses");
        assert_eq!(again, info, "an info changed across to_json/from_json");
    }
});
