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
    /// The zone job containers' time frames and local dates are read in: an IANA
    /// name (`Europe/Paris`), `UTC`, or `system` (this machine's zone).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Finished job containers whose jobs all succeeded are purged this long
    /// after their last job ended (`never` keeps them).
    #[serde(default = "default_purge_succeeded")]
    pub purge_succeeded_after: PurgeAge,
    /// The same for containers with a failed job.
    #[serde(default = "default_purge_failed")]
    pub purge_failed_after: PurgeAge,
    /// A computer woken for a job container with `shutdown_after` counts as
    /// woken only if it polls within this long of the wake; one that comes up
    /// later is not shut down (OCO's "WOL Shutdown Expiry").
    #[serde(default = "default_wol_shutdown_expiry")]
    pub wol_shutdown_expiry: Duration,
    /// `GET /coverage`: a relay not in touch with central for longer than this
    /// is out of touch (its holdings are stale).
    #[serde(default = "default_relay_stale_after")]
    pub relay_stale_after: Duration,
    /// `GET /coverage`: a computer in touch within this counts as seen recently.
    #[serde(default = "default_computer_recent_within")]
    pub computer_recent_within: Duration,
    /// `auto`: a computer that enrolls with a valid token gets jobs at once;
    /// `manual`: it is `pending` until an admin approves it (`computer approve`).
    #[serde(default)]
    pub enroll_approval: EnrollApproval,
    /// Whether `enroll.token`, the token shared by every computer, still enrolls;
    /// `false` leaves only the tokens made with `sitecast enroll-token create`.
    #[serde(default = "enabled")]
    pub shared_enroll_token: bool,
    /// The API's deadline for a TLS handshake and for a request's head (absent: 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_timeout: Option<Duration>,
    /// A connection idle this long is closed (absent: 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_idle_timeout: Option<Duration>,
    /// Connections served at once (absent: 4096, fewer if the file descriptor
    /// limit allows fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_max_connections: Option<usize>,
}

/// Whether enrolled computers need an admin's approval before they get jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollApproval {
    #[default]
    Auto,
    Manual,
}

/// How long a finished job container is kept: a duration, or `never` (kept for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PurgeAge(pub Option<Duration>);

impl TryFrom<String> for PurgeAge {
    type Error = sitecast_common::grammar::GrammarError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.trim() {
            "never" => Ok(Self(None)),
            d => d.parse().map(|d| Self(Some(d))),
        }
    }
}

impl From<PurgeAge> for String {
    fn from(a: PurgeAge) -> String {
        a.0.map_or_else(|| "never".into(), |d| d.to_string())
    }
}

fn default_time_zone() -> String {
    "system".into()
}

fn default_purge_succeeded() -> PurgeAge {
    PurgeAge(Some(Duration::from_secs(30 * 86400)))
}

fn default_purge_failed() -> PurgeAge {
    PurgeAge(None)
}

/// Long enough for a machine to boot and its agent to poll once.
fn default_wol_shutdown_expiry() -> Duration {
    Duration::from_secs(600)
}

/// Reads a `time_zone` setting.
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    match name.trim() {
        "UTC" | "utc" => Ok(jiff::tz::TimeZone::UTC),
        // A machine whose zone cannot be told runs on UTC, as its clock does.
        "system" => Ok(jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)),
        other => {
            jiff::tz::TimeZone::get(other).map_err(|e| format!("bad time_zone '{other}': {e}"))
        }
    }
}

fn default_relay_stale_after() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_computer_recent_within() -> Duration {
    Duration::from_secs(86400)
}

