//! The decisions about a container's jobs that central makes from its records:
//! which jobs a new container gets on a computer ([`plan`]), whether a
//! computer is already busy with a package ([`busy`]), where a container stands
//! ([`container_state`]), and which of a computer's candidate jobs a poll hands
//! out, in what order ([`poll_order`]).

use jiff::Timestamp;

use crate::ids::{ContainerId, PackageId};
use crate::jobs::{ContainerState, JobKind};
use crate::status::StatusCode;

/// A package as job planning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPackage {
    pub id: PackageId,
    pub name: String,
    /// It has an uninstall procedure (or is a store package).
    pub uninstallable: bool,
}

/// A computer's jobs in a new container, in order: for each requested package,
/// with `auto_uninstall` and an install, first an uninstall of every other
/// installed version of the same name that can be uninstalled (once each),
/// then the package's own job. `installed` are the packages central believes
/// are on the computer.
pub fn plan(
    packages: &[PlannedPackage],
    installed: &[PlannedPackage],
    kind: JobKind,
    auto_uninstall: bool,
) -> Vec<(PackageId, JobKind)> {
    let mut planned: Vec<(PackageId, JobKind)> = Vec::new();
    for p in packages {
        if kind == JobKind::Install && auto_uninstall {
            for old in installed {
                let job = (old.id.clone(), JobKind::Uninstall);
                if old.id != p.id
                    && old.name == p.name
                    && old.uninstallable
                    && !planned.contains(&job)
                {
                    planned.push(job);
                }
            }
        }
        planned.push((p.id.clone(), kind));
    }
    planned
}

/// What [`busy`] needs of an install job of the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingJob {
    pub kind: JobKind,
    pub status: StatusCode,
    /// Its container will still hand out a waiting job: it exists, is not a
    /// disabled rule's, and has not ended.
    pub container_live: bool,
}

/// Whether a computer with this job of a package needs no new install job of
/// it (`package assign` leaves it `unchanged`): an unfinished install job,
/// unless it is still waiting in a container that will never hand it out. A
/// job already handed out is under way whatever its container's state now: a
/// second one would take over its reports.
pub fn busy(job: PendingJob) -> bool {
    if job.kind != JobKind::Install || job.status.is_final() {
        return false;
    }
    job.status != StatusCode::WaitingNotification || job.container_live
}

/// What [`container_state`] needs of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerTimes {
    pub created_at: Timestamp,
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
}

/// What [`container_state`] needs of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobEnd {
    pub status: StatusCode,
    pub finished_at: Option<Timestamp>,
}

/// Where a container stands, and when it finished if it has: every job over
/// (the last one's end), or its end date passed with jobs never run.
pub fn container_state(
    container: ContainerTimes,
    jobs: &[JobEnd],
    now: Timestamp,
) -> (ContainerState, Option<Timestamp>) {
    let all_final = jobs.iter().all(|j| j.status.is_final());
    let last_end = jobs
        .iter()
        .filter_map(|j| j.finished_at)
        .max()
        .unwrap_or(container.created_at);
    if container.cancelled_at.is_some() {
        return (ContainerState::Cancelled, all_final.then_some(last_end));
    }
    if all_final {
        let state = if jobs.iter().all(|j| j.status.is_success()) {
            ContainerState::Succeeded
        } else {
            ContainerState::Failed
        };
        return (state, Some(last_end));
    }
    match container.end_at {
        Some(end) if end <= now => (ContainerState::Failed, Some(end.max(last_end))),
        _ if now < container.start_at => (ContainerState::Waiting, None),
        _ => (ContainerState::Running, None),
    }
}

/// A job a poll could hand out: the next job of one container that admits the
/// computer now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub container: ContainerId,
    /// Higher first.
    pub container_priority: i32,
    /// The container's creation order, then time (timestamps can tie).
    pub container_seq: u64,
    pub container_created: Timestamp,
    pub package: PackageId,
    /// 0 first; a package central no longer knows sorts last.
    pub package_priority: u8,
    /// Position among the computer's jobs of the container.
    pub order: u32,
    /// It is the job last handed out for its package: the agent has it under way.
    pub current: bool,
}

/// Which candidates a poll hands out, as indices in the order the agent runs
/// them: container priority (higher first), package priority (0 first), older
/// container first, then job order; one per package, since the agent reports
/// by package: the job it already has under way keeps the package's place,
/// otherwise the first in order wins.
pub fn poll_order(candidates: &[Candidate]) -> Vec<usize> {
    let mut sorted: Vec<usize> = (0..candidates.len()).collect();
    sorted.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        b.container_priority
            .cmp(&a.container_priority)
            .then(a.package_priority.cmp(&b.package_priority))
            .then(a.container_seq.cmp(&b.container_seq))
            .then(a.container_created.cmp(&b.container_created))
            .then(a.container.cmp(&b.container))
            .then(a.order.cmp(&b.order))
    });
    let mut chosen: Vec<usize> = Vec::new();
    for i in sorted {
        match chosen
            .iter()
            .position(|&c| candidates[c].package == candidates[i].package)
        {
            None => chosen.push(i),
            Some(at) if candidates[i].current => chosen[at] = i,
            Some(_) => {}
        }
    }
    chosen
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
