//! The relay's content lifecycle, beside replication: the disk quota
//! ([`crate::quota`]), the scrub ([`crate::scrub`]), content imported from
//! offline media ([`crate::import`]), and the health the relay reports.
//!
//! Two tasks run for the relay's whole life, connected or not: a once-a-second
//! *housekeeper* (imports taken up, cache usage measured, kept delta bases
//! evicted above `max_disk`, last-needed times written, health refreshed) and
//! the *scrubber*. They change the cache themselves and tell the replication
//! planner through [`Lifecycle::send`]: a channel that outlives connections, so
//! an event raised while the link is down reaches the planner of the next one
//! (which also restores from the cache, so nothing is lost either way).
//!
//! Evictions need the planner's view of what is a kept base; the link publishes
//! it ([`Lifecycle::publish_kept`]) while it runs a planner and withdraws it
//! when the connection ends, so nothing is evicted on stale knowledge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use sitecast_common::fragment::{sha256_hex, FragmentPlan};
use sitecast_common::ids::PackageId;
use sitecast_common::replication::{Event, Shape};
use sitecast_common::signing;
use sitecast_common::wire::{PublicKey, RelayHealth};
use tokio::sync::{mpsc, watch};

use crate::cache::Cache;
use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::link::Shared;
use crate::quota::{self, Candidate, Needed};
use crate::scrub::{self, ScrubRecord};

/// How often the housekeeper looks.
const TICK: Duration = Duration::from_secs(1);
/// Cache usage and free space are measured at least this often, and at once
/// whenever holdings change.
const MEASURE_EVERY: Duration = Duration::from_secs(30);

/// The lifecycle settings of `relay.toml` (re-read on change, like the schedule).
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

/// Lifecycle state shared by the link, the HTTP server and the tasks.
#[derive(Debug)]
pub struct Lifecycle {
    dir: PathBuf,
    /// When each package was last needed (eviction order).
    pub needed: Needed,
    health: Mutex<RelayHealth>,
    /// The planner's kept delta bases, while a planner runs.
    kept: Mutex<Option<Vec<PackageId>>>,
    events: mpsc::UnboundedSender<Event>,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    evicted: AtomicU64,
}

impl Lifecycle {
    /// The lifecycle state of the relay in `dir`.
    pub fn open(dir: &Path) -> Self {
        let (events, inbox) = mpsc::unbounded_channel();
        Self {
            dir: dir.to_owned(),
            needed: Needed::load(dir),
            health: Mutex::new(RelayHealth {
                version: software(),
                ..RelayHealth::default()
            }),
            kept: Mutex::new(None),
            events,
            inbox: tokio::sync::Mutex::new(inbox),
            evicted: AtomicU64::new(0),
        }
    }

    /// Tells the replication planner (now, or when the link is next up).
    pub fn send(&self, event: Event) {
        // The receiver lives as long as `self`.
        let _ = self.events.send(event);
    }

    /// The planner's end of [`Lifecycle::send`]: one link at a time holds it.
    pub async fn inbox(&self) -> tokio::sync::MutexGuard<'_, mpsc::UnboundedReceiver<Event>> {
        self.inbox.lock().await
    }

    /// What the link's planner keeps as delta bases (`None`: no planner runs).
    pub fn publish_kept(&self, kept: Option<Vec<PackageId>>) {
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = kept;
    }

    fn kept(&self) -> Option<Vec<PackageId>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records that a package was needed now (served, activated, used as a base).
    pub fn needed_now(&self, id: &PackageId) {
        self.needed.mark(id, Timestamp::now());
    }

    /// The health the relay reports.
    pub fn health(&self) -> RelayHealth {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the health; true if it changed.
    fn update_health(&self, change: impl FnOnce(&mut RelayHealth)) -> bool {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let before = health.clone();
        change(&mut health);
        *health != before
    }

    /// Remembers the signing keys central sent (see [`crate::keys`]).
    pub fn remember_keys(&self, keys: &[PublicKey]) {
        if let Err(e) = crate::keys::remember(&self.dir, keys) {
            tracing::error!(error = %e, "cannot remember central's signing keys; imports will not verify");
        }
    }
}

/// `sitecast-relay X.Y.Z`.
pub fn software() -> String {
    format!("sitecast-relay {}", env!("CARGO_PKG_VERSION"))
}

/// The plan of a package in the cache, if its signed info verifies.
pub fn verified_plan(cache: &Cache, id: &PackageId, keys: &[VerifyingKey]) -> Option<FragmentPlan> {
    let envelope = cache.info(id).ok().flatten()?;
    match signing::verify_info(&envelope, keys) {
        Ok(info) if info.id() == id => Some(info.plan().clone()),
        _ => None,
    }
}

