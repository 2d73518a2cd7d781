//! A seeded simulation of relays replicating from central with the pure
//! [`Planner`]: a virtual clock, replication windows, bandwidth caps, activation
//! changes, random connection drops, corrupted fragments and restarts. It proves,
//! for many seeds, in milliseconds:
//! - every relay converges to exactly its site's activated set;
//! - no relay ever fetches a fragment it already holds;
//! - no fragment starts outside a window, priority 0 aside;
//! - the fragment bytes started in any one-second window never exceed the cap by
//!   more than one request (a fragment, or a delta charged for what it replaces);
//! - a delta is asked for only against a base held whole, never while fragments
//!   of its package are in flight, and what it yields is never already held;
//! - what a relay keeps beyond its site's set is only whole delta bases of
//!   packages the site wants;
//! - the disk quota ([`Eviction`]) evicts only kept bases, never content the
//!   site has activated, and nothing while the activated set is unknown (no
//!   link, or a link that has not told it yet).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::civil::DateTime;
use sitecast_common::eviction::Eviction;
use sitecast_common::ids::PackageId;
use sitecast_common::replication::{Action, Event, Now, Planner, PlannerConfig, Shape, Wanted};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone)]
struct Pkg {
    id: PackageId,
    priority: u8,
    shape: Shape,
    supersedes: Option<PackageId>,
}

struct Relay {
    site: usize,
    config: PlannerConfig,
    planner: Planner,
    connected: bool,
    reconnect_at: Option<Duration>,
    /// When the activated set reaches a relay that is connected but not told yet.
    activation_at: Option<Duration>,
    quota: Option<u64>,
    eviction: Eviction,
    epoch: u64,
    /// What is on the relay's disk: info held, fragments held.
    disk: BTreeMap<PackageId, BTreeSet<u32>>,
    in_flight: Vec<(Duration, u64, Action)>,
    starts: Vec<(Duration, u64)>,
}

const DAY: u64 = 86_400;

fn wall_at(start: DateTime, t: Duration) -> DateTime {
    start
        .checked_add(jiff::SignedDuration::from_nanos(t.as_nanos() as i64))
        .unwrap()
}

fn wanted(set: &[Pkg]) -> Vec<Wanted> {
    set.iter()
        .map(|p| Wanted {
            id: p.id.clone(),
            priority: p.priority,
            info_sha256: format!("sha-{}", p.id),
            supersedes: p.supersedes.clone(),
        })
        .collect()
}

fn restart(relay: &mut Relay, now: Now, pkgs: &BTreeMap<PackageId, Pkg>) {
    relay.planner = Planner::new(relay.config.clone());
    relay.eviction = Eviction::new();
    relay.activation_at = None;
    relay.epoch += 1;
    relay.in_flight.clear();
    for (id, held) in &relay.disk {
        relay.planner.handle(
            now,
            Event::Restored {
                id: id.clone(),
                info_sha256: format!("sha-{id}"),
                shape: pkgs[id].shape,
                held: held.clone(),
            },
        );
    }
}

/// What one seed exercised.
#[derive(Default)]
struct Counts {
    deltas: u64,
    evictions: u64,
}

