//! Wire types of the HTTP API (SPEC "HTTP API"), shared by central, the admin CLI,
//! relays and agents.
//!
//! Requests carry user input as plain strings so central can validate them into
//! domain types with errors that name the bad field or token; responses carry
//! values central already validated.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::constraint::{IpRanges, TimeFrames};
use crate::grammar::GrammarError;
use crate::groups::{Criteria, Tag};
use crate::ids::{ComputerId, ContainerId, GroupName, PackageId, RelayId, SiteName};
use crate::info::ActionDoc;
use crate::jobs::{Runtimes, Sequence};
use crate::power::{MacAddr, PowerAction};
use crate::status::StatusCode;
use crate::units::Duration;

/// Every error response: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRequest {
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub name: SiteName,
    pub subnets: Vec<IpNet>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRequest {
    pub site: String,
    pub subnets: Vec<String>,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayCreated {
    pub id: RelayId,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relay {
    pub id: RelayId,
    pub site: SiteName,
    pub subnets: Vec<IpNet>,
    pub url: String,
    pub last_seen: Option<Timestamp>,
    pub holdings: Vec<Holding>,
    /// Bytes the relay received from central, as it last reported (since it started).
    #[serde(default)]
    pub bytes_from_central: u64,
    /// UDP bytes the relay received on its QUIC connections (since it started).
    #[serde(default)]
    pub quic_bytes_from_central: u64,
    /// Bytes the relay served to agents, as it last reported (since it started).
    #[serde(default)]
    pub bytes_to_agents: u64,
    /// What agents reported about this relay (refused, timed out, stalled, bad data).
    #[serde(default)]
    pub problems: RelayProblems,
    /// Window, cap and current rate, as the relay last reported.
    #[serde(default)]
    pub replication: ReplicationState,
    /// Disk, quota, scrub and software, as the relay last reported.
    #[serde(default)]
    pub health: RelayHealth,
}

/// A relay's health: its software, its cache against its disk and quota, the
/// delta bases it keeps, and what its last scrub found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHealth {
    /// The relay's software, e.g. `sitecast-relay 0.1.0` (empty: not reported).
    #[serde(default)]
    pub version: String,
    /// Bytes of the relay's cache (signed infos and fragments).
    #[serde(default)]
    pub disk_used: u64,
    /// Bytes free on the cache's file system (`None`: unknown).
    #[serde(default)]
    pub disk_free: Option<u64>,
    /// The relay's `max_disk` quota in bytes (`None`: unlimited).
    #[serde(default)]
    pub max_disk: Option<u64>,
    /// The cache exceeds the quota with nothing left to evict: what the site
    /// has activated alone is larger than `max_disk`.
    #[serde(default)]
    pub over_quota: bool,
    /// Packages no longer activated but kept whole as delta bases (evicted
    /// first, least recently needed first, when the quota needs room).
    #[serde(default)]
    pub kept: Vec<PackageId>,
    /// Kept packages evicted for the quota since the relay started.
    #[serde(default)]
    pub evicted: u64,
    /// When the last scrub (every held fragment re-hashed) finished.
    #[serde(default)]
    pub last_scrub: Option<Timestamp>,
    /// Bad fragments (and infos) the last scrub found, deleted and fetched again.
    #[serde(default)]
    pub scrub_bad: u64,
    /// Bad fragments (and infos) found by every scrub so far.
    #[serde(default)]
    pub scrub_bad_total: u64,
    /// Seconds between scrubs (`None`: scrubbing is off).
    #[serde(default)]
    pub scrub_interval_s: Option<u64>,
}

/// Where a relay's replication stands: whether its schedule admits fragment
/// bytes now, its cap, and the rate it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationState {
    pub window_open: bool,
    /// Bytes per second (`None`: unlimited).
    pub max_rate: Option<u64>,
    /// Bytes per second received from central recently.
    pub rate: u64,
}

impl Default for ReplicationState {
    fn default() -> Self {
        Self {
            window_open: true,
            max_rate: None,
            rate: 0,
        }
    }
}

/// Central's own counters (`GET /status`), since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentralStatus {
    pub version: String,
    /// Fragment bytes central served to agents directly.
    pub fragment_bytes_to_agents: u64,
    /// Info and fragment bytes central sent to relays.
    pub bytes_to_relays: u64,
    /// Relays connected now.
    pub relays_connected: u64,
}

/// How much of one activated package a relay holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub package_id: PackageId,
    pub held: u32,
    pub total: u32,
    /// The relay holds the current signed info and every fragment: agents may use it.
    #[serde(default)]
    pub complete: bool,
    /// Seconds until the relay holds it all at its current rate (`None`: complete,
    /// or not moving).
    #[serde(default)]
    pub eta_s: Option<u64>,
}

