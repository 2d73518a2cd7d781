//! Fuzzes every small textual grammar of `sitecast-common`: sizes, rates and durations
//! (`units`), IP ranges and time frames (`constraint`; a time-frame list is also a
//! relay's replication schedule), weekdays, MAC addresses (`power`), tags, hostname
//! globs, subnets and whole criteria (`groups`), ids, status codes, sequence modes,
//! central fallbacks, admins' dates (`jobs::parse_time`), package versions
//! (`keyset::compare_versions`), and the info's OS and archive names.
//!
//! The first byte picks the grammar (the letters of `GRAMMARS`, any other byte by its
//! value modulo their number), the rest is the text. Each value that parses must print
//! back to a text that parses to the same value, as those types promise; the types that
//! travel through serde as their text must serialise to exactly that text and back; a
//! parsed time must read back from its RFC 3339 form; versions must be ordered like a
//! total order (reflexive, antisymmetric, transitive); and the constraints are
//! evaluated on a few addresses and times, which must not panic.
#![no_main]

use std::fmt::{Debug, Display};
use std::net::IpAddr;
use std::str::FromStr;

use jiff::civil::{date, DateTime};
use jiff::tz::{Offset, TimeZone};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sitecast_common::constraint::{IpRange, IpRanges, TimeFrame, TimeFrames, Weekday};
use sitecast_common::deployment::CentralFallback;
use sitecast_common::groups::{parse_tags, Candidate, Criteria, HostnameGlob, Tag};
use sitecast_common::ids::{ComputerId, ContainerId, GroupName, PackageId, RelayId, SiteName};
use sitecast_common::info::{Archive, Os};
use sitecast_common::jobs::{parse_time, Sequence};
use sitecast_common::keyset::compare_versions;
use sitecast_common::power::{parse_macs, MacAddr};
use sitecast_common::status::StatusCode;
use sitecast_common::units::{Duration, Rate, Size};
use std::cmp::Ordering;

/// The selector letters, in the order of the `match` below.
const GRAMMARS: &[u8] = b"srdiItTwmghcnxqfpvo";

/// `parse(display(x)) == x` for whatever parses.
fn round_trip<T>(text: &str) -> Option<T>
where
    T: FromStr + Display + PartialEq + Debug,
    T::Err: Debug,
{
    let value: T = text.parse().ok()?;
    let printed = value.to_string();
    match printed.parse::<T>() {
        Ok(again) => assert_eq!(again, value, "{text:?} printed as {printed:?}"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e:?}"),
    }
    Some(value)
}

/// For the types whose serde form is their text (`try_from`/`into` `String`): JSON is
/// that text as a string, and reads back to the same value.
fn serde_as_text<T>(value: &T)
where
    T: Display + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_string(value).expect("a grammar value serialises");
    assert_eq!(
        json,
        serde_json::to_string(&value.to_string()).expect("a string serialises"),
        "{value:?} does not serialise as its text"
    );
    let again: T = serde_json::from_str(&json).expect("a grammar value's JSON reads back");
    assert_eq!(&again, value, "{value:?} changed through {json}");
}

/// For the types serde writes by their own derive: JSON reads back to the same value.
fn serde_round_trip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_string(value).expect("a value serialises");
    let again: T = serde_json::from_str(&json).expect("a value's JSON reads back");
    assert_eq!(&again, value, "{value:?} changed through {json}");
}

/// `compare_versions` on up to three versions, one a line: it must be an order.
fn versions(text: &str) {
    let mut lines = text.splitn(3, '\n');
    let a = lines.next().unwrap_or_default();
    let b = lines.next().unwrap_or_default();
    let c = lines.next().unwrap_or_default();
    for v in [a, b, c] {
        assert_eq!(compare_versions(v, v), Ordering::Equal, "{v:?} vs itself");
    }
    for (x, y) in [(a, b), (b, c), (a, c)] {
        assert_eq!(
            compare_versions(x, y),
            compare_versions(y, x).reverse(),
            "{x:?} vs {y:?} is not antisymmetric"
        );
    }
    let ab = compare_versions(a, b);
    let bc = compare_versions(b, c);
    let ac = compare_versions(a, c);
    if ab != Ordering::Greater && bc != Ordering::Greater {
        assert_ne!(
            ac,
            Ordering::Greater,
            "{a:?} <= {b:?} <= {c:?} but {a:?} > {c:?}"
        );
        if ab == Ordering::Less || bc == Ordering::Less {
            assert_eq!(ac, Ordering::Less, "{a:?} < {c:?} through {b:?}");
        }
    }
    if ab == Ordering::Equal && bc == Ordering::Equal {
        assert_eq!(
            ac,
            Ordering::Equal,
            "equality is not transitive: {a:?} {b:?} {c:?}"
        );
    }
}

fn addresses() -> [IpAddr; 6] {
    [
        IpAddr::from([10, 2, 3, 4]),
        IpAddr::from([192, 168, 2, 3]),
        IpAddr::from([0, 0, 0, 0]),
        IpAddr::from([255, 255, 255, 255]),
        IpAddr::from([0xcaff, 0xeeca, 0xffee, 0, 0, 0, 0, 1]),
        IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0x0a02, 0x0304]),
    ]
}

fn times() -> [DateTime; 4] {
    [
        date(2026, 11, 21).at(18, 30, 0, 0),
        date(2026, 11, 23).at(0, 0, 0, 0),
        date(2026, 11, 29).at(23, 59, 59, 0),
        date(2026, 3, 29).at(2, 30, 0, 0),
    ]
}

