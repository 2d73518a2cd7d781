//! Computer groups, package groups and computer tags (SPEC "Rules, groups,
//! power, users"), and how requests choose computers ([`choose_computers`]:
//! a list, or OCS's "search, then deploy to all results").
//!
//! Every change to a group's members re-evaluates the rules
//! ([`rules::reevaluate_all`]), under the rules lock: a check (a group in use, a
//! loop) and the change it allows are one step.

use std::collections::BTreeSet;

use sitecast_common::groups::Criteria;
use sitecast_common::ids::{ComputerId, GroupName, PackageId};
use sitecast_common::wire::{
    Group, GroupMember, GroupRequest, MembersRequest, PackageGroup, PackageGroupMember,
    PackageGroupRequest, PackageMembersRequest,
};

use super::records::{self, criteria_error, group_name, in_group};
use super::rules;
use crate::error::CentralError;
use crate::state::Central;
use crate::store::{ComputerRecord, GroupRecord, PackageGroupRecord, RuleSpec};

const DESCRIPTION_MAX: usize = 4000;

fn description(text: Option<&str>) -> Result<String, CentralError> {
    records::text("description", text.unwrap_or(""), DESCRIPTION_MAX, true)
}

/// The group's members among `computers`, in their order.
pub fn members<'a>(
    group: &GroupRecord,
    computers: &'a [ComputerRecord],
) -> Vec<&'a ComputerRecord> {
    computers.iter().filter(|c| in_group(group, c)).collect()
}

/// Rules whose computers or packages are the group.
fn rules_using(
    c: &Central,
    uses: impl Fn(&RuleSpec) -> bool,
) -> Result<Vec<sitecast_common::ids::ContainerId>, CentralError> {
    Ok(c.store
        .containers()?
        .into_iter()
        .filter(|r| r.rule.as_ref().is_some_and(&uses))
        .map(|r| r.id)
        .collect())
}

fn group_view(c: &Central, g: GroupRecord) -> Result<Group, CentralError> {
    let computers = c.store.computers()?;
    let members = members(&g, &computers)
        .into_iter()
        .map(|rec| GroupMember {
            id: rec.id.clone(),
            hostname: rec.hostname.clone(),
        })
        .collect();
    let rules = rules_using(c, |r| r.group.as_ref() == Some(&g.name))?;
    Ok(Group {
        name: g.name,
        description: g.description,
        computers: g.computers,
        criteria: g.criteria,
        members,
        rules,
        created_at: g.created_at,
    })
}

fn package_group_view(c: &Central, g: PackageGroupRecord) -> Result<PackageGroup, CentralError> {
    let mut packages = Vec::new();
    for id in &g.packages {
        if let Some(p) = c.store.package(id)? {
            packages.push(PackageGroupMember {
                id: p.id,
                name: p.name,
                version: p.version,
            });
        }
    }
    let rules = rules_using(c, |r| r.package_group == g.name)?;
    Ok(PackageGroup {
        name: g.name,
        description: g.description,
        packages,
        rules,
        created_at: g.created_at,
    })
}

