//! `Central`, the state every part of central shares: the store, the package
//! files and deltas, the signing key, the tokens' digests, the configuration,
//! the clock, the relays' change signal and links, and the byte counters.
//!
//! Opened once from a loaded DIR ([`Central::open`]); immutable after that
//! except through the store (internally synchronised), the atomics and the
//! channels, each documented with its contract.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use crate::clock::Clock;
use crate::config::CentralConfig;
use crate::delta::Deltas;
use crate::error::CentralError;
use crate::init::Loaded;
use crate::jitter::{OsRandom, Random};
use crate::keys::KeyRing;
use crate::links::RelayLinks;
use crate::packaging::PackageFiles;
use crate::store::{SledStore, Store};
use crate::tokens;

/// Central's shared state.
pub struct Central {
    pub store: Arc<dyn Store>,
    pub files: PackageFiles,
    /// The DIR's files (the key set is read again from it while serving).
    pub layout: crate::init::Layout,
    /// Deltas between versions, for relays that hold the older one.
    pub deltas: Arc<Deltas>,
    /// The root, the key set and the active signing key; replaced whole when
    /// `sitecast-central key` publishes a new set ([`Central::keys`]).
    keys: RwLock<Arc<KeyRing>>,
    pub admin_token: [u8; 32],
    pub enroll_token: [u8; 32],
    pub config: CentralConfig,
    pub clock: Arc<dyn Clock>,
    /// Bumped whenever what relays must hold may have changed (activations,
    /// deletions); each relay connection watches it and pushes the new set at once.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// Fragment bytes central served to agents directly (the WAN bytes relays exist to avoid).
    pub fragment_bytes_to_agents: AtomicU64,
    /// Info and fragment bytes central sent to relays over QUIC.
    pub bytes_to_relays: AtomicU64,
    /// Draws the jitter of each poll's interval (replaceable in tests).
    pub random: Arc<dyn Random>,
    /// The relays connected now (Wake-on-LAN requests go through them).
    pub relay_links: RelayLinks,
    /// Serialises the re-evaluation of deployment rules (`domain::rules::Evaluating`).
    pub(crate) rules_lock: std::sync::Mutex<()>,
}

impl Central {
    /// Opens the store and the package files of a loaded DIR, cleaning up after
    /// any crash.
    pub fn open(loaded: Loaded, clock: Arc<dyn Clock>) -> Result<Self, CentralError> {
        let store = SledStore::open(&loaded.layout.db())?;
        let known: HashSet<_> = store.packages()?.into_iter().map(|p| p.id).collect();
        let files = PackageFiles::open(&loaded.layout.packages(), &known)?;
        let deltas = Arc::new(Deltas::open(&loaded.layout.deltas())?);
        crate::keys::warn_if_expiring(&loaded.keys, clock.now());
        Ok(Self {
            store: Arc::new(store),
            files,
            layout: loaded.layout.clone(),
            deltas,
            keys: RwLock::new(Arc::new(loaded.keys)),
            admin_token: tokens::digest(&loaded.admin_token),
            enroll_token: tokens::digest(&loaded.enroll_token),
            config: loaded.config,
            clock,
            changes: tokio::sync::watch::Sender::new(0),
            fragment_bytes_to_agents: AtomicU64::new(0),
            bytes_to_relays: AtomicU64::new(0),
            random: Arc::new(OsRandom),
            relay_links: RelayLinks::default(),
            rules_lock: std::sync::Mutex::new(()),
        })
    }

    /// The keys now: a request signs and answers with one ring, whatever a
    /// reload does meanwhile.
    pub fn keys(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Takes a new ring into use (after `domain::keys` re-signed what needs it).
    pub(crate) fn replace_keys(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.keys.write() {
            Ok(mut held) => *held = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }

    /// Tells every connected relay to look at its activated set again.
    pub fn notify_relays(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Runs store work on the blocking pool: sled flushes fsync, and an async
    /// worker must never wait on a disk.
    pub async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Central) -> Result<R, CentralError> + Send + 'static,
    ) -> Result<R, CentralError> {
        let me = Arc::clone(self);
        sitecast_io::blocking(move || f(&me)).await
    }
}
