//! The store's own records of what central keeps that the admin API also
//! shows: packages and their activation, sites, and what relays and agents
//! report. Each serialises to the JSON its wire counterpart had when the store
//! kept that type, so databases written before these records existed read
//! unchanged; the conversions to and from wire types are the domain's.

use std::collections::BTreeMap;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::deployment::CentralFallback;
use sitecast_common::ids::{ComputerId, PackageId, RelayId, SiteName};
use sitecast_common::info::{ActionDoc, NotifyDoc, UninstallDoc};
use sitecast_common::status::StatusCode;

use super::Held;

/// A package as central keeps it: what its signed info says, and its activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    pub id: PackageId,
    pub name: String,
    pub version: String,
    pub os: String,
    pub priority: u8,
    pub action: ActionDoc,
    pub archive: String,
    pub size: u64,
    pub sha256: String,
    pub fragment_size: u64,
    /// The number of fragments.
    pub fragments: u32,
    pub success_exit_codes: Vec<i32>,
    /// SHA-256 of the signed envelope's bytes.
    pub info_sha256: String,
    pub created_at: Timestamp,
    pub activation: ActivationRecord,
    // Packages stored before these fields existed lack them.
    #[serde(default)]
    pub uninstall: Option<UninstallDoc>,
    #[serde(default)]
    pub supersedes: Option<PackageId>,
    #[serde(default)]
    pub notify: Option<NotifyDoc>,
    #[serde(default)]
    pub done_action_text: Option<String>,
    #[serde(default)]
    pub restart: bool,
}

/// Which sites' relays replicate a package, and whether agents may fall back to central.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub all_sites: bool,
    pub sites: Vec<SiteName>,
    pub central_fallback: CentralFallback,
}

/// A site as central keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub name: SiteName,
    pub subnets: Vec<IpNet>,
    pub created_at: Timestamp,
}

/// Why an agent abandoned a relay, as counted on the relay's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKindRecord {
    Refused,
    Timeout,
    Stalled,
    BadData,
}

/// The problems agents reported about one relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayProblemsRecord {
    #[serde(default)]
    pub count: u64,
    /// The count per kind (kinds never reported are absent).
    #[serde(default)]
    pub counts: BTreeMap<ProblemKindRecord, u64>,
    /// The most recent problem.
    #[serde(default)]
    pub last: Option<ProblemRecord>,
}

impl RelayProblemsRecord {
    /// Counts `problem` and makes it the last one.
    pub fn record(&mut self, problem: ProblemRecord) {
        self.count += 1;
        *self.counts.entry(problem.kind).or_insert(0) += 1;
        self.last = Some(problem);
    }
}

/// One reported problem: what, about which package, from which computer, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemRecord {
    pub kind: ProblemKindRecord,
    pub detail: String,
    pub computer_id: ComputerId,
    #[serde(default)]
    pub package_id: Option<PackageId>,
    pub at: Timestamp,
}

/// Where a relay's replication stood at its last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationRecord {
    pub window_open: bool,
    /// Bytes per second (`None`: unlimited).
    pub max_rate: Option<u64>,
    pub rate: u64,
}

impl Default for ReplicationRecord {
    /// A relay that never reported is taken to be open and uncapped, as relays
    /// start.
    fn default() -> Self {
        Self {
            window_open: true,
            max_rate: None,
            rate: 0,
        }
    }
}

/// A relay's disk, quota, kept delta bases, scrub and software, as it last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub disk_used: u64,
    #[serde(default)]
    pub disk_free: Option<u64>,
    #[serde(default)]
    pub max_disk: Option<u64>,
    #[serde(default)]
    pub over_quota: bool,
    #[serde(default)]
    pub kept: Vec<PackageId>,
    #[serde(default)]
    pub evicted: u64,
    #[serde(default)]
    pub last_scrub: Option<Timestamp>,
    #[serde(default)]
    pub scrub_bad: u64,
    #[serde(default)]
    pub scrub_bad_total: u64,
    #[serde(default)]
    pub scrub_interval_s: Option<u64>,
}

/// What a relay's report changes on its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReportRecord {
    /// Fragments held per package.
    pub holdings: BTreeMap<PackageId, Held>,
    pub bytes_from_central: u64,
    pub quic_bytes_from_central: u64,
    pub bytes_to_agents: u64,
    pub replication: ReplicationRecord,
    pub health: HealthRecord,
}

/// Fragment bytes an agent took from one source for one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The relay; `None` is central.
    pub relay_id: Option<RelayId>,
    pub bytes: u64,
}

/// An agent's report on a job, as the store applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    pub code: StatusCode,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub fragments_done: Option<u32>,
    /// Fragment bytes per source (final reports; empty otherwise).
    pub sources: Vec<SourceRecord>,
}

/// What re-evaluating a rule did to its jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub added: u64,
    pub renewed: u64,
    pub removed: u64,
}

