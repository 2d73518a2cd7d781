//! `central.toml`: what `init` writes and `serve` reads.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sitecast_common::units::{Duration, Size};

use crate::error::CentralError;

/// Central's settings. Paths of keys and certificates are fixed inside DIR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// HTTPS API for admins and agents.
    pub api_listen: SocketAddr,
    /// QUIC endpoint for relays.
    pub quic_listen: SocketAddr,
    /// Host names and addresses the server certificate was issued for.
    #[serde(default)]
    pub names: Vec<String>,
    /// How long agents wait between polls.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Duration,
    /// Fragment size of packages created without one.
    #[serde(default = "default_fragment_size")]
    pub default_fragment_size: Size,
    /// Largest JSON request body; uploads are streamed and not limited by this.
    #[serde(default = "default_json_body")]
    pub max_json_body: Size,
    /// Largest package file accepted.
    #[serde(default = "default_package_size")]
    pub max_package_size: Size,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_fragment_size() -> Size {
    Size::from_bytes(4 << 20)
}

fn default_json_body() -> Size {
    Size::from_bytes(64 << 10)
}

fn default_package_size() -> Size {
    Size::from_bytes(64 << 30)
}

impl CentralConfig {
    pub fn new(api_listen: SocketAddr, quic_listen: SocketAddr, names: Vec<String>) -> Self {
        Self {
            api_listen,
            quic_listen,
            names,
            poll_interval: default_poll_interval(),
            default_fragment_size: default_fragment_size(),
            max_json_body: default_json_body(),
            max_package_size: default_package_size(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, CentralError> {
        let text = std::fs::read_to_string(path).map_err(CentralError::io(path))?;
        toml::from_str(&text).map_err(|e| CentralError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!("# Sitecast central. See README.md for every setting.\n{body}")
    }

    /// The URL the admin CLI uses to reach this central from the same machine.
    pub fn local_url(&self) -> String {
        let mut addr = self.api_listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("https://{addr}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults() {
        let c = CentralConfig::new(
            "127.0.0.1:8443".parse().unwrap(),
            "127.0.0.1:4433".parse().unwrap(),
            vec!["localhost".into()],
        );
        let back: CentralConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let minimal: CentralConfig =
            toml::from_str("api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"").unwrap();
        assert_eq!(minimal.poll_interval.as_secs(), 60);
        assert_eq!(minimal.local_url(), "https://127.0.0.1:1");
        let bad = toml::from_str::<CentralConfig>(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\npoll_interval = \"5 weeks\"",
        );
        assert!(bad.unwrap_err().to_string().contains("5 weeks"));
    }
}
