//! Activation: which sites' relays replicate a package (activations add up, as
//! OCS's do per server group), deactivation (OCS's red cross: those relays drop
//! it, and its install jobs not yet handed out on their computers are
//! cancelled), and what one relay must hold now.

use std::collections::BTreeSet;

use sitecast_common::deployment::CentralFallback;
use sitecast_common::ids::{ComputerId, SiteName};
use sitecast_common::protocol::ActivatedPackage;
use sitecast_common::subnet::select_relays;
use sitecast_common::wire::{ActivationRequest, Deactivated, Package};

use super::{convert, records};
use crate::error::CentralError;
use crate::state::Central;
use crate::store::RelayRecord;
use sitecast_common::stats;

/// Activates package `id` for the sites the request names, or all sites; an
/// activation already in force keeps the time it began. Relays hear at once.
pub fn activate(c: &Central, id: &str, req: ActivationRequest) -> Result<Package, CentralError> {
    let package = records::package(c, id)?;
    let sites = match chosen_sites(c, req.sites, req.all_sites)? {
        Sites::Named(names) => Some(names),
        Sites::All => None,
    };
    let fallback = req
        .fallback
        .map(|f| f.parse::<CentralFallback>())
        .transpose()
        .map_err(|e| CentralError::invalid(format!("bad fallback: {e}")))?;
    let pid = package.id;
    let updated = c.store.update_activation(&pid, &|a| {
        match &sites {
            Some(names) => {
                let mut set: BTreeSet<SiteName> = a.sites.iter().cloned().collect();
                set.extend(names.iter().cloned());
                a.sites = set.into_iter().collect();
            }
            None => a.all_sites = true,
        }
        if let Some(f) = fallback {
            a.central_fallback = f;
        }
    })?;
    let now = c.clock.now();
    c.store.update_activation_times(&pid, &|t| match &sites {
        Some(names) => {
            for name in names {
                t.sites.entry(name.clone()).or_insert(now);
            }
        }
        None => {
            t.all_sites.get_or_insert(now);
        }
    })?;
    c.notify_relays();
    Ok(updated.into())
}

/// The sites an activation request names: these (each checked), or all.
enum Sites {
    Named(BTreeSet<SiteName>),
    All,
}

/// Reads `sites:[…]` or `all_sites:true` (exactly one), each site checked.
fn chosen_sites(
    c: &Central,
    sites: Option<Vec<String>>,
    all_sites: Option<bool>,
) -> Result<Sites, CentralError> {
    match (sites, all_sites) {
        (Some(_), Some(true)) => Err(CentralError::invalid(
            "bad sites: give either sites or all_sites, not both",
        )),
        (Some(sites), _) => {
            if sites.is_empty() {
                return Err(CentralError::invalid("bad sites: the list is empty"));
            }
            let mut names = BTreeSet::new();
            for s in &sites {
                let name: SiteName = s
                    .parse()
                    .map_err(|e| CentralError::invalid(format!("bad sites: {e}")))?;
                if c.store.site(&name)?.is_none() {
                    return Err(CentralError::not_found("site", &name));
                }
                names.insert(name);
            }
            Ok(Sites::Named(names))
        }
        (None, Some(true)) => Ok(Sites::All),
        (None, _) => Err(CentralError::invalid(
            "bad request body: give sites:[...] or all_sites:true",
        )),
    }
}

/// What `DELETE /packages/{id}/activations` takes away: these sites, or all.
fn withdrawn(c: &Central, req: ActivationRequest) -> Result<Sites, CentralError> {
    if req.fallback.is_some() {
        return Err(CentralError::invalid(
            "bad fallback: a deactivation takes only sites or all_sites",
        ));
    }
    chosen_sites(c, req.sites, req.all_sites)
}

/// The computers whose site (that of the relay whose subnets contain one of
/// their addresses, longest prefix first, as `stats` counts them) is one of `sites`.
fn computers_of_sites(
    c: &Central,
    sites: &BTreeSet<SiteName>,
) -> Result<BTreeSet<ComputerId>, CentralError> {
    let relays: Vec<stats::SiteRelay> = c.store.relays()?.iter().map(Into::into).collect();
    Ok(c.store
        .computers()?
        .into_iter()
        .filter(|computer| {
            select_relays(&computer.addresses, &relays)
                .first()
                .is_some_and(|r| sites.contains(&r.site))
        })
        .map(|computer| computer.id)
        .collect())
}

/// OCS's red cross on an activation: the sites' relays stop holding the package
/// (they drop it, unless they keep it as a delta base), and the package's install
/// jobs not yet notified on the computers of those sites are cancelled (with
/// `all_sites`, on every computer). Jobs handed out or finished stay.
pub fn deactivate(
    c: &Central,
    id: &str,
    req: ActivationRequest,
) -> Result<Deactivated, CentralError> {
    let package = records::package(c, id)?;
    let withdrawn = withdrawn(c, req)?;
    // Removing a site from an activation for all sites leaves every other site.
    let every_site: Vec<SiteName> = c.store.sites()?.into_iter().map(|s| s.name).collect();
    let on = match &withdrawn {
        Sites::Named(sites) => Some(computers_of_sites(c, sites)?),
        Sites::All => None,
    };
    let pid = package.id;
    let updated = c.store.update_activation(&pid, &|a| match &withdrawn {
        Sites::All => {
            a.all_sites = false;
            a.sites.clear();
        }
        Sites::Named(gone) => {
            if a.all_sites {
                a.all_sites = false;
                a.sites = every_site.clone();
            }
            a.sites.retain(|s| !gone.contains(s));
        }
    })?;
    c.store
        .update_activation_times(&pid, &|t| match &withdrawn {
            Sites::All => *t = Default::default(),
            Sites::Named(gone) => {
                // The sites left of an activation for all sites have been
                // activated since it began.
                if let Some(all) = t.all_sites.take() {
                    for site in &updated.activation.sites {
                        let since = t.sites.entry(site.clone()).or_insert(all);
                        *since = (*since).min(all);
                    }
                }
                t.sites.retain(|site, _| !gone.contains(site));
            }
        })?;
    let cancelled = c.store.remove_waiting_installs(&pid, on.as_ref())?;
    c.notify_relays();
    let computers: BTreeSet<ComputerId> = cancelled.iter().map(|j| j.computer_id.clone()).collect();
    tracing::info!(
        id = %updated.id,
        all_sites = updated.activation.all_sites,
        sites = ?updated.activation.sites,
        cancelled = cancelled.len(),
        "package deactivated"
    );
    Ok(Deactivated {
        package: updated.into(),
        cancelled: cancelled.len() as u64,
        computers: computers.into_iter().collect(),
    })
}

/// The packages a relay's site must hold now, in the order it replicates
/// them: priority, then id.
pub fn for_relay(c: &Central, relay: &RelayRecord) -> Result<Vec<ActivatedPackage>, CentralError> {
    let mut packages: Vec<ActivatedPackage> = c
        .store
        .packages()?
        .into_iter()
        .filter(|p| convert::activated_for(p, &relay.site))
        .map(|p| ActivatedPackage {
            id: p.id,
            priority: p.priority,
            info_sha256: p.info_sha256,
            size: p.size,
            fragments: p.fragments,
            supersedes: p.supersedes,
        })
        .collect();
    packages.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
    Ok(packages)
}
