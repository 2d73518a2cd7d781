//! Human-readable tables for the admin CLI. Times are shown in UTC.
//!
//! One module per resource; the cell formats they share (times, sizes,
//! rates, lists) are here.

mod computers;
mod containers;
mod coverage;
mod groups;
mod packages;
mod relays;
#[cfg(test)]
mod tests;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use jiff::Timestamp;

pub use computers::{computer, computers, created_enroll_token, enroll_tokens};
pub use containers::{cancelled, container, containers, jobs, retried};
pub use coverage::coverage;
pub use groups::{
    group_detail, groups, package_group_detail, package_groups, rule_detail, rule_evaluated, rules,
};
pub use packages::{assigned, deactivated, package, packages, stats, validated, Superseded};
pub use relays::{relay_created, relays, sites};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

fn when(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

pub fn timestamp(t: Timestamp) -> String {
    when(Some(t))
}

/// A time that may not have come yet (a job not started): `-` when absent.
fn at(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| when(Some(t)))
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub use sitecast_common::units::human_bytes as bytes;

/// Bytes per second in decimal units, as caps are usually written (`20MB/s`).
pub fn rate(bytes_per_sec: u64) -> String {
    let b = bytes_per_sec as f64;
    if b >= 1e6 {
        format!("{:.1} MB/s", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB/s", b / 1e3)
    } else {
        format!("{bytes_per_sec} B/s")
    }
}

/// Seconds as `1h02m`, `3m05s` or `42s`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
