//! Sites and relays: `site list`, `relay add`, `relay list` (window, rate, problems, health).

use super::{bytes, duration, join, rate, table, when};
use sitecast_common::wire::{Relay, RelayCreated, RelayHealth, RelayProblems, Site};

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
pub(super) fn problems(p: &RelayProblems) -> String {
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

/// A relay's health in a table cell: version, disk, quota, scrub, kept bases.
pub(super) fn health(h: &RelayHealth) -> String {
    if h.version.is_empty() {
        return "-".into();
    }
    let mut lines = vec![
        h.version.clone(),
        format!(
            "disk {} used, {} free",
            bytes(h.disk_used),
            h.disk_free.map_or_else(|| "?".to_owned(), bytes)
        ),
    ];
    lines.push(match h.max_disk {
        None => "quota none".to_owned(),
        Some(q) if h.over_quota => format!("quota {} EXCEEDED by activated content", bytes(q)),
        Some(q) => format!("quota {}", bytes(q)),
    });
    lines.push(match (h.scrub_interval_s, h.last_scrub) {
        (None, None) => "scrub off".to_owned(),
        (_, None) => "scrub never yet".to_owned(),
        (_, Some(at)) => format!(
            "scrub {} ({} bad, {} in all)",
            when(Some(at)),
            h.scrub_bad,
            h.scrub_bad_total
        ),
    });
    if !h.kept.is_empty() {
        lines.push(format!("kept bases: {}", join(&h.kept)));
    }
    if h.evicted > 0 {
        lines.push(format!("evicted {}", h.evicted));
    }
    lines.join("\n")
}

pub fn relays(relays: &[Relay]) -> String {
    let mut t = table(&[
        "RELAY",
        "SITE",
        "SUBNETS",
        "URL",
        "LAST SEEN",
        "HEALTH",
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
            health(&r.health),
            replication,
            holdings,
            problems(&r.problems),
        ]);
    }
    t.to_string()
}
