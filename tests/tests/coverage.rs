//! End to end: the coverage report (seed 004's machines left out by the
//! same-subnet rule, found by central instead of by hand). An agent bound on
//! an address no relay's subnet contains is listed as unserved, named for the
//! site whose declared subnet contains it if one does, and the one on its
//! relay's subnet is not; a relay that never connected, and a relay that lacks
//! a package activated for its site, are stale, each with its reason.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sitecast_central::clock::Clock;
use sitecast_tests::{payload, Central};

/// The entry of `stale_relays` for `relay`, if it is stale.
fn stale_entry(report: &Value, relay: &str) -> Option<Value> {
    report["stale_relays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == relay)
        .cloned()
}

fn site_entry(report: &Value, site: &str) -> Value {
    report["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == site)
        .cloned()
        .unwrap_or_else(|| panic!("no site {site} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_finds_the_unserved_agent_and_the_stale_relays() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    c.add_site("lyon", &["127.2.0.0/16"]).await;
    // Declared, no relay yet.
    c.add_site("brest", &["127.3.0.0/16"]).await;
    let mut paris = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    // Registered on central, never started: it never connects.
    let lyon = c.silent_relay("lyon", &["127.2.0.0/16"], "127.2.0.1").await;
    let p = c
        .upload(
            "name=tool&version=1&action=execute&command=true&archive=none&fragment_size=16KiB",
            payload(40_000, 3),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.wait_held(&paris.id, &pid).await;

    let inside = c.agent("pc-inside", "127.1.0.11").await;
    let outside = c.agent("pc-outside", "127.9.0.1").await;
    let in_brest = c.agent("pc-brest", "127.3.0.5").await;
    // Each polls once, from its own address, as it would every cycle.
    inside.once().await;
    outside.once().await;
    in_brest.once().await;

    let report = c.get("/coverage").await;
    assert_eq!(report["computers"], 3);
    let unserved = |id: &str| {
        report["unserved"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not unserved in {report}"))
    };
    assert_eq!(report["unserved"].as_array().unwrap().len(), 2, "{report}");
    let entry = unserved(&outside.id);
    assert!(entry["last_seen"].is_string(), "{report}");
    assert_eq!(
        entry,
        json!({
            "id": outside.id,
            "hostname": "pc-outside",
            "addresses": ["127.9.0.1"],
            "last_seen": entry["last_seen"],
            "site": null,
        })
    );
    assert_eq!(unserved(&in_brest.id)["site"], "brest");
    let brest = site_entry(&report, "brest");
    assert_eq!(
        (&brest["computers"], &brest["unserved"]),
        (&json!(0), &json!(1))
    );
    assert_eq!(site_entry(&report, "paris")["unserved"], 0);
    let site = site_entry(&report, "paris");
    assert_eq!(site["relays"], 1);
    assert_eq!(site["relays_up"], 1);
    assert_eq!(site["computers"], 1);
    assert_eq!(site["computers_recent"], 1);
    assert_eq!(site_entry(&report, "lyon")["relays_up"], 0);
    // Paris's relay holds everything its site activated and is in touch.
    assert_eq!(stale_entry(&report, &paris.id), None, "{report}");
    let total = p["fragments"].as_u64().unwrap();
    assert_eq!(total, 3);
    let lyon_entry = stale_entry(&report, &lyon).unwrap();
    let since = lyon_entry["reasons"][1]["activated_at"].clone();
    assert!(since.is_string(), "{lyon_entry}");
    assert_eq!(
        lyon_entry,
        json!({"id": lyon, "site": "lyon", "last_seen": null, "reasons": [
            {"kind": "never_seen"},
            {"kind": "incomplete", "package_id": pid, "held": 0, "total": total,
             "activated_at": since},
        ]})
    );
    assert_eq!(report["overlaps"], json!([]));

    // Paris's relay goes away; a package activated since is one it lacks, and
    // an hour later it is out of touch.
    paris.stop().await;
    let q = c
        .upload(
            "name=patch&version=1&action=execute&command=true&archive=none&fragment_size=16KiB",
            payload(20_000, 4),
        )
        .await;
    let qid = q["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{qid}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    let report = c.get("/coverage").await;
    let reasons = stale_entry(&report, &paris.id).unwrap()["reasons"].clone();
    assert_eq!(reasons.as_array().unwrap().len(), 1, "{reasons}");
    assert_eq!(reasons[0]["kind"], "incomplete");
    assert_eq!(reasons[0]["package_id"], qid.as_str());
    assert_eq!(
        (reasons[0]["held"].as_u64(), reasons[0]["total"].as_u64()),
        (Some(0), Some(2))
    );
    // Activated after the first package.
    let activated: jiff::Timestamp = reasons[0]["activated_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        activated >= since.as_str().unwrap().parse().unwrap(),
        "{reasons}"
    );
    let later = c
        .clock
        .now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    c.clock.set(later);
    let report = c.get("/coverage").await;
    let reasons = stale_entry(&report, &paris.id).unwrap()["reasons"].clone();
    assert_eq!(reasons[0]["kind"], "out_of_touch", "{reasons}");
    assert!(
        reasons[0]["silent_s"].as_u64().unwrap() >= 3600,
        "{reasons}"
    );
    assert_eq!(reasons[1]["kind"], "incomplete");
    assert_eq!(site_entry(&report, "paris")["relays_up"], 0);
    // The agents were in touch an hour ago: still within a day, not within 30 minutes.
    assert_eq!(site_entry(&report, "paris")["computers_recent"], 1);
    let report = c.get("/coverage?computer_recent_within=30m").await;
    assert_eq!(site_entry(&report, "paris")["computers_recent"], 0);
}
