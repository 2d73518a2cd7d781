//! Groups (static, dynamic or both), computer tags, targeting by criteria and
//! package groups (SPEC "Rules, groups, power, users").

use crate::harness::*;

impl Central {
    pub(crate) async fn admin_put(&self, path: &str, body: &Value) -> Reply {
        self.send_json(Method::PUT, path, Some(self.admin.as_str()), body)
            .await
    }

    pub(crate) async fn given_tagged_agent(
        &self,
        hostname: &str,
        address: &str,
        tags: &[&str],
    ) -> Agent {
        let v = self
            .enroll(json!({
                "enroll_token": self.enroll_token,
                "hostname": hostname,
                "os": "linux",
                "addresses": [address],
                "tags": tags,
            }))
            .await
            .ok(StatusCode::CREATED);
        Agent {
            id: v["computer_id"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }

    pub(crate) async fn given_group(&self, body: Value) -> Value {
        self.admin_post("/api/v1/groups", &body)
            .await
            .ok(StatusCode::CREATED)
    }

    pub(crate) async fn given_package_group(&self, name: &str, packages: &[&str]) -> Value {
        self.admin_post(
            "/api/v1/package-groups",
            &json!({"name": name, "packages": packages}),
        )
        .await
        .ok(StatusCode::CREATED)
    }
}

fn members(group: &Value) -> Vec<String> {
    let mut m: Vec<String> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    m.sort();
    m
}

#[tokio::test]
async fn groups_are_static_dynamic_or_both_and_show_their_members_now() {
    let c = Central::start().await;
    let a = c
        .given_tagged_agent("pc-paris-1", "10.1.0.5", &["ALPHA"])
        .await;
    let b = c.given_tagged_agent("pc-lyon-1", "10.2.0.5", &[]).await;
    let d = c
        .given_tagged_agent("srv-lyon-2", "10.2.0.6", &["alpha"])
        .await;

    let g = c
        .given_group(json!({"name": "pilots", "description": "first wave", "computers": [a.id]}))
        .await;
    assert_eq!(g["name"], "pilots");
    assert_eq!(members(&g), sorted(&[&a.id]));
    assert_eq!(g["criteria"], json!({}));

    let g = c
        .given_group(json!({"name": "lyon", "subnets": ["10.2.0.0/16"]}))
        .await;
    assert_eq!(members(&g), sorted(&[&b.id, &d.id]));
    let g = c
        .given_group(json!({"name": "lyon-pcs", "subnets": ["10.2.0.0/16"], "hostnames": ["PC-*"]}))
        .await;
    assert_eq!(members(&g), sorted(&[&b.id]));
    let g = c
        .given_group(json!({"name": "alpha", "tags": ["alpha"], "computers": [b.id]}))
        .await;
    assert_eq!(members(&g), sorted(&[&a.id, &b.id, &d.id]));
    let g = c
        .given_group(json!({"name": "win", "os": ["windows"]}))
        .await;
    assert!(members(&g).is_empty());

    let list = c.admin_get("/api/v1/groups").await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 5);

    // Static members come and go; the dynamic ones follow the computers.
    let g = c
        .admin_post(
            "/api/v1/groups/pilots/members",
            &json!({"computers": [b.id, a.id]}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(members(&g), sorted(&[&a.id, &b.id]));
    let g = c
        .admin_delete(&format!("/api/v1/groups/pilots/members/{}", a.id))
        .await
        .ok(StatusCode::OK);
    assert_eq!(members(&g), sorted(&[&b.id]));
    c.admin_delete(&format!("/api/v1/groups/pilots/members/{}", a.id))
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&a.id, "pilots"]);
    c.admin_put(
        &format!("/api/v1/computers/{}/tags", b.id),
        &json!({"tags": []}),
    )
    .await
    .ok(StatusCode::OK);
    let g = c.admin_get("/api/v1/groups/alpha").await.ok(StatusCode::OK);
    // b is still a static member of "alpha".
    assert_eq!(members(&g), sorted(&[&a.id, &b.id, &d.id]));
    c.admin_put(
        &format!("/api/v1/computers/{}/tags", d.id),
        &json!({"tags": ["beta"]}),
    )
    .await
    .ok(StatusCode::OK);
    let g = c.admin_get("/api/v1/groups/alpha").await.ok(StatusCode::OK);
    assert_eq!(members(&g), sorted(&[&a.id, &b.id]));

    assert_eq!(
        c.admin_delete("/api/v1/groups/win").await.status,
        StatusCode::NO_CONTENT
    );
    c.admin_get("/api/v1/groups/win")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["win"]);
}

