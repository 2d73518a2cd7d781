//! Human-readable tables for the admin CLI. Times are shown in UTC.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use jiff::Timestamp;
use sitecast_common::ids::PackageId;
use sitecast_common::info::ActionDoc;
use sitecast_common::jobs::format_runtime;
use sitecast_common::status::StatusCode;
use sitecast_common::wire::{
    Assigned, Computer, ComputerDetail, Container, ContainerChanged, Deactivated, Job, Package,
    Relay, RelayCreated, RelayHealth, RelayProblems, Site, Stats, Validated,
};
use sitecast_common::wire::{Coverage, StaleReason};
use sitecast_common::wire::{NotAsked, Wake};

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

/// A relay's health in a table cell: version, disk, quota, scrub, kept bases.
fn health(h: &RelayHealth) -> String {
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
fn supersedes(id: &PackageId, first: Option<&PackageId>, chain: &[Superseded]) -> String {
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

pub fn computers(list: &[Computer]) -> String {
    let mut t = table(&[
        "COMPUTER",
        "HOSTNAME",
        "OS",
        "ADDRESSES",
        "TAGS",
        "LAST SEEN",
        "MACS",
    ]);
    for c in list {
        t.add_row(vec![
            c.id.to_string(),
            c.hostname.clone(),
            c.os.clone(),
            join(&c.addresses),
            join(&c.tags),
            when(c.last_seen),
            join(&c.macs),
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
        ("tags", join(&c.tags)),
        ("macs", join(&c.macs)),
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
        "INSTALLED AT",
        "UPDATED",
    ]);
    for a in &d.packages {
        p.add_row(vec![
            a.package_id.to_string(),
            a.name.clone(),
            a.version.clone(),
            a.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            if a.installed { "yes" } else { "no" }.to_owned(),
            at(a.installed_at),
            at(a.updated_at),
        ]);
    }
    let mut text = format!("{t}\n{p}");
    if !d.jobs.is_empty() {
        let mut j = table(&[
            "CONTAINER",
            "#",
            "PACKAGE",
            "KIND",
            "STATUS",
            "EXIT",
            "UPDATED",
        ]);
        for job in &d.jobs {
            j.add_row(vec![
                job.container_id.to_string(),
                job.order.to_string(),
                job_package(job),
                job.kind.to_string(),
                job.status.to_string(),
                exit(job.exit_code),
                when(Some(job.updated_at)),
            ]);
        }
        text.push('\n');
        text.push_str(&j.to_string());
    }
    text
}

fn exit(code: Option<i32>) -> String {
    code.map(|e| e.to_string()).unwrap_or_default()
}

/// A job's package as people know it: `firefox 128.0` (the id if central lost its name).
fn job_package(j: &Job) -> String {
    if j.package_name.is_empty() {
        j.package_id.to_string()
    } else {
        format!("{} {}", j.package_name, j.package_version)
    }
}

/// A container's jobs in one cell: `3/5 done`, then how many of those failed.
fn progress(c: &Container) -> String {
    let total: u64 = c.counts.values().sum();
    let done: u64 = c
        .counts
        .iter()
        .filter(|(s, _)| s.is_final())
        .map(|(_, n)| n)
        .sum();
    let failed: u64 = c
        .counts
        .iter()
        .filter(|(s, _)| s.is_final() && !s.is_success())
        .map(|(_, n)| n)
        .sum();
    let mut text = format!("{done}/{total} done");
    if failed > 0 {
        text.push_str(&format!(", {failed} failed"));
    }
    text
}

/// Jobs per status, in the contract's order: `SUCCESS 2, NOTIFIED 1`.
fn counts(c: &Container) -> String {
    let text = StatusCode::ALL
        .iter()
        .filter_map(|s| c.counts.get(s).map(|n| format!("{s} {n}")))
        .collect::<Vec<_>>()
        .join(", ");
    if text.is_empty() {
        "none".into()
    } else {
        text
    }
}

pub fn containers(list: &[Container]) -> String {
    let mut t = table(&[
        "CONTAINER",
        "NAME",
        "STATE",
        "PRIORITY",
        "START",
        "END",
        "JOBS",
        "TOTAL RUNTIME",
        "EFFECTIVE RUNTIME",
    ]);
    for c in list {
        t.add_row(vec![
            c.id.to_string(),
            c.name.clone(),
            c.state.to_string(),
            c.priority.to_string(),
            when(Some(c.start_at)),
            at(c.end_at),
            progress(c),
            format_runtime(c.runtimes.total_s, c.runtimes.finished),
            format_runtime(c.runtimes.effective_s, c.runtimes.finished),
        ]);
    }
    t.to_string()
}

/// A container as a key-value table, then its jobs.
pub fn container(c: &Container) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    let or_dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let rows: Vec<(&str, String)> = vec![
        ("id", c.id.to_string()),
        ("name", c.name.clone()),
        ("description", or_dash(c.description.clone())),
        ("state", c.state.to_string()),
        ("priority", c.priority.to_string()),
        ("created", when(Some(c.created_at))),
        ("start", when(Some(c.start_at))),
        ("end", at(c.end_at)),
        (
            "ip ranges",
            c.ip_ranges
                .as_ref()
                .map_or_else(|| "any".to_owned(), ToString::to_string),
        ),
        (
            "time frames",
            c.time_frames
                .as_ref()
                .map_or_else(|| "always".to_owned(), ToString::to_string),
        ),
        ("sequence", c.sequence.to_string()),
        (
            "retries",
            format!("{}, backoff {} (doubling)", c.retries, c.retry_backoff),
        ),
        (
            "auto uninstall",
            if c.auto_uninstall { "yes" } else { "no" }.to_owned(),
        ),
        ("wake-on-lan", wol(c)),
        ("shutdown after", yes_no(c.shutdown_after).to_owned()),
        ("restart timeout", c.restart_timeout.to_string()),
        (
            "cancelled",
            c.cancelled_at
                .map_or_else(|| "no".to_owned(), |t| when(Some(t))),
        ),
        (
            "total runtime",
            format_runtime(c.runtimes.total_s, c.runtimes.finished),
        ),
        (
            "effective runtime",
            format_runtime(c.runtimes.effective_s, c.runtimes.finished),
        ),
        ("jobs", format!("{} ({})", progress(c), counts(c))),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    if c.jobs.is_empty() {
        return t.to_string();
    }
    let jobs_table = jobs(&c.jobs);
    match c.wake.as_ref().map(wake_table) {
        Some(w) => format!("{t}\n{jobs_table}\n{w}"),
        None => format!("{t}\n{jobs_table}"),
    }
}

/// Jobs as a table, by computer then order.
pub fn jobs(list: &[Job]) -> String {
    let mut j = table(&[
        "COMPUTER", "HOSTNAME", "#", "PACKAGE", "KIND", "STATUS", "EXIT", "TRIES", "RETRY AT",
        "STARTED", "FINISHED",
    ]);
    for job in list {
        j.add_row(vec![
            job.computer_id.to_string(),
            job.hostname.clone(),
            job.order.to_string(),
            job_package(job),
            job.kind.to_string(),
            job.status.to_string(),
            exit(job.exit_code),
            job.attempts.to_string(),
            at(job.retry_at),
            at(job.started_at),
            at(job.finished_at),
        ]);
    }
    j.to_string()
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `no`, `yes (not yet woken)`, or when and how many computers were asked.
fn wol(c: &Container) -> String {
    if !c.wol {
        return "no".into();
    }
    match &c.wake {
        None => "yes (not yet woken)".into(),
        Some(w) => {
            let asked = w.computers.iter().filter(|l| l.relay.is_some()).count();
            let off = w.computers.iter().filter(|l| l.was_off).count();
            let retried = w
                .computers
                .iter()
                .filter(|l| l.not_asked.is_some_and(NotAsked::retried))
                .count();
            let mut text = format!(
                "yes, woken {}: {asked} of {} computer(s) asked, {off} were off",
                when(Some(w.at)),
                w.computers.len()
            );
            if retried > 0 {
                text.push_str(&format!(
                    ", {retried} waiting for a relay to connect (see NOT ASKED)"
                ));
            }
            text
        }
    }
}

/// Each computer of a wake: whether it was off, the relay asked (or why none
/// was), when it booted and came up, and where its shutdown stands.
fn wake_table(w: &Wake) -> String {
    let mut t = table(&[
        "WOKEN COMPUTER",
        "WAS OFF",
        "MACS",
        "RELAY",
        "NOT ASKED",
        "BOOTED",
        "CAME UP",
        "SHUTDOWN",
    ]);
    for l in &w.computers {
        let shutdown = match l.shutdown_at {
            Some(at) => format!("{} {}", l.shutdown, when(Some(at))),
            None => l.shutdown.to_string(),
        };
        t.add_row(vec![
            l.computer_id.to_string(),
            yes_no(l.was_off).to_owned(),
            join(&l.macs),
            l.relay
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            l.not_asked
                .map_or_else(|| "-".to_owned(), |why| why.to_string()),
            at(l.booted_at),
            at(l.came_up_at),
            shutdown,
        ]);
    }
    t.to_string()
}

pub fn retried(c: &ContainerChanged) -> String {
    format!(
        "container {}: {} failed job(s) renewed",
        c.container_id, c.jobs
    )
}

pub fn cancelled(c: &ContainerChanged) -> String {
    format!(
        "container {} cancelled: {} job(s) not yet started cancelled (jobs under way run to their end)",
        c.container_id, c.jobs
    )
}

/// One reason a relay is stale, in words.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sitecast_common::wire::{ProblemKind, RelayProblem};

    #[test]
    fn the_supersedes_chain_reads_newest_first_and_says_how_it_ends() {
        let id = |s: &str| s.parse::<PackageId>().unwrap();
        assert_eq!(supersedes(&id("app-1"), None, &[]), "none");
        assert_eq!(
            supersedes(&id("app-3"), Some(&id("app-2")), &[]),
            "app-3 → app-2"
        );
        let chain = [
            Superseded::Package(id("app-2")),
            Superseded::Deleted(id("app-1")),
        ];
        assert_eq!(
            supersedes(&id("app-3"), Some(&id("app-2")), &chain),
            "app-3 → app-2 → app-1 (deleted)"
        );
        let looped = [
            Superseded::Package(id("app-b")),
            Superseded::Loop(id("app-a")),
        ];
        assert_eq!(
            supersedes(&id("app-a"), Some(&id("app-b")), &looped),
            "app-a → app-b → app-a (loop)"
        );
    }

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
    fn relay_health_shows_version_disk_quota_scrub_and_kept_bases() {
        assert_eq!(health(&RelayHealth::default()), "-");
        let mut h = RelayHealth {
            version: "sitecast-relay 0.1.0".into(),
            disk_used: 3 << 20,
            disk_free: Some(40 << 30),
            max_disk: Some(2 << 20),
            over_quota: true,
            kept: vec!["app-1".parse().unwrap()],
            evicted: 2,
            last_scrub: Some("2026-03-01T09:00:00Z".parse().unwrap()),
            scrub_bad: 1,
            scrub_bad_total: 4,
            scrub_interval_s: Some(3600),
        };
        assert_eq!(
            health(&h),
            "sitecast-relay 0.1.0\ndisk 3.0 MiB used, 40.0 GiB free\n\
             quota 2.0 MiB EXCEEDED by activated content\n\
             scrub 2026-03-01 09:00:00 (1 bad, 4 in all)\nkept bases: app-1\nevicted 2"
        );
        h.over_quota = false;
        h.max_disk = None;
        h.last_scrub = None;
        h.kept.clear();
        h.evicted = 0;
        assert!(
            health(&h).ends_with("quota none\nscrub never yet"),
            "{}",
            health(&h)
        );
        h.scrub_interval_s = None;
        assert!(health(&h).ends_with("scrub off"));
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

    fn container_json(jobs: serde_json::Value, finished: bool) -> Container {
        serde_json::from_value(serde_json::json!({
            "id": "patch-1a2b", "name": "Evening patch", "description": "",
            "created_at": "2026-11-21T09:00:00Z", "start_at": "2026-11-21T10:00:00Z",
            "end_at": null, "priority": -5, "ip_ranges": "10.1.0.0/16",
            "time_frames": null, "sequence": "abort_after_failed", "retries": 2,
            "retry_backoff": "10m", "auto_uninstall": true, "cancelled_at": null,
            "state": if finished { "failed" } else { "running" },
            "counts": if finished {
                serde_json::json!({"SUCCESS": 1, "ERR_EXIT_CODE": 1})
            } else {
                serde_json::json!({"SUCCESS": 1, "WAITING_NOTIFICATION": 1})
            },
            "runtimes": {"total_s": 2400, "effective_s": 600, "finished": finished},
            "jobs": jobs,
        }))
        .unwrap()
    }

    fn job_json(order: u32, status: &str, exit: Option<i32>) -> serde_json::Value {
        serde_json::json!({
            "container_id": "patch-1a2b", "order": order, "computer_id": "pc-1",
            "hostname": "ws-paris-1", "package_id": format!("app-{order}"),
            "package_name": "app", "package_version": format!("{order}.0"),
            "kind": "install", "status": status, "exit_code": exit, "output": null,
            "attempts": 1, "retry_at": null, "started_at": "2026-11-21T10:30:00Z",
            "finished_at": exit.map(|_| "2026-11-21T10:40:00Z"),
            "updated_at": "2026-11-21T10:40:00Z",
        })
    }

    #[test]
    fn containers_show_progress_and_approximate_runtimes_while_unfinished() {
        let running = container_json(serde_json::json!([]), false);
        let list = containers(std::slice::from_ref(&running));
        let line = list.lines().find(|l| l.contains("patch-1a2b")).unwrap();
        for cell in [
            "Evening patch",
            "running",
            "-5",
            "2026-11-21 10:00:00",
            "1/2 done",
            "~40m 00s",
            "~10m 00s",
        ] {
            assert!(line.contains(cell), "{cell}: {line}");
        }
        let done = container_json(serde_json::json!([]), true);
        let line = containers(&[done])
            .lines()
            .find(|l| l.contains("patch-1a2b"))
            .unwrap()
            .to_owned();
        assert!(line.contains("2/2 done, 1 failed"), "{line}");
        assert!(line.contains("40m 00s") && !line.contains('~'), "{line}");
    }

    #[test]
    fn container_show_is_its_settings_then_its_jobs() {
        let c = container_json(
            serde_json::json!([
                job_json(1, "SUCCESS", Some(0)),
                job_json(2, "WAITING_NOTIFICATION", None)
            ]),
            false,
        );
        let text = container(&c);
        let row = |key: &str| text.lines().find(|l| l.contains(key)).unwrap().to_owned();
        assert!(row("ip ranges").contains("10.1.0.0/16"));
        assert!(row("time frames").contains("always"));
        assert!(row("sequence").contains("abort_after_failed"));
        assert!(row("retries").contains("2, backoff 10m"));
        assert!(row("total runtime").contains("~40m 00s"));
        assert!(row("effective runtime").contains("~10m 00s"));
        assert!(row("jobs").contains("1/2 done (WAITING_NOTIFICATION 1, SUCCESS 1)"));
        assert!(row("description").contains('-'));
        for header in [
            "COMPUTER", "HOSTNAME", "KIND", "TRIES", "RETRY AT", "STARTED", "FINISHED",
        ] {
            assert!(text.contains(header), "{header}: {text}");
        }
        let first = row("app 1.0");
        for cell in [
            "pc-1",
            "ws-paris-1",
            "install",
            "SUCCESS",
            "2026-11-21 10:40:00",
        ] {
            assert!(first.contains(cell), "{cell}: {first}");
        }
        assert!(row("app 2.0").contains("WAITING_NOTIFICATION"));
        // Listed containers carry no jobs: no empty jobs table.
        assert!(!container(&container_json(serde_json::json!([]), false)).contains("HOSTNAME"));
    }

    #[test]
    fn container_show_says_whether_and_whom_it_woke() {
        let mut c = container_json(serde_json::json!([job_json(1, "SUCCESS", Some(0))]), false);
        let text = container(&c);
        assert!(field_row(&text, "wake-on-lan").contains("no"), "{text}");
        assert!(field_row(&text, "restart timeout").contains("5m"), "{text}");
        c.wol = true;
        c.shutdown_after = true;
        let text = container(&c);
        assert!(field_row(&text, "wake-on-lan").contains("yes (not yet woken)"));
        assert!(field_row(&text, "shutdown after").contains("yes"));
        c.wake = Some(
            serde_json::from_value(serde_json::json!({
                "at": "2026-11-21T22:00:00Z",
                "computers": [
                    {"computer_id": "pc-1", "was_off": true, "macs": ["52:54:00:ab:cd:ef"],
                     "relay": "relay-paris-1", "came_up_at": "2026-11-21T22:03:00Z",
                     "shutdown": "sent", "shutdown_at": "2026-11-21T22:30:00Z"},
                    {"computer_id": "pc-2", "was_off": false, "macs": [], "relay": null,
                     "came_up_at": null, "shutdown": "never", "shutdown_at": null},
                    {"computer_id": "pc-3", "was_off": true, "macs": ["52:54:00:ab:cd:03"],
                     "relay": null, "not_asked": "relay_not_connected",
                     "came_up_at": null, "shutdown": "never", "shutdown_at": null},
                    {"computer_id": "pc-4", "was_off": false, "macs": ["52:54:00:ab:cd:04"],
                     "relay": "relay-paris-1", "asked_at": "2026-11-21T22:00:00Z",
                     "booted_at": "2026-11-20T08:00:00Z", "came_up_at": null,
                     "shutdown": "never", "shutdown_at": null},
                ],
            }))
            .unwrap(),
        );
        let text = container(&c);
        assert!(
            field_row(&text, "wake-on-lan")
                .contains("yes, woken 2026-11-21 22:00:00: 2 of 4 computer(s) asked, 2 were off, 1 waiting for a relay to connect"),
            "{text}"
        );
        let woken = text
            .lines()
            .find(|l| l.contains("52:54:00:ab:cd:ef"))
            .unwrap();
        for cell in [
            "pc-1",
            "yes",
            "relay-paris-1",
            "2026-11-21 22:03:00",
            "sent 2026-11-21 22:30:00",
        ] {
            assert!(woken.contains(cell), "{cell}: {woken}");
        }
        let on = text.lines().rfind(|l| l.contains("pc-2")).unwrap();
        assert!(on.contains("never") && on.contains(" - "), "{on}");
        assert!(
            text.contains("NOT ASKED") && text.contains("BOOTED"),
            "{text}"
        );
        let waiting = text.lines().rfind(|l| l.contains("pc-3")).unwrap();
        assert!(
            waiting.contains("its relays were not connected (retried)"),
            "{waiting}"
        );
        let was_on = text.lines().rfind(|l| l.contains("pc-4")).unwrap();
        for cell in ["relay-paris-1", "2026-11-20 08:00:00", "never"] {
            assert!(was_on.contains(cell), "{cell}: {was_on}");
        }
    }

    fn field_row<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
    }

    #[test]
    fn computer_show_has_installed_columns_and_its_jobs() {
        let mut d: ComputerDetail = serde_json::from_value(serde_json::json!({
            "id": "pc-1", "hostname": "ws-paris-1", "os": "linux", "addresses": ["10.1.0.5"],
            "enrolled_at": "2026-11-21T09:00:00Z", "last_seen": null,
            "packages": [
                {"package_id": "app-1", "name": "app", "version": "1.0", "status": "SUCCESS",
                 "exit_code": 0, "updated_at": "2026-11-21T10:40:00Z", "installed": true,
                 "installed_at": "2026-11-21T10:40:00Z"},
                {"package_id": "old-1", "name": "old", "version": "0.9", "status": null,
                 "exit_code": null, "updated_at": null, "installed": true,
                 "installed_at": "2026-11-20T08:00:00Z"},
            ],
            "jobs": [job_json(1, "SUCCESS", Some(0))],
        }))
        .unwrap();
        let text = computer(&d);
        assert!(text.contains("INSTALLED AT"), "{text}");
        let old = text.lines().find(|l| l.contains("old-1")).unwrap();
        assert!(
            old.contains(" - ") && old.contains("yes") && old.contains("2026-11-20 08:00:00"),
            "{old}"
        );
        let job = text.lines().find(|l| l.contains("patch-1a2b")).unwrap();
        for cell in ["app 1.0", "install", "SUCCESS", "2026-11-21 10:40:00"] {
            assert!(job.contains(cell), "{cell}: {job}");
        }
        d.jobs.clear();
        assert!(!computer(&d).contains("CONTAINER"));
    }

    #[test]
    fn assign_names_the_container_or_says_why_there_is_none() {
        let a = |v: serde_json::Value| assigned(&serde_json::from_value(v).unwrap());
        assert_eq!(
            a(serde_json::json!({"package_id": "app-1", "assigned": ["pc-1"], "unchanged": ["pc-2"],
                "container_id": "app-1-0-1a2b"})),
            "package app-1 assigned to 1 computer(s) in job container app-1-0-1a2b; 1 already had a deployment under way: pc-2"
        );
        assert_eq!(
            a(serde_json::json!({"package_id": "app-1", "assigned": [], "unchanged": ["pc-2"],
                "container_id": null})),
            "package app-1: no job container created, every computer already had a deployment under way: pc-2"
        );
        assert_eq!(
            a(serde_json::json!({"package_id": "app-1", "assigned": [], "unchanged": []})),
            "package app-1: no computer matched, no job container created"
        );
    }

    #[test]
    fn an_overlap_of_three_relays_names_them_all_and_who_serves() {
        let c: Coverage = serde_json::from_value(serde_json::json!({
            "generated_at": "2025-03-01T09:00:00Z", "relay_stale_after": "15m",
            "computer_recent_within": "1d", "computers": 0, "unserved": [], "sites": [],
            "stale_relays": [],
            "overlaps": [{"subnet": "10.1.5.0/24", "served_by": "lyon", "relays": [
                {"relay_id": "r-lyon", "site": "lyon", "subnet": "10.1.5.0/24"},
                {"relay_id": "r-paris", "site": "paris", "subnet": "10.1.0.0/16"},
                {"relay_id": "r-hq", "site": "hq", "subnet": "10.0.0.0/8"}]}],
        }))
        .unwrap();
        let text = coverage(&c);
        assert!(
            text.ends_with(
                "warning: 10.1.5.0/24 is served by lyon (r-lyon 10.1.5.0/24), \
                 paris (r-paris 10.1.0.0/16) and hq (r-hq 10.0.0.0/8); agents there try lyon first"
            ),
            "{text}"
        );
    }

    #[test]
    fn human_bytes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(4 << 20), "4.0 MiB");
    }
}
