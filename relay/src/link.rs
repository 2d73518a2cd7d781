//! The relay's link to central: one QUIC connection, kept up with back-off, over
//! which the relay learns its site's activated packages, replicates their signed
//! infos and fragments over parallel streams, and reports what it holds.
//!
//! Every fragment is streamed to a temporary file while it is hashed, and only
//! renamed into the cache once its SHA-256 matches the signed info; a bad one is
//! discarded and fetched again. Nothing is held whole in memory.

use std::collections::VecDeque;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use quinn::crypto::rustls::QuicClientConfig;
use sha2::{Digest, Sha256};
use sitecast_common::fragment::{sha256_hex, FragmentPlan};
use sitecast_common::ids::PackageId;
use sitecast_common::info::Info;
use sitecast_common::protocol::{
    self, CentralMessage, HeldPackage, RelayMessage, RelayReport, Request, Response,
};
use sitecast_common::replication::{Action, Event, Planner, PlannerConfig, Shape, Wanted};
use sitecast_common::signing;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::RelayConfig;
use crate::error::RelayError;

/// The largest UDP payload the relay accepts and probes for (see central's
/// `quic::MAX_UDP_PAYLOAD` for why not jumbo frames).
const MAX_UDP_PAYLOAD: u16 = 6144;

/// Socket buffers: a burst from central must not overflow the kernel's default
/// (about 208 KiB), or the losses read as an MTU black hole and the link falls
/// back to 1200-byte packets. The kernel caps it at `net.core.rmem_max`.
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER`]-sized buffers (best effort).
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Fragments in flight at once over parallel streams.
pub const PARALLEL_FRAGMENTS: usize = 4;
/// Reports are coalesced: at most one per this interval.
const REPORT_INTERVAL: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What one package's replication has reached.
#[derive(Debug, Clone)]
struct HeldState {
    info_sha256: String,
    fragments: BTreeSet<u32>,
}

/// State shared by the link, the HTTP server and `serve`.
#[derive(Debug)]
pub struct Shared {
    pub cache: Cache,
    pub bytes_from_central: AtomicU64,
    /// UDP bytes received on QUIC connections to central (all of them).
    pub quic_bytes_from_central: AtomicU64,
    pub bytes_to_agents: AtomicU64,
    held: Mutex<BTreeMap<PackageId, HeldState>>,
    /// Bumped when holdings change, so the link reports them.
    changed: watch::Sender<u64>,
    window_open: AtomicBool,
    /// The cap in bytes per second (0: none).
    max_rate: AtomicU64,
    /// Recent (time, bytes_from_central) samples, for the current rate.
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Quota, scrub, imports and health ([`crate::lifecycle`]).
    pub lifecycle: crate::lifecycle::Lifecycle,
}

/// The current rate is measured over this much recent history.
const RATE_WINDOW: Duration = Duration::from_secs(5);

impl Shared {
    /// Loads what the cache holds (after a restart: resume from there).
    pub fn open(cache: Cache, lifecycle: crate::lifecycle::Lifecycle) -> Result<Self, RelayError> {
        let mut held = BTreeMap::new();
        for id in cache.packages()? {
            if let Some(envelope) = cache.info(&id)? {
                let fragments = cache.fragments_held(&id)?;
                held.insert(
                    id,
                    HeldState {
                        info_sha256: sha256_hex(&envelope),
                        fragments,
                    },
                );
            }
        }
        Ok(Self {
            cache,
            bytes_from_central: AtomicU64::new(0),
            quic_bytes_from_central: AtomicU64::new(0),
            bytes_to_agents: AtomicU64::new(0),
            held: Mutex::new(held),
            changed: watch::Sender::new(0),
            window_open: AtomicBool::new(true),
            max_rate: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
            lifecycle,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PackageId, HeldState>> {
        // A panic elsewhere cannot leave this map half-updated (single inserts), so keep going.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// Counts bytes served to agents (and lets central know, coalesced).
    pub fn served(&self, bytes: u64) {
        self.bytes_to_agents.fetch_add(bytes, Ordering::Relaxed);
        self.touch();
    }

    /// Records what the planner says of the window and the cap (reported on change).
    pub fn set_replication_state(&self, window_open: bool, max_rate: Option<u64>) {
        let rate = max_rate.unwrap_or(0);
        let was_open = self.window_open.swap(window_open, Ordering::Relaxed);
        let was_rate = self.max_rate.swap(rate, Ordering::Relaxed);
        if was_open != window_open || was_rate != rate {
            self.touch();
        }
    }

    /// Bytes per second from central over the last few seconds.
    pub fn current_rate(&self) -> u64 {
        let now = Instant::now();
        let bytes = self.bytes_from_central.load(Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back((now, bytes));
        while samples.len() > 2
            && samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            samples.pop_front();
        }
        match samples.front() {
            Some((t, b)) if now.duration_since(*t) >= Duration::from_millis(100) => {
                ((bytes - b) as f64 / now.duration_since(*t).as_secs_f64()) as u64
            }
            _ => 0,
        }
    }

    /// The report central gets: holdings and counters.
    pub fn report(&self) -> RelayReport {
        let max_rate = self.max_rate.load(Ordering::Relaxed);
        RelayReport {
            window_open: self.window_open.load(Ordering::Relaxed),
            max_rate: (max_rate > 0).then_some(max_rate),
            rate: self.current_rate(),
            holdings: self
                .lock()
                .iter()
                .map(|(id, h)| HeldPackage {
                    package_id: id.clone(),
                    info_sha256: h.info_sha256.clone(),
                    held: h.fragments.len() as u32,
                })
                .collect(),
            bytes_from_central: self.bytes_from_central.load(Ordering::Relaxed),
            quic_bytes_from_central: self.quic_bytes_from_central.load(Ordering::Relaxed),
            bytes_to_agents: self.bytes_to_agents.load(Ordering::Relaxed),
            health: self.lifecycle.health(),
        }
    }

    /// Fragments held per package (for health and tests).
    pub fn holdings(&self) -> BTreeMap<PackageId, u32> {
        self.lock()
            .iter()
            .map(|(id, h)| (id.clone(), h.fragments.len() as u32))
            .collect()
    }

    pub(crate) fn set_info(&self, id: &PackageId, info_sha256: String, fragments: BTreeSet<u32>) {
        self.lock().insert(
            id.clone(),
            HeldState {
                info_sha256,
                fragments,
            },
        );
        self.touch();
    }

    fn add_fragment(&self, id: &PackageId, index: u32) {
        if let Some(h) = self.lock().get_mut(id) {
            h.fragments.insert(index);
        }
        self.touch();
    }

    pub(crate) fn forget(&self, id: &PackageId) {
        self.lock().remove(id);
        self.touch();
    }

    /// A held fragment was found bad and deleted (the scrub).
    pub(crate) fn lose_fragment(&self, id: &PackageId, index: u32) {
        if let Some(h) = self.lock().get_mut(id) {
            h.fragments.remove(&index);
        }
        self.touch();
    }

    /// Moves whenever holdings, counters or health change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The health changed: report it.
    pub(crate) fn health_changed(&self) {
        self.touch();
    }
}

/// The QUIC client configuration: central's CA, TLS 1.3, our ALPN.
pub fn client_config(ca: &Path) -> Result<quinn::ClientConfig, RelayError> {
    let pem = std::fs::read(ca).map_err(RelayError::io(ca))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut BufReader::new(&pem[..])) {
        let cert = cert.map_err(|e| RelayError::Tls(format!("{}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| RelayError::Tls(format!("{}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(RelayError::Tls(format!("{}: no certificate", ca.display())));
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| RelayError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| RelayError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .max_idle_timeout(Some(
            Duration::from_secs(30)
                .try_into()
                .map_err(|e| RelayError::Tls(format!("{e}")))?,
        ))
        .stream_receive_window((8u32 << 20).into())
        .receive_window((32u32 << 20).into())
        .mtu_discovery_config(Some({
            // Larger packets where the path allows: fewer packets per byte.
            let mut mtu = quinn::MtuDiscoveryConfig::default();
            mtu.upper_bound(MAX_UDP_PAYLOAD);
            mtu.black_hole_cooldown(Duration::from_secs(10));
            mtu
        }));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Keeps the link to central up until `shutdown` turns true, reconnecting with
/// exponential back-off.
pub async fn run(
    config: RelayConfig,
    ca: &Path,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    planner_config: watch::Receiver<PlannerConfig>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let client = client_config(ca)?;
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            r = session(&config, &client, &shared, &clock, &planner_config) => match r {
                Ok(()) => tracing::info!("central closed the link"),
                Err(e) => tracing::warn!(error = %e, "link to central lost"),
            },
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn resolve(config: &RelayConfig) -> Result<(String, SocketAddr), RelayError> {
    let (host, port) = config.central_host()?;
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| RelayError::Link(format!("cannot resolve {}: {e}", config.central)))?
        .next()
        .ok_or_else(|| RelayError::Link(format!("{} resolves to no address", config.central)))?;
    Ok((host.to_owned(), addr))
}

async fn read_message<T: serde::de::DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<T, RelayError> {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header)
        .await
        .map_err(RelayError::link)?;
    let mut body = vec![0u8; protocol::body_len(header).map_err(RelayError::link)?];
    recv.read_exact(&mut body).await.map_err(RelayError::link)?;
    protocol::decode(&body).map_err(RelayError::link)
}

async fn write_message<T: serde::Serialize>(
    send: &mut quinn::SendStream,
    message: &T,
) -> Result<(), RelayError> {
    send.write_all(&protocol::encode(message))
        .await
        .map_err(RelayError::link)
}

/// One connection's life: hello, then replication and reports until it drops.
async fn session(
    config: &RelayConfig,
    client: &quinn::ClientConfig,
    shared: &Arc<Shared>,
    clock: &Arc<dyn Clock>,
    config_rx: &watch::Receiver<PlannerConfig>,
) -> Result<(), RelayError> {
    let (host, addr) = resolve(config).await?;
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = udp_socket(bind).map_err(RelayError::io("QUIC client socket"))?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| RelayError::Invalid("no async runtime for QUIC".into()))?;
    let mut endpoint_config = quinn::EndpointConfig::default();
    // Accept packets above quinn's 1472-byte default, so MTU discovery can use
    // them where the path allows.
    let _ = endpoint_config.max_udp_payload_size(MAX_UDP_PAYLOAD);
    let endpoint = quinn::Endpoint::new(endpoint_config, None, socket, runtime)
        .map_err(RelayError::io("QUIC client socket"))?;
    let conn = endpoint
        .connect_with(client.clone(), addr, &host)
        .map_err(RelayError::link)?
        .await
        .map_err(RelayError::link)?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(RelayError::link)?;
    write_message(
        &mut send,
        &RelayMessage::Hello {
            version: protocol::VERSION,
            relay_id: config.id.clone(),
            token: config.token.clone(),
            software: format!("sitecast-relay {}", env!("CARGO_PKG_VERSION")),
        },
    )
    .await?;
    let (site, keys) = match read_message::<CentralMessage>(&mut recv).await? {
        CentralMessage::Welcome { site, signing_keys } => {
            shared.lifecycle.remember_keys(&signing_keys);
            let keys = signing_keys
                .iter()
                .map(|k| signing::verifying_key_from_pem(&k.pem))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RelayError::Link(format!("central sent a bad signing key: {e}")))?;
            (site, keys)
        }
        CentralMessage::Refused { reason } => return Err(RelayError::Refused(reason)),
        CentralMessage::Activated { .. } | CentralMessage::Wake { .. } => {
            return Err(RelayError::Link("central skipped the welcome".into()))
        }
    };
    tracing::info!(%site, central = %config.central, "connected to central");
    let wol_port = config.wol_port();
    let (events_tx, events_rx) = mpsc::unbounded_channel::<Event>();
    let udp = UdpCounter::new(conn.clone(), Arc::clone(shared));
    let reporter = report_loop(send, Arc::clone(shared), udp.clone());
    let worker = drive(
        conn.clone(),
        Arc::clone(shared),
        keys,
        events_rx,
        Arc::clone(clock),
        config_rx.clone(),
    );
    let reader = async {
        loop {
            match read_message::<CentralMessage>(&mut recv).await? {
                CentralMessage::Activated { packages } => {
                    tracing::debug!(count = packages.len(), %site, "activated set received");
                    let wanted = packages
                        .into_iter()
                        .map(|p| Wanted {
                            id: p.id,
                            priority: p.priority,
                            info_sha256: p.info_sha256,
                            supersedes: p.supersedes,
                        })
                        .collect();
                    let _ = events_tx.send(Event::Activated(wanted));
                }
                CentralMessage::Wake { targets } => {
                    // On its own task: the repeats must not hold up the activated sets.
                    tokio::spawn(async move {
                        if let Err(e) = crate::wol::wake(&targets, wol_port).await {
                            tracing::warn!(error = %e, "cannot send Wake-on-LAN packets");
                        }
                    });
                }
                other => {
                    return Err::<(), _>(RelayError::Link(format!(
                        "unexpected message from central: {other:?}"
                    )))
                }
            }
        }
    };
    let result = tokio::select! {
        r = reporter => r,
        r = worker => r,
        r = reader => r,
    };
    udp.refresh();
    conn.close(0u32.into(), b"relay closing link");
    endpoint.wait_idle().await;
    result
}

/// Keeps `Shared::quic_bytes_from_central` as earlier connections' total plus
/// what this one received, refreshed before each report so a report that says
/// a package is complete counts every byte that made it so.
#[derive(Clone)]
struct UdpCounter {
    conn: quinn::Connection,
    shared: Arc<Shared>,
    before: u64,
}

impl UdpCounter {
    fn new(conn: quinn::Connection, shared: Arc<Shared>) -> Self {
        let before = shared.quic_bytes_from_central.load(Ordering::Relaxed);
        Self {
            conn,
            shared,
            before,
        }
    }

    fn refresh(&self) {
        self.shared.quic_bytes_from_central.store(
            self.before + self.conn.stats().udp_rx.bytes,
            Ordering::Relaxed,
        );
    }
}

async fn report_loop(
    mut send: quinn::SendStream,
    shared: Arc<Shared>,
    udp: UdpCounter,
) -> Result<(), RelayError> {
    let mut changed = shared.changed.subscribe();
    changed.mark_changed();
    udp.refresh();
    let mut last = shared.report();
    loop {
        // Report on change, and every few seconds while the rate moves.
        tokio::select! {
            r = changed.changed() => if r.is_err() { return Ok(()) },
            () = tokio::time::sleep(RATE_WINDOW) => {}
        }
        udp.refresh();
        let report = shared.report();
        if report != last || report.rate > 0 {
            write_message(&mut send, &RelayMessage::Report(report.clone())).await?;
            last = report;
        }
        tokio::time::sleep(REPORT_INTERVAL).await;
    }
}

/// Drives the [`Planner`] for one connection: performs its actions (fetches run
/// concurrently, as tasks of a `JoinSet` that dies with the connection), feeds it
/// the results, the activated sets, configuration changes and the time.
async fn drive(
    conn: quinn::Connection,
    shared: Arc<Shared>,
    keys: Vec<VerifyingKey>,
    mut events: mpsc::UnboundedReceiver<Event>,
    clock: Arc<dyn Clock>,
    mut config: watch::Receiver<PlannerConfig>,
) -> Result<(), RelayError> {
    let mut planner = Planner::new(config.borrow_and_update().clone());
    // Lifecycle events (scrub, quota, imports) for this connection's planner.
    let mut inbox = shared.lifecycle.inbox().await;
    let _kept = KeptPublished(&shared.lifecycle);
    let mut plans: HashMap<PackageId, FragmentPlan> = HashMap::new();
    let mut wanted_sha: HashMap<PackageId, String> = HashMap::new();
    // Resume from what the cache holds, trusting only infos that still verify.
    for id in shared.cache.packages()? {
        let verified = shared.cache.info(&id)?.and_then(|envelope| {
            signing::verify_info(&envelope, &keys)
                .ok()
                .map(|i| (envelope, i))
        });
        match verified {
            Some((envelope, info)) if info.id() == &id => {
                let held = shared.cache.fragments_held(&id)?;
                planner.handle(
                    clock.now(),
                    Event::Restored {
                        id: id.clone(),
                        info_sha256: sha256_hex(&envelope),
                        shape: shape_of(&info),
                        held,
                    },
                );
                plans.insert(id, info.plan().clone());
            }
            _ => {
                tracing::warn!(package = %id, "cached info does not verify; dropping it");
                let s = Arc::clone(&shared);
                let gone = id.clone();
                blocking(move || s.cache.remove(&gone)).await?;
                shared.forget(&id);
            }
        }
    }
    planner.handle(clock.now(), Event::Connected);
    let mut tasks: JoinSet<Result<Event, RelayError>> = JoinSet::new();
    let mut activated = false;
    loop {
        // The quota evicts only what this planner, told the activated set, keeps.
        shared
            .lifecycle
            .publish_kept(activated.then(|| planner.kept()));
        let now = clock.now();
        shared.set_replication_state(planner.window_open(&now), planner.config().max_rate);
        while let Some(action) = planner.poll_action(now) {
            match action {
                Action::Drop { id } => {
                    tracing::info!(package = %id, "dropping content no longer activated");
                    let s = Arc::clone(&shared);
                    let gone = id.clone();
                    blocking(move || s.cache.remove(&gone)).await?;
                    shared.forget(&id);
                    plans.remove(&id);
                }
                Action::FetchDelta { id, base, lacking } => {
                    shared.lifecycle.needed_now(&base);
                    let (Some(target_plan), Some(base_plan)) =
                        (plans.get(&id).cloned(), plans.get(&base).cloned())
                    else {
                        tasks.spawn(async move { Ok(Event::DeltaFailed { id }) });
                        continue;
                    };
                    let (conn, shared) = (conn.clone(), Arc::clone(&shared));
                    let max_rate = planner.config().max_rate;
                    tasks.spawn(async move {
                        let wanted = DeltaWanted {
                            id,
                            base,
                            lacking,
                            target_plan,
                            base_plan,
                            max_rate,
                        };
                        fetch_delta(&conn, &shared, wanted).await
                    });
                }
                Action::FetchInfo { id } => {
                    let (conn, shared, keys) = (conn.clone(), Arc::clone(&shared), keys.clone());
                    let expected = wanted_sha.get(&id).cloned().unwrap_or_default();
                    tasks.spawn(async move {
                        fetch_verified_info(&conn, &shared, &keys, id, expected).await
                    });
                }
                Action::FetchFragment { id, index, .. } => {
                    let Some(plan) = plans.get(&id).cloned() else {
                        tasks.spawn(async move { Ok(Event::FragmentFailed { id, index }) });
                        continue;
                    };
                    let (conn, shared) = (conn.clone(), Arc::clone(&shared));
                    tasks.spawn(async move {
                        match fetch_fragment(&conn, &shared, &id, index, &plan).await {
                            Ok(()) => Ok(Event::FragmentHeld { id, index }),
                            Err(e @ RelayError::Link(_)) => Err(e),
                            Err(e) => {
                                tracing::warn!(package = %id, fragment = index, error = %e, "fragment discarded; it will be fetched again");
                                Ok(Event::FragmentFailed { id, index })
                            }
                        }
                    });
                }
            }
        }
        // Wake at least every second so a moved wall clock (or a window opening)
        // is noticed promptly.
        let wait = planner
            .poll_timeout(now)
            .map_or(Duration::from_secs(1), |t| t.saturating_sub(now.mono))
            .min(Duration::from_secs(1));
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if let Event::Activated(wanted) = &event {
                        // Needed now: what is activated, and what just stopped being.
                        for id in wanted_sha.keys().chain(wanted.iter().map(|w| &w.id)) {
                            shared.lifecycle.needed_now(id);
                        }
                        activated = true;
                        wanted_sha = wanted.iter().map(|w| (w.id.clone(), w.info_sha256.clone())).collect();
                    }
                    planner.handle(clock.now(), event);
                }
                None => return Ok(()),
            },
            Some(event) = inbox.recv() => {
                if let Event::Restored { id, .. } = &event {
                    // Imported content: its plan, from an info that verifies.
                    match crate::lifecycle::verified_plan(&shared.cache, id, &keys) {
                        Some(plan) => { plans.insert(id.clone(), plan); }
                        None => continue,
                    }
                }
                planner.handle(clock.now(), event);
            }
            Some(done) = tasks.join_next() => {
                let event = done.map_err(|e| RelayError::Invalid(format!("fetch task failed: {e}")))??;
                match &event {
                    Event::InfoHeld { id, .. } => {
                        if let Ok(Some(envelope)) = shared.cache.info(id) {
                            if let Ok(info) = signing::verify_info(&envelope, &keys) {
                                plans.insert(id.clone(), info.plan().clone());
                                // Fragments imported meanwhile are on disk already.
                                let held = shared.cache.fragments_held(id).unwrap_or_default();
                                shared.set_info(id, sha256_hex(&envelope), held);
                            }
                        }
                    }
                    Event::FragmentHeld { id, index } => shared.add_fragment(id, *index),
                    Event::DeltaHeld { id, indices } => {
                        for index in indices {
                            shared.add_fragment(id, *index);
                        }
                    }
                    _ => {}
                }
                planner.handle(clock.now(), event);
            }
            changed = config.changed() => {
                if changed.is_ok() {
                    let c = config.borrow_and_update().clone();
                    tracing::info!(schedule = ?c.schedule.as_ref().map(ToString::to_string), max_rate = ?c.max_rate, "replication settings changed");
                    planner.handle(clock.now(), Event::Config(c));
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Withdraws the planner's kept set when the connection's planner goes.
struct KeptPublished<'a>(&'a crate::lifecycle::Lifecycle);

impl Drop for KeptPublished<'_> {
    fn drop(&mut self) {
        self.0.publish_kept(None);
    }
}

fn shape_of(info: &Info) -> Shape {
    Shape {
        size: info.plan().size(),
        fragment_size: info.plan().fragment_size(),
        count: info.plan().count(),
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, RelayError> + Send + 'static,
) -> Result<R, RelayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RelayError::Invalid(format!("blocking task failed: {e}")))?
}

/// Fetches a signed info, checks it is the one central announced and that it
/// verifies, and stores it.
async fn fetch_verified_info(
    conn: &quinn::Connection,
    shared: &Arc<Shared>,
    keys: &[VerifyingKey],
    id: PackageId,
    expected_sha256: String,
) -> Result<Event, RelayError> {
    let envelope = match fetch_info(conn, shared, &id).await {
        Ok(e) => e,
        Err(e @ RelayError::Link(_)) => return Err(e),
        Err(e) => {
            tracing::warn!(package = %id, error = %e, "no info");
            return Ok(Event::InfoFailed { id });
        }
    };
    let verified = signing::verify_info(&envelope, keys);
    match verified {
        Ok(info) if sha256_hex(&envelope) == expected_sha256 && info.id() == &id => {
            let s = Arc::clone(shared);
            let (pid, bytes) = (id.clone(), envelope);
            blocking(move || s.cache.store_info(&pid, &bytes)).await?;
            Ok(Event::InfoHeld {
                shape: shape_of(&info),
                id,
            })
        }
        other => {
            tracing::warn!(package = %id, verified = ?other.err(), "central's info does not match what it announced");
            Ok(Event::InfoFailed { id })
        }
    }
}

async fn request(
    conn: &quinn::Connection,
    req: &Request,
) -> Result<(u64, quinn::RecvStream), RelayError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(RelayError::link)?;
    write_message(&mut send, req).await?;
    send.finish().map_err(RelayError::link)?;
    match read_message::<Response>(&mut recv).await? {
        Response::Data { len } => Ok((len, recv)),
        Response::NotFound { reason } | Response::Declined { reason } => {
            Err(RelayError::BadContent {
                package: req.package_id().to_string(),
                reason,
            })
        }
    }
}

async fn fetch_info(
    conn: &quinn::Connection,
    shared: &Shared,
    id: &PackageId,
) -> Result<Vec<u8>, RelayError> {
    let (len, mut recv) = request(
        conn,
        &Request::Info {
            package_id: id.clone(),
        },
    )
    .await?;
    if len > u64::from(protocol::MAX_MESSAGE) {
        return Err(RelayError::BadContent {
            package: id.to_string(),
            reason: format!("an info of {len} bytes is too large"),
        });
    }
    let mut bytes = vec![0u8; len as usize];
    recv.read_exact(&mut bytes)
        .await
        .map_err(RelayError::link)?;
    shared.bytes_from_central.fetch_add(len, Ordering::Relaxed);
    Ok(bytes)
}

/// Streams one fragment to a temporary file while hashing it; commits it to the
/// cache only if the digest matches.
async fn fetch_fragment(
    conn: &quinn::Connection,
    shared: &Arc<Shared>,
    id: &PackageId,
    index: u32,
    plan: &FragmentPlan,
) -> Result<(), RelayError> {
    let bad = |reason: String| RelayError::BadContent {
        package: id.to_string(),
        reason: format!("fragment {index}: {reason}"),
    };
    let (_, expected_len) = plan.range(index).map_err(|e| bad(e.to_string()))?;
    let (len, mut recv) = request(
        conn,
        &Request::Fragment {
            package_id: id.clone(),
            index,
        },
    )
    .await?;
    if len != expected_len {
        return Err(bad(format!(
            "central announced {len} bytes, the signed info says {expected_len}"
        )));
    }
    let tmp = shared.cache.temp_path(id, index);
    // Buffered: each tokio file write is a hop to the blocking pool.
    let mut file = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(&tmp)
            .await
            .map_err(RelayError::io(&tmp))?,
    );
    let result = async {
        let mut hasher = Sha256::new();
        let mut left = len;
        while left > 0 {
            let chunk = recv
                .read_chunk(left.min(256 << 10) as usize, true)
                .await
                .map_err(RelayError::link)?
                .ok_or_else(|| {
                    RelayError::Link(format!(
                        "stream ended with {left} bytes of fragment {index} missing"
                    ))
                })?;
            hasher.update(&chunk.bytes);
            file.write_all(&chunk.bytes)
                .await
                .map_err(RelayError::io(&tmp))?;
            left -= chunk.bytes.len() as u64;
            shared
                .bytes_from_central
                .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
        }
        file.flush().await.map_err(RelayError::io(&tmp))?;
        file.get_ref()
            .sync_all()
            .await
            .map_err(RelayError::io(&tmp))?;
        let actual: [u8; 32] = hasher.finalize().into();
        let expected = plan.digest(index).map_err(|e| bad(e.to_string()))?;
        if &actual != expected {
            return Err(bad(format!(
                "SHA-256 {} does not match the signed info's {}",
                hex::encode(actual),
                hex::encode(expected)
            )));
        }
        Ok(())
    }
    .await;
    drop(file);
    match result {
        Ok(()) => {
            let s = Arc::clone(shared);
            let (pid, tmp) = (id.clone(), tmp.clone());
            blocking(move || s.cache.commit_fragment(&tmp, &pid, index)).await
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// A delta the planner asked for, with the verified plans of both packages.
struct DeltaWanted {
    id: PackageId,
    base: PackageId,
    lacking: u64,
    target_plan: FragmentPlan,
    base_plan: FragmentPlan,
    max_rate: Option<u64>,
}

/// Asks central for a delta, receives it into a temporary file (paced by the
/// cap), and rebuilds the fragments it gives; whatever it cannot give is left
/// for plain fragment fetches.
async fn fetch_delta(
    conn: &quinn::Connection,
    shared: &Arc<Shared>,
    w: DeltaWanted,
) -> Result<Event, RelayError> {
    let id = w.id.clone();
    let request = Request::Delta {
        package_id: w.id.clone(),
        base_id: w.base.clone(),
        lacking: w.lacking,
    };
    let (len, mut recv) = match self::request(conn, &request).await {
        Ok(answer) => answer,
        Err(e @ RelayError::Link(_)) => return Err(e),
        Err(e) => {
            tracing::info!(package = %id, base = %w.base, reason = %e, "no delta; plain fragments");
            return Ok(Event::DeltaFailed { id });
        }
    };
    if len >= w.lacking {
        tracing::warn!(package = %id, len, lacking = w.lacking, "central offered a delta larger than what it replaces");
        return Ok(Event::DeltaFailed { id });
    }
    let tmp = shared.cache.temp_path(&id, 0).with_extension("delta");
    let received = receive_to_file(&mut recv, shared, &tmp, len, w.max_rate).await;
    if let Err(e) = received {
        let _ = tokio::fs::remove_file(&tmp).await;
        return match e {
            RelayError::Link(_) => Err(e),
            other => {
                tracing::warn!(package = %id, error = %other, "delta not received; plain fragments");
                Ok(Event::DeltaFailed { id })
            }
        };
    }
    let s = Arc::clone(shared);
    let path = tmp.clone();
    let rebuilt = blocking(move || {
        let held = s.cache.fragments_held(&w.id)?;
        crate::delta::rebuild(
            &s.cache,
            (&w.id, &w.target_plan),
            (&w.base, &w.base_plan),
            &path,
            &held,
        )
    })
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    let rebuilt = rebuilt?;
    match &rebuilt.problem {
        None => {
            tracing::info!(package = %id, fragments = rebuilt.indices.len(), delta_bytes = len, "rebuilt from a delta")
        }
        Some(problem) => {
            tracing::warn!(package = %id, fragments = rebuilt.indices.len(), %problem, "delta partly unusable; the rest as plain fragments")
        }
    }
    Ok(Event::DeltaHeld {
        id,
        indices: rebuilt.indices,
    })
}

/// Receives `len` bytes into `path` (fsynced), counting them, no faster than
/// `max_rate` bytes per second when there is a cap.
async fn receive_to_file(
    recv: &mut quinn::RecvStream,
    shared: &Shared,
    path: &Path,
    len: u64,
    max_rate: Option<u64>,
) -> Result<(), RelayError> {
    let mut file = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(path)
            .await
            .map_err(RelayError::io(path))?,
    );
    let started = tokio::time::Instant::now();
    let mut got = 0u64;
    while got < len {
        let chunk = recv
            .read_chunk((len - got).min(256 << 10) as usize, true)
            .await
            .map_err(RelayError::link)?
            .ok_or_else(|| {
                RelayError::Link(format!("delta stream ended after {got} of {len} bytes"))
            })?;
        file.write_all(&chunk.bytes)
            .await
            .map_err(RelayError::io(path))?;
        got += chunk.bytes.len() as u64;
        shared
            .bytes_from_central
            .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
        shared.touch();
        if let Some(rate) = max_rate.filter(|r| *r > 0) {
            let due = started + Duration::from_secs_f64(got as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
        }
    }
    file.flush().await.map_err(RelayError::io(path))?;
    file.get_ref()
        .sync_all()
        .await
        .map_err(RelayError::io(path))
}
