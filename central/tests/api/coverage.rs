//! Coverage: unserved computers and sites, stale relays and overlaps.

use crate::harness::clock::Clock;
use crate::harness::*;

impl Central {
    async fn coverage(&self, query: &str) -> Reply {
        self.admin_get(&format!("/api/v1/coverage{query}")).await
    }

    /// Records a relay's report of what it holds, now, as its QUIC link would:
    /// `(package, info_sha256, fragments held)`.
    fn relay_reports(&self, relay: &str, held: &[(&str, &str, u32)]) {
        let holdings: Vec<Value> = held
            .iter()
            .map(|(id, info, n)| json!({"package_id": id, "info_sha256": info, "held": n}))
            .collect();
        let report: sitecast_common::protocol::RelayReport = serde_json::from_value(json!({
            "holdings": holdings, "bytes_from_central": 0, "bytes_to_agents": 0,
        }))
        .unwrap();
        let report = sitecast_central::store::RelayReportRecord::from(&report);
        self.state
            .as_ref()
            .unwrap()
            .store
            .record_relay_report(
                &relay.parse().unwrap(),
                Some(&report),
                Clock::now(self.clock.as_ref()),
            )
            .unwrap();
    }
}

/// The ids of the computers a coverage report lists as unserved.
fn unserved(report: &Value) -> Vec<String> {
    report["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn coverage_lists_unserved_computers_sites_stale_relays_and_overlaps() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    c.given_site("lyon", &[]).await;
    c.given_site("brest", &["10.3.0.0/16"]).await;
    let (paris, _) = c.given_relay("paris", &["10.1.0.0/16"], "http://r1").await;
    let (floor, _) = c.given_relay("paris", &["10.1.2.0/24"], "http://r2").await;
    // Lyon's relay also claims a block inside Paris's /16.
    let (lyon, _) = c
        .given_relay("lyon", &["10.2.0.0/16", "10.1.5.0/24"], "http://r3")
        .await;
    let app = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&data(10_000)),
        )
        .await;
    let tool = c
        .given_package(
            &launch_params("tool", &[("fragment_size", "4KiB")]),
            Some(&data(12_000)),
        )
        .await;
    let (app_id, app_info) = (
        app["id"].as_str().unwrap(),
        app["info_sha256"].as_str().unwrap(),
    );
    let (tool_id, tool_info) = (
        tool["id"].as_str().unwrap(),
        tool["info_sha256"].as_str().unwrap(),
    );
    c.activate(app_id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    c.activate(tool_id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);

    // Computers as their agents enroll them: the addresses they report.
    let office = c.given_agent("office", &["10.1.0.5"]).await;
    c.given_agent("on-floor", &["10.1.2.7"]).await;
    let in_lyon = c.given_agent("in-lyon", &["192.168.0.3", "10.2.0.9"]).await;
    c.given_agent("in-block", &["10.1.5.5"]).await;
    let at_home = c.given_agent("at-home", &["192.168.1.4"]).await;
    let moved = c.given_agent("moved", &["172.16.0.1"]).await;
    let silent = c.given_agent("silent", &[]).await;

    // At T0 every relay but the floor's reports; Lyon's holds an old info of `tool`.
    c.relay_reports(&paris, &[(app_id, app_info, 3)]);
    c.relay_reports(&lyon, &[(tool_id, &"0".repeat(64), 3)]);
    c.set_time(T1);
    // Paris's relay is in touch again at T1, still lacking part of `tool`.
    c.relay_reports(&paris, &[(app_id, app_info, 3), (tool_id, tool_info, 1)]);
    // A poll records the addresses the agent reports now, at T1.
    c.poll(&moved, &["10.1.0.8"]).await.ok(StatusCode::OK);
    c.poll(&office, &[]).await.ok(StatusCode::OK);
    // The address on the connection is not the computer's: agents pick relays
    // by their own addresses, so central counts only those.
    let addr = std::net::SocketAddr::new("10.1.0.99".parse().unwrap(), 40000);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/agent/poll")
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {}", silent.token))
        .extension(axum::extract::ConnectInfo(addr))
        .body(Body::from(json!({"addresses": []}).to_string()))
        .unwrap();
    c.call(req).await.ok(StatusCode::OK);

    let r = c
        .coverage("?computer_recent_within=1h")
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["generated_at"], T1);
    assert_eq!(r["relay_stale_after"], "15m");
    assert_eq!(r["computer_recent_within"], "1h");
    assert_eq!(r["computers"], 7);
    let mut expected = vec![at_home.id.clone(), silent.id.clone()];
    expected.sort();
    assert_eq!(unserved(&r), expected);
    let home = r["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == at_home.id.as_str())
        .unwrap();
    assert_eq!(
        home,
        &json!({"id": at_home.id, "hostname": "at-home", "addresses": ["192.168.1.4"],
                "last_seen": T0, "site": null})
    );
    assert_eq!(
        r["sites"],
        json!([
            {"site": "brest", "subnets": ["10.3.0.0/16"], "relay_subnets": [],
             "relays": 0, "relays_up": 0, "computers": 0, "computers_recent": 0,
             "unserved": 0, "unserved_recent": 0},
            // in-block is lyon's: its /24 is more specific than Paris's /16.
            {"site": "lyon", "subnets": [], "relay_subnets": ["10.1.5.0/24", "10.2.0.0/16"],
             "relays": 1, "relays_up": 0, "computers": 2, "computers_recent": 0,
             "unserved": 0, "unserved_recent": 0},
            // office, on-floor and moved; office and moved polled at T1.
            {"site": "paris", "subnets": ["10.1.0.0/16"],
             "relay_subnets": ["10.1.0.0/16", "10.1.2.0/24"],
             "relays": 2, "relays_up": 1, "computers": 3, "computers_recent": 2,
             "unserved": 0, "unserved_recent": 0},
        ])
    );
    // By site, then relay id (Paris's two ids end in random suffixes).
    let mut paris_stale = vec![
        json!({"id": floor, "site": "paris", "last_seen": null, "reasons": [
            {"kind": "never_seen"},
            {"kind": "incomplete", "package_id": app_id, "held": 0, "total": 3, "activated_at": T0},
            {"kind": "incomplete", "package_id": tool_id, "held": 0, "total": 3, "activated_at": T0},
        ]}),
        json!({"id": paris, "site": "paris", "last_seen": T1, "reasons": [
            {"kind": "incomplete", "package_id": tool_id, "held": 1, "total": 3, "activated_at": T0},
        ]}),
    ];
    paris_stale.sort_by_key(|s| s["id"].as_str().unwrap().to_owned());
    let mut expected = vec![
        json!({"id": lyon, "site": "lyon", "last_seen": T0, "reasons": [
            {"kind": "out_of_touch", "silent_s": 5400},
            {"kind": "old_info", "package_id": tool_id, "held": 3, "total": 3,
             "held_info_sha256": "0".repeat(64), "info_sha256": tool_info,
             "activated_at": T0},
        ]}),
    ];
    expected.extend(paris_stale);
    assert_eq!(r["stale_relays"], Value::Array(expected));
    assert_eq!(
        r["overlaps"],
        json!([{"subnet": "10.1.5.0/24", "served_by": "lyon", "relays": [
            {"relay_id": lyon, "site": "lyon", "subnet": "10.1.5.0/24"},
            {"relay_id": paris, "site": "paris", "subnet": "10.1.0.0/16"},
        ]}])
    );

    // The default thresholds are central.toml's: every computer is recent
    // within a day, and a longer stale threshold puts Lyon's relay back in touch.
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(r["sites"][2]["computers_recent"], 3);
    let r = c.coverage("?relay_stale_after=2h").await.ok(StatusCode::OK);
    assert_eq!(r["sites"][1]["relays_up"], 1);
    assert_eq!(r["stale_relays"][0]["reasons"][0]["kind"], "old_info");
    // Once Lyon's relay holds the current info whole, only the floor's and
    // Paris's relays stay stale.
    c.relay_reports(&lyon, &[(tool_id, tool_info, 3)]);
    c.relay_reports(&paris, &[(app_id, app_info, 3), (tool_id, tool_info, 3)]);
    let r = c.coverage("").await.ok(StatusCode::OK);
    let stale: Vec<&str> = r["stale_relays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(stale, [floor.as_str()]);
    // A relay removed no longer serves anyone: its computers become unserved.
    assert_eq!(c.delete_relay(&lyon).await.status, StatusCode::NO_CONTENT);
    let r = c.coverage("").await.ok(StatusCode::OK);
    let mut expected = vec![at_home.id.clone(), silent.id.clone(), in_lyon.id.clone()];
    expected.sort();
    assert_eq!(unserved(&r), expected);
    assert_eq!(r["overlaps"], json!([]));
}

/// `(site, computers, computers_recent, unserved, unserved_recent)` of each
/// site of a coverage report.
fn site_counts(report: &Value) -> Vec<Value> {
    report["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!([
                s["site"],
                s["computers"],
                s["computers_recent"],
                s["unserved"],
                s["unserved_recent"]
            ])
        })
        .collect()
}

