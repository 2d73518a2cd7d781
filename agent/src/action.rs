//! Running a package's command (SPEC "Agent"): `launch` runs a program of the unpacked
//! archive with its arguments as argv, `execute` hands a command line to `/bin/sh`.
//!
//! Both run the command in its own process group with stdin closed, read stdout and stderr
//! together into a bounded tail (the report carries only "the last 4 KiB of its output", so
//! memory stays flat however much the command prints), and on timeout kill the whole group,
//! not just the direct child: installers routinely fork helpers that would otherwise outlive
//! the deployment. [`status_of`] turns the outcome into the status code a report carries.
//!
//! Whoever runs a command is told just before its process starts and once it runs
//! ([`Starting`]), so the start is on disk before the command can do anything
//! ([`crate::journal`]): a command whose start cannot be recorded does not start.
//!
//! `store` needs no command and is not handled here.

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sitecast_common::status::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// How much of a command's output a report keeps (SPEC "Formats").
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// How long output is still read once the command has exited or been killed. A process that
/// escaped the group (or a daemon the command legitimately left behind) may hold the pipes
/// open forever; the agent must not wait for it.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Spawning a freshly written program can fail with ETXTBSY when another thread forks while
/// holding a write descriptor to it (the descriptor lives in the fork until its exec). The
/// window is short, so a few quick retries make it go away.
const SPAWN_RETRIES: u32 = 5;

/// What became of a command that did run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The exit code; `None` when a signal ended the command (including our own kill on
    /// timeout).
    pub exit_code: Option<i32>,
    /// The last [`OUTPUT_TAIL_BYTES`] bytes of stdout and stderr merged in arrival order, cut
    /// at a character boundary, invalid UTF-8 replaced.
    pub output: String,
    /// The timeout expired and the process group was killed.
    pub timed_out: bool,
}

/// Told about a command's start: [`Starting::starting`] just before its process is
/// created (an error and it is not created), [`Starting::started`] once it runs.
pub trait Starting: Send {
    fn starting(&mut self) -> io::Result<()>;
    /// It runs, in process group `pgid`.
    fn started(&mut self, pgid: i32);
}

/// Why a command could not be run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The command line is not acceptable.
    #[error("bad command '{command}': {reason}")]
    BadCommand {
        command: String,
        reason: &'static str,
    },
    /// A launch command's first word does not name a regular file of the package.
    #[error("'{program}' is not a program of the package: {reason}")]
    NotInPackage {
        program: String,
        reason: &'static str,
    },
    /// Inspecting or making executable a file of the package failed.
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare { path: PathBuf, source: io::Error },
    /// The operating system refused to start the program.
    #[error("cannot start '{program}': {source}")]
    Spawn { program: String, source: io::Error },
    /// Its start could not be recorded, so it did not start.
    #[error("cannot record that '{program}' starts, so it did not: {source}")]
    Record { program: String, source: io::Error },
    /// Waiting for the started program failed.
    #[error("cannot wait for '{program}': {source}")]
    Wait { program: String, source: io::Error },
}

/// Runs a program of the package: the first word of `command` (split like a POSIX shell
/// would, but with no expansion of any kind) names a regular file inside `dir`, the remaining
/// words are its arguments, and it runs with `dir` as working directory and `env` added to
/// the agent's environment. The file is made executable first, since archives (zip in
/// particular) often lose the mode bits.
///
/// The program must be a relative path without `..` that, once symlinks are resolved, still
/// lies inside `dir`: a package may not run whatever it likes on the computer through a
/// launch action (an `execute` action is the explicit way to do that).
///
/// Cancellation: dropping the returned future kills the command's process group.
pub async fn launch(
    command: &str,
    dir: &Path,
    timeout: Duration,
    env: &[(String, String)],
    starting: &mut dyn Starting,
) -> Result<CommandOutcome, ActionError> {
    let words = shell_words::split(command).map_err(|_| ActionError::BadCommand {
        command: command.to_owned(),
        reason: "unbalanced quotes",
    })?;
    let Some((program, args)) = words.split_first() else {
        return Err(ActionError::BadCommand {
            command: command.to_owned(),
            reason: "it is empty",
        });
    };
    let path = resolve_program(command, program, dir)?;
    let mut cmd = Command::new(&path);
    cmd.args(args).current_dir(dir);
    add_env(&mut cmd, env);
    run(cmd, program, timeout, starting).await
}

