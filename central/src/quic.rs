//! Central's QUIC endpoint for relays (SPEC "Relay"; protocol in
//! `sitecast_common::protocol`).
//!
//! Each relay connection is authenticated by the token in its hello (TLS proves
//! central to the relay). Central then pushes the site's activated set at once and
//! again whenever `Central::changes` moves, records the relay's reports, and serves
//! infos and fragments, one request per stream, straight from the package files.
//! Each connection is attached to `Central::relay_links`, through which
//! Wake-on-LAN requests reach the relay's control stream.
//!
//! The endpoint's connection-id and stateless-reset keys are derived from central's
//! TLS key ([`RestartKeys`]), so they are the same after a restart: a relay still
//! holding a connection to a central that crashed gets a reset it can verify at its
//! next packet, and reconnects at once instead of waiting out the idle timeout,
//! deaf to every activation.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use sitecast_common::ids::RelayId;
use sitecast_common::protocol::{self, CentralMessage, RelayMessage, Request, Response};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::domain::relays;
use crate::domain::replication::{self, Answer};
use crate::error::CentralError;
use crate::state::Central;
use crate::store::RelayRecord;

/// Request streams a relay may have open at once.
const MAX_STREAMS: u32 = 16;
/// Unread bytes central accepts per stream, and per connection.
const RECEIVE_WINDOW_PER_STREAM: u32 = 256 << 10;
const RECEIVE_WINDOW: u32 = 1 << 20;
/// Unacknowledged bytes central holds per relay connection.
const SEND_WINDOW: u64 = 16 << 20;
/// The longest request a relay may send on a request stream (a request names a
/// package and a fragment or a base: a few hundred bytes).
const MAX_REQUEST: usize = 16 << 10;

/// A relay that says nothing is dropped after this long.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// One relay's connections attach at most this often (a relay has one link: each
/// new one closes the one before).
const RECONNECT_GAP: Duration = Duration::from_secs(1);
/// The longest hello (a relay id, a token, a software version).
const MAX_HELLO: usize = 16 << 10;
/// Connections still in their handshake or before their hello: past this many,
/// new ones are refused, so nobody without a token holds central's memory.
const MAX_UNAUTHENTICATED: usize = 128;
/// Reports read from one relay at most this often: an honest relay sends one per
/// 200 ms at most, a flooding one is paced by QUIC's flow control, not buffered.
const MIN_REPORT_GAP: Duration = Duration::from_millis(100);
/// Bytes of reports being read or recorded at once, over every relay: one report
/// may be as long as a message ([`protocol::MAX_MESSAGE`]); a thousand relays
/// reporting at once wait for each other rather than multiply that.
const REPORT_BUDGET: u32 = 32 << 20;

/// The QUIC server configuration: central's certificate, TLS 1.3, our ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<quinn::ServerConfig, CentralError> {
    let tls = crate::server::tls_config(cert, key)?;
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![protocol::ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls).map_err(sitecast_io::TlsError::from)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = sitecast_io::quic::transport();
    transport
        // A relay keeps a handful of requests in flight (`PARALLEL_FRAGMENTS`, a
        // delta, the control stream); more only buys a hostile one memory.
        .max_concurrent_bidi_streams(MAX_STREAMS.into())
        .max_concurrent_uni_streams(0u32.into())
        // What a relay sends central is small (requests, reports): central's credit
        // is too, so what one connection can make central buffer stays bounded
        // (streams × stream window, at most the connection window), whatever it sends.
        .stream_receive_window(RECEIVE_WINDOW_PER_STREAM.into())
        .receive_window(RECEIVE_WINDOW.into())
        // What central has written but the relay has not acknowledged: enough for
        // a 1 Gbit/s link at 130 ms, and what one relay that never reads its
        // answers can make central hold (it has one connection at a time).
        .send_window(SEND_WINDOW);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// What the keys that must survive a restart are derived from besides the TLS
/// key, so that each is no other key's.
const RESET_KEY_LABEL: &[u8] = b"sitecast central QUIC stateless reset key v1\n";
const CID_KEY_LABEL: &[u8] = b"sitecast central QUIC connection id key v1\n";

