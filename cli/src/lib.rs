//! The `sitecast` admin CLI: a thin client of central's HTTP API.
//!
//! Two stages, as ripgrep does: clap parses raw flags ([`args`]), then [`run`]
//! resolves where central is ([`connection`]) and performs one command. Human-readable
//! tables by default; `--json` prints exactly the API's response body.
//!
//! It shares only `sitecast-common` with central (wire types, ids, the DIR's
//! file names): no store, no QUIC, no HTTP server.

pub mod args;
pub mod client;
pub mod connection;
pub mod error;
mod render;
mod run;

pub use args::Cli;
pub use client::{Answer, Client};
pub use connection::connect;
pub use error::CliError;
pub use run::run;