/// Runs the housekeeper and the scrubber until `stop` turns true.
pub async fn run(
    shared: Arc<Shared>,
    settings: watch::Receiver<Settings>,
    stop: watch::Receiver<bool>,
) {
    let scrubber = tokio::spawn(scrub_loop(
        Arc::clone(&shared),
        settings.clone(),
        stop.clone(),
    ));
    housekeep(shared, settings, stop).await;
    let _ = scrubber.await;
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, RelayError> + Send + 'static,
) -> Result<R, RelayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RelayError::Invalid(format!("blocking task failed: {e}")))?
}

/// Sleeps `d`; false if the relay is stopping.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    !stopped && !*stop.borrow()
}

async fn housekeep(
    shared: Arc<Shared>,
    settings: watch::Receiver<Settings>,
    mut stop: watch::Receiver<bool>,
) {
    let mut holdings = shared.subscribe();
    let mut measured: Option<Instant> = None;
    let mut usage: BTreeMap<PackageId, u64> = BTreeMap::new();
    let mut evicting: BTreeSet<PackageId> = BTreeSet::new();
    let mut warned_over = false;
    loop {
        let s = *settings.borrow();
        let dir = shared.lifecycle.dir.clone();
        // Imports first: what was taken up is measured below.
        for id in crate::import::pending(&dir) {
            let (sh, d, pid) = (Arc::clone(&shared), dir.clone(), id.clone());
            if let Err(e) = blocking(move || take_up(&sh, &d, &pid)).await {
                // The content stays in the cache: the next start restores it.
                tracing::error!(package = %id, error = %e, "cannot take up an imported package");
            }
            crate::import::done(&dir, &id);
            measured = None;
        }
        let stale = measured.is_none_or(|t| t.elapsed() >= MEASURE_EVERY);
        if stale || holdings.has_changed().unwrap_or(false) {
            holdings.borrow_and_update();
            let sh = Arc::clone(&shared);
            match blocking(move || sh.cache.usage()).await {
                Ok(u) => usage = u,
                Err(e) => tracing::warn!(error = %e, "cannot measure the cache"),
            }
            let free = free_space(shared.cache.root());
            measured = Some(Instant::now());
            let used: u64 = usage.values().sum();
            let changed = shared.lifecycle.update_health(|h| {
                h.disk_used = used;
                h.disk_free = free;
            });
            if changed {
                shared.health_changed();
            }
        }
        // The quota: evict kept bases, least recently needed first.
        let used: u64 = usage.values().sum();
        let kept = shared.lifecycle.kept();
        evicting
            .retain(|id| usage.contains_key(id) && kept.as_ref().is_some_and(|k| k.contains(id)));
        let candidates: Vec<Candidate> = kept
            .iter()
            .flatten()
            .filter(|id| !evicting.contains(*id))
            .filter_map(|id| {
                Some(Candidate {
                    id: id.clone(),
                    bytes: *usage.get(id)?,
                    last_needed: shared.lifecycle.needed.get(id),
                })
            })
            .collect();
        let pending: u64 = evicting.iter().filter_map(|id| usage.get(id)).sum();
        let decision = quota::choose(used.saturating_sub(pending), s.max_disk, &candidates);
        for id in decision.evict {
            tracing::info!(package = %id, last_needed = ?shared.lifecycle.needed.get(&id), used, max_disk = ?s.max_disk, "evicting a kept delta base for the disk quota");
            shared.lifecycle.evicted.fetch_add(1, Ordering::Relaxed);
            shared.lifecycle.send(Event::Evict { id: id.clone() });
            evicting.insert(id);
        }
        // Only a planner's view tells activated content from the rest.
        let over = decision.over_quota && kept.is_some();
        if over && !warned_over {
            tracing::warn!(used, max_disk = ?s.max_disk, "the content activated for this site alone exceeds max_disk; keeping it all");
        }
        warned_over = over;
        let evicted = shared.lifecycle.evicted.load(Ordering::Relaxed);
        let changed = shared.lifecycle.update_health(|h| {
            h.max_disk = s.max_disk;
            h.over_quota = over;
            h.kept = kept.clone().unwrap_or_default();
            h.evicted = evicted;
            h.scrub_interval_s = s.scrub_every.map(|d| d.as_secs());
        });
        if changed {
            shared.health_changed();
        }
        let held: BTreeSet<PackageId> = usage.keys().cloned().collect();
        let running = pause(&mut stop, TICK).await;
        if let Err(e) = shared.lifecycle.needed.flush(&held) {
            tracing::warn!(error = %e, "cannot write last-needed times");
        }
        if !running {
            return;
        }
    }
}

