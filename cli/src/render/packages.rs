//! Packages: `package list`, `show` (with what it supersedes), `assign`,
//! `deactivate`, `validate` and `stats`.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use sitecast_common::ids::PackageId;
use sitecast_common::info::ActionDoc;
use sitecast_common::wire::{Assigned, Deactivated, Package, Stats, Validated};

use super::{bytes, join, table, when, yes_no};

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

/// One step down a package's `supersedes` chain, as `package show` follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Superseded {
    /// A package central has.
    Package(PackageId),
    /// A package named by the one before it that central no longer has: the chain ends.
    Deleted(PackageId),
    /// A package already in the chain: it ends there.
    Loop(PackageId),
}

/// A package and the packages it supersedes, newest first: `app-3 → app-2 →
/// app-1`. Without a followed `chain`, only the one it names itself.
pub(super) fn supersedes(
    id: &PackageId,
    first: Option<&PackageId>,
    chain: &[Superseded],
) -> String {
    let Some(first) = first else {
        return "none".into();
    };
    let mut steps = vec![id.to_string()];
    if chain.is_empty() {
        steps.push(first.to_string());
    }
    for link in chain {
        steps.push(match link {
            Superseded::Package(id) => id.to_string(),
            Superseded::Deleted(id) => format!("{id} (deleted)"),
            Superseded::Loop(id) => format!("{id} (loop)"),
        });
    }
    steps.join(" → ")
}

pub fn package(p: &Package, chain: &[Superseded]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    let rows: Vec<(&str, String)> = vec![
        ("id", p.id.to_string()),
        ("name", p.name.clone()),
        ("version", p.version.clone()),
        (
            "supersedes",
            supersedes(&p.id, p.supersedes.as_ref(), chain),
        ),
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
        ("restart", yes_no(p.restart).to_owned()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    for (k, v) in user_texts(p) {
        t.add_row(vec![k.to_owned(), v]);
    }
    t.to_string()
}

/// The package's notify options and done text, as `package show` rows.
fn user_texts(p: &Package) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    match &p.notify {
        None => rows.push(("notify", "-".to_owned())),
        Some(n) => {
            rows.push(("notify", n.text.clone()));
            let countdown = if n.countdown_s == 0 {
                "none (waits for the user)".to_owned()
            } else {
                sitecast_common::units::Duration::from_secs(n.countdown_s).to_string()
            };
            rows.push(("notify countdown", countdown));
            let mut answers = vec!["continue"];
            if n.can_abort {
                answers.push("abort");
            }
            if n.can_delay {
                answers.push("delay");
            }
            rows.push(("user may", answers.join(", ")));
        }
    }
    rows.push((
        "done text",
        p.done_action_text.clone().unwrap_or_else(|| "-".to_owned()),
    ));
    rows
}

pub fn assigned(a: &Assigned) -> String {
    let Some(container) = &a.container_id else {
        return if a.unchanged.is_empty() {
            format!(
                "package {}: no computer matched, no job container created",
                a.package_id
            )
        } else {
            format!(
                "package {}: no job container created, every computer already had a deployment under way: {}",
                a.package_id,
                join(&a.unchanged)
            )
        };
    };
    let mut text = format!(
        "package {} assigned to {} computer(s) in job container {container}",
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

/// `package deactivate`: what is left of the activation, and what was cancelled.
pub fn deactivated(d: &Deactivated) -> String {
    let p = &d.package;
    let left = if p.activation.all_sites {
        "still activated for all sites".to_owned()
    } else if p.activation.sites.is_empty() {
        "activated for no site now".to_owned()
    } else {
        format!("still activated for {}", join(&p.activation.sites))
    };
    let cancelled = if d.cancelled == 0 {
        "no job waiting for notification to cancel".to_owned()
    } else {
        format!(
            "cancelled {} job(s) waiting for notification, on {}",
            d.cancelled,
            join(&d.computers)
        )
    };
    format!("deactivated package {}: {left}; {cancelled}", p.id)
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