fn enabled() -> bool {
    true
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
            time_zone: default_time_zone(),
            purge_succeeded_after: default_purge_succeeded(),
            purge_failed_after: default_purge_failed(),
            wol_shutdown_expiry: default_wol_shutdown_expiry(),
            relay_stale_after: default_relay_stale_after(),
            computer_recent_within: default_computer_recent_within(),
            enroll_approval: EnrollApproval::Auto,
            shared_enroll_token: true,
            http_header_timeout: None,
            http_idle_timeout: None,
            http_max_connections: None,
        }
    }

    /// What the HTTPS API puts up with.
    pub fn http_limits(&self) -> sitecast_io::http::Limits {
        sitecast_io::http::Limits::or_defaults(
            self.http_header_timeout.map(Into::into),
            self.http_idle_timeout.map(Into::into),
            self.http_max_connections,
        )
    }

    pub fn load(path: &Path) -> Result<Self, CentralError> {
        let text = std::fs::read_to_string(path).map_err(CentralError::io(path))?;
        let config: Self = toml::from_str(&text).map_err(|e| CentralError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        time_zone(&config.time_zone).map_err(|reason| CentralError::Config {
            path: path.to_owned(),
            reason,
        })?;
        Ok(config)
    }

    /// The zone of `time_zone` (checked when the file was loaded; UTC if it
    /// was set in code to a name that does not exist).
    pub fn tz(&self) -> jiff::tz::TimeZone {
        time_zone(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    pub fn to_toml(&self) -> Result<String, CentralError> {
        let body = toml::to_string(self).map_err(|e| CentralError::Encode(e.to_string()))?;
        Ok(format!(
            "# Sitecast central. See README.md for every setting.\n{body}"
        ))
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
        let back: CentralConfig = toml::from_str(&c.to_toml().unwrap()).unwrap();
        assert_eq!(back, c);
        let minimal: CentralConfig =
            toml::from_str("api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"").unwrap();
        assert_eq!(minimal.poll_interval.as_secs(), 60);
        let bad = toml::from_str::<CentralConfig>(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\npoll_interval = \"5 weeks\"",
        );
        assert!(bad.unwrap_err().to_string().contains("5 weeks"));
        assert_eq!(minimal.purge_failed_after, PurgeAge(None));
        assert_eq!(
            minimal.purge_succeeded_after.0.unwrap().as_secs(),
            30 * 86400
        );
        let ages: CentralConfig = toml::from_str(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\npurge_succeeded_after = \"never\"\npurge_failed_after = \"2d\"\ntime_zone = \"UTC\"",
        )
        .unwrap();
        assert_eq!(ages.purge_succeeded_after, PurgeAge(None));
        assert_eq!(ages.purge_failed_after.0.unwrap().as_secs(), 2 * 86400);
        assert_eq!(ages.tz(), jiff::tz::TimeZone::UTC);
        assert_eq!(minimal.wol_shutdown_expiry.as_secs(), 600);
        let expiry: CentralConfig = toml::from_str(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\nwol_shutdown_expiry = \"15m\"",
        )
        .unwrap();
        assert_eq!(expiry.wol_shutdown_expiry.as_secs(), 900);
        let bad_expiry = toml::from_str::<CentralConfig>(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\nwol_shutdown_expiry = \"10x\"",
        );
        assert!(bad_expiry.unwrap_err().to_string().contains("10x"));
        let bad_age = toml::from_str::<CentralConfig>(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\npurge_failed_after = \"soon\"",
        );
        assert!(bad_age.unwrap_err().to_string().contains("soon"));
    }

    #[test]
    fn coverage_thresholds_default_when_an_older_file_lacks_them() {
        let old: CentralConfig =
            toml::from_str("api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"").unwrap();
        assert_eq!(old.relay_stale_after.as_secs(), 15 * 60);
        assert_eq!(old.computer_recent_within.as_secs(), 86400);
        let set: CentralConfig = toml::from_str(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\nrelay_stale_after = \"2h\"\ncomputer_recent_within = \"7d\"",
        )
        .unwrap();
        assert_eq!(set.relay_stale_after.as_secs(), 7200);
        assert_eq!(set.computer_recent_within.as_secs(), 7 * 86400);
        let bad = toml::from_str::<CentralConfig>(
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\nrelay_stale_after = \"a while\"",
        );
        assert!(bad.unwrap_err().to_string().contains("a while"));
    }

    #[test]
    fn a_bad_time_zone_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        std::fs::write(
            &path,
            "api_listen = \"0.0.0.0:1\"\nquic_listen = \"0.0.0.0:2\"\ntime_zone = \"Mars/Olympus\"",
        )
        .unwrap();
        let e = CentralConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("Mars/Olympus"), "{e}");
    }
}
