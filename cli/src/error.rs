//! The one error type of the admin CLI crate.
//!
//! Each message is printed as is, after `sitecast: `, by the binary; a variant's
//! text therefore already says everything the admin needs (for reqwest errors,
//! the whole cause chain, since reqwest's own message hides it).

use std::path::PathBuf;

use sitecast_common::errors::chain;

/// Everything that can go wrong between the admin's flags and central's answer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Refused before asking central: a bad id, a missing connection setting.
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `--central-dir`'s `central.toml` that does not say where central listens.
    #[error("{path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: the token file is empty")]
    EmptyToken { path: PathBuf },
    /// The CA file is not a PEM certificate.
    #[error("TLS: {path}: {source}")]
    Ca {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client itself could not be set up.
    #[error("{0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach central at {url}: {}", chain(source))]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("reading central's answer: {}", chain(source))]
    Answer {
        #[source]
        source: reqwest::Error,
    },
    /// A success whose body is not what the command expects.
    #[error("unexpected answer from central: {source}")]
    Unexpected {
        #[source]
        source: serde_json::Error,
    },
    /// Central refused: its status and the `error` of its body.
    #[error("central answered {status}: {message}")]
    Api { status: u16, message: String },
}

impl CliError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_those_printed() {
        let e = CliError::Api {
            status: 404,
            message: "package 'x' not found".into(),
        };
        assert_eq!(e.to_string(), "central answered 404: package 'x' not found");
        let e = CliError::EmptyToken {
            path: "/d/admin.token".into(),
        };
        assert_eq!(e.to_string(), "/d/admin.token: the token file is empty");
    }
}
