//! The coverage report behind `GET /coverage`: which computers no relay serves
//! (they download over the WAN from central) and the site whose declared
//! subnets they are in, how each site's relays serve it, which relays' holdings
//! are stale, and which relays of different sites claim the same addresses. The
//! French field guide (seed 004) had to find the machines the same-subnet rule
//! left out, and match their addresses to sites, by hand; this finds them with
//! the very rule agents use ([`crate::subnet`], longest prefix first).
//!
//! Pure: central gathers its records and the time and calls [`report`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;

use crate::ids::{ComputerId, PackageId, RelayId, SiteName};
use crate::subnet::{best_prefix, select_relays, RelaySubnets};
use crate::units::Duration;
use crate::wire::{
    Coverage, OverlapSide, SiteCoverage, StaleReason, StaleRelay, SubnetOverlap, UnservedComputer,
};

/// A computer as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerSeen {
    pub id: ComputerId,
    pub hostname: String,
    /// The addresses central last recorded for it.
    pub addresses: Vec<IpAddr>,
    pub last_seen: Option<Timestamp>,
}

/// What a relay last reported holding of one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// SHA-256 of the signed info it holds.
    pub info_sha256: String,
    /// Fragments of that info it holds.
    pub fragments: u32,
}

/// A relay as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySeen {
    pub id: RelayId,
    pub site: SiteName,
    pub subnets: Vec<IpNet>,
    pub last_seen: Option<Timestamp>,
    pub holdings: BTreeMap<PackageId, Held>,
}

impl RelaySubnets for RelaySeen {
    fn relay_id(&self) -> &RelayId {
        &self.id
    }
    fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }
}

/// A site and the subnets it was declared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteDeclared {
    pub name: SiteName,
    pub subnets: Vec<IpNet>,
}

/// A package activated for a site: what its relays must hold whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    pub package_id: PackageId,
    /// SHA-256 of the package's current signed info.
    pub info_sha256: String,
    /// Its number of fragments.
    pub fragments: u32,
    /// When it was activated for the site, if central knows.
    pub activated_at: Option<Timestamp>,
}

/// How old is too old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A relay whose last contact is older than this is out of touch.
    pub relay_stale_after: Duration,
    /// A computer in touch within this counts as seen recently.
    pub computer_recent_within: Duration,
}

/// Everything the report is drawn from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub computers: &'a [ComputerSeen],
    pub relays: &'a [RelaySeen],
    pub sites: &'a [SiteDeclared],
    /// The packages activated for each site (a site absent: none).
    pub activated: &'a BTreeMap<SiteName, Vec<Activated>>,
    pub now: Timestamp,
    pub thresholds: Thresholds,
}

/// Whole seconds from `then` to `now`; a time ahead of `now` (another
/// machine's clock) is no age at all.
fn age_s(now: Timestamp, then: Timestamp) -> u64 {
    u64::try_from(now.duration_since(then).as_secs()).unwrap_or(0)
}

/// Draws the report.
pub fn report(input: &Inputs) -> Coverage {
    let Inputs {
        computers,
        relays,
        sites,
        activated,
        now,
        thresholds,
    } = *input;
    let relay_up = |r: &RelaySeen| {
        r.last_seen
            .is_some_and(|t| age_s(now, t) <= thresholds.relay_stale_after.as_secs())
    };

    let mut per_site: BTreeMap<SiteName, SiteCoverage> = BTreeMap::new();
    let blank = |site: &SiteName| SiteCoverage {
        site: site.clone(),
        subnets: Vec::new(),
        relay_subnets: Vec::new(),
        relays: 0,
        relays_up: 0,
        computers: 0,
        computers_recent: 0,
        unserved: 0,
        unserved_recent: 0,
    };
    for s in sites {
        per_site
            .entry(s.name.clone())
            .or_insert_with(|| blank(&s.name))
            .subnets = s.subnets.clone();
    }
    let mut relay_subnets: BTreeMap<&SiteName, BTreeSet<IpNet>> = BTreeMap::new();
    for r in relays {
        let site = per_site
            .entry(r.site.clone())
            .or_insert_with(|| blank(&r.site));
        site.relays += 1;
        site.relays_up += u64::from(relay_up(r));
        relay_subnets
            .entry(&r.site)
            .or_default()
            .extend(r.subnets.iter().copied());
    }
    for (site, nets) in relay_subnets {
        if let Some(s) = per_site.get_mut(site) {
            s.relay_subnets = nets.into_iter().collect();
        }
    }

    let mut unserved = Vec::new();
    for c in computers {
        let recent = c
            .last_seen
            .is_some_and(|t| age_s(now, t) <= thresholds.computer_recent_within.as_secs());
        // Agents try the relays holding a package whole in `select_relays`'
        // order, so the first of all relays serves the computer when it holds the
        // package (when it lacks one activated for its site, it is in `stale_relays`).
        match select_relays(&c.addresses, relays).first() {
            Some(r) => {
                if let Some(site) = per_site.get_mut(&r.site) {
                    site.computers += 1;
                    site.computers_recent += u64::from(recent);
                }
            }
            None => {
                let site = declared_site(&c.addresses, sites);
                if let Some(s) = site.and_then(|name| per_site.get_mut(name)) {
                    s.unserved += 1;
                    s.unserved_recent += u64::from(recent);
                }
                unserved.push(UnservedComputer {
                    id: c.id.clone(),
                    hostname: c.hostname.clone(),
                    addresses: c.addresses.clone(),
                    last_seen: c.last_seen,
                    site: site.cloned(),
                });
            }
        }
    }
    unserved.sort_by(|a, b| a.id.cmp(&b.id));

    let mut stale_relays: Vec<StaleRelay> = relays
        .iter()
        .filter_map(|r| {
            let on_site = activated.get(&r.site).map_or(&[][..], Vec::as_slice);
            let reasons = stale_reasons(r, on_site, now, thresholds);
            (!reasons.is_empty()).then(|| StaleRelay {
                id: r.id.clone(),
                site: r.site.clone(),
                last_seen: r.last_seen,
                reasons,
            })
        })
        .collect();
    stale_relays.sort_by(|a, b| (&a.site, &a.id).cmp(&(&b.site, &b.id)));

    Coverage {
        generated_at: now,
        relay_stale_after: thresholds.relay_stale_after,
        computer_recent_within: thresholds.computer_recent_within,
        computers: computers.len() as u64,
        unserved,
        sites: per_site.into_values().collect(),
        stale_relays,
        overlaps: overlaps(relays),
    }
}

