//! Wake-on-LAN from central (SPEC "Rules, groups, power, users"; OCO seeds
//! `000`/`001`): when a job container with `wol` starts, central asks, for each
//! of its computers with unfinished jobs, the relay of that computer's subnet to
//! send magic packets on its LAN (broadcasts do not cross routers).
//!
//! The relay is chosen as agents choose theirs — the relays whose IPv4 subnets
//! contain one of the computer's last known addresses, longest prefix first —
//! taking the first one connected now; the packet goes to that subnet's
//! broadcast address. Computers known only by IPv6 addresses are not woken (no
//! broadcast), nor those without a MAC or a relay; each line says why
//! (`not_asked`). A computer whose relays are not connected (central just
//! started, a WAN outage) or whose relay's connection dropped as the wake was
//! handed to it is asked again by [`wake_due_containers`] on later ticks (see
//! [`retry_due`] for how long). `crate::links` is how messages reach the QUIC
//! connection of a relay.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use jiff::Timestamp;
use sitecast_common::ids::{ComputerId, ContainerId, RelayId};
use sitecast_common::power;
use sitecast_common::power::{NotAsked, ShutdownState, WokenComputer};
use sitecast_common::protocol::{CentralMessage, WakeTarget};
use sitecast_common::subnet::RelaySubnets;
use sitecast_common::units::Duration;

use crate::error::CentralError;
use crate::links::RelayMessenger;
use crate::state::Central;
use crate::store::{ComputerRecord, ContainerRecord, RelayRecord};

