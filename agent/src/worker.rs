//! The agent's real [`Performer`]: polls central, keeps what it knows of each
//! package it was given ([`Package`]), and performs the cycle's steps with
//! [`crate::deploy`]. It also remembers when it first saw each package
//! (`DIR/downloads/<package>.first-seen`, a wall-clock timestamp, so the
//! `timeout` and `central_fallback = after:…` count across restarts) and the
//! final reports central could not take yet (sent again before the next poll).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sitecast_common::deployment::{CycleConfig, Job};
use sitecast_common::ids::PackageId;
use sitecast_common::status::StatusCode;
use sitecast_common::units;
use sitecast_common::wire::StatusReport;

use crate::backoff::Backoff;
use crate::client::{Client, Deadlines};
use crate::config::{AgentConfig, Layout};
use crate::cycle::{Fetched, Performer, Worklist, HELD_BACK, MAX_PRIORITY};
use crate::deploy::{self, Context, Outcome, Package, Step};
use crate::error::AgentError;
use crate::history::History;
use crate::{addresses, fsutil, unpack};

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
        let ahead = wall.duration_since(Timestamp::now());
        if ahead.is_negative() {
            now.saturating_sub(ahead.unsigned_abs())
        } else {
            now.saturating_add(ahead.unsigned_abs())
        }
    }
}

struct Tracked {
    package: Package,
    /// `first_seen` on the cycle's clock.
    first_seen: Duration,
}

/// An agent's state between the cycle's steps.
pub(crate) struct Worker {
    layout: Layout,
    ctx: Context,
    history: History,
    timeout: units::Duration,
    clock: Clock,
    packages: BTreeMap<PackageId, Tracked>,
    /// The last poll's packages, in its order (priority, then id).
    listed: Vec<PackageId>,
    outcomes: BTreeMap<PackageId, Outcome>,
    /// Why each package could not progress, last time it could not.
    waiting: BTreeMap<PackageId, String>,
    set_aside: BTreeSet<PackageId>,
    /// Final reports central did not take; sent again before each poll.
    unsent: Vec<(PackageId, StatusReport)>,
    last_send_error: Option<AgentError>,
    poll_interval: Duration,
}

impl Worker {
    /// Loads DIR; the cycle's settings come with it.
    pub(crate) fn open(dir: &Path) -> Result<(Self, CycleConfig), AgentError> {
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
            keys: config.keys()?,
            addresses: addresses(config.bind),
            downloads: layout.downloads(),
            work: layout.work(),
            limits: unpack::UnpackLimits {
                max_bytes: config.max_unpack.bytes(),
                ..Default::default()
            },
            backoff: Mutex::new(Backoff::load(
                &layout.backoff(),
                config.downloads.backoff.into(),
                config.downloads.backoff_max.into(),
            )),
        };
        let worker = Worker {
            history: History::load(&layout.history())?,
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
            waiting: BTreeMap::new(),
            set_aside: BTreeSet::new(),
            unsent: Vec::new(),
            last_send_error: None,
            poll_interval: Duration::from_secs(60),
        };
        Ok((worker, config.cycle))
    }

    /// The last poll's interval.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// What became of each package of the last poll, in its order; an error if a
    /// final report could still not be sent.
    pub(crate) async fn round(mut self) -> Result<Vec<(PackageId, Outcome)>, AgentError> {
        self.flush().await;
        if !self.unsent.is_empty() {
            if let Some(e) = self.last_send_error.take() {
                return Err(e);
            }
        }
        let listed = std::mem::take(&mut self.listed);
        Ok(listed
            .into_iter()
            .map(|id| {
                let outcome = self.outcomes.remove(&id).unwrap_or_else(|| {
                    Outcome::Waiting(
                        self.waiting
                            .remove(&id)
                            .unwrap_or_else(|| "not finished in this round".into()),
                    )
                });
                (id, outcome)
            })
            .collect())
    }

    /// Sends the final reports central has not taken yet.
    pub(crate) async fn flush(&mut self) {
        for (id, report) in std::mem::take(&mut self.unsent) {
            if let Err(e) = self.ctx.client.report(&id, &report).await {
                tracing::warn!(package = %id, error = %e, "central still does not take the final report");
                self.unsent.push((id, report));
                self.last_send_error = Some(e);
            }
        }
    }

    /// The package is over: record, forget, report (or keep the report for later).
    async fn conclude(&mut self, id: &PackageId, report: StatusReport) {
        let code = report.code;
        tracing::info!(package = %id, status = %code, "deployment finished");
        if code == StatusCode::Success {
            // Before the report: a package that ran is never run again, even if
            // the report is lost.
            if let Err(e) = self.history.record(id, Timestamp::now()) {
                tracing::warn!(package = %id, error = %e, "could not record the installation");
            }
        }
        let _ = std::fs::remove_file(first_seen_path(&self.layout, id));
        self.packages.remove(id);
        self.waiting.remove(id);
        self.outcomes.insert(id.clone(), Outcome::Done(code));
        if let Err(e) = self.ctx.client.report(id, &report).await {
            tracing::warn!(package = %id, error = %e, "could not report to central; trying again later");
            self.unsent.push((id.clone(), report));
            self.last_send_error = Some(e);
        }
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
        let poll = self.ctx.client.poll(&self.ctx.addresses).await?;
        self.poll_interval = Duration::from_secs(poll.poll_interval_s.max(1));
        let mut listed = Vec::new();
        for polled in poll.packages {
            let id = polled.id.clone();
            listed.push(id.clone());
            if self.unsent.iter().any(|(sent, _)| sent == &id) {
                // Its final report is on its way.
                continue;
            }
            if self.history.contains(&id) {
                let report = StatusReport {
                    code: StatusCode::ErrAlreadySetup,
                    exit_code: None,
                    output: None,
                    fragments_done: None,
                    sources: Vec::new(),
                };
                self.conclude(&id, report).await;
                continue;
            }
            match self.packages.get_mut(&id) {
                Some(tracked) => tracked.package.update(&self.ctx, polled),
                None => {
                    let first = first_seen(&self.layout, &id).unwrap_or_else(|e| {
                        tracing::warn!(package = %id, error = %e, "cannot remember when the package was first seen");
                        Timestamp::now()
                    });
                    let package = Package::new(&self.ctx, polled, first);
                    let first_seen = self.clock.at(first);
                    self.packages.insert(
                        id,
                        Tracked {
                            package,
                            first_seen,
                        },
                    );
                }
            }
        }
        // Central no longer lists them (assignment or package deleted).
        self.packages.retain(|id, _| listed.contains(id));
        self.waiting.retain(|id, _| listed.contains(id));
        self.listed = listed;
        Ok(self.poll_interval)
    }

    fn worklist(&mut self, _now: Duration) -> Worklist {
        let wall = Timestamp::now();
        let mut list = Worklist::default();
        for (id, tracked) in &self.packages {
            if self.set_aside.contains(id) {
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
                self.conclude(id, report).await;
                Fetched::Finished
            }
        }
    }

    async fn install(&mut self, id: &PackageId) {
        let Some(mut tracked) = self.packages.remove(id) else {
            return;
        };
        let report = deploy::install_step(&self.ctx, &mut tracked.package).await;
        self.conclude(id, report).await;
    }

    async fn time_out(&mut self, id: &PackageId) {
        let Some(mut tracked) = self.packages.remove(id) else {
            return;
        };
        let why = self.waiting.get(id).cloned();
        let report =
            deploy::timeout_report(&mut tracked.package, self.timeout, why.as_deref()).await;
        self.conclude(id, report).await;
    }

    fn set_aside(&mut self, id: &PackageId) {
        self.set_aside.insert(id.clone());
    }
}

