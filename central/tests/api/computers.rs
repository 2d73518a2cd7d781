//! A computer's packages (OCO's computer page) and removing an assignment.

use crate::harness::*;

/// Two computers and three packages: on `pc1`, `zlib 1` installed (`SUCCESS`),
/// `app 1` failed (`ERR_EXIT_CODE`) and `app 2` notified; on `pc2`, `zlib 1`
/// already set up and `app 1` installed.
struct TwoComputers {
    pc1: Agent,
    pc2: Agent,
    zlib: String,
    app1: String,
    app2: String,
}

impl Central {
    pub(crate) async fn show_computer(&self, id: &str) -> Reply {
        self.admin_get(&format!("/api/v1/computers/{id}")).await
    }

    pub(crate) async fn remove_assignment(&self, computer: &str, package: &str) -> Reply {
        self.admin_delete(&format!("/api/v1/computers/{computer}/packages/{package}"))
            .await
    }

    async fn given_versioned_package(&self, name: &str, version: &str) -> String {
        let p = self
            .given_package(
                &[
                    ("name", name),
                    ("version", version),
                    ("action", "execute"),
                    ("command", "echo hi"),
                ],
                None,
            )
            .await;
        p["id"].as_str().unwrap().to_owned()
    }

    async fn given_two_computers(&self) -> TwoComputers {
        let pc1 = self.given_agent("pc1", &["10.1.0.1"]).await;
        let pc2 = self.given_agent("pc2", &["10.1.0.2"]).await;
        // Created out of name order, so the listing's order is the server's doing.
        let zlib = self.given_versioned_package("zlib", "1").await;
        let app2 = self.given_versioned_package("app", "2").await;
        let app1 = self.given_versioned_package("app", "1").await;
        for p in [&zlib, &app1] {
            self.assign(p, json!({"all": true}))
                .await
                .ok(StatusCode::OK);
        }
        self.assign(&app2, json!({"computers": [pc1.id]}))
            .await
            .ok(StatusCode::OK);
        self.set_time(T1);
        for (agent, package, body) in [
            (&pc1, &zlib, json!({"code": "SUCCESS", "exit_code": 0})),
            (
                &pc1,
                &app1,
                json!({"code": "ERR_EXIT_CODE", "exit_code": 3}),
            ),
            (&pc2, &zlib, json!({"code": "ERR_ALREADY_SETUP"})),
            (&pc2, &app1, json!({"code": "SUCCESS", "exit_code": 0})),
        ] {
            self.poll(agent, &[]).await.ok(StatusCode::OK);
            self.report(agent, package, body).await.ok(StatusCode::OK);
        }
        TwoComputers {
            pc1,
            pc2,
            zlib,
            app1,
            app2,
        }
    }
}

