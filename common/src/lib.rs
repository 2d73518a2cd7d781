//! Sitecast's pure core, shared by central, relays and agents.
//!
//! Everything here is deterministic: no sockets, no files (only the `Read` trait),
//! no clock (time comes in as an argument) and no environment. The binaries are
//! thin shells that feed these types with bytes and timestamps.

pub mod activation;
pub mod constraint;
pub mod coverage;
pub mod delta;
pub mod deployment;
pub mod errors;
pub mod eviction;
pub mod fragment;
pub mod grammar;
pub mod groups;
pub mod http_range;
pub mod ids;
pub mod info;
pub mod jobs;
pub mod keyset;
pub mod layout;
pub mod power;
pub mod protocol;
pub mod replication;
pub mod signing;
pub mod stats;
pub mod status;
pub mod subnet;
pub mod units;
pub mod wire;

pub use fragment::{FragmentHasher, FragmentPlan};
pub use ids::{ComputerId, PackageId, RelayId, SiteName};
pub use info::Info;
pub use status::StatusCode;
