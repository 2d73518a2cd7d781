//! The one error type of the central crate.

use std::path::PathBuf;

/// Everything that can go wrong in central and its store. [`crate::api::error::ApiError`]
/// maps each to an HTTP status; only the request's own faults are shown to callers.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("{what} '{name}' not found")]
    NotFound { what: &'static str, name: String },
    /// A thing another field names does not exist (`bad supersedes: package 'x' not found`).
    #[error("bad {field}: {what} '{name}' not found")]
    NotFoundIn {
        field: &'static str,
        what: &'static str,
        name: String,
    },
    /// The request clashes with what is stored (a name taken, a thing in use).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed; the message names the field or token.
    #[error("{0}")]
    Invalid(String),
    /// An upload is larger than `max_package_size`.
    #[error("the package is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// An enrollment without the right enroll token.
    #[error("bad enroll_token")]
    BadEnrollToken,
    /// An enroll token that was good, and is no more (expired, used up).
    #[error("enroll_token {0}")]
    SpentEnrollToken(String),
    /// The task writing an upload to disk stopped without saying why.
    #[error("the package writer stopped without an error")]
    WriterStopped,
    /// A random id drawn for a new record is taken: draw another.
    #[error("{what} '{id}' already exists")]
    IdTaken { what: &'static str, id: String },
    /// A task on the blocking pool panicked or was cancelled.
    #[error("background task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] sled::Error),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("store record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(transparent)]
    Tls(#[from] sitecast_io::TlsError),
    #[error("cannot make central's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    KeySet {
        path: PathBuf,
        #[source]
        source: sitecast_common::keyset::KeySetError,
    },
    #[error("key: {0}")]
    Key(#[from] sitecast_common::signing::KeyError),
}

impl CentralError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CentralError {
        let path = path.into();
        move |source| CentralError::Io { path, source }
    }

    pub fn invalid(message: impl Into<String>) -> CentralError {
        CentralError::Invalid(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> CentralError {
        CentralError::Conflict(message.into())
    }

    pub fn not_found(what: &'static str, name: impl ToString) -> CentralError {
        CentralError::NotFound {
            what,
            name: name.to_string(),
        }
    }
}

impl From<sitecast_io::IoError> for CentralError {
    fn from(e: sitecast_io::IoError) -> Self {
        CentralError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
