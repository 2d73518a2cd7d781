//! Activation of packages on sites, versions that supersede others, and
//! deactivation (OCS's red cross).

use crate::harness::*;

#[tokio::test]
async fn activations_add_sites_or_all_sites_and_set_the_fallback() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();

    let p = c
        .activate(id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(p["id"], id);
    assert_eq!(
        p["activation"],
        json!({"all_sites": false, "sites": ["paris"], "central_fallback": "never"})
    );
    // A second activation adds sites; the fallback can be set with it.
    let p = c
        .activate(
            id,
            json!({"sites": ["lyon", "paris"], "fallback": "always"}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        p["activation"],
        json!({"all_sites": false, "sites": ["lyon", "paris"], "central_fallback": "always"})
    );
    let p = c
        .activate(id, json!({"all_sites": true, "fallback": "after:2h"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(p["activation"]["all_sites"], true);
    assert_eq!(p["activation"]["central_fallback"], "after:2h");
    assert_eq!(c.show_package(id).await.ok(StatusCode::OK), p);

    // Errors.
    c.activate(id, json!({"sites": ["mars"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["mars"]);
    c.activate(id, json!({"sites": ["paris"], "fallback": "sometimes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["fallback", "sometimes"]);
    c.activate(id, json!({"sites": ["paris"], "all_sites": true}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({"sites": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({"sites": "paris"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({"all_sites": "yes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all_sites"]);
    c.activate("no-such-package", json!({"all_sites": true}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
    // Failed requests changed nothing.
    assert_eq!(c.show_package(id).await.ok(StatusCode::OK), p);
}

// ---------------------------------------------------------------------------
// Versions (supersedes) and deactivation (OCS's red cross)
// ---------------------------------------------------------------------------

impl Central {
    /// Uploads version `version` of the command package `name`, with `extra`
    /// parameters (such as `supersedes`).
    async fn upload_version(&self, name: &str, version: &str, extra: &[(&str, &str)]) -> Reply {
        let mut params = vec![
            ("name", name),
            ("version", version),
            ("action", "execute"),
            ("command", "echo hi"),
        ];
        params.extend_from_slice(extra);
        self.upload(&params, None).await
    }

    /// A version that must be created; returns its id.
    async fn given_version(&self, name: &str, version: &str, extra: &[(&str, &str)]) -> String {
        let p = self
            .upload_version(name, version, extra)
            .await
            .ok(StatusCode::CREATED);
        p["id"].as_str().unwrap().to_owned()
    }

    /// What the signed info of a package says it supersedes, read from the
    /// envelope's payload once its signature verified.
    async fn signed_supersedes(&self, id: &str) -> Value {
        let reply = self.package_info(id).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let payload = signing::verify(
            &reply.body,
            signing::INFO_PAYLOAD_TYPE,
            &[self.trusted_key()],
        )
        .unwrap();
        let doc: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(doc["id"], id);
        // The validated view agrees with the raw payload.
        let info = signing::verify_info(&reply.body, &[self.trusted_key()]).unwrap();
        assert_eq!(
            info.supersedes().map(|p| p.to_string()),
            doc["supersedes"].as_str().map(str::to_owned)
        );
        doc["supersedes"].clone()
    }

    pub(crate) async fn deactivate(&self, id: &str, body: Value) -> Reply {
        self.send_json(
            Method::DELETE,
            &format!("/api/v1/packages/{id}/activations"),
            Some(self.admin.as_str()),
            &body,
        )
        .await
    }

    /// `(computer, status)` of every statistics line of a package, sorted.
    async fn lines(&self, package: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self.stats(package).await["computers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["computer_id"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

#[tokio::test]
async fn a_new_version_supersedes_the_newest_of_its_name_by_default() {
    let c = Central::start().await;
    let v1 = c.given_version("app", "1", &[]).await;
    // The first of its name supersedes nothing; other names do not count.
    assert_eq!(
        c.show_package(&v1).await.ok(StatusCode::OK)["supersedes"],
        Value::Null
    );
    assert_eq!(c.signed_supersedes(&v1).await, Value::Null);
    c.set_time("2025-03-01T09:01:00Z");
    let tool = c.given_version("tool", "1", &[]).await;
    assert_eq!(
        c.show_package(&tool).await.ok(StatusCode::OK)["supersedes"],
        Value::Null
    );

    // By default: the newest package of the same name (latest created_at).
    c.set_time("2025-03-01T09:02:00Z");
    let v2 = c
        .upload_version("app", "2", &[])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(v2["supersedes"], v1.as_str());
    let v2 = v2["id"].as_str().unwrap().to_owned();
    assert_eq!(c.signed_supersedes(&v2).await, v1.as_str());
    c.set_time("2025-03-01T09:03:00Z");
    let v3 = c.given_version("app", "3", &[]).await;
    assert_eq!(c.signed_supersedes(&v3).await, v2.as_str());

    // Explicit: any package of the same name, older or not the newest.
    c.set_time("2025-03-01T09:04:00Z");
    let v4 = c
        .upload_version("app", "4", &[("supersedes", &v1)])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(v4["supersedes"], v1.as_str());
    let v4 = v4["id"].as_str().unwrap().to_owned();
    assert_eq!(c.signed_supersedes(&v4).await, v1.as_str());

    // `none`: a fresh line, even though versions of the name exist.
    c.set_time("2025-03-01T09:05:00Z");
    let v5 = c
        .upload_version("app", "5", &[("supersedes", "none")])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(v5["supersedes"], Value::Null);
    let v5 = v5["id"].as_str().unwrap().to_owned();
    assert_eq!(c.signed_supersedes(&v5).await, Value::Null);

    // The newest is the latest created, whatever its version says; a deleted
    // package is not a default.
    c.delete_package(&v5).await;
    c.set_time("2025-03-01T09:06:00Z");
    let v0 = c.given_version("app", "0.9", &[]).await;
    assert_eq!(c.signed_supersedes(&v0).await, v4.as_str());

    // The listing carries it too, and a package list shows each link once.
    let listed = c.list_packages().await.ok(StatusCode::OK);
    let links: Vec<(String, Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["supersedes"].clone(),
            )
        })
        .collect();
    assert_eq!(
        links,
        vec![
            (v1.clone(), Value::Null),
            (tool, Value::Null),
            (v2.clone(), json!(v1)),
            (v3, json!(v2)),
            (v4.clone(), json!(v1)),
            (v0, json!(v4)),
        ]
    );
}

#[tokio::test]
async fn bad_supersedes_are_refused_naming_the_field_and_leave_nothing() {
    let c = Central::start().await;
    let app = c.given_version("app", "1", &[]).await;
    let tool = c.given_version("tool", "1", &[]).await;
    let before = c.list_packages().await.ok(StatusCode::OK);

    // Another name: 400 naming the field and both names.
    c.upload_version("app", "2", &[("supersedes", &tool)])
        .await
        .err_naming(
            StatusCode::BAD_REQUEST,
            &["supersedes", &tool, "'tool'", "'app'"],
        );
    // Unknown: 404 naming it.
    c.upload_version("app", "2", &[("supersedes", "app-0-gone")])
        .await
        .err_naming(StatusCode::NOT_FOUND, &["supersedes", "app-0-gone"]);
    // Not an id at all, or empty.
    c.upload_version("app", "2", &[("supersedes", "App 1")])
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["supersedes", "App 1"]);
    c.upload_version("app", "2", &[("supersedes", "")])
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["supersedes"]);
    // Refused before the body is read: a file upload leaves nothing either.
    let reply = c
        .upload(
            &launch_params("app", &[("version", "2"), ("supersedes", &tool)]),
            Some(chunked(&data(5000), 1000)),
        )
        .await;
    reply.err_naming(StatusCode::BAD_REQUEST, &["supersedes"]);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), before);
    let on_disk: Vec<String> = std::fs::read_dir(c.dir().join("packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "tmp")
        .collect();
    assert_eq!(
        sorted(&on_disk.iter().map(String::as_str).collect::<Vec<_>>()),
        sorted(&[&app, &tool])
    );

    // A valid one still works afterwards.
    let v2 = c.given_version("app", "2", &[("supersedes", &app)]).await;
    assert_eq!(c.signed_supersedes(&v2).await, app.as_str());
}

#[tokio::test]
async fn deactivation_removes_sites_or_all_sites_from_the_activation() {
    let mut c = Central::start().await;
    for site in ["lyon", "nice", "paris"] {
        c.given_site(site, &[]).await;
    }
    let (paris_relay, _) = c.given_relay("paris", &["10.1.0.0/16"], "http://p").await;
    let id = c.given_version("app", "1", &[]).await;
    c.activate(
        &id,
        json!({"sites": ["paris", "lyon"], "fallback": "always"}),
    )
    .await
    .ok(StatusCode::OK);
    let relay_holds = |relays: &Value| -> bool {
        relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == paris_relay.as_str())
            .unwrap()["holdings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["package_id"] == id.as_str())
    };
    assert!(relay_holds(&c.list_relays().await.ok(StatusCode::OK)));

    // Specific sites come off the list; the fallback stays.
    let d = c
        .deactivate(&id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": ["lyon"], "central_fallback": "always"})
    );
    assert_eq!(d["cancelled"], 0);
    assert_eq!(d["computers"], json!([]));
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), d["package"]);
    // Paris's relay is no longer meant to hold it.
    assert!(!relay_holds(&c.list_relays().await.ok(StatusCode::OK)));
    // A site that is not activated: nothing changes, and it is no error.
    let again = c
        .deactivate(&id, json!({"sites": ["paris", "nice"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(again["package"], d["package"]);

    // Off an activation for all sites: every other existing site, listed.
    c.activate(&id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let d = c
        .deactivate(&id, json!({"sites": ["lyon"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": ["nice", "paris"], "central_fallback": "always"})
    );
    assert!(relay_holds(&c.list_relays().await.ok(StatusCode::OK)));

    // All sites: activated nowhere, as if just built (and it can be activated again).
    c.activate(&id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let d = c
        .deactivate(&id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": [], "central_fallback": "always"})
    );
    assert!(!relay_holds(&c.list_relays().await.ok(StatusCode::OK)));
    // Acknowledged means on disk.
    c.restart_with_db(|_| {});
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), d["package"]);
    let p = c
        .activate(&id, json!({"sites": ["nice"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(p["activation"]["sites"], json!(["nice"]));
}

#[tokio::test]
async fn bad_deactivations_name_the_field_and_change_nothing() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let id = c.given_version("app", "1", &[]).await;
    let waiting = c.given_agent("pc-waiting", &["10.1.0.5"]).await;
    c.assign(&id, json!({"all": true})).await.ok(StatusCode::OK);
    let before = c
        .activate(&id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);

    c.deactivate(&id, json!({"sites": ["mars"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["site", "mars"]);
    // One unknown site spoils the whole request.
    c.deactivate(&id, json!({"sites": ["paris", "mars"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["mars"]);
    c.deactivate(&id, json!({"sites": ["Bad Name"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "Bad Name"]);
    c.deactivate(&id, json!({"sites": ["paris"], "all_sites": true}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "all_sites"]);
    c.deactivate(&id, json!({"sites": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "empty"]);
    c.deactivate(&id, json!({}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "all_sites"]);
    c.deactivate(&id, json!({"all_sites": false}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all_sites"]);
    c.deactivate(&id, json!({"all_sites": "yes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all_sites"]);
    c.deactivate(&id, json!({"sites": "paris"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.deactivate(&id, json!({"all_sites": true, "fallback": "never"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["fallback"]);
    let req = Request::builder()
        .method(Method::DELETE)
        .uri(format!("/api/v1/packages/{id}/activations"))
        .header(AUTHORIZATION, format!("Bearer {}", c.admin))
        .body(Body::from("{\"all_sites\": tru"))
        .unwrap();
    c.call(req).await.err(StatusCode::BAD_REQUEST);
    c.deactivate("no-such-package", json!({"all_sites": true}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package", "no-such-package"]);

    // Nothing was deactivated nor cancelled.
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), before);
    assert_eq!(
        c.lines(&id).await,
        vec![(waiting.id.clone(), "WAITING_NOTIFICATION".to_owned())]
    );
}

#[tokio::test]
async fn deactivation_cancels_only_install_jobs_not_yet_notified_on_the_sites_computers() {
    let mut c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    c.given_relay("paris", &["10.1.0.0/16"], "http://p").await;
    c.given_relay("lyon", &["10.2.0.0/16"], "http://l").await;
    // A floor of paris's subnet served by lyon's relay: the longest prefix wins.
    c.given_relay("lyon", &["10.1.9.0/24"], "http://l2").await;

    let app = c.given_uninstallable("app", "1").await;
    let other = c.given_version("other", "1", &[]).await;
    let waiting = c.given_agent("paris-waiting", &["10.1.0.1"]).await;
    let notified = c.given_agent("paris-notified", &["10.1.0.2"]).await;
    let done = c.given_agent("paris-done", &["10.1.0.3"]).await;
    let retrying = c.given_agent("paris-retrying", &["10.1.0.4"]).await;
    // Two addresses: one in paris's /16 wins over none, so it is paris's.
    let dual = c
        .given_agent("paris-dual", &["192.168.7.7", "10.1.0.5"])
        .await;
    let floor = c.given_agent("lyon-floor", &["10.1.9.5"]).await;
    let lyon = c.given_agent("lyon-waiting", &["10.2.0.1"]).await;
    let nowhere = c.given_agent("no-site", &["172.16.0.1"]).await;

    // `app` then `other` on every computer, in one container (order matters).
    let all = c
        .given_container(json!({
            "name": "rollout", "packages": [app, other], "all": true, "retries": 1,
        }))
        .await;
    let all = all["id"].as_str().unwrap().to_owned();
    // An uninstall job of `app` waiting on a paris computer: not an install, it stays.
    let removal = c
        .given_container(json!({
            "name": "removal", "packages": [app], "computers": [waiting.id], "uninstall": true,
        }))
        .await;
    let removal = removal["id"].as_str().unwrap().to_owned();
    assert_eq!(c.handed(&notified).await, vec![install(&app)]);
    assert_eq!(c.handed(&done).await, vec![install(&app)]);
    c.report(&done, &app, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&retrying).await, vec![install(&app)]);
    c.report(
        &retrying,
        &app,
        json!({"code": "ERR_EXIT_CODE", "exit_code": 1}),
    )
    .await
    .ok(StatusCode::OK);
    let retry_line = c.stat_of(&app, &retrying).await;
    assert_eq!(retry_line["status"], "WAITING_NOTIFICATION");
    assert_eq!(retry_line["exit_code"], 1);

    // Paris: the jobs never handed out (or waiting for a retry) on its computers go.
    let d = c
        .deactivate(&app, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(d["cancelled"], 3);
    assert_eq!(
        ids(&d["computers"]),
        sorted(&[&waiting.id, &retrying.id, &dual.id])
    );
    assert_eq!(c.lines(&app).await, {
        let mut v = vec![
            (notified.id.clone(), "NOTIFIED".to_owned()),
            (done.id.clone(), "SUCCESS".to_owned()),
            (floor.id.clone(), "WAITING_NOTIFICATION".to_owned()),
            (lyon.id.clone(), "WAITING_NOTIFICATION".to_owned()),
            (nowhere.id.clone(), "WAITING_NOTIFICATION".to_owned()),
        ];
        v.sort();
        v
    });
    // The other package's jobs are untouched; the uninstall job too.
    assert_eq!(c.lines(&other).await.len(), 8);
    assert_eq!(
        jobs_of(&c.show_container(&removal).await, &waiting.id),
        vec![job(&app, "WAITING_NOTIFICATION")]
    );
    // The container goes on without the cancelled job: `waiting` is handed the
    // uninstall of `app` and, next in the container, `other`.
    assert_eq!(
        jobs_of(&c.show_container(&all).await, &waiting.id),
        vec![job(&other, "WAITING_NOTIFICATION")]
    );
    let mut handed_now = c.handed(&waiting).await;
    handed_now.sort();
    let mut expected = vec![install(&other), uninstall(&app)];
    expected.sort();
    assert_eq!(handed_now, expected);
    // `retrying` is never handed `app` again, even once its retry is due.
    c.set_time("2025-03-01T12:00:00Z");
    assert_eq!(c.handed(&retrying).await, vec![install(&other)]);

    // All sites: every computer, those of no site included; jobs handed out stay.
    let d = c
        .deactivate(&app, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(d["cancelled"], 3);
    assert_eq!(
        ids(&d["computers"]),
        sorted(&[&floor.id, &lyon.id, &nowhere.id])
    );
    let mut left = vec![
        (notified.id.clone(), "NOTIFIED".to_owned()),
        (done.id.clone(), "SUCCESS".to_owned()),
    ];
    left.sort();
    assert_eq!(c.lines(&app).await, left);
    // What was acknowledged survives a restart.
    c.restart_with_db(|_| {});
    assert_eq!(c.lines(&app).await, left);
    // Nothing left to cancel.
    let d = c
        .deactivate(&app, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(d["cancelled"], 0);
}
