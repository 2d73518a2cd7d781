//! Computer groups, package groups and deployment rules (SPEC "Rules, groups,
//! power, users"; OCO's deployment rules, OCS's "search, then deploy").
//!
//! Pure: which computers a set of [`Criteria`] chooses, what a rule's dynamic
//! jobs on one computer should be ([`wants`]), how to get the jobs it has there
//! to that ([`reconcile`]), and the install/uninstall loop OCO warns about
//! ([`loop_check`]). Central's store feeds it records and applies the result.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ids::PackageId;
use crate::jobs::JobKind;
use crate::jobs::Sequence;
use crate::status::StatusCode;

/// Longest tag, OS name and hostname pattern.
const TEXT_MAX: usize = 64;
const GLOB_MAX: usize = 253;

/// Bad criteria: names the field and the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {field}: '{token}' {reason}")]
pub struct CriteriaError {
    pub field: &'static str,
    pub token: String,
    pub reason: String,
}

fn bad(field: &'static str, token: &str, reason: impl Into<String>) -> CriteriaError {
    CriteriaError {
        field,
        token: token.to_owned(),
        reason: reason.into(),
    }
}

/// A computer's tag (OCS's TAG): set by `sitecast-agent enroll --tag` or an
/// admin. Letters, digits, `.`, `_`, `-` and `:`; compared without case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn same(&self, other: &Tag) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl FromStr for Tag {
    type Err = CriteriaError;
    fn from_str(s: &str) -> Result<Self, CriteriaError> {
        let t = s.trim();
        if t.is_empty() || t.len() > TEXT_MAX {
            return Err(bad(
                "tags",
                s,
                format!("must be 1 to {TEXT_MAX} characters"),
            ));
        }
        if !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        {
            return Err(bad(
                "tags",
                s,
                "may only contain letters, digits, '.', '_', '-' and ':'",
            ));
        }
        Ok(Self(t.to_owned()))
    }
}

impl TryFrom<String> for Tag {
    type Error = CriteriaError;
    fn try_from(s: String) -> Result<Self, CriteriaError> {
        s.parse()
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a list of tags, dropping repeats (without case).
pub fn parse_tags(list: &[String]) -> Result<Vec<Tag>, CriteriaError> {
    let mut out: Vec<Tag> = Vec::new();
    for t in list {
        let tag: Tag = t.parse()?;
        if !out.iter().any(|o| o.same(&tag)) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// A shell-style hostname pattern (`*`, `?`, `[a-z]`), matched without case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostnameGlob {
    text: String,
    pattern: glob::Pattern,
}

impl PartialEq for HostnameGlob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for HostnameGlob {}

impl HostnameGlob {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, hostname: &str) -> bool {
        let options = glob::MatchOptions {
            case_sensitive: false,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        };
        self.pattern.matches_with(hostname, options)
    }
}

impl FromStr for HostnameGlob {
    type Err = CriteriaError;
    fn from_str(s: &str) -> Result<Self, CriteriaError> {
        let t = s.trim();
        if t.is_empty() || t.len() > GLOB_MAX || t.chars().any(char::is_control) {
            return Err(bad(
                "hostnames",
                s,
                format!("must be 1 to {GLOB_MAX} printable characters"),
            ));
        }
        let pattern = glob::Pattern::new(t).map_err(|e| bad("hostnames", s, e.msg))?;
        Ok(Self {
            text: t.to_owned(),
            pattern,
        })
    }
}

impl TryFrom<String> for HostnameGlob {
    type Error = CriteriaError;
    fn try_from(s: String) -> Result<Self, CriteriaError> {
        s.parse()
    }
}

impl From<HostnameGlob> for String {
    fn from(g: HostnameGlob) -> String {
        g.text
    }
}

/// What a computer is, as far as criteria look.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub hostname: &'a str,
    pub os: &'a str,
    pub addresses: &'a [IpAddr],
    pub tags: &'a [Tag],
}

/// OCS's "search with various criteria": each kind given must match (any of
/// its values will do); kinds not given match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criteria {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<HostnameGlob>,
}

