//! `sitecast coverage`: unserved computers, sites, stale relays and overlaps.

use jiff::Timestamp;
use sitecast_common::wire::{Coverage, StaleReason};

use super::{duration, join, table, when};

fn stale_reason(r: &StaleReason) -> String {
    let short = |digest: &str| digest.chars().take(12).collect::<String>();
    let since = |at: &Option<Timestamp>| {
        at.map_or_else(String::new, |t| format!(" (activated {})", when(Some(t))))
    };
    match r {
        StaleReason::NeverSeen => "never connected".to_owned(),
        StaleReason::OutOfTouch { silent_s } => {
            format!("out of touch for {}", duration(*silent_s))
        }
        // Only a package without fragments can be incomplete with all of them: its info is missing.
        StaleReason::Incomplete {
            package_id,
            held,
            total,
            activated_at,
        } if held == total => format!("{package_id}: signed info not held{}", since(activated_at)),
        StaleReason::Incomplete {
            package_id,
            held,
            total,
            activated_at,
        } => format!(
            "{package_id}: {held}/{total} fragments{}",
            since(activated_at)
        ),
        StaleReason::OldInfo {
            package_id,
            held,
            total,
            held_info_sha256,
            info_sha256,
            activated_at,
        } => format!(
            "{package_id}: old info {} ({held}/{total}), current {}{}",
            short(held_info_sha256),
            short(info_sha256),
            since(activated_at)
        ),
    }
}

/// The coverage report: unserved computers, sites, stale relays, overlaps.
pub fn coverage(c: &Coverage) -> String {
    let mut text = format!(
        "{} computer(s), {} served by no relay; relays stale after {}, computers recent within {} (at {})\n",
        c.computers,
        c.unserved.len(),
        c.relay_stale_after,
        c.computer_recent_within,
        when(Some(c.generated_at))
    );
    if c.unserved.is_empty() {
        text.push_str("every computer is served by a relay of its subnet\n");
    } else {
        let mut t = table(&[
            "UNSERVED COMPUTER",
            "HOSTNAME",
            "ADDRESSES",
            "SITE",
            "LAST SEEN",
        ]);
        for u in &c.unserved {
            let addresses = if u.addresses.is_empty() {
                "(none known)".to_owned()
            } else {
                join(&u.addresses)
            };
            t.add_row(vec![
                u.id.to_string(),
                u.hostname.clone(),
                addresses,
                u.site
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                when(u.last_seen),
            ]);
        }
        // Only these lack a relay: a computer whose relay is stale is served
        // (badly), and the stale list below is where that shows.
        text.push_str(&format!(
            "{t}\n(no relay's subnet contains their addresses, so they download from central;\n \
             SITE is the site whose declared subnets contain them, - if none does;\n \
             computers whose relay is stale are not listed here: see the stale relays)\n"
        ));
    }
    let mut t = table(&[
        "SITE",
        "SUBNETS",
        "RELAY SUBNETS",
        "RELAYS UP",
        "SERVED (RECENT)",
        "UNSERVED (RECENT)",
    ]);
    for s in &c.sites {
        t.add_row(vec![
            s.site.to_string(),
            join(&s.subnets),
            join(&s.relay_subnets),
            format!("{}/{}", s.relays_up, s.relays),
            format!("{} ({})", s.computers, s.computers_recent),
            format!("{} ({})", s.unserved, s.unserved_recent),
        ]);
    }
    text.push_str(&format!("{t}\n"));
    if c.stale_relays.is_empty() {
        text.push_str("no relay is stale\n");
    } else {
        let mut t = table(&["STALE RELAY", "SITE", "LAST SEEN", "WHY"]);
        for r in &c.stale_relays {
            t.add_row(vec![
                r.id.to_string(),
                r.site.to_string(),
                when(r.last_seen),
                r.reasons
                    .iter()
                    .map(stale_reason)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ]);
        }
        text.push_str(&format!("{t}\n"));
    }
    for o in &c.overlaps {
        let mut sides = o
            .relays
            .iter()
            .map(|s| format!("{} ({} {})", s.site, s.relay_id, s.subnet))
            .collect::<Vec<_>>();
        let last = sides.pop().unwrap_or_default();
        let sides = if sides.is_empty() {
            last
        } else {
            format!("{} and {last}", sides.join(", "))
        };
        text.push_str(&format!(
            "warning: {} is served by {sides}; agents there try {} first\n",
            o.subnet, o.served_by
        ));
    }
    text.trim_end().to_owned()
}
