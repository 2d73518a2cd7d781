//! The end-to-end harness: a central, relays and agents running in-process on
//! loopback addresses (`127.x.y.z`), ephemeral ports and temporary directories.
//! Tests wait on conditions with deadlines, never on fixed sleeps.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sitecast_central::clock::ShiftedClock;
use sitecast_central::init::{self, InitOptions, Layout};
use sitecast_central::{Central as CentralState, Listeners};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until `cond` holds, polling; fails the test after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stop_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// A central running in-process.
pub struct Central {
    pub root: tempfile::TempDir,
    pub layout: Layout,
    pub url: String,
    pub quic: SocketAddr,
    pub state: Arc<CentralState>,
    /// Central's clock: the system's, until a test moves it.
    pub clock: Arc<ShiftedClock>,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub enroll_token: String,
    /// The API's address.
    api: SocketAddr,
    /// Stops the running server, and the task running it, so tests can restart it.
    running: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

/// Runs central through the same `run` as the binary, until `stop` says so.
fn serve(
    state: &Arc<CentralState>,
    listeners: Listeners,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, rx) = watch::channel(false);
    let run = sitecast_central::run(Arc::clone(state), listeners, stop_signal(&rx));
    let task = tokio::spawn(async move { run.await.unwrap() });
    (stop, task)
}

impl Central {
    pub async fn start() -> Central {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("central");
        let opts = InitOptions {
            api_listen: "127.0.0.1:0".parse().unwrap(),
            quic_listen: "127.0.0.1:0".parse().unwrap(),
            ..InitOptions::default()
        };
        let layout = init::init(&dir, &opts).unwrap();
        let mut loaded = init::load(&dir).unwrap();
        // Time frames are read in UTC, whatever the machine's zone.
        loaded.config.time_zone = "UTC".into();
        let admin_token = loaded.admin_token.clone();
        let enroll_token = loaded.enroll_token.clone();
        let clock = Arc::new(ShiftedClock::default());
        let state = Arc::new(CentralState::open(loaded, Arc::clone(&clock) as _).unwrap());
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listeners = Listeners::bind(&layout, any, any).await.unwrap();
        let api = listeners.api_addr().unwrap();
        let url = format!("https://{api}");
        let quic_addr = listeners.quic_addr().unwrap();
        let running = serve(&state, listeners);
        let ca = std::fs::read(layout.ca_cert()).unwrap();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Central {
            root,
            layout,
            url,
            quic: quic_addr,
            state,
            clock,
            http,
            admin_token,
            enroll_token,
            api,
            running: Some(running),
        }
    }