/// Query parameters of `POST /packages` (the body is the raw file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    pub name: Option<String>,
    pub version: Option<String>,
    pub action: Option<String>,
    pub command: Option<String>,
    pub path: Option<String>,
    pub priority: Option<String>,
    pub archive: Option<String>,
    pub fragment_size: Option<String>,
    pub os: Option<String>,
    pub success_exit_codes: Option<String>,
    /// Seconds the command may run before it is killed.
    pub command_timeout_s: Option<String>,
    /// The command that removes what the package installed (uninstall jobs run it).
    pub uninstall_command: Option<String>,
    /// Exit codes of the uninstall command that mean success, e.g. `0,3010`.
    pub uninstall_success_exit_codes: Option<String>,
    /// The package this version replaces: a package id of the same name, or
    /// `none`. Absent: the newest existing package of the same name.
    pub supersedes: Option<String>,
    /// Shown to the computer's user before the action runs (OCS "notify user").
    pub notify_text: Option<String>,
    /// How long the user has to answer, a duration (`5m`); absent or `0s`: no
    /// countdown. Needs `notify_text`.
    pub notify_countdown: Option<String>,
    /// `true`: the user may abort the deployment (`ERR_ABORTED`). Needs `notify_text`.
    pub notify_can_abort: Option<String>,
    /// `true`: the user may delay it to a later cycle. Needs `notify_text`.
    pub notify_can_delay: Option<String>,
    /// Shown to the computer's user after the action succeeded.
    pub done_action_text: Option<String>,
    /// `true`: the computer restarts after the package installed (after its
    /// container's restart timeout).
    pub restart: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub id: PackageId,
    pub name: String,
    pub version: String,
    pub os: String,
    pub priority: u8,
    pub action: ActionDoc,
    pub archive: String,
    pub size: u64,
    pub sha256: String,
    pub fragment_size: u64,
    /// The number of fragments.
    pub fragments: u32,
    pub success_exit_codes: Vec<i32>,
    /// SHA-256 of the signed envelope's bytes, which agents check before anything else.
    pub info_sha256: String,
    pub created_at: Timestamp,
    pub activation: Activation,
    /// How uninstall jobs remove the package, if it says.
    #[serde(default)]
    pub uninstall: Option<crate::info::UninstallDoc>,
    /// The older package this one replaces (in its signed info): relays holding
    /// it may receive this one as a delta.
    #[serde(default)]
    pub supersedes: Option<PackageId>,
    /// What the agent tells the computer's user before the action, and what the
    /// user may answer (in the signed info).
    #[serde(default)]
    pub notify: Option<crate::info::NotifyDoc>,
    /// What the agent tells the user after a successful action (in the signed info).
    #[serde(default)]
    pub done_action_text: Option<String>,
    /// The computer restarts after installing it (in its signed info).
    #[serde(default)]
    pub restart: bool,
}

/// Which sites' relays replicate a package, and whether agents may fall back to central.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub all_sites: bool,
    pub sites: Vec<SiteName>,
    pub central_fallback: CentralFallback,
}

impl Activation {
    /// Whether the relays of `site` are to hold the package: the one
    /// "activated for this site" rule that central's poll answers, relay views
    /// and QUIC pushes all apply.
    pub fn includes(&self, site: &SiteName) -> bool {
        self.all_sites || self.sites.contains(site)
    }
}

/// What a job does with its package on the computer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Download, verify, unpack and run the package's action.
    #[default]
    Install,
    /// Fetch and verify the signed info, then run its `uninstall` procedure (and,
    /// for a `store` package, remove what it put in place).
    Uninstall,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobKind::Install => "install",
            JobKind::Uninstall => "uninstall",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRequest {
    #[serde(default)]
    pub sites: Option<Vec<String>>,
    #[serde(default)]
    pub all_sites: Option<bool>,
    #[serde(default)]
    pub fallback: Option<String>,
}

/// Answer of `DELETE /packages/{id}/activations` (OCS's red cross): the package
/// with what is left of its activation, and the install jobs not yet notified
/// that were cancelled on the computers of the deactivated sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivated {
    pub package: Package,
    /// Jobs removed (install jobs of the package still `WAITING_NOTIFICATION`).
    pub cancelled: u64,
    /// The computers those jobs were on, by id.
    pub computers: Vec<ComputerId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentRequest {
    #[serde(default)]
    pub computers: Option<Vec<String>>,
    #[serde(default)]
    pub all: Option<bool>,
    #[serde(default)]
    pub subnet: Option<String>,
    /// Targeting by criteria: see [`Target`].
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub os: Option<Vec<String>>,
    #[serde(default)]
    pub hostnames: Option<Vec<String>>,
}

