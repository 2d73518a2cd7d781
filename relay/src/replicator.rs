//! The one task that owns replication for the relay's whole life, connected or
//! not (quinn's `ConnectionDriver`, mini-redis's `Db` owner): the planner, what
//! is held and wanted, the disk quota and the health. It reacts to the link
//! ([`LinkEvent`]), finished fetches, the scrubber's findings, imports, agents
//! served, configuration changes and its timers, and publishes a [`Snapshot`]
//! the HTTP server and the link's reports read.
//!
//! The planner lives as long as this task: a lost connection is its
//! [`Event::Disconnected`] (what was in flight is asked for again, what was held
//! stays held), not a fresh planner. The planner hears `Connected` only with
//! the connection's first activated set, so nothing is fetched on the word of
//! an earlier connection; the quota evicts only on a current activated set
//! ([`Planner::evictable`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;

use sitecast_common::eviction::Eviction;
use sitecast_common::fragment::{sha256_hex, FragmentPlan};
use sitecast_common::ids::PackageId;
use sitecast_common::replication::{Action, Event, Planner, PlannerConfig, Wanted};
use sitecast_common::signing;
use sitecast_common::wire::RelayHealth;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::fetch::{self, DeltaWanted, Fetcher, Meter};
use crate::quota::Needed;
use crate::scrub::{ScrubRecord, Scrubbed};
use crate::snapshot::{Holding, Served, Snapshot};
use crate::upstream::{LinkEvent, Upstream};
use sitecast_io::blocking;

/// Fragments in flight at once over parallel streams.
pub const PARALLEL_FRAGMENTS: usize = 4;
/// How often imports, the quota and the health are looked at.
const TICK: Duration = Duration::from_secs(1);
/// Cache usage and free space are measured at least this often, and at the
/// next tick whenever holdings change.
const MEASURE_EVERY: Duration = Duration::from_secs(30);

/// The replication settings of a relay's configuration.
pub fn planner_config(config: &RelayConfig) -> PlannerConfig {
    PlannerConfig {
        parallel: PARALLEL_FRAGMENTS,
        schedule: config.schedule.clone().filter(|s| !s.is_empty()),
        max_rate: config.max_rate.and_then(|r| r.bytes_per_sec()),
    }
}

/// The quota and scrub settings of `relay.toml` (re-read on change, like the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Quota on the cache's bytes (`None`: unlimited).
    pub max_disk: Option<u64>,
    /// Time between scrubs (`None`: never).
    pub scrub_every: Option<Duration>,
}

impl Settings {
    pub fn of(config: &RelayConfig) -> Self {
        Self {
            max_disk: config.max_disk_bytes(),
            scrub_every: config.scrub_every(),
        }
    }
}

/// What the replicator is started with.
pub struct Setup {
    pub dir: PathBuf,
    pub cache: Arc<Cache>,
    pub config: RelayConfig,
    pub clock: Arc<dyn Clock>,
}

/// How the rest of the relay talks to the replicator.
pub struct Handles {
    /// For the link: connections, activated sets, wakes.
    pub link: mpsc::UnboundedSender<LinkEvent>,
    /// For the HTTP server: what agents were served.
    pub served: mpsc::UnboundedSender<Served>,
    /// For the configuration watcher: `relay.toml` as last read.
    pub config: watch::Sender<RelayConfig>,
    /// What the replicator publishes.
    pub snapshot: watch::Receiver<Snapshot>,
}

/// The receiving ends, polled by [`Replicator::run`] only.
pub struct Inbox {
    link: mpsc::UnboundedReceiver<LinkEvent>,
    served: mpsc::UnboundedReceiver<Served>,
    received: mpsc::UnboundedReceiver<u64>,
    scrubbed: mpsc::UnboundedReceiver<Scrubbed>,
    config: watch::Receiver<RelayConfig>,
}

/// What one package's replication has reached on disk.
#[derive(Debug, Clone)]
struct Held {
    info_sha256: String,
    fragments: BTreeSet<u32>,
}

/// A measurement of the cache: bytes per package and free bytes.
type Measured = (Result<BTreeMap<PackageId, u64>, RelayError>, Option<u64>);

/// What woke the loop.
enum Step {
    Stop,
    Link(LinkEvent),
    Served(Served),
    Received(u64),
    Scrubbed(Scrubbed),
    Config(RelayConfig),
    Fetched(Result<Result<Event, RelayError>, JoinError>),
    Measured(Result<Measured, JoinError>),
    Tick,
    Timeout,
}

