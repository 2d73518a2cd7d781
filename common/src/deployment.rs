//! The agent's download cycle (SPEC "Schedules and bandwidth", seed `003`): which package
//! to work on next and when, as a deterministic state machine, and whether it may take
//! a package from central when its relays lack it ([`CentralFallback`]).
//!
//! # OCS's cycle, as Sitecast runs it
//!
//! Like the OCS Inventory NG agent, [`DownloadCycle`] works in *periods* of
//! `DOWNLOAD_PERIOD_LENGTH` *cycles* ([`CycleConfig::period_length`], default 10):
//!
//! - **Which packages, in which cycle.** Cycles are numbered 1 to `period_length`; after
//!   the last one a new period starts again at 1. In cycle `C` a package of priority
//!   `P > 0` is worked on when `C % P == 0`; a package of priority 0 in every cycle. So with
//!   the defaults priority 1 is served in every cycle, priority 5 in cycles 5 and 10, and
//!   priority 10 only in cycle 10. A priority above `period_length` is never served (the
//!   seed's warning about shortening the period): such a package waits for its timeout.
//! - **Turns.** Within a cycle the eligible packages take turns: priority 0 first, then
//!   by [`Job::rank`] (the package's position in central's poll answer, which lists jobs
//!   in the order they should run: higher job-container priority first, then package
//!   priority), then by id. A package's turn lasts until all its fragments are in, and
//!   then it is installed ([`CycleAction::Install`]), or until one fetch fails, and then it
//!   waits for its next eligible cycle, where only the missing fragments are fetched.
//! - **Priority 0.** Priority-0 packages are served before every other package: at the
//!   start of each cycle, and also when one arrives in the middle of a cycle (it gets the
//!   very next fetch). When a priority-0 fetch fails its turn does not end: the cycle
//!   retries the priority-0 packages (after `frag_latency`) and does not move on to the
//!   others. As the seed says, a priority-0 package whose source is down stops the whole
//!   distribution on that computer, until it succeeds or times out; use it with care. With
//!   the default `frag_latency` of 0s the retries follow one another immediately, so the
//!   fetch itself must take its time to fail (connect and read timeouts), or `max_rate`
//!   must be set (see below), or the agent hammers its source.
//! - **`DOWNLOAD_FRAG_LATENCY`** ([`CycleConfig::frag_latency`], 0s in Sitecast, 10s in
//!   OCS): after each fragment, fetched or failed, the next fetch waits that long.
//! - **`DOWNLOAD_CYCLE_LATENCY`** ([`CycleConfig::cycle_latency`], 60s): when every
//!   eligible package has had its turn, the next cycle starts that long after the last
//!   event of the cycle (the failed fetch, or the end of the last install). A cycle in
//!   which nothing is eligible fetches nothing but still lasts `cycle_latency`, so with the
//!   defaults a priority-5 package gets its first fragment 4 minutes after it arrives.
//!   A package listed during the pause waits for the next cycle, as in OCS, where the
//!   agent sleeps.
//! - **`DOWNLOAD_PERIOD_LATENCY`** ([`CycleConfig::period_latency`], 0s): after the last
//!   cycle of a period, added to `cycle_latency` before cycle 1 of the next period.
//! - The latencies are waits between events, not sleeps that add up: the first fetch of a
//!   cycle comes `cycle_latency` after the last event of the previous cycle and no sooner
//!   than `frag_latency` after the last fragment.
//! - **`max_rate`** ([`CycleConfig::max_rate`]): a fetch that started at `s` and moved `b`
//!   bytes delays the next start to at least `s + b / max_rate`. Over any window the bytes
//!   of the fetches started in it are at most `max_rate × window` plus one fragment. A failed
//!   fetch is charged one typical fragment ([`Job::fragment_len`]), since it may have moved
//!   most of one before failing; this also paces retries of a failing priority-0 package.
//! - **Timeout** ([`CycleConfig::timeout`], 7 days): a package still missing fragments at
//!   `first_seen + timeout` is given up: [`CycleAction::TimedOut`], and the agent reports
//!   `ERR_TIMEOUT`. Never before that instant, and the check does not depend on the cycle.
//! - **Install.** A package whose fragments are all in (downloaded now, or found on disk
//!   after a restart) is installed at once, whatever the cycle: unpacking and running are
//!   not network work, and `frag_latency` is a pause *between fragments*. When several are
//!   ready they go in the turn order (priority 0, then rank, then id). The machine does
//!   not know what "install" means: an uninstall job is a job whose only "fragment" is its
//!   signed info, and whose `Install` runs the uninstall.
//! - **Stop and resume.** Like OCS, which stops when everything is installed, the cycle
//!   clock stops while there is nothing left it could fetch. When [`DownloadCycle::set_packages`]
//!   brings work again, the cycle it stopped in starts afresh at that instant, with the
//!   same cycle number.
//!
//! # Driving it
//!
//! Like `quinn-proto`, the machine does no I/O and reads no clock: every method takes
//! `now`, a [`std::time::Duration`] since an epoch of the caller's choice (monotonic;
//! use the time since the Unix epoch if `first_seen` is to survive restarts). The agent
//! calls [`DownloadCycle::set_packages`] after each poll of central, then loops:
//! [`DownloadCycle::poll_action`] and performs the action, reporting its end with
//! [`DownloadCycle::fragment_done`], [`DownloadCycle::fragment_failed`] (fetches) or
//! [`DownloadCycle::package_finished`] (installs, timeouts, and packages it drops); when
//! there is no action it sleeps until [`DownloadCycle::poll_timeout`] (or its next poll of
//! central). Polling at that instant yields an action, unless an event came in between.
//!
//! At most one action is in flight: until its completion event, `poll_action` answers
//! `None`. A completion event for anything else than the action in flight (late,
//! duplicated, wrong id) is ignored, so it can never start a second action.
//! `package_finished` removes the package in any case; the agent must not list a finished
//! package again (its history filters what central still lists).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::grammar::GrammarError;
use crate::ids::PackageId;
use crate::units;