impl Criteria {
    /// From the API's lists of text; each error names its field and token.
    pub fn parse(
        subnets: &[String],
        tags: &[String],
        os: &[String],
        hostnames: &[String],
    ) -> Result<Self, CriteriaError> {
        let mut c = Criteria::default();
        for s in subnets {
            let net: IpNet = s
                .trim()
                .parse()
                .map_err(|_| bad("subnets", s, "is not a CIDR subnet"))?;
            let net = net.trunc();
            if !c.subnets.contains(&net) {
                c.subnets.push(net);
            }
        }
        c.tags = parse_tags(tags)?;
        for o in os {
            let t = o.trim();
            if t.is_empty() || t.len() > TEXT_MAX || t.chars().any(char::is_control) {
                return Err(bad(
                    "os",
                    o,
                    format!("must be 1 to {TEXT_MAX} printable characters"),
                ));
            }
            if !c.os.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                c.os.push(t.to_ascii_lowercase());
            }
        }
        for h in hostnames {
            let g: HostnameGlob = h.parse()?;
            if !c.hostnames.contains(&g) {
                c.hostnames.push(g);
            }
        }
        Ok(c)
    }

    /// No criterion at all (matches every computer).
    pub fn is_empty(&self) -> bool {
        self.subnets.is_empty()
            && self.tags.is_empty()
            && self.os.is_empty()
            && self.hostnames.is_empty()
    }

    pub fn matches(&self, c: Candidate<'_>) -> bool {
        let subnet = self.subnets.is_empty()
            || self
                .subnets
                .iter()
                .any(|net| c.addresses.iter().any(|a| net.contains(a)));
        let tag = self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|want| c.tags.iter().any(|t| t.same(want)));
        let os = self.os.is_empty() || self.os.iter().any(|o| o.eq_ignore_ascii_case(c.os));
        let hostname =
            self.hostnames.is_empty() || self.hostnames.iter().any(|g| g.matches(c.hostname));
        subnet && tag && os && hostname
    }
}

/// A package as a rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePackage {
    pub id: PackageId,
    pub name: String,
    /// An uninstall job can do something with it (an uninstall command, or a store package).
    pub uninstallable: bool,
}

/// A package installed on the computer, and whether this rule installed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub package: RulePackage,
    pub by_rule: bool,
}

/// The jobs a rule wants on one computer, in the order to run them. A member of
/// the rule's computers gets each package of the group it does not have; with
/// `auto_uninstall`, the other installed versions of that package's name are
/// uninstalled first, and what the rule installed that has left the group is
/// uninstalled. A computer that is not a member wants nothing (what the rule
/// installed stays: leaving a group is not a reason to remove software).
///
/// `kept` are the packages other enabled rules deploy to this computer: this
/// rule never uninstalls them. Without that, two rules deploying two versions of
/// one name to the same computer would undo each other forever (OCO's loop,
/// across rules instead of within one group); with it, what any rule wants is
/// never taken away by another, so every computer settles.
pub fn wants(
    member: bool,
    group: &[RulePackage],
    installed: &[InstalledPackage],
    auto_uninstall: bool,
    kept: &[PackageId],
) -> Vec<(PackageId, JobKind)> {
    let mut out: Vec<(PackageId, JobKind)> = Vec::new();
    if !member {
        return out;
    }
    let mut push = |want: (PackageId, JobKind)| {
        if !out.contains(&want) {
            out.push(want);
        }
    };
    for p in group {
        if installed.iter().any(|i| i.package.id == p.id) {
            continue;
        }
        if auto_uninstall {
            for other in installed {
                let o = &other.package;
                if o.id != p.id && o.name == p.name && o.uninstallable && !kept.contains(&o.id) {
                    push((o.id.clone(), JobKind::Uninstall));
                }
            }
        }
        push((p.id.clone(), JobKind::Install));
    }
    if auto_uninstall {
        for other in installed {
            let o = &other.package;
            let left = !group.iter().any(|p| p.id == o.id);
            if other.by_rule && o.uninstallable && left && !kept.contains(&o.id) {
                push((o.id.clone(), JobKind::Uninstall));
            }
        }
    }
    out
}

