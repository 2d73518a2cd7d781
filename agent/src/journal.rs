//! The journal of the commands this agent started, so that no package's command ever
//! runs twice by itself, whatever stops the agent or the computer.
//!
//! `DIR/running/<package>.json` (`<package>+uninstall.json` for an uninstall job) is
//! written durably *before* the command's process starts, updated with its process
//! group once it runs, then with the job's final report once it ends, and removed only
//! when central has taken that report. While it exists, central's job for the package
//! is never started again: its report goes out instead.
//!
//! At start ([`Journal::recover`]), an entry without a report is a command a previous
//! run of the agent started and did not see end. If its process group still runs (the
//! agent alone was killed), it is waited for until the command's own deadline, then
//! killed — never started beside it. Either way the job is reported `ERR_INTERRUPTED`
//! with when it started: how it ended is unknown, so only an admin's `container retry`
//! runs it again. The boot it started in is kept, so that a process group id read back
//! after a reboot is not mistaken for the command's.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::ids::PackageId;
use sitecast_common::jobs::JobKind;
use sitecast_common::status::StatusCode;
use sitecast_common::wire::StatusReport;
use sitecast_io::write_atomically;

use crate::action::Starting;
use crate::error::AgentError;

/// How often a previous run's command is looked at while waiting for it to end.
const WAIT_STEP: Duration = Duration::from_millis(200);

/// How long a killed group may take to go away before recovery gives up on it.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One started command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub package: PackageId,
    pub kind: JobKind,
    pub started_at: Timestamp,
    /// When the command is killed at the latest: its start plus its timeout.
    pub deadline: Timestamp,
    /// The boot it started in (Linux's boot id; absent where there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Its process group, once the process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i32>,
    /// How the job ended: the final report central is to get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<StatusReport>,
}

/// `DIR/running/`.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, id: &PackageId, kind: JobKind) -> PathBuf {
        // Package ids never contain `+`, so an uninstall job's file is no package's.
        match kind {
            JobKind::Install => self.dir.join(format!("{id}.json")),
            JobKind::Uninstall => self.dir.join(format!("{id}+uninstall.json")),
        }
    }

    fn write(&self, entry: &Entry) -> Result<(), AgentError> {
        std::fs::create_dir_all(&self.dir).map_err(AgentError::io(&self.dir))?;
        let bytes =
            serde_json::to_vec_pretty(entry).map_err(AgentError::encode("journal entry"))?;
        write_atomically(&self.path(&entry.package, entry.kind), &bytes).map_err(Into::into)
    }

    /// The entry of a job, if its command started and central has not taken its report.
    pub fn get(&self, id: &PackageId, kind: JobKind) -> Option<Entry> {
        let path = self.path(id, kind);
        let bytes = std::fs::read(&path).ok()?;
        Some(parse(&path, &bytes, id.clone(), kind))
    }

    /// A recorder for the command of a job about to run with `timeout`.
    pub fn recorder(&self, id: &PackageId, kind: JobKind, timeout: Duration) -> Recorder<'_> {
        Recorder {
            journal: self,
            package: id.clone(),
            kind,
            timeout,
            entry: None,
        }
    }

    /// The job ended with `report`: written down before it is sent. A job whose
    /// command never started has no entry, and needs none.
    pub fn finish(
        &self,
        id: &PackageId,
        kind: JobKind,
        report: &StatusReport,
    ) -> Result<(), AgentError> {
        let Some(mut entry) = self.get(id, kind) else {
            return Ok(());
        };
        entry.report = Some(report.clone());
        self.write(&entry)
    }

    /// Central took the job's report (or refused it for good): the job is over here.
    pub fn settle(&self, id: &PackageId, kind: JobKind) {
        let path = self.path(id, kind);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Err(e) = sitecast_io::fsync_dir(&self.dir) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot sync the journal");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a settled journal entry")
            }
        }
    }

    /// Every entry of a previous run, each with its final report: a command that did
    /// not report is waited for (or killed at its deadline) and reported
    /// `ERR_INTERRUPTED`, and that report is written down before this returns.
    pub async fn recover(&self) -> Vec<Entry> {
        let mut recovered = Vec::new();
        for (path, id, kind) in self.files() {
            let entry = match std::fs::read(&path) {
                Ok(bytes) => parse(&path, &bytes, id, kind),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a journal entry");
                    continue;
                }
            };
            if entry.report.is_some() {
                recovered.push(entry);
                continue;
            }
            let ended = outlive(&entry).await;
            let output = format!(
                "the command started at {} and the agent stopped before it ended; {ended}; \
                 it is not run again unless an admin retries the job",
                entry.started_at
            );
            tracing::warn!(package = %entry.package, kind = %entry.kind, %output, "interrupted");
            let entry = Entry {
                report: Some(StatusReport {
                    code: StatusCode::ErrInterrupted,
                    exit_code: None,
                    output: Some(output),
                    fragments_done: None,
                    sources: Vec::new(),
                    job: None,
                }),
                ..entry
            };
            if let Err(e) = self.write(&entry) {
                tracing::warn!(package = %entry.package, error = %e, "cannot record the interruption");
            }
            recovered.push(entry);
        }
        recovered
    }

    /// The journal's files, with the job each one names.
    fn files(&self) -> Vec<(PathBuf, PackageId, JobKind)> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the journal");
                return Vec::new();
            }
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let stem = name.to_str()?.strip_suffix(".json")?;
                let (id, kind) = match stem.strip_suffix("+uninstall") {
                    Some(id) => (id, JobKind::Uninstall),
                    None => (stem, JobKind::Install),
                };
                Some((e.path(), id.parse().ok()?, kind))
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }
}

