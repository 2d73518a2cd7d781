//! IP-range conditions: [`IpRange`] entries and the [`IpRanges`] list, parsed from and
//! printed as `10.2.0.0/16,!192.168.2.3/32,CAFF:EECA:FFEE::/64`.

use std::fmt::{self, Display};
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{admits, write_list, write_negation};
use crate::grammar::{split_list, split_negation, GrammarError};

const IP_RANGE: &str = "IP range";

/// One entry of an [`IpRanges`] list: `10.2.0.0/16`, `!192.168.2.3/32`, `CAFF:EECA:FFEE::/64`.
/// A bare address means a single host (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    negated: bool,
    net: IpNet,
}

impl IpRange {
    /// An entry that admits the addresses of `net`. Host bits are cleared
    /// (`10.2.3.4/16` is `10.2.0.0/16`) so that equal ranges compare equal.
    pub fn allow(net: IpNet) -> Self {
        IpRange {
            negated: false,
            net: net.trunc(),
        }
    }

    /// An entry that rejects the addresses of `net`.
    pub fn deny(net: IpNet) -> Self {
        IpRange {
            negated: true,
            net: net.trunc(),
        }
    }

    pub fn net(&self) -> IpNet {
        self.net
    }

    pub fn is_negated(&self) -> bool {
        self.negated
    }

    /// Whether `ip` is inside this range, whatever the entry's negation.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.net.contains(&canonical(ip))
    }
}

/// Dual-stack sockets report IPv4 peers as `::ffff:a.b.c.d`; those must still match the
/// IPv4 ranges an admin wrote.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl FromStr for IpRange {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let entry = input.trim();
        let (negated, body) = split_negation(entry);
        let net = parse_net(entry, body)?;
        Ok(if negated {
            IpRange::deny(net)
        } else {
            IpRange::allow(net)
        })
    }
}

fn parse_net(entry: &str, body: &str) -> Result<IpNet, GrammarError> {
    let err = |reason: String| GrammarError::new(IP_RANGE, entry, reason);
    let (addr_text, prefix_text) = match body.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (body, None),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| err(format!("'{addr_text}' is not an IPv4 or IPv6 address")))?;
    let (max, family) = match addr {
        IpAddr::V4(_) => (32, "IPv4"),
        IpAddr::V6(_) => (128, "IPv6"),
    };
    let prefix = match prefix_text {
        None => max,
        Some(text) => {
            // `u8::from_str` would also take "+8"; a prefix is digits only.
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("prefix length '{text}' is not a number")));
            }
            match text.parse::<u8>() {
                Ok(prefix) if prefix <= max => prefix,
                _ => {
                    return Err(err(format!(
                        "prefix length {text} exceeds {max}, the maximum for {family}"
                    )))
                }
            }
        }
    };
    IpNet::new(addr, prefix).map_err(|_| err(format!("prefix length {prefix} is invalid")))
}

impl Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_negation(f, self.negated)?;
        write!(f, "{}", self.net)
    }
}

/// An IP-range condition: `10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE::/64`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpRanges {
    entries: Vec<IpRange>,
}

impl IpRanges {
    pub fn new(entries: Vec<IpRange>) -> Self {
        IpRanges { entries }
    }

    pub fn entries(&self) -> &[IpRange] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a job with this condition may run for a computer at `ip`.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        admits(
            self.entries
                .iter()
                .map(|entry| (entry.negated, entry.net.contains(&ip))),
        )
    }
}

impl FromStr for IpRanges {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let entries = split_list(IP_RANGE, input)?
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(IpRanges { entries })
    }
}

impl Display for IpRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.entries)
    }
}

