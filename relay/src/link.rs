//! The relay's link to central: one QUIC connection, kept up with back-off, over
//! which the relay learns its site's activated packages, replicates their signed
//! infos and fragments over parallel streams, and reports what it holds.
//!
//! Every fragment is streamed to a temporary file while it is hashed, and only
//! renamed into the cache once its SHA-256 matches the signed info; a bad one is
//! discarded and fetched again. Nothing is held whole in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use futures_util::StreamExt;
use quinn::crypto::rustls::QuicClientConfig;
use sha2::{Digest, Sha256};
use sitecast_common::fragment::{sha256_hex, FragmentPlan};
use sitecast_common::ids::{PackageId, SiteName};
use sitecast_common::info::Info;
use sitecast_common::protocol::{
    self, ActivatedPackage, CentralMessage, HeldPackage, RelayMessage, RelayReport, Request,
    Response,
};
use sitecast_common::signing;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::cache::Cache;
use crate::config::RelayConfig;
use crate::error::RelayError;

/// Fragments in flight at once over parallel streams.
const PARALLEL_FRAGMENTS: usize = 4;
/// Attempts at one fragment within one pass before giving up on the package for now.
const FRAGMENT_ATTEMPTS: u32 = 3;
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
    pub bytes_to_agents: AtomicU64,
    held: Mutex<BTreeMap<PackageId, HeldState>>,
    /// Bumped when holdings change, so the link reports them.
    changed: watch::Sender<u64>,
}

