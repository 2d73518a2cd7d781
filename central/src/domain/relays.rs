//! Sites and relays: adding sites and relays (each relay gets its token once),
//! the relay view with its holdings and replication ETAs, deleting a relay, the
//! problems agents report about relays, and central's own counters.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use ipnet::IpNet;
use sitecast_common::ids::{slug, ComputerId, RelayId, SiteName};
use sitecast_common::protocol::{self, RelayReport};
use sitecast_common::wire::{
    CentralStatus, Holding, ProblemReport, Relay, RelayCreated, RelayRequest, Site, SiteRequest,
};

use super::convert;
use super::records::parse_subnet;
use crate::error::CentralError;
use crate::state::Central;
use crate::store::{
    PackageRecord, ProblemRecord, RelayRecord, RelayReportRecord, SiteRecord, TokenOwner,
};
use crate::tokens;

/// Longest problem detail kept (the start says what happened; the rest is noise).
pub const PROBLEM_DETAIL: usize = 1024;

fn parse_subnets(field: &str, list: &[String]) -> Result<Vec<IpNet>, CentralError> {
    list.iter().map(|s| parse_subnet(field, s)).collect()
}

pub fn add_site(c: &Central, req: SiteRequest) -> Result<Site, CentralError> {
    let name: SiteName = req
        .name
        .parse()
        .map_err(|e| CentralError::invalid(format!("bad name: {e}")))?;
    let site = SiteRecord {
        name,
        subnets: parse_subnets("subnets", &req.subnets)?,
        created_at: c.clock.now(),
    };
    c.store.add_site(&site)?;
    Ok(site.into())
}

pub fn list_sites(c: &Central) -> Result<Vec<Site>, CentralError> {
    Ok(c.store.sites()?.into_iter().map(Site::from).collect())
}

/// Adds a relay of an existing site; the answer carries its token, the only
/// time it is shown (central keeps its digest).
pub fn add_relay(c: &Central, req: RelayRequest) -> Result<RelayCreated, CentralError> {
    let site: SiteName = req
        .site
        .parse()
        .map_err(|e| CentralError::invalid(format!("bad site: {e}")))?;
    if c.store.site(&site)?.is_none() {
        return Err(CentralError::not_found("site", &site));
    }
    if req.subnets.is_empty() {
        return Err(CentralError::invalid(
            "bad subnets: a relay serves at least one subnet",
        ));
    }
    let subnets = parse_subnets("subnets", &req.subnets)?;
    let url = req.url.trim().trim_end_matches('/').to_owned();
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| CentralError::invalid(format!("bad url: '{}' {e}", req.url)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(CentralError::invalid(format!(
            "bad url: '{}' is not an http:// or https:// URL with a host",
            req.url
        )));
    }
    let id: RelayId = format!("relay-{}-{}", slug(site.as_str(), 40), tokens::suffix())
        .parse()
        .map_err(|e| CentralError::invalid(format!("bad site: {e}")))?;
    let token = tokens::generate();
    let record = RelayRecord {
        id: id.clone(),
        site,
        subnets,
        url,
        created_at: c.clock.now(),
        last_seen: None,
        holdings: BTreeMap::new(),
        bytes_from_central: 0,
        quic_bytes_from_central: 0,
        bytes_to_agents: 0,
        problems: Default::default(),
        replication: Default::default(),
        health: Default::default(),
    };
    c.store.add_relay(&record, tokens::digest(&token))?;
    Ok(RelayCreated { id, token })
}

/// A relay as the API shows it: its holdings of each package activated for
/// its site, with an ETA from its replication rate.
pub fn view(record: RelayRecord, packages: &[PackageRecord]) -> Relay {
    let mut activated: Vec<&PackageRecord> = packages
        .iter()
        .filter(|p| convert::activated_for(p, &record.site))
        .collect();
    // The relay replicates in priority order, so a package waits for those before it.
    activated.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
    let rate = record.replication.rate;
    let mut queued = 0u64;
    let mut holdings: Vec<Holding> = activated
        .into_iter()
        .map(|p| {
            let held = record.fragments_held(p);
            let complete = record.holds_whole(p);
            let missing = u64::from(p.fragments.saturating_sub(held));
            queued += (missing * p.fragment_size).min(p.size);
            Holding {
                package_id: p.id.clone(),
                held,
                total: p.fragments,
                complete,
                eta_s: if complete {
                    Some(0)
                } else {
                    (rate > 0).then(|| queued.div_ceil(rate))
                },
            }
        })
        .collect();
    holdings.sort_by(|a, b| a.package_id.cmp(&b.package_id));
    Relay {
        id: record.id,
        site: record.site,
        subnets: record.subnets,
        url: record.url,
        last_seen: record.last_seen,
        holdings,
        bytes_from_central: record.bytes_from_central,
        quic_bytes_from_central: record.quic_bytes_from_central,
        bytes_to_agents: record.bytes_to_agents,
        problems: record.problems.into(),
        replication: record.replication.into(),
        health: record.health.into(),
    }
}

