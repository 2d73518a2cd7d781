//! Rules as admins change them: create, list, show, delete, edit, enable or
//! disable, and OCO's manual re-evaluation. Every check runs under the rules
//! lock, and every change is followed by a re-evaluation of all rules.

use std::collections::BTreeMap;

use sitecast_common::groups::{self, Criteria};
use sitecast_common::ids::ContainerId;
use sitecast_common::jobs::Sequence;
use sitecast_common::wire::{Rule, RuleEvaluated, RuleRequest, RuleUpdate};

use super::{covering, covers, evaluate, group_packages, load, reevaluate_all, rules, Evaluating};
use crate::domain::containers::{self, container_id, DEFAULT_BACKOFF};
use crate::domain::records::{criteria_error, group_name, text};
use crate::error::CentralError;
use crate::state::Central;
use crate::store::{ContainerPower, ContainerRecord, RuleSpec};

const NAME_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 4000;

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

/// What a rule must hold before it is stored, checked under the rules lock (so
/// its groups cannot go between the check and the store): its groups exist, it
/// chooses computers somehow, and its package group cannot loop.
fn check_rule(c: &Central, rule: &ContainerRecord) -> Result<(), CentralError> {
    let spec = rule
        .rule
        .as_ref()
        .ok_or_else(|| CentralError::not_found("rule", &rule.id))?;
    if let Some(g) = &spec.group {
        if c.store.group(g)?.is_none() {
            return Err(CentralError::not_found("group", g));
        }
    }
    if spec.group.is_none() && spec.criteria.is_empty() {
        return Err(CentralError::Invalid(NO_COMPUTERS.into()));
    }
    if c.store.package_group(&spec.package_group)?.is_none() {
        return Err(CentralError::not_found(
            "package group",
            &spec.package_group,
        ));
    }
    let packages = group_packages(c, &spec.package_group)?;
    groups::loop_check(rule.auto_uninstall, spec.package_group.as_str(), &packages)
        .map_err(|why| CentralError::Invalid(format!("bad package_group: {why}")))
}

const NO_COMPUTERS: &str =
    "bad group: a rule needs a computer group or criteria (subnets, tags, os, hostnames)";

/// Applies `change` to a stored rule, re-evaluates every rule (its jobs are up
/// to date before any is handed out, and the others now leave installed what it
/// deploys, or no longer do), and answers it.
fn change_rule(
    c: &Central,
    guard: &Evaluating<'_>,
    id: &ContainerId,
    change: &dyn Fn(&mut ContainerRecord),
) -> Result<Rule, CentralError> {
    c.store
        .update_container(id, change)?
        .ok_or_else(|| CentralError::not_found("rule", id))?;
    reevaluate_all(c, guard);
    stored_view(c, id)
}

/// The rule as stored now, with its jobs.
fn stored_view(c: &Central, id: &ContainerId) -> Result<Rule, CentralError> {
    let stored = c
        .store
        .container(id)?
        .ok_or_else(|| CentralError::not_found("rule", id))?;
    view(c, stored, true)
}

fn find_rule(c: &Central, id: &str) -> Result<ContainerRecord, CentralError> {
    let cid = id
        .parse()
        .map_err(|_| CentralError::not_found("rule", id))?;
    c.store
        .container(&cid)?
        .filter(|r| r.rule.is_some())
        .ok_or_else(|| CentralError::not_found("rule", id))
}

fn sequence(text: &str) -> Result<Sequence, CentralError> {
    text.trim()
        .parse()
        .map_err(|e| CentralError::invalid(format!("bad sequence: {e}")))
}

/// Creates a rule (disabled unless asked) and evaluates it at once.
pub fn create(c: &Central, req: RuleRequest) -> Result<Rule, CentralError> {
    let name = text("name", &req.name, NAME_MAX, false)?;
    let description = text(
        "description",
        req.description.as_deref().unwrap_or(""),
        DESCRIPTION_MAX,
        true,
    )?;
    let criteria = Criteria::parse(&req.subnets, &req.tags, &req.os, &req.hostnames)
        .map_err(criteria_error)?;
    let group = req
        .group
        .as_deref()
        .map(|g| group_name("group", g))
        .transpose()?;
    if group.is_none() && criteria.is_empty() {
        return Err(CentralError::invalid(NO_COMPUTERS));
    }
    let package_group = group_name("package_group", &req.package_group)?;
    let sequence = req
        .sequence
        .as_deref()
        .map(sequence)
        .transpose()?
        .unwrap_or_default();
    let auto_uninstall = req.auto_uninstall.unwrap_or(true);
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
        downgrade: false,
        power: ContainerPower::default(),
        rule: Some(RuleSpec {
            group,
            criteria,
            package_group,
            enabled: req.enabled.unwrap_or(false),
        }),
    };
    // Checked under the lock, so the groups cannot be deleted or changed
    // between the check and the rule's first evaluation.
    let guard = c.evaluating();
    check_rule(c, &record)?;
    c.store.add_container(&record, &[])?;
    reevaluate_all(c, &guard);
    let rule = stored_view(c, &record.id)?;
    tracing::info!(rule = %rule.id, enabled = rule.enabled, jobs = rule.jobs.len(), "deployment rule created");
    Ok(rule)
}