fn ids(text: &str) {
    fn id<T: FromStr + Display + PartialEq + Debug>(text: &str)
    where
        T::Err: Debug,
    {
        if let Some(value) = round_trip::<T>(text) {
            assert_eq!(value.to_string(), text, "an id is its text");
        }
    }
    id::<PackageId>(text);
    id::<RelayId>(text);
    id::<ComputerId>(text);
    id::<ContainerId>(text);
    id::<SiteName>(text);
    id::<GroupName>(text);
}

/// Newline-separated fields (subnets, tags, OS names, hostnames), each a comma list.
fn criteria(text: &str) {
    let mut fields = text.splitn(4, '\n').map(|field| {
        field
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let mut next = || fields.next().unwrap_or_default();
    let (subnets, tags, os, hostnames) = (next(), next(), next(), next());
    let Ok(criteria) = Criteria::parse(&subnets, &tags, &os, &hostnames) else {
        return;
    };
    let json = serde_json::to_string(&criteria).expect("criteria serialise");
    let again: Criteria = serde_json::from_str(&json).expect("criteria deserialise");
    assert_eq!(again, criteria, "criteria changed through {json}");
    let tags = parse_tags(&["web".to_owned(), "Lab-1".to_owned()]).expect("fixed tags");
    for hostname in ["pc-001", "", "A.B.example"] {
        let _ = criteria.matches(Candidate {
            hostname,
            os: "linux",
            addresses: &addresses(),
            tags: &tags,
        });
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let which = GRAMMARS
        .iter()
        .position(|&g| g == selector)
        .unwrap_or(usize::from(selector) % GRAMMARS.len());
    let text = String::from_utf8_lossy(rest);
    let text = text.as_ref();
    match which {
        0 => {
            if let Some(size) = round_trip::<Size>(text) {
                serde_as_text(&size);
            }
        }
        1 => {
            if let Some(rate) = round_trip::<Rate>(text) {
                serde_as_text(&rate);
                assert_eq!(rate.is_unlimited(), rate.bytes_per_sec().is_none());
            }
        }
        2 => {
            if let Some(d) = round_trip::<Duration>(text) {
                serde_as_text(&d);
                let _ = std::time::Duration::from(d);
            }
        }
        3 => {
            if let Some(range) = round_trip::<IpRange>(text) {
                for ip in addresses() {
                    let _ = range.contains(ip);
                }
            }
        }
        4 => {
            if let Some(ranges) = round_trip::<IpRanges>(text) {
                serde_as_text(&ranges);
                for ip in addresses() {
                    let _ = ranges.admits(ip);
                }
            }
        }
        5 => {
            if let Some(frame) = round_trip::<TimeFrame>(text) {
                for at in times() {
                    let _ = frame.covers(at);
                }
            }
        }
        6 => {
            if let Some(frames) = round_trip::<TimeFrames>(text) {
                serde_as_text(&frames);
                for at in times() {
                    let _ = frames.admits(at);
                }
            }
        }
        7 => {
            if let Some(day) = round_trip::<Weekday>(text) {
                assert_eq!(day.next().previous(), day);
            }
        }
        8 => {
            if let Some(mac) = round_trip::<MacAddr>(text) {
                serde_as_text(&mac);
                let _ = sitecast_common::power::magic_packet(mac);
            }
            let list: Vec<String> = text.split(',').map(str::to_owned).collect();
            if let Ok(macs) = parse_macs(&list) {
                assert!(macs.len() <= list.len());
            }
        }
        9 => {
            round_trip::<Tag>(text);
            let list: Vec<String> = text.split(',').map(str::to_owned).collect();
            if let Ok(tags) = parse_tags(&list) {
                assert!(tags.len() <= list.len());
            }
        }
        10 => {
            // The pattern, then hostnames to match it against.
            let mut lines = text.split('\n');
            let pattern = lines.next().unwrap_or_default();
            if let Ok(glob) = pattern.parse::<HostnameGlob>() {
                let again: HostnameGlob = String::from(glob.clone())
                    .parse()
                    .expect("a glob's text parses");
                assert_eq!(again, glob);
                serde_round_trip(&glob);
                for hostname in lines.take(4) {
                    assert_eq!(glob.matches(hostname), again.matches(hostname));
                }
            }
        }
        11 => criteria(text),
        12 => ids(text),
        13 => {
            if let Some(code) = round_trip::<StatusCode>(text) {
                serde_round_trip(&code);
            }
        }
        14 => {
            if let Some(sequence) = round_trip::<Sequence>(text) {
                serde_round_trip(&sequence);
            }
        }
        15 => {
            if let Some(fallback) = round_trip::<CentralFallback>(text) {
                serde_as_text(&fallback);
            }
        }
        16 => {
            let zones = [
                TimeZone::UTC,
                TimeZone::fixed(Offset::constant(-11)),
                TimeZone::fixed(Offset::constant(14)),
            ];
            for tz in &zones {
                if let Ok(at) = parse_time("start_at", text, tz) {
                    // What central shows back (RFC 3339) means the same instant anywhere.
                    let shown = at.to_string();
                    for other in &zones {
                        assert_eq!(
                            parse_time("start_at", &shown, other).as_ref(),
                            Ok(&at),
                            "{text:?} read as {shown}"
                        );
                    }
                }
            }
        }
        17 => versions(text),
        _ => {
            round_trip::<Os>(text);
            round_trip::<Archive>(text);
        }
    }
});
