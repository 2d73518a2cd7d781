//! The agent's download cycle, driven: [`DownloadCycle`] (the pure machine in
//! `sitecast-common`) decides which package to work on and when; [`drive`]
//! performs what it decides through a [`Performer`] and feeds the results back.
//!
//! The loop: poll central when it is due (at the interval central hands out),
//! give the machine the work list ([`Performer::worklist`], refreshed before every
//! decision, so fragments counts, sources and new packages are always current),
//! perform its action (fetch one fragment, install, report a timeout), and when
//! there is none sleep until the machine's `poll_timeout`, the next poll of
//! central or the moment a package held back for want of a source may get one,
//! whichever comes first.
//!
//! A package without any source for now (its relay lacks it, every relay of its
//! subnet is in back-off) stays in the list, but with a priority no cycle serves
//! ([`HELD_BACK`]): the machine does not turn its cycles for it, yet still times it
//! out. It is back at its own priority as soon as a source appears (after a poll,
//! when a back-off ends, when `central_fallback = after:…` opens central).
//!
//! [`Mode::Once`] is `sitecast-agent once`: rounds of one poll each, the same
//! machine with no latencies and a ten-cycle period (every priority from 0 to 10 has
//! its turn, urgent first, then in the poll's order), a package whose fetch fails is
//! set aside for the rest of the call, and a round ends when nothing left can be worked
//! on now. Central hands out only the next job of each job container, the following one
//! once the previous one has reported, so a round that ended some job (a final report)
//! is followed by another poll and round, up to [`MAX_ONCE_ROUNDS`]: one call works
//! through a container's whole sequence. Only `max_rate` may make it wait.
//!
//! Time is the performer's: a monotonic [`Duration`] since an epoch of its choice,
//! so the tests drive the loop on a virtual clock.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::time::Duration;

use sitecast_common::deployment::{CycleAction, CycleConfig, DownloadCycle, Job};
use sitecast_common::ids::PackageId;
use sitecast_common::units;

use crate::error::AgentError;

/// The priority of a package that has no source for now: above every period
/// the configuration allows ([`crate::config::MAX_PERIOD_LENGTH`]), so never served.
pub const HELD_BACK: u8 = u8::MAX;

/// The highest priority a package may have (SPEC "Formats"); a `once` round's
/// period is that long, so every package has a turn.
pub const MAX_PRIORITY: u8 = 10;

/// A fetch that fails is counted as lasting at least this long, so a package
/// whose sources fail at once (an urgent one is retried without end) cannot make
/// the agent hammer them.
pub const MIN_FAILED_FETCH: Duration = Duration::from_secs(1);

/// When a poll of central fails, the next one is this much later, or the poll
/// interval central handed out last if that is shorter: a failure never puts the
/// next poll off beyond when it would have come anyway.
pub const POLL_RETRY: Duration = Duration::from_secs(30);

/// The most polls one [`Mode::Once`] call makes: a bound, should central keep
/// handing out new jobs (or the same one again) after every report.
pub const MAX_ONCE_ROUNDS: u32 = 32;

/// `run` or `once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Poll at central's interval and follow the configured cycle, forever.
    Run,
    /// Everything that can be done now in turn order, no latencies; polls again
    /// while jobs end (see [`MAX_ONCE_ROUNDS`]).
    Once,
}

/// The work list, as it stands now.
#[derive(Debug, Clone, Default)]
pub struct Worklist {
    /// Every package still to deploy (held-back ones at priority [`HELD_BACK`]).
    pub jobs: Vec<Job>,
    /// Some package can be worked on now: it has a source, or all its fragments.
    pub workable: bool,
    /// When a held-back package may get a source without a new poll.
    pub recheck_at: Option<Duration>,
}

/// How a fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The info or a fragment is in: this many bytes.
    Done(u64),
    /// Nothing fetched (no source, or every source failed); the package waits.
    Failed,
    /// The package is over (a final status was reported, or it is gone).
    Finished,
}

/// What the driver needs done. Errors stay inside: a performer logs them and
/// answers what became of the step.
pub trait Performer {
    /// The monotonic time, on the clock of the jobs' `first_seen`.
    fn now(&self) -> Duration;
    /// Returns at `at` (or at once if that has passed).
    fn sleep_until(&mut self, at: Duration) -> impl Future<Output = ()>;
    /// Polls central; the interval until the next poll.
    fn poll(&mut self) -> impl Future<Output = Result<Duration, AgentError>>;
    /// The packages still to deploy.
    fn worklist(&mut self, now: Duration) -> Worklist;
    /// Fetches the package's info, if it is not known, else its next missing fragment.
    fn fetch(&mut self, id: &PackageId) -> impl Future<Output = Fetched>;
    /// Rebuilds, verifies, unpacks, runs, reports and forgets the package.
    fn install(&mut self, id: &PackageId) -> impl Future<Output = ()>;
    /// Reports `ERR_TIMEOUT` and forgets the package.
    fn time_out(&mut self, id: &PackageId) -> impl Future<Output = ()>;
    /// [`Mode::Once`]: the package's fetch failed; leave it out of the rest of the call.
    fn set_aside(&mut self, id: &PackageId);
    /// How many jobs have ended with a final report so far (at a poll too, e.g.
    /// `ERR_ALREADY_SETUP`): a [`Mode::Once`] round that ended one polls again.
    fn concluded(&self) -> u64;
}

