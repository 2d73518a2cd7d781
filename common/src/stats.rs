//! A package's statistics per site (OCS's per-server statistics): which relay
//! served the computers of each site and how many fragment bytes came from
//! relays and from central. A pure function of what the agents reported and
//! the relays' subnets, so it is tested without a store.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::ids::{RelayId, SiteName};
use crate::subnet::{select_relays, RelaySubnets};
use crate::wire::{SiteStat, SourceBytes};
use ipnet::IpNet;

/// What the summary needs of a relay: which site its subnets belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRelay {
    pub id: RelayId,
    pub site: SiteName,
    pub subnets: Vec<IpNet>,
}

impl RelaySubnets for SiteRelay {
    fn relay_id(&self) -> &RelayId {
        &self.id
    }
    fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }
}

/// One computer's line of a package's statistics, as the summary needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// The computer's addresses, as central last saw them.
    pub addresses: Vec<IpAddr>,
    /// Fragment bytes per source, from its final report (none yet: nothing counted).
    pub sources: Vec<SourceBytes>,
}

/// The per-site summary: a computer belongs to the site of the relay whose
/// subnets contain one of its addresses with the longest prefix (the same rule
/// agents use to pick relays, so "site" means "the relays meant to serve it");
/// no such relay: site `None`. Named sites come first, by name, then `None`.
pub fn by_site(lines: &[Line], relays: &[SiteRelay]) -> Vec<SiteStat> {
    let mut sites: BTreeMap<Option<SiteName>, SiteStat> = BTreeMap::new();
    for line in lines {
        let site = select_relays(&line.addresses, relays)
            .first()
            .map(|r| r.site.clone());
        let stat = sites.entry(site.clone()).or_insert_with(|| SiteStat {
            site,
            computers: 0,
            bytes_from_relays: 0,
            bytes_from_central: 0,
            relays: BTreeMap::new(),
        });
        stat.computers += 1;
        // A set: a computer counts once per relay however many entries name it.
        let mut served = BTreeSet::new();
        for s in &line.sources {
            // Saturating: the numbers come from agents, and must not panic central.
            match &s.relay_id {
                Some(id) => {
                    stat.bytes_from_relays = stat.bytes_from_relays.saturating_add(s.bytes);
                    if s.bytes > 0 {
                        served.insert(id);
                    }
                }
                None => stat.bytes_from_central = stat.bytes_from_central.saturating_add(s.bytes),
            }
        }
        for id in served {
            *stat.relays.entry(id.clone()).or_insert(0) += 1;
        }
    }
    let mut list: Vec<SiteStat> = sites.into_values().collect();
    // `None` sorts first in the map; the computers of no site read best last.
    if list.first().is_some_and(|s| s.site.is_none()) {
        list.rotate_left(1);
    }
    list
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn relay(id: &str, site: &str, subnets: &[&str]) -> SiteRelay {
        SiteRelay {
            id: id.parse().unwrap(),
            site: site.parse().unwrap(),
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn line(addresses: &[&str], sources: &[(Option<&str>, u64)]) -> Line {
        Line {
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            sources: sources
                .iter()
                .map(|(r, bytes)| SourceBytes {
                    relay_id: r.map(|r| r.parse().unwrap()),
                    bytes: *bytes,
                })
                .collect(),
        }
    }

    #[test]
    fn computers_are_summed_per_site_of_their_longest_prefix_relay() {
        let relays = [
            relay("r-paris", "paris", &["10.1.0.0/16"]),
            relay("r-paris-b", "paris", &["10.1.0.0/16"]),
            // More specific than paris's relays: its computers are lyon's.
            relay("r-lyon", "lyon", &["10.1.5.0/24", "10.2.0.0/16"]),
        ];
        let lines = [
            line(&["10.1.0.7"], &[(Some("r-paris"), 1000)]),
            // Failed over from one relay to the other, then to central.
            line(
                &["10.1.0.8"],
                &[
                    (Some("r-paris"), 300),
                    (Some("r-paris-b"), 600),
                    (None, 100),
                ],
            ),
            line(&["10.1.5.9"], &[(Some("r-lyon"), 1000)]),
            // One of its addresses is served: that is its site.
            line(&["192.168.0.4", "10.2.3.4"], &[(Some("r-lyon"), 1000)]),
            // Not reported yet: counted, no bytes.
            line(&["10.2.0.9"], &[]),
            // No relay serves it: central did, under no site.
            line(&["172.16.0.1"], &[(None, 1000)]),
            line(&[], &[]),
        ];
        let stats = by_site(&lines, &relays);
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            json!([
                {"site": "lyon", "computers": 3, "bytes_from_relays": 2000,
                 "bytes_from_central": 0, "relays": {"r-lyon": 2}},
                {"site": "paris", "computers": 2, "bytes_from_relays": 1900,
                 "bytes_from_central": 100, "relays": {"r-paris": 2, "r-paris-b": 1}},
                {"site": null, "computers": 2, "bytes_from_relays": 0,
                 "bytes_from_central": 1000, "relays": {}},
            ])
        );
    }

    #[test]
    fn nothing_assigned_is_an_empty_summary_and_huge_counts_do_not_overflow() {
        assert!(by_site(&[], &[relay("r", "s", &["10.0.0.0/8"])]).is_empty());
        let lines = [
            line(&["10.0.0.1"], &[(Some("r"), u64::MAX), (None, 1)]),
            line(&["10.0.0.2"], &[(Some("r"), 5), (Some("r"), 0)]),
        ];
        let stats = by_site(&lines, &[relay("r", "s", &["10.0.0.0/8"])]);
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].bytes_from_relays, u64::MAX);
        assert_eq!(stats[0].bytes_from_central, 1);
        // Each computer counted once for the relay.
        assert_eq!(stats[0].relays[&"r".parse::<RelayId>().unwrap()], 2);
    }
}
