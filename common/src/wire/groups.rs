//! Computer groups, package groups and deployment rules in the admin API.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::groups::Criteria;
use crate::ids::{ComputerId, ContainerId, GroupName, PackageId};
use crate::jobs::Sequence;
use crate::status::StatusCode;

use super::containers::Job;

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