/// Each listed computer, checked to exist, without repeats.
fn computer_ids(c: &Central, list: &[String]) -> Result<Vec<ComputerId>, CentralError> {
    let mut ids: Vec<ComputerId> = Vec::new();
    for text in list {
        let id = records::computer(c, text)?.id;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn package_ids(c: &Central, list: &[String]) -> Result<Vec<PackageId>, CentralError> {
    let mut ids: Vec<PackageId> = Vec::new();
    for text in list {
        let id = records::package(c, text)?.id;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

pub fn create_group(c: &Central, req: GroupRequest) -> Result<Group, CentralError> {
    let record = GroupRecord {
        name: group_name("name", &req.name)?,
        description: description(req.description.as_deref())?,
        criteria: Criteria::parse(&req.subnets, &req.tags, &req.os, &req.hostnames)
            .map_err(criteria_error)?,
        computers: computer_ids(c, &req.computers)?,
        created_at: c.clock.now(),
    };
    c.store.add_group(&record)?;
    let view = group_view(c, record)?;
    tracing::info!(group = %view.name, members = view.members.len(), "computer group created");
    Ok(view)
}

pub fn list_groups(c: &Central) -> Result<Vec<Group>, CentralError> {
    c.store
        .groups()?
        .into_iter()
        .map(|g| group_view(c, g))
        .collect()
}

pub fn show_group(c: &Central, name: &str) -> Result<Group, CentralError> {
    let g = records::group(c, name)?;
    group_view(c, g)
}

/// Deletes a computer group no rule uses.
pub fn delete_group(c: &Central, name: &str) -> Result<(), CentralError> {
    let g = records::group(c, name)?;
    let n = g.name;
    let _guard = c.evaluating();
    let users = rules_using(c, |r| r.group.as_ref() == Some(&n))?;
    if !users.is_empty() {
        return Err(CentralError::Conflict(format!(
            "group '{n}' is the computers of rule(s) {}: delete those rules first",
            ids_text(&users)
        )));
    }
    c.store.delete_group(&n)?;
    tracing::info!(group = %n, "computer group deleted");
    Ok(())
}

fn ids_text(ids: &[impl std::fmt::Display]) -> String {
    ids.iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies a change to a group's static members, re-evaluates the rules (all
/// of them: one rule's members decide what the others leave installed), and
/// answers the group.
fn change_members(
    c: &Central,
    name: GroupName,
    change: impl Fn(&mut GroupRecord),
) -> Result<Group, CentralError> {
    let guard = c.evaluating();
    let g = c
        .store
        .update_group(&name, &change)?
        .ok_or_else(|| CentralError::not_found("group", &name))?;
    rules::reevaluate_all(c, &guard);
    group_view(c, g)
}

pub fn add_members(c: &Central, name: &str, req: MembersRequest) -> Result<Group, CentralError> {
    let g = records::group(c, name)?;
    if req.computers.is_empty() {
        return Err(CentralError::invalid("bad computers: the list is empty"));
    }
    let add = computer_ids(c, &req.computers)?;
    change_members(c, g.name, move |g| {
        for id in &add {
            if !g.computers.contains(id) {
                g.computers.push(id.clone());
            }
        }
    })
}

pub fn remove_member(c: &Central, name: &str, computer: &str) -> Result<Group, CentralError> {
    let g = records::group(c, name)?;
    let Some(id) = g
        .computers
        .iter()
        .find(|id| id.as_str() == computer)
        .cloned()
    else {
        return Err(CentralError::not_found(
            "static member",
            format!("{computer} of group {}", g.name),
        ));
    };
    change_members(c, g.name, move |g| g.computers.retain(|m| m != &id))
}

pub fn create_package_group(
    c: &Central,
    req: PackageGroupRequest,
) -> Result<PackageGroup, CentralError> {
    let record = PackageGroupRecord {
        name: group_name("name", &req.name)?,
        description: description(req.description.as_deref())?,
        packages: package_ids(c, &req.packages)?,
        created_at: c.clock.now(),
    };
    c.store.add_package_group(&record)?;
    let view = package_group_view(c, record)?;
    tracing::info!(group = %view.name, packages = view.packages.len(), "package group created");
    Ok(view)
}

pub fn list_package_groups(c: &Central) -> Result<Vec<PackageGroup>, CentralError> {
    c.store
        .package_groups()?
        .into_iter()
        .map(|g| package_group_view(c, g))
        .collect()
}

pub fn show_package_group(c: &Central, name: &str) -> Result<PackageGroup, CentralError> {
    let g = records::package_group(c, name)?;
    package_group_view(c, g)
}

/// Deletes a package group no rule deploys.
pub fn delete_package_group(c: &Central, name: &str) -> Result<(), CentralError> {
    let g = records::package_group(c, name)?;
    let n = g.name;
    let _guard = c.evaluating();
    let users = rules_using(c, |r| r.package_group == n)?;
    if !users.is_empty() {
        return Err(CentralError::Conflict(format!(
            "package group '{n}' is deployed by rule(s) {}: delete those rules first",
            ids_text(&users)
        )));
    }
    c.store.delete_package_group(&n)?;
    tracing::info!(group = %n, "package group deleted");
    Ok(())
}

/// Applies a change to a package group's packages (refused if a rule deploying
/// the group would loop), re-evaluates the rules, and answers the group.
fn change_packages(
    c: &Central,
    name: GroupName,
    change: impl Fn(&mut PackageGroupRecord),
) -> Result<PackageGroup, CentralError> {
    let guard = c.evaluating();
    let mut after = c
        .store
        .package_group(&name)?
        .ok_or_else(|| CentralError::not_found("package group", &name))?;
    change(&mut after);
    rules::check_loops(c, &guard, &name, &after.packages)?;
    let g = c
        .store
        .update_package_group(&name, &change)?
        .ok_or_else(|| CentralError::not_found("package group", &name))?;
    rules::reevaluate_all(c, &guard);
    package_group_view(c, g)
}

pub fn add_packages(
    c: &Central,
    name: &str,
    req: PackageMembersRequest,
) -> Result<PackageGroup, CentralError> {
    let g = records::package_group(c, name)?;
    if req.packages.is_empty() {
        return Err(CentralError::invalid("bad packages: the list is empty"));
    }
    let add = package_ids(c, &req.packages)?;
    change_packages(c, g.name, move |g| {
        for id in &add {
            if !g.packages.contains(id) {
                g.packages.push(id.clone());
            }
        }
    })
}

pub fn remove_package(
    c: &Central,
    name: &str,
    package: &str,
) -> Result<PackageGroup, CentralError> {
    let g = records::package_group(c, name)?;
    let Some(id) = g.packages.iter().find(|id| id.as_str() == package).cloned() else {
        return Err(CentralError::not_found(
            "package",
            format!("{package} in package group {}", g.name),
        ));
    };
    change_packages(c, g.name, move |g| g.packages.retain(|p| p != &id))
}

/// Drops a deleted package from every package group (its rules re-evaluated).
pub fn forget_package(c: &Central, id: &PackageId) -> Result<(), CentralError> {
    let guard = c.evaluating();
    let mut changed = BTreeSet::new();
    for g in c.store.package_groups()? {
        if g.packages.contains(id) {
            c.store
                .update_package_group(&g.name, &|g| g.packages.retain(|p| p != id))?;
            changed.insert(g.name);
        }
    }
    if !changed.is_empty() {
        rules::reevaluate_all(c, &guard);
    }
    Ok(())
}