/// The site whose declared subnets contain one of `addresses` with the longest
/// prefix (equal prefixes: the lower name, so the answer never depends on the
/// order sites are listed in); `None` when no site declares them.
fn declared_site<'a>(addresses: &[IpAddr], sites: &'a [SiteDeclared]) -> Option<&'a SiteName> {
    sites
        .iter()
        .filter_map(|s| best_prefix(addresses, &s.subnets).map(|p| (p, &s.name)))
        .min_by(|(pa, a), (pb, b)| pb.cmp(pa).then_with(|| a.cmp(b)))
        .map(|(_, name)| name)
}

/// Why one relay's holdings are stale (empty: they are not).
fn stale_reasons(
    relay: &RelaySeen,
    activated: &[Activated],
    now: Timestamp,
    thresholds: Thresholds,
) -> Vec<StaleReason> {
    let mut reasons = Vec::new();
    match relay.last_seen {
        None => reasons.push(StaleReason::NeverSeen),
        Some(t) => {
            let silent_s = age_s(now, t);
            if silent_s > thresholds.relay_stale_after.as_secs() {
                reasons.push(StaleReason::OutOfTouch { silent_s });
            }
        }
    }
    let mut packages: Vec<&Activated> = activated.iter().collect();
    packages.sort_by(|a, b| a.package_id.cmp(&b.package_id));
    for p in packages {
        match relay.holdings.get(&p.package_id) {
            Some(h) if h.info_sha256 != p.info_sha256 => reasons.push(StaleReason::OldInfo {
                package_id: p.package_id.clone(),
                held: h.fragments,
                total: p.fragments,
                held_info_sha256: h.info_sha256.clone(),
                info_sha256: p.info_sha256.clone(),
                activated_at: p.activated_at,
            }),
            // Whole means every fragment, as central tells agents (`holds_whole`).
            Some(h) if h.fragments == p.fragments => {}
            held => reasons.push(StaleReason::Incomplete {
                package_id: p.package_id.clone(),
                held: held.map_or(0, |h| h.fragments),
                total: p.fragments,
                activated_at: p.activated_at,
            }),
        }
    }
    reasons
}

/// One relay as agents with an address in a given block see it: only its
/// subnets that contain the whole block.
struct Claim<'a> {
    relay: &'a RelaySeen,
    subnets: Vec<IpNet>,
}

impl RelaySubnets for Claim<'_> {
    fn relay_id(&self) -> &RelayId {
        &self.relay.id
    }
    fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }
}

/// Warnings for the relay subnets whose every address relays of more than one
/// site serve. CIDR blocks either nest or are disjoint, so wherever two relays'
/// subnets share addresses, the more specific subnet lies inside both: looking
/// at each relay subnet once, with every relay containing it, finds each shared
/// block once (nested subnets do not repeat it pair by pair). Who serves it is
/// decided by [`select_relays`] over all those relays, as agents decide it.
/// Sorted by subnet.
fn overlaps(relays: &[RelaySeen]) -> Vec<SubnetOverlap> {
    // Truncated: `10.1.2.3/16` and `10.1.0.0/16` are the same addresses.
    let blocks: BTreeSet<IpNet> = relays
        .iter()
        .flat_map(|r| r.subnets.iter().map(IpNet::trunc))
        .collect();
    let mut found = Vec::new();
    for block in blocks {
        let claims: Vec<Claim> = relays
            .iter()
            .map(|relay| Claim {
                relay,
                subnets: relay
                    .subnets
                    .iter()
                    .filter(|n| n.contains(&block))
                    .copied()
                    .collect(),
            })
            .filter(|c| !c.subnets.is_empty())
            .collect();
        let sites: BTreeSet<&SiteName> = claims.iter().map(|c| &c.relay.site).collect();
        if sites.len() < 2 {
            continue;
        }
        // Every claim contains the block's first address, by its subnets that
        // contain the whole block: the agents' order there.
        let ordered = select_relays(&[block.network()], &claims);
        let sides: Vec<OverlapSide> = ordered
            .iter()
            .filter_map(|c| {
                let subnet = c.subnets.iter().max_by_key(|n| n.prefix_len())?;
                Some(OverlapSide {
                    relay_id: c.relay.id.clone(),
                    site: c.relay.site.clone(),
                    subnet: *subnet,
                })
            })
            .collect();
        let Some(first) = sides.first() else {
            continue;
        };
        found.push(SubnetOverlap {
            subnet: block,
            served_by: first.site.clone(),
            relays: sides,
        });
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
