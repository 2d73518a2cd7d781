//! Deployment rules (OCO): computers (a group, criteria, or both) × a package
//! group, with auto-uninstall, priority and sequence. A rule is a job container
//! with a [`RuleSpec`]; its jobs are not fixed at creation but made and unmade
//! by re-evaluation ([`sitecast_common::groups`]), which runs when the rule is
//! created, on demand, and whenever what it depends on changes: the group's
//! members ([`after_group_change`]), a computer's address, tags or installed
//! packages ([`after_computer_change`]). A disabled rule's jobs are made so an
//! admin can check them, but never handed out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::groups::{self, Criteria, InstalledPackage, RulePackage};
use sitecast_common::ids::{ComputerId, GroupName, PackageId};
use sitecast_common::jobs::Sequence;
use sitecast_common::wire::{Evaluation, Package, Rule, RuleEvaluated, RuleRequest};

use super::containers::{self, container_id, uninstallable, DEFAULT_BACKOFF};
use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::groups::in_group;
use super::Central;
use crate::error::CentralError;
use crate::store::{ComputerRecord, ContainerRecord, GroupRecord, InstalledRecord, RuleSpec};

type Shared = State<Arc<Central>>;

const NAME_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 4000;

fn rule_package(p: &Package) -> RulePackage {
    RulePackage {
        id: p.id.clone(),
        name: p.name.clone(),
        uninstallable: uninstallable(p),
    }
}

/// Whether the rule covers the computer: in its group (if it names one) and
/// matched by its criteria (if it has any).
fn covers(spec: &RuleSpec, group: Option<&GroupRecord>, computer: &ComputerRecord) -> bool {
    let grouped = match (&spec.group, group) {
        (None, _) => true,
        (Some(_), Some(g)) => in_group(g, computer),
        // Its group is gone (deleting a group a rule uses is refused): no one.
        (Some(_), None) => false,
    };
    grouped && (spec.criteria.is_empty() || spec.criteria.matches(computer.candidate()))
}