/// Takes up a package `import` committed: verified with the keys the relay
/// knows, counted as held, and handed to the planner.
fn take_up(shared: &Shared, dir: &Path, id: &PackageId) -> Result<(), RelayError> {
    let keys = crate::keys::load(dir)?;
    let envelope = shared
        .cache
        .info(id)?
        .ok_or_else(|| RelayError::BadContent {
            package: id.to_string(),
            reason: "imported, but its signed info is not in the cache any more".into(),
        })?;
    let info = signing::verify_info(&envelope, &keys).map_err(|e| RelayError::BadContent {
        package: id.to_string(),
        reason: format!("imported, but its signed info does not verify: {e}"),
    })?;
    let held = shared.cache.fragments_held(id)?;
    let plan = info.plan();
    shared.set_info(id, sha256_hex(&envelope), held.clone());
    tracing::info!(package = %id, fragments = held.len(), "taking up imported content");
    shared.lifecycle.send(Event::Restored {
        id: id.clone(),
        info_sha256: sha256_hex(&envelope),
        shape: Shape {
            size: plan.size(),
            fragment_size: plan.fragment_size(),
            count: plan.count(),
        },
        held,
    });
    Ok(())
}

/// Free bytes on the file system of `path`, for an unprivileged user.
fn free_space(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let (avail, frsize) = (
        u64::from(stat.blocks_available()),
        u64::from(stat.fragment_size()),
    );
    Some(avail.saturating_mul(frsize))
}

async fn scrub_loop(
    shared: Arc<Shared>,
    settings: watch::Receiver<Settings>,
    mut stop: watch::Receiver<bool>,
) {
    let dir = shared.lifecycle.dir.clone();
    let mut record = ScrubRecord::load(&dir, Timestamp::now());
    if let Err(e) = record.save(&dir) {
        tracing::warn!(error = %e, "cannot write the scrub record");
    }
    publish_scrub(&shared, &record);
    // Said once, not at every look.
    let mut said_no_keys = false;
    loop {
        let every = settings.borrow().scrub_every;
        let due = every.is_some_and(|every| record.due(every) <= Timestamp::now());
        if !due {
            // Look again in a second: the interval may change, time moves.
            if !pause(&mut stop, TICK).await {
                return;
            }
            continue;
        }
        let keys = match crate::keys::load(&dir) {
            Ok(k) if !k.is_empty() => k,
            unusable => {
                if !said_no_keys {
                    match unusable {
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the signing keys; the scrub waits")
                        }
                        Ok(_) => tracing::info!(
                            "no signing keys known yet; the scrub waits for a first connection"
                        ),
                    }
                    said_no_keys = true;
                }
                if !pause(&mut stop, TICK).await {
                    return;
                }
                continue;
            }
        };
        said_no_keys = false;
        tracing::info!("scrub: re-verifying every held fragment");
        let (sh, halt) = (Arc::clone(&shared), stop.clone());
        let found = blocking(move || scrub::scrub(&sh.cache, &keys, &|| *halt.borrow())).await;
        if *stop.borrow() {
            return;
        }
        match found {
            Ok(found) => {
                for (id, index) in &found.bad_fragments {
                    shared.lose_fragment(id, *index);
                    shared.lifecycle.send(Event::Lost {
                        id: id.clone(),
                        index: *index,
                    });
                }
                for id in &found.bad_infos {
                    shared.forget(id);
                    shared.lifecycle.send(Event::InfoLost { id: id.clone() });
                }
                tracing::info!(checked = found.checked, bad = found.bad(), "scrub finished");
                record.last_scrub = Some(Timestamp::now());
                record.last_bad = found.bad();
                record.bad_total += found.bad();
            }
            Err(e) => {
                // Try again a whole interval later rather than hammer a failing disk.
                tracing::error!(error = %e, "scrub failed");
                record.last_scrub = Some(Timestamp::now());
            }
        }
        if let Err(e) = record.save(&dir) {
            tracing::warn!(error = %e, "cannot write the scrub record");
        }
        publish_scrub(&shared, &record);
    }
}

fn publish_scrub(shared: &Shared, record: &ScrubRecord) {
    let changed = shared.lifecycle.update_health(|h| {
        h.last_scrub = record.last_scrub;
        h.scrub_bad = record.last_bad;
        h.scrub_bad_total = record.bad_total;
    });
    if changed {
        shared.health_changed();
    }
}
