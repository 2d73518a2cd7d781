//! The HTTPS API: admin routes and agent routes under `/api/v1`.
//!
//! [`app`] builds the router from a [`Central`]; tests call it with `oneshot`,
//! no socket. Each handler extracts (the caller's role, JSON bodies, paths and
//! queries, whose errors name the field), makes one call into
//! [`crate::domain`] (on the blocking pool when it touches the store), and
//! shapes the answer; [`ApiError`] maps domain errors to status codes.

mod agent;
mod computers;
mod containers;
mod coverage;
pub mod error;
pub mod extract;
mod groups;
mod packages;
mod relays;
mod rules;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::state::Central;
use error::ApiError;

/// What every handler is given: the shared state.
type Shared = State<Arc<Central>>;

/// A signed envelope as a JSON response, byte for byte as it was signed.
fn envelope_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// The API router.
pub fn app(state: Arc<Central>) -> Router {
    let api = Router::new()
        .route("/sites", post(relays::add_site).get(relays::list_sites))
        .route("/relays", post(relays::add_relay).get(relays::list_relays))
        .route("/relays/{id}", delete(relays::delete_relay))
        .route("/packages", post(packages::create).get(packages::list))
        .route(
            "/packages/{id}",
            get(packages::show).delete(packages::delete),
        )
        .route("/packages/{id}/info", get(packages::info))
        .route(
            "/packages/{id}/activations",
            post(packages::activate).delete(packages::deactivate),
        )
        .route("/packages/{id}/assignments", post(packages::assign))
        .route("/packages/{id}/stats", get(packages::stats))
        .route("/packages/{id}/validate", post(packages::validate))
        .route(
            "/containers",
            post(containers::create).get(containers::list),
        )
        .route(
            "/containers/{id}",
            get(containers::show).delete(containers::delete),
        )
        .route("/containers/{id}/retry", post(containers::retry))
        .route("/containers/{id}/cancel", post(containers::cancel))
        .route("/computers", get(computers::list))
        .route(
            "/computers/{id}",
            get(computers::show).delete(computers::delete),
        )
        .route(
            "/computers/{id}/packages/{package_id}",
            delete(computers::remove_assignment),
        )
        .route("/computers/{id}/tags", put(computers::set_tags))
        .route("/computers/{id}/approve", post(computers::approve))
        .route(
            "/enroll-tokens",
            post(computers::create_enroll_token).get(computers::list_enroll_tokens),
        )
        .route(
            "/enroll-tokens/{id}",
            delete(computers::delete_enroll_token),
        )
        // Rejecting a pending computer is deleting it: its token is revoked.
        .route("/computers/{id}/reject", post(computers::delete))
        .route(
            "/groups",
            post(groups::create_group).get(groups::list_groups),
        )
        .route(
            "/groups/{name}",
            get(groups::show_group).delete(groups::delete_group),
        )
        .route("/groups/{name}/members", post(groups::add_members))
        .route(
            "/groups/{name}/members/{computer}",
            delete(groups::remove_member),
        )
        .route(
            "/package-groups",
            post(groups::create_package_group).get(groups::list_package_groups),
        )
        .route(
            "/package-groups/{name}",
            get(groups::show_package_group).delete(groups::delete_package_group),
        )
        .route("/package-groups/{name}/members", post(groups::add_packages))
        .route(
            "/package-groups/{name}/members/{package}",
            delete(groups::remove_package),
        )
        .route("/rules", post(rules::create).get(rules::list))
        .route(
            "/rules/{id}",
            get(rules::show).delete(rules::delete).patch(rules::update),
        )
        .route("/rules/{id}/enable", post(rules::enable))
        .route("/rules/{id}/disable", post(rules::disable))
        .route("/rules/{id}/reevaluate", post(rules::reevaluate))
        .route("/status", get(relays::status))
        .route("/coverage", get(coverage::coverage))
        .route("/agent/enroll", post(agent::enroll))
        .route("/agent/poll", post(agent::poll))
        .route("/agent/packages/{id}/info", get(agent::info))
        .route("/agent/packages/{id}/fragments/{n}", get(agent::fragment))
        .route("/agent/packages/{id}/status", post(agent::status))
        .route("/agent/relays/{id}/problems", post(agent::relay_problem));
    Router::new()
        .nest("/api/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!("no route {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", method, uri.path()),
    )
}
