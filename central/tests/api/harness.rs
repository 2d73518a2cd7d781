//! The harness every module of this test binary shares: a central on a
//! temporary DIR driven through its router ([`Central`]), enrolled agents,
//! whole replies, the start times and the query, data and digest helpers.
//!
//! It is also the one place that names `sitecast_central`'s paths: the modules
//! below mirror the items the tests use, so a move inside central changes only
//! this file. Every module takes the harness with `use crate::harness::*;`.

pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::sync::Arc;

pub(crate) use axum::body::{Body, Bytes};
pub(crate) use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
pub(crate) use axum::http::{HeaderMap, Method, Request, StatusCode};
pub(crate) use axum::Router;
pub(crate) use http_body_util::BodyExt;
pub(crate) use jiff::Timestamp;
pub(crate) use serde_json::{json, Value};
pub(crate) use sha2::{Digest, Sha256};
pub(crate) use sitecast_common::signing;
pub(crate) use tower::ServiceExt;

pub(crate) use clock::ManualClock;
pub(crate) use init::{InitOptions, Layout};
pub(crate) use replication::{Answer, PackageId, RelayId, Request as ReplicationRequest};

/// Central's router, its state and the tasks that run beside requests.
pub(crate) mod api {
    pub(crate) use sitecast_central::api::app;
    pub(crate) use sitecast_central::domain::containers::purge as purge_containers;
    pub(crate) use sitecast_central::serve::{periodically, Periodic};
    pub(crate) use sitecast_central::Central;
}

/// What central answers relays on the replication link.
pub(crate) mod replication {
    pub(crate) use sitecast_central::domain::replication::{answer, Answer};
    pub(crate) use sitecast_common::ids::{PackageId, RelayId};
    pub(crate) use sitecast_common::protocol::Request;
}

pub(crate) mod clock {
    pub(crate) use sitecast_central::clock::{Clock, ManualClock};
}

/// Creating and loading a central DIR.
pub(crate) mod init {
    pub(crate) use sitecast_central::init::{init, load, read_token, InitOptions, Layout};
}

pub(crate) mod jitter {
    pub(crate) use sitecast_central::jitter::Random;
}

/// Wakes, reaching relays through their links.
pub(crate) mod power {
    pub(crate) use sitecast_central::domain::power::{
        wake_due_containers, wake_due_containers_through,
    };
    pub(crate) use sitecast_central::links::RelayMessenger;
}

pub(crate) mod store {
    pub(crate) use sitecast_central::store::{ComputerRecord, SledStore, Store};
}

pub(crate) mod tokens {
    pub(crate) use sitecast_central::tokens::digest;
}

/// Upload parameters, as name and value pairs.
pub(crate) type Query = [(&'static str, &'static str)];

/// When every test starts.
pub(crate) const T0: &str = "2025-03-01T09:00:00Z";
/// A later time, for what polls and reports record.
pub(crate) const T1: &str = "2025-03-01T10:30:00Z";

pub(crate) fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A central on a temporary DIR, driven through its router.
pub(crate) struct Central {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) layout: Layout,
    pub(crate) app: Router,
    /// The state behind `app`, for what runs outside requests (the purge).
    pub(crate) state: Option<Arc<api::Central>>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) admin: String,
    pub(crate) enroll_token: String,
}

/// An enrolled agent: its computer id and bearer token.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) token: String,
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub(crate) fn ok(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    /// Asserts the status and that the body is exactly `{"error": "..."}`;
    /// returns the message.
    #[track_caller]
    pub(crate) fn err(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        let ct = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "error content type {ct:?}, body {}",
            self.text()
        );
        let v = self.json();
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {v}"));
        assert_eq!(obj.len(), 1, "an error body has only 'error': {v}");
        obj["error"]
            .as_str()
            .unwrap_or_else(|| panic!("error is not a string: {v}"))
            .to_owned()
    }

    /// Asserts the status and that the error message names every one of `words`.
    #[track_caller]
    pub(crate) fn err_naming(&self, status: StatusCode, words: &[&str]) -> String {
        let message = self.err(status);
        for w in words {
            assert!(message.contains(w), "error {message:?} does not name {w:?}");
        }
        message
    }
}

