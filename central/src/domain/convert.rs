//! The store's records to and from the wire types the API carries, and from
//! the domain values of `sitecast_common`: the store names no wire type, so
//! every crossing between what central keeps and what it shows happens here.

use sitecast_common::activation::Activation;
use sitecast_common::protocol::RelayReport;
use sitecast_common::wire;

use crate::store::{
    ActivationRecord, ComputerRecord, Evaluation, HealthRecord, Held, PackageRecord,
    ProblemKindRecord, ProblemRecord, RelayProblemsRecord, RelayReportRecord, ReplicationRecord,
    ReportRecord, SiteRecord, SourceRecord,
};

/// Whether the relays of `site` are to hold `package` ([`Activation::includes`]).
pub fn activated_for(package: &PackageRecord, site: &sitecast_common::ids::SiteName) -> bool {
    let a = &package.activation;
    sitecast_common::activation::includes(a.all_sites, &a.sites, site)
}

impl From<ActivationRecord> for Activation {
    fn from(a: ActivationRecord) -> Self {
        Self {
            all_sites: a.all_sites,
            sites: a.sites,
            central_fallback: a.central_fallback,
        }
    }
}

impl From<Activation> for ActivationRecord {
    fn from(a: Activation) -> Self {
        Self {
            all_sites: a.all_sites,
            sites: a.sites,
            central_fallback: a.central_fallback,
        }
    }
}

impl From<ActivationRecord> for wire::Activation {
    fn from(a: ActivationRecord) -> Self {
        Activation::from(a).into()
    }
}

impl From<wire::Activation> for ActivationRecord {
    fn from(a: wire::Activation) -> Self {
        Activation::from(a).into()
    }
}

impl From<PackageRecord> for wire::Package {
    fn from(p: PackageRecord) -> Self {
        Self {
            id: p.id,
            name: p.name,
            version: p.version,
            os: p.os,
            priority: p.priority,
            action: p.action,
            archive: p.archive,
            size: p.size,
            sha256: p.sha256,
            fragment_size: p.fragment_size,
            fragments: p.fragments,
            success_exit_codes: p.success_exit_codes,
            info_sha256: p.info_sha256,
            created_at: p.created_at,
            activation: p.activation.into(),
            uninstall: p.uninstall,
            supersedes: p.supersedes,
            notify: p.notify,
            done_action_text: p.done_action_text,
            restart: p.restart,
        }
    }
}

impl From<SiteRecord> for wire::Site {
    fn from(s: SiteRecord) -> Self {
        Self {
            name: s.name,
            subnets: s.subnets,
            created_at: s.created_at,
        }
    }
}

impl From<&ComputerRecord> for wire::Computer {
    fn from(c: &ComputerRecord) -> Self {
        Self {
            id: c.id.clone(),
            hostname: c.hostname.clone(),
            os: c.os.clone(),
            addresses: c.addresses.clone(),
            last_seen: c.last_seen,
            enrolled_at: c.enrolled_at,
            tags: c.tags.clone(),
            macs: c.macs.clone(),
            approval: if c.pending {
                wire::Approval::Pending
            } else {
                wire::Approval::Approved
            },
        }
    }
}

impl From<wire::ProblemKind> for ProblemKindRecord {
    fn from(k: wire::ProblemKind) -> Self {
        match k {
            wire::ProblemKind::Refused => Self::Refused,
            wire::ProblemKind::Timeout => Self::Timeout,
            wire::ProblemKind::Stalled => Self::Stalled,
            wire::ProblemKind::BadData => Self::BadData,
        }
    }
}

impl From<ProblemKindRecord> for wire::ProblemKind {
    fn from(k: ProblemKindRecord) -> Self {
        match k {
            ProblemKindRecord::Refused => Self::Refused,
            ProblemKindRecord::Timeout => Self::Timeout,
            ProblemKindRecord::Stalled => Self::Stalled,
            ProblemKindRecord::BadData => Self::BadData,
        }
    }
}