/// The owner of the relay's replication state.
pub struct Replicator {
    dir: PathBuf,
    cache: Arc<Cache>,
    clock: Arc<dyn Clock>,
    planner: Planner,
    settings: Settings,
    wol_port: u16,
    /// The connection, while there is one.
    upstream: Option<Arc<dyn Upstream>>,
    /// Central's signing keys from the last welcome.
    keys: Vec<VerifyingKey>,
    /// Verified fragment plans of the packages held.
    plans: HashMap<PackageId, FragmentPlan>,
    /// The signed info each activated package must have.
    wanted_sha: HashMap<PackageId, String>,
    held: BTreeMap<PackageId, Held>,
    needed: Needed,
    eviction: Eviction,
    usage: BTreeMap<PackageId, u64>,
    measured: Option<Instant>,
    /// Holdings changed since the last measurement began.
    moved: bool,
    measuring: JoinSet<Measured>,
    warned_over: bool,
    evicted: u64,
    health: RelayHealth,
    bytes_from_central: u64,
    bytes_to_agents: u64,
    fetches: JoinSet<Result<Event, RelayError>>,
    meter: Meter,
    snapshot: watch::Sender<Snapshot>,
    scrub_every: watch::Sender<Option<Duration>>,
    scrub_out: mpsc::UnboundedSender<Scrubbed>,
}

impl Replicator {
    /// A replicator resuming from what the cache holds (trusted for holdings
    /// and health now; re-verified against central's keys at each connection).
    pub fn new(setup: Setup) -> Result<(Self, Inbox, Handles), RelayError> {
        let Setup {
            dir,
            cache,
            config,
            clock,
        } = setup;
        let mut held = BTreeMap::new();
        for id in cache.packages()? {
            if let Some(envelope) = cache.info(&id)? {
                let fragments = cache.fragments_held(&id)?;
                held.insert(
                    id,
                    Held {
                        info_sha256: sha256_hex(&envelope),
                        fragments,
                    },
                );
            }
        }
        let (link_tx, link) = mpsc::unbounded_channel();
        let (served_tx, served) = mpsc::unbounded_channel();
        let (received_tx, received) = mpsc::unbounded_channel();
        let (scrub_out, scrubbed) = mpsc::unbounded_channel();
        let settings = Settings::of(&config);
        let (config_tx, config_rx) = watch::channel(config.clone());
        let snapshot = Snapshot::default();
        let (snapshot_tx, snapshot_rx) = watch::channel(snapshot.clone());
        let replicator = Self {
            planner: Planner::new(planner_config(&config)),
            needed: Needed::load(&dir),
            dir,
            cache,
            clock,
            settings,
            wol_port: config.wol_port(),
            upstream: None,
            keys: Vec::new(),
            plans: HashMap::new(),
            wanted_sha: HashMap::new(),
            held,
            eviction: Eviction::new(),
            usage: BTreeMap::new(),
            measured: None,
            moved: true,
            measuring: JoinSet::new(),
            warned_over: false,
            evicted: 0,
            health: snapshot.health,
            bytes_from_central: 0,
            bytes_to_agents: 0,
            fetches: JoinSet::new(),
            meter: Meter::new(received_tx),
            snapshot: snapshot_tx,
            scrub_every: watch::Sender::new(settings.scrub_every),
            scrub_out,
        };
        let inbox = Inbox {
            link,
            served,
            received,
            scrubbed,
            config: config_rx,
        };
        let handles = Handles {
            link: link_tx,
            served: served_tx,
            config: config_tx,
            snapshot: snapshot_rx,
        };
        Ok((replicator, inbox, handles))
    }

