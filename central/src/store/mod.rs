//! Central's metadata: sites, relays, packages, computers, and (in [`jobs`]) job
//! containers, their jobs and what is installed where.
//!
//! The [`Store`] trait is what the API needs; [`SledStore`] is its only
//! implementation and the only code that touches sled. **Every write is flushed
//! to disk before the method returns**, so whatever the API acknowledged survives
//! a `kill -9`. Records are JSON; keys that pair two ids join them with `/`,
//! which no id contains.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sitecast_common::groups::{Candidate, Tag};
use sitecast_common::ids::{ComputerId, PackageId, RelayId, SiteName};
use sitecast_common::power::MacAddr;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::error::CentralError;

pub mod enroll;
pub mod groups;
pub mod jobs;
pub use enroll::{EnrollStore, EnrollTokenRecord, Spent};
pub use groups::{GroupRecord, GroupStore, PackageGroupRecord};
pub use jobs::{ContainerRecord, InstalledRecord, JobRecord, JobStore, RuleSpec};
pub mod power;
pub use power::{ContainerPower, PowerStore};
pub mod records;
pub use records::{
    ActivationRecord, Evaluation, HealthRecord, PackageRecord, ProblemKindRecord, ProblemRecord,
    RelayProblemsRecord, RelayReportRecord, ReplicationRecord, ReportRecord, SiteRecord,
    SourceRecord,
};

type Result<T> = std::result::Result<T, CentralError>;

/// A relay as central keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayRecord {
    pub id: RelayId,
    pub site: SiteName,
    pub subnets: Vec<IpNet>,
    pub url: String,
    pub created_at: Timestamp,
    pub last_seen: Option<Timestamp>,
    /// Fragments held per package, as the relay last reported.
    #[serde(default)]
    pub holdings: BTreeMap<PackageId, Held>,
    #[serde(default)]
    pub bytes_from_central: u64,
    #[serde(default)]
    pub quic_bytes_from_central: u64,
    #[serde(default)]
    pub bytes_to_agents: u64,
    /// What agents reported about this relay.
    #[serde(default)]
    pub problems: RelayProblemsRecord,
    /// Replication state, as the relay last reported.
    #[serde(default)]
    pub replication: ReplicationRecord,
    /// Disk, quota, scrub and version, as the relay last reported.
    #[serde(default)]
    pub health: HealthRecord,
}

/// What a relay holds of one package: the info it has and how many fragments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub info_sha256: String,
    pub fragments: u32,
}

/// When a package was activated, per site and for all sites: how long a
/// relay has been meant to hold it (`GET /coverage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationTimes {
    /// Since when it has been activated for all sites (`None`: it is not).
    #[serde(default)]
    pub all_sites: Option<Timestamp>,
    /// Since when it has been activated for each site named.
    #[serde(default)]
    pub sites: BTreeMap<SiteName, Timestamp>,
}

impl ActivationTimes {
    /// Since when `site`'s relays have been meant to hold the package: the
    /// earlier of its own activation and one for all sites.
    pub fn since(&self, site: &SiteName) -> Option<Timestamp> {
        [self.sites.get(site).copied(), self.all_sites]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A computer as central keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputerRecord {
    pub id: ComputerId,
    pub hostname: String,
    pub os: String,
    pub addresses: Vec<IpAddr>,
    pub enrolled_at: Timestamp,
    pub last_seen: Option<Timestamp>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// MAC addresses the agent last reported, for Wake-on-LAN.
    #[serde(default)]
    pub macs: Vec<MacAddr>,
    /// Enrolled under manual approval and not approved yet: it gets no job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

impl From<&RelayRecord> for sitecast_common::stats::SiteRelay {
    fn from(r: &RelayRecord) -> Self {
        Self {
            id: r.id.clone(),
            site: r.site.clone(),
            subnets: r.subnets.clone(),
        }
    }
}

impl RelayRecord {
    /// Whether the relay holds all of `package`: its current signed info and every fragment.
    pub fn holds_whole(&self, package: &PackageRecord) -> bool {
        self.holdings.get(&package.id).is_some_and(|h| {
            h.info_sha256 == package.info_sha256 && h.fragments == package.fragments
        })
    }

    /// Fragments of `package` held, counting only the current info's.
    pub fn fragments_held(&self, package: &PackageRecord) -> u32 {
        self.holdings
            .get(&package.id)
            .filter(|h| h.info_sha256 == package.info_sha256)
            .map_or(0, |h| h.fragments)
    }
}

impl ComputerRecord {
    /// What group criteria look at.
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            hostname: &self.hostname,
            os: &self.os,
            addresses: &self.addresses,
            tags: &self.tags,
        }
    }
}

/// Who a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum TokenOwner {
    Agent(ComputerId),
    Relay(RelayId),
}