/// What lets a restarted central reset the connections its previous run had,
/// derived from central's TLS key so that they survive restarts and stay secret.
///
/// quinn's defaults are random per process: after a crash the new process takes
/// the old connection ids for invalid ones and drops their packets without a
/// word (and its resets would not match the tokens the old one handed out), so
/// each relay keeps its dead connection for the whole idle timeout (30 s)
/// without hearing of any activation.
pub struct RestartKeys {
    /// Signs stateless resets.
    reset: Arc<ring::hmac::Key>,
    /// Checks that a connection id is one of ours.
    cid: u64,
}

impl RestartKeys {
    /// Derived from the TLS key in the file at `server_key`.
    pub fn derive(server_key: &Path) -> Result<RestartKeys, CentralError> {
        use sha2::{Digest, Sha256};
        let secret = std::fs::read(server_key).map_err(CentralError::io(server_key))?;
        let derive = |label: &[u8]| {
            Sha256::new()
                .chain_update(label)
                .chain_update(&secret)
                .finalize()
        };
        let reset = derive(RESET_KEY_LABEL);
        let cid = derive(CID_KEY_LABEL);
        let mut cid_key = [0u8; 8];
        cid_key.copy_from_slice(&cid[..8]);
        Ok(RestartKeys {
            reset: Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset)),
            cid: u64::from_le_bytes(cid_key),
        })
    }
}

/// Binds the QUIC endpoint, with `keys` for its connection ids and stateless resets.
pub fn endpoint(
    config: quinn::ServerConfig,
    addr: SocketAddr,
    keys: RestartKeys,
) -> Result<quinn::Endpoint, CentralError> {
    let what = format!("QUIC endpoint {addr}");
    let socket = sitecast_io::quic::udp_socket(addr).map_err(CentralError::io(&what))?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| CentralError::Invalid("no async runtime for QUIC".into()))?;
    let mut endpoint_config = sitecast_io::quic::endpoint_config();
    let cid_key = keys.cid;
    endpoint_config
        .reset_key(keys.reset)
        .cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
    quinn::Endpoint::new(endpoint_config, Some(config), socket, runtime)
        .map_err(CentralError::io(what))
}

/// Accepts relays until `shutdown` completes.
pub async fn run(
    endpoint: quinn::Endpoint,
    central: Arc<Central>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let unauthenticated = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    let reports = Arc::new(Semaphore::new(REPORT_BUDGET as usize));
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            () = &mut shutdown => break,
        };
        let Ok(pending) = Arc::clone(&unauthenticated).try_acquire_owned() else {
            tracing::warn!(peer = %incoming.remote_address(), "refusing a QUIC connection: {MAX_UNAUTHENTICATED} are already before their hello");
            incoming.refuse();
            continue;
        };
        let central = Arc::clone(&central);
        let reports = Arc::clone(&reports);
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            match incoming.await {
                Ok(conn) => {
                    if let Err(e) = serve_relay(conn, central, pending, reports).await {
                        tracing::info!(%peer, error = %e, "relay connection ended");
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "QUIC handshake failed"),
            }
        });
    }
    endpoint.close(0u32.into(), b"central shutting down");
    endpoint.wait_idle().await;
}

/// Why a relay connection ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("{0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("{0}")]
    Write(#[from] quinn::WriteError),
    #[error("{0}")]
    Protocol(#[from] protocol::ProtocolError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Central(#[from] CentralError),
}

/// A message of at most `limit` bytes; a longer one is refused before it is read.
async fn read_bounded<T: serde::de::DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    limit: usize,
) -> Result<T, LinkError> {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header).await?;
    let len = protocol::body_len(header)?;
    if len > limit {
        return Err(LinkError::Protocol(protocol::ProtocolError::Malformed(
            format!("a request of {len} bytes is longer than the {limit} a request may be"),
        )));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(protocol::decode(&body)?)
}

/// A message from the relay's control stream and the share of [`REPORT_BUDGET`]
/// it holds until it is recorded.
type Paced = (RelayMessage, OwnedSemaphorePermit);