pub(crate) fn first_seen_path(layout: &Layout, id: &PackageId) -> PathBuf {
    layout.downloads().join(format!("{id}.first-seen"))
}

/// When this agent first saw the package: read from DIR, or now (and written down).
pub(crate) fn first_seen(layout: &Layout, id: &PackageId) -> Result<Timestamp, AgentError> {
    let path = first_seen_path(layout, id);
    let now = Timestamp::now();
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(at) = text.trim().parse::<Timestamp>() {
            return Ok(at);
        }
    }
    std::fs::create_dir_all(layout.downloads()).map_err(AgentError::io(layout.downloads()))?;
    fsutil::write_atomically(&path, now.to_string().as_bytes())?;
    Ok(now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The timeout and `central_fallback = after:…` count from the first poll
    /// that listed the package, and that moment survives a restart (it is in DIR).
    #[test]
    fn the_first_sighting_is_kept_in_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let id: PackageId = "app-1".parse().unwrap();
        let first = first_seen(&layout, &id).unwrap();
        let path = first_seen_path(&layout, &id);
        let text = std::fs::read_to_string(&path).unwrap();
        // A later poll (or a restarted agent) does not move the first sighting.
        assert_eq!(first_seen(&layout, &id).unwrap(), first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let two_hours_ago = Timestamp::now() - jiff::SignedDuration::from_hours(2);
        std::fs::write(&path, two_hours_ago.to_string()).unwrap();
        assert_eq!(first_seen(&layout, &id).unwrap(), two_hours_ago);
        // Another package has its own; a garbled file starts afresh.
        let other: PackageId = "app-2".parse().unwrap();
        assert!(first_seen(&layout, &other).unwrap() >= first);
        std::fs::write(first_seen_path(&layout, &other), "yesterday").unwrap();
        let again = first_seen(&layout, &other).unwrap();
        assert!(again >= first, "{again}");
    }

    /// Wall-clock sightings map onto the cycle's monotonic clock, and one older
    /// than the timeout is already past its deadline.
    #[test]
    fn wall_clock_sightings_map_onto_the_cycle_clock() {
        let week = Duration::from_secs(7 * 86_400);
        let clock = Clock {
            started: Instant::now(),
            epoch: week,
        };
        let now = clock.now();
        assert!(now >= week);
        let hour_ago = clock.at(Timestamp::now() - jiff::SignedDuration::from_hours(1));
        let expected = now - Duration::from_secs(3600);
        assert!(
            hour_ago.abs_diff(expected) < Duration::from_secs(5),
            "{hour_ago:?} vs {expected:?}"
        );
        let in_a_minute = clock.at(Timestamp::now() + jiff::SignedDuration::from_mins(1));
        assert!(in_a_minute > now + Duration::from_secs(55));
        let long_ago = clock.at(Timestamp::now() - jiff::SignedDuration::from_hours(24 * 30));
        assert_eq!(long_ago, Duration::ZERO);
        assert!(long_ago + week <= clock.now());
    }
}
