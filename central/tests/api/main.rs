//! Router tests of SPEC "HTTP API", with no socket: every admin and agent route,
//! called through `tower::ServiceExt::oneshot` on the real router over a real
//! central DIR (sled store, package files, signing key), with a manual clock.
//!
//! Each request kind has one helper on [`harness::Central`], so a test reads as
//! the story an admin and an agent would tell. One module per resource beside
//! this file; the harness is the only one that names `sitecast_central`'s paths.
#![allow(clippy::unwrap_used)]

mod harness;

mod activation;
mod agent;
mod assignments;
mod computers;
mod containers;
mod coverage;
mod groups;
mod notify;
mod packages;
mod power;
mod replication;
mod routes;
mod rules;
mod sites;
mod store;
