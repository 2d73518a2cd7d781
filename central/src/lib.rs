//! Sitecast central: the authoritative package store.
//!
//! It fragments and signs uploaded packages ([`packaging`]), keeps metadata in sled
//! behind the [`store::Store`] trait, and serves the HTTPS admin and agent API
//! ([`api`], [`server`]); the `sitecast` admin CLI (crate `sitecast-cli`) is a
//! thin client of that API. The binary in `src/bin/` only parses flags and calls into here.

pub mod api;
pub mod clock;
pub mod config;
pub mod delta;
pub mod error;
pub mod init;
pub mod jitter;
pub mod packaging;
pub mod power;
pub mod quic;
pub mod server;
pub mod stats;
pub mod store;
pub mod tokens;

pub use error::CentralError;
