//! End to end: a package's statistics per site (OCS's per-server statistics).
//! Agents count the fragment bytes each source gave them and report them;
//! central shows them per computer and sums them per site: which relay served
//! the site's computers, and how many bytes came from relays and from central.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sitecast_tests::{payload, Central};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_per_site_which_relay_served_and_the_bytes_from_relays_and_central() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    c.add_site("lyon", &["127.2.0.0/16"]).await;
    let paris = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let lyon = c.relay("lyon", &["127.2.0.0/16"], "127.2.0.1").await;
    // Four fragments, the last one short: the sums are of real fragment lengths.
    let body = payload(200_000, 3);
    let size = body.len() as u64;
    let p = c
        .upload(
            "name=tool&version=1&action=execute&command=true&archive=none&fragment_size=64KiB",
            body,
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.wait_held(&paris.id, &pid).await;
    c.wait_held(&lyon.id, &pid).await;

    let agents = [
        c.agent("pc-paris-1", "127.1.0.11").await,
        c.agent("pc-paris-2", "127.1.0.12").await,
        c.agent("pc-lyon", "127.2.0.11").await,
        // No relay serves 127.3.0.0/16: central is its source.
        c.agent("pc-roaming", "127.3.0.11").await,
    ];
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"all": true}),
    )
    .await;
    for a in &agents {
        assert_eq!(
            a.once_codes().await,
            vec![(pid.clone(), "SUCCESS".to_owned())]
        );
    }

    let stats = c.stats(&pid).await;
    assert_eq!(stats["counts"], json!({"SUCCESS": 4}));
    assert_eq!(
        stats["sites"],
        json!([
            {"site": "lyon", "computers": 1, "bytes_from_relays": size,
             "bytes_from_central": 0, "relays": {lyon.id.as_str(): 1}},
            {"site": "paris", "computers": 2, "bytes_from_relays": 2 * size,
             "bytes_from_central": 0, "relays": {paris.id.as_str(): 2}},
            {"site": null, "computers": 1, "bytes_from_relays": 0,
             "bytes_from_central": size, "relays": {}},
        ]),
        "{stats}"
    );
    // Per computer: the one source it took every fragment byte from.
    let sources = |agent: usize| -> Value {
        stats["computers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["computer_id"] == agents[agent].id.as_str())
            .unwrap()["sources"]
            .clone()
    };
    for (agent, relay) in [(0, &paris.id), (1, &paris.id), (2, &lyon.id)] {
        assert_eq!(
            sources(agent),
            json!([{"relay_id": relay, "bytes": size}]),
            "{stats}"
        );
    }
    assert_eq!(sources(3), json!([{"relay_id": null, "bytes": size}]));
    // What central counted itself agrees: it served only the unserved computer.
    assert_eq!(c.status().await["fragment_bytes_to_agents"], size);
    // The counts lived with the download, which is cleaned up.
    for a in &agents {
        assert!(!a.download_dir(&pid).exists());
    }
}
