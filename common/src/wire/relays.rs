//! Sites and relays as the admin API shows them: their health, where their
//! replication stands, what they hold, and the problems agents reported.

use std::collections::BTreeMap;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{ComputerId, PackageId, RelayId, SiteName};

use super::agent::ProblemKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRequest {
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub name: SiteName,
    pub subnets: Vec<IpNet>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRequest {
    pub site: String,
    pub subnets: Vec<String>,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayCreated {
    pub id: RelayId,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relay {
    pub id: RelayId,
    pub site: SiteName,
    pub subnets: Vec<IpNet>,
    pub url: String,
    pub last_seen: Option<Timestamp>,
    pub holdings: Vec<Holding>,
    /// Bytes the relay received from central, as it last reported (since it started).
    #[serde(default)]
    pub bytes_from_central: u64,
    /// UDP bytes the relay received on its QUIC connections (since it started).
    #[serde(default)]
    pub quic_bytes_from_central: u64,
    /// Bytes the relay served to agents, as it last reported (since it started).
    #[serde(default)]
    pub bytes_to_agents: u64,
    /// What agents reported about this relay (refused, timed out, stalled, bad data).
    #[serde(default)]
    pub problems: RelayProblems,
    /// Window, cap and current rate, as the relay last reported.
    #[serde(default)]
    pub replication: ReplicationState,
    /// Disk, quota, scrub and software, as the relay last reported.
    #[serde(default)]
    pub health: RelayHealth,
}

/// A relay's health: its software, its cache against its disk and quota, the
/// delta bases it keeps, and what its last scrub found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHealth {
    /// The relay's software, e.g. `sitecast-relay 0.1.0` (empty: not reported).
    #[serde(default)]
    pub version: String,
    /// Bytes of the relay's cache (signed infos and fragments).
    #[serde(default)]
    pub disk_used: u64,
    /// Bytes free on the cache's file system (`None`: unknown).
    #[serde(default)]
    pub disk_free: Option<u64>,
    /// The relay's `max_disk` quota in bytes (`None`: unlimited).
    #[serde(default)]
    pub max_disk: Option<u64>,
    /// The cache exceeds the quota with nothing left to evict: what the site
    /// has activated alone is larger than `max_disk`.
    #[serde(default)]
    pub over_quota: bool,
    /// Packages no longer activated but kept whole as delta bases (evicted
    /// first, least recently needed first, when the quota needs room).
    #[serde(default)]
    pub kept: Vec<PackageId>,
    /// Kept packages evicted for the quota since the relay started.
    #[serde(default)]
    pub evicted: u64,
    /// When the last scrub (every held fragment re-hashed) finished.
    #[serde(default)]
    pub last_scrub: Option<Timestamp>,
    /// Bad fragments (and infos) the last scrub found, deleted and fetched again.
    #[serde(default)]
    pub scrub_bad: u64,
    /// Bad fragments (and infos) found by every scrub so far.
    #[serde(default)]
    pub scrub_bad_total: u64,
    /// Seconds between scrubs (`None`: scrubbing is off).
    #[serde(default)]
    pub scrub_interval_s: Option<u64>,
}

/// Where a relay's replication stands: whether its schedule admits fragment
/// bytes now, its cap, and the rate it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationState {
    pub window_open: bool,
    /// Bytes per second (`None`: unlimited).
    pub max_rate: Option<u64>,
    /// Bytes per second received from central recently.
    pub rate: u64,
}

impl Default for ReplicationState {
    fn default() -> Self {
        Self {
            window_open: true,
            max_rate: None,
            rate: 0,
        }
    }
}

/// Central's own counters (`GET /status`), since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentralStatus {
    pub version: String,
    /// Fragment bytes central served to agents directly.
    pub fragment_bytes_to_agents: u64,
    /// Info and fragment bytes central sent to relays.
    pub bytes_to_relays: u64,
    /// Relays connected now.
    pub relays_connected: u64,
}

/// How much of one activated package a relay holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub package_id: PackageId,
    pub held: u32,
    pub total: u32,
    /// The relay holds the current signed info and every fragment: agents may use it.
    #[serde(default)]
    pub complete: bool,
    /// Seconds until the relay holds it all at its current rate (`None`: complete,
    /// or not moving).
    #[serde(default)]
    pub eta_s: Option<u64>,
}

/// The problems agents reported about one relay, as central keeps and shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayProblems {
    /// Every problem reported, of any kind.
    #[serde(default)]
    pub count: u64,
    /// The count per kind (kinds never reported are absent).
    #[serde(default)]
    pub counts: BTreeMap<ProblemKind, u64>,
    /// The most recent problem.
    #[serde(default)]
    pub last: Option<RelayProblem>,
}

/// One reported problem: what, about which package, from which computer, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayProblem {
    pub kind: ProblemKind,
    pub detail: String,
    pub computer_id: ComputerId,
    #[serde(default)]
    pub package_id: Option<PackageId>,
    pub at: Timestamp,
}

impl RelayProblems {
    /// Counts `problem` and makes it the last one.
    pub fn record(&mut self, problem: RelayProblem) {
        self.count += 1;
        *self.counts.entry(problem.kind).or_insert(0) += 1;
        self.last = Some(problem);
    }
}

/// Answer of a relay's own `GET /v1/health`, on its LAN listener: what it
/// holds now and what it moved since it started, for site admins and probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStatus {
    /// `ok`: the relay answers.
    pub status: String,
    pub relay_id: RelayId,
    /// The relay's version, e.g. `0.1.0`.
    pub version: String,
    /// Fragments of each package's current signed info held on disk.
    pub holdings: BTreeMap<PackageId, u32>,
    /// Info and fragment bytes received from central since the relay started.
    pub bytes_from_central: u64,
    /// Info and fragment bytes served to agents since the relay started.
    pub bytes_to_agents: u64,
    pub health: RelayHealth,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::ProblemReport;

    #[test]
    fn problem_kinds_travel_as_snake_case_and_are_counted() {
        for kind in ProblemKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<ProblemKind>(&json).unwrap(), kind);
        }
        assert!(serde_json::from_str::<ProblemKind>("\"slow\"").is_err());
        let report: ProblemReport =
            serde_json::from_str(r#"{"kind":"bad_data","detail":"x"}"#).unwrap();
        assert_eq!(report.package_id, None);
        let mut problems = RelayProblems::default();
        for kind in [
            ProblemKind::Stalled,
            ProblemKind::Refused,
            ProblemKind::Stalled,
        ] {
            problems.record(RelayProblem {
                kind,
                detail: kind.to_string(),
                computer_id: "pc-1".parse().unwrap(),
                package_id: None,
                at: Timestamp::UNIX_EPOCH,
            });
        }
        assert_eq!(problems.count, 3);
        assert_eq!(
            serde_json::to_value(&problems.counts).unwrap(),
            serde_json::json!({"refused": 1, "stalled": 2})
        );
        assert_eq!(problems.last.unwrap().kind, ProblemKind::Stalled);
    }
}
