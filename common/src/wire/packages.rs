//! Packages in the admin API: upload parameters, the package and its
//! activation, assignment, statistics and validation.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::deployment::CentralFallback;
use crate::ids::{ComputerId, ContainerId, PackageId, RelayId, SiteName};
use crate::info::ActionDoc;
use crate::status::StatusCode;

use super::agent::SourceBytes;

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

impl From<crate::activation::Activation> for Activation {
    fn from(a: crate::activation::Activation) -> Self {
        Self {
            all_sites: a.all_sites,
            sites: a.sites,
            central_fallback: a.central_fallback,
        }
    }
}

impl From<Activation> for crate::activation::Activation {
    fn from(a: Activation) -> Self {
        Self {
            all_sites: a.all_sites,
            sites: a.sites,
            central_fallback: a.central_fallback,
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stats_counts_are_keyed_by_code() {
        let mut counts = BTreeMap::new();
        counts.insert(StatusCode::Success, 2);
        let json = serde_json::to_string(&counts).unwrap();
        assert_eq!(json, r#"{"SUCCESS":2}"#);
    }
}