/// The agent's download settings (OCS's `DOWNLOAD_*` options), as written in `agent.toml`:
/// `cycle_latency = "60s"`, `max_rate = "512KiB/s"`. Every field is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CycleConfig {
    /// Cycles per period (`DOWNLOAD_PERIOD_LENGTH`); at least 1. A hand-built 0 is read as 1.
    #[serde(deserialize_with = "period_length")]
    pub period_length: u32,
    /// Pause before the next cycle (`DOWNLOAD_CYCLE_LATENCY`).
    pub cycle_latency: units::Duration,
    /// Pause after each fragment (`DOWNLOAD_FRAG_LATENCY`).
    pub frag_latency: units::Duration,
    /// Extra pause after the last cycle of a period (`DOWNLOAD_PERIOD_LATENCY`).
    pub period_latency: units::Duration,
    /// How long a package may wait for its fragments before `ERR_TIMEOUT`.
    pub timeout: units::Duration,
    /// Cap on fragment bytes per second; `None` (or `"unlimited"`, `"0"`) for no cap.
    #[serde(with = "max_rate", skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u64>,
}

impl Default for CycleConfig {
    fn default() -> Self {
        CycleConfig {
            period_length: 10,
            cycle_latency: units::Duration::from_secs(60),
            frag_latency: units::Duration::ZERO,
            period_latency: units::Duration::ZERO,
            timeout: units::Duration::from_secs(7 * 86_400),
            max_rate: None,
        }
    }
}

fn period_length<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let cycles = u32::deserialize(deserializer)?;
    if cycles == 0 {
        return Err(serde::de::Error::custom(
            "period_length must be at least 1 cycle",
        ));
    }
    Ok(cycles)
}

/// `max_rate` travels in the rate grammar (`"512KiB/s"`, `"100Mbit"`, `"unlimited"`).
mod max_rate {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::units::Rate;

    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        Rate::from_bytes_per_sec(value.unwrap_or(0)).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        Ok(Rate::deserialize(deserializer)?.bytes_per_sec())
    }
}

