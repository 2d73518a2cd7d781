//! A relay whose link to central drops (central restarts) reconnects by itself
//! (with back-off) and picks up activations made meanwhile.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sitecast_tests::{payload, Central};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_reconnects_after_central_goes_away_and_comes_back() {
    let mut c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let first = c
        .upload(
            "name=first&version=1&action=store&path=/opt/f&fragment_size=8KiB",
            payload(30_000, 1),
        )
        .await;
    let first = first["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{first}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.wait_held(&relay.id, &first).await;
    let connected = |c: &Central| c.state.changes.receiver_count();
    assert_eq!(connected(&c), 1);

    c.restart().await;
    // While the relay is away, a second package is activated.
    let second = c
        .upload(
            "name=second&version=1&action=store&path=/opt/s&fragment_size=8KiB",
            payload(30_000, 2),
        )
        .await;
    let second = second["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{second}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    // Only a new connection can tell the relay about the second package.
    c.wait_held(&relay.id, &second).await;
    c.wait_held(&relay.id, &first).await;
    assert_eq!(connected(&c), 1);
}
