//! The route table's access rules, route by route: every route `api::app`
//! declares (read from `src/api/mod.rs`, so a new route is covered without
//! editing this test) answers 401 without a token; admin routes answer 403 to
//! an agent token and agent routes 403 to the admin token.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sitecast_central::clock::SystemClock;
use sitecast_central::init::{self, InitOptions};
use sitecast_central::{api, Central};
use tower::ServiceExt;

const API_SOURCE: &str = include_str!("../src/api/mod.rs");

/// One method of one route, the path as the router declares it (with `{param}`s).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    method: Method,
    path: String,
}

impl Route {
    fn is_agent(&self) -> bool {
        self.path.starts_with("/agent/")
    }
}

/// The first string literal at or after `at`: its text and where it ends.
fn string_at(text: &str, at: usize) -> Option<(String, usize)> {
    let open = at + text[at..].find('"')?;
    let close = open + 1 + text[open + 1..].find('"')?;
    Some((text[open + 1..close].to_owned(), close + 1))
}

/// Where the parenthesis opened just before `at` closes.
fn closing_paren(text: &str, at: usize) -> usize {
    let mut depth = 1;
    for (i, c) in text[at..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return at + i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// The methods a route's method router chains: `post(a).get(b)`.
fn methods(args: &str) -> Vec<Method> {
    const METHODS: &[(&str, Method)] = &[
        ("get", Method::GET),
        ("post", Method::POST),
        ("put", Method::PUT),
        ("patch", Method::PATCH),
        ("delete", Method::DELETE),
    ];
    let mut out = Vec::new();
    for (name, method) in METHODS {
        let needle = format!("{name}(");
        for (at, _) in args.match_indices(&needle) {
            let before = args[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                out.push((at, method.clone()));
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, m)| m).collect()
}

/// Every `.route("PATH", METHOD(..).METHOD(..))` of the source, prefixed by its
/// `.nest("PREFIX", ..)`.
fn route_table(source: &str) -> (String, Vec<Route>) {
    let prefix = source
        .find(".nest(")
        .and_then(|at| string_at(source, at))
        .map(|(p, _)| p)
        .unwrap_or_default();
    let mut routes = Vec::new();
    for (at, _) in source.match_indices(".route(") {
        let args_start = at + ".route(".len();
        let Some((path, after_path)) = string_at(source, args_start) else {
            continue;
        };
        let end = closing_paren(source, args_start);
        for method in methods(&source[after_path..end]) {
            routes.push(Route {
                method,
                path: path.clone(),
            });
        }
    }
    (prefix, routes)
}

/// The path with each `{param}` replaced by a well-formed value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{id}" => "a1b2c3d4e5f6",
            "{n}" => "0",
            "{name}" => "lab",
            "{computer}" => "c0ffee01",
            "{package}" | "{package_id}" => "b7e1d2f3a4c5",
            s if s.starts_with('{') => "x1",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

struct Harness {
    _tmp: tempfile::TempDir,
    app: Router,
    admin: String,
    enroll: String,
}

impl Harness {
    fn start() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("central");
        let layout = init::init(&dir, &InitOptions::default()).unwrap();
        let loaded = init::load(&dir).unwrap();
        let central = Central::open(loaded, Arc::new(SystemClock)).unwrap();
        Harness {
            app: api::app(Arc::new(central)),
            admin: init::read_token(&layout.admin_token()).unwrap(),
            enroll: init::read_token(&layout.enroll_token()).unwrap(),
            _tmp: tmp,
        }
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn agent_token(&self, prefix: &str) -> String {
        let (status, body) = self
            .send(
                Method::POST,
                &format!("{prefix}/agent/enroll"),
                None,
                json!({
                    "enroll_token": self.enroll,
                    "hostname": "pc-01",
                    "os": "linux",
                    "addresses": ["10.0.0.5"],
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "enroll: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }
}

#[test]
fn the_route_table_is_read_from_the_router() {
    let (prefix, routes) = route_table(API_SOURCE);
    assert_eq!(prefix, "/api/v1");
    assert!(
        routes.len() > 30,
        "only {} routes: {routes:?}",
        routes.len()
    );
    for (method, path) in [
        (Method::GET, "/packages/{id}"),
        (Method::DELETE, "/packages/{id}"),
        (Method::PATCH, "/rules/{id}"),
        (Method::POST, "/agent/enroll"),
        (Method::GET, "/agent/packages/{id}/fragments/{n}"),
    ] {
        let route = Route {
            method: method.clone(),
            path: path.to_owned(),
        };
        assert!(routes.contains(&route), "no {method} {path} in {routes:?}");
    }
    assert_eq!(
        concrete("/groups/{name}/members/{computer}"),
        "/groups/lab/members/c0ffee01"
    );
}

#[test]
fn the_parser_reads_chained_methods_and_nested_calls() {
    let source = r#"
        let api = Router::new()
            .route("/a", post(x::create).get(x::list))
            .route(
                "/a/{id}",
                get(x::show).delete(x::delete).patch(x::update),
            )
            .route("/b", put(y::get_it));
        Router::new().nest("/api/v9", api)
    "#;
    let (prefix, routes) = route_table(source);
    assert_eq!(prefix, "/api/v9");
    let table: Vec<String> = routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        table,
        [
            "POST /a",
            "GET /a",
            "GET /a/{id}",
            "DELETE /a/{id}",
            "PATCH /a/{id}",
            "PUT /b"
        ]
    );
}

#[tokio::test]
async fn every_route_refuses_a_caller_without_the_right_token() {
    let (prefix, routes) = route_table(API_SOURCE);
    let central = Harness::start();
    let agent = central.agent_token(&prefix).await;
    let mut wrong = Vec::new();
    let mut asked = 0;
    for route in &routes {
        if route.is_agent() && route.path == "/agent/enroll" {
            continue;
        }
        let uri = format!("{prefix}{}", concrete(&route.path));
        let (other_role, other_token) = if route.is_agent() {
            ("the admin token", central.admin.as_str())
        } else {
            ("an agent token", agent.as_str())
        };
        let checks = [
            ("no token", None, StatusCode::UNAUTHORIZED),
            (other_role, Some(other_token), StatusCode::FORBIDDEN),
        ];
        for (what, token, expected) in checks {
            let (status, body) = central
                .send(route.method.clone(), &uri, token, json!({}))
                .await;
            asked += 1;
            if status != expected {
                wrong.push(format!(
                    "{} {uri} with {what}: {status} (expected {expected}): {body}",
                    route.method
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Two requests for every route but enroll.
    assert_eq!(asked, 2 * (routes.len() - 1));
}