/// The site each unserved computer of a coverage report is named for, by hostname.
fn unserved_sites(report: &Value) -> Vec<(String, Value)> {
    let mut named: Vec<(String, Value)> = report["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["hostname"].as_str().unwrap().to_owned(),
                u["site"].clone(),
            )
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[tokio::test]
async fn coverage_names_the_declared_site_of_each_unserved_computer_and_counts_them() {
    let c = Central::start().await;
    c.given_site("hq", &["10.0.0.0/8"]).await;
    // Declared, no relay yet: the field guide's site whose machines were found by hand.
    c.given_site("brest", &["10.3.0.0/16"]).await;
    // HQ's relay covers its office only.
    c.given_relay("hq", &["10.0.1.0/24"], "http://r1").await;
    c.given_agent("hq-office", &["10.0.1.5"]).await;
    let lab = c.given_agent("hq-lab", &["10.0.9.5"]).await;
    // Brest's /16 is more specific than HQ's /8.
    c.given_agent("brest-1", &["10.3.0.4"]).await;
    c.given_agent("brest-2", &["192.168.0.2", "10.3.7.1"]).await;
    c.given_agent("at-home", &["192.168.1.4"]).await;
    c.set_time(T1);
    c.poll(&lab, &[]).await.ok(StatusCode::OK);

    let r = c
        .coverage("?computer_recent_within=1h")
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        unserved_sites(&r),
        [
            ("at-home".to_owned(), Value::Null),
            ("brest-1".to_owned(), json!("brest")),
            ("brest-2".to_owned(), json!("brest")),
            ("hq-lab".to_owned(), json!("hq")),
        ]
    );
    // Only hq-lab was in touch within the hour.
    assert_eq!(
        site_counts(&r),
        [json!(["brest", 0, 0, 2, 0]), json!(["hq", 1, 0, 1, 1])]
    );

    // A relay for Brest: its computers are served there now.
    c.given_relay("brest", &["10.3.0.0/16"], "http://r2").await;
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(
        unserved_sites(&r),
        [
            ("at-home".to_owned(), Value::Null),
            ("hq-lab".to_owned(), json!("hq")),
        ]
    );
    assert_eq!(
        site_counts(&r),
        [json!(["brest", 2, 2, 0, 0]), json!(["hq", 1, 1, 1, 1])]
    );
}

