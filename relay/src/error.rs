//! The error types of the relay crate: [`RelayError`], and [`LinkError`] for
//! what breaks the link to central (which ends the connection, not the relay).

use std::path::PathBuf;

use sitecast_common::protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Tls(#[from] sitecast_io::TlsError),
    #[error("central refused this relay: {0}")]
    Refused(String),
    /// The connection to central broke: it is closed and made again.
    #[error("link to central: {0}")]
    Link(#[from] LinkError),
    #[error("package {package}: {reason}")]
    BadContent { package: String, reason: String },
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl RelayError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RelayError {
        let path = path.into();
        move |source| RelayError::Io { path, source }
    }
}

/// What went wrong with the connection to central itself (as opposed to what
/// it carried): resolving, connecting, streams, framing, the handshake.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot resolve {central}: {source}")]
    Resolve {
        central: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{central} resolves to no address")]
    NoAddress { central: String },
    #[error(transparent)]
    Connect(#[from] quinn::ConnectError),
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
    #[error(transparent)]
    Read(#[from] quinn::ReadError),
    #[error(transparent)]
    ReadExact(#[from] quinn::ReadExactError),
    #[error(transparent)]
    Closed(#[from] quinn::ClosedStream),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("central sent a bad signing key: {0}")]
    BadKey(#[from] sitecast_common::signing::KeyError),
    #[error("central skipped the welcome")]
    NoWelcome,
    #[error("unexpected message from central: {message}")]
    Unexpected { message: String },
    #[error("stream ended with {missing} bytes of {what} missing")]
    Cut { what: String, missing: u64 },
    /// The connection is gone (closed by this side, or by a test's fake link).
    #[error("the connection to central is closed")]
    Down,
}

impl From<sitecast_io::IoError> for RelayError {
    fn from(e: sitecast_io::IoError) -> Self {
        RelayError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
