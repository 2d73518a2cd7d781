//! The relay's replication planner: which signed info or fragment to fetch next,
//! inside which window, at what rate — a deterministic state machine in the shape
//! of quinn-proto. It reads no clock and does no I/O: the relay feeds it events
//! with the time ([`Now`]) and performs the [`Action`]s it answers, then calls
//! again at [`Planner::poll_timeout`]. A seeded simulation drives it with a virtual
//! clock (see the tests).
//!
//! Rules it keeps:
//! - **Priority order:** packages are served by priority (0 first), then id, and
//!   fragments in order; up to `parallel` requests are in flight at once.
//! - **Windows:** a fragment starts only while the schedule admits the wall time,
//!   except for packages of priority 0, which are urgent. A closing window lets the
//!   fragments in flight finish (a pause at the next fragment boundary); infos are
//!   control data and move at any time.
//! - **Cap:** fragment starts are paced by a virtual clock advanced by `len / rate`
//!   per fragment, so the bytes started in any one-second window never exceed the
//!   cap by more than one fragment.
//! - **No fragment twice:** a fragment is requested only when it is neither held
//!   nor in flight; a fetch cut by a disconnection is simply requested again.
//! - **Convergence:** the activated set is a full set (not a delta); anything held
//!   that is not in it is dropped — except a package held whole that a wanted
//!   package supersedes: it is *kept* as a delta base until the relay evicts it
//!   ([`Event::Evict`], the disk quota's call) or nothing wanted supersedes it.
//! - **Deltas:** a wanted package whose info is held, that lacks fragments, and
//!   whose base (the package it supersedes) is held whole, is first asked for as
//!   one delta ([`Action::FetchDelta`]), once, before any of its fragments; what
//!   the delta did not yield (declined, corrupt, wrong base) is fetched as plain
//!   fragments. A delta counts as one request in flight and is charged to the cap
//!   for the bytes it replaces.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::civil::DateTime;

use crate::constraint::TimeFrames;
use crate::ids::PackageId;

/// First pause after repeated failures of one package; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Consecutive failures of one package before it is paused.
pub const FAILURES_BEFORE_BACKOFF: u32 = 3;

/// A moment: monotonic time (for rates and timers) and local wall time (for windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Duration,
    pub wall: DateTime,
}

/// How a relay replicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannerConfig {
    /// Requests in flight at once.
    pub parallel: usize,
    /// When fragment bytes may move (`None`: always).
    pub schedule: Option<TimeFrames>,
    /// Cap on fragment bytes per second (`None`: unlimited).
    pub max_rate: Option<u64>,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            parallel: 4,
            schedule: None,
            max_rate: None,
        }
    }
}

/// A package the relay's site must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub id: PackageId,
    pub priority: u8,
    pub info_sha256: String,
    /// The package this one supersedes, a possible delta base.
    pub supersedes: Option<PackageId>,
}

/// The shape of a package's fragments, from its verified signed info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub size: u64,
    pub fragment_size: u64,
    pub count: u32,
}

