//! Relays that failed are skipped for a while, so an agent does not wait out the
//! same dead or trickling relay for every fragment and every poll.
//!
//! A relay's first failure skips it for `backoff` (default 5 min); each failure
//! after a skip ends doubles that, up to `backoff_max` (default 1 h). A success
//! forgets its failures. The state lives in `DIR/backoff.json`, rewritten
//! atomically on every change, so a restarted agent keeps skipping a relay it
//! just gave up on. Central is never skipped: it is the source of last resort,
//! and whether it may be used at all is the activation's `central_fallback`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::ids::RelayId;
use sitecast_common::wire::ProblemKind;

use crate::error::AgentError;
use sitecast_io::write_atomically;

/// One relay's failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    /// Failures in a row, without a success in between.
    pub failures: u32,
    /// Skipped until then.
    pub until: Timestamp,
    pub kind: ProblemKind,
    pub detail: String,
}

/// The relays being skipped, as kept in `DIR/backoff.json`.
#[derive(Debug)]
pub struct Backoff {
    path: PathBuf,
    first: Duration,
    max: Duration,
    relays: BTreeMap<RelayId, Failing>,
}

impl Backoff {
    /// Loads the state. An unreadable file is only a lost hint: the agent starts
    /// afresh rather than refuse to deploy.
    pub fn load(path: &Path, first: Duration, max: Duration) -> Self {
        let relays = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable back-off state; starting afresh");
                BTreeMap::new()
            }),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable back-off state; starting afresh");
                }
                BTreeMap::new()
            }
        };
        Self {
            path: path.to_owned(),
            first,
            max,
            relays,
        }
    }

    /// How long the `failures`-th failure in a row skips a relay.
    pub fn period(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Until when `relay` is skipped, if it is at `now`.
    pub fn skipped_until(&self, relay: &RelayId, now: Timestamp) -> Option<Timestamp> {
        self.relays
            .get(relay)
            .map(|f| f.until)
            .filter(|until| *until > now)
    }

    /// The relay failed at `now`: skip it, for longer if it failed before.
    /// Returns until when.
    pub fn failed(
        &mut self,
        relay: &RelayId,
        kind: ProblemKind,
        detail: &str,
        now: Timestamp,
    ) -> Result<Timestamp, AgentError> {
        let failures = self.relays.get(relay).map_or(0, |f| f.failures) + 1;
        let period = self.period(failures);
        let until = jiff::SignedDuration::try_from(period)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        self.relays.insert(
            relay.clone(),
            Failing {
                failures,
                until,
                kind,
                detail: detail.to_owned(),
            },
        );
        self.save()?;
        Ok(until)
    }

    /// The relay delivered: forget its failures.
    pub fn succeeded(&mut self, relay: &RelayId) -> Result<(), AgentError> {
        if self.relays.remove(relay).is_some() {
            self.save()?;
        }
        Ok(())
    }

    pub fn get(&self, relay: &RelayId) -> Option<&Failing> {
        self.relays.get(relay)
    }

    fn save(&self) -> Result<(), AgentError> {
        let body = serde_json::to_vec_pretty(&self.relays)
            .map_err(AgentError::encode("back-off state"))?;
        write_atomically(&self.path, &body).map_err(Into::into)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_period_doubles_from_five_minutes_to_an_hour() {
        let tmp = tempfile::tempdir().unwrap();
        let b = Backoff::load(&tmp.path().join("b.json"), 5 * MIN, 60 * MIN);
        let periods: Vec<u64> = (1..=7).map(|n| b.period(n).as_secs() / 60).collect();
        assert_eq!(periods, [5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(b.period(u32::MAX), 60 * MIN);
    }

    #[test]
    fn a_failed_relay_is_skipped_until_its_period_ends_and_a_success_resets_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("backoff.json");
        let relay: RelayId = "relay-paris-1".parse().unwrap();
        let other: RelayId = "relay-paris-2".parse().unwrap();
        let t0 = at("2025-03-01T09:00:00Z");
        let mut b = Backoff::load(&path, 5 * MIN, 60 * MIN);
        assert_eq!(b.skipped_until(&relay, t0), None);

        let until = b
            .failed(&relay, ProblemKind::Stalled, "no byte for 15s", t0)
            .unwrap();
        assert_eq!(until, at("2025-03-01T09:05:00Z"));
        assert_eq!(b.skipped_until(&relay, t0), Some(until));
        assert_eq!(b.skipped_until(&other, t0), None);
        // The period is over: tried again; a second failure skips it twice as long.
        let t1 = at("2025-03-01T09:05:00Z");
        assert_eq!(b.skipped_until(&relay, t1), None);
        let until = b
            .failed(&relay, ProblemKind::Refused, "refused", t1)
            .unwrap();
        assert_eq!(until, at("2025-03-01T09:15:00Z"));

        // It survives a restart.
        let reloaded = Backoff::load(&path, 5 * MIN, 60 * MIN);
        assert_eq!(reloaded.skipped_until(&relay, t1), Some(until));
        assert_eq!(reloaded.get(&relay).unwrap().failures, 2);
        assert_eq!(reloaded.get(&relay).unwrap().kind, ProblemKind::Refused);

        // A success forgets everything, on disk too.
        b.succeeded(&relay).unwrap();
        assert_eq!(b.skipped_until(&relay, t1), None);
        let reloaded = Backoff::load(&path, 5 * MIN, 60 * MIN);
        assert!(reloaded.get(&relay).is_none());
        let until = b.failed(&relay, ProblemKind::BadData, "bad", t1).unwrap();
        assert_eq!(until, at("2025-03-01T09:10:00Z"));
    }

    #[test]
    fn a_corrupt_state_file_starts_afresh() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("backoff.json");
        std::fs::write(&path, b"{not json").unwrap();
        let mut b = Backoff::load(&path, 5 * MIN, 60 * MIN);
        let relay: RelayId = "relay-paris-1".parse().unwrap();
        let t0 = at("2025-03-01T09:00:00Z");
        assert_eq!(b.skipped_until(&relay, t0), None);
        b.failed(&relay, ProblemKind::Timeout, "x", t0).unwrap();
        assert!(Backoff::load(&path, 5 * MIN, 60 * MIN)
            .get(&relay)
            .is_some());
    }
}