pub(crate) fn open_app(dir: &Path, clock: &Arc<ManualClock>) -> (Router, Arc<api::Central>) {
    let loaded = init::load(dir).unwrap();
    let central = Arc::new(api::Central::open(loaded, Arc::clone(clock) as _).unwrap());
    (api::app(Arc::clone(&central)), central)
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved set).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Deterministic, incompressible-looking bytes.
pub(crate) fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A body sent in chunks of `chunk` bytes, as a client streaming a file would.
pub(crate) fn chunked(bytes: &[u8], chunk: usize) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

pub(crate) fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

pub(crate) fn sorted(list: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

pub(crate) fn time_of(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

impl Central {
    pub(crate) async fn start() -> Central {
        Self::start_with_config(|toml| toml).await
    }

    /// Starts a central whose `central.toml` was first rewritten by `tweak`.
    pub(crate) async fn start_with_config(tweak: impl FnOnce(String) -> String) -> Central {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("central");
        let layout = init::init(&dir, &InitOptions::default()).unwrap();
        let config = std::fs::read_to_string(layout.config()).unwrap();
        // Time frames and local dates are read in UTC, whatever the machine's zone.
        let config = config.replace("time_zone = \"system\"", "time_zone = \"UTC\"");
        std::fs::write(layout.config(), tweak(config)).unwrap();
        let clock = Arc::new(ManualClock::new(ts(T0)));
        let (app, state) = open_app(&dir, &clock);
        let state = Some(state);
        Central {
            admin: init::read_token(&layout.admin_token()).unwrap(),
            enroll_token: init::read_token(&layout.enroll_token()).unwrap(),
            _tmp: tmp,
            layout,
            app,
            state,
            clock,
        }
    }

    pub(crate) fn dir(&self) -> PathBuf {
        self.layout.dir.clone()
    }

    pub(crate) fn set_time(&self, text: &str) {
        self.clock.set(ts(text));
    }

    /// Stops central, lets `edit` change its sled database as another part of
    /// central would, and starts it again on the same DIR.
    pub(crate) fn restart_with_db(&mut self, edit: impl FnOnce(&sled::Db)) {
        drop(std::mem::replace(&mut self.app, Router::new()));
        // A request's blocking task may still hold central (and its sled lock) for a
        // moment after its answer: wait until the last reference is gone.
        let gone = self.state.take().map(|state| Arc::downgrade(&state));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while gone.as_ref().is_some_and(|weak| weak.strong_count() > 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "central is still held"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        {
            // sled's own flusher thread lets go of the file lock just after the
            // last handle: retry opening until the deadline.
            let db = loop {
                match sled::open(self.layout.db()) {
                    Ok(db) => break db,
                    Err(e) => {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "sled stays locked: {e}"
                        );
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            };
            edit(&db);
            db.flush().unwrap();
        }
        let (app, state) = open_app(&self.dir(), &self.clock);
        (self.app, self.state) = (app, Some(state));
    }

    pub(crate) async fn call(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request with an optional bearer token.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        self.call(req.body(body).unwrap()).await
    }

    pub(crate) async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(CONTENT_TYPE, "application/json");
        let req = match token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        };
        self.call(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    pub(crate) async fn admin_get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(self.admin.as_str()), Body::empty())
            .await
    }

    pub(crate) async fn admin_post(&self, path: &str, body: &Value) -> Reply {
        self.send_json(Method::POST, path, Some(self.admin.as_str()), body)
            .await
    }

    pub(crate) async fn admin_delete(&self, path: &str) -> Reply {
        self.send(
            Method::DELETE,
            path,
            Some(self.admin.as_str()),
            Body::empty(),
        )
        .await
    }

    // --- sites --------------------------------------------------------------

    pub(crate) async fn add_site(&self, body: Value) -> Reply {
        self.admin_post("/api/v1/sites", &body).await
    }

    pub(crate) async fn list_sites(&self) -> Reply {
        self.admin_get("/api/v1/sites").await
    }

    pub(crate) async fn given_site(&self, name: &str, subnets: &[&str]) -> Value {
        self.add_site(json!({"name": name, "subnets": subnets}))
            .await
            .ok(StatusCode::CREATED)
    }

    // --- relays -------------------------------------------------------------

    pub(crate) async fn add_relay(&self, body: Value) -> Reply {
        self.admin_post("/api/v1/relays", &body).await
    }

    pub(crate) async fn list_relays(&self) -> Reply {
        self.admin_get("/api/v1/relays").await
    }

    pub(crate) async fn delete_relay(&self, id: &str) -> Reply {
        self.admin_delete(&format!("/api/v1/relays/{id}")).await
    }

    /// Adds a relay and returns `(id, token)`.
    pub(crate) async fn given_relay(
        &self,
        site: &str,
        subnets: &[&str],
        url: &str,
    ) -> (String, String) {
        let v = self
            .add_relay(json!({"site": site, "subnets": subnets, "url": url}))
            .await
            .ok(StatusCode::CREATED);
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    // --- packages -----------------------------------------------------------

    /// `POST /packages?params` with `body` (None: no body at all).
    pub(crate) async fn upload(&self, params: &[(&str, &str)], body: Option<Body>) -> Reply {
        let path = format!("/api/v1/packages?{}", query(params));
        self.send(
            Method::POST,
            &path,
            Some(self.admin.as_str()),
            body.unwrap_or_else(Body::empty),
        )
        .await
    }

    /// Uploads a package that must be created; returns it.
    pub(crate) async fn given_package(
        &self,
        params: &[(&str, &str)],
        bytes: Option<&[u8]>,
    ) -> Value {
        let body = bytes.map(|b| chunked(b, 1000));
        self.upload(params, body).await.ok(StatusCode::CREATED)
    }

    /// A command-only package: no file, `execute`.
    pub(crate) async fn given_command_package(&self, name: &str, priority: &str) -> Value {
        self.given_package(
            &[
                ("name", name),
                ("version", "1"),
                ("action", "execute"),
                ("command", "echo hi"),
                ("priority", priority),
            ],
            None,
        )
        .await
    }

    pub(crate) async fn list_packages(&self) -> Reply {
        self.admin_get("/api/v1/packages").await
    }

    pub(crate) async fn show_package(&self, id: &str) -> Reply {
        self.admin_get(&format!("/api/v1/packages/{id}")).await
    }

    pub(crate) async fn delete_package(&self, id: &str) -> Reply {
        self.admin_delete(&format!("/api/v1/packages/{id}")).await
    }

    pub(crate) async fn package_info(&self, id: &str) -> Reply {
        self.admin_get(&format!("/api/v1/packages/{id}/info")).await
    }

    pub(crate) async fn activate(&self, id: &str, body: Value) -> Reply {
        self.admin_post(&format!("/api/v1/packages/{id}/activations"), &body)
            .await
    }

    pub(crate) async fn assign(&self, id: &str, body: Value) -> Reply {
        self.admin_post(&format!("/api/v1/packages/{id}/assignments"), &body)
            .await
    }

    pub(crate) async fn stats(&self, id: &str) -> Value {
        self.admin_get(&format!("/api/v1/packages/{id}/stats"))
            .await
            .ok(StatusCode::OK)
    }

    pub(crate) async fn list_computers(&self) -> Reply {
        self.admin_get("/api/v1/computers").await
    }

    // --- agents -------------------------------------------------------------

    pub(crate) async fn enroll(&self, body: Value) -> Reply {
        self.send_json(Method::POST, "/api/v1/agent/enroll", None, &body)
            .await
    }

    pub(crate) async fn given_agent(&self, hostname: &str, addresses: &[&str]) -> Agent {
        let v = self
            .enroll(json!({
                "enroll_token": self.enroll_token,
                "hostname": hostname,
                "os": "linux",
                "addresses": addresses,
            }))
            .await
            .ok(StatusCode::CREATED);
        Agent {
            id: v["computer_id"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }

    pub(crate) async fn poll(&self, agent: &Agent, addresses: &[&str]) -> Reply {
        self.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(agent.token.as_str()),
            &json!({ "addresses": addresses }),
        )
        .await
    }

    pub(crate) async fn agent_info(&self, agent: &Agent, id: &str) -> Reply {
        let path = format!("/api/v1/agent/packages/{id}/info");
        self.send(
            Method::GET,
            &path,
            Some(agent.token.as_str()),
            Body::empty(),
        )
        .await
    }

    pub(crate) async fn agent_fragment(&self, agent: &Agent, id: &str, n: &str) -> Reply {
        let path = format!("/api/v1/agent/packages/{id}/fragments/{n}");
        self.send(
            Method::GET,
            &path,
            Some(agent.token.as_str()),
            Body::empty(),
        )
        .await
    }

    pub(crate) async fn report(&self, agent: &Agent, id: &str, body: Value) -> Reply {
        let path = format!("/api/v1/agent/packages/{id}/status");
        self.send_json(Method::POST, &path, Some(agent.token.as_str()), &body)
            .await
    }

    pub(crate) async fn report_problem(&self, agent: &Agent, relay: &str, body: Value) -> Reply {
        let path = format!("/api/v1/agent/relays/{relay}/problems");
        self.send_json(Method::POST, &path, Some(agent.token.as_str()), &body)
            .await
    }

    /// The stats entry of one computer.
    pub(crate) async fn stat_of(&self, package: &str, agent: &Agent) -> Value {
        let stats = self.stats(package).await;
        stats["computers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["computer_id"] == agent.id.as_str())
            .unwrap_or_else(|| panic!("{} not in stats {stats}", agent.id))
            .clone()
    }

    pub(crate) fn trusted_key(&self) -> ed25519_dalek::VerifyingKey {
        let pem = std::fs::read_to_string(self.layout.dir.join("keys/signing.pub")).unwrap();
        signing::verifying_key_from_pem(&pem).unwrap()
    }
}

/// Upload parameters of a launch package, with overrides.
pub(crate) fn launch_params<'a>(
    name: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![
        ("name", name),
        ("version", "1.0"),
        ("action", "launch"),
        ("command", "setup.sh --quiet"),
    ];
    for (k, v) in extra {
        params.retain(|(key, _)| key != k);
        params.push((k, v));
    }
    params
}

/// A poll answer with each package's `job` (its hand-out, checked to be there)
/// taken out, for comparing with what a test expects.
pub(crate) fn without_jobs(mut poll: Value) -> Value {
    for p in poll["packages"].as_array_mut().into_iter().flatten() {
        let job = p.as_object_mut().and_then(|p| p.remove("job"));
        assert!(job.as_ref().is_some_and(Value::is_string), "no job in {p}");
    }
    poll
}

pub(crate) fn handed(poll: &Value) -> Vec<(String, String)> {
    poll["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) fn install(id: &str) -> (String, String) {
    (id.to_owned(), "install".to_owned())
}

pub(crate) fn uninstall(id: &str) -> (String, String) {
    (id.to_owned(), "uninstall".to_owned())
}

/// `(package_id, status)` of a container's jobs on one computer, in order.
pub(crate) fn jobs_of(container: &Value, computer: &str) -> Vec<(String, String)> {
    container["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs: {container}"))
        .iter()
        .filter(|j| j["computer_id"] == computer)
        .map(|j| {
            (
                j["package_id"].as_str().unwrap().to_owned(),
                j["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) fn job(id: &str, status: &str) -> (String, String) {
    (id.to_owned(), status.to_owned())
}
