//! Process-level tests of the real `sitecast-central` binary: crash safety under
//! `kill -9` mid-upload, flat memory while a 1 GiB package streams in or a relay
//! floods it over QUIC, and idle connections that neither starve it nor stay open.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sitecast_common::signing;
use sitecast_common::wire::Package;

const BIN: &str = env!("CARGO_BIN_EXE_sitecast-central");

/// A running `sitecast-central serve`, killed with SIGKILL when dropped.
struct Central {
    child: Child,
    url: String,
    dir: PathBuf,
    http: reqwest::Client,
    token: String,
}

fn init(dir: &Path) {
    let status = Command::new(BIN)
        .args(["init", "--dir"])
        .arg(dir)
        .args([
            "--api-listen",
            "127.0.0.1:0",
            "--quic-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

impl Central {
    fn start(dir: &Path) -> Central {
        let mut child = Command::new(BIN)
            .args(["serve", "--dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The first stdout line says where it listens; it is printed once bound.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("sitecast-central: serving ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let ca = std::fs::read(dir.join("tls/ca.pem")).unwrap();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let token = std::fs::read_to_string(dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Central {
            child,
            url,
            dir: dir.to_owned(),
            http,
            token,
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
    }

    async fn upload(&self, name: &str, body: reqwest::Body) -> reqwest::Result<reqwest::Response> {
        self.post(&format!(
            "/packages?name={name}&version=1&action=store&path=/opt/{name}&fragment_size=1MiB"
        ))
        .body(body)
        .send()
        .await
    }

    async fn packages(&self) -> Vec<Package> {
        let resp = self.get("/packages").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Bytes of unfinished uploads on disk.
    fn partial_upload_bytes(&self) -> u64 {
        std::fs::read_dir(self.dir.join("packages/tmp"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.metadata().map_or(0, |m| m.len()))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Checks a package is complete: data, signed info that verifies, digests that match.
    fn assert_complete(&self, p: &Package, expected: &[u8]) {
        let public = signing::verifying_key_from_pem(
            &std::fs::read_to_string(self.dir.join("keys/signing.pub")).unwrap(),
        )
        .unwrap();
        let envelope = std::fs::read(
            self.dir
                .join("packages")
                .join(p.id.as_str())
                .join("info.dsse.json"),
        )
        .unwrap();
        let info = signing::verify_info(&envelope, &[public]).unwrap();
        let data =
            std::fs::read(self.dir.join("packages").join(p.id.as_str()).join("data")).unwrap();
        assert_eq!(data, expected);
        assert_eq!(info.plan().size(), expected.len() as u64);
        for i in 1..=info.plan().count() {
            let (off, len) = info.plan().range(i).unwrap();
            info.plan()
                .verify(i, &data[off as usize..(off + len) as usize])
                .unwrap();
        }
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Waits for a condition, failing after a deadline (never a fixed sleep).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_loses_nothing_acknowledged_and_leaves_nothing_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    init(&dir);
    let central = Central::start(&dir);

    // Acknowledged before the crash: a site and a complete package.
    let resp = central
        .post("/sites")
        .json(&serde_json::json!({"name": "paris", "subnets": ["127.1.0.0/16"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let first = pattern(3 << 20, 1);
    let resp = central.upload("acked", first.clone().into()).await.unwrap();
    assert_eq!(resp.status(), 201);
    let acked: Package = resp.json().await.unwrap();

    // An upload that sends 8 MiB and then stalls: central has written part of it.
    let head = futures_util::stream::iter(
        (0..8).map(|i| Ok::<_, std::io::Error>(bytes::Bytes::from(pattern(1 << 20, i)))),
    );
    let body = reqwest::Body::wrap_stream(head.chain(futures_util::stream::pending()));
    let upload = {
        let req = central
            .post("/packages?name=partial&version=1&action=store&path=/opt/p")
            .body(body);
        tokio::spawn(async move { req.send().await })
    };
    wait_until("part of the upload on disk", || {
        central.partial_upload_bytes() >= 4 << 20
    })
    .await;
    central.kill();
    let _ = upload.await;

    let central = Central::start(&dir);
    let packages = central.packages().await;
    assert_eq!(packages.len(), 1, "{packages:?}");
    assert_eq!(packages[0], acked);
    central.assert_complete(&packages[0], &first);
    assert_eq!(central.partial_upload_bytes(), 0);
    let sites: serde_json::Value = central
        .get("/sites")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sites[0]["name"], "paris");

    // Kill right as a whole body has been sent: the package is complete or absent.
    let racing = pattern(2 << 20, 9);
    let req = central
        .post("/packages?name=racing&version=1&action=store&path=/opt/r")
        .body(racing.clone());
    let sent = tokio::spawn(async move { req.send().await });
    wait_until("the racing upload to start", || {
        central.partial_upload_bytes() > 0 || sent.is_finished()
    })
    .await;
    central.kill();
    let _ = sent.await;
    let central = Central::start(&dir);
    for p in central.packages().await {
        if p.name == "racing" {
            central.assert_complete(&p, &racing);
        }
    }
    assert_eq!(central.partial_upload_bytes(), 0);
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("packages"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "tmp")
        .collect();
    let known: Vec<String> = central
        .packages()
        .await
        .into_iter()
        .map(|p| p.id.to_string())
        .collect();
    for l in leftovers {
        assert!(known.contains(&l), "package directory {l} has no metadata");
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_1_gib_keeps_peak_rss_under_150_mib() {
    const GIB: u64 = 1 << 30;
    const CHUNK: usize = 1 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    init(&dir);
    let central = Central::start(&dir);
    let chunk = bytes::Bytes::from(pattern(CHUNK, 3));
    let chunks = (GIB / CHUNK as u64) as usize;
    let body = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let resp = central
        .upload("big", reqwest::Body::wrap_stream(body))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let p: Package = resp.json().await.unwrap();
    assert_eq!(p.size, GIB);
    assert_eq!(p.fragments, 1024);
    let peak = peak_rss_kib(central.pid());
    eprintln!("central peak RSS after a 1 GiB upload: {} MiB", peak / 1024);
    assert!(peak < 150 * 1024, "peak RSS {peak} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_keeps_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    init(&dir);
    let mut central = Central::start(&dir);
    let data = pattern(100_000, 5);
    let resp = central.upload("kept", data.clone().into()).await.unwrap();
    assert_eq!(resp.status(), 201);
    let status = Command::new("kill")
        .args(["-TERM", &central.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = central.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "central did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "central exited with {exit}");
    drop(central);
    let central = Central::start(&dir);
    let packages = central.packages().await;
    assert_eq!(packages.len(), 1);
    central.assert_complete(&packages[0], &data);
}

/// Opens `n` connections to `addr` that say nothing (`half` of them send half a TLS
/// record first: a handshake that never completes).
async fn idle_connections(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            // A TLS handshake record header announcing 512 bytes, then nothing.
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .unwrap();
        }
        held.push(s);
    }
    held
}

/// Every connection of `held` is closed by the server within `within`.
async fn all_closed(held: Vec<tokio::net::TcpStream>, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    for mut s in held {
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
    true
}

/// A thousand idle or half-handshaken connections do not starve the real binary:
/// a normal request is answered within a second, and they are all closed within
/// their timeouts (`http_header_timeout`, `http_idle_timeout` in central.toml).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_starve_central_and_are_closed() {
    sitecast_io::http::raise_fd_limit();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    init(&dir);
    let config = dir.join("central.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("http_header_timeout = \"2s\"\nhttp_idle_timeout = \"3s\"\n");
    std::fs::write(&config, text).unwrap();
    let central = Central::start(&dir);
    let addr = central.url.trim_start_matches("https://").to_owned();
    let held = idle_connections(&addr, 1000).await;

    let started = Instant::now();
    let resp = central.get("/status").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // 3 s of idle timeout, with room for a loaded machine.
    assert!(
        all_closed(held, Duration::from_secs(20)).await,
        "idle connections stayed open"
    );
}

/// Initialises central with a QUIC port of its own: its address.
fn init_with_quic_port(dir: &Path) -> std::net::SocketAddr {
    let quic_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let status = Command::new(BIN)
        .args(["init", "--dir"])
        .arg(dir)
        .args(["--api-listen", "127.0.0.1:0", "--quic-listen"])
        .arg(format!("127.0.0.1:{quic_port}"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    format!("127.0.0.1:{quic_port}").parse().unwrap()
}

/// A QUIC connection to central at `addr` as a relay's link makes it (TLS
/// verified against central's CA, the protocol's ALPN, the shared transport
/// settings), before any hello.
async fn quic_link(dir: &Path, addr: std::net::SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    use std::sync::Arc;
    let roots = sitecast_io::tls::roots(&dir.join("tls/ca.pem")).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(sitecast_io::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![sitecast_common::protocol::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(sitecast_io::quic::transport()));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let conn = endpoint.connect(addr, "127.0.0.1").unwrap().await.unwrap();
    (endpoint, conn)
}

/// Central killed with SIGKILL and started again on the same port: a relay's
/// connection to the dead process is reset by the new one at the relay's next
/// packet (central's stateless-reset key survives the restart), so the relay
/// reconnects at once instead of waiting out the 30 s idle timeout, deaf to
/// every activation meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_link_to_a_killed_central_is_reset_by_the_restarted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    // A fixed QUIC port, as in production: the restarted central answers there.
    let addr = init_with_quic_port(&dir);
    let central = Central::start(&dir);
    let (_endpoint, conn) = quic_link(&dir, addr).await;
    central.kill();
    let _central = Central::start(&dir);

    // The relay's next packet (its request here; a keep-alive would do too)
    // reaches the new process.
    let _ = conn
        .open_bi()
        .await
        .map(|(mut send, _)| tokio::spawn(async move { send.write_all(b"anyone there?").await }));
    let ended = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
    match ended {
        Ok(quinn::ConnectionError::Reset) => {}
        Ok(other) => panic!("the connection ended otherwise: {other}"),
        Err(_) => panic!("the restarted central did not reset the dead connection within 10 s"),
    }
}

/// One hostile connection of an authenticated relay, until `until` or central
/// closes it: reports as long as a message may be, back to back, and 64
/// request streams asking for fragments whose answers it never reads.
async fn flood_once(
    dir: &Path,
    addr: std::net::SocketAddr,
    hello: &[u8],
    report: &bytes::Bytes,
    request: &[u8],
    until: Instant,
) {
    use sitecast_common::protocol::{self, CentralMessage};
    let (_endpoint, conn) = quic_link(dir, addr).await;
    let Ok((mut control, mut welcome)) = conn.open_bi().await else {
        return;
    };
    if control.write_all(hello).await.is_err() {
        return;
    }
    let mut header = [0u8; 4];
    if welcome.read_exact(&mut header).await.is_err() {
        return;
    }
    let mut body = vec![0u8; protocol::body_len(header).unwrap()];
    if welcome.read_exact(&mut body).await.is_err() {
        return;
    }
    let answer: CentralMessage = protocol::decode(&body).unwrap();
    assert!(
        matches!(answer, CentralMessage::Welcome { .. }),
        "{answer:?}"
    );
    let reports = {
        let report = report.clone();
        tokio::spawn(async move { while control.write_chunk(report.clone()).await.is_ok() {} })
    };
    let mut unread = Vec::new();
    for _ in 0..64 {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Ok((mut send, recv))) = tokio::time::timeout(left, conn.open_bi()).await else {
            break;
        };
        if send.write_all(request).await.is_err() {
            break;
        }
        unread.push((send, recv));
    }
    let _ = tokio::time::timeout(
        until.saturating_duration_since(Instant::now()),
        conn.closed(),
    )
    .await;
    reports.abort();
    drop(welcome);
}

/// One authenticated relay floods central as hard as it can: 4 connections (each
/// made again as soon as central closes it), each with 64 request streams asking
/// for fragments it never reads and a control stream of back-to-back reports as
/// long as a message may be (4 MiB). Central's peak RSS stays under 200 MiB and
/// its API answers within 1 s throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_flooding_central_over_quic_cannot_grow_it_past_200_mib() {
    use sitecast_common::protocol::{self, HeldPackage, RelayMessage, RelayReport, Request};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    let addr = init_with_quic_port(&dir);
    let central = Central::start(&dir);
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{r:?}");
        r
    };
    ok(central
        .post("/sites")
        .json(&serde_json::json!({"name": "paris", "subnets": ["127.1.0.0/16"]}))
        .send()
        .await
        .unwrap());
    let relay: serde_json::Value = ok(central
        .post("/relays")
        .json(&serde_json::json!({"site": "paris", "subnets": ["127.1.0.0/16"], "url": "http://127.1.0.1:1"}))
        .send()
        .await
        .unwrap())
    .json()
    .await
    .unwrap();
    let p = central
        .upload("flooded", reqwest::Body::from(pattern(16 << 20, 5)))
        .await
        .unwrap();
    let p: Package = ok(p).json().await.unwrap();
    ok(central
        .post(&format!("/packages/{}/activations", p.id))
        .json(&serde_json::json!({"sites": ["paris"]}))
        .send()
        .await
        .unwrap());

    let hello = protocol::encode(&RelayMessage::Hello {
        version: protocol::VERSION,
        relay_id: relay["id"].as_str().unwrap().parse().unwrap(),
        token: relay["token"].as_str().unwrap().to_owned(),
        software: "a flood".into(),
    });
    let held = HeldPackage {
        package_id: p.id.clone(),
        info_sha256: "0".repeat(64),
        held: 1,
    };
    let entry = serde_json::to_vec(&held).unwrap().len() + 1;
    let mut report = RelayReport {
        holdings: vec![held; (protocol::MAX_MESSAGE as usize - 4096) / entry],
        bytes_from_central: 0,
        quic_bytes_from_central: 0,
        bytes_to_agents: 0,
        window_open: true,
        max_rate: None,
        rate: 0,
        health: Default::default(),
    };
    let mut encoded = protocol::encode(&RelayMessage::Report(report.clone()));
    while encoded.len() > protocol::MAX_MESSAGE as usize {
        report.holdings.truncate(report.holdings.len() * 9 / 10);
        encoded = protocol::encode(&RelayMessage::Report(report.clone()));
    }
    assert!(
        encoded.len() > (3 << 20),
        "a report of {} bytes",
        encoded.len()
    );
    let report = bytes::Bytes::from(encoded);
    let request = protocol::encode(&Request::Fragment {
        package_id: p.id.clone(),
        index: 1,
    });

    let until = Instant::now() + Duration::from_secs(10);
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let (dir, hello, report, request) =
                (dir.clone(), hello.clone(), report.clone(), request.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    flood_once(&dir, addr, &hello, &report, &request, until).await;
                }
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let asked = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(5), central.get("/status").send())
            .await
            .expect("central did not answer within 5 s")
            .unwrap();
        assert!(status.status().is_success());
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for flood in floods {
        flood.abort();
    }
    let peak = peak_rss_kib(central.pid());
    eprintln!(
        "relay flood: central peak RSS {} MiB, slowest API answer {slowest:?}",
        peak / 1024
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    assert!(
        slowest < Duration::from_secs(1),
        "an API answer took {slowest:?}"
    );
}
