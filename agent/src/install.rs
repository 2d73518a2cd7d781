//! Installing a package whose fragments are all in and verified: rebuild the file
//! while hashing it, check the whole digest against the signed info, unpack (into a
//! fresh temporary directory for `launch` and `execute`, into the store path for
//! `store`), run the action, clean up. A `store` install answers what it created
//! ([`Manifest`]), which the history keeps for the package's uninstall.
//!
//! A package whose info has `notify` asks the user once the whole file is verified
//! and before anything is unpacked or run ([`crate::notify`]): an abort is
//! `ERR_ABORTED` with nothing run, a delay ends the step with nothing run and
//! nothing reported ([`Installed::Delayed`]). The info's `done_action_text` is
//! not shown here but by the worker, once the success is in the history: a
//! crash while the user reads it must not run the package again.
//!
//! Also the pieces uninstall jobs share with installs: the command's environment
//! ([`package_env`]) and how a command's outcome becomes a report ([`command_report`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sitecast_common::ids::ComputerId;
use sitecast_common::info::{Action, Archive, Info};
use sitecast_common::jobs::JobKind;
use sitecast_common::status::StatusCode;
use sitecast_common::wire::StatusReport;

use crate::action::{self, status_of, ActionError, CommandOutcome};
use crate::context::{report, report_with, Context};
use crate::manifest::Manifest;
use crate::notify::{Answer, Notice};
use crate::unpack;