/// Runs `command` through `/bin/sh -c`, so the shell expands environment variables (the
/// agent's, plus `env`) and does everything else a shell does, with `dir` as working
/// directory. An unknown program is the shell's business: it exits with 127.
///
/// Cancellation: dropping the returned future kills the command's process group.
pub async fn execute(
    command: &str,
    dir: &Path,
    timeout: Duration,
    env: &[(String, String)],
    starting: &mut dyn Starting,
) -> Result<CommandOutcome, ActionError> {
    const SHELL: &str = "/bin/sh";
    let mut cmd = Command::new(SHELL);
    cmd.arg("-c").arg(command).current_dir(dir);
    add_env(&mut cmd, env);
    run(cmd, SHELL, timeout, starting).await
}

/// The status a report carries for `outcome`. A timeout wins over whatever exit status the
/// killed command left; a command ended by a signal has no exit code to judge.
pub fn status_of(outcome: &CommandOutcome, success_exit_codes: &[i32]) -> StatusCode {
    if outcome.timed_out {
        return StatusCode::ErrTimeout;
    }
    match outcome.exit_code {
        Some(code) if success_exit_codes.contains(&code) => StatusCode::Success,
        Some(_) => StatusCode::ErrExitCode,
        None => StatusCode::ErrExecute,
    }
}

fn add_env(cmd: &mut Command, env: &[(String, String)]) {
    cmd.envs(env.iter().map(|(key, value)| (key, value)));
}

/// Checks that `program` names a regular file inside `dir` and makes it executable by its
/// owner; answers its canonical path, which is what gets run so that the file checked is the
/// file executed.
fn resolve_program(command: &str, program: &str, dir: &Path) -> Result<PathBuf, ActionError> {
    let bad = |reason| ActionError::BadCommand {
        command: command.to_owned(),
        reason,
    };
    let not_in_package = |reason| ActionError::NotInPackage {
        program: program.to_owned(),
        reason,
    };
    let relative = Path::new(program);
    let mut names_file = false;
    for component in relative.components() {
        match component {
            Component::Normal(_) => names_file = true,
            // `./setup.sh` is the usual way to write a program of the current directory.
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("the program path climbs out with '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("the program path is absolute"))
            }
        }
    }
    if !names_file {
        return Err(bad("the program path names no file"));
    }

    let root = dir.canonicalize().map_err(|source| ActionError::Prepare {
        path: dir.to_path_buf(),
        source,
    })?;
    let joined = root.join(relative);
    let resolved = match joined.canonicalize() {
        Ok(resolved) => resolved,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(not_in_package("no such file in the package"))
        }
        Err(source) => {
            return Err(ActionError::Prepare {
                path: joined,
                source,
            })
        }
    };
    if resolved == root || !resolved.starts_with(&root) {
        return Err(not_in_package("it resolves outside the package directory"));
    }
    let metadata = std::fs::metadata(&resolved).map_err(|source| ActionError::Prepare {
        path: resolved.clone(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(not_in_package("not a regular file"));
    }
    let mut permissions = metadata.permissions();
    let mode = permissions.mode();
    if mode & 0o100 == 0 {
        permissions.set_mode(mode | 0o100);
        std::fs::set_permissions(&resolved, permissions).map_err(|source| {
            ActionError::Prepare {
                path: resolved.clone(),
                source,
            }
        })?;
    }
    Ok(resolved)
}

/// The started command and its process group. Until the leader is reaped its pid cannot be
/// reused, so signalling the group by that id reaches only the command's processes; dropping
/// an unreaped group (the caller's future was dropped, or an error cut the run short) kills it.
struct Group {
    child: Child,
    pgid: Pid,
    reaped: bool,
}

impl Group {
    fn kill(&self) {
        match killpg(self.pgid, Signal::SIGKILL) {
            // Nothing left in the group: the work is already done.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pgid = %self.pgid, error = %e, "cannot kill process group"),
        }
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
        }
    }
}

