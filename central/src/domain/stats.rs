//! A package's statistics (OCS's): each computer's latest install job of it,
//! counts per status, the per-site summary (`sitecast_common::stats`), and
//! OCS's validate operations that clear lines of them.

use std::collections::BTreeMap;

use sitecast_common::ids::{ComputerId, PackageId};
use sitecast_common::jobs::JobKind;
use sitecast_common::stats;
use sitecast_common::status::StatusCode as Status;
use sitecast_common::wire::{ComputerStat, Stats, ValidateRequest, Validated};

use super::records;
use crate::error::CentralError;
use crate::state::Central;
use crate::store::JobRecord;

/// A package's statistics lines: for each computer, its latest install job of
/// the package (uninstall jobs are the computer's business, older jobs history).
fn lines(c: &Central, package: &PackageId) -> Result<Vec<JobRecord>, CentralError> {
    let mut per_computer: BTreeMap<ComputerId, Vec<JobRecord>> = BTreeMap::new();
    for j in c.store.jobs_of_package(package)? {
        if j.kind == JobKind::Install {
            per_computer
                .entry(j.computer_id.clone())
                .or_default()
                .push(j);
        }
    }
    Ok(per_computer
        .values()
        .filter_map(|jobs| crate::store::jobs::latest(jobs).cloned())
        .collect())
}

pub fn of_package(c: &Central, id: &str) -> Result<Stats, CentralError> {
    let package = records::package(c, id)?;
    let mut counts = BTreeMap::new();
    let mut by_status: BTreeMap<Status, Vec<ComputerId>> = BTreeMap::new();
    let mut computers = Vec::new();
    let mut site_lines = Vec::new();
    for a in lines(c, &package.id)? {
        *counts.entry(a.status).or_insert(0) += 1;
        by_status
            .entry(a.status)
            .or_default()
            .push(a.computer_id.clone());
        site_lines.push(stats::Line {
            addresses: c
                .store
                .computer(&a.computer_id)?
                .map(|c| c.addresses)
                .unwrap_or_default(),
            sources: a.sources.iter().cloned().map(Into::into).collect(),
        });
        computers.push(computer_stat(c, a)?);
    }
    // Sites as the relays' subnets draw them now.
    let relays: Vec<stats::SiteRelay> = c.store.relays()?.iter().map(Into::into).collect();
    Ok(Stats {
        package_id: package.id,
        counts,
        computers,
        by_status,
        sites: stats::by_site(&site_lines, &relays),
    })
}

/// The statuses `POST /packages/{id}/validate` clears for each `what`.
fn validated_statuses(what: Option<&str>) -> Result<&'static [Status], CentralError> {
    const SUCCESS: &[Status] = &[Status::Success, Status::ErrAlreadySetup];
    const NOT_NOTIFIED: &[Status] = &[Status::WaitingNotification];
    const ALL: &[Status] = &[
        Status::Success,
        Status::ErrAlreadySetup,
        Status::WaitingNotification,
    ];
    match what.map(str::trim) {
        Some("success") => Ok(SUCCESS),
        Some("not_notified") => Ok(NOT_NOTIFIED),
        Some("all") => Ok(ALL),
        Some(other) => Err(CentralError::invalid(format!(
            "bad what: '{other}' is not one of success, not_notified, all"
        ))),
        None => Err(CentralError::invalid(
            "bad what: missing (one of success, not_notified, all)",
        )),
    }
}

/// OCS "Validate success" (the package is in place: clear those lines of the
/// statistics), "Unaffect not notified" (cancel assignments no agent has
/// picked up yet) and "Validate all" (both).
pub fn validate(c: &Central, id: &str, req: ValidateRequest) -> Result<Validated, CentralError> {
    let package = records::package(c, id)?;
    let statuses = validated_statuses(req.what.as_deref())?;
    let removed = c
        .store
        .remove_jobs(&package.id, JobKind::Install, statuses)?;
    let remaining = lines(c, &package.id)?.len() as u64;
    let mut counts = BTreeMap::new();
    for a in &removed {
        *counts.entry(a.status).or_insert(0) += 1;
    }
    tracing::info!(id = %package.id, removed = removed.len(), remaining, "package validated");
    Ok(Validated {
        package_id: package.id,
        removed: counts,
        remaining,
    })
}

/// One computer's line in a package's statistics.
pub fn computer_stat(c: &Central, a: JobRecord) -> Result<ComputerStat, CentralError> {
    let hostname = c
        .store
        .computer(&a.computer_id)?
        .map(|c| c.hostname)
        .unwrap_or_default();
    Ok(ComputerStat {
        computer_id: a.computer_id,
        hostname,
        status: a.status,
        exit_code: a.exit_code,
        output: a.output,
        fragments_done: a.fragments_done,
        updated_at: a.updated_at,
        sources: a.sources.into_iter().map(Into::into).collect(),
    })
}
