//! The agent's real [`Performer`]: polls central, keeps what it knows of each
//! job it was given ([`Package`]: a package to install or to uninstall), and
//! performs the cycle's steps with [`crate::deploy`] and [`crate::uninstall`]. It
//! also remembers when it first saw each job (`DIR/downloads/<package>.first-seen`,
//! `<package>+uninstall.first-seen` for uninstall jobs: a wall-clock timestamp, so
//! the `timeout` and `central_fallback = after:…` count across restarts), the final
//! reports central could not take yet (sent again before the next poll), and the
//! history: what is installed, `ERR_ALREADY_SETUP` for install jobs of those (an
//! uninstall job runs whatever the history says: the package may have been installed
//! before the history existed). A package's done text is shown once its success is
//! in the history and reported.
//!
//! Central lists a package once per poll; should two jobs of one package come in one
//! poll (two job containers), the first listed runs, and the other comes back at a
//! later poll. A package listed for the other kind of job than the one tracked is a
//! new job: the old one is dropped (its fragments stay on disk until a job of the
//! package settles, which removes its download directory: an install job that comes
//! back resumes with them, and an uninstall job needs only the info).
//!
//! A package the user delayed (see [`crate::notify`]) keeps its job and its
//! verified download, and nothing is reported: `once` leaves it alone for the
//! rest of the call (the next call asks again), `run` for a cycle's pause
//! (`cycle_latency`, at least [`MIN_DELAY`]), after which it is installed again,
//! asking the user first, as OCS does in its next cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sitecast_common::deployment::{CycleConfig, Job};
use sitecast_common::ids::PackageId;
use sitecast_common::jobs::JobKind;
use sitecast_common::keyset;
use sitecast_common::power::MacAddr;
use sitecast_common::status::StatusCode;
use sitecast_common::units;
use sitecast_common::wire::StatusReport;

use crate::backoff::Backoff;
use crate::client::{Client, Deadlines};
use crate::config::{AgentConfig, Layout};
use crate::cycle::{Fetched, Performer, Worklist, HELD_BACK, MAX_PRIORITY};
use crate::deploy::{self, Context, Outcome, Package, Step};
use crate::error::AgentError;
use crate::floors::Floors;
use crate::history::{History, Installed};
use crate::journal::Journal;
use crate::manifest::Manifest;
use crate::notify::Notifier;
use crate::{addresses, install, power, uninstall};

/// The cycle's clock: monotonic, starting at `epoch` when the agent starts.
///
/// The epoch is the cycle's `timeout`, so a package first seen before the agent
/// started maps to an instant no earlier than zero, and one seen more than
/// `timeout` before maps to zero: timed out at once, as it should be.
struct Clock {
    started: Instant,
    epoch: Duration,
}

impl Clock {
    fn now(&self) -> Duration {
        self.epoch.saturating_add(self.started.elapsed())
    }

    /// The cycle's instant of a wall-clock one.
    fn at(&self, wall: Timestamp) -> Duration {
        let now = self.now();
        let ahead = wall.duration_since(crate::clock::now());
        if ahead.is_negative() {
            now.saturating_sub(ahead.unsigned_abs())
        } else {
            now.saturating_add(ahead.unsigned_abs())
        }
    }
}

/// The least a delayed package waits in `run`, so that a `cycle_latency` of
/// zero cannot make the agent ask the user again and again.
pub(crate) const MIN_DELAY: Duration = Duration::from_secs(1);

struct Tracked {
    package: Package,
    /// `first_seen` on the cycle's clock.
    first_seen: Duration,
    /// Its position in the last poll's list (central lists jobs in running order).
    rank: u32,
}

