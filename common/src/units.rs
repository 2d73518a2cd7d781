//! Sizes (`64KiB`), rates (`512KiB/s`, `100Mbit`, `unlimited`) and durations (`15m`)
//! as admins write them in flags and config files (SPEC "Grammars").
//!
//! Every type parses with [`FromStr`], prints its canonical form with [`Display`] (the
//! largest unit that divides the value exactly, so printing then parsing gives the same
//! value back) and travels through serde as that same string. Values are whole numbers
//! of bytes or seconds; arithmetic is checked, so an absurd input is an error, never a
//! wrap-around or a panic.

use std::fmt::{self, Display};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::grammar::GrammarError;

const SIZE: &str = "size";
const RATE: &str = "rate";
const DURATION: &str = "duration";

const KB: u64 = 1_000;
const MB: u64 = 1_000_000;
const GB: u64 = 1_000_000_000;
const TB: u64 = 1_000_000_000_000;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Byte units, largest first so that [`Display`] can pick the first that divides.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("TiB", TIB),
    ("TB", TB),
    ("GiB", GIB),
    ("GB", GB),
    ("MiB", MIB),
    ("MB", MB),
    ("KiB", KIB),
    ("KB", KB),
    ("B", 1),
];

/// Bit units in bits; network people think of WAN links in these.
const BIT_UNITS: &[(&str, u64)] = &[
    ("Gbit", 1_000_000_000),
    ("Mbit", 1_000_000),
    ("Kbit", 1_000),
    ("bit", 1),
];

/// Every unit a rate may be printed in, in bytes per second, largest first. Bit units
/// are candidates too, so `100Mbit` prints back as `100Mbit` rather than `12500KB/s`.
const RATE_DISPLAY_UNITS: &[(&str, u64)] = &[
    ("TiB/s", TIB),
    ("TB/s", TB),
    ("GiB/s", GIB),
    ("GB/s", GB),
    ("Gbit", 125_000_000),
    ("MiB/s", MIB),
    ("MB/s", MB),
    ("Mbit", 125_000),
    ("KiB/s", KIB),
    ("KB/s", KB),
    ("Kbit", 125),
    ("B/s", 1),
];

/// Duration units in seconds, largest first.
const DURATION_UNITS: &[(&str, u64)] = &[("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

fn lookup(units: &[(&str, u64)], unit: &str) -> Option<u64> {
    units
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, factor)| factor)
}

/// Formats `value` in the largest unit of `units` (ordered largest first) that divides it.
fn write_canonical(
    f: &mut fmt::Formatter<'_>,
    value: u64,
    units: &[(&str, u64)],
    zero: &str,
) -> fmt::Result {
    if value == 0 {
        return f.write_str(zero);
    }
    match units
        .iter()
        .find(|&&(_, factor)| value.is_multiple_of(factor))
    {
        Some((name, factor)) => write!(f, "{}{name}", value / factor),
        // The tables end with a unit of 1, so this is unreachable; print something
        // that still parses back rather than panic.
        None => write!(f, "{value}{zero}"),
    }
}

/// A whole number followed by an optional unit (blanks between them are tolerated).
struct Quantity<'a> {
    number: u64,
    unit: &'a str,
}

fn split_quantity<'a>(
    grammar: &'static str,
    token: &'a str,
    example: &str,
) -> Result<Quantity<'a>, GrammarError> {
    let digits_end = token
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(token.len());
    let (digits, rest) = token.split_at(digits_end);
    if digits.is_empty() {
        let reason = if token.is_empty() {
            format!("empty; expected a number and a unit, e.g. {example}")
        } else {
            format!("expected a whole number and a unit, e.g. {example}")
        };
        return Err(GrammarError::new(grammar, token, reason));
    }
    if rest.starts_with(['.', ',']) {
        return Err(GrammarError::new(
            grammar,
            token,
            "fractions are not supported; use a smaller unit",
        ));
    }
    let number = digits
        .parse::<u64>()
        .map_err(|_| too_large(grammar, token))?;
    Ok(Quantity {
        number,
        unit: rest.trim_start(),
    })
}

