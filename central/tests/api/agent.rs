//! The agent protocol: enrollment, polls and their jitter, package info and
//! fragments, status reports and relay problem reports.

use crate::harness::*;

#[tokio::test]
async fn an_agent_enrolls_with_the_enroll_token_and_is_listed() {
    let c = Central::start().await;
    assert_eq!(c.list_computers().await.ok(StatusCode::OK), json!([]));
    let reply = c
        .enroll(json!({
            "enroll_token": c.enroll_token,
            "hostname": "WS-042.corp.example",
            "os": "windows",
            "addresses": ["10.1.0.42", "fe80::1"],
        }))
        .await
        .ok(StatusCode::CREATED);
    let id = reply["computer_id"].as_str().unwrap();
    assert!(id.starts_with("ws-042.corp.example-"), "{id}");
    let token = reply["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let key = c.trusted_key();
    let pem = std::fs::read_to_string(c.dir().join("keys/signing.pub")).unwrap();
    assert_eq!(
        reply["signing_keys"],
        json!([{"keyid": signing::key_id(&key), "pem": pem}])
    );

    let computers = c.list_computers().await.ok(StatusCode::OK);
    assert_eq!(computers.as_array().unwrap().len(), 1);
    let pc = &computers[0];
    assert_eq!(pc["id"], id);
    assert_eq!(pc["hostname"], "WS-042.corp.example");
    assert_eq!(pc["os"], "windows");
    assert_eq!(pc["addresses"], json!(["10.1.0.42", "fe80::1"]));
    assert_eq!(time_of(&pc["last_seen"]), ts(T0));

    // The token works on agent routes.
    let agent = Agent {
        id: id.to_owned(),
        token: token.to_owned(),
    };
    c.poll(&agent, &[]).await.ok(StatusCode::OK);
    // Two enrollments of one host name are two computers.
    let twin = c.given_agent("WS-042.corp.example", &[]).await;
    assert_ne!(twin.id, agent.id);
}

#[tokio::test]
async fn bad_enrollments_are_refused() {
    let c = Central::start().await;
    let good = json!({
        "enroll_token": c.enroll_token,
        "hostname": "pc1",
        "os": "linux",
        "addresses": ["10.1.0.5"],
    });
    let with = |field: &str, value: Value| {
        let mut v = good.clone();
        v[field] = value;
        v
    };
    c.enroll(with("enroll_token", json!("0".repeat(64))))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["enroll_token"]);
    c.enroll(with("enroll_token", json!(c.admin)))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["enroll_token"]);
    c.enroll(with("enroll_token", json!(5)))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["enroll_token"]);
    c.enroll(with("addresses", json!(["10.1.0.300"])))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses", "10.1.0.300"]);
    c.enroll(with("addresses", json!(["10.1.0.0/16"])))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses", "10.1.0.0/16"]);
    c.enroll(with("addresses", json!("10.1.0.5")))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses"]);
    c.enroll(with("hostname", json!("")))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostname"]);
    c.enroll(with("hostname", json!(5)))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostname"]);
    c.enroll(with("os", json!("   ")))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["os"]);
    c.enroll(json!({"enroll_token": c.enroll_token, "os": "linux"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostname"]);
    assert_eq!(c.list_computers().await.ok(StatusCode::OK), json!([]));
}

#[tokio::test]
async fn a_poll_notifies_waiting_assignments_in_priority_order() {
    let c = Central::start().await;
    let late = c.given_command_package("late", "7").await;
    let urgent = c.given_command_package("urgent", "0").await;
    let other = c.given_command_package("other", "3").await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    let idle = c.given_agent("pc2", &["10.1.0.6"]).await;
    // A relay serves the agent's subnet, but holds nothing yet.
    c.given_site("paris", &["10.1.0.0/16"]).await;
    c.given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    for p in [&late, &urgent] {
        let id = p["id"].as_str().unwrap();
        c.assign(id, json!({"computers": [agent.id]}))
            .await
            .ok(StatusCode::OK);
    }
    c.assign(
        other["id"].as_str().unwrap(),
        json!({"computers": [idle.id]}),
    )
    .await
    .ok(StatusCode::OK);
    c.activate(
        urgent["id"].as_str().unwrap(),
        json!({"all_sites": true, "fallback": "always"}),
    )
    .await
    .ok(StatusCode::OK);
    let late_id = late["id"].as_str().unwrap();
    assert_eq!(
        c.stats(late_id).await["counts"],
        json!({"WAITING_NOTIFICATION": 1})
    );

    c.set_time(T1);
    let poll = without_jobs(
        c.poll(&agent, &["10.1.0.5", "10.7.0.5"])
            .await
            .ok(StatusCode::OK),
    );
    // 60 s, jittered by up to 20 % either way.
    let interval = poll["poll_interval_s"].as_u64().unwrap();
    assert!((48..=72).contains(&interval), "{interval}");
    // Priority 0 first; no relay holds anything yet.
    assert_eq!(
        poll["packages"],
        json!([
            {
                "id": urgent["id"],
                "priority": 0,
                "info_sha256": urgent["info_sha256"],
                "relays": [],
                // A relay serves 10.1.0.5 but holds nothing: wait for it.
                "relay_pending": true,
                "central_fallback": "always",
                "kind": "install",
                "restart_timeout_s": 300,
            },
            {
                "id": late["id"],
                "priority": 7,
                "info_sha256": late["info_sha256"],
                "relays": [],
                "relay_pending": true,
                "central_fallback": "never",
                "kind": "install",
                "restart_timeout_s": 300,
            },
        ])
    );

    // The assignments are now NOTIFIED, as of the poll.
    let stats = c.stats(late_id).await;
    assert_eq!(stats["counts"], json!({"NOTIFIED": 1}));
    assert_eq!(time_of(&stats["computers"][0]["updated_at"]), ts(T1));
    assert_eq!(
        c.stats(urgent["id"].as_str().unwrap()).await["counts"],
        json!({"NOTIFIED": 1})
    );
    // The other computer's assignment is untouched.
    assert_eq!(
        c.stats(other["id"].as_str().unwrap()).await["counts"],
        json!({"WAITING_NOTIFICATION": 1})
    );

    // The poll is the computer's last contact, with the addresses it reported.
    let computers = c.list_computers().await.ok(StatusCode::OK);
    let pc = computers
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == agent.id.as_str())
        .unwrap();
    assert_eq!(time_of(&pc["last_seen"]), ts(T1));
    assert_eq!(pc["addresses"], json!(["10.1.0.5", "10.7.0.5"]));

    // Notified packages are still handed out until they are finished.
    let again = without_jobs(c.poll(&agent, &[]).await.ok(StatusCode::OK));
    assert_eq!(again["packages"], poll["packages"]);
    assert_eq!(c.stats(late_id).await["counts"], json!({"NOTIFIED": 1}));

    c.poll(&agent, &["10.1.0.999"])
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses", "10.1.0.999"]);
    c.send_json(
        Method::POST,
        "/api/v1/agent/poll",
        Some(agent.token.as_str()),
        &json!({"addresses": "10.1.0.5"}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["addresses"]);
}

#[tokio::test]
async fn an_agent_downloads_the_info_and_fragments_of_its_packages() {
    let c = Central::start().await;
    let bytes = data(10_000);
    let pkg = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&bytes),
        )
        .await;
    let id = pkg["id"].as_str().unwrap();
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    let stranger = c.given_agent("pc2", &["10.1.0.6"]).await;
    c.assign(id, json!({"computers": [agent.id]}))
        .await
        .ok(StatusCode::OK);

    let info = c.agent_info(&agent, id).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text());
    assert_eq!(info.body, c.package_info(id).await.body);
    assert_eq!(sha256_hex(&info.body), pkg["info_sha256"]);
    signing::verify_info(&info.body, &[c.trusted_key()]).unwrap();

    for (i, chunk) in bytes.chunks(4096).enumerate() {
        let n = (i + 1).to_string();
        let f = c.agent_fragment(&agent, id, &n).await;
        assert_eq!(f.status, StatusCode::OK, "fragment {n}: {}", f.text());
        assert_eq!(
            f.headers.get(CONTENT_LENGTH).unwrap(),
            &chunk.len().to_string()
        );
        assert_eq!(
            f.headers.get(CONTENT_TYPE).unwrap(),
            "application/octet-stream"
        );
        assert_eq!(f.body.as_ref(), chunk, "fragment {n}");
    }
    for n in ["0", "4", "4294967295", "4294967296", "-1", "one"] {
        c.agent_fragment(&agent, id, n)
            .await
            .err_naming(StatusCode::NOT_FOUND, &["fragment"]);
    }

    // Central serves packages only to the computers they are assigned to.
    c.agent_info(&stranger, id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[id]);
    c.agent_fragment(&stranger, id, "1")
        .await
        .err_naming(StatusCode::NOT_FOUND, &[id]);
    c.report(&stranger, id, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &[id]);
    assert_eq!(c.stats(id).await["computers"].as_array().unwrap().len(), 1);

    // Unknown packages.
    c.agent_info(&agent, "no-such-package")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
    c.agent_fragment(&agent, "no-such-package", "1")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
}