async fn run(
    mut cmd: Command,
    program: &str,
    timeout: Duration,
    starting: &mut dyn Starting,
) -> Result<CommandOutcome, ActionError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Backs up `Group`'s drop: tokio then also reaps the killed child in the background.
        .kill_on_drop(true);
    starting.starting().map_err(|source| ActionError::Record {
        program: program.to_owned(),
        source,
    })?;
    let mut child = spawn(&mut cmd, program).await?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let Some(pgid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return Err(ActionError::Spawn {
            program: program.to_owned(),
            source: io::Error::other("the started process has no usable id"),
        });
    };
    starting.started(pgid);
    let mut group = Group {
        child,
        pgid: Pid::from_raw(pgid),
        reaped: false,
    };
    let wait_error = |source| ActionError::Wait {
        program: program.to_owned(),
        source,
    };

    let mut tail = Tail::new(OUTPUT_TAIL_BYTES);
    let (status, timed_out) = {
        let reading = pump(stdout, stderr, &mut tail);
        tokio::pin!(reading);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut reading_done = false;
        let (status, timed_out) = loop {
            tokio::select! {
                () = &mut reading, if !reading_done => reading_done = true,
                status = group.wait() => break (status.map_err(wait_error)?, false),
                () = &mut deadline => {
                    group.kill();
                    break (group.wait().await.map_err(wait_error)?, true);
                }
            }
        };
        if !reading_done {
            // Drains what the command wrote before it ended; gives up on pipes held open by
            // processes that outlived it.
            let _ = tokio::time::timeout(OUTPUT_GRACE, &mut reading).await;
        }
        (status, timed_out)
    };
    Ok(CommandOutcome {
        exit_code: status.code(),
        output: tail.into_string(),
        timed_out,
    })
}

async fn spawn(cmd: &mut Command, program: &str) -> Result<Child, ActionError> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e)
                if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && attempt < SPAWN_RETRIES =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
            result => {
                return result.map_err(|source| ActionError::Spawn {
                    program: program.to_owned(),
                    source,
                })
            }
        }
    }
}

/// Reads both pipes concurrently until both are closed, so a command filling one pipe while
/// we wait on the other can never block.
async fn pump(mut stdout: Option<ChildStdout>, mut stderr: Option<ChildStderr>, tail: &mut Tail) {
    let mut out_buf = [0u8; 8192];
    let mut err_buf = [0u8; 8192];
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            read = read_from(&mut stdout, &mut out_buf), if stdout.is_some() => {
                absorb(read, &out_buf, &mut stdout, tail);
            }
            read = read_from(&mut stderr, &mut err_buf), if stderr.is_some() => {
                absorb(read, &err_buf, &mut stderr, tail);
            }
        }
    }
}

async fn read_from<R: AsyncRead + Unpin>(
    stream: &mut Option<R>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match stream {
        Some(stream) => stream.read(buf).await,
        None => std::future::pending().await,
    }
}

/// A read error ends that stream like an end of file: the output only informs the report,
/// and it is not worth failing (and killing) a command that is otherwise running fine.
fn absorb<R>(read: io::Result<usize>, buf: &[u8], stream: &mut Option<R>, tail: &mut Tail) {
    match read {
        Ok(0) => *stream = None,
        Ok(n) => tail.push(buf.get(..n).unwrap_or(buf)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read command output");
            *stream = None;
        }
    }
}

/// The last `cap` bytes written to it.
struct Tail {
    bytes: VecDeque<u8>,
    cap: usize,
    /// Bytes were dropped from the front, so the first kept byte may sit inside a character.
    truncated: bool,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Tail {
            bytes: VecDeque::with_capacity(cap),
            cap,
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let keep = data.len().min(self.cap);
        let overflow = (self.bytes.len() + keep).saturating_sub(self.cap);
        if overflow > 0 || keep < data.len() {
            self.truncated = true;
        }
        self.bytes.drain(..overflow);
        self.bytes.extend(data.iter().skip(data.len() - keep));
    }

    fn into_string(self) -> String {
        let bytes = Vec::from(self.bytes);
        let start = if self.truncated {
            // A UTF-8 character has at most three continuation bytes after its first.
            bytes
                .iter()
                .take(3)
                .take_while(|&&b| b & 0b1100_0000 == 0b1000_0000)
                .count()
        } else {
            0
        };
        let text = String::from_utf8_lossy(bytes.get(start..).unwrap_or_default());
        // Each invalid byte becomes a three-byte U+FFFD, which could push binary output past
        // the size a report promises.
        let mut cut = text.len().saturating_sub(self.cap);
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.get(cut..).unwrap_or_default().to_owned()
    }
}

#[cfg(test)]
mod tests;