impl From<wire::RelayProblem> for ProblemRecord {
    fn from(p: wire::RelayProblem) -> Self {
        Self {
            kind: p.kind.into(),
            detail: p.detail,
            computer_id: p.computer_id,
            package_id: p.package_id,
            at: p.at,
        }
    }
}

impl From<ProblemRecord> for wire::RelayProblem {
    fn from(p: ProblemRecord) -> Self {
        Self {
            kind: p.kind.into(),
            detail: p.detail,
            computer_id: p.computer_id,
            package_id: p.package_id,
            at: p.at,
        }
    }
}

impl From<RelayProblemsRecord> for wire::RelayProblems {
    fn from(p: RelayProblemsRecord) -> Self {
        Self {
            count: p.count,
            counts: p.counts.into_iter().map(|(k, n)| (k.into(), n)).collect(),
            last: p.last.map(Into::into),
        }
    }
}

impl From<ReplicationRecord> for wire::ReplicationState {
    fn from(r: ReplicationRecord) -> Self {
        Self {
            window_open: r.window_open,
            max_rate: r.max_rate,
            rate: r.rate,
        }
    }
}

impl From<HealthRecord> for wire::RelayHealth {
    fn from(h: HealthRecord) -> Self {
        Self {
            version: h.version,
            disk_used: h.disk_used,
            disk_free: h.disk_free,
            max_disk: h.max_disk,
            over_quota: h.over_quota,
            kept: h.kept,
            evicted: h.evicted,
            last_scrub: h.last_scrub,
            scrub_bad: h.scrub_bad,
            scrub_bad_total: h.scrub_bad_total,
            scrub_interval_s: h.scrub_interval_s,
        }
    }
}

impl From<wire::RelayHealth> for HealthRecord {
    fn from(h: wire::RelayHealth) -> Self {
        Self {
            version: h.version,
            disk_used: h.disk_used,
            disk_free: h.disk_free,
            max_disk: h.max_disk,
            over_quota: h.over_quota,
            kept: h.kept,
            evicted: h.evicted,
            last_scrub: h.last_scrub,
            scrub_bad: h.scrub_bad,
            scrub_bad_total: h.scrub_bad_total,
            scrub_interval_s: h.scrub_interval_s,
        }
    }
}

impl From<&RelayReport> for RelayReportRecord {
    fn from(r: &RelayReport) -> Self {
        Self {
            holdings: r
                .holdings
                .iter()
                .map(|h| {
                    (
                        h.package_id.clone(),
                        Held {
                            info_sha256: h.info_sha256.clone(),
                            fragments: h.held,
                        },
                    )
                })
                .collect(),
            bytes_from_central: r.bytes_from_central,
            quic_bytes_from_central: r.quic_bytes_from_central,
            bytes_to_agents: r.bytes_to_agents,
            replication: ReplicationRecord {
                window_open: r.window_open,
                max_rate: r.max_rate,
                rate: r.rate,
            },
            health: r.health.clone().into(),
        }
    }
}

impl From<wire::SourceBytes> for SourceRecord {
    fn from(s: wire::SourceBytes) -> Self {
        Self {
            relay_id: s.relay_id,
            bytes: s.bytes,
        }
    }
}

impl From<SourceRecord> for wire::SourceBytes {
    fn from(s: SourceRecord) -> Self {
        Self {
            relay_id: s.relay_id,
            bytes: s.bytes,
        }
    }
}

impl From<wire::StatusReport> for ReportRecord {
    fn from(r: wire::StatusReport) -> Self {
        Self {
            code: r.code,
            exit_code: r.exit_code,
            output: r.output,
            fragments_done: r.fragments_done,
            sources: r.sources.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Evaluation> for wire::Evaluation {
    fn from(e: Evaluation) -> Self {
        Self {
            added: e.added,
            renewed: e.renewed,
            removed: e.removed,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_kind_survives_the_round_trip() {
        for kind in wire::ProblemKind::ALL {
            assert_eq!(wire::ProblemKind::from(ProblemKindRecord::from(kind)), kind);
        }
    }
}
