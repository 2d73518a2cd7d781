//! Computer groups, package groups and computer tags (SPEC "Rules, groups,
//! power, users"), and how requests choose computers ([`choose_computers`]:
//! a list, or OCS's "search, then deploy to all results").
//!
//! Every change to a group's members re-evaluates the rules
//! ([`rules::reevaluate_all`]), under the rules lock: a check (a group in use, a
//! loop) and the change it allows are one step.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::groups::{self, Criteria};
use sitecast_common::ids::{ComputerId, GroupName, PackageId};
use sitecast_common::wire::{
    Computer, Group, GroupMember, GroupRequest, MembersRequest, PackageGroup, PackageGroupMember,
    PackageGroupRequest, PackageMembersRequest, TagsRequest, Target,
};

use super::admin::{find_computer, find_package, parse_subnet};
use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::{rules, Central};
use crate::error::CentralError;
use crate::store::{ComputerRecord, GroupRecord, PackageGroupRecord, RuleSpec};

type Shared = State<Arc<Central>>;

const DESCRIPTION_MAX: usize = 4000;

pub(super) fn group_name(field: &str, text: &str) -> Result<GroupName, ApiError> {
    text.trim()
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad {field}: {e}")))
}

fn description(text: Option<&str>) -> Result<String, ApiError> {
    let v = text.unwrap_or("").trim();
    if v.len() > DESCRIPTION_MAX || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad_request(format!(
            "bad description: must be at most {DESCRIPTION_MAX} printable characters"
        )));
    }
    Ok(v.to_owned())
}

pub(super) fn criteria_error(e: groups::CriteriaError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// Whether the computer is in the group: a static member, or matched by its criteria.
pub(super) fn in_group(group: &GroupRecord, computer: &ComputerRecord) -> bool {
    group.computers.contains(&computer.id)
        || (!group.criteria.is_empty() && group.criteria.matches(computer.candidate()))
}

/// The group's members among `computers`, in their order.
pub(super) fn members<'a>(
    group: &GroupRecord,
    computers: &'a [ComputerRecord],
) -> Vec<&'a ComputerRecord> {
    computers.iter().filter(|c| in_group(group, c)).collect()
}

fn find_group(c: &Central, name: &str) -> Result<GroupRecord, ApiError> {
    let n: GroupName = name
        .parse()
        .map_err(|_| ApiError::not_found("group", name))?;
    c.store
        .group(&n)?
        .ok_or_else(|| ApiError::not_found("group", name))
}

fn find_package_group(c: &Central, name: &str) -> Result<PackageGroupRecord, ApiError> {
    let n: GroupName = name
        .parse()
        .map_err(|_| ApiError::not_found("package group", name))?;
    c.store
        .package_group(&n)?
        .ok_or_else(|| ApiError::not_found("package group", name))
}