impl AssignmentRequest {
    pub fn target(&self) -> Target {
        Target {
            computers: self.computers.clone(),
            all: self.all,
            subnet: self.subnet.clone(),
            group: self.group.clone(),
            tags: self.tags.clone(),
            os: self.os.clone(),
            hostnames: self.hostnames.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    pub package_id: PackageId,
    /// Computers newly assigned (or re-assigned after a finished deployment).
    pub assigned: Vec<ComputerId>,
    /// Computers that already had a deployment of this package under way.
    pub unchanged: Vec<ComputerId>,
    /// The job container created for the assigned computers (none if there were none).
    #[serde(default)]
    pub container_id: Option<ContainerId>,
}

/// Body of `POST /containers`: a job container (SPEC "Jobs"). Every field is
/// text or a plain value so central names the bad field or token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Package ids, run in this order on each computer.
    pub packages: Vec<String>,
    #[serde(default)]
    pub computers: Option<Vec<String>>,
    #[serde(default)]
    pub all: Option<bool>,
    #[serde(default)]
    pub subnet: Option<String>,
    /// RFC 3339, or a wall time in central's time zone (`2026-11-21 18:00`); default now.
    #[serde(default)]
    pub start_at: Option<String>,
    #[serde(default)]
    pub end_at: Option<String>,
    /// Higher first (OCO); default 0.
    #[serde(default)]
    pub priority: Option<i32>,
    /// OCO's IP ranges, matched against the address central sees on the agent's connection.
    #[serde(default)]
    pub ip_ranges: Option<String>,
    /// OCO's time frames, read on central's clock in its time zone.
    #[serde(default)]
    pub time_frames: Option<String>,
    /// `ignore_failed` (default) or `abort_after_failed`.
    #[serde(default)]
    pub sequence: Option<String>,
    /// Uninstall the packages instead of installing them.
    #[serde(default)]
    pub uninstall: Option<bool>,
    /// Before installing a version, uninstall the other versions of the same
    /// package name installed on the computer (OCO's default: on).
    #[serde(default)]
    pub auto_uninstall: Option<bool>,
    /// Automatic retries of a failed job (default 0).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wait before the first retry, doubled after each (duration grammar; default `5m`).
    #[serde(default)]
    pub retry_backoff: Option<String>,
    /// Wake the computers with Wake-on-LAN when the container starts (OCO).
    #[serde(default)]
    pub wol: Option<bool>,
    /// Shut down the computers that were woken once their jobs are done (needs `wol`).
    #[serde(default)]
    pub shutdown_after: Option<bool>,
    /// How long an agent waits before restarting for a package that needs it
    /// (duration grammar; default `5m`).
    #[serde(default)]
    pub restart_timeout: Option<String>,
    /// Targeting by criteria: see [`Target`].
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub os: Option<Vec<String>>,
    #[serde(default)]
    pub hostnames: Option<Vec<String>>,
}

impl ContainerRequest {
    pub fn target(&self) -> Target {
        Target {
            computers: self.computers.clone(),
            all: self.all,
            subnet: self.subnet.clone(),
            group: self.group.clone(),
            tags: self.tags.clone(),
            os: self.os.clone(),
            hostnames: self.hostnames.clone(),
        }
    }
}

/// A job container as central answers it. `GET /containers` leaves `jobs` out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: ContainerId,
    pub name: String,
    pub description: String,
    pub created_at: Timestamp,
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    pub priority: i32,
    pub ip_ranges: Option<IpRanges>,
    pub time_frames: Option<TimeFrames>,
    pub sequence: Sequence,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub auto_uninstall: bool,
    /// Set by `container cancel`: jobs not yet started were cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// `waiting` (not started), `running`, `succeeded`, `failed` or `cancelled`.
    pub state: ContainerState,
    /// Jobs per status.
    pub counts: BTreeMap<StatusCode, u64>,
    pub runtimes: Runtimes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<Job>,
    /// Wake-on-LAN when the container starts.
    #[serde(default)]
    pub wol: bool,
    /// Shut down the computers that were woken once their jobs are done.
    #[serde(default)]
    pub shutdown_after: bool,
    /// How long agents wait before a restart a package needs.
    #[serde(default = "default_restart_timeout")]
    pub restart_timeout: Duration,
    /// The wake central sent when the container started (shown with the jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<Wake>,
}

/// Where a container stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Waiting,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        })
    }
}

