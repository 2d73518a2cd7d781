//! Job containers (SPEC "Jobs"): creation, targeting, order, retries,
//! cancel, uninstall jobs, runtimes and purge.

use crate::harness::*;

impl Central {
    pub(crate) async fn create_container(&self, body: Value) -> Reply {
        self.admin_post("/api/v1/containers", &body).await
    }

    pub(crate) async fn given_container(&self, body: Value) -> Value {
        self.create_container(body).await.ok(StatusCode::CREATED)
    }

    pub(crate) async fn show_container(&self, id: &str) -> Value {
        self.admin_get(&format!("/api/v1/containers/{id}"))
            .await
            .ok(StatusCode::OK)
    }

    /// A poll arriving from `peer`, as the server's socket would tell it.
    async fn poll_from(&self, agent: &Agent, peer: &str) -> Value {
        let addr = std::net::SocketAddr::new(peer.parse().unwrap(), 40000);
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/agent/poll")
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {}", agent.token))
            // A header claiming another address changes nothing.
            .header("x-forwarded-for", "127.1.0.9")
            .extension(axum::extract::ConnectInfo(addr))
            .body(Body::from(json!({"addresses": []}).to_string()))
            .unwrap();
        self.call(req).await.ok(StatusCode::OK)
    }

    /// Ids and kinds of the packages a poll hands out, in order.
    pub(crate) async fn handed(&self, agent: &Agent) -> Vec<(String, String)> {
        handed(&self.poll(agent, &[]).await.ok(StatusCode::OK))
    }

