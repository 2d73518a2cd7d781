//! How requests choose computers: a list, or OCS's "search, then deploy to
//! all results" (every given filter lets a computer through).

use std::net::IpAddr;

use sitecast_common::groups::Criteria;
use sitecast_common::ids::ComputerId;
use sitecast_common::wire::Target;

use super::records::{self, criteria_error, in_group, parse_subnet};
use crate::error::CentralError;
use crate::state::Central;

/// The computers a request chooses: the listed ones, or those every given
/// filter lets through (`all`, `subnet`, `group`, `tags`, `os`, `hostnames`).
pub fn choose(c: &Central, t: &Target) -> Result<Vec<ComputerId>, CentralError> {
    let computers = c.store.computers()?;
    let given = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|l| !l.is_empty());
    let filtered = t.all == Some(true)
        || t.subnet.is_some()
        || t.group.is_some()
        || given(&t.tags)
        || given(&t.os)
        || given(&t.hostnames);
    if let Some(list) = &t.computers {
        if filtered {
            return Err(CentralError::invalid(
                "bad request body: computers:[...] lists the computers; it does not combine with all, subnet, group, tags, os or hostnames",
            ));
        }
        if list.is_empty() {
            return Err(CentralError::invalid("bad computers: the list is empty"));
        }
        let mut ids = Vec::new();
        for text in list {
            let id: ComputerId = text
                .parse()
                .map_err(|_| CentralError::not_found("computer", text))?;
            if !computers.iter().any(|c| c.id == id) {
                return Err(CentralError::not_found("computer", text));
            }
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        return Ok(ids);
    }
    if !filtered {
        return Err(CentralError::invalid(
            "bad request body: choose computers with computers:[...], all:true, subnet, group, tags, os or hostnames",
        ));
    }
    let subnet = t
        .subnet
        .as_deref()
        .map(|s| parse_subnet("subnet", s))
        .transpose()?;
    let group = t
        .group
        .as_deref()
        .map(|g| records::group(c, g))
        .transpose()?;
    let empty = Vec::new();
    let criteria = Criteria::parse(
        &empty,
        t.tags.as_ref().unwrap_or(&empty),
        t.os.as_ref().unwrap_or(&empty),
        t.hostnames.as_ref().unwrap_or(&empty),
    )
    .map_err(criteria_error)?;
    Ok(computers
        .iter()
        .filter(|rec| {
            subnet.is_none_or(|net| rec.addresses.iter().any(|a: &IpAddr| net.contains(a)))
        })
        .filter(|rec| group.as_ref().is_none_or(|g| in_group(g, rec)))
        .filter(|rec| criteria.matches(rec.candidate()))
        .map(|rec| rec.id.clone())
        .collect())
}