fn too_large(grammar: &'static str, token: &str) -> GrammarError {
    GrammarError::new(grammar, token, "too large: does not fit in 64 bits")
}

fn unit_list(units: &[(&str, u64)]) -> String {
    let mut names: Vec<&str> = units.iter().map(|(name, _)| *name).collect();
    names.reverse();
    names.join(", ")
}

/// A number of bytes: `64KiB`, `4MiB`, `1GiB`, `1024`, `512B`, `20MB` (1000-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size(u64);

impl Size {
    pub const fn from_bytes(bytes: u64) -> Self {
        Size(bytes)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let token = input.trim();
        let Quantity { number, unit } = split_quantity(SIZE, token, "64KiB")?;
        let factor = if unit.is_empty() {
            1
        } else {
            lookup(BYTE_UNITS, unit).ok_or_else(|| {
                GrammarError::new(
                    SIZE,
                    token,
                    format!("unknown unit '{unit}' (expected {})", unit_list(BYTE_UNITS)),
                )
            })?
        };
        number
            .checked_mul(factor)
            .map(Size)
            .ok_or_else(|| too_large(SIZE, token))
    }
}

impl Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_canonical(f, self.0, BYTE_UNITS, "0B")
    }
}

/// Bytes in binary units for people to read, e.g. `4.0 MiB` (rounded: [`Size`]'s own
/// form is exact, this one is for messages and tables).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl TryFrom<String> for Size {
    type Error = GrammarError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Size> for String {
    fn from(value: Size) -> Self {
        value.to_string()
    }
}

/// A bandwidth cap: `512KiB/s`, `20MB/s`, `100Mbit` (bits are 1000-based, `/s` optional),
/// or no cap at all (`0` or `unlimited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Rate {
    Unlimited,
    /// Never zero when parsed: `0` means [`Rate::Unlimited`]. A zero built by hand is
    /// treated as unlimited too (see [`Rate::bytes_per_sec`]).
    BytesPerSec(u64),
}

impl Rate {
    /// A cap of `bytes` per second, where 0 means no cap (as in the grammar).
    pub const fn from_bytes_per_sec(bytes: u64) -> Self {
        if bytes == 0 {
            Rate::Unlimited
        } else {
            Rate::BytesPerSec(bytes)
        }
    }

    /// The cap in bytes per second, or `None` when there is none.
    pub const fn bytes_per_sec(self) -> Option<u64> {
        match self {
            Rate::BytesPerSec(bytes) if bytes > 0 => Some(bytes),
            _ => None,
        }
    }

    pub const fn is_unlimited(self) -> bool {
        self.bytes_per_sec().is_none()
    }
}

impl FromStr for Rate {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let token = input.trim();
        if token == "0" || token.eq_ignore_ascii_case("unlimited") {
            return Ok(Rate::Unlimited);
        }
        let Quantity { number, unit } = split_quantity(RATE, token, "512KiB/s")?;
        let bytes =
            if let Some(factor) = unit.strip_suffix("/s").and_then(|u| lookup(BYTE_UNITS, u)) {
                number.checked_mul(factor)
            } else if let Some(bits) = lookup(BIT_UNITS, unit.strip_suffix("/s").unwrap_or(unit)) {
                // In u128 because a rate in bits may be eight times u64::MAX and still fit
                // in bytes; cannot overflow: both factors are below 2^64.
                let bits = u128::from(number) * u128::from(bits);
                if bits % 8 != 0 {
                    return Err(GrammarError::new(
                        RATE,
                        token,
                        "not a whole number of bytes per second",
                    ));
                }
                u64::try_from(bits / 8).ok()
            } else {
                return Err(GrammarError::new(RATE, token, rate_unit_reason(unit)));
            };
        match bytes {
            None => Err(too_large(RATE, token)),
            // "0MB/s" could mean "stop" as well as "no cap"; refusing it is safer than
            // letting a site admin unleash the WAN link by accident.
            Some(0) => Err(GrammarError::new(
                RATE,
                token,
                "a zero rate with a unit is ambiguous; write '0' or 'unlimited' for no cap",
            )),
            Some(bytes) => Ok(Rate::BytesPerSec(bytes)),
        }
    }
}