/// What the API asks of central's metadata.
pub trait Store: JobStore + GroupStore + PowerStore + EnrollStore + Send + Sync + 'static {
    fn add_site(&self, site: &SiteRecord) -> Result<()>;
    fn sites(&self) -> Result<Vec<SiteRecord>>;
    fn site(&self, name: &SiteName) -> Result<Option<SiteRecord>>;

    fn add_relay(&self, relay: &RelayRecord, token_sha256: [u8; 32]) -> Result<()>;
    fn relays(&self) -> Result<Vec<RelayRecord>>;
    fn delete_relay(&self, id: &RelayId) -> Result<bool>;
    fn relay(&self, id: &RelayId) -> Result<Option<RelayRecord>>;
    /// Records a relay's report (or, with `None`, only that it was in touch).
    fn record_relay_report(
        &self,
        id: &RelayId,
        report: Option<&RelayReportRecord>,
        now: Timestamp,
    ) -> Result<()>;

    fn token_owner(&self, token_sha256: [u8; 32]) -> Result<Option<TokenOwner>>;

    /// Adds a package; a package of the same name and version is a conflict.
    fn add_package(&self, package: &PackageRecord) -> Result<()>;
    fn packages(&self) -> Result<Vec<PackageRecord>>;
    fn package(&self, id: &PackageId) -> Result<Option<PackageRecord>>;
    fn package_id_by_name(&self, name: &str, version: &str) -> Result<Option<PackageId>>;
    /// Every package of this name (each version), oldest first.
    fn packages_named(&self, name: &str) -> Result<Vec<PackageRecord>>;
    /// Removes a package, its jobs and its installations; false if there was none.
    fn delete_package(&self, id: &PackageId) -> Result<bool>;
    /// Changes a package's activation atomically (concurrent changes are not lost,
    /// and a deleted package is not brought back).
    fn update_activation(
        &self,
        id: &PackageId,
        change: &(dyn Fn(&mut ActivationRecord) + Sync),
    ) -> Result<PackageRecord>;
    /// Records that a package's info was signed again (a revoked key): the
    /// envelope's new digest; false if the package is gone.
    fn set_info_sha256(&self, id: &PackageId, info_sha256: &str) -> Result<bool>;
    /// Changes when a package was activated (a record is created if none
    /// exists; concurrent changes are not lost).
    fn update_activation_times(
        &self,
        id: &PackageId,
        change: &(dyn Fn(&mut ActivationTimes) + Sync),
    ) -> Result<()>;
    /// Every package's activation times.
    fn activation_times(&self) -> Result<BTreeMap<PackageId, ActivationTimes>>;

    /// Adds a computer; an existing id is a conflict (the caller draws another).
    fn add_computer(&self, computer: &ComputerRecord, token_sha256: [u8; 32]) -> Result<()>;
    fn computers(&self) -> Result<Vec<ComputerRecord>>;
    fn computer(&self, id: &ComputerId) -> Result<Option<ComputerRecord>>;
    /// Removes a computer and revokes its token at once; false if there was none.
    fn delete_computer(&self, id: &ComputerId) -> Result<bool>;
    /// Records a contact from the computer and the addresses and MACs it
    /// reported (empty lists keep the last ones); true if the addresses changed
    /// (dynamic groups may have gained or lost it).
    fn touch_computer(
        &self,
        id: &ComputerId,
        addresses: &[IpAddr],
        macs: &[MacAddr],
        now: Timestamp,
    ) -> Result<bool>;
    /// Replaces the computer's tags; `None` if there is no such computer.
    fn set_tags(&self, id: &ComputerId, tags: &[Tag]) -> Result<Option<ComputerRecord>>;
    /// Approves a pending computer; `None` if there is no such computer.
    fn approve_computer(&self, id: &ComputerId) -> Result<Option<ComputerRecord>>;

    /// Counts a problem an agent had with a relay; false if there is no such relay.
    fn record_relay_problem(&self, id: &RelayId, problem: &ProblemRecord) -> Result<bool>;
}