    /// Runs until `stop` turns true, with the scrubber beside it.
    pub async fn run(mut self, mut inbox: Inbox, mut stop: watch::Receiver<bool>) {
        let scrubber = tokio::spawn(crate::scrub::run(
            Arc::clone(&self.cache),
            self.dir.clone(),
            self.scrub_every.subscribe(),
            self.scrub_out.clone(),
            stop.clone(),
        ));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.perform().await;
            self.publish();
            let now = self.clock.now();
            // Wake at least every second so a moved wall clock (or a window
            // opening) is noticed promptly.
            let wait = self
                .planner
                .poll_timeout(now)
                .map_or(TICK, |t| t.saturating_sub(now.mono))
                .min(TICK);
            let step = tokio::select! {
                _ = stop.wait_for(|s| *s) => Step::Stop,
                Some(e) = inbox.link.recv() => Step::Link(e),
                Some(s) = inbox.served.recv() => Step::Served(s),
                Some(n) = inbox.received.recv() => Step::Received(n),
                Some(s) = inbox.scrubbed.recv() => Step::Scrubbed(s),
                Ok(()) = inbox.config.changed() => Step::Config(inbox.config.borrow_and_update().clone()),
                Some(done) = self.fetches.join_next() => Step::Fetched(done),
                Some(done) = self.measuring.join_next() => Step::Measured(done),
                _ = tick.tick() => Step::Tick,
                () = tokio::time::sleep(wait) => Step::Timeout,
            };
            match step {
                Step::Stop => break,
                Step::Link(e) => self.on_link(e).await,
                Step::Served(s) => {
                    self.bytes_to_agents += s.bytes;
                    self.needed.mark(&s.id, crate::clock::timestamp());
                }
                Step::Received(n) => self.bytes_from_central += n,
                Step::Scrubbed(s) => self.on_scrubbed(s),
                Step::Config(c) => self.on_config(&c),
                Step::Fetched(done) => self.on_fetched(done),
                Step::Measured(done) => self.on_measured(done),
                Step::Tick => self.housekeep().await,
                Step::Timeout => {}
            }
        }
        self.fetches.abort_all();
        self.flush_needed();
        let _ = scrubber.await;
    }

    fn fetcher(&self) -> Option<Fetcher> {
        Some(Fetcher {
            upstream: Arc::clone(self.upstream.as_ref()?),
            cache: Arc::clone(&self.cache),
            meter: self.meter.clone(),
        })
    }

    /// The connection is no longer to be trusted: close it (the link then
    /// reports it down and connects again).
    fn lose_link(&self, e: &RelayError) {
        tracing::warn!(error = %e, "link to central lost");
        if let Some(upstream) = &self.upstream {
            upstream.close();
        }
    }

    async fn on_link(&mut self, event: LinkEvent) {
        let now = self.clock.now();
        match event {
            LinkEvent::Connected { upstream, keys } => {
                self.upstream = Some(upstream);
                self.keys = keys;
                if let Err(e) = self.resume().await {
                    self.lose_link(&e);
                }
            }
            LinkEvent::Keys(keys) => {
                // What the old keys alone signed (a revoked key's) is dropped
                // and fetched again, signed anew.
                self.keys = keys;
                if let Err(e) = self.resume().await {
                    self.lose_link(&e);
                }
            }
            LinkEvent::Activated(wanted) => {
                if self.upstream.is_none() {
                    return;
                }
                self.activated(wanted);
            }
            LinkEvent::Wake(targets) => {
                let port = self.wol_port;
                // On its own task: the repeats must not hold up anything else.
                tokio::spawn(async move {
                    if let Err(e) = crate::wol::wake(&targets, port).await {
                        tracing::warn!(error = %e, "cannot send Wake-on-LAN packets");
                    }
                });
            }
            LinkEvent::Disconnected => {
                self.upstream = None;
                // What finished is on disk and counts; the rest is lost.
                self.fetches.abort_all();
                while let Some(done) = self.fetches.join_next().await {
                    let finished = done.ok().and_then(Result::ok).filter(|e| {
                        matches!(
                            e,
                            Event::InfoHeld { .. }
                                | Event::FragmentHeld { .. }
                                | Event::DeltaHeld { .. }
                        )
                    });
                    if let Some(event) = finished {
                        if let Err(e) = self.fetched(event) {
                            tracing::warn!(error = %e, "a fetch finished as the link went down");
                        }
                    }
                }
                self.planner.handle(now, Event::Disconnected);
            }
        }
    }

    /// Tells the planner what the cache holds, trusting only infos that verify
    /// against the keys of this connection's welcome.
    async fn resume(&mut self) -> Result<(), RelayError> {
        for id in self.cache.packages()? {
            let verified = self.cache.info(&id)?.and_then(|envelope| {
                signing::verify_info(&envelope, &self.keys)
                    .ok()
                    .map(|i| (envelope, i))
            });
            let now = self.clock.now();
            match verified {
                Some((envelope, info)) if info.id() == &id => {
                    let held = self.cache.fragments_held(&id)?;
                    let info_sha256 = sha256_hex(&envelope);
                    self.held.insert(
                        id.clone(),
                        Held {
                            info_sha256: info_sha256.clone(),
                            fragments: held.clone(),
                        },
                    );
                    self.planner.handle(
                        now,
                        Event::Restored {
                            id: id.clone(),
                            info_sha256,
                            shape: fetch::shape_of(&info),
                            held,
                        },
                    );
                    self.plans.insert(id, info.plan().clone());
                }
                _ => {
                    tracing::warn!(package = %id, "cached info does not verify; dropping it");
                    let (cache, gone) = (Arc::clone(&self.cache), id.clone());
                    blocking(move || cache.remove(&gone)).await?;
                    self.forget(&id);
                    self.planner.handle(now, Event::InfoLost { id });
                }
            }
        }
        Ok(())
    }

    fn activated(&mut self, wanted: Vec<Wanted>) {
        let now = self.clock.now();
        // Needed now: what is activated, and what just stopped being.
        let at = crate::clock::timestamp();
        for id in self.wanted_sha.keys().chain(wanted.iter().map(|w| &w.id)) {
            self.needed.mark(id, at);
        }
        self.wanted_sha = wanted
            .iter()
            .map(|w| (w.id.clone(), w.info_sha256.clone()))
            .collect();
        if !self.planner.connected() {
            self.planner.handle(now, Event::Connected);
        }
        self.planner.handle(now, Event::Activated(wanted));
    }

    fn forget(&mut self, id: &PackageId) {
        self.held.remove(id);
        self.plans.remove(id);
        self.moved = true;
    }

    /// Performs what the planner asks for now.
    async fn perform(&mut self) {
        let now = self.clock.now();
        while let Some(action) = self.planner.poll_action(now) {
            match action {
                Action::Drop { id } => {
                    tracing::info!(package = %id, "dropping content no longer activated");
                    let (cache, gone) = (Arc::clone(&self.cache), id.clone());
                    match blocking(move || cache.remove(&gone)).await {
                        Ok(()) => self.forget(&id),
                        Err(e) => {
                            // As a fetch that broke: a connection's resume
                            // restores it and the planner drops it again.
                            tracing::error!(package = %id, error = %e, "cannot drop content");
                            if let Some(upstream) = &self.upstream {
                                upstream.close();
                            }
                        }
                    }
                }
                Action::FetchDelta { id, base, lacking } => {
                    self.needed.mark(&base, crate::clock::timestamp());
                    let plans = (self.plans.get(&id).cloned(), self.plans.get(&base).cloned());
                    let (Some(f), (Some(target_plan), Some(base_plan))) = (self.fetcher(), plans)
                    else {
                        self.fetches
                            .spawn(async move { Ok(Event::DeltaFailed { id }) });
                        continue;
                    };
                    let wanted = DeltaWanted {
                        id,
                        base,
                        lacking,
                        target_plan,
                        base_plan,
                        max_rate: self.planner.config().max_rate,
                    };
                    self.fetches
                        .spawn(async move { fetch::delta(&f, wanted).await });
                }
                Action::FetchInfo { id } => {
                    let Some(f) = self.fetcher() else {
                        self.fetches
                            .spawn(async move { Ok(Event::InfoFailed { id }) });
                        continue;
                    };
                    let (keys, expected) = (self.keys.clone(), self.wanted_sha.get(&id).cloned());
                    self.fetches
                        .spawn(async move { fetch::info(&f, &keys, id, expected).await });
                }
                Action::FetchFragment { id, index, .. } => {
                    let (Some(f), Some(plan)) = (self.fetcher(), self.plans.get(&id).cloned())
                    else {
                        self.fetches
                            .spawn(async move { Ok(Event::FragmentFailed { id, index }) });
                        continue;
                    };
                    self.fetches
                        .spawn(async move { fetch::fragment(&f, id, index, &plan).await });
                }
            }
        }
    }

    fn on_fetched(&mut self, done: Result<Result<Event, RelayError>, JoinError>) {
        let result = done
            .map_err(RelayError::from)
            .and_then(|r| r)
            .and_then(|event| self.fetched(event));
        if let Err(e) = result {
            self.lose_link(&e);
        }
    }

    /// Records what a fetch brought and tells the planner.
    fn fetched(&mut self, event: Event) -> Result<(), RelayError> {
        match &event {
            Event::InfoHeld { id, .. } => {
                if let Some(envelope) = self.cache.info(id)? {
                    if let Ok(info) = signing::verify_info(&envelope, &self.keys) {
                        // Fragments imported meanwhile are on disk already.
                        let fragments = self.cache.fragments_held(id)?;
                        self.plans.insert(id.clone(), info.plan().clone());
                        self.held.insert(
                            id.clone(),
                            Held {
                                info_sha256: sha256_hex(&envelope),
                                fragments,
                            },
                        );
                        self.moved = true;
                    }
                }
            }
            Event::FragmentHeld { id, index } => self.add_fragments(id, [*index]),
            Event::DeltaHeld { id, indices } => self.add_fragments(id, indices.iter().copied()),
            _ => {}
        }
        self.planner.handle(self.clock.now(), event);
        Ok(())
    }

    fn add_fragments(&mut self, id: &PackageId, indices: impl IntoIterator<Item = u32>) {
        if let Some(h) = self.held.get_mut(id) {
            h.fragments.extend(indices);
        }
        self.moved = true;
    }

    fn on_scrubbed(&mut self, scrubbed: Scrubbed) {
        let now = self.clock.now();
        match scrubbed {
            Scrubbed::Found(found) => {
                for (id, index) in found.bad_fragments {
                    if let Some(h) = self.held.get_mut(&id) {
                        h.fragments.remove(&index);
                    }
                    self.moved = true;
                    self.planner.handle(now, Event::Lost { id, index });
                }
                for id in found.bad_infos {
                    self.held.remove(&id);
                    self.moved = true;
                    self.planner.handle(now, Event::InfoLost { id });
                }
            }
            Scrubbed::Record(record) => self.scrub_record(&record),
        }
    }

    fn scrub_record(&mut self, record: &ScrubRecord) {
        self.health.last_scrub = record.last_scrub;
        self.health.scrub_bad = record.last_bad;
        self.health.scrub_bad_total = record.bad_total;
    }

    fn on_config(&mut self, config: &RelayConfig) {
        let c = planner_config(config);
        tracing::info!(schedule = ?c.schedule.as_ref().map(ToString::to_string), max_rate = ?c.max_rate, "replication settings changed");
        self.planner.handle(self.clock.now(), Event::Config(c));
        let next = Settings::of(config);
        if next != self.settings {
            tracing::info!(max_disk = ?next.max_disk, scrub_every = ?next.scrub_every, "quota and scrub settings changed");
            self.settings = next;
            // Health shows the new settings before the scrubber acts on them.
            self.health.max_disk = next.max_disk;
            self.health.scrub_interval_s = next.scrub_every.map(|d| d.as_secs());
            self.scrub_every.send_replace(next.scrub_every);
        }
    }

    /// Once a second: imports taken up, the cache measured when it moved, the
    /// quota applied, last-needed times written.
    async fn housekeep(&mut self) {
        // Imports first: what was taken up is measured below.
        for id in crate::import::pending(&self.dir) {
            if let Err(e) = self.take_up(&id).await {
                // The content stays in the cache: the next start restores it.
                tracing::error!(package = %id, error = %e, "cannot take up an imported package");
            }
            crate::import::done(&self.dir, &id);
            self.measured = None;
        }
        let stale = self.measured.is_none_or(|t| t.elapsed() >= MEASURE_EVERY);
        if (stale || self.moved) && self.measuring.is_empty() {
            self.moved = false;
            self.measured = Some(Instant::now());
            let cache = Arc::clone(&self.cache);
            self.measuring.spawn_blocking(move || {
                let usage = cache.usage();
                (usage, free_space(cache.root()))
            });
        }
        // Only on a measurement of the cache as it is now.
        if self.measuring.is_empty() && !self.moved {
            self.quota();
        }
        self.health.max_disk = self.settings.max_disk;
        self.health.kept = self.planner.evictable().unwrap_or_default();
        self.health.evicted = self.evicted;
        self.health.scrub_interval_s = self.settings.scrub_every.map(|d| d.as_secs());
        self.flush_needed();
    }

    fn on_measured(&mut self, done: Result<Measured, JoinError>) {
        match done {
            Ok((usage, free)) => {
                match usage {
                    Ok(u) => self.usage = u,
                    Err(e) => tracing::warn!(error = %e, "cannot measure the cache"),
                }
                self.health.disk_used = self.usage.values().sum();
                self.health.disk_free = free;
                if !self.moved {
                    self.quota();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot measure the cache"),
        }
    }

    /// The quota: evicts kept bases, least recently needed first.
    fn quota(&mut self) {
        let max_disk = self.settings.max_disk;
        let kept = self.planner.evictable();
        let needed = &self.needed;
        let decision = self
            .eviction
            .decide(&self.usage, max_disk, kept.as_deref(), |id| needed.get(id));
        let used: u64 = self.usage.values().sum();
        let now = self.clock.now();
        for id in decision.evict {
            tracing::info!(package = %id, last_needed = ?self.needed.get(&id), used, max_disk = ?max_disk, "evicting a kept delta base for the disk quota");
            self.evicted += 1;
            self.planner.handle(now, Event::Evict { id });
        }
        let over = decision.over_quota;
        if over && !self.warned_over {
            tracing::warn!(used, max_disk = ?max_disk, "the content activated for this site alone exceeds max_disk; keeping it all");
        }
        self.warned_over = over;
        self.health.over_quota = over;
        self.health.kept = self.planner.evictable().unwrap_or_default();
        self.health.evicted = self.evicted;
    }

    fn flush_needed(&mut self) {
        let held: BTreeSet<PackageId> = self.usage.keys().cloned().collect();
        if let Err(e) = self.needed.flush(&held) {
            tracing::warn!(error = %e, "cannot write last-needed times");
        }
    }

    /// Takes up a package `import` committed: verified with the keys the relay
    /// knows, counted as held, and handed to the planner.
    async fn take_up(&mut self, id: &PackageId) -> Result<(), RelayError> {
        let (dir, cache, pid) = (self.dir.clone(), Arc::clone(&self.cache), id.clone());
        let (envelope, info, held) = blocking(move || {
            let keys = crate::keys::load(&dir)?;
            let envelope = cache.info(&pid)?.ok_or_else(|| RelayError::BadContent {
                package: pid.to_string(),
                reason: "imported, but its signed info is not in the cache any more".into(),
            })?;
            let info =
                signing::verify_info(&envelope, &keys).map_err(|e| RelayError::BadContent {
                    package: pid.to_string(),
                    reason: format!("imported, but its signed info does not verify: {e}"),
                })?;
            let held = cache.fragments_held(&pid)?;
            Ok::<_, RelayError>((envelope, info, held))
        })
        .await?;
        let info_sha256 = sha256_hex(&envelope);
        self.held.insert(
            id.clone(),
            Held {
                info_sha256: info_sha256.clone(),
                fragments: held.clone(),
            },
        );
        self.moved = true;
        self.plans.insert(id.clone(), info.plan().clone());
        tracing::info!(package = %id, fragments = held.len(), "taking up imported content");
        self.planner.handle(
            self.clock.now(),
            Event::Restored {
                id: id.clone(),
                info_sha256,
                shape: fetch::shape_of(&info),
                held,
            },
        );
        Ok(())
    }

    /// Publishes the snapshot if anything in it changed.
    fn publish(&mut self) {
        let now = self.clock.now();
        let next = Snapshot {
            holdings: self
                .held
                .iter()
                .map(|(id, h)| {
                    let holding = Holding {
                        info_sha256: h.info_sha256.clone(),
                        fragments: h.fragments.len() as u32,
                    };
                    (id.clone(), holding)
                })
                .collect(),
            window_open: self.planner.window_open(&now),
            max_rate: self.planner.config().max_rate.filter(|r| *r > 0),
            bytes_from_central: self.bytes_from_central,
            bytes_to_agents: self.bytes_to_agents,
            health: self.health.clone(),
        };
        self.snapshot.send_if_modified(|s| {
            let changed = *s != next;
            if changed {
                *s = next;
            }
            changed
        });
    }
}

/// Free bytes on the file system of `path`, for an unprivileged user.
fn free_space(path: &std::path::Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let (avail, frsize) = (
        u64::from(stat.blocks_available()),
        u64::from(stat.fragment_size()),
    );
    Some(avail.saturating_mul(frsize))
}
