//! The notifier protocol against real notifier scripts: the answers, what the
//! environment tells the notifier, and every way the deployment goes on anyway
//! (countdown run out, failures, answers the package does not allow, no notifier).

use std::path::{Path, PathBuf};

use sitecast_common::fragment::plan_reader;
use sitecast_common::info::{ActionDoc, InfoDoc, NotifyDoc};

use super::*;

fn info(notify: Option<NotifyDoc>, done: Option<&str>) -> Info {
    let plan = plan_reader(&b"payload"[..], 4).unwrap();
    Info::try_from(InfoDoc {
        schema: 1,
        id: "firefox-128-a1".into(),
        name: "firefox".into(),
        version: "128.0".into(),
        os: "any".into(),
        priority: 5,
        action: ActionDoc::Execute {
            command: "true".into(),
        },
        archive: "none".into(),
        size: plan.size(),
        sha256: hex::encode(plan.sha256()),
        fragment_size: 4,
        fragments: plan.fragments().iter().map(hex::encode).collect(),
        success_exit_codes: vec![0],
        command_timeout_s: 60,
        notify,
        done_action_text: done.map(str::to_owned),
        supersedes: None,
        uninstall: None,
        issued_at: "2026-11-21T08:00:00Z".into(),
        restart: false,
    })
    .unwrap()
}

fn notify(countdown_s: u64, can_abort: bool, can_delay: bool) -> NotifyDoc {
    NotifyDoc {
        text: "Firefox is updated.\nSave your work.".into(),
        countdown_s,
        can_abort,
        can_delay,
    }
}

/// A notifier script in `dir` running `body` after logging what it was told to
/// `dir/log`; its command line.
/// The bound tests put on a notifier that never answers: well under the 30 s
/// they allow, and long enough for `/bin/sh` to have written its log on a busy
/// machine before it is killed.
const SHORT_WAIT: Duration = Duration::from_secs(10);

