//! The coverage report (`GET /coverage`): computers no relay serves, each
//! site's relays, stale relays and overlapping subnets.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{ComputerId, PackageId, RelayId, SiteName};
use crate::units::Duration;

/// Answer of `GET /coverage`: what the same-subnet rule leaves out and where
/// the relays fall behind (seed 004: machines no redistribution server's
/// subnet matched had to be found by hand). Built by `coverage::report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Central's clock when the report was drawn; every age is counted to it.
    pub generated_at: Timestamp,
    /// A relay not in touch for longer than this is out of touch.
    pub relay_stale_after: Duration,
    /// A computer in touch within this counts as seen recently.
    pub computer_recent_within: Duration,
    /// Computers enrolled.
    pub computers: u64,
    /// Computers none of whose addresses any relay's subnets contain: they
    /// download over the WAN from central (by id). A computer some relay's
    /// subnet contains is not here even if that relay is stale: see `stale_relays`.
    pub unserved: Vec<UnservedComputer>,
    /// Every site (by name), with what its relays serve.
    pub sites: Vec<SiteCoverage>,
    /// Relays whose holdings are stale, each with its reasons (by site, then id).
    pub stale_relays: Vec<StaleRelay>,
    /// Warnings: subnets of relays of different sites that overlap, so the
    /// same addresses are served by two sites.
    pub overlaps: Vec<SubnetOverlap>,
}

/// A computer no relay serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnservedComputer {
    pub id: ComputerId,
    pub hostname: String,
    /// Its addresses as central last recorded them (none: it never said).
    pub addresses: Vec<IpAddr>,
    pub last_seen: Option<Timestamp>,
    /// The site whose declared subnets (`site add --subnet`) contain one of its
    /// addresses with the longest prefix, equal prefixes to the lower site name:
    /// where a relay would serve it. `None`: no site declares its addresses.
    #[serde(default)]
    pub site: Option<SiteName>,
}

/// How one site is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCoverage {
    pub site: SiteName,
    /// The subnets the site was declared with (`site add --subnet`).
    pub subnets: Vec<IpNet>,
    /// The subnets its relays serve (what agents match their addresses against).
    pub relay_subnets: Vec<IpNet>,
    /// Its relays.
    pub relays: u64,
    /// Its relays in touch within `relay_stale_after`.
    pub relays_up: u64,
    /// Computers its relays serve: a computer counts for the site of the relay
    /// whose subnets contain one of its addresses with the longest prefix,
    /// equal prefixes to the lower relay id (`subnet::select_relays`' first).
    pub computers: u64,
    /// Of those, the ones in touch within `computer_recent_within`.
    pub computers_recent: u64,
    /// Computers no relay serves whose site this is (`UnservedComputer::site`):
    /// in its declared subnets, with no relay there yet.
    #[serde(default)]
    pub unserved: u64,
    /// Of those, the ones in touch within `computer_recent_within`.
    #[serde(default)]
    pub unserved_recent: u64,
}

/// A relay whose holdings are stale, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleRelay {
    pub id: RelayId,
    pub site: SiteName,
    pub last_seen: Option<Timestamp>,
    pub reasons: Vec<StaleReason>,
}

/// Why a relay's holdings are stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaleReason {
    /// The relay never connected to central.
    NeverSeen,
    /// The relay's last contact is older than `relay_stale_after`.
    OutOfTouch {
        /// Seconds since its last contact.
        silent_s: u64,
    },
    /// A package activated for its site that it does not hold whole (fragments
    /// of the current signed info held, of the total).
    Incomplete {
        package_id: PackageId,
        held: u32,
        total: u32,
        /// When the package was activated for the relay's site (`None`: not
        /// recorded, activated before central kept the time).
        activated_at: Option<Timestamp>,
    },
    /// It holds a signed info of an activated package other than the
    /// package's current one (fragments of that info held, of the current total).
    OldInfo {
        package_id: PackageId,
        held: u32,
        total: u32,
        /// SHA-256 of the signed info the relay holds.
        held_info_sha256: String,
        /// SHA-256 of the package's current signed info.
        info_sha256: String,
        /// When the package was activated for the relay's site (`None`: not recorded).
        activated_at: Option<Timestamp>,
    },
}

/// Relays of different sites serving the same addresses: one warning per
/// relay subnet whose every address relays of two sites or more serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetOverlap {
    /// The addresses they all serve: one relay's subnet, contained in each of
    /// the others' (blocks inside it that a further relay claims are warnings
    /// of their own).
    pub subnet: IpNet,
    /// The site of the first of `relays`: the relay agents there choose when
    /// it holds the package whole.
    pub served_by: SiteName,
    /// Every relay whose subnets contain all of `subnet`, in the order agents
    /// there try them (`subnet::select_relays`: longest prefix, then lower
    /// relay id), each with its longest subnet containing `subnet`.
    pub relays: Vec<OverlapSide>,
}

/// One relay of a [`SubnetOverlap`] and its subnet that contains the overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlapSide {
    pub relay_id: RelayId,
    pub site: SiteName,
    pub subnet: IpNet,
}

/// Query of `GET /coverage`: thresholds for this report instead of central.toml's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageParams {
    /// A duration (`15m`): relays not in touch for longer are out of touch.
    pub relay_stale_after: Option<String>,
    /// A duration (`1d`): computers in touch within it count as seen recently.
    pub computer_recent_within: Option<String>,
}
