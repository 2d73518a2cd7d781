//! Deployment rules (OCO): computers (a group, criteria, or both) × a package
//! group, with auto-uninstall, priority and sequence. A rule is a job container
//! with a [`RuleSpec`]; its jobs are not fixed at creation but made and unmade
//! by re-evaluation ([`sitecast_common::groups`]), which runs when the rule is
//! created, on demand, whenever what it depends on changes — groups and rules
//! ([`reevaluate_all`]: one rule's packages decide what the others leave
//! installed), a computer's address, tags or installed packages
//! ([`after_computer_change`]) — and at start and every 5 minutes
//! ([`reevaluate_periodically`]). Evaluations hold one lock ([`Evaluating`]).
//! A disabled rule's jobs are made so an admin can check them, but never handed
//! out.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sitecast_common::groups::{self, Criteria, InstalledPackage, RulePackage};
use sitecast_common::ids::{ComputerId, ContainerId, GroupName, PackageId};
use sitecast_common::jobs::Sequence;
use sitecast_common::wire::{Evaluation, Package, Rule, RuleEvaluated, RuleRequest, RuleUpdate};

use super::containers::{self, container_id, uninstallable, DEFAULT_BACKOFF};
use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use super::groups::{criteria_error, group_name, in_group};
use super::Central;
use crate::error::CentralError;
use crate::store::{
    ComputerRecord, ContainerPower, ContainerRecord, GroupRecord, InstalledRecord, RuleSpec,
};

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

/// Held while rules are re-evaluated, and by every change to what they read
/// (groups, rules) from before the change until its re-evaluation is done: each
/// evaluation then reads a world that no change is halfway through, and every
/// change is followed by an evaluation that sees it. Without it, an evaluation
/// that read a package group just before a package left it could put the
/// package's install job back just after that change's own evaluation.
pub(super) struct Evaluating<'a> {
    _held: std::sync::MutexGuard<'a, ()>,
}