/// One job: a computer × a package × install or uninstall, in its container's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub container_id: ContainerId,
    /// Position among the computer's jobs of the container (from 1).
    pub order: u32,
    pub computer_id: ComputerId,
    pub hostname: String,
    pub package_id: PackageId,
    pub package_name: String,
    pub package_version: String,
    pub kind: JobKind,
    pub status: StatusCode,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    /// Times handed out to the agent (tries).
    pub attempts: u32,
    /// A failed job waiting to be tried again, not before this instant.
    pub retry_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Answer of `POST /containers/{id}/retry` and `/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerChanged {
    pub container_id: ContainerId,
    /// Jobs renewed (retry) or cancelled (cancel).
    pub jobs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub package_id: PackageId,
    pub counts: BTreeMap<StatusCode, u64>,
    pub computers: Vec<ComputerStat>,
    /// The computers in each status, by id (OCS: click a status line's number).
    #[serde(default)]
    pub by_status: BTreeMap<StatusCode, Vec<ComputerId>>,
    /// Per site (OCS's per-server statistics): where the computers' bytes came
    /// from. Named sites by name, then the computers no relay's subnet contains.
    #[serde(default)]
    pub sites: Vec<SiteStat>,
}

/// One site's share of a package's deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteStat {
    /// The site of the relay whose subnets contain one of the computer's
    /// addresses (longest prefix); `None`: no relay's subnet does.
    pub site: Option<SiteName>,
    /// Computers of this site assigned the package.
    pub computers: u64,
    /// Fragment bytes they reported taking from relays.
    pub bytes_from_relays: u64,
    /// Fragment bytes they reported taking from central.
    pub bytes_from_central: u64,
    /// The computers each relay served (a computer that failed over to another
    /// relay counts for both).
    pub relays: BTreeMap<RelayId, u64>,
}

/// Fragment bytes an agent took from one source for one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceBytes {
    /// The relay; `None` is central.
    pub relay_id: Option<RelayId>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerStat {
    pub computer_id: ComputerId,
    pub hostname: String,
    pub status: StatusCode,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub fragments_done: Option<u32>,
    pub updated_at: Timestamp,
    /// Fragment bytes per source, as the agent's final report gave them.
    #[serde(default)]
    pub sources: Vec<SourceBytes>,
}

/// Body of `POST /packages/{id}/validate`: `what` is `success` (OCS "Validate
/// success": clear the lines of computers where the package is in place),
/// `not_notified` ("Unaffect not notified": cancel assignments still
/// `WAITING_NOTIFICATION`) or `all` (both).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    #[serde(default)]
    pub what: Option<String>,
}

/// Answer of `POST /packages/{id}/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validated {
    pub package_id: PackageId,
    /// Assignments removed, per status they had (statuses with none are left out).
    pub removed: BTreeMap<StatusCode, u64>,
    /// Assignments of the package left afterwards.
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Computer {
    pub id: ComputerId,
    pub hostname: String,
    pub os: String,
    pub addresses: Vec<IpAddr>,
    pub last_seen: Option<Timestamp>,
    pub enrolled_at: Timestamp,
    /// OCS's TAG: from `sitecast-agent enroll --tag`, changed by `computer tag`.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The MAC addresses the agent last reported (for Wake-on-LAN).
    #[serde(default)]
    pub macs: Vec<MacAddr>,
}

/// Answer of `GET /computers/{id}`: the computer (the fields of
/// `GET /computers`), its packages (OCO's "Installed packages" and pending
/// ones), by name then version, and its jobs, by container then order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerDetail {
    #[serde(flatten)]
    pub computer: Computer,
    pub packages: Vec<ComputerPackage>,
    #[serde(default)]
    pub jobs: Vec<Job>,
}

/// One package installed on a computer or with a job there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerPackage {
    pub package_id: PackageId,
    pub name: String,
    pub version: String,
    /// The status of its latest job there (`None`: no job left, e.g. purged).
    pub status: Option<StatusCode>,
    pub exit_code: Option<i32>,
    pub updated_at: Option<Timestamp>,
    /// Central believes it is in place: an install job succeeded, and no
    /// uninstall job or "remove assignment" undid it since.
    pub installed: bool,
    pub installed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub enroll_token: String,
    pub hostname: String,
    pub os: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// MAC addresses, for Wake-on-LAN (`aa:bb:cc:dd:ee:ff`).
    #[serde(default)]
    pub macs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub computer_id: ComputerId,
    pub token: String,
    pub signing_keys: Vec<PublicKey>,
}

/// One of central's info-signing public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keyid: String,
    /// SubjectPublicKeyInfo PEM.
    pub pem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    #[serde(default)]
    pub addresses: Vec<String>,
    /// MAC addresses, for Wake-on-LAN (none: keep the last ones reported).
    #[serde(default)]
    pub macs: Vec<String>,
    /// Seconds the computer has been on: since it booted, or since the boot
    /// before a restart the agent itself asked for (a package's restart: the
    /// computer never went off). Central reckons the boot on its own clock
    /// (`now - uptime_s`) to tell a computer it woke from one that was already
    /// on ([`crate::power::was_on`]). Absent: an older agent, or a system where
    /// the agent cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResponse {
    pub poll_interval_s: u64,
    pub packages: Vec<PolledPackage>,
    /// Shut down (once: a computer woken for a container with `shutdown_after`
    /// whose jobs there are done), after the reports are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolledPackage {
    pub id: PackageId,
    pub priority: u8,
    pub info_sha256: String,
    /// Relays that hold the package whole (the agent picks by the same-subnet rule).
    pub relays: Vec<RelayRef>,
    /// A relay serves one of the agent's addresses but does not hold the package
    /// whole yet: the agent waits for it instead of downloading from central
    /// (unless `central_fallback` says otherwise).
    #[serde(default)]
    pub relay_pending: bool,
    pub central_fallback: CentralFallback,
    /// Install the package, or run its uninstall procedure (SPEC "Jobs").
    #[serde(default)]
    pub kind: JobKind,
    /// Seconds to wait before restarting, if the package needs a restart
    /// (its container's `restart_timeout`).
    #[serde(default = "default_restart_timeout_s")]
    pub restart_timeout_s: u64,
}

/// A relay as agents see it: where to download and which subnets it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRef {
    pub id: RelayId,
    pub url: String,
    pub subnets: Vec<IpNet>,
}

