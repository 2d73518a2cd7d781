//! What every step of a deployment is given ([`Context`]: the agent's
//! identity, its client to central, the keys infos are verified with, its
//! directories, limits, relay back-off, notifier and journal), and the status reports
//! those steps make. Below `deploy`, `install` and `uninstall`, which all use it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use sitecast_common::ids::ComputerId;
use sitecast_common::status::StatusCode;
use sitecast_common::wire::StatusReport;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::journal::Journal;
use crate::notify::Notifier;

/// What every deployment needs from the agent.
pub struct Context {
    pub computer_id: ComputerId,
    pub client: Client,
    /// The keys infos are verified with (the key set under the pinned root).
    pub trust: crate::trust::Trust,
    pub addresses: Vec<IpAddr>,
    pub downloads: PathBuf,
    pub work: PathBuf,
    /// agent.toml's `max_unpack` (none: derived from each package's size).
    pub max_unpack: Option<u64>,
    /// How much disk each step leaves free, and how free space is read.
    pub space: crate::space::Space,
    /// Relays skipped after they failed (shared by every package).
    pub backoff: Mutex<Backoff>,
    /// Tells the computer's user before and after an action.
    pub notifier: Notifier,
    /// Where each command's start is recorded before it starts.
    pub journal: Journal,
}

/// A report of `code` alone.
pub(crate) fn report(code: StatusCode) -> StatusReport {
    StatusReport {
        code,
        exit_code: None,
        output: None,
        fragments_done: None,
        sources: Vec::new(),
        job: None,
    }
}

/// A report of `code` with an output text.
pub(crate) fn report_with(code: StatusCode, output: String) -> StatusReport {
    StatusReport {
        output: Some(output),
        ..report(code)
    }
}
