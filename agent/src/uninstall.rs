//! Uninstall jobs (SPEC "Jobs"): the last step of a job whose signed info was fetched
//! and verified like an install's (see [`crate::deploy`]); no fragment is fetched.
//!
//! What "uninstall" means comes from the verified info:
//!
//! - a `store` package: remove what its install put under the store path, as recorded
//!   in the history ([`crate::manifest`]); nothing else is ever removed;
//! - then, if the info has an `uninstall` procedure, run its command through `/bin/sh`
//!   (as `execute` does: process group, killed at the info's `command_timeout_s`,
//!   the output's tail kept), in a fresh empty working directory removed afterwards,
//!   its exit code mapped through the procedure's `success_exit_codes`;
//! - a package that is neither: `ERR_EXECUTE`, nothing run.
//!
//! A `store` package this agent has no record of installing (installed elsewhere, or
//! never) has nothing to remove, which is not a failure: the uninstall command, if any,
//! still runs. One installed before the agent recorded manifests cannot be told apart
//! from its neighbours: `ERR_EXECUTE`, nothing removed and nothing run, so that the
//! admin knows the files are still there. When removing fails the command is not run
//! either: the job can be tried again, and what is already gone is skipped.
//!
//! The worker takes a package that uninstalled successfully out of the history before
//! the report goes out, so a later install job runs again.

use std::path::Path;
use std::time::Duration;

use sitecast_common::ids::ComputerId;
use sitecast_common::info::{Action, Info};
use sitecast_common::jobs::JobKind;
use sitecast_common::status::StatusCode;
use sitecast_common::wire::StatusReport;

use crate::action::{self, OUTPUT_TAIL_BYTES};
use crate::deploy::{report, report_with, settle, Context, Package};
use crate::history::Installed;
use crate::install::{command_report, package_env};
use crate::journal::Journal;
use crate::manifest;
use sitecast_io::blocking;

/// Runs the uninstall of a package whose signed info is verified, cleans up its
/// download directory, and returns the final report. `installed` is what the
/// history knows of the package.
pub async fn uninstall_step(
    ctx: &Context,
    package: &mut Package,
    installed: Option<&Installed>,
) -> StatusReport {
    let report = match package.info().cloned() {
        Some(info) => uninstall(&info, installed, &ctx.work, &ctx.computer_id, &ctx.journal).await,
        None => report_with(
            StatusCode::ErrExecute,
            "uninstalling a package whose signed info is not verified; nothing was run".into(),
        ),
    };
    settle(package, report).await
}

/// The uninstall itself (see the [module documentation](self)); `work` is where its
/// temporary working directory goes, `journal` where its command's start is recorded.
pub(crate) async fn uninstall(
    info: &Info,
    installed: Option<&Installed>,
    work: &Path,
    computer_id: &ComputerId,
    journal: &Journal,
) -> StatusReport {
    let store = match info.action() {
        Action::Store { path } => Some(path.as_str()),
        Action::Launch { .. } | Action::Execute { .. } => None,
    };
    if store.is_none() && info.uninstall().is_none() {
        return report_with(
            StatusCode::ErrExecute,
            format!(
                "package {} has no uninstall procedure: its action is {} and its signed \
                 info has no uninstall command; nothing was run",
                info.id(),
                info.action().kind()
            ),
        );
    }
    let mut summary = None;
    if let Some(path) = store {
        match installed.map(|installed| &installed.store) {
            Some(Some(manifest)) => {
                let manifest = manifest.clone();
                let root = manifest.root.clone();
                let removal =
                    blocking(move || Ok::<_, crate::AgentError>(manifest::remove(&manifest))).await;
                match removal {
                    Ok(removal) if removal.ok() => {
                        tracing::info!(package = %info.id(), files = removal.files, dirs = removal.dirs, kept = removal.kept.len(), "removed what the store install put in place");
                        summary = Some(format!("{}: {removal}", root.display()));
                    }
                    Ok(removal) => {
                        return report_with(
                            StatusCode::ErrExecute,
                            format!(
                                "could not remove what the install put in {}; the uninstall \
                                 command was not run:\n{removal}",
                                root.display()
                            ),
                        )
                    }
                    Err(e) => {
                        return report_with(
                            StatusCode::ErrExecute,
                            format!("could not remove what the install put in {path}: {e}"),
                        )
                    }
                }
            }
            Some(None) => {
                return report_with(
                    StatusCode::ErrExecute,
                    format!(
                        "{path}: this agent installed the package before it recorded what a \
                         store install creates, so it cannot tell the package's files from \
                         others; nothing was removed and nothing was run"
                    ),
                )
            }
            None => {
                summary = Some(format!(
                    "{path}: nothing to remove, this agent has no record of installing the package"
                ));
            }
        }
    }
    let Some(procedure) = info.uninstall() else {
        return StatusReport {
            output: summary,
            ..report(StatusCode::Success)
        };
    };
    let dir = work.join(format!("{}-uninstall-{}", info.id(), std::process::id()));
    // A directory left by a crashed run is not "empty and fresh".
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return report_with(
            StatusCode::ErrExecute,
            format!(
                "cannot create the uninstall command's working directory {}: {e}",
                dir.display()
            ),
        );
    }
    let env = package_env(computer_id, info, &dir);
    let timeout = Duration::from_secs(info.command_timeout_s());
    let mut recorder = journal.recorder(info.id(), JobKind::Uninstall, timeout);
    let result = action::execute(&procedure.command, &dir, timeout, &env, &mut recorder).await;
    let mut status = command_report(
        result,
        &procedure.success_exit_codes,
        info.command_timeout_s(),
        "cannot run the uninstall command",
    );
    if let Some(summary) = summary {
        status.output = Some(join_output(
            &summary,
            status.output.as_deref().unwrap_or(""),
        ));
    }
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        if status.code == StatusCode::Success {
            return report_with(StatusCode::ErrClean, format!("{}: {e}", dir.display()));
        }
    }
    status
}

/// What was removed, then the command's output, within the size a report's output
/// promises: the command's output loses its beginning first.
fn join_output(summary: &str, output: &str) -> String {
    let room = OUTPUT_TAIL_BYTES.saturating_sub(summary.len() + 1);
    let mut cut = output.len().saturating_sub(room);
    while !output.is_char_boundary(cut) {
        cut += 1;
    }
    let joined = format!("{summary}\n{}", output.get(cut..).unwrap_or_default());
    if joined.len() <= OUTPUT_TAIL_BYTES {
        return joined;
    }
    // Only a summary longer than the whole budget gets here.
    let mut end = OUTPUT_TAIL_BYTES;
    while !joined.is_char_boundary(end) {
        end -= 1;
    }
    joined.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
