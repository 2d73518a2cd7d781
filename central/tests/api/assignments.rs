//! Assignments of packages to computers, their statistics, and validation
//! (OCS "Validate success", "Unaffect not notified", "Validate all").

use crate::harness::*;

#[tokio::test]
async fn assignments_by_computer_subnet_or_all_start_waiting_for_notification() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6", "192.168.1.6"]).await;
    let d = c.given_agent("pc-d", &["10.2.0.5"]).await;

    let r = c
        .assign(id, json!({"computers": [a.id, a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["package_id"], id);
    assert_eq!(ids(&r["assigned"]), sorted(&[&a.id]));
    assert_eq!(r["unchanged"], json!([]));

    let r = c
        .assign(id, json!({"subnet": "10.1.0.0/16"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&b.id]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id]));

    let r = c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&d.id]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id, &b.id]));

    // A subnet with nobody in it assigns nobody.
    let r = c
        .assign(id, json!({"subnet": "172.16.0.0/12"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["assigned"], json!([]));
    assert_eq!(r["unchanged"], json!([]));

    let stats = c.stats(id).await;
    assert_eq!(stats["counts"], json!({"WAITING_NOTIFICATION": 3}));
    let computers = stats["computers"].as_array().unwrap();
    assert_eq!(computers.len(), 3);
    for s in computers {
        assert_eq!(s["status"], "WAITING_NOTIFICATION");
        assert_eq!(s["exit_code"], Value::Null);
        assert_eq!(s["output"], Value::Null);
        assert_eq!(time_of(&s["updated_at"]), ts(T0));
    }
    let b_stat = c.stat_of(id, &b).await;
    assert_eq!(b_stat["hostname"], "pc-b");
}

#[tokio::test]
async fn bad_assignments_name_the_field() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;

    c.assign(id, json!({"subnet": "10.0.0.0/33"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnet", "10.0.0.0/33"]);
    c.assign(id, json!({"computers": [a.id, "pc-nobody-000000"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["pc-nobody-000000"]);
    c.assign(id, json!({"computers": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computers"]);
    c.assign(id, json!({"computers": [a.id], "all": true}))
        .await
        .err(StatusCode::BAD_REQUEST);
    // Filters combine (search, then deploy); all:false alone chooses no one.
    c.assign(id, json!({"all": false}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["choose computers"]);
    c.assign(id, json!({})).await.err(StatusCode::BAD_REQUEST);
    c.assign(id, json!({"all": "yes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all"]);
    c.assign(id, json!({"computers": a.id}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computers"]);
    c.assign("no-such-package", json!({"all": true}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
    // Nothing was assigned by the failed requests.
    assert_eq!(c.stats(id).await["computers"], json!([]));
}

#[tokio::test]
async fn reassigning_leaves_deployments_under_way_and_restarts_finished_ones() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);

    // Waiting and notified assignments are under way.
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    let r = c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(r["assigned"], json!([]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id, &b.id]));
    assert_eq!(c.stat_of(id, &a).await["status"], "NOTIFIED");
    assert_eq!(c.stat_of(id, &b).await["status"], "WAITING_NOTIFICATION");

    // So is a download.
    c.report(&a, id, json!({"code": "DOWNLOADING", "fragments_done": 0}))
        .await
        .ok(StatusCode::OK);
    let r = c
        .assign(id, json!({"computers": [a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id]));
    assert_eq!(c.stat_of(id, &a).await["status"], "DOWNLOADING");

    // A finished one (success or failure) starts over.
    c.report(
        &a,
        id,
        json!({"code": "SUCCESS", "exit_code": 0, "output": "done"}),
    )
    .await
    .ok(StatusCode::OK);
    c.poll(&b, &[]).await.ok(StatusCode::OK);
    c.report(
        &b,
        id,
        json!({"code": "ERR_EXECUTE", "output": "sh: not found"}),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        c.poll(&a, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
    c.set_time(T1);
    let r = c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&a.id, &b.id]));
    assert_eq!(r["unchanged"], json!([]));
    let stats = c.stats(id).await;
    assert_eq!(stats["counts"], json!({"WAITING_NOTIFICATION": 2}));
    for s in stats["computers"].as_array().unwrap() {
        assert_eq!(s["exit_code"], Value::Null, "{s}");
        assert_eq!(s["output"], Value::Null, "{s}");
        assert_eq!(time_of(&s["updated_at"]), ts(T1));
    }
    let poll = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], id);
}

// ---------------------------------------------------------------------------
// Validation (OCS "Validate success", "Unaffect not notified", "Validate all")
// ---------------------------------------------------------------------------

/// One agent per status a package's statistics can show after a deployment.
struct EveryStatus {
    package: String,
    waiting: Agent,
    notified: Agent,
    success: Agent,
    already: Agent,
    failed: Agent,
}

impl Central {
    async fn validate(&self, id: &str, body: Value) -> Reply {
        self.admin_post(&format!("/api/v1/packages/{id}/validate"), &body)
            .await
    }

    /// A package assigned to five computers, one in each of `WAITING_NOTIFICATION`
    /// (never polled), `NOTIFIED`, `SUCCESS`, `ERR_ALREADY_SETUP` and `ERR_EXIT_CODE`.
    async fn given_every_status(&self) -> EveryStatus {
        let pkg = self.given_command_package("app", "5").await;
        let package = pkg["id"].as_str().unwrap().to_owned();
        let waiting = self.given_agent("pc-waiting", &["10.1.0.1"]).await;
        let notified = self.given_agent("pc-notified", &["10.1.0.2"]).await;
        let success = self.given_agent("pc-success", &["10.1.0.3"]).await;
        let already = self.given_agent("pc-already", &["10.1.0.4"]).await;
        let failed = self.given_agent("pc-failed", &["10.1.0.5"]).await;
        self.assign(&package, json!({"all": true}))
            .await
            .ok(StatusCode::OK);
        for (agent, report) in [
            (&notified, None),
            (
                &success,
                Some(json!({"code": "SUCCESS", "exit_code": 0, "output": "ok"})),
            ),
            (&already, Some(json!({"code": "ERR_ALREADY_SETUP"}))),
            (
                &failed,
                Some(json!({"code": "ERR_EXIT_CODE", "exit_code": 3, "output": "no"})),
            ),
        ] {
            self.poll(agent, &[]).await.ok(StatusCode::OK);
            if let Some(body) = report {
                self.report(agent, &package, body).await.ok(StatusCode::OK);
            }
        }
        EveryStatus {
            package,
            waiting,
            notified,
            success,
            already,
            failed,
        }
    }
}

#[tokio::test]
async fn stats_list_the_computers_in_each_status() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let stats = c.stats(&s.package).await;
    assert_eq!(
        stats["counts"],
        json!({"WAITING_NOTIFICATION": 1, "NOTIFIED": 1, "SUCCESS": 1,
               "ERR_ALREADY_SETUP": 1, "ERR_EXIT_CODE": 1})
    );
    assert_eq!(
        stats["by_status"],
        json!({
            "WAITING_NOTIFICATION": [s.waiting.id],
            "NOTIFIED": [s.notified.id],
            "SUCCESS": [s.success.id],
            "ERR_ALREADY_SETUP": [s.already.id],
            "ERR_EXIT_CODE": [s.failed.id],
        })
    );
    assert_eq!(stats["computers"].as_array().unwrap().len(), 5);

    // Several computers in one status are all listed; no assignment, no lists.
    let other = c.given_command_package("other", "5").await;
    let other = other["id"].as_str().unwrap();
    assert_eq!(c.stats(other).await["by_status"], json!({}));
    c.assign(other, json!({"all": true}))
        .await
        .ok(StatusCode::OK);
    let listed = c.stats(other).await;
    assert_eq!(
        ids(&listed["by_status"]["WAITING_NOTIFICATION"]),
        sorted(&[
            &s.waiting.id,
            &s.notified.id,
            &s.success.id,
            &s.already.id,
            &s.failed.id
        ])
    );
}

#[tokio::test]
async fn validate_success_clears_only_computers_where_the_package_is_in_place() {
    let mut c = Central::start().await;
    let s = c.given_every_status().await;
    let r = c
        .validate(&s.package, json!({"what": "success"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        r,
        json!({"package_id": s.package, "removed": {"SUCCESS": 1, "ERR_ALREADY_SETUP": 1},
               "remaining": 3})
    );
    let stats = c.stats(&s.package).await;
    assert_eq!(
        stats["counts"],
        json!({"WAITING_NOTIFICATION": 1, "NOTIFIED": 1, "ERR_EXIT_CODE": 1})
    );
    assert_eq!(
        stats["by_status"],
        json!({
            "WAITING_NOTIFICATION": [s.waiting.id],
            "NOTIFIED": [s.notified.id],
            "ERR_EXIT_CODE": [s.failed.id],
        })
    );
    let listed: Vec<&str> = stats["computers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["computer_id"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&s.success.id.as_str()), "{stats}");
    assert!(!listed.contains(&s.already.id.as_str()), "{stats}");

    // The waiting computer still gets the package; validating again removes nothing.
    let poll = c.poll(&s.waiting, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.package.as_str());
    let again = c
        .validate(&s.package, json!({"what": "success"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        again,
        json!({"package_id": s.package, "removed": {}, "remaining": 3})
    );

    // What was acknowledged survives a restart.
    c.restart_with_db(|_| {});
    assert_eq!(
        c.stats(&s.package).await["counts"],
        json!({"NOTIFIED": 2, "ERR_EXIT_CODE": 1})
    );
}

#[tokio::test]
async fn validate_not_notified_unassigns_computers_that_never_polled() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let r = c
        .validate(&s.package, json!({"what": "not_notified"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        r,
        json!({"package_id": s.package, "removed": {"WAITING_NOTIFICATION": 1},
               "remaining": 4})
    );
    let stats = c.stats(&s.package).await;
    assert_eq!(
        stats["counts"],
        json!({"NOTIFIED": 1, "SUCCESS": 1, "ERR_ALREADY_SETUP": 1, "ERR_EXIT_CODE": 1})
    );
    assert_eq!(stats["by_status"].get("WAITING_NOTIFICATION"), None);

    // The unassigned computer will not get the package; the notified one still does.
    assert_eq!(
        c.poll(&s.waiting, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
    let poll = c.poll(&s.notified, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.package.as_str());
}

#[tokio::test]
async fn validate_all_is_success_plus_not_notified() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let r = c
        .validate(&s.package, json!({"what": "all"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        r,
        json!({"package_id": s.package,
               "removed": {"WAITING_NOTIFICATION": 1, "SUCCESS": 1, "ERR_ALREADY_SETUP": 1},
               "remaining": 2})
    );
    let stats = c.stats(&s.package).await;
    assert_eq!(stats["counts"], json!({"NOTIFIED": 1, "ERR_EXIT_CODE": 1}));
    assert_eq!(
        stats["by_status"],
        json!({"NOTIFIED": [s.notified.id], "ERR_EXIT_CODE": [s.failed.id]})
    );
    assert_eq!(
        c.poll(&s.waiting, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
}

#[tokio::test]
async fn a_validated_computer_can_be_assigned_again_and_starts_waiting() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    c.validate(&s.package, json!({"what": "all"}))
        .await
        .ok(StatusCode::OK);
    c.set_time(T1);
    let r = c
        .assign(
            &s.package,
            json!({"computers": [s.success.id, s.waiting.id, s.notified.id]}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&s.success.id, &s.waiting.id]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&s.notified.id]));
    for agent in [&s.success, &s.waiting] {
        let st = c.stat_of(&s.package, agent).await;
        assert_eq!(st["status"], "WAITING_NOTIFICATION", "{st}");
        assert_eq!(st["exit_code"], Value::Null, "{st}");
        assert_eq!(st["output"], Value::Null, "{st}");
        assert_eq!(time_of(&st["updated_at"]), ts(T1));
    }
    let poll = c.poll(&s.success, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.package.as_str());
    assert_eq!(
        c.stat_of(&s.package, &s.success).await["status"],
        "NOTIFIED"
    );
}

#[tokio::test]
async fn bad_validations_name_what_and_change_nothing() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let before = c.stats(&s.package).await;

    c.validate(&s.package, json!({"what": "everything"}))
        .await
        .err_naming(
            StatusCode::BAD_REQUEST,
            &["what", "everything", "success", "not_notified", "all"],
        );
    c.validate(&s.package, json!({"what": "SUCCESS"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["what", "SUCCESS"]);
    c.validate(&s.package, json!({}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["what"]);

    // An unknown package is 404, naming it.
    c.validate("no-such-package", json!({"what": "all"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);

    // An agent's token is refused on this admin route; no token is 401.
    let path = format!("/api/v1/packages/{}/validate", s.package);
    let body = json!({"what": "all"});
    c.send_json(Method::POST, &path, Some(s.success.token.as_str()), &body)
        .await
        .err(StatusCode::FORBIDDEN);
    c.send_json(Method::POST, &path, None, &body)
        .await
        .err(StatusCode::UNAUTHORIZED);

    assert_eq!(c.stats(&s.package).await, before);
}

#[tokio::test]
async fn final_reports_carry_the_bytes_per_source_and_stats_sum_them_per_site() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.1:8080")
        .await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.9.0.5"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    c.poll(&b, &[]).await.ok(StatusCode::OK);

    let reply = c
        .report(
            &a,
            id,
            json!({"code": "SUCCESS", "sources": [{"relay_id": relay, "bytes": 100}]}),
        )
        .await
        .ok(StatusCode::OK);
    let from_relay = json!([{"relay_id": relay, "bytes": 100}]);
    assert_eq!(reply["sources"], from_relay);
    c.report(
        &b,
        id,
        json!({"code": "SUCCESS", "sources": [{"relay_id": null, "bytes": 100}]}),
    )
    .await
    .ok(StatusCode::OK);
    // A report without sources (progress, late) keeps what was reported; a second
    // final report is refused outright.
    c.report(&a, id, json!({"code": "DOWNLOADING"}))
        .await
        .ok(StatusCode::OK);
    c.report(&a, id, json!({"code": "SUCCESS"}))
        .await
        .err(StatusCode::CONFLICT);
    assert_eq!(c.stat_of(id, &a).await["sources"], from_relay);
    assert_eq!(
        c.stat_of(id, &b).await["sources"],
        json!([{"relay_id": null, "bytes": 100}])
    );
    assert_eq!(
        c.stats(id).await["sites"],
        json!([
            {"site": "paris", "computers": 1, "bytes_from_relays": 100,
             "bytes_from_central": 0, "relays": {relay.as_str(): 1}},
            {"site": null, "computers": 1, "bytes_from_relays": 0,
             "bytes_from_central": 100, "relays": {}},
        ])
    );

    // A source that is not a relay id is refused, naming the field.
    c.report(
        &a,
        id,
        json!({"code": "SUCCESS", "sources": [{"relay_id": "../x", "bytes": 1}]}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["sources"]);
}
