//! End to end: the computer's user is told through the agent's notifier (a
//! script that answers from a file and logs what it was told), as the package's
//! signed info says (`notify`, `done_action_text`): an abort is `ERR_ABORTED` at
//! central and the command never runs; a delay runs nothing and reports nothing,
//! and the package runs in a later cycle (a second `once`, or `run` after
//! `cycle_latency`), after which the done text reaches the user.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sitecast_common::units::Duration as Span;
use sitecast_tests::{payload, wait_status, wait_until, Agent, Central};

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A package of several fragments whose command creates `marker`, telling the
/// user "Save your work" first (abort and delay allowed, 30 s to answer) and
/// "Tool is installed" after; assigned to `agent`. Its id.
async fn notifying_package(c: &Central, agent: &Agent, marker: &Path) -> String {
    let query = [
        ("name", "tool"),
        ("version", "1"),
        ("action", "execute"),
        ("command", &format!("touch {}", marker.display())),
        ("fragment_size", "16KiB"),
        ("notify_text", "Save your work"),
        ("notify_countdown", "30s"),
        ("notify_can_abort", "true"),
        ("notify_can_delay", "true"),
        ("done_action_text", "Tool is installed"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let p = c.upload(&query, payload(100_000, 3)).await;
    assert_eq!(p["fragments"], 7, "{p}");
    let pid = p["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"computers": [agent.id]}),
    )
    .await;
    pid
}

fn line(stats: &Value) -> &Value {
    &stats["computers"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_abort_is_err_aborted_and_the_command_never_runs() {
    let c = Central::start().await;
    let a = c.agent("pc", "127.0.0.21").await;
    let notifier = a.notifier();
    notifier.answer("abort");
    let marker: PathBuf = c.path("marker-abort");
    let pid = notifying_package(&c, &a, &marker).await;

    assert_eq!(a.once_codes().await, [(pid.clone(), "ERR_ABORTED".into())]);
    let stats = c.stats(&pid).await;
    assert_eq!(stats["counts"], json!({"ERR_ABORTED": 1}));
    let output = line(&stats)["output"].as_str().unwrap();
    assert!(output.contains("the user aborted"), "{output}");
    assert!(!marker.exists(), "the command ran");
    // The user was asked once, after the whole download (central served every
    // fragment) and was never told the done text.
    assert_eq!(
        notifier.told(),
        [format!("before {pid} Save your work -> abort")]
    );
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 100_000);
    assert!(!a.download_dir(&pid).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_package_runs_at_the_next_once() {
    let c = Central::start().await;
    let a = c.agent("pc", "127.0.0.22").await;
    let notifier = a.notifier();
    notifier.answer("delay");
    let marker = c.path("marker-delay");
    let pid = notifying_package(&c, &a, &marker).await;

    assert_eq!(a.once_codes().await, [(pid.clone(), "waiting".into())]);
    assert!(!marker.exists(), "the command ran");
    // Nothing final went to central: the job is still the agent's.
    let status = line(&c.stats(&pid).await)["status"].clone();
    assert!(status == "NOTIFIED" || status == "DOWNLOADING", "{status}");
    assert_eq!(
        notifier.told(),
        [format!("before {pid} Save your work -> delay")]
    );

    notifier.answer("continue");
    assert_eq!(a.once_codes().await, [(pid.clone(), "SUCCESS".into())]);
    assert!(marker.exists());
    assert_eq!(c.stats(&pid).await["counts"], json!({"SUCCESS": 1}));
    assert_eq!(
        notifier.told(),
        [
            format!("before {pid} Save your work -> delay"),
            format!("before {pid} Save your work -> continue"),
            format!("done {pid} Tool is installed -> continue"),
        ]
    );
    // The download was kept across the delay: the fragments crossed once.
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_package_runs_in_a_later_cycle_of_run() {
    let c = Central::start().await;
    let a = c.agent("pc", "127.0.0.23").await;
    a.tune_cycle(|cycle| cycle.cycle_latency = Span::from_secs(1));
    let notifier = a.notifier();
    notifier.answer("delay");
    let marker = c.path("marker-run");
    let pid = notifying_package(&c, &a, &marker).await;

    let agent = a.run();
    wait_until("the user is asked", || async {
        !notifier.told().is_empty()
    })
    .await;
    // The first answer has been read: the next one is continue.
    notifier.answer("continue");
    assert!(
        !marker.exists(),
        "the command ran though the user delayed it"
    );
    let stats = wait_status(&c, &pid, "SUCCESS", 1).await;
    assert_eq!(stats["counts"], json!({"SUCCESS": 1}));
    assert!(marker.exists());
    wait_until("the done text", || async { notifier.told().len() == 3 }).await;
    agent.stop().await.unwrap();
    assert_eq!(
        notifier.told(),
        [
            format!("before {pid} Save your work -> delay"),
            format!("before {pid} Save your work -> continue"),
            format!("done {pid} Tool is installed -> continue"),
        ]
    );
}

/// `enroll --notifier` writes `agent.toml`'s `notifier`; one that cannot be split
/// into words is refused, naming the flag, before anything is enrolled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_sets_the_notifier_and_refuses_a_bad_one() {
    let c = Central::start().await;
    let options = |notifier: &str| sitecast_agent::EnrollOptions {
        central: c.url.clone(),
        ca: c.layout.ca_cert(),
        enroll_token: c.enroll_token.clone(),
        bind: Some("127.0.0.24".parse().unwrap()),
        tags: vec![],
        hostname: Some("desk".into()),
        notifier: Some(notifier.to_owned()),
    };
    let dir = c.path("agent-desk");
    let e = sitecast_agent::enroll(&dir, options("tell 'user"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--notifier"), "{e}");
    assert!(!dir.exists());
    assert_eq!(c.get("/computers").await, json!([]));

    let config = sitecast_agent::enroll(&dir, options("/usr/local/bin/tell-user --title 'IT'"))
        .await
        .unwrap();
    assert_eq!(
        config.notifier.as_deref(),
        Some("/usr/local/bin/tell-user --title 'IT'")
    );
    let loaded = sitecast_agent::AgentConfig::load(&sitecast_agent::Layout::new(&dir)).unwrap();
    assert_eq!(loaded.notifier, config.notifier);
}
