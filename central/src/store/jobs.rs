//! Job containers, their jobs, and what is installed where (SPEC "Jobs").
//!
//! Trees, all JSON records or index entries whose value is the job's key:
//!
//! - `containers`: container id → [`ContainerRecord`];
//! - `jobs`: `container/computer/order` → [`JobRecord`] (order zero-padded, so a
//!   computer's jobs of a container scan in order);
//! - `jobs_by_computer`: `computer/container/order` → job key (what a poll scans);
//! - `jobs_by_package`: `package/computer/container/order` → job key (statistics,
//!   validate, and whether central may serve the package to a computer);
//! - `current_jobs`: `computer/package` → key of the job last handed out for that
//!   package, which the agent's status reports (keyed by package) update;
//! - `installed`: `computer/package` → [`InstalledRecord`].
//!
//! Every change to these trees happens under one lock and is applied by one
//! transaction over all of them, then flushed: the indexes never disagree with
//! the records, and what the API acknowledged survives a `kill -9`. The rules
//! (order, retries, sequence mode) are `sitecast_common::jobs`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::MutexGuard;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::constraint::{IpRanges, TimeFrames};
use sitecast_common::groups::{self, Change, Criteria, ExistingJob};
use sitecast_common::ids::{ComputerId, ContainerId, GroupName, PackageId};
use sitecast_common::jobs::JobKind;
use sitecast_common::jobs::{self, Candidate, Conditions, JobState, Next, Sequence, Settled};
use sitecast_common::status::StatusCode;
use sitecast_common::units::Duration;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{
    decode, encode, pair, tx_error, Evaluation, ReportRecord, Result, SledStore, SourceRecord,
    Store,
};
use crate::error::CentralError;

/// A job container as central keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: ContainerId,
    pub name: String,
    pub description: String,
    pub created_at: Timestamp,
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    /// Higher first.
    pub priority: i32,
    pub ip_ranges: Option<IpRanges>,
    pub time_frames: Option<TimeFrames>,
    pub sequence: Sequence,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub auto_uninstall: bool,
    pub cancelled_at: Option<Timestamp>,
    /// Creation order, drawn by the store (timestamps can tie).
    #[serde(default)]
    pub seq: u64,
    /// Wake-on-LAN, shutdown after and restart timeout (records written before
    /// they existed read as none and OCO's default timeout).
    #[serde(default)]
    pub power: super::ContainerPower,
    /// Set when the container is a deployment rule's: its jobs are made and
    /// unmade by re-evaluation instead of fixed at creation.
    #[serde(default)]
    pub rule: Option<RuleSpec>,
    /// Its installs are intended downgrades: each hand-out carries central's
    /// signed word for the agent (records written before it existed: none).
    #[serde(default)]
    pub downgrade: bool,
}

/// What makes a container a deployment rule (OCO): which computers, which
/// packages, and whether its jobs are handed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// A computer group; with criteria too, its members that match them.
    pub group: Option<GroupName>,
    pub criteria: Criteria,
    pub package_group: GroupName,
    /// A disabled rule's jobs are made (so an admin can check them) but never handed out.
    pub enabled: bool,
}

impl ContainerRecord {
    pub fn conditions(&self) -> Conditions {
        Conditions {
            start_at: self.start_at,
            end_at: self.end_at,
            ip_ranges: self.ip_ranges.clone(),
            time_frames: self.time_frames.clone(),
        }
    }
}

/// One computer × one package × install or uninstall, in a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub container_id: ContainerId,
    /// Position among the computer's jobs of the container, from 1.
    pub order: u32,
    pub computer_id: ComputerId,
    pub package_id: PackageId,
    pub kind: JobKind,
    pub status: StatusCode,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub fragments_done: Option<u32>,
    /// Fragment bytes per source, from the agent's final report.
    #[serde(default)]
    pub sources: Vec<SourceRecord>,
    /// Times handed out (tries).
    pub attempts: u32,
    /// Waiting for an automatic retry, not before this instant.
    pub retry_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Creation order, drawn by the store (timestamps can tie).
    #[serde(default)]
    pub seq: u64,
}

