//! Running a package's command (SPEC "Agent"): `launch` runs a program of the unpacked
//! archive with its arguments as argv, `execute` hands a command line to `/bin/sh`.
//!
//! Both run the command in its own process group with stdin closed, read stdout and stderr
//! together into a bounded tail (the report carries only "the last 4 KiB of its output", so
//! memory stays flat however much the command prints), and on timeout kill the whole group,
//! not just the direct child: installers routinely fork helpers that would otherwise outlive
//! the deployment. [`status_of`] turns the outcome into the status code a report carries.
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
    run(cmd, program, timeout).await
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
) -> Result<CommandOutcome, ActionError> {
    const SHELL: &str = "/bin/sh";
    let mut cmd = Command::new(SHELL);
    cmd.arg("-c").arg(command).current_dir(dir);
    add_env(&mut cmd, env);
    run(cmd, SHELL, timeout).await
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
) -> Result<CommandOutcome, ActionError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Backs up `Group`'s drop: tokio then also reaps the killed child in the background.
        .kill_on_drop(true);
    let mut child = spawn(&mut cmd, program).await?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let Some(pgid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return Err(ActionError::Spawn {
            program: program.to_owned(),
            source: io::Error::other("the started process has no usable id"),
        });
    };
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
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant;

    use tempfile::TempDir;

    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn script(dir: &Path, name: &str, body: &str) {
        // Written without the execute bit: launch must add it, as after a zip unpack.
        std::fs::write(dir.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    async fn sh(command: &str) -> CommandOutcome {
        let dir = TempDir::new().unwrap();
        execute(command, dir.path(), LONG, &[]).await.unwrap()
    }

    #[tokio::test]
    async fn launch_runs_program_of_package_with_argv_in_its_directory() {
        let dir = TempDir::new().unwrap();
        script(dir.path(), "run.sh", r#"printf '%s|' "$@"; pwd -P; exit 3"#);
        let out = launch(
            r#"run.sh 'a b' '$(rm -rf /)' $HOME ;"#,
            dir.path(),
            LONG,
            &[],
        )
        .await
        .unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        // No shell anywhere: substitutions, variables and `;` reach the program verbatim.
        assert_eq!(
            out.output,
            format!("a b|$(rm -rf /)|$HOME|;|{}\n", cwd.display())
        );
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.timed_out);
        assert_eq!(status_of(&out, &[0, 3]), StatusCode::Success);
        assert_eq!(status_of(&out, &[0]), StatusCode::ErrExitCode);
        let mode = std::fs::metadata(dir.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o100, 0o100);
    }

    #[tokio::test]
    async fn launch_exit_code_outside_success_codes_is_err_exit_code() {
        let dir = TempDir::new().unwrap();
        script(dir.path(), "code.sh", r#"exit "$1""#);
        let out = launch("./code.sh 4", dir.path(), LONG, &[]).await.unwrap();
        assert_eq!(out.exit_code, Some(4));
        assert_eq!(status_of(&out, &[0, 3]), StatusCode::ErrExitCode);
    }

    #[tokio::test]
    async fn launch_adds_env_and_allows_symlink_inside_package() {
        let dir = TempDir::new().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        script(
            &dir.path().join("bin"),
            "real.sh",
            r#"echo "id=$SITECAST_PACKAGE_ID""#,
        );
        std::os::unix::fs::symlink("bin/real.sh", dir.path().join("link.sh")).unwrap();
        let vars = env(&[("SITECAST_PACKAGE_ID", "pkg-42")]);
        let out = launch("link.sh", dir.path(), LONG, &vars).await.unwrap();
        assert_eq!(out.output, "id=pkg-42\n");
        assert_eq!(out.exit_code, Some(0));
    }

    #[tokio::test]
    async fn launch_refuses_programs_outside_the_package() {
        let outside = TempDir::new().unwrap();
        script(outside.path(), "evil.sh", "echo evil");
        let dir = TempDir::new().unwrap();
        let pkg = dir.path().join("pkg");
        std::fs::create_dir(&pkg).unwrap();
        script(dir.path(), "x", "echo sibling");
        std::fs::create_dir(pkg.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil.sh"), pkg.join("evil.sh")).unwrap();
        std::os::unix::fs::symlink(outside.path(), pkg.join("out")).unwrap();

        for (command, reason) in [
            ("../x", "the program path climbs out with '..'"),
            ("sub/../../x", "the program path climbs out with '..'"),
            ("/bin/sh -c 'echo hi'", "the program path is absolute"),
            ("", "it is empty"),
            ("   ", "it is empty"),
            (".", "the program path names no file"),
            ("run.sh 'open", "unbalanced quotes"),
        ] {
            let err = launch(command, &pkg, LONG, &[]).await.unwrap_err();
            assert!(
                matches!(&err, ActionError::BadCommand { command: c, reason: r } if c == command && *r == reason),
                "{command}: {err:?}"
            );
        }
        for (command, reason) in [
            ("missing.sh", "no such file in the package"),
            ("sub", "not a regular file"),
            ("evil.sh", "it resolves outside the package directory"),
            ("out/evil.sh", "it resolves outside the package directory"),
        ] {
            let err = launch(command, &pkg, LONG, &[]).await.unwrap_err();
            assert!(
                matches!(&err, ActionError::NotInPackage { program, reason: r } if program == command && *r == reason),
                "{command}: {err:?}"
            );
        }
        // Refused before anything was touched.
        let mode = std::fs::metadata(outside.path().join("evil.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o100, 0);
    }

    #[tokio::test]
    async fn execute_expands_environment_variables() {
        let dir = TempDir::new().unwrap();
        let vars = env(&[("SITECAST_PACKAGE_ID", "pkg-7")]);
        let out = execute(
            r#"echo "$HOME|$SITECAST_PACKAGE_ID"; pwd -P"#,
            dir.path(),
            LONG,
            &vars,
        )
        .await
        .unwrap();
        let home = std::env::var("HOME").unwrap_or_default();
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(out.output, format!("{home}|pkg-7\n{}\n", cwd.display()));
        assert_eq!(status_of(&out, &[0]), StatusCode::Success);
    }

    #[tokio::test]
    async fn output_keeps_exactly_the_last_4096_bytes() {
        let out = sh("seq 1 100000").await;
        let full: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
        assert_eq!(out.output.len(), OUTPUT_TAIL_BYTES);
        assert_eq!(out.output, full[full.len() - OUTPUT_TAIL_BYTES..]);
        assert_eq!(out.exit_code, Some(0));
    }

    #[tokio::test]
    async fn stderr_is_captured_and_read_alongside_stdout() {
        // Far more than a pipe buffer on stderr before stdout closes: reading the pipes one
        // after the other would deadlock here.
        let out = sh("echo first; seq 1 200000 >&2; echo last").await;
        assert!(
            out.output.ends_with("199999\n200000\nlast\n"),
            "{}",
            out.output
        );
        assert_eq!(out.exit_code, Some(0));
        let out = sh("echo oops >&2; exit 1").await;
        assert_eq!(out.output, "oops\n");
        assert_eq!(status_of(&out, &[0]), StatusCode::ErrExitCode);
    }

    #[tokio::test]
    async fn stdin_is_closed() {
        let out = sh("cat; echo ok").await;
        assert_eq!(out.output, "ok\n");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn command_leads_its_own_process_group() {
        let out = sh(r#"test "$(cut -d' ' -f5 /proc/$$/stat)" = "$$""#).await;
        assert_eq!(out.exit_code, Some(0));
    }

    #[tokio::test]
    async fn timeout_kills_the_command_and_keeps_its_output() {
        let dir = TempDir::new().unwrap();
        let started = Instant::now();
        let out = execute(
            "echo started; sleep 30",
            dir.path(),
            Duration::from_secs(1),
            &[],
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(out.timed_out);
        assert_eq!(out.output, "started\n");
        assert_eq!(out.exit_code, None);
        assert_eq!(status_of(&out, &[0]), StatusCode::ErrTimeout);
    }

    #[tokio::test]
    async fn timeout_kills_backgrounded_grandchildren_too() {
        let dir = TempDir::new().unwrap();
        let started = Instant::now();
        let out = execute(
            "sleep 30 & echo $! > bg.pid; sleep 30",
            dir.path(),
            Duration::from_secs(1),
            &[],
        )
        .await
        .unwrap();
        // The background sleep holds the pipes: the grace period alone would let us return
        // before it ends, so also check that it is dead, not merely abandoned.
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(status_of(&out, &[0]), StatusCode::ErrTimeout);
        let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
        // SIGKILL is delivered asynchronously: wait (with a deadline) for it to land.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_dead(pid.trim()) {
            assert!(Instant::now() < deadline, "background sleep {pid} survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Gone, or a zombie waiting for init to reap it.
    #[cfg(target_os = "linux")]
    fn is_dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => {
                let state = stat.rsplit_once(')').unwrap().1.trim_start();
                state.starts_with('Z') || state.starts_with('X')
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn is_dead(_pid: &str) -> bool {
        true
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_process_group() {
        let dir = TempDir::new().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let vars = env(&[("FIFO", fifo.to_str().unwrap())]);
        // Every process of the group holds the FIFO open, so its reader sees the end of file
        // exactly when the whole group is dead; "ready" comes once the background sleep exists.
        let mut run = Box::pin(execute(
            r#"exec 3>"$FIFO"; sleep 30 & echo ready >&3; sleep 30"#,
            dir.path(),
            LONG,
            &vars,
        ));
        let mut reader = tokio::select! {
            file = tokio::fs::File::open(&fifo) => file.unwrap(),
            out = &mut run => panic!("the command ended early: {out:?}"),
        };
        let mut ready = [0u8; 6];
        reader.read_exact(&mut ready).await.unwrap();
        assert_eq!(&ready, b"ready\n");
        drop(run);
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut rest))
            .await
            .expect("the group outlived the dropped future")
            .unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn grandchild_holding_the_pipes_after_exit_does_not_hold_the_agent() {
        let started = Instant::now();
        let out = sh("sleep 15 & echo done").await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(out.output, "done\n");
        assert_eq!(status_of(&out, &[0]), StatusCode::Success);
    }

    #[tokio::test]
    async fn unknown_program_in_execute_is_exit_127() {
        let out = sh("sitecast-no-such-program-anywhere").await;
        assert_eq!(out.exit_code, Some(127));
        assert!(out.output.contains("sitecast-no-such-program-anywhere"));
        assert_eq!(status_of(&out, &[0]), StatusCode::ErrExitCode);
    }

    #[tokio::test]
    async fn command_killed_by_a_signal_is_err_execute() {
        let out = sh("kill -9 $$").await;
        assert_eq!(out.exit_code, None);
        assert!(!out.timed_out);
        assert_eq!(status_of(&out, &[0]), StatusCode::ErrExecute);
    }

    #[test]
    fn status_of_prefers_timeout_over_exit_code() {
        let out = CommandOutcome {
            exit_code: Some(0),
            output: String::new(),
            timed_out: true,
        };
        assert_eq!(status_of(&out, &[0]), StatusCode::ErrTimeout);
    }

    #[test]
    fn tail_cuts_at_a_character_boundary() {
        let mut tail = Tail::new(OUTPUT_TAIL_BYTES);
        // 6001 bytes: the last 4096 start on the second byte of an 'é'.
        for _ in 0..3000 {
            tail.push("é".as_bytes());
        }
        tail.push(b"x");
        let text = tail.into_string();
        assert_eq!(text, format!("{}x", "é".repeat(2047)));
    }

    #[test]
    fn tail_stays_within_bounds_on_invalid_utf8() {
        let mut tail = Tail::new(OUTPUT_TAIL_BYTES);
        tail.push(&[0xff; 10_000]);
        let text = tail.into_string();
        assert!(text.len() <= OUTPUT_TAIL_BYTES);
        assert_eq!(text.chars().count(), OUTPUT_TAIL_BYTES / 3);
        assert!(text.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
    }

    #[test]
    fn short_output_is_kept_whole() {
        let mut tail = Tail::new(OUTPUT_TAIL_BYTES);
        tail.push(b"hello ");
        tail.push("wörld\n".as_bytes());
        assert_eq!(tail.into_string(), "hello wörld\n");
    }

    #[test]
    fn one_huge_write_keeps_its_end() {
        let mut tail = Tail::new(8);
        tail.push(b"abc");
        tail.push(b"0123456789");
        assert_eq!(tail.into_string(), "23456789");
    }
}