/// An agent's state between the cycle's steps.
pub(crate) struct Worker {
    layout: Layout,
    ctx: Context,
    history: History,
    timeout: units::Duration,
    clock: Clock,
    packages: BTreeMap<PackageId, Tracked>,
    /// `once`: every job the polls listed, in the order they first came.
    listed: Vec<(PackageId, JobKind)>,
    /// `once`: what became of the jobs that ended.
    outcomes: BTreeMap<(PackageId, JobKind), Outcome>,
    /// Keep `listed` and `outcomes` (`once`; `run` never reads them).
    keep_outcomes: bool,
    /// Final reports made so far (sent or not).
    concluded: u64,
    /// Why each package could not progress, last time it could not.
    waiting: BTreeMap<PackageId, String>,
    set_aside: BTreeSet<PackageId>,
    /// Packages the user delayed, left out of the work list until then (`run`).
    delayed: BTreeMap<PackageId, Duration>,
    /// How long a delay lasts in `run`; `None` (`once`): the rest of the call.
    delay: Option<Duration>,
    /// Final reports central did not take; sent again before each poll.
    unsent: Vec<(PackageId, JobKind, StatusReport)>,
    last_send_error: Option<AgentError>,
    poll_interval: Duration,
    /// Reported in every poll, for Wake-on-LAN.
    macs: Vec<MacAddr>,
    /// agent.toml's `power_command` (none: power actions are only logged).
    power_command: Option<String>,
    /// How long the computer has been on, read before each poll.
    uptime: power::Uptime,
    /// The version floor of each package name installed here.
    floors: Floors,
}

impl Worker {
    /// Loads DIR; the cycle's settings come with it. `keep_outcomes` for `once`,
    /// which reports what became of each job.
    pub(crate) fn open(dir: &Path, keep_outcomes: bool) -> Result<(Self, CycleConfig), AgentError> {
        let layout = Layout::new(dir);
        let config = AgentConfig::load(&layout)?;
        let client = Client::new(
            &config.central,
            &config.token,
            &layout.ca(),
            config.bind,
            Deadlines::from(&config.downloads),
        )?
        .with_max_rate(config.cycle.max_rate);
        let ctx = Context {
            computer_id: config.computer_id.clone(),
            client,
            trust: crate::trust::Trust::load(&layout, &config)?,
            addresses: addresses(config.bind),
            downloads: layout.downloads(),
            work: layout.work(),
            max_unpack: config.max_unpack.map(|size| size.bytes()),
            space: crate::space::Space::disk(
                config
                    .keep_free
                    .map_or(crate::space::DEFAULT_KEEP_FREE, |size| size.bytes()),
            ),
            backoff: Mutex::new(Backoff::load(
                &layout.backoff(),
                config.downloads.backoff.into(),
                config.downloads.backoff_max.into(),
            )),
            notifier: Notifier::new(config.notifier.as_deref()).map_err(|reason| {
                AgentError::Config {
                    path: layout.config(),
                    reason: format!("notifier: {reason}"),
                }
            })?,
            journal: Journal::new(layout.running()),
        };
        let uptime = power::Uptime::new(config.uptime_file.as_deref(), layout.restart_mark());
        let worker = Worker {
            history: History::load(&layout.history())?,
            floors: Floors::load(&layout.floors())?,
            layout,
            ctx,
            timeout: config.cycle.timeout,
            clock: Clock {
                started: Instant::now(),
                epoch: config.cycle.timeout.into(),
            },
            packages: BTreeMap::new(),
            listed: Vec::new(),
            outcomes: BTreeMap::new(),
            keep_outcomes,
            concluded: 0,
            waiting: BTreeMap::new(),
            set_aside: BTreeSet::new(),
            delayed: BTreeMap::new(),
            // `once` is the only caller that keeps outcomes.
            delay: (!keep_outcomes)
                .then(|| Duration::from(config.cycle.cycle_latency).max(MIN_DELAY)),
            unsent: Vec::new(),
            last_send_error: None,
            poll_interval: Duration::from_secs(60),
            macs: power::macs(&config.mac_addresses),
            power_command: config.power_command.clone(),
            uptime,
        };
        Ok((worker, config.cycle))
    }

    /// The last poll's interval.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// What became of each job the polls listed, in the order they first came; an
    /// error if a final report could still not be sent.
    pub(crate) async fn round(mut self) -> Result<Vec<(PackageId, JobKind, Outcome)>, AgentError> {
        self.flush().await;
        if !self.unsent.is_empty() {
            if let Some(e) = self.last_send_error.take() {
                return Err(e);
            }
        }
        let listed = std::mem::take(&mut self.listed);
        Ok(listed
            .into_iter()
            .map(|(id, kind)| {
                let outcome = self
                    .outcomes
                    .remove(&(id.clone(), kind))
                    .unwrap_or_else(|| {
                        Outcome::Waiting(
                            self.waiting
                                .get(&id)
                                .cloned()
                                .unwrap_or_else(|| "not finished in this round".into()),
                        )
                    });
                (id, kind, outcome)
            })
            .collect())
    }

