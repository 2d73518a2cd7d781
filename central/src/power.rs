//! Wake-on-LAN from central (SPEC "Rules, groups, power, users"; OCO seeds
//! `000`/`001`): when a job container with `wol` starts, central asks, for each
//! of its computers with unfinished jobs, the relay of that computer's subnet to
//! send magic packets on its LAN (broadcasts do not cross routers).
//!
//! The relay is chosen as agents choose theirs — the relays whose IPv4 subnets
//! contain one of the computer's last known addresses, longest prefix first —
//! taking the first one connected now; the packet goes to that subnet's
//! broadcast address. Computers known only by IPv6 addresses are not woken (no
//! broadcast; logged). [`RelayLinks`] is how messages reach the QUIC connection
//! of a relay (`quic.rs` attaches each connection).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use jiff::Timestamp;
use sitecast_common::ids::{ContainerId, RelayId};
use sitecast_common::power;
use sitecast_common::protocol::{CentralMessage, WakeTarget};
use sitecast_common::subnet::RelaySubnets;
use sitecast_common::wire::{ShutdownState, WokenComputer};
use tokio::sync::mpsc;

use crate::api::Central;
use crate::error::CentralError;
use crate::store::{ContainerRecord, RelayRecord};

impl RelaySubnets for RelayRecord {
    fn relay_id(&self) -> &RelayId {
        &self.id
    }
    fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }
}

/// The relays connected now, each with a channel into its QUIC control stream.
#[derive(Debug, Default)]
pub struct RelayLinks {
    links: Mutex<HashMap<RelayId, (u64, mpsc::UnboundedSender<CentralMessage>)>>,
    next: AtomicU64,
}

/// One attached connection: what it receives, and the number that detaches it.
pub struct Attached {
    pub messages: mpsc::UnboundedReceiver<CentralMessage>,
    pub serial: u64,
}

impl RelayLinks {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<RelayId, (u64, mpsc::UnboundedSender<CentralMessage>)>>
    {
        // Single inserts and removals: a panic elsewhere leaves nothing half-done.
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A relay's connection is up: messages for the relay go to it (a newer
    /// connection replaces an older one).
    pub fn attach(&self, relay: &RelayId) -> Attached {
        let (tx, rx) = mpsc::unbounded_channel();
        let serial = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(relay.clone(), (serial, tx));
        Attached {
            messages: rx,
            serial,
        }
    }

    /// The connection `serial` ended (a newer one of the same relay stays).
    pub fn detach(&self, relay: &RelayId, serial: u64) {
        let mut links = self.lock();
        if links.get(relay).is_some_and(|(s, _)| *s == serial) {
            links.remove(relay);
        }
    }

    pub fn connected(&self, relay: &RelayId) -> bool {
        self.lock()
            .get(relay)
            .is_some_and(|(_, tx)| !tx.is_closed())
    }

    /// Hands a message to the relay's connection; false if it has none.
    pub fn send(&self, relay: &RelayId, message: CentralMessage) -> bool {
        self.lock()
            .get(relay)
            .is_some_and(|(_, tx)| tx.send(message).is_ok())
    }
}

/// Whether a container's wake is due now: it has `wol`, started, has not
/// ended, was not cancelled, and was not woken yet.
pub fn wake_due(record: &ContainerRecord, now: Timestamp) -> bool {
    record.power.wol
        && record.power.woken_at.is_none()
        && record.cancelled_at.is_none()
        && record.start_at <= now
        && record.end_at.is_none_or(|end| now < end)
}

/// Wakes every container whose wake is due (see [`wake_due`]); returns their ids.
pub fn wake_due_containers(c: &Central) -> Result<Vec<ContainerId>, CentralError> {
    let now = c.clock.now();
    let mut woken = Vec::new();
    for record in c.store.containers()? {
        if wake_due(&record, now) && wake(c, &record, now)? {
            woken.push(record.id);
        }
    }
    Ok(woken)
}

/// Records and sends a container's wake (once: false if it was already
/// recorded). Recorded before sending; see `store::power`.
pub fn wake(c: &Central, record: &ContainerRecord, now: Timestamp) -> Result<bool, CentralError> {
    let computers: BTreeSet<_> = c
        .store
        .container_jobs(&record.id)?
        .into_iter()
        .filter(|j| !j.status.is_final())
        .map(|j| j.computer_id)
        .collect();
    let relays = c.store.relays()?;
    let mut lines = Vec::new();
    let mut orders: BTreeMap<RelayId, Vec<WakeTarget>> = BTreeMap::new();
    for id in computers {
        let Some(computer) = c.store.computer(&id)? else {
            continue;
        };
        let was_off = power::was_off(computer.last_seen, now, c.config.poll_interval);
        let routes = power::wake_routes(&computer.addresses, &relays);
        let route = routes.iter().find(|r| c.relay_links.connected(&r.relay.id));
        let relay = match route {
            _ if computer.macs.is_empty() => {
                tracing::warn!(computer = %id, container = %record.id, "no MAC address known: cannot wake it");
                None
            }
            Some(route) => {
                let targets = orders.entry(route.relay.id.clone()).or_default();
                for mac in &computer.macs {
                    targets.push(WakeTarget {
                        computer_id: id.clone(),
                        mac: *mac,
                        broadcast: route.broadcast(),
                    });
                }
                Some(route.relay.id.clone())
            }
            None if routes.is_empty() => {
                tracing::warn!(computer = %id, container = %record.id, addresses = ?computer.addresses, "no relay's IPv4 subnet contains the computer's addresses (IPv6 has no broadcast): cannot wake it");
                None
            }
            None => {
                tracing::warn!(computer = %id, container = %record.id, "none of the relays serving the computer is connected: cannot wake it");
                None
            }
        };
        let shutdown = if record.power.shutdown_after && was_off && relay.is_some() {
            ShutdownState::Pending
        } else {
            ShutdownState::Never
        };
        lines.push(WokenComputer {
            computer_id: id,
            was_off,
            macs: computer.macs,
            relay,
            came_up_at: None,
            shutdown,
            shutdown_at: None,
        });
    }
    if !c.store.record_wake(&record.id, now, &lines)? {
        return Ok(false);
    }
    for (relay, targets) in orders {
        let count = targets.len();
        if c.relay_links.send(&relay, CentralMessage::Wake { targets }) {
            tracing::info!(container = %record.id, %relay, packets = count, "asked the relay to wake computers");
        } else {
            tracing::warn!(container = %record.id, %relay, "the relay disconnected before the wake went out");
        }
    }
    let asked = lines.iter().filter(|l| l.relay.is_some()).count();
    tracing::info!(container = %record.id, computers = lines.len(), asked, "job container woken");
    Ok(true)
}

/// Runs [`wake_due_containers`] at once and then every `every`, until the task
/// is dropped: containers that start later are woken when central's clock
/// reaches their start.
pub async fn wake_periodically(c: Arc<Central>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let central = Arc::clone(&c);
        match tokio::task::spawn_blocking(move || wake_due_containers(&central)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not wake the job containers due"),
            Err(e) => tracing::warn!(error = %e, "the wake task failed"),
        }
    }
}