    /// Stops central (relays lose their link, requests are drained), then
    /// serves it again on the same addresses with the same state: relays must
    /// reconnect by themselves.
    pub async fn restart(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            task.await.unwrap();
        }
        // The old QUIC socket closes once its last connection task has ended.
        let deadline = Instant::now() + DEADLINE;
        let listeners = loop {
            match Listeners::bind(&self.layout, self.api, self.quic).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot rebind central: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.running = Some(serve(&self.state, listeners));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    async fn answer(resp: reqwest::Response) -> Value {
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{status}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    /// A DELETE with a JSON body (`DELETE /packages/{id}/activations`).
    pub async fn delete_json(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .delete(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    pub async fn delete(&self, path: &str) {
        let resp = self
            .http
            .delete(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await;
    }

    /// Creates a package; `query` is the upload's query string.
    pub async fn upload(&self, query: &str, body: Vec<u8>) -> Value {
        let resp = self
            .http
            .post(format!("{}/api/v1/packages?{query}", self.url))
            .bearer_auth(&self.admin_token)
            .body(body)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    /// Creates a package and activates it for every site: its id.
    pub async fn upload_everywhere(&self, query: &str, body: Vec<u8>) -> String {
        let id = self.upload(query, body).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.post(
            &format!("/packages/{id}/activations"),
            json!({"all_sites": true}),
        )
        .await;
        id
    }

    pub async fn add_site(&self, name: &str, subnets: &[&str]) {
        self.post("/sites", json!({"name": name, "subnets": subnets}))
            .await;
    }

    /// Adds a relay on central and starts it, its HTTP server on `ip`.
    pub async fn relay(&self, site: &str, subnets: &[&str], ip: &str) -> Relay {
        self.relay_with(site, subnets, ip, |_| {}, None).await
    }

    /// [`Central::relay`] whose `relay.toml` `configure` changes before it
    /// starts, running on `clock` if given (tests move its wall clock).
    pub async fn relay_with(
        &self,
        site: &str,
        subnets: &[&str],
        ip: &str,
        configure: impl FnOnce(&mut sitecast_relay::RelayConfig),
        clock: Option<Arc<dyn sitecast_relay::clock::Clock>>,
    ) -> Relay {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let created = self
            .post(
                "/relays",
                json!({"site": site, "subnets": subnets, "url": url}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let dir = self.path(&id);
        sitecast_relay::enroll(
            &dir,
            sitecast_relay::EnrollOptions {
                central: format!("127.0.0.1:{}", self.quic.port()),
                ca: self.layout.ca_cert(),
                id: id.parse().unwrap(),
                token: created["token"].as_str().unwrap().to_owned(),
                listen: listener.local_addr().unwrap(),
                schedule: None,
                max_rate: None,
                max_disk: None,
                scrub_interval: None,
            },
        )
        .unwrap();
        let mut config = sitecast_relay::RelayConfig::load(&dir).unwrap();
        configure(&mut config);
        config.save(&dir).unwrap();
        let mut relay = Relay {
            id,
            dir,
            url,
            ip: ip.to_owned(),
            running: None,
        };
        relay.start_on(listener, clock);
        relay
    }

    /// A relay registered on central but not running (it holds nothing).
    pub async fn silent_relay(&self, site: &str, subnets: &[&str], ip: &str) -> String {
        let created = self
            .post(
                "/relays",
                json!({"site": site, "subnets": subnets, "url": format!("http://{ip}:9")}),
            )
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// Enrolls an agent whose address is `ip`.
    pub async fn agent(&self, name: &str, ip: &str) -> Agent {
        self.tagged_agent(name, ip, &[]).await
    }

    /// Enrolls an agent whose address is `ip`, as `sitecast-agent enroll --tag` does.
    pub async fn tagged_agent(&self, name: &str, ip: &str, tags: &[&str]) -> Agent {
        self.enroll_agent(name, ip, tags, &[]).await
    }

    async fn enroll_agent(&self, name: &str, ip: &str, tags: &[&str], macs: &[&str]) -> Agent {
        let dir = self.path(&format!("agent-{name}"));
        let config = sitecast_agent::enroll(
            &dir,
            sitecast_agent::EnrollOptions {
                central: self.url.clone(),
                ca: self.layout.ca_cert(),
                enroll_token: self.enroll_token.clone(),
                bind: Some(ip.parse().unwrap()),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                hostname: Some(name.to_owned()),
                notifier: None,
                macs: macs.iter().map(|m| m.parse().unwrap()).collect(),
            },
        )
        .await
        .unwrap();
        Agent {
            dir,
            id: config.computer_id.to_string(),
        }
    }

    /// The relay's view in `GET /relays`.
    pub async fn relay_view(&self, id: &str) -> Value {
        let relays = self.get("/relays").await;
        relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    }

    /// Waits until central knows the relay holds the whole package.
    pub async fn wait_held(&self, relay: &str, package: &str) {
        wait_until(&format!("{relay} to hold {package}"), || async {
            let view = self.relay_view(relay).await;
            view["holdings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["package_id"] == package && h["complete"] == true)
        })
        .await;
    }

    /// Waits until a relay has reported a counter of at least `at_least`.
    pub async fn wait_relay_counter(&self, relay: &str, counter: &str, at_least: u64) {
        wait_until(
            &format!("{relay} to report {counter} >= {at_least}"),
            || async { self.relay_view(relay).await[counter].as_u64().unwrap_or(0) >= at_least },
        )
        .await;
    }

    pub async fn status(&self) -> Value {
        self.get("/status").await
    }

    /// Registers a relay on central at `url` (nothing is started); returns its id.
    pub async fn register_relay(&self, site: &str, subnets: &[&str], url: &str) -> String {
        let created = self
            .post(
                "/relays",
                json!({"site": site, "subnets": subnets, "url": url}),
            )
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// Makes central believe `relay` holds these packages whole, as its report
    /// over QUIC would (for relays that are not real: fakes, refusers).
    pub async fn pretend_holds(&self, relay: &str, packages: &[&str]) {
        let mut holdings = Vec::new();
        for id in packages {
            let p = self.get(&format!("/packages/{id}")).await;
            holdings.push(json!({
                "package_id": id,
                "info_sha256": p["info_sha256"],
                "held": p["fragments"],
            }));
        }
        // Built from JSON so fields the protocol may gain (with defaults) do not matter here.
        let report: sitecast_common::protocol::RelayReport = serde_json::from_value(json!({
            "holdings": holdings,
            "bytes_from_central": 0,
            "bytes_to_agents": 0,
        }))
        .unwrap();
        let report = sitecast_central::store::RelayReportRecord::from(&report);
        self.state
            .store
            .record_relay_report(
                &relay.parse().unwrap(),
                Some(&report),
                self.state.clock.now(),
            )
            .unwrap();
    }

    /// The signed info of a package, byte for byte.
    pub async fn info_bytes(&self, package: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(format!("{}/api/v1/packages/{package}/info", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.bytes().await.unwrap().to_vec()
    }

    /// Registers a relay on central whose HTTP side is a [`FakeRelay`] on `ip`
    /// answering as `behave` says.
    pub async fn fake_relay(
        &self,
        site: &str,
        subnets: &[&str],
        ip: &str,
        behave: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> FakeRelay {
        let mut fake = FakeRelay::start(ip, behave).await;
        fake.id = self.register_relay(site, subnets, &fake.url).await;
        fake
    }

    /// A relay's `problems` in `GET /relays`.
    pub async fn problems(&self, relay: &str) -> Value {
        self.relay_view(relay).await["problems"].clone()
    }

    pub async fn stats(&self, package: &str) -> Value {
        self.get(&format!("/packages/{package}/stats")).await
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.running {
            let _ = stop.send(true);
        }
    }
}

/// A relay running in-process.
pub struct Relay {
    pub id: String,
    pub dir: PathBuf,
    pub url: String,
    pub ip: String,
    running: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl Relay {
    fn start_on(
        &mut self,
        listener: tokio::net::TcpListener,
        clock: Option<Arc<dyn sitecast_relay::clock::Clock>>,
    ) {
        let (stop, rx) = watch::channel(false);
        let dir = self.dir.clone();
        let clock =
            clock.unwrap_or_else(|| Arc::new(sitecast_relay::clock::SystemClock::default()));
        let task = tokio::spawn(async move {
            sitecast_relay::serve_with_clock(&dir, listener, stop_signal(&rx), clock)
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            task.await.unwrap();
        }
    }

    /// Where the relay keeps a package's content.
    pub fn cache(&self, package: &str) -> PathBuf {
        self.dir.join("cache").join(package)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.running.take() {
            let _ = stop.send(true);
        }
    }
}

/// An enrolled agent.
pub struct Agent {
    pub dir: PathBuf,
    pub id: String,
}

impl Agent {
    /// Changes the agent's `[downloads]` deadlines and back-off in `agent.toml`.
    pub fn tune_downloads(&self, change: impl FnOnce(&mut sitecast_agent::config::SourcePolicy)) {
        let layout = sitecast_agent::Layout::new(&self.dir);
        let mut config = sitecast_agent::AgentConfig::load(&layout).unwrap();
        change(&mut config.downloads);
        config.save(&layout).unwrap();
    }

    /// Where the agent keeps a package's partial download.
    pub fn download_dir(&self, package: &str) -> PathBuf {
        self.dir.join("downloads").join(package)
    }

    /// Runs `BIN once --dir DIR` (BIN: a test's `CARGO_BIN_EXE_sitecast-agent`),
    /// the real agent's one round, and checks it ended well.
    pub fn once_process(&self, bin: &str) {
        let out = std::process::Command::new(bin)
            .args(["once", "--dir"])
            .arg(&self.dir)
            .stderr(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    pub async fn once(&self) -> sitecast_agent::Round {
        sitecast_agent::once(&self.dir).await.unwrap()
    }

    /// The final status code of each package this round, as text ("waiting" if none).
    pub async fn once_codes(&self) -> Vec<(String, String)> {
        self.once()
            .await
            .outcomes
            .into_iter()
            .map(|(id, o)| {
                let code = match o {
                    sitecast_agent::Outcome::Done(code) => code.to_string(),
                    sitecast_agent::Outcome::Waiting(_) => "waiting".to_owned(),
                };
                (id.to_string(), code)
            })
            .collect()
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved set).
pub fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The lines of a log file a test command appends to (none if it does not exist).
pub fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A deterministic pseudo-random payload.
pub fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A tar.gz of `(path, contents, mode)` entries.
pub fn tar_gz(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, data, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(tar::EntryType::Regular);
        // Written raw so tests can also build archives with names tar refuses (`../x`).
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A tar.gz with one symlink entry `name -> target`.
pub fn tar_gz_symlink(name: &str, target: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
    header.set_cksum();
    builder.append(&header, &[][..]).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A zip of `(path, contents)` entries (names written as given).
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, data) in entries {
        w.start_file(*path, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Everything under `dir` (for "nothing was written outside" checks).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                out.extend(files_under(&p));
            }
        }
    }
    out
}

/// How a [`FakeRelay`] answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with these bytes, at once.
    Bytes(Vec<u8>),
    /// `200` announcing these bytes, then one byte every `Duration`.
    Trickle(Vec<u8>, Duration),
    /// `200` headers announcing this many bytes, then nothing, until the agent hangs up.
    Stall(usize),
    /// No answer at all, until the agent hangs up.
    Silent,
    /// This status with a JSON error body.
    Status(u16),
    /// `302 Found` to this URL.
    Redirect(String),
}

/// A relay's HTTP side that misbehaves on purpose: a tiny HTTP/1.1 server (one
/// request per connection) on a loopback address, answering each path as told,
/// logging the paths asked and counting the body bytes it wrote.
pub struct FakeRelay {
    /// Its id on central (empty until registered).
    pub id: String,
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub body_bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeRelay {
    pub async fn start(ip: &str, behave: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let behave = Arc::new(behave);
        let (log, count) = (Arc::clone(&requests), Arc::clone(&body_bytes));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (log, count, behave) =
                    (Arc::clone(&log), Arc::clone(&count), Arc::clone(&behave));
                tokio::spawn(async move {
                    let _ = serve_one(socket, &log, &count, behave.as_ref()).await;
                });
            }
        });
        FakeRelay {
            id: String::new(),
            url,
            requests,
            body_bytes,
            task,
        }
    }

    /// The paths asked so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn bytes_served(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut socket: tokio::net::TcpStream,
    log: &Mutex<Vec<String>>,
    count: &AtomicU64,
    behave: &(dyn Fn(&str) -> Reply + Send + Sync),
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 || head.len() > 64 << 10 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
    log.lock().unwrap().push(path.clone());
    let ok = |len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
        )
    };
    match behave(&path) {
        Reply::Bytes(body) => {
            socket.write_all(ok(body.len()).as_bytes()).await?;
            socket.write_all(&body).await?;
            count.fetch_add(body.len() as u64, Ordering::SeqCst);
        }
        Reply::Trickle(body, every) => {
            socket.write_all(ok(body.len()).as_bytes()).await?;
            for byte in body {
                socket.write_all(&[byte]).await?;
                count.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(every).await;
            }
        }
        Reply::Stall(len) => {
            socket.write_all(ok(len).as_bytes()).await?;
            // Hold the connection until the agent gives up on it.
            while socket.read(&mut buf).await? > 0 {}
        }
        Reply::Silent => while socket.read(&mut buf).await? > 0 {},
        Reply::Status(code) => {
            let body = json!({"error": format!("fake relay says {code}")}).to_string();
            socket
                .write_all(
                    format!(
                        "HTTP/1.1 {code} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
        }
        Reply::Redirect(to) => {
            socket
                .write_all(
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
        }
    }
    socket.shutdown().await
}

/// What a well-behaved relay answers for `path`, given a package's signed info
/// and data: the info, or fragment `n` (numbered from 1).
pub fn package_reply(
    path: &str,
    info: &[u8],
    data: &[u8],
    fragment_size: usize,
) -> Option<Vec<u8>> {
    let rest = path.strip_prefix("/v1/packages/")?;
    let (_, what) = rest.split_once('/')?;
    if what == "info" {
        return Some(info.to_vec());
    }
    let n: usize = what.strip_prefix("fragments/")?.parse().ok()?;
    let start = n.checked_sub(1)?.checked_mul(fragment_size)?;
    (start < data.len()).then(|| data[start..data.len().min(start + fragment_size)].to_vec())
}

/// The fragment number a path asks for, if it asks for one.
pub fn fragment_of(path: &str) -> Option<u32> {
    path.rsplit_once("/fragments/")?.1.parse().ok()
}

/// A port on `ip` that nothing listens on (connections to it are refused).
pub async fn closed_port(ip: &str) -> u16 {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

impl Agent {
    /// Changes the agent's `[cycle]` (the download cycle) in `agent.toml`.
    pub fn tune_cycle(&self, change: impl FnOnce(&mut sitecast_common::deployment::CycleConfig)) {
        let layout = sitecast_agent::Layout::new(&self.dir);
        let mut config = sitecast_agent::AgentConfig::load(&layout).unwrap();
        change(&mut config.cycle);
        config.save(&layout).unwrap();
    }

    /// Gives the agent a notifier script (`agent.toml`'s `notifier`) in its DIR.
    pub fn notifier(&self) -> Notifier {
        let notifier = Notifier {
            answer: self.dir.join("notifier-answer"),
            told: self.dir.join("notifier-told"),
        };
        let script = self.dir.join("notifier.sh");
        // The answer is read before anything is logged, so a test that sees the
        // log line may change the answer for the next time.
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nanswer=$(head -n 1 '{}' 2>/dev/null)\n\
                 echo \"$SITECAST_NOTIFY_KIND $SITECAST_PACKAGE_ID $SITECAST_NOTIFY_TEXT -> $answer\" >> '{}'\n\
                 echo \"$answer\"\n",
                notifier.answer.display(),
                notifier.told.display()
            ),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        let layout = sitecast_agent::Layout::new(&self.dir);
        let mut config = sitecast_agent::AgentConfig::load(&layout).unwrap();
        config.notifier = Some(format!("'{}'", script.display()));
        config.save(&layout).unwrap();
        notifier
    }

    /// Starts `sitecast_agent::run` on this agent's DIR, in the background.
    pub fn run(&self) -> RunningAgent {
        let (stop, rx) = watch::channel(false);
        let dir = self.dir.clone();
        let task = tokio::spawn(async move { sitecast_agent::run(&dir, stop_signal(&rx)).await });
        RunningAgent {
            stop,
            task: Some(task),
        }
    }
}

/// An agent's notifier script (see [`Agent::notifier`]): it answers the first
/// line of `answer` (nothing, which means continue, when there is none) and
/// appends `KIND PACKAGE TEXT -> ANSWER` to `told` each time it runs.
pub struct Notifier {
    pub answer: PathBuf,
    pub told: PathBuf,
}

impl Notifier {
    /// What the notifier answers from now on.
    pub fn answer(&self, word: &str) {
        std::fs::write(&self.answer, format!("{word}\n")).unwrap();
    }

    /// What the notifier was told so far, a line per run.
    pub fn told(&self) -> Vec<String> {
        std::fs::read_to_string(&self.told)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// An agent following its download cycle (`sitecast-agent run`) in-process.
pub struct RunningAgent {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), sitecast_agent::AgentError>>>,
}

impl RunningAgent {
    /// Shuts the agent down, as SIGINT would, and returns how `run` ended.
    pub async fn stop(mut self) -> Result<(), sitecast_agent::AgentError> {
        let _ = self.stop.send(true);
        let task = self.task.take().unwrap();
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the agent did not stop")
            .unwrap()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Waits until a package's stats count `at_least` computers with `status`;
/// returns those stats.
pub async fn wait_status(c: &Central, package: &str, status: &str, at_least: u64) -> Value {
    wait_until(&format!("{at_least} × {status} for {package}"), || async {
        c.stats(package).await["counts"][status]
            .as_u64()
            .unwrap_or(0)
            >= at_least
    })
    .await;
    c.stats(package).await
}

impl Central {
    /// Enrolls an agent whose address is `ip` and that reports these MAC
    /// addresses (written to its agent.toml's `mac_addresses`), for Wake-on-LAN.
    pub async fn agent_with_macs(&self, name: &str, ip: &str, macs: &[&str]) -> Agent {
        self.enroll_agent(name, ip, &[], macs).await
    }

    /// Waits until the relay's QUIC connection is attached on central (what
    /// central sends it, a wake, reaches it).
    pub async fn wait_linked(&self, relay: &str) {
        let id: sitecast_common::ids::RelayId = relay.parse().unwrap();
        let id = &id;
        wait_until(&format!("{relay} to be connected"), || async move {
            self.state.relay_links.connected(id)
        })
        .await;
    }
}

impl Agent {
    /// Changes the agent's `agent.toml`.
    pub fn configure(&self, change: impl FnOnce(&mut sitecast_agent::AgentConfig)) {
        let layout = sitecast_agent::Layout::new(&self.dir);
        let mut config = sitecast_agent::AgentConfig::load(&layout).unwrap();
        change(&mut config);
        config.save(&layout).unwrap();
    }

    /// Gives the agent a harmless `power_command`: a script appending each
    /// action to `DIR/power.log` (see [`Agent::power_log`]).
    pub fn harmless_power_command(&self) {
        let script = self.dir.join("power.sh");
        std::fs::write(&script, "echo \"$1\" >> \"$(dirname \"$0\")/power.log\"\n").unwrap();
        let command = format!("/bin/sh {}", script.display());
        self.configure(|c| c.power_command = Some(command));
    }

    /// Makes the agent report that the computer has been on for `seconds`
    /// (agent.toml's `uptime_file`, a file in `/proc/uptime`'s format in its
    /// DIR); without this it reports the test machine's own uptime.
    pub fn set_uptime(&self, seconds: u64) {
        let file = self.dir.join("uptime");
        std::fs::write(&file, format!("{seconds}.00 0.00\n")).unwrap();
        self.configure(|c| c.uptime_file = Some(file));
    }

    /// The actions the harmless power command was run with, in order.
    pub fn power_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("power.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
