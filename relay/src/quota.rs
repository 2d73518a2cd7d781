//! The disk quota (`max_disk`): what to evict, and when each package was last
//! needed.
//!
//! Only delta bases are ever evicted — packages held whole that the site no
//! longer has activated but that an activated package supersedes (the planner's
//! [`kept`](sitecast_common::replication::Planner::kept) set). Activated content
//! is never evicted: if it alone exceeds the quota the relay says so (a warning
//! and `over_quota` in its health) and keeps replicating.
//!
//! Bases go least recently needed first. A package is *needed* when an agent is
//! served its info or a fragment, while it is activated (each activated set
//! marks what it names and what it no longer names, so a base's time is when it
//! stopped being activated), and when it is used as a delta base. The times live
//! in memory and are written to `DIR/needed.json` (temp name, fsync, rename) by
//! the lifecycle task when one moved by a minute or more: a crash forgets at
//! most that much recency, and serving agents never waits on a write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use sitecast_common::ids::PackageId;

use crate::error::RelayError;

/// Marks closer together than this are one mark (fewer writes).
const GRANULARITY_S: i64 = 60;

/// When each package was last needed.
#[derive(Debug)]
pub struct Needed {
    path: PathBuf,
    state: Mutex<NeededState>,
}

#[derive(Debug, Default)]
struct NeededState {
    at: BTreeMap<PackageId, Timestamp>,
    dirty: bool,
}

impl Needed {
    /// Where the times are kept.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("needed.json")
    }

    /// Loads `DIR/needed.json`; a missing or unreadable file starts empty (these
    /// are hints for eviction, not data worth refusing to start over).
    pub fn load(dir: &Path) -> Self {
        let path = Self::path(dir);
        let at = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable; last-needed times start over");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Self {
            path,
            state: Mutex::new(NeededState { at, dirty: false }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NeededState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `id` was needed at `now`.
    pub fn mark(&self, id: &PackageId, now: Timestamp) {
        let mut state = self.lock();
        let moved = state
            .at
            .get(id)
            .is_none_or(|t| now.as_second() - t.as_second() >= GRANULARITY_S);
        if moved {
            state.at.insert(id.clone(), now);
            state.dirty = true;
        }
    }

    pub fn get(&self, id: &PackageId) -> Option<Timestamp> {
        self.lock().at.get(id).copied()
    }

    /// Writes the times if they moved, forgetting packages no longer held.
    pub fn flush(&self, held: &BTreeSet<PackageId>) -> Result<(), RelayError> {
        let body = {
            let mut state = self.lock();
            let before = state.at.len();
            state.at.retain(|id, _| held.contains(id));
            if !state.dirty && state.at.len() == before {
                return Ok(());
            }
            state.dirty = false;
            serde_json::to_vec_pretty(&state.at).map_err(|e| RelayError::Config {
                path: self.path.clone(),
                reason: e.to_string(),
            })?
        };
        crate::cache::write_atomically(&self.path, &body).inspect_err(|_| {
            self.lock().dirty = true;
        })
    }
}

/// A package the quota may evict: a kept delta base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: PackageId,
    /// Its bytes on disk.
    pub bytes: u64,
    /// When it was last needed (`None`: never recorded, the oldest of all).
    pub last_needed: Option<Timestamp>,
}

/// What the quota calls for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Bases to evict, in order.
    pub evict: Vec<PackageId>,
    /// Even with those gone the cache exceeds the quota: what is left cannot be
    /// evicted (activated content, content on its way out).
    pub over_quota: bool,
}

/// Chooses the kept bases to evict so that `used` bytes fit in `quota`: least
/// recently needed first (ties by id), only as many as needed. Nothing but the
/// candidates is ever chosen.
pub fn choose(used: u64, quota: Option<u64>, candidates: &[Candidate]) -> Decision {
    let Some(quota) = quota else {
        return Decision::default();
    };
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| a.last_needed.cmp(&b.last_needed).then(a.id.cmp(&b.id)));
    let mut left = used;
    let mut evict = Vec::new();
    for c in order {
        if left <= quota {
            break;
        }
        left = left.saturating_sub(c.bytes);
        evict.push(c.id.clone());
    }
    Decision {
        evict,
        over_quota: left > quota,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> PackageId {
        s.parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn base(name: &str, bytes: u64, last: Option<i64>) -> Candidate {
        Candidate {
            id: id(name),
            bytes,
            last_needed: last.map(at),
        }
    }

    #[test]
    fn least_recently_needed_bases_go_first_and_only_as_many_as_needed() {
        let bases = [
            base("recent", 100, Some(500)),
            base("old", 100, Some(10)),
            base("never", 100, None),
            base("middle", 100, Some(200)),
        ];
        // 1000 used, quota 850: two bases of 100 must go, never-needed then oldest.
        assert_eq!(
            choose(1000, Some(850), &bases),
            Decision {
                evict: vec![id("never"), id("old")],
                over_quota: false
            }
        );
        // Within the quota: nothing goes.
        assert_eq!(choose(800, Some(850), &bases), Decision::default());
        // No quota: nothing goes, however full.
        assert_eq!(choose(u64::MAX, None, &bases), Decision::default());
    }

    #[test]
    fn activated_content_is_never_chosen_and_its_excess_is_reported() {
        // 1000 used, of which 300 are bases: a quota of 500 cannot be met.
        let bases = [base("b1", 100, Some(1)), base("b2", 200, Some(2))];
        let d = choose(1000, Some(500), &bases);
        assert_eq!(d.evict, vec![id("b1"), id("b2")]);
        assert!(d.over_quota);
        // No bases at all: nothing to evict, over quota.
        assert_eq!(
            choose(1000, Some(500), &[]),
            Decision {
                evict: vec![],
                over_quota: true
            }
        );
        // Ties by id, so the choice is deterministic.
        let tied = [base("zz", 100, Some(5)), base("aa", 100, Some(5))];
        assert_eq!(choose(1000, Some(950), &tied).evict, vec![id("aa")]);
    }

    #[test]
    fn times_persist_move_by_the_minute_and_forget_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let needed = Needed::load(dir.path());
        needed.mark(&id("a"), at(0));
        needed.mark(&id("b"), at(0));
        // Within the granularity: no change.
        needed.mark(&id("a"), at(30));
        assert_eq!(needed.get(&id("a")), Some(at(0)));
        needed.mark(&id("a"), at(90));
        assert_eq!(needed.get(&id("a")), Some(at(90)));
        needed.flush(&BTreeSet::from([id("a")])).unwrap();
        let again = Needed::load(dir.path());
        assert_eq!(again.get(&id("a")), Some(at(90)));
        assert_eq!(again.get(&id("b")), None);
        // A damaged file starts over rather than stopping the relay.
        std::fs::write(Needed::path(dir.path()), b"{not json").unwrap();
        assert_eq!(Needed::load(dir.path()).get(&id("a")), None);
    }
}
