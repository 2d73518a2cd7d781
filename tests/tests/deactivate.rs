//! End to end: OCS's red cross on a redistribution server. A package
//! deactivated for a site leaves that site's relay — its holdings as the relay
//! reports them and its cache directory — while the relays of other sites and
//! the relay's other packages are untouched; the site's computers that were not
//! notified yet lose their job, the other site's still install it.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sitecast_tests::{payload, wait_until, Central};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_deactivated_for_a_site_leaves_its_relay_and_its_waiting_jobs() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    c.add_site("lyon", &["127.2.0.0/16"]).await;
    let paris = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let lyon = c.relay("lyon", &["127.2.0.0/16"], "127.2.0.1").await;
    let p = c
        .upload(
            "name=tool&version=1&action=execute&command=true&archive=none&fragment_size=16KiB",
            payload(50_000, 7),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_owned();
    // Another package paris's relay holds, which must stay.
    let q = c
        .upload(
            "name=other&version=1&action=execute&command=true&archive=none&fragment_size=16KiB",
            payload(20_000, 8),
        )
        .await;
    let qid = q["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.post(
        &format!("/packages/{qid}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    c.wait_held(&paris.id, &pid).await;
    c.wait_held(&paris.id, &qid).await;
    c.wait_held(&lyon.id, &pid).await;
    assert!(paris.cache(&pid).is_dir());

    let in_paris = c.agent("pc-paris", "127.1.0.11").await;
    let in_lyon = c.agent("pc-lyon", "127.2.0.11").await;
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"all": true}),
    )
    .await;

    let d = c
        .delete_json(
            &format!("/packages/{pid}/activations"),
            json!({"sites": ["paris"]}),
        )
        .await;
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": ["lyon"], "central_fallback": "never"})
    );
    assert_eq!(d["cancelled"], 1);
    assert_eq!(d["computers"], json!([in_paris.id]));

    // The relay drops it: its own report no longer lists it, nor does GET /relays,
    // and its cache directory for the package is gone.
    let relay_id = paris.id.parse().unwrap();
    wait_until(&format!("{} to drop {pid}", paris.id), || async {
        let reported = c.state.store.relay(&relay_id).unwrap().unwrap();
        !reported.holdings.contains_key(&pid.parse().unwrap()) && !paris.cache(&pid).exists()
    })
    .await;
    let view = c.relay_view(&paris.id).await;
    let held: Vec<&str> = view["holdings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["package_id"].as_str().unwrap())
        .collect();
    assert_eq!(held, vec![qid.as_str()]);
    // Its other package, and lyon's copy, stay.
    c.wait_held(&paris.id, &qid).await;
    assert!(paris.cache(&qid).is_dir());
    c.wait_held(&lyon.id, &pid).await;
    assert!(lyon.cache(&pid).is_dir());

    // Paris's computer was never notified: it has nothing to do. Lyon's installs
    // from its relay.
    assert_eq!(in_paris.once_codes().await, vec![]);
    assert_eq!(
        in_lyon.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    let stats = c.stats(&pid).await;
    assert_eq!(stats["by_status"], json!({"SUCCESS": [in_lyon.id]}));
    assert_eq!(
        stats["computers"][0]["sources"],
        json!([{"relay_id": lyon.id, "bytes": 50_000}])
    );
}