/// The sled implementation of [`Store`].
pub struct SledStore {
    db: sled::Db,
    sites: sled::Tree,
    relays: sled::Tree,
    tokens: sled::Tree,
    packages: sled::Tree,
    names: sled::Tree,
    activation_times: sled::Tree,
    computers: sled::Tree,
    job_trees: jobs::JobTrees,
    group_trees: groups::GroupTrees,
    /// Wake-on-LAN records (see [`power`]).
    wakes: sled::Tree,
    /// Enroll tokens by id, and their digests (see [`enroll`]).
    enroll_tokens: sled::Tree,
    enroll_digests: sled::Tree,
    /// Serialises every change to the job trees (see [`jobs`]).
    jobs_lock: std::sync::Mutex<()>,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    // Records are plain data, but a map with a non-string key would not
    // serialise: say so rather than store an empty record.
    serde_json::to_vec(value).map_err(|e| CentralError::Encode(e.to_string()))
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| CentralError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn pair(a: &str, b: &str) -> Vec<u8> {
    format!("{a}/{b}").into_bytes()
}

fn name_key(name: &str, version: &str) -> Vec<u8> {
    // Names and versions may contain '/', so join them with a byte text cannot hold.
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(version.as_bytes());
    k
}

fn tx_error(e: TransactionError<CentralError>) -> CentralError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => CentralError::Store(e),
    }
}