/// Concatenates the verified fragments into one file while hashing it.
fn rebuild(dir: &Path, count: u32, out: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::io::BufWriter::with_capacity(256 << 10, std::fs::File::create(out)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    for n in 1..=count {
        let mut fragment = std::fs::File::open(dir.join(n.to_string()))?;
        loop {
            let read = fragment.read(&mut buf)?;
            if read == 0 {
                break;
            }
            hasher.update(&buf[..read]);
            file.write_all(&buf[..read])?;
        }
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(hasher.finalize().into())
}

/// A file name for a package that is not an archive: its name, if that is a
/// plain file name, so `launch` can run it by that name.
fn plain_name(info: &Info) -> String {
    let name = info.name();
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 200;
    if ok {
        name.to_owned()
    } else {
        "package".to_owned()
    }
}

/// The variables a package's commands see (README "Running an agent"); `dir` is
/// `SITECAST_PACKAGE_DIR`.
pub(crate) fn package_env(
    computer_id: &ComputerId,
    info: &Info,
    dir: &Path,
) -> Vec<(String, String)> {
    vec![
        ("SITECAST_COMPUTER_ID".to_owned(), computer_id.to_string()),
        ("SITECAST_PACKAGE_ID".to_owned(), info.id().to_string()),
        ("SITECAST_PACKAGE_NAME".to_owned(), info.name().to_owned()),
        (
            "SITECAST_PACKAGE_VERSION".to_owned(),
            info.version().to_owned(),
        ),
        ("SITECAST_PACKAGE_DIR".to_owned(), dir.display().to_string()),
    ]
}

/// The report of a command that ran (its exit code mapped through `success_exit_codes`,
/// its output's tail, a note if it was killed at `timeout_s`) or could not start
/// (`ERR_EXECUTE`, `what` naming the command).
pub(crate) fn command_report(
    result: Result<CommandOutcome, ActionError>,
    success_exit_codes: &[i32],
    timeout_s: u64,
    what: &str,
) -> StatusReport {
    match result {
        Ok(outcome) => StatusReport {
            code: status_of(&outcome, success_exit_codes),
            exit_code: outcome.exit_code,
            output: Some(if outcome.timed_out {
                format!("{}\n[sitecast: killed after {timeout_s} s]", outcome.output)
            } else {
                outcome.output
            }),
            fragments_done: None,
            // Filled in by `settle`.
            sources: Vec::new(),
            job: None,
        },
        Err(e) => report_with(StatusCode::ErrExecute, format!("{what}: {e}")),
    }
}

/// How an install ended.
#[derive(Debug)]
pub enum Installed {
    /// The final report to send and, for a successful `store` install, what it created.
    Report(StatusReport, Option<Manifest>),
    /// The user delayed it: nothing was unpacked or run, nothing is to be reported,
    /// and the verified fragments stay for a later cycle.
    Delayed,
}

/// Rebuilds, verifies, asks the user if the info says so, unpacks and runs.
pub(crate) async fn install(ctx: &Context, info: &Info, dir: &Path) -> Installed {
    let plan = info.plan().clone();
    let package = dir.join("package");
    if let Err(crate::space::SpaceError::Short(short)) =
        ctx.space.check(dir, "rebuilding the package", plan.size())
    {
        return failed(StatusCode::ErrOutOfSpace, short.to_string());
    }
    let (d, p) = (dir.to_owned(), package.clone());
    let count = plan.count();
    let digest = match tokio::task::spawn_blocking(move || rebuild(&d, count, &p)).await {
        Ok(Ok(digest)) => digest,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::StorageFull => {
            let _ = tokio::fs::remove_file(&package).await;
            return failed(
                StatusCode::ErrOutOfSpace,
                format!("rebuilding the package in {}: {e}", dir.display()),
            );
        }
        Ok(Err(e)) => return failed(StatusCode::ErrBuild, format!("rebuilding the package: {e}")),
        Err(e) => return failed(StatusCode::ErrBuild, format!("rebuilding the package: {e}")),
    };
    if &digest != plan.sha256() {
        return failed(
            StatusCode::ErrBadDigest,
            format!(
                "the rebuilt package's SHA-256 is {}, the signed info says {}",
                hex::encode(digest),
                hex::encode(plan.sha256())
            ),
        );
    }
    if let Some(notify) = info.notify() {
        match ctx.notifier.ask(&Notice::before(info, notify)).await {
            Answer::Continue => {}
            Answer::Abort => {
                return failed(
                    StatusCode::ErrAborted,
                    format!(
                        "the user aborted the installation when told: {}",
                        notify.text
                    ),
                )
            }
            Answer::Delay => {
                // The fragments stay; the file is rebuilt (and checked) again next time.
                let _ = tokio::fs::remove_file(&package).await;
                return Installed::Delayed;
            }
        }
    }
    let target: PathBuf = match info.action() {
        Action::Store { path } => PathBuf::from(path),
        _ => ctx
            .work
            .join(format!("{}-{}", info.id(), std::process::id())),
    };
    if let Action::Launch { .. } | Action::Execute { .. } = info.action() {
        let _ = tokio::fs::remove_dir_all(&target).await;
    }
    let manifest = if plan.size() > 0 || info.archive() != Archive::None {
        let (archive, file, t, name, limits) = (
            info.archive(),
            package.clone(),
            target.clone(),
            plain_name(info),
            unpack::UnpackLimits::for_package(plan.size(), ctx.max_unpack),
        );
        let space = ctx.space;
        let unpacked = tokio::task::spawn_blocking(move || {
            unpack::unpack(archive, &file, &t, &name, &limits, Some(space))
        })
        .await;
        match unpacked {
            Ok(Ok(unpacked)) => unpacked.manifest,
            Ok(Err(e @ unpack::UnpackError::NoSpace(_))) => {
                let _ = tokio::fs::remove_file(&package).await;
                return failed(StatusCode::ErrOutOfSpace, e.to_string());
            }
            Ok(Err(unpack::UnpackError::Io { path, source }))
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                let _ = tokio::fs::remove_file(&package).await;
                return failed(
                    StatusCode::ErrOutOfSpace,
                    format!("{}: {source}", path.display()),
                );
            }
            Ok(Err(e)) => return failed(StatusCode::ErrUnpack, e.to_string()),
            Err(e) => return failed(StatusCode::ErrUnpack, e.to_string()),
        }
    } else {
        let t = target.clone();
        match tokio::task::spawn_blocking(move || unpack::create_target(&t)).await {
            Ok(Ok(created)) => Manifest::new(&target, created),
            Ok(Err(e)) => return failed(StatusCode::ErrUnpack, e.to_string()),
            Err(e) => return failed(StatusCode::ErrUnpack, e.to_string()),
        }
    };
    let _ = tokio::fs::remove_file(&package).await;
    let env = package_env(&ctx.computer_id, info, &target);
    let timeout = Duration::from_secs(info.command_timeout_s());
    let result = match info.action() {
        Action::Store { .. } => {
            return Installed::Report(report(StatusCode::Success), Some(manifest));
        }
        Action::Launch { command } => {
            let mut recorder = ctx.journal.recorder(info.id(), JobKind::Install, timeout);
            action::launch(command, &target, timeout, &env, &mut recorder).await
        }
        Action::Execute { command } => {
            let mut recorder = ctx.journal.recorder(info.id(), JobKind::Install, timeout);
            action::execute(command, &target, timeout, &env, &mut recorder).await
        }
    };
    let status = command_report(
        result,
        info.success_exit_codes(),
        info.command_timeout_s(),
        "cannot run the package's command",
    );
    if let Err(e) = tokio::fs::remove_dir_all(&target).await {
        if status.code == StatusCode::Success {
            return failed(StatusCode::ErrClean, format!("{}: {e}", target.display()));
        }
    }
    Installed::Report(status, None)
}

fn failed(code: StatusCode, output: String) -> Installed {
    Installed::Report(report_with(code, output), None)
}
