//! The real `sitecast-relay` binary killed with SIGKILL mid-replication resumes
//! after a restart with what it held, and fetches only the fragments it lacked.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};

use serde_json::json;
use sitecast_tests::{payload, wait_until, Central};

const FRAGMENT: u64 = 256 << 10;
const FRAGMENTS: u64 = 1024;

fn start(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sitecast-relay"))
        .args(["serve", "--dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn held(cache: &std::path::Path) -> u64 {
    std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count() as u64
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_replication_fetches_only_what_it_lacked() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let port = std::net::TcpListener::bind("127.1.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let created = c
        .post(
            "/relays",
            json!({"site": "paris", "subnets": ["127.1.0.0/16"], "url": format!("http://127.1.0.1:{port}")}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let dir = c.path("relay");
    sitecast_relay::enroll(
        &dir,
        sitecast_relay::EnrollOptions {
            central: format!("127.0.0.1:{}", c.quic.port()),
            ca: c.layout.ca_cert(),
            id: id.parse().unwrap(),
            token: created["token"].as_str().unwrap().to_owned(),
            listen: format!("127.1.0.1:{port}").parse().unwrap(),
            schedule: None,
            max_rate: None,
            max_disk: None,
            scrub_interval: None,
        },
    )
    .unwrap();
    let p = c
        .upload(
            "name=big&version=1&action=store&path=/opt/big&archive=none&fragment_size=256KiB",
            payload((FRAGMENT * FRAGMENTS) as usize, 3),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_owned();
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    let cache = dir.join("cache").join(&pid);

    let mut relay = start(&dir);
    wait_until("the relay to hold some fragments", || async {
        held(&cache) >= 8
    })
    .await;
    relay.kill().unwrap();
    relay.wait().unwrap();
    let before = held(&cache);
    assert!(
        before < FRAGMENTS,
        "the relay finished before it was killed; nothing was proven"
    );

    let mut relay = start(&dir);
    c.wait_held(&id, &pid).await;
    // Counters restart with the process: everything received now is what was missing.
    c.wait_relay_counter(&id, "bytes_from_central", (FRAGMENTS - before) * FRAGMENT)
        .await;
    let view = c.relay_view(&id).await;
    assert_eq!(
        view["bytes_from_central"].as_u64().unwrap(),
        (FRAGMENTS - before) * FRAGMENT,
        "held {before} fragments at the restart: {view}"
    );
    assert_eq!(held(&cache), FRAGMENTS);
    relay.kill().unwrap();
    relay.wait().unwrap();
}