fn script(dir: &Path, body: &str) -> String {
    let log = dir.join("log");
    let path = dir.join("notifier.sh");
    let text = format!(
        "#!/bin/sh\n\
         {{ echo \"kind=$SITECAST_NOTIFY_KIND\"; echo \"text=$SITECAST_NOTIFY_TEXT\"; \
         echo \"countdown=$SITECAST_NOTIFY_COUNTDOWN_S\"; echo \"abort=$SITECAST_NOTIFY_CAN_ABORT\"; \
         echo \"delay=$SITECAST_NOTIFY_CAN_DELAY\"; echo \"id=${{SITECAST_PACKAGE_ID-none}}\"; \
         echo \"name=${{SITECAST_PACKAGE_NAME-none}}\"; echo \"version=${{SITECAST_PACKAGE_VERSION-none}}\"; }} >> '{}'\n\
         {body}\n",
        log.display()
    );
    std::fs::write(&path, text).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    format!("'{}'", path.display())
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

async fn ask_with(body: &str, notify: NotifyDoc) -> (Answer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let notifier = Notifier::new(Some(&script(tmp.path(), body))).unwrap();
    let info = info(Some(notify), None);
    let answer = notifier
        .ask(&Notice::before(&info, info.notify().unwrap()))
        .await;
    (answer, tmp)
}

#[tokio::test]
async fn the_user_answers_continue_abort_or_delay() {
    for (body, expected) in [
        ("echo continue", Answer::Continue),
        ("echo abort", Answer::Abort),
        ("echo delay", Answer::Delay),
        // The first line counts, in any case, blanks trimmed.
        ("printf '  Delay \\nabort\\n'", Answer::Delay),
        // No answer: the user saw the text; go on.
        ("true", Answer::Continue),
    ] {
        let (answer, tmp) = ask_with(body, notify(60, true, true)).await;
        assert_eq!(answer, expected, "{body}");
        assert!(log(tmp.path()).contains("kind=before"), "{body}");
    }
}

#[tokio::test]
async fn the_notifier_is_told_everything_through_its_environment() {
    let (answer, tmp) = ask_with("echo continue", notify(300, true, false)).await;
    assert_eq!(answer, Answer::Continue);
    assert_eq!(
        log(tmp.path()),
        "kind=before\ntext=Firefox is updated.\nSave your work.\ncountdown=300\n\
         abort=true\ndelay=false\nid=firefox-128-a1\nname=firefox\nversion=128.0\n"
    );
}

#[tokio::test]
async fn an_answer_the_package_does_not_allow_is_ignored() {
    for (body, notify) in [
        ("echo abort", notify(60, false, true)),
        ("echo delay", notify(60, true, false)),
        ("echo later", notify(60, true, true)),
    ] {
        let (answer, _tmp) = ask_with(body, notify.clone()).await;
        assert_eq!(answer, Answer::Continue, "{body} with {notify:?}");
    }
}

/// The pid written to `file` by the notifier, once it is there.
fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Gone, or a zombie nobody reaped yet: either way it no longer runs.
fn stopped(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn wait_stopped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stopped(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_countdown_running_out_continues_and_stops_the_notifier() {
    let tmp = tempfile::tempdir().unwrap();
    let pids: PathBuf = tmp.path().join("dialog.pid");
    // The "dialog" is the script's child: the whole group goes.
    let body = format!(
        "sleep 600 & echo $! > '{}'; wait $!; echo abort",
        pids.display()
    );
    let notifier = Notifier::new(Some(&script(tmp.path(), &body))).unwrap();
    // Long enough for the script to start its dialog on a busy machine.
    let info = info(Some(notify(3, true, true)), None);
    let started = Instant::now();
    let answer = notifier
        .ask(&Notice::before(&info, info.notify().unwrap()))
        .await;
    let took = started.elapsed();
    assert_eq!(answer, Answer::Continue);
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    wait_stopped(pid_in(&pids)).await;
}

#[tokio::test]
async fn without_a_countdown_the_agent_still_waits_only_so_long() {
    let tmp = tempfile::tempdir().unwrap();
    let notifier = Notifier::new(Some(&script(tmp.path(), "sleep 600; echo abort")))
        .unwrap()
        .with_waits(SHORT_WAIT, DONE_WAIT);
    let info = info(Some(notify(0, true, true)), None);
    let started = Instant::now();
    let answer = notifier
        .ask(&Notice::before(&info, info.notify().unwrap()))
        .await;
    assert_eq!(answer, Answer::Continue);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(log(tmp.path()).contains("countdown=0\n"));
}

#[tokio::test]
async fn a_failing_notifier_does_not_stop_the_deployment() {
    // It said abort, but exited non-zero: not an answer.
    let (answer, tmp) = ask_with("echo abort; echo oops >&2; exit 3", notify(60, true, true)).await;
    assert_eq!(answer, Answer::Continue);
    assert!(log(tmp.path()).contains("kind=before"));
    // Killed by a signal.
    let (answer, _tmp) = ask_with("echo delay; kill -9 $$", notify(60, true, true)).await;
    assert_eq!(answer, Answer::Continue);
    // Cannot be started at all.
    let notifier = Notifier::new(Some("/nonexistent/sitecast-notifier --ask")).unwrap();
    let info = info(Some(notify(60, true, true)), None);
    let answer = notifier
        .ask(&Notice::before(&info, info.notify().unwrap()))
        .await;
    assert_eq!(answer, Answer::Continue);
}

#[tokio::test]
async fn a_headless_machine_continues() {
    let info = info(Some(notify(60, true, true)), Some("done"));
    for notifier in [Notifier::headless(), Notifier::new(None).unwrap()] {
        let answer = notifier
            .ask(&Notice::before(&info, info.notify().unwrap()))
            .await;
        assert_eq!(answer, Answer::Continue);
        notifier.done(&info).await;
        let started = Instant::now();
        notifier
            .warn_restart("Restarting", Duration::from_secs(600), Some(&info))
            .await;
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn bad_notifier_commands_are_refused() {
    assert!(parse_command("tell 'user").unwrap_err().contains("quotes"));
    assert!(parse_command("   ").unwrap_err().contains("empty"));
    assert_eq!(
        parse_command("/usr/bin/tell-user --title 'Sitecast agent'").unwrap(),
        ["/usr/bin/tell-user", "--title", "Sitecast agent"]
    );
}

#[tokio::test]
async fn the_done_text_is_shown_without_waiting_for_an_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let notifier = Notifier::new(Some(&script(tmp.path(), "sleep 600")))
        .unwrap()
        .with_waits(UNTIMED_WAIT, SHORT_WAIT);
    let started = Instant::now();
    notifier
        .done(&info(None, Some("Firefox 128 is installed.")))
        .await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let told = log(tmp.path());
    assert!(
        told.contains("kind=done\ntext=Firefox 128 is installed.\ncountdown=0\n"),
        "{told}"
    );
    // A package without a done text tells nothing.
    std::fs::remove_file(tmp.path().join("log")).unwrap();
    notifier.done(&info(None, None)).await;
    assert_eq!(log(tmp.path()), "");
}

#[tokio::test]
async fn a_restart_warning_waits_out_the_countdown_unless_the_user_agrees() {
    let countdown = Duration::from_secs(1);
    // Shows the text and exits at once (a toast): the user still has the countdown.
    let tmp = tempfile::tempdir().unwrap();
    let notifier = Notifier::new(Some(&script(tmp.path(), "true"))).unwrap();
    let started = Instant::now();
    notifier
        .warn_restart("Restart in 1s", countdown, None)
        .await;
    assert!(started.elapsed() >= countdown);
    assert_eq!(
        log(tmp.path()),
        "kind=restart\ntext=Restart in 1s\ncountdown=1\nabort=false\ndelay=false\n\
         id=none\nname=none\nversion=none\n"
    );
    // Abort is no answer to a restart: it still waits.
    let tmp = tempfile::tempdir().unwrap();
    let notifier = Notifier::new(Some(&script(tmp.path(), "echo abort"))).unwrap();
    let started = Instant::now();
    notifier.warn_restart("Restart", countdown, None).await;
    assert!(started.elapsed() >= countdown);
    // "Restart now".
    let tmp = tempfile::tempdir().unwrap();
    let notifier = Notifier::new(Some(&script(tmp.path(), "echo continue"))).unwrap();
    let started = Instant::now();
    notifier
        .warn_restart("Restart", Duration::from_secs(600), None)
        .await;
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A restart timeout of zero is "restart now": the user is told, and a
/// notifier that waits for the user (a dialog) does not hold the restart for
/// the untimed hour.
#[tokio::test]
async fn a_zero_restart_timeout_tells_the_user_and_does_not_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let notifier = Notifier::new(Some(&script(tmp.path(), "sleep 600")))
        .unwrap()
        .with_waits(UNTIMED_WAIT, SHORT_WAIT);
    tokio::time::timeout(
        Duration::from_secs(60),
        notifier.warn_restart("Restarting now", Duration::ZERO, None),
    )
    .await
    .expect("a zero restart timeout waited for the user");
    assert!(
        log(tmp.path()).starts_with("kind=restart\ntext=Restarting now\ncountdown=0\n"),
        "{}",
        log(tmp.path())
    );
}
