//! Job containers (SPEC "Jobs", OCO): create, list, show, delete, retry and
//! cancel; `package assign` as a container with defaults; the purge of finished
//! containers.
//!
//! A container's jobs are fixed when it is created: the computers chosen then,
//! and for each, its packages in the order given, each install preceded (with
//! `auto_uninstall`, on by default) by uninstall jobs for the other versions of
//! the same package name central knows are installed there.
//!
//! A container with `wol` is woken ([`power`]) when it is created if it
//! starts now, else when central's clock reaches its start; `shutdown_after`
//! needs `wol`, and `restart_timeout` goes to agents with each polled package.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sitecast_common::constraint::{IpRanges, TimeFrames};
use sitecast_common::ids::{slug, ComputerId, ContainerId};
use sitecast_common::jobs::{
    self, ContainerTimes, JobEnd, JobTimes, PendingJob, PlannedPackage, Sequence,
};
use sitecast_common::jobs::{ContainerState, JobKind};
use sitecast_common::power::{Wake, DEFAULT_RESTART_TIMEOUT, MAX_RESTART_TIMEOUT};
use sitecast_common::units::Duration;
use sitecast_common::wire::{
    Assigned, AssignmentRequest, Container, ContainerChanged, ContainerRequest, Job,
};

use super::power;
use super::records::{self, text, uninstallable};
use super::targets;
use crate::error::CentralError;
use crate::state::Central;
use crate::store::{ContainerPower, ContainerRecord, JobRecord, PackageRecord, Store};
use crate::tokens;

/// Longest container name and description.
const NAME_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 4000;
/// Most automatic retries a container may ask for.
const RETRIES_MAX: u32 = 100;
/// Wait before the first automatic retry when the request names none.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(300);

fn bad(field: &str, e: impl std::fmt::Display) -> CentralError {
    CentralError::invalid(format!("bad {field}: {e}"))
}

/// The settings of a container, validated (everything but its jobs).
struct Settings {
    name: String,
    description: String,
    start_at: Timestamp,
    end_at: Option<Timestamp>,
    priority: i32,
    ip_ranges: Option<IpRanges>,
    time_frames: Option<TimeFrames>,
    sequence: Sequence,
    retries: u32,
    retry_backoff: Duration,
    auto_uninstall: bool,
    downgrade: bool,
    power: ContainerPower,
}

impl Settings {
    /// What `package assign` gets: start now, no conditions, OCO's defaults.
    fn defaults(name: String, now: Timestamp) -> Self {
        Self {
            name,
            description: String::new(),
            start_at: now,
            end_at: None,
            priority: 0,
            ip_ranges: None,
            time_frames: None,
            sequence: Sequence::IgnoreFailed,
            retries: 0,
            retry_backoff: DEFAULT_BACKOFF,
            auto_uninstall: true,
            downgrade: false,
            power: ContainerPower::default(),
        }
    }

