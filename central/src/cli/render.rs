//! Human-readable tables for the admin CLI.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use jiff::Timestamp;
use sitecast_common::info::ActionDoc;
use sitecast_common::wire::{
    Assigned, Computer, ComputerDetail, Package, Relay, RelayCreated, RelayProblems, Site, Stats,
    Validated,
};

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

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes in binary units, e.g. `4.0 MiB`.
pub fn bytes(n: u64) -> String {
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

pub fn sites(sites: &[Site]) -> String {
    let mut t = table(&["SITE", "SUBNETS", "CREATED"]);
    for s in sites {
        t.add_row(vec![
            s.name.to_string(),
            join(&s.subnets),
            when(Some(s.created_at)),
        ]);
    }
    t.to_string()
}

pub fn relay_created(r: &RelayCreated) -> String {
    format!(
        "relay added\nid:    {}\ntoken: {}\n(give both to the site admin: sitecast-relay enroll --id {} --token {})",
        r.id, r.token, r.id, r.token
    )
}

/// A relay's problems in a table cell: the count per kind, then the last one.
fn problems(p: &RelayProblems) -> String {
    let Some(last) = &p.last else {
        return "-".into();
    };
    let counts = p
        .counts
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let detail: String = last.detail.chars().take(60).collect();
    format!(
        "{} ({counts})\nlast: {} {} from {}\n{detail}",
        p.count,
        last.kind,
        when(Some(last.at)),
        last.computer_id
    )
}

pub fn relays(relays: &[Relay]) -> String {
    let mut t = table(&[
        "RELAY",
        "SITE",
        "SUBNETS",
        "URL",
        "LAST SEEN",
        "REPLICATION",
        "HOLDINGS",
        "PROBLEMS",
    ]);
    for r in relays {
        let holdings = r
            .holdings
            .iter()
            .map(|h| {
                let state = if h.complete {
                    "complete".to_owned()
                } else {
                    h.eta_s
                        .map_or_else(|| "waiting".to_owned(), |s| format!("eta {}", duration(s)))
                };
                format!("{} {}/{} {state}", h.package_id, h.held, h.total)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let replication = format!(
            "window {}\ncap {}\nrate {}",
            if r.replication.window_open {
                "open"
            } else {
                "closed"
            },
            r.replication
                .max_rate
                .map_or_else(|| "none".to_owned(), rate),
            rate(r.replication.rate),
        );
        t.add_row(vec![
            r.id.to_string(),
            r.site.to_string(),
            join(&r.subnets),
            r.url.clone(),
            when(r.last_seen),
            replication,
            holdings,
            problems(&r.problems),
        ]);
    }
    t.to_string()
}

fn action(a: &ActionDoc) -> String {
    match a {
        ActionDoc::Launch { command } => format!("launch: {command}"),
        ActionDoc::Execute { command } => format!("execute: {command}"),
        ActionDoc::Store { path } => format!("store: {path}"),
    }
}

fn activation(p: &Package) -> String {
    if p.activation.all_sites {
        "all sites".into()
    } else if p.activation.sites.is_empty() {
        "-".into()
    } else {
        join(&p.activation.sites)
    }
}

pub fn packages(packages: &[Package]) -> String {
    let mut t = table(&[
        "PACKAGE",
        "NAME",
        "VERSION",
        "PRIO",
        "ACTION",
        "SIZE",
        "FRAGS",
        "ACTIVATED",
    ]);
    for p in packages {
        t.add_row(vec![
            p.id.to_string(),
            p.name.clone(),
            p.version.clone(),
            p.priority.to_string(),
            action(&p.action),
            bytes(p.size),
            p.fragments.to_string(),
            activation(p),
        ]);
    }
    t.to_string()
}

pub fn package(p: &Package) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    let rows: Vec<(&str, String)> = vec![
        ("id", p.id.to_string()),
        ("name", p.name.clone()),
        ("version", p.version.clone()),
        ("os", p.os.clone()),
        ("priority", p.priority.to_string()),
        ("action", action(&p.action)),
        ("archive", p.archive.clone()),
        ("size", format!("{} ({} bytes)", bytes(p.size), p.size)),
        ("sha256", p.sha256.clone()),
        (
            "fragments",
            format!("{} of {}", p.fragments, bytes(p.fragment_size)),
        ),
        ("success codes", join(&p.success_exit_codes)),
        ("info sha256", p.info_sha256.clone()),
        ("created", when(Some(p.created_at))),
        ("activated", activation(p)),
        (
            "central fallback",
            p.activation.central_fallback.to_string(),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    t.to_string()
}

pub fn assigned(a: &Assigned) -> String {
    let mut text = format!(
        "package {} assigned to {} computer(s)",
        a.package_id,
        a.assigned.len()
    );
    if !a.unchanged.is_empty() {
        text.push_str(&format!(
            "; {} already had a deployment under way: {}",
            a.unchanged.len(),
            join(&a.unchanged)
        ));
    }
    text
}

pub fn validated(v: &Validated) -> String {
    let removed = if v.removed.is_empty() {
        "nothing".to_owned()
    } else {
        v.removed
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "validated package {}: removed {removed}; {} remaining",
        v.package_id, v.remaining
    )
}

pub fn stats(s: &Stats) -> String {
    let mut counts = table(&["STATUS", "COMPUTERS"]);
    for (code, n) in &s.counts {
        counts.add_row(vec![code.to_string(), n.to_string()]);
    }
    let mut t = table(&[
        "COMPUTER", "HOSTNAME", "STATUS", "EXIT", "UPDATED", "OUTPUT",
    ]);
    for c in &s.computers {
        let output = c
            .output
            .as_deref()
            .map(|o| o.lines().last().unwrap_or("").chars().take(60).collect())
            .unwrap_or_default();
        t.add_row(vec![
            c.computer_id.to_string(),
            c.hostname.clone(),
            c.status.to_string(),
            c.exit_code.map(|e| e.to_string()).unwrap_or_default(),
            when(Some(c.updated_at)),
            output,
        ]);
    }
    let mut text = format!("package {}\n{counts}\n{t}", s.package_id);
    if !s.sites.is_empty() {
        text.push('\n');
        text.push_str(&sites_table(s));
    }
    text
}

/// Where each site's bytes came from (`-`: computers no relay serves).
fn sites_table(s: &Stats) -> String {
    let mut t = table(&["SITE", "COMPUTERS", "FROM RELAYS", "FROM CENTRAL"]);
    for site in &s.sites {
        t.add_row(vec![
            site.site
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            site.computers.to_string(),
            bytes(site.bytes_from_relays),
            bytes(site.bytes_from_central),
        ]);
    }
    t.to_string()
}

pub fn computers(list: &[Computer]) -> String {
    let mut t = table(&["COMPUTER", "HOSTNAME", "OS", "ADDRESSES", "LAST SEEN"]);
    for c in list {
        t.add_row(vec![
            c.id.to_string(),
            c.hostname.clone(),
            c.os.clone(),
            join(&c.addresses),
            when(c.last_seen),
        ]);
    }
    t.to_string()
}

/// A computer as a key-value table, then the packages assigned to it.
pub fn computer(d: &ComputerDetail) -> String {
    let c = &d.computer;
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    let rows: Vec<(&str, String)> = vec![
        ("id", c.id.to_string()),
        ("hostname", c.hostname.clone()),
        ("os", c.os.clone()),
        ("addresses", join(&c.addresses)),
        ("enrolled", when(Some(c.enrolled_at))),
        ("last seen", when(c.last_seen)),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    let mut p = table(&[
        "PACKAGE",
        "NAME",
        "VERSION",
        "STATUS",
        "INSTALLED",
        "UPDATED",
    ]);
    for a in &d.packages {
        p.add_row(vec![
            a.package_id.to_string(),
            a.name.clone(),
            a.version.clone(),
            a.status.to_string(),
            if a.installed { "yes" } else { "no" }.to_owned(),
            when(Some(a.updated_at)),
        ]);
    }
    format!("{t}\n{p}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sitecast_common::wire::{ProblemKind, RelayProblem};

    #[test]
    fn relay_problems_show_counts_and_the_last_one() {
        let mut p = RelayProblems::default();
        assert_eq!(problems(&p), "-");
        for kind in [ProblemKind::Refused, ProblemKind::Stalled] {
            p.record(RelayProblem {
                kind,
                detail: "no byte for 15s".into(),
                computer_id: "pc-1".parse().unwrap(),
                package_id: None,
                at: "2025-03-01T09:00:00Z".parse().unwrap(),
            });
        }
        let cell = problems(&p);
        assert!(cell.starts_with("2 (refused 1, stalled 1)"), "{cell}");
        assert!(
            cell.contains("last: stalled 2025-03-01 09:00:00 from pc-1"),
            "{cell}"
        );
        assert!(cell.contains("no byte for 15s"), "{cell}");
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(super::rate(20_000_000), "20.0 MB/s");
        assert_eq!(super::rate(512), "512 B/s");
        assert_eq!(super::duration(3725), "1h02m");
        assert_eq!(super::duration(185), "3m05s");
        assert_eq!(super::duration(7), "7s");
    }

    #[test]
    fn stats_end_with_where_each_sites_bytes_came_from() {
        let s: Stats = serde_json::from_value(serde_json::json!({
            "package_id": "app-1",
            "counts": {"SUCCESS": 3},
            "computers": [],
            "sites": [
                {"site": "paris", "computers": 2, "bytes_from_relays": 8388608,
                 "bytes_from_central": 0, "relays": {"relay-paris-1": 2}},
                {"site": null, "computers": 1, "bytes_from_relays": 0,
                 "bytes_from_central": 4194304, "relays": {}},
            ],
        }))
        .unwrap();
        let text = stats(&s);
        for header in ["SITE", "FROM RELAYS", "FROM CENTRAL"] {
            assert!(text.contains(header), "{text}");
        }
        let paris = text.lines().find(|l| l.contains("paris")).unwrap();
        assert!(
            paris.contains("8.0 MiB") && paris.contains("0 B"),
            "{paris}"
        );
        let none = text.lines().find(|l| l.contains("4.0 MiB")).unwrap();
        assert!(none.contains(" - "), "{none}");
        // Older centrals send no sites: no empty table.
        let old: Stats = serde_json::from_value(serde_json::json!({
            "package_id": "app-1", "counts": {}, "computers": [],
        }))
        .unwrap();
        assert!(!stats(&old).contains("FROM RELAYS"));
    }

    #[test]
    fn human_bytes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(4 << 20), "4.0 MiB");
    }
}
