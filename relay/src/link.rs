//! The relay's link to central: one QUIC connection, kept up with back-off. It
//! connects, authenticates (hello, welcome), hands the replicator an
//! [`Upstream`] to fetch over and tells it what central says
//! ([`LinkEvent`]), and sends central the replicator's [`Snapshot`] as
//! coalesced reports. It holds no replication state of its own.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use quinn::crypto::rustls::QuicClientConfig;
use sitecast_common::protocol::{self, CentralMessage, RelayMessage, Request, Response};
use sitecast_common::replication::Wanted;
use sitecast_common::signing;
use tokio::sync::{mpsc, watch};

use sitecast_io::quic;
use sitecast_io::tls::{self, TlsError};

use crate::config::RelayConfig;
use crate::error::{LinkError, RelayError};
use crate::snapshot::{RateMeter, Snapshot, RATE_WINDOW};
use crate::upstream::{Answer, Body, LinkEvent, Upstream};

/// Reports are coalesced: at most one per this interval.
const REPORT_INTERVAL: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The QUIC client configuration: central's CA, TLS 1.3, our ALPN.
pub fn client_config(ca: &Path) -> Result<quinn::ClientConfig, RelayError> {
    let roots = tls::roots(ca)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::from)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(TlsError::from)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quic::transport();
    // Room for several fragments in flight on the connection as a whole.
    transport.receive_window((32u32 << 20).into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// What the link needs besides its configuration.
pub struct LinkSetup {
    /// The relay's DIR, where central's signing keys are remembered.
    pub dir: std::path::PathBuf,
    pub config: RelayConfig,
    /// The replicator's ear.
    pub events: mpsc::UnboundedSender<LinkEvent>,
    /// What the replicator publishes, reported to central.
    pub snapshot: watch::Receiver<Snapshot>,
}

/// What outlives connections: the UDP bytes of the earlier ones, the rate's history.
#[derive(Default)]
struct Totals {
    quic_bytes_before: u64,
    rate: RateMeter,
}

/// Keeps the link to central up until `shutdown` turns true, reconnecting with
/// exponential back-off.
pub async fn run(
    setup: LinkSetup,
    ca: &Path,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let client = client_config(ca)?;
    let mut totals = Totals::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            r = session(&setup, &client, &mut totals) => match r {
                Ok(()) => tracing::info!("central closed the link"),
                // The replicator closed it, and said why.
                Err(RelayError::Link(LinkError::Connection(quinn::ConnectionError::LocallyClosed))) => {}
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
        .map_err(|source| LinkError::Resolve {
            central: config.central.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| LinkError::NoAddress {
            central: config.central.clone(),
        })?;
    Ok((host.to_owned(), addr))
}

async fn read_message<T: serde::de::DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<T, LinkError> {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header).await?;
    let mut body = vec![0u8; protocol::body_len(header)?];
    recv.read_exact(&mut body).await?;
    Ok(protocol::decode(&body)?)
}

async fn write_message<T: serde::Serialize>(
    send: &mut quinn::SendStream,
    message: &T,
) -> Result<(), LinkError> {
    Ok(send.write_all(&protocol::encode(message)).await?)
}

/// The replicator's way to central over one QUIC connection.
struct Quic {
    conn: quinn::Connection,
}

/// The data of one response, on its own stream.
struct QuicBody(quinn::RecvStream);

impl Upstream for Quic {
    fn request(&self, request: Request) -> BoxFuture<'static, Result<Answer, LinkError>> {
        let conn = self.conn.clone();
        Box::pin(async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            write_message(&mut send, &request).await?;
            send.finish()?;
            let response = read_message::<Response>(&mut recv).await?;
            Ok((response, Box::new(QuicBody(recv)) as Box<dyn Body>))
        })
    }

    fn close(&self) {
        self.conn.close(0u32.into(), b"relay closing link");
    }
}

impl Body for QuicBody {
    fn chunk(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Bytes>, LinkError>> {
        Box::pin(async move { Ok(self.0.read_chunk(max, true).await?.map(|c| c.bytes)) })
    }
}

/// One connection's life: hello, then activated sets and reports until it drops.
async fn session(
    setup: &LinkSetup,
    client: &quinn::ClientConfig,
    totals: &mut Totals,
) -> Result<(), RelayError> {
    let config = &setup.config;
    let (host, addr) = resolve(config).await?;
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = quic::udp_socket(bind).map_err(RelayError::io("QUIC client socket"))?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| RelayError::Invalid("no async runtime for QUIC".into()))?;
    let endpoint = quinn::Endpoint::new(quic::endpoint_config(), None, socket, runtime)
        .map_err(RelayError::io("QUIC client socket"))?;
    let conn = endpoint
        .connect_with(client.clone(), addr, &host)
        .map_err(LinkError::from)?
        .await
        .map_err(LinkError::from)?;
    let result = welcomed(setup, &conn, totals).await;
    totals.quic_bytes_before += conn.stats().udp_rx.bytes;
    conn.close(0u32.into(), b"relay closing link");
    endpoint.wait_idle().await;
    result
}

