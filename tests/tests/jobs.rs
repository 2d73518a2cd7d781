//! End to end: job containers (SPEC "Jobs") with real agents — IP ranges
//! matched against the address central sees, time frames on central's clock,
//! `abort_after_failed`, automatic retries, uninstall jobs of a store package,
//! and OCS's validate operations on the statistics.
#![allow(clippy::unwrap_used)]

use jiff::Timestamp;
use serde_json::{json, Value};
use sitecast_tests::{enc, files_under, tar_gz, Agent, Central};

/// A command-only package running `command` (central serves it: no relay here).
async fn command_package(c: &Central, name: &str, command: &str) -> String {
    let p = c
        .upload(
            &format!(
                "name={name}&version=1&action=execute&command={}",
                enc(command)
            ),
            vec![],
        )
        .await;
    p["id"].as_str().unwrap().to_owned()
}

async fn container(c: &Central, body: Value) -> String {
    c.post("/containers", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `(package, status)` of each job of the container on the agent's computer.
async fn jobs(c: &Central, container: &str, agent: &Agent) -> Vec<(String, String)> {
    let shown = c.get(&format!("/containers/{container}")).await;
    shown["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("{shown}"))
        .iter()
        .filter(|j| j["computer_id"] == agent.id.as_str())
        .map(|j| {
            (
                j["package_id"].as_str().unwrap().to_owned(),
                j["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(package: &str, status: &str) -> (String, String) {
    (package.to_owned(), status.to_owned())
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_ranges_admit_site_1_and_refuse_site_2_by_the_address_central_sees() {
    let c = Central::start().await;
    let site1 = c.agent("pc-site1", "127.1.0.11").await;
    let site2 = c.agent("pc-site2", "127.2.0.11").await;
    let p = command_package(&c, "office", "true").await;
    let id = container(
        &c,
        json!({"name": "office only", "packages": [p], "all": true,
               "ip_ranges": "!127.2.0.0/16,127.0.0.0/8"}),
    )
    .await;
    assert_eq!(site1.once_codes().await, vec![pair(&p, "SUCCESS")]);
    assert_eq!(site2.once_codes().await, vec![]);
    assert_eq!(jobs(&c, &id, &site1).await, vec![pair(&p, "SUCCESS")]);
    assert_eq!(
        jobs(&c, &id, &site2).await,
        vec![pair(&p, "WAITING_NOTIFICATION")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_frame_defers_jobs_until_central_s_clock_enters_it() {
    let c = Central::start().await;
    let a = c.agent("pc-a", "127.1.0.11").await;
    let marker = c.path("ran");
    let p = command_package(&c, "weekend", &format!("touch {}", marker.display())).await;
    // A Monday morning, UTC (central.toml's zone in the harness).
    c.clock.set(ts("2025-03-03T10:00:00Z"));
    let id = container(
        &c,
        json!({"name": "weekend", "packages": [p], "all": true,
               "time_frames": "SAT 0:00-23:59"}),
    )
    .await;
    assert_eq!(a.once_codes().await, vec![]);
    assert!(!marker.exists());
    assert_eq!(
        jobs(&c, &id, &a).await,
        vec![pair(&p, "WAITING_NOTIFICATION")]
    );
    c.clock.set(ts("2025-03-08T10:00:00Z"));
    assert_eq!(a.once_codes().await, vec![pair(&p, "SUCCESS")]);
    assert!(marker.exists());
    let shown = c.get(&format!("/containers/{id}")).await;
    assert_eq!(shown["state"], "succeeded");
    // It started when the frame let it, five days after the container.
    assert!(time_of(&shown["jobs"][0]["started_at"]) >= ts("2025-03-08T10:00:00Z"));
}

fn time_of(v: &Value) -> Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_failed_turns_the_rest_into_err_previous_failed() {
    let c = Central::start().await;
    let a = c.agent("pc-a", "127.1.0.11").await;
    let marker = c.path("second-ran");
    let first = command_package(&c, "breaks", "exit 4").await;
    let second = command_package(&c, "after", &format!("touch {}", marker.display())).await;
    let id = container(
        &c,
        json!({"name": "chain", "packages": [first, second], "all": true,
               "sequence": "abort_after_failed"}),
    )
    .await;
    assert_eq!(a.once_codes().await, vec![pair(&first, "ERR_EXIT_CODE")]);
    assert_eq!(
        jobs(&c, &id, &a).await,
        vec![
            pair(&first, "ERR_EXIT_CODE"),
            pair(&second, "ERR_PREVIOUS_FAILED")
        ]
    );
    // Never handed out, never run.
    assert_eq!(a.once_codes().await, vec![]);
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_retry_succeeds_on_the_second_attempt() {
    let c = Central::start().await;
    let a = c.agent("pc-a", "127.1.0.11").await;
    let seen = c.path("tried-once");
    // Fails the first time, succeeds the next.
    let command = format!(
        "test -e {m} || {{ touch {m}; exit 1; }}",
        m = seen.display()
    );
    let p = command_package(&c, "flaky", &command).await;
    let start = ts("2025-03-03T10:00:00Z");
    c.clock.set(start);
    let id = container(
        &c,
        json!({"name": "flaky", "packages": [p], "all": true,
               "retries": 1, "retry_backoff": "10m"}),
    )
    .await;
    assert_eq!(a.once_codes().await, vec![pair(&p, "ERR_EXIT_CODE")]);
    let shown = c.get(&format!("/containers/{id}")).await;
    let job = &shown["jobs"][0];
    assert_eq!(job["status"], "WAITING_NOTIFICATION", "{shown}");
    assert_eq!(job["attempts"], 1);
    assert!(time_of(&job["retry_at"]) >= ts("2025-03-03T10:10:00Z"));
    // Not before the back-off is over.
    assert_eq!(a.once_codes().await, vec![]);
    c.clock.set(ts("2025-03-03T10:11:00Z"));
    assert_eq!(a.once_codes().await, vec![pair(&p, "SUCCESS")]);
    let shown = c.get(&format!("/containers/{id}")).await;
    assert_eq!(shown["jobs"][0]["status"], "SUCCESS");
    assert_eq!(shown["jobs"][0]["attempts"], 2);
    assert_eq!(shown["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstall_job_removes_what_a_store_package_put_in_place() {
    let c = Central::start().await;
    let a = c.agent("pc-a", "127.1.0.11").await;
    let target = c.path("opt/app");
    // Something of the admin's already there is left alone.
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("local.conf"), b"mine").unwrap();
    let archive = tar_gz(&[
        ("bin/app", b"#!/bin/sh\necho app\n", 0o755),
        ("share/doc/README", b"read me", 0o644),
    ]);
    let p = c
        .upload(
            &format!(
                "name=app&version=1&action=store&path={}&archive=tar.gz",
                enc(&target.display().to_string())
            ),
            archive,
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_owned();
    container(
        &c,
        json!({"name": "install", "packages": [pid], "all": true}),
    )
    .await;
    assert_eq!(a.once_codes().await, vec![pair(&pid, "SUCCESS")]);
    assert!(target.join("bin/app").exists());
    assert!(target.join("share/doc/README").exists());
    let installed = |detail: &Value| detail["packages"][0]["installed"].clone();
    assert_eq!(
        installed(&c.get(&format!("/computers/{}", a.id)).await),
        true
    );

    let id = container(
        &c,
        json!({"name": "remove", "packages": [pid], "all": true, "uninstall": true}),
    )
    .await;
    assert_eq!(a.once_codes().await, vec![pair(&pid, "SUCCESS")]);
    assert_eq!(jobs(&c, &id, &a).await, vec![pair(&pid, "SUCCESS")]);
    assert_eq!(
        files_under(&target),
        vec![target.join("local.conf")],
        "only the admin's file is left"
    );
    assert!(!target.join("bin").exists());
    assert!(!target.join("share").exists());
    assert_eq!(
        installed(&c.get(&format!("/computers/{}", a.id)).await),
        false
    );

    // Installed again after the uninstall: it runs again, not ERR_ALREADY_SETUP.
    container(&c, json!({"name": "again", "packages": [pid], "all": true})).await;
    assert_eq!(a.once_codes().await, vec![pair(&pid, "SUCCESS")]);
    assert!(target.join("bin/app").exists());
}

/// The computers of a status line in the statistics, sorted.
fn line(stats: &Value, status: &str) -> Vec<String> {
    let mut ids: Vec<String> = stats["by_status"][status]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(agents: &[&Agent]) -> Vec<String> {
    let mut ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_operations_clear_the_lines_seed_003_describes() {
    let c = Central::start().await;
    let ok1 = c.agent("pc-ok1", "127.1.0.11").await;
    let ok2 = c.agent("pc-ok2", "127.1.0.12").await;
    let failed = c.agent("pc-failed", "127.1.0.13").await;
    let silent = c.agent("pc-silent", "127.1.0.14").await;
    let p = command_package(&c, "tool", "test ! -e flag-that-is-not-here").await;
    c.post(&format!("/packages/{p}/assignments"), json!({"all": true}))
        .await;
    for a in [&ok1, &ok2] {
        assert_eq!(a.once_codes().await, vec![pair(&p, "SUCCESS")]);
    }
    // pc-failed's agent could not run the command.
    let failing = json!({"code": "ERR_EXECUTE", "output": "sh: /nonexistent: not found"});
    report(&c, &failed, &p, failing).await;
    let stats = c.stats(&p).await;
    assert_eq!(
        stats["counts"],
        json!({"SUCCESS": 2, "ERR_EXECUTE": 1, "WAITING_NOTIFICATION": 1}),
        "{stats}"
    );
    assert_eq!(line(&stats, "SUCCESS"), sorted(&[&ok1, &ok2]));
    assert_eq!(line(&stats, "WAITING_NOTIFICATION"), sorted(&[&silent]));

    // "Unaffect not notified": the computer that never polled loses the order.
    let r = c
        .post(
            &format!("/packages/{p}/validate"),
            json!({"what": "not_notified"}),
        )
        .await;
    assert_eq!(r["removed"], json!({"WAITING_NOTIFICATION": 1}));
    assert_eq!(r["remaining"], 3);
    assert_eq!(silent.once_codes().await, vec![]);
    // "Validate success": the lines of computers where it is in place are cleared.
    let r = c
        .post(
            &format!("/packages/{p}/validate"),
            json!({"what": "success"}),
        )
        .await;
    assert_eq!(r["removed"], json!({"SUCCESS": 2}));
    let stats = c.stats(&p).await;
    assert_eq!(stats["counts"], json!({"ERR_EXECUTE": 1}));
    assert_eq!(line(&stats, "ERR_EXECUTE"), sorted(&[&failed]));
    assert_eq!(line(&stats, "SUCCESS"), Vec::<String>::new());
    // The failure stays for the admin to look at; "all" clears nothing more.
    let r = c
        .post(&format!("/packages/{p}/validate"), json!({"what": "all"}))
        .await;
    assert_eq!(r["removed"], json!({}));
    assert_eq!(r["remaining"], 1);
}

/// A poll then a status report, sent as the agent would.
async fn report(c: &Central, agent: &Agent, package: &str, body: Value) {
    let config =
        sitecast_agent::AgentConfig::load(&sitecast_agent::Layout::new(&agent.dir)).unwrap();
    // Handed out first, as to any agent.
    let polled = c
        .http
        .post(format!("{}/api/v1/agent/poll", c.url))
        .bearer_auth(&config.token)
        .json(&json!({"addresses": []}))
        .send()
        .await
        .unwrap();
    assert!(polled.status().is_success());
    let resp = c
        .http
        .post(format!("{}/api/v1/agent/packages/{package}/status", c.url))
        .bearer_auth(&config.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}
