//! End to end: `sitecast-agent run` follows OCS's download cycle (the agent's
//! `[cycle]`): packages are installed in the cycles their priorities allow, in
//! priority order, and a package no source ever gets is given up with
//! `ERR_TIMEOUT` once `timeout` has passed since the agent first saw it, even
//! when that was before a restart.
#![allow(clippy::unwrap_used)]
// Tests compare what was recorded against the real wall clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sitecast_common::units::Duration as Span;
use sitecast_tests::{log_lines, payload, wait_status, Agent, Central};

fn id(p: &Value) -> String {
    p["id"].as_str().unwrap().to_owned()
}

async fn assign(c: &Central, pid: &str, agent: &Agent) {
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"computers": [agent.id]}),
    )
    .await;
}

/// A command-only package of priority `priority` that appends `name` to `log`.
async fn logging_package(c: &Central, name: &str, priority: u8, log: &std::path::Path) -> String {
    let command = format!("echo {name} >> {}", log.display())
        .replace(' ', "%20")
        .replace('>', "%3E");
    id(&c
        .upload(
            &format!("name={name}&version=1&action=execute&command={command}&priority={priority}"),
            vec![],
        )
        .await)
}

/// When central recorded the computer's last report for the package.
async fn updated_at(c: &Central, pid: &str) -> jiff::Timestamp {
    c.stats(pid).await["computers"][0]["updated_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A site whose only relay never replicates anything, a store package activated
/// for it (no fallback to central), and an agent of that site assigned it.
async fn unreachable_package(c: &Central) -> (String, Agent) {
    c.add_site("paris", &["127.1.0.0/16"]).await;
    c.silent_relay("paris", &["127.1.0.0/16"], "127.1.0.1")
        .await;
    let p = c
        .upload(
            &format!(
                "name=stuck&version=1&action=store&path={}&archive=none&fragment_size=64KiB",
                c.path("stored-stuck").display()
            ),
            payload(100_000, 4),
        )
        .await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    let a = c.agent("pc", "127.1.0.11").await;
    assign(c, &pid, &a).await;
    (pid, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_whose_relay_never_gets_it_times_out() {
    let c = Central::start().await;
    let (pid, a) = unreachable_package(&c).await;
    a.tune_cycle(|cycle| cycle.timeout = Span::from_secs(1));

    let started = Instant::now();
    let agent = a.run();
    let stats = wait_status(&c, &pid, "ERR_TIMEOUT", 1).await;
    // Never before the timeout.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let output = stats["computers"][0]["output"].as_str().unwrap();
    assert!(output.contains("timeout = 1s"), "{output}");
    assert!(
        output.contains("does not hold the package yet"),
        "the report says what it waited for: {output}"
    );
    // It waited for its relay: central served nothing, and the agent left nothing behind.
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);
    assert!(!a.download_dir(&pid).exists());
    assert!(!a
        .dir
        .join("downloads")
        .join(format!("{pid}.first-seen"))
        .exists());
    agent.stop().await.unwrap();
    assert_eq!(stats["counts"], json!({"ERR_TIMEOUT": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_counts_from_the_first_sighting_before_a_restart() {
    let c = Central::start().await;
    let (pid, a) = unreachable_package(&c).await;
    a.tune_cycle(|cycle| cycle.timeout = Span::from_secs(3600));
    // An earlier run of this agent first saw the package two hours ago.
    let seen = a.dir.join("downloads").join(format!("{pid}.first-seen"));
    std::fs::create_dir_all(seen.parent().unwrap()).unwrap();
    let two_hours_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    std::fs::write(&seen, two_hours_ago.to_string()).unwrap();

    let agent = a.run();
    let stats = wait_status(&c, &pid, "ERR_TIMEOUT", 1).await;
    let output = stats["computers"][0]["output"].as_str().unwrap();
    assert!(output.contains("timeout = 1h"), "{output}");
    agent.stop().await.unwrap();
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_cycle_period_installs_priority_two_in_cycle_two() {
    let c = Central::start().await;
    // No relay serves 127.9.0.0/16: central is this agent's source.
    let a = c.agent("pc", "127.9.0.21").await;
    a.tune_cycle(|cycle| {
        cycle.period_length = 2;
        cycle.cycle_latency = Span::from_secs(1);
    });
    let log = c.path("order.log");
    let two = logging_package(&c, "two", 2, &log).await;
    let one = logging_package(&c, "one", 1, &log).await;
    let zero = logging_package(&c, "zero", 0, &log).await;
    for pid in [&two, &one, &zero] {
        assign(&c, pid, &a).await;
    }

    let agent = a.run();
    wait_status(&c, &two, "SUCCESS", 1).await;
    agent.stop().await.unwrap();
    // Cycle 1 serves priorities 0 and 1, in that order; cycle 2 priority 2.
    assert_eq!(log_lines(&log), ["zero", "one", "two"]);
    for pid in [&zero, &one] {
        assert_eq!(c.stats(pid).await["counts"], json!({"SUCCESS": 1}));
    }
    // Cycle 2 started cycle_latency after cycle 1's last event (the report of `one`).
    let gap = updated_at(&c, &two)
        .await
        .duration_since(updated_at(&c, &one).await);
    assert!(gap >= jiff::SignedDuration::from_secs(1), "{gap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_zero_is_installed_before_priority_five() {
    let c = Central::start().await;
    let a = c.agent("pc", "127.9.0.22").await;
    a.tune_cycle(|cycle| cycle.cycle_latency = Span::ZERO);
    let log = c.path("order.log");
    // The priority-5 package is created and assigned first.
    let late = logging_package(&c, "late", 5, &log).await;
    assign(&c, &late, &a).await;
    let urgent = logging_package(&c, "urgent", 0, &log).await;
    assign(&c, &urgent, &a).await;

    let agent = a.run();
    wait_status(&c, &late, "SUCCESS", 1).await;
    wait_status(&c, &urgent, "SUCCESS", 1).await;
    agent.stop().await.unwrap();
    assert_eq!(log_lines(&log), ["urgent", "late"]);
    assert!(updated_at(&c, &urgent).await < updated_at(&c, &late).await);
}