#[tokio::test]
async fn status_reports_update_the_stats() {
    let c = Central::start().await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    c.poll(&b, &[]).await.ok(StatusCode::OK);

    c.set_time(T1);
    let reply = c
        .report(&a, id, json!({"code": "DOWNLOADING", "fragments_done": 1}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(reply["computer_id"], a.id.as_str());
    assert_eq!(reply["hostname"], "pc-a");
    assert_eq!(reply["status"], "DOWNLOADING");
    assert_eq!(reply["fragments_done"], 1);
    assert_eq!(time_of(&reply["updated_at"]), ts(T1));
    assert_eq!(
        c.stats(id).await["counts"],
        json!({"NOTIFIED": 1, "DOWNLOADING": 1})
    );

    // Only the last 4 KiB of the output are kept.
    let mut output = "x".repeat(1000);
    output.push_str(&"0123456789abcdef".repeat(256));
    let reply = c
        .report(
            &a,
            id,
            json!({"code": "ERR_EXIT_CODE", "exit_code": 3, "output": output}),
        )
        .await
        .ok(StatusCode::OK);
    let kept = reply["output"].as_str().unwrap();
    assert_eq!(kept.len(), 4096);
    assert_eq!(kept, &output[output.len() - 4096..]);

    c.report(
        &b,
        id,
        json!({"code": "SUCCESS", "exit_code": 0, "output": "installed\n"}),
    )
    .await
    .ok(StatusCode::OK);

    let stats = c.stats(id).await;
    assert_eq!(stats["package_id"], id);
    assert_eq!(stats["counts"], json!({"ERR_EXIT_CODE": 1, "SUCCESS": 1}));
    let sa = c.stat_of(id, &a).await;
    assert_eq!(sa["hostname"], "pc-a");
    assert_eq!(sa["status"], "ERR_EXIT_CODE");
    assert_eq!(sa["exit_code"], 3);
    assert_eq!(sa["output"].as_str().unwrap(), kept);
    assert_eq!(time_of(&sa["updated_at"]), ts(T1));
    let sb = c.stat_of(id, &b).await;
    assert_eq!(sb["status"], "SUCCESS");
    assert_eq!(sb["exit_code"], 0);
    assert_eq!(sb["output"], "installed\n");

    // Finished packages are no longer handed out.
    assert_eq!(
        c.poll(&a, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
    assert_eq!(
        c.poll(&b, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
}

/// A report answers one hand-out of one job: the poll names it, a report naming
/// another is refused, and a settled job is not settled again (409 both).
#[tokio::test]
async fn a_report_answers_its_own_job_and_never_overwrites_a_settled_one() {
    let c = Central::start().await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    let polled = c.poll(&a, &[]).await.ok(StatusCode::OK);
    let job = polled["packages"][0]["job"].as_str().unwrap().to_owned();
    // Polled again while it runs: the same hand-out.
    let again = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(again["packages"][0]["job"], job.as_str());

    let stale = c
        .report(
            &a,
            id,
            json!({"code": "SUCCESS", "job": "other-container/1/1/0"}),
        )
        .await;
    stale.err_naming(
        StatusCode::CONFLICT,
        &["answers job other-container/1/1/0", &job],
    );
    assert_eq!(c.stat_of(id, &a).await["status"], "NOTIFIED");

    c.report(
        &a,
        id,
        json!({"code": "ERR_EXIT_CODE", "exit_code": 2, "job": job}),
    )
    .await
    .ok(StatusCode::OK);
    let late = c
        .report(&a, id, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    late.err_naming(StatusCode::CONFLICT, &["already settled as ERR_EXIT_CODE"]);
    let kept = c.stat_of(id, &a).await;
    assert_eq!(
        (kept["status"].clone(), kept["exit_code"].clone()),
        (json!("ERR_EXIT_CODE"), json!(2))
    );
    // Late progress is not an error, and changes nothing.
    c.report(&a, id, json!({"code": "DOWNLOADING", "fragments_done": 1}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.stat_of(id, &a).await["status"], "ERR_EXIT_CODE");
}

#[tokio::test]
async fn the_output_tail_is_cut_at_a_character_boundary() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &[]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    // 2 100 two-byte characters then one byte: the last 4096 bytes start inside a character.
    let mut output = "é".repeat(2100);
    output.push('!');
    let reply = c
        .report(&a, id, json!({"code": "ERR_EXECUTE", "output": output}))
        .await
        .ok(StatusCode::OK);
    let kept = reply["output"].as_str().unwrap();
    assert_eq!(kept.len(), 4095);
    assert!(output.ends_with(kept));
}

#[tokio::test]
async fn bad_status_reports_name_the_code() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &[]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);

    c.report(&a, id, json!({"code": "WAITING_NOTIFICATION"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code", "WAITING_NOTIFICATION"]);
    c.report(&a, id, json!({"code": "NOTIFIED"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code", "NOTIFIED"]);
    c.report(&a, id, json!({"code": "FINISHED"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code", "FINISHED"]);
    c.report(&a, id, json!({"code": "success"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code"]);
    c.report(&a, id, json!({"exit_code": 0}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code"]);
    c.report(&a, id, json!({"code": "SUCCESS", "exit_code": "zero"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["exit_code"]);
    c.report(&a, id, json!({"code": "DOWNLOADING", "fragments_done": -1}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["fragments_done"]);
    // None of them changed anything.
    assert_eq!(c.stats(id).await["counts"], json!({"NOTIFIED": 1}));
}

// ---------------------------------------------------------------------------
// Relay problems and poll jitter
// ---------------------------------------------------------------------------

#[tokio::test]
async fn agents_report_relay_problems_and_the_relay_listing_counts_them() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (other, _) = c
        .given_relay("paris", &["10.1.2.0/24"], "http://10.1.2.2:8080")
        .await;
    let pkg = c.given_command_package("app", "5").await;
    let pid = pkg["id"].as_str().unwrap();
    let pc1 = c.given_agent("pc1", &["10.1.0.5"]).await;
    let pc2 = c.given_agent("pc2", &["10.1.0.6"]).await;

    let r = c
        .report_problem(
            &pc1,
            &relay,
            json!({"package_id": pid, "kind": "refused", "detail": "connection refused"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(r.body.is_empty());
    c.set_time(T1);
    // The package is optional.
    let r = c
        .report_problem(
            &pc2,
            &relay,
            json!({"kind": "stalled", "detail": "no byte"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = c
        .report_problem(&pc2, &relay, json!({"kind": "stalled", "detail": "again"}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());

    let relays = c.list_relays().await.ok(StatusCode::OK);
    let view = |id: &str| {
        relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["problems"]
            .clone()
    };
    assert_eq!(
        view(&relay),
        json!({
            "count": 3,
            "counts": {"refused": 1, "stalled": 2},
            "last": {
                "kind": "stalled",
                "detail": "again",
                "computer_id": pc2.id,
                "package_id": null,
                "at": T1,
            },
        })
    );
    assert_eq!(
        view(&other),
        json!({"count": 0, "counts": {}, "last": null})
    );
}

#[tokio::test]
async fn a_problem_detail_is_cut_to_one_kib_on_one_line() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let pc = c.given_agent("pc1", &["10.1.0.5"]).await;
    let long = format!("stalled\n{}", "é".repeat(2000));
    let r = c
        .report_problem(&pc, &relay, json!({"kind": "bad_data", "detail": long}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let relays = c.list_relays().await.ok(StatusCode::OK);
    let detail = relays[0]["problems"]["last"]["detail"].as_str().unwrap();
    assert!(
        detail.len() <= 1024 && detail.len() >= 1020,
        "{}",
        detail.len()
    );
    assert!(detail.starts_with("stalled é"), "{detail}");
    assert!(!detail.contains('\n'));
}

#[tokio::test]
async fn bad_problem_reports_name_the_field() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let pc = c.given_agent("pc1", &["10.1.0.5"]).await;
    c.report_problem(&pc, &relay, json!({"kind": "slow", "detail": "x"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["kind", "slow"]);
    c.report_problem(&pc, &relay, json!({"detail": "x"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["kind"]);
    c.report_problem(
        &pc,
        &relay,
        json!({"kind": "refused", "package_id": "Not An Id"}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["package_id"]);
    for unknown in ["relay-gone-abcdef", "Not_An_Id!"] {
        c.report_problem(&pc, unknown, json!({"kind": "refused", "detail": "x"}))
            .await
            .err_naming(StatusCode::NOT_FOUND, &["relay", unknown]);
    }
    let mut big = json!({"kind": "refused", "detail": "x"}).to_string();
    big.push_str(&" ".repeat(70_000));
    c.send(
        Method::POST,
        &format!("/api/v1/agent/relays/{relay}/problems"),
        Some(pc.token.as_str()),
        Body::from(big),
    )
    .await
    .err(StatusCode::PAYLOAD_TOO_LARGE);
    // An admin does not report problems; nothing was counted.
    c.send_json(
        Method::POST,
        &format!("/api/v1/agent/relays/{relay}/problems"),
        Some(c.admin.as_str()),
        &json!({"kind": "refused", "detail": "x"}),
    )
    .await
    .err_naming(StatusCode::FORBIDDEN, &["agent"]);
    assert_eq!(
        c.list_relays().await.ok(StatusCode::OK)[0]["problems"],
        json!({"count": 0, "counts": {}, "last": null})
    );
}

#[tokio::test]
async fn each_poll_gets_the_interval_jittered_within_twenty_percent() {
    let c = Central::start_with_config(|toml| {
        toml.replace("poll_interval = \"1m\"", "poll_interval = \"100s\"")
    })
    .await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let poll = c.poll(&agent, &[]).await.ok(StatusCode::OK);
        let s = poll["poll_interval_s"].as_u64().unwrap();
        assert!((80..=120).contains(&s), "{s} is not within 100s ± 20 %");
        seen.insert(s);
    }
    // 41 values drawn 200 times: all equal would be a broken generator
    // (a fair one does that once in 41^199).
    assert!(seen.len() > 1, "every poll got {seen:?}");
}

#[tokio::test]
async fn the_jitter_comes_from_the_injected_generator() {
    use crate::harness::jitter::Random;
    struct Top;
    impl Random for Top {
        fn up_to(&self, max: u64) -> u64 {
            max
        }
    }
    let c = Central::start().await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    // A second router over another DIR, with the generator pinned to its top.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    init::init(&dir, &InitOptions::default()).unwrap();
    let mut central =
        api::Central::open(init::load(&dir).unwrap(), Arc::clone(&c.clock) as _).unwrap();
    central.random = Arc::new(Top);
    let central = Arc::new(central);
    let pinned = Central {
        admin: init::read_token(&init::Layout::new(&dir).admin_token()).unwrap(),
        enroll_token: init::read_token(&init::Layout::new(&dir).enroll_token()).unwrap(),
        layout: init::Layout::new(&dir),
        app: api::app(Arc::clone(&central)),
        state: Some(central),
        clock: Arc::clone(&c.clock),
        _tmp: tmp,
    };
    let pc = pinned.given_agent("pc1", &[]).await;
    for _ in 0..5 {
        let poll = pinned.poll(&pc, &[]).await.ok(StatusCode::OK);
        assert_eq!(poll["poll_interval_s"], 72, "60s + 20 %");
    }
    // The default generator is the OS's.
    let poll = c.poll(&agent, &[]).await.ok(StatusCode::OK);
    assert!((48..=72).contains(&poll["poll_interval_s"].as_u64().unwrap()));
}
