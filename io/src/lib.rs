//! The pieces of Sitecast's shells that touch the operating system the same
//! way in central, relays and agents, kept in one copy: durable file writes
//! ([`durable`]) and, with the `quic` feature, the UDP sockets and QUIC
//! settings both ends of the replication link use ([`quic`]).

pub mod durable;
#[cfg(feature = "quic")]
pub mod quic;

pub use durable::{fsync_dir, write_atomically, IoError};