/// The computers a request chooses: the listed ones, or those every given
/// filter lets through (`all`, `subnet`, `group`, `tags`, `os`, `hostnames`).
pub(super) fn choose_computers(c: &Central, t: &Target) -> Result<Vec<ComputerId>, ApiError> {
    let computers = c.store.computers()?;
    let given = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|l| !l.is_empty());
    let filtered = t.all == Some(true)
        || t.subnet.is_some()
        || t.group.is_some()
        || given(&t.tags)
        || given(&t.os)
        || given(&t.hostnames);
    if let Some(list) = &t.computers {
        if filtered {
            return Err(ApiError::bad_request(
                "bad request body: computers:[...] lists the computers; it does not combine with all, subnet, group, tags, os or hostnames",
            ));
        }
        if list.is_empty() {
            return Err(ApiError::bad_request("bad computers: the list is empty"));
        }
        let mut ids = Vec::new();
        for text in list {
            let id: ComputerId = text
                .parse()
                .map_err(|_| ApiError::not_found("computer", text))?;
            if !computers.iter().any(|c| c.id == id) {
                return Err(ApiError::not_found("computer", text));
            }
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        return Ok(ids);
    }
    if !filtered {
        return Err(ApiError::bad_request(
            "bad request body: choose computers with computers:[...], all:true, subnet, group, tags, os or hostnames",
        ));
    }
    let subnet = t
        .subnet
        .as_deref()
        .map(|s| parse_subnet("subnet", s))
        .transpose()?;
    let group = t.group.as_deref().map(|g| find_group(c, g)).transpose()?;
    let empty = Vec::new();
    let criteria = Criteria::parse(
        &empty,
        t.tags.as_ref().unwrap_or(&empty),
        t.os.as_ref().unwrap_or(&empty),
        t.hostnames.as_ref().unwrap_or(&empty),
    )
    .map_err(criteria_error)?;
    Ok(computers
        .iter()
        .filter(|rec| {
            subnet.is_none_or(|net| rec.addresses.iter().any(|a: &IpAddr| net.contains(a)))
        })
        .filter(|rec| group.as_ref().is_none_or(|g| in_group(g, rec)))
        .filter(|rec| criteria.matches(rec.candidate()))
        .map(|rec| rec.id.clone())
        .collect())
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
fn computer_ids(c: &Central, list: &[String]) -> Result<Vec<ComputerId>, ApiError> {
    let mut ids: Vec<ComputerId> = Vec::new();
    for text in list {
        let id = find_computer(c, text)?.id;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn package_ids(c: &Central, list: &[String]) -> Result<Vec<PackageId>, ApiError> {
    let mut ids: Vec<PackageId> = Vec::new();
    for text in list {
        let id = find_package(c, text)?.id;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

pub async fn create_group(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<GroupRequest>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let record = GroupRecord {
        name: group_name("name", &req.name)?,
        description: description(req.description.as_deref())?,
        criteria: Criteria::parse(&req.subnets, &req.tags, &req.os, &req.hostnames)
            .map_err(criteria_error)?,
        computers: computer_ids(&c, &req.computers)?,
        created_at: c.clock.now(),
    };
    let view = c
        .blocking(move |c| {
            c.store.add_group(&record)?;
            group_view(c, record)
        })
        .await?;
    tracing::info!(group = %view.name, members = view.members.len(), "computer group created");
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list_groups(_: Admin, State(c): Shared) -> Result<Json<Vec<Group>>, ApiError> {
    let mut out = Vec::new();
    for g in c.store.groups()? {
        out.push(group_view(&c, g)?);
    }
    Ok(Json(out))
}

pub async fn show_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Group>, ApiError> {
    let g = find_group(&c, &name)?;
    Ok(Json(group_view(&c, g)?))
}

pub async fn delete_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let g = find_group(&c, &name)?;
    let n = g.name.clone();
    c.blocking(move |c| {
        let _guard = c.evaluating();
        let users = rules_using(c, |r| r.group.as_ref() == Some(&n))?;
        if !users.is_empty() {
            return Err(CentralError::Conflict(format!(
                "group '{n}' is the computers of rule(s) {}: delete those rules first",
                ids_text(&users)
            )));
        }
        c.store.delete_group(&n)
    })
    .await?;
    tracing::info!(group = %g.name, "computer group deleted");
    Ok(StatusCode::NO_CONTENT)
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
async fn change_members(
    c: Arc<Central>,
    name: GroupName,
    change: impl Fn(&mut GroupRecord) + Send + Sync + 'static,
) -> Result<Json<Group>, ApiError> {
    let view = c
        .blocking(move |c| {
            let guard = c.evaluating();
            let g = c
                .store
                .update_group(&name, &change)?
                .ok_or_else(|| CentralError::not_found("group", &name))?;
            rules::reevaluate_all(c, &guard);
            group_view(c, g)
        })
        .await?;
    Ok(Json(view))
}

pub async fn add_members(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<MembersRequest>,
) -> Result<Json<Group>, ApiError> {
    let g = find_group(&c, &name)?;
    if req.computers.is_empty() {
        return Err(ApiError::bad_request("bad computers: the list is empty"));
    }
    let add = computer_ids(&c, &req.computers)?;
    change_members(c, g.name, move |g| {
        for id in &add {
            if !g.computers.contains(id) {
                g.computers.push(id.clone());
            }
        }
    })
    .await
}

pub async fn remove_member(
    _: Admin,
    State(c): Shared,
    ApiPath((name, computer)): ApiPath<(String, String)>,
) -> Result<Json<Group>, ApiError> {
    let g = find_group(&c, &name)?;
    let Some(id) = g
        .computers
        .iter()
        .find(|id| id.as_str() == computer)
        .cloned()
    else {
        return Err(ApiError::not_found(
            "static member",
            format!("{computer} of group {}", g.name),
        ));
    };
    change_members(c, g.name, move |g| g.computers.retain(|m| m != &id)).await
}

pub async fn create_package_group(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<PackageGroupRequest>,
) -> Result<(StatusCode, Json<PackageGroup>), ApiError> {
    let record = PackageGroupRecord {
        name: group_name("name", &req.name)?,
        description: description(req.description.as_deref())?,
        packages: package_ids(&c, &req.packages)?,
        created_at: c.clock.now(),
    };
    let view = c
        .blocking(move |c| {
            c.store.add_package_group(&record)?;
            package_group_view(c, record)
        })
        .await?;
    tracing::info!(group = %view.name, packages = view.packages.len(), "package group created");
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list_package_groups(
    _: Admin,
    State(c): Shared,
) -> Result<Json<Vec<PackageGroup>>, ApiError> {
    let mut out = Vec::new();
    for g in c.store.package_groups()? {
        out.push(package_group_view(&c, g)?);
    }
    Ok(Json(out))
}

pub async fn show_package_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PackageGroup>, ApiError> {
    let g = find_package_group(&c, &name)?;
    Ok(Json(package_group_view(&c, g)?))
}

pub async fn delete_package_group(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let g = find_package_group(&c, &name)?;
    let n = g.name.clone();
    c.blocking(move |c| {
        let _guard = c.evaluating();
        let users = rules_using(c, |r| r.package_group == n)?;
        if !users.is_empty() {
            return Err(CentralError::Conflict(format!(
                "package group '{n}' is deployed by rule(s) {}: delete those rules first",
                ids_text(&users)
            )));
        }
        c.store.delete_package_group(&n)
    })
    .await?;
    tracing::info!(group = %g.name, "package group deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a change to a package group's packages (refused if a rule deploying
/// the group would loop), re-evaluates the rules, and answers the group.
async fn change_packages(
    c: Arc<Central>,
    name: GroupName,
    change: impl Fn(&mut PackageGroupRecord) + Send + Sync + 'static,
) -> Result<Json<PackageGroup>, ApiError> {
    let view = c
        .blocking(move |c| {
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
        })
        .await?;
    Ok(Json(view))
}

pub async fn add_packages(
    _: Admin,
    State(c): Shared,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PackageMembersRequest>,
) -> Result<Json<PackageGroup>, ApiError> {
    let g = find_package_group(&c, &name)?;
    if req.packages.is_empty() {
        return Err(ApiError::bad_request("bad packages: the list is empty"));
    }
    let add = package_ids(&c, &req.packages)?;
    change_packages(c, g.name, move |g| {
        for id in &add {
            if !g.packages.contains(id) {
                g.packages.push(id.clone());
            }
        }
    })
    .await
}

pub async fn remove_package(
    _: Admin,
    State(c): Shared,
    ApiPath((name, package)): ApiPath<(String, String)>,
) -> Result<Json<PackageGroup>, ApiError> {
    let g = find_package_group(&c, &name)?;
    let Some(id) = g.packages.iter().find(|id| id.as_str() == package).cloned() else {
        return Err(ApiError::not_found(
            "package",
            format!("{package} in package group {}", g.name),
        ));
    };
    change_packages(c, g.name, move |g| g.packages.retain(|p| p != &id)).await
}

/// Drops a deleted package from every package group (its rules re-evaluated).
pub(super) fn forget_package(c: &Central, id: &PackageId) -> Result<(), CentralError> {
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

/// `PUT /computers/{id}/tags`: the computer's tags from now on.
pub async fn set_tags(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<TagsRequest>,
) -> Result<Json<Computer>, ApiError> {
    let cid = find_computer(&c, &id)?.id;
    let tags = groups::parse_tags(&req.tags).map_err(criteria_error)?;
    let record = c
        .blocking(move |c| {
            let rec = c
                .store
                .set_tags(&cid, &tags)?
                .ok_or_else(|| CentralError::not_found("computer", &cid))?;
            rules::after_computer_change(c, &cid);
            Ok(rec)
        })
        .await?;
    tracing::info!(computer = %record.id, tags = ?record.tags, "computer tags changed");
    Ok(Json(record.to_wire()))
}
