//! Wake-on-LAN records: what central asked relays to wake for a job container
//! (or why it could not), and where each woken computer's shutdown stands.
//!
//! A container's settings live on its record ([`ContainerPower`]); its wake in
//! the `wakes` tree, `container/computer` → [`WokenComputer`]. The wake is
//! recorded — `woken_at` on the container and every computer's line, by one
//! transaction under the jobs lock, then flushed — *before* any magic packet is
//! sent: a crash in between loses the packets (those computers stay off and
//! their shutdown expires) but never sends a second wake, which would find the
//! computers just woken "on" and judge them wrongly. A computer whose relays
//! were not connected is asked later, its line replaced (compare and swap)
//! before its packets go out, and put back if the relay cannot take them. The
//! rules are `sitecast_common::power`'s.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::ids::{ComputerId, ContainerId};
use sitecast_common::power;
use sitecast_common::power::{default_restart_timeout, ShutdownState, WokenComputer};
use sitecast_common::units::Duration;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{decode, encode, pair, tx_error, ContainerRecord, JobStore, Result, SledStore};
use crate::error::CentralError;

/// A container's Wake-on-LAN, shutdown and restart settings, and whether its
/// wake was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerPower {
    #[serde(default)]
    pub wol: bool,
    #[serde(default)]
    pub shutdown_after: bool,
    #[serde(default = "default_restart_timeout")]
    pub restart_timeout: Duration,
    /// When the wake was recorded (and then sent); `None`: not yet.
    #[serde(default)]
    pub woken_at: Option<Timestamp>,
}

impl Default for ContainerPower {
    fn default() -> Self {
        Self {
            wol: false,
            shutdown_after: false,
            restart_timeout: default_restart_timeout(),
            woken_at: None,
        }
    }
}

/// What central asks of its Wake-on-LAN records.
pub trait PowerStore {
    /// Records a container's wake at once: `woken_at` on the container and a
    /// line per computer. False, and nothing written, if the container is gone
    /// or its wake was already recorded (the wake happens once).
    fn record_wake(
        &self,
        container: &ContainerId,
        at: Timestamp,
        computers: &[WokenComputer],
    ) -> Result<bool>;
    /// The lines of a container's wake, by computer.
    fn wakes_of(&self, container: &ContainerId) -> Result<Vec<WokenComputer>>;
    /// Replaces lines of a container's wake, each only if it is still what
    /// the caller read (`(read, new)` pairs): a retry and a poll of the same
    /// computer cannot undo each other. Answers the computers whose line was
    /// replaced; flushed before it returns.
    fn replace_wake_lines(
        &self,
        container: &ContainerId,
        changes: &[(WokenComputer, WokenComputer)],
    ) -> Result<Vec<ComputerId>>;
    /// A poll from `computer` (`busy`: it hands out work; `uptime_s`: what its
    /// agent reported): each of its pending shutdowns moves on
    /// ([`power::on_poll`]). True if it must shut down now; that is recorded,
    /// so it is said once.
    fn power_on_poll(
        &self,
        computer: &ComputerId,
        now: Timestamp,
        uptime_s: Option<u64>,
        expiry: Duration,
        busy: bool,
    ) -> Result<bool>;
}

impl SledStore {
    /// Removes a container's wake lines. Callers hold the jobs lock.
    pub(super) fn forget_wakes(&self, container: &ContainerId) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut any = false;
        for kv in self.wakes.scan_prefix(format!("{container}/").as_bytes()) {
            let (k, _) = kv?;
            batch.remove(k);
            any = true;
        }
        if any {
            self.wakes.apply_batch(batch)?;
            self.flush()?;
        }
        Ok(())
    }
}

impl PowerStore for SledStore {
    fn record_wake(
        &self,
        container: &ContainerId,
        at: Timestamp,
        computers: &[WokenComputer],
    ) -> Result<bool> {
        let _guard = self.jobs_lock();
        let lines: Vec<(Vec<u8>, Vec<u8>)> = computers
            .iter()
            .map(|w| Ok((pair(container.as_str(), w.computer_id.as_str()), encode(w)?)))
            .collect::<Result<_>>()?;
        let recorded = (&self.job_trees.containers, &self.wakes)
            .transaction(|(containers, wakes)| {
                let key = container.as_str().as_bytes();
                let Some(bytes) = containers.get(key)? else {
                    return Ok(false);
                };
                let mut record: ContainerRecord =
                    decode(key, &bytes).map_err(ConflictableTransactionError::Abort)?;
                if record.power.woken_at.is_some() {
                    return Ok(false);
                }
                record.power.woken_at = Some(at);
                let bytes = encode(&record).map_err(ConflictableTransactionError::Abort)?;
                containers.insert(key, bytes)?;
                for (k, v) in &lines {
                    wakes.insert(k.as_slice(), v.as_slice())?;
                }
                Ok::<bool, ConflictableTransactionError<CentralError>>(true)
            })
            .map_err(tx_error)?;
        if recorded {
            self.flush()?;
        }
        Ok(recorded)
    }