impl Shared {
    /// Loads what the cache holds (after a restart: resume from there).
    pub fn open(cache: Cache) -> Result<Self, RelayError> {
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
            bytes_to_agents: AtomicU64::new(0),
            held: Mutex::new(held),
            changed: watch::Sender::new(0),
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

    /// The report central gets: holdings and counters.
    pub fn report(&self) -> RelayReport {
        RelayReport {
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
            bytes_to_agents: self.bytes_to_agents.load(Ordering::Relaxed),
        }
    }

    /// Fragments held per package (for health and tests).
    pub fn holdings(&self) -> BTreeMap<PackageId, u32> {
        self.lock()
            .iter()
            .map(|(id, h)| (id.clone(), h.fragments.len() as u32))
            .collect()
    }

    fn set_info(&self, id: &PackageId, info_sha256: String, fragments: BTreeSet<u32>) {
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

    fn forget(&self, id: &PackageId) {
        self.lock().remove(id);
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
        .receive_window((32u32 << 20).into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Keeps the link to central up until `shutdown` turns true, reconnecting with
/// exponential back-off.
pub async fn run(
    config: RelayConfig,
    ca: &Path,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let client = client_config(ca)?;
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            r = session(&config, &client, &shared) => match r {
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
) -> Result<(), RelayError> {
    let (host, addr) = resolve(config).await?;
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = quinn::Endpoint::client(bind).map_err(RelayError::io("QUIC client socket"))?;
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
            let keys = signing_keys
                .iter()
                .map(|k| signing::verifying_key_from_pem(&k.pem))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RelayError::Link(format!("central sent a bad signing key: {e}")))?;
            (site, keys)
        }
        CentralMessage::Refused { reason } => return Err(RelayError::Refused(reason)),
        CentralMessage::Activated { .. } => {
            return Err(RelayError::Link("central skipped the welcome".into()))
        }
    };
    tracing::info!(%site, central = %config.central, "connected to central");
    let (desired_tx, desired_rx) = watch::channel(None::<Vec<ActivatedPackage>>);
    let reporter = report_loop(send, Arc::clone(shared));
    let worker = replicate(conn.clone(), Arc::clone(shared), keys, site, desired_rx);
    let reader = async {
        loop {
            match read_message::<CentralMessage>(&mut recv).await? {
                CentralMessage::Activated { packages } => {
                    tracing::debug!(count = packages.len(), "activated set received");
                    let _ = desired_tx.send(Some(packages));
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
    conn.close(0u32.into(), b"relay closing link");
    endpoint.wait_idle().await;
    result
}

async fn report_loop(mut send: quinn::SendStream, shared: Arc<Shared>) -> Result<(), RelayError> {
    let mut changed = shared.changed.subscribe();
    changed.mark_changed();
    loop {
        if changed.changed().await.is_err() {
            return Ok(());
        }
        write_message(&mut send, &RelayMessage::Report(shared.report())).await?;
        tokio::time::sleep(REPORT_INTERVAL).await;
    }
}

async fn replicate(
    conn: quinn::Connection,
    shared: Arc<Shared>,
    keys: Vec<VerifyingKey>,
    site: SiteName,
    mut desired: watch::Receiver<Option<Vec<ActivatedPackage>>>,
) -> Result<(), RelayError> {
    loop {
        if desired.changed().await.is_err() {
            return Ok(());
        }
        let Some(wanted) = desired.borrow_and_update().clone() else {
            continue;
        };
        // Drop what is no longer activated for this site.
        for id in shared.cache.packages()? {
            if !wanted.iter().any(|p| p.id == id) {
                tracing::info!(package = %id, %site, "dropping content no longer activated");
                let s = Arc::clone(&shared);
                let gone = id.clone();
                blocking(move || s.cache.remove(&gone)).await?;
                shared.forget(&id);
            }
        }
        let mut sorted = wanted;
        sorted.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let mut incomplete = false;
        for package in &sorted {
            if desired.has_changed().unwrap_or(true) {
                break;
            }
            match sync_package(&conn, &shared, &keys, package, &desired).await {
                Ok(done) => incomplete |= !done,
                Err(e @ RelayError::Link(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(package = %package.id, error = %e, "replication failed; will retry");
                    incomplete = true;
                }
            }
        }
        if incomplete && !desired.has_changed().unwrap_or(true) {
            // Something failed (bad bytes, missing file on central): try again after a pause.
            tokio::time::sleep(BACKOFF_MIN * 5).await;
            desired.mark_changed();
        }
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, RelayError> + Send + 'static,
) -> Result<R, RelayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RelayError::Invalid(format!("blocking task failed: {e}")))?
}

/// Brings one package up to date; `Ok(true)` when it is held whole.
async fn sync_package(
    conn: &quinn::Connection,
    shared: &Arc<Shared>,
    keys: &[VerifyingKey],
    package: &ActivatedPackage,
    desired: &watch::Receiver<Option<Vec<ActivatedPackage>>>,
) -> Result<bool, RelayError> {
    let id = &package.id;
    let bad = |reason: String| RelayError::BadContent {
        package: id.to_string(),
        reason,
    };
    let cached = shared.cache.info(id)?;
    let envelope = match cached {
        Some(bytes) if sha256_hex(&bytes) == package.info_sha256 => bytes,
        stale => {
            if stale.is_some() {
                let s = Arc::clone(shared);
                let gone = id.clone();
                blocking(move || s.cache.remove(&gone)).await?;
                shared.forget(id);
            }
            let bytes = fetch_info(conn, shared, id).await?;
            if sha256_hex(&bytes) != package.info_sha256 {
                return Err(bad(
                    "central sent an info whose SHA-256 does not match".into()
                ));
            }
            bytes
        }
    };
    let info: Info = signing::verify_info(&envelope, keys)
        .map_err(|e| bad(format!("signed info refused: {e}")))?;
    if info.id() != id {
        return Err(bad(format!(
            "the signed info is for package '{}'",
            info.id()
        )));
    }
    if shared.cache.info(id)?.is_none() {
        let s = Arc::clone(shared);
        let (pid, bytes) = (id.clone(), envelope.clone());
        blocking(move || s.cache.store_info(&pid, &bytes)).await?;
    }
    let plan = info.plan().clone();
    let held: BTreeSet<u32> = shared
        .cache
        .fragments_held(id)?
        .into_iter()
        .filter(|n| *n >= 1 && *n <= plan.count())
        .collect();
    shared.set_info(id, package.info_sha256.clone(), held.clone());
    let mut missing: Vec<u32> = (1..=plan.count()).filter(|n| !held.contains(n)).collect();
    if !missing.is_empty() {
        tracing::info!(package = %id, missing = missing.len(), total = plan.count(), "replicating");
    }
    for attempt in 1..=FRAGMENT_ATTEMPTS {
        if missing.is_empty() {
            break;
        }
        let mut failed = Vec::new();
        let mut fetches = futures_util::stream::iter(std::mem::take(&mut missing))
            .map(|n| {
                let plan = &plan;
                async move { (n, fetch_fragment(conn, shared, id, n, plan).await) }
            })
            .buffer_unordered(PARALLEL_FRAGMENTS);
        while let Some((n, result)) = fetches.next().await {
            match result {
                Ok(()) => shared.add_fragment(id, n),
                Err(e @ RelayError::Link(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(package = %id, fragment = n, attempt, error = %e, "fragment discarded");
                    failed.push(n);
                }
            }
            if desired.has_changed().unwrap_or(true) {
                // The activated set moved (maybe something more urgent): re-plan.
                return Ok(false);
            }
        }
        missing = failed;
    }
    if missing.is_empty() {
        tracing::info!(package = %id, "held whole");
        Ok(true)
    } else {
        Err(bad(format!(
            "{} fragment(s) could not be fetched intact",
            missing.len()
        )))
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
        Response::NotFound { reason } => Err(RelayError::BadContent {
            package: match req {
                Request::Info { package_id } | Request::Fragment { package_id, .. } => {
                    package_id.to_string()
                }
            },
            reason,
        }),
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
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(RelayError::io(&tmp))?;
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
        file.sync_all().await.map_err(RelayError::io(&tmp))?;
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
