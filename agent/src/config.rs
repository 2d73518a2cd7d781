//! `agent.toml` and the agent's directory: identity, pinned keys, download
//! deadlines (`[downloads]`), the download cycle (`[cycle]`), and where downloads,
//! work directories and the history live.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sitecast_common::deployment::CycleConfig;
use sitecast_common::ids::ComputerId;
use sitecast_common::power::MacAddr;
use sitecast_common::signing;
use sitecast_common::units::{Duration, Rate, Size};

use crate::error::AgentError;

/// An enrolled agent's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Central's API URL.
    pub central: String,
    pub computer_id: ComputerId,
    pub token: String,
    /// Source address of every connection, and this computer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Central's info-signing public keys (PEM) at enrollment: trusted until a
    /// key set signed by `root_key` is held (`DIR/keyset.dsse.json`).
    pub signing_keys: Vec<String>,
    /// Central's root public key (PEM), pinned at enrollment: it signs the key
    /// sets the agent takes (absent: enrolled before key sets existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key: Option<String>,
    /// Most bytes one package may unpack to (zip and gzip bombs stop here); absent:
    /// 20 times the package's size, at least 1 GiB ([`crate::unpack::UnpackLimits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unpack: Option<Size>,
    /// Disk space every download and unpack leaves free (absent: 256 MiB): a
    /// deployment that would eat into it stops with `ERR_OUT_OF_SPACE`
    /// ([`crate::space`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_free: Option<Size>,
    /// MAC addresses reported for Wake-on-LAN, instead of the interfaces'
    /// (`/sys/class/net/*/address`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac_addresses: Vec<MacAddr>,
    /// Runs power actions as `<power_command> shutdown` or `<power_command>
    /// restart` (absent: they are only logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_command: Option<String>,
    /// Where the computer's seconds since boot are read, in `/proc/uptime`'s
    /// format (the first number on the line), to tell central in every poll
    /// how long the computer has been on (absent: `/proc/uptime`; where that
    /// file does not exist no uptime is reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_file: Option<PathBuf>,
    /// Deadlines and back-off of every download, from relays and from central
    /// (the `[downloads]` table).
    #[serde(default)]
    pub downloads: SourcePolicy,
    /// OCS's download cycle (the `[cycle]` table): `period_length`, `cycle_latency`,
    /// `frag_latency`, `period_latency`, `timeout`, `max_rate`; see
    /// [`sitecast_common::deployment`] for what each one does.
    #[serde(default)]
    pub cycle: CycleConfig,
    /// The command that tells the computer's user about deployments and reads
    /// the answer (split like a shell would, no expansion): see [`crate::notify`]
    /// for the protocol. None: a headless machine, texts are only logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifier: Option<String>,
}

/// The longest period `[cycle]` accepts. Priorities go from 0 to 10, so longer
/// periods only slow every package down; the agent also uses a priority above
/// this bound for packages that have no source for now (never served, but
/// still timed out).
pub const MAX_PERIOD_LENGTH: u32 = 100;

/// Refuses a `[cycle]` the agent cannot follow.
pub fn check_cycle(cycle: &CycleConfig) -> Result<(), String> {
    if !(1..=MAX_PERIOD_LENGTH).contains(&cycle.period_length) {
        return Err(format!(
            "period_length must be between 1 and {MAX_PERIOD_LENGTH} cycles, not {}",
            cycle.period_length
        ));
    }
    Ok(())
}

/// When the agent gives up on a source (relay or central) and how long it then
/// leaves a relay alone: `agent.toml`'s `[downloads]` table, in the SPEC's
/// duration and rate grammars; every key may be left out.
///
/// A download is abandoned, and the next source tried, when
/// - connecting takes longer than `connect_timeout` (a *timeout*), or the
///   connection is refused (*refused*);
/// - no byte arrives for `stall_timeout`, counting the wait for the answer's
///   headers and every gap between bytes (*stalled*);
/// - the body *trickles*: in any full `min_rate_window` counted from the answer's
///   headers, fewer than `min_rate × min_rate_window` bytes arrive (*stalled*;
///   `min_rate = "0"` turns this off);
/// - one info or fragment is not complete within `fragment_timeout`, however
///   steadily it comes (*stalled*): a source just above `min_rate` would otherwise
///   hold the cycle, and every other package, for hours;
/// - what arrives is not what the signed info says (*bad data*).
///
/// A relay given up on is skipped for `backoff`, doubling at each new failure up
/// to `backoff_max`; a success forgets its failures. Back-offs live in
/// `DIR/backoff.json`, so they survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcePolicy {
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    pub min_rate: Rate,
    pub min_rate_window: Duration,
    pub fragment_timeout: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl Default for SourcePolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(15),
            min_rate: Rate::from_bytes_per_sec(1024),
            min_rate_window: Duration::from_secs(10),
            fragment_timeout: Duration::from_secs(10 * 60),
            backoff: Duration::from_secs(5 * 60),
            backoff_max: Duration::from_secs(60 * 60),
        }
    }
}