/// Runs one seed.
fn simulate(seed: u64) -> Counts {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let start = jiff::civil::date(2026, 11, 23).at(0, 0, 0, 0);
    let schedules = [
        None,
        Some("18:00-23:59"),
        Some("MON-FRI 20:00-6:00,SAT 0:00-23:59"),
        Some("0:00-2:00,12:00-13:30"),
    ];
    let caps = [None, Some(2_000u64), Some(10_000)];
    let pkgs: BTreeMap<PackageId, Pkg> = (0..8)
        .map(|i| {
            let fragment_size = 100 + rng.below(1900);
            let count = 1 + rng.below(25) as u32;
            let size = fragment_size * u64::from(count) - rng.below(fragment_size);
            let id: PackageId = format!("p{i}").parse().unwrap();
            let p = Pkg {
                id: id.clone(),
                priority: if rng.chance(20) {
                    0
                } else {
                    1 + rng.below(10) as u8
                },
                shape: Shape {
                    size,
                    fragment_size,
                    count,
                },
                // Half the packages are new versions of the one before.
                supersedes: (i > 0 && rng.chance(50))
                    .then(|| format!("p{}", i - 1).parse().unwrap()),
            };
            (id, p)
        })
        .collect();
    let all: Vec<Pkg> = pkgs.values().cloned().collect();
    let mut sites: Vec<Vec<Pkg>> = vec![Vec::new(), Vec::new()];
    let mut relays: Vec<Relay> = (0..5)
        .map(|i| {
            let config = PlannerConfig {
                parallel: 1 + rng.below(6) as usize,
                schedule: schedules[rng.below(4) as usize].map(|s| s.parse().unwrap()),
                max_rate: caps[rng.below(3) as usize],
            };
            Relay {
                site: i % 2,
                planner: Planner::new(config.clone()),
                config,
                connected: false,
                reconnect_at: Some(Duration::from_secs(rng.below(600))),
                activation_at: None,
                // A third of the relays have a quota smaller than their site's set.
                quota: rng.chance(33).then(|| rng.below(60_000)),
                eviction: Eviction::new(),
                epoch: 0,
                disk: BTreeMap::new(),
                in_flight: Vec::new(),
                starts: Vec::new(),
            }
        })
        .collect();
    // Turbulence (activation changes, drops, restarts) for three days, then calm.
    let calm = Duration::from_secs(3 * DAY);
    let end = Duration::from_secs(6 * DAY);
    let mut next_change = Duration::ZERO;
    let mut t = Duration::ZERO;
    let mut steps = 0u64;
    let mut deltas = 0u64;
    let mut evictions = 0u64;
    while t < end {
        steps += 1;
        assert!(
            steps < 5_000_000,
            "seed {seed}: the simulation does not settle"
        );
        let now = Now {
            mono: t,
            wall: wall_at(start, t),
        };
        // Activation changes.
        if t >= next_change && t < calm {
            let site = rng.below(2) as usize;
            sites[site] = all.iter().filter(|_| rng.chance(50)).cloned().collect();
            for r in relays
                .iter_mut()
                .filter(|r| r.site == site && r.connected && r.activation_at.is_none())
            {
                r.planner
                    .handle(now, Event::Activated(wanted(&sites[site])));
            }
            next_change = t + Duration::from_secs(600 + rng.below(6 * 3600));
        }
        for r in relays.iter_mut() {
            // Completions due now.
            let (due, later): (Vec<_>, Vec<_>) =
                r.in_flight.drain(..).partition(|(at, _, _)| *at <= t);
            r.in_flight = later;
            for (_, epoch, action) in due {
                if epoch != r.epoch {
                    continue;
                }
                let corrupted = rng.chance(3);
                match action {
                    Action::FetchInfo { id } => {
                        if corrupted {
                            r.planner.handle(now, Event::InfoFailed { id });
                        } else {
                            r.disk.entry(id.clone()).or_default();
                            r.planner.handle(
                                now,
                                Event::InfoHeld {
                                    shape: pkgs[&id].shape,
                                    id,
                                },
                            );
                        }
                    }
                    Action::FetchFragment { id, index, .. } => {
                        if corrupted {
                            r.planner.handle(now, Event::FragmentFailed { id, index });
                        } else {
                            let held = r.disk.entry(id.clone()).or_default();
                            assert!(
                                held.insert(index),
                                "seed {seed}: {id} fragment {index} fetched twice"
                            );
                            r.planner.handle(now, Event::FragmentHeld { id, index });
                        }
                    }
                    Action::FetchDelta { id, .. } => {
                        if corrupted || rng.chance(30) {
                            r.planner.handle(now, Event::DeltaFailed { id });
                        } else {
                            let held = r.disk.entry(id.clone()).or_default();
                            let indices: Vec<u32> = (1..=pkgs[&id].shape.count)
                                .filter(|i| !held.contains(i))
                                .filter(|_| !rng.chance(20))
                                .collect();
                            held.extend(indices.iter().copied());
                            r.planner.handle(now, Event::DeltaHeld { id, indices });
                        }
                    }
                    Action::Drop { .. } => unreachable!(),
                }
            }
            // Turbulence.
            if t < calm && r.connected && rng.chance(1) {
                if rng.chance(50) {
                    r.planner.handle(now, Event::Disconnected);
                    r.epoch += 1;
                    r.in_flight.clear();
                } else {
                    restart(r, now, &pkgs);
                }
                r.connected = false;
                r.activation_at = None;
                r.reconnect_at = Some(t + Duration::from_secs(1 + rng.below(900)));
            }
            if r.reconnect_at.is_some_and(|at| at <= t) {
                r.reconnect_at = None;
                r.connected = true;
                r.planner.handle(now, Event::Connected);
                r.activation_at = Some(t + Duration::from_secs(rng.below(30)));
            }
            if r.connected && r.activation_at.is_some_and(|at| at <= t) {
                r.activation_at = None;
                r.planner
                    .handle(now, Event::Activated(wanted(&sites[r.site])));
            }
            let evictable = r.planner.evictable();
            let told = r.connected && r.activation_at.is_none();
            assert!(
                told || evictable.is_none(),
                "seed {seed}: evictable while the activated set is unknown"
            );
            // The quota, on what the disk holds (an info counts one byte).
            let usage: BTreeMap<PackageId, u64> = match r.quota {
                Some(_) => r
                    .disk
                    .iter()
                    .map(|(id, held)| {
                        let bytes: u64 = held.iter().map(|i| pkgs[id].shape.len(*i)).sum();
                        (id.clone(), bytes + 1)
                    })
                    .collect(),
                None => BTreeMap::new(),
            };
            let decision = r
                .eviction
                .decide(&usage, r.quota, evictable.as_deref(), |_| None);
            for id in decision.evict {
                assert!(
                    told,
                    "seed {seed}: {id} evicted while the activated set is unknown"
                );
                assert!(
                    !sites[r.site].iter().any(|p| p.id == id),
                    "seed {seed}: {id} evicted, but the site has it activated"
                );
                assert!(
                    sites[r.site]
                        .iter()
                        .any(|p| p.supersedes.as_ref() == Some(&id)),
                    "seed {seed}: {id} evicted, but it is no delta base"
                );
                r.planner.handle(now, Event::Evict { id });
                evictions += 1;
            }
            // Actions.
            while let Some(action) = r.planner.poll_action(now) {
                match &action {
                    Action::Drop { id } => {
                        r.disk.remove(id);
                        continue;
                    }
                    Action::FetchFragment { id, index, len } => {
                        assert!(
                            !r.disk.get(id).is_some_and(|h| h.contains(index)),
                            "seed {seed}: asked for {id} fragment {index}, which is held"
                        );
                        let priority = pkgs[id].priority;
                        let open = r
                            .config
                            .schedule
                            .as_ref()
                            .is_none_or(|s| s.admits(now.wall));
                        assert!(
                            open || priority == 0,
                            "seed {seed}: {id} fragment {index} started outside the window at {}",
                            now.wall
                        );
                        assert_eq!(*len, pkgs[id].shape.len(*index));
                        r.starts.push((t, *len));
                    }
                    Action::FetchDelta { id, base, lacking } => {
                        let base_shape = pkgs[base].shape;
                        assert_eq!(
                            r.disk.get(base).map(BTreeSet::len),
                            Some(base_shape.count as usize),
                            "seed {seed}: delta of {id} asked against {base}, not held whole"
                        );
                        assert_eq!(pkgs[id].supersedes.as_ref(), Some(base));
                        assert!(
                            !r.in_flight.iter().any(|(_, e, a)| *e == r.epoch
                                && matches!(a, Action::FetchFragment { id: f, .. } if f == id)),
                            "seed {seed}: delta of {id} asked while its fragments are in flight"
                        );
                        let held = r.disk.get(id).cloned().unwrap_or_default();
                        let expected: u64 = (1..=pkgs[id].shape.count)
                            .filter(|i| !held.contains(i))
                            .map(|i| pkgs[id].shape.len(i))
                            .sum();
                        assert_eq!(*lacking, expected, "seed {seed}: {id} lacking bytes");
                        deltas += 1;
                        r.starts.push((t, *lacking));
                    }
                    Action::FetchInfo { .. } => {}
                }
                let latency = Duration::from_millis(5 + rng.below(300));
                r.in_flight.push((t + latency, r.epoch, action));
            }
        }
        // The next moment anything happens.
        let mut next = end;
        if next_change < calm {
            next = next.min(next_change);
        }
        for r in &relays {
            for (at, _, _) in &r.in_flight {
                next = next.min(*at);
            }
            if let Some(at) = r.reconnect_at {
                next = next.min(at);
            }
            if let Some(at) = r.activation_at {
                next = next.min(at);
            }
            if let Some(at) = r.planner.poll_timeout(now) {
                next = next.min(at);
            }
        }
        // Turbulence needs time to pass even when nothing is scheduled.
        if t < calm {
            next = next.min(t + Duration::from_secs(60));
        }
        t = next.max(t + Duration::from_millis(1));
    }

    for (i, r) in relays.iter().enumerate() {
        let want = &sites[r.site];
        assert!(
            r.planner.converged(),
            "seed {seed}: relay {i} did not converge: {:?}",
            r.planner.progress()
        );
        let mut held: BTreeMap<PackageId, BTreeSet<u32>> = want
            .iter()
            .map(|p| (p.id.clone(), (1..=p.shape.count).collect()))
            .collect();
        for base in r.planner.kept() {
            assert!(
                want.iter().any(|p| p.supersedes.as_ref() == Some(&base)),
                "seed {seed}: relay {i} keeps {base}, which nothing wanted supersedes"
            );
            held.insert(base.clone(), (1..=pkgs[&base].shape.count).collect());
        }
        assert_eq!(
            r.disk, held,
            "seed {seed}: relay {i} holds something else than its site's set and its bases"
        );
        if let Some(cap) = r.config.max_rate {
            let max_fragment = pkgs.values().map(|p| p.shape.fragment_size).max().unwrap();
            for (k, (t0, _)) in r.starts.iter().enumerate() {
                let window: Vec<u64> = r.starts[k..]
                    .iter()
                    .take_while(|(t, _)| *t < *t0 + Duration::from_secs(1))
                    .map(|(_, len)| *len)
                    .collect();
                let in_window: u64 = window.iter().sum();
                let largest = window.iter().copied().max().unwrap_or(0).max(max_fragment);
                assert!(
                    in_window <= cap + largest,
                    "seed {seed}: relay {i} started {in_window} bytes in one second (cap {cap})"
                );
            }
        }
    }
    Counts { deltas, evictions }
}

#[test]
fn relays_converge_within_windows_and_caps_without_duplicate_fetches() {
    let counts: Vec<Counts> = (1..=40).map(simulate).collect();
    let deltas: u64 = counts.iter().map(|c| c.deltas).sum();
    let evictions: u64 = counts.iter().map(|c| c.evictions).sum();
    // The seeds exercise deltas and evictions, not only plain fragments.
    assert!(deltas > 100, "only {deltas} deltas in 40 seeds");
    assert!(evictions > 20, "only {evictions} evictions in 40 seeds");
}
