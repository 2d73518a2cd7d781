//! Sites and relays: adding, listing and deleting them, what the relay listing
//! shows, and which relays a poll names.

use crate::harness::*;

#[tokio::test]
async fn sites_are_added_and_listed() {
    let c = Central::start().await;
    assert_eq!(c.list_sites().await.ok(StatusCode::OK), json!([]));

    let paris = c.given_site("paris", &["10.1.0.0/16", "fd00:1::/64"]).await;
    assert_eq!(paris["name"], "paris");
    assert_eq!(paris["subnets"], json!(["10.1.0.0/16", "fd00:1::/64"]));
    assert_eq!(time_of(&paris["created_at"]), ts(T0));

    // subnets are optional.
    let lyon = c
        .add_site(json!({"name": "Lyon"}))
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(lyon["subnets"], json!([]));

    let list = c.list_sites().await.ok(StatusCode::OK);
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Lyon", "paris"]);
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "paris")
        .unwrap();
    assert_eq!(listed, &paris);
}

#[tokio::test]
async fn a_duplicate_site_is_a_conflict() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.add_site(json!({"name": "paris", "subnets": ["10.9.0.0/16"]}))
        .await
        .err_naming(StatusCode::CONFLICT, &["paris"]);
    // The first one is untouched.
    let list = c.list_sites().await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["subnets"], json!([]));
}

