//! The coverage report: the computers no relay serves (and the site declaring
//! each), each site's relays and computers, the relays whose holdings are
//! stale, and overlapping subnets of different sites. The report itself is
//! `sitecast_common::coverage::report`; this reads the thresholds and central's
//! records and feeds it.

use std::collections::BTreeMap;

use sitecast_common::coverage::{
    report, Activated, ComputerSeen, Held, Inputs, RelaySeen, SiteDeclared, Thresholds,
};
use sitecast_common::ids::SiteName;
use sitecast_common::units::Duration;
use sitecast_common::wire::{Coverage, CoverageParams};

use crate::error::CentralError;
use crate::state::Central;

/// A threshold from the query, or central.toml's when absent.
fn threshold(
    field: &str,
    given: Option<&str>,
    default: Duration,
) -> Result<Duration, CentralError> {
    given.map_or(Ok(default), |text| {
        text.parse()
            .map_err(|e| CentralError::invalid(format!("bad {field}: {e}")))
    })
}

pub fn report_now(c: &Central, params: CoverageParams) -> Result<Coverage, CentralError> {
    let thresholds = Thresholds {
        relay_stale_after: threshold(
            "relay_stale_after",
            params.relay_stale_after.as_deref(),
            c.config.relay_stale_after,
        )?,
        computer_recent_within: threshold(
            "computer_recent_within",
            params.computer_recent_within.as_deref(),
            c.config.computer_recent_within,
        )?,
    };
    let computers: Vec<ComputerSeen> = c
        .store
        .computers()?
        .into_iter()
        .map(|r| ComputerSeen {
            id: r.id,
            hostname: r.hostname,
            addresses: r.addresses,
            last_seen: r.last_seen,
        })
        .collect();
    let relays: Vec<RelaySeen> = c
        .store
        .relays()?
        .into_iter()
        .map(|r| RelaySeen {
            id: r.id,
            site: r.site,
            subnets: r.subnets,
            last_seen: r.last_seen,
            holdings: r
                .holdings
                .into_iter()
                .map(|(id, h)| {
                    let held = Held {
                        info_sha256: h.info_sha256,
                        fragments: h.fragments,
                    };
                    (id, held)
                })
                .collect(),
        })
        .collect();
    let sites: Vec<SiteDeclared> = c
        .store
        .sites()?
        .into_iter()
        .map(|s| SiteDeclared {
            name: s.name,
            subnets: s.subnets,
        })
        .collect();
    // "All sites" means every site there is, relays' sites included.
    let mut every_site: Vec<SiteName> = sites.iter().map(|s| s.name.clone()).collect();
    every_site.extend(relays.iter().map(|r| r.site.clone()));
    every_site.sort();
    every_site.dedup();
    let times = c.store.activation_times()?;
    let mut activated: BTreeMap<SiteName, Vec<Activated>> = BTreeMap::new();
    for p in c.store.packages()? {
        let on = if p.activation.all_sites {
            &every_site
        } else {
            &p.activation.sites
        };
        for site in on {
            activated.entry(site.clone()).or_default().push(Activated {
                package_id: p.id.clone(),
                info_sha256: p.info_sha256.clone(),
                fragments: p.fragments,
                activated_at: times.get(&p.id).and_then(|t| t.since(site)),
            });
        }
    }
    Ok(report(&Inputs {
        computers: &computers,
        relays: &relays,
        sites: &sites,
        activated: &activated,
        now: c.clock.now(),
        thresholds,
    }))
}
