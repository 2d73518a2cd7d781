//! Tests of the tables: what each shows, read the way an admin reads it.
#![allow(clippy::unwrap_used)]

use sitecast_common::ids::PackageId;
use sitecast_common::wire::{
    ComputerDetail, Container, Coverage, ProblemKind, RelayHealth, RelayProblem, RelayProblems,
    Stats,
};

use super::packages::supersedes;
use super::relays::{health, problems};
use super::*;

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
