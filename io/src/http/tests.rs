//! Tests of the bounded serving loop on loopback: idle connections closed, a
//! slowloris head cut off, a thousand idle connections not starving a request,
//! and clients past the connection limit waiting for a slot.
#![allow(clippy::unwrap_used)]

use std::time::Instant as StdInstant;

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A server of `GET /` → `ok` under `limits`, on loopback; its address.
async fn server(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        limits,
        |tcp, _| async move { Some(tcp) },
        app,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Sends one request on a new connection and reads the answer to its end.
async fn get_root(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Waits for the server to close `s`: `true` if it did within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn limits(header: u64, idle: u64, max: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_millis(header),
        idle_timeout: Duration::from_millis(idle),
        max_connections: max,
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_its_timeout_and_a_used_one_lives_on() {
    let (addr, _stop) = server(limits(60_000, 500, 16)).await;
    let started = StdInstant::now();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(10)).await);
    assert!(started.elapsed() >= Duration::from_millis(500));

    // A keep-alive connection that asks every 200 ms is never idle for 500 ms.
    let mut busy = TcpStream::connect(addr).await.unwrap();
    for _ in 0..6 {
        busy.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = busy.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("ok"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Slowloris: headers a byte at a time keep the connection busy, not served.
#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout() {
    let (addr, _stop) = server(limits(600, 60_000, 16)).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let started = StdInstant::now();
    let mut cut = false;
    for byte in b"GET / HTTP/1.1\r\nx-slow: "
        .iter()
        .chain(std::iter::repeat(&b'a'))
    {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await
        {
            // Closed (or answered 408): cut off either way.
            assert!(read.map_or(true, |n| n == 0 || buf.starts_with(b"HTTP/1.1 408")));
            cut = true;
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never cut off");
    }
    assert!(cut);
    assert!(started.elapsed() >= Duration::from_millis(600));
}

/// With a thousand idle connections open, a normal request is still answered at once.
#[tokio::test]
async fn a_thousand_idle_connections_do_not_starve_a_normal_request() {
    raise_fd_limit();
    let (addr, _stop) = server(limits(60_000, 60_000, 4096)).await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let started = StdInstant::now();
    assert!(get_root(addr).await.ends_with("ok"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// Past `max_connections`, a new client waits for a slot instead of being served.
#[tokio::test]
async fn past_the_connection_limit_a_client_waits_for_a_slot() {
    let (addr, _stop) = server(limits(60_000, 60_000, 2)).await;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let third = tokio::spawn(get_root(addr));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served past the limit");
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.ends_with("ok"), "{answer}");
}

#[test]
fn the_connection_limit_fits_the_descriptors() {
    let wanted = Limits::default();
    assert_eq!(wanted.fitting(1 << 20).max_connections, 4096);
    assert_eq!(wanted.fitting(256).max_connections, 128);
    assert_eq!(wanted.fitting(0).max_connections, 16);
}
