//! The HTTPS API of SPEC "HTTP API": admin routes and agent routes under `/api/v1`.
//!
//! [`app`] builds the router from a [`Central`]; tests call it with `oneshot`, no
//! socket. Handlers validate wire types into domain types, call the store on the
//! blocking pool (every write fsyncs), and answer JSON.

mod admin;
mod agent;
mod containers;
mod coverage;
pub mod error;
pub mod extract;
mod groups;
mod rules;

pub use containers::{purge as purge_containers, purge_periodically};
pub use rules::reevaluate_periodically as reevaluate_rules_periodically;

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use ed25519_dalek::SigningKey;
use sitecast_common::signing;
use sitecast_common::wire::PublicKey;

use crate::clock::Clock;
use crate::config::CentralConfig;
use crate::error::CentralError;
use crate::init::Loaded;
use crate::jitter::{OsRandom, Random};
use crate::packaging::PackageFiles;
use crate::store::{SledStore, Store};
use crate::tokens;
use error::ApiError;

/// Central's shared state. Immutable after start except through the store,
/// which is internally synchronised.
pub struct Central {
    pub store: Arc<dyn Store>,
    pub files: PackageFiles,
    /// Deltas between versions, for relays that hold the older one.
    pub deltas: Arc<crate::delta::Deltas>,
    pub signing_key: SigningKey,
    pub public_keys: Vec<PublicKey>,
    pub admin_token: [u8; 32],
    pub enroll_token: [u8; 32],
    pub config: CentralConfig,
    pub clock: Arc<dyn Clock>,
    /// Bumped whenever what relays must hold may have changed (activations,
    /// deletions); each relay connection watches it and pushes the new set at once.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// Fragment bytes central served to agents directly (the WAN bytes relays exist to avoid).
    pub fragment_bytes_to_agents: AtomicU64,
    /// Info and fragment bytes central sent to relays over QUIC.
    pub bytes_to_relays: AtomicU64,
    /// Draws the jitter of each poll's interval (replaceable in tests).
    pub random: Arc<dyn Random>,
    /// The relays connected now (Wake-on-LAN requests go through them).
    pub relay_links: crate::power::RelayLinks,
    /// Serialises the re-evaluation of deployment rules (`rules::Evaluating`).
    rules_lock: std::sync::Mutex<()>,
}

impl Central {
    /// Opens the store and the package files of a loaded DIR, cleaning up after
    /// any crash.
    pub fn open(loaded: Loaded, clock: Arc<dyn Clock>) -> Result<Self, CentralError> {
        let store = SledStore::open(&loaded.layout.db())?;
        let known: HashSet<_> = store.packages()?.into_iter().map(|p| p.id).collect();
        let files = PackageFiles::open(&loaded.layout.packages(), &known)?;
        let deltas = Arc::new(crate::delta::Deltas::open(&loaded.layout.deltas())?);
        let verifying = loaded.signing_key.verifying_key();
        let public_keys = vec![PublicKey {
            keyid: signing::key_id(&verifying),
            pem: signing::verifying_key_to_pem(&verifying)?,
        }];
        Ok(Self {
            store: Arc::new(store),
            files,
            deltas,
            public_keys,
            admin_token: tokens::digest(&loaded.admin_token),
            enroll_token: tokens::digest(&loaded.enroll_token),
            signing_key: loaded.signing_key,
            config: loaded.config,
            clock,
            changes: tokio::sync::watch::Sender::new(0),
            fragment_bytes_to_agents: AtomicU64::new(0),
            bytes_to_relays: AtomicU64::new(0),
            random: Arc::new(OsRandom),
            relay_links: crate::power::RelayLinks::default(),
            rules_lock: std::sync::Mutex::new(()),
        })
    }

    /// Tells every connected relay to look at its activated set again.
    pub fn notify_relays(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Runs store work on the blocking pool: sled flushes fsync.
    async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Central) -> Result<R, CentralError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let me = Arc::clone(self);
        match tokio::task::spawn_blocking(move || f(&me)).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => {
                tracing::error!(error = %e, "store task failed");
                Err(ApiError::internal())
            }
        }
    }
}

/// The API router.
pub fn app(state: Arc<Central>) -> Router {
    let api = Router::new()
        .route("/sites", post(admin::add_site).get(admin::list_sites))
        .route("/relays", post(admin::add_relay).get(admin::list_relays))
        .route("/relays/{id}", axum::routing::delete(admin::delete_relay))
        .route(
            "/packages",
            post(admin::create_package).get(admin::list_packages),
        )
        .route(
            "/packages/{id}",
            get(admin::show_package).delete(admin::delete_package),
        )
        .route("/packages/{id}/info", get(admin::package_info))
        .route(
            "/packages/{id}/activations",
            post(admin::activate).delete(admin::deactivate),
        )
        .route("/packages/{id}/assignments", post(admin::assign))
        .route("/packages/{id}/stats", get(admin::stats))
        .route("/packages/{id}/validate", post(admin::validate))
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
        .route("/computers", get(admin::list_computers))
        .route("/computers/{id}", get(admin::show_computer))
        .route(
            "/computers/{id}/packages/{package_id}",
            axum::routing::delete(admin::remove_assignment),
        )
        .route("/computers/{id}/tags", axum::routing::put(groups::set_tags))
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
            axum::routing::delete(groups::remove_member),
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
            axum::routing::delete(groups::remove_package),
        )
        .route("/rules", post(rules::create).get(rules::list))
        .route(
            "/rules/{id}",
            get(rules::show).delete(rules::delete).patch(rules::update),
        )
        .route("/rules/{id}/enable", post(rules::enable))
        .route("/rules/{id}/disable", post(rules::disable))
        .route("/rules/{id}/reevaluate", post(rules::reevaluate))
        .route("/status", get(admin::status))
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
