//! Central's domain: what every request and every periodic task does, apart
//! from how it arrives. One module per concept; each function takes the
//! state ([`Central`](crate::state::Central)) and validated or wire input,
//! reads and writes the store, and answers a wire type or a
//! [`CentralError`](crate::error::CentralError). Nothing here knows HTTP or
//! QUIC: the `api` handlers and the `quic` link only extract, call one of
//! these, and shape the answer.
//!
//! The functions are synchronous (the store fsyncs): shells run them on the
//! blocking pool (`Central::blocking`). Only an upload and reading a signed
//! envelope are `async`, since they stream files.

pub mod activation;
pub mod computers;
pub mod containers;
pub mod convert;
pub mod coverage;
pub mod enroll_tokens;
pub mod groups;
pub mod keys;
pub mod packages;
pub mod polling;
pub mod power;
pub mod records;
pub mod relays;
pub mod replication;
pub mod rules;
pub mod stats;
pub mod targets;