    /// Takes up what a previous run of the agent left in the journal: commands it
    /// started whose reports central has not taken. Each one's report (`ERR_INTERRUPTED`
    /// for a command nobody saw end, once it no longer runs) goes out before the next
    /// poll, and until central takes it the job is not started again.
    pub(crate) async fn recover(&mut self) {
        for entry in self.ctx.journal.recover().await {
            let Some(report) = entry.report else {
                continue;
            };
            let (id, kind) = (entry.package, entry.kind);
            self.remember(&id, kind, &report, None);
            self.concluded += 1;
            if self.keep_outcomes {
                self.outcomes
                    .insert((id.clone(), kind), Outcome::Done(report.code));
            }
            self.unsent.push((id, kind, report));
        }
        // Every command of a previous run has ended now: what it unpacked or worked in
        // under `work/` is nobody's any more.
        sweep(&self.layout.work());
    }

    /// Sends the final reports central has not taken yet.
    pub(crate) async fn flush(&mut self) {
        for (id, kind, report) in std::mem::take(&mut self.unsent) {
            match self.ctx.client.report(&id, &report).await {
                Ok(()) => self.ctx.journal.settle(&id, kind),
                Err(e) if refused_for_good(&e) => {
                    tracing::warn!(package = %id, error = %e, "central refused the final report; dropping it");
                    self.ctx.journal.settle(&id, kind);
                }
                Err(e) => {
                    tracing::warn!(package = %id, error = %e, "central still does not take the final report");
                    self.unsent.push((id, kind, report));
                    self.last_send_error = Some(e);
                }
            }
        }
    }

    /// The job is over: record, forget, report (or keep the report for later).
    /// `manifest`: what a successful `store` install put in place.
    async fn conclude(
        &mut self,
        id: &PackageId,
        kind: JobKind,
        report: StatusReport,
        manifest: Option<Manifest>,
    ) {
        let code = report.code;
        tracing::info!(package = %id, %kind, status = %code, "job finished");
        // Before anything else: should the agent stop now, the next run sends this
        // report instead of starting the command again.
        if let Err(e) = self.ctx.journal.finish(id, kind, &report) {
            tracing::warn!(package = %id, error = %e, "could not record how the command ended");
        }
        self.remember(id, kind, &report, manifest);
        let _ = std::fs::remove_file(first_seen_path(&self.layout, id, kind));
        self.packages.remove(id);
        self.waiting.remove(id);
        self.delayed.remove(id);
        self.concluded += 1;
        if self.keep_outcomes {
            self.outcomes
                .insert((id.clone(), kind), Outcome::Done(code));
        }
        match self.ctx.client.report(id, &report).await {
            Ok(()) => self.ctx.journal.settle(id, kind),
            Err(e) if refused_for_good(&e) => {
                tracing::warn!(package = %id, error = %e, "central refused the final report; dropping it");
                self.ctx.journal.settle(id, kind);
            }
            Err(e) => {
                tracing::warn!(package = %id, error = %e, "could not report to central; trying again later");
                self.unsent.push((id.clone(), kind, report));
                self.last_send_error = Some(e);
            }
        }
    }

    /// The history learns of a success before it is reported: a package that ran is
    /// never run again, even if the report is lost; one uninstalled is installed again
    /// by a later job. Done again for a report recovered from the journal, in case the
    /// agent stopped between the two (recording an installation twice changes nothing).
    fn remember(
        &mut self,
        id: &PackageId,
        kind: JobKind,
        report: &StatusReport,
        manifest: Option<Manifest>,
    ) {
        if report.code != StatusCode::Success {
            return;
        }
        match kind {
            JobKind::Install if manifest.is_none() && self.history.contains(id) => {}
            JobKind::Install => {
                let installed = Installed {
                    at: crate::clock::now(),
                    store: manifest,
                };
                if let Err(e) = self.history.record(id, installed) {
                    tracing::warn!(package = %id, error = %e, "could not record the installation");
                }
            }
            JobKind::Uninstall => {
                if let Err(e) = self.history.remove(id) {
                    tracing::warn!(package = %id, error = %e, "could not take the uninstalled package out of the history");
                }
            }
        }
    }
}

