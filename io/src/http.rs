//! Serving an axum `Router` on a TCP listener so that no client can starve the
//! server: central's HTTPS API and the relay's HTTP server for agents both run here.
//!
//! - **Connections are counted.** At most [`Limits::max_connections`] are served at
//!   once; past that the listener is not accepted from, so new clients wait in the
//!   kernel's backlog instead of the process running out of file descriptors (which
//!   would fail its own file opens too). [`raise_fd_limit`] lifts the soft descriptor
//!   limit to the hard one and says how many connections fit.
//! - **The handshake and the request head have a deadline** ([`Limits::header_timeout`]):
//!   a TLS handshake or HTTP/1 headers sent a byte at a time are cut off.
//! - **Idle connections are closed** ([`Limits::idle_timeout`]): no byte either way and
//!   no request being handled for that long.
//! - **Shutdown is graceful**: on the `shutdown` future, accepting stops and the
//!   requests under way get [`DRAIN`] to finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Descriptors kept for everything but connections: files, the store, QUIC, logs.
const RESERVED_FDS: u64 = 128;

/// What a listener puts up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The TLS handshake, and each HTTP/1 request head, must be complete within this.
    pub header_timeout: Duration,
    /// A connection with no byte either way and no request under way is closed after this.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(120),
            max_connections: 4096,
        }
    }
}

impl Limits {
    /// The limits a configuration file sets, the defaults for what it leaves out.
    pub fn or_defaults(
        header_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
        max_connections: Option<usize>,
    ) -> Self {
        let default = Self::default();
        Self {
            header_timeout: header_timeout.unwrap_or(default.header_timeout),
            idle_timeout: idle_timeout.unwrap_or(default.idle_timeout),
            max_connections: max_connections.unwrap_or(default.max_connections),
        }
    }

    /// These limits with `max_connections` cut to what `fds` descriptors allow.
    pub fn fitting(self, fds: u64) -> Self {
        let room = usize::try_from(fds.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
        if room < self.max_connections {
            tracing::warn!(
                wanted = self.max_connections,
                allowed = room,
                "the file descriptor limit allows fewer connections than configured"
            );
        }
        Self {
            max_connections: self.max_connections.min(room),
            ..self
        }
    }
}

/// Raises the soft limit on open file descriptors to the hard limit, and answers the
/// limit now in force (what [`Limits::fitting`] takes).
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the file descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown`. `handshake` turns each
/// accepted TCP stream into the stream HTTP runs on (a TLS handshake; or the stream
/// itself); `None` drops the connection. Every request carries the peer's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve<H, F, S>(
    listener: TcpListener,
    limits: Limits,
    handshake: H,
    app: Router,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(TcpStream, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Option<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // hyper's default HTTP/2 windows cap an upload at a few tens of MiB/s even on
    // loopback; uploads need room for a few MiB in flight.
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(16 << 20);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (handshake, builder, watcher, app) = (
            handshake.clone(),
            builder.clone(),
            graceful.watcher(),
            app.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let stream =
                match tokio::time::timeout(limits.header_timeout, handshake(tcp, peer)).await {
                    Ok(Some(stream)) => stream,
                    Ok(None) => return,
                    Err(_) => {
                        tracing::debug!(%peer, "handshake timed out");
                        return;
                    }
                };
            let activity = Activity::new();
            let busy = Arc::clone(&activity);
            let service = app
                .map_request(
                    move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                        req
                    },
                )
                .map_future({
                    move |answer| {
                        let request = Request::start(Arc::clone(&busy));
                        async move {
                            let answer = answer.await;
                            drop(request);
                            answer
                        }
                    }
                });
            let io = Watched {
                inner: stream,
                activity: Arc::clone(&activity),
            };
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(service),
            );
            let conn = watcher.watch(conn.into_owned());
            tokio::select! {
                served = conn => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!(%peer, "closing an idle connection");
                }
            }
        });
    }
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain deadline");
    }
}

/// When a connection last moved a byte, and how many of its requests are being handled.
struct Activity {
    epoch: Instant,
    /// Milliseconds from `epoch` to the last byte read or written.
    last: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once the connection has been idle for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let due = last + timeout;
            if Instant::now() >= due {
                if self.requests.load(Ordering::Relaxed) == 0 {
                    return;
                }
                // A handler is at work: look again a timeout later.
                self.touch();
                continue;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// A request being handled, counted in its connection's [`Activity`] until dropped.
struct Request(Arc<Activity>);

impl Request {
    fn start(activity: Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that notes every byte it moves in its connection's [`Activity`].
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
