//! The pieces of Sitecast's shells that touch the operating system the same
//! way in central, relays and agents, kept in one copy: durable file writes
//! ([`durable`]); with the `tls` feature, PEM certificates and keys ([`tls`]);
//! with the `quic` feature, the UDP sockets and QUIC settings both ends of the
//! replication link use ([`quic`]); with the `rt` feature, blocking work off
//! the async threads ([`task`]); with the `http` feature, the HTTP serving loop
//! that bounds what any client may hold ([`http`]).

pub mod durable;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "quic")]
pub mod quic;
#[cfg(feature = "rt")]
pub mod task;
#[cfg(feature = "tls")]
pub mod tls;

pub use durable::{fsync_dir, write_atomically, write_secret, IoError};
#[cfg(feature = "rt")]
pub use task::blocking;
#[cfg(feature = "tls")]
pub use tls::TlsError;