/// A package the agent still has to download and install, as it stands after a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: PackageId,
    /// OCS priority: 0 is urgent (every cycle, before all others), then 1 (every cycle) to
    /// `period_length` (once per period).
    pub priority: u8,
    /// The package's position in the poll's list (0 first): central lists jobs in the
    /// order they should run, so after priority 0 the eligible packages go by rank.
    pub rank: u32,
    /// Fragments not yet on disk; 0 means ready to install.
    pub fragments_missing: u32,
    /// Size of a typical fragment, charged against `max_rate` when a fetch fails.
    pub fragment_len: u64,
    /// When the agent first learnt of the package, on the clock of `now`.
    pub first_seen: Duration,
}

/// What the agent should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleAction {
    /// Fetch the package's next missing fragment, then report
    /// [`DownloadCycle::fragment_done`] or [`DownloadCycle::fragment_failed`].
    FetchFragment { id: PackageId },
    /// Every fragment is in: unpack, run, report, then [`DownloadCycle::package_finished`].
    Install { id: PackageId },
    /// The package waited longer than the timeout: report `ERR_TIMEOUT`, then
    /// [`DownloadCycle::package_finished`].
    TimedOut { id: PackageId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    /// Ends with `fragment_done` or `fragment_failed`.
    Fetch,
    /// An install or a timeout report; ends with `package_finished`.
    Settle,
}

#[derive(Debug, Clone)]
struct InFlight {
    id: PackageId,
    kind: ActionKind,
    started_at: Duration,
    /// What a failed fetch costs against `max_rate`: taken at the start, since the
    /// package may be dropped from the list before the fetch ends.
    failure_charge: u64,
}

#[derive(Debug, Clone)]
struct JobState {
    priority: u8,
    rank: u32,
    missing: u32,
    fragment_len: u64,
    first_seen: Duration,
    /// An `Install` or `TimedOut` went out: nothing more for this package until it is
    /// finished. Kept across `set_packages`, which may list it again meanwhile.
    settling: bool,
}

impl JobState {
    fn wants_fragments(&self) -> bool {
        !self.settling && self.missing > 0
    }

    /// Where the package stands in a cycle's turn order: urgent first, then by rank
    /// (ties, which central never makes, by id).
    fn turn(&self) -> (bool, u32) {
        (self.priority != 0, self.rank)
    }
}

/// Where the schedule stands: a cycle of a period, and who has had a turn in it.
#[derive(Debug, Clone)]
struct Cursor {
    period: u64,
    cycle: u32,
    /// The cycle may serve its first package from this instant on.
    starts_at: Duration,
    /// Packages whose turn in this cycle is over (a fetch failed).
    served: BTreeSet<PackageId>,
}

/// The agent's download scheduler; see the [module documentation](self) for the rules.
#[derive(Debug, Clone)]
pub struct DownloadCycle {
    config: CycleConfig,
    jobs: BTreeMap<PackageId, JobState>,
    cursor: Cursor,
    in_flight: Option<InFlight>,
    /// Earliest start of the next fetch: `frag_latency` and `max_rate`.
    next_fetch_at: Duration,
    /// The last completion event; a cycle ends at its last event.
    last_event_at: Duration,
    /// The latest `now` seen, so `poll_timeout` never answers a past instant.
    clock: Duration,
}

impl DownloadCycle {
    /// A machine at cycle 1 of period 1, with nothing to do.
    pub fn new(config: CycleConfig) -> Self {
        DownloadCycle {
            config,
            jobs: BTreeMap::new(),
            cursor: Cursor {
                period: 1,
                cycle: 1,
                starts_at: Duration::ZERO,
                served: BTreeSet::new(),
            },
            in_flight: None,
            next_fetch_at: Duration::ZERO,
            last_event_at: Duration::ZERO,
            clock: Duration::ZERO,
        }
    }