    fn parse(c: &Central, req: &ContainerRequest, now: Timestamp) -> Result<Self, CentralError> {
        let tz = c.config.tz();
        let when = |field: &'static str, v: &Option<String>| {
            v.as_deref()
                .map(|t| jobs::parse_time(field, t, &tz))
                .transpose()
                .map_err(|e| CentralError::invalid(e.to_string()))
        };
        let start_at = when("start_at", &req.start_at)?.unwrap_or(now);
        let end_at = when("end_at", &req.end_at)?;
        if end_at.is_some_and(|end| end <= start_at) {
            return Err(bad("end_at", "must be after start_at"));
        }
        // An empty list is no condition at all.
        let ip_ranges = req
            .ip_ranges
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .map(str::parse::<IpRanges>)
            .transpose()
            .map_err(|e| bad("ip_ranges", e))?;
        let time_frames = req
            .time_frames
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(str::parse::<TimeFrames>)
            .transpose()
            .map_err(|e| bad("time_frames", e))?;
        let sequence = req
            .sequence
            .as_deref()
            .map(|s| s.trim().parse::<Sequence>())
            .transpose()
            .map_err(|e| bad("sequence", e))?
            .unwrap_or_default();
        let retries = req.retries.unwrap_or(0);
        if retries > RETRIES_MAX {
            return Err(bad(
                "retries",
                format!("{retries} is more than {RETRIES_MAX}"),
            ));
        }
        let retry_backoff = req
            .retry_backoff
            .as_deref()
            .map(|d| d.trim().parse::<Duration>())
            .transpose()
            .map_err(|e| bad("retry_backoff", e))?
            .unwrap_or(DEFAULT_BACKOFF);
        let wol = req.wol.unwrap_or(false);
        let shutdown_after = req.shutdown_after.unwrap_or(false);
        if shutdown_after && !wol {
            return Err(bad(
                "shutdown_after",
                "needs wol: only computers central woke are shut down",
            ));
        }
        let restart_timeout = req
            .restart_timeout
            .as_deref()
            .map(|d| d.trim().parse::<Duration>())
            .transpose()
            .map_err(|e| bad("restart_timeout", e))?
            .unwrap_or(DEFAULT_RESTART_TIMEOUT);
        if restart_timeout > MAX_RESTART_TIMEOUT {
            return Err(bad(
                "restart_timeout",
                format!(
                    "'{}' is longer than a day",
                    req.restart_timeout.as_deref().unwrap_or_default().trim()
                ),
            ));
        }
        Ok(Self {
            name: text("name", &req.name, NAME_MAX, false)?,
            description: text(
                "description",
                req.description.as_deref().unwrap_or(""),
                DESCRIPTION_MAX,
                true,
            )?,
            start_at,
            end_at,
            priority: req.priority.unwrap_or(0),
            ip_ranges,
            time_frames,
            sequence,
            retries,
            retry_backoff,
            auto_uninstall: req.auto_uninstall.unwrap_or(true),
            downgrade: req.downgrade.unwrap_or(false),
            power: ContainerPower {
                wol,
                shutdown_after,
                restart_timeout,
                woken_at: None,
            },
        })
    }
}

/// A new container id, readable: the name's slug and a random suffix.
pub fn container_id(name: &str) -> Result<ContainerId, CentralError> {
    let mut base = slug(name, 40);
    if base.is_empty() {
        base = "container".into();
    }
    format!("{base}-{}", tokens::suffix())
        .parse()
        .map_err(|e| CentralError::Invalid(format!("container id: {e}")))
}

/// Builds a container's record and jobs and stores them.
fn create_container(
    c: &Central,
    settings: Settings,
    packages: &[PackageRecord],
    computers: &[ComputerId],
    kind: JobKind,
    now: Timestamp,
) -> Result<(ContainerRecord, Vec<JobRecord>), CentralError> {
    let id = container_id(&settings.name)?;
    let record = ContainerRecord {
        id: id.clone(),
        name: settings.name,
        description: settings.description,
        created_at: now,
        start_at: settings.start_at,
        end_at: settings.end_at,
        priority: settings.priority,
        ip_ranges: settings.ip_ranges,
        time_frames: settings.time_frames,
        sequence: settings.sequence,
        retries: settings.retries,
        retry_backoff: settings.retry_backoff,
        auto_uninstall: settings.auto_uninstall,
        cancelled_at: None,
        seq: 0,
        rule: None,
        downgrade: settings.downgrade,
        power: settings.power,
    };
    let wanted: Vec<PlannedPackage> = packages.iter().map(planned).collect();
    let mut jobs = Vec::new();
    for computer in computers {
        let installed = if kind == JobKind::Install && record.auto_uninstall {
            let mut known = Vec::new();
            for old in c.store.installed_on(computer)? {
                if let Some(p) = c.store.package(&old.package_id)? {
                    known.push(planned(&p));
                }
            }
            known
        } else {
            Vec::new()
        };
        let planned = jobs::plan(&wanted, &installed, kind, record.auto_uninstall);
        for (i, (package, kind)) in planned.into_iter().enumerate() {
            let order = u32::try_from(i + 1).unwrap_or(u32::MAX);
            jobs.push(JobRecord::new(
                id.clone(),
                order,
                computer.clone(),
                package,
                kind,
                now,
            ));
        }
    }
    c.store.add_container(&record, &jobs)?;
    tracing::info!(container = %id, jobs = jobs.len(), "job container created");
    Ok((record, jobs))
}