/// Removes everything under `dir` (the agent's `work/`), saying what it could not.
fn sweep(dir: &Path) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot sweep what earlier runs left");
            return;
        }
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        match removed {
            Ok(()) => tracing::info!(path = %path.display(), "removed what an earlier run left"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove what an earlier run left")
            }
        }
    }
}

/// Central answered the report with a client error (4xx): sending it again
/// cannot help — the job is gone (its container deleted, its line validated) —
/// so the report is dropped instead of blocking every later round. Network
/// errors and 5xx are kept and sent again.
fn refused_for_good(e: &AgentError) -> bool {
    matches!(e, AgentError::Api { status, .. } if (400..500).contains(status))
}

impl Worker {
    /// Takes up a poll's list: answers install jobs of installed packages with
    /// `ERR_ALREADY_SETUP`, tracks the others (a job of the other kind than the
    /// one tracked replaces it), and forgets what central no longer lists.
    async fn take_poll(&mut self, packages: Vec<sitecast_common::wire::PolledPackage>) {
        let mut listed = BTreeSet::new();
        for (rank, polled) in packages.into_iter().enumerate() {
            let id = polled.id.clone();
            let kind = polled.kind;
            if !listed.insert(id.clone()) {
                tracing::info!(package = %id, %kind, "a second job of the package in this poll; it comes after the first");
                continue;
            }
            if self.keep_outcomes && !self.listed.contains(&(id.clone(), kind)) {
                self.listed.push((id.clone(), kind));
            }
            if self.unsent.iter().any(|(sent, _, _)| sent == &id) {
                // Its final report is on its way.
                continue;
            }
            if kind == JobKind::Install && self.history.contains(&id) {
                let report = StatusReport {
                    code: StatusCode::ErrAlreadySetup,
                    exit_code: None,
                    output: None,
                    fragments_done: None,
                    sources: Vec::new(),
                    job: polled.job.clone(),
                };
                self.conclude(&id, kind, report, None).await;
                continue;
            }
            let rank = u32::try_from(rank).unwrap_or(u32::MAX);
            match self.packages.get_mut(&id) {
                Some(tracked) if tracked.package.kind() == kind => {
                    tracked.package.update(&self.ctx, polled);
                    tracked.rank = rank;
                }
                tracked => {
                    if let Some(old) = tracked {
                        let old = old.package.kind();
                        tracing::info!(package = %id, was = %old, now = %kind, "the package's job changed; starting the new one");
                        let _ = std::fs::remove_file(first_seen_path(&self.layout, &id, old));
                        self.waiting.remove(&id);
                        self.set_aside.remove(&id);
                        self.delayed.remove(&id);
                    }
                    let first = first_seen(&self.layout, &id, kind).unwrap_or_else(|e| {
                        tracing::warn!(package = %id, error = %e, "cannot remember when the job was first seen");
                        crate::clock::now()
                    });
                    let package = Package::new(&self.ctx, polled, first);
                    let first_seen = self.clock.at(first);
                    self.packages.insert(
                        id,
                        Tracked {
                            package,
                            first_seen,
                            rank,
                        },
                    );
                }
            }
        }
        // Central no longer lists them (assignment or package deleted).
        self.packages.retain(|id, _| listed.contains(id));
        self.waiting.retain(|id, _| listed.contains(id));
        self.delayed.retain(|id, _| listed.contains(id));
    }