impl JobRecord {
    /// A new job, waiting to be handed out.
    pub fn new(
        container_id: ContainerId,
        order: u32,
        computer_id: ComputerId,
        package_id: PackageId,
        kind: JobKind,
        now: Timestamp,
    ) -> Self {
        Self {
            container_id,
            order,
            computer_id,
            package_id,
            kind,
            status: StatusCode::WaitingNotification,
            exit_code: None,
            output: None,
            fragments_done: None,
            sources: Vec::new(),
            attempts: 0,
            retry_at: None,
            started_at: None,
            finished_at: None,
            created_at: now,
            updated_at: now,
            seq: 0,
        }
    }

    fn key(&self) -> Vec<u8> {
        job_key(&self.container_id, &self.computer_id, self.order)
    }

    fn state(&self) -> JobState {
        JobState {
            status: self.status,
            retry_at: self.retry_at,
        }
    }

    /// Back to the start: waiting, no tries, nothing reported.
    /// This hand-out of the job, as polls name it and reports carry it back: the
    /// container, the job's place in it, the try, and when it was first handed out
    /// since it was created or renewed (so a retried job's tries are new names).
    /// `None` until it is handed out.
    pub fn handout(&self) -> Option<String> {
        let started = self.started_at?;
        Some(format!(
            "{}/{}/{}/{}",
            self.container_id,
            self.order,
            self.attempts,
            started.as_millisecond()
        ))
    }

    fn renew(&mut self, now: Timestamp) {
        let seq = self.seq;
        *self = Self::new(
            self.container_id.clone(),
            self.order,
            self.computer_id.clone(),
            self.package_id.clone(),
            self.kind,
            self.created_at,
        );
        self.seq = seq;
        self.updated_at = now;
    }
}

/// A package central believes is installed on a computer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstalledRecord {
    pub package_id: PackageId,
    pub installed_at: Timestamp,
    /// The container whose job installed it.
    pub container_id: Option<ContainerId>,
}

/// A computer's line in a package's statistics: its latest job (OCS shows one
/// line per computer; older jobs are history).
pub fn latest(jobs: &[JobRecord]) -> Option<&JobRecord> {
    jobs.iter().max_by_key(|j| (j.seq, j.created_at, j.order))
}

fn job_key(container: &ContainerId, computer: &ComputerId, order: u32) -> Vec<u8> {
    format!("{container}/{computer}/{order:08}").into_bytes()
}

fn computer_index(job: &JobRecord) -> Vec<u8> {
    format!("{}/{}/{:08}", job.computer_id, job.container_id, job.order).into_bytes()
}

fn package_index(job: &JobRecord) -> Vec<u8> {
    format!(
        "{}/{}/{}/{:08}",
        job.package_id, job.computer_id, job.container_id, job.order
    )
    .into_bytes()
}

/// The job trees, in the order [`Op`] names them.
pub(super) struct JobTrees {
    pub containers: sled::Tree,
    pub jobs: sled::Tree,
    pub by_computer: sled::Tree,
    pub by_package: sled::Tree,
    pub current: sled::Tree,
    pub installed: sled::Tree,
}