/// Hello and welcome, then the connection's life as the replicator's upstream.
async fn welcomed(
    setup: &LinkSetup,
    conn: &quinn::Connection,
    totals: &mut Totals,
) -> Result<(), RelayError> {
    let config = &setup.config;
    let (mut send, mut recv) = conn.open_bi().await.map_err(LinkError::from)?;
    write_message(
        &mut send,
        &RelayMessage::Hello {
            version: protocol::VERSION,
            relay_id: config.id.clone(),
            token: config.token.clone(),
            software: crate::snapshot::software(),
        },
    )
    .await?;
    let (site, keys) = match read_message::<CentralMessage>(&mut recv).await? {
        CentralMessage::Welcome {
            site,
            root_key: Some(root),
            keyset: Some(keyset),
            ..
        } => (
            site,
            crate::keys::take(&setup.dir, &root, &keyset, crate::clock::timestamp())?,
        ),
        // A central from before key sets: its keys as they come.
        CentralMessage::Welcome {
            site, signing_keys, ..
        } => {
            if let Err(e) = crate::keys::remember(&setup.dir, &signing_keys) {
                tracing::error!(error = %e, "cannot remember central's signing keys; imports will not verify");
            }
            let keys = signing_keys
                .iter()
                .map(|k| signing::verifying_key_from_pem(&k.pem))
                .collect::<Result<Vec<_>, _>>()
                .map_err(LinkError::from)?;
            (site, keys)
        }
        CentralMessage::Refused { reason } => return Err(RelayError::Refused(reason)),
        CentralMessage::Activated { .. }
        | CentralMessage::Wake { .. }
        | CentralMessage::KeySet { .. } => return Err(LinkError::NoWelcome.into()),
    };
    tracing::info!(%site, central = %config.central, "connected to central");
    let tell = |event: LinkEvent| {
        // The replicator outlives the link.
        let _ = setup.events.send(event);
    };
    tell(LinkEvent::Connected {
        upstream: Arc::new(Quic { conn: conn.clone() }),
        keys,
    });
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
                    tell(LinkEvent::Activated(wanted));
                }
                CentralMessage::Wake { targets } => tell(LinkEvent::Wake(targets)),
                CentralMessage::KeySet { keyset } => {
                    let root = crate::keys::root_path(&setup.dir);
                    let root = std::fs::read_to_string(&root).map_err(RelayError::io(root))?;
                    let keys =
                        crate::keys::take(&setup.dir, &root, &keyset, crate::clock::timestamp())?;
                    tell(LinkEvent::Keys(keys));
                }
                other => {
                    return Err::<(), RelayError>(
                        LinkError::Unexpected {
                            message: format!("{other:?}"),
                        }
                        .into(),
                    )
                }
            }
        }
    };
    let result = tokio::select! {
        r = report_loop(send, setup.snapshot.clone(), conn, totals) => r,
        r = reader => r,
    };
    tell(LinkEvent::Disconnected);
    result
}

/// Sends the replicator's snapshot as reports, on change and every few seconds
/// while bytes move, at most one per [`REPORT_INTERVAL`]. The UDP count is read
/// just before each report, so a report that says a package is complete counts
/// every byte that made it so.
async fn report_loop(
    mut send: quinn::SendStream,
    mut snapshot: watch::Receiver<Snapshot>,
    conn: &quinn::Connection,
    totals: &mut Totals,
) -> Result<(), RelayError> {
    snapshot.mark_changed();
    let mut last = None;
    loop {
        // Report on change, and every few seconds while the rate moves.
        tokio::select! {
            r = snapshot.changed() => if r.is_err() { return Ok(()) },
            () = tokio::time::sleep(RATE_WINDOW) => {}
        }
        let now = snapshot.borrow_and_update().clone();
        let rate = totals.rate.rate(now.bytes_from_central);
        let report = now.report(rate, totals.quic_bytes_before + conn.stats().udp_rx.bytes);
        if last.as_ref() != Some(&report) || report.rate > 0 {
            write_message(&mut send, &RelayMessage::Report(report.clone())).await?;
            last = Some(report);
        }
        tokio::time::sleep(REPORT_INTERVAL).await;
    }
}