/// `(package_id, status, installed)` of each package a computer shows, in order.
fn shown(detail: &Value) -> Vec<(String, String, bool)> {
    detail["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no packages: {detail}"))
        .iter()
        .map(|p| {
            (
                p["package_id"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
                p["installed"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn line(package: &str, status: &str, installed: bool) -> (String, String, bool) {
    (package.to_owned(), status.to_owned(), installed)
}

#[tokio::test]
async fn a_computer_shows_its_packages_by_name_and_version_and_which_are_installed() {
    let c = Central::start().await;
    let s = c.given_two_computers().await;
    let detail = c.show_computer(&s.pc1.id).await.ok(StatusCode::OK);

    // The computer's fields are those of the listing.
    let listed = c.list_computers().await.ok(StatusCode::OK);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == s.pc1.id.as_str())
        .unwrap()
        .clone();
    let mut fields = detail.as_object().unwrap().clone();
    fields.remove("packages");
    fields.remove("jobs");
    assert_eq!(Value::Object(fields), entry);

    assert_eq!(
        shown(&detail),
        vec![
            line(&s.app1, "ERR_EXIT_CODE", false),
            line(&s.app2, "NOTIFIED", false),
            line(&s.zlib, "SUCCESS", true),
        ]
    );
    let failed = &detail["packages"][0];
    assert_eq!(failed["name"], "app");
    assert_eq!(failed["version"], "1");
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(time_of(&failed["updated_at"]), ts(T1));
    assert_eq!(detail["packages"][1]["version"], "2");
    assert_eq!(detail["packages"][1]["exit_code"], Value::Null);
    assert_eq!(detail["packages"][2]["name"], "zlib");
    assert_eq!(detail["packages"][2]["exit_code"], 0);

    // ERR_ALREADY_SETUP counts as installed.
    assert_eq!(
        shown(&c.show_computer(&s.pc2.id).await.ok(StatusCode::OK)),
        vec![
            line(&s.app1, "SUCCESS", true),
            line(&s.zlib, "ERR_ALREADY_SETUP", true),
        ]
    );

    // A computer with nothing assigned shows an empty list.
    let pc3 = c.given_agent("pc3", &[]).await;
    assert_eq!(
        c.show_computer(&pc3.id).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
}

#[tokio::test]
async fn removing_an_assignment_forgets_it_for_that_computer_only() {
    let mut c = Central::start().await;
    let s = c.given_two_computers().await;
    let pc2_before = c.show_computer(&s.pc2.id).await.ok(StatusCode::OK);

    let r = c.remove_assignment(&s.pc1.id, &s.zlib).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(r.body.is_empty(), "{}", r.text());

    assert_eq!(
        shown(&c.show_computer(&s.pc1.id).await.ok(StatusCode::OK)),
        vec![
            line(&s.app1, "ERR_EXIT_CODE", false),
            line(&s.app2, "NOTIFIED", false),
        ]
    );
    let stats = c.stats(&s.zlib).await;
    assert_eq!(stats["counts"], json!({"ERR_ALREADY_SETUP": 1}));
    assert_eq!(stats["by_status"], json!({"ERR_ALREADY_SETUP": [s.pc2.id]}));
    assert_eq!(stats["computers"].as_array().unwrap().len(), 1);
    // The other computer, and the computer's other assignments, are untouched.
    assert_eq!(
        c.show_computer(&s.pc2.id).await.ok(StatusCode::OK),
        pc2_before
    );
    assert_eq!(
        c.stats(&s.app1).await["counts"],
        json!({"SUCCESS": 1, "ERR_EXIT_CODE": 1})
    );

    // Removed twice: the assignment is named as missing.
    c.remove_assignment(&s.pc1.id, &s.zlib)
        .await
        .err_naming(StatusCode::NOT_FOUND, &["assignment", &s.zlib, &s.pc1.id]);

    // An unfinished assignment removed is no longer handed to the agent.
    let poll = c.poll(&s.pc1, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.app2.as_str(), "{poll}");
    let r = c.remove_assignment(&s.pc1.id, &s.app2).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let poll = c.poll(&s.pc1, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"], json!([]), "{poll}");

    // Both trees forgot it, durably; the computer can be assigned the package again.
    let (pc1, zlib) = (s.pc1.id.clone(), s.zlib.clone());
    c.restart_with_db(|db| {
        let installed = db.open_tree("installed").unwrap();
        let by_package = db.open_tree("jobs_by_package").unwrap();
        let by_computer = db.open_tree("jobs_by_computer").unwrap();
        let jobs = db.open_tree("jobs").unwrap();
        assert!(installed.get(format!("{pc1}/{zlib}")).unwrap().is_none());
        assert_eq!(by_package.scan_prefix(format!("{zlib}/{pc1}/")).count(), 0);
        // Every index entry left names a job that exists, and app1's is among them.
        let left: Vec<Value> = by_computer
            .scan_prefix(format!("{pc1}/"))
            .map(|kv| {
                let (_, key) = kv.unwrap();
                serde_json::from_slice(&jobs.get(key).unwrap().unwrap()).unwrap()
            })
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["package_id"], s.app1.as_str());
    });
    assert_eq!(
        shown(&c.show_computer(&s.pc1.id).await.ok(StatusCode::OK)),
        vec![line(&s.app1, "ERR_EXIT_CODE", false)]
    );
    let again = c
        .assign(&s.zlib, json!({"computers": [s.pc1.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(again["assigned"], json!([s.pc1.id]));
}

/// Deleting a computer revokes its token at once and forgets its jobs; the other
/// computer keeps everything.
#[tokio::test]
async fn deleting_a_computer_revokes_its_token_and_forgets_its_jobs() {
    let c = Central::start().await;
    let s = c.given_two_computers().await;
    c.poll(&s.pc1, &[]).await.ok(StatusCode::OK);
    let pc2_before = c.show_computer(&s.pc2.id).await.ok(StatusCode::OK);

    let r = c
        .admin_delete(&format!("/api/v1/computers/{}", s.pc1.id))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    c.poll(&s.pc1, &[]).await.err(StatusCode::UNAUTHORIZED);
    c.show_computer(&s.pc1.id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&s.pc1.id]);
    let listed = c.list_computers().await.ok(StatusCode::OK);
    assert!(!listed.to_string().contains(&s.pc1.id), "{listed}");
    for package in [&s.zlib, &s.app1, &s.app2] {
        let stats = c.stats(package).await;
        assert!(!stats.to_string().contains(&s.pc1.id), "{stats}");
    }
    assert_eq!(
        c.show_computer(&s.pc2.id).await.ok(StatusCode::OK),
        pc2_before
    );
    c.admin_delete(&format!("/api/v1/computers/{}", s.pc1.id))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["computer", &s.pc1.id]);
}

/// With `enroll_approval = "manual"`, a computer that enrolls is listed `pending`
/// and handed no job until an admin approves it; a rejected one loses its token.
#[tokio::test]
async fn under_manual_approval_a_new_computer_gets_no_job_until_approved() {
    let c = Central::start_with_config(|toml| {
        assert!(toml.contains("enroll_approval = \"auto\""), "{toml}");
        toml.replace("enroll_approval = \"auto\"", "enroll_approval = \"manual\"")
    })
    .await;
    let pkg = c.given_command_package("tool", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    for agent in [&a, &b] {
        let poll = c.poll(agent, &[]).await.ok(StatusCode::OK);
        assert_eq!(poll["packages"], json!([]), "{poll}");
        assert_eq!(
            c.show_computer(&agent.id).await.ok(StatusCode::OK)["approval"],
            "pending"
        );
    }

    let approved = c
        .admin_post(&format!("/api/v1/computers/{}/approve", a.id), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(approved["approval"], "approved");
    let poll = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], id, "{poll}");

    let r = c
        .admin_post(&format!("/api/v1/computers/{}/reject", b.id), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    c.poll(&b, &[]).await.err(StatusCode::UNAUTHORIZED);
    c.admin_post("/api/v1/computers/pc-gone-1/approve", &json!({}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["pc-gone-1"]);
}

#[tokio::test]
async fn computer_routes_name_what_is_missing_and_refuse_agents() {
    let c = Central::start().await;
    let s = c.given_two_computers().await;
    for id in ["pc-gone", "Not%20An%20Id"] {
        c.show_computer(id).await.err(StatusCode::NOT_FOUND);
        c.remove_assignment(id, &s.zlib)
            .await
            .err(StatusCode::NOT_FOUND);
    }
    c.show_computer("pc-gone")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["computer", "pc-gone"]);
    c.remove_assignment("pc-gone", &s.zlib)
        .await
        .err_naming(StatusCode::NOT_FOUND, &["computer", "pc-gone"]);
    c.remove_assignment(&s.pc1.id, "no-such-package")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package", "no-such-package"]);

    // Admin routes: an agent's token, even the computer's own, is refused.
    for agent in [&s.pc1, &s.pc2] {
        let token = Some(agent.token.as_str());
        c.send(
            Method::GET,
            &format!("/api/v1/computers/{}", s.pc1.id),
            token,
            Body::empty(),
        )
        .await
        .err_naming(StatusCode::FORBIDDEN, &["admin"]);
        c.send(
            Method::DELETE,
            &format!("/api/v1/computers/{}/packages/{}", s.pc1.id, s.zlib),
            token,
            Body::empty(),
        )
        .await
        .err_naming(StatusCode::FORBIDDEN, &["admin"]);
    }
    c.send(
        Method::DELETE,
        &format!("/api/v1/computers/{}/packages/{}", s.pc1.id, s.zlib),
        None,
        Body::empty(),
    )
    .await
    .err(StatusCode::UNAUTHORIZED);
    // Nothing was removed.
    assert_eq!(
        shown(&c.show_computer(&s.pc1.id).await.ok(StatusCode::OK)).len(),
        3
    );
    assert_eq!(
        c.stats(&s.zlib).await["computers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Enroll tokens beside the shared one: each enrollment takes a use, durably; an
/// expired, used-up or deleted token enrolls nobody, each refusal saying why; the
/// computers it enrolls get its tags; and the shared token can be turned off.
#[tokio::test]
async fn limited_enroll_tokens_enroll_as_many_as_they_allow_until_they_expire() {
    let c = Central::start_with_config(|toml| {
        assert!(toml.contains("shared_enroll_token = true"), "{toml}");
        toml.replace("shared_enroll_token = true", "shared_enroll_token = false")
    })
    .await;
    c.set_time(T0);
    let enroll = |token: &str, host: &str| json!({"enroll_token": token, "hostname": host, "os": "linux", "tags": ["alpha"]});
    c.enroll(enroll(&c.enroll_token.clone(), "pc-shared"))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["enroll_token"]);

    let created = c
        .admin_post(
            "/api/v1/enroll-tokens",
            &json!({"uses": 2, "expires": "1h", "tags": ["kiosk"]}),
        )
        .await
        .ok(StatusCode::CREATED);
    let (id, token) = (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    );
    for host in ["pc-1", "pc-2"] {
        let pc = c.enroll(enroll(&token, host)).await.ok(StatusCode::CREATED);
        let shown = c
            .show_computer(pc["computer_id"].as_str().unwrap())
            .await
            .ok(StatusCode::OK);
        assert_eq!(shown["tags"], json!(["alpha", "kiosk"]), "{shown}");
    }
    c.enroll(enroll(&token, "pc-3"))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["enroll_token", "used up", "2"]);
    let listed = c
        .admin_get("/api/v1/enroll-tokens")
        .await
        .ok(StatusCode::OK);
    assert_eq!(listed[0]["used"], 2, "{listed}");
    assert!(
        !listed.to_string().contains(&token),
        "the secret is listed: {listed}"
    );

    let later = c
        .admin_post("/api/v1/enroll-tokens", &json!({"expires": "1h"}))
        .await
        .ok(StatusCode::CREATED);
    let later_token = later["token"].as_str().unwrap().to_owned();
    c.set_time(T1);
    c.enroll(enroll(&later_token, "pc-4"))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["enroll_token", "expired"]);

    let r = c.admin_delete(&format!("/api/v1/enroll-tokens/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    c.enroll(enroll(&token, "pc-5"))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["bad enroll_token"]);
    for (body, words) in [
        (json!({"uses": 0}), &["uses"][..]),
        (json!({"expires": "soon"}), &["expires", "soon"][..]),
        (json!({"tags": ["bad tag!"]}), &["tag"][..]),
        (json!({"colour": "red"}), &["colour"][..]),
    ] {
        c.admin_post("/api/v1/enroll-tokens", &body)
            .await
            .err_naming(StatusCode::BAD_REQUEST, words);
    }
}