impl SledStore {
    pub fn open(path: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(32 << 20)
            .open()?;
        Ok(Self {
            sites: db.open_tree("sites")?,
            relays: db.open_tree("relays")?,
            tokens: db.open_tree("tokens")?,
            packages: db.open_tree("packages")?,
            names: db.open_tree("package_names")?,
            activation_times: db.open_tree("activation_times")?,
            computers: db.open_tree("computers")?,
            job_trees: jobs::JobTrees::open(&db)?,
            group_trees: groups::GroupTrees::open(&db)?,
            wakes: db.open_tree("wakes")?,
            enroll_tokens: db.open_tree("enroll_tokens")?,
            enroll_digests: db.open_tree("enroll_digests")?,
            jobs_lock: std::sync::Mutex::new(()),
            db,
        })
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>> {
        tree.iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    /// Removes every token that acts as `owner`.
    fn revoke(&self, owner: &TokenOwner) -> Result<()> {
        let owner = encode(owner)?;
        for kv in self.tokens.iter() {
            let (k, v) = kv?;
            if v.as_ref() == owner.as_slice() {
                self.tokens.remove(k)?;
            }
        }
        Ok(())
    }

    /// Adds a new record and the digest of the token that acts as it, atomically;
    /// an existing id is a conflict. Flushed before returning.
    fn insert_with_token(
        &self,
        tree: &sled::Tree,
        what: &'static str,
        id: &str,
        record: Vec<u8>,
        token_sha256: [u8; 32],
        owner: &TokenOwner,
    ) -> Result<()> {
        let owner = encode(owner)?;
        (tree, &self.tokens)
            .transaction(|(records, tokens)| {
                if records.get(id)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(CentralError::IdTaken {
                        what,
                        id: id.to_owned(),
                    }));
                }
                records.insert(id, record.clone())?;
                tokens.insert(&token_sha256[..], owner.clone())?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.flush()
    }

    /// Changes one record with compare-and-swap, retrying if another writer got
    /// there first, so concurrent updates are never lost and a deleted record is
    /// not brought back (`None`). The caller flushes.
    fn update<T: Serialize + DeserializeOwned>(
        tree: &sled::Tree,
        key: &str,
        mut change: impl FnMut(&mut T),
    ) -> Result<Option<T>> {
        loop {
            let Some(old) = tree.get(key)? else {
                return Ok(None);
            };
            let mut value: T = decode(key.as_bytes(), &old)?;
            change(&mut value);
            if tree
                .compare_and_swap(key, Some(&old), Some(encode(&value)?))?
                .is_ok()
            {
                return Ok(Some(value));
            }
        }
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>> {
        tree.get(key)?.map(|v| decode(key, &v)).transpose()
    }
}

impl Store for SledStore {
    fn add_site(&self, site: &SiteRecord) -> Result<()> {
        let swapped = self.sites.compare_and_swap(
            site.name.as_str(),
            None as Option<&[u8]>,
            Some(encode(site)?),
        )?;
        if swapped.is_err() {
            return Err(CentralError::Conflict(format!(
                "site '{}' already exists",
                site.name
            )));
        }
        self.flush()
    }

    fn sites(&self) -> Result<Vec<SiteRecord>> {
        Self::all(&self.sites)
    }

    fn site(&self, name: &SiteName) -> Result<Option<SiteRecord>> {
        Self::get(&self.sites, name.as_str().as_bytes())
    }

    fn add_relay(&self, relay: &RelayRecord, token_sha256: [u8; 32]) -> Result<()> {
        self.insert_with_token(
            &self.relays,
            "relay",
            relay.id.as_str(),
            encode(relay)?,
            token_sha256,
            &TokenOwner::Relay(relay.id.clone()),
        )
    }

    fn relays(&self) -> Result<Vec<RelayRecord>> {
        Self::all(&self.relays)
    }

    fn delete_relay(&self, id: &RelayId) -> Result<bool> {
        let existed = self.relays.remove(id.as_str())?.is_some();
        // Revoke its token too: a deleted relay must not be able to connect again.
        self.revoke(&TokenOwner::Relay(id.clone()))?;
        self.flush()?;
        Ok(existed)
    }

    fn relay(&self, id: &RelayId) -> Result<Option<RelayRecord>> {
        Self::get(&self.relays, id.as_str().as_bytes())
    }

    fn record_relay_report(
        &self,
        id: &RelayId,
        report: Option<&RelayReportRecord>,
        now: Timestamp,
    ) -> Result<()> {
        // A relay deleted while connected has nothing to record.
        Self::update(&self.relays, id.as_str(), |relay: &mut RelayRecord| {
            relay.last_seen = Some(now);
            if let Some(r) = report {
                relay.holdings = r.holdings.clone();
                relay.bytes_from_central = r.bytes_from_central;
                relay.quic_bytes_from_central = r.quic_bytes_from_central;
                relay.bytes_to_agents = r.bytes_to_agents;
                relay.replication = r.replication;
                relay.health = r.health.clone();
            }
        })?;
        self.flush()
    }

    fn token_owner(&self, token_sha256: [u8; 32]) -> Result<Option<TokenOwner>> {
        Self::get(&self.tokens, &token_sha256)
    }

    fn add_package(&self, package: &PackageRecord) -> Result<()> {
        let key = name_key(&package.name, &package.version);
        let record = encode(package)?;
        (&self.packages, &self.names)
            .transaction(|(packages, names)| {
                if names.get(&key)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(CentralError::Conflict(
                        format!(
                            "package '{}' version '{}' already exists",
                            package.name, package.version
                        ),
                    )));
                }
                if packages.get(package.id.as_str())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(CentralError::Conflict(
                        format!("package id '{}' already exists", package.id),
                    )));
                }
                packages.insert(package.id.as_str(), record.as_slice())?;
                names.insert(key.clone(), package.id.as_str())?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.flush()
    }

    fn packages(&self) -> Result<Vec<PackageRecord>> {
        let mut all: Vec<PackageRecord> = Self::all(&self.packages)?;
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(all)
    }

    fn package(&self, id: &PackageId) -> Result<Option<PackageRecord>> {
        Self::get(&self.packages, id.as_str().as_bytes())
    }

    fn package_id_by_name(&self, name: &str, version: &str) -> Result<Option<PackageId>> {
        match self.names.get(name_key(name, version))? {
            Some(v) => {
                let text = String::from_utf8_lossy(&v).into_owned();
                text.parse().map(Some).map_err(|e| CentralError::Corrupt {
                    key: format!("{name}/{version}"),
                    reason: format!("{e}"),
                })
            }
            None => Ok(None),
        }
    }

    fn packages_named(&self, name: &str) -> Result<Vec<PackageRecord>> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        let mut found = Vec::new();
        for kv in self.names.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let Ok(id) = String::from_utf8_lossy(&v).parse::<PackageId>() else {
                return Err(CentralError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "not a package id".into(),
                });
            };
            // A name holding a NUL byte would share the prefix: keep exact names only.
            if let Some(p) = self.package(&id)?.filter(|p| p.name == name) {
                found.push(p);
            }
        }
        found.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(found)
    }

    fn delete_package(&self, id: &PackageId) -> Result<bool> {
        let Some(package) = self.package(id)? else {
            return Ok(false);
        };
        let key = name_key(&package.name, &package.version);
        (&self.packages, &self.names)
            .transaction(|(packages, names)| {
                packages.remove(id.as_str())?;
                names.remove(key.clone())?;
                Ok::<(), ConflictableTransactionError<CentralError>>(())
            })
            .map_err(tx_error)?;
        self.activation_times.remove(id.as_str())?;
        self.forget_package_jobs(id)?;
        self.flush()?;
        Ok(true)
    }

    fn update_activation(
        &self,
        id: &PackageId,
        change: &(dyn Fn(&mut ActivationRecord) + Sync),
    ) -> Result<PackageRecord> {
        let package = Self::update(&self.packages, id.as_str(), |p: &mut PackageRecord| {
            change(&mut p.activation)
        })?
        .ok_or_else(|| CentralError::not_found("package", id))?;
        self.flush()?;
        Ok(package)
    }

    fn set_info_sha256(&self, id: &PackageId, info_sha256: &str) -> Result<bool> {
        let changed = Self::update(&self.packages, id.as_str(), |p: &mut PackageRecord| {
            p.info_sha256 = info_sha256.to_owned();
        })?
        .is_some();
        self.flush()?;
        Ok(changed)
    }

    fn update_activation_times(
        &self,
        id: &PackageId,
        change: &(dyn Fn(&mut ActivationTimes) + Sync),
    ) -> Result<()> {
        loop {
            let old = self.activation_times.get(id.as_str())?;
            let mut times: ActivationTimes = match &old {
                Some(bytes) => decode(id.as_str().as_bytes(), bytes)?,
                None => ActivationTimes::default(),
            };
            change(&mut times);
            let new = if times == ActivationTimes::default() {
                None
            } else {
                Some(encode(&times)?)
            };
            if self
                .activation_times
                .compare_and_swap(id.as_str(), old, new)?
                .is_ok()
            {
                return self.flush();
            }
        }
    }

    fn activation_times(&self) -> Result<BTreeMap<PackageId, ActivationTimes>> {
        self.activation_times
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k)
                    .parse::<PackageId>()
                    .map_err(|e| CentralError::Corrupt {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        reason: e.to_string(),
                    })?;
                Ok((id, decode(&k, &v)?))
            })
            .collect()
    }

    fn add_computer(&self, computer: &ComputerRecord, token_sha256: [u8; 32]) -> Result<()> {
        self.insert_with_token(
            &self.computers,
            "computer",
            computer.id.as_str(),
            encode(computer)?,
            token_sha256,
            &TokenOwner::Agent(computer.id.clone()),
        )
    }

    fn computers(&self) -> Result<Vec<ComputerRecord>> {
        Self::all(&self.computers)
    }

    fn computer(&self, id: &ComputerId) -> Result<Option<ComputerRecord>> {
        Self::get(&self.computers, id.as_str().as_bytes())
    }

    fn delete_computer(&self, id: &ComputerId) -> Result<bool> {
        // The token first: from this instant the computer's agent is refused.
        self.revoke(&TokenOwner::Agent(id.clone()))?;
        let existed = self.computers.remove(id.as_str())?.is_some();
        self.flush()?;
        Ok(existed)
    }

    fn touch_computer(
        &self,
        id: &ComputerId,
        addresses: &[IpAddr],
        macs: &[MacAddr],
        now: Timestamp,
    ) -> Result<bool> {
        let mut moved = false;
        // Compare-and-swap: an admin changing the tags at the same moment keeps them.
        Self::update(&self.computers, id.as_str(), |c: &mut ComputerRecord| {
            c.last_seen = Some(now);
            moved = !addresses.is_empty() && c.addresses != addresses;
            if moved {
                c.addresses = addresses.to_vec();
            }
            if !macs.is_empty() {
                c.macs = macs.to_vec();
            }
        })?
        .ok_or_else(|| CentralError::not_found("computer", id))?;
        self.flush()?;
        Ok(moved)
    }

    fn set_tags(&self, id: &ComputerId, tags: &[Tag]) -> Result<Option<ComputerRecord>> {
        let updated = Self::update(&self.computers, id.as_str(), |c: &mut ComputerRecord| {
            c.tags = tags.to_vec();
        })?;
        self.flush()?;
        Ok(updated)
    }

    fn approve_computer(&self, id: &ComputerId) -> Result<Option<ComputerRecord>> {
        let updated = Self::update(&self.computers, id.as_str(), |c: &mut ComputerRecord| {
            c.pending = false;
        })?;
        self.flush()?;
        Ok(updated)
    }

    fn record_relay_problem(&self, id: &RelayId, problem: &ProblemRecord) -> Result<bool> {
        // Compare-and-swap, as for reports: a relay's report arriving at the same
        // moment must not lose the problem, nor the problem the report.
        let recorded = Self::update(&self.relays, id.as_str(), |relay: &mut RelayRecord| {
            relay.problems.record(problem.clone())
        })?;
        if recorded.is_some() {
            self.flush()?;
        }
        Ok(recorded.is_some())
    }
}