    /// The refusal of an install below the version of its name installed here,
    /// unless its job carries central's signed word for the downgrade.
    fn below_floor(&self, package: &Package) -> Option<StatusReport> {
        let info = package.info()?;
        let floor = self.floors.above(info.name(), info.version())?;
        let polled = package.polled();
        let why = match (&polled.downgrade, self.ctx.trust.keys(crate::clock::now())) {
            (None, _) => "its job is not an intended downgrade".to_owned(),
            (Some(ticket), Ok(keys)) => {
                match keyset::verify_downgrade(ticket, keys, &self.ctx.computer_id, &polled.id) {
                    Ok(()) => {
                        tracing::info!(package = %polled.id, %floor, "an intended downgrade");
                        return None;
                    }
                    Err(e) => e.to_string(),
                }
            }
            (Some(_), Err(e)) => e.to_string(),
        };
        Some(StatusReport {
            job: polled.job.clone(),
            ..crate::context::report_with(
                StatusCode::ErrDowngrade,
                format!(
                    "{} {} is older than version {floor} installed here, and {why} (container create --downgrade)",
                    info.name(),
                    info.version()
                ),
            )
        })
    }

    /// The user delayed the package: keep it, and its download, for later.
    fn hold_delayed(&mut self, id: &PackageId, tracked: Tracked) {
        match self.delay {
            None => {
                tracing::info!(package = %id, "the user delayed the package; it waits for a later call");
                self.set_aside.insert(id.clone());
            }
            Some(delay) => {
                tracing::info!(package = %id, ?delay, "the user delayed the package; it waits for a later cycle");
                self.delayed
                    .insert(id.clone(), self.clock.now().saturating_add(delay));
            }
        }
        self.waiting
            .insert(id.clone(), "the user delayed it to a later cycle".into());
        self.packages.insert(id.clone(), tracked);
    }
}

impl Performer for Worker {
    fn now(&self) -> Duration {
        self.clock.now()
    }

    async fn sleep_until(&mut self, at: Duration) {
        tokio::time::sleep(at.saturating_sub(self.clock.now())).await;
    }

    async fn poll(&mut self) -> Result<Duration, AgentError> {
        self.flush().await;
        let poll = self
            .ctx
            .client
            .poll(
                &self.ctx.addresses,
                &self.macs,
                self.uptime.seconds(),
                self.ctx.trust.version(),
            )
            .await?;
        self.poll_interval = Duration::from_secs(poll.poll_interval_s.max(1));
        if let Some(keyset) = &poll.keyset {
            // Before the jobs: their infos may be signed by a key only it lists.
            if let Err(e) = self.ctx.trust.offer(keyset, crate::clock::now()) {
                tracing::error!(error = %e, "kept the key set held");
            }
        }
        self.take_poll(poll.packages).await;
        if let Some(action) = poll.power {
            // The reports of what ran go out first: after a shutdown they could not.
            self.flush().await;
            power::act(self.power_command.as_deref(), action).await;
        }
        Ok(self.poll_interval)
    }

    fn concluded(&self) -> u64 {
        self.concluded
    }

    fn worklist(&mut self, now: Duration) -> Worklist {
        let wall = crate::clock::now();
        let mut list = Worklist::default();
        for (id, tracked) in &self.packages {
            if self.set_aside.contains(id) {
                continue;
            }
            if let Some(&until) = self.delayed.get(id).filter(|until| **until > now) {
                list.recheck_at = Some(list.recheck_at.map_or(until, |r| r.min(until)));
                continue;
            }
            let package = &tracked.package;
            let missing = package.missing();
            let mut priority = package.polled().priority.min(MAX_PRIORITY);
            if missing > 0 {
                let found = deploy::sources(&self.ctx, package, wall);
                if found.sources.is_empty() {
                    priority = HELD_BACK;
                    let why = found.why_none();
                    if self.waiting.get(id) != Some(&why) {
                        tracing::info!(package = %id, %why, "waiting");
                        self.waiting.insert(id.clone(), why);
                    }
                    if let Some(at) = found.changes_at {
                        let at = self.clock.at(at);
                        list.recheck_at = Some(list.recheck_at.map_or(at, |r| r.min(at)));
                    }
                } else {
                    list.workable = true;
                }
            } else {
                list.workable = true;
            }
            list.jobs.push(Job {
                id: id.clone(),
                priority,
                rank: tracked.rank,
                fragments_missing: missing,
                fragment_len: package.fragment_len(),
                first_seen: tracked.first_seen,
            });
        }
        list
    }

