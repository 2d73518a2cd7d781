//! The scrub: every `scrub_interval` the relay re-reads each fragment it holds
//! and re-hashes it (streaming, 256 KiB at a time) against the SHA-256 in its
//! signed info, itself verified again against central's signing keys. A bad
//! fragment is deleted and the planner told ([`Event::Lost`]), so it is fetched
//! again; a signed info that no longer verifies takes its package's content with
//! it ([`Event::InfoLost`]). Disks rot silently; agents would catch it, but only
//! after a wasted download and a problem report.
//!
//! When the last scrub ran and what it found are kept in `DIR/scrub.json`
//! (written atomically), so a restart neither forgets the schedule nor scrubs
//! at every start; a relay that never scrubbed counts from when it first ran.
//!
//! The scrubber is a task of its own (the work is long and blocking); it tells
//! the replicator what it found ([`Scrubbed`]), which updates the planner.
//!
//! [`Event::Lost`]: sitecast_common::replication::Event::Lost
//! [`Event::InfoLost`]: sitecast_common::replication::Event::InfoLost

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sitecast_common::ids::PackageId;
use sitecast_common::signing;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::cache::Cache;
use crate::error::RelayError;

/// How often the scrubber looks whether a scrub is due.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What the scrubber tells the replicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scrubbed {
    /// Bad content found and deleted.
    Found(Findings),
    /// The record, as written (at start and after each scrub).
    Record(ScrubRecord),
}

/// What `DIR/scrub.json` keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubRecord {
    /// When scrubbing was first scheduled (the first scrub is due an interval later).
    pub since: Timestamp,
    pub last_scrub: Option<Timestamp>,
    /// Bad fragments and infos the last scrub found.
    #[serde(default)]
    pub last_bad: u64,
    /// Bad fragments and infos found by every scrub.
    #[serde(default)]
    pub bad_total: u64,
}

impl ScrubRecord {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("scrub.json")
    }

    /// The record, or a fresh one starting `now` (a damaged file starts over).
    pub fn load(dir: &Path, now: Timestamp) -> Self {
        let fresh = ScrubRecord {
            since: now,
            last_scrub: None,
            last_bad: 0,
            bad_total: 0,
        };
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable; the scrub schedule starts over");
                fresh
            }),
            Err(_) => fresh,
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), RelayError> {
        let path = Self::path(dir);
        let body = serde_json::to_vec_pretty(self).map_err(|e| RelayError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        crate::cache::write_atomically(&path, &body).map_err(Into::into)
    }

    /// When the next scrub is due, given the interval.
    pub fn due(&self, every: std::time::Duration) -> Timestamp {
        let from = self.last_scrub.unwrap_or(self.since);
        let every = jiff::SignedDuration::try_from(every).unwrap_or(jiff::SignedDuration::MAX);
        from.checked_add(every).unwrap_or(Timestamp::MAX)
    }
}

/// What one scrub found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Fragments re-hashed.
    pub checked: u64,
    /// Bad fragments, deleted.
    pub bad_fragments: Vec<(PackageId, u32)>,
    /// Packages whose signed info no longer verifies, their content deleted.
    pub bad_infos: Vec<PackageId>,
}

impl Findings {
    pub fn bad(&self) -> u64 {
        (self.bad_fragments.len() + self.bad_infos.len()) as u64
    }
}