    pub(crate) fn purge(&self) -> Vec<String> {
        api::purge_containers(self.state.as_ref().unwrap())
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// A package with an uninstall procedure.
    pub(crate) async fn given_uninstallable(&self, name: &str, version: &str) -> String {
        let p = self
            .given_package(
                &[
                    ("name", name),
                    ("version", version),
                    ("action", "execute"),
                    ("command", "echo install"),
                    ("uninstall_command", "echo uninstall"),
                ],
                None,
            )
            .await;
        p["id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn containers_are_created_listed_shown_and_deleted() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.2.0.5"]).await;
    let p1 = c.given_command_package("first", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p2 = c.given_command_package("second", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = c
        .given_container(json!({
            "name": "Office rollout",
            "description": "first then second",
            "packages": [p1, p2],
            "all": true,
            "start_at": "2025-03-01 10:00",
            "end_at": "2025-03-02T00:00:00Z",
            "priority": 3,
            "ip_ranges": "10.0.0.0/8",
            "time_frames": "SAT 0:00-23:59",
            "sequence": "abort_after_failed",
            "retries": 2,
            "retry_backoff": "10m",
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("office-rollout-"), "{id}");
    assert_eq!(created["name"], "Office rollout");
    assert_eq!(created["description"], "first then second");
    // A local time is read in central.toml's time zone (UTC here).
    assert_eq!(created["start_at"], "2025-03-01T10:00:00Z");
    assert_eq!(created["end_at"], "2025-03-02T00:00:00Z");
    assert_eq!(created["priority"], 3);
    assert_eq!(created["ip_ranges"], "10.0.0.0/8");
    assert_eq!(created["time_frames"], "SAT 0:00-23:59");
    assert_eq!(created["sequence"], "abort_after_failed");
    assert_eq!(created["retries"], 2);
    assert_eq!(created["retry_backoff"], "10m");
    assert_eq!(created["auto_uninstall"], true);
    assert_eq!(created["state"], "waiting");
    assert_eq!(created["counts"], json!({"WAITING_NOTIFICATION": 4}));
    assert_eq!(
        created["runtimes"],
        json!({"total_s": null, "effective_s": null, "finished": false})
    );
    for agent in [&a, &b] {
        assert_eq!(
            jobs_of(&created, &agent.id),
            vec![
                job(&p1, "WAITING_NOTIFICATION"),
                job(&p2, "WAITING_NOTIFICATION")
            ]
        );
    }
    let first = &created["jobs"][0];
    assert_eq!(first["order"], 1);
    assert_eq!(first["kind"], "install");
    assert_eq!(first["package_name"], "first");
    assert_eq!(first["package_version"], "1");
    assert_eq!(first["attempts"], 0);

    // Listed without jobs; shown with them, as created.
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0].get("jobs").is_none(), "{list}");
    assert_eq!(c.show_container(&id).await, created);

    // Deleted: gone, and its jobs with it.
    let r = c.admin_delete(&format!("/api/v1/containers/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    c.admin_get(&format!("/api/v1/containers/{id}"))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["container", &id]);
    c.admin_delete(&format!("/api/v1/containers/{id}"))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["container", &id]);
    c.set_time(T1);
    assert_eq!(c.handed(&a).await, vec![]);
    assert_eq!(c.stats(&p1).await["counts"], json!({}));
    assert_eq!(
        c.show_computer(&a.id).await.ok(StatusCode::OK)["jobs"],
        json!([])
    );
}

#[tokio::test]
async fn bad_containers_are_refused_naming_the_field_or_token() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let base = json!({"name": "n", "packages": [p], "computers": [a.id]});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (body, words) in [
        (
            with("ip_ranges", json!("10.0.0.0/33")),
            vec!["ip_ranges", "10.0.0.0/33"],
        ),
        (
            with("ip_ranges", json!("10.0.0.0/8,nonsense")),
            vec!["ip_ranges", "nonsense"],
        ),
        (
            with("time_frames", json!("MON 25:00-26:00")),
            vec!["time_frames", "25:00"],
        ),
        (
            with("time_frames", json!("XYZ 1:00-2:00")),
            vec!["time_frames", "XYZ"],
        ),
        (
            with("start_at", json!("tomorrow")),
            vec!["start_at", "tomorrow"],
        ),
        (
            with("end_at", json!("2025-02-30 10:00")),
            vec!["end_at", "2025-02-30"],
        ),
        (
            with("end_at", json!("2025-03-01T08:00:00Z")),
            vec!["end_at", "after start_at"],
        ),
        (with("sequence", json!("abort")), vec!["sequence", "abort"]),
        (with("retries", json!(1000)), vec!["retries", "1000"]),
        (
            with("retry_backoff", json!("soon")),
            vec!["retry_backoff", "soon"],
        ),
        (with("name", json!("  ")), vec!["name"]),
        (with("packages", json!([])), vec!["packages", "empty"]),
        (with("packages", json!([p, p])), vec!["packages", "twice"]),
        (with("wake_on_lan", json!(true)), vec!["wake_on_lan"]),
        (
            with("all", json!(true)),
            vec!["computers", "does not combine"],
        ),
        (
            json!({"name": "n", "packages": [p], "subnet": "10.9.0.0/16"}),
            vec!["computers", "no computer"],
        ),
        (
            json!({"name": "n", "packages": [p], "subnet": "10.9.0.0/99"}),
            vec!["subnet", "10.9.0.0/99"],
        ),
        (
            with("uninstall", json!(true)),
            vec!["packages", &p, "uninstall"],
        ),
    ] {
        c.create_container(body.clone())
            .await
            .err_naming(StatusCode::BAD_REQUEST, &words);
    }
    c.create_container(with("packages", json!(["nope"])))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package", "nope"]);
    c.create_container(with("computers", json!(["pc-gone"])))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["computer", "pc-gone"]);
    for route in ["/api/v1/containers/nope", "/api/v1/containers/nope/retry"] {
        let r = if route.ends_with("retry") {
            c.admin_post(route, &json!({})).await
        } else {
            c.admin_get(route).await
        };
        r.err_naming(StatusCode::NOT_FOUND, &["container", "nope"]);
    }
    // Agents may not touch containers.
    let r = c
        .send(
            Method::GET,
            "/api/v1/containers",
            Some(a.token.as_str()),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Nothing was created by any of it.
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn a_poll_honours_start_end_address_ranges_and_time_frames() {
    let c = Central::start().await;
    let site1 = c.given_agent("pc-1", &["127.1.0.5"]).await;
    let site2 = c.given_agent("pc-2", &["127.2.0.5"]).await;
    let p = c.package_id("app").await;

    // Ranges are matched against the address on the connection.
    c.given_container(json!({
        "name": "ranges", "packages": [p], "all": true,
        "ip_ranges": "!127.2.0.0/16,127.0.0.0/8",
    }))
    .await;
    assert_eq!(
        handed(&c.poll_from(&site1, "127.1.0.5").await),
        vec![install(&p)]
    );
    assert_eq!(handed(&c.poll_from(&site2, "127.2.0.5").await), vec![]);
    // Whatever the agent claims about itself.
    assert_eq!(handed(&c.poll_from(&site2, "127.2.0.5").await), vec![]);
    // No known address, no admission while there are ranges.
    assert_eq!(c.handed(&site2).await, vec![]);
    // IPv4 seen on a dual-stack socket.
    assert_eq!(
        handed(&c.poll_from(&site1, "::ffff:127.1.0.5").await),
        vec![install(&p)]
    );

    // Start and end (T0 is Saturday 2025-03-01 09:00 UTC).
    let q = c.given_command_package("later", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.given_container(json!({
        "name": "window", "packages": [q], "computers": [site2.id],
        "start_at": "2025-03-01T12:00:00Z", "end_at": "2025-03-01T14:00:00Z",
    }))
    .await;
    assert_eq!(c.handed(&site2).await, vec![]);
    c.set_time("2025-03-01T12:00:00Z");
    assert_eq!(c.handed(&site2).await, vec![install(&q)]);
    c.set_time("2025-03-01T14:00:00Z");
    assert_eq!(c.handed(&site2).await, vec![]);

    // Time frames on central's clock: weekday evenings only.
    let r = c.given_command_package("evening", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let framed = c
        .given_container(json!({
            "name": "frames", "packages": [r], "computers": [site2.id],
            "time_frames": "MON-FRI 18:00-23:59,!FRI 18:00-23:59",
        }))
        .await;
    assert_eq!(c.handed(&site2).await, vec![]);
    c.set_time("2025-03-07T19:00:00Z"); // a Friday: refused by the negation
    assert_eq!(c.handed(&site2).await, vec![]);
    c.set_time("2025-03-10T17:59:00Z"); // Monday, too early
    assert_eq!(c.handed(&site2).await, vec![]);
    let id = framed["id"].as_str().unwrap();
    assert_eq!(
        jobs_of(&c.show_container(id).await, &site2.id),
        vec![job(&r, "WAITING_NOTIFICATION")]
    );
    c.set_time("2025-03-10T18:00:00Z");
    assert_eq!(c.handed(&site2).await, vec![install(&r)]);
    assert_eq!(
        jobs_of(&c.show_container(id).await, &site2.id),
        vec![job(&r, "NOTIFIED")]
    );
}

#[tokio::test]
async fn a_poll_lists_higher_priority_containers_first_then_package_priority() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let pkg = |name: &'static str, priority: &'static str| {
        let c = &c;
        async move {
            c.given_command_package(name, priority).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (low, mid, high, urgent) = (
        pkg("low", "1").await,
        pkg("mid", "7").await,
        pkg("high", "9").await,
        pkg("urgent", "0").await,
    );
    for (name, package, priority) in [
        ("old", &low, 1),
        ("newer but higher", &high, 10),
        ("same priority", &mid, 1),
        ("urgent package", &urgent, 1),
    ] {
        c.given_container(json!({
            "name": name, "packages": [package], "computers": [a.id], "priority": priority,
        }))
        .await;
    }
    assert_eq!(
        c.handed(&a).await,
        vec![
            install(&high),
            install(&urgent),
            install(&low),
            install(&mid)
        ]
    );
}

#[tokio::test]
async fn jobs_run_in_order_and_abort_after_failed_stops_the_rest() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for name in ["one", "two", "three"] {
            v.push(
                c.given_command_package(name, "5").await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    };
    let abort = c
        .given_container(json!({
            "name": "abort", "packages": ids, "computers": [a.id],
            "sequence": "abort_after_failed",
        }))
        .await;
    let ignore = c
        .given_container(json!({
            "name": "ignore", "packages": ids, "computers": [b.id],
        }))
        .await;

    // One job at a time, in order.
    assert_eq!(c.handed(&a).await, vec![install(&ids[0])]);
    c.report(&a, &ids[0], json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![install(&ids[1])]);
    c.report(
        &a,
        &ids[1],
        json!({"code": "ERR_EXIT_CODE", "exit_code": 2}),
    )
    .await
    .ok(StatusCode::OK);
    // The third never runs: OCO's -8888.
    assert_eq!(c.handed(&a).await, vec![]);
    let shown = c.show_container(abort["id"].as_str().unwrap()).await;
    assert_eq!(
        jobs_of(&shown, &a.id),
        vec![
            job(&ids[0], "SUCCESS"),
            job(&ids[1], "ERR_EXIT_CODE"),
            job(&ids[2], "ERR_PREVIOUS_FAILED"),
        ]
    );
    assert!(shown["jobs"][2]["output"]
        .as_str()
        .unwrap()
        .contains(&ids[1]));
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["runtimes"]["finished"], true);
    assert_eq!(
        c.stats(&ids[2]).await["by_status"]["ERR_PREVIOUS_FAILED"],
        json!([a.id])
    );

    // With ignore_failed the sequence goes on after a failure.
    assert_eq!(c.handed(&b).await, vec![install(&ids[0])]);
    c.report(&b, &ids[0], json!({"code": "ERR_EXECUTE"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&b).await, vec![install(&ids[1])]);
    let shown = c.show_container(ignore["id"].as_str().unwrap()).await;
    assert_eq!(shown["state"], "running");
    assert_eq!(
        jobs_of(&shown, &b.id),
        vec![
            job(&ids[0], "ERR_EXECUTE"),
            job(&ids[1], "NOTIFIED"),
            job(&ids[2], "WAITING_NOTIFICATION"),
        ]
    );
}

#[tokio::test]
async fn failed_jobs_are_retried_with_back_off_and_by_hand() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.given_command_package("flaky", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = c
        .given_container(json!({
            "name": "retry", "packages": [p], "computers": [a.id],
            "retries": 2, "retry_backoff": "1m",
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let fail = json!({"code": "ERR_EXIT_CODE", "exit_code": 1, "output": "boom"});

    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, fail.clone()).await.ok(StatusCode::OK);
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["status"], "WAITING_NOTIFICATION");
    assert_eq!(j["attempts"], 1);
    assert_eq!(j["output"], "boom");
    assert_eq!(time_of(&j["retry_at"]), ts("2025-03-01T09:01:00Z"));
    // Not before its time.
    assert_eq!(c.handed(&a).await, vec![]);
    c.set_time("2025-03-01T09:01:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, fail.clone()).await.ok(StatusCode::OK);
    // The wait doubles.
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["attempts"], 2);
    assert_eq!(time_of(&j["retry_at"]), ts("2025-03-01T09:03:00Z"));
    c.set_time("2025-03-01T09:03:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, fail.clone()).await.ok(StatusCode::OK);
    // Out of retries: failed for good.
    let shown = c.show_container(&id).await;
    assert_eq!(shown["jobs"][0]["status"], "ERR_EXIT_CODE");
    assert_eq!(shown["jobs"][0]["attempts"], 3);
    assert_eq!(shown["jobs"][0]["retry_at"], Value::Null);
    assert_eq!(shown["state"], "failed");
    c.set_time("2025-03-01T10:00:00Z");
    assert_eq!(c.handed(&a).await, vec![]);

    // By hand: the failed job starts over, and this time it works.
    let r = c
        .admin_post(&format!("/api/v1/containers/{id}/retry"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r, json!({"container_id": id, "jobs": 1}));
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["status"], "WAITING_NOTIFICATION");
    assert_eq!(j["attempts"], 0);
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(shown["state"], "succeeded");
    // Nothing failed is left to renew.
    let r = c
        .admin_post(&format!("/api/v1/containers/{id}/retry"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["jobs"], 0);
}

#[tokio::test]
async fn cancel_stops_the_jobs_not_started_and_lets_running_ones_finish() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let d = c.given_agent("pc-d", &["10.1.0.7"]).await;
    let p = c.package_id("app").await;
    let created = c
        .given_container(json!({
            "name": "cancel me", "packages": [p], "all": true, "retries": 3,
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    c.handed(&a).await;
    c.report(&a, &p, json!({"code": "DOWNLOADING", "fragments_done": 0}))
        .await
        .ok(StatusCode::OK);
    c.handed(&b).await;

    let r = c
        .admin_post(&format!("/api/v1/containers/{id}/cancel"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r, json!({"container_id": id, "jobs": 2}));
    let shown = c.show_container(&id).await;
    assert_eq!(shown["state"], "cancelled");
    assert!(shown["cancelled_at"].is_string());
    assert_eq!(jobs_of(&shown, &a.id), vec![job(&p, "DOWNLOADING")]);
    assert_eq!(jobs_of(&shown, &b.id), vec![job(&p, "ERR_ABORTED")]);
    assert_eq!(jobs_of(&shown, &d.id), vec![job(&p, "ERR_ABORTED")]);
    // The download under way goes on; the others are not handed out.
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    assert_eq!(c.handed(&b).await, vec![]);
    assert_eq!(c.handed(&d).await, vec![]);
    // A late progress report does not bring a cancelled job back.
    c.report(&b, &p, json!({"code": "DOWNLOADING"}))
        .await
        .ok(StatusCode::OK);
    // A failure after the cancel is not retried.
    c.report(&a, &p, json!({"code": "ERR_EXIT_CODE", "exit_code": 1}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(jobs_of(&shown, &a.id), vec![job(&p, "ERR_EXIT_CODE")]);
    assert_eq!(jobs_of(&shown, &b.id), vec![job(&p, "ERR_ABORTED")]);
    assert_eq!(shown["runtimes"]["finished"], true);
}

#[tokio::test]
async fn uninstall_jobs_and_what_central_believes_is_installed() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let v1 = c.given_uninstallable("editor", "1").await;
    let v2 = c.given_uninstallable("editor", "2").await;
    let other = c.given_uninstallable("viewer", "1").await;
    let plain = c.given_command_package("plain", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let installed = |detail: &Value| -> Vec<String> {
        detail["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["installed"] == true)
            .map(|p| p["package_id"].as_str().unwrap().to_owned())
            .collect()
    };

    c.given_container(json!({"name": "v1", "packages": [v1, other], "computers": [a.id]}))
        .await;
    for p in [&v1, &other] {
        assert_eq!(c.handed(&a).await, vec![install(p)]);
        c.report(&a, p, json!({"code": "SUCCESS", "exit_code": 0}))
            .await
            .ok(StatusCode::OK);
    }
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), vec![v1.clone(), other.clone()]);
    assert_eq!(time_of(&detail["packages"][0]["installed_at"]), ts(T0));

    // Installing v2 first uninstalls v1 (and leaves the other name alone).
    let upgrade = c
        .given_container(json!({"name": "v2", "packages": [v2], "computers": [a.id]}))
        .await;
    assert_eq!(
        jobs_of(&upgrade, &a.id),
        vec![
            job(&v1, "WAITING_NOTIFICATION"),
            job(&v2, "WAITING_NOTIFICATION")
        ]
    );
    assert_eq!(upgrade["jobs"][0]["kind"], "uninstall");
    assert_eq!(c.handed(&a).await, vec![uninstall(&v1)]);
    // The agent may fetch the info it needs to uninstall.
    c.agent_info(&a, &v1).await.ok(StatusCode::OK);
    c.report(&a, &v1, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![install(&v2)]);
    c.report(&a, &v2, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), vec![v2.clone(), other.clone()]);
    // The uninstall job is not a line of v1's deployment statistics.
    assert_eq!(c.stats(&v1).await["counts"], json!({"SUCCESS": 1}));

    // Without auto_uninstall, only the install.
    let again = c
        .given_container(json!({
            "name": "v1 again", "packages": [v1], "computers": [a.id], "auto_uninstall": false,
        }))
        .await;
    assert_eq!(
        jobs_of(&again, &a.id),
        vec![job(&v1, "WAITING_NOTIFICATION")]
    );
    c.admin_delete(&format!(
        "/api/v1/containers/{}",
        again["id"].as_str().unwrap()
    ))
    .await;

    // An uninstall container; a failed uninstall leaves the package installed.
    let removal = c
        .given_container(json!({
            "name": "remove", "packages": [v2, other], "computers": [a.id], "uninstall": true,
        }))
        .await;
    assert_eq!(c.handed(&a).await, vec![uninstall(&v2)]);
    c.report(&a, &v2, json!({"code": "ERR_EXIT_CODE", "exit_code": 1603}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![uninstall(&other)]);
    c.report(&a, &other, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), vec![v2.clone()]);
    assert_eq!(
        c.show_container(removal["id"].as_str().unwrap()).await["state"],
        "failed"
    );
    // Remove assignment: forgotten without running anything.
    let r = c.remove_assignment(&a.id, &v2).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), Vec::<String>::new());
    assert_eq!(c.handed(&a).await, vec![]);

    // A package with no uninstall procedure cannot be uninstalled.
    c.create_container(json!({
        "name": "x", "packages": [plain], "computers": [a.id], "uninstall": true,
    }))
    .await
    .err_naming(StatusCode::BAD_REQUEST, &[&plain, "no uninstall procedure"]);
}

#[tokio::test]
async fn a_report_settles_only_a_job_central_handed_out() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let id = c
        .given_container(json!({
            "name": "later", "packages": [p], "all": true,
            "start_at": "2025-03-02T00:00:00Z",
        }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not started: nothing handed out, so nothing to report on.
    assert_eq!(c.handed(&a).await, vec![]);
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["job", &p, &a.id]);
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["status"], "WAITING_NOTIFICATION");
    assert_eq!(
        c.show_computer(&a.id).await.ok(StatusCode::OK)["packages"][0]["installed"],
        false
    );
    c.set_time("2025-03-02T00:00:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.show_container(&id).await["state"], "succeeded");
}

#[tokio::test]
async fn runtimes_are_total_from_the_start_and_effective_from_the_first_job() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let p = c.package_id("app").await;
    let id = c
        .given_container(json!({"name": "rt", "packages": [p], "all": true}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // pc-a comes online 30 minutes after the start and takes 10 minutes.
    c.set_time("2025-03-01T09:30:00Z");
    c.handed(&a).await;
    c.set_time("2025-03-01T09:40:00Z");
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(
        shown["runtimes"],
        json!({"total_s": 2400, "effective_s": 600, "finished": false})
    );
    c.set_time("2025-03-01T10:00:00Z");
    c.handed(&b).await;
    c.set_time("2025-03-01T10:05:00Z");
    c.report(&b, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(
        shown["runtimes"],
        json!({"total_s": 3900, "effective_s": 2100, "finished": true})
    );
    assert_eq!(shown["state"], "succeeded");
}

#[tokio::test]
async fn package_assign_is_a_container_with_defaults() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let pkg = c.given_command_package("app", "5").await;
    let p = pkg["id"].as_str().unwrap();
    let r = c.assign(p, json!({"all": true})).await.ok(StatusCode::OK);
    let id = r["container_id"].as_str().unwrap();
    let shown = c.show_container(id).await;
    assert_eq!(shown["name"], "app 1");
    assert_eq!(shown["priority"], 0);
    assert_eq!(shown["sequence"], "ignore_failed");
    assert_eq!(shown["ip_ranges"], Value::Null);
    assert_eq!(shown["time_frames"], Value::Null);
    assert_eq!(shown["end_at"], Value::Null);
    assert_eq!(time_of(&shown["start_at"]), ts(T0));
    assert_eq!(jobs_of(&shown, &a.id), vec![job(p, "WAITING_NOTIFICATION")]);
    // Nobody needs a new job: no container.
    let r = c.assign(p, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(r["container_id"], Value::Null);
    assert_eq!(
        c.admin_get("/api/v1/containers")
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn finished_containers_are_purged_after_their_ages() {
    let c = Central::start_with_config(|toml| {
        toml.replace(
            "purge_succeeded_after = \"30d\"",
            "purge_succeeded_after = \"1d\"",
        )
        .replace(
            "purge_failed_after = \"never\"",
            "purge_failed_after = \"3d\"",
        )
    })
    .await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let make = |name: &'static str| {
        let c = &c;
        let body = json!({"name": name, "packages": [p], "computers": [a.id]});
        async move {
            c.given_container(body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ok = make("ok").await;
    c.handed(&a).await;
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    let bad = make("bad").await;
    c.handed(&a).await;
    c.report(&a, &p, json!({"code": "ERR_EXECUTE"}))
        .await
        .ok(StatusCode::OK);
    let pending = make("pending").await;

    assert_eq!(c.purge(), Vec::<String>::new());
    c.set_time("2025-03-02T09:00:00Z");
    assert_eq!(c.purge(), vec![ok.clone()]);
    c.set_time("2025-03-04T08:59:59Z");
    assert_eq!(c.purge(), Vec::<String>::new());
    c.set_time("2025-03-04T09:00:00Z");
    assert_eq!(c.purge(), vec![bad.clone()]);
    // Unfinished containers stay, whatever their age.
    c.set_time("2026-03-04T09:00:00Z");
    assert_eq!(c.purge(), Vec::<String>::new());
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], pending.as_str());
}