    pub fn config(&self) -> &CycleConfig {
        &self.config
    }

    /// The current cycle number, 1 to `period_length`: the cycle under way, or, during a
    /// `cycle_latency` pause, the one about to start.
    pub fn cycle(&self) -> u32 {
        self.cursor.cycle
    }

    /// The current period, counted from 1 since the machine was made.
    pub fn period(&self) -> u64 {
        self.cursor.period
    }

    /// Replaces the work list (after a poll of central). The cycle position, the turns
    /// already taken in this cycle and the action in flight are kept; packages absent from
    /// `jobs` are dropped. With duplicate ids the last entry wins.
    pub fn set_packages(&mut self, now: Duration, jobs: Vec<Job>) {
        self.observe(now);
        let was_idle = !self.has_schedulable_work();
        let mut next = BTreeMap::new();
        for job in jobs {
            let settling = self.jobs.get(&job.id).is_some_and(|state| state.settling);
            next.insert(
                job.id,
                JobState {
                    priority: job.priority,
                    rank: job.rank,
                    missing: job.fragments_missing,
                    fragment_len: job.fragment_len,
                    first_seen: job.first_seen,
                    settling,
                },
            );
        }
        self.jobs = next;
        self.cursor.served.retain(|id| self.jobs.contains_key(id));
        if was_idle && self.has_schedulable_work() {
            // The cycle clock stood still while there was nothing to fetch; without this,
            // the cycles "missed" meanwhile would all run at once.
            self.cursor.starts_at = self.cursor.starts_at.max(now);
            self.cursor.served.clear();
        }
    }

    /// The fetch in flight for `id` brought `bytes` bytes.
    pub fn fragment_done(&mut self, now: Duration, id: &PackageId, bytes: u64) {
        self.observe(now);
        let Some(action) = self.complete(now, id, ActionKind::Fetch) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(id) {
            job.missing = job.missing.saturating_sub(1);
        }
        self.pace(now, action.started_at, bytes);
        self.end_cycle_if_over(now);
    }

    /// The fetch in flight for `id` failed: the package's turn in this cycle is over,
    /// unless its priority is 0.
    pub fn fragment_failed(&mut self, now: Duration, id: &PackageId) {
        self.observe(now);
        let Some(action) = self.complete(now, id, ActionKind::Fetch) else {
            return;
        };
        if self.jobs.get(id).is_some_and(|job| job.priority != 0) {
            self.cursor.served.insert(id.clone());
        }
        self.pace(now, action.started_at, action.failure_charge);
        self.end_cycle_if_over(now);
    }

    /// The package is installed, or its failure or timeout reported: forget it. Also how
    /// the agent drops a package whose fetch it abandoned.
    pub fn package_finished(&mut self, now: Duration, id: &PackageId) {
        self.observe(now);
        if self
            .in_flight
            .as_ref()
            .is_some_and(|action| &action.id == id)
        {
            self.in_flight = None;
            self.last_event_at = now;
        }
        self.jobs.remove(id);
        self.cursor.served.remove(id);
        self.end_cycle_if_over(now);
    }

    /// The action to perform now, if any. `None` while an action is in flight, or until
    /// [`DownloadCycle::poll_timeout`].
    pub fn poll_action(&mut self, now: Duration) -> Option<CycleAction> {
        self.observe(now);
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(id) = self.ready_to_install() {
            return Some(self.start(now, id, ActionKind::Settle));
        }
        if let Some(id) = self.timed_out(now) {
            return Some(self.start(now, id, ActionKind::Settle));
        }
        self.run_empty_cycles(now);
        if self.cursor.starts_at > now || self.next_fetch_at > now {
            return None;
        }
        let id = self.candidate(self.cursor.cycle, &self.cursor.served)?;
        Some(self.start(now, id, ActionKind::Fetch))
    }