impl SourcePolicy {
    /// Refuses settings that would make every download fail or never fail.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("stall_timeout", self.stall_timeout),
            ("min_rate_window", self.min_rate_window),
            ("fragment_timeout", self.fragment_timeout),
        ] {
            if value.as_secs() == 0 {
                return Err(format!("{name} must be at least 1s"));
            }
        }
        if self.backoff_max < self.backoff {
            return Err(format!(
                "backoff_max ({}) is shorter than backoff ({})",
                self.backoff_max, self.backoff
            ));
        }
        Ok(())
    }
}

/// The files of an agent's DIR.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn history(&self) -> PathBuf {
        self.dir.join("history.json")
    }
    /// The key set taken from central ([`crate::trust::Trust`]).
    pub fn keyset(&self) -> PathBuf {
        self.dir.join("keyset.dsse.json")
    }
    /// The version floor per package name ([`crate::floors::Floors`]).
    pub fn floors(&self) -> PathBuf {
        self.dir.join("floors.json")
    }
    pub fn downloads(&self) -> PathBuf {
        self.dir.join("downloads")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// Relays skipped for a while after they failed.
    pub fn backoff(&self) -> PathBuf {
        self.dir.join("backoff.json")
    }
    /// The commands started and not yet reported (see [`crate::journal`]).
    pub fn running(&self) -> PathBuf {
        self.dir.join("running")
    }
    /// The last restart the agent asked for (see [`crate::power::Uptime`]).
    pub fn restart_mark(&self) -> PathBuf {
        self.dir.join("restart.json")
    }
}

