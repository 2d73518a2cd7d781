//! The records a request names, looked up (a malformed name is as unknown
//! as a missing one, and both answer "not found" with the name given), and the
//! small parsers and predicates every domain module shares. The bottom of the
//! domain: it uses only the store.

use ipnet::IpNet;
use sitecast_common::groups;
use sitecast_common::ids::{ComputerId, GroupName, PackageId};
use sitecast_common::info::ActionDoc;

use crate::error::CentralError;
use crate::state::Central;
use crate::store::{ComputerRecord, GroupRecord, PackageGroupRecord, PackageRecord};

/// The package `id` names; a malformed id is as unknown as a missing one.
pub fn package(c: &Central, id: &str) -> Result<PackageRecord, CentralError> {
    let pid: PackageId = id
        .parse()
        .map_err(|_| CentralError::not_found("package", id))?;
    c.store
        .package(&pid)?
        .ok_or_else(|| CentralError::not_found("package", id))
}

/// The computer `id` names; a malformed id is as unknown as a missing one.
pub fn computer(c: &Central, id: &str) -> Result<ComputerRecord, CentralError> {
    let cid: ComputerId = id
        .parse()
        .map_err(|_| CentralError::not_found("computer", id))?;
    c.store
        .computer(&cid)?
        .ok_or_else(|| CentralError::not_found("computer", id))
}

/// The computer group `name` names.
pub fn group(c: &Central, name: &str) -> Result<GroupRecord, CentralError> {
    let n: GroupName = name
        .parse()
        .map_err(|_| CentralError::not_found("group", name))?;
    c.store
        .group(&n)?
        .ok_or_else(|| CentralError::not_found("group", name))
}

/// The package group `name` names.
pub fn package_group(c: &Central, name: &str) -> Result<PackageGroupRecord, CentralError> {
    let n: GroupName = name
        .parse()
        .map_err(|_| CentralError::not_found("package group", name))?;
    c.store
        .package_group(&n)?
        .ok_or_else(|| CentralError::not_found("package group", name))
}

/// Whether an uninstall job can do anything with the package.
pub fn uninstallable(p: &PackageRecord) -> bool {
    p.uninstall.is_some() || matches!(p.action, ActionDoc::Store { .. })
}

/// Whether the computer is in the group: a static member, or matched by its criteria.
pub fn in_group(group: &GroupRecord, computer: &ComputerRecord) -> bool {
    group.computers.contains(&computer.id)
        || (!group.criteria.is_empty() && group.criteria.matches(computer.candidate()))
}

pub fn group_name(field: &str, text: &str) -> Result<GroupName, CentralError> {
    text.trim()
        .parse()
        .map_err(|e| CentralError::invalid(format!("bad {field}: {e}")))
}

pub fn criteria_error(e: groups::CriteriaError) -> CentralError {
    CentralError::invalid(e.to_string())
}

pub fn parse_subnet(field: &str, text: &str) -> Result<IpNet, CentralError> {
    text.trim()
        .parse::<IpNet>()
        .map_err(|_| CentralError::invalid(format!("bad {field}: '{text}' is not a CIDR subnet")))
}

/// A name or description as admins give it: trimmed, `1..=max` bytes (`0..`
/// with `empty_ok`), printable but for line breaks; the error names `field`.
pub fn text(field: &str, value: &str, max: usize, empty_ok: bool) -> Result<String, CentralError> {
    let v = value.trim();
    if (!empty_ok && v.is_empty())
        || v.len() > max
        || v.chars().any(|c| c.is_control() && c != '\n')
    {
        let size = if empty_ok {
            format!("at most {max}")
        } else {
            format!("1 to {max}")
        };
        return Err(CentralError::invalid(format!(
            "bad {field}: must be {size} printable characters"
        )));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn text_is_trimmed_printable_and_bounded() {
        assert_eq!(text("name", "  a\nb ", 10, false).unwrap(), "a\nb");
        assert_eq!(text("description", "", 10, true).unwrap(), "");
        let empty = text("name", " ", 10, false).unwrap_err().to_string();
        assert_eq!(empty, "bad name: must be 1 to 10 printable characters");
        assert!(text("name", "a\tb", 10, false).is_err());
        assert!(text("name", "abcdef", 5, false).is_err());
        let long = text("description", "abcdef", 5, true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            long,
            "bad description: must be at most 5 printable characters"
        );
    }
}
