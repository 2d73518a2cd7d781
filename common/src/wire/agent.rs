//! The agent protocol: enrolment, polls and their answers, status reports,
//! and problems agents report about relays.

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ids::{ComputerId, PackageId, RelayId};
use crate::jobs::JobKind;
use crate::keyset::KeySet;
use crate::power::{PowerAction, DEFAULT_RESTART_TIMEOUT};
use crate::status::StatusCode;

use crate::deployment::CentralFallback;

/// Fragment bytes an agent took from one source for one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceBytes {
    /// The relay; `None` is central.
    pub relay_id: Option<RelayId>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub enroll_token: String,
    pub hostname: String,
    pub os: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// MAC addresses, for Wake-on-LAN (`aa:bb:cc:dd:ee:ff`).
    #[serde(default)]
    pub macs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub computer_id: ComputerId,
    pub token: String,
    /// The key set's keys, for agents that pin keys rather than a root.
    pub signing_keys: Vec<PublicKey>,
    /// Central's root public key (PEM): the agent pins it, and trusts a key set
    /// only if this root signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key: Option<String>,
    /// The root-signed key set (a DSSE envelope, byte for byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyset: Option<String>,
}

/// One of central's info-signing public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keyid: String,
    /// SubjectPublicKeyInfo PEM.
    pub pem: String,
}

impl PublicKey {
    /// A key set's keys as older agents and relays take them (`signing_keys`).
    pub fn all_of(set: &KeySet) -> Vec<PublicKey> {
        set.doc()
            .keys
            .iter()
            .map(|k| PublicKey {
                keyid: k.keyid.clone(),
                pem: k.pem.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    #[serde(default)]
    pub addresses: Vec<String>,
    /// MAC addresses, for Wake-on-LAN (none: keep the last ones reported).
    #[serde(default)]
    pub macs: Vec<String>,
    /// Seconds the computer has been on: since it booted, or since the boot
    /// before a restart the agent itself asked for (a package's restart: the
    /// computer never went off). Central reckons the boot on its own clock
    /// (`now - uptime_s`) to tell a computer it woke from one that was already
    /// on ([`crate::power::was_on`]). Absent: an older agent, or a system where
    /// the agent cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    /// The version of the key set the agent trusts: central answers with its own
    /// when it is newer. Absent: an agent that pins keys, not a root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyset_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResponse {
    pub poll_interval_s: u64,
    pub packages: Vec<PolledPackage>,
    /// Shut down (once: a computer woken for a container with `shutdown_after`
    /// whose jobs there are done), after the reports are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerAction>,
    /// Central's key set, when it is newer than the poll's `keyset_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolledPackage {
    pub id: PackageId,
    pub priority: u8,
    pub info_sha256: String,
    /// Relays that hold the package whole (the agent picks by the same-subnet rule).
    pub relays: Vec<RelayRef>,
    /// A relay serves one of the agent's addresses but does not hold the package
    /// whole yet: the agent waits for it instead of downloading from central
    /// (unless `central_fallback` says otherwise).
    #[serde(default)]
    pub relay_pending: bool,
    pub central_fallback: CentralFallback,
    /// Install the package, or run its uninstall procedure (SPEC "Jobs").
    #[serde(default)]
    pub kind: JobKind,
    /// Seconds to wait before restarting, if the package needs a restart
    /// (its container's `restart_timeout`).
    #[serde(default = "default_restart_timeout_s")]
    pub restart_timeout_s: u64,
    /// This hand-out of the job (opaque): reports about it carry it back, so a
    /// report answers exactly one try of one job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Central's signed word that this computer may install this package below
    /// the version of its name installed there (an intended downgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade: Option<String>,
}

/// A relay as agents see it: where to download and which subnets it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRef {
    pub id: RelayId,
    pub url: String,
    pub subnets: Vec<IpNet>,
}

impl crate::subnet::RelaySubnets for RelayRef {
    fn relay_id(&self) -> &RelayId {
        &self.id
    }
    fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub code: StatusCode,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub fragments_done: Option<u32>,
    /// Fragment bytes taken from each source (final reports; empty otherwise).
    #[serde(default)]
    pub sources: Vec<SourceBytes>,
    /// The hand-out it answers ([`PolledPackage::job`]); absent from older agents,
    /// whose reports go to the computer's current job for the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// Why an agent abandoned a relay (`POST /agent/relays/{id}/problems`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The connection could not be made (refused, reset, unreachable) or was
    /// closed before an answer.
    Refused,
    /// Connecting took longer than the agent's `connect_timeout`.
    Timeout,
    /// Connected, but no byte came for `stall_timeout`, the transfer fell below
    /// `min_rate`, or it broke off.
    Stalled,
    /// What came was not what the signed info says (digest, length, info), or an
    /// error status instead of content central says the relay holds.
    BadData,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 4] = [
        ProblemKind::Refused,
        ProblemKind::Timeout,
        ProblemKind::Stalled,
        ProblemKind::BadData,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Refused => "refused",
            ProblemKind::Timeout => "timeout",
            ProblemKind::Stalled => "stalled",
            ProblemKind::BadData => "bad_data",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /agent/relays/{id}/problems`: an agent gave up on a relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemReport {
    /// The package being downloaded, if any.
    #[serde(default)]
    pub package_id: Option<PackageId>,
    pub kind: ProblemKind,
    /// What happened, in words (central keeps the first 1 KiB).
    #[serde(default)]
    pub detail: String,
}

fn default_restart_timeout_s() -> u64 {
    DEFAULT_RESTART_TIMEOUT.as_secs()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::power::WokenComputer;

    #[test]
    fn older_peers_answers_and_requests_still_read() {
        let poll: PollResponse = serde_json::from_value(serde_json::json!({
            "poll_interval_s": 60,
            "packages": [{"id": "app-1", "priority": 5, "info_sha256": "ab", "relays": [],
                          "central_fallback": "never"}],
        }))
        .unwrap();
        assert_eq!(poll.power, None);
        assert_eq!(poll.packages[0].restart_timeout_s, 300);
        let request: PollRequest =
            serde_json::from_value(serde_json::json!({"addresses": ["10.1.0.5"]})).unwrap();
        assert!(request.macs.is_empty());
        assert_eq!(request.uptime_s, None);
        // A poll that knows no uptime says nothing of it.
        let json = serde_json::to_value(&request).unwrap();
        assert!(json.get("uptime_s").is_none(), "{json}");
        let with: PollRequest =
            serde_json::from_value(serde_json::json!({"uptime_s": 3600})).unwrap();
        assert_eq!(with.uptime_s, Some(3600));
        // A wake's line from before uptimes and retries.
        let line: WokenComputer = serde_json::from_value(serde_json::json!({
            "computer_id": "pc-1", "was_off": true, "macs": [], "relay": "relay-1",
            "came_up_at": null, "shutdown": "pending", "shutdown_at": null,
        }))
        .unwrap();
        assert_eq!(
            (line.not_asked, line.asked_at, line.booted_at),
            (None, None, None)
        );
        // Nothing to say about power: the field is left out.
        let json = serde_json::to_value(&poll).unwrap();
        assert!(json.get("power").is_none(), "{json}");
        let shut = PollResponse {
            power: Some(PowerAction::Shutdown),
            ..poll
        };
        assert_eq!(serde_json::to_value(&shut).unwrap()["power"], "shutdown");
    }
}