fn rate_unit_reason(unit: &str) -> String {
    if unit.is_empty() {
        return "missing unit, e.g. 512KiB/s or 100Mbit ('0' alone means unlimited)".to_owned();
    }
    if lookup(BYTE_UNITS, unit).is_some() {
        return format!("a rate in bytes needs '/s': '{unit}/s'");
    }
    let byte_units: Vec<&str> = BYTE_UNITS.iter().rev().map(|(name, _)| *name).collect();
    format!(
        "unknown unit '{unit}' (expected {}/s, or {} with an optional /s)",
        byte_units.join("/s, "),
        unit_list(BIT_UNITS)
    )
}

impl Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bytes_per_sec() {
            None => f.write_str("unlimited"),
            Some(bytes) => write_canonical(f, bytes, RATE_DISPLAY_UNITS, "unlimited"),
        }
    }
}

impl TryFrom<String> for Rate {
    type Error = GrammarError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Rate> for String {
    fn from(value: Rate) -> Self {
        value.to_string()
    }
}

/// A whole number of seconds: `90s`, `15m`, `2h`, `3d`, `0s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Duration(u64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_secs(secs: u64) -> Self {
        Duration(secs)
    }

    pub const fn as_secs(self) -> u64 {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(value: Duration) -> Self {
        std::time::Duration::from_secs(value.0)
    }
}

impl FromStr for Duration {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let token = input.trim();
        let Quantity { number, unit } = split_quantity(DURATION, token, "15m")?;
        // A bare number is refused: seconds or minutes is a guess nobody should make.
        let factor = lookup(DURATION_UNITS, unit).ok_or_else(|| {
            let reason = if unit.is_empty() {
                format!("missing unit ({})", unit_list(DURATION_UNITS))
            } else {
                format!(
                    "unknown unit '{unit}' (expected {})",
                    unit_list(DURATION_UNITS)
                )
            };
            GrammarError::new(DURATION, token, reason)
        })?;
        number
            .checked_mul(factor)
            .map(Duration)
            .ok_or_else(|| too_large(DURATION, token))
    }
}

impl Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_canonical(f, self.0, DURATION_UNITS, "0s")
    }
}