/// The package group's packages, in order (deleted ones are dropped from groups).
fn group_packages(c: &Central, name: &GroupName) -> Result<Vec<RulePackage>, CentralError> {
    let Some(g) = c.store.package_group(name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for id in &g.packages {
        if let Some(p) = c.store.package(id)? {
            out.push(rule_package(&p));
        }
    }
    Ok(out)
}

/// Re-evaluates a rule on one computer (`only`) or on all it covers or has jobs
/// on; `renew_failed` (on demand) starts failed jobs over.
fn evaluate(
    c: &Central,
    rule: &ContainerRecord,
    only: Option<&ComputerId>,
    renew_failed: bool,
) -> Result<Evaluation, CentralError> {
    let Some(spec) = &rule.rule else {
        return Ok(Evaluation::default());
    };
    let packages = group_packages(c, &spec.package_group)?;
    // Refused when rules and groups change; checked again so a loop can never start.
    groups::loop_check(rule.auto_uninstall, spec.package_group.as_str(), &packages)
        .map_err(CentralError::Conflict)?;
    let group = match &spec.group {
        Some(g) => c.store.group(g)?,
        None => None,
    };
    let computers = match only {
        Some(id) => c.store.computer(id)?.into_iter().collect(),
        None => c.store.computers()?,
    };
    let members: BTreeSet<ComputerId> = computers
        .iter()
        .filter(|rec| covers(spec, group.as_ref(), rec))
        .map(|rec| rec.id.clone())
        .collect();
    // Computers that left keep nothing waiting: visit them too.
    let mut visit = members.clone();
    match only {
        Some(id) => {
            visit.insert(id.clone());
        }
        None => visit.extend(
            c.store
                .container_jobs(&rule.id)?
                .into_iter()
                .map(|j| j.computer_id),
        ),
    }
    let known: BTreeMap<PackageId, RulePackage> = c
        .store
        .packages()?
        .iter()
        .map(|p| (p.id.clone(), rule_package(p)))
        .collect();
    let wants = |computer: &ComputerId, installed: &[InstalledRecord]| {
        let installed: Vec<InstalledPackage> = installed
            .iter()
            .filter_map(|i| {
                known.get(&i.package_id).map(|p| InstalledPackage {
                    package: p.clone(),
                    by_rule: i.container_id.as_ref() == Some(&rule.id),
                })
            })
            .collect();
        groups::wants(
            members.contains(computer),
            &packages,
            &installed,
            rule.auto_uninstall,
        )
    };
    let visit: Vec<ComputerId> = visit.into_iter().collect();
    let done = c
        .store
        .sync_rule(&rule.id, &visit, &wants, renew_failed, c.clock.now())?
        .unwrap_or_default();
    if done != Evaluation::default() {
        tracing::info!(rule = %rule.id, added = done.added, renewed = done.renewed, removed = done.removed, "rule re-evaluated");
    }
    Ok(done)
}

fn rules(c: &Central) -> Result<Vec<ContainerRecord>, CentralError> {
    Ok(c.store
        .containers()?
        .into_iter()
        .filter(|r| r.rule.is_some())
        .collect())
}

/// Re-evaluates the rules `uses` picks, after their group's members changed.
/// A failure is logged: the change itself stands, and `rule reevaluate` retries.
pub(super) fn after_group_change(c: &Central, uses: impl Fn(&RuleSpec) -> bool) {
    match rules(c) {
        Ok(all) => {
            for rule in all {
                if rule.rule.as_ref().is_some_and(&uses) {
                    if let Err(e) = evaluate(c, &rule, None, false) {
                        tracing::warn!(rule = %rule.id, error = %e, "could not re-evaluate the rule");
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not re-evaluate the rules"),
    }
}

/// Re-evaluates every rule on one computer, after its address, tags or
/// installed packages changed (or it enrolled).
pub(super) fn after_computer_change(c: &Central, computer: &ComputerId) {
    match rules(c) {
        Ok(all) => {
            for rule in all {
                if let Err(e) = evaluate(c, &rule, Some(computer), false) {
                    tracing::warn!(rule = %rule.id, %computer, error = %e, "could not re-evaluate the rule");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not re-evaluate the rules"),
    }
}

/// Refuses a package group's new contents if a rule deploying it with
/// auto-uninstall would loop.
pub(super) fn check_loops(
    c: &Central,
    group: &GroupName,
    packages: &[PackageId],
) -> Result<(), ApiError> {
    let mut listed = Vec::new();
    for id in packages {
        if let Some(p) = c.store.package(id)? {
            listed.push(rule_package(&p));
        }
    }
    for rule in rules(c)? {
        let Some(spec) = &rule.rule else { continue };
        if &spec.package_group != group {
            continue;
        }
        if let Err(why) = groups::loop_check(rule.auto_uninstall, group.as_str(), &listed) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("rule '{}' deploys it: {why}", rule.id),
            ));
        }
    }
    Ok(())
}

fn view(c: &Central, record: ContainerRecord, with_jobs: bool) -> Result<Rule, CentralError> {
    let spec = record
        .rule
        .clone()
        .ok_or_else(|| CentralError::not_found("rule", &record.id))?;
    let group = match &spec.group {
        Some(g) => c.store.group(g)?,
        None => None,
    };
    let computers = c
        .store
        .computers()?
        .iter()
        .filter(|rec| covers(&spec, group.as_ref(), rec))
        .count();
    let jobs = c.store.container_jobs(&record.id)?;
    let mut counts = BTreeMap::new();
    for j in &jobs {
        *counts.entry(j.status).or_insert(0) += 1;
    }
    let jobs = if with_jobs {
        containers::job_views(c, jobs)?
    } else {
        Vec::new()
    };
    Ok(Rule {
        id: record.id,
        name: record.name,
        description: record.description,
        group: spec.group,
        criteria: spec.criteria,
        package_group: spec.package_group,
        enabled: spec.enabled,
        auto_uninstall: record.auto_uninstall,
        priority: record.priority,
        sequence: record.sequence,
        created_at: record.created_at,
        computers: computers as u64,
        counts,
        jobs,
    })
}

fn find_rule(c: &Central, id: &str) -> Result<ContainerRecord, ApiError> {
    let cid = id.parse().map_err(|_| ApiError::not_found("rule", id))?;
    c.store
        .container(&cid)?
        .filter(|r| r.rule.is_some())
        .ok_or_else(|| ApiError::not_found("rule", id))
}

fn text(field: &str, value: &str, max: usize, empty_ok: bool) -> Result<String, ApiError> {
    let v = value.trim();
    if (!empty_ok && v.is_empty())
        || v.len() > max
        || v.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ApiError::bad_request(format!(
            "bad {field}: must be {} to {max} printable characters",
            u8::from(!empty_ok)
        )));
    }
    Ok(v.to_owned())
}

pub async fn create(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<RuleRequest>,
) -> Result<(StatusCode, Json<Rule>), ApiError> {
    let name = text("name", &req.name, NAME_MAX, false)?;
    let description = text(
        "description",
        req.description.as_deref().unwrap_or(""),
        DESCRIPTION_MAX,
        true,
    )?;
    let criteria = Criteria::parse(&req.subnets, &req.tags, &req.os, &req.hostnames)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let group = match req.group.as_deref() {
        Some(g) => {
            let n: GroupName = g
                .trim()
                .parse()
                .map_err(|e| ApiError::bad_request(format!("bad group: {e}")))?;
            if c.store.group(&n)?.is_none() {
                return Err(ApiError::not_found("group", g));
            }
            Some(n)
        }
        None => None,
    };
    if group.is_none() && criteria.is_empty() {
        return Err(ApiError::bad_request(
            "bad group: a rule needs a computer group or criteria (subnets, tags, os, hostnames)",
        ));
    }
    let package_group: GroupName = req
        .package_group
        .trim()
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad package_group: {e}")))?;
    if c.store.package_group(&package_group)?.is_none() {
        return Err(ApiError::not_found("package group", &req.package_group));
    }
    let sequence = req
        .sequence
        .as_deref()
        .map(|s| s.trim().parse::<Sequence>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("bad sequence: {e}")))?
        .unwrap_or_default();
    let auto_uninstall = req.auto_uninstall.unwrap_or(true);
    let packages = group_packages(&c, &package_group)?;
    groups::loop_check(auto_uninstall, package_group.as_str(), &packages)
        .map_err(|why| ApiError::bad_request(format!("bad package_group: {why}")))?;
    let now = c.clock.now();
    let record = ContainerRecord {
        id: container_id(&name)?,
        name,
        description,
        created_at: now,
        start_at: now,
        end_at: None,
        priority: req.priority.unwrap_or(0),
        ip_ranges: None,
        time_frames: None,
        sequence,
        retries: 0,
        retry_backoff: DEFAULT_BACKOFF,
        auto_uninstall,
        cancelled_at: None,
        seq: 0,
        rule: Some(RuleSpec {
            group,
            criteria,
            package_group,
            enabled: req.enabled.unwrap_or(false),
        }),
    };
    let rule = c
        .blocking(move |c| {
            c.store.add_container(&record, &[])?;
            evaluate(c, &record, None, false)?;
            let stored = c
                .store
                .container(&record.id)?
                .ok_or_else(|| CentralError::not_found("rule", &record.id))?;
            view(c, stored, true)
        })
        .await?;
    tracing::info!(rule = %rule.id, enabled = rule.enabled, jobs = rule.jobs.len(), "deployment rule created");
    Ok((StatusCode::CREATED, Json(rule)))
}

pub async fn list(_: Admin, State(c): Shared) -> Result<Json<Vec<Rule>>, ApiError> {
    let mut out = Vec::new();
    for record in rules(&c)? {
        out.push(view(&c, record, false)?);
    }
    Ok(Json(out))
}

pub async fn show(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rule>, ApiError> {
    let record = find_rule(&c, &id)?;
    Ok(Json(view(&c, record, true)?))
}

pub async fn delete(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let record = find_rule(&c, &id)?;
    let rid = record.id.clone();
    if !c.blocking(move |c| c.store.delete_container(&rid)).await? {
        return Err(ApiError::not_found("rule", &id));
    }
    tracing::info!(rule = %record.id, "deployment rule deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(c: Arc<Central>, id: String, enabled: bool) -> Result<Json<Rule>, ApiError> {
    let record = find_rule(&c, &id)?;
    let rule = c
        .blocking(move |c| {
            let updated = c
                .store
                .update_container(&record.id, &|r| {
                    if let Some(spec) = r.rule.as_mut() {
                        spec.enabled = enabled;
                    }
                })?
                .ok_or_else(|| CentralError::not_found("rule", &record.id))?;
            // Its jobs are up to date before any is handed out.
            evaluate(c, &updated, None, false)?;
            view(c, updated, true)
        })
        .await?;
    tracing::info!(rule = %rule.id, enabled, "deployment rule switched");
    Ok(Json(rule))
}

pub async fn enable(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rule>, ApiError> {
    set_enabled(c, id, true).await
}

pub async fn disable(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rule>, ApiError> {
    set_enabled(c, id, false).await
}

/// OCO's manual re-evaluation: also starts the rule's failed jobs over (after an
/// admin fixed the package, say).
pub async fn reevaluate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RuleEvaluated>, ApiError> {
    let record = find_rule(&c, &id)?;
    let answer = c
        .blocking(move |c| {
            let evaluation = evaluate(c, &record, None, true)?;
            let stored = c
                .store
                .container(&record.id)?
                .ok_or_else(|| CentralError::not_found("rule", &record.id))?;
            Ok(RuleEvaluated {
                rule: view(c, stored, true)?,
                evaluation,
            })
        })
        .await?;
    Ok(Json(answer))
}
