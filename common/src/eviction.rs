//! The disk quota's choice (`max_disk`): which kept delta bases a relay evicts,
//! beside the replication [`Planner`](crate::replication::Planner) whose kept set
//! it reads. Pure: the relay measures its cache and passes the numbers in.
//!
//! Only delta bases are ever evicted — packages held whole that the site no
//! longer has activated but that an activated package supersedes (the planner's
//! [`evictable`](crate::replication::Planner::evictable) set). Activated content
//! is never evicted: if it alone exceeds the quota the relay says so
//! ([`Decision::over_quota`]) and keeps replicating. Nothing is evicted while
//! the activated set is unknown (no connection, or none heard on it yet): the
//! planner's view then may be stale, and a stale view could name content the
//! site activated meanwhile.
//!
//! Bases go least recently needed first (ties by id), only as many as needed.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::ids::PackageId;

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

/// The quota across looks: remembers what it already chose to evict until the
/// cache no longer holds it, so a base on its way out is neither chosen twice nor
/// counted against the quota again.
#[derive(Debug, Clone, Default)]
pub struct Eviction {
    evicting: BTreeSet<PackageId>,
}

impl Eviction {
    pub fn new() -> Self {
        Self::default()
    }

    /// What to evict now. `usage` is the cache's bytes per package, `kept` the
    /// planner's [`evictable`](crate::replication::Planner::evictable) set
    /// (`None` while the activated set is unknown: nothing is chosen, and the
    /// cache is not said to be over its quota).
    pub fn decide(
        &mut self,
        usage: &BTreeMap<PackageId, u64>,
        quota: Option<u64>,
        kept: Option<&[PackageId]>,
        last_needed: impl Fn(&PackageId) -> Option<Timestamp>,
    ) -> Decision {
        let used: u64 = usage.values().sum();
        self.evicting
            .retain(|id| usage.contains_key(id) && kept.is_some_and(|k| k.contains(id)));
        let Some(kept) = kept else {
            return Decision::default();
        };
        let candidates: Vec<Candidate> = kept
            .iter()
            .filter(|id| !self.evicting.contains(*id))
            .filter_map(|id| {
                Some(Candidate {
                    id: id.clone(),
                    bytes: *usage.get(id)?,
                    last_needed: last_needed(id),
                })
            })
            .collect();
        let pending: u64 = self.evicting.iter().filter_map(|id| usage.get(id)).sum();
        let decision = choose(used.saturating_sub(pending), quota, &candidates);
        self.evicting.extend(decision.evict.iter().cloned());
        decision
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
    fn a_base_on_its_way_out_is_chosen_once_and_nothing_while_the_set_is_unknown() {
        let usage = BTreeMap::from([(id("a"), 600), (id("b"), 300), (id("w"), 400)]);
        let kept = [id("a"), id("b")];
        let mut e = Eviction::new();
        // Unknown activated set: nothing, and not over quota either.
        assert_eq!(
            e.decide(&usage, Some(500), None, |_| None),
            Decision::default()
        );
        let first = e.decide(&usage, Some(800), Some(&kept), |_| None);
        assert_eq!(first.evict, vec![id("a")]);
        // Still on disk: not chosen again, and its bytes count as going.
        assert_eq!(
            e.decide(&usage, Some(800), Some(&kept), |_| None),
            Decision::default()
        );
        // Gone from the cache, then back as a kept base: it may be chosen again.
        let without_a = BTreeMap::from([(id("b"), 300), (id("w"), 400)]);
        e.decide(&without_a, Some(800), Some(&kept), |_| None);
        let back = e.decide(&usage, Some(800), Some(&kept), |_| None);
        assert_eq!(back.evict, vec![id("a")]);
    }
}