impl Shape {
    /// Length of fragment `index` (1-based).
    pub fn len(&self, index: u32) -> u64 {
        let offset = u64::from(index.saturating_sub(1)) * self.fragment_size;
        self.fragment_size.min(self.size.saturating_sub(offset))
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The link is up; the full activated set follows as `Activated`.
    Connected,
    /// The link is down: everything in flight is lost.
    Disconnected,
    /// The complete set of packages activated for the site.
    Activated(Vec<Wanted>),
    /// Found on disk — at start, or put there by an import from offline media —
    /// a verified info and the fragments held. What a package already held is
    /// kept: the fragments are added to it.
    Restored {
        id: PackageId,
        info_sha256: String,
        shape: Shape,
        held: BTreeSet<u32>,
    },
    /// A signed info was fetched, verified and stored.
    InfoHeld {
        id: PackageId,
        shape: Shape,
    },
    InfoFailed {
        id: PackageId,
    },
    /// A fragment was fetched, matched its SHA-256, and was committed to disk.
    FragmentHeld {
        id: PackageId,
        index: u32,
    },
    FragmentFailed {
        id: PackageId,
        index: u32,
    },
    /// A delta was applied: these fragments matched their SHA-256 and were
    /// committed (the others, if any, are fetched as plain fragments).
    DeltaHeld {
        id: PackageId,
        indices: Vec<u32>,
    },
    /// No delta (declined by central, corrupt, or the base was not what central
    /// believes): the package goes on with plain fragments.
    DeltaFailed {
        id: PackageId,
    },
    /// A held fragment turned out bad on disk (the scrub) and was deleted.
    Lost {
        id: PackageId,
        index: u32,
    },
    /// A held signed info turned out bad on disk (the scrub) and the package's
    /// content was deleted: a wanted package starts over from its info.
    InfoLost {
        id: PackageId,
    },
    /// The relay needs the room: drop this kept delta base (ignored for a
    /// package the site wants).
    Evict {
        id: PackageId,
    },
    Config(PlannerConfig),
}

/// What the relay should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    FetchInfo {
        id: PackageId,
    },
    FetchFragment {
        id: PackageId,
        index: u32,
        len: u64,
    },
    /// Ask central for `id` as a delta against `base` (held whole); `lacking` is
    /// the fragment bytes it would replace: central declines a delta that is not
    /// smaller.
    FetchDelta {
        id: PackageId,
        base: PackageId,
        lacking: u64,
    },
    /// Delete the package's content: it is no longer activated for the site.
    Drop {
        id: PackageId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum InfoState {
    Missing,
    Fetching,
    Held(Shape),
}

/// Whether a package's delta was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeltaState {
    Untried,
    InFlight,
    Tried,
}

#[derive(Debug, Clone)]
struct Package {
    priority: u8,
    info_sha256: String,
    supersedes: Option<PackageId>,
    info: InfoState,
    held: BTreeSet<u32>,
    in_flight: BTreeSet<u32>,
    delta: DeltaState,
    failures: u32,
    paused_until: Option<Duration>,
}

impl Package {
    fn new(w: &Wanted) -> Self {
        Self {
            priority: w.priority,
            info_sha256: w.info_sha256.clone(),
            supersedes: w.supersedes.clone(),
            info: InfoState::Missing,
            held: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            delta: DeltaState::Untried,
            failures: 0,
            paused_until: None,
        }
    }

    /// Fragment bytes not held.
    fn lacking(&self) -> u64 {
        let InfoState::Held(shape) = self.info else {
            return 0;
        };
        (1..=shape.count)
            .filter(|i| !self.held.contains(i))
            .map(|i| shape.len(i))
            .sum()
    }

    fn complete(&self) -> bool {
        matches!(self.info, InfoState::Held(s) if self.held.len() as u64 == u64::from(s.count))
    }

    fn next_missing(&self) -> Option<u32> {
        let InfoState::Held(shape) = self.info else {
            return None;
        };
        (1..=shape.count).find(|i| !self.held.contains(i) && !self.in_flight.contains(i))
    }

    fn fail(&mut self, now: Duration) {
        self.failures += 1;
        if self.failures >= FAILURES_BEFORE_BACKOFF {
            let exp = (self.failures - FAILURES_BEFORE_BACKOFF).min(16);
            let pause = MIN_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
            self.paused_until = Some(now + pause);
        }
    }
}

/// Progress of one package, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub id: PackageId,
    pub info_sha256: String,
    /// Whether the verified info is held.
    pub info_held: bool,
    pub held: u32,
    pub total: Option<u32>,
}

/// The planner.
#[derive(Debug, Clone)]
pub struct Planner {
    config: PlannerConfig,
    connected: bool,
    /// Packages wanted by the site (known once `Activated` arrived).
    packages: BTreeMap<PackageId, Package>,
    /// Restored from disk but not (yet) known to be wanted.
    restored: BTreeMap<PackageId, Package>,
    /// Held whole, not wanted, but superseded by a wanted package: delta bases.
    kept: BTreeMap<PackageId, Package>,
    drops: Vec<PackageId>,
    in_flight: usize,
    /// The cap's virtual clock: no fragment starts before it.
    rate_clock: Duration,
    /// Set when work was held back only by the window, to wake at the next minute.
    waiting_for_window: bool,
    activated_once: bool,
    /// An activated set arrived since the link last came up: the planner's view
    /// of what is wanted and kept is current, not left over from an earlier link.
    activated_current: bool,
}