impl TryFrom<String> for Duration {
    type Error = GrammarError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Duration> for String {
    fn from(value: Duration) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn human_bytes_rounds_to_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(4 << 20), "4.0 MiB");
        assert_eq!(human_bytes((3 << 30) + (1 << 29)), "3.5 GiB");
    }

    fn size(s: &str) -> u64 {
        s.parse::<Size>().unwrap().bytes()
    }

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    fn secs(s: &str) -> u64 {
        s.parse::<Duration>().unwrap().as_secs()
    }

    #[test]
    fn unit_tables_are_largest_first() {
        for table in [BYTE_UNITS, BIT_UNITS, RATE_DISPLAY_UNITS, DURATION_UNITS] {
            assert!(table.windows(2).all(|w| w[0].1 > w[1].1), "{table:?}");
            assert_eq!(table.last().unwrap().1, 1);
        }
    }

    #[test]
    fn sizes_from_the_spec() {
        assert_eq!(size("64KiB"), 64 * 1024);
        assert_eq!(size("4MiB"), 4 * 1024 * 1024);
        assert_eq!(size("1GiB"), 1 << 30);
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(size("1024"), 1024);
        assert_eq!(size("0"), 0);
        assert_eq!(size("7B"), 7);
        assert_eq!(size("3KB"), 3_000);
        assert_eq!(size("3MB"), 3_000_000);
        assert_eq!(size("3GB"), 3_000_000_000);
        assert_eq!(size("3TB"), 3_000_000_000_000);
        assert_eq!(size("2TiB"), 2 << 40);
        assert_eq!(size(" 64 KiB "), 64 * 1024);
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit() {
        let shown = |bytes| Size::from_bytes(bytes).to_string();
        assert_eq!(shown(0), "0B");
        assert_eq!(shown(1023), "1023B");
        assert_eq!(shown(1024), "1KiB");
        assert_eq!(shown(1000), "1KB");
        assert_eq!(shown(64 * 1024), "64KiB");
        assert_eq!(shown(4 << 20), "4MiB");
        assert_eq!(shown(1 << 30), "1GiB");
        assert_eq!(shown(2_048_000), "2000KiB");
        assert_eq!(shown(u64::MAX), "18446744073709551615B");
    }

    #[test]
    fn size_errors() {
        let err = "20XB".parse::<Size>().unwrap_err();
        assert_eq!(err.grammar, "size");
        assert_eq!(err.token, "20XB");
        assert_eq!(
            err.reason,
            "unknown unit 'XB' (expected B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)"
        );
        let err = "1.5GiB".parse::<Size>().unwrap_err();
        assert_eq!(
            err.reason,
            "fractions are not supported; use a smaller unit"
        );
        assert_eq!("-1".parse::<Size>().unwrap_err().token, "-1");
        assert_eq!("kib".parse::<Size>().unwrap_err().token, "kib");
        assert_eq!("64kib".parse::<Size>().unwrap_err().token, "64kib");
        assert!("".parse::<Size>().unwrap_err().reason.starts_with("empty"));
        let err = "16777216TiB".parse::<Size>().unwrap_err();
        assert_eq!(
            err,
            GrammarError::new("size", "16777216TiB", "too large: does not fit in 64 bits")
        );
        assert_eq!(
            "18446744073709551616".parse::<Size>().unwrap_err().reason,
            "too large: does not fit in 64 bits"
        );
        assert_eq!(size("16777215TiB"), 16_777_215 << 40);
    }

    #[test]
    fn rates_from_the_spec() {
        assert_eq!(rate("512KiB/s"), Rate::BytesPerSec(512 * 1024));
        assert_eq!(rate("20MB/s"), Rate::BytesPerSec(20_000_000));
        assert_eq!(rate("100Mbit"), Rate::BytesPerSec(12_500_000));
        assert_eq!(rate("0"), Rate::Unlimited);
        assert_eq!(rate("unlimited"), Rate::Unlimited);
    }

    #[test]
    fn rates_in_every_unit() {
        assert_eq!(rate("100Mbit/s"), Rate::BytesPerSec(12_500_000));
        assert_eq!(rate("8bit"), Rate::BytesPerSec(1));
        assert_eq!(rate("8bit/s"), Rate::BytesPerSec(1));
        assert_eq!(rate("1Kbit"), Rate::BytesPerSec(125));
        assert_eq!(rate("1Gbit"), Rate::BytesPerSec(125_000_000));
        // Fits in bytes even though the number of bits does not fit in 64 bits.
        assert_eq!(
            rate("94778100196253823Kbit"),
            Rate::BytesPerSec(11_847_262_524_531_727_875)
        );
        assert_eq!(rate("1B/s"), Rate::BytesPerSec(1));
        assert_eq!(rate("1KB/s"), Rate::BytesPerSec(1_000));
        assert_eq!(rate("1TB/s"), Rate::BytesPerSec(TB));
        assert_eq!(rate("1GiB/s"), Rate::BytesPerSec(GIB));
        assert_eq!(rate("UNLIMITED"), Rate::Unlimited);
        assert_eq!(rate(" Unlimited "), Rate::Unlimited);
        assert_eq!(rate("512 KiB/s"), Rate::BytesPerSec(512 * 1024));
    }

    #[test]
    fn rate_accessors() {
        assert_eq!(rate("1KB/s").bytes_per_sec(), Some(1_000));
        assert_eq!(Rate::Unlimited.bytes_per_sec(), None);
        assert_eq!(Rate::BytesPerSec(0).bytes_per_sec(), None);
        assert!(Rate::BytesPerSec(0).is_unlimited());
        assert_eq!(Rate::from_bytes_per_sec(0), Rate::Unlimited);
        assert_eq!(Rate::from_bytes_per_sec(5), Rate::BytesPerSec(5));
    }

    #[test]
    fn rates_print_in_the_largest_exact_unit() {
        let shown = |s: &str| rate(s).to_string();
        assert_eq!(shown("512KiB/s"), "512KiB/s");
        assert_eq!(shown("20MB/s"), "20MB/s");
        assert_eq!(shown("100Mbit"), "100Mbit");
        assert_eq!(shown("1000Mbit"), "1Gbit");
        assert_eq!(shown("8000Mbit"), "1GB/s");
        assert_eq!(shown("8bit"), "1B/s");
        assert_eq!(shown("0"), "unlimited");
        assert_eq!(Rate::BytesPerSec(0).to_string(), "unlimited");
    }

    #[test]
    fn rate_errors() {
        let err = "20XB/s".parse::<Rate>().unwrap_err();
        assert_eq!(err.grammar, "rate");
        assert_eq!(err.token, "20XB/s");
        assert_eq!(
            err.reason,
            "unknown unit 'XB/s' (expected B/s, KB/s, KiB/s, MB/s, MiB/s, GB/s, GiB/s, \
             TB/s, TiB/s, or bit, Kbit, Mbit, Gbit with an optional /s)"
        );
        assert_eq!(
            err.to_string(),
            format!("bad rate '20XB/s': {}", err.reason)
        );
        let reason = |s: &str| s.parse::<Rate>().unwrap_err().reason;
        assert_eq!(reason("20MB"), "a rate in bytes needs '/s': 'MB/s'");
        assert!(reason("1024").starts_with("missing unit"));
        assert_eq!(reason("12bit"), "not a whole number of bytes per second");
        assert!(reason("0KiB/s").starts_with("a zero rate with a unit is ambiguous"));
        assert!(reason("0Mbit").starts_with("a zero rate with a unit is ambiguous"));
        assert_eq!(
            reason("20000000TiB/s"),
            "too large: does not fit in 64 bits"
        );
        assert_eq!(
            reason("18446744073709551615Gbit"),
            "too large: does not fit in 64 bits"
        );
        assert_eq!(
            reason("unlimitedd"),
            "expected a whole number and a unit, e.g. 512KiB/s"
        );
        assert_eq!(
            reason("20mb/s"),
            "20mb/s".parse::<Rate>().unwrap_err().reason
        );
        assert_eq!("20mb/s".parse::<Rate>().unwrap_err().token, "20mb/s");
    }

    #[test]
    fn durations_from_the_spec() {
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("2h"), 7_200);
        assert_eq!(secs("3d"), 259_200);
        assert_eq!(secs("0s"), 0);
    }

    #[test]
    fn durations_print_in_the_largest_exact_unit() {
        let shown = |s: &str| s.parse::<Duration>().unwrap().to_string();
        assert_eq!(shown("90s"), "90s");
        assert_eq!(shown("120s"), "2m");
        assert_eq!(shown("15m"), "15m");
        assert_eq!(shown("60m"), "1h");
        assert_eq!(shown("48h"), "2d");
        assert_eq!(shown("0d"), "0s");
    }

    #[test]
    fn durations_convert_to_std() {
        let d: std::time::Duration = "2h".parse::<Duration>().unwrap().into();
        assert_eq!(d, std::time::Duration::from_secs(7_200));
        assert_eq!(Duration::ZERO.as_secs(), 0);
    }

    #[test]
    fn duration_errors() {
        let reason = |s: &str| s.parse::<Duration>().unwrap_err().reason;
        assert_eq!(reason("90"), "missing unit (s, m, h, d)");
        assert_eq!(reason("2w"), "unknown unit 'w' (expected s, m, h, d)");
        assert_eq!(reason("2H"), "unknown unit 'H' (expected s, m, h, d)");
        assert_eq!(
            reason("1.5h"),
            "fractions are not supported; use a smaller unit"
        );
        assert_eq!(
            reason("213503982334602d"),
            "too large: does not fit in 64 bits"
        );
        assert_eq!("1h30m".parse::<Duration>().unwrap_err().token, "1h30m");
    }

    #[test]
    fn serde_uses_the_canonical_strings() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Config {
            size: Size,
            rate: Rate,
            timeout: Duration,
        }
        let config: Config =
            serde_json::from_str(r#"{"size":"4096KiB","rate":"100Mbit","timeout":"168h"}"#)
                .unwrap();
        assert_eq!(config.size, Size::from_bytes(4 << 20));
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"size":"4MiB","rate":"100Mbit","timeout":"7d"}"#
        );
        let err = serde_json::from_str::<Config>(r#"{"size":"1","rate":"20XB/s","timeout":"1s"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("bad rate '20XB/s'"), "{err}");
    }

    fn any_rate() -> impl Strategy<Value = Rate> {
        prop_oneof![
            Just(Rate::Unlimited),
            (1..=u64::MAX).prop_map(Rate::BytesPerSec),
            // Values that print in bit units.
            (1..=1_000_000u64).prop_map(|n| Rate::BytesPerSec(n * 125)),
        ]
    }

    /// Numbers followed by letters that are not a unit of the grammar at hand.
    fn bad_unit(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
        ("[0-9]{1,6}", "[A-Za-z/]{1,5}")
            .prop_filter("valid unit", move |(_, unit)| {
                !valid.contains(&unit.as_str())
            })
            .prop_map(|(number, unit)| format!("{number}{unit}"))
    }

    const SIZE_UNIT_NAMES: &[&str] = &["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"];
    const RATE_UNIT_NAMES: &[&str] = &[
        "B/s", "KB/s", "MB/s", "GB/s", "TB/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s", "bit", "Kbit",
        "Mbit", "Gbit", "bit/s", "Kbit/s", "Mbit/s", "Gbit/s",
    ];
    const DURATION_UNIT_NAMES: &[&str] = &["s", "m", "h", "d"];

    proptest! {
        #[test]
        fn size_round_trips(bytes in any::<u64>()) {
            let size = Size::from_bytes(bytes);
            prop_assert_eq!(size.to_string().parse::<Size>(), Ok(size));
        }

        #[test]
        fn size_round_trips_in_units(n in 0..=1_000_000u64, unit in proptest::sample::select(SIZE_UNIT_NAMES)) {
            let parsed: Size = format!("{n}{unit}").parse().unwrap();
            prop_assert_eq!(parsed.bytes(), n * lookup(BYTE_UNITS, unit).unwrap());
            prop_assert_eq!(parsed.to_string().parse::<Size>(), Ok(parsed));
        }

        #[test]
        fn rate_round_trips(rate in any_rate()) {
            prop_assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
        }

        #[test]
        fn duration_round_trips(secs in any::<u64>()) {
            let duration = Duration::from_secs(secs);
            prop_assert_eq!(duration.to_string().parse::<Duration>(), Ok(duration));
        }

        #[test]
        fn garbage_never_panics_and_names_itself(input in any::<String>()) {
            if let Err(err) = input.parse::<Size>() {
                prop_assert_eq!(err.token, input.trim());
            }
            if let Err(err) = input.parse::<Rate>() {
                prop_assert_eq!(err.token, input.trim());
            }
            if let Err(err) = input.parse::<Duration>() {
                prop_assert_eq!(err.token, input.trim());
            }
        }

        #[test]
        fn bad_size_units_are_named(input in bad_unit(SIZE_UNIT_NAMES)) {
            let err = input.parse::<Size>().unwrap_err();
            prop_assert_eq!(err.grammar, "size");
            prop_assert_eq!(err.token, input);
        }

        #[test]
        fn bad_rate_units_are_named(input in bad_unit(RATE_UNIT_NAMES)) {
            let err = input.parse::<Rate>().unwrap_err();
            prop_assert_eq!(err.grammar, "rate");
            prop_assert_eq!(err.token, input);
        }

        #[test]
        fn bad_duration_units_are_named(input in bad_unit(DURATION_UNIT_NAMES)) {
            let err = input.parse::<Duration>().unwrap_err();
            prop_assert_eq!(err.grammar, "duration");
            prop_assert_eq!(err.token, input);
        }

        #[test]
        fn overflow_is_an_error(n in (u64::MAX / 1024 + 1)..=u64::MAX) {
            let input = format!("{n}KiB");
            let err = input.parse::<Size>().unwrap_err();
            prop_assert_eq!(err.token, input);
            let input = format!("{n}KiB/s");
            prop_assert!(input.parse::<Rate>().is_err());
            let input = format!("{n}d");
            prop_assert!(input.parse::<Duration>().is_err());
        }
    }
}