impl crate::subnet::RelaySubnets for RelayRef {
    fn relay_id(&self) -> &RelayId {
        &self.id
    }
    fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub code: StatusCode,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub fragments_done: Option<u32>,
    /// Fragment bytes taken from each source (final reports; empty otherwise).
    #[serde(default)]
    pub sources: Vec<SourceBytes>,
}

/// Whether an agent whose relays lack a package may download it from central
/// (`never`, `always`, or `after:DURATION` of waiting, as SCCM does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CentralFallback {
    #[default]
    Never,
    Always,
    After(Duration),
}

impl FromStr for CentralFallback {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        match s {
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            _ => match s.strip_prefix("after:") {
                Some(d) => Ok(Self::After(d.parse()?)),
                None => Err(GrammarError {
                    grammar: "fallback",
                    token: s.to_owned(),
                    reason: "expected never, always or after:DURATION".into(),
                }),
            },
        }
    }
}

impl fmt::Display for CentralFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("never"),
            Self::Always => f.write_str("always"),
            Self::After(d) => write!(f, "after:{d}"),
        }
    }
}

impl TryFrom<String> for CentralFallback {
    type Error = GrammarError;
    fn try_from(s: String) -> Result<Self, GrammarError> {
        s.parse()
    }
}

impl From<CentralFallback> for String {
    fn from(f: CentralFallback) -> String {
        f.to_string()
    }
}

/// Why an agent abandoned a relay (`POST /agent/relays/{id}/problems`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The connection could not be made (refused, reset, unreachable) or was
    /// closed before an answer.
    Refused,
    /// Connecting took longer than the agent's `connect_timeout`.
    Timeout,
    /// Connected, but no byte came for `stall_timeout`, the transfer fell below
    /// `min_rate`, or it broke off.
    Stalled,
    /// What came was not what the signed info says (digest, length, info), or an
    /// error status instead of content central says the relay holds.
    BadData,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 4] = [
        ProblemKind::Refused,
        ProblemKind::Timeout,
        ProblemKind::Stalled,
        ProblemKind::BadData,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Refused => "refused",
            ProblemKind::Timeout => "timeout",
            ProblemKind::Stalled => "stalled",
            ProblemKind::BadData => "bad_data",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /agent/relays/{id}/problems`: an agent gave up on a relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemReport {
    /// The package being downloaded, if any.
    #[serde(default)]
    pub package_id: Option<PackageId>,
    pub kind: ProblemKind,
    /// What happened, in words (central keeps the first 1 KiB).
    #[serde(default)]
    pub detail: String,
}

/// The problems agents reported about one relay, as central keeps and shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayProblems {
    /// Every problem reported, of any kind.
    #[serde(default)]
    pub count: u64,
    /// The count per kind (kinds never reported are absent).
    #[serde(default)]
    pub counts: BTreeMap<ProblemKind, u64>,
    /// The most recent problem.
    #[serde(default)]
    pub last: Option<RelayProblem>,
}

/// One reported problem: what, about which package, from which computer, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayProblem {
    pub kind: ProblemKind,
    pub detail: String,
    pub computer_id: ComputerId,
    #[serde(default)]
    pub package_id: Option<PackageId>,
    pub at: Timestamp,
}

impl RelayProblems {
    /// Counts `problem` and makes it the last one.
    pub fn record(&mut self, problem: RelayProblem) {
        self.count += 1;
        *self.counts.entry(problem.kind).or_insert(0) += 1;
        self.last = Some(problem);
    }
}

/// Answer of `GET /coverage`: what the same-subnet rule leaves out and where
/// the relays fall behind (seed 004: machines no redistribution server's
/// subnet matched had to be found by hand). Built by `coverage::report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Central's clock when the report was drawn; every age is counted to it.
    pub generated_at: Timestamp,
    /// A relay not in touch for longer than this is out of touch.
    pub relay_stale_after: Duration,
    /// A computer in touch within this counts as seen recently.
    pub computer_recent_within: Duration,
    /// Computers enrolled.
    pub computers: u64,
    /// Computers none of whose addresses any relay's subnets contain: they
    /// download over the WAN from central (by id). A computer some relay's
    /// subnet contains is not here even if that relay is stale: see `stale_relays`.
    pub unserved: Vec<UnservedComputer>,
    /// Every site (by name), with what its relays serve.
    pub sites: Vec<SiteCoverage>,
    /// Relays whose holdings are stale, each with its reasons (by site, then id).
    pub stale_relays: Vec<StaleRelay>,
    /// Warnings: subnets of relays of different sites that overlap, so the
    /// same addresses are served by two sites.
    pub overlaps: Vec<SubnetOverlap>,
}

/// A computer no relay serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnservedComputer {
    pub id: ComputerId,
    pub hostname: String,
    /// Its addresses as central last recorded them (none: it never said).
    pub addresses: Vec<IpAddr>,
    pub last_seen: Option<Timestamp>,
    /// The site whose declared subnets (`site add --subnet`) contain one of its
    /// addresses with the longest prefix, equal prefixes to the lower site name:
    /// where a relay would serve it. `None`: no site declares its addresses.
    #[serde(default)]
    pub site: Option<SiteName>,
}

