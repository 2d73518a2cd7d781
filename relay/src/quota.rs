//! The disk quota's memory (`max_disk`): when each package was last needed.
//! What to evict is chosen in [`sitecast_common::eviction`], beside the planner.
//!
//! Bases go least recently needed first. A package is *needed* when an agent is
//! served its info or a fragment, while it is activated (each activated set
//! marks what it names and what it no longer names, so a base's time is when it
//! stopped being activated), and when it is used as a delta base. The times live
//! in memory and are written to `DIR/needed.json` (temp name, fsync, rename) by
//! the replicator when one moved by a minute or more: a crash forgets at
//! most that much recency, and serving agents never waits on a write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use sitecast_common::ids::PackageId;

use crate::error::RelayError;

/// Marks closer together than this are one mark (fewer writes).
const GRANULARITY_S: i64 = 60;

/// When each package was last needed.
#[derive(Debug)]
pub struct Needed {
    path: PathBuf,
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
            at,
            dirty: false,
        }
    }

    /// Records that `id` was needed at `now`.
    pub fn mark(&mut self, id: &PackageId, now: Timestamp) {
        let moved = self
            .at
            .get(id)
            .is_none_or(|t| now.as_second() - t.as_second() >= GRANULARITY_S);
        if moved {
            self.at.insert(id.clone(), now);
            self.dirty = true;
        }
    }

    pub fn get(&self, id: &PackageId) -> Option<Timestamp> {
        self.at.get(id).copied()
    }

    /// Writes the times if they moved, forgetting packages no longer held.
    pub fn flush(&mut self, held: &BTreeSet<PackageId>) -> Result<(), RelayError> {
        let before = self.at.len();
        self.at.retain(|id, _| held.contains(id));
        if !self.dirty && self.at.len() == before {
            return Ok(());
        }
        self.dirty = false;
        let body = serde_json::to_vec_pretty(&self.at).map_err(|e| RelayError::Config {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        crate::cache::write_atomically(&self.path, &body)
            .map_err(RelayError::from)
            .inspect_err(|_| {
                self.dirty = true;
            })
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

    #[test]
    fn times_persist_move_by_the_minute_and_forget_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut needed = Needed::load(dir.path());
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