pub fn list(c: &Central) -> Result<Vec<Relay>, CentralError> {
    let packages = c.store.packages()?;
    Ok(c.store
        .relays()?
        .into_iter()
        .map(|r| view(r, &packages))
        .collect())
}

/// Deletes a relay; its connection, if any, notices and closes.
pub fn delete(c: &Central, id: &str) -> Result<(), CentralError> {
    let rid: RelayId = id
        .parse()
        .map_err(|_| CentralError::not_found("relay", id))?;
    if !c.store.delete_relay(&rid)? {
        return Err(CentralError::not_found("relay", id));
    }
    c.notify_relays();
    Ok(())
}

/// Central's version and byte counters.
pub fn status(c: &Central) -> CentralStatus {
    CentralStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        fragment_bytes_to_agents: c.fragment_bytes_to_agents.load(Ordering::Relaxed),
        bytes_to_relays: c.bytes_to_relays.load(Ordering::Relaxed),
        relays_connected: c.changes.receiver_count() as u64,
    }
}

/// Why central refuses a relay's hello; the text goes back to the relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "protocol version {version} is not supported (central speaks {})",
        protocol::VERSION
    )]
    Version { version: u32 },
    #[error("bad token for relay '{relay}'")]
    BadToken { relay: RelayId },
    #[error("relay '{relay}' was deleted")]
    Deleted { relay: RelayId },
}

/// The relay a hello authenticates: the protocol version spoken, and the token
/// central issued to `relay` (its digest, as stored).
pub fn authenticate(
    c: &Central,
    version: u32,
    relay: &RelayId,
    token: &str,
) -> Result<Result<RelayRecord, Refusal>, CentralError> {
    if version != protocol::VERSION {
        return Ok(Err(Refusal::Version { version }));
    }
    Ok(match c.store.token_owner(tokens::digest(token))? {
        Some(TokenOwner::Relay(id)) if &id == relay => match c.store.relay(&id)? {
            Some(r) => Ok(r),
            None => Err(Refusal::Deleted { relay: id }),
        },
        _ => Err(Refusal::BadToken {
            relay: relay.clone(),
        }),
    })
}

/// Records what a relay reports (none: it just connected) at central's now.
pub fn record_report(
    c: &Central,
    relay: &RelayId,
    report: Option<&RelayReport>,
) -> Result<(), CentralError> {
    let report = report.map(RelayReportRecord::from);
    c.store
        .record_relay_report(relay, report.as_ref(), c.clock.now())
}

/// The first `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An agent gave up on a relay (refused, timed out, stalled, bad data): central
/// counts it on the relay's record so admins see failing relays in `relay list`.
pub fn report_problem(
    c: &Central,
    me: &ComputerId,
    id: &str,
    report: ProblemReport,
) -> Result<(), CentralError> {
    let relay: RelayId = id
        .parse()
        .map_err(|_| CentralError::not_found("relay", id))?;
    // Control characters would garble the admin's table; the detail is free text.
    let detail: String = head(report.detail.trim(), PROBLEM_DETAIL)
        .chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect();
    let kind = report.kind;
    let problem = ProblemRecord {
        kind: report.kind.into(),
        detail,
        computer_id: me.clone(),
        package_id: report.package_id,
        at: c.clock.now(),
    };
    if !c.store.record_relay_problem(&relay, &problem)? {
        return Err(CentralError::not_found("relay", &relay));
    }
    tracing::info!(%relay, computer = %me, %kind, "an agent reported a relay problem");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::head;

    #[test]
    fn head_cuts_at_char_boundaries() {
        assert_eq!(head("hello", 10), "hello");
        assert_eq!(head("hello", 3), "hel");
        assert_eq!(head("héllo", 2), "h");
    }
}
