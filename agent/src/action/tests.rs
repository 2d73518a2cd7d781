//! Tests of running a package's command: argv and shell forms, the package-only
//! program rule, the output tail, timeouts and dropped futures killing the whole
//! process group, and the start being recorded before the process exists.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use tempfile::TempDir;

use super::*;

const LONG: Duration = Duration::from_secs(60);

/// What a command's runner was told of its start.
#[derive(Default)]
struct Seen {
    starting: u32,
    pgid: Option<i32>,
    refuse: bool,
}

impl Starting for Seen {
    fn starting(&mut self) -> io::Result<()> {
        self.starting += 1;
        if self.refuse {
            return Err(io::Error::other("the disk is full"));
        }
        Ok(())
    }
    fn started(&mut self, pgid: i32) {
        assert_eq!(self.starting, 1, "told it starts before it runs");
        self.pgid = Some(pgid);
    }
}

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
    execute(command, dir.path(), LONG, &[], &mut Seen::default())
        .await
        .unwrap()
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
        &mut Seen::default(),
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
    let out = launch("./code.sh 4", dir.path(), LONG, &[], &mut Seen::default())
        .await
        .unwrap();
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
    let out = launch("link.sh", dir.path(), LONG, &vars, &mut Seen::default())
        .await
        .unwrap();
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
        let err = launch(command, &pkg, LONG, &[], &mut Seen::default())
            .await
            .unwrap_err();
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
        let err = launch(command, &pkg, LONG, &[], &mut Seen::default())
            .await
            .unwrap_err();
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
        &mut Seen::default(),
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
    // after the other would deadlock here, and the command would never end. The two pipes
    // are read as they fill, so which of stderr's last chunk and stdout's "last" comes
    // first is up to the scheduler.
    let out = sh("echo first; seq 1 200000 >&2; echo last").await;
    assert!(!out.timed_out);
    assert_eq!(out.exit_code, Some(0));
    assert!(out.output.contains("199999\n200000\n"), "{}", out.output);
    assert!(
        out.output.ends_with("200000\nlast\n") || out.output.ends_with("200000\n"),
        "{}",
        out.output
    );
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

/// The start is recorded before the process exists, and its group once it runs;
/// a start that cannot be recorded is no start at all.
#[tokio::test]
async fn a_command_whose_start_cannot_be_recorded_never_runs() {
    let dir = TempDir::new().unwrap();
    let mut seen = Seen::default();
    let out = execute("echo $$", dir.path(), LONG, &[], &mut seen)
        .await
        .unwrap();
    assert_eq!(seen.starting, 1);
    assert_eq!(Some(out.output.trim().parse().unwrap()), seen.pgid);

    let mut refusing = Seen {
        refuse: true,
        ..Seen::default()
    };
    let err = execute("touch ran", dir.path(), LONG, &[], &mut refusing)
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::Record { .. }), "{err}");
    assert!(err.to_string().contains("the disk is full"), "{err}");
    assert!(!dir.path().join("ran").exists(), "the command ran anyway");
    assert_eq!(refusing.pgid, None);
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
        &mut Seen::default(),
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
        &mut Seen::default(),
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
    let mut seen = Seen::default();
    let mut run = Box::pin(execute(
        r#"exec 3>"$FIFO"; sleep 30 & echo ready >&3; sleep 30"#,
        dir.path(),
        LONG,
        &vars,
        &mut seen,
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
