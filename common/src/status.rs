//! Deployment status codes, as OCS Inventory defines them, reported by agents and
//! counted in a package's statistics; and Sitecast's own `ERR_INTERRUPTED`: the
//! package's command started and the agent (or the computer) stopped before it
//! ended, so nobody knows how it ended and it is not run again by itself; and
//! `ERR_DOWNGRADE`: the package is older than the version of its name installed
//! there, and its job did not carry central's signed word for a downgrade; and
//! `ERR_OUT_OF_SPACE` (OCS's name): the download, its rebuild or its unpack would
//! not fit on the computer's disk with the agent's `keep_free` left free.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! status_codes {
    ($($variant:ident = $text:literal),* $(,)?) => {
        /// Where one computer stands with one package.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum StatusCode {
            $(#[serde(rename = $text)] $variant,)*
        }

        impl StatusCode {
            /// Every code, in the order of the contract.
            pub const ALL: &'static [StatusCode] = &[$(StatusCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(StatusCode::$variant => $text,)*
                }
            }
        }

        impl FromStr for StatusCode {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($text => Ok(StatusCode::$variant),)*
                    _ => Err(UnknownStatus(s.to_owned())),
                }
            }
        }
    };
}

status_codes! {
    WaitingNotification = "WAITING_NOTIFICATION",
    Notified = "NOTIFIED",
    Downloading = "DOWNLOADING",
    Success = "SUCCESS",
    ErrAlreadySetup = "ERR_ALREADY_SETUP",
    ErrBadId = "ERR_BAD_ID",
    ErrBadDigest = "ERR_BAD_DIGEST",
    ErrBadSignature = "ERR_BAD_SIGNATURE",
    ErrDownloadPack = "ERR_DOWNLOAD_PACK",
    ErrUnpack = "ERR_UNPACK",
    ErrBuild = "ERR_BUILD",
    ErrExecute = "ERR_EXECUTE",
    ErrExitCode = "ERR_EXIT_CODE",
    ErrClean = "ERR_CLEAN",
    ErrTimeout = "ERR_TIMEOUT",
    ErrAborted = "ERR_ABORTED",
    ErrPreviousFailed = "ERR_PREVIOUS_FAILED",
    ErrInterrupted = "ERR_INTERRUPTED",
    ErrDowngrade = "ERR_DOWNGRADE",
    ErrOutOfSpace = "ERR_OUT_OF_SPACE",
}

/// A status code that the contract does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status code '{0}'")]
pub struct UnknownStatus(pub String);

impl StatusCode {
    /// The deployment is over for this computer: nothing more will be reported.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            StatusCode::WaitingNotification | StatusCode::Notified | StatusCode::Downloading
        )
    }

    /// An agent may report this code (the first two are central's own bookkeeping).
    pub fn is_reportable(self) -> bool {
        !matches!(self, StatusCode::WaitingNotification | StatusCode::Notified)
    }

    /// The package is in place on the computer.
    pub fn is_success(self) -> bool {
        matches!(self, StatusCode::Success | StatusCode::ErrAlreadySetup)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_code() {
        for &code in StatusCode::ALL {
            assert_eq!(code.as_str().parse::<StatusCode>().unwrap(), code);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(StatusCode::ALL.len(), 20);
        assert_eq!(
            "ERR_NOPE".parse::<StatusCode>().unwrap_err().to_string(),
            "unknown status code 'ERR_NOPE'"
        );
    }

    #[test]
    fn finality() {
        assert!(!StatusCode::Downloading.is_final());
        assert!(StatusCode::Success.is_final());
        assert!(StatusCode::ErrTimeout.is_final());
        assert!(!StatusCode::Notified.is_reportable());
    }
}