impl RelaySubnets for RelayRecord {
    fn relay_id(&self) -> &RelayId {
        &self.id
    }
    fn subnets(&self) -> &[IpNet] {
        &self.subnets
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

/// Whether the computers of a woken container that no relay could be asked
/// for (`relay_not_connected`) are tried again now: while it runs (not
/// cancelled, not ended) and until `expiry` (`wol_shutdown_expiry`) after its
/// first wake. Past that a wake no longer counts as the container's: a
/// computer that comes up later is taken to have been switched on by
/// someone, so central would only start computers it must then leave on.
pub fn retry_due(record: &ContainerRecord, now: Timestamp, expiry: Duration) -> bool {
    let Some(first) = record.power.woken_at else {
        return false;
    };
    let since = now.as_second().saturating_sub(first.as_second());
    record.power.wol
        && record.cancelled_at.is_none()
        && record.end_at.is_none_or(|end| now < end)
        && u64::try_from(since).is_ok_and(|s| s < expiry.as_secs())
}

/// Wakes every container whose wake is due (see [`wake_due`]) and asks again
/// for the computers whose relays were not connected (see [`retry_due`]);
/// returns the containers where something was recorded.
pub fn wake_due_containers(c: &Central) -> Result<Vec<ContainerId>, CentralError> {
    wake_due_containers_through(c, &c.relay_links)
}

/// [`wake_due_containers`], reaching relays through `links`.
pub fn wake_due_containers_through(
    c: &Central,
    links: &dyn RelayMessenger,
) -> Result<Vec<ContainerId>, CentralError> {
    let now = c.clock.now();
    let expiry = c.config.wol_shutdown_expiry;
    let mut woken = Vec::new();
    for record in c.store.containers()? {
        let changed = if wake_due(&record, now) {
            wake_through(c, links, &record, now)?
        } else if retry_due(&record, now, expiry) {
            retry(c, links, &record, now)?
        } else {
            false
        };
        if changed {
            woken.push(record.id);
        }
    }
    Ok(woken)
}

/// The magic packets for one relay, and the lines of the computers they wake.
type Orders = BTreeMap<RelayId, (Vec<WakeTarget>, Vec<WokenComputer>)>;

/// Adds a computer's packets, if a relay is to send them, to that relay's order.
fn add_order(orders: &mut Orders, order: Option<(RelayId, Vec<WakeTarget>)>, line: &WokenComputer) {
    if let Some((relay, targets)) = order {
        let entry = orders.entry(relay).or_default();
        entry.0.extend(targets);
        entry.1.push(line.clone());
    }
}

/// What waking `computer` now means: its line, and the relay asked and its
/// packets, if one can be.
fn plan(
    c: &Central,
    links: &dyn RelayMessenger,
    record: &ContainerRecord,
    computer: ComputerRecord,
    relays: &[RelayRecord],
    now: Timestamp,
) -> (WokenComputer, Option<(RelayId, Vec<WakeTarget>)>) {
    let was_off = power::was_off(computer.last_seen, now, c.config.poll_interval);
    let routes = power::wake_routes(&computer.addresses, relays);
    let order = match power::unroutable(&computer.macs, &computer.addresses, routes.len()) {
        Some(why) => Err(why),
        None => routes
            .iter()
            .find(|r| links.connected(&r.relay.id))
            .map(|route| {
                let targets = computer
                    .macs
                    .iter()
                    .map(|mac| WakeTarget {
                        computer_id: computer.id.clone(),
                        mac: *mac,
                        broadcast: route.broadcast(),
                    })
                    .collect();
                (route.relay.id.clone(), targets)
            })
            .ok_or(NotAsked::RelayNotConnected),
    };
    let asked = order.is_ok();
    let shutdown = if record.power.shutdown_after && was_off && asked {
        ShutdownState::Pending
    } else {
        ShutdownState::Never
    };
    let line = WokenComputer {
        computer_id: computer.id,
        was_off,
        macs: computer.macs,
        relay: order.as_ref().ok().map(|(relay, _)| relay.clone()),
        not_asked: order.as_ref().err().copied(),
        asked_at: asked.then_some(now),
        booted_at: None,
        came_up_at: None,
        shutdown,
        shutdown_at: None,
    };
    (line, order.ok())
}

fn warn_not_asked(container: &ContainerId, line: &WokenComputer) {
    if let Some(why) = line.not_asked {
        let computer = &line.computer_id;
        tracing::warn!(%computer, %container, %why, "cannot wake the computer");
    }
}

/// The computers of a container with unfinished jobs: those worth waking.
fn unfinished(c: &Central, record: &ContainerRecord) -> Result<BTreeSet<ComputerId>, CentralError> {
    Ok(c.store
        .container_jobs(&record.id)?
        .into_iter()
        .filter(|j| !j.status.is_final())
        .map(|j| j.computer_id)
        .collect())
}

/// Records and sends a container's wake (once: false if it was already
/// recorded). Recorded before sending; see `store::power`.
pub fn wake(c: &Central, record: &ContainerRecord, now: Timestamp) -> Result<bool, CentralError> {
    wake_through(c, &c.relay_links, record, now)
}

fn wake_through(
    c: &Central,
    links: &dyn RelayMessenger,
    record: &ContainerRecord,
    now: Timestamp,
) -> Result<bool, CentralError> {
    let relays = c.store.relays()?;
    let mut lines = Vec::new();
    let mut orders = Orders::new();
    for id in unfinished(c, record)? {
        let Some(computer) = c.store.computer(&id)? else {
            continue;
        };
        let (line, order) = plan(c, links, record, computer, &relays, now);
        warn_not_asked(&record.id, &line);
        add_order(&mut orders, order, &line);
        lines.push(line);
    }
    if !c.store.record_wake(&record.id, now, &lines)? {
        return Ok(false);
    }
    let asked = send(c, links, &record.id, orders)?;
    tracing::info!(container = %record.id, computers = lines.len(), asked, "job container woken");
    Ok(true)
}

/// Asks again, for a woken container, for the computers whose relays were not
/// connected (and that still have unfinished jobs there); true if a line
/// changed.
fn retry(
    c: &Central,
    links: &dyn RelayMessenger,
    record: &ContainerRecord,
    now: Timestamp,
) -> Result<bool, CentralError> {
    let waiting: Vec<WokenComputer> = c
        .store
        .wakes_of(&record.id)?
        .into_iter()
        .filter(|l| l.not_asked.is_some_and(NotAsked::retried))
        .collect();
    if waiting.is_empty() {
        return Ok(false);
    }
    let unfinished = unfinished(c, record)?;
    let relays = c.store.relays()?;
    let mut changes = Vec::new();
    let mut orders = Orders::new();
    for read in waiting {
        if !unfinished.contains(&read.computer_id) {
            continue;
        }
        let Some(computer) = c.store.computer(&read.computer_id)? else {
            continue;
        };
        let (line, order) = plan(c, links, record, computer, &relays, now);
        if line.not_asked == read.not_asked {
            continue;
        }
        warn_not_asked(&record.id, &line);
        add_order(&mut orders, order, &line);
        changes.push((read, line));
    }
    if changes.is_empty() {
        return Ok(false);
    }
    let replaced = c.store.replace_wake_lines(&record.id, &changes)?;
    // Only the lines this call replaced: another may have asked for the rest.
    for (targets, lines) in orders.values_mut() {
        targets.retain(|t| replaced.contains(&t.computer_id));
        lines.retain(|l| replaced.contains(&l.computer_id));
    }
    orders.retain(|_, (targets, _)| !targets.is_empty());
    let asked = send(c, links, &record.id, orders)?;
    if asked > 0 {
        tracing::info!(container = %record.id, asked, "asked again for computers whose relays were not connected");
    }
    Ok(!replaced.is_empty())
}

/// Hands each relay its magic packets. A relay whose connection is gone by
/// then has its computers' lines put back to `relay_not_connected`, so a later
/// tick asks again. Answers how many computers were asked.
fn send(
    c: &Central,
    links: &dyn RelayMessenger,
    container: &ContainerId,
    orders: Orders,
) -> Result<usize, CentralError> {
    let mut asked = 0;
    for (relay, (targets, lines)) in orders {
        let count = targets.len();
        if links.send(&relay, CentralMessage::Wake { targets }) {
            tracing::info!(%container, %relay, packets = count, "asked the relay to wake computers");
            asked += lines.len();
            continue;
        }
        tracing::warn!(%container, %relay, "the relay disconnected before the wake went out; its computers are asked again later");
        let back: Vec<(WokenComputer, WokenComputer)> = lines
            .into_iter()
            .map(|line| {
                let not_asked = WokenComputer {
                    relay: None,
                    not_asked: Some(NotAsked::RelayNotConnected),
                    asked_at: None,
                    shutdown: ShutdownState::Never,
                    ..line.clone()
                };
                (line, not_asked)
            })
            .collect();
        c.store.replace_wake_lines(container, &back)?;
    }
    Ok(asked)
}