    /// When to call [`DownloadCycle::poll_action`] next (never before the latest `now`
    /// seen). `None` while an action is in flight, or when nothing will ever happen
    /// without a new event (an empty work list).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.in_flight.is_some() {
            return None;
        }
        if self.ready_to_install().is_some() {
            return Some(self.clock);
        }
        let deadline = self
            .jobs
            .values()
            .filter(|job| job.wants_fragments())
            .map(|job| self.deadline(job))
            .min();
        let fetch = self.next_fetch();
        let earliest = match (deadline, fetch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        earliest.map(|at| at.max(self.clock))
    }

    fn observe(&mut self, now: Duration) {
        self.clock = self.clock.max(now);
    }

    fn start(&mut self, now: Duration, id: PackageId, kind: ActionKind) -> CycleAction {
        let action = match kind {
            ActionKind::Fetch => CycleAction::FetchFragment { id: id.clone() },
            ActionKind::Settle => {
                let complete = self.jobs.get(&id).is_some_and(|job| job.missing == 0);
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.settling = true;
                }
                if complete {
                    CycleAction::Install { id: id.clone() }
                } else {
                    CycleAction::TimedOut { id: id.clone() }
                }
            }
        };
        let failure_charge = self.jobs.get(&id).map_or(0, |job| job.fragment_len);
        self.in_flight = Some(InFlight {
            id,
            kind,
            started_at: now,
            failure_charge,
        });
        action
    }

    /// Takes the action in flight if the event is its completion.
    fn complete(&mut self, now: Duration, id: &PackageId, kind: ActionKind) -> Option<InFlight> {
        if !self
            .in_flight
            .as_ref()
            .is_some_and(|action| &action.id == id && action.kind == kind)
        {
            return None;
        }
        self.last_event_at = now;
        self.in_flight.take()
    }

    /// Moves to the next cycle as soon as this one has given every turn, so that a package
    /// listed during the `cycle_latency` pause waits for the next cycle, as in OCS. An
    /// install still to come belongs to this cycle: the pause follows it.
    fn end_cycle_if_over(&mut self, now: Duration) {
        if self.in_flight.is_none() && self.ready_to_install().is_none() {
            self.run_empty_cycles(now);
        }
    }

    fn pace(&mut self, now: Duration, started_at: Duration, bytes: u64) {
        let after_latency = now.saturating_add(self.config.frag_latency.into());
        let after_rate = match self.config.max_rate {
            Some(rate) if rate > 0 => started_at.saturating_add(transfer_time(bytes, rate)),
            _ => Duration::ZERO,
        };
        self.next_fetch_at = after_latency.max(after_rate);
    }

    fn ready_to_install(&self) -> Option<PackageId> {
        self.jobs
            .iter()
            .filter(|(_, job)| !job.settling && job.missing == 0)
            .min_by_key(|(id, job)| (job.turn(), *id))
            .map(|(id, _)| id.clone())
    }

    fn timed_out(&self, now: Duration) -> Option<PackageId> {
        self.jobs
            .iter()
            .filter(|(_, job)| job.wants_fragments() && self.deadline(job) <= now)
            .min_by_key(|(id, job)| (job.turn(), *id))
            .map(|(id, _)| id.clone())
    }

    fn deadline(&self, job: &JobState) -> Duration {
        job.first_seen.saturating_add(self.config.timeout.into())
    }

    fn period_length(&self) -> u32 {
        self.config.period_length.max(1)
    }

    fn eligible(priority: u8, cycle: u32) -> bool {
        priority == 0 || cycle.is_multiple_of(u32::from(priority))
    }

    /// Some package can be fetched in some cycle of a period: the cycles have to turn.
    fn has_schedulable_work(&self) -> bool {
        let period_length = self.period_length();
        self.jobs.values().any(|job| {
            job.wants_fragments() && (job.priority == 0 || u32::from(job.priority) <= period_length)
        })
    }

    /// The package whose turn it is in `cycle`: priority 0 first, then rank, then id.
    fn candidate(&self, cycle: u32, served: &BTreeSet<PackageId>) -> Option<PackageId> {
        self.jobs
            .iter()
            .filter(|(id, job)| {
                job.wants_fragments()
                    && Self::eligible(job.priority, cycle)
                    && !served.contains(*id)
            })
            .min_by_key(|(id, job)| (job.turn(), *id))
            .map(|(id, _)| id.clone())
    }

    /// The cycle after one that ended its turns: (period, cycle, start).
    fn following(&self, period: u64, cycle: u32, starts_at: Duration) -> (u64, u32, Duration) {
        let ended_at = starts_at.max(self.last_event_at);
        let after_cycle = ended_at.saturating_add(self.config.cycle_latency.into());
        if cycle >= self.period_length() {
            let after_period = after_cycle.saturating_add(self.config.period_latency.into());
            (period.saturating_add(1), 1, after_period)
        } else {
            (period, cycle + 1, after_cycle)
        }
    }

    /// Moves past the cycles that have started by `now` and have no turn left to give.
    fn run_empty_cycles(&mut self, now: Duration) {
        if !self.has_schedulable_work() {
            return;
        }
        // Some package is eligible within any `period_length` consecutive cycles, so the
        // bound is never reached; it is there so no state can make this loop forever.
        for _ in 0..=self.period_length() {
            if self.cursor.starts_at > now
                || self
                    .candidate(self.cursor.cycle, &self.cursor.served)
                    .is_some()
            {
                return;
            }
            let (period, cycle, starts_at) =
                self.following(self.cursor.period, self.cursor.cycle, self.cursor.starts_at);
            self.cursor = Cursor {
                period,
                cycle,
                starts_at,
                served: BTreeSet::new(),
            };
        }
    }

    /// When the next fetch may start, walking the coming cycles the way
    /// [`DownloadCycle::run_empty_cycles`] will when the time comes.
    fn next_fetch(&self) -> Option<Duration> {
        if !self.has_schedulable_work() {
            return None;
        }
        let none_served = BTreeSet::new();
        let (mut period, mut cycle, mut starts_at) =
            (self.cursor.period, self.cursor.cycle, self.cursor.starts_at);
        let mut served = &self.cursor.served;
        for _ in 0..=self.period_length() {
            if self.candidate(cycle, served).is_some() {
                return Some(starts_at.max(self.next_fetch_at));
            }
            (period, cycle, starts_at) = self.following(period, cycle, starts_at);
            served = &none_served;
        }
        None
    }
}

