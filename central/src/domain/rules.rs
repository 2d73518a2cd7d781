//! Deployment rules (OCO): computers (a group, criteria, or both) × a package
//! group, with auto-uninstall, priority and sequence. A rule is a job container
//! with a [`RuleSpec`]; its jobs are not fixed at creation but made and unmade
//! by re-evaluation ([`sitecast_common::groups`]), which runs when the rule is
//! created, on demand, whenever what it depends on changes — groups and rules
//! ([`reevaluate_all`]: one rule's packages decide what the others leave
//! installed), a computer's address, tags or installed packages
//! ([`after_computer_change`]) — and at start and every 5 minutes
//! (the periodic tasks `crate::serve` runs). Evaluations hold one lock ([`Evaluating`]).
//! A disabled rule's jobs are made so an admin can check them, but never handed
//! out.

mod edit;

pub use edit::{create, delete, list, reevaluate, set_enabled, show, update};

use std::collections::BTreeMap;

use sitecast_common::groups::{self, InstalledPackage, RulePackage};
use sitecast_common::ids::{ComputerId, GroupName, PackageId};
use sitecast_common::wire::Evaluation;

use super::records::{in_group, uninstallable};
use crate::error::CentralError;
use crate::state::Central;
use crate::store::{
    self, ComputerRecord, ContainerRecord, GroupRecord, InstalledRecord, PackageRecord, RuleSpec,
};

fn rule_package(p: &PackageRecord) -> RulePackage {
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
pub struct Evaluating<'a> {
    _held: std::sync::MutexGuard<'a, ()>,
}

impl Central {
    pub fn evaluating(&self) -> Evaluating<'_> {
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
    if done != store::Evaluation::default() {
        tracing::info!(rule = %rule.record.id, added = done.added, renewed = done.renewed, removed = done.removed, "rule re-evaluated");
    }
    Ok(done.into())
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
pub fn reevaluate_all(c: &Central, guard: &Evaluating<'_>) {
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
pub fn after_computer_change(c: &Central, computer: &ComputerId) {
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

/// Refuses a package group's new contents if a rule deploying it with
/// auto-uninstall would loop.
pub fn check_loops(
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