/// Reads the relay's control stream, one message at a time, no more often than
/// [`MIN_REPORT_GAP`], each body's bytes taken from the shared report budget
/// before it is allocated. Its own task: a read cancelled half-way (as a branch of
/// the link's `select!` would be) would lose the stream's framing.
async fn read_control(
    mut recv: quinn::RecvStream,
    budget: Arc<Semaphore>,
    messages: mpsc::Sender<Result<Paced, LinkError>>,
) {
    loop {
        let read = async {
            let mut header = [0u8; 4];
            recv.read_exact(&mut header).await?;
            let len = protocol::body_len(header)?;
            // body_len bounds len by MAX_MESSAGE, below REPORT_BUDGET.
            let permit = Arc::clone(&budget)
                .acquire_many_owned(u32::try_from(len).unwrap_or(REPORT_BUDGET))
                .await
                .map_err(|_| LinkError::Refused("central is shutting down".into()))?;
            let mut body = vec![0u8; len];
            recv.read_exact(&mut body).await?;
            let message: RelayMessage = protocol::decode(&body)?;
            Ok((message, permit))
        }
        .await;
        let failed = read.is_err();
        if messages.send(read).await.is_err() || failed {
            return;
        }
        tokio::time::sleep(MIN_REPORT_GAP).await;
    }
}

async fn write_message<T: serde::Serialize>(
    send: &mut quinn::SendStream,
    message: &T,
) -> Result<(), LinkError> {
    send.write_all(&protocol::encode(message)).await?;
    Ok(())
}

async fn hello(
    conn: &quinn::Connection,
    central: &Central,
) -> Result<(RelayRecord, quinn::SendStream, quinn::RecvStream), LinkError> {
    let (mut send, mut recv) = conn.accept_bi().await?;
    let message: RelayMessage = read_bounded(&mut recv, MAX_HELLO).await?;
    let RelayMessage::Hello {
        version,
        relay_id,
        token,
        software,
    } = message
    else {
        return Err(LinkError::Refused(
            "the first message must be a hello".into(),
        ));
    };
    let relay = relays::authenticate(central, version, &relay_id, &token)?
        .map_err(|refusal| LinkError::Refused(refusal.to_string()));
    match relay {
        Ok(relay) => {
            tracing::info!(relay = %relay.id, %software, peer = %conn.remote_address(), "relay connected");
            let keys = central.keys();
            write_message(
                &mut send,
                &CentralMessage::Welcome {
                    site: relay.site.clone(),
                    signing_keys: keys.public_keys(),
                    root_key: Some(keys.root_pem.clone()),
                    keyset: Some(keys.envelope.clone()),
                },
            )
            .await?;
            Ok((relay, send, recv))
        }
        Err(LinkError::Refused(reason)) => {
            let _ = write_message(
                &mut send,
                &CentralMessage::Refused {
                    reason: reason.clone(),
                },
            )
            .await;
            let _ = send.finish();
            // Let the refusal reach the relay before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
            conn.close(1u32.into(), b"refused");
            Err(LinkError::Refused(reason))
        }
        Err(e) => Err(e),
    }
}