impl TryFrom<String> for IpRanges {
    type Error = GrammarError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<IpRanges> for String {
    fn from(value: IpRanges) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED_RANGES: &str = "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE::/64";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ranges(s: &str) -> IpRanges {
        s.parse().unwrap()
    }

    #[test]
    fn seed_ip_ranges() {
        let r = ranges(SEED_RANGES);
        assert!(!r.admits(ip("192.168.2.3")));
        assert!(r.admits(ip("192.168.2.4")));
        assert!(r.admits(ip("10.2.9.9")));
        assert!(!r.admits(ip("10.3.0.1")));
        assert!(r.admits(ip("caff:eeca:ffee::5")));
        assert!(r.admits(ip("CAFF:EECA:FFEE:0:ffff:ffff:ffff:ffff")));
        assert!(!r.admits(ip("caff:eeca:ffef::1")));
        assert!(!r.admits(ip("8.8.8.8")));
        assert_eq!(r.entries().len(), 4);
        assert!(r.entries()[1].is_negated());
    }

    #[test]
    fn seed_spelling_with_zero_group_is_the_same_range() {
        let seed = ranges("10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE:0000::/64");
        assert_eq!(seed, ranges(SEED_RANGES));
        assert_eq!(
            seed.to_string(),
            "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,caff:eeca:ffee::/64"
        );
    }

    #[test]
    fn negation_rejects_wherever_it_stands() {
        let after = ranges("192.168.2.0/24,!192.168.2.3");
        assert!(!after.admits(ip("192.168.2.3")));
        assert!(after.admits(ip("192.168.2.4")));
    }

    #[test]
    fn only_negations_admit_everything_else() {
        let r = ranges("!10.0.0.0/8, !fd00::/8");
        assert!(!r.admits(ip("10.1.2.3")));
        assert!(!r.admits(ip("fd12::1")));
        assert!(r.admits(ip("192.168.0.1")));
        assert!(r.admits(ip("2001:db8::1")));
    }

    #[test]
    fn empty_ranges_admit_everything() {
        for text in ["", "  "] {
            let r = ranges(text);
            assert!(r.is_empty());
            assert!(r.admits(ip("10.0.0.1")));
            assert!(r.admits(ip("::1")));
            assert_eq!(r.to_string(), "");
        }
        assert_eq!(IpRanges::default(), ranges(""));
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        let r = ranges("192.168.2.3, 2001:db8::1");
        assert_eq!(r.to_string(), "192.168.2.3/32,2001:db8::1/128");
        assert!(r.admits(ip("192.168.2.3")));
        assert!(!r.admits(ip("192.168.2.2")));
        assert!(r.admits(ip("2001:db8::1")));
        assert!(!r.admits(ip("2001:db8::2")));
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(ranges("10.2.3.4/16"), ranges("10.2.0.0/16"));
        assert_eq!(ranges("10.2.3.4/16").to_string(), "10.2.0.0/16");
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_ranges() {
        let r = ranges(SEED_RANGES);
        assert!(r.admits(ip("::ffff:10.2.9.9")));
        assert!(!r.admits(ip("::ffff:192.168.2.3")));
        assert!(r.entries()[0].contains(ip("::ffff:10.2.0.1")));
    }

    #[test]
    fn whitespace_around_entries_is_tolerated() {
        assert_eq!(
            ranges(" 10.2.0.0/16 ,\t! 192.168.2.3/32 , 192.168.2.0/24,CAFF:EECA:FFEE::/64 "),
            ranges(SEED_RANGES)
        );
    }

    #[test]
    fn prefix_too_long_is_named_exactly() {
        let err = "10.0.0.0/33".parse::<IpRanges>().unwrap_err();
        assert_eq!(
            err,
            GrammarError::new(
                "IP range",
                "10.0.0.0/33",
                "prefix length 33 exceeds 32, the maximum for IPv4"
            )
        );
        assert_eq!(
            err.to_string(),
            "bad IP range '10.0.0.0/33': prefix length 33 exceeds 32, the maximum for IPv4"
        );
        let err = "10.2.0.0/16, 10.0.0.0/33 ,::/0"
            .parse::<IpRanges>()
            .unwrap_err();
        assert_eq!(err.token, "10.0.0.0/33");
    }

    #[test]
    fn bad_ip_entries_are_named() {
        let fails = |text: &str| text.parse::<IpRanges>().unwrap_err();
        let err = fails("10.0.0.256/8");
        assert_eq!(err.token, "10.0.0.256/8");
        assert_eq!(err.reason, "'10.0.0.256' is not an IPv4 or IPv6 address");
        assert_eq!(
            fails("::/129").reason,
            "prefix length 129 exceeds 128, the maximum for IPv6"
        );
        assert_eq!(
            fails("10.0.0.0/+8").reason,
            "prefix length '+8' is not a number"
        );
        assert_eq!(
            fails("10.0.0.0/").reason,
            "prefix length '' is not a number"
        );
        assert_eq!(
            fails("10.0.0.0/999").reason,
            "prefix length 999 exceeds 32, the maximum for IPv4"
        );
        assert_eq!(fails("1.1.1.1,!!10.0.0.0/8").token, "!!10.0.0.0/8");
        assert_eq!(fails("1.1.1.1,!").token, "!");
        assert_eq!(
            fails("1.1.1.1,!").reason,
            "'' is not an IPv4 or IPv6 address"
        );
        assert_eq!(fails("fe80::1%eth0").token, "fe80::1%eth0");
    }

    #[test]
    fn empty_ip_entries_are_refused() {
        let err = "10.0.0.0/8,,1.1.1.1".parse::<IpRanges>().unwrap_err();
        assert_eq!(
            err,
            GrammarError::new("IP range", "", "entry 2 of 3 is empty")
        );
        assert!("10.0.0.0/8,".parse::<IpRanges>().is_err());
    }

    #[test]
    fn ip_ranges_travel_as_strings() {
        let r = ranges(SEED_RANGES);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#""10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,caff:eeca:ffee::/64""#
        );
        assert_eq!(serde_json::from_str::<IpRanges>(&json).unwrap(), r);
        let err = serde_json::from_str::<IpRanges>(r#""10.0.0.0/33""#).unwrap_err();
        assert!(
            err.to_string().contains("bad IP range '10.0.0.0/33'"),
            "{err}"
        );
    }

    // ----- properties

    fn any_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0..=32u8).prop_map(|(addr, len)| IpNet::new(
                IpAddr::from(std::net::Ipv4Addr::from(addr)),
                len
            )
            .unwrap()),
            (any::<u128>(), 0..=128u8).prop_map(|(addr, len)| IpNet::new(
                IpAddr::from(std::net::Ipv6Addr::from(addr)),
                len
            )
            .unwrap()),
        ]
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::from(std::net::Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::from(std::net::Ipv6Addr::from(a))),
        ]
    }

    fn any_ip_range() -> impl Strategy<Value = IpRange> {
        (any::<bool>(), any_net()).prop_map(|(negated, net)| {
            if negated {
                IpRange::deny(net)
            } else {
                IpRange::allow(net)
            }
        })
    }

    const BAD_IP_ENTRIES: &[&str] = &[
        "10.0.0.0/33",
        "10.0.0.256",
        "::1/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "1.2.3",
        "host.example",
        "!!10.0.0.0/8",
        "! 10.0.0.0/-1",
        "10.0.0.0/8/8",
    ];

    proptest! {
        #[test]
        fn ip_ranges_round_trip(entries in proptest::collection::vec(any_ip_range(), 0..6)) {
            let r = IpRanges::new(entries);
            prop_assert_eq!(r.to_string().parse::<IpRanges>(), Ok(r));
        }

        #[test]
        fn negated_match_always_rejects(
            entries in proptest::collection::vec(any_ip_range(), 0..6),
            deny in any_net(),
            ip in any_ip(),
        ) {
            let mut entries = entries;
            entries.push(IpRange::deny(deny));
            let r = IpRanges::new(entries);
            if deny.contains(&ip) {
                prop_assert!(!r.admits(ip));
            }
        }

        #[test]
        fn positive_match_admits_unless_negated(
            entries in proptest::collection::vec(any_ip_range(), 0..6),
            allow in any_net(),
            ip in any_ip(),
        ) {
            let rejected = entries.iter().any(|e| e.is_negated() && e.contains(ip));
            let mut entries = entries;
            entries.insert(0, IpRange::allow(allow));
            let r = IpRanges::new(entries);
            if allow.contains(&ip) {
                prop_assert_eq!(r.admits(ip), !rejected);
            }
        }

        #[test]
        fn bad_ip_entries_are_named_in_any_list(
            good in proptest::collection::vec(any_ip_range(), 0..4),
            bad in proptest::sample::select(BAD_IP_ENTRIES),
            at_index in any::<proptest::sample::Index>(),
        ) {
            let mut texts: Vec<String> = good.iter().map(ToString::to_string).collect();
            texts.insert(at_index.index(texts.len() + 1), bad.to_owned());
            let err = texts.join(",").parse::<IpRanges>().unwrap_err();
            prop_assert_eq!(err.grammar, "IP range");
            prop_assert_eq!(err.token, bad);
        }

        #[test]
        fn ip_garbage_never_panics(input in any::<String>()) {
            if let Err(err) = input.parse::<IpRanges>() {
                prop_assert!(input.contains(&err.token));
            }
        }

        #[test]
        fn ip_like_garbage_never_panics(input in "[0-9a-fA-F:./!, ]{0,40}") {
            if let Err(err) = input.parse::<IpRanges>() {
                prop_assert!(input.contains(&err.token));
            }
        }
    }
}