impl JobTrees {
    pub fn open(db: &sled::Db) -> Result<Self> {
        Ok(Self {
            containers: db.open_tree("containers")?,
            jobs: db.open_tree("jobs")?,
            by_computer: db.open_tree("jobs_by_computer")?,
            by_package: db.open_tree("jobs_by_package")?,
            current: db.open_tree("current_jobs")?,
            installed: db.open_tree("installed")?,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum T {
    Containers,
    Jobs,
    ByComputer,
    ByPackage,
    Current,
    Installed,
}

/// Writes collected under the lock, applied by one transaction.
#[derive(Default)]
struct Ops(Vec<(T, Vec<u8>, Option<Vec<u8>>)>);

impl Ops {
    fn put(&mut self, tree: T, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.0.push((tree, key.into(), Some(value.into())));
    }

    fn del(&mut self, tree: T, key: impl Into<Vec<u8>>) {
        self.0.push((tree, key.into(), None));
    }

    /// A job record and its two indexes.
    fn put_job(&mut self, job: &JobRecord) -> Result<()> {
        let key = job.key();
        self.put(T::Jobs, key.clone(), encode(job)?);
        self.put(T::ByComputer, computer_index(job), key.clone());
        self.put(T::ByPackage, package_index(job), key);
        Ok(())
    }

    /// Removes a job, its indexes, and the current pointer if it is this job.
    fn del_job(&mut self, job: &JobRecord, current: Option<&[u8]>) {
        let key = job.key();
        if current == Some(key.as_slice()) {
            self.del(
                T::Current,
                pair(job.computer_id.as_str(), job.package_id.as_str()),
            );
        }
        self.del(T::Jobs, key);
        self.del(T::ByComputer, computer_index(job));
        self.del(T::ByPackage, package_index(job));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a rule wants on a computer, given what is installed there (see [`JobStore::sync_rule`]).
pub type Wants<'a> = &'a dyn Fn(&ComputerId, &[InstalledRecord]) -> Vec<(PackageId, JobKind)>;

/// What central asks of its job metadata.
pub trait JobStore {
    /// Adds a container and its jobs at once.
    fn add_container(&self, container: &ContainerRecord, jobs: &[JobRecord]) -> Result<()>;
    fn containers(&self) -> Result<Vec<ContainerRecord>>;
    fn container(&self, id: &ContainerId) -> Result<Option<ContainerRecord>>;
    /// The container's jobs, by computer then order.
    fn container_jobs(&self, id: &ContainerId) -> Result<Vec<JobRecord>>;
    /// Removes a container and its jobs; false if there was none.
    fn delete_container(&self, id: &ContainerId) -> Result<bool>;
    /// The computer's jobs, by container then order.
    fn jobs_on(&self, computer: &ComputerId) -> Result<Vec<JobRecord>>;
    /// Every job of the package.
    fn jobs_of_package(&self, package: &PackageId) -> Result<Vec<JobRecord>>;
    /// Whether the computer has any job of the package (central serves a package
    /// only to the computers it is meant for).
    fn has_job(&self, package: &PackageId, computer: &ComputerId) -> Result<bool>;
    /// The jobs to hand the computer now, in the order it should run them
    /// (container priority, higher first; package priority, 0 first; older
    /// container first): the next job of each container `admits` lets through,
    /// one per package. Waiting ones become `NOTIFIED`.
    fn poll_jobs(
        &self,
        computer: &ComputerId,
        now: Timestamp,
        admits: &dyn Fn(&ContainerRecord) -> bool,
    ) -> Result<Vec<(ContainerRecord, JobRecord)>>;
    /// Records an agent's report on the job last handed out for the package (none
    /// handed out: not found): retries, the sequence mode and the installed
    /// packages follow a final one.
    /// Applies an agent's report to the computer's current job for the package. A
    /// report naming another hand-out (`job`, [`JobRecord::handout`]) than the current
    /// one, or a final report for a job already settled, is refused (a conflict).
    fn report_job(
        &self,
        computer: &ComputerId,
        package: &PackageId,
        job: Option<&str>,
        report: &ReportRecord,
        now: Timestamp,
    ) -> Result<JobRecord>;
    /// OCS's validate operations on a package's statistics lines: for each
    /// computer whose latest job of `kind` ([`latest`]) has one of `statuses`,
    /// removes all its jobs of `kind` for the package. Returns those latest jobs.
    fn remove_jobs(
        &self,
        package: &PackageId,
        kind: JobKind,
        statuses: &[StatusCode],
    ) -> Result<Vec<JobRecord>>;
    /// OCS's red cross on an activation ("unaffect"): removes the package's
    /// install jobs still `WAITING_NOTIFICATION` (never handed out, or failed and
    /// waiting for a retry) on `computers` (`None`: every computer). Jobs handed
    /// out or finished stay. Returns the jobs removed.
    fn remove_waiting_installs(
        &self,
        package: &PackageId,
        computers: Option<&BTreeSet<ComputerId>>,
    ) -> Result<Vec<JobRecord>>;
    /// `container retry`: the failed jobs start over; `None` if no such container.
    fn retry_container(&self, id: &ContainerId, now: Timestamp) -> Result<Option<u64>>;
    /// `container cancel`: the jobs not yet started become `ERR_ABORTED`;
    /// `None` if no such container.
    fn cancel_container(&self, id: &ContainerId, now: Timestamp) -> Result<Option<u64>>;
    fn installed_on(&self, computer: &ComputerId) -> Result<Vec<InstalledRecord>>;
    /// Changes a container's settings (not its jobs); `None` if there is none.
    fn update_container(
        &self,
        id: &ContainerId,
        change: &dyn Fn(&mut ContainerRecord),
    ) -> Result<Option<ContainerRecord>>;
    /// Re-evaluates a rule's jobs on `computers` ([`groups::reconcile`]), and
    /// with `all_with_jobs` on every computer it has jobs on too (one that left
    /// must keep nothing waiting): `wants` says what the rule wants on a
    /// computer given what is installed there, read under the lock so
    /// concurrent evaluations never make a job twice. New jobs come after the
    /// computer's others. `None` if there is no such container.
    fn sync_rule(
        &self,
        id: &ContainerId,
        computers: &[ComputerId],
        all_with_jobs: bool,
        wants: Wants<'_>,
        renew_failed: bool,
        now: Timestamp,
    ) -> Result<Option<Evaluation>>;
    /// OCO "Remove assignment": forgets that the package is installed on the
    /// computer and its jobs there, running nothing; false if there was nothing.
    fn forget(&self, computer: &ComputerId, package: &PackageId) -> Result<bool>;
}

impl SledStore {
    pub(super) fn jobs_lock(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data of its own: a panic elsewhere leaves nothing half-done.
        self.jobs_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, ops: Ops) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let t = &self.job_trees;
        (
            &t.containers,
            &t.jobs,
            &t.by_computer,
            &t.by_package,
            &t.current,
            &t.installed,
        )
            .transaction(
                |(containers, jobs, by_computer, by_package, current, installed)| {
                    for (tree, key, value) in &ops.0 {
                        let tree = match tree {
                            T::Containers => containers,
                            T::Jobs => jobs,
                            T::ByComputer => by_computer,
                            T::ByPackage => by_package,
                            T::Current => current,
                            T::Installed => installed,
                        };
                        match value {
                            Some(v) => tree.insert(key.as_slice(), v.as_slice())?,
                            None => tree.remove(key.as_slice())?,
                        };
                    }
                    Ok::<(), ConflictableTransactionError<CentralError>>(())
                },
            )
            .map_err(tx_error)?;
        self.flush()
    }

    fn job(&self, key: &[u8]) -> Result<Option<JobRecord>> {
        Self::get(&self.job_trees.jobs, key)
    }

    /// The jobs an index lists under `prefix`, in index order.
    fn indexed_jobs(&self, index: &sled::Tree, prefix: &str) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for kv in index.scan_prefix(prefix.as_bytes()) {
            let (_, key) = kv?;
            if let Some(job) = self.job(&key)? {
                out.push(job);
            }
        }
        Ok(out)
    }

    pub(super) fn jobs_with_prefix(&self, prefix: &str) -> Result<Vec<JobRecord>> {
        self.job_trees
            .jobs
            .scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    fn current_key(&self, computer: &ComputerId, package: &PackageId) -> Result<Option<Vec<u8>>> {
        Ok(self
            .job_trees
            .current
            .get(pair(computer.as_str(), package.as_str()))?
            .map(|v| v.to_vec()))
    }

    /// Removes every job of a package and what is recorded installed of it
    /// (a package deleted cannot be installed nor uninstalled any more).
    pub(super) fn forget_package_jobs(&self, package: &PackageId) -> Result<()> {
        let _guard = self.jobs_lock();
        let mut ops = Ops::default();
        for job in self.indexed_jobs(&self.job_trees.by_package, &format!("{package}/"))? {
            let current = self.current_key(&job.computer_id, package)?;
            ops.del_job(&job, current.as_deref());
        }
        for kv in self.job_trees.installed.iter() {
            let (k, v) = kv?;
            let record: InstalledRecord = decode(&k, &v)?;
            if &record.package_id == package {
                ops.del(T::Installed, k.to_vec());
            }
        }
        self.apply(ops)
    }
}

impl JobStore for SledStore {
    fn add_container(&self, container: &ContainerRecord, jobs: &[JobRecord]) -> Result<()> {
        let _guard = self.jobs_lock();
        if self
            .job_trees
            .containers
            .contains_key(container.id.as_str())?
        {
            return Err(CentralError::Conflict(format!(
                "container '{}' already exists",
                container.id
            )));
        }
        let mut ops = Ops::default();
        let mut container = container.clone();
        container.seq = self.db.generate_id()?;
        ops.put(T::Containers, container.id.as_str(), encode(&container)?);
        for job in jobs {
            let mut job = job.clone();
            job.seq = self.db.generate_id()?;
            ops.put_job(&job)?;
        }
        self.apply(ops)
    }

    fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let mut all: Vec<ContainerRecord> = Self::all(&self.job_trees.containers)?;
        all.sort_by(|a, b| (a.seq, a.created_at, &a.id).cmp(&(b.seq, b.created_at, &b.id)));
        Ok(all)
    }

    fn container(&self, id: &ContainerId) -> Result<Option<ContainerRecord>> {
        Self::get(&self.job_trees.containers, id.as_str().as_bytes())
    }

    fn container_jobs(&self, id: &ContainerId) -> Result<Vec<JobRecord>> {
        self.jobs_with_prefix(&format!("{id}/"))
    }

    fn delete_container(&self, id: &ContainerId) -> Result<bool> {
        let _guard = self.jobs_lock();
        if !self.job_trees.containers.contains_key(id.as_str())? {
            return Ok(false);
        }
        let mut ops = Ops::default();
        for job in self.jobs_with_prefix(&format!("{id}/"))? {
            let current = self.current_key(&job.computer_id, &job.package_id)?;
            ops.del_job(&job, current.as_deref());
        }
        ops.del(T::Containers, id.as_str());
        self.apply(ops)?;
        self.forget_wakes(id)?;
        Ok(true)
    }

    fn jobs_on(&self, computer: &ComputerId) -> Result<Vec<JobRecord>> {
        self.indexed_jobs(&self.job_trees.by_computer, &format!("{computer}/"))
    }

    fn jobs_of_package(&self, package: &PackageId) -> Result<Vec<JobRecord>> {
        self.indexed_jobs(&self.job_trees.by_package, &format!("{package}/"))
    }

    fn has_job(&self, package: &PackageId, computer: &ComputerId) -> Result<bool> {
        let prefix = format!("{package}/{computer}/");
        Ok(self
            .job_trees
            .by_package
            .scan_prefix(prefix.as_bytes())
            .next()
            .transpose()?
            .is_some())
    }

    fn poll_jobs(
        &self,
        computer: &ComputerId,
        now: Timestamp,
        admits: &dyn Fn(&ContainerRecord) -> bool,
    ) -> Result<Vec<(ContainerRecord, JobRecord)>> {
        let _guard = self.jobs_lock();
        let mut groups: BTreeMap<ContainerId, Vec<JobRecord>> = BTreeMap::new();
        for job in self.jobs_on(computer)? {
            groups
                .entry(job.container_id.clone())
                .or_default()
                .push(job);
        }
        let mut found: Vec<(ContainerRecord, JobRecord)> = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        for (id, group) in groups {
            let Some(container) = self.container(&id)? else {
                continue;
            };
            let states: Vec<JobState> = group.iter().map(JobRecord::state).collect();
            let Next::Hand(i) = jobs::next_job(&states, now) else {
                continue;
            };
            if !admits(&container) {
                continue;
            }
            let Some(job) = group.into_iter().nth(i) else {
                continue;
            };
            let package_priority = self
                .package(&job.package_id)?
                .map_or(u8::MAX, |p| p.priority);
            let current = self.current_key(computer, &job.package_id)?;
            candidates.push(Candidate {
                container: container.id.clone(),
                container_priority: container.priority,
                container_seq: container.seq,
                container_created: container.created_at,
                package: job.package_id.clone(),
                package_priority,
                order: job.order,
                current: current.as_deref() == Some(job.key().as_slice()),
            });
            found.push((container, job));
        }
        let order = jobs::poll_order(&candidates);
        let mut slots: Vec<Option<(ContainerRecord, JobRecord)>> =
            found.into_iter().map(Some).collect();
        // Whether each was the package's current job was read once, above.
        let mut chosen: Vec<(ContainerRecord, JobRecord)> = Vec::new();
        let mut was_current: Vec<bool> = Vec::new();
        for &i in &order {
            if let Some(pair) = slots[i].take() {
                chosen.push(pair);
                was_current.push(candidates[i].current);
            }
        }
        let mut ops = Ops::default();
        for ((_, job), current) in chosen.iter_mut().zip(was_current) {
            let mut changed = false;
            if job.status == StatusCode::WaitingNotification {
                job.status = StatusCode::Notified;
                job.attempts = job.attempts.saturating_add(1);
                job.retry_at = None;
                job.started_at.get_or_insert(now);
                job.updated_at = now;
                changed = true;
            }
            if !current {
                ops.put(
                    T::Current,
                    pair(computer.as_str(), job.package_id.as_str()),
                    job.key(),
                );
            }
            if changed {
                ops.put(T::Jobs, job.key(), encode(&*job)?);
            }
        }
        self.apply(ops)?;
        Ok(chosen)
    }

    fn report_job(
        &self,
        computer: &ComputerId,
        package: &PackageId,
        answers: Option<&str>,
        report: &ReportRecord,
        now: Timestamp,
    ) -> Result<JobRecord> {
        let _guard = self.jobs_lock();
        let not_found = || CentralError::not_found("job", format!("{package} on {computer}"));
        // Reports update the job central handed out for the package: an agent
        // cannot settle a job its container's conditions have not let through.
        let key = self.current_key(computer, package)?.ok_or_else(not_found)?;
        let mut job = self.job(&key)?.ok_or_else(not_found)?;
        if let Some(answers) = answers {
            let current = job.handout();
            if current.as_deref() != Some(answers) {
                return Err(CentralError::conflict(format!(
                    "the report answers job {answers}, but the computer's current job for {package} is {}",
                    current.as_deref().unwrap_or("not handed out yet")
                )));
            }
        }
        // Progress arriving after the job was settled (cancelled, say) changes nothing.
        if job.status.is_final() && !report.code.is_final() {
            return Ok(job);
        }
        if job.status.is_final() {
            return Err(CentralError::conflict(format!(
                "the job of {package} on {computer} is already settled as {}; a {} report cannot change it",
                job.status, report.code
            )));
        }
        job.status = report.code;
        job.exit_code = report.exit_code;
        if report.output.is_some() {
            job.output = report.output.clone();
        }
        if report.fragments_done.is_some() {
            job.fragments_done = report.fragments_done;
        }
        if !report.sources.is_empty() {
            job.sources = report.sources.clone();
        }
        job.updated_at = now;
        let mut ops = Ops::default();
        if report.code.is_final() {
            let container = self.container(&job.container_id)?;
            let (retries, backoff) = match &container {
                // A cancelled container starts nothing again.
                Some(c) if c.cancelled_at.is_none() => (c.retries, c.retry_backoff),
                _ => (0, Duration::ZERO),
            };
            match jobs::settle(report.code, job.attempts, retries, backoff, now) {
                Settled::Succeeded => {
                    job.finished_at = Some(now);
                    let at = pair(computer.as_str(), package.as_str());
                    match job.kind {
                        JobKind::Install => ops.put(
                            T::Installed,
                            at,
                            encode(&InstalledRecord {
                                package_id: package.clone(),
                                installed_at: now,
                                container_id: Some(job.container_id.clone()),
                            })?,
                        ),
                        JobKind::Uninstall => ops.del(T::Installed, at),
                    }
                }
                Settled::Retry { at } => {
                    tracing::info!(%package, %computer, code = %report.code, retry_at = %at, "job failed; it will be tried again");
                    job.status = StatusCode::WaitingNotification;
                    job.retry_at = Some(at);
                    job.finished_at = None;
                }
                Settled::Failed => {
                    job.finished_at = Some(now);
                    let sequence = container
                        .as_ref()
                        .map_or(Sequence::IgnoreFailed, |c| c.sequence);
                    let mut mine =
                        self.jobs_with_prefix(&format!("{}/{computer}/", job.container_id))?;
                    let states: Vec<JobState> = mine.iter().map(JobRecord::state).collect();
                    if let Some(at) = mine.iter().position(|j| j.order == job.order) {
                        for i in jobs::abort_rest(&states, at, sequence) {
                            let later = &mut mine[i];
                            later.status = StatusCode::ErrPreviousFailed;
                            later.output = Some(format!(
                                "not run: job {} ({}) failed with {}",
                                job.order, job.package_id, report.code
                            ));
                            later.retry_at = None;
                            later.finished_at = Some(now);
                            later.updated_at = now;
                            ops.put(T::Jobs, later.key(), encode(&*later)?);
                        }
                    }
                }
            }
        }
        ops.put(T::Jobs, key, encode(&job)?);
        self.apply(ops)?;
        Ok(job)
    }

    fn remove_jobs(
        &self,
        package: &PackageId,
        kind: JobKind,
        statuses: &[StatusCode],
    ) -> Result<Vec<JobRecord>> {
        let _guard = self.jobs_lock();
        let mut lines: BTreeMap<ComputerId, Vec<JobRecord>> = BTreeMap::new();
        for job in self.indexed_jobs(&self.job_trees.by_package, &format!("{package}/"))? {
            if job.kind == kind {
                lines.entry(job.computer_id.clone()).or_default().push(job);
            }
        }
        let mut ops = Ops::default();
        let mut removed = Vec::new();
        for (computer, jobs) in lines {
            let Some(latest) = latest(&jobs) else {
                continue;
            };
            if !statuses.contains(&latest.status) {
                continue;
            }
            let current = self.current_key(&computer, package)?;
            for job in &jobs {
                ops.del_job(job, current.as_deref());
            }
            removed.push(latest.clone());
        }
        self.apply(ops)?;
        Ok(removed)
    }

    fn remove_waiting_installs(
        &self,
        package: &PackageId,
        computers: Option<&BTreeSet<ComputerId>>,
    ) -> Result<Vec<JobRecord>> {
        let _guard = self.jobs_lock();
        let mut ops = Ops::default();
        let mut removed = Vec::new();
        for job in self.indexed_jobs(&self.job_trees.by_package, &format!("{package}/"))? {
            let waiting = job.kind == JobKind::Install
                && job.status == StatusCode::WaitingNotification
                && computers.is_none_or(|set| set.contains(&job.computer_id));
            if waiting {
                let current = self.current_key(&job.computer_id, package)?;
                ops.del_job(&job, current.as_deref());
                removed.push(job);
            }
        }
        self.apply(ops)?;
        Ok(removed)
    }

    fn retry_container(&self, id: &ContainerId, now: Timestamp) -> Result<Option<u64>> {
        let _guard = self.jobs_lock();
        let Some(mut container) = self.container(id)? else {
            return Ok(None);
        };
        let mut ops = Ops::default();
        let mut renewed = 0;
        for mut job in self.jobs_with_prefix(&format!("{id}/"))? {
            if job.status.is_final() && !job.status.is_success() {
                job.renew(now);
                ops.put(T::Jobs, job.key(), encode(&job)?);
                renewed += 1;
            }
        }
        if container.cancelled_at.take().is_some() {
            ops.put(T::Containers, id.as_str(), encode(&container)?);
        }
        self.apply(ops)?;
        Ok(Some(renewed))
    }

    fn cancel_container(&self, id: &ContainerId, now: Timestamp) -> Result<Option<u64>> {
        let _guard = self.jobs_lock();
        let Some(mut container) = self.container(id)? else {
            return Ok(None);
        };
        let mut ops = Ops::default();
        let mut cancelled = 0;
        for mut job in self.jobs_with_prefix(&format!("{id}/"))? {
            // Jobs under way (downloading, installing) run to their end.
            if matches!(
                job.status,
                StatusCode::WaitingNotification | StatusCode::Notified
            ) {
                job.status = StatusCode::ErrAborted;
                job.output = Some("cancelled by an admin before it started".into());
                job.retry_at = None;
                job.finished_at = Some(now);
                job.updated_at = now;
                ops.put(T::Jobs, job.key(), encode(&job)?);
                cancelled += 1;
            }
        }
        container.cancelled_at.get_or_insert(now);
        ops.put(T::Containers, id.as_str(), encode(&container)?);
        self.apply(ops)?;
        Ok(Some(cancelled))
    }

    fn installed_on(&self, computer: &ComputerId) -> Result<Vec<InstalledRecord>> {
        self.job_trees
            .installed
            .scan_prefix(format!("{computer}/").as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    fn update_container(
        &self,
        id: &ContainerId,
        change: &dyn Fn(&mut ContainerRecord),
    ) -> Result<Option<ContainerRecord>> {
        let _guard = self.jobs_lock();
        let Some(mut container) = self.container(id)? else {
            return Ok(None);
        };
        change(&mut container);
        let mut ops = Ops::default();
        ops.put(T::Containers, id.as_str(), encode(&container)?);
        self.apply(ops)?;
        Ok(Some(container))
    }

    fn sync_rule(
        &self,
        id: &ContainerId,
        computers: &[ComputerId],
        all_with_jobs: bool,
        wants: Wants<'_>,
        renew_failed: bool,
        now: Timestamp,
    ) -> Result<Option<Evaluation>> {
        let _guard = self.jobs_lock();
        let Some(container) = self.container(id)? else {
            return Ok(None);
        };
        let mut ops = Ops::default();
        let mut done = Evaluation::default();
        // Every computer with jobs: one scan of the rule's jobs, not one per computer.
        let mut by_computer: BTreeMap<ComputerId, Vec<JobRecord>> = BTreeMap::new();
        if all_with_jobs {
            for job in self.jobs_with_prefix(&format!("{id}/"))? {
                by_computer
                    .entry(job.computer_id.clone())
                    .or_default()
                    .push(job);
            }
        }
        let mut visit: BTreeSet<&ComputerId> = computers.iter().collect();
        let holders: Vec<ComputerId> = by_computer.keys().cloned().collect();
        visit.extend(&holders);
        for computer in visit {
            let installed = self.installed_on(computer)?;
            let wanted = wants(computer, &installed);
            let mine = if all_with_jobs {
                by_computer.remove(computer).unwrap_or_default()
            } else {
                self.jobs_with_prefix(&format!("{id}/{computer}/"))?
            };
            let existing: Vec<ExistingJob> = mine
                .iter()
                .map(|j| ExistingJob {
                    order: j.order,
                    package: j.package_id.clone(),
                    kind: j.kind,
                    status: j.status,
                })
                .collect();
            let mut next = mine.iter().map(|j| j.order).max().unwrap_or(0);
            let changes = groups::reconcile(&wanted, &existing, renew_failed);
            let renewed: Vec<u32> = changes
                .iter()
                .filter_map(|c| match c {
                    Change::Renew(order) => Some(*order),
                    _ => None,
                })
                .collect();
            let blocker = groups::blocker(&existing, &wanted, &renewed, container.sequence);
            for change in changes {
                match change {
                    Change::Add(package, kind) => {
                        next = next.saturating_add(1);
                        let mut job =
                            JobRecord::new(id.clone(), next, computer.clone(), package, kind, now);
                        job.seq = self.db.generate_id()?;
                        if let Some(failed) = blocker {
                            job.status = StatusCode::ErrPreviousFailed;
                            job.output = Some(format!(
                                "not run: job {} ({}) failed with {}",
                                failed.order, failed.package, failed.status
                            ));
                            job.finished_at = Some(now);
                        }
                        ops.put_job(&job)?;
                        done.added += 1;
                    }
                    Change::Renew(order) => {
                        if let Some(job) = mine.iter().find(|j| j.order == order) {
                            let mut job = job.clone();
                            job.renew(now);
                            ops.put(T::Jobs, job.key(), encode(&job)?);
                            done.renewed += 1;
                        }
                    }
                    Change::Remove(order) => {
                        if let Some(job) = mine.iter().find(|j| j.order == order) {
                            let current = self.current_key(computer, &job.package_id)?;
                            ops.del_job(job, current.as_deref());
                            done.removed += 1;
                        }
                    }
                }
            }
        }
        self.apply(ops)?;
        Ok(Some(done))
    }

    fn forget(&self, computer: &ComputerId, package: &PackageId) -> Result<bool> {
        let _guard = self.jobs_lock();
        let mut ops = Ops::default();
        let at = pair(computer.as_str(), package.as_str());
        let installed = self.job_trees.installed.contains_key(&at)?;
        if installed {
            ops.del(T::Installed, at);
        }
        let current = self.current_key(computer, package)?;
        let jobs = self.indexed_jobs(
            &self.job_trees.by_package,
            &format!("{package}/{computer}/"),
        )?;
        for job in &jobs {
            ops.del_job(job, current.as_deref());
        }
        let any = installed || !jobs.is_empty();
        self.apply(ops)?;
        Ok(any)
    }
}