#[allow(clippy::unwrap_used)]
#[cfg(test)]
mod tests {
    //! Databases written when the store kept wire types must read unchanged:
    //! each record takes the old type's JSON and writes it back identical.

    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};
    use sitecast_common::wire;

    use super::*;

    fn same_json<Old: Serialize, New: Serialize + DeserializeOwned>(old: &Old) {
        let before = serde_json::to_value(old).unwrap();
        let record: New = serde_json::from_value(before.clone()).unwrap();
        assert_eq!(serde_json::to_value(&record).unwrap(), before);
    }

    /// Absent fields take the same defaults in the record as in the old type.
    fn same_defaults<Old: Serialize + DeserializeOwned, New: Serialize + DeserializeOwned>(
        partial: Value,
    ) {
        let old: Old = serde_json::from_value(partial.clone()).unwrap();
        let new: New = serde_json::from_value(partial).unwrap();
        assert_eq!(
            serde_json::to_value(&new).unwrap(),
            serde_json::to_value(&old).unwrap()
        );
    }

    fn package() -> wire::Package {
        wire::Package {
            id: "app-1-x".parse().unwrap(),
            name: "app".into(),
            version: "1".into(),
            os: "linux".into(),
            priority: 5,
            action: ActionDoc::Execute {
                command: "./install.sh".into(),
            },
            archive: "tar.gz".into(),
            size: 1000,
            sha256: "ab".repeat(32),
            fragment_size: 512,
            fragments: 2,
            success_exit_codes: vec![0, 3010],
            info_sha256: "cd".repeat(32),
            created_at: Timestamp::UNIX_EPOCH,
            activation: wire::Activation {
                all_sites: false,
                sites: vec!["paris".parse().unwrap()],
                central_fallback: "after:1h".parse().unwrap(),
            },
            uninstall: Some(UninstallDoc {
                command: "./remove.sh".into(),
                success_exit_codes: vec![0],
            }),
            supersedes: Some("app-0-y".parse().unwrap()),
            notify: Some(NotifyDoc {
                text: "installing".into(),
                countdown_s: 60,
                can_abort: true,
                can_delay: false,
            }),
            done_action_text: Some("done".into()),
            restart: true,
        }
    }

    #[test]
    fn a_package_reads_and_writes_as_the_wire_package_did() {
        same_json::<_, PackageRecord>(&package());
        let mut bare = serde_json::to_value(package()).unwrap();
        for field in [
            "uninstall",
            "supersedes",
            "notify",
            "done_action_text",
            "restart",
        ] {
            bare.as_object_mut().unwrap().remove(field);
        }
        same_defaults::<wire::Package, PackageRecord>(bare);
    }

    #[test]
    fn a_site_reads_and_writes_as_the_wire_site_did() {
        same_json::<_, SiteRecord>(&wire::Site {
            name: "paris".parse().unwrap(),
            subnets: vec!["10.1.0.0/16".parse().unwrap()],
            created_at: Timestamp::UNIX_EPOCH,
        });
    }

    #[test]
    fn a_relays_reports_read_and_write_as_the_wire_types_did() {
        let mut problems = wire::RelayProblems::default();
        for kind in wire::ProblemKind::ALL {
            problems.record(wire::RelayProblem {
                kind,
                detail: kind.to_string(),
                computer_id: "pc-1".parse().unwrap(),
                package_id: Some("app-1-x".parse().unwrap()),
                at: Timestamp::UNIX_EPOCH,
            });
        }
        same_json::<_, RelayProblemsRecord>(&problems);
        same_json::<_, RelayProblemsRecord>(&wire::RelayProblems::default());
        same_defaults::<wire::RelayProblems, RelayProblemsRecord>(json!({}));

        same_json::<_, ReplicationRecord>(&wire::ReplicationState {
            window_open: false,
            max_rate: Some(1 << 20),
            rate: 4096,
        });
        assert_eq!(
            serde_json::to_value(ReplicationRecord::default()).unwrap(),
            serde_json::to_value(wire::ReplicationState::default()).unwrap()
        );

        same_json::<_, HealthRecord>(&wire::RelayHealth {
            version: "sitecast-relay 0.1.0".into(),
            disk_used: 10,
            disk_free: Some(20),
            max_disk: Some(30),
            over_quota: true,
            kept: vec!["app-0-y".parse().unwrap()],
            evicted: 2,
            last_scrub: Some(Timestamp::UNIX_EPOCH),
            scrub_bad: 1,
            scrub_bad_total: 3,
            scrub_interval_s: Some(3600),
        });
        same_defaults::<wire::RelayHealth, HealthRecord>(json!({}));
    }

    #[test]
    fn job_sources_read_and_write_as_the_wire_type_did() {
        same_json::<_, SourceRecord>(&wire::SourceBytes {
            relay_id: Some("relay-1".parse().unwrap()),
            bytes: 7,
        });
        same_json::<_, SourceRecord>(&wire::SourceBytes {
            relay_id: None,
            bytes: 7,
        });
    }
}