/// A container as the API shows it (`with_jobs`: each job too).
pub fn view(
    c: &Central,
    record: ContainerRecord,
    jobs: Vec<JobRecord>,
    with_jobs: bool,
    now: Timestamp,
) -> Result<Container, CentralError> {
    let mut counts = BTreeMap::new();
    for j in &jobs {
        *counts.entry(j.status).or_insert(0) += 1;
    }
    let runtimes = jobs::runtimes(
        record.start_at,
        jobs.iter().map(|j| JobTimes {
            started_at: j.started_at,
            finished_at: j.finished_at,
            is_final: j.status.is_final(),
        }),
    );
    let (state, _) = state(&record, &jobs, now);
    let listed = if with_jobs {
        job_views(c, jobs)?
    } else {
        Vec::new()
    };
    let wake = match record.power.woken_at {
        Some(at) if with_jobs => Some(Wake {
            at,
            computers: c.store.wakes_of(&record.id)?,
        }),
        _ => None,
    };
    Ok(Container {
        id: record.id,
        name: record.name,
        description: record.description,
        created_at: record.created_at,
        start_at: record.start_at,
        end_at: record.end_at,
        priority: record.priority,
        ip_ranges: record.ip_ranges,
        time_frames: record.time_frames,
        sequence: record.sequence,
        retries: record.retries,
        retry_backoff: record.retry_backoff,
        auto_uninstall: record.auto_uninstall,
        downgrade: record.downgrade,
        cancelled_at: record.cancelled_at,
        state,
        counts,
        runtimes,
        jobs: listed,
        wol: record.power.wol,
        shutdown_after: record.power.shutdown_after,
        restart_timeout: record.power.restart_timeout,
        wake,
    })
}

/// Jobs as the API shows them, with host names and package names.
pub fn job_views(c: &Central, jobs: Vec<JobRecord>) -> Result<Vec<Job>, CentralError> {
    let mut hostnames = BTreeMap::new();
    let mut packages = BTreeMap::new();
    let mut listed = Vec::new();
    for j in jobs {
        if !hostnames.contains_key(&j.computer_id) {
            let name = c
                .store
                .computer(&j.computer_id)?
                .map(|r| r.hostname)
                .unwrap_or_default();
            hostnames.insert(j.computer_id.clone(), name);
        }
        if !packages.contains_key(&j.package_id) {
            let p = c
                .store
                .package(&j.package_id)?
                .map(|p| (p.name, p.version))
                .unwrap_or_default();
            packages.insert(j.package_id.clone(), p);
        }
        let (package_name, package_version) =
            packages.get(&j.package_id).cloned().unwrap_or_default();
        listed.push(Job {
            container_id: j.container_id,
            order: j.order,
            hostname: hostnames.get(&j.computer_id).cloned().unwrap_or_default(),
            computer_id: j.computer_id,
            package_id: j.package_id,
            package_name,
            package_version,
            kind: j.kind,
            status: j.status,
            exit_code: j.exit_code,
            output: j.output,
            attempts: j.attempts,
            retry_at: j.retry_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            updated_at: j.updated_at,
        });
    }
    Ok(listed)
}

/// Where a container stands, and when it finished if it has
/// ([`jobs::container_state`]).
fn state(
    record: &ContainerRecord,
    jobs: &[JobRecord],
    now: Timestamp,
) -> (ContainerState, Option<Timestamp>) {
    let times = ContainerTimes {
        created_at: record.created_at,
        start_at: record.start_at,
        end_at: record.end_at,
        cancelled_at: record.cancelled_at,
    };
    let ends: Vec<JobEnd> = jobs
        .iter()
        .map(|j| JobEnd {
            status: j.status,
            finished_at: j.finished_at,
        })
        .collect();
    jobs::container_state(times, &ends, now)
}

