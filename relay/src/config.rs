//! `relay.toml`: what `sitecast-relay enroll` writes and `serve` reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sitecast_common::constraint::TimeFrames;
use sitecast_common::ids::RelayId;
use sitecast_common::units::Rate;

use crate::error::RelayError;

/// A relay's settings. The CA is copied into DIR at enrollment, so the relay
/// keeps working if the original file moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Central's QUIC endpoint, `HOST:PORT`; HOST must be a name in central's certificate.
    pub central: String,
    pub id: RelayId,
    pub token: String,
    /// Address of the HTTP server for agents.
    pub listen: SocketAddr,
    /// When fragment bytes may move from central (no schedule: always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<TimeFrames>,
    /// Cap on fragment bytes from central.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<Rate>,
}

impl RelayConfig {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("relay.toml")
    }

    pub fn ca_path(dir: &Path) -> PathBuf {
        dir.join("ca.pem")
    }

    pub fn load(dir: &Path) -> Result<Self, RelayError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(RelayError::io(&path))?;
        toml::from_str(&text).map_err(|e| RelayError::Config {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes the file atomically (temp name, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), RelayError> {
        let body = toml::to_string(self).map_err(|e| RelayError::Config {
            path: Self::path(dir),
            reason: e.to_string(),
        })?;
        crate::cache::write_atomically(
            &Self::path(dir),
            format!(
                "# Sitecast relay. `sitecast-relay config` changes schedule and max_rate.\n{body}"
            )
            .as_bytes(),
        )
    }

    /// `central` split into host (for TLS) and port.
    pub fn central_host(&self) -> Result<(&str, u16), RelayError> {
        let bad = || {
            RelayError::Invalid(format!(
                "bad central '{}': expected HOST:PORT",
                self.central
            ))
        };
        let (host, port) = self.central.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok((host, port))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_host_split() {
        let dir = tempfile::tempdir().unwrap();
        let c = RelayConfig {
            central: "localhost:4433".into(),
            id: "relay-paris-1".parse().unwrap(),
            token: "t".into(),
            listen: "127.1.0.1:8080".parse().unwrap(),
            schedule: Some("MON-FRI 18:00-23:59".parse().unwrap()),
            max_rate: Some("20MB/s".parse().unwrap()),
        };
        c.save(dir.path()).unwrap();
        assert_eq!(RelayConfig::load(dir.path()).unwrap(), c);
        assert_eq!(c.central_host().unwrap(), ("localhost", 4433));
        let v6 = RelayConfig {
            central: "[::1]:4433".into(),
            ..c.clone()
        };
        assert_eq!(v6.central_host().unwrap(), ("::1", 4433));
        let bad = RelayConfig {
            central: "nohost".into(),
            ..c
        };
        assert!(bad
            .central_host()
            .unwrap_err()
            .to_string()
            .contains("nohost"));
    }
}