    async fn fetch(&mut self, id: &PackageId) -> Fetched {
        let Some(tracked) = self.packages.get_mut(id) else {
            return Fetched::Finished;
        };
        match deploy::fetch_step(&self.ctx, &mut tracked.package).await {
            Step::Fetched(bytes) => {
                self.waiting.remove(id);
                Fetched::Done(bytes)
            }
            Step::Wait(why) => {
                tracing::info!(package = %id, %why, "waiting");
                self.waiting.insert(id.clone(), why);
                Fetched::Failed
            }
            Step::Final(report) => {
                let kind = tracked.package.kind();
                self.conclude(id, kind, report, None).await;
                Fetched::Finished
            }
        }
    }

    async fn install(&mut self, id: &PackageId) {
        let Some(mut tracked) = self.packages.remove(id) else {
            return;
        };
        let kind = tracked.package.kind();
        let restart_timeout = Duration::from_secs(tracked.package.polled().restart_timeout_s);
        let (report, manifest) = match kind {
            JobKind::Install => match self.below_floor(&tracked.package) {
                Some(refused) => (refused, None),
                None => match deploy::install_step(&self.ctx, &mut tracked.package).await {
                    install::Installed::Report(report, manifest) => (report, manifest),
                    install::Installed::Delayed => return self.hold_delayed(id, tracked),
                },
            },
            JobKind::Uninstall => {
                let installed = self.history.get(id);
                let report =
                    uninstall::uninstall_step(&self.ctx, &mut tracked.package, installed).await;
                (report, None)
            }
        };
        let installed = kind == JobKind::Install && report.code == StatusCode::Success;
        let restart = installed && tracked.package.info().is_some_and(|i| i.restart());
        let info = tracked.package.info().cloned();
        if let Some(info) = info.as_ref().filter(|_| installed) {
            if let Err(e) = self.floors.record(info.name(), info.version()) {
                tracing::error!(package = %id, error = %e, "cannot write the version floor down");
            }
        }
        self.conclude(id, kind, report, manifest).await;
        // Only now that the history has it: should the agent die while the user
        // reads the done text, the package is not run again.
        if let Some(info) = info.as_ref().filter(|_| installed) {
            self.ctx.notifier.done(info).await;
        }
        if restart {
            let command = self.power_command.as_deref();
            power::restart(
                command,
                &self.ctx.notifier,
                restart_timeout,
                info.as_ref(),
                &self.uptime,
            )
            .await;
        }
    }

    async fn time_out(&mut self, id: &PackageId) {
        let Some(mut tracked) = self.packages.remove(id) else {
            return;
        };
        let why = self.waiting.get(id).cloned();
        let kind = tracked.package.kind();
        let report =
            deploy::timeout_report(&mut tracked.package, self.timeout, why.as_deref()).await;
        self.conclude(id, kind, report, None).await;
    }

    fn set_aside(&mut self, id: &PackageId) {
        self.set_aside.insert(id.clone());
    }
}

/// Where the first sighting of a job is kept. Package ids never contain `+`, so an
/// uninstall job's file cannot be another package's.
pub(crate) fn first_seen_path(layout: &Layout, id: &PackageId, kind: JobKind) -> PathBuf {
    match kind {
        JobKind::Install => layout.downloads().join(format!("{id}.first-seen")),
        JobKind::Uninstall => layout
            .downloads()
            .join(format!("{id}+uninstall.first-seen")),
    }
}

/// When this agent first saw the job: read from DIR, or now (and written down).
pub(crate) fn first_seen(
    layout: &Layout,
    id: &PackageId,
    kind: JobKind,
) -> Result<Timestamp, AgentError> {
    let path = first_seen_path(layout, id, kind);
    let now = crate::clock::now();
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(at) = text.trim().parse::<Timestamp>() {
            return Ok(at);
        }
    }
    std::fs::create_dir_all(layout.downloads()).map_err(AgentError::io(layout.downloads()))?;
    sitecast_io::write_atomically(&path, now.to_string().as_bytes())?;
    Ok(now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