/// A package as job planning sees it.
fn planned(p: &PackageRecord) -> PlannedPackage {
    PlannedPackage {
        id: p.id.clone(),
        name: p.name.clone(),
        uninstallable: uninstallable(p),
    }
}

fn find_container(c: &Central, id: &str) -> Result<ContainerRecord, CentralError> {
    let cid: ContainerId = id
        .parse()
        .map_err(|_| CentralError::not_found("container", id))?;
    // A rule's container is the rule's business (`/rules`).
    c.store
        .container(&cid)?
        .filter(|r| r.rule.is_none())
        .ok_or_else(|| CentralError::not_found("container", id))
}

/// Creates a container from a request: its settings checked, its packages
/// found, its computers chosen, its jobs planned; woken at once if it has
/// `wol` and starts now.
pub fn create(c: &Central, req: ContainerRequest) -> Result<Container, CentralError> {
    let now = c.clock.now();
    let settings = Settings::parse(c, &req, now)?;
    if req.packages.is_empty() {
        return Err(bad("packages", "the list is empty"));
    }
    let kind = if req.uninstall.unwrap_or(false) {
        JobKind::Uninstall
    } else {
        JobKind::Install
    };
    let mut chosen: Vec<PackageRecord> = Vec::new();
    for id in &req.packages {
        let p = records::package(c, id)?;
        if kind == JobKind::Uninstall && !uninstallable(&p) {
            return Err(bad(
                "packages",
                format!(
                    "package '{}' has no uninstall procedure (create it with --uninstall-command) and is not a store package",
                    p.id
                ),
            ));
        }
        if chosen.iter().any(|q| q.id == p.id) {
            return Err(bad("packages", format!("'{}' is listed twice", p.id)));
        }
        chosen.push(p);
    }
    let computers = targets::choose(c, &req.target())?;
    if computers.is_empty() {
        return Err(bad(
            "computers",
            "no computer matches: the container would have no job",
        ));
    }
    let (mut record, jobs) = create_container(c, settings, &chosen, &computers, kind, now)?;
    // Starting now: wake its computers at once (later starts are woken by the
    // periodic wake, which may also have got there first).
    if power::wake_due(&record, now) {
        power::wake(c, &record, now)?;
        record = c.store.container(&record.id)?.unwrap_or(record);
    }
    view(c, record, jobs, true, now)
}

/// Every container but rules', without their jobs.
pub fn list(c: &Central) -> Result<Vec<Container>, CentralError> {
    let now = c.clock.now();
    let mut out = Vec::new();
    for record in c.store.containers()? {
        if record.rule.is_some() {
            continue;
        }
        let jobs = c.store.container_jobs(&record.id)?;
        out.push(view(c, record, jobs, false, now)?);
    }
    Ok(out)
}

pub fn show(c: &Central, id: &str) -> Result<Container, CentralError> {
    let record = find_container(c, id)?;
    let jobs = c.store.container_jobs(&record.id)?;
    view(c, record, jobs, true, c.clock.now())
}

pub fn delete(c: &Central, id: &str) -> Result<(), CentralError> {
    let record = find_container(c, id)?;
    if !c.store.delete_container(&record.id)? {
        return Err(CentralError::not_found("container", id));
    }
    tracing::info!(container = %record.id, "job container deleted");
    Ok(())
}

/// A store change to a container's jobs: retry or cancel.
type JobsChange = fn(&dyn Store, &ContainerId, Timestamp) -> Result<Option<u64>, CentralError>;

/// Applies `change` to the container `id` and answers how many jobs it touched.
fn change_jobs(
    c: &Central,
    id: &str,
    change: JobsChange,
    what: &'static str,
) -> Result<ContainerChanged, CentralError> {
    let cid = find_container(c, id)?.id;
    let jobs = change(c.store.as_ref(), &cid, c.clock.now())?
        .ok_or_else(|| CentralError::not_found("container", id))?;
    tracing::info!(container = %cid, jobs, "{what}");
    Ok(ContainerChanged {
        container_id: cid,
        jobs,
    })
}

