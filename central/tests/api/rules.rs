//! Deployment rules: a package group deployed to a group, kept in step with
//! members and what is installed (SPEC "Rules, groups, power, users").

use crate::harness::*;

impl Central {
    async fn given_rule(&self, body: Value) -> Value {
        self.admin_post("/api/v1/rules", &body)
            .await
            .ok(StatusCode::CREATED)
    }

    async fn show_rule(&self, id: &str) -> Value {
        self.admin_get(&format!("/api/v1/rules/{id}"))
            .await
            .ok(StatusCode::OK)
    }

    pub(crate) async fn package_id(&self, name: &str) -> String {
        self.given_command_package(name, "5").await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn succeed(&self, agent: &Agent, package: &str) {
        self.report(agent, package, json!({"code": "SUCCESS", "exit_code": 0}))
            .await
            .ok(StatusCode::OK);
    }
}

/// Whether the rule has no job on the computer (a rule without any lists none).
fn no_jobs(rule: &Value, computer: &str) -> bool {
    rule.get("jobs").is_none() || jobs_of(rule, computer).is_empty()
}

fn rule_id(rule: &Value) -> String {
    rule["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rule_is_created_disabled_and_hands_out_its_jobs_once_enabled() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p1 = c.package_id("one").await;
    c.given_group(json!({"name": "pilots", "computers": [a.id]}))
        .await;
    c.given_package_group("base", &[&p1]).await;
    let rule = c
        .given_rule(json!({"name": "base for pilots", "group": "pilots", "package_group": "base", "priority": 3}))
        .await;
    let id = rule_id(&rule);
    assert_eq!(rule["enabled"], false);
    assert_eq!(rule["auto_uninstall"], true);
    assert_eq!(rule["computers"], 1);
    assert_eq!(rule["priority"], 3);
    assert_eq!(
        jobs_of(&rule, &a.id),
        vec![job(&p1, "WAITING_NOTIFICATION")]
    );
    // Disabled: its jobs are there to check, not handed out.
    assert!(c.handed(&a).await.is_empty());
    let rule = c
        .admin_post(&format!("/api/v1/rules/{id}/enable"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(rule["enabled"], true);
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    c.succeed(&a, &p1).await;
    let rule = c.show_rule(&id).await;
    assert_eq!(jobs_of(&rule, &a.id), vec![job(&p1, "SUCCESS")]);
    assert_eq!(rule["counts"], json!({"SUCCESS": 1}));
    // A rule is no job container of the admin's: not listed, not purged.
    let containers = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(containers, json!([]));
    c.admin_get(&format!("/api/v1/containers/{id}"))
        .await
        .err(StatusCode::NOT_FOUND);
    c.set_time("2030-01-01T00:00:00Z");
    assert!(c.purge().is_empty());
    let list = c.admin_get("/api/v1/rules").await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    // Enabled at creation when asked.
    let other = c
        .given_rule(json!({"name": "now", "tags": ["x"], "package_group": "base", "enabled": true}))
        .await;
    assert_eq!(other["enabled"], true);
    assert_eq!(other["computers"], 0);
    c.admin_post(&format!("/api/v1/rules/{id}/disable"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.show_rule(&id).await["enabled"], false);
    assert_eq!(
        c.admin_delete(&format!("/api/v1/rules/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    c.admin_get(&format!("/api/v1/rules/{id}"))
        .await
        .err(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rule_follows_its_groups_and_what_is_installed() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let p1 = c.given_uninstallable("one", "1").await;
    let p2 = c.given_uninstallable("two", "1").await;
    c.given_group(json!({"name": "pilots", "computers": [a.id]}))
        .await;
    c.given_package_group("base", &[&p1]).await;
    let id = rule_id(
        &c.given_rule(
            json!({"name": "r", "group": "pilots", "package_group": "base", "enabled": true}),
        )
        .await,
    );

    // A computer added to the group gets its job at once, and loses it if it
    // leaves before it was handed out.
    c.admin_post(
        "/api/v1/groups/pilots/members",
        &json!({"computers": [b.id]}),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        jobs_of(&c.show_rule(&id).await, &b.id),
        vec![job(&p1, "WAITING_NOTIFICATION")]
    );
    c.admin_delete(&format!("/api/v1/groups/pilots/members/{}", b.id))
        .await
        .ok(StatusCode::OK);
    assert!(jobs_of(&c.show_rule(&id).await, &b.id).is_empty());

    // A package added to the group is deployed.
    c.admin_post(
        "/api/v1/package-groups/base/members",
        &json!({"packages": [p2]}),
    )
    .await
    .ok(StatusCode::OK);
    // One container, one job at a time, in order.
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    c.succeed(&a, &p1).await;
    assert_eq!(c.handed(&a).await, vec![install(&p2)]);
    c.succeed(&a, &p2).await;
    assert!(c.handed(&a).await.is_empty());

    // A package removed from the group is uninstalled where the rule put it.
    c.admin_delete(&format!("/api/v1/package-groups/base/members/{p1}"))
        .await
        .ok(StatusCode::OK);
    let rule = c.show_rule(&id).await;
    assert_eq!(
        jobs_of(&rule, &a.id),
        vec![
            job(&p1, "SUCCESS"),
            job(&p2, "SUCCESS"),
            job(&p1, "WAITING_NOTIFICATION")
        ]
    );
    assert_eq!(c.handed(&a).await, vec![uninstall(&p1)]);
    c.succeed(&a, &p1).await;
    assert!(c.handed(&a).await.is_empty());

    // "Remove assignment" of a package the rule wants: the rule makes its job again.
    let r = c
        .admin_delete(&format!("/api/v1/computers/{}/packages/{p2}", a.id))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(c.handed(&a).await, vec![install(&p2)]);
}

#[tokio::test]
async fn a_dynamic_rule_takes_in_newly_enrolled_and_retagged_computers() {
    let c = Central::start().await;
    let p1 = c.package_id("one").await;
    c.given_package_group("base", &[&p1]).await;
    let id = rule_id(
        &c.given_rule(
            json!({"name": "kiosks", "tags": ["kiosk"], "package_group": "base", "enabled": true}),
        )
        .await,
    );
    let a = c.given_tagged_agent("pc-a", "10.1.0.5", &["KIOSK"]).await;
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    let b = c.given_tagged_agent("pc-b", "10.1.0.6", &[]).await;
    assert!(c.handed(&b).await.is_empty());
    c.admin_put(
        &format!("/api/v1/computers/{}/tags", b.id),
        &json!({"tags": ["kiosk"]}),
    )
    .await
    .ok(StatusCode::OK);
    let rule = c.show_rule(&id).await;
    assert_eq!(rule["computers"], 2);
    assert_eq!(
        jobs_of(&rule, &b.id),
        vec![job(&p1, "WAITING_NOTIFICATION")]
    );
    // A rule by subnet follows an agent that moves.
    let by_net = rule_id(
        &c.given_rule(json!({"name": "net", "subnets": ["10.9.0.0/16"], "package_group": "base"}))
            .await,
    );
    assert_eq!(c.show_rule(&by_net).await["computers"], 0);
    c.poll(&b, &["10.9.0.7"]).await.ok(StatusCode::OK);
    let rule = c.show_rule(&by_net).await;
    assert_eq!(rule["computers"], 1);
    assert_eq!(
        jobs_of(&rule, &b.id),
        vec![job(&p1, "WAITING_NOTIFICATION")]
    );
}

#[tokio::test]
async fn reevaluating_on_demand_starts_failed_jobs_over() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p1 = c.package_id("one").await;
    c.given_package_group("base", &[&p1]).await;
    let id = rule_id(
        &c.given_rule(
            json!({"name": "r", "hostnames": ["pc-*"], "package_group": "base", "enabled": true}),
        )
        .await,
    );
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    c.report(&a, &p1, json!({"code": "ERR_EXIT_CODE", "exit_code": 3}))
        .await
        .ok(StatusCode::OK);
    // Automatic re-evaluations leave a failed job failed: no loop on a broken package.
    c.admin_put(
        &format!("/api/v1/computers/{}/tags", a.id),
        &json!({"tags": ["x"]}),
    )
    .await
    .ok(StatusCode::OK);
    assert!(c.handed(&a).await.is_empty());
    let r = c
        .admin_post(&format!("/api/v1/rules/{id}/reevaluate"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        (
            r["added"].clone(),
            r["renewed"].clone(),
            r["removed"].clone()
        ),
        (json!(0), json!(1), json!(0))
    );
    assert_eq!(
        jobs_of(&r["rule"], &a.id),
        vec![job(&p1, "WAITING_NOTIFICATION")]
    );
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    c.admin_post("/api/v1/rules/nope-000000/reevaluate", &json!({}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["nope-000000"]);
}

#[tokio::test]
async fn rules_that_would_loop_are_refused_and_bad_rules_name_the_field() {
    let c = Central::start().await;
    let v1 = c.given_uninstallable("app", "1").await;
    let v2 = c.given_uninstallable("app", "2").await;
    c.given_group(json!({"name": "all", "subnets": ["0.0.0.0/0"]}))
        .await;
    c.given_package_group("both", &[&v1, &v2]).await;
    c.given_package_group("one", &[&v1]).await;
    let cr = &c;
    let post = |body: Value| async move { cr.admin_post("/api/v1/rules", &body).await };

    let e = post(json!({"name": "r", "group": "all", "package_group": "both"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["package_group", "'app'", "loop"]);
    assert!(e.contains(&v1) && e.contains(&v2), "{e}");
    // Without auto-uninstall the two versions cannot loop.
    post(json!({"name": "r", "group": "all", "package_group": "both", "auto_uninstall": false}))
        .await
        .ok(StatusCode::CREATED);
    // A group a rule deploys with auto-uninstall refuses a second version.
    let r = c
        .given_rule(json!({"name": "r2", "group": "all", "package_group": "one"}))
        .await;
    c.admin_post(
        "/api/v1/package-groups/one/members",
        &json!({"packages": [v2]}),
    )
    .await
    .err_naming(
        StatusCode::CONFLICT,
        &[&rule_id(&r), "loop", "remove the old one first"],
    );

    post(json!({"name": "r", "package_group": "one"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["group", "criteria"]);
    post(json!({"name": "r", "group": "nope", "package_group": "one"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["group", "nope"]);
    post(json!({"name": "r", "group": "all", "package_group": "nope"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package group", "nope"]);
    post(json!({"name": "r", "group": "all", "package_group": "one", "sequence": "sometimes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sequence", "sometimes"]);
    post(json!({"name": "", "group": "all", "package_group": "one"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    post(json!({"name": "r", "tags": ["a b"], "package_group": "one"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["tags", "a b"]);
    post(json!({"name": "r", "group": "all", "package_group": "one", "colour": "red"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["colour"]);

    // Groups a rule uses cannot be deleted under it.
    c.admin_delete("/api/v1/groups/all")
        .await
        .err_naming(StatusCode::CONFLICT, &["all", &rule_id(&r)]);
    c.admin_delete("/api/v1/package-groups/one")
        .await
        .err_naming(StatusCode::CONFLICT, &["one", &rule_id(&r)]);
}

#[tokio::test]
async fn two_rules_deploying_two_versions_of_a_name_never_undo_each_other() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.2.0.5"]).await;
    let v1 = c.given_uninstallable("app", "1").await;
    let v2 = c.given_uninstallable("app", "2").await;
    c.given_group(json!({"name": "all", "subnets": ["0.0.0.0/0"]}))
        .await;
    c.given_package_group("old", &[&v1]).await;
    c.given_package_group("new", &[&v2]).await;
    // Each group passes the loop check on its own.
    let old = rule_id(
        &c.given_rule(
            json!({"name": "old", "group": "all", "package_group": "old",
            "auto_uninstall": false, "enabled": true}),
        )
        .await,
    );
    for agent in [&a, &b] {
        assert_eq!(c.handed(agent).await, vec![install(&v1)]);
        c.succeed(agent, &v1).await;
    }
    // b leaves the old rule's computers before the new rule comes.
    c.admin_post(&format!("/api/v1/rules/{old}/disable"), &json!({}))
        .await
        .ok(StatusCode::OK);
    c.given_group(json!({"name": "a-only", "computers": [a.id]}))
        .await;
    let old_a = rule_id(
        &c.given_rule(
            json!({"name": "old for a", "group": "a-only", "package_group": "old",
            "auto_uninstall": false, "enabled": true}),
        )
        .await,
    );
    let new = rule_id(
        &c.given_rule(
            json!({"name": "new", "group": "all", "package_group": "new", "enabled": true}),
        )
        .await,
    );
    // On a, another enabled rule deploys v1: the new rule installs v2 beside it
    // instead of uninstalling v1 (which the old rule would put back, forever).
    assert_eq!(c.handed(&a).await, vec![install(&v2)]);
    c.succeed(&a, &v2).await;
    assert!(c.handed(&a).await.is_empty(), "settled");
    let rule = c.show_rule(&new).await;
    assert_eq!(jobs_of(&rule, &a.id), vec![job(&v2, "SUCCESS")]);
    assert!(no_jobs(&c.show_rule(&old_a).await, &a.id));
    // On b no enabled rule wants v1 (a disabled one protects nothing): it is
    // upgraded, the old version uninstalled first.
    assert_eq!(c.handed(&b).await, vec![uninstall(&v1)]);
    c.succeed(&b, &v1).await;
    assert_eq!(c.handed(&b).await, vec![install(&v2)]);
    c.succeed(&b, &v2).await;
    assert!(c.handed(&b).await.is_empty(), "settled");
}

#[tokio::test]
async fn only_jobs_under_way_or_still_to_be_handed_out_block_an_assignment() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("one").await;
    c.given_package_group("base", &[&p]).await;
    let rule = c
        .given_rule(json!({"name": "r", "hostnames": ["pc-*"], "package_group": "base"}))
        .await;
    assert_eq!(jobs_of(&rule, &a.id), vec![job(&p, "WAITING_NOTIFICATION")]);
    // The rule is disabled: its job waits for nothing, so assign makes one.
    let r = c
        .assign(&p, json!({"computers": [a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&a.id]), "{r}");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    // A job handed out is under way even if its rule is disabled since: a
    // second one would take over its reports.
    let t = c.package_id("three").await;
    c.given_package_group("third", &[&t]).await;
    let on = rule_id(
        &c.given_rule(
            json!({"name": "on", "hostnames": ["pc-*"], "package_group": "third",
            "enabled": true}),
        )
        .await,
    );
    assert!(c.handed(&a).await.contains(&install(&t)));
    c.admin_post(&format!("/api/v1/rules/{on}/disable"), &json!({}))
        .await
        .ok(StatusCode::OK);
    let r = c
        .assign(&t, json!({"computers": [a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id]), "{r}");
    // And a waiting job of a container that has ended no longer counts either.
    let q = c.package_id("two").await;
    c.given_container(
        json!({"name": "soon over", "packages": [q], "computers": [a.id],
        "end_at": "2025-03-02T00:00:00Z"}),
    )
    .await;
    let r = c
        .assign(&q, json!({"computers": [a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id]), "still running: {r}");
    c.set_time("2025-03-03T00:00:00Z");
    let r = c
        .assign(&q, json!({"computers": [a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&a.id]), "{r}");
}

#[tokio::test]
async fn rules_are_reevaluated_at_start_and_periodically() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let p = c.package_id("one").await;
    c.given_group(json!({"name": "pilots"})).await;
    c.given_package_group("base", &[&p]).await;
    let id = rule_id(
        &c.given_rule(
            json!({"name": "r", "group": "pilots", "package_group": "base", "enabled": true}),
        )
        .await,
    );
    // A member change that was stored but whose re-evaluation never ran (central
    // was killed between the two).
    let state = Arc::clone(c.state.as_ref().unwrap());
    let join = |who: &Agent| {
        let who: sitecast_common::ids::ComputerId = who.id.parse().unwrap();
        state
            .store
            .update_group(&"pilots".parse().unwrap(), &|g| {
                g.computers.push(who.clone())
            })
            .unwrap();
    };
    join(&a);
    assert!(no_jobs(&c.show_rule(&id).await, &a.id));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(api::periodically(
        Arc::clone(&state),
        api::Periodic::Rules,
        std::time::Duration::from_millis(50),
        async move {
            let _ = stopped.await;
        },
    ));
    let until_job = |who: String| {
        let c = &c;
        let id = &id;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while no_jobs(&c.show_rule(id).await, &who) {
                assert!(std::time::Instant::now() < deadline, "never re-evaluated");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    // The first round, at once.
    until_job(a.id.clone()).await;
    // A later round.
    join(&b);
    until_job(b.id.clone()).await;
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    assert_eq!(c.handed(&b).await, vec![install(&p)]);
}

impl Central {
    async fn patch_rule(&self, id: &str, body: Value) -> Reply {
        self.send_json(
            Method::PATCH,
            &format!("/api/v1/rules/{id}"),
            Some(self.admin.as_str()),
            &body,
        )
        .await
    }
}

#[tokio::test]
async fn a_rule_is_edited_in_place_and_keeps_what_it_installed() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_tagged_agent("pc-b", "10.2.0.5", &["kiosk"]).await;
    let p1 = c.given_uninstallable("one", "1").await;
    let p2 = c.given_uninstallable("two", "1").await;
    let v1 = c.given_uninstallable("app", "1").await;
    let v2 = c.given_uninstallable("app", "2").await;
    c.given_group(json!({"name": "pilots", "computers": [a.id]}))
        .await;
    c.given_package_group("base", &[&p1]).await;
    c.given_package_group("other", &[&p2]).await;
    c.given_package_group("both", &[&v1, &v2]).await;
    let id = rule_id(
        &c.given_rule(
            json!({"name": "r", "group": "pilots", "package_group": "base", "enabled": true}),
        )
        .await,
    );
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    c.succeed(&a, &p1).await;

    let r = c
        .patch_rule(
            &id,
            json!({"name": "renamed", "description": "d", "priority": 7,
                "sequence": "abort_after_failed"}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["id"], id.as_str());
    assert_eq!(
        (
            &r["name"],
            &r["description"],
            &r["priority"],
            &r["sequence"]
        ),
        (
            &json!("renamed"),
            &json!("d"),
            &json!(7),
            &json!("abort_after_failed")
        )
    );
    assert_eq!(r["enabled"], true);

    // Another package group: the new package comes, and what the rule installed
    // that is no longer in its group goes (it is still the rule's own).
    c.patch_rule(&id, json!({"package_group": "other"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![install(&p2)]);
    c.succeed(&a, &p2).await;
    assert_eq!(c.handed(&a).await, vec![uninstall(&p1)]);
    c.succeed(&a, &p1).await;
    assert!(c.handed(&a).await.is_empty());

    // Other computers: the criteria alone now choose.
    let r = c
        .patch_rule(&id, json!({"group": "", "tags": ["KIOSK"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["group"], Value::Null);
    assert_eq!(r["computers"], 1);
    assert_eq!(c.handed(&b).await, vec![install(&p2)]);
    assert!(
        c.handed(&a).await.is_empty(),
        "a left: it keeps what it has"
    );

    // Bad edits name the field and change nothing.
    c.patch_rule(&id, json!({"tags": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["group", "criteria"]);
    c.patch_rule(&id, json!({"sequence": "sometimes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sequence", "sometimes"]);
    c.patch_rule(&id, json!({"tags": ["a b"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["tags", "a b"]);
    c.patch_rule(&id, json!({"name": " "}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    c.patch_rule(&id, json!({"group": "../x"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["group"]);
    c.patch_rule(&id, json!({"group": "nope"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["group", "nope"]);
    c.patch_rule(&id, json!({"package_group": "nope"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package group", "nope"]);
    c.patch_rule(&id, json!({"colour": "red"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["colour"]);
    c.patch_rule(&id, json!({"package_group": "both"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["package_group", "'app'", "loop"]);
    c.patch_rule("nope-000000", json!({"priority": 1}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["nope-000000"]);
    let r = c.show_rule(&id).await;
    assert_eq!(
        (&r["package_group"], &r["criteria"]["tags"], &r["sequence"]),
        (
            &json!("other"),
            &json!(["KIOSK"]),
            &json!("abort_after_failed")
        )
    );
    // Without auto-uninstall the two versions are fine.
    let r = c
        .patch_rule(
            &id,
            json!({"package_group": "both", "auto_uninstall": false}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["auto_uninstall"], false);
}

#[tokio::test]
async fn with_abort_after_failed_a_failure_stops_what_the_rule_adds_later() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p1 = c.package_id("one").await;
    let p2 = c.package_id("two").await;
    let p3 = c.package_id("three").await;
    c.given_package_group("base", &[&p1]).await;
    let id = rule_id(
        &c.given_rule(
            json!({"name": "r", "hostnames": ["pc-*"], "package_group": "base",
            "sequence": "abort_after_failed", "enabled": true}),
        )
        .await,
    );
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    c.report(&a, &p1, json!({"code": "ERR_EXIT_CODE", "exit_code": 2}))
        .await
        .ok(StatusCode::OK);
    // A package added after the failure is not run either.
    c.admin_post(
        "/api/v1/package-groups/base/members",
        &json!({"packages": [p2]}),
    )
    .await
    .ok(StatusCode::OK);
    let rule = c.show_rule(&id).await;
    assert_eq!(
        jobs_of(&rule, &a.id),
        vec![job(&p1, "ERR_EXIT_CODE"), job(&p2, "ERR_PREVIOUS_FAILED")]
    );
    let line = &rule["jobs"].as_array().unwrap()[1];
    assert!(
        line["output"].as_str().unwrap().contains(&p1),
        "names the failed job: {line}"
    );
    assert!(c.handed(&a).await.is_empty());
    // Starting over on demand runs them in order again.
    c.admin_post(&format!("/api/v1/rules/{id}/reevaluate"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![install(&p1)]);
    c.report(&a, &p1, json!({"code": "ERR_EXIT_CODE", "exit_code": 2}))
        .await
        .ok(StatusCode::OK);
    // Once the broken package leaves the group, it stops nothing.
    c.admin_delete(&format!("/api/v1/package-groups/base/members/{p1}"))
        .await
        .ok(StatusCode::OK);
    c.admin_post(
        "/api/v1/package-groups/base/members",
        &json!({"packages": [p3]}),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![install(&p3)]);
}
