//! The real `sitecast-relay` binary is not starved by idle clients: with a thousand
//! connections open that say nothing, an agent's request is answered within a
//! second, and the idle ones are closed within `http_idle_timeout`.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sitecast_tests::Central;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_starve_the_relay_and_are_closed() {
    sitecast_io::http::raise_fd_limit();
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let dir = c.path("relay");
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
    let mut config = sitecast_relay::enroll(
        &dir,
        sitecast_relay::EnrollOptions {
            central: format!("127.0.0.1:{}", c.quic.port()),
            ca: c.layout.ca_cert(),
            id: created["id"].as_str().unwrap().parse().unwrap(),
            token: created["token"].as_str().unwrap().to_owned(),
            listen: format!("127.1.0.1:{port}").parse().unwrap(),
            schedule: None,
            max_rate: None,
            max_disk: None,
            scrub_interval: None,
        },
    )
    .unwrap();
    config.http_idle_timeout = Some("2s".parse().unwrap());
    config.save(&dir).unwrap();
    let mut relay = Command::new(env!("CARGO_BIN_EXE_sitecast-relay"))
        .args(["serve", "--dir"])
        .arg(&dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.1.0.1:{port}");
    let health = || async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
        s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.ok()?;
        Some(answer)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while health().await.is_none() {
        assert!(Instant::now() < deadline, "the relay never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let started = Instant::now();
    let answer = health().await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let closed_by = tokio::time::Instant::now() + Duration::from_secs(20);
    for mut s in held {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout_at(closed_by, s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "an idle connection stayed open: {read:?}"
        );
    }
    relay.kill().unwrap();
    relay.wait().unwrap();
}
