//! The relays connected now ([`RelayLinks`]): a channel into each relay's QUIC
//! control stream, attached by `quic` when a relay connects, through which the
//! domain (Wake-on-LAN) sends it messages; and when each relay may connect next
//! ([`RelayLinks::turn`]), so one relay reconnecting in a loop is paced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sitecast_common::ids::RelayId;
use sitecast_common::protocol::CentralMessage;
use tokio::sync::mpsc;

/// The relays connected now, each with a channel into its QUIC control stream.
#[derive(Debug, Default)]
pub struct RelayLinks {
    links: Mutex<HashMap<RelayId, (u64, mpsc::UnboundedSender<CentralMessage>)>>,
    next: AtomicU64,
    /// When each relay's next connection may attach.
    turns: Mutex<HashMap<RelayId, Instant>>,
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

    /// How long a new connection of `relay` waits before it attaches: connections
    /// of one relay attach at most one per `gap`, each taking the next free turn.
    /// A relay that restarts waits at most `gap`; one reconnecting in a loop makes
    /// central set up and tear down a link once per `gap`, not as fast as it can.
    pub fn turn(&self, relay: &RelayId, gap: Duration) -> Duration {
        let now = Instant::now();
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        // Turns long past say nothing: forget them, so the map holds only relays
        // that connected within the last `gap`.
        turns.retain(|_, at| *at + gap > now);
        let at = turns.get(relay).map_or(now, |last| (*last + gap).max(now));
        turns.insert(relay.clone(), at);
        at - now
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

/// How wake orders reach relays: [`RelayLinks`] in central; tests stand in for
/// it with a relay whose connection drops just as a wake is handed to it.
pub trait RelayMessenger {
    /// Whether the relay's connection is up now.
    fn connected(&self, relay: &RelayId) -> bool;
    /// Hands a message to the relay's connection; false if it has none.
    fn send(&self, relay: &RelayId, message: CentralMessage) -> bool;
}

impl RelayMessenger for RelayLinks {
    fn connected(&self, relay: &RelayId) -> bool {
        RelayLinks::connected(self, relay)
    }
    fn send(&self, relay: &RelayId, message: CentralMessage) -> bool {
        RelayLinks::send(self, relay, message)
    }
}
