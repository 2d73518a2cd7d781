//! The driver on a virtual clock, with a fake performer: which action comes
//! when, polls, held-back packages, timeouts, retries, and `once` rounds.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::task::Poll;

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn pid(name: &str) -> PackageId {
    name.parse().unwrap()
}

#[derive(Debug, Clone)]
struct FakeJob {
    priority: u8,
    missing: u32,
    first_seen: Duration,
    /// No source until then (`Duration::MAX`: never).
    held_until: Option<Duration>,
    /// Every fetch fails.
    failing: bool,
}

fn job(priority: u8, missing: u32) -> FakeJob {
    FakeJob {
        priority,
        missing,
        first_seen: Duration::ZERO,
        held_until: None,
        failing: false,
    }
}

/// A performer on a virtual clock: sleeping jumps the clock; at `horizon` it
/// raises the shutdown flag. Everything it does is logged with the time.
struct Fake {
    now: Duration,
    horizon: Duration,
    stop: Rc<Cell<bool>>,
    /// What each poll adds (the last poll's list is repeated).
    polls: VecDeque<Vec<(&'static str, FakeJob)>>,
    failing_polls: u32,
    /// Polls that succeed before the `failing_polls` fail.
    polls_before_failing: u32,
    poll_interval: Duration,
    fetch_time: Duration,
    jobs: BTreeMap<PackageId, FakeJob>,
    /// Each package's position in the last poll's list.
    ranks: BTreeMap<PackageId, u32>,
    /// Installed or timed out: central lists them no more.
    done: BTreeSet<PackageId>,
    aside: BTreeSet<PackageId>,
    log: Vec<String>,
    sleeps: u32,
}

impl Fake {
    fn new(polls: Vec<Vec<(&'static str, FakeJob)>>) -> Self {
        Fake {
            now: Duration::ZERO,
            horizon: secs(100_000),
            stop: Rc::new(Cell::new(false)),
            polls: polls.into(),
            failing_polls: 0,
            polls_before_failing: 0,
            poll_interval: secs(100_000),
            fetch_time: Duration::ZERO,
            jobs: BTreeMap::new(),
            ranks: BTreeMap::new(),
            done: BTreeSet::new(),
            aside: BTreeSet::new(),
            log: Vec::new(),
            sleeps: 0,
        }
    }

    fn note(&mut self, what: &str, id: &PackageId) {
        let line = format!("{}s {what} {id}", self.now.as_secs_f64());
        self.log.push(line.trim_end().to_owned());
    }

    /// Drives until the horizon (or the end of a `once` round).
    async fn drive(&mut self, config: CycleConfig, mode: Mode) -> Result<(), AgentError> {
        let stop = Rc::clone(&self.stop);
        let shutdown = std::future::poll_fn(move |_| {
            if stop.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        drive(self, config, mode, shutdown).await
    }
}

impl Performer for Fake {
    fn now(&self) -> Duration {
        self.now
    }

    async fn sleep_until(&mut self, at: Duration) {
        self.sleeps += 1;
        if at >= self.horizon {
            self.now = self.now.max(self.horizon);
            self.stop.set(true);
        } else {
            self.now = self.now.max(at);
        }
    }

    async fn poll(&mut self) -> Result<Duration, AgentError> {
        if self.polls_before_failing > 0 {
            self.polls_before_failing -= 1;
        } else if self.failing_polls > 0 {
            self.failing_polls -= 1;
            self.note("poll failed", &pid("central"));
            return Err(AgentError::Api {
                status: 503,
                message: "central is down".into(),
            });
        }
        self.note("poll", &pid("central"));
        let list = if self.polls.len() > 1 {
            self.polls.pop_front()
        } else {
            self.polls.front().cloned()
        };
        for (rank, (name, job)) in list.unwrap_or_default().into_iter().enumerate() {
            if !self.done.contains(&pid(name)) {
                self.ranks.insert(pid(name), u32::try_from(rank).unwrap());
                self.jobs.entry(pid(name)).or_insert(job);
            }
        }
        Ok(self.poll_interval)
    }

    fn worklist(&mut self, now: Duration) -> Worklist {
        let mut list = Worklist::default();
        for (id, job) in &self.jobs {
            if self.aside.contains(id) {
                continue;
            }
            let held = job.missing > 0 && job.held_until.is_some_and(|until| until > now);
            if held {
                if let Some(until) = job.held_until.filter(|until| *until < Duration::MAX) {
                    list.recheck_at = Some(list.recheck_at.map_or(until, |r| r.min(until)));
                }
            } else {
                list.workable = true;
            }
            list.jobs.push(Job {
                id: id.clone(),
                priority: if held { HELD_BACK } else { job.priority },
                rank: self.ranks.get(id).copied().unwrap_or(u32::MAX),
                fragments_missing: job.missing,
                fragment_len: 1_000,
                first_seen: job.first_seen,
            });
        }
        list
    }

    async fn fetch(&mut self, id: &PackageId) -> Fetched {
        self.note("fetch", id);
        self.now += self.fetch_time;
        let job = self.jobs.get_mut(id).unwrap();
        if job.failing {
            return Fetched::Failed;
        }
        job.missing -= 1;
        Fetched::Done(1_000)
    }

    async fn install(&mut self, id: &PackageId) {
        self.note("install", id);
        self.jobs.remove(id);
        self.done.insert(id.clone());
    }

    async fn time_out(&mut self, id: &PackageId) {
        self.note("timeout", id);
        self.jobs.remove(id);
        self.done.insert(id.clone());
    }

    fn set_aside(&mut self, id: &PackageId) {
        self.note("aside", id);
        self.aside.insert(id.clone());
    }

    fn concluded(&self) -> u64 {
        self.done.len() as u64
    }
}

fn config() -> CycleConfig {
    CycleConfig::default()
}

#[tokio::test]
async fn packages_take_their_turns_by_cycle_and_priority() {
    // OCS defaults: 10 cycles of 60 s. Priority 0 in cycle 1, 5 in cycle 5
    // (4 × 60 s later), 10 in cycle 10.
    let mut fake = Fake::new(vec![vec![
        ("ten", job(10, 1)),
        ("five", job(5, 1)),
        ("urgent", job(0, 2)),
    ]]);
    fake.horizon = secs(1000);
    fake.drive(config(), Mode::Run).await.unwrap();
    assert_eq!(
        fake.log,
        [
            "0s poll central",
            "0s fetch urgent",
            "0s fetch urgent",
            "0s install urgent",
            "240s fetch five",
            "240s install five",
            "540s fetch ten",
            "540s install ten",
        ]
    );
    // It slept from one event to the next, not in small steps.
    assert!(fake.sleeps <= 3, "{}", fake.sleeps);
}

#[tokio::test]
async fn a_two_cycle_period_serves_priority_two_in_cycle_two() {
    let mut fake = Fake::new(vec![vec![("two", job(2, 1)), ("one", job(1, 1))]]);
    fake.horizon = secs(1000);
    let cycle = CycleConfig {
        period_length: 2,
        cycle_latency: units::Duration::from_secs(5),
        ..config()
    };
    fake.drive(cycle, Mode::Run).await.unwrap();
    assert_eq!(
        fake.log,
        [
            "0s poll central",
            "0s fetch one",
            "0s install one",
            "5s fetch two",
            "5s install two",
        ]
    );
}

#[tokio::test]
async fn a_package_without_a_source_times_out_and_nothing_spins_meanwhile() {
    let lost = FakeJob {
        held_until: Some(Duration::MAX),
        ..job(5, 3)
    };
    let mut fake = Fake::new(vec![vec![("lost", lost)]]);
    fake.horizon = secs(1000);
    let cycle = CycleConfig {
        timeout: units::Duration::from_secs(10),
        ..config()
    };
    fake.drive(cycle, Mode::Run).await.unwrap();
    assert_eq!(fake.log, ["0s poll central", "10s timeout lost"]);
    assert!(fake.sleeps <= 2, "{}", fake.sleeps);
}

#[tokio::test]
async fn a_held_back_package_is_fetched_as_soon_as_a_source_appears() {
    // Its relay's back-off ends at 30 s: the driver wakes up for it, and the
    // cycle (stopped meanwhile) starts afresh then, without its 60 s latency.
    let late = FakeJob {
        held_until: Some(secs(30)),
        ..job(1, 1)
    };
    let mut fake = Fake::new(vec![vec![("late", late)]]);
    fake.horizon = secs(1000);
    fake.drive(config(), Mode::Run).await.unwrap();
    assert_eq!(
        fake.log,
        ["0s poll central", "30s fetch late", "30s install late"]
    );
    assert!(fake.sleeps <= 2, "{}", fake.sleeps);
}

#[tokio::test]
async fn central_is_polled_at_its_interval_and_new_packages_start_then() {
    let mut fake = Fake::new(vec![vec![], vec![("new", job(1, 1))]]);
    fake.poll_interval = secs(45);
    fake.horizon = secs(100);
    fake.drive(config(), Mode::Run).await.unwrap();
    assert_eq!(
        fake.log,
        [
            "0s poll central",
            "45s poll central",
            "45s fetch new",
            "45s install new",
            "90s poll central",
        ]
    );
}

#[tokio::test]
async fn a_failed_poll_is_retried_and_the_cycle_goes_on_meanwhile() {
    let mut fake = Fake::new(vec![vec![("app", job(1, 1))]]);
    fake.failing_polls = 1;
    fake.poll_interval = secs(1000);
    fake.horizon = secs(100);
    fake.drive(config(), Mode::Run).await.unwrap();
    assert_eq!(
        fake.log,
        [
            "0s poll failed central",
            "30s poll central",
            "30s fetch app",
            "30s install app",
        ]
    );
    // `once` gives up instead.
    let mut fake = Fake::new(vec![vec![("app", job(1, 1))]]);
    fake.failing_polls = 1;
    let e = fake.drive(config(), Mode::Once).await.unwrap_err();
    assert!(e.to_string().contains("central is down"), "{e}");
}

#[tokio::test]
async fn a_failed_poll_is_retried_no_later_than_the_poll_interval() {
    // Central hands out 2 s and then goes down for a moment (a restart): the
    // agent tries again 2 s later, not 30 s, and gets its job then.
    let mut fake = Fake::new(vec![vec![], vec![("app", job(1, 1))]]);
    fake.polls_before_failing = 1;
    fake.failing_polls = 1;
    fake.poll_interval = secs(2);
    fake.horizon = secs(5);
    fake.drive(config(), Mode::Run).await.unwrap();
    assert_eq!(
        fake.log,
        [
            "0s poll central",
            "2s poll failed central",
            "4s poll central",
            "4s fetch app",
            "4s install app",
        ]
    );
}

#[tokio::test]
async fn an_urgent_package_whose_sources_fail_is_retried_at_most_once_a_second() {
    // Priority 0 blocks the others while it fails (as in OCS), but its failed
    // fetches are at least a second apart even with frag_latency = 0.
    let down = FakeJob {
        failing: true,
        ..job(0, 1)
    };
    let mut fake = Fake::new(vec![vec![("down", down), ("other", job(1, 1))]]);
    fake.horizon = secs(10);
    fake.drive(config(), Mode::Run).await.unwrap();
    let expected: Vec<String> = std::iter::once("0s poll central".to_owned())
        .chain((0..10).map(|s| format!("{s}s fetch down")))
        .collect();
    assert_eq!(fake.log, expected);
}

#[tokio::test]
async fn a_slow_failure_is_not_made_slower() {
    let down = FakeJob {
        failing: true,
        ..job(1, 1)
    };
    let mut fake = Fake::new(vec![vec![("down", down)]]);
    fake.fetch_time = secs(3);
    fake.horizon = secs(100);
    let cycle = CycleConfig {
        cycle_latency: units::Duration::from_secs(10),
        ..config()
    };
    fake.drive(cycle, Mode::Run).await.unwrap();
    // Each failure ends the cycle's turn; the next cycle starts 10 s after it.
    assert_eq!(
        fake.log,
        [
            "0s poll central",
            "0s fetch down",
            "13s fetch down",
            "26s fetch down",
            "39s fetch down",
            "52s fetch down",
            "65s fetch down",
            "78s fetch down",
            "91s fetch down",
        ]
    );
}

#[tokio::test]
async fn once_works_through_everything_now_in_priority_order_without_latencies() {
    let lost = FakeJob {
        held_until: Some(Duration::MAX),
        ..job(1, 1)
    };
    let broken = FakeJob {
        failing: true,
        ..job(1, 1)
    };
    let mut fake = Fake::new(vec![vec![
        ("ten", job(10, 1)),
        ("five", job(5, 2)),
        ("urgent", job(0, 1)),
        ("broken", broken),
        ("lost", lost),
        ("ready", job(7, 0)),
    ]]);
    // The configured latencies do not apply to `once`.
    fake.drive(config(), Mode::Once).await.unwrap();
    assert_eq!(
        fake.log,
        [
            "0s poll central",
            "0s install ready",
            "0s fetch urgent",
            "0s install urgent",
            "0s fetch broken",
            "0s aside broken",
            "0s fetch five",
            "0s fetch five",
            "0s install five",
            "0s fetch ten",
            "0s install ten",
            // Jobs ended: central may have the next ones of their containers. It has
            // not, and a round that ends nothing is the last.
            "0s poll central",
        ]
    );
    assert_eq!(fake.sleeps, 0);
    // Left for a later round: the one without a source and the one that failed.
    assert_eq!(
        fake.jobs.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["broken", "lost"]
    );
}

#[tokio::test]
async fn once_times_out_a_package_past_its_deadline_and_honours_max_rate() {
    let old = FakeJob {
        held_until: Some(Duration::MAX),
        ..job(5, 1)
    };
    let big = FakeJob {
        first_seen: secs(50),
        ..job(1, 3)
    };
    let mut fake = Fake::new(vec![vec![("old", old), ("big", big)]]);
    fake.now = secs(50);
    let cycle = CycleConfig {
        timeout: units::Duration::from_secs(20),
        max_rate: Some(1_000),
        ..config()
    };
    fake.drive(cycle, Mode::Once).await.unwrap();
    // 1000 bytes per fetch at 1000 B/s: one fetch a second.
    assert_eq!(
        fake.log,
        [
            "50s poll central",
            "50s timeout old",
            "50s fetch big",
            "51s fetch big",
            "52s fetch big",
            "52s install big",
            "52s poll central",
        ]
    );
}

/// Central hands out a job container's next job only once the previous one has
/// reported: `once` polls again after a round that ended a job, and works through
/// what the new poll brings, in the same call.
#[tokio::test]
async fn once_polls_again_while_jobs_end() {
    let mut fake = Fake::new(vec![
        vec![("first", job(3, 1))],
        vec![("second", job(3, 2))],
        vec![("second", job(3, 2)), ("third", job(1, 0))],
    ]);
    fake.drive(config(), Mode::Once).await.unwrap();
    assert_eq!(
        fake.log,
        [
            "0s poll central",
            "0s fetch first",
            "0s install first",
            "0s poll central",
            "0s fetch second",
            "0s fetch second",
            "0s install second",
            "0s poll central",
            "0s install third",
            "0s poll central",
        ]
    );
    assert!(fake.jobs.is_empty());
}

/// A round that ends nothing (its package's sources fail) is the last: polling
/// again could bring nothing new.
#[tokio::test]
async fn once_stops_after_a_round_that_ended_nothing() {
    let broken = FakeJob {
        failing: true,
        ..job(1, 1)
    };
    let mut fake = Fake::new(vec![vec![("broken", broken)], vec![("new", job(1, 1))]]);
    fake.drive(config(), Mode::Once).await.unwrap();
    assert_eq!(
        fake.log,
        ["0s poll central", "0s fetch broken", "0s aside broken"]
    );
}

/// Should central hand out a new job after every report, `once` still ends.
#[tokio::test]
async fn once_makes_at_most_max_once_rounds_polls() {
    let polls = (0..MAX_ONCE_ROUNDS + 10)
        .map(|n| {
            let name: &'static str = Box::leak(format!("job-{n}").into_boxed_str());
            vec![(name, job(1, 1))]
        })
        .collect();
    let mut fake = Fake::new(polls);
    fake.drive(config(), Mode::Once).await.unwrap();
    let polls = fake
        .log
        .iter()
        .filter(|l| l.ends_with("poll central"))
        .count();
    let installs = fake.log.iter().filter(|l| l.contains(" install ")).count();
    assert_eq!(polls, MAX_ONCE_ROUNDS as usize);
    assert_eq!(installs, MAX_ONCE_ROUNDS as usize);
}

/// After the urgent packages, the poll's order (central's running order: job
/// containers of higher priority first) decides, not the package priority or id.
#[tokio::test]
async fn once_follows_the_polls_order_after_urgent_packages() {
    let mut fake = Fake::new(vec![vec![
        ("zz-first", job(2, 1)),
        ("aa-second", job(1, 1)),
        ("mm-third", job(1, 1)),
        ("urgent", job(0, 1)),
    ]]);
    fake.drive(config(), Mode::Once).await.unwrap();
    let fetches: Vec<&str> = fake
        .log
        .iter()
        .filter_map(|l| l.strip_prefix("0s fetch "))
        .collect();
    // Cycle 1 serves priority 1 (and 0); cycle 2 priority 2 (and 1).
    assert_eq!(fetches, ["urgent", "aa-second", "mm-third", "zz-first"]);
    let mut fake = Fake::new(vec![vec![
        ("zz-first", job(1, 1)),
        ("aa-second", job(1, 1)),
        ("urgent", job(0, 1)),
    ]]);
    fake.drive(config(), Mode::Once).await.unwrap();
    let fetches: Vec<&str> = fake
        .log
        .iter()
        .filter_map(|l| l.strip_prefix("0s fetch "))
        .collect();
    assert_eq!(fetches, ["urgent", "zz-first", "aa-second"]);
}

#[test]
fn once_runs_the_cycle_without_latencies_over_every_priority() {
    let configured = CycleConfig {
        period_length: 3,
        cycle_latency: units::Duration::from_secs(60),
        frag_latency: units::Duration::from_secs(10),
        period_latency: units::Duration::from_secs(600),
        timeout: units::Duration::from_secs(5),
        max_rate: Some(7),
    };
    assert_eq!(effective(configured, Mode::Run), configured);
    let once = effective(configured, Mode::Once);
    assert_eq!(once.period_length, u32::from(MAX_PRIORITY));
    assert_eq!(once.cycle_latency, units::Duration::ZERO);
    assert_eq!(once.frag_latency, units::Duration::ZERO);
    assert_eq!(once.period_latency, units::Duration::ZERO);
    assert_eq!(once.timeout, configured.timeout);
    assert_eq!(once.max_rate, Some(7));
    assert!(u32::from(HELD_BACK) > crate::config::MAX_PERIOD_LENGTH);
}
