//! Tests of the download cycle on a virtual clock: cycle numbers, priorities,
//! latencies, timeouts and the rate, checked exactly and by property.

use super::*;
use proptest::prelude::*;

fn t(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn pid(name: &str) -> PackageId {
    name.parse().unwrap()
}

/// A job ranked by its priority, as central lists a plain assignment's packages.
fn job(name: &str, priority: u8, missing: u32) -> Job {
    Job {
        id: pid(name),
        priority,
        rank: u32::from(priority),
        fragments_missing: missing,
        fragment_len: 1_000,
        first_seen: Duration::ZERO,
    }
}

fn fetch(name: &str) -> CycleAction {
    CycleAction::FetchFragment { id: pid(name) }
}

fn install(name: &str) -> CycleAction {
    CycleAction::Install { id: pid(name) }
}

/// The agent's loop on a virtual clock: it sleeps exactly until `poll_timeout`.
struct Sim {
    machine: DownloadCycle,
    now: Duration,
}

impl Sim {
    fn new(config: CycleConfig, jobs: Vec<Job>) -> Self {
        let mut machine = DownloadCycle::new(config);
        machine.set_packages(Duration::ZERO, jobs);
        Sim {
            machine,
            now: Duration::ZERO,
        }
    }

    /// Sleeps until the machine's timeout and polls; the machine must then have an
    /// action, or the agent would wake up for nothing.
    fn next(&mut self) -> Option<CycleAction> {
        let at = self.machine.poll_timeout()?;
        assert!(
            at >= self.now,
            "timeout {at:?} is in the past ({:?})",
            self.now
        );
        self.now = at;
        let action = self.machine.poll_action(at);
        assert!(action.is_some(), "woke at {at:?} for nothing");
        action
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    fn done(&mut self, name: &str) {
        self.machine.fragment_done(self.now, &pid(name), 1_000);
    }

    fn failed(&mut self, name: &str) {
        self.machine.fragment_failed(self.now, &pid(name));
    }

    fn finished(&mut self, name: &str) {
        self.machine.package_finished(self.now, &pid(name));
    }
}

#[test]
fn priority_five_is_fetched_in_cycles_five_and_ten_only() {
    let mut sim = Sim::new(CycleConfig::default(), vec![job("app", 5, 1_000)]);
    let mut cycles = BTreeSet::new();
    let mut starts = Vec::new();
    let mut fetches = 0;
    loop {
        assert_eq!(sim.next(), Some(fetch("app")));
        if sim.machine.period() > 2 {
            break;
        }
        cycles.insert((sim.machine.period(), sim.machine.cycle()));
        starts.push(sim.now);
        // Two fragments per turn, then a failure ends the turn.
        fetches += 1;
        if fetches % 3 == 0 {
            sim.failed("app");
        } else {
            sim.done("app");
        }
    }
    let expected: BTreeSet<(u64, u32)> = [(1, 5), (1, 10), (2, 5), (2, 10)].into();
    assert_eq!(cycles, expected);
    // Cycles 1 to 4 are empty but each lasts the cycle latency.
    assert_eq!(starts[0], t(4 * 60));
    // Cycle 10 starts 5 cycle latencies after cycle 5 ended.
    assert_eq!(starts[3], starts[2] + t(5 * 60));
    // From the end of cycle 10 to cycle 5 of the next period: 5 latencies again.
    assert_eq!(starts[6], starts[5] + t(5 * 60));
    assert_eq!(fetches, 12);
}

#[test]
fn priority_zero_comes_first_in_every_cycle() {
    let config = CycleConfig {
        period_length: 4,
        ..CycleConfig::default()
    };
    let mut sim = Sim::new(config, vec![job("normal", 1, 1_000)]);
    for n in 1..=8u32 {
        // An urgent package arrives between cycles, as after a poll of central.
        let urgent = format!("urgent-{n}");
        sim.machine
            .set_packages(sim.now, vec![job("normal", 1, 1_000), job(&urgent, 0, 1)]);
        assert_eq!(sim.next(), Some(fetch(&urgent)));
        let (period, cycle) = (u64::from((n - 1) / 4 + 1), (n - 1) % 4 + 1);
        assert_eq!((sim.machine.period(), sim.machine.cycle()), (period, cycle));
        sim.done(&urgent);
        assert_eq!(sim.next(), Some(install(&urgent)));
        sim.finished(&urgent);
        assert_eq!(sim.next(), Some(fetch("normal")));
        assert_eq!(sim.machine.cycle(), cycle);
        sim.failed("normal");
    }
}

#[test]
fn priority_zero_arriving_mid_turn_takes_the_next_fetch() {
    let mut sim = Sim::new(CycleConfig::default(), vec![job("normal", 1, 5)]);
    assert_eq!(sim.next(), Some(fetch("normal")));
    sim.machine
        .set_packages(sim.now, vec![job("normal", 1, 5), job("urgent", 0, 1)]);
    sim.done("normal");
    assert_eq!(sim.next(), Some(fetch("urgent")));
}

#[test]
fn a_failing_priority_zero_blocks_the_others_until_it_succeeds() {
    let config = CycleConfig {
        frag_latency: units::Duration::from_secs(5),
        ..CycleConfig::default()
    };
    let mut sim = Sim::new(config, vec![job("urgent", 0, 2), job("other", 1, 3)]);
    let mut last = None;
    for _ in 0..20 {
        assert_eq!(sim.next(), Some(fetch("urgent")));
        if let Some(last) = last {
            assert_eq!(sim.now, last + t(5));
        }
        last = Some(sim.now);
        sim.failed("urgent");
    }
    assert_eq!(sim.machine.cycle(), 1, "the cycle never ends");
    assert_eq!(sim.next(), Some(fetch("urgent")));
    sim.done("urgent");
    assert_eq!(sim.next(), Some(fetch("urgent")));
    sim.done("urgent");
    assert_eq!(sim.next(), Some(install("urgent")));
    sim.finished("urgent");
    assert_eq!(sim.next(), Some(fetch("other")));
    assert_eq!(sim.machine.cycle(), 1);
}

#[test]
fn frag_latency_spaces_fetches_exactly() {
    let config = CycleConfig {
        frag_latency: units::Duration::from_secs(10),
        ..CycleConfig::default()
    };
    let mut sim = Sim::new(config, vec![job("app", 1, 4)]);
    let mut previous_end = None;
    for _ in 0..4 {
        assert_eq!(sim.next(), Some(fetch("app")));
        if let Some(end) = previous_end {
            assert_eq!(sim.now, end + t(10));
        }
        sim.advance(t(3));
        sim.done("app");
        previous_end = Some(sim.now);
    }
    // Installing is not fetching: no latency before it.
    assert_eq!(sim.next(), Some(install("app")));
    assert_eq!(Some(sim.now), previous_end);
    sim.finished("app");
    assert_eq!(sim.next(), None);
}

#[test]
fn cycle_and_period_latencies_separate_cycles_and_periods() {
    let config = CycleConfig {
        period_length: 3,
        cycle_latency: units::Duration::from_secs(60),
        period_latency: units::Duration::from_secs(600),
        ..CycleConfig::default()
    };
    let mut sim = Sim::new(config, vec![job("app", 1, 1_000)]);
    let mut gaps = Vec::new();
    let mut positions = Vec::new();
    let mut previous_end = None;
    for _ in 0..7 {
        assert_eq!(sim.next(), Some(fetch("app")));
        positions.push((sim.machine.period(), sim.machine.cycle()));
        if let Some(end) = previous_end {
            gaps.push((sim.now - end).as_secs());
        }
        sim.advance(t(2));
        sim.failed("app");
        previous_end = Some(sim.now);
    }
    assert_eq!(
        positions,
        [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 1)]
    );
    assert_eq!(gaps, [60, 60, 660, 60, 60, 660]);
}

/// Central lists jobs in the order they should run (a job container of higher
/// priority first): within a cycle the eligible packages go by that rank, whatever
/// their package priority and their ids.
#[test]
fn eligible_packages_take_their_turns_by_rank() {
    let config = CycleConfig {
        period_length: 5,
        ..CycleConfig::default()
    };
    // Ranked against their priorities and their ids.
    let five = Job {
        rank: 0,
        ..job("a-five", 5, 10)
    };
    let one = Job {
        rank: 1,
        ..job("b-one", 1, 10)
    };
    let mut sim = Sim::new(config, vec![one, five]);
    // Cycles 1 to 4 serve only priority 1.
    for cycle in 1..=4 {
        assert_eq!(sim.next(), Some(fetch("b-one")));
        assert_eq!(sim.machine.cycle(), cycle);
        sim.failed("b-one");
    }
    // Cycle 5 serves both: rank 0 first, though its priority is 5 and the other's 1.
    assert_eq!(sim.next(), Some(fetch("a-five")));
    assert_eq!(sim.machine.cycle(), 5);
    sim.failed("a-five");
    assert_eq!(sim.next(), Some(fetch("b-one")));
    assert_eq!(sim.machine.cycle(), 5);

    // Same priority: rank, not id.
    let zed = Job {
        rank: 0,
        ..job("zed", 1, 1)
    };
    let abc = Job {
        rank: 1,
        ..job("abc", 1, 1)
    };
    let mut sim = Sim::new(CycleConfig::default(), vec![abc, zed]);
    assert_eq!(sim.next(), Some(fetch("zed")));
    sim.done("zed");
    assert_eq!(sim.next(), Some(install("zed")));
    sim.finished("zed");
    assert_eq!(sim.next(), Some(fetch("abc")));
}

/// Rank never overtakes OCS's urgency: priority 0 goes first, and among urgent
/// packages rank decides too.
#[test]
fn priority_zero_goes_before_any_rank() {
    let ranked = |name: &str, priority: u8, rank: u32| Job {
        rank,
        ..job(name, priority, 1)
    };
    let mut sim = Sim::new(
        CycleConfig::default(),
        vec![
            ranked("first", 1, 0),
            ranked("urgent-b", 0, 7),
            ranked("urgent-a", 0, 9),
        ],
    );
    let mut order = Vec::new();
    while let Some(CycleAction::FetchFragment { id }) = sim.next() {
        sim.done(id.as_str());
        assert_eq!(sim.next(), Some(install(id.as_str())));
        sim.finished(id.as_str());
        order.push(id.to_string());
    }
    assert_eq!(order, ["urgent-b", "urgent-a", "first"]);
}

/// Packages ready at once (all fragments on disk, or uninstall jobs whose info is
/// known) are installed in the turn order too: a container's order holds across
/// restarts.
#[test]
fn ready_packages_install_by_rank() {
    let ready = |name: &str, priority: u8, rank: u32| Job {
        rank,
        ..job(name, priority, 0)
    };
    let mut sim = Sim::new(
        CycleConfig::default(),
        vec![
            ready("aaa", 1, 2),
            ready("mmm", 9, 1),
            ready("zzz", 3, 0),
            ready("now", 0, 5),
        ],
    );
    let mut order = Vec::new();
    while let Some(CycleAction::Install { id }) = sim.next() {
        sim.finished(id.as_str());
        order.push(id.to_string());
    }
    assert_eq!(order, ["now", "zzz", "mmm", "aaa"]);
}

#[test]
fn timeout_comes_at_first_seen_plus_timeout_and_never_before() {
    let week = t(7 * 86_400);
    // Priority 20 is never eligible in a period of 10: only the timeout can end it.
    let mut machine = DownloadCycle::new(CycleConfig::default());
    let stuck = Job {
        first_seen: t(30),
        ..job("stuck", 20, 3)
    };
    machine.set_packages(t(100), vec![stuck]);
    let deadline = t(30) + week;
    assert_eq!(machine.poll_timeout(), Some(deadline));
    assert_eq!(
        machine.poll_action(deadline - Duration::from_nanos(1)),
        None
    );
    assert_eq!(
        machine.poll_action(deadline),
        Some(CycleAction::TimedOut { id: pid("stuck") })
    );
    assert_eq!(machine.poll_timeout(), None, "waiting for the report");
    machine.package_finished(deadline, &pid("stuck"));
    assert_eq!(machine.poll_timeout(), None);
    assert_eq!(machine.poll_action(deadline + week), None);
}

#[test]
fn a_package_that_keeps_failing_times_out_on_the_dot() {
    let mut sim = Sim::new(
        CycleConfig::default(),
        vec![Job {
            first_seen: t(30),
            ..job("flaky", 2, 3)
        }],
    );
    let deadline = t(30) + t(7 * 86_400);
    let mut fetches = 0;
    loop {
        match sim.next() {
            Some(CycleAction::FetchFragment { .. }) => {
                assert!(sim.now < deadline);
                fetches += 1;
                sim.failed("flaky");
            }
            Some(CycleAction::TimedOut { id }) => {
                assert_eq!(id, pid("flaky"));
                assert_eq!(sim.now, deadline);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // One fetch in every even cycle of a week of one-minute cycles.
    assert_eq!(fetches, 7 * 24 * 60 / 2);
}

#[test]
fn set_packages_keeps_the_cycle_position() {
    let mut sim = Sim::new(CycleConfig::default(), vec![job("app", 3, 10)]);
    assert_eq!(sim.next(), Some(fetch("app")));
    assert_eq!(sim.machine.cycle(), 3);
    let failed_at = sim.now;
    sim.failed("app");
    // Cycle 3 is over; cycle 4 starts after the pause.
    assert_eq!(sim.machine.cycle(), 4);
    sim.machine
        .set_packages(sim.now, vec![job("app", 3, 10), job("late", 2, 10)]);
    assert_eq!(sim.machine.cycle(), 4);
    // Cycle 4: priority 2 is due, priority 3 is not. From cycle 1 it would be cycle 2.
    assert_eq!(sim.next(), Some(fetch("late")));
    assert_eq!(sim.machine.cycle(), 4);
    assert_eq!(sim.now, failed_at + t(60));
}

#[test]
fn finished_packages_disappear() {
    let mut sim = Sim::new(CycleConfig::default(), vec![job("a", 1, 1), job("b", 1, 1)]);
    assert_eq!(sim.next(), Some(fetch("a")));
    sim.done("a");
    assert_eq!(sim.next(), Some(install("a")));
    // Until the install is over, nothing else starts.
    assert_eq!(sim.machine.poll_action(sim.now + t(3_600)), None);
    sim.finished("a");
    assert_eq!(sim.next(), Some(fetch("b")));
    // The agent may drop a package mid-fetch (a corrupt fragment, a cancellation).
    sim.finished("b");
    assert_eq!(sim.machine.poll_timeout(), None);
    assert_eq!(sim.machine.poll_action(sim.now + t(86_400)), None);
}

#[test]
fn complete_packages_install_at_once() {
    let sim_jobs = vec![job("resumed", 9, 0), job("other", 1, 2)];
    let mut sim = Sim::new(CycleConfig::default(), sim_jobs);
    assert_eq!(sim.next(), Some(install("resumed")));
    assert_eq!(sim.now, Duration::ZERO);
}

#[test]
fn an_empty_list_gives_no_action_and_stops_the_clock() {
    let mut machine = DownloadCycle::new(CycleConfig::default());
    assert_eq!(machine.poll_timeout(), None);
    assert_eq!(machine.poll_action(t(10)), None);
    machine.set_packages(t(20), Vec::new());
    assert_eq!(machine.poll_timeout(), None);
    assert_eq!(machine.poll_action(t(86_400)), None);
    assert_eq!((machine.period(), machine.cycle()), (1, 1));

    // Work arriving after a long idle time starts in the stopped cycle, right away.
    machine.set_packages(t(100_000), vec![job("app", 1, 1)]);
    assert_eq!(machine.poll_timeout(), Some(t(100_000)));
    assert_eq!(machine.poll_action(t(100_000)), Some(fetch("app")));
    assert_eq!((machine.period(), machine.cycle()), (1, 1));
}

#[test]
fn stray_events_do_not_start_a_second_action() {
    let mut sim = Sim::new(CycleConfig::default(), vec![job("a", 1, 3), job("b", 1, 3)]);
    assert_eq!(sim.next(), Some(fetch("a")));
    sim.done("b");
    sim.failed("b");
    assert_eq!(sim.machine.poll_action(sim.now), None);
    sim.done("a");
    sim.done("a");
    assert_eq!(sim.next(), Some(fetch("a")));
}

#[test]
fn max_rate_delays_the_next_start() {
    let config = CycleConfig {
        max_rate: Some(1_000),
        ..CycleConfig::default()
    };
    let mut sim = Sim::new(config, vec![job("app", 1, 3)]);
    assert_eq!(sim.next(), Some(fetch("app")));
    sim.advance(Duration::from_millis(100));
    sim.machine.fragment_done(sim.now, &pid("app"), 2_500);
    assert_eq!(sim.next(), Some(fetch("app")));
    assert_eq!(sim.now, Duration::from_millis(2_500));
}

#[test]
fn transfer_time_rounds_up_to_the_nanosecond() {
    assert_eq!(transfer_time(0, 7), Duration::ZERO);
    assert_eq!(transfer_time(10, 5), t(2));
    assert_eq!(transfer_time(1, 3), Duration::from_nanos(333_333_334));
    assert_eq!(transfer_time(u64::MAX, 1), Duration::from_secs(u64::MAX));
}

#[test]
fn config_reads_the_spec_grammar() {
    let config: CycleConfig = serde_json::from_str(
        r#"{"period_length": 4, "cycle_latency": "90s", "frag_latency": "10s",
            "period_latency": "1h", "timeout": "3d", "max_rate": "512KiB/s"}"#,
    )
    .unwrap();
    assert_eq!(
        config,
        CycleConfig {
            period_length: 4,
            cycle_latency: units::Duration::from_secs(90),
            frag_latency: units::Duration::from_secs(10),
            period_latency: units::Duration::from_secs(3_600),
            timeout: units::Duration::from_secs(3 * 86_400),
            max_rate: Some(512 * 1024),
        }
    );
    let back: CycleConfig = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);

    let defaults: CycleConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults, CycleConfig::default());
    assert_eq!(
        serde_json::to_value(defaults).unwrap(),
        serde_json::json!({"period_length": 10, "cycle_latency": "1m",
            "frag_latency": "0s", "period_latency": "0s", "timeout": "7d"})
    );
    let unlimited: CycleConfig = serde_json::from_str(r#"{"max_rate": "unlimited"}"#).unwrap();
    assert_eq!(unlimited.max_rate, None);

    for bad in [
        r#"{"cycle_latancy": "60s"}"#,
        r#"{"period_length": 0}"#,
        r#"{"cycle_latency": "60"}"#,
        r#"{"max_rate": "512KiB"}"#,
    ] {
        assert!(serde_json::from_str::<CycleConfig>(bad).is_err(), "{bad}");
    }
}

/// What the agent does with the action in flight.
#[derive(Debug, Clone)]
enum Step {
    /// Sleep until the machine's timeout, then poll.
    Wait,
    /// Poll after an arbitrary pause.
    Poll(u16),
    /// Finish the action in flight after `secs`: a fetch succeeds with `bytes` (a
    /// fraction of the fragment length, in per mille) or fails.
    Complete { secs: u8, ok: bool, per_mille: u16 },
    /// A poll of central: the listed subset of the pool, with new priorities.
    Relist(Vec<(usize, u8)>),
    /// A late or duplicated report about some package.
    Stray(usize, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Wait),
        1 => (0u16..600).prop_map(Step::Poll),
        5 => (0u8..20, any::<bool>(), 0u16..=1_000)
            .prop_map(|(secs, ok, per_mille)| Step::Complete { secs, ok, per_mille }),
        1 => proptest::collection::vec((0usize..5, 0u8..8), 0..5).prop_map(Step::Relist),
        1 => (0usize..5, any::<bool>()).prop_map(|(i, ok)| Step::Stray(i, ok)),
    ]
}

fn config() -> impl Strategy<Value = CycleConfig> {
    (
        1u32..8,
        0u64..120,
        0u64..5,
        0u64..300,
        600u64..20_000,
        prop::option::of(1u64..200_000),
    )
        .prop_map(
            |(period_length, cycle, frag, period, timeout, max_rate)| CycleConfig {
                period_length,
                cycle_latency: units::Duration::from_secs(cycle),
                frag_latency: units::Duration::from_secs(frag),
                period_latency: units::Duration::from_secs(period),
                timeout: units::Duration::from_secs(timeout),
                max_rate,
            },
        )
}

/// The agent's own view of a package: the truth the machine is told about.
#[derive(Debug, Clone)]
struct Truth {
    id: PackageId,
    priority: u8,
    rank: u32,
    missing: u32,
    fragment_len: u64,
    first_seen: Duration,
    listed: bool,
    finished: bool,
}

impl Truth {
    fn job(&self) -> Job {
        Job {
            id: self.id.clone(),
            priority: self.priority,
            rank: self.rank,
            fragments_missing: self.missing,
            fragment_len: self.fragment_len,
            first_seen: self.first_seen,
        }
    }
}

/// A fetch as it happened: when it started and the bytes it may have moved.
struct Started {
    at: Duration,
    bytes: u64,
}

/// Runs an agent through `steps` and checks the invariants at every action; returns
/// the fetches it started.
fn run_agent(
    config: CycleConfig,
    pool: &[(u8, u32, u64, u64)],
    steps: &[Step],
) -> Result<Vec<Started>, TestCaseError> {
    let mut truth: Vec<Truth> = pool
        .iter()
        .enumerate()
        .map(
            |(i, &(priority, missing, fragment_len, first_seen))| Truth {
                id: pid(&format!("pkg-{i}")),
                priority,
                rank: u32::try_from(i).unwrap(),
                missing,
                fragment_len,
                first_seen: t(first_seen),
                listed: true,
                finished: false,
            },
        )
        .collect();
    let relist = |truth: &[Truth]| -> Vec<Job> {
        truth
            .iter()
            .filter(|p| p.listed && !p.finished)
            .map(Truth::job)
            .collect()
    };
    let mut machine = DownloadCycle::new(config);
    let mut now = Duration::ZERO;
    machine.set_packages(now, relist(&truth));
    let mut in_flight: Option<(CycleAction, usize)> = None;
    let mut started: Vec<Started> = Vec::new();
    let timeout: Duration = config.timeout.into();

    for step in steps {
        let polled_at = match step {
            Step::Wait => match machine.poll_timeout() {
                Some(at) => {
                    prop_assert!(at >= now);
                    now = at;
                    Some(true)
                }
                None => None,
            },
            Step::Poll(secs) => {
                now += t(u64::from(*secs));
                Some(false)
            }
            Step::Complete {
                secs,
                ok,
                per_mille,
            } => {
                let Some((action, index)) = in_flight.take() else {
                    continue;
                };
                now += t(u64::from(*secs));
                let package = &mut truth[index];
                match action {
                    CycleAction::FetchFragment { .. } if *ok => {
                        let bytes = package.fragment_len * u64::from(*per_mille) / 1_000;
                        if let Some(last) = started.last_mut() {
                            last.bytes = bytes;
                        }
                        package.missing -= 1;
                        machine.fragment_done(now, &package.id, bytes);
                    }
                    CycleAction::FetchFragment { .. } => {
                        machine.fragment_failed(now, &package.id);
                    }
                    CycleAction::Install { .. } | CycleAction::TimedOut { .. } => {
                        package.finished = true;
                        machine.package_finished(now, &package.id);
                    }
                }
                None
            }
            Step::Relist(entries) => {
                for package in truth.iter_mut() {
                    package.listed = false;
                }
                for (rank, &(i, priority)) in entries.iter().enumerate() {
                    if let Some(package) = truth.get_mut(i) {
                        package.listed = true;
                        package.priority = priority;
                        package.rank = u32::try_from(rank).unwrap();
                    }
                }
                machine.set_packages(now, relist(&truth));
                None
            }
            Step::Stray(i, ok) => {
                if let Some(package) = truth.get(*i) {
                    let busy = in_flight.as_ref().is_some_and(|(_, j)| j == i);
                    if !busy {
                        if *ok {
                            machine.fragment_done(now, &package.id, 1);
                        } else {
                            machine.fragment_failed(now, &package.id);
                        }
                    }
                }
                None
            }
        };
        let Some(promised) = polled_at else { continue };
        let action = machine.poll_action(now);
        if promised {
            prop_assert!(action.is_some(), "woke for nothing");
        }
        let Some(action) = action else { continue };
        prop_assert!(in_flight.is_none(), "{action:?} while {in_flight:?} runs");
        let (CycleAction::FetchFragment { id }
        | CycleAction::Install { id }
        | CycleAction::TimedOut { id }) = &action;
        let index = truth.iter().position(|p| &p.id == id).unwrap();
        let package = &truth[index];
        prop_assert!(
            package.listed && !package.finished,
            "{action:?} for a dropped package"
        );
        match &action {
            CycleAction::FetchFragment { .. } => {
                prop_assert!(package.missing > 0, "fetch with nothing missing");
                prop_assert!(now < package.first_seen + timeout);
                // Until its report, a fetch is charged a whole fragment.
                started.push(Started {
                    at: now,
                    bytes: package.fragment_len,
                });
            }
            CycleAction::Install { .. } => prop_assert_eq!(package.missing, 0),
            CycleAction::TimedOut { .. } => {
                prop_assert!(package.missing > 0);
                prop_assert!(now >= package.first_seen + timeout, "timed out early");
            }
        }
        in_flight = Some((action, index));
    }
    Ok(started)
}

/// Packages: priority, fragments missing, fragment length, first seen (seconds).
fn pool() -> impl Strategy<Value = Vec<(u8, u32, u64, u64)>> {
    proptest::collection::vec((0u8..8, 0u32..6, 1u64..2_000_000, 0u64..5_000), 1..5)
}

proptest! {
    #[test]
    fn one_action_at_a_time_and_only_useful_fetches(
        config in config(),
        pool in pool(),
        steps in proptest::collection::vec(step(), 1..300),
    ) {
        run_agent(config, &pool, &steps)?;
    }

    #[test]
    fn bytes_started_never_exceed_the_rate(
        config in config(),
        rate in 1u64..500_000,
        pool in pool(),
        steps in proptest::collection::vec(step(), 1..300),
    ) {
        let config = CycleConfig { max_rate: Some(rate), ..config };
        let started = run_agent(config, &pool, &steps)?;
        let largest = u128::from(started.iter().map(|s| s.bytes).max().unwrap_or(0));
        for (i, first) in started.iter().enumerate() {
            let mut bytes = 0u128;
            for last in &started[i..] {
                bytes += u128::from(last.bytes);
                let window = (last.at - first.at).as_nanos();
                prop_assert!(
                    bytes * 1_000_000_000 <= u128::from(rate) * window + largest * 1_000_000_000,
                    "{bytes} bytes started within {window}ns at {rate}B/s"
                );
            }
        }
    }
}
#[test]
fn fallback_grammar() {
    for s in ["never", "always", "after:2h", "after:90s"] {
        assert_eq!(s.parse::<CentralFallback>().unwrap().to_string(), s);
    }
    let e = "sometimes".parse::<CentralFallback>().unwrap_err();
    assert_eq!(e.token, "sometimes");
    assert!("after:2x".parse::<CentralFallback>().is_err());
}