impl Central {
    pub(super) fn evaluating(&self) -> Evaluating<'_> {
        // A panic elsewhere while holding it leaves nothing half-written (the
        // store's writes are batches): the lock is still good.
        Evaluating {
            _held: self.rules_lock.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// A rule and what it deploys, read once per round of re-evaluation.
struct LoadedRule {
    record: ContainerRecord,
    spec: RuleSpec,
    group: Option<GroupRecord>,
    packages: Vec<RulePackage>,
}

impl LoadedRule {
    fn covers(&self, computer: &ComputerRecord) -> bool {
        covers(&self.spec, self.group.as_ref(), computer)
    }
}

/// What a round of re-evaluation reads: every rule with its groups, and every
/// package (to know what installed ones are).
struct World {
    rules: Vec<LoadedRule>,
    known: BTreeMap<PackageId, RulePackage>,
}

fn load(c: &Central, _: &Evaluating<'_>) -> Result<World, CentralError> {
    let mut loaded = Vec::new();
    for record in rules(c)? {
        let Some(spec) = record.rule.clone() else {
            continue;
        };
        let group = match &spec.group {
            Some(g) => c.store.group(g)?,
            None => None,
        };
        let packages = group_packages(c, &spec.package_group)?;
        loaded.push(LoadedRule {
            record,
            spec,
            group,
            packages,
        });
    }
    let known = c
        .store
        .packages()?
        .iter()
        .map(|p| (p.id.clone(), rule_package(p)))
        .collect();
    Ok(World {
        rules: loaded,
        known,
    })
}

/// Which of the world's rules cover each of `computers` (their indices), worked
/// out once per round rather than once per rule.
type Covering = BTreeMap<ComputerId, Vec<usize>>;

fn covering(world: &World, computers: &[ComputerRecord]) -> Covering {
    computers
        .iter()
        .map(|computer| {
            let rules = world.rules.iter().enumerate();
            let by = rules.filter(|(_, r)| r.covers(computer)).map(|(i, _)| i);
            (computer.id.clone(), by.collect())
        })
        .collect()
}

/// Re-evaluates the world's rule `at` on one computer (`only`) or on all it
/// covers or has jobs on; `renew_failed` (on demand) starts failed jobs over.
fn evaluate(
    c: &Central,
    world: &World,
    at: usize,
    covering: &Covering,
    only: Option<&ComputerId>,
    renew_failed: bool,
) -> Result<Evaluation, CentralError> {
    let Some(rule) = world.rules.get(at) else {
        return Ok(Evaluation::default());
    };
    // Refused when rules and groups change; checked again so a loop can never start.
    groups::loop_check(
        rule.record.auto_uninstall,
        rule.spec.package_group.as_str(),
        &rule.packages,
    )
    .map_err(CentralError::Conflict)?;
    // Per member, what the other enabled rules deploy to it: this rule leaves
    // those installed (see `groups::wants`).
    let mut kept: BTreeMap<ComputerId, Vec<PackageId>> = BTreeMap::new();
    for (computer, by) in covering.iter().filter(|(_, by)| by.contains(&at)) {
        let others = by
            .iter()
            .filter_map(|i| world.rules.get(*i).filter(|_| *i != at))
            .filter(|o| o.spec.enabled);
        let ids = others.flat_map(|o| o.packages.iter().map(|p| p.id.clone()));
        kept.insert(computer.clone(), ids.collect());
    }
    // Members, the one computer asked about, and (a whole round) every computer
    // the rule has jobs on: one that left keeps nothing waiting.
    let mut visit: Vec<ComputerId> = kept.keys().cloned().collect();
    visit.extend(only.cloned());
    let wants = |computer: &ComputerId, installed: &[InstalledRecord]| {
        let installed: Vec<InstalledPackage> = installed
            .iter()
            .filter_map(|i| {
                world.known.get(&i.package_id).map(|p| InstalledPackage {
                    package: p.clone(),
                    by_rule: i.container_id.as_ref() == Some(&rule.record.id),
                })
            })
            .collect();
        let member = kept.get(computer);
        groups::wants(
            member.is_some(),
            &rule.packages,
            &installed,
            rule.record.auto_uninstall,
            member.map_or(&[][..], Vec::as_slice),
        )
    };
    let done = c
        .store
        .sync_rule(
            &rule.record.id,
            &visit,
            only.is_none(),
            &wants,
            renew_failed,
            c.clock.now(),
        )?
        .unwrap_or_default();
    if done != Evaluation::default() {
        tracing::info!(rule = %rule.record.id, added = done.added, renewed = done.renewed, removed = done.removed, "rule re-evaluated");
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

/// Re-evaluates every rule on every computer: after a change to groups or
/// rules (one rule's packages or members change what the others must leave
/// installed), at start and periodically (so a change whose re-evaluation a
/// crash cut short is caught up). A failure is logged: the change itself
/// stands, and the next round or `rule reevaluate` retries.
pub(super) fn reevaluate_all(c: &Central, guard: &Evaluating<'_>) {
    let loaded = load(c, guard).and_then(|w| Ok((w, c.store.computers()?)));
    let (world, computers) = match loaded {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "could not re-evaluate the rules");
            return;
        }
    };
    let covering = covering(&world, &computers);
    for (at, rule) in world.rules.iter().enumerate() {
        if let Err(e) = evaluate(c, &world, at, &covering, None, false) {
            tracing::warn!(rule = %rule.record.id, error = %e, "could not re-evaluate the rule");
        }
    }
}

/// Re-evaluates every rule on one computer, after its address, tags or
/// installed packages changed (or it enrolled).
pub(super) fn after_computer_change(c: &Central, computer: &ComputerId) {
    let guard = c.evaluating();
    let loaded = load(c, &guard).and_then(|w| Ok((w, c.store.computer(computer)?)));
    let (world, record) = match loaded {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%computer, error = %e, "could not re-evaluate the rules");
            return;
        }
    };
    let computers: Vec<ComputerRecord> = record.into_iter().collect();
    let covering = covering(&world, &computers);
    for (at, rule) in world.rules.iter().enumerate() {
        if let Err(e) = evaluate(c, &world, at, &covering, Some(computer), false) {
            tracing::warn!(rule = %rule.record.id, %computer, error = %e, "could not re-evaluate the rule");
        }
    }
}