async fn serve_relay(
    conn: quinn::Connection,
    central: Arc<Central>,
    unauthenticated: OwnedSemaphorePermit,
    report_budget: Arc<Semaphore>,
) -> Result<(), LinkError> {
    let (relay, mut send, recv) = tokio::time::timeout(HELLO_TIMEOUT, hello(&conn, &central))
        .await
        .map_err(|_| LinkError::Refused("no hello in time".into()))??;
    drop(unauthenticated);
    let id = relay.id.clone();
    tokio::time::sleep(central.relay_links.turn(&id, RECONNECT_GAP)).await;
    let mut changes = central.changes.subscribe();
    record(&central, &id, None).await?;
    let mut link = central.relay_links.attach(&id);

    let requests = {
        let conn = conn.clone();
        let central = Arc::clone(&central);
        let id = id.clone();
        tokio::spawn(async move { serve_requests(conn, central, id).await })
    };
    let (control_tx, mut control) = mpsc::channel(1);
    let reader = tokio::spawn(read_control(recv, report_budget, control_tx));
    let result = async {
        changes.mark_changed();
        // The key set the relay has, so a new one goes out before the infos it signs.
        let mut keyset_sent = central.keys().set.version();
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let keys = central.keys();
                    if keys.set.version() != keyset_sent {
                        write_message(&mut send, &CentralMessage::KeySet { keyset: keys.envelope.clone() }).await?;
                        keyset_sent = keys.set.version();
                    }
                    let relay = id.clone();
                    let activated = central.blocking(move |c| replication::activated(c, &relay));
                    let Some(packages) = activated.await? else {
                        conn.close(2u32.into(), b"relay deleted");
                        return Err(LinkError::Refused(format!("relay '{id}' was deleted")));
                    };
                    write_message(&mut send, &CentralMessage::Activated { packages }).await?;
                }
                message = link.messages.recv() => match message {
                    Some(message) => write_message(&mut send, &message).await?,
                    // A newer connection of this relay took its place: one link per
                    // relay, so a relay cannot multiply what central holds for it.
                    None => {
                        conn.close(3u32.into(), b"replaced by a newer connection");
                        return Err(LinkError::Refused(format!("relay '{id}' connected again; this connection is closed")));
                    }
                },
                message = control.recv() => match message {
                    Some(Ok((RelayMessage::Report(report), _permit))) => record(&central, &id, Some(report)).await?,
                    Some(Ok((RelayMessage::Hello { .. }, _))) => return Err(LinkError::Refused("hello sent twice".into())),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
            }
        }
    }
    .await;
    central.relay_links.detach(&id, link.serial);
    requests.abort();
    reader.abort();
    result
}

async fn record(
    central: &Arc<Central>,
    id: &RelayId,
    report: Option<protocol::RelayReport>,
) -> Result<(), LinkError> {
    let central = Arc::clone(central);
    let id = id.clone();
    central
        .blocking(move |c| relays::record_report(c, &id, report.as_ref()))
        .await?;
    Ok(())
}

async fn serve_requests(conn: quinn::Connection, central: Arc<Central>, relay: RelayId) {
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(_) => return,
        };
        let central = Arc::clone(&central);
        let relay = relay.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_request(send, recv, &central, &relay).await {
                tracing::debug!(%relay, error = %e, "request stream failed");
            }
        });
    }
}

async fn refuse(send: &mut quinn::SendStream, response: Response) -> Result<(), LinkError> {
    write_message(send, &response).await?;
    let _ = send.finish();
    Ok(())
}

async fn serve_request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    central: &Arc<Central>,
    relay: &RelayId,
) -> Result<(), LinkError> {
    let request: Request = read_bounded(&mut recv, MAX_REQUEST).await?;
    let asking = relay.clone();
    let sent = match central
        .blocking(move |c| replication::answer(c, &asking, &request))
        .await?
    {
        Answer::Send { path, offset, len } => {
            write_message(&mut send, &Response::Data { len }).await?;
            send_file(&mut send, &path, offset, len).await?
        }
        Answer::NotFound(reason) => {
            return refuse(&mut send, Response::NotFound { reason }).await;
        }
        Answer::Declined(reason) => {
            tracing::debug!(%reason, "delta declined");
            return refuse(&mut send, Response::Declined { reason }).await;
        }
    };
    central.bytes_to_relays.fetch_add(sent, Ordering::Relaxed);
    let _ = send.finish();
    Ok(())
}

/// Streams `len` bytes of `path` from `offset`.
async fn send_file(
    send: &mut quinn::SendStream,
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<u64, LinkError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(CentralError::io(path))?;
    tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset))
        .await
        .map_err(CentralError::io(path))?;
    let mut reader = file.take(len);
    let mut buf = vec![0u8; 256 << 10];
    let mut left = len;
    while left > 0 {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(CentralError::io(path))?;
        if n == 0 {
            return Err(LinkError::Refused(format!(
                "{} is shorter than its metadata",
                path.display()
            )));
        }
        send.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    Ok(len)
}
