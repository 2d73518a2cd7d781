//! The Sitecast agent. Replication and deployment arrive with the relay/agent issue;
//! for now this crate only carries the command-line surface of SPEC "Agent".

pub mod action;
pub mod unpack;
