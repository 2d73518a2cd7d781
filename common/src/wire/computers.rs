//! Computers in the admin API: the list, one computer in detail, its tags, and the
//! enroll tokens that let computers in.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::groups::Tag;
use crate::ids::{ComputerId, PackageId};
use crate::power::MacAddr;
use crate::status::StatusCode;

use super::containers::Job;

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
    /// `pending`: enrolled while `enroll_approval = "manual"` and not approved yet,
    /// so it is handed no job.
    #[serde(default)]
    pub approval: Approval,
}

/// Whether a computer may be handed jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    #[default]
    Approved,
    Pending,
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

/// `PUT /computers/{id}/tags`: the computer's tags from now on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    pub tags: Vec<String>,
}

/// Body of `POST /enroll-tokens`: a token beside the shared one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollTokenRequest {
    /// Enrollments it allows (none: any number).
    #[serde(default)]
    pub uses: Option<u32>,
    /// How long it is good for, in the duration grammar (`7d`; none: for ever).
    #[serde(default)]
    pub expires: Option<String>,
    /// Tags each computer it enrolls gets, as an admin's `computer tag` would.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An enroll token as `GET /enroll-tokens` lists it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollToken {
    pub id: String,
    pub created_at: Timestamp,
    pub uses: Option<u32>,
    pub used: u32,
    pub expires_at: Option<Timestamp>,
    pub tags: Vec<Tag>,
}

/// Answer of `POST /enroll-tokens`: the token, with its secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedEnrollToken {
    #[serde(flatten)]
    pub enroll_token: EnrollToken,
    pub token: String,
}