/// An entry read back; one that cannot be read still names its job (in its file name)
/// and is taken for a command that started and whose end nobody saw.
fn parse(path: &Path, bytes: &[u8], package: PackageId, kind: JobKind) -> Entry {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), error = %e, "unreadable journal entry");
        let now = crate::clock::now();
        Entry {
            package,
            kind,
            started_at: now,
            deadline: now,
            boot_id: None,
            pgid: None,
            report: None,
        }
    })
}

/// Waits for a previous run's command to end, killing it at its deadline; says how it
/// went.
async fn outlive(entry: &Entry) -> String {
    let Some(pgid) = entry.pgid else {
        return "its process had not started yet or could not be recorded".into();
    };
    if entry.boot_id.is_some() && entry.boot_id != boot_id() {
        return "the computer restarted since".into();
    }
    if !group_alive(pgid) {
        return format!("its process group {pgid} had already ended");
    }
    tracing::info!(package = %entry.package, pgid, deadline = %entry.deadline, "waiting for the command a previous run started");
    loop {
        if !group_alive(pgid) {
            return format!("its process group {pgid} ended while this run waited");
        }
        if crate::clock::now() >= entry.deadline {
            break;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    kill_group(pgid);
    let gave_up = tokio::time::Instant::now() + KILL_GRACE;
    while group_alive(pgid) && tokio::time::Instant::now() < gave_up {
        tokio::time::sleep(WAIT_STEP).await;
    }
    format!("its process group {pgid} was still running at its timeout and was killed")
}

/// Records a command's start in the journal (see [`Starting`]).
pub struct Recorder<'a> {
    journal: &'a Journal,
    package: PackageId,
    kind: JobKind,
    timeout: Duration,
    entry: Option<Entry>,
}

impl Starting for Recorder<'_> {
    fn starting(&mut self) -> io::Result<()> {
        let started_at = crate::clock::now();
        let deadline = started_at
            .checked_add(jiff::SignedDuration::try_from(self.timeout).map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
        let entry = Entry {
            package: self.package.clone(),
            kind: self.kind,
            started_at,
            deadline,
            boot_id: boot_id(),
            pgid: None,
            report: None,
        };
        self.journal.write(&entry).map_err(io::Error::other)?;
        self.entry = Some(entry);
        Ok(())
    }

    fn started(&mut self, pgid: i32) {
        let Some(entry) = self.entry.as_mut() else {
            return;
        };
        entry.pgid = Some(pgid);
        // Without it a later run cannot wait for this command, only report it.
        if let Err(e) = self.journal.write(entry) {
            tracing::warn!(package = %entry.package, error = %e, "cannot record the command's process group");
        }
    }
}

/// This boot's id, where the system has one.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// A process of group `pgid` still runs. On Linux, zombies do not count: an orphan
/// whose parent does not reap it must not hold the agent up.
fn group_alive(pgid: i32) -> bool {
    let signalled = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None);
    if matches!(signalled, Err(nix::errno::Errno::ESRCH)) {
        return false;
    }
    match std::fs::read_dir("/proc") {
        Ok(entries) => entries.filter_map(Result::ok).any(|e| {
            let stat = e.path().join("stat");
            std::fs::read_to_string(stat).is_ok_and(|text| runs_in_group(&text, pgid))
        }),
        // No /proc: the signal's answer is all there is.
        Err(_) => true,
    }
}

/// `/proc/PID/stat` is `pid (comm) state ppid pgrp ...`; the command name may hold
/// spaces and parentheses, so the fields are read after its last `)`.
fn runs_in_group(stat: &str, pgid: i32) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next();
    let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
    group == Some(pgid) && !matches!(state, Some("Z" | "X"))
}

fn kill_group(pgid: i32) {
    use nix::sys::signal::{killpg, Signal};
    match killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, error = %e, "cannot kill a previous run's command"),
    }
}

#[cfg(test)]
mod tests;