#[tokio::test]
async fn bad_site_requests_name_the_field() {
    let c = Central::start().await;
    c.add_site(json!({"name": "paris", "subnets": ["10.1.0.0/16", "10.0.0.0/33"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets", "10.0.0.0/33"]);
    c.add_site(json!({"name": "paris", "subnets": ["not-a-net"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets", "not-a-net"]);
    c.add_site(json!({"name": 5}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    c.add_site(json!({"name": "paris", "subnets": "10.1.0.0/16"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets"]);
    c.add_site(json!({"subnets": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    c.add_site(json!({"name": "two words"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name", "two words"]);
    // Not JSON at all.
    c.send(
        Method::POST,
        "/api/v1/sites",
        Some(c.admin.as_str()),
        Body::from("{name: paris"),
    )
    .await
    .err(StatusCode::BAD_REQUEST);
    // Nothing was stored.
    assert_eq!(c.list_sites().await.ok(StatusCode::OK), json!([]));
}

// ---------------------------------------------------------------------------
// Relays
// ---------------------------------------------------------------------------

#[tokio::test]
async fn relays_are_added_listed_and_deleted() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let created = c
        .add_relay(json!({
            "site": "paris",
            "subnets": ["10.1.0.0/16", "10.3.0.0/24"],
            "url": "http://10.1.0.2:8080/",
        }))
        .await
        .ok(StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(id.starts_with("relay-paris-"), "{id}");
    assert_eq!(token.len(), 64, "{token}");
    assert_ne!(token, c.admin);

    let relays = c.list_relays().await.ok(StatusCode::OK);
    assert_eq!(
        relays,
        json!([{
            "id": id,
            "site": "paris",
            "subnets": ["10.1.0.0/16", "10.3.0.0/24"],
            "url": "http://10.1.0.2:8080",
            "last_seen": null,
            "holdings": [],
            "bytes_from_central": 0,
            "quic_bytes_from_central": 0,
            "bytes_to_agents": 0,
            "problems": {"count": 0, "counts": {}, "last": null},
            "replication": {"window_open": true, "max_rate": null, "rate": 0},
            // Nothing reported yet.
            "health": {
                "version": "", "disk_used": 0, "disk_free": null, "max_disk": null,
                "over_quota": false, "kept": [], "evicted": 0, "last_scrub": null,
                "scrub_bad": 0, "scrub_bad_total": 0, "scrub_interval_s": null
            },
        }])
    );

    // A relay token is not an admin token.
    c.send(
        Method::GET,
        "/api/v1/relays",
        Some(token.as_str()),
        Body::empty(),
    )
    .await
    .err_naming(StatusCode::FORBIDDEN, &["admin"]);

    let deleted = c.delete_relay(&id).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    assert_eq!(c.list_relays().await.ok(StatusCode::OK), json!([]));
    c.delete_relay(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    // Its token is revoked with it.
    c.send(
        Method::GET,
        "/api/v1/relays",
        Some(token.as_str()),
        Body::empty(),
    )
    .await
    .err(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn relay_listing_shows_holdings_of_activated_packages() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let (paris_relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (lyon_relay, _) = c
        .given_relay("lyon", &["10.2.0.0/16"], "https://relay.lyon.example")
        .await;

    let bytes = data(10_000);
    let for_paris = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&bytes),
        )
        .await;
    let for_all = c
        .given_package(
            &launch_params("tool", &[("fragment_size", "4KiB")]),
            Some(&data(40_000)),
        )
        .await;
    let inactive = c.given_command_package("idle", "5").await;
    let (p, a) = (
        for_paris["id"].as_str().unwrap(),
        for_all["id"].as_str().unwrap(),
    );

    // Nothing is activated yet: no holdings anywhere.
    for r in c.list_relays().await.ok(StatusCode::OK).as_array().unwrap() {
        assert_eq!(r["holdings"], json!([]), "{r}");
    }

    c.activate(p, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    c.activate(a, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);

    let relays = c.list_relays().await.ok(StatusCode::OK);
    let holdings = |id: &str| {
        let r = relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap();
        let mut h = r["holdings"].as_array().unwrap().clone();
        h.sort_by_key(|x| x["package_id"].as_str().unwrap().to_owned());
        Value::Array(h)
    };
    let mut expected_paris = vec![
        json!({"package_id": p, "held": 0, "total": 3, "complete": false, "eta_s": null}),
        json!({"package_id": a, "held": 0, "total": 10, "complete": false, "eta_s": null}),
    ];
    expected_paris.sort_by_key(|x| x["package_id"].as_str().unwrap().to_owned());
    assert_eq!(holdings(&paris_relay), Value::Array(expected_paris));
    assert_eq!(
        holdings(&lyon_relay),
        json!([{"package_id": a, "held": 0, "total": 10, "complete": false, "eta_s": null}])
    );
    assert!(!relays
        .to_string()
        .contains(inactive["id"].as_str().unwrap()));
}

#[tokio::test]
async fn bad_relay_requests_name_the_field() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.add_relay(json!({"site": "nowhere", "subnets": ["10.1.0.0/16"], "url": "http://r"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["nowhere"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.0.0.0/33"], "url": "http://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets", "10.0.0.0/33"]);
    c.add_relay(json!({"site": "paris", "subnets": [], "url": "http://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.1.0.0/16"], "url": "ftp://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["url", "ftp://r"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.1.0.0/16"], "url": "not a url"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["url"]);
    c.add_relay(json!({"site": "paris", "subnets": "10.1.0.0/16", "url": "http://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.1.0.0/16"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["url"]);
    c.delete_relay("relay-nowhere-000000")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["relay-nowhere-000000"]);
    c.delete_relay("Not_An_Id!")
        .await
        .err(StatusCode::NOT_FOUND);
    assert_eq!(c.list_relays().await.ok(StatusCode::OK), json!([]));
}

/// Relays report what they hold over QUIC, which this crate's router does not
/// carry; the test writes the holdings into the store while central is stopped,
/// as that report would, and checks what the HTTP API makes of them.
#[tokio::test]
async fn poll_lists_only_relays_of_activated_sites_that_hold_the_whole_package() {
    let mut c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let (whole, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (partial, _) = c
        .given_relay("paris", &["10.1.2.0/24"], "http://10.1.2.2:8080")
        .await;
    let (elsewhere, _) = c
        .given_relay("lyon", &["10.2.0.0/16"], "http://10.2.0.2:8080")
        .await;
    let bytes = data(10_000);
    let pkg = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&bytes),
        )
        .await;
    let pid = pkg["id"].as_str().unwrap().to_owned();
    c.activate(&pid, json!({"sites": ["paris"], "fallback": "after:2h"}))
        .await
        .ok(StatusCode::OK);
    let agent = c.given_agent("pc1", &["10.1.2.7"]).await;
    c.assign(&pid, json!({"computers": [agent.id]}))
        .await
        .ok(StatusCode::OK);
    let envelope_before = c.package_info(&pid).await.body;

    let held = [(&whole, 3), (&partial, 2), (&elsewhere, 3)];
    c.restart_with_db(|db| {
        let relays = db.open_tree("relays").unwrap();
        for (id, n) in held {
            let mut record: Value =
                serde_json::from_slice(&relays.get(id.as_str()).unwrap().unwrap()).unwrap();
            record["holdings"] =
                json!({ pid.as_str(): {"info_sha256": pkg["info_sha256"], "fragments": n} });
            relays
                .insert(id.as_str(), serde_json::to_vec(&record).unwrap())
                .unwrap();
        }
    });

    // Everything survived the restart.
    assert_eq!(c.package_info(&pid).await.body, envelope_before);
    assert_eq!(c.show_package(&pid).await.ok(StatusCode::OK), {
        let mut p = pkg.clone();
        p["activation"] =
            json!({"all_sites": false, "sites": ["paris"], "central_fallback": "after:2h"});
        p
    });

    let relays = c.list_relays().await.ok(StatusCode::OK);
    let holdings_of = |id: &str| {
        relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["holdings"]
            .clone()
    };
    assert_eq!(
        holdings_of(&whole),
        json!([{"package_id": pid, "held": 3, "total": 3, "complete": true, "eta_s": 0}])
    );
    assert_eq!(
        holdings_of(&partial),
        json!([{"package_id": pid, "held": 2, "total": 3, "complete": false, "eta_s": null}])
    );
    // Lyon holds it but the package is not activated there: not shown.
    assert_eq!(holdings_of(&elsewhere), json!([]));

    let poll = without_jobs(c.poll(&agent, &["10.1.2.7"]).await.ok(StatusCode::OK));
    assert_eq!(
        poll["packages"],
        json!([{
            "id": pid,
            "priority": 5,
            "info_sha256": pkg["info_sha256"],
            "relays": [{"id": whole, "url": "http://10.1.0.2:8080", "subnets": ["10.1.0.0/16"]}],
            // The more specific relay of 10.1.2.0/24 still lacks a fragment.
            "relay_pending": true,
            "central_fallback": "after:2h",
            "kind": "install",
            "restart_timeout_s": 300,
        }])
    );
}
