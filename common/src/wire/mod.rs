//! The DTOs of Sitecast's HTTP APIs: what central's admin API and agent protocol
//! and a relay's health endpoint carry as JSON, shared by central, the admin
//! CLI, relays and agents.
//!
//! Wire types depend on the domain types they carry (ids, status codes,
//! grammars, job kinds, power states), never the reverse. Requests carry user
//! input as plain strings so central can validate them into domain types with
//! errors that name the bad field or token; responses carry values central
//! already validated. Every submodule's types are re-exported here.

use serde::{Deserialize, Serialize};

pub mod agent;
pub mod computers;
pub mod containers;
pub mod coverage;
pub mod groups;
pub mod packages;
pub mod relays;

pub use agent::*;
pub use computers::*;
pub use containers::*;
pub use coverage::*;
pub use groups::*;
pub use packages::*;
pub use relays::*;

/// Every error response, central's and relays': `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
