//! Job containers in the admin API: the request, the container with its jobs,
//! and the answers of retry and cancel.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::constraint::{IpRanges, TimeFrames};
use crate::ids::{ComputerId, ContainerId, PackageId};
use crate::jobs::{ContainerState, JobKind, Runtimes, Sequence};
use crate::power::{default_restart_timeout, Wake};
use crate::status::StatusCode;
use crate::units::Duration;

use super::packages::Target;

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
    /// Its installs may go below the version of the same name installed on a
    /// computer (an intended downgrade; agents refuse one otherwise).
    #[serde(default)]
    pub downgrade: Option<bool>,
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
    /// Its installs may go below the installed version (an intended downgrade).
    #[serde(default)]
    pub downgrade: bool,
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
