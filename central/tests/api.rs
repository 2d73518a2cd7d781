//! Router tests of SPEC "HTTP API", with no socket: every admin and agent route,
//! called through `tower::ServiceExt::oneshot` on the real router over a real
//! central DIR (sled store, package files, signing key), with a manual clock.
//!
//! Each request kind has one helper on [`Central`], so a test reads as the story
//! an admin and an agent would tell.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sitecast_central::api;
use sitecast_central::clock::ManualClock;
use sitecast_central::init::{self, InitOptions, Layout};
use sitecast_common::signing;
use tower::ServiceExt;

/// Upload parameters, as name and value pairs.
type Query = [(&'static str, &'static str)];

/// When every test starts.
const T0: &str = "2025-03-01T09:00:00Z";
/// A later time, for what polls and reports record.
const T1: &str = "2025-03-01T10:30:00Z";

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A central on a temporary DIR, driven through its router.
struct Central {
    _tmp: tempfile::TempDir,
    layout: Layout,
    app: Router,
    /// The state behind `app`, for what runs outside requests (the purge).
    state: Option<Arc<api::Central>>,
    clock: Arc<ManualClock>,
    admin: String,
    enroll_token: String,
}

/// An enrolled agent: its computer id and bearer token.
#[derive(Debug, Clone)]
struct Agent {
    id: String,
    token: String,
}

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    fn ok(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    /// Asserts the status and that the body is exactly `{"error": "..."}`;
    /// returns the message.
    #[track_caller]
    fn err(&self, status: StatusCode) -> String {
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
    fn err_naming(&self, status: StatusCode, words: &[&str]) -> String {
        let message = self.err(status);
        for w in words {
            assert!(message.contains(w), "error {message:?} does not name {w:?}");
        }
        message
    }
}

fn open_app(dir: &Path, clock: &Arc<ManualClock>) -> (Router, Arc<api::Central>) {
    let loaded = init::load(dir).unwrap();
    let central = Arc::new(api::Central::open(loaded, Arc::clone(clock) as _).unwrap());
    (api::app(Arc::clone(&central)), central)
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved set).
fn encode(text: &str) -> String {
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

fn query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize) -> Vec<u8> {
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

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A body sent in chunks of `chunk` bytes, as a client streaming a file would.
fn chunked(bytes: &[u8], chunk: usize) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

fn time_of(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

impl Central {
    async fn start() -> Central {
        Self::start_with_config(|toml| toml).await
    }

    /// Starts a central whose `central.toml` was first rewritten by `tweak`.
    async fn start_with_config(tweak: impl FnOnce(String) -> String) -> Central {
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

    fn dir(&self) -> PathBuf {
        self.layout.dir.clone()
    }

    fn set_time(&self, text: &str) {
        self.clock.set(ts(text));
    }

    /// Stops central, lets `edit` change its sled database as another part of
    /// central would, and starts it again on the same DIR.
    fn restart_with_db(&mut self, edit: impl FnOnce(&sled::Db)) {
        drop(std::mem::replace(&mut self.app, Router::new()));
        self.state = None;
        {
            let db = sled::open(self.layout.db()).unwrap();
            edit(&db);
            db.flush().unwrap();
        }
        let (app, state) = open_app(&self.dir(), &self.clock);
        (self.app, self.state) = (app, Some(state));
    }

    async fn call(&self, req: Request<Body>) -> Reply {
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
    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Body) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        self.call(req.body(body).unwrap()).await
    }

    async fn send_json(
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

    async fn admin_get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(self.admin.as_str()), Body::empty())
            .await
    }

    async fn admin_post(&self, path: &str, body: &Value) -> Reply {
        self.send_json(Method::POST, path, Some(self.admin.as_str()), body)
            .await
    }

    async fn admin_delete(&self, path: &str) -> Reply {
        self.send(
            Method::DELETE,
            path,
            Some(self.admin.as_str()),
            Body::empty(),
        )
        .await
    }

    // --- sites --------------------------------------------------------------

    async fn add_site(&self, body: Value) -> Reply {
        self.admin_post("/api/v1/sites", &body).await
    }

    async fn list_sites(&self) -> Reply {
        self.admin_get("/api/v1/sites").await
    }

    async fn given_site(&self, name: &str, subnets: &[&str]) -> Value {
        self.add_site(json!({"name": name, "subnets": subnets}))
            .await
            .ok(StatusCode::CREATED)
    }

    // --- relays -------------------------------------------------------------

    async fn add_relay(&self, body: Value) -> Reply {
        self.admin_post("/api/v1/relays", &body).await
    }

    async fn list_relays(&self) -> Reply {
        self.admin_get("/api/v1/relays").await
    }

    async fn delete_relay(&self, id: &str) -> Reply {
        self.admin_delete(&format!("/api/v1/relays/{id}")).await
    }

    /// Adds a relay and returns `(id, token)`.
    async fn given_relay(&self, site: &str, subnets: &[&str], url: &str) -> (String, String) {
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
    async fn upload(&self, params: &[(&str, &str)], body: Option<Body>) -> Reply {
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
    async fn given_package(&self, params: &[(&str, &str)], bytes: Option<&[u8]>) -> Value {
        let body = bytes.map(|b| chunked(b, 1000));
        self.upload(params, body).await.ok(StatusCode::CREATED)
    }

    /// A command-only package: no file, `execute`.
    async fn given_command_package(&self, name: &str, priority: &str) -> Value {
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

    async fn list_packages(&self) -> Reply {
        self.admin_get("/api/v1/packages").await
    }

    async fn show_package(&self, id: &str) -> Reply {
        self.admin_get(&format!("/api/v1/packages/{id}")).await
    }

    async fn delete_package(&self, id: &str) -> Reply {
        self.admin_delete(&format!("/api/v1/packages/{id}")).await
    }

    async fn package_info(&self, id: &str) -> Reply {
        self.admin_get(&format!("/api/v1/packages/{id}/info")).await
    }

    async fn activate(&self, id: &str, body: Value) -> Reply {
        self.admin_post(&format!("/api/v1/packages/{id}/activations"), &body)
            .await
    }

    async fn assign(&self, id: &str, body: Value) -> Reply {
        self.admin_post(&format!("/api/v1/packages/{id}/assignments"), &body)
            .await
    }

    async fn stats(&self, id: &str) -> Value {
        self.admin_get(&format!("/api/v1/packages/{id}/stats"))
            .await
            .ok(StatusCode::OK)
    }

    async fn list_computers(&self) -> Reply {
        self.admin_get("/api/v1/computers").await
    }

    // --- agents -------------------------------------------------------------

    async fn enroll(&self, body: Value) -> Reply {
        self.send_json(Method::POST, "/api/v1/agent/enroll", None, &body)
            .await
    }

    async fn given_agent(&self, hostname: &str, addresses: &[&str]) -> Agent {
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

    async fn poll(&self, agent: &Agent, addresses: &[&str]) -> Reply {
        self.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(agent.token.as_str()),
            &json!({ "addresses": addresses }),
        )
        .await
    }

    async fn agent_info(&self, agent: &Agent, id: &str) -> Reply {
        let path = format!("/api/v1/agent/packages/{id}/info");
        self.send(
            Method::GET,
            &path,
            Some(agent.token.as_str()),
            Body::empty(),
        )
        .await
    }

    async fn agent_fragment(&self, agent: &Agent, id: &str, n: &str) -> Reply {
        let path = format!("/api/v1/agent/packages/{id}/fragments/{n}");
        self.send(
            Method::GET,
            &path,
            Some(agent.token.as_str()),
            Body::empty(),
        )
        .await
    }

    async fn report(&self, agent: &Agent, id: &str, body: Value) -> Reply {
        let path = format!("/api/v1/agent/packages/{id}/status");
        self.send_json(Method::POST, &path, Some(agent.token.as_str()), &body)
            .await
    }

    async fn report_problem(&self, agent: &Agent, relay: &str, body: Value) -> Reply {
        let path = format!("/api/v1/agent/relays/{relay}/problems");
        self.send_json(Method::POST, &path, Some(agent.token.as_str()), &body)
            .await
    }

    /// The stats entry of one computer.
    async fn stat_of(&self, package: &str, agent: &Agent) -> Value {
        let stats = self.stats(package).await;
        stats["computers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["computer_id"] == agent.id.as_str())
            .unwrap_or_else(|| panic!("{} not in stats {stats}", agent.id))
            .clone()
    }

    fn trusted_key(&self) -> ed25519_dalek::VerifyingKey {
        let pem = std::fs::read_to_string(self.layout.dir.join("keys/signing.pub")).unwrap();
        signing::verifying_key_from_pem(&pem).unwrap()
    }
}

/// Upload parameters of a launch package, with overrides.
fn launch_params<'a>(name: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
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

// ---------------------------------------------------------------------------
// Sites
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sites_are_added_and_listed() {
    let c = Central::start().await;
    assert_eq!(c.list_sites().await.ok(StatusCode::OK), json!([]));

    let paris = c.given_site("paris", &["10.1.0.0/16", "fd00:1::/64"]).await;
    assert_eq!(paris["name"], "paris");
    assert_eq!(paris["subnets"], json!(["10.1.0.0/16", "fd00:1::/64"]));
    assert_eq!(time_of(&paris["created_at"]), ts(T0));

    // subnets are optional.
    let lyon = c
        .add_site(json!({"name": "Lyon"}))
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(lyon["subnets"], json!([]));

    let list = c.list_sites().await.ok(StatusCode::OK);
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Lyon", "paris"]);
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "paris")
        .unwrap();
    assert_eq!(listed, &paris);
}

#[tokio::test]
async fn a_duplicate_site_is_a_conflict() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.add_site(json!({"name": "paris", "subnets": ["10.9.0.0/16"]}))
        .await
        .err_naming(StatusCode::CONFLICT, &["paris"]);
    // The first one is untouched.
    let list = c.list_sites().await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["subnets"], json!([]));
}

#[tokio::test]
async fn bad_site_requests_name_the_field() {
    let c = Central::start().await;
    c.add_site(json!({"name": "paris", "subnets": ["10.1.0.0/16", "10.0.0.0/33"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets", "10.0.0.0/33"]);
    c.add_site(json!({"name": "paris", "subnets": ["not-a-net"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets", "not-a-net"]);
    c.add_site(json!({"name": 5}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    c.add_site(json!({"name": "paris", "subnets": "10.1.0.0/16"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets"]);
    c.add_site(json!({"subnets": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name"]);
    c.add_site(json!({"name": "two words"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["name", "two words"]);
    // Not JSON at all.
    c.send(
        Method::POST,
        "/api/v1/sites",
        Some(c.admin.as_str()),
        Body::from("{name: paris"),
    )
    .await
    .err(StatusCode::BAD_REQUEST);
    // Nothing was stored.
    assert_eq!(c.list_sites().await.ok(StatusCode::OK), json!([]));
}

// ---------------------------------------------------------------------------
// Relays
// ---------------------------------------------------------------------------

#[tokio::test]
async fn relays_are_added_listed_and_deleted() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let created = c
        .add_relay(json!({
            "site": "paris",
            "subnets": ["10.1.0.0/16", "10.3.0.0/24"],
            "url": "http://10.1.0.2:8080/",
        }))
        .await
        .ok(StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(id.starts_with("relay-paris-"), "{id}");
    assert_eq!(token.len(), 64, "{token}");
    assert_ne!(token, c.admin);

    let relays = c.list_relays().await.ok(StatusCode::OK);
    assert_eq!(
        relays,
        json!([{
            "id": id,
            "site": "paris",
            "subnets": ["10.1.0.0/16", "10.3.0.0/24"],
            "url": "http://10.1.0.2:8080",
            "last_seen": null,
            "holdings": [],
            "bytes_from_central": 0,
            "quic_bytes_from_central": 0,
            "bytes_to_agents": 0,
            "problems": {"count": 0, "counts": {}, "last": null},
            "replication": {"window_open": true, "max_rate": null, "rate": 0},
            // Nothing reported yet.
            "health": {
                "version": "", "disk_used": 0, "disk_free": null, "max_disk": null,
                "over_quota": false, "kept": [], "evicted": 0, "last_scrub": null,
                "scrub_bad": 0, "scrub_bad_total": 0, "scrub_interval_s": null
            },
        }])
    );

    // A relay token is not an admin token.
    c.send(
        Method::GET,
        "/api/v1/relays",
        Some(token.as_str()),
        Body::empty(),
    )
    .await
    .err_naming(StatusCode::FORBIDDEN, &["admin"]);

    let deleted = c.delete_relay(&id).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    assert_eq!(c.list_relays().await.ok(StatusCode::OK), json!([]));
    c.delete_relay(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    // Its token is revoked with it.
    c.send(
        Method::GET,
        "/api/v1/relays",
        Some(token.as_str()),
        Body::empty(),
    )
    .await
    .err(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn relay_listing_shows_holdings_of_activated_packages() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let (paris_relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (lyon_relay, _) = c
        .given_relay("lyon", &["10.2.0.0/16"], "https://relay.lyon.example")
        .await;

    let bytes = data(10_000);
    let for_paris = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&bytes),
        )
        .await;
    let for_all = c
        .given_package(
            &launch_params("tool", &[("fragment_size", "1000")]),
            Some(&bytes),
        )
        .await;
    let inactive = c.given_command_package("idle", "5").await;
    let (p, a) = (
        for_paris["id"].as_str().unwrap(),
        for_all["id"].as_str().unwrap(),
    );

    // Nothing is activated yet: no holdings anywhere.
    for r in c.list_relays().await.ok(StatusCode::OK).as_array().unwrap() {
        assert_eq!(r["holdings"], json!([]), "{r}");
    }

    c.activate(p, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    c.activate(a, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);

    let relays = c.list_relays().await.ok(StatusCode::OK);
    let holdings = |id: &str| {
        let r = relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap();
        let mut h = r["holdings"].as_array().unwrap().clone();
        h.sort_by_key(|x| x["package_id"].as_str().unwrap().to_owned());
        Value::Array(h)
    };
    let mut expected_paris = vec![
        json!({"package_id": p, "held": 0, "total": 3, "complete": false, "eta_s": null}),
        json!({"package_id": a, "held": 0, "total": 10, "complete": false, "eta_s": null}),
    ];
    expected_paris.sort_by_key(|x| x["package_id"].as_str().unwrap().to_owned());
    assert_eq!(holdings(&paris_relay), Value::Array(expected_paris));
    assert_eq!(
        holdings(&lyon_relay),
        json!([{"package_id": a, "held": 0, "total": 10, "complete": false, "eta_s": null}])
    );
    assert!(!relays
        .to_string()
        .contains(inactive["id"].as_str().unwrap()));
}

#[tokio::test]
async fn bad_relay_requests_name_the_field() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.add_relay(json!({"site": "nowhere", "subnets": ["10.1.0.0/16"], "url": "http://r"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["nowhere"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.0.0.0/33"], "url": "http://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets", "10.0.0.0/33"]);
    c.add_relay(json!({"site": "paris", "subnets": [], "url": "http://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.1.0.0/16"], "url": "ftp://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["url", "ftp://r"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.1.0.0/16"], "url": "not a url"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["url"]);
    c.add_relay(json!({"site": "paris", "subnets": "10.1.0.0/16", "url": "http://r"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnets"]);
    c.add_relay(json!({"site": "paris", "subnets": ["10.1.0.0/16"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["url"]);
    c.delete_relay("relay-nowhere-000000")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["relay-nowhere-000000"]);
    c.delete_relay("Not_An_Id!")
        .await
        .err(StatusCode::NOT_FOUND);
    assert_eq!(c.list_relays().await.ok(StatusCode::OK), json!([]));
}

/// Relays report what they hold over QUIC, which this crate's router does not
/// carry; the test writes the holdings into the store while central is stopped,
/// as that report would, and checks what the HTTP API makes of them.
#[tokio::test]
async fn poll_lists_only_relays_of_activated_sites_that_hold_the_whole_package() {
    let mut c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let (whole, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (partial, _) = c
        .given_relay("paris", &["10.1.2.0/24"], "http://10.1.2.2:8080")
        .await;
    let (elsewhere, _) = c
        .given_relay("lyon", &["10.2.0.0/16"], "http://10.2.0.2:8080")
        .await;
    let bytes = data(10_000);
    let pkg = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&bytes),
        )
        .await;
    let pid = pkg["id"].as_str().unwrap().to_owned();
    c.activate(&pid, json!({"sites": ["paris"], "fallback": "after:2h"}))
        .await
        .ok(StatusCode::OK);
    let agent = c.given_agent("pc1", &["10.1.2.7"]).await;
    c.assign(&pid, json!({"computers": [agent.id]}))
        .await
        .ok(StatusCode::OK);
    let envelope_before = c.package_info(&pid).await.body;

    let held = [(&whole, 3), (&partial, 2), (&elsewhere, 3)];
    c.restart_with_db(|db| {
        let relays = db.open_tree("relays").unwrap();
        for (id, n) in held {
            let mut record: Value =
                serde_json::from_slice(&relays.get(id.as_str()).unwrap().unwrap()).unwrap();
            record["holdings"] =
                json!({ pid.as_str(): {"info_sha256": pkg["info_sha256"], "fragments": n} });
            relays
                .insert(id.as_str(), serde_json::to_vec(&record).unwrap())
                .unwrap();
        }
    });

    // Everything survived the restart.
    assert_eq!(c.package_info(&pid).await.body, envelope_before);
    assert_eq!(c.show_package(&pid).await.ok(StatusCode::OK), {
        let mut p = pkg.clone();
        p["activation"] =
            json!({"all_sites": false, "sites": ["paris"], "central_fallback": "after:2h"});
        p
    });

    let relays = c.list_relays().await.ok(StatusCode::OK);
    let holdings_of = |id: &str| {
        relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["holdings"]
            .clone()
    };
    assert_eq!(
        holdings_of(&whole),
        json!([{"package_id": pid, "held": 3, "total": 3, "complete": true, "eta_s": 0}])
    );
    assert_eq!(
        holdings_of(&partial),
        json!([{"package_id": pid, "held": 2, "total": 3, "complete": false, "eta_s": null}])
    );
    // Lyon holds it but the package is not activated there: not shown.
    assert_eq!(holdings_of(&elsewhere), json!([]));

    let poll = c.poll(&agent, &["10.1.2.7"]).await.ok(StatusCode::OK);
    assert_eq!(
        poll["packages"],
        json!([{
            "id": pid,
            "priority": 5,
            "info_sha256": pkg["info_sha256"],
            "relays": [{"id": whole, "url": "http://10.1.0.2:8080", "subnets": ["10.1.0.0/16"]}],
            // The more specific relay of 10.1.2.0/24 still lacks a fragment.
            "relay_pending": true,
            "central_fallback": "after:2h",
            "kind": "install",
            "restart_timeout_s": 300,
        }])
    );
}

// ---------------------------------------------------------------------------
// Packages
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_uploaded_package_is_fragmented_signed_and_served_byte_for_byte() {
    let c = Central::start().await;
    let bytes = data(10_000);
    let params = [
        ("name", "Acme Editor"),
        ("version", "2.4.1"),
        ("action", "launch"),
        ("command", "setup.sh --quiet /S"),
        ("priority", "3"),
        ("archive", "none"),
        ("fragment_size", "4KiB"),
        ("os", "linux"),
        ("success_exit_codes", "0,3010"),
    ];
    let created = c.given_package(&params, Some(&bytes)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("acme-editor-2.4.1-"), "{id}");
    assert_eq!(created["name"], "Acme Editor");
    assert_eq!(created["version"], "2.4.1");
    assert_eq!(created["os"], "linux");
    assert_eq!(created["priority"], 3);
    assert_eq!(
        created["action"],
        json!({"kind": "launch", "command": "setup.sh --quiet /S"})
    );
    assert_eq!(created["archive"], "none");
    assert_eq!(created["size"], 10_000);
    assert_eq!(created["sha256"], sha256_hex(&bytes));
    assert_eq!(created["fragment_size"], 4096);
    assert_eq!(created["fragments"], 3);
    assert_eq!(created["success_exit_codes"], json!([0, 3010]));
    assert_eq!(time_of(&created["created_at"]), ts(T0));
    assert_eq!(
        created["activation"],
        json!({"all_sites": false, "sites": [], "central_fallback": "never"})
    );

    // show and list answer the same package.
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), created);
    assert_eq!(
        c.list_packages().await.ok(StatusCode::OK),
        json!([created.clone()])
    );

    // The signed info, byte for byte.
    let reply = c.package_info(&id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.headers.get(CONTENT_TYPE).unwrap(), "application/json");
    let envelope = reply.body.to_vec();
    assert_eq!(sha256_hex(&envelope), created["info_sha256"]);
    let on_disk = std::fs::read(c.dir().join("packages").join(&id).join("info.dsse.json")).unwrap();
    assert_eq!(envelope, on_disk);
    let env: Value = serde_json::from_slice(&envelope).unwrap();
    assert_eq!(env["payloadType"], signing::INFO_PAYLOAD_TYPE);
    let key = c.trusted_key();
    assert_eq!(env["signatures"][0]["keyid"], signing::key_id(&key));

    let info = signing::verify_info(&envelope, &[key]).unwrap();
    assert_eq!(info.id().as_str(), id);
    assert_eq!(info.name(), "Acme Editor");
    assert_eq!(info.version(), "2.4.1");
    assert_eq!(info.priority().get(), 3);
    assert_eq!(info.os().as_str(), "linux");
    assert_eq!(info.archive().as_str(), "none");
    assert_eq!(info.success_exit_codes(), [0, 3010]);
    assert_eq!(info.issued_at(), ts(T0));
    let plan = info.plan();
    assert_eq!(plan.size(), 10_000);
    assert_eq!(plan.fragment_size(), 4096);
    assert_eq!(hex::encode(plan.sha256()), sha256_hex(&bytes));
    assert_eq!(plan.count(), 3);
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        assert_eq!(
            hex::encode(plan.fragments()[i]),
            sha256_hex(chunk),
            "fragment {}",
            i + 1
        );
    }
    // The file itself is kept whole on disk.
    assert_eq!(
        std::fs::read(c.dir().join("packages").join(&id).join("data")).unwrap(),
        bytes
    );
    // A key the info was not signed with does not verify it.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(signing::verify_info(&envelope, &[other]).is_err());
}

#[tokio::test]
async fn a_command_only_package_needs_no_body() {
    let c = Central::start().await;
    let created = c
        .given_package(
            &[
                ("name", "flush-dns"),
                ("version", "1"),
                ("action", "execute"),
                ("command", "ipconfig /flushdns && echo $HOME"),
            ],
            None,
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        created["action"],
        json!({"kind": "execute", "command": "ipconfig /flushdns && echo $HOME"})
    );
    assert_eq!(created["size"], 0);
    assert_eq!(created["fragments"], 0);
    assert_eq!(created["sha256"], sha256_hex(b""));
    assert_eq!(created["archive"], "none");
    assert_eq!(created["os"], "any");
    assert_eq!(created["priority"], 5);
    assert_eq!(created["fragment_size"], 4 << 20);
    assert_eq!(created["success_exit_codes"], json!([0]));

    let envelope = c.package_info(id).await.body;
    assert_eq!(sha256_hex(&envelope), created["info_sha256"]);
    let info = signing::verify_info(&envelope, &[c.trusted_key()]).unwrap();
    assert_eq!(info.plan().count(), 0);
    assert_eq!(info.plan().size(), 0);

    // A store package needs a path, and gets one.
    let stored = c
        .given_package(
            &[
                ("name", "wallpaper"),
                ("version", "1"),
                ("action", "store"),
                ("path", "/srv/wallpapers"),
            ],
            Some(b"not really a jpeg"),
        )
        .await;
    assert_eq!(
        stored["action"],
        json!({"kind": "store", "path": "/srv/wallpapers"})
    );
}

#[tokio::test]
async fn the_archive_kind_is_recognised_from_the_first_bytes() {
    let c = Central::start().await;
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend(data(100));
    let mut gz = vec![0x1f, 0x8b, 0x08];
    gz.extend(data(100));
    let z = c.given_package(&launch_params("z", &[]), Some(&zip)).await;
    assert_eq!(z["archive"], "zip");
    let g = c.given_package(&launch_params("g", &[]), Some(&gz)).await;
    assert_eq!(g["archive"], "tar.gz");
    let n = c
        .given_package(&launch_params("n", &[]), Some(&data(100)))
        .await;
    assert_eq!(n["archive"], "none");
    // An explicit archive wins over the bytes.
    let e = c
        .given_package(&launch_params("e", &[("archive", "none")]), Some(&zip))
        .await;
    assert_eq!(e["archive"], "none");
}

#[tokio::test]
async fn bad_upload_parameters_name_the_field() {
    let c = Central::start().await;
    // (parameter, value, what the error must name)
    let cases: &[(&str, &str, &[&str])] = &[
        ("priority", "11", &["priority", "11"]),
        ("priority", "-1", &["priority"]),
        ("priority", "high", &["priority", "high"]),
        ("action", "install", &["action", "install"]),
        ("fragment_size", "0", &["fragment_size"]),
        ("fragment_size", "2GiB", &["fragment_size"]),
        ("fragment_size", "lots", &["fragment_size"]),
        ("os", "beos", &["os", "beos"]),
        ("archive", "rar", &["archive", "rar"]),
        ("success_exit_codes", "0,ok", &["success_exit_codes", "ok"]),
        ("colour", "red", &["colour"]),
    ];
    for &(key, value, words) in cases {
        let reply = c
            .upload(
                &launch_params("app", &[(key, value)]),
                Some(Body::from(data(10))),
            )
            .await;
        reply.err_naming(StatusCode::BAD_REQUEST, words);
    }

    // Missing parameters.
    let missing: &[(&Query, &str)] = &[
        (
            &[("version", "1"), ("action", "execute"), ("command", "x")],
            "name",
        ),
        (
            &[("name", "a"), ("action", "execute"), ("command", "x")],
            "version",
        ),
        (
            &[("name", "a"), ("version", "1"), ("command", "x")],
            "action",
        ),
        (
            &[("name", "a"), ("version", "1"), ("action", "launch")],
            "command",
        ),
        (
            &[("name", "a"), ("version", "1"), ("action", "execute")],
            "command",
        ),
        (
            &[("name", "a"), ("version", "1"), ("action", "store")],
            "path",
        ),
    ];
    for (params, field) in missing {
        c.upload(params, Some(Body::from(data(10))))
            .await
            .err_naming(StatusCode::BAD_REQUEST, &[*field]);
    }
    c.upload(
        &launch_params("app", &[("command", "   ")]),
        Some(Body::from(data(10))),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["command"]);

    // launch runs a file of the package, and an archive needs one.
    c.upload(&launch_params("app", &[]), None)
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["action"]);
    c.upload(
        &[
            ("name", "a"),
            ("version", "1"),
            ("action", "execute"),
            ("command", "x"),
            ("archive", "zip"),
        ],
        None,
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["archive"]);

    // Nothing was kept, not even a temporary file.
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    let tmp: Vec<_> = std::fs::read_dir(c.dir().join("packages/tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let leftovers: Vec<_> = std::fs::read_dir(c.dir().join("packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_duplicate_name_and_version_is_a_conflict() {
    let c = Central::start().await;
    let first = c
        .given_package(&launch_params("app", &[]), Some(&data(10)))
        .await;
    c.upload(&launch_params("app", &[]), Some(Body::from(data(20))))
        .await
        .err_naming(StatusCode::CONFLICT, &["app", "1.0"]);
    // Another version of the same name is fine.
    let second = c
        .given_package(
            &launch_params("app", &[("version", "1.1")]),
            Some(&data(20)),
        )
        .await;
    assert_ne!(first["id"], second["id"]);
    let list = c.list_packages().await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        c.show_package(first["id"].as_str().unwrap())
            .await
            .ok(StatusCode::OK),
        first
    );
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_413_and_leaves_nothing() {
    let c = Central::start_with_config(|toml| {
        let mut replaced = false;
        let out: Vec<String> = toml
            .lines()
            .map(|l| {
                if l.starts_with("max_package_size") {
                    replaced = true;
                    "max_package_size = \"1KiB\"".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        assert!(replaced, "no max_package_size in {toml}");
        out.join("\n")
    })
    .await;
    c.upload(&launch_params("big", &[]), Some(chunked(&data(5000), 700)))
        .await
        .err_naming(StatusCode::PAYLOAD_TOO_LARGE, &["1024"]);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    // The name and version are still free.
    let ok = c
        .given_package(&launch_params("big", &[]), Some(&data(1024)))
        .await;
    assert_eq!(ok["size"], 1024);
}

#[tokio::test]
async fn an_interrupted_upload_is_refused_and_leaves_nothing() {
    let c = Central::start().await;
    let parts: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(data(3000)),
        Err(std::io::Error::other("connection reset")),
    ];
    let body = Body::from_stream(futures_util::stream::iter(parts));
    c.upload(&launch_params("app", &[]), Some(body))
        .await
        .err(StatusCode::BAD_REQUEST);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    c.given_package(&launch_params("app", &[]), Some(&data(3000)))
        .await;
}

#[tokio::test]
async fn a_deleted_package_is_gone_with_its_assignments() {
    let c = Central::start().await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    let id = pkg["id"].as_str().unwrap().to_owned();
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    c.assign(&id, json!({"all": true})).await.ok(StatusCode::OK);

    let reply = c.delete_package(&id).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(reply.body.is_empty());

    c.show_package(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    c.package_info(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    c.admin_get(&format!("/api/v1/packages/{id}/stats"))
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    c.delete_package(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    assert!(!c.dir().join("packages").join(&id).exists());

    // The agent is no longer handed it, nor served it.
    let poll = c.poll(&agent, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"], json!([]));
    c.agent_info(&agent, &id).await.err(StatusCode::NOT_FOUND);

    // The name and version can be used again.
    let again = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    assert_ne!(again["id"], pkg["id"]);
}

// ---------------------------------------------------------------------------
// Activations and assignments
// ---------------------------------------------------------------------------

#[tokio::test]
async fn activations_add_sites_or_all_sites_and_set_the_fallback() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();

    let p = c
        .activate(id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(p["id"], id);
    assert_eq!(
        p["activation"],
        json!({"all_sites": false, "sites": ["paris"], "central_fallback": "never"})
    );
    // A second activation adds sites; the fallback can be set with it.
    let p = c
        .activate(
            id,
            json!({"sites": ["lyon", "paris"], "fallback": "always"}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        p["activation"],
        json!({"all_sites": false, "sites": ["lyon", "paris"], "central_fallback": "always"})
    );
    let p = c
        .activate(id, json!({"all_sites": true, "fallback": "after:2h"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(p["activation"]["all_sites"], true);
    assert_eq!(p["activation"]["central_fallback"], "after:2h");
    assert_eq!(c.show_package(id).await.ok(StatusCode::OK), p);

    // Errors.
    c.activate(id, json!({"sites": ["mars"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["mars"]);
    c.activate(id, json!({"sites": ["paris"], "fallback": "sometimes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["fallback", "sometimes"]);
    c.activate(id, json!({"sites": ["paris"], "all_sites": true}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({"sites": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({"sites": "paris"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.activate(id, json!({"all_sites": "yes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all_sites"]);
    c.activate("no-such-package", json!({"all_sites": true}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
    // Failed requests changed nothing.
    assert_eq!(c.show_package(id).await.ok(StatusCode::OK), p);
}

#[tokio::test]
async fn assignments_by_computer_subnet_or_all_start_waiting_for_notification() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6", "192.168.1.6"]).await;
    let d = c.given_agent("pc-d", &["10.2.0.5"]).await;

    let r = c
        .assign(id, json!({"computers": [a.id, a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["package_id"], id);
    assert_eq!(ids(&r["assigned"]), sorted(&[&a.id]));
    assert_eq!(r["unchanged"], json!([]));

    let r = c
        .assign(id, json!({"subnet": "10.1.0.0/16"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&b.id]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id]));

    let r = c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&d.id]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id, &b.id]));

    // A subnet with nobody in it assigns nobody.
    let r = c
        .assign(id, json!({"subnet": "172.16.0.0/12"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["assigned"], json!([]));
    assert_eq!(r["unchanged"], json!([]));

    let stats = c.stats(id).await;
    assert_eq!(stats["counts"], json!({"WAITING_NOTIFICATION": 3}));
    let computers = stats["computers"].as_array().unwrap();
    assert_eq!(computers.len(), 3);
    for s in computers {
        assert_eq!(s["status"], "WAITING_NOTIFICATION");
        assert_eq!(s["exit_code"], Value::Null);
        assert_eq!(s["output"], Value::Null);
        assert_eq!(time_of(&s["updated_at"]), ts(T0));
    }
    let b_stat = c.stat_of(id, &b).await;
    assert_eq!(b_stat["hostname"], "pc-b");
}

#[tokio::test]
async fn bad_assignments_name_the_field() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;

    c.assign(id, json!({"subnet": "10.0.0.0/33"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["subnet", "10.0.0.0/33"]);
    c.assign(id, json!({"computers": [a.id, "pc-nobody-000000"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["pc-nobody-000000"]);
    c.assign(id, json!({"computers": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computers"]);
    c.assign(id, json!({"computers": [a.id], "all": true}))
        .await
        .err(StatusCode::BAD_REQUEST);
    // Filters combine (search, then deploy); all:false alone chooses no one.
    c.assign(id, json!({"all": false}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["choose computers"]);
    c.assign(id, json!({})).await.err(StatusCode::BAD_REQUEST);
    c.assign(id, json!({"all": "yes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all"]);
    c.assign(id, json!({"computers": a.id}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computers"]);
    c.assign("no-such-package", json!({"all": true}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
    // Nothing was assigned by the failed requests.
    assert_eq!(c.stats(id).await["computers"], json!([]));
}

#[tokio::test]
async fn reassigning_leaves_deployments_under_way_and_restarts_finished_ones() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);

    // Waiting and notified assignments are under way.
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    let r = c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(r["assigned"], json!([]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id, &b.id]));
    assert_eq!(c.stat_of(id, &a).await["status"], "NOTIFIED");
    assert_eq!(c.stat_of(id, &b).await["status"], "WAITING_NOTIFICATION");

    // So is a download.
    c.report(&a, id, json!({"code": "DOWNLOADING", "fragments_done": 0}))
        .await
        .ok(StatusCode::OK);
    let r = c
        .assign(id, json!({"computers": [a.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["unchanged"]), sorted(&[&a.id]));
    assert_eq!(c.stat_of(id, &a).await["status"], "DOWNLOADING");

    // A finished one (success or failure) starts over.
    c.report(
        &a,
        id,
        json!({"code": "SUCCESS", "exit_code": 0, "output": "done"}),
    )
    .await
    .ok(StatusCode::OK);
    c.poll(&b, &[]).await.ok(StatusCode::OK);
    c.report(
        &b,
        id,
        json!({"code": "ERR_EXECUTE", "output": "sh: not found"}),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        c.poll(&a, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
    c.set_time(T1);
    let r = c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&a.id, &b.id]));
    assert_eq!(r["unchanged"], json!([]));
    let stats = c.stats(id).await;
    assert_eq!(stats["counts"], json!({"WAITING_NOTIFICATION": 2}));
    for s in stats["computers"].as_array().unwrap() {
        assert_eq!(s["exit_code"], Value::Null, "{s}");
        assert_eq!(s["output"], Value::Null, "{s}");
        assert_eq!(time_of(&s["updated_at"]), ts(T1));
    }
    let poll = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], id);
}

// ---------------------------------------------------------------------------
// Agents: enrollment, polling, downloads, reports
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_agent_enrolls_with_the_enroll_token_and_is_listed() {
    let c = Central::start().await;
    assert_eq!(c.list_computers().await.ok(StatusCode::OK), json!([]));
    let reply = c
        .enroll(json!({
            "enroll_token": c.enroll_token,
            "hostname": "WS-042.corp.example",
            "os": "windows",
            "addresses": ["10.1.0.42", "fe80::1"],
        }))
        .await
        .ok(StatusCode::CREATED);
    let id = reply["computer_id"].as_str().unwrap();
    assert!(id.starts_with("ws-042.corp.example-"), "{id}");
    let token = reply["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let key = c.trusted_key();
    let pem = std::fs::read_to_string(c.dir().join("keys/signing.pub")).unwrap();
    assert_eq!(
        reply["signing_keys"],
        json!([{"keyid": signing::key_id(&key), "pem": pem}])
    );

    let computers = c.list_computers().await.ok(StatusCode::OK);
    assert_eq!(computers.as_array().unwrap().len(), 1);
    let pc = &computers[0];
    assert_eq!(pc["id"], id);
    assert_eq!(pc["hostname"], "WS-042.corp.example");
    assert_eq!(pc["os"], "windows");
    assert_eq!(pc["addresses"], json!(["10.1.0.42", "fe80::1"]));
    assert_eq!(time_of(&pc["last_seen"]), ts(T0));

    // The token works on agent routes.
    let agent = Agent {
        id: id.to_owned(),
        token: token.to_owned(),
    };
    c.poll(&agent, &[]).await.ok(StatusCode::OK);
    // Two enrollments of one host name are two computers.
    let twin = c.given_agent("WS-042.corp.example", &[]).await;
    assert_ne!(twin.id, agent.id);
}

#[tokio::test]
async fn bad_enrollments_are_refused() {
    let c = Central::start().await;
    let good = json!({
        "enroll_token": c.enroll_token,
        "hostname": "pc1",
        "os": "linux",
        "addresses": ["10.1.0.5"],
    });
    let with = |field: &str, value: Value| {
        let mut v = good.clone();
        v[field] = value;
        v
    };
    c.enroll(with("enroll_token", json!("0".repeat(64))))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["enroll_token"]);
    c.enroll(with("enroll_token", json!(c.admin)))
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["enroll_token"]);
    c.enroll(with("enroll_token", json!(5)))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["enroll_token"]);
    c.enroll(with("addresses", json!(["10.1.0.300"])))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses", "10.1.0.300"]);
    c.enroll(with("addresses", json!(["10.1.0.0/16"])))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses", "10.1.0.0/16"]);
    c.enroll(with("addresses", json!("10.1.0.5")))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses"]);
    c.enroll(with("hostname", json!("")))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostname"]);
    c.enroll(with("hostname", json!(5)))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostname"]);
    c.enroll(with("os", json!("   ")))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["os"]);
    c.enroll(json!({"enroll_token": c.enroll_token, "os": "linux"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["hostname"]);
    assert_eq!(c.list_computers().await.ok(StatusCode::OK), json!([]));
}

#[tokio::test]
async fn a_poll_notifies_waiting_assignments_in_priority_order() {
    let c = Central::start().await;
    let late = c.given_command_package("late", "7").await;
    let urgent = c.given_command_package("urgent", "0").await;
    let other = c.given_command_package("other", "3").await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    let idle = c.given_agent("pc2", &["10.1.0.6"]).await;
    // A relay serves the agent's subnet, but holds nothing yet.
    c.given_site("paris", &["10.1.0.0/16"]).await;
    c.given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    for p in [&late, &urgent] {
        let id = p["id"].as_str().unwrap();
        c.assign(id, json!({"computers": [agent.id]}))
            .await
            .ok(StatusCode::OK);
    }
    c.assign(
        other["id"].as_str().unwrap(),
        json!({"computers": [idle.id]}),
    )
    .await
    .ok(StatusCode::OK);
    c.activate(
        urgent["id"].as_str().unwrap(),
        json!({"all_sites": true, "fallback": "always"}),
    )
    .await
    .ok(StatusCode::OK);
    let late_id = late["id"].as_str().unwrap();
    assert_eq!(
        c.stats(late_id).await["counts"],
        json!({"WAITING_NOTIFICATION": 1})
    );

    c.set_time(T1);
    let poll = c
        .poll(&agent, &["10.1.0.5", "10.7.0.5"])
        .await
        .ok(StatusCode::OK);
    // 60 s, jittered by up to 20 % either way.
    let interval = poll["poll_interval_s"].as_u64().unwrap();
    assert!((48..=72).contains(&interval), "{interval}");
    // Priority 0 first; no relay holds anything yet.
    assert_eq!(
        poll["packages"],
        json!([
            {
                "id": urgent["id"],
                "priority": 0,
                "info_sha256": urgent["info_sha256"],
                "relays": [],
                // A relay serves 10.1.0.5 but holds nothing: wait for it.
                "relay_pending": true,
                "central_fallback": "always",
                "kind": "install",
                "restart_timeout_s": 300,
            },
            {
                "id": late["id"],
                "priority": 7,
                "info_sha256": late["info_sha256"],
                "relays": [],
                "relay_pending": true,
                "central_fallback": "never",
                "kind": "install",
                "restart_timeout_s": 300,
            },
        ])
    );

    // The assignments are now NOTIFIED, as of the poll.
    let stats = c.stats(late_id).await;
    assert_eq!(stats["counts"], json!({"NOTIFIED": 1}));
    assert_eq!(time_of(&stats["computers"][0]["updated_at"]), ts(T1));
    assert_eq!(
        c.stats(urgent["id"].as_str().unwrap()).await["counts"],
        json!({"NOTIFIED": 1})
    );
    // The other computer's assignment is untouched.
    assert_eq!(
        c.stats(other["id"].as_str().unwrap()).await["counts"],
        json!({"WAITING_NOTIFICATION": 1})
    );

    // The poll is the computer's last contact, with the addresses it reported.
    let computers = c.list_computers().await.ok(StatusCode::OK);
    let pc = computers
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == agent.id.as_str())
        .unwrap();
    assert_eq!(time_of(&pc["last_seen"]), ts(T1));
    assert_eq!(pc["addresses"], json!(["10.1.0.5", "10.7.0.5"]));

    // Notified packages are still handed out until they are finished.
    let again = c.poll(&agent, &[]).await.ok(StatusCode::OK);
    assert_eq!(again["packages"], poll["packages"]);
    assert_eq!(c.stats(late_id).await["counts"], json!({"NOTIFIED": 1}));

    c.poll(&agent, &["10.1.0.999"])
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["addresses", "10.1.0.999"]);
    c.send_json(
        Method::POST,
        "/api/v1/agent/poll",
        Some(agent.token.as_str()),
        &json!({"addresses": "10.1.0.5"}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["addresses"]);
}

#[tokio::test]
async fn an_agent_downloads_the_info_and_fragments_of_its_packages() {
    let c = Central::start().await;
    let bytes = data(10_000);
    let pkg = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&bytes),
        )
        .await;
    let id = pkg["id"].as_str().unwrap();
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    let stranger = c.given_agent("pc2", &["10.1.0.6"]).await;
    c.assign(id, json!({"computers": [agent.id]}))
        .await
        .ok(StatusCode::OK);

    let info = c.agent_info(&agent, id).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text());
    assert_eq!(info.body, c.package_info(id).await.body);
    assert_eq!(sha256_hex(&info.body), pkg["info_sha256"]);
    signing::verify_info(&info.body, &[c.trusted_key()]).unwrap();

    for (i, chunk) in bytes.chunks(4096).enumerate() {
        let n = (i + 1).to_string();
        let f = c.agent_fragment(&agent, id, &n).await;
        assert_eq!(f.status, StatusCode::OK, "fragment {n}: {}", f.text());
        assert_eq!(
            f.headers.get(CONTENT_LENGTH).unwrap(),
            &chunk.len().to_string()
        );
        assert_eq!(
            f.headers.get(CONTENT_TYPE).unwrap(),
            "application/octet-stream"
        );
        assert_eq!(f.body.as_ref(), chunk, "fragment {n}");
    }
    for n in ["0", "4", "4294967295", "4294967296", "-1", "one"] {
        c.agent_fragment(&agent, id, n)
            .await
            .err_naming(StatusCode::NOT_FOUND, &["fragment"]);
    }

    // Central serves packages only to the computers they are assigned to.
    c.agent_info(&stranger, id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[id]);
    c.agent_fragment(&stranger, id, "1")
        .await
        .err_naming(StatusCode::NOT_FOUND, &[id]);
    c.report(&stranger, id, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &[id]);
    assert_eq!(c.stats(id).await["computers"].as_array().unwrap().len(), 1);

    // Unknown packages.
    c.agent_info(&agent, "no-such-package")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
    c.agent_fragment(&agent, "no-such-package", "1")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);
}

#[tokio::test]
async fn status_reports_update_the_stats() {
    let c = Central::start().await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    c.poll(&b, &[]).await.ok(StatusCode::OK);

    c.set_time(T1);
    let reply = c
        .report(&a, id, json!({"code": "DOWNLOADING", "fragments_done": 1}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(reply["computer_id"], a.id.as_str());
    assert_eq!(reply["hostname"], "pc-a");
    assert_eq!(reply["status"], "DOWNLOADING");
    assert_eq!(reply["fragments_done"], 1);
    assert_eq!(time_of(&reply["updated_at"]), ts(T1));
    assert_eq!(
        c.stats(id).await["counts"],
        json!({"NOTIFIED": 1, "DOWNLOADING": 1})
    );

    // Only the last 4 KiB of the output are kept.
    let mut output = "x".repeat(1000);
    output.push_str(&"0123456789abcdef".repeat(256));
    let reply = c
        .report(
            &a,
            id,
            json!({"code": "ERR_EXIT_CODE", "exit_code": 3, "output": output}),
        )
        .await
        .ok(StatusCode::OK);
    let kept = reply["output"].as_str().unwrap();
    assert_eq!(kept.len(), 4096);
    assert_eq!(kept, &output[output.len() - 4096..]);

    c.report(
        &b,
        id,
        json!({"code": "SUCCESS", "exit_code": 0, "output": "installed\n"}),
    )
    .await
    .ok(StatusCode::OK);

    let stats = c.stats(id).await;
    assert_eq!(stats["package_id"], id);
    assert_eq!(stats["counts"], json!({"ERR_EXIT_CODE": 1, "SUCCESS": 1}));
    let sa = c.stat_of(id, &a).await;
    assert_eq!(sa["hostname"], "pc-a");
    assert_eq!(sa["status"], "ERR_EXIT_CODE");
    assert_eq!(sa["exit_code"], 3);
    assert_eq!(sa["output"].as_str().unwrap(), kept);
    assert_eq!(time_of(&sa["updated_at"]), ts(T1));
    let sb = c.stat_of(id, &b).await;
    assert_eq!(sb["status"], "SUCCESS");
    assert_eq!(sb["exit_code"], 0);
    assert_eq!(sb["output"], "installed\n");

    // Finished packages are no longer handed out.
    assert_eq!(
        c.poll(&a, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
    assert_eq!(
        c.poll(&b, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
}

#[tokio::test]
async fn the_output_tail_is_cut_at_a_character_boundary() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &[]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    // 2 100 two-byte characters then one byte: the last 4096 bytes start inside a character.
    let mut output = "é".repeat(2100);
    output.push('!');
    let reply = c
        .report(&a, id, json!({"code": "ERR_EXECUTE", "output": output}))
        .await
        .ok(StatusCode::OK);
    let kept = reply["output"].as_str().unwrap();
    assert_eq!(kept.len(), 4095);
    assert!(output.ends_with(kept));
}

#[tokio::test]
async fn bad_status_reports_name_the_code() {
    let c = Central::start().await;
    let pkg = c.given_command_package("app", "5").await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &[]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);

    c.report(&a, id, json!({"code": "WAITING_NOTIFICATION"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code", "WAITING_NOTIFICATION"]);
    c.report(&a, id, json!({"code": "NOTIFIED"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code", "NOTIFIED"]);
    c.report(&a, id, json!({"code": "FINISHED"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code", "FINISHED"]);
    c.report(&a, id, json!({"code": "success"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code"]);
    c.report(&a, id, json!({"exit_code": 0}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["code"]);
    c.report(&a, id, json!({"code": "SUCCESS", "exit_code": "zero"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["exit_code"]);
    c.report(&a, id, json!({"code": "DOWNLOADING", "fragments_done": -1}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["fragments_done"]);
    // None of them changed anything.
    assert_eq!(c.stats(id).await["counts"], json!({"NOTIFIED": 1}));
}

// ---------------------------------------------------------------------------
// Relay problems and poll jitter
// ---------------------------------------------------------------------------

#[tokio::test]
async fn agents_report_relay_problems_and_the_relay_listing_counts_them() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (other, _) = c
        .given_relay("paris", &["10.1.2.0/24"], "http://10.1.2.2:8080")
        .await;
    let pkg = c.given_command_package("app", "5").await;
    let pid = pkg["id"].as_str().unwrap();
    let pc1 = c.given_agent("pc1", &["10.1.0.5"]).await;
    let pc2 = c.given_agent("pc2", &["10.1.0.6"]).await;

    let r = c
        .report_problem(
            &pc1,
            &relay,
            json!({"package_id": pid, "kind": "refused", "detail": "connection refused"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(r.body.is_empty());
    c.set_time(T1);
    // The package is optional.
    let r = c
        .report_problem(
            &pc2,
            &relay,
            json!({"kind": "stalled", "detail": "no byte"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = c
        .report_problem(&pc2, &relay, json!({"kind": "stalled", "detail": "again"}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());

    let relays = c.list_relays().await.ok(StatusCode::OK);
    let view = |id: &str| {
        relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["problems"]
            .clone()
    };
    assert_eq!(
        view(&relay),
        json!({
            "count": 3,
            "counts": {"refused": 1, "stalled": 2},
            "last": {
                "kind": "stalled",
                "detail": "again",
                "computer_id": pc2.id,
                "package_id": null,
                "at": T1,
            },
        })
    );
    assert_eq!(
        view(&other),
        json!({"count": 0, "counts": {}, "last": null})
    );
}

#[tokio::test]
async fn a_problem_detail_is_cut_to_one_kib_on_one_line() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let pc = c.given_agent("pc1", &["10.1.0.5"]).await;
    let long = format!("stalled\n{}", "é".repeat(2000));
    let r = c
        .report_problem(&pc, &relay, json!({"kind": "bad_data", "detail": long}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let relays = c.list_relays().await.ok(StatusCode::OK);
    let detail = relays[0]["problems"]["last"]["detail"].as_str().unwrap();
    assert!(
        detail.len() <= 1024 && detail.len() >= 1020,
        "{}",
        detail.len()
    );
    assert!(detail.starts_with("stalled é"), "{detail}");
    assert!(!detail.contains('\n'));
}

#[tokio::test]
async fn bad_problem_reports_name_the_field() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let pc = c.given_agent("pc1", &["10.1.0.5"]).await;
    c.report_problem(&pc, &relay, json!({"kind": "slow", "detail": "x"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["kind", "slow"]);
    c.report_problem(&pc, &relay, json!({"detail": "x"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["kind"]);
    c.report_problem(
        &pc,
        &relay,
        json!({"kind": "refused", "package_id": "Not An Id"}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["package_id"]);
    for unknown in ["relay-gone-abcdef", "Not_An_Id!"] {
        c.report_problem(&pc, unknown, json!({"kind": "refused", "detail": "x"}))
            .await
            .err_naming(StatusCode::NOT_FOUND, &["relay", unknown]);
    }
    let mut big = json!({"kind": "refused", "detail": "x"}).to_string();
    big.push_str(&" ".repeat(70_000));
    c.send(
        Method::POST,
        &format!("/api/v1/agent/relays/{relay}/problems"),
        Some(pc.token.as_str()),
        Body::from(big),
    )
    .await
    .err(StatusCode::PAYLOAD_TOO_LARGE);
    // An admin does not report problems; nothing was counted.
    c.send_json(
        Method::POST,
        &format!("/api/v1/agent/relays/{relay}/problems"),
        Some(c.admin.as_str()),
        &json!({"kind": "refused", "detail": "x"}),
    )
    .await
    .err_naming(StatusCode::FORBIDDEN, &["agent"]);
    assert_eq!(
        c.list_relays().await.ok(StatusCode::OK)[0]["problems"],
        json!({"count": 0, "counts": {}, "last": null})
    );
}

#[tokio::test]
async fn each_poll_gets_the_interval_jittered_within_twenty_percent() {
    let c = Central::start_with_config(|toml| {
        toml.replace("poll_interval = \"1m\"", "poll_interval = \"100s\"")
    })
    .await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let poll = c.poll(&agent, &[]).await.ok(StatusCode::OK);
        let s = poll["poll_interval_s"].as_u64().unwrap();
        assert!((80..=120).contains(&s), "{s} is not within 100s ± 20 %");
        seen.insert(s);
    }
    // 41 values drawn 200 times: all equal would be a broken generator
    // (a fair one does that once in 41^199).
    assert!(seen.len() > 1, "every poll got {seen:?}");
}

#[tokio::test]
async fn the_jitter_comes_from_the_injected_generator() {
    use sitecast_central::jitter::Random;
    struct Top;
    impl Random for Top {
        fn up_to(&self, max: u64) -> u64 {
            max
        }
    }
    let c = Central::start().await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    // A second router over another DIR, with the generator pinned to its top.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    init::init(&dir, &InitOptions::default()).unwrap();
    let mut central =
        api::Central::open(init::load(&dir).unwrap(), Arc::clone(&c.clock) as _).unwrap();
    central.random = Arc::new(Top);
    let central = Arc::new(central);
    let pinned = Central {
        admin: init::read_token(&init::Layout::new(&dir).admin_token()).unwrap(),
        enroll_token: init::read_token(&init::Layout::new(&dir).enroll_token()).unwrap(),
        layout: init::Layout::new(&dir),
        app: api::app(Arc::clone(&central)),
        state: Some(central),
        clock: Arc::clone(&c.clock),
        _tmp: tmp,
    };
    let pc = pinned.given_agent("pc1", &[]).await;
    for _ in 0..5 {
        let poll = pinned.poll(&pc, &[]).await.ok(StatusCode::OK);
        assert_eq!(poll["poll_interval_s"], 72, "60s + 20 %");
    }
    // The default generator is the OS's.
    let poll = c.poll(&agent, &[]).await.ok(StatusCode::OK);
    assert!((48..=72).contains(&poll["poll_interval_s"].as_u64().unwrap()));
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// Every admin route, with ids that exist.
fn admin_routes(package: &str, relay: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/api/v1/sites".into()),
        (Method::GET, "/api/v1/sites".into()),
        (Method::POST, "/api/v1/relays".into()),
        (Method::GET, "/api/v1/relays".into()),
        (Method::GET, "/api/v1/coverage".into()),
        (Method::DELETE, format!("/api/v1/relays/{relay}")),
        (
            Method::POST,
            "/api/v1/packages?name=x&version=1&action=execute&command=x".into(),
        ),
        (Method::GET, "/api/v1/packages".into()),
        (Method::GET, format!("/api/v1/packages/{package}")),
        (Method::DELETE, format!("/api/v1/packages/{package}")),
        (Method::GET, format!("/api/v1/packages/{package}/info")),
        (
            Method::POST,
            format!("/api/v1/packages/{package}/activations"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/packages/{package}/activations"),
        ),
        (
            Method::POST,
            format!("/api/v1/packages/{package}/assignments"),
        ),
        (Method::GET, format!("/api/v1/packages/{package}/stats")),
        (Method::GET, "/api/v1/computers".into()),
    ]
}

/// Every agent route (enroll takes its token in the body).
fn agent_routes(package: &str, relay: &str) -> Vec<(Method, String)> {
    vec![
        (
            Method::POST,
            format!("/api/v1/agent/relays/{relay}/problems"),
        ),
        (Method::POST, "/api/v1/agent/poll".into()),
        (
            Method::GET,
            format!("/api/v1/agent/packages/{package}/info"),
        ),
        (
            Method::GET,
            format!("/api/v1/agent/packages/{package}/fragments/1"),
        ),
        (
            Method::POST,
            format!("/api/v1/agent/packages/{package}/status"),
        ),
    ]
}

/// A plausible body for a route, so only the token can be wrong.
fn body_for(method: &Method, path: &str) -> Body {
    let deactivation = *method == Method::DELETE && path.ends_with("/activations");
    if (*method != Method::POST && !deactivation) || path.contains("/api/v1/packages?") {
        return Body::empty();
    }
    let v = if path.ends_with("/sites") {
        json!({"name": "x"})
    } else if path.ends_with("/relays") {
        json!({"site": "paris", "subnets": ["10.0.0.0/8"], "url": "http://r"})
    } else if path.ends_with("/activations") {
        json!({"all_sites": true})
    } else if path.ends_with("/assignments") {
        json!({"all": true})
    } else if path.ends_with("/status") {
        json!({"code": "SUCCESS"})
    } else if path.ends_with("/problems") {
        json!({"kind": "stalled", "detail": "no byte for 15s"})
    } else {
        json!({"addresses": []})
    };
    Body::from(v.to_string())
}

#[tokio::test]
async fn routes_refuse_missing_malformed_unknown_and_misplaced_tokens() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let (relay, relay_token) = c.given_relay("paris", &["10.1.0.0/16"], "http://r").await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(10)))
        .await;
    let pid = pkg["id"].as_str().unwrap().to_owned();
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    c.assign(&pid, json!({"all": true}))
        .await
        .ok(StatusCode::OK);

    let unknown = "f".repeat(64);
    let mut all = admin_routes(&pid, &relay);
    all.extend(agent_routes(&pid, &relay));
    for (method, path) in &all {
        // No Authorization header.
        let r = c
            .send(method.clone(), path, None, body_for(method, path))
            .await;
        r.err_naming(StatusCode::UNAUTHORIZED, &["Authorization"]);
        // Malformed headers.
        for header in [
            format!("Basic {}", c.admin),
            c.admin.clone(),
            "Bearer ".to_owned(),
            "Bearer    ".to_owned(),
        ] {
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(AUTHORIZATION, header.as_str())
                .body(body_for(method, path))
                .unwrap();
            c.call(req)
                .await
                .err_naming(StatusCode::UNAUTHORIZED, &["Bearer"]);
        }
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(AUTHORIZATION, b"Bearer \xff\xfe".as_slice())
            .body(body_for(method, path))
            .unwrap();
        c.call(req).await.err(StatusCode::UNAUTHORIZED);
        // A well-formed token nobody holds.
        c.send(
            method.clone(),
            path,
            Some(unknown.as_str()),
            body_for(method, path),
        )
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["token"]);
    }

    for (method, path) in admin_routes(&pid, &relay) {
        for token in [agent.token.as_str(), relay_token.as_str()] {
            c.send(method.clone(), &path, Some(token), body_for(&method, &path))
                .await
                .err_naming(StatusCode::FORBIDDEN, &["admin"]);
        }
    }
    for (method, path) in agent_routes(&pid, &relay) {
        for token in [c.admin.as_str(), relay_token.as_str()] {
            c.send(method.clone(), &path, Some(token), body_for(&method, &path))
                .await
                .err_naming(StatusCode::FORBIDDEN, &["agent"]);
        }
    }

    // None of the refused requests did anything.
    assert_eq!(
        c.list_sites()
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.list_relays()
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([pkg]));
    assert_eq!(
        c.stats(&pid).await["counts"],
        json!({"WAITING_NOTIFICATION": 1})
    );
    assert_eq!(
        c.list_relays().await.ok(StatusCode::OK)[0]["problems"]["count"],
        0
    );
}

// ---------------------------------------------------------------------------
// Not found, body limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_things_are_404_with_a_json_error() {
    let c = Central::start().await;
    for path in [
        "/api/v1/nothing",
        "/",
        "/api/v2/sites",
        "/api/v1/packages/x/y/z",
    ] {
        c.admin_get(path)
            .await
            .err_naming(StatusCode::NOT_FOUND, &[path]);
    }
    for id in ["no-such-package", "Not%20An%20Id"] {
        c.show_package(id).await.err(StatusCode::NOT_FOUND);
        c.package_info(id).await.err(StatusCode::NOT_FOUND);
        c.delete_package(id).await.err(StatusCode::NOT_FOUND);
        c.admin_get(&format!("/api/v1/packages/{id}/stats"))
            .await
            .err(StatusCode::NOT_FOUND);
    }
    c.show_package("no-such-package")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package", "no-such-package"]);
    c.delete_relay("relay-gone-abcdef")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["relay", "relay-gone-abcdef"]);
    c.given_site("paris", &[]).await;
    let pkg = c.given_command_package("app", "5").await;
    c.assign(
        pkg["id"].as_str().unwrap(),
        json!({"computers": ["pc-gone"]}),
    )
    .await
    .err_naming(StatusCode::NOT_FOUND, &["computer", "pc-gone"]);
    c.activate(pkg["id"].as_str().unwrap(), json!({"sites": ["gone"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["site", "gone"]);
    c.add_relay(json!({"site": "gone", "subnets": ["10.0.0.0/8"], "url": "http://r"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["site", "gone"]);
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_json_error() {
    let c = Central::start().await;
    for (method, path) in [
        (Method::PUT, "/api/v1/sites"),
        (Method::DELETE, "/api/v1/sites"),
        (Method::GET, "/api/v1/agent/poll"),
    ] {
        c.send(method, path, Some(c.admin.as_str()), Body::empty())
            .await
            .err_naming(StatusCode::METHOD_NOT_ALLOWED, &[path]);
    }
}

#[tokio::test]
async fn a_json_body_over_64_kib_is_413() {
    let c = Central::start().await;
    // Exactly the limit is accepted...
    let small = json!({"name": "paris", "subnets": []}).to_string();
    let mut at_limit = small.clone();
    at_limit.push_str(&" ".repeat((64 << 10) - small.len()));
    assert_eq!(at_limit.len(), 64 << 10);
    let r = c
        .send(
            Method::POST,
            "/api/v1/sites",
            Some(c.admin.as_str()),
            Body::from(at_limit),
        )
        .await;
    r.ok(StatusCode::CREATED);

    // ...one byte more is not, whatever the route.
    let subnets: Vec<String> = (0..5000)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let big = json!({"name": "lyon", "subnets": subnets}).to_string();
    assert!(big.len() > 64 << 10);
    c.send(
        Method::POST,
        "/api/v1/sites",
        Some(c.admin.as_str()),
        Body::from(big),
    )
    .await
    .err_naming(StatusCode::PAYLOAD_TOO_LARGE, &["65536"]);
    let mut over = json!({"name": "lyon"}).to_string();
    over.push_str(&" ".repeat((64 << 10) + 1 - over.len()));
    c.send(
        Method::POST,
        "/api/v1/sites",
        Some(c.admin.as_str()),
        Body::from(over),
    )
    .await
    .err(StatusCode::PAYLOAD_TOO_LARGE);
    // A chunked body with no length announced is counted as it arrives.
    let mut streamed = json!({"name": "nice"}).to_string();
    streamed.push_str(&" ".repeat(100_000));
    c.send(
        Method::POST,
        "/api/v1/sites",
        Some(c.admin.as_str()),
        chunked(streamed.as_bytes(), 8192),
    )
    .await
    .err(StatusCode::PAYLOAD_TOO_LARGE);
    let names: Vec<Value> = c
        .list_sites()
        .await
        .ok(StatusCode::OK)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("paris")]);

    // Agent routes have the same limit.
    let mut enroll = json!({
        "enroll_token": c.enroll_token, "hostname": "pc", "os": "linux"
    })
    .to_string();
    enroll.push_str(&" ".repeat(70_000));
    c.send(
        Method::POST,
        "/api/v1/agent/enroll",
        None,
        Body::from(enroll),
    )
    .await
    .err(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(c.list_computers().await.ok(StatusCode::OK), json!([]));
}

// ---------------------------------------------------------------------------
// Malformed requests that must still answer a JSON error
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_body_with_more_than_one_json_value_is_refused() {
    let c = Central::start().await;
    for body in [
        r#"{"name": "paris"} trailing"#,
        r#"{"name": "paris"}{"name": "lyon"}"#,
    ] {
        c.send(
            Method::POST,
            "/api/v1/sites",
            Some(c.admin.as_str()),
            Body::from(body),
        )
        .await
        .err(StatusCode::BAD_REQUEST);
    }
    assert_eq!(c.list_sites().await.ok(StatusCode::OK), json!([]));
}

#[tokio::test]
async fn an_undecodable_path_parameter_is_a_json_error() {
    let c = Central::start().await;
    let agent = c.given_agent("pc1", &[]).await;
    for path in [
        "/api/v1/packages/%FF",
        "/api/v1/packages/%FF/info",
        "/api/v1/packages/%FF/stats",
    ] {
        let r = c.admin_get(path).await;
        assert!(
            matches!(r.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        r.err(r.status);
    }
    let r = c.agent_fragment(&agent, "%FF", "1").await;
    assert!(
        matches!(r.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
        "{} {}",
        r.status,
        r.text()
    );
    r.err(r.status);
}

/// Enrollment names a computer `<hostname slug>-<6 random hex digits>`, so two
/// agents with the same host name (cloned images, "ubuntu", "localhost") draw the
/// same id once in 16.7 million pairs; among 5 000 such machines that is more
/// likely than not. The store must refuse the second record rather than replace
/// the first and hand both agents one identity.
#[test]
fn the_store_never_merges_two_computers_that_draw_the_same_id() {
    use sitecast_central::store::{ComputerRecord, SledStore, Store};
    use sitecast_central::tokens;

    let tmp = tempfile::tempdir().unwrap();
    let store = SledStore::open(&tmp.path().join("db")).unwrap();
    let record = |hostname: &str| ComputerRecord {
        id: "ubuntu-0a1b2c".parse().unwrap(),
        hostname: hostname.to_owned(),
        os: "linux".to_owned(),
        addresses: vec!["10.1.0.5".parse().unwrap()],
        enrolled_at: ts(T0),
        last_seen: Some(ts(T0)),
        tags: Vec::new(),
        macs: vec![],
    };
    store
        .add_computer(&record("first"), tokens::digest("token-of-the-first"))
        .unwrap();
    let second = store.add_computer(&record("second"), tokens::digest("token-of-the-second"));
    assert!(
        second.is_err(),
        "a second computer with an existing id was accepted"
    );
    let id = record("first").id;
    assert_eq!(store.computer(&id).unwrap().unwrap().hostname, "first");
    assert_eq!(store.computers().unwrap().len(), 1);
    assert!(store
        .token_owner(tokens::digest("token-of-the-second"))
        .unwrap()
        .is_none());
}

// ---------------------------------------------------------------------------
// Validation (OCS "Validate success", "Unaffect not notified", "Validate all")
// ---------------------------------------------------------------------------

/// One agent per status a package's statistics can show after a deployment.
struct EveryStatus {
    package: String,
    waiting: Agent,
    notified: Agent,
    success: Agent,
    already: Agent,
    failed: Agent,
}

impl Central {
    async fn validate(&self, id: &str, body: Value) -> Reply {
        self.admin_post(&format!("/api/v1/packages/{id}/validate"), &body)
            .await
    }

    /// A package assigned to five computers, one in each of `WAITING_NOTIFICATION`
    /// (never polled), `NOTIFIED`, `SUCCESS`, `ERR_ALREADY_SETUP` and `ERR_EXIT_CODE`.
    async fn given_every_status(&self) -> EveryStatus {
        let pkg = self.given_command_package("app", "5").await;
        let package = pkg["id"].as_str().unwrap().to_owned();
        let waiting = self.given_agent("pc-waiting", &["10.1.0.1"]).await;
        let notified = self.given_agent("pc-notified", &["10.1.0.2"]).await;
        let success = self.given_agent("pc-success", &["10.1.0.3"]).await;
        let already = self.given_agent("pc-already", &["10.1.0.4"]).await;
        let failed = self.given_agent("pc-failed", &["10.1.0.5"]).await;
        self.assign(&package, json!({"all": true}))
            .await
            .ok(StatusCode::OK);
        for (agent, report) in [
            (&notified, None),
            (
                &success,
                Some(json!({"code": "SUCCESS", "exit_code": 0, "output": "ok"})),
            ),
            (&already, Some(json!({"code": "ERR_ALREADY_SETUP"}))),
            (
                &failed,
                Some(json!({"code": "ERR_EXIT_CODE", "exit_code": 3, "output": "no"})),
            ),
        ] {
            self.poll(agent, &[]).await.ok(StatusCode::OK);
            if let Some(body) = report {
                self.report(agent, &package, body).await.ok(StatusCode::OK);
            }
        }
        EveryStatus {
            package,
            waiting,
            notified,
            success,
            already,
            failed,
        }
    }
}

#[tokio::test]
async fn stats_list_the_computers_in_each_status() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let stats = c.stats(&s.package).await;
    assert_eq!(
        stats["counts"],
        json!({"WAITING_NOTIFICATION": 1, "NOTIFIED": 1, "SUCCESS": 1,
               "ERR_ALREADY_SETUP": 1, "ERR_EXIT_CODE": 1})
    );
    assert_eq!(
        stats["by_status"],
        json!({
            "WAITING_NOTIFICATION": [s.waiting.id],
            "NOTIFIED": [s.notified.id],
            "SUCCESS": [s.success.id],
            "ERR_ALREADY_SETUP": [s.already.id],
            "ERR_EXIT_CODE": [s.failed.id],
        })
    );
    assert_eq!(stats["computers"].as_array().unwrap().len(), 5);

    // Several computers in one status are all listed; no assignment, no lists.
    let other = c.given_command_package("other", "5").await;
    let other = other["id"].as_str().unwrap();
    assert_eq!(c.stats(other).await["by_status"], json!({}));
    c.assign(other, json!({"all": true}))
        .await
        .ok(StatusCode::OK);
    let listed = c.stats(other).await;
    assert_eq!(
        ids(&listed["by_status"]["WAITING_NOTIFICATION"]),
        sorted(&[
            &s.waiting.id,
            &s.notified.id,
            &s.success.id,
            &s.already.id,
            &s.failed.id
        ])
    );
}

#[tokio::test]
async fn validate_success_clears_only_computers_where_the_package_is_in_place() {
    let mut c = Central::start().await;
    let s = c.given_every_status().await;
    let r = c
        .validate(&s.package, json!({"what": "success"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        r,
        json!({"package_id": s.package, "removed": {"SUCCESS": 1, "ERR_ALREADY_SETUP": 1},
               "remaining": 3})
    );
    let stats = c.stats(&s.package).await;
    assert_eq!(
        stats["counts"],
        json!({"WAITING_NOTIFICATION": 1, "NOTIFIED": 1, "ERR_EXIT_CODE": 1})
    );
    assert_eq!(
        stats["by_status"],
        json!({
            "WAITING_NOTIFICATION": [s.waiting.id],
            "NOTIFIED": [s.notified.id],
            "ERR_EXIT_CODE": [s.failed.id],
        })
    );
    let listed: Vec<&str> = stats["computers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["computer_id"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&s.success.id.as_str()), "{stats}");
    assert!(!listed.contains(&s.already.id.as_str()), "{stats}");

    // The waiting computer still gets the package; validating again removes nothing.
    let poll = c.poll(&s.waiting, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.package.as_str());
    let again = c
        .validate(&s.package, json!({"what": "success"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        again,
        json!({"package_id": s.package, "removed": {}, "remaining": 3})
    );

    // What was acknowledged survives a restart.
    c.restart_with_db(|_| {});
    assert_eq!(
        c.stats(&s.package).await["counts"],
        json!({"NOTIFIED": 2, "ERR_EXIT_CODE": 1})
    );
}

#[tokio::test]
async fn validate_not_notified_unassigns_computers_that_never_polled() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let r = c
        .validate(&s.package, json!({"what": "not_notified"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        r,
        json!({"package_id": s.package, "removed": {"WAITING_NOTIFICATION": 1},
               "remaining": 4})
    );
    let stats = c.stats(&s.package).await;
    assert_eq!(
        stats["counts"],
        json!({"NOTIFIED": 1, "SUCCESS": 1, "ERR_ALREADY_SETUP": 1, "ERR_EXIT_CODE": 1})
    );
    assert_eq!(stats["by_status"].get("WAITING_NOTIFICATION"), None);

    // The unassigned computer will not get the package; the notified one still does.
    assert_eq!(
        c.poll(&s.waiting, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
    let poll = c.poll(&s.notified, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.package.as_str());
}

#[tokio::test]
async fn validate_all_is_success_plus_not_notified() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let r = c
        .validate(&s.package, json!({"what": "all"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        r,
        json!({"package_id": s.package,
               "removed": {"WAITING_NOTIFICATION": 1, "SUCCESS": 1, "ERR_ALREADY_SETUP": 1},
               "remaining": 2})
    );
    let stats = c.stats(&s.package).await;
    assert_eq!(stats["counts"], json!({"NOTIFIED": 1, "ERR_EXIT_CODE": 1}));
    assert_eq!(
        stats["by_status"],
        json!({"NOTIFIED": [s.notified.id], "ERR_EXIT_CODE": [s.failed.id]})
    );
    assert_eq!(
        c.poll(&s.waiting, &[]).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
}

#[tokio::test]
async fn a_validated_computer_can_be_assigned_again_and_starts_waiting() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    c.validate(&s.package, json!({"what": "all"}))
        .await
        .ok(StatusCode::OK);
    c.set_time(T1);
    let r = c
        .assign(
            &s.package,
            json!({"computers": [s.success.id, s.waiting.id, s.notified.id]}),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&r["assigned"]), sorted(&[&s.success.id, &s.waiting.id]));
    assert_eq!(ids(&r["unchanged"]), sorted(&[&s.notified.id]));
    for agent in [&s.success, &s.waiting] {
        let st = c.stat_of(&s.package, agent).await;
        assert_eq!(st["status"], "WAITING_NOTIFICATION", "{st}");
        assert_eq!(st["exit_code"], Value::Null, "{st}");
        assert_eq!(st["output"], Value::Null, "{st}");
        assert_eq!(time_of(&st["updated_at"]), ts(T1));
    }
    let poll = c.poll(&s.success, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.package.as_str());
    assert_eq!(
        c.stat_of(&s.package, &s.success).await["status"],
        "NOTIFIED"
    );
}

#[tokio::test]
async fn bad_validations_name_what_and_change_nothing() {
    let c = Central::start().await;
    let s = c.given_every_status().await;
    let before = c.stats(&s.package).await;

    c.validate(&s.package, json!({"what": "everything"}))
        .await
        .err_naming(
            StatusCode::BAD_REQUEST,
            &["what", "everything", "success", "not_notified", "all"],
        );
    c.validate(&s.package, json!({"what": "SUCCESS"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["what", "SUCCESS"]);
    c.validate(&s.package, json!({}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["what"]);

    // An unknown package is 404, naming it.
    c.validate("no-such-package", json!({"what": "all"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["no-such-package"]);

    // An agent's token is refused on this admin route; no token is 401.
    let path = format!("/api/v1/packages/{}/validate", s.package);
    let body = json!({"what": "all"});
    c.send_json(Method::POST, &path, Some(s.success.token.as_str()), &body)
        .await
        .err(StatusCode::FORBIDDEN);
    c.send_json(Method::POST, &path, None, &body)
        .await
        .err(StatusCode::UNAUTHORIZED);

    assert_eq!(c.stats(&s.package).await, before);
}

#[tokio::test]
async fn a_package_can_carry_its_uninstall_procedure() {
    let c = Central::start().await;
    let pkg = c
        .upload(
            &[
                ("name", "tool"),
                ("version", "2"),
                ("action", "execute"),
                ("command", "install-tool"),
                ("uninstall_command", "remove-tool --quiet"),
                ("uninstall_success_exit_codes", "0,3010"),
            ],
            None,
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(
        pkg["uninstall"],
        json!({"command": "remove-tool --quiet", "success_exit_codes": [0, 3010]})
    );
    let pid = pkg["id"].as_str().unwrap();
    // The procedure is in the signed info, which is what agents act on.
    let public = sitecast_common::signing::verifying_key_from_pem(
        &std::fs::read_to_string(c.layout.signing_pub()).unwrap(),
    )
    .unwrap();
    let info =
        sitecast_common::signing::verify_info(&c.package_info(pid).await.body, &[public]).unwrap();
    let uninstall = info.uninstall().unwrap();
    assert_eq!(uninstall.command, "remove-tool --quiet");
    assert_eq!(uninstall.success_exit_codes, vec![0, 3010]);

    c.upload(
        &[
            ("name", "tool"),
            ("version", "3"),
            ("action", "execute"),
            ("command", "x"),
            ("uninstall_command", "y"),
            ("uninstall_success_exit_codes", "0,ok"),
        ],
        None,
    )
    .await
    .err_naming(
        StatusCode::BAD_REQUEST,
        &["uninstall_success_exit_codes", "ok"],
    );
    c.upload(
        &[
            ("name", "tool"),
            ("version", "4"),
            ("action", "execute"),
            ("command", "x"),
            ("uninstall_success_exit_codes", "0"),
        ],
        None,
    )
    .await
    .err_naming(
        StatusCode::BAD_REQUEST,
        &["uninstall_success_exit_codes", "uninstall_command"],
    );
}

/// OCS's notify options: what the user is told before the action, the countdown,
/// whether the user may abort or delay, and the text after a success; shown on the
/// package and signed into the info, which is what agents act on.
#[tokio::test]
async fn a_package_can_tell_the_user_before_and_after_its_action() {
    let c = Central::start().await;
    let pkg = c
        .upload(
            &[
                ("name", "firefox"),
                ("version", "128"),
                ("action", "execute"),
                ("command", "install-firefox"),
                ("notify_text", "Firefox is updated.\nSave your work."),
                ("notify_countdown", "5m"),
                ("notify_can_abort", "true"),
                ("notify_can_delay", "false"),
                ("done_action_text", "Firefox 128 is installed."),
            ],
            None,
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(
        pkg["notify"],
        json!({"text": "Firefox is updated.\nSave your work.", "countdown_s": 300,
               "can_abort": true, "can_delay": false})
    );
    assert_eq!(pkg["done_action_text"], "Firefox 128 is installed.");
    let pid = pkg["id"].as_str().unwrap();
    assert_eq!(c.show_package(pid).await.ok(StatusCode::OK), pkg);
    let info =
        sitecast_common::signing::verify_info(&c.package_info(pid).await.body, &[c.trusted_key()])
            .unwrap();
    let notify = info.notify().unwrap();
    assert_eq!(notify.text, "Firefox is updated.\nSave your work.");
    assert_eq!(notify.countdown_s, 300);
    assert!(notify.can_abort);
    assert!(!notify.can_delay);
    assert_eq!(info.done_action_text(), Some("Firefox 128 is installed."));

    // A text alone: no countdown, nothing but continue; a done text alone.
    let plain = c
        .given_package(
            &[
                ("name", "tool"),
                ("version", "1"),
                ("action", "execute"),
                ("command", "x"),
                ("notify_text", "Installing tool"),
            ],
            None,
        )
        .await;
    assert_eq!(
        plain["notify"],
        json!({"text": "Installing tool", "countdown_s": 0, "can_abort": false, "can_delay": false})
    );
    assert_eq!(plain["done_action_text"], Value::Null);
    let done = c
        .given_package(
            &[
                ("name", "tool"),
                ("version", "2"),
                ("action", "execute"),
                ("command", "x"),
                ("done_action_text", "Tool 2 is here"),
            ],
            None,
        )
        .await;
    assert_eq!(done["notify"], Value::Null);
    assert_eq!(done["done_action_text"], "Tool 2 is here");
    // Without any, both are null.
    let none = c.given_command_package("quiet", "5").await;
    assert_eq!(none["notify"], Value::Null);
    assert_eq!(none["done_action_text"], Value::Null);
}

#[tokio::test]
async fn bad_notify_parameters_name_the_field_or_token() {
    let c = Central::start().await;
    let long = "x".repeat(4097);
    type Params<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Params, Vec<&str>)> = vec![
        (
            vec![("notify_countdown", "5m")],
            vec!["notify_countdown", "notify_text"],
        ),
        (
            vec![("notify_can_abort", "true")],
            vec!["notify_can_abort", "notify_text"],
        ),
        (
            vec![("notify_can_delay", "true")],
            vec!["notify_can_delay", "notify_text"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_countdown", "5 parsecs")],
            vec!["notify_countdown", "5 parsecs"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_countdown", "30")],
            vec!["notify_countdown", "'30'"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_countdown", "2d")],
            vec!["notify_countdown", "2d", "longer than a day"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_can_abort", "yes")],
            vec!["notify_can_abort", "'yes'"],
        ),
        (
            vec![("notify_text", "hi"), ("notify_can_delay", "1")],
            vec!["notify_can_delay", "'1'"],
        ),
        (vec![("notify_text", "  ")], vec!["notify_text", "empty"]),
        (
            vec![("notify_text", "ring\u{7}")],
            vec!["notify_text", "control"],
        ),
        (
            vec![("notify_text", long.as_str())],
            vec!["notify_text", "4096"],
        ),
        (
            vec![("done_action_text", "a\rb")],
            vec!["done_action_text", "control"],
        ),
        (
            vec![("done_action_text", long.as_str())],
            vec!["done_action_text", "4096"],
        ),
        (
            vec![("done_action_text", "")],
            vec!["done_action_text", "empty"],
        ),
    ];
    for (extra, words) in cases {
        let mut params = vec![
            ("name", "tool"),
            ("version", "1"),
            ("action", "execute"),
            ("command", "x"),
        ];
        params.extend(extra.iter().copied());
        c.upload(&params, Some(chunked(&data(10), 5)))
            .await
            .err_naming(StatusCode::BAD_REQUEST, &words);
    }
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
}

#[tokio::test]
async fn final_reports_carry_the_bytes_per_source_and_stats_sum_them_per_site() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.1:8080")
        .await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    let id = pkg["id"].as_str().unwrap();
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.9.0.5"]).await;
    c.assign(id, json!({"all": true})).await.ok(StatusCode::OK);
    c.poll(&a, &[]).await.ok(StatusCode::OK);
    c.poll(&b, &[]).await.ok(StatusCode::OK);

    let reply = c
        .report(
            &a,
            id,
            json!({"code": "SUCCESS", "sources": [{"relay_id": relay, "bytes": 100}]}),
        )
        .await
        .ok(StatusCode::OK);
    let from_relay = json!([{"relay_id": relay, "bytes": 100}]);
    assert_eq!(reply["sources"], from_relay);
    c.report(
        &b,
        id,
        json!({"code": "SUCCESS", "sources": [{"relay_id": null, "bytes": 100}]}),
    )
    .await
    .ok(StatusCode::OK);
    // A report without sources (older agents, progress) keeps what was reported.
    c.report(&a, id, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.stat_of(id, &a).await["sources"], from_relay);
    assert_eq!(
        c.stat_of(id, &b).await["sources"],
        json!([{"relay_id": null, "bytes": 100}])
    );
    assert_eq!(
        c.stats(id).await["sites"],
        json!([
            {"site": "paris", "computers": 1, "bytes_from_relays": 100,
             "bytes_from_central": 0, "relays": {relay.as_str(): 1}},
            {"site": null, "computers": 1, "bytes_from_relays": 0,
             "bytes_from_central": 100, "relays": {}},
        ])
    );

    // A source that is not a relay id is refused, naming the field.
    c.report(
        &a,
        id,
        json!({"code": "SUCCESS", "sources": [{"relay_id": "../x", "bytes": 1}]}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["sources"]);
}

// ---------------------------------------------------------------------------
// A computer's packages (OCO's computer page, "Remove assignment")
// ---------------------------------------------------------------------------

/// Two computers and three packages: on `pc1`, `zlib 1` installed (`SUCCESS`),
/// `app 1` failed (`ERR_EXIT_CODE`) and `app 2` notified; on `pc2`, `zlib 1`
/// already set up and `app 1` installed.
struct TwoComputers {
    pc1: Agent,
    pc2: Agent,
    zlib: String,
    app1: String,
    app2: String,
}

impl Central {
    async fn show_computer(&self, id: &str) -> Reply {
        self.admin_get(&format!("/api/v1/computers/{id}")).await
    }

    async fn remove_assignment(&self, computer: &str, package: &str) -> Reply {
        self.admin_delete(&format!("/api/v1/computers/{computer}/packages/{package}"))
            .await
    }

    async fn given_versioned_package(&self, name: &str, version: &str) -> String {
        let p = self
            .given_package(
                &[
                    ("name", name),
                    ("version", version),
                    ("action", "execute"),
                    ("command", "echo hi"),
                ],
                None,
            )
            .await;
        p["id"].as_str().unwrap().to_owned()
    }

    async fn given_two_computers(&self) -> TwoComputers {
        let pc1 = self.given_agent("pc1", &["10.1.0.1"]).await;
        let pc2 = self.given_agent("pc2", &["10.1.0.2"]).await;
        // Created out of name order, so the listing's order is the server's doing.
        let zlib = self.given_versioned_package("zlib", "1").await;
        let app2 = self.given_versioned_package("app", "2").await;
        let app1 = self.given_versioned_package("app", "1").await;
        for p in [&zlib, &app1] {
            self.assign(p, json!({"all": true}))
                .await
                .ok(StatusCode::OK);
        }
        self.assign(&app2, json!({"computers": [pc1.id]}))
            .await
            .ok(StatusCode::OK);
        self.set_time(T1);
        for (agent, package, body) in [
            (&pc1, &zlib, json!({"code": "SUCCESS", "exit_code": 0})),
            (
                &pc1,
                &app1,
                json!({"code": "ERR_EXIT_CODE", "exit_code": 3}),
            ),
            (&pc2, &zlib, json!({"code": "ERR_ALREADY_SETUP"})),
            (&pc2, &app1, json!({"code": "SUCCESS", "exit_code": 0})),
        ] {
            self.poll(agent, &[]).await.ok(StatusCode::OK);
            self.report(agent, package, body).await.ok(StatusCode::OK);
        }
        TwoComputers {
            pc1,
            pc2,
            zlib,
            app1,
            app2,
        }
    }
}

/// `(package_id, status, installed)` of each package a computer shows, in order.
fn shown(detail: &Value) -> Vec<(String, String, bool)> {
    detail["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no packages: {detail}"))
        .iter()
        .map(|p| {
            (
                p["package_id"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
                p["installed"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn line(package: &str, status: &str, installed: bool) -> (String, String, bool) {
    (package.to_owned(), status.to_owned(), installed)
}

#[tokio::test]
async fn a_computer_shows_its_packages_by_name_and_version_and_which_are_installed() {
    let c = Central::start().await;
    let s = c.given_two_computers().await;
    let detail = c.show_computer(&s.pc1.id).await.ok(StatusCode::OK);

    // The computer's fields are those of the listing.
    let listed = c.list_computers().await.ok(StatusCode::OK);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == s.pc1.id.as_str())
        .unwrap()
        .clone();
    let mut fields = detail.as_object().unwrap().clone();
    fields.remove("packages");
    fields.remove("jobs");
    assert_eq!(Value::Object(fields), entry);

    assert_eq!(
        shown(&detail),
        vec![
            line(&s.app1, "ERR_EXIT_CODE", false),
            line(&s.app2, "NOTIFIED", false),
            line(&s.zlib, "SUCCESS", true),
        ]
    );
    let failed = &detail["packages"][0];
    assert_eq!(failed["name"], "app");
    assert_eq!(failed["version"], "1");
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(time_of(&failed["updated_at"]), ts(T1));
    assert_eq!(detail["packages"][1]["version"], "2");
    assert_eq!(detail["packages"][1]["exit_code"], Value::Null);
    assert_eq!(detail["packages"][2]["name"], "zlib");
    assert_eq!(detail["packages"][2]["exit_code"], 0);

    // ERR_ALREADY_SETUP counts as installed.
    assert_eq!(
        shown(&c.show_computer(&s.pc2.id).await.ok(StatusCode::OK)),
        vec![
            line(&s.app1, "SUCCESS", true),
            line(&s.zlib, "ERR_ALREADY_SETUP", true),
        ]
    );

    // A computer with nothing assigned shows an empty list.
    let pc3 = c.given_agent("pc3", &[]).await;
    assert_eq!(
        c.show_computer(&pc3.id).await.ok(StatusCode::OK)["packages"],
        json!([])
    );
}

#[tokio::test]
async fn removing_an_assignment_forgets_it_for_that_computer_only() {
    let mut c = Central::start().await;
    let s = c.given_two_computers().await;
    let pc2_before = c.show_computer(&s.pc2.id).await.ok(StatusCode::OK);

    let r = c.remove_assignment(&s.pc1.id, &s.zlib).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(r.body.is_empty(), "{}", r.text());

    assert_eq!(
        shown(&c.show_computer(&s.pc1.id).await.ok(StatusCode::OK)),
        vec![
            line(&s.app1, "ERR_EXIT_CODE", false),
            line(&s.app2, "NOTIFIED", false),
        ]
    );
    let stats = c.stats(&s.zlib).await;
    assert_eq!(stats["counts"], json!({"ERR_ALREADY_SETUP": 1}));
    assert_eq!(stats["by_status"], json!({"ERR_ALREADY_SETUP": [s.pc2.id]}));
    assert_eq!(stats["computers"].as_array().unwrap().len(), 1);
    // The other computer, and the computer's other assignments, are untouched.
    assert_eq!(
        c.show_computer(&s.pc2.id).await.ok(StatusCode::OK),
        pc2_before
    );
    assert_eq!(
        c.stats(&s.app1).await["counts"],
        json!({"SUCCESS": 1, "ERR_EXIT_CODE": 1})
    );

    // Removed twice: the assignment is named as missing.
    c.remove_assignment(&s.pc1.id, &s.zlib)
        .await
        .err_naming(StatusCode::NOT_FOUND, &["assignment", &s.zlib, &s.pc1.id]);

    // An unfinished assignment removed is no longer handed to the agent.
    let poll = c.poll(&s.pc1, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["id"], s.app2.as_str(), "{poll}");
    let r = c.remove_assignment(&s.pc1.id, &s.app2).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let poll = c.poll(&s.pc1, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"], json!([]), "{poll}");

    // Both trees forgot it, durably; the computer can be assigned the package again.
    let (pc1, zlib) = (s.pc1.id.clone(), s.zlib.clone());
    c.restart_with_db(|db| {
        let installed = db.open_tree("installed").unwrap();
        let by_package = db.open_tree("jobs_by_package").unwrap();
        let by_computer = db.open_tree("jobs_by_computer").unwrap();
        let jobs = db.open_tree("jobs").unwrap();
        assert!(installed.get(format!("{pc1}/{zlib}")).unwrap().is_none());
        assert_eq!(by_package.scan_prefix(format!("{zlib}/{pc1}/")).count(), 0);
        // Every index entry left names a job that exists, and app1's is among them.
        let left: Vec<Value> = by_computer
            .scan_prefix(format!("{pc1}/"))
            .map(|kv| {
                let (_, key) = kv.unwrap();
                serde_json::from_slice(&jobs.get(key).unwrap().unwrap()).unwrap()
            })
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["package_id"], s.app1.as_str());
    });
    assert_eq!(
        shown(&c.show_computer(&s.pc1.id).await.ok(StatusCode::OK)),
        vec![line(&s.app1, "ERR_EXIT_CODE", false)]
    );
    let again = c
        .assign(&s.zlib, json!({"computers": [s.pc1.id]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(again["assigned"], json!([s.pc1.id]));
}

#[tokio::test]
async fn computer_routes_name_what_is_missing_and_refuse_agents() {
    let c = Central::start().await;
    let s = c.given_two_computers().await;
    for id in ["pc-gone", "Not%20An%20Id"] {
        c.show_computer(id).await.err(StatusCode::NOT_FOUND);
        c.remove_assignment(id, &s.zlib)
            .await
            .err(StatusCode::NOT_FOUND);
    }
    c.show_computer("pc-gone")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["computer", "pc-gone"]);
    c.remove_assignment("pc-gone", &s.zlib)
        .await
        .err_naming(StatusCode::NOT_FOUND, &["computer", "pc-gone"]);
    c.remove_assignment(&s.pc1.id, "no-such-package")
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package", "no-such-package"]);

    // Admin routes: an agent's token, even the computer's own, is refused.
    for agent in [&s.pc1, &s.pc2] {
        let token = Some(agent.token.as_str());
        c.send(
            Method::GET,
            &format!("/api/v1/computers/{}", s.pc1.id),
            token,
            Body::empty(),
        )
        .await
        .err_naming(StatusCode::FORBIDDEN, &["admin"]);
        c.send(
            Method::DELETE,
            &format!("/api/v1/computers/{}/packages/{}", s.pc1.id, s.zlib),
            token,
            Body::empty(),
        )
        .await
        .err_naming(StatusCode::FORBIDDEN, &["admin"]);
    }
    c.send(
        Method::DELETE,
        &format!("/api/v1/computers/{}/packages/{}", s.pc1.id, s.zlib),
        None,
        Body::empty(),
    )
    .await
    .err(StatusCode::UNAUTHORIZED);
    // Nothing was removed.
    assert_eq!(
        shown(&c.show_computer(&s.pc1.id).await.ok(StatusCode::OK)).len(),
        3
    );
    assert_eq!(
        c.stats(&s.zlib).await["computers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

// ---------------------------------------------------------------------------
// Job containers (SPEC "Jobs")
// ---------------------------------------------------------------------------

impl Central {
    async fn create_container(&self, body: Value) -> Reply {
        self.admin_post("/api/v1/containers", &body).await
    }

    async fn given_container(&self, body: Value) -> Value {
        self.create_container(body).await.ok(StatusCode::CREATED)
    }

    async fn show_container(&self, id: &str) -> Value {
        self.admin_get(&format!("/api/v1/containers/{id}"))
            .await
            .ok(StatusCode::OK)
    }

    /// A poll arriving from `peer`, as the server's socket would tell it.
    async fn poll_from(&self, agent: &Agent, peer: &str) -> Value {
        let addr = std::net::SocketAddr::new(peer.parse().unwrap(), 40000);
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/agent/poll")
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {}", agent.token))
            // A header claiming another address changes nothing.
            .header("x-forwarded-for", "127.1.0.9")
            .extension(axum::extract::ConnectInfo(addr))
            .body(Body::from(json!({"addresses": []}).to_string()))
            .unwrap();
        self.call(req).await.ok(StatusCode::OK)
    }

    /// Ids and kinds of the packages a poll hands out, in order.
    async fn handed(&self, agent: &Agent) -> Vec<(String, String)> {
        handed(&self.poll(agent, &[]).await.ok(StatusCode::OK))
    }

    fn purge(&self) -> Vec<String> {
        api::purge_containers(self.state.as_ref().unwrap())
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// A package with an uninstall procedure.
    async fn given_uninstallable(&self, name: &str, version: &str) -> String {
        let p = self
            .given_package(
                &[
                    ("name", name),
                    ("version", version),
                    ("action", "execute"),
                    ("command", "echo install"),
                    ("uninstall_command", "echo uninstall"),
                ],
                None,
            )
            .await;
        p["id"].as_str().unwrap().to_owned()
    }
}

fn handed(poll: &Value) -> Vec<(String, String)> {
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

fn install(id: &str) -> (String, String) {
    (id.to_owned(), "install".to_owned())
}

fn uninstall(id: &str) -> (String, String) {
    (id.to_owned(), "uninstall".to_owned())
}

/// `(package_id, status)` of a container's jobs on one computer, in order.
fn jobs_of(container: &Value, computer: &str) -> Vec<(String, String)> {
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

fn job(id: &str, status: &str) -> (String, String) {
    (id.to_owned(), status.to_owned())
}

#[tokio::test]
async fn containers_are_created_listed_shown_and_deleted() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.2.0.5"]).await;
    let p1 = c.given_command_package("first", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p2 = c.given_command_package("second", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = c
        .given_container(json!({
            "name": "Office rollout",
            "description": "first then second",
            "packages": [p1, p2],
            "all": true,
            "start_at": "2025-03-01 10:00",
            "end_at": "2025-03-02T00:00:00Z",
            "priority": 3,
            "ip_ranges": "10.0.0.0/8",
            "time_frames": "SAT 0:00-23:59",
            "sequence": "abort_after_failed",
            "retries": 2,
            "retry_backoff": "10m",
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("office-rollout-"), "{id}");
    assert_eq!(created["name"], "Office rollout");
    assert_eq!(created["description"], "first then second");
    // A local time is read in central.toml's time zone (UTC here).
    assert_eq!(created["start_at"], "2025-03-01T10:00:00Z");
    assert_eq!(created["end_at"], "2025-03-02T00:00:00Z");
    assert_eq!(created["priority"], 3);
    assert_eq!(created["ip_ranges"], "10.0.0.0/8");
    assert_eq!(created["time_frames"], "SAT 0:00-23:59");
    assert_eq!(created["sequence"], "abort_after_failed");
    assert_eq!(created["retries"], 2);
    assert_eq!(created["retry_backoff"], "10m");
    assert_eq!(created["auto_uninstall"], true);
    assert_eq!(created["state"], "waiting");
    assert_eq!(created["counts"], json!({"WAITING_NOTIFICATION": 4}));
    assert_eq!(
        created["runtimes"],
        json!({"total_s": null, "effective_s": null, "finished": false})
    );
    for agent in [&a, &b] {
        assert_eq!(
            jobs_of(&created, &agent.id),
            vec![
                job(&p1, "WAITING_NOTIFICATION"),
                job(&p2, "WAITING_NOTIFICATION")
            ]
        );
    }
    let first = &created["jobs"][0];
    assert_eq!(first["order"], 1);
    assert_eq!(first["kind"], "install");
    assert_eq!(first["package_name"], "first");
    assert_eq!(first["package_version"], "1");
    assert_eq!(first["attempts"], 0);

    // Listed without jobs; shown with them, as created.
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0].get("jobs").is_none(), "{list}");
    assert_eq!(c.show_container(&id).await, created);

    // Deleted: gone, and its jobs with it.
    let r = c.admin_delete(&format!("/api/v1/containers/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    c.admin_get(&format!("/api/v1/containers/{id}"))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["container", &id]);
    c.admin_delete(&format!("/api/v1/containers/{id}"))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["container", &id]);
    c.set_time(T1);
    assert_eq!(c.handed(&a).await, vec![]);
    assert_eq!(c.stats(&p1).await["counts"], json!({}));
    assert_eq!(
        c.show_computer(&a.id).await.ok(StatusCode::OK)["jobs"],
        json!([])
    );
}

#[tokio::test]
async fn bad_containers_are_refused_naming_the_field_or_token() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let base = json!({"name": "n", "packages": [p], "computers": [a.id]});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (body, words) in [
        (
            with("ip_ranges", json!("10.0.0.0/33")),
            vec!["ip_ranges", "10.0.0.0/33"],
        ),
        (
            with("ip_ranges", json!("10.0.0.0/8,nonsense")),
            vec!["ip_ranges", "nonsense"],
        ),
        (
            with("time_frames", json!("MON 25:00-26:00")),
            vec!["time_frames", "25:00"],
        ),
        (
            with("time_frames", json!("XYZ 1:00-2:00")),
            vec!["time_frames", "XYZ"],
        ),
        (
            with("start_at", json!("tomorrow")),
            vec!["start_at", "tomorrow"],
        ),
        (
            with("end_at", json!("2025-02-30 10:00")),
            vec!["end_at", "2025-02-30"],
        ),
        (
            with("end_at", json!("2025-03-01T08:00:00Z")),
            vec!["end_at", "after start_at"],
        ),
        (with("sequence", json!("abort")), vec!["sequence", "abort"]),
        (with("retries", json!(1000)), vec!["retries", "1000"]),
        (
            with("retry_backoff", json!("soon")),
            vec!["retry_backoff", "soon"],
        ),
        (with("name", json!("  ")), vec!["name"]),
        (with("packages", json!([])), vec!["packages", "empty"]),
        (with("packages", json!([p, p])), vec!["packages", "twice"]),
        (with("wake_on_lan", json!(true)), vec!["wake_on_lan"]),
        (
            with("all", json!(true)),
            vec!["computers", "does not combine"],
        ),
        (
            json!({"name": "n", "packages": [p], "subnet": "10.9.0.0/16"}),
            vec!["computers", "no computer"],
        ),
        (
            json!({"name": "n", "packages": [p], "subnet": "10.9.0.0/99"}),
            vec!["subnet", "10.9.0.0/99"],
        ),
        (
            with("uninstall", json!(true)),
            vec!["packages", &p, "uninstall"],
        ),
    ] {
        c.create_container(body.clone())
            .await
            .err_naming(StatusCode::BAD_REQUEST, &words);
    }
    c.create_container(with("packages", json!(["nope"])))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package", "nope"]);
    c.create_container(with("computers", json!(["pc-gone"])))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["computer", "pc-gone"]);
    for route in ["/api/v1/containers/nope", "/api/v1/containers/nope/retry"] {
        let r = if route.ends_with("retry") {
            c.admin_post(route, &json!({})).await
        } else {
            c.admin_get(route).await
        };
        r.err_naming(StatusCode::NOT_FOUND, &["container", "nope"]);
    }
    // Agents may not touch containers.
    let r = c
        .send(
            Method::GET,
            "/api/v1/containers",
            Some(a.token.as_str()),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Nothing was created by any of it.
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn a_poll_honours_start_end_address_ranges_and_time_frames() {
    let c = Central::start().await;
    let site1 = c.given_agent("pc-1", &["127.1.0.5"]).await;
    let site2 = c.given_agent("pc-2", &["127.2.0.5"]).await;
    let p = c.package_id("app").await;

    // Ranges are matched against the address on the connection.
    c.given_container(json!({
        "name": "ranges", "packages": [p], "all": true,
        "ip_ranges": "!127.2.0.0/16,127.0.0.0/8",
    }))
    .await;
    assert_eq!(
        handed(&c.poll_from(&site1, "127.1.0.5").await),
        vec![install(&p)]
    );
    assert_eq!(handed(&c.poll_from(&site2, "127.2.0.5").await), vec![]);
    // Whatever the agent claims about itself.
    assert_eq!(handed(&c.poll_from(&site2, "127.2.0.5").await), vec![]);
    // No known address, no admission while there are ranges.
    assert_eq!(c.handed(&site2).await, vec![]);
    // IPv4 seen on a dual-stack socket.
    assert_eq!(
        handed(&c.poll_from(&site1, "::ffff:127.1.0.5").await),
        vec![install(&p)]
    );

    // Start and end (T0 is Saturday 2025-03-01 09:00 UTC).
    let q = c.given_command_package("later", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.given_container(json!({
        "name": "window", "packages": [q], "computers": [site2.id],
        "start_at": "2025-03-01T12:00:00Z", "end_at": "2025-03-01T14:00:00Z",
    }))
    .await;
    assert_eq!(c.handed(&site2).await, vec![]);
    c.set_time("2025-03-01T12:00:00Z");
    assert_eq!(c.handed(&site2).await, vec![install(&q)]);
    c.set_time("2025-03-01T14:00:00Z");
    assert_eq!(c.handed(&site2).await, vec![]);

    // Time frames on central's clock: weekday evenings only.
    let r = c.given_command_package("evening", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let framed = c
        .given_container(json!({
            "name": "frames", "packages": [r], "computers": [site2.id],
            "time_frames": "MON-FRI 18:00-23:59,!FRI 18:00-23:59",
        }))
        .await;
    assert_eq!(c.handed(&site2).await, vec![]);
    c.set_time("2025-03-07T19:00:00Z"); // a Friday: refused by the negation
    assert_eq!(c.handed(&site2).await, vec![]);
    c.set_time("2025-03-10T17:59:00Z"); // Monday, too early
    assert_eq!(c.handed(&site2).await, vec![]);
    let id = framed["id"].as_str().unwrap();
    assert_eq!(
        jobs_of(&c.show_container(id).await, &site2.id),
        vec![job(&r, "WAITING_NOTIFICATION")]
    );
    c.set_time("2025-03-10T18:00:00Z");
    assert_eq!(c.handed(&site2).await, vec![install(&r)]);
    assert_eq!(
        jobs_of(&c.show_container(id).await, &site2.id),
        vec![job(&r, "NOTIFIED")]
    );
}

#[tokio::test]
async fn a_poll_lists_higher_priority_containers_first_then_package_priority() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let pkg = |name: &'static str, priority: &'static str| {
        let c = &c;
        async move {
            c.given_command_package(name, priority).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (low, mid, high, urgent) = (
        pkg("low", "1").await,
        pkg("mid", "7").await,
        pkg("high", "9").await,
        pkg("urgent", "0").await,
    );
    for (name, package, priority) in [
        ("old", &low, 1),
        ("newer but higher", &high, 10),
        ("same priority", &mid, 1),
        ("urgent package", &urgent, 1),
    ] {
        c.given_container(json!({
            "name": name, "packages": [package], "computers": [a.id], "priority": priority,
        }))
        .await;
    }
    assert_eq!(
        c.handed(&a).await,
        vec![
            install(&high),
            install(&urgent),
            install(&low),
            install(&mid)
        ]
    );
}

#[tokio::test]
async fn jobs_run_in_order_and_abort_after_failed_stops_the_rest() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for name in ["one", "two", "three"] {
            v.push(
                c.given_command_package(name, "5").await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    };
    let abort = c
        .given_container(json!({
            "name": "abort", "packages": ids, "computers": [a.id],
            "sequence": "abort_after_failed",
        }))
        .await;
    let ignore = c
        .given_container(json!({
            "name": "ignore", "packages": ids, "computers": [b.id],
        }))
        .await;

    // One job at a time, in order.
    assert_eq!(c.handed(&a).await, vec![install(&ids[0])]);
    c.report(&a, &ids[0], json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![install(&ids[1])]);
    c.report(
        &a,
        &ids[1],
        json!({"code": "ERR_EXIT_CODE", "exit_code": 2}),
    )
    .await
    .ok(StatusCode::OK);
    // The third never runs: OCO's -8888.
    assert_eq!(c.handed(&a).await, vec![]);
    let shown = c.show_container(abort["id"].as_str().unwrap()).await;
    assert_eq!(
        jobs_of(&shown, &a.id),
        vec![
            job(&ids[0], "SUCCESS"),
            job(&ids[1], "ERR_EXIT_CODE"),
            job(&ids[2], "ERR_PREVIOUS_FAILED"),
        ]
    );
    assert!(shown["jobs"][2]["output"]
        .as_str()
        .unwrap()
        .contains(&ids[1]));
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["runtimes"]["finished"], true);
    assert_eq!(
        c.stats(&ids[2]).await["by_status"]["ERR_PREVIOUS_FAILED"],
        json!([a.id])
    );

    // With ignore_failed the sequence goes on after a failure.
    assert_eq!(c.handed(&b).await, vec![install(&ids[0])]);
    c.report(&b, &ids[0], json!({"code": "ERR_EXECUTE"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&b).await, vec![install(&ids[1])]);
    let shown = c.show_container(ignore["id"].as_str().unwrap()).await;
    assert_eq!(shown["state"], "running");
    assert_eq!(
        jobs_of(&shown, &b.id),
        vec![
            job(&ids[0], "ERR_EXECUTE"),
            job(&ids[1], "NOTIFIED"),
            job(&ids[2], "WAITING_NOTIFICATION"),
        ]
    );
}

#[tokio::test]
async fn failed_jobs_are_retried_with_back_off_and_by_hand() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.given_command_package("flaky", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = c
        .given_container(json!({
            "name": "retry", "packages": [p], "computers": [a.id],
            "retries": 2, "retry_backoff": "1m",
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let fail = json!({"code": "ERR_EXIT_CODE", "exit_code": 1, "output": "boom"});

    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, fail.clone()).await.ok(StatusCode::OK);
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["status"], "WAITING_NOTIFICATION");
    assert_eq!(j["attempts"], 1);
    assert_eq!(j["output"], "boom");
    assert_eq!(time_of(&j["retry_at"]), ts("2025-03-01T09:01:00Z"));
    // Not before its time.
    assert_eq!(c.handed(&a).await, vec![]);
    c.set_time("2025-03-01T09:01:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, fail.clone()).await.ok(StatusCode::OK);
    // The wait doubles.
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["attempts"], 2);
    assert_eq!(time_of(&j["retry_at"]), ts("2025-03-01T09:03:00Z"));
    c.set_time("2025-03-01T09:03:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, fail.clone()).await.ok(StatusCode::OK);
    // Out of retries: failed for good.
    let shown = c.show_container(&id).await;
    assert_eq!(shown["jobs"][0]["status"], "ERR_EXIT_CODE");
    assert_eq!(shown["jobs"][0]["attempts"], 3);
    assert_eq!(shown["jobs"][0]["retry_at"], Value::Null);
    assert_eq!(shown["state"], "failed");
    c.set_time("2025-03-01T10:00:00Z");
    assert_eq!(c.handed(&a).await, vec![]);

    // By hand: the failed job starts over, and this time it works.
    let r = c
        .admin_post(&format!("/api/v1/containers/{id}/retry"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r, json!({"container_id": id, "jobs": 1}));
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["status"], "WAITING_NOTIFICATION");
    assert_eq!(j["attempts"], 0);
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(shown["state"], "succeeded");
    // Nothing failed is left to renew.
    let r = c
        .admin_post(&format!("/api/v1/containers/{id}/retry"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["jobs"], 0);
}

#[tokio::test]
async fn cancel_stops_the_jobs_not_started_and_lets_running_ones_finish() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let d = c.given_agent("pc-d", &["10.1.0.7"]).await;
    let p = c.package_id("app").await;
    let created = c
        .given_container(json!({
            "name": "cancel me", "packages": [p], "all": true, "retries": 3,
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    c.handed(&a).await;
    c.report(&a, &p, json!({"code": "DOWNLOADING", "fragments_done": 0}))
        .await
        .ok(StatusCode::OK);
    c.handed(&b).await;

    let r = c
        .admin_post(&format!("/api/v1/containers/{id}/cancel"), &json!({}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(r, json!({"container_id": id, "jobs": 2}));
    let shown = c.show_container(&id).await;
    assert_eq!(shown["state"], "cancelled");
    assert!(shown["cancelled_at"].is_string());
    assert_eq!(jobs_of(&shown, &a.id), vec![job(&p, "DOWNLOADING")]);
    assert_eq!(jobs_of(&shown, &b.id), vec![job(&p, "ERR_ABORTED")]);
    assert_eq!(jobs_of(&shown, &d.id), vec![job(&p, "ERR_ABORTED")]);
    // The download under way goes on; the others are not handed out.
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    assert_eq!(c.handed(&b).await, vec![]);
    assert_eq!(c.handed(&d).await, vec![]);
    // A late progress report does not bring a cancelled job back.
    c.report(&b, &p, json!({"code": "DOWNLOADING"}))
        .await
        .ok(StatusCode::OK);
    // A failure after the cancel is not retried.
    c.report(&a, &p, json!({"code": "ERR_EXIT_CODE", "exit_code": 1}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(jobs_of(&shown, &a.id), vec![job(&p, "ERR_EXIT_CODE")]);
    assert_eq!(jobs_of(&shown, &b.id), vec![job(&p, "ERR_ABORTED")]);
    assert_eq!(shown["runtimes"]["finished"], true);
}

#[tokio::test]
async fn uninstall_jobs_and_what_central_believes_is_installed() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let v1 = c.given_uninstallable("editor", "1").await;
    let v2 = c.given_uninstallable("editor", "2").await;
    let other = c.given_uninstallable("viewer", "1").await;
    let plain = c.given_command_package("plain", "5").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let installed = |detail: &Value| -> Vec<String> {
        detail["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["installed"] == true)
            .map(|p| p["package_id"].as_str().unwrap().to_owned())
            .collect()
    };

    c.given_container(json!({"name": "v1", "packages": [v1, other], "computers": [a.id]}))
        .await;
    for p in [&v1, &other] {
        assert_eq!(c.handed(&a).await, vec![install(p)]);
        c.report(&a, p, json!({"code": "SUCCESS", "exit_code": 0}))
            .await
            .ok(StatusCode::OK);
    }
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), vec![v1.clone(), other.clone()]);
    assert_eq!(time_of(&detail["packages"][0]["installed_at"]), ts(T0));

    // Installing v2 first uninstalls v1 (and leaves the other name alone).
    let upgrade = c
        .given_container(json!({"name": "v2", "packages": [v2], "computers": [a.id]}))
        .await;
    assert_eq!(
        jobs_of(&upgrade, &a.id),
        vec![
            job(&v1, "WAITING_NOTIFICATION"),
            job(&v2, "WAITING_NOTIFICATION")
        ]
    );
    assert_eq!(upgrade["jobs"][0]["kind"], "uninstall");
    assert_eq!(c.handed(&a).await, vec![uninstall(&v1)]);
    // The agent may fetch the info it needs to uninstall.
    c.agent_info(&a, &v1).await.ok(StatusCode::OK);
    c.report(&a, &v1, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![install(&v2)]);
    c.report(&a, &v2, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), vec![v2.clone(), other.clone()]);
    // The uninstall job is not a line of v1's deployment statistics.
    assert_eq!(c.stats(&v1).await["counts"], json!({"SUCCESS": 1}));

    // Without auto_uninstall, only the install.
    let again = c
        .given_container(json!({
            "name": "v1 again", "packages": [v1], "computers": [a.id], "auto_uninstall": false,
        }))
        .await;
    assert_eq!(
        jobs_of(&again, &a.id),
        vec![job(&v1, "WAITING_NOTIFICATION")]
    );
    c.admin_delete(&format!(
        "/api/v1/containers/{}",
        again["id"].as_str().unwrap()
    ))
    .await;

    // An uninstall container; a failed uninstall leaves the package installed.
    let removal = c
        .given_container(json!({
            "name": "remove", "packages": [v2, other], "computers": [a.id], "uninstall": true,
        }))
        .await;
    assert_eq!(c.handed(&a).await, vec![uninstall(&v2)]);
    c.report(&a, &v2, json!({"code": "ERR_EXIT_CODE", "exit_code": 1603}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&a).await, vec![uninstall(&other)]);
    c.report(&a, &other, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), vec![v2.clone()]);
    assert_eq!(
        c.show_container(removal["id"].as_str().unwrap()).await["state"],
        "failed"
    );
    // Remove assignment: forgotten without running anything.
    let r = c.remove_assignment(&a.id, &v2).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let detail = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(installed(&detail), Vec::<String>::new());
    assert_eq!(c.handed(&a).await, vec![]);

    // A package with no uninstall procedure cannot be uninstalled.
    c.create_container(json!({
        "name": "x", "packages": [plain], "computers": [a.id], "uninstall": true,
    }))
    .await
    .err_naming(StatusCode::BAD_REQUEST, &[&plain, "no uninstall procedure"]);
}

#[tokio::test]
async fn a_report_settles_only_a_job_central_handed_out() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let id = c
        .given_container(json!({
            "name": "later", "packages": [p], "all": true,
            "start_at": "2025-03-02T00:00:00Z",
        }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not started: nothing handed out, so nothing to report on.
    assert_eq!(c.handed(&a).await, vec![]);
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["job", &p, &a.id]);
    let j = &c.show_container(&id).await["jobs"][0];
    assert_eq!(j["status"], "WAITING_NOTIFICATION");
    assert_eq!(
        c.show_computer(&a.id).await.ok(StatusCode::OK)["packages"][0]["installed"],
        false
    );
    c.set_time("2025-03-02T00:00:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.show_container(&id).await["state"], "succeeded");
}

#[tokio::test]
async fn runtimes_are_total_from_the_start_and_effective_from_the_first_job() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let b = c.given_agent("pc-b", &["10.1.0.6"]).await;
    let p = c.package_id("app").await;
    let id = c
        .given_container(json!({"name": "rt", "packages": [p], "all": true}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // pc-a comes online 30 minutes after the start and takes 10 minutes.
    c.set_time("2025-03-01T09:30:00Z");
    c.handed(&a).await;
    c.set_time("2025-03-01T09:40:00Z");
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(
        shown["runtimes"],
        json!({"total_s": 2400, "effective_s": 600, "finished": false})
    );
    c.set_time("2025-03-01T10:00:00Z");
    c.handed(&b).await;
    c.set_time("2025-03-01T10:05:00Z");
    c.report(&b, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    let shown = c.show_container(&id).await;
    assert_eq!(
        shown["runtimes"],
        json!({"total_s": 3900, "effective_s": 2100, "finished": true})
    );
    assert_eq!(shown["state"], "succeeded");
}

#[tokio::test]
async fn package_assign_is_a_container_with_defaults() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let pkg = c.given_command_package("app", "5").await;
    let p = pkg["id"].as_str().unwrap();
    let r = c.assign(p, json!({"all": true})).await.ok(StatusCode::OK);
    let id = r["container_id"].as_str().unwrap();
    let shown = c.show_container(id).await;
    assert_eq!(shown["name"], "app 1");
    assert_eq!(shown["priority"], 0);
    assert_eq!(shown["sequence"], "ignore_failed");
    assert_eq!(shown["ip_ranges"], Value::Null);
    assert_eq!(shown["time_frames"], Value::Null);
    assert_eq!(shown["end_at"], Value::Null);
    assert_eq!(time_of(&shown["start_at"]), ts(T0));
    assert_eq!(jobs_of(&shown, &a.id), vec![job(p, "WAITING_NOTIFICATION")]);
    // Nobody needs a new job: no container.
    let r = c.assign(p, json!({"all": true})).await.ok(StatusCode::OK);
    assert_eq!(r["container_id"], Value::Null);
    assert_eq!(
        c.admin_get("/api/v1/containers")
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn finished_containers_are_purged_after_their_ages() {
    let c = Central::start_with_config(|toml| {
        toml.replace(
            "purge_succeeded_after = \"30d\"",
            "purge_succeeded_after = \"1d\"",
        )
        .replace(
            "purge_failed_after = \"never\"",
            "purge_failed_after = \"3d\"",
        )
    })
    .await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let make = |name: &'static str| {
        let c = &c;
        let body = json!({"name": name, "packages": [p], "computers": [a.id]});
        async move {
            c.given_container(body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ok = make("ok").await;
    c.handed(&a).await;
    c.report(&a, &p, json!({"code": "SUCCESS"}))
        .await
        .ok(StatusCode::OK);
    let bad = make("bad").await;
    c.handed(&a).await;
    c.report(&a, &p, json!({"code": "ERR_EXECUTE"}))
        .await
        .ok(StatusCode::OK);
    let pending = make("pending").await;

    assert_eq!(c.purge(), Vec::<String>::new());
    c.set_time("2025-03-02T09:00:00Z");
    assert_eq!(c.purge(), vec![ok.clone()]);
    c.set_time("2025-03-04T08:59:59Z");
    assert_eq!(c.purge(), Vec::<String>::new());
    c.set_time("2025-03-04T09:00:00Z");
    assert_eq!(c.purge(), vec![bad.clone()]);
    // Unfinished containers stay, whatever their age.
    c.set_time("2026-03-04T09:00:00Z");
    assert_eq!(c.purge(), Vec::<String>::new());
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], pending.as_str());
}

// ---------------------------------------------------------------------------
// Versions (supersedes) and deactivation (OCS's red cross)
// ---------------------------------------------------------------------------

impl Central {
    /// Uploads version `version` of the command package `name`, with `extra`
    /// parameters (such as `supersedes`).
    async fn upload_version(&self, name: &str, version: &str, extra: &[(&str, &str)]) -> Reply {
        let mut params = vec![
            ("name", name),
            ("version", version),
            ("action", "execute"),
            ("command", "echo hi"),
        ];
        params.extend_from_slice(extra);
        self.upload(&params, None).await
    }

    /// A version that must be created; returns its id.
    async fn given_version(&self, name: &str, version: &str, extra: &[(&str, &str)]) -> String {
        let p = self
            .upload_version(name, version, extra)
            .await
            .ok(StatusCode::CREATED);
        p["id"].as_str().unwrap().to_owned()
    }

    /// What the signed info of a package says it supersedes, read from the
    /// envelope's payload once its signature verified.
    async fn signed_supersedes(&self, id: &str) -> Value {
        let reply = self.package_info(id).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let payload = signing::verify(
            &reply.body,
            signing::INFO_PAYLOAD_TYPE,
            &[self.trusted_key()],
        )
        .unwrap();
        let doc: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(doc["id"], id);
        // The validated view agrees with the raw payload.
        let info = signing::verify_info(&reply.body, &[self.trusted_key()]).unwrap();
        assert_eq!(
            info.supersedes().map(|p| p.to_string()),
            doc["supersedes"].as_str().map(str::to_owned)
        );
        doc["supersedes"].clone()
    }

    async fn deactivate(&self, id: &str, body: Value) -> Reply {
        self.send_json(
            Method::DELETE,
            &format!("/api/v1/packages/{id}/activations"),
            Some(self.admin.as_str()),
            &body,
        )
        .await
    }

    /// `(computer, status)` of every statistics line of a package, sorted.
    async fn lines(&self, package: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self.stats(package).await["computers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["computer_id"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

#[tokio::test]
async fn a_new_version_supersedes_the_newest_of_its_name_by_default() {
    let c = Central::start().await;
    let v1 = c.given_version("app", "1", &[]).await;
    // The first of its name supersedes nothing; other names do not count.
    assert_eq!(
        c.show_package(&v1).await.ok(StatusCode::OK)["supersedes"],
        Value::Null
    );
    assert_eq!(c.signed_supersedes(&v1).await, Value::Null);
    c.set_time("2025-03-01T09:01:00Z");
    let tool = c.given_version("tool", "1", &[]).await;
    assert_eq!(
        c.show_package(&tool).await.ok(StatusCode::OK)["supersedes"],
        Value::Null
    );

    // By default: the newest package of the same name (latest created_at).
    c.set_time("2025-03-01T09:02:00Z");
    let v2 = c
        .upload_version("app", "2", &[])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(v2["supersedes"], v1.as_str());
    let v2 = v2["id"].as_str().unwrap().to_owned();
    assert_eq!(c.signed_supersedes(&v2).await, v1.as_str());
    c.set_time("2025-03-01T09:03:00Z");
    let v3 = c.given_version("app", "3", &[]).await;
    assert_eq!(c.signed_supersedes(&v3).await, v2.as_str());

    // Explicit: any package of the same name, older or not the newest.
    c.set_time("2025-03-01T09:04:00Z");
    let v4 = c
        .upload_version("app", "4", &[("supersedes", &v1)])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(v4["supersedes"], v1.as_str());
    let v4 = v4["id"].as_str().unwrap().to_owned();
    assert_eq!(c.signed_supersedes(&v4).await, v1.as_str());

    // `none`: a fresh line, even though versions of the name exist.
    c.set_time("2025-03-01T09:05:00Z");
    let v5 = c
        .upload_version("app", "5", &[("supersedes", "none")])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(v5["supersedes"], Value::Null);
    let v5 = v5["id"].as_str().unwrap().to_owned();
    assert_eq!(c.signed_supersedes(&v5).await, Value::Null);

    // The newest is the latest created, whatever its version says; a deleted
    // package is not a default.
    c.delete_package(&v5).await;
    c.set_time("2025-03-01T09:06:00Z");
    let v0 = c.given_version("app", "0.9", &[]).await;
    assert_eq!(c.signed_supersedes(&v0).await, v4.as_str());

    // The listing carries it too, and a package list shows each link once.
    let listed = c.list_packages().await.ok(StatusCode::OK);
    let links: Vec<(String, Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["supersedes"].clone(),
            )
        })
        .collect();
    assert_eq!(
        links,
        vec![
            (v1.clone(), Value::Null),
            (tool, Value::Null),
            (v2.clone(), json!(v1)),
            (v3, json!(v2)),
            (v4.clone(), json!(v1)),
            (v0, json!(v4)),
        ]
    );
}

#[tokio::test]
async fn bad_supersedes_are_refused_naming_the_field_and_leave_nothing() {
    let c = Central::start().await;
    let app = c.given_version("app", "1", &[]).await;
    let tool = c.given_version("tool", "1", &[]).await;
    let before = c.list_packages().await.ok(StatusCode::OK);

    // Another name: 400 naming the field and both names.
    c.upload_version("app", "2", &[("supersedes", &tool)])
        .await
        .err_naming(
            StatusCode::BAD_REQUEST,
            &["supersedes", &tool, "'tool'", "'app'"],
        );
    // Unknown: 404 naming it.
    c.upload_version("app", "2", &[("supersedes", "app-0-gone")])
        .await
        .err_naming(StatusCode::NOT_FOUND, &["supersedes", "app-0-gone"]);
    // Not an id at all, or empty.
    c.upload_version("app", "2", &[("supersedes", "App 1")])
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["supersedes", "App 1"]);
    c.upload_version("app", "2", &[("supersedes", "")])
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["supersedes"]);
    // Refused before the body is read: a file upload leaves nothing either.
    let reply = c
        .upload(
            &launch_params("app", &[("version", "2"), ("supersedes", &tool)]),
            Some(chunked(&data(5000), 1000)),
        )
        .await;
    reply.err_naming(StatusCode::BAD_REQUEST, &["supersedes"]);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), before);
    let on_disk: Vec<String> = std::fs::read_dir(c.dir().join("packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "tmp")
        .collect();
    assert_eq!(
        sorted(&on_disk.iter().map(String::as_str).collect::<Vec<_>>()),
        sorted(&[&app, &tool])
    );

    // A valid one still works afterwards.
    let v2 = c.given_version("app", "2", &[("supersedes", &app)]).await;
    assert_eq!(c.signed_supersedes(&v2).await, app.as_str());
}

#[tokio::test]
async fn deactivation_removes_sites_or_all_sites_from_the_activation() {
    let mut c = Central::start().await;
    for site in ["lyon", "nice", "paris"] {
        c.given_site(site, &[]).await;
    }
    let (paris_relay, _) = c.given_relay("paris", &["10.1.0.0/16"], "http://p").await;
    let id = c.given_version("app", "1", &[]).await;
    c.activate(
        &id,
        json!({"sites": ["paris", "lyon"], "fallback": "always"}),
    )
    .await
    .ok(StatusCode::OK);
    let relay_holds = |relays: &Value| -> bool {
        relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == paris_relay.as_str())
            .unwrap()["holdings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["package_id"] == id.as_str())
    };
    assert!(relay_holds(&c.list_relays().await.ok(StatusCode::OK)));

    // Specific sites come off the list; the fallback stays.
    let d = c
        .deactivate(&id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": ["lyon"], "central_fallback": "always"})
    );
    assert_eq!(d["cancelled"], 0);
    assert_eq!(d["computers"], json!([]));
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), d["package"]);
    // Paris's relay is no longer meant to hold it.
    assert!(!relay_holds(&c.list_relays().await.ok(StatusCode::OK)));
    // A site that is not activated: nothing changes, and it is no error.
    let again = c
        .deactivate(&id, json!({"sites": ["paris", "nice"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(again["package"], d["package"]);

    // Off an activation for all sites: every other existing site, listed.
    c.activate(&id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let d = c
        .deactivate(&id, json!({"sites": ["lyon"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": ["nice", "paris"], "central_fallback": "always"})
    );
    assert!(relay_holds(&c.list_relays().await.ok(StatusCode::OK)));

    // All sites: activated nowhere, as if just built (and it can be activated again).
    c.activate(&id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let d = c
        .deactivate(&id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": [], "central_fallback": "always"})
    );
    assert!(!relay_holds(&c.list_relays().await.ok(StatusCode::OK)));
    // Acknowledged means on disk.
    c.restart_with_db(|_| {});
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), d["package"]);
    let p = c
        .activate(&id, json!({"sites": ["nice"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(p["activation"]["sites"], json!(["nice"]));
}

#[tokio::test]
async fn bad_deactivations_name_the_field_and_change_nothing() {
    let c = Central::start().await;
    c.given_site("paris", &[]).await;
    let id = c.given_version("app", "1", &[]).await;
    let waiting = c.given_agent("pc-waiting", &["10.1.0.5"]).await;
    c.assign(&id, json!({"all": true})).await.ok(StatusCode::OK);
    let before = c
        .activate(&id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);

    c.deactivate(&id, json!({"sites": ["mars"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["site", "mars"]);
    // One unknown site spoils the whole request.
    c.deactivate(&id, json!({"sites": ["paris", "mars"]}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["mars"]);
    c.deactivate(&id, json!({"sites": ["Bad Name"]}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "Bad Name"]);
    c.deactivate(&id, json!({"sites": ["paris"], "all_sites": true}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "all_sites"]);
    c.deactivate(&id, json!({"sites": []}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "empty"]);
    c.deactivate(&id, json!({}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites", "all_sites"]);
    c.deactivate(&id, json!({"all_sites": false}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all_sites"]);
    c.deactivate(&id, json!({"all_sites": "yes"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["all_sites"]);
    c.deactivate(&id, json!({"sites": "paris"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["sites"]);
    c.deactivate(&id, json!({"all_sites": true, "fallback": "never"}))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["fallback"]);
    let req = Request::builder()
        .method(Method::DELETE)
        .uri(format!("/api/v1/packages/{id}/activations"))
        .header(AUTHORIZATION, format!("Bearer {}", c.admin))
        .body(Body::from("{\"all_sites\": tru"))
        .unwrap();
    c.call(req).await.err(StatusCode::BAD_REQUEST);
    c.deactivate("no-such-package", json!({"all_sites": true}))
        .await
        .err_naming(StatusCode::NOT_FOUND, &["package", "no-such-package"]);

    // Nothing was deactivated nor cancelled.
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), before);
    assert_eq!(
        c.lines(&id).await,
        vec![(waiting.id.clone(), "WAITING_NOTIFICATION".to_owned())]
    );
}

#[tokio::test]
async fn deactivation_cancels_only_install_jobs_not_yet_notified_on_the_sites_computers() {
    let mut c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    c.given_relay("paris", &["10.1.0.0/16"], "http://p").await;
    c.given_relay("lyon", &["10.2.0.0/16"], "http://l").await;
    // A floor of paris's subnet served by lyon's relay: the longest prefix wins.
    c.given_relay("lyon", &["10.1.9.0/24"], "http://l2").await;

    let app = c.given_uninstallable("app", "1").await;
    let other = c.given_version("other", "1", &[]).await;
    let waiting = c.given_agent("paris-waiting", &["10.1.0.1"]).await;
    let notified = c.given_agent("paris-notified", &["10.1.0.2"]).await;
    let done = c.given_agent("paris-done", &["10.1.0.3"]).await;
    let retrying = c.given_agent("paris-retrying", &["10.1.0.4"]).await;
    // Two addresses: one in paris's /16 wins over none, so it is paris's.
    let dual = c
        .given_agent("paris-dual", &["192.168.7.7", "10.1.0.5"])
        .await;
    let floor = c.given_agent("lyon-floor", &["10.1.9.5"]).await;
    let lyon = c.given_agent("lyon-waiting", &["10.2.0.1"]).await;
    let nowhere = c.given_agent("no-site", &["172.16.0.1"]).await;

    // `app` then `other` on every computer, in one container (order matters).
    let all = c
        .given_container(json!({
            "name": "rollout", "packages": [app, other], "all": true, "retries": 1,
        }))
        .await;
    let all = all["id"].as_str().unwrap().to_owned();
    // An uninstall job of `app` waiting on a paris computer: not an install, it stays.
    let removal = c
        .given_container(json!({
            "name": "removal", "packages": [app], "computers": [waiting.id], "uninstall": true,
        }))
        .await;
    let removal = removal["id"].as_str().unwrap().to_owned();
    assert_eq!(c.handed(&notified).await, vec![install(&app)]);
    assert_eq!(c.handed(&done).await, vec![install(&app)]);
    c.report(&done, &app, json!({"code": "SUCCESS", "exit_code": 0}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(c.handed(&retrying).await, vec![install(&app)]);
    c.report(
        &retrying,
        &app,
        json!({"code": "ERR_EXIT_CODE", "exit_code": 1}),
    )
    .await
    .ok(StatusCode::OK);
    let retry_line = c.stat_of(&app, &retrying).await;
    assert_eq!(retry_line["status"], "WAITING_NOTIFICATION");
    assert_eq!(retry_line["exit_code"], 1);

    // Paris: the jobs never handed out (or waiting for a retry) on its computers go.
    let d = c
        .deactivate(&app, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(d["cancelled"], 3);
    assert_eq!(
        ids(&d["computers"]),
        sorted(&[&waiting.id, &retrying.id, &dual.id])
    );
    assert_eq!(c.lines(&app).await, {
        let mut v = vec![
            (notified.id.clone(), "NOTIFIED".to_owned()),
            (done.id.clone(), "SUCCESS".to_owned()),
            (floor.id.clone(), "WAITING_NOTIFICATION".to_owned()),
            (lyon.id.clone(), "WAITING_NOTIFICATION".to_owned()),
            (nowhere.id.clone(), "WAITING_NOTIFICATION".to_owned()),
        ];
        v.sort();
        v
    });
    // The other package's jobs are untouched; the uninstall job too.
    assert_eq!(c.lines(&other).await.len(), 8);
    assert_eq!(
        jobs_of(&c.show_container(&removal).await, &waiting.id),
        vec![job(&app, "WAITING_NOTIFICATION")]
    );
    // The container goes on without the cancelled job: `waiting` is handed the
    // uninstall of `app` and, next in the container, `other`.
    assert_eq!(
        jobs_of(&c.show_container(&all).await, &waiting.id),
        vec![job(&other, "WAITING_NOTIFICATION")]
    );
    let mut handed_now = c.handed(&waiting).await;
    handed_now.sort();
    let mut expected = vec![install(&other), uninstall(&app)];
    expected.sort();
    assert_eq!(handed_now, expected);
    // `retrying` is never handed `app` again, even once its retry is due.
    c.set_time("2025-03-01T12:00:00Z");
    assert_eq!(c.handed(&retrying).await, vec![install(&other)]);

    // All sites: every computer, those of no site included; jobs handed out stay.
    let d = c
        .deactivate(&app, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(d["cancelled"], 3);
    assert_eq!(
        ids(&d["computers"]),
        sorted(&[&floor.id, &lyon.id, &nowhere.id])
    );
    let mut left = vec![
        (notified.id.clone(), "NOTIFIED".to_owned()),
        (done.id.clone(), "SUCCESS".to_owned()),
    ];
    left.sort();
    assert_eq!(c.lines(&app).await, left);
    // What was acknowledged survives a restart.
    c.restart_with_db(|_| {});
    assert_eq!(c.lines(&app).await, left);
    // Nothing left to cancel.
    let d = c
        .deactivate(&app, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    assert_eq!(d["cancelled"], 0);
}

// ---------------------------------------------------------------------------
// Wake-on-LAN, shutdown after and restart timeout (OCO)
// ---------------------------------------------------------------------------

impl Central {
    fn state(&self) -> &Arc<api::Central> {
        self.state.as_ref().unwrap()
    }

    /// An agent enrolled with these MAC addresses.
    /// A container for every computer that wakes them and shuts them down after.
    async fn given_night_wake(&self, package: &str) -> Value {
        self.given_container(json!({
            "name": "night", "packages": [package], "all": true,
            "wol": true, "shutdown_after": true,
        }))
        .await
    }

    async fn given_agent_with_macs(&self, hostname: &str, address: &str, macs: &[&str]) -> Agent {
        let v = self
            .enroll(json!({
                "enroll_token": self.enroll_token,
                "hostname": hostname,
                "os": "linux",
                "addresses": [address],
                "macs": macs,
            }))
            .await
            .ok(StatusCode::CREATED);
        Agent {
            id: v["computer_id"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A poll reporting these MAC addresses.
    async fn poll_macs(&self, agent: &Agent, macs: &[&str]) -> Reply {
        self.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(agent.token.as_str()),
            &json!({"addresses": [], "macs": macs}),
        )
        .await
    }

    /// The relay's QUIC connection, as central's endpoint attaches it: what
    /// central would send the relay arrives here.
    fn connect_relay(
        &self,
        relay: &str,
    ) -> tokio::sync::mpsc::UnboundedReceiver<sitecast_common::protocol::CentralMessage> {
        self.state()
            .relay_links
            .attach(&relay.parse().unwrap())
            .messages
    }

    fn wake_due(&self) -> Vec<String> {
        sitecast_central::power::wake_due_containers(self.state())
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// [`Central::wake_due`], reaching relays through `links`.
    fn wake_due_through(&self, links: &dyn sitecast_central::power::RelayMessenger) -> Vec<String> {
        sitecast_central::power::wake_due_containers_through(self.state(), links)
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// A poll whose agent reports it has been on for `uptime_s` seconds.
    async fn poll_uptime(&self, agent: &Agent, uptime_s: u64) -> Reply {
        self.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(agent.token.as_str()),
            &json!({"addresses": [], "uptime_s": uptime_s}),
        )
        .await
    }
}

/// A relay whose connection drops just as central hands it a wake: it looks
/// connected, and takes nothing.
struct Dropping(String);

impl sitecast_central::power::RelayMessenger for Dropping {
    fn connected(&self, relay: &sitecast_common::ids::RelayId) -> bool {
        relay.as_str() == self.0
    }
    fn send(
        &self,
        _: &sitecast_common::ids::RelayId,
        _: sitecast_common::protocol::CentralMessage,
    ) -> bool {
        false
    }
}

/// The magic packets of a wake message: `(computer, mac, broadcast)`, sorted.
fn wake_targets(
    message: sitecast_common::protocol::CentralMessage,
) -> Vec<(String, String, String)> {
    let sitecast_common::protocol::CentralMessage::Wake { targets } = message else {
        panic!("not a wake: {message:?}");
    };
    let mut out: Vec<(String, String, String)> = targets
        .into_iter()
        .map(|t| {
            (
                t.computer_id.to_string(),
                t.mac.to_string(),
                t.broadcast.to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A wake line of a container: `(was_off, relay, shutdown)`.
fn wake_line(container: &Value, computer: &str) -> (bool, Value, String) {
    let line = container["wake"]["computers"]
        .as_array()
        .unwrap_or_else(|| panic!("no wake: {container}"))
        .iter()
        .find(|l| l["computer_id"] == computer)
        .unwrap_or_else(|| panic!("{computer} not in the wake: {container}"));
    (
        line["was_off"].as_bool().unwrap(),
        line["relay"].clone(),
        line["shutdown"].as_str().unwrap().to_owned(),
    )
}

/// One field of a computer's wake line.
fn line_field(container: &Value, computer: &str, field: &str) -> Value {
    container["wake"]["computers"]
        .as_array()
        .unwrap_or_else(|| panic!("no wake: {container}"))
        .iter()
        .find(|l| l["computer_id"] == computer)
        .unwrap_or_else(|| panic!("{computer} not in the wake: {container}"))[field]
        .clone()
}

#[tokio::test]
async fn agents_report_mac_addresses_at_enrollment_and_in_every_poll() {
    let c = Central::start().await;
    let a = c
        .given_agent_with_macs(
            "pc-a",
            "10.1.0.5",
            &["AA-BB-CC-DD-EE-01", "aa:bb:cc:dd:ee:01"],
        )
        .await;
    let listed = c.list_computers().await.ok(StatusCode::OK);
    assert_eq!(listed[0]["macs"], json!(["aa:bb:cc:dd:ee:01"]));
    // A poll replaces them; a poll without any keeps the last ones.
    c.poll_macs(&a, &["aa:bb:cc:dd:ee:02", "AA:BB:CC:DD:EE:03"])
        .await
        .ok(StatusCode::OK);
    c.poll_macs(&a, &[]).await.ok(StatusCode::OK);
    let shown = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(
        shown["macs"],
        json!(["aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:03"])
    );
    // An agent that says nothing of MACs (an older one) enrolls as before.
    let old = c.given_agent("pc-old", &["10.1.0.6"]).await;
    assert_eq!(
        c.show_computer(&old.id).await.ok(StatusCode::OK)["macs"],
        json!([])
    );

    // Bad MACs are refused, naming the field and the token; nothing changes.
    for bad in ["aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:zz", "aabbccddeeff"] {
        c.enroll(json!({
            "enroll_token": c.enroll_token, "hostname": "pc-bad", "os": "linux",
            "addresses": ["10.1.0.7"], "macs": ["aa:bb:cc:dd:ee:04", bad],
        }))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["macs", bad]);
        c.poll_macs(&a, &[bad])
            .await
            .err_naming(StatusCode::BAD_REQUEST, &["macs", bad]);
    }
    c.send_json(
        Method::POST,
        "/api/v1/agent/poll",
        Some(a.token.as_str()),
        &json!({"addresses": [], "macs": "aa:bb:cc:dd:ee:01"}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["macs"]);
    assert_eq!(
        c.list_computers()
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        c.show_computer(&a.id).await.ok(StatusCode::OK)["macs"],
        json!(["aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:03"])
    );
}

#[tokio::test]
async fn containers_carry_wol_shutdown_after_and_a_restart_timeout() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let plain = c
        .given_container(json!({"name": "plain", "packages": [p], "computers": [a.id]}))
        .await;
    assert_eq!(plain["wol"], false);
    assert_eq!(plain["shutdown_after"], false);
    assert_eq!(plain["restart_timeout"], "5m");
    assert!(plain.get("wake").is_none(), "{plain}");
    let poll = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["restart_timeout_s"], 300);
    assert!(poll.get("power").is_none(), "{poll}");
    c.admin_delete(&format!(
        "/api/v1/containers/{}",
        plain["id"].as_str().unwrap()
    ))
    .await;

    let set = c
        .given_container(json!({
            "name": "night", "packages": [p], "computers": [a.id],
            "wol": true, "shutdown_after": true, "restart_timeout": "90s",
        }))
        .await;
    assert_eq!(set["wol"], true);
    assert_eq!(set["shutdown_after"], true);
    assert_eq!(set["restart_timeout"], "90s");
    let poll = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["restart_timeout_s"], 90);
    // A day is the most, and zero (restart at once) is allowed.
    for (timeout, seconds) in [("24h", 86_400), ("0s", 0)] {
        let edge = c
            .given_container(json!({
                "name": "edge", "packages": [p], "computers": [a.id],
                "restart_timeout": timeout,
            }))
            .await;
        assert_eq!(
            sitecast_common::units::Duration::from_secs(seconds).to_string(),
            edge["restart_timeout"].as_str().unwrap()
        );
        c.admin_delete(&format!(
            "/api/v1/containers/{}",
            edge["id"].as_str().unwrap()
        ))
        .await;
    }
    // Listed without the wake's lines; shown with them.
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list[0]["wol"], true);
    assert!(list[0].get("wake").is_none(), "{list}");
    let shown = c.show_container(set["id"].as_str().unwrap()).await;
    assert_eq!(shown["wake"]["at"], T0);

    let base = json!({"name": "n", "packages": [p], "computers": [a.id]});
    let with = |pairs: &[(&str, Value)]| {
        let mut body = base.clone();
        for (k, v) in pairs {
            body[*k] = v.clone();
        }
        body
    };
    for (body, words) in [
        (
            with(&[("restart_timeout", json!("5x"))]),
            vec!["restart_timeout", "5x"],
        ),
        (
            with(&[("restart_timeout", json!("soon"))]),
            vec!["restart_timeout", "soon"],
        ),
        // At most a day, like a notify countdown.
        (
            with(&[("restart_timeout", json!("86401s"))]),
            vec!["restart_timeout", "86401s", "longer than a day"],
        ),
        (
            with(&[("restart_timeout", json!("2d"))]),
            vec!["restart_timeout", "2d"],
        ),
        (
            with(&[("shutdown_after", json!(true))]),
            vec!["shutdown_after", "wol"],
        ),
        (
            with(&[("wol", json!(false)), ("shutdown_after", json!(true))]),
            vec!["shutdown_after", "wol"],
        ),
        (with(&[("wol", json!("yes"))]), vec!["wol"]),
        (
            with(&[("wol", json!(true)), ("shutdown_after", json!("yes"))]),
            vec!["shutdown_after"],
        ),
        (
            with(&[("wol", json!(true)), ("shutdown_after", json!(1))]),
            vec!["shutdown_after"],
        ),
    ] {
        c.create_container(body)
            .await
            .err_naming(StatusCode::BAD_REQUEST, &words);
    }
    assert_eq!(
        c.admin_get("/api/v1/containers")
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_wol_container_asks_each_computers_relay_and_shuts_down_only_the_woken() {
    let mut c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    // A more specific relay that is not connected: the wake falls back to the next.
    c.given_relay("paris", &["10.1.3.0/24"], "http://10.1.3.2:8080")
        .await;
    let mut link = c.connect_relay(&relay);
    // All enrolled at T0 (enrolling is a contact).
    let on = c
        .given_agent_with_macs("on", "10.1.3.5", &["02:00:00:00:00:01"])
        .await;
    let off = c
        .given_agent_with_macs("off", "10.1.3.6", &["02:00:00:00:00:02"])
        .await;
    let late = c
        .given_agent_with_macs("late", "10.1.0.7", &["02:00:00:00:00:03"])
        .await;
    let v6 = c
        .given_agent_with_macs("v6", "fd00::8", &["02:00:00:00:00:04"])
        .await;
    let no_mac = c.given_agent("nomac", &["10.1.0.9"]).await;
    let p = c.package_id("app").await;
    // Ten minutes later only `on` has been in touch.
    c.set_time("2025-03-01T09:10:00Z");
    c.poll(&on, &[]).await.ok(StatusCode::OK);
    c.set_time("2025-03-01T09:10:30Z");
    let created = c.given_night_wake(&p).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["wake"]["at"], "2025-03-01T09:10:30Z");
    // One message to the connected relay, with the broadcast of its subnet.
    let message = link.try_recv().unwrap();
    let mut expected: Vec<(String, String, String)> = vec![
        (
            on.id.clone(),
            "02:00:00:00:00:01".into(),
            "10.1.255.255".into(),
        ),
        (
            off.id.clone(),
            "02:00:00:00:00:02".into(),
            "10.1.255.255".into(),
        ),
        (
            late.id.clone(),
            "02:00:00:00:00:03".into(),
            "10.1.255.255".into(),
        ),
    ];
    expected.sort();
    assert_eq!(wake_targets(message), expected);
    assert!(link.try_recv().is_err(), "one wake, one message");
    // Only computers that were off may be shut down; those no relay could
    // wake (IPv6 only, no MAC) never are.
    assert_eq!(
        wake_line(&created, &on.id),
        (false, json!(relay), "never".into())
    );
    assert_eq!(
        wake_line(&created, &off.id),
        (true, json!(relay), "pending".into())
    );
    assert_eq!(
        wake_line(&created, &late.id),
        (true, json!(relay), "pending".into())
    );
    assert_eq!(
        wake_line(&created, &v6.id),
        (true, Value::Null, "never".into())
    );
    assert_eq!(
        wake_line(&created, &no_mac.id),
        (true, Value::Null, "never".into())
    );
    // Each line says why no relay was asked (none: one was), and when one was.
    assert_eq!(line_field(&created, &v6.id, "not_asked"), "ipv6_only");
    assert_eq!(line_field(&created, &no_mac.id, "not_asked"), "no_mac");
    assert_eq!(line_field(&created, &off.id, "not_asked"), Value::Null);
    assert_eq!(
        line_field(&created, &off.id, "asked_at"),
        "2025-03-01T09:10:30Z"
    );
    assert_eq!(line_field(&created, &no_mac.id, "asked_at"), Value::Null);

    // The wake is recorded once, and survives a restart.
    assert!(c.wake_due().is_empty());
    c.restart_with_db(|_| {});
    let mut link = c.connect_relay(&relay);
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());
    assert_eq!(
        c.show_container(&id).await["wake"],
        created["wake"],
        "the wake's record was lost"
    );

    // `off` comes up, runs its job and is told to shut down, once.
    c.set_time("2025-03-01T09:14:00Z");
    assert_eq!(c.handed(&off).await, vec![install(&p)]);
    assert_eq!(
        c.report(&off, &p, json!({"code": "SUCCESS", "exit_code": 0}))
            .await
            .status,
        StatusCode::OK
    );
    let poll = c.poll(&off, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["power"], "shutdown");
    assert!(c
        .poll(&off, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());
    // `on` runs its job too and is never shut down.
    assert_eq!(c.handed(&on).await, vec![install(&p)]);
    c.report(&on, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert!(c
        .poll(&on, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());
    // `late` comes up after wol_shutdown_expiry (10m): switched on by someone.
    c.set_time("2025-03-01T09:20:31Z");
    assert_eq!(c.handed(&late).await, vec![install(&p)]);
    c.report(&late, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert!(c
        .poll(&late, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());

    let shown = c.show_container(&id).await;
    assert_eq!(wake_line(&shown, &off.id).2, "sent");
    let off_line = shown["wake"]["computers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["computer_id"] == off.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(off_line["came_up_at"], "2025-03-01T09:14:00Z");
    assert_eq!(off_line["shutdown_at"], "2025-03-01T09:14:00Z");
    assert_eq!(wake_line(&shown, &on.id).2, "never");
    assert_eq!(wake_line(&shown, &late.id).2, "expired");
    // Deleting the container forgets its wake.
    c.admin_delete(&format!("/api/v1/containers/{id}")).await;
    assert!(c
        .state()
        .store
        .wakes_of(&id.parse().unwrap())
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_wol_container_that_starts_later_is_woken_when_central_reaches_its_start() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let mut link = c.connect_relay(&relay);
    let a = c
        .given_agent_with_macs("pc-a", "10.1.0.5", &["02:00:00:00:00:0a"])
        .await;
    let p = c.package_id("app").await;
    let later = c
        .given_container(json!({
            "name": "later", "packages": [p], "computers": [a.id],
            "start_at": T1, "wol": true,
        }))
        .await;
    // Over before central's clock reached it: never woken.
    let ended = c
        .given_container(json!({
            "name": "never", "packages": [p], "computers": [a.id],
            "start_at": "2025-03-01T09:30:00Z", "end_at": "2025-03-01T10:00:00Z", "wol": true,
        }))
        .await;
    assert!(later.get("wake").is_none(), "{later}");
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());
    c.set_time(T1);
    assert_eq!(c.wake_due(), vec![later["id"].as_str().unwrap().to_owned()]);
    assert_eq!(
        wake_targets(link.try_recv().unwrap()),
        vec![(
            a.id.clone(),
            "02:00:00:00:00:0a".into(),
            "10.1.255.255".into()
        )]
    );
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());
    assert!(c
        .show_container(ended["id"].as_str().unwrap())
        .await
        .get("wake")
        .is_none());
    // Without shutdown_after nobody is shut down.
    let shown = c.show_container(later["id"].as_str().unwrap()).await;
    assert_eq!(
        wake_line(&shown, &a.id),
        (true, json!(relay), "never".into())
    );
}

#[tokio::test]
async fn an_uptime_tells_a_computer_that_was_on_from_one_that_was_woken() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let _link = c.connect_relay(&relay);
    // All enrolled at T0 and quiet since: to their contacts, all look off.
    let busy = c
        .given_agent_with_macs("busy", "10.1.0.5", &["02:00:00:00:00:01"])
        .await;
    let woken = c
        .given_agent_with_macs("woken", "10.1.0.6", &["02:00:00:00:00:02"])
        .await;
    let old = c
        .given_agent_with_macs("old", "10.1.0.7", &["02:00:00:00:00:03"])
        .await;
    let p = c.package_id("app").await;
    c.set_time("2025-03-01T09:10:00Z");
    let created = c.given_night_wake(&p).await;
    let id = created["id"].as_str().unwrap().to_owned();
    for agent in [&busy, &woken, &old] {
        assert_eq!(
            wake_line(&created, &agent.id),
            (true, json!(relay), "pending".into())
        );
    }
    c.set_time("2025-03-01T09:12:00Z");
    // `busy` was on all along (a long install kept it from polling): on for a
    // day, it booted long before the wake and is never shut down.
    let poll = c.poll_uptime(&busy, 86_400).await.ok(StatusCode::OK);
    assert_eq!(handed(&poll), vec![install(&p)]);
    c.report(&busy, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    let poll = c.poll_uptime(&busy, 86_401).await.ok(StatusCode::OK);
    assert!(poll.get("power").is_none(), "{poll}");
    // `woken` booted a minute after the wake: it was off, and came up.
    let poll = c.poll_uptime(&woken, 60).await.ok(StatusCode::OK);
    assert_eq!(handed(&poll), vec![install(&p)]);
    c.report(&woken, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    let poll = c.poll_uptime(&woken, 61).await.ok(StatusCode::OK);
    assert_eq!(poll["power"], "shutdown");
    // An agent that reports no uptime is judged by its contacts, as before.
    assert_eq!(c.handed(&old).await, vec![install(&p)]);
    c.report(&old, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert_eq!(
        c.poll(&old, &[]).await.ok(StatusCode::OK)["power"],
        "shutdown"
    );

    let shown = c.show_container(&id).await;
    assert_eq!(
        wake_line(&shown, &busy.id),
        (false, json!(relay), "never".into())
    );
    assert_eq!(
        line_field(&shown, &busy.id, "booted_at"),
        "2025-02-28T09:12:00Z"
    );
    assert_eq!(line_field(&shown, &busy.id, "came_up_at"), Value::Null);
    assert_eq!(
        wake_line(&shown, &woken.id),
        (true, json!(relay), "sent".into())
    );
    assert_eq!(
        line_field(&shown, &woken.id, "booted_at"),
        "2025-03-01T09:11:00Z"
    );
    assert_eq!(wake_line(&shown, &old.id).2, "sent");
    assert_eq!(line_field(&shown, &old.id, "booted_at"), Value::Null);

    // An uptime must be a number of seconds.
    for bad in [json!(-5), json!("1h"), json!(1.5)] {
        c.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(busy.token.as_str()),
            &json!({"addresses": [], "uptime_s": bad}),
        )
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["uptime_s"]);
    }
}

#[tokio::test]
async fn a_wake_that_reaches_no_relay_is_retried_until_the_expiry() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    c.given_site("lyon", &["10.2.0.0/16"]).await;
    let (paris, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (lyon, _) = c
        .given_relay("lyon", &["10.2.0.0/16"], "http://10.2.0.2:8080")
        .await;
    let a = c
        .given_agent_with_macs("pc-a", "10.1.0.5", &["02:00:00:00:00:0a"])
        .await;
    let b = c
        .given_agent_with_macs("pc-b", "10.2.0.5", &["02:00:00:00:00:0b"])
        .await;
    let p = c.package_id("app").await;
    // Central just started: no relay has connected yet.
    c.set_time("2025-03-01T09:10:00Z");
    let created = c.given_night_wake(&p).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["wake"]["at"], "2025-03-01T09:10:00Z");
    for agent in [&a, &b] {
        assert_eq!(
            wake_line(&created, &agent.id),
            (true, Value::Null, "never".into())
        );
        assert_eq!(
            line_field(&created, &agent.id, "not_asked"),
            "relay_not_connected"
        );
        assert_eq!(line_field(&created, &agent.id, "asked_at"), Value::Null);
    }
    // Still nobody connected: nothing to record.
    assert!(c.wake_due().is_empty());
    // Paris's connection drops as the wake is handed to it: the line goes back
    // to waiting, and a later tick asks again.
    c.set_time("2025-03-01T09:11:00Z");
    assert_eq!(
        c.wake_due_through(&Dropping(paris.clone())),
        vec![id.clone()]
    );
    let shown = c.show_container(&id).await;
    assert_eq!(
        wake_line(&shown, &a.id),
        (true, Value::Null, "never".into())
    );
    assert_eq!(
        line_field(&shown, &a.id, "not_asked"),
        "relay_not_connected"
    );

    // Paris connects: its computer is asked, and may now be shut down.
    c.set_time("2025-03-01T09:12:00Z");
    let mut link = c.connect_relay(&paris);
    assert_eq!(c.wake_due(), vec![id.clone()]);
    assert_eq!(
        wake_targets(link.try_recv().unwrap()),
        vec![(
            a.id.clone(),
            "02:00:00:00:00:0a".into(),
            "10.1.255.255".into()
        )]
    );
    let shown = c.show_container(&id).await;
    assert_eq!(
        wake_line(&shown, &a.id),
        (true, json!(paris), "pending".into())
    );
    assert_eq!(line_field(&shown, &a.id, "not_asked"), Value::Null);
    assert_eq!(
        line_field(&shown, &a.id, "asked_at"),
        "2025-03-01T09:12:00Z"
    );
    // Asked once: the next tick has nothing to do for it.
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());

    // Retries stop wol_shutdown_expiry (10m) after the container's first wake:
    // Lyon connecting at 09:20:00 is too late for `b`.
    c.set_time("2025-03-01T09:20:00Z");
    let mut lyon_link = c.connect_relay(&lyon);
    assert!(c.wake_due().is_empty());
    assert!(lyon_link.try_recv().is_err());
    let shown = c.show_container(&id).await;
    assert_eq!(
        line_field(&shown, &b.id, "not_asked"),
        "relay_not_connected"
    );

    // `a` comes up within the expiry of its own wake (09:12), though past the
    // container's first (09:10): shut down once its job is done.
    c.set_time("2025-03-01T09:21:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert_eq!(
        c.poll(&a, &[]).await.ok(StatusCode::OK)["power"],
        "shutdown"
    );
    // `b`, switched on by someone, is never shut down.
    assert_eq!(c.handed(&b).await, vec![install(&p)]);
    c.report(&b, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert!(c
        .poll(&b, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());
}

#[tokio::test]
async fn a_package_can_ask_for_a_restart() {
    let c = Central::start().await;
    let plain = c.given_command_package("plain", "5").await;
    assert_eq!(plain["restart"], false);
    let info = c.package_info(plain["id"].as_str().unwrap()).await;
    let payload = signing::verify_info(&info.body, &[c.trusted_key()]).unwrap();
    assert!(!payload.restart());
    let raw = signing::verify(&info.body, signing::INFO_PAYLOAD_TYPE, &[c.trusted_key()]).unwrap();
    let json = String::from_utf8(raw).unwrap();
    assert!(!json.contains("restart"), "{json}");

    let params = [
        ("name", "driver"),
        ("version", "1"),
        ("action", "execute"),
        ("command", "install-driver"),
        ("restart", "true"),
    ];
    let p = c.given_package(&params, None).await;
    assert_eq!(p["restart"], true);
    let id = p["id"].as_str().unwrap();
    assert_eq!(c.show_package(id).await.ok(StatusCode::OK)["restart"], true);
    let info = c.package_info(id).await;
    assert!(signing::verify_info(&info.body, &[c.trusted_key()])
        .unwrap()
        .restart());

    let mut bad = params;
    bad[0] = ("name", "other");
    bad[4] = ("restart", "maybe");
    c.upload(&bad, None)
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["restart", "maybe"]);
}

// ---------------------------------------------------------------------------
// Coverage
// ---------------------------------------------------------------------------

impl Central {
    async fn coverage(&self, query: &str) -> Reply {
        self.admin_get(&format!("/api/v1/coverage{query}")).await
    }

    /// Records a relay's report of what it holds, now, as its QUIC link would:
    /// `(package, info_sha256, fragments held)`.
    fn relay_reports(&self, relay: &str, held: &[(&str, &str, u32)]) {
        let holdings: Vec<Value> = held
            .iter()
            .map(|(id, info, n)| json!({"package_id": id, "info_sha256": info, "held": n}))
            .collect();
        let report: sitecast_common::protocol::RelayReport = serde_json::from_value(json!({
            "holdings": holdings, "bytes_from_central": 0, "bytes_to_agents": 0,
        }))
        .unwrap();
        self.state
            .as_ref()
            .unwrap()
            .store
            .record_relay_report(
                &relay.parse().unwrap(),
                Some(&report),
                sitecast_central::clock::Clock::now(self.clock.as_ref()),
            )
            .unwrap();
    }
}

/// The ids of the computers a coverage report lists as unserved.
fn unserved(report: &Value) -> Vec<String> {
    report["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn coverage_lists_unserved_computers_sites_stale_relays_and_overlaps() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    c.given_site("lyon", &[]).await;
    c.given_site("brest", &["10.3.0.0/16"]).await;
    let (paris, _) = c.given_relay("paris", &["10.1.0.0/16"], "http://r1").await;
    let (floor, _) = c.given_relay("paris", &["10.1.2.0/24"], "http://r2").await;
    // Lyon's relay also claims a block inside Paris's /16.
    let (lyon, _) = c
        .given_relay("lyon", &["10.2.0.0/16", "10.1.5.0/24"], "http://r3")
        .await;
    let app = c
        .given_package(
            &launch_params("app", &[("fragment_size", "4KiB")]),
            Some(&data(10_000)),
        )
        .await;
    let tool = c
        .given_package(
            &launch_params("tool", &[("fragment_size", "1000")]),
            Some(&data(3000)),
        )
        .await;
    let (app_id, app_info) = (
        app["id"].as_str().unwrap(),
        app["info_sha256"].as_str().unwrap(),
    );
    let (tool_id, tool_info) = (
        tool["id"].as_str().unwrap(),
        tool["info_sha256"].as_str().unwrap(),
    );
    c.activate(app_id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    c.activate(tool_id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);

    // Computers as their agents enroll them: the addresses they report.
    let office = c.given_agent("office", &["10.1.0.5"]).await;
    c.given_agent("on-floor", &["10.1.2.7"]).await;
    let in_lyon = c.given_agent("in-lyon", &["192.168.0.3", "10.2.0.9"]).await;
    c.given_agent("in-block", &["10.1.5.5"]).await;
    let at_home = c.given_agent("at-home", &["192.168.1.4"]).await;
    let moved = c.given_agent("moved", &["172.16.0.1"]).await;
    let silent = c.given_agent("silent", &[]).await;

    // At T0 every relay but the floor's reports; Lyon's holds an old info of `tool`.
    c.relay_reports(&paris, &[(app_id, app_info, 3)]);
    c.relay_reports(&lyon, &[(tool_id, &"0".repeat(64), 3)]);
    c.set_time(T1);
    // Paris's relay is in touch again at T1, still lacking part of `tool`.
    c.relay_reports(&paris, &[(app_id, app_info, 3), (tool_id, tool_info, 1)]);
    // A poll records the addresses the agent reports now, at T1.
    c.poll(&moved, &["10.1.0.8"]).await.ok(StatusCode::OK);
    c.poll(&office, &[]).await.ok(StatusCode::OK);
    // The address on the connection is not the computer's: agents pick relays
    // by their own addresses, so central counts only those.
    let addr = std::net::SocketAddr::new("10.1.0.99".parse().unwrap(), 40000);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/agent/poll")
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {}", silent.token))
        .extension(axum::extract::ConnectInfo(addr))
        .body(Body::from(json!({"addresses": []}).to_string()))
        .unwrap();
    c.call(req).await.ok(StatusCode::OK);

    let r = c
        .coverage("?computer_recent_within=1h")
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["generated_at"], T1);
    assert_eq!(r["relay_stale_after"], "15m");
    assert_eq!(r["computer_recent_within"], "1h");
    assert_eq!(r["computers"], 7);
    let mut expected = vec![at_home.id.clone(), silent.id.clone()];
    expected.sort();
    assert_eq!(unserved(&r), expected);
    let home = r["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == at_home.id.as_str())
        .unwrap();
    assert_eq!(
        home,
        &json!({"id": at_home.id, "hostname": "at-home", "addresses": ["192.168.1.4"],
                "last_seen": T0, "site": null})
    );
    assert_eq!(
        r["sites"],
        json!([
            {"site": "brest", "subnets": ["10.3.0.0/16"], "relay_subnets": [],
             "relays": 0, "relays_up": 0, "computers": 0, "computers_recent": 0,
             "unserved": 0, "unserved_recent": 0},
            // in-block is lyon's: its /24 is more specific than Paris's /16.
            {"site": "lyon", "subnets": [], "relay_subnets": ["10.1.5.0/24", "10.2.0.0/16"],
             "relays": 1, "relays_up": 0, "computers": 2, "computers_recent": 0,
             "unserved": 0, "unserved_recent": 0},
            // office, on-floor and moved; office and moved polled at T1.
            {"site": "paris", "subnets": ["10.1.0.0/16"],
             "relay_subnets": ["10.1.0.0/16", "10.1.2.0/24"],
             "relays": 2, "relays_up": 1, "computers": 3, "computers_recent": 2,
             "unserved": 0, "unserved_recent": 0},
        ])
    );
    // By site, then relay id (Paris's two ids end in random suffixes).
    let mut paris_stale = vec![
        json!({"id": floor, "site": "paris", "last_seen": null, "reasons": [
            {"kind": "never_seen"},
            {"kind": "incomplete", "package_id": app_id, "held": 0, "total": 3, "activated_at": T0},
            {"kind": "incomplete", "package_id": tool_id, "held": 0, "total": 3, "activated_at": T0},
        ]}),
        json!({"id": paris, "site": "paris", "last_seen": T1, "reasons": [
            {"kind": "incomplete", "package_id": tool_id, "held": 1, "total": 3, "activated_at": T0},
        ]}),
    ];
    paris_stale.sort_by_key(|s| s["id"].as_str().unwrap().to_owned());
    let mut expected = vec![
        json!({"id": lyon, "site": "lyon", "last_seen": T0, "reasons": [
            {"kind": "out_of_touch", "silent_s": 5400},
            {"kind": "old_info", "package_id": tool_id, "held": 3, "total": 3,
             "held_info_sha256": "0".repeat(64), "info_sha256": tool_info,
             "activated_at": T0},
        ]}),
    ];
    expected.extend(paris_stale);
    assert_eq!(r["stale_relays"], Value::Array(expected));
    assert_eq!(
        r["overlaps"],
        json!([{"subnet": "10.1.5.0/24", "served_by": "lyon", "relays": [
            {"relay_id": lyon, "site": "lyon", "subnet": "10.1.5.0/24"},
            {"relay_id": paris, "site": "paris", "subnet": "10.1.0.0/16"},
        ]}])
    );

    // The default thresholds are central.toml's: every computer is recent
    // within a day, and a longer stale threshold puts Lyon's relay back in touch.
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(r["sites"][2]["computers_recent"], 3);
    let r = c.coverage("?relay_stale_after=2h").await.ok(StatusCode::OK);
    assert_eq!(r["sites"][1]["relays_up"], 1);
    assert_eq!(r["stale_relays"][0]["reasons"][0]["kind"], "old_info");
    // Once Lyon's relay holds the current info whole, only the floor's and
    // Paris's relays stay stale.
    c.relay_reports(&lyon, &[(tool_id, tool_info, 3)]);
    c.relay_reports(&paris, &[(app_id, app_info, 3), (tool_id, tool_info, 3)]);
    let r = c.coverage("").await.ok(StatusCode::OK);
    let stale: Vec<&str> = r["stale_relays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(stale, [floor.as_str()]);
    // A relay removed no longer serves anyone: its computers become unserved.
    assert_eq!(c.delete_relay(&lyon).await.status, StatusCode::NO_CONTENT);
    let r = c.coverage("").await.ok(StatusCode::OK);
    let mut expected = vec![at_home.id.clone(), silent.id.clone(), in_lyon.id.clone()];
    expected.sort();
    assert_eq!(unserved(&r), expected);
    assert_eq!(r["overlaps"], json!([]));
}

/// `(site, computers, computers_recent, unserved, unserved_recent)` of each
/// site of a coverage report.
fn site_counts(report: &Value) -> Vec<Value> {
    report["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!([
                s["site"],
                s["computers"],
                s["computers_recent"],
                s["unserved"],
                s["unserved_recent"]
            ])
        })
        .collect()
}

/// The site each unserved computer of a coverage report is named for, by hostname.
fn unserved_sites(report: &Value) -> Vec<(String, Value)> {
    let mut named: Vec<(String, Value)> = report["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["hostname"].as_str().unwrap().to_owned(),
                u["site"].clone(),
            )
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[tokio::test]
async fn coverage_names_the_declared_site_of_each_unserved_computer_and_counts_them() {
    let c = Central::start().await;
    c.given_site("hq", &["10.0.0.0/8"]).await;
    // Declared, no relay yet: the field guide's site whose machines were found by hand.
    c.given_site("brest", &["10.3.0.0/16"]).await;
    // HQ's relay covers its office only.
    c.given_relay("hq", &["10.0.1.0/24"], "http://r1").await;
    c.given_agent("hq-office", &["10.0.1.5"]).await;
    let lab = c.given_agent("hq-lab", &["10.0.9.5"]).await;
    // Brest's /16 is more specific than HQ's /8.
    c.given_agent("brest-1", &["10.3.0.4"]).await;
    c.given_agent("brest-2", &["192.168.0.2", "10.3.7.1"]).await;
    c.given_agent("at-home", &["192.168.1.4"]).await;
    c.set_time(T1);
    c.poll(&lab, &[]).await.ok(StatusCode::OK);

    let r = c
        .coverage("?computer_recent_within=1h")
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        unserved_sites(&r),
        [
            ("at-home".to_owned(), Value::Null),
            ("brest-1".to_owned(), json!("brest")),
            ("brest-2".to_owned(), json!("brest")),
            ("hq-lab".to_owned(), json!("hq")),
        ]
    );
    // Only hq-lab was in touch within the hour.
    assert_eq!(
        site_counts(&r),
        [json!(["brest", 0, 0, 2, 0]), json!(["hq", 1, 0, 1, 1])]
    );

    // A relay for Brest: its computers are served there now.
    c.given_relay("brest", &["10.3.0.0/16"], "http://r2").await;
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(
        unserved_sites(&r),
        [
            ("at-home".to_owned(), Value::Null),
            ("hq-lab".to_owned(), json!("hq")),
        ]
    );
    assert_eq!(
        site_counts(&r),
        [json!(["brest", 2, 2, 0, 0]), json!(["hq", 1, 1, 1, 1])]
    );
}

#[tokio::test]
async fn coverage_is_for_admins_and_names_a_bad_threshold() {
    let c = Central::start().await;
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    c.send(Method::GET, "/api/v1/coverage", None, Body::empty())
        .await
        .err_naming(StatusCode::UNAUTHORIZED, &["Authorization"]);
    c.send(
        Method::GET,
        "/api/v1/coverage",
        Some("not-a-token"),
        Body::empty(),
    )
    .await
    .err_naming(StatusCode::UNAUTHORIZED, &["token"]);
    c.send(
        Method::GET,
        "/api/v1/coverage",
        Some(agent.token.as_str()),
        Body::empty(),
    )
    .await
    .err_naming(StatusCode::FORBIDDEN, &["admin"]);
    c.coverage("?relay_stale_after=soon")
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["relay_stale_after", "soon"]);
    c.coverage("?computer_recent_within=10")
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["computer_recent_within", "10"]);
    c.coverage("?stale=1h")
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["stale"]);
    // With nothing but one computer, it is unserved.
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(unserved(&r), [agent.id]);
    assert_eq!(r["sites"], json!([]));
    assert_eq!(r["stale_relays"], json!([]));
}

/// `activated_at` of the first `incomplete` reason of `relay` in a coverage report.
fn activated_at(report: &Value, relay: &str) -> Value {
    report["stale_relays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == relay)
        .and_then(|r| {
            r["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["kind"] == "incomplete")
        })
        .map_or(Value::Null, |x| x["activated_at"].clone())
}

#[tokio::test]
async fn coverage_says_since_when_a_missing_package_has_been_activated() {
    let mut c = Central::start().await;
    c.given_site("paris", &[]).await;
    c.given_site("lyon", &[]).await;
    let (paris, _) = c.given_relay("paris", &["10.1.0.0/16"], "http://r1").await;
    let (lyon, _) = c.given_relay("lyon", &["10.2.0.0/16"], "http://r2").await;
    let pkg = c.given_command_package("tool", "5").await;
    let id = pkg["id"].as_str().unwrap();
    c.activate(id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &paris), T0);
    assert_eq!(activated_at(&r, &lyon), T0);

    // Taking Paris off: Lyon has been activated since T0 all the same.
    c.set_time(T1);
    c.deactivate(id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &paris), Value::Null);
    assert_eq!(activated_at(&r, &lyon), T0);
    // Paris again, from T1; activating for all sites later changes neither.
    c.activate(id, json!({"sites": ["paris"]}))
        .await
        .ok(StatusCode::OK);
    c.set_time("2025-03-01T12:00:00Z");
    c.activate(id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    c.activate(id, json!({"sites": ["paris", "lyon"]}))
        .await
        .ok(StatusCode::OK);
    c.restart_with_db(|_| {});
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &paris), T1);
    assert_eq!(activated_at(&r, &lyon), T0);

    // Deactivated everywhere, then activated for Lyon: from now.
    c.deactivate(id, json!({"all_sites": true}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &lyon), Value::Null);
    c.activate(id, json!({"sites": ["lyon"]}))
        .await
        .ok(StatusCode::OK);
    let r = c.coverage("").await.ok(StatusCode::OK);
    assert_eq!(activated_at(&r, &lyon), "2025-03-01T12:00:00Z");
    // A deleted package takes its times along.
    c.delete_package(id).await;
    let state = c.state.as_ref().unwrap();
    assert!(state.store.activation_times().unwrap().is_empty());
}

#[path = "api/rules.rs"]
mod rules;
