//! The one error type of the relay crate.

use std::path::PathBuf;

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
    #[error("TLS: {0}")]
    Tls(String),
    #[error("central refused this relay: {0}")]
    Refused(String),
    #[error("link to central: {0}")]
    Link(String),
    #[error("package {package}: {reason}")]
    BadContent { package: String, reason: String },
}

impl RelayError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RelayError {
        let path = path.into();
        move |source| RelayError::Io { path, source }
    }

    pub fn link(e: impl std::fmt::Display) -> RelayError {
        RelayError::Link(e.to_string())
    }
}