pub fn list(c: &Central) -> Result<Vec<Rule>, CentralError> {
    rules(c)?
        .into_iter()
        .map(|record| view(c, record, false))
        .collect()
}

pub fn show(c: &Central, id: &str) -> Result<Rule, CentralError> {
    let record = find_rule(c, id)?;
    view(c, record, true)
}

pub fn delete(c: &Central, id: &str) -> Result<(), CentralError> {
    let record = find_rule(c, id)?;
    let guard = c.evaluating();
    let deleted = c.store.delete_container(&record.id)?;
    // What it deployed no longer holds back the other rules' uninstalls.
    reevaluate_all(c, &guard);
    if !deleted {
        return Err(CentralError::not_found("rule", id));
    }
    tracing::info!(rule = %record.id, "deployment rule deleted");
    Ok(())
}

/// `PATCH /rules/{id}`: changes what is given ([`RuleUpdate`]) and re-evaluates.
pub fn update(c: &Central, id: &str, req: RuleUpdate) -> Result<Rule, CentralError> {
    let record = find_rule(c, id)?;
    let name = req
        .name
        .as_deref()
        .map(|n| text("name", n, NAME_MAX, false))
        .transpose()?;
    let description = req
        .description
        .as_deref()
        .map(|d| text("description", d, DESCRIPTION_MAX, true))
        .transpose()?;
    let criteria = if req.has_criteria() {
        let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
        let parsed = Criteria::parse(
            &list(&req.subnets),
            &list(&req.tags),
            &list(&req.os),
            &list(&req.hostnames),
        )
        .map_err(criteria_error)?;
        Some(parsed)
    } else {
        None
    };
    // `Some(None)`: the group is dropped.
    let group = match req.group.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(g) => Some(Some(group_name("group", g)?)),
    };
    let package_group = req
        .package_group
        .as_deref()
        .map(|g| group_name("package_group", g))
        .transpose()?;
    let sequence = req.sequence.as_deref().map(sequence).transpose()?;
    let change = move |r: &mut ContainerRecord| {
        if let Some(spec) = r.rule.as_mut() {
            if let Some(g) = &group {
                spec.group.clone_from(g);
            }
            if let Some(cr) = &criteria {
                spec.criteria = cr.clone();
            }
            if let Some(pg) = &package_group {
                spec.package_group = pg.clone();
            }
        }
        if let Some(a) = req.auto_uninstall {
            r.auto_uninstall = a;
        }
        if let Some(n) = &name {
            r.name.clone_from(n);
        }
        if let Some(d) = &description {
            r.description.clone_from(d);
        }
        if let Some(p) = req.priority {
            r.priority = p;
        }
        if let Some(s) = sequence {
            r.sequence = s;
        }
    };
    let guard = c.evaluating();
    let mut next = c
        .store
        .container(&record.id)?
        .ok_or_else(|| CentralError::not_found("rule", &record.id))?;
    change(&mut next);
    check_rule(c, &next)?;
    let rule = change_rule(c, &guard, &record.id, &change)?;
    tracing::info!(rule = %rule.id, "deployment rule changed");
    Ok(rule)
}

/// Enables or disables a rule: a disabled rule's jobs are made but never handed out.
pub fn set_enabled(c: &Central, id: &str, enabled: bool) -> Result<Rule, CentralError> {
    let record = find_rule(c, id)?;
    let guard = c.evaluating();
    let rule = change_rule(c, &guard, &record.id, &|r| {
        if let Some(spec) = r.rule.as_mut() {
            spec.enabled = enabled;
        }
    })?;
    tracing::info!(rule = %rule.id, enabled, "deployment rule switched");
    Ok(rule)
}

/// OCO's manual re-evaluation: also starts the rule's failed jobs over (after an
/// admin fixed the package, say).
pub fn reevaluate(c: &Central, id: &str) -> Result<RuleEvaluated, CentralError> {
    let record = find_rule(c, id)?;
    let guard = c.evaluating();
    let world = load(c, &guard)?;
    let at = world
        .rules
        .iter()
        .position(|r| r.record.id == record.id)
        .ok_or_else(|| CentralError::not_found("rule", &record.id))?;
    let covering = covering(&world, &c.store.computers()?);
    let evaluation = evaluate(c, &world, at, &covering, None, true)?;
    Ok(RuleEvaluated {
        rule: stored_view(c, &record.id)?,
        evaluation,
    })
}
