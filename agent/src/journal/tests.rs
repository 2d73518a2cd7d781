//! Tests of the journal: an entry from before the start to central's taking the
//! report, and recovery waiting for a previous run's command, killing it at its
//! deadline, and never mistaking another boot's process group for it.
#![allow(clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::*;
use crate::context::report_with;

fn id(text: &str) -> PackageId {
    text.parse().unwrap()
}

fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path().join("running"));
    (dir, journal)
}

/// A process leading its own group, as the agent starts commands.
fn group(script: &str) -> Child {
    Command::new("/bin/sh")
        .args(["-c", script])
        .process_group(0)
        .spawn()
        .unwrap()
}

/// The entry of a command that started at `started_at` in group `pgid`, as a run that
/// was then killed left it.
fn left_behind(journal: &Journal, package: &str, pgid: Option<i32>, deadline: Timestamp) {
    let entry = Entry {
        package: id(package),
        kind: JobKind::Install,
        started_at: crate::clock::now(),
        deadline,
        boot_id: boot_id(),
        pgid,
        report: None,
    };
    journal.write(&entry).unwrap();
}

fn in_secs(secs: i64) -> Timestamp {
    crate::clock::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap()
}

#[test]
fn an_entry_lives_from_before_the_start_until_central_took_the_report() {
    let (_dir, journal) = journal();
    let p = id("app-1.0-a1");
    assert_eq!(journal.get(&p, JobKind::Install), None);
    let mut recorder = journal.recorder(&p, JobKind::Install, Duration::from_secs(60));
    recorder.starting().unwrap();
    let entry = journal.get(&p, JobKind::Install).unwrap();
    assert_eq!(entry.pgid, None);
    assert!(entry.deadline > entry.started_at);
    recorder.started(4242);
    assert_eq!(journal.get(&p, JobKind::Install).unwrap().pgid, Some(4242));
    // The uninstall job of the same package has its own entry.
    assert_eq!(journal.get(&p, JobKind::Uninstall), None);

    let report = report_with(StatusCode::ErrExitCode, "exit 3".into());
    journal.finish(&p, JobKind::Install, &report).unwrap();
    assert_eq!(
        journal.get(&p, JobKind::Install).unwrap().report,
        Some(report)
    );
    journal.settle(&p, JobKind::Install);
    assert_eq!(journal.get(&p, JobKind::Install), None);
    // A job whose command never started has nothing to finish or settle.
    journal
        .finish(
            &id("other-1"),
            JobKind::Install,
            &report_with(StatusCode::ErrUnpack, String::new()),
        )
        .unwrap();
    assert_eq!(journal.get(&id("other-1"), JobKind::Install), None);
}

#[tokio::test]
async fn a_finished_entry_is_recovered_with_its_own_report() {
    let (_dir, journal) = journal();
    let p = id("app-1.0-a1");
    let mut recorder = journal.recorder(&p, JobKind::Uninstall, Duration::from_secs(60));
    recorder.starting().unwrap();
    let report = report_with(StatusCode::Success, "removed".into());
    journal.finish(&p, JobKind::Uninstall, &report).unwrap();
    let recovered = journal.recover().await;
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].kind, JobKind::Uninstall);
    assert_eq!(recovered[0].report, Some(report));
}

#[tokio::test]
async fn a_command_that_never_got_a_process_is_interrupted_at_once() {
    let (_dir, journal) = journal();
    left_behind(&journal, "app-1.0-a1", None, in_secs(3600));
    let recovered = journal.recover().await;
    let report = recovered[0].report.clone().unwrap();
    assert_eq!(report.code, StatusCode::ErrInterrupted);
    let output = report.output.unwrap();
    assert!(output.contains("started at"), "{output}");
    assert!(
        output.contains("not run again unless an admin retries"),
        "{output}"
    );
    // Written down: a second recovery sends the same report.
    let again = journal.recover().await;
    assert_eq!(
        again[0].report.as_ref().unwrap().code,
        StatusCode::ErrInterrupted
    );
}