impl Planner {
    pub fn new(config: PlannerConfig) -> Self {
        Self {
            config,
            connected: false,
            packages: BTreeMap::new(),
            restored: BTreeMap::new(),
            kept: BTreeMap::new(),
            drops: Vec::new(),
            in_flight: 0,
            rate_clock: Duration::ZERO,
            waiting_for_window: false,
            activated_once: false,
            activated_current: false,
        }
    }

    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    /// Whether the schedule admits fragment bytes now.
    pub fn window_open(&self, now: &Now) -> bool {
        self.config
            .schedule
            .as_ref()
            .is_none_or(|s| s.is_empty() || s.admits(now.wall))
    }

    /// Whether the planner was told the link is up (and not down since).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether every wanted package is held whole.
    pub fn converged(&self) -> bool {
        self.activated_once
            && self.drops.is_empty()
            && self.restored.is_empty()
            && self.packages.values().all(Package::complete)
    }

    /// The delta bases kept though the site no longer wants them.
    pub fn kept(&self) -> Vec<PackageId> {
        self.kept.keys().cloned().collect()
    }

    /// The kept delta bases the disk quota may evict: `None` unless connected
    /// and told the activated set since (see [`crate::eviction`]).
    pub fn evictable(&self) -> Option<Vec<PackageId>> {
        (self.connected && self.activated_current).then(|| self.kept())
    }

    /// What is held of each wanted, restored or kept package.
    pub fn progress(&self) -> Vec<Progress> {
        self.packages
            .iter()
            .chain(self.restored.iter())
            .chain(self.kept.iter())
            .map(|(id, p)| Progress {
                id: id.clone(),
                info_sha256: p.info_sha256.clone(),
                info_held: matches!(p.info, InfoState::Held(_)),
                held: p.held.len() as u32,
                total: match p.info {
                    InfoState::Held(s) => Some(s.count),
                    _ => None,
                },
            })
            .collect()
    }

