//! The coverage report behind `GET /coverage`: which computers no relay serves
//! (they download over the WAN from central), how each site's relays serve it,
//! which relays' holdings are stale, and which relays of different sites claim
//! the same addresses. The French field guide (seed 004) had to find the
//! machines the same-subnet rule left out by hand; this finds them with the
//! very rule agents use ([`crate::subnet`], longest prefix first).
//!
//! Pure: central gathers its records and the time and calls [`report`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;

use crate::ids::{ComputerId, PackageId, RelayId, SiteName};
use crate::subnet::{select_relays, RelaySubnets};
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
        // The relay agents try first is the one that serves the computer.
        match select_relays(&c.addresses, relays).first() {
            Some(r) => {
                if let Some(site) = per_site.get_mut(&r.site) {
                    site.computers += 1;
                    let recent = c.last_seen.is_some_and(|t| {
                        age_s(now, t) <= thresholds.computer_recent_within.as_secs()
                    });
                    site.computers_recent += u64::from(recent);
                }
            }
            None => unserved.push(UnservedComputer {
                id: c.id.clone(),
                hostname: c.hostname.clone(),
                addresses: c.addresses.clone(),
                last_seen: c.last_seen,
            }),
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

/// Whether two subnets share addresses: CIDR blocks either nest or are disjoint.
fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Pairs of relays of different sites with overlapping subnets, the relay
/// agents try first first (more specific subnet, then lower relay id, as
/// [`select_relays`] orders them), sorted by subnet then relays.
fn overlaps(relays: &[RelaySeen]) -> Vec<SubnetOverlap> {
    let mut found = Vec::new();
    for (i, a) in relays.iter().enumerate() {
        for b in &relays[i + 1..] {
            if a.site == b.site {
                continue;
            }
            for na in &a.subnets {
                for nb in b.subnets.iter().filter(|nb| overlap(na, nb)) {
                    let side_a = OverlapSide {
                        relay_id: a.id.clone(),
                        site: a.site.clone(),
                        subnet: *na,
                    };
                    let side_b = OverlapSide {
                        relay_id: b.id.clone(),
                        site: b.site.clone(),
                        subnet: *nb,
                    };
                    let a_first = match na.prefix_len().cmp(&nb.prefix_len()) {
                        std::cmp::Ordering::Equal => a.id < b.id,
                        longer => longer == std::cmp::Ordering::Greater,
                    };
                    let (first, second) = if a_first {
                        (side_a, side_b)
                    } else {
                        (side_b, side_a)
                    };
                    found.push(SubnetOverlap {
                        subnet: if na.prefix_len() >= nb.prefix_len() {
                            *na
                        } else {
                            *nb
                        },
                        served_by: first.site.clone(),
                        relays: vec![first, second],
                    });
                }
            }
        }
    }
    found.sort_by(|x, y| {
        let key = |o: &SubnetOverlap| {
            (
                o.subnet,
                o.relays
                    .iter()
                    .map(|s| s.relay_id.clone())
                    .collect::<Vec<_>>(),
            )
        };
        key(x).cmp(&key(y))
    });
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
