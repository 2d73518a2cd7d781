//! The Sitecast relay: a per-site cache that replicates signed infos and verified
//! fragments from central over QUIC ([`link`]) and serves them to the agents of its
//! site over HTTP ([`http`]). Wiping a relay loses nothing but WAN bytes.
//!
//! One task, the [`replicator`], owns replication state for the relay's whole
//! life; the link and the HTTP server talk to it through channels and read the
//! [`snapshot`] it publishes. Modules, leaves first: `error`, `config`, `cache`,
//! `keys`, `quota`, `scrub`, `import`, `delta`, `wol`, `clock`, `upstream`,
//! `snapshot`, `fetch`, then `replicator`, and `link` and `http` beside it.

pub mod cache;
pub mod clock;
pub mod config;
pub mod delta;
pub mod error;
pub mod fetch;
pub mod http;
pub mod import;
pub mod keys;
pub mod link;
pub mod quota;
pub mod replicator;
pub mod scrub;
pub mod snapshot;
pub mod upstream;
pub mod wol;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::RelayConfig;
pub use error::RelayError;
pub use replicator::planner_config;
use tokio::sync::watch;

/// What `sitecast-relay enroll` is told.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub central: String,
    pub ca: PathBuf,
    pub id: sitecast_common::ids::RelayId,
    pub token: String,
    pub listen: std::net::SocketAddr,
    pub schedule: Option<sitecast_common::constraint::TimeFrames>,
    pub max_rate: Option<sitecast_common::units::Rate>,
    /// Quota on the cache (`None`: unlimited).
    pub max_disk: Option<sitecast_common::units::Size>,
    /// Time between scrubs (`None`: the default; `0s`: never).
    pub scrub_interval: Option<sitecast_common::units::Duration>,
}

/// Writes `DIR/relay.toml` and a copy of central's CA; refuses to overwrite.
pub fn enroll(dir: &Path, opts: EnrollOptions) -> Result<RelayConfig, RelayError> {
    let config_path = RelayConfig::path(dir);
    if config_path.exists() {
        return Err(RelayError::Invalid(format!(
            "{} already exists; this directory is already a relay",
            config_path.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(RelayError::io(dir))?;
    let ca = std::fs::read(&opts.ca).map_err(RelayError::io(&opts.ca))?;
    // Fail now, not at the first connection, if the CA is unusable.
    link::client_config(&opts.ca)?;
    cache::write_atomically(&RelayConfig::ca_path(dir), &ca)?;
    let config = RelayConfig {
        central: opts.central,
        id: opts.id,
        token: opts.token.trim().to_owned(),
        listen: opts.listen,
        schedule: opts.schedule,
        max_rate: opts.max_rate,
        max_disk: opts.max_disk.filter(|s| s.bytes() > 0),
        scrub_interval: opts.scrub_interval,
        wol_port: None,
        http_header_timeout: None,
        http_idle_timeout: None,
        http_max_connections: None,
    };
    config.central_host()?;
    config.save(dir)?;
    Ok(config)
}

/// Runs a relay from its DIR: the link to central and the HTTP server on
/// `listener`, until `shutdown` completes. Tests pass a listener bound to port 0.
pub async fn serve(
    dir: &Path,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    serve_with_clock(
        dir,
        listener,
        shutdown,
        Arc::new(clock::SystemClock::default()),
    )
    .await
}

/// Re-reads `relay.toml` when it changes (`sitecast-relay config`), so schedule,
/// cap, quota and scrub interval take effect without a restart.
async fn watch_config(
    dir: PathBuf,
    tx: watch::Sender<RelayConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let path = RelayConfig::path(&dir);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match RelayConfig::load(&dir) {
            Ok(c) => {
                tx.send_replace(c);
            }
            Err(e) => {
                tracing::error!(error = %e, "relay.toml changed but cannot be read; keeping the old settings")
            }
        }
    }
}

/// [`serve`] with an injected clock (tests move the wall clock across windows).
pub async fn serve_with_clock(
    dir: &Path,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn clock::Clock>,
) -> Result<(), RelayError> {
    let config = RelayConfig::load(dir)?;
    let cache = Arc::new(cache::Cache::open(&dir.join("cache"))?);
    let (replicator, inbox, handles) = replicator::Replicator::new(replicator::Setup {
        dir: dir.to_owned(),
        cache: Arc::clone(&cache),
        config: config.clone(),
        clock,
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let app = http::app(Arc::new(http::HttpState {
        relay_id: config.id.clone(),
        cache,
        snapshot: handles.snapshot.clone(),
        served: handles.served.clone(),
    }));
    let http = {
        let mut stop = stop_rx.clone();
        let limits = config
            .http_limits()
            .fitting(sitecast_io::http::raise_fd_limit());
        tokio::spawn(sitecast_io::http::serve(
            listener,
            limits,
            |tcp, _| async move { Some(tcp) },
            app,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    };
    tokio::spawn(watch_config(
        dir.to_owned(),
        handles.config,
        stop_rx.clone(),
    ));
    let replicating = tokio::spawn(replicator.run(inbox, stop_rx.clone()));
    let ca = RelayConfig::ca_path(dir);
    let link = link::run(
        link::LinkSetup {
            dir: dir.to_owned(),
            config,
            events: handles.link,
            snapshot: handles.snapshot,
        },
        &ca,
        stop_rx,
    )
    .await;
    if let Err(e) = http.await {
        tracing::error!(error = %e, "HTTP server task failed");
    }
    if let Err(e) = replicating.await {
        tracing::error!(error = %e, "replicator task failed");
    }
    link
}
