//! The whole central server, composed once: [`run`] serves the HTTPS API and
//! the QUIC endpoint for relays and runs the periodic tasks, until its
//! shutdown future completes; then it stops accepting, drains requests, lets
//! each periodic task finish its round, and returns. The binary and the tests'
//! harness both start central through it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::domain::{containers, keys, power, rules};
use crate::error::CentralError;
use crate::init::Layout;
use crate::state::Central;
use crate::{api, quic, server};

/// What central serves on: the API's TCP listener (with its TLS
/// configuration) and the relays' QUIC endpoint, bound before [`run`] so a
/// caller can learn their addresses (port 0) first.
pub struct Listeners {
    api: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    quic: quinn::Endpoint,
}

impl Listeners {
    /// Binds both with the certificate and key of a central's DIR.
    pub async fn bind(
        layout: &Layout,
        api: SocketAddr,
        quic: SocketAddr,
    ) -> Result<Self, CentralError> {
        let api = TcpListener::bind(api)
            .await
            .map_err(|source| CentralError::Bind { addr: api, source })?;
        Self::with_api(layout, api, quic)
    }

    /// An API listener bound already (its address may be in central.toml),
    /// and the QUIC endpoint bound to `quic`.
    pub fn with_api(
        layout: &Layout,
        api: TcpListener,
        quic: SocketAddr,
    ) -> Result<Self, CentralError> {
        let tls = server::tls_config(&layout.server_cert(), &layout.server_key())?;
        let quic_config = quic::server_config(&layout.server_cert(), &layout.server_key())?;
        let keys = quic::RestartKeys::derive(&layout.server_key())?;
        let quic = quic::endpoint(quic_config, quic, keys)?;
        Ok(Self { api, tls, quic })
    }

    /// The address the API listens on.
    pub fn api_addr(&self) -> Result<SocketAddr, CentralError> {
        self.api
            .local_addr()
            .map_err(CentralError::io("the API listener"))
    }

    /// The address of the QUIC endpoint.
    pub fn quic_addr(&self) -> Result<SocketAddr, CentralError> {
        self.quic
            .local_addr()
            .map_err(CentralError::io("the QUIC endpoint"))
    }
}

/// The tasks central runs on a period, on the blocking pool (they read and
/// write the store). A round that fails logs why; the next one tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Periodic {
    /// Finished job containers are purged after central.toml's ages.
    Purge,
    /// Every rule is re-evaluated: a change whose re-evaluation a crash cut
    /// short is caught up, whatever else happens.
    Rules,
    /// Job containers with `wol` are woken when central's clock reaches their
    /// start, and wakes that reached no relay are asked again.
    Wake,
    /// A new key set in DIR (`sitecast-central key`) is taken into use.
    Keys,
}

impl Periodic {
    pub const ALL: [Periodic; 4] = [
        Periodic::Purge,
        Periodic::Rules,
        Periodic::Wake,
        Periodic::Keys,
    ];

    /// How often [`run`] runs it.
    pub fn every(self) -> Duration {
        match self {
            Periodic::Purge | Periodic::Rules => Duration::from_secs(300),
            Periodic::Wake => Duration::from_secs(5),
            Periodic::Keys => crate::keys::RELOAD_EVERY,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Periodic::Purge => "purge of finished job containers",
            Periodic::Rules => "rule re-evaluation",
            Periodic::Wake => "wake of job containers",
            Periodic::Keys => "key set reload",
        }
    }

    /// One round.
    fn round(self, c: &Central) {
        match self {
            Periodic::Purge => {
                if let Err(e) = containers::purge(c) {
                    tracing::warn!(error = %e, "could not purge finished job containers");
                }
            }
            Periodic::Rules => {
                let guard = c.evaluating();
                rules::reevaluate_all(c, &guard);
            }
            Periodic::Wake => {
                if let Err(e) = power::wake_due_containers(c) {
                    tracing::warn!(error = %e, "could not wake the job containers due");
                }
            }
            Periodic::Keys => {
                if let Err(e) = keys::reload(c) {
                    tracing::error!(error = %e, "cannot take up the new key set; still serving the old one");
                }
            }
        }
    }
}

/// Runs `task` at once and then every `every` until `shutdown` completes; a
/// round under way then is finished, never cut.
pub async fn periodically(
    c: Arc<Central>,
    task: Periodic,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => return,
        }
        let central = Arc::clone(&c);
        if let Err(e) = tokio::task::spawn_blocking(move || task.round(&central)).await {
            tracing::warn!(task = task.name(), error = %e, "a periodic task failed");
        }
    }
}

fn stop_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        // A dropped sender means `run` is gone: stop too.
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Serves central on `listeners` until `shutdown` completes.
pub async fn run(
    central: Arc<Central>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CentralError> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for task in Periodic::ALL {
        tasks.spawn(periodically(
            Arc::clone(&central),
            task,
            task.every(),
            stop_signal(&stopped),
        ));
    }
    tasks.spawn(quic::run(
        listeners.quic,
        Arc::clone(&central),
        stop_signal(&stopped),
    ));
    let limits = central.config.http_limits();
    let served = server::run(
        listeners.api,
        listeners.tls,
        api::app(Arc::clone(&central)),
        limits,
        shutdown,
    )
    .await;
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::warn!(error = %e, "a central task ended abnormally");
        }
    }
    served
}