#[tokio::test]
async fn coverage_is_for_admins_and_names_a_bad_threshold() {
    let c = Central::start().await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    c.send(Method::GET, "/api/v1/coverage", None, Body::empty())
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["Authorization"]);
    c.send(
        Method::GET,
        "/api/v1/coverage",
        Some("not-a-token"),
        Body::empty(),
    )
    .await
    .err_naming(StatusCode::UNAUTHORIZED, &["token"]);
    c.send(
        Method::GET,
        "/api/v1/coverage",
        Some(agent.token.as_str()),
        Body::empty(),
    )
    .await
    .err_naming(StatusCode::FORBIDDEN, &["admin"]);
    c.coverage("?relay_stale_after=soon")
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["relay_stale_after", "soon"]);
    c.coverage("?computer_recent_within=10")
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computer_recent_within", "10"]);
    c.coverage("?stale=1h")
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["stale"]);
    // With nothing but one computer, it is unserved.
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(unserved(&r), [agent.id]);
    assert_eq!(r["sites"], json!([]));
    assert_eq!(r["stale_relays"], json!([]));
}

/// `activated_at` of the first `incomplete` reason of `relay` in a coverage report.
fn activated_at(report: &Value, relay: &str) -> Value {
    report["stale_relays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == relay)
        .and_then(|r| {
            r["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["kind"] == "incomplete")
        })
        .map_or(Value::Null, |x| x["activated_at"].clone())
}

#[tokio::test]
async fn coverage_says_since_when_a_missing_package_has_been_activated() {
    let mut c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let (paris, _) = c.given_relay("paris", &["10.1.0.0/16"], "http://r1").await;
    let (lyon, _) = c.given_relay("lyon", &["10.2.0.0/16"], "http://r2").await;
    let pkg = c.given_command_package("tool", "5").await;
    let id = pkg["id"].as_str().unwrap();
    c.activate(id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &paris), T0);
    assert_eq!(activated_at(&r, &lyon), T0);

    // Taking Paris off: Lyon has been activated since T0 all the same.
    c.set_time(T1);
    c.deactivate(id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &paris), Value::Null);
    assert_eq!(activated_at(&r, &lyon), T0);
    // Paris again, from T1; activating for all sites later changes neither.
    c.activate(id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    c.set_time("2025-03-01T12:00:00Z");
    c.activate(id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    c.activate(id, json!({"sites": ["paris", "lyon"]}))
        .await
        .ok(StatusCode::OK);
    c.restart_with_db(|_| {});
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &paris), T1);
    assert_eq!(activated_at(&r, &lyon), T0);

    // Deactivated everywhere, then activated for Lyon: from now.
    c.deactivate(id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &lyon), Value::Null);
    c.activate(id, json!({"sites": ["lyon"]}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &lyon), "2025-03-01T12:00:00Z");
    // A deleted package takes its times along.
    c.delete_package(id).await;
    let state = c.state.as_ref().unwrap();
    assert!(state.store.activation_times().unwrap().is_empty());
}