/// A job a rule already has on the computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingJob {
    pub order: u32,
    pub package: PackageId,
    pub kind: JobKind,
    pub status: StatusCode,
}

/// What to do to a rule's jobs on one computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new job, after the others.
    Add(PackageId, JobKind),
    /// A failed job starts over (on demand only).
    Renew(u32),
    /// A job never handed out that is no longer wanted.
    Remove(u32),
}

/// Gets a rule's jobs on one computer to what it `wants`. A wanted job already
/// waiting or under way stays; a failed one stays failed unless `renew_failed`
/// (a re-evaluation on demand), so a failing package does not loop; a wanted job
/// whose last attempt succeeded is wanted again because something changed since
/// (it was uninstalled elsewhere): it is added anew. Jobs not yet handed out that
/// are no longer wanted go; jobs handed out run to their end; finished ones are
/// history.
pub fn reconcile(
    wants: &[(PackageId, JobKind)],
    existing: &[ExistingJob],
    renew_failed: bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (package, kind) in wants {
        let latest = existing
            .iter()
            .filter(|j| &j.package == package && j.kind == *kind)
            .max_by_key(|j| j.order);
        match latest {
            None => changes.push(Change::Add(package.clone(), *kind)),
            Some(j) if !j.status.is_final() => {}
            Some(j) if j.status.is_success() => changes.push(Change::Add(package.clone(), *kind)),
            Some(j) if renew_failed => changes.push(Change::Renew(j.order)),
            Some(_) => {}
        }
    }
    for j in existing {
        let wanted = wants.iter().any(|(p, k)| p == &j.package && *k == j.kind);
        if !wanted && j.status == StatusCode::WaitingNotification {
            changes.push(Change::Remove(j.order));
        }
    }
    changes
}

/// OCO's warning made a rule: with auto-uninstall, a package group holding two
/// versions of one package name would uninstall and install them in turn forever.
pub fn loop_check(
    auto_uninstall: bool,
    group_name: &str,
    group: &[RulePackage],
) -> Result<(), String> {
    if !auto_uninstall {
        return Ok(());
    }
    for (i, p) in group.iter().enumerate() {
        let same: Vec<&str> = group
            .iter()
            .filter(|q| q.name == p.name)
            .map(|q| q.id.as_str())
            .collect();
        let first = group.iter().position(|q| q.name == p.name) == Some(i);
        if same.len() > 1 && first {
            return Err(format!(
                "package group '{group_name}' holds {} versions of '{}' ({}): with auto-uninstall, \
                 installing each would uninstall the other, an endless uninstall/install loop; \
                 keep one version in the group (remove the old one first, then add the new one), \
                 or turn auto-uninstall off",
                same.len(),
                p.name,
                same.join(", ")
            ));
        }
    }
    Ok(())
}

/// With [`Sequence::AbortAfterFailed`], the job whose failure stops what a
/// rule adds after it on the computer (as it stopped the jobs that were there),
/// until `rule reevaluate` starts it over (`renewed`), or until its package is
/// no longer wanted (an admin took it out of the group: it stops nothing then).
/// Only a job that really failed stops others, not one it stopped; the first
/// in order wins.
pub fn blocker<'a>(
    existing: &'a [ExistingJob],
    wants: &[(PackageId, JobKind)],
    renewed: &[u32],
    sequence: Sequence,
) -> Option<&'a ExistingJob> {
    if sequence != Sequence::AbortAfterFailed {
        return None;
    }
    existing
        .iter()
        .filter(|j| j.status.is_final() && !j.status.is_success())
        .filter(|j| j.status != StatusCode::ErrPreviousFailed)
        .filter(|j| !renewed.contains(&j.order))
        .filter(|j| wants.iter().any(|(p, k)| p == &j.package && *k == j.kind))
        .min_by_key(|j| j.order)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
