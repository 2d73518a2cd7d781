//! Sitecast central: the authoritative package store.
//!
//! Layers, each using only those below it: [`store`] (sled, behind the
//! [`store::Store`] trait) and the file-backed pieces ([`packaging`],
//! [`delta`], [`init`]); [`state`] (the shared [`Central`]); [`domain`] (what
//! each request and periodic task does); the shells that receive requests,
//! [`api`] (HTTPS, on [`server`]) and [`quic`] (relays); and [`serve::run`],
//! which composes them into the server the binary runs. The `sitecast` admin
//! CLI is crate `sitecast-cli`, a client of the API.

pub mod api;
pub mod clock;
pub mod config;
pub mod delta;
pub mod domain;
pub mod error;
pub mod init;
pub mod jitter;
pub mod keys;
pub mod links;
pub mod packaging;
pub mod quic;
pub mod serve;
pub mod server;
pub mod state;
pub mod store;
pub mod tokens;

pub use error::CentralError;
pub use serve::{run, Listeners, Periodic};
pub use state::Central;