/// How one site is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCoverage {
    pub site: SiteName,
    /// The subnets the site was declared with (`site add --subnet`).
    pub subnets: Vec<IpNet>,
    /// The subnets its relays serve (what agents match their addresses against).
    pub relay_subnets: Vec<IpNet>,
    /// Its relays.
    pub relays: u64,
    /// Its relays in touch within `relay_stale_after`.
    pub relays_up: u64,
    /// Computers its relays serve: a computer counts for the site of the relay
    /// whose subnets contain one of its addresses with the longest prefix,
    /// equal prefixes to the lower relay id (`subnet::select_relays`' first).
    pub computers: u64,
    /// Of those, the ones in touch within `computer_recent_within`.
    pub computers_recent: u64,
    /// Computers no relay serves whose site this is (`UnservedComputer::site`):
    /// in its declared subnets, with no relay there yet.
    #[serde(default)]
    pub unserved: u64,
    /// Of those, the ones in touch within `computer_recent_within`.
    #[serde(default)]
    pub unserved_recent: u64,
}

/// A relay whose holdings are stale, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleRelay {
    pub id: RelayId,
    pub site: SiteName,
    pub last_seen: Option<Timestamp>,
    pub reasons: Vec<StaleReason>,
}

/// Why a relay's holdings are stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaleReason {
    /// The relay never connected to central.
    NeverSeen,
    /// The relay's last contact is older than `relay_stale_after`.
    OutOfTouch {
        /// Seconds since its last contact.
        silent_s: u64,
    },
    /// A package activated for its site that it does not hold whole (fragments
    /// of the current signed info held, of the total).
    Incomplete {
        package_id: PackageId,
        held: u32,
        total: u32,
        /// When the package was activated for the relay's site (`None`: not
        /// recorded, activated before central kept the time).
        activated_at: Option<Timestamp>,
    },
    /// It holds a signed info of an activated package other than the
    /// package's current one (fragments of that info held, of the current total).
    OldInfo {
        package_id: PackageId,
        held: u32,
        total: u32,
        /// SHA-256 of the signed info the relay holds.
        held_info_sha256: String,
        /// SHA-256 of the package's current signed info.
        info_sha256: String,
        /// When the package was activated for the relay's site (`None`: not recorded).
        activated_at: Option<Timestamp>,
    },
}

/// Relays of different sites serving the same addresses: one warning per
/// relay subnet whose every address relays of two sites or more serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetOverlap {
    /// The addresses they all serve: one relay's subnet, contained in each of
    /// the others' (blocks inside it that a further relay claims are warnings
    /// of their own).
    pub subnet: IpNet,
    /// The site of the first of `relays`: the relay agents there choose when
    /// it holds the package whole.
    pub served_by: SiteName,
    /// Every relay whose subnets contain all of `subnet`, in the order agents
    /// there try them (`subnet::select_relays`: longest prefix, then lower
    /// relay id), each with its longest subnet containing `subnet`.
    pub relays: Vec<OverlapSide>,
}

/// One relay of a [`SubnetOverlap`] and its subnet that contains the overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlapSide {
    pub relay_id: RelayId,
    pub site: SiteName,
    pub subnet: IpNet,
}

/// Query of `GET /coverage`: thresholds for this report instead of central.toml's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageParams {
    /// A duration (`15m`): relays not in touch for longer are out of touch.
    pub relay_stale_after: Option<String>,
    /// A duration (`1d`): computers in touch within it count as seen recently.
    pub computer_recent_within: Option<String>,
}

/// Which computers a request chooses (assign, containers): either a list of
/// `computers`, or filters that must all hold (OCS's "search, then deploy to all
/// results"): `all:true`, a `subnet`, a computer `group`, `tags` (any of them),
/// `os` (any of them), `hostnames` (shell globs, any of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(default)]
    pub computers: Option<Vec<String>>,
    #[serde(default)]
    pub all: Option<bool>,
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub os: Option<Vec<String>>,
    #[serde(default)]
    pub hostnames: Option<Vec<String>>,
}

/// `PUT /computers/{id}/tags`: the computer's tags from now on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    pub tags: Vec<String>,
}

/// `POST /groups`: a computer group, static (`computers`), dynamic (criteria:
/// `subnets`, `tags`, `os`, `hostnames`; each kind any of its values, all kinds
/// given), or both (members are the listed computers plus those matching).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub computers: Vec<String>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub os: Vec<String>,
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// A computer group as central answers it, with its members now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: GroupName,
    pub description: String,
    /// Static members.
    pub computers: Vec<ComputerId>,
    /// Dynamic membership (empty: none).
    pub criteria: Criteria,
    /// Every member now: the static ones and those the criteria match.
    pub members: Vec<GroupMember>,
    /// Rules whose computers this group is.
    pub rules: Vec<ContainerId>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub id: ComputerId,
    pub hostname: String,
}

