//! Job containers and their jobs: `container list`, `show`, `retry`, `cancel`,
//! and the wake-on-LAN report.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use sitecast_common::jobs::format_runtime;
use sitecast_common::power::{NotAsked, Wake};
use sitecast_common::status::StatusCode;
use sitecast_common::wire::{Container, ContainerChanged, Job};

use super::{at, join, table, when, yes_no};

pub(super) fn exit(code: Option<i32>) -> String {
    code.map(|e| e.to_string()).unwrap_or_default()
}

/// A job's package as people know it: `firefox 128.0` (the id if central lost its name).
pub(super) fn job_package(j: &Job) -> String {
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