/// The machine's settings for `mode`: `once` keeps only the timeout and the rate.
pub fn effective(config: CycleConfig, mode: Mode) -> CycleConfig {
    match mode {
        Mode::Run => config,
        Mode::Once => CycleConfig {
            period_length: u32::from(MAX_PRIORITY),
            cycle_latency: units::Duration::ZERO,
            frag_latency: units::Duration::ZERO,
            period_latency: units::Duration::ZERO,
            ..config
        },
    }
}

/// Runs the cycle until `shutdown` (or, in [`Mode::Once`], until a round ends no job,
/// or after [`MAX_ONCE_ROUNDS`] rounds). Only a failed poll in [`Mode::Once`] is an
/// error; in [`Mode::Run`] it is logged and the poll retried after [`POLL_RETRY`]
/// (or the last interval central handed out, if shorter), the cycle going on meanwhile.
pub async fn drive<P: Performer>(
    performer: &mut P,
    config: CycleConfig,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut cycle = DownloadCycle::new(effective(config, mode));
    let mut next_poll = Some(performer.now());
    let mut rounds = 0u32;
    let mut concluded_before = performer.concluded();
    // An agent told to poll every few seconds must not wait 30 after one failure
    // (central restarting, say): its jobs would stall that long.
    let mut retry = POLL_RETRY;
    loop {
        if next_poll.is_some_and(|due| performer.now() >= due) {
            let polled = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                polled = performer.poll() => polled,
            };
            let after = match polled {
                Ok(interval) => {
                    retry = interval.min(POLL_RETRY);
                    interval
                }
                Err(e) if mode == Mode::Once => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "poll failed");
                    retry
                }
            };
            next_poll = (mode == Mode::Run).then(|| performer.now().saturating_add(after));
            rounds += 1;
        }
        let now = performer.now();
        let list = performer.worklist(now);
        cycle.set_packages(now, list.jobs);
        if let Some(action) = cycle.poll_action(now) {
            if perform(performer, &mut cycle, action, mode, shutdown.as_mut())
                .await
                .is_break()
            {
                return Ok(());
            }
            continue;
        }
        let wake = match mode {
            Mode::Once if list.workable => cycle.poll_timeout(),
            Mode::Once => None,
            Mode::Run => [cycle.poll_timeout(), next_poll, list.recheck_at]
                .into_iter()
                .flatten()
                .min(),
        };
        let Some(wake) = wake else {
            // Nothing left that can be done now: the round is over.
            if mode == Mode::Once {
                let concluded = performer.concluded();
                if concluded > concluded_before {
                    if rounds < MAX_ONCE_ROUNDS {
                        // Central may hand out the next job of a container now.
                        concluded_before = concluded;
                        next_poll = Some(now);
                        continue;
                    }
                    tracing::info!(rounds, "stopping after the most polls one `once` makes");
                }
            }
            return Ok(());
        };
        // Never spin: the machine promises an action at its timeout, but a recheck
        // can come a hair early.
        let wake = wake.max(now.saturating_add(Duration::from_millis(1)));
        tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok(()),
            () = performer.sleep_until(wake) => {}
        }
    }
}

/// Performs one action and reports its end to the machine. `Break`: shut down.
async fn perform<P: Performer, S: Future<Output = ()>>(
    performer: &mut P,
    cycle: &mut DownloadCycle,
    action: CycleAction,
    mode: Mode,
    mut shutdown: Pin<&mut S>,
) -> ControlFlow<()> {
    match action {
        CycleAction::FetchFragment { id } => {
            let started = performer.now();
            // A fetch may be cut short: what it had not verified and renamed is fetched again.
            let fetched = tokio::select! {
                biased;
                () = shutdown.as_mut() => return ControlFlow::Break(()),
                fetched = performer.fetch(&id) => fetched,
            };
            match fetched {
                Fetched::Done(bytes) => cycle.fragment_done(performer.now(), &id, bytes),
                Fetched::Finished => cycle.package_finished(performer.now(), &id),
                Fetched::Failed if mode == Mode::Once => {
                    performer.set_aside(&id);
                    cycle.package_finished(performer.now(), &id);
                }
                Fetched::Failed => {
                    let floor = started.saturating_add(MIN_FAILED_FETCH);
                    if performer.now() < floor {
                        tokio::select! {
                            biased;
                            () = shutdown.as_mut() => return ControlFlow::Break(()),
                            () = performer.sleep_until(floor) => {}
                        }
                    }
                    cycle.fragment_failed(performer.now(), &id);
                }
            }
        }
        // Installs are never cut short: a command runs to its end or its own timeout.
        CycleAction::Install { id } => {
            performer.install(&id).await;
            cycle.package_finished(performer.now(), &id);
        }
        CycleAction::TimedOut { id } => {
            performer.time_out(&id).await;
            cycle.package_finished(performer.now(), &id);
        }
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
