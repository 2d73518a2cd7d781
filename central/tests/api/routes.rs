//! Which tokens each route takes, and the JSON errors of unknown routes,
//! wrong methods, oversized and malformed requests.

use crate::harness::*;

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