/// Renews the container's failed jobs.
pub fn retry(c: &Central, id: &str) -> Result<ContainerChanged, CentralError> {
    change_jobs(
        c,
        id,
        |s, id, now| s.retry_container(id, now),
        "failed jobs renewed",
    )
}

/// Cancels the container's jobs not handed out yet.
pub fn cancel(c: &Central, id: &str) -> Result<ContainerChanged, CentralError> {
    change_jobs(
        c,
        id,
        |s, id, now| s.cancel_container(id, now),
        "container cancelled",
    )
}

/// `package assign`: the computers that have no unfinished install job of the
/// package get one, in a new container with defaults; the others are
/// `unchanged`. The answer names the new container (none if nobody needed a job).
pub fn assign(c: &Central, id: &str, req: AssignmentRequest) -> Result<Assigned, CentralError> {
    let package = records::package(c, id)?;
    let chosen = targets::choose(c, &req.target())?;
    assign_to(c, &package, chosen, c.clock.now())
}

fn assign_to(
    c: &Central,
    package: &PackageRecord,
    chosen: Vec<ComputerId>,
    now: Timestamp,
) -> Result<Assigned, CentralError> {
    // Busy: an unfinished install job, unless it is still waiting in a container
    // that will never hand it out (a disabled rule's, an ended container's). A
    // job already handed out is under way whatever its container's state now:
    // a second one would take over its reports.
    let mut live: BTreeMap<ContainerId, bool> = BTreeMap::new();
    let mut busy: Vec<ComputerId> = Vec::new();
    for j in c.store.jobs_of_package(&package.id)? {
        // Only a waiting install's container matters to `jobs::busy`: read no
        // other container (a package's history can hold many jobs).
        let waiting_install = j.kind == JobKind::Install
            && j.status == sitecast_common::status::StatusCode::WaitingNotification;
        let container_live = waiting_install
            && match live.get(&j.container_id) {
                Some(v) => *v,
                None => {
                    let v = c.store.container(&j.container_id)?.is_some_and(|r| {
                        let enabled = r.rule.as_ref().is_none_or(|spec| spec.enabled);
                        enabled && r.end_at.is_none_or(|end| end > now)
                    });
                    live.insert(j.container_id.clone(), v);
                    v
                }
            };
        let pending = PendingJob {
            kind: j.kind,
            status: j.status,
            container_live,
        };
        if jobs::busy(pending) {
            busy.push(j.computer_id);
        }
    }
    let (unchanged, assigned): (Vec<_>, Vec<_>) =
        chosen.into_iter().partition(|id| busy.contains(id));
    let mut answer = Assigned {
        package_id: package.id.clone(),
        assigned,
        unchanged,
        container_id: None,
    };
    if answer.assigned.is_empty() {
        return Ok(answer);
    }
    let settings = Settings::defaults(format!("{} {}", package.name, package.version), now);
    let (record, _) = create_container(
        c,
        settings,
        std::slice::from_ref(package),
        &answer.assigned,
        JobKind::Install,
        now,
    )?;
    answer.container_id = Some(record.id);
    Ok(answer)
}

/// Removes the finished containers older than `central.toml`'s purge ages;
/// returns their ids.
pub fn purge(c: &Central) -> Result<Vec<ContainerId>, CentralError> {
    let now = c.clock.now();
    let mut purged = Vec::new();
    for record in c.store.containers()? {
        // A rule never finishes: its jobs come and go with its groups.
        if record.rule.is_some() {
            continue;
        }
        let jobs = c.store.container_jobs(&record.id)?;
        let (state, finished) = state(&record, &jobs, now);
        let Some(finished) = finished else {
            continue;
        };
        if jobs::purgeable(
            finished,
            state == ContainerState::Succeeded,
            now,
            c.config.purge_succeeded_after.0,
            c.config.purge_failed_after.0,
        ) && c.store.delete_container(&record.id)?
        {
            tracing::info!(container = %record.id, %state, "finished job container purged");
            purged.push(record.id);
        }
    }
    Ok(purged)
}
