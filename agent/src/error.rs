//! The one error type of the agent crate.

use std::path::PathBuf;

use sitecast_common::errors::chain;
use sitecast_common::wire::ProblemKind;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
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
    #[error("TLS: {path}: {source}")]
    Ca {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach central at {url}: {}", chain(source))]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected {what} from central: {source}")]
    Answer {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot encode the {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Fragment(#[from] sitecast_common::fragment::FragmentError),
    #[error("a pinned signing key: {0}")]
    Key(#[from] sitecast_common::signing::KeyError),
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("central did not take the {what} within {seconds} s")]
    Slow { what: &'static str, seconds: u64 },
    #[error("central answered {status}: {message}")]
    Api { status: u16, message: String },
    /// A source (relay or central) failed a download; `detail` names the source.
    #[error("{detail}")]
    Source { kind: ProblemKind, detail: String },
}

impl AgentError {
    pub fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> AgentError {
        move |source| AgentError::Encode { what, source }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AgentError {
        let path = path.into();
        move |source| AgentError::Io { path, source }
    }
}

impl From<sitecast_io::IoError> for AgentError {
    fn from(e: sitecast_io::IoError) -> Self {
        AgentError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