    fn settle(&mut self, id: &PackageId, index: Option<u32>) -> Option<&mut Package> {
        let p = self.packages.get_mut(id)?;
        let was = match index {
            Some(i) => p.in_flight.remove(&i),
            None => {
                let fetching = p.info == InfoState::Fetching;
                if fetching {
                    p.info = InfoState::Missing;
                }
                fetching
            }
        };
        if was {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.packages.get_mut(id)
    }

    fn settle_delta(&mut self, id: &PackageId) -> Option<&mut Package> {
        let p = self.packages.get_mut(id)?;
        if p.delta == DeltaState::InFlight {
            p.delta = DeltaState::Tried;
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.packages.get_mut(id)
    }

    /// Whether `base` is held whole (wanted or kept): a delta can be applied to it.
    fn base_whole(&self, base: &PackageId) -> bool {
        self.packages
            .get(base)
            .or_else(|| self.kept.get(base))
            .is_some_and(Package::complete)
    }

    /// Keeps a package no longer wanted as a delta base if it is whole and a
    /// wanted package supersedes it; otherwise drops it.
    fn keep_or_drop(&mut self, id: PackageId, p: Package) {
        let base = p.complete()
            && self
                .packages
                .values()
                .any(|w| w.supersedes.as_ref() == Some(&id));
        if base {
            let mut p = p;
            p.in_flight.clear();
            p.delta = DeltaState::Untried;
            self.kept.insert(id, p);
        } else if !self.drops.contains(&id) {
            self.drops.push(id);
        }
    }

    fn drop_stray(&mut self, id: PackageId) {
        if !self.restored.contains_key(&id) && !self.drops.contains(&id) {
            self.drops.push(id);
        }
    }

    pub fn handle(&mut self, now: Now, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.activated_current = false;
            }
            Event::Disconnected => {
                self.connected = false;
                self.activated_current = false;
                self.in_flight = 0;
                for p in self.packages.values_mut() {
                    p.in_flight.clear();
                    if p.info == InfoState::Fetching {
                        p.info = InfoState::Missing;
                    }
                    if p.delta == DeltaState::InFlight {
                        p.delta = DeltaState::Untried;
                    }
                }
            }
            Event::Activated(wanted) => {
                self.activated_once = true;
                self.activated_current = true;
                let mut next = BTreeMap::new();
                for w in &wanted {
                    let current = self
                        .packages
                        .remove(&w.id)
                        .or_else(|| self.restored.remove(&w.id))
                        .or_else(|| self.kept.remove(&w.id));
                    let keep = match current {
                        Some(p) if p.info_sha256 == w.info_sha256 => {
                            let mut p = p;
                            p.priority = w.priority;
                            p.supersedes = w.supersedes.clone();
                            p
                        }
                        Some(_) => {
                            // Same id, other content: start over from nothing.
                            self.drops.push(w.id.clone());
                            Package::new(w)
                        }
                        None => Package::new(w),
                    };
                    next.insert(w.id.clone(), keep);
                }
                let leaving: Vec<(PackageId, Package)> = std::mem::take(&mut self.packages)
                    .into_iter()
                    .chain(std::mem::take(&mut self.restored))
                    .chain(std::mem::take(&mut self.kept))
                    .collect();
                self.packages = next;
                for (id, p) in leaving {
                    self.in_flight = self.in_flight.saturating_sub(
                        p.in_flight.len()
                            + usize::from(p.info == InfoState::Fetching)
                            + usize::from(p.delta == DeltaState::InFlight),
                    );
                    self.keep_or_drop(id, p);
                }
            }
            Event::Restored {
                id,
                info_sha256,
                shape,
                held,
            } => {
                let mut p = Package::new(&Wanted {
                    id: id.clone(),
                    priority: u8::MAX,
                    info_sha256,
                    supersedes: None,
                });
                p.info = InfoState::Held(shape);
                p.held = held
                    .into_iter()
                    .filter(|i| *i >= 1 && *i <= shape.count)
                    .collect();
                if let Some(w) = self
                    .packages
                    .get_mut(&id)
                    .or_else(|| self.kept.get_mut(&id))
                    .or_else(|| self.restored.get_mut(&id))
                {
                    // Known already (an import while running): add what is on disk.
                    if w.info_sha256 == p.info_sha256 {
                        if w.info == InfoState::Missing {
                            w.info = p.info;
                        }
                        if matches!(w.info, InfoState::Held(s) if s == shape)
                            || w.info == InfoState::Fetching
                        {
                            w.held.extend(p.held);
                        }
                    }
                } else if self.activated_once {
                    // Restored after the activated set arrived: keep it only if wanted.
                    self.keep_or_drop(id, p);
                } else {
                    self.restored.insert(id, p);
                }
            }
            Event::InfoHeld { id, shape } => match self.settle(&id, None) {
                Some(p) => {
                    p.info = InfoState::Held(shape);
                    p.failures = 0;
                }
                // It finished after the package was dropped: drop what it wrote.
                None => self.drop_stray(id),
            },
            Event::InfoFailed { id } => {
                if let Some(p) = self.settle(&id, None) {
                    p.fail(now.mono);
                }
            }
            Event::FragmentHeld { id, index } => match self.settle(&id, Some(index)) {
                Some(p) => {
                    p.held.insert(index);
                    p.failures = 0;
                }
                None => self.drop_stray(id),
            },
            Event::FragmentFailed { id, index } => {
                if let Some(p) = self.settle(&id, Some(index)) {
                    p.fail(now.mono);
                }
            }
            Event::DeltaHeld { id, indices } => match self.settle_delta(&id) {
                Some(p) => {
                    if let InfoState::Held(shape) = p.info {
                        p.held
                            .extend(indices.into_iter().filter(|i| *i >= 1 && *i <= shape.count));
                    }
                    p.failures = 0;
                }
                None => self.drop_stray(id),
            },
            Event::DeltaFailed { id } => {
                self.settle_delta(&id);
            }
            Event::Lost { id, index } => {
                if let Some(p) = self
                    .packages
                    .get_mut(&id)
                    .or_else(|| self.restored.get_mut(&id))
                {
                    p.held.remove(&index);
                } else if let Some(mut p) = self.kept.remove(&id) {
                    // A base missing a fragment is no base: drop it.
                    p.held.remove(&index);
                    self.keep_or_drop(id, p);
                }
            }
            Event::InfoLost { id } => {
                if let Some(p) = self.packages.get_mut(&id) {
                    // Its info is fetched again (one in flight lands as usual).
                    if matches!(p.info, InfoState::Held(_)) {
                        p.info = InfoState::Missing;
                    }
                    p.held.clear();
                    p.delta = match p.delta {
                        DeltaState::InFlight => DeltaState::InFlight,
                        _ => DeltaState::Untried,
                    };
                    p.failures = 0;
                    p.paused_until = None;
                } else {
                    self.restored.remove(&id);
                    if self.kept.remove(&id).is_some() && !self.drops.contains(&id) {
                        self.drops.push(id);
                    }
                }
            }
            Event::Evict { id } => {
                if self.kept.remove(&id).is_some() && !self.drops.contains(&id) {
                    self.drops.push(id);
                }
            }
            Event::Config(config) => self.config = config,
        }
    }