/// `POST /groups/{name}/members`: static members to add.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersRequest {
    pub computers: Vec<String>,
}

/// `POST /package-groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageGroupRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Package ids, deployed in this order by rules.
    #[serde(default)]
    pub packages: Vec<String>,
}

/// A package group as central answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageGroup {
    pub name: GroupName,
    pub description: String,
    pub packages: Vec<PackageGroupMember>,
    /// Rules that deploy this group.
    pub rules: Vec<ContainerId>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageGroupMember {
    pub id: PackageId,
    pub name: String,
    pub version: String,
}

/// `POST /package-groups/{name}/members`: packages to add, after the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageMembersRequest {
    pub packages: Vec<String>,
}

/// `POST /rules`: OCO's deployment rule. Its computers are a `group`, criteria
/// (`subnets`, `tags`, `os`, `hostnames`, as for groups), or both (members of
/// the group that match); created disabled unless `enabled: true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub os: Vec<String>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    pub package_group: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default on, as for containers.
    #[serde(default)]
    pub auto_uninstall: Option<bool>,
    /// Higher first, as for containers; default 0.
    #[serde(default)]
    pub priority: Option<i32>,
    /// `ignore_failed` (default) or `abort_after_failed`.
    #[serde(default)]
    pub sequence: Option<String>,
}

/// `PATCH /rules/{id}`: what is given changes, the rest stays. `group: ""`
/// drops the group (the criteria alone choose); any criterion given replaces
/// the criteria whole (those not given are cleared). The rule keeps its id, so
/// what it installed is still known as its own (auto-uninstall needs that).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_uninstall: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
}

impl RuleUpdate {
    /// Whether it changes the criteria.
    pub fn has_criteria(&self) -> bool {
        self.subnets.is_some()
            || self.tags.is_some()
            || self.os.is_some()
            || self.hostnames.is_some()
    }
}

/// A deployment rule as central answers it. `GET /rules` leaves `jobs` out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: ContainerId,
    pub name: String,
    pub description: String,
    pub group: Option<GroupName>,
    pub criteria: Criteria,
    pub package_group: GroupName,
    pub enabled: bool,
    pub auto_uninstall: bool,
    pub priority: i32,
    pub sequence: Sequence,
    pub created_at: Timestamp,
    /// Computers the rule covers now.
    pub computers: u64,
    /// Jobs per status.
    pub counts: BTreeMap<StatusCode, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<Job>,
}

/// What a re-evaluation did to a rule's jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub added: u64,
    pub renewed: u64,
    pub removed: u64,
}

/// Answer of `POST /rules/{id}/reevaluate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEvaluated {
    pub rule: Rule,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// OCO's default restart timeout: time for a user to save their work.
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest restart timeout a container may set: a day, like a package's
/// notify countdown. An agent waits no longer whatever it is handed.
pub const MAX_RESTART_TIMEOUT: Duration = Duration::from_secs(86_400);

pub fn default_restart_timeout() -> Duration {
    DEFAULT_RESTART_TIMEOUT
}

fn default_restart_timeout_s() -> u64 {
    DEFAULT_RESTART_TIMEOUT.as_secs()
}

/// What central did when a container with `wol` started: which computers it
/// asked relays to wake, and where each one's shutdown stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// When the wake was recorded (then sent).
    pub at: Timestamp,
    /// The computers with unfinished jobs then, by id.
    pub computers: Vec<WokenComputer>,
}

/// One computer of a wake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WokenComputer {
    pub computer_id: ComputerId,
    /// Whether it was off before the wake: only such computers may be shut
    /// down. When its magic packets were handed to a relay: it had not been in
    /// touch with central for two poll intervals. At its first poll after that,
    /// if its agent reports an uptime: it booted after the wake (see
    /// `booted_at`).
    pub was_off: bool,
    /// The MAC addresses the magic packets named.
    pub macs: Vec<MacAddr>,
    /// The relay asked to send them (`None`: not asked, see `not_asked`).
    pub relay: Option<RelayId>,
    /// Why no relay was asked (`None`: one was). `relay_not_connected` is
    /// retried while the container runs, up to `wol_shutdown_expiry` after its
    /// first wake.
    #[serde(default)]
    pub not_asked: Option<NotAsked>,
    /// When the relay was asked (its wake); `None` on lines recorded before
    /// retries existed: the container's wake `at`.
    #[serde(default)]
    pub asked_at: Option<Timestamp>,
    /// When it booted, on central's clock (its first poll after the wake, less
    /// the uptime the poll reported); `None`: not polled since, or its agent
    /// reports no uptime.
    #[serde(default)]
    pub booted_at: Option<Timestamp>,
    /// Its first poll within `wol_shutdown_expiry` of the wake, if it had been off.
    pub came_up_at: Option<Timestamp>,
    pub shutdown: ShutdownState,
    /// When it was told to shut down.
    pub shutdown_at: Option<Timestamp>,
}