/// The agent alone was killed: its command still runs, and is waited for, not run
/// again beside it.
#[tokio::test]
async fn a_previous_runs_command_that_still_runs_is_waited_for() {
    let (dir, journal) = journal();
    let gate = dir.path().join("gate");
    let mut child = group(&format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done",
        gate.display()
    ));
    let pgid = i32::try_from(child.id()).unwrap();
    left_behind(&journal, "app-1.0-a1", Some(pgid), in_secs(3600));
    let reaper = std::thread::spawn(move || child.wait().unwrap());
    let recovering = tokio::spawn({
        let journal = journal.clone();
        async move { journal.recover().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!recovering.is_finished(), "it did not wait for the command");
    std::fs::write(&gate, b"").unwrap();
    let recovered = tokio::time::timeout(Duration::from_secs(30), recovering)
        .await
        .unwrap()
        .unwrap();
    assert!(
        reaper.join().unwrap().success(),
        "the command ended by itself"
    );
    let output = recovered[0].report.clone().unwrap().output.unwrap();
    assert!(output.contains("ended while this run waited"), "{output}");
}

/// Past its deadline, a previous run's command is killed, whole group included.
#[tokio::test]
async fn a_previous_runs_command_past_its_deadline_is_killed() {
    let (_dir, journal) = journal();
    let mut child = group("sleep 600 & sleep 600");
    let pgid = i32::try_from(child.id()).unwrap();
    left_behind(&journal, "app-1.0-a1", Some(pgid), in_secs(-1));
    let reaper = std::thread::spawn(move || child.wait().unwrap());
    let recovered = tokio::time::timeout(Duration::from_secs(30), journal.recover())
        .await
        .unwrap();
    assert!(!reaper.join().unwrap().success(), "it was killed");
    assert!(!group_alive(pgid), "the backgrounded sleep was killed too");
    let output = recovered[0].report.clone().unwrap().output.unwrap();
    assert!(output.contains("was killed"), "{output}");
}

/// A group id recorded in another boot names nothing of ours any more.
#[tokio::test]
async fn a_group_of_another_boot_is_not_waited_for() {
    let (_dir, journal) = journal();
    let mut child = group("sleep 600");
    let pgid = i32::try_from(child.id()).unwrap();
    let entry = Entry {
        package: id("app-1.0-a1"),
        kind: JobKind::Install,
        started_at: crate::clock::now(),
        deadline: in_secs(3600),
        boot_id: Some("another-boot".into()),
        pgid: Some(pgid),
        report: None,
    };
    journal.write(&entry).unwrap();
    let recovered = tokio::time::timeout(Duration::from_secs(5), journal.recover())
        .await
        .unwrap();
    let output = recovered[0].report.clone().unwrap().output.unwrap();
    assert!(output.contains("the computer restarted"), "{output}");
    assert!(group_alive(pgid), "somebody else's process is left alone");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn an_unreadable_entry_still_names_its_job_and_is_interrupted() {
    let (_dir, journal) = journal();
    std::fs::create_dir_all(&journal.dir).unwrap();
    std::fs::write(journal.dir.join("app-1.0-a1+uninstall.json"), b"{torn").unwrap();
    std::fs::write(journal.dir.join("not a package.json"), b"{}").unwrap();
    let recovered = journal.recover().await;
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].package, id("app-1.0-a1"));
    assert_eq!(recovered[0].kind, JobKind::Uninstall);
    assert_eq!(
        recovered[0].report.as_ref().unwrap().code,
        StatusCode::ErrInterrupted
    );
}

#[test]
fn proc_stat_is_read_after_the_command_name() {
    assert!(runs_in_group("12 (sh) S 1 12 12 0 -1", 12));
    assert!(runs_in_group("13 (a) b) (c) R 1 12 12 0", 12));
    assert!(
        !runs_in_group("14 (sh) Z 1 12 12 0", 12),
        "a zombie does not run"
    );
    assert!(!runs_in_group("15 (sh) S 1 99 99 0", 12));
    assert!(!runs_in_group("garbage", 12));
}