/// Re-verifies every held fragment of every package in the cache; deletes what
/// is bad. `stop` is asked between fragments (shutdown).
pub fn scrub(
    cache: &Cache,
    keys: &[VerifyingKey],
    stop: &dyn Fn() -> bool,
) -> Result<Findings, RelayError> {
    let mut findings = Findings::default();
    let mut buf = vec![0u8; 256 << 10];
    for id in cache.packages()? {
        if stop() {
            break;
        }
        let Some(envelope) = cache.info(&id)? else {
            continue;
        };
        let info = match signing::verify_info(&envelope, keys) {
            Ok(info) if info.id() == &id => info,
            Ok(info) => {
                tracing::warn!(package = %id, names = %info.id(), "scrub: the cached info names another package; its content is deleted");
                cache.remove(&id)?;
                findings.bad_infos.push(id);
                continue;
            }
            Err(e) => {
                tracing::warn!(package = %id, error = %e, "scrub: the cached info no longer verifies; its content is deleted");
                cache.remove(&id)?;
                findings.bad_infos.push(id);
                continue;
            }
        };
        let plan = info.plan();
        for index in cache.fragments_held(&id)? {
            if stop() {
                return Ok(findings);
            }
            let path = cache.fragment_path(&id, index);
            let mut file = match File::open(&path) {
                Ok(f) => f,
                // Dropped or evicted meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(RelayError::io(path)(e)),
            };
            let ino = file.metadata().map_err(RelayError::io(&path))?.ino();
            let mut hasher = Sha256::new();
            let mut len = 0u64;
            loop {
                let n = file.read(&mut buf).map_err(RelayError::io(&path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            findings.checked += 1;
            let actual: [u8; 32] = hasher.finalize().into();
            let good = match (plan.range(index), plan.digest(index)) {
                (Ok((_, expected_len)), Ok(expected)) => len == expected_len && &actual == expected,
                // A fragment number the plan does not have: not ours to keep.
                _ => false,
            };
            if !good {
                tracing::warn!(package = %id, fragment = index, sha256 = %hex::encode(actual), bytes = len, "scrub: fragment does not match its signed info; deleted, it will be fetched again");
                if cache.remove_bad_fragment(&id, index, ino)? {
                    findings.bad_fragments.push((id.clone(), index));
                }
            }
        }
    }
    Ok(findings)
}

/// Sleeps `d`; false if the relay is stopping.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    !stopped && !*stop.borrow()
}

/// Scrubs the cache every `every` (`None`: never) until `stop` turns true.
pub async fn run(
    cache: Arc<Cache>,
    dir: PathBuf,
    every: watch::Receiver<Option<Duration>>,
    out: mpsc::UnboundedSender<Scrubbed>,
    mut stop: watch::Receiver<bool>,
) {
    let mut record = ScrubRecord::load(&dir, crate::clock::timestamp());
    if let Err(e) = record.save(&dir) {
        tracing::warn!(error = %e, "cannot write the scrub record");
    }
    // The replicator outlives the scrubber.
    let _ = out.send(Scrubbed::Record(record.clone()));
    // Said once, not at every look.
    let mut said_no_keys = false;
    loop {
        let interval = *every.borrow();
        let due = interval.is_some_and(|every| record.due(every) <= crate::clock::timestamp());
        if !due {
            // Look again in a second: the interval may change, time moves.
            if !pause(&mut stop, LOOK_EVERY).await {
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
                if !pause(&mut stop, LOOK_EVERY).await {
                    return;
                }
                continue;
            }
        };
        said_no_keys = false;
        tracing::info!("scrub: re-verifying every held fragment");
        let (c, halt) = (Arc::clone(&cache), stop.clone());
        let found = tokio::task::spawn_blocking(move || scrub(&c, &keys, &|| *halt.borrow())).await;
        if *stop.borrow() {
            return;
        }
        match found {
            Ok(Ok(found)) => {
                tracing::info!(checked = found.checked, bad = found.bad(), "scrub finished");
                record.last_scrub = Some(crate::clock::timestamp());
                record.last_bad = found.bad();
                record.bad_total += found.bad();
                let _ = out.send(Scrubbed::Found(found));
            }
            Ok(Err(e)) => {
                // Try again a whole interval later rather than hammer a failing disk.
                tracing::error!(error = %e, "scrub failed");
                record.last_scrub = Some(crate::clock::timestamp());
            }
            Err(e) => {
                tracing::error!(error = %e, "scrub failed");
                record.last_scrub = Some(crate::clock::timestamp());
            }
        }
        if let Err(e) = record.save(&dir) {
            tracing::warn!(error = %e, "cannot write the scrub record");
        }
        let _ = out.send(Scrubbed::Record(record.clone()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sitecast_common::info::{Info, InfoDoc};

    /// A signed two-fragment package in a cache; returns the cache, the key and
    /// the package id.
    fn cached(dir: &Path) -> (Cache, VerifyingKey, PackageId) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let data: Vec<u8> = (0..150u32).map(|i| i as u8).collect();
        let plan = sitecast_common::fragment::plan_reader(&data[..], 100).unwrap();
        let doc = InfoDoc {
            schema: 1,
            id: "app-1".into(),
            name: "app".into(),
            version: "1".into(),
            os: "any".into(),
            priority: 5,
            action: sitecast_common::info::ActionDoc::Store {
                path: "/opt/app".into(),
            },
            archive: "none".into(),
            size: plan.size(),
            sha256: hex::encode(plan.sha256()),
            fragment_size: 100,
            fragments: plan.fragments().iter().map(hex::encode).collect(),
            success_exit_codes: vec![0],
            command_timeout_s: 60,
            notify: None,
            done_action_text: None,
            supersedes: None,
            uninstall: None,
            issued_at: "2026-01-01T00:00:00Z".into(),
            restart: false,
        };
        let info = Info::try_from(doc).unwrap();
        let envelope = signing::sign_info(&key, &info);
        let cache = Cache::open(&dir.join("cache")).unwrap();
        let id = info.id().clone();
        cache.store_info(&id, &envelope).unwrap();
        cache.store_fragment(&id, 1, &data[..100]).unwrap();
        cache.store_fragment(&id, 2, &data[100..]).unwrap();
        (cache, key.verifying_key(), id)
    }

    #[test]
    fn a_flipped_byte_is_found_and_deleted_and_the_rest_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, key, id) = cached(dir.path());
        let clean = scrub(&cache, &[key], &|| false).unwrap();
        assert_eq!((clean.checked, clean.bad()), (2, 0));
        let path = cache.fragment_path(&id, 2);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[7] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let found = scrub(&cache, &[key], &|| false).unwrap();
        assert_eq!(found.bad_fragments, vec![(id.clone(), 2)]);
        assert_eq!(
            cache.fragments_held(&id).unwrap(),
            std::collections::BTreeSet::from([1])
        );
        // A truncated fragment is bad too.
        std::fs::write(cache.fragment_path(&id, 1), b"short").unwrap();
        let found = scrub(&cache, &[key], &|| false).unwrap();
        assert_eq!(found.bad_fragments, vec![(id.clone(), 1)]);
    }

    #[test]
    fn an_info_that_no_longer_verifies_takes_its_content_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, key, id) = cached(dir.path());
        let other = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]).verifying_key();
        let found = scrub(&cache, &[other], &|| false).unwrap();
        assert_eq!(found.bad_infos, vec![id.clone()]);
        assert!(cache.packages().unwrap().is_empty());
        // Stopped at once: nothing checked.
        let (cache, key2, _) = cached(dir.path());
        assert_eq!(key2, key);
        assert_eq!(scrub(&cache, &[key], &|| true).unwrap().checked, 0);
    }

    #[test]
    fn the_record_says_when_the_next_scrub_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut r = ScrubRecord::load(dir.path(), t0);
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(r.due(day), "2026-01-02T00:00:00Z".parse().unwrap());
        r.last_scrub = Some("2026-01-05T00:00:00Z".parse().unwrap());
        r.last_bad = 2;
        r.bad_total = 3;
        r.save(dir.path()).unwrap();
        let later = ScrubRecord::load(dir.path(), "2027-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(later, r);
        assert_eq!(later.due(day), "2026-01-06T00:00:00Z".parse().unwrap());
    }
}
