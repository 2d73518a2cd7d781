//! Serving the API over HTTPS: rustls with the ring provider, on the bounded
//! serving loop of `sitecast_io::http` (handshake and header deadlines, idle
//! connections closed, a connection limit, graceful shutdown). `run` takes the
//! shutdown signal as a future, which is the seam tests use.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use sitecast_io::http::{self, Limits};
use sitecast_io::tls::{self, TlsError};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::CentralError;

/// A rustls server configuration from PEM certificate chain and key files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, CentralError> {
    let certs = tls::certificates(cert)?;
    let key = tls::private_key(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::from)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::from)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over HTTPS on `listener` under `limits` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CentralError> {
    let acceptor = TlsAcceptor::from(tls);
    let limits = limits.fitting(http::raise_fd_limit());
    let handshake = move |tcp, peer: SocketAddr| {
        let acceptor = acceptor.clone();
        async move {
            acceptor
                .accept(tcp)
                .await
                .inspect_err(|e| tracing::debug!(%peer, error = %e, "TLS handshake failed"))
                .ok()
        }
    };
    http::serve(listener, limits, handshake, app, shutdown).await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
