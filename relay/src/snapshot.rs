//! What the replicator ([`crate::replicator`]) publishes for the rest of the
//! relay to read — the HTTP server's health, the link's reports — and what the
//! HTTP server tells it back. Readers never touch replication state itself.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use sitecast_common::ids::PackageId;
use sitecast_common::protocol::{HeldPackage, RelayReport};
use sitecast_common::wire::RelayHealth;
use tokio::time::Instant;

/// One package the cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub info_sha256: String,
    pub fragments: u32,
}

/// The relay's state as of the replicator's last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Packages whose verified signed info the cache holds.
    pub holdings: BTreeMap<PackageId, Holding>,
    /// Whether the schedule admits fragment bytes now.
    pub window_open: bool,
    /// The cap in bytes per second, if any.
    pub max_rate: Option<u64>,
    /// Bytes received from central since the relay started.
    pub bytes_from_central: u64,
    /// Bytes served to agents since the relay started.
    pub bytes_to_agents: u64,
    pub health: RelayHealth,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            holdings: BTreeMap::new(),
            window_open: true,
            max_rate: None,
            bytes_from_central: 0,
            bytes_to_agents: 0,
            health: RelayHealth {
                version: software(),
                ..RelayHealth::default()
            },
        }
    }
}

impl Snapshot {
    /// Fragments held per package.
    pub fn fragments_held(&self) -> BTreeMap<PackageId, u32> {
        self.holdings
            .iter()
            .map(|(id, h)| (id.clone(), h.fragments))
            .collect()
    }

    /// The report central gets, with what only the link knows: the current
    /// rate and the UDP bytes of its connections.
    pub fn report(&self, rate: u64, quic_bytes_from_central: u64) -> RelayReport {
        RelayReport {
            window_open: self.window_open,
            max_rate: self.max_rate,
            rate,
            holdings: self
                .holdings
                .iter()
                .map(|(id, h)| HeldPackage {
                    package_id: id.clone(),
                    info_sha256: h.info_sha256.clone(),
                    held: h.fragments,
                })
                .collect(),
            bytes_from_central: self.bytes_from_central,
            quic_bytes_from_central,
            bytes_to_agents: self.bytes_to_agents,
            health: self.health.clone(),
        }
    }
}

/// An agent was served `bytes` of package `id` (its info or a fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub id: PackageId,
    pub bytes: u64,
}

/// `sitecast-relay X.Y.Z`.
pub fn software() -> String {
    format!("sitecast-relay {}", env!("CARGO_PKG_VERSION"))
}

/// The current rate is measured over this much recent history.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Bytes per second from a growing counter, over the last [`RATE_WINDOW`].
#[derive(Debug, Default)]
pub struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// The rate, given the counter's value now.
    pub fn rate(&mut self, bytes: u64) -> u64 {
        let now = Instant::now();
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        match self.samples.front() {
            Some((t, b)) if now.duration_since(*t) >= Duration::from_millis(100) => {
                (bytes.saturating_sub(*b) as f64 / now.duration_since(*t).as_secs_f64()) as u64
            }
            _ => 0,
        }
    }
}
