//! The one error type of the central crate.

use std::path::PathBuf;

/// Everything that can go wrong in central, its store or the admin CLI.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("{what} '{name}' not found")]
    NotFound { what: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] sled::Error),
    #[error("store record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("key: {0}")]
    Key(#[from] sitecast_common::signing::KeyError),
    #[error("{0}")]
    Http(String),
    #[error("central answered {status}: {message}")]
    Api { status: u16, message: String },
}

impl CentralError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CentralError {
        let path = path.into();
        move |source| CentralError::Io { path, source }
    }

    pub fn not_found(what: &'static str, name: impl ToString) -> CentralError {
        CentralError::NotFound {
            what,
            name: name.to_string(),
        }
    }
}
