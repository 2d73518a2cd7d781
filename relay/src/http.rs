//! The relay's HTTP server for the agents of its site (SPEC "Relay"): signed infos
//! byte for byte, fragments with `Range` support streamed from disk, and health.
//! Agents verify everything they get, so plain HTTP on the LAN is enough.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sitecast_common::http_range::{parse_range, Unsatisfiable};
use sitecast_common::ids::{PackageId, RelayId};
use sitecast_common::wire::{ErrorBody, RelayStatus};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch};
use tokio_util::io::ReaderStream;

use crate::cache::Cache;
use crate::snapshot::{Served, Snapshot};

/// What the handlers need: the cache to read, the replicator's snapshot for
/// health, and its ear for what was served.
pub struct HttpState {
    pub relay_id: RelayId,
    pub cache: Arc<Cache>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub served: mpsc::UnboundedSender<Served>,
}

impl HttpState {
    fn served(&self, id: &PackageId, bytes: u64) {
        // The replicator lives as long as the server.
        let _ = self.served.send(Served {
            id: id.clone(),
            bytes,
        });
    }
}

/// The router agents talk to.
pub fn app(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/v1/packages/{id}/info", get(info))
        .route("/v1/packages/{id}/fragments/{n}", get(fragment))
        .route("/v1/health", get(health))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route".into()) })
        .with_state(state)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("{what} not held by this relay"),
    )
}

async fn info(State(s): State<Arc<HttpState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<PackageId>() else {
        return not_found("package");
    };
    match s.cache.info(&id) {
        Ok(Some(bytes)) => {
            s.served(&id, bytes.len() as u64);
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Ok(None) => not_found("package"),
        Err(e) => {
            tracing::error!(error = %e, "reading an info");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        }
    }
}

async fn fragment(
    State(s): State<Arc<HttpState>>,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (Ok(id), Ok(n)) = (id.parse::<PackageId>(), n.parse::<u32>()) else {
        return not_found("fragment");
    };
    let path = s.cache.fragment_path(&id, n);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return not_found("fragment"),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(_) => return not_found("fragment"),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Err(Unsatisfiable) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response()
        }
    };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into());
    }
    s.served(&id, count);
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(count), 64 << 10));
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, count.to_string()),
            (header::ACCEPT_RANGES, "bytes".to_owned()),
        ],
        body,
    )
        .into_response();
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = format!("bytes {start}-{}/{len}", start + count - 1).parse() {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    response
}

async fn health(State(s): State<Arc<HttpState>>) -> Json<RelayStatus> {
    let snapshot = s.snapshot.borrow().clone();
    Json(RelayStatus {
        status: "ok".into(),
        relay_id: s.relay_id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        holdings: snapshot.fragments_held(),
        bytes_from_central: snapshot.bytes_from_central,
        bytes_to_agents: snapshot.bytes_to_agents,
        health: snapshot.health,
    })
}