    /// The next thing to do now, if any. Call until `None`, then wait for an
    /// event or [`Planner::poll_timeout`].
    pub fn poll_action(&mut self, now: Now) -> Option<Action> {
        if let Some(id) = self.drops.pop() {
            return Some(Action::Drop { id });
        }
        self.waiting_for_window = false;
        if !self.connected || self.in_flight >= self.config.parallel.max(1) {
            return None;
        }
        let window = self.window_open(&now);
        let mut order: Vec<(u8, PackageId)> = self
            .packages
            .iter()
            .map(|(id, p)| (p.priority, id.clone()))
            .collect();
        order.sort();
        for (_, id) in order {
            let Some(p) = self.packages.get_mut(&id) else {
                continue;
            };
            if p.paused_until.is_some_and(|t| now.mono < t) {
                continue;
            }
            p.paused_until = None;
            match p.info {
                InfoState::Fetching => continue,
                InfoState::Missing => {
                    p.info = InfoState::Fetching;
                    self.in_flight += 1;
                    return Some(Action::FetchInfo { id });
                }
                InfoState::Held(shape) => {
                    if p.delta == DeltaState::InFlight {
                        continue;
                    }
                    let Some(index) = p.next_missing() else {
                        continue;
                    };
                    if !window && p.priority != 0 {
                        self.waiting_for_window = true;
                        continue;
                    }
                    let base = p
                        .supersedes
                        .clone()
                        .filter(|_| p.delta == DeltaState::Untried && p.in_flight.is_empty());
                    if let Some(base) = base.filter(|b| self.base_whole(b)) {
                        let Some(p) = self.packages.get_mut(&id) else {
                            continue;
                        };
                        let lacking = p.lacking();
                        if let Some(rate) = self.config.max_rate.filter(|r| *r > 0) {
                            if now.mono < self.rate_clock {
                                return None;
                            }
                            self.rate_clock = self.rate_clock.max(now.mono)
                                + Duration::from_secs_f64(lacking as f64 / rate as f64);
                        }
                        p.delta = DeltaState::InFlight;
                        self.in_flight += 1;
                        return Some(Action::FetchDelta { id, base, lacking });
                    }
                    let Some(p) = self.packages.get_mut(&id) else {
                        continue;
                    };
                    let len = shape.len(index);
                    if let Some(rate) = self.config.max_rate.filter(|r| *r > 0) {
                        if now.mono < self.rate_clock {
                            // Held back by the cap: poll_timeout says when.
                            return None;
                        }
                        self.rate_clock = self.rate_clock.max(now.mono)
                            + Duration::from_secs_f64(len as f64 / rate as f64);
                    }
                    p.in_flight.insert(index);
                    self.in_flight += 1;
                    return Some(Action::FetchFragment { id, index, len });
                }
            }
        }
        None
    }

    /// When to call [`Planner::poll_action`] again if no event comes first.
    pub fn poll_timeout(&self, now: Now) -> Option<Duration> {
        if !self.connected {
            return None;
        }
        let mut next: Option<Duration> = None;
        let mut consider = |t: Duration| next = Some(next.map_or(t, |n| n.min(t)));
        let has_fragment_work = self
            .packages
            .values()
            .any(|p| !p.complete() && matches!(p.info, InfoState::Held(_)));
        if has_fragment_work && self.config.max_rate.is_some() && self.rate_clock > now.mono {
            consider(self.rate_clock);
        }
        for p in self.packages.values() {
            if let Some(t) = p.paused_until.filter(|t| *t > now.mono) {
                consider(t);
            }
        }
        if self.waiting_for_window {
            // Frames have minute resolution: look again at the next minute.
            let into = Duration::from_secs(now.wall.second().max(0) as u64)
                + Duration::from_nanos(now.wall.subsec_nanosecond().max(0) as u64);
            consider(now.mono + Duration::from_secs(60).saturating_sub(into));
        }
        next
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