/// Why central asked no relay to wake a computer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotAsked {
    /// Its agent never reported a MAC address.
    NoMac,
    /// It is known only by IPv6 addresses (IPv6 has no broadcast).
    Ipv6Only,
    /// No relay's IPv4 subnet contains its addresses.
    NoRelay,
    /// Relays serve it, but none was connected (or the connection dropped as
    /// the wake was handed to it): retried.
    RelayNotConnected,
}

impl NotAsked {
    /// Whether the periodic waker tries again (the others need an admin).
    pub const fn retried(self) -> bool {
        matches!(self, NotAsked::RelayNotConnected)
    }
}

impl fmt::Display for NotAsked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoMac => "no MAC address known",
            Self::Ipv6Only => "IPv6 addresses only (no broadcast)",
            Self::NoRelay => "no relay serves its addresses",
            Self::RelayNotConnected => "its relays were not connected (retried)",
        })
    }
}

/// Where a computer's shutdown after the jobs stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownState {
    /// Never shut down: no `shutdown_after`, it was on before the wake, or no
    /// magic packet went out for it.
    Never,
    /// Woken: shut down once it came up in time and its jobs are done.
    Pending,
    /// It did not come up within `wol_shutdown_expiry`: dropped (OCO).
    Expired,
    /// A poll told it to shut down.
    Sent,
}

impl fmt::Display for ShutdownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Pending => "pending",
            Self::Expired => "expired",
            Self::Sent => "sent",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fallback_grammar() {
        for s in ["never", "always", "after:2h", "after:90s"] {
            assert_eq!(s.parse::<CentralFallback>().unwrap().to_string(), s);
        }
        let e = "sometimes".parse::<CentralFallback>().unwrap_err();
        assert_eq!(e.token, "sometimes");
        assert!("after:2x".parse::<CentralFallback>().is_err());
    }

    #[test]
    fn older_peers_answers_and_requests_still_read() {
        let poll: PollResponse = serde_json::from_value(serde_json::json!({
            "poll_interval_s": 60,
            "packages": [{"id": "app-1", "priority": 5, "info_sha256": "ab", "relays": [],
                          "central_fallback": "never"}],
        }))
        .unwrap();
        assert_eq!(poll.power, None);
        assert_eq!(poll.packages[0].restart_timeout_s, 300);
        let request: PollRequest =
            serde_json::from_value(serde_json::json!({"addresses": ["10.1.0.5"]})).unwrap();
        assert!(request.macs.is_empty());
        assert_eq!(request.uptime_s, None);
        // A poll that knows no uptime says nothing of it.
        let json = serde_json::to_value(&request).unwrap();
        assert!(json.get("uptime_s").is_none(), "{json}");
        let with: PollRequest =
            serde_json::from_value(serde_json::json!({"uptime_s": 3600})).unwrap();
        assert_eq!(with.uptime_s, Some(3600));
        // A wake's line from before uptimes and retries.
        let line: WokenComputer = serde_json::from_value(serde_json::json!({
            "computer_id": "pc-1", "was_off": true, "macs": [], "relay": "relay-1",
            "came_up_at": null, "shutdown": "pending", "shutdown_at": null,
        }))
        .unwrap();
        assert_eq!(
            (line.not_asked, line.asked_at, line.booted_at),
            (None, None, None)
        );
        // Nothing to say about power: the field is left out.
        let json = serde_json::to_value(&poll).unwrap();
        assert!(json.get("power").is_none(), "{json}");
        let shut = PollResponse {
            power: Some(PowerAction::Shutdown),
            ..poll
        };
        assert_eq!(serde_json::to_value(&shut).unwrap()["power"], "shutdown");
    }

    #[test]
    fn stats_counts_are_keyed_by_code() {
        let mut counts = BTreeMap::new();
        counts.insert(StatusCode::Success, 2);
        let json = serde_json::to_string(&counts).unwrap();
        assert_eq!(json, r#"{"SUCCESS":2}"#);
    }

    #[test]
    fn problem_kinds_travel_as_snake_case_and_are_counted() {
        for kind in ProblemKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<ProblemKind>(&json).unwrap(), kind);
        }
        assert!(serde_json::from_str::<ProblemKind>("\"slow\"").is_err());
        let report: ProblemReport =
            serde_json::from_str(r#"{"kind":"bad_data","detail":"x"}"#).unwrap();
        assert_eq!(report.package_id, None);
        let mut problems = RelayProblems::default();
        for kind in [
            ProblemKind::Stalled,
            ProblemKind::Refused,
            ProblemKind::Stalled,
        ] {
            problems.record(RelayProblem {
                kind,
                detail: kind.to_string(),
                computer_id: "pc-1".parse().unwrap(),
                package_id: None,
                at: Timestamp::UNIX_EPOCH,
            });
        }
        assert_eq!(problems.count, 3);
        assert_eq!(
            serde_json::to_value(&problems.counts).unwrap(),
            serde_json::json!({"refused": 1, "stalled": 2})
        );
        assert_eq!(problems.last.unwrap().kind, ProblemKind::Stalled);
    }
}