    fn wakes_of(&self, container: &ContainerId) -> Result<Vec<WokenComputer>> {
        self.wakes
            .scan_prefix(format!("{container}/").as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    fn replace_wake_lines(
        &self,
        container: &ContainerId,
        changes: &[(WokenComputer, WokenComputer)],
    ) -> Result<Vec<ComputerId>> {
        let _guard = self.jobs_lock();
        let mut batch = sled::Batch::default();
        let mut replaced = Vec::new();
        for (read, new) in changes {
            let key = pair(container.as_str(), read.computer_id.as_str());
            let Some(bytes) = self.wakes.get(&key)? else {
                continue;
            };
            let stored: WokenComputer = decode(&key, &bytes)?;
            if &stored == read && new.computer_id == read.computer_id {
                batch.insert(key, encode(new)?);
                replaced.push(new.computer_id.clone());
            }
        }
        if !replaced.is_empty() {
            self.wakes.apply_batch(batch)?;
            self.flush()?;
        }
        Ok(replaced)
    }

    fn power_on_poll(
        &self,
        computer: &ComputerId,
        now: Timestamp,
        uptime_s: Option<u64>,
        expiry: Duration,
        busy: bool,
    ) -> Result<bool> {
        let _guard = self.jobs_lock();
        // Whether each of the computer's containers has all its jobs there over.
        let mut done: BTreeMap<ContainerId, bool> = BTreeMap::new();
        for job in self.jobs_on(computer)? {
            let over = job.status.is_final();
            done.entry(job.container_id)
                .and_modify(|d| *d &= over)
                .or_insert(over);
        }
        let mut batch = sled::Batch::default();
        let mut changed = false;
        let mut shut_down = false;
        for (id, jobs_done) in done {
            let key = pair(id.as_str(), computer.as_str());
            let Some(bytes) = self.wakes.get(&key)? else {
                continue;
            };
            let mut line: WokenComputer = decode(&key, &bytes)?;
            if line.shutdown != ShutdownState::Pending {
                continue;
            }
            let Some(woken_at) = self.container(&id)?.and_then(|c| c.power.woken_at) else {
                continue;
            };
            // Its own wake: a retried one went out after the container's first.
            let wake_at = line.asked_at.unwrap_or(woken_at);
            let before = line.clone();
            if power::on_poll(&mut line, wake_at, now, uptime_s, expiry, jobs_done, busy) {
                tracing::info!(%computer, container = %id, "woken computer's jobs are done: it is told to shut down");
                shut_down = true;
            }
            if before.was_off && !line.was_off {
                tracing::info!(%computer, container = %id, booted_at = ?line.booted_at, "computer's uptime says it was on before its wake: it will not be shut down");
            }
            if line.came_up_at != before.came_up_at {
                tracing::info!(%computer, container = %id, "woken computer came up");
            }
            if line.shutdown == ShutdownState::Expired {
                tracing::info!(%computer, container = %id, %expiry, "computer did not come up within wol_shutdown_expiry of its wake; it will not be shut down");
            }
            if line != before {
                batch.insert(key, encode(&line)?);
                changed = true;
            }
        }
        if changed {
            self.wakes.apply_batch(batch)?;
            self.flush()?;
        }
        Ok(shut_down)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::ComputerRecord;

    #[test]
    fn records_written_before_power_existed_still_load() {
        let container: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "c-1", "name": "c", "description": "",
            "created_at": "2026-11-21T00:00:00Z", "start_at": "2026-11-21T00:00:00Z",
            "end_at": null, "priority": 0, "ip_ranges": null, "time_frames": null,
            "sequence": "ignore_failed", "retries": 0, "retry_backoff": "5m",
            "auto_uninstall": true, "cancelled_at": null, "seq": 3,
        }))
        .unwrap();
        assert_eq!(container.power, ContainerPower::default());
        assert!(!container.power.wol && !container.power.shutdown_after);
        assert_eq!(container.power.restart_timeout.as_secs(), 300);
        let computer: ComputerRecord = serde_json::from_value(serde_json::json!({
            "id": "pc-1", "hostname": "pc", "os": "linux", "addresses": ["10.1.0.5"],
            "enrolled_at": "2026-11-21T00:00:00Z", "last_seen": null,
        }))
        .unwrap();
        assert!(computer.macs.is_empty());
    }
}