/// [`reevaluate_all`] at once and then every `every`, until the task is dropped.
pub async fn reevaluate_periodically(c: Arc<Central>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let central = Arc::clone(&c);
        let round = tokio::task::spawn_blocking(move || {
            let guard = central.evaluating();
            reevaluate_all(&central, &guard);
        });
        if let Err(e) = round.await {
            tracing::warn!(error = %e, "the rule re-evaluation task failed");
        }
    }
}

/// Refuses a package group's new contents if a rule deploying it with
/// auto-uninstall would loop.
pub(super) fn check_loops(
    c: &Central,
    _: &Evaluating<'_>,
    group: &GroupName,
    packages: &[PackageId],
) -> Result<(), CentralError> {
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
            return Err(CentralError::Conflict(format!(
                "rule '{}' deploys it: {why}",
                rule.id
            )));
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

fn sequence(text: &str) -> Result<Sequence, ApiError> {
    text.trim()
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad sequence: {e}")))
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
        .map_err(criteria_error)?;
    let group = req
        .group
        .as_deref()
        .map(|g| group_name("group", g))
        .transpose()?;
    if group.is_none() && criteria.is_empty() {
        return Err(ApiError::bad_request(NO_COMPUTERS));
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
        power: ContainerPower::default(),
        rule: Some(RuleSpec {
            group,
            criteria,
            package_group,
            enabled: req.enabled.unwrap_or(false),
        }),
    };
    let rule = c
        .blocking(move |c| {
            // Checked under the lock, so the groups cannot be deleted or changed
            // between the check and the rule's first evaluation.
            let guard = c.evaluating();
            check_rule(c, &record)?;
            c.store.add_container(&record, &[])?;
            reevaluate_all(c, &guard);
            stored_view(c, &record.id)
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
    let deleted = c
        .blocking(move |c| {
            let guard = c.evaluating();
            let deleted = c.store.delete_container(&rid)?;
            // What it deployed no longer holds back the other rules' uninstalls.
            reevaluate_all(c, &guard);
            Ok(deleted)
        })
        .await?;
    if !deleted {
        return Err(ApiError::not_found("rule", &id));
    }
    tracing::info!(rule = %record.id, "deployment rule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /rules/{id}`: changes what is given ([`RuleUpdate`]) and re-evaluates.
pub async fn update(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RuleUpdate>,
) -> Result<Json<Rule>, ApiError> {
    let record = find_rule(&c, &id)?;
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
    let rule = c
        .blocking(move |c| {
            let guard = c.evaluating();
            let mut next = c
                .store
                .container(&record.id)?
                .ok_or_else(|| CentralError::not_found("rule", &record.id))?;
            change(&mut next);
            check_rule(c, &next)?;
            change_rule(c, &guard, &record.id, &change)
        })
        .await?;
    tracing::info!(rule = %rule.id, "deployment rule changed");
    Ok(Json(rule))
}

async fn set_enabled(c: Arc<Central>, id: String, enabled: bool) -> Result<Json<Rule>, ApiError> {
    let record = find_rule(&c, &id)?;
    let rule = c
        .blocking(move |c| {
            let guard = c.evaluating();
            change_rule(c, &guard, &record.id, &|r| {
                if let Some(spec) = r.rule.as_mut() {
                    spec.enabled = enabled;
                }
            })
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
        })
        .await?;
    Ok(Json(answer))
}
