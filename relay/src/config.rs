//! `relay.toml`: what `sitecast-relay enroll` writes and `serve` reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sitecast_common::constraint::TimeFrames;
use sitecast_common::ids::RelayId;
use sitecast_common::units::{Duration, Rate, Size};

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
    /// Quota on the cache's bytes: above it, delta bases no longer activated are
    /// evicted, least recently needed first (none: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk: Option<Size>,
    /// How often every held fragment is re-read and re-hashed (absent:
    /// [`DEFAULT_SCRUB_INTERVAL`]; `0s`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub_interval: Option<Duration>,
    /// UDP port Wake-on-LAN magic packets are sent to (absent: [`DEFAULT_WOL_PORT`];
    /// read when the relay starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wol_port: Option<u16>,
    /// The HTTP server's deadline for a request's head (absent: 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_timeout: Option<Duration>,
    /// An agent's connection idle this long is closed (absent: 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_idle_timeout: Option<Duration>,
    /// Agents' connections served at once (absent: 4096, fewer if the file
    /// descriptor limit allows fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_max_connections: Option<usize>,
}

/// The discard port, where Wake-on-LAN tools send magic packets.
pub const DEFAULT_WOL_PORT: u16 = 9;

/// Scrub once a week unless told otherwise.
pub const DEFAULT_SCRUB_INTERVAL: Duration = Duration::from_secs(7 * 86_400);

/// A quota as `--max-disk` takes it: a size (`50GiB`), or `unlimited` (or `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxDisk(pub Option<Size>);

impl std::str::FromStr for MaxDisk {
    type Err = sitecast_common::grammar::GrammarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("unlimited") {
            return Ok(MaxDisk(None));
        }
        let size: Size = s.parse()?;
        Ok(MaxDisk((size.bytes() > 0).then_some(size)))
    }
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

    /// Writes the file atomically (temp name, fsync, rename), for its owner alone.
    pub fn save(&self, dir: &Path) -> Result<(), RelayError> {
        let body = toml::to_string(self).map_err(|e| RelayError::Config {
            path: Self::path(dir),
            reason: e.to_string(),
        })?;
        // It holds the relay's bearer token.
        sitecast_io::write_secret(
            &Self::path(dir),
            format!(
                "# Sitecast relay. `sitecast-relay config` changes schedule, max_rate, max_disk and scrub_interval.\n{body}"
            )
            .as_bytes(),
        )?;
        Ok(())
    }

    /// What the HTTP server for agents puts up with.
    pub fn http_limits(&self) -> sitecast_io::http::Limits {
        sitecast_io::http::Limits::or_defaults(
            self.http_header_timeout.map(Into::into),
            self.http_idle_timeout.map(Into::into),
            self.http_max_connections,
        )
    }

    /// The quota in bytes (`None`: unlimited).
    pub fn max_disk_bytes(&self) -> Option<u64> {
        self.max_disk.map(Size::bytes).filter(|b| *b > 0)
    }

    /// The UDP port of magic packets.
    pub fn wol_port(&self) -> u16 {
        self.wol_port.unwrap_or(DEFAULT_WOL_PORT)
    }

    /// Time between scrubs (`None`: scrubbing is off).
    pub fn scrub_every(&self) -> Option<std::time::Duration> {
        let every = self.scrub_interval.unwrap_or(DEFAULT_SCRUB_INTERVAL);
        (every.as_secs() > 0).then(|| every.into())
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
            max_disk: Some("50GiB".parse().unwrap()),
            scrub_interval: Some("1d".parse().unwrap()),
            wol_port: Some(4009),
            http_header_timeout: Some("5s".parse().unwrap()),
            http_idle_timeout: None,
            http_max_connections: Some(100),
        };
        c.save(dir.path()).unwrap();
        assert_eq!(RelayConfig::load(dir.path()).unwrap(), c);
        assert_eq!(c.central_host().unwrap(), ("localhost", 4433));
        assert_eq!(c.wol_port(), 4009);
        let limits = c.http_limits();
        assert_eq!(
            (
                limits.header_timeout,
                limits.idle_timeout,
                limits.max_connections
            ),
            (
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(120),
                100
            )
        );
        let no_port = RelayConfig {
            wol_port: None,
            ..c.clone()
        };
        assert_eq!(no_port.wol_port(), DEFAULT_WOL_PORT);
        assert_eq!(c.max_disk_bytes(), Some(50 << 30));
        assert_eq!(
            c.scrub_every(),
            Some(std::time::Duration::from_secs(86_400))
        );
        let defaults = RelayConfig {
            max_disk: None,
            scrub_interval: None,
            ..c.clone()
        };
        assert_eq!(defaults.max_disk_bytes(), None);
        assert_eq!(defaults.scrub_every(), Some(DEFAULT_SCRUB_INTERVAL.into()));
        let off = RelayConfig {
            max_disk: Some("0".parse().unwrap()),
            scrub_interval: Some("0s".parse().unwrap()),
            ..c.clone()
        };
        assert_eq!((off.max_disk_bytes(), off.scrub_every()), (None, None));
        assert_eq!("unlimited".parse::<MaxDisk>().unwrap(), MaxDisk(None));
        assert_eq!("0".parse::<MaxDisk>().unwrap(), MaxDisk(None));
        assert_eq!(
            "2GiB".parse::<MaxDisk>().unwrap(),
            MaxDisk(Some(Size::from_bytes(2 << 30)))
        );
        assert!("2 parsecs"
            .parse::<MaxDisk>()
            .unwrap_err()
            .to_string()
            .contains("parsecs"));
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
