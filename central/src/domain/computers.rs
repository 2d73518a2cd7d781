//! Computers: listing, finding, OCO's computer page (its packages and jobs),
//! tags, and OCO's "remove assignment" (central forgets a package there).

use std::collections::BTreeMap;

use sitecast_common::groups;
use sitecast_common::ids::PackageId;
use sitecast_common::wire::{Computer, ComputerDetail, ComputerPackage, TagsRequest};

use super::records::{self, criteria_error};
use super::{containers, rules};
use crate::error::CentralError;
use crate::state::Central;
use crate::store::PackageRecord;

pub fn list(c: &Central) -> Result<Vec<Computer>, CentralError> {
    Ok(c.store.computers()?.iter().map(Computer::from).collect())
}

/// A computer, its packages (installed, or with a job) by package name then
/// version, and its jobs (OCO's computer page).
pub fn show(c: &Central, id: &str) -> Result<ComputerDetail, CentralError> {
    let computer = records::computer(c, id)?;
    let jobs = c.store.jobs_on(&computer.id)?;
    let mut packages: BTreeMap<PackageId, ComputerPackage> = BTreeMap::new();
    for j in &jobs {
        let Some(p) = c.store.package(&j.package_id)? else {
            continue;
        };
        let line = packages
            .entry(p.id.clone())
            .or_insert_with(|| blank_line(p));
        if line.updated_at.is_none_or(|at| j.updated_at >= at) {
            line.status = Some(j.status);
            line.exit_code = j.exit_code;
            line.updated_at = Some(j.updated_at);
        }
    }
    for i in c.store.installed_on(&computer.id)? {
        let Some(p) = c.store.package(&i.package_id)? else {
            continue;
        };
        let line = packages
            .entry(p.id.clone())
            .or_insert_with(|| blank_line(p));
        line.installed = true;
        line.installed_at = Some(i.installed_at);
    }
    let mut packages: Vec<ComputerPackage> = packages.into_values().collect();
    packages.sort_by(|a, b| {
        (&a.name, &a.version, &a.package_id).cmp(&(&b.name, &b.version, &b.package_id))
    });
    Ok(ComputerDetail {
        computer: Computer::from(&computer),
        packages,
        jobs: containers::job_views(c, jobs)?,
    })
}

fn blank_line(p: PackageRecord) -> ComputerPackage {
    ComputerPackage {
        package_id: p.id,
        name: p.name,
        version: p.version,
        status: None,
        exit_code: None,
        updated_at: None,
        installed: false,
        installed_at: None,
    }
}

/// The computer's tags from now on; its rules are re-evaluated.
pub fn set_tags(c: &Central, id: &str, req: TagsRequest) -> Result<Computer, CentralError> {
    let cid = records::computer(c, id)?.id;
    let tags = groups::parse_tags(&req.tags).map_err(criteria_error)?;
    let record = c
        .store
        .set_tags(&cid, &tags)?
        .ok_or_else(|| CentralError::not_found("computer", &cid))?;
    rules::after_computer_change(c, &cid);
    tracing::info!(computer = %record.id, tags = ?record.tags, "computer tags changed");
    Ok(Computer::from(&record))
}

/// Approves a computer enrolled under `enroll_approval = "manual"`: from its next
/// poll it is handed jobs. Approving an approved computer changes nothing.
pub fn approve(c: &Central, id: &str) -> Result<Computer, CentralError> {
    let cid = records::computer(c, id)?.id;
    let record = c
        .store
        .approve_computer(&cid)?
        .ok_or_else(|| CentralError::not_found("computer", id))?;
    tracing::info!(computer = %cid, "computer approved");
    rules::after_computer_change(c, &cid);
    Ok(Computer::from(&record))
}

/// Deletes a computer: its token is revoked at once (its agent's next request is
/// refused), then central forgets its jobs and what it had installed. A re-imaged
/// machine enrolls again as a new computer.
pub fn delete(c: &Central, id: &str) -> Result<(), CentralError> {
    let cid = records::computer(c, id)?.id;
    if !c.store.delete_computer(&cid)? {
        return Err(CentralError::not_found("computer", id));
    }
    for package in c.store.packages()? {
        c.store.forget(&cid, &package.id)?;
    }
    tracing::info!(computer = %cid, "computer deleted, its token revoked");
    Ok(())
}

/// OCO "Remove assignment": central forgets that the package is installed on
/// the computer, and its jobs there, without running anything on the computer.
/// A rule that wants the package there makes its job again (OCO).
pub fn remove_assignment(c: &Central, computer: &str, package: &str) -> Result<(), CentralError> {
    let cid = records::computer(c, computer)?.id;
    let pid = records::package(c, package)?.id;
    let removed = c.store.forget(&cid, &pid)?;
    rules::after_computer_change(c, &cid);
    if !removed {
        return Err(CentralError::not_found(
            "assignment",
            format!("{pid} on {cid}"),
        ));
    }
    tracing::info!(package = %pid, computer = %cid, "assignment removed");
    Ok(())
}