#[tokio::test]
async fn bad_groups_name_the_field_and_token() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let cr = &c;
    let post = |body: Value| async move { cr.admin_post("/api/v1/groups", &body).await };
    post(json!({"name": "bad name"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    post(json!({"name": "g", "subnets": ["10.0.0.0/33"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets", "10.0.0.0/33"]);
    post(json!({"name": "g", "tags": ["ok", "no way"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["tags", "no way"]);
    post(json!({"name": "g", "hostnames": ["pc-["]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostnames", "pc-["]);
    post(json!({"name": "g", "os": [""]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["os"]);
    post(json!({"name": "g", "computers": [a.id, "pc-nobody-000000"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["pc-nobody-000000"]);
    post(json!({"name": "g", "members": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["members"]);
    post(json!({"name": "g"})).await.ok(StatusCode::CREATED);
    post(json!({"name": "g"}))
        .await
        .err_naming(StatusCode::CONFLICT, &["'g'"]);
    c.admin_post("/api/v1/groups/g/members", &json!({"computers": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computers"]);
    c.admin_post("/api/v1/groups/nope/members", &json!({"computers": [a.id]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["nope"]);
    c.admin_put(
        &format!("/api/v1/computers/{}/tags", a.id),
        &json!({"tags": ["a/b"]}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["tags", "a/b"]);
    c.admin_put(
        "/api/v1/computers/pc-nobody-000000/tags",
        &json!({"tags": []}),
    )
    .await
    .err_naming(StatusCode::NOT_FOUND, &["pc-nobody-000000"]);
    c.enroll(json!({
        "enroll_token": c.enroll_token,
        "hostname": "pc-x",
        "os": "linux",
        "tags": ["fine", "not fine"],
    }))
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["tags", "not fine"]);
    // Agents cannot touch groups, rules or tags; nobody can without a token.
    for (method, path) in [
        (Method::GET, "/api/v1/groups".to_owned()),
        (Method::GET, "/api/v1/package-groups".to_owned()),
        (Method::GET, "/api/v1/rules".to_owned()),
        (Method::PUT, format!("/api/v1/computers/{}/tags", a.id)),
    ] {
        let body = json!({"tags": []});
        let r = c
            .send_json(method.clone(), &path, Some(a.token.as_str()), &body)
            .await;
        r.err(StatusCode::FORBIDDEN);
        let r = c.send_json(method, &path, None, &body).await;
        r.err(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn tags_come_from_enrollment_and_admins_change_them() {
    let c = Central::start().await;
    let a = c
        .given_tagged_agent("pc-a", "10.1.0.5", &["ALPHA", "alpha", "kiosk"])
        .await;
    let list = c.list_computers().await.ok(StatusCode::OK);
    assert_eq!(list[0]["tags"], json!(["ALPHA", "kiosk"]));
    let r = c
        .admin_put(
            &format!("/api/v1/computers/{}/tags", a.id),
            &json!({"tags": ["beta"]}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["tags"], json!(["beta"]));
    let detail = c
        .admin_get(&format!("/api/v1/computers/{}", a.id))
        .await
        .ok(StatusCode::OK);
    assert_eq!(detail["tags"], json!(["beta"]));
    // A poll leaves the tags alone.
    c.poll(&a, &["10.1.0.6"]).await.ok(StatusCode::OK);
    let list = c.list_computers().await.ok(StatusCode::OK);
    assert_eq!(list[0]["tags"], json!(["beta"]));
}

#[tokio::test]
async fn targeting_by_tag_os_hostname_and_group_chooses_every_match() {
    let c = Central::start().await;
    let a = c
        .given_tagged_agent("pc-paris-1", "10.1.0.5", &["alpha"])
        .await;
    let b = c
        .given_tagged_agent("pc-lyon-1", "10.2.0.5", &["alpha"])
        .await;
    let d = c.given_tagged_agent("srv-lyon-2", "10.2.0.6", &[]).await;
    c.given_group(json!({"name": "lyon", "subnets": ["10.2.0.0/16"]}))
        .await;
    let p = c.package_id("app").await;

    let r = c
        .assign(&p, json!({"tags": ["ALPHA"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&a.id, &b.id]));
    let q = c.package_id("tool").await;
    let r = c
        .assign(&q, json!({"group": "lyon", "hostnames": ["srv-*"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&d.id]));
    let r = c
        .assign(
            &q,
            json!({"subnet": "10.2.0.0/16", "tags": ["alpha"], "os": ["LINUX"]}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&b.id]));
    let r = c
        .assign(&q, json!({"os": ["windows"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["assigned"], json!([]));

    let box_ = c
        .given_container(
            json!({"name": "lyon pcs", "packages": [p], "group": "lyon", "tags": ["alpha"]}),
        )
        .await;
    assert_eq!(jobs_of(&box_, &b.id).len(), 1);
    assert_eq!(box_["jobs"].as_array().unwrap().len(), 1);
    c.create_container(json!({"name": "x", "packages": [p], "hostnames": ["mac-*"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["no computer matches"]);

    // Bad criteria name their field and token; lists do not mix with filters.
    c.assign(&p, json!({"tags": ["a b"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["tags", "a b"]);
    c.assign(&p, json!({"hostnames": ["["]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostnames", "["]);
    c.assign(&p, json!({"group": "nope"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["group", "nope"]);
    c.assign(&p, json!({"computers": [a.id], "tags": ["alpha"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computers"]);
    c.assign(&p, json!({"tags": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["choose computers"]);
    c.create_container(json!({"name": "x", "packages": [p], "os": ["linux"], "all": false}))
        .await
        .ok(StatusCode::CREATED);
}

#[tokio::test]
async fn package_groups_keep_their_order_and_follow_deletions() {
    let c = Central::start().await;
    let p1 = c.package_id("one").await;
    let p2 = c.package_id("two").await;
    let p3 = c.package_id("three").await;
    let g = c.given_package_group("base", &[&p2, &p1]).await;
    let order = |g: &Value| -> Vec<String> {
        g["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(order(&g), vec![p2.clone(), p1.clone()]);
    assert_eq!(g["packages"][0]["name"], "two");
    let g = c
        .admin_post(
            "/api/v1/package-groups/base/members",
            &json!({"packages": [p3, p1]}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(order(&g), vec![p2.clone(), p1.clone(), p3.clone()]);
    let g = c
        .admin_delete(&format!("/api/v1/package-groups/base/members/{p1}"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(order(&g), vec![p2.clone(), p3.clone()]);
    c.delete_package(&p3).await;
    let g = c
        .admin_get("/api/v1/package-groups/base")
        .await
        .ok(StatusCode::OK);
    assert_eq!(order(&g), vec![p2.clone()]);
    let list = c
        .admin_get("/api/v1/package-groups")
        .await
        .ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    c.admin_post(
        "/api/v1/package-groups",
        &json!({"name": "x", "packages": ["nope-1"]}),
    )
    .await
    .err_naming(StatusCode::NOT_FOUND, &["nope-1"]);
    c.admin_post("/api/v1/package-groups", &json!({"name": "../x"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    c.admin_post("/api/v1/package-groups", &json!({"name": "base"}))
        .await
        .err_naming(StatusCode::CONFLICT, &["base"]);
    c.admin_post(
        "/api/v1/package-groups/base/members",
        &json!({"packages": []}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["packages"]);
    assert_eq!(
        c.admin_delete("/api/v1/package-groups/base").await.status,
        StatusCode::NO_CONTENT
    );
}