impl AgentConfig {
    pub fn load(layout: &Layout) -> Result<Self, AgentError> {
        let path = layout.config();
        let text = std::fs::read_to_string(&path).map_err(AgentError::io(&path))?;
        let config: Self = toml::from_str(&text).map_err(|e| AgentError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        config
            .downloads
            .check()
            .and_then(|()| check_cycle(&config.cycle))
            .and_then(|()| {
                config
                    .power_command
                    .as_deref()
                    .map_or(Ok(()), crate::power::check_command)
            })
            .map_err(|reason| AgentError::Config {
                path: path.clone(),
                reason,
            })?;
        if let Some(command) = &config.notifier {
            crate::notify::parse_command(command).map_err(|reason| AgentError::Config {
                path,
                reason: format!("notifier: {reason}"),
            })?;
        }
        Ok(config)
    }

    pub fn save(&self, layout: &Layout) -> Result<(), AgentError> {
        let path = layout.config();
        let body = toml::to_string(self).map_err(|e| AgentError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // It holds the computer's bearer token.
        sitecast_io::write_secret(&path, body.as_bytes()).map_err(Into::into)
    }

    /// The pinned keys, parsed.
    pub fn keys(&self) -> Result<Vec<VerifyingKey>, AgentError> {
        self.signing_keys
            .iter()
            .map(|pem| signing::verifying_key_from_pem(pem).map_err(AgentError::from))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str =
        "central = \"https://c:8443\"\ncomputer_id = \"pc-1\"\ntoken = \"t\"\nsigning_keys = []\n";

    fn load(text: &str) -> Result<AgentConfig, AgentError> {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::write(layout.config(), text).unwrap();
        AgentConfig::load(&layout)
    }

    #[test]
    fn download_deadlines_default_and_read_the_unit_grammars() {
        let plain = load(BASE).unwrap();
        assert_eq!(plain.downloads, SourcePolicy::default());
        assert_eq!(plain.downloads.stall_timeout.as_secs(), 15);
        let tuned = load(&format!(
            "{BASE}[downloads]\nstall_timeout = \"2s\"\nmin_rate = \"10KiB/s\"\nbackoff = \"1m\"\n"
        ))
        .unwrap();
        assert_eq!(tuned.downloads.stall_timeout.as_secs(), 2);
        assert_eq!(tuned.downloads.min_rate.bytes_per_sec(), Some(10 << 10));
        assert_eq!(tuned.downloads.backoff.as_secs(), 60);
        assert_eq!(tuned.downloads.connect_timeout.as_secs(), 10);
        // What enroll writes reads back the same.
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        tuned.save(&layout).unwrap();
        assert_eq!(AgentConfig::load(&layout).unwrap(), tuned);
    }

    #[test]
    fn the_cycle_table_defaults_to_the_spec_and_reads_the_unit_grammars() {
        let plain = load(BASE).unwrap();
        assert_eq!(plain.cycle, CycleConfig::default());
        assert_eq!(plain.cycle.period_length, 10);
        assert_eq!(plain.cycle.cycle_latency.as_secs(), 60);
        assert_eq!(plain.cycle.frag_latency.as_secs(), 0);
        assert_eq!(plain.cycle.period_latency.as_secs(), 0);
        assert_eq!(plain.cycle.timeout.as_secs(), 7 * 86_400);
        assert_eq!(plain.cycle.max_rate, None);
        let tuned = load(&format!(
            "{BASE}[cycle]\nperiod_length = 2\ncycle_latency = \"0s\"\ntimeout = \"1s\"\nmax_rate = \"512KiB/s\"\n"
        ))
        .unwrap();
        assert_eq!(tuned.cycle.period_length, 2);
        assert_eq!(tuned.cycle.cycle_latency.as_secs(), 0);
        assert_eq!(tuned.cycle.timeout.as_secs(), 1);
        assert_eq!(tuned.cycle.max_rate, Some(512 << 10));
        assert_eq!(tuned.cycle.frag_latency.as_secs(), 0);
        // What enroll writes reads back the same, with and without a rate.
        for config in [plain, tuned] {
            let tmp = tempfile::tempdir().unwrap();
            let layout = Layout::new(tmp.path());
            config.save(&layout).unwrap();
            assert_eq!(AgentConfig::load(&layout).unwrap(), config);
        }
    }

    #[test]
    fn bad_cycle_settings_name_the_key() {
        for (text, word) in [
            ("period_length = 0", "period_length"),
            ("period_length = 101", "period_length"),
            ("cycle_latency = \"soon\"", "soon"),
            ("max_rate = \"fast\"", "fast"),
            ("cycle_latncy = \"1s\"", "cycle_latncy"),
        ] {
            let e = load(&format!("{BASE}[cycle]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(word), "{text}: {e}");
        }
    }

    #[test]
    fn the_notifier_is_optional_and_checked() {
        assert_eq!(load(BASE).unwrap().notifier, None);
        let with = load(&format!(
            "notifier = \"/usr/local/bin/tell-user --title 'Sitecast'\"\n{BASE}"
        ))
        .unwrap();
        assert_eq!(
            with.notifier.as_deref(),
            Some("/usr/local/bin/tell-user --title 'Sitecast'")
        );
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        with.save(&layout).unwrap();
        assert_eq!(AgentConfig::load(&layout).unwrap(), with);
        for bad in ["notifier = \"tell 'user\"", "notifier = \"  \""] {
            let e = load(&format!("{bad}\n{BASE}")).unwrap_err().to_string();
            assert!(e.contains("notifier"), "{bad}: {e}");
        }
    }

    #[test]
    fn macs_and_the_power_command_are_read_and_checked() {
        let plain = load(BASE).unwrap();
        assert!(plain.mac_addresses.is_empty());
        assert_eq!(plain.power_command, None);
        assert_eq!(plain.uptime_file, None);
        let set = load(&format!(
            "power_command = \"/usr/local/sbin/power --now\"\nmac_addresses = [\"52-54-00-AB-CD-EF\"]\nuptime_file = \"/run/uptime\"\n{BASE}"
        ))
        .unwrap();
        assert_eq!(set.uptime_file, Some(PathBuf::from("/run/uptime")));
        assert_eq!(set.mac_addresses[0].to_string(), "52:54:00:ab:cd:ef");
        assert_eq!(
            set.power_command.as_deref(),
            Some("/usr/local/sbin/power --now")
        );
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        set.save(&layout).unwrap();
        assert_eq!(AgentConfig::load(&layout).unwrap(), set);
        let e = load(&format!("mac_addresses = [\"52:54:00:ab:cd\"]\n{BASE}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("52:54:00:ab:cd"), "{e}");
        let e = load(&format!("power_command = \"power 'open\"\n{BASE}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("power_command"), "{e}");
    }

    #[test]
    fn bad_download_settings_name_the_key() {
        let e = load(&format!(
            "{BASE}[downloads]\nstall_timeout = \"15 parsecs\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("15 parsecs"), "{e}");
        let e = load(&format!("{BASE}[downloads]\nstall_timout = \"15s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stall_timout"), "{e}");
        let e = load(&format!("{BASE}[downloads]\nstall_timeout = \"0s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stall_timeout"), "{e}");
        let e = load(&format!("{BASE}[downloads]\nfragment_timeout = \"0s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fragment_timeout"), "{e}");
        let e = load(&format!(
            "{BASE}[downloads]\nbackoff = \"2h\"\nbackoff_max = \"1h\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("backoff_max"), "{e}");
    }
}