/// How long `bytes` take at `rate` bytes per second, rounded up to the nanosecond so the
/// cap holds exactly.
fn transfer_time(bytes: u64, rate: u64) -> Duration {
    let secs = bytes / rate;
    let nanos = (u128::from(bytes % rate) * 1_000_000_000).div_ceil(u128::from(rate));
    // `nanos` is at most 1e9, as `bytes % rate < rate`.
    let nanos = u64::try_from(nanos).unwrap_or(1_000_000_000);
    Duration::from_secs(secs).saturating_add(Duration::from_nanos(nanos))
}

/// Whether an agent whose relays lack a package may download it from central
/// (`never`, `always`, or `after:DURATION` of waiting, as SCCM does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CentralFallback {
    #[default]
    Never,
    Always,
    After(units::Duration),
}

impl FromStr for CentralFallback {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        match s {
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            _ => match s.strip_prefix("after:") {
                Some(d) => Ok(Self::After(d.parse()?)),
                None => Err(GrammarError {
                    grammar: "fallback",
                    token: s.to_owned(),
                    reason: "expected never, always or after:DURATION".into(),
                }),
            },
        }
    }
}

impl fmt::Display for CentralFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("never"),
            Self::Always => f.write_str("always"),
            Self::After(d) => write!(f, "after:{d}"),
        }
    }
}

impl TryFrom<String> for CentralFallback {
    type Error = GrammarError;
    fn try_from(s: String) -> Result<Self, GrammarError> {
        s.parse()
    }
}

impl From<CentralFallback> for String {
    fn from(f: CentralFallback) -> String {
        f.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
