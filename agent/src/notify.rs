//! Telling the computer's user about a deployment and hearing the answer: OCS's
//! notify options (the signed info's `notify` and `done_action_text`), and the
//! warning before a restart (OCO's restart timeout).
//!
//! The agent runs as a service and has no screen of its own, so it hands each
//! message to the **notifier**, a command set in `agent.toml` (`notifier = "…"`,
//! split like a shell would, without expansion) that knows how to reach whoever
//! sits at the computer (a dialog, a toast, a wall message). Without one (a
//! headless machine) the agent only logs the text and carries on.
//!
//! # The protocol
//!
//! The agent runs the notifier once per message, stdin closed, with its own
//! environment plus:
//!
//! | variable | value |
//! |---|---|
//! | `SITECAST_NOTIFY_KIND` | `before` (the action is about to run), `done` (it succeeded), `restart` (the computer is about to restart) |
//! | `SITECAST_NOTIFY_TEXT` | the text to show (may hold newlines and tabs) |
//! | `SITECAST_NOTIFY_COUNTDOWN_S` | seconds the user has to answer; `0`: no countdown |
//! | `SITECAST_NOTIFY_CAN_ABORT` | `true` or `false`: whether `abort` is an answer |
//! | `SITECAST_NOTIFY_CAN_DELAY` | `true` or `false`: whether `delay` is an answer |
//! | `SITECAST_PACKAGE_ID`, `SITECAST_PACKAGE_NAME`, `SITECAST_PACKAGE_VERSION` | the package (absent when the message is about none) |
//!
//! It answers on the first line of its stdout, then exits 0: `continue` (go on
//! now), `abort` (do not run this package: `ERR_ABORTED`) or `delay` (not now:
//! try again in a later download cycle). An empty answer is `continue`.
//!
//! Whatever goes wrong, the deployment goes on, as OCS's auto-validation does:
//! - the countdown runs out before the notifier exits: the agent kills its
//!   process group and continues (with no countdown the agent still waits at most
//!   [`UNTIMED_WAIT`]);
//! - it cannot be started, exits non-zero or is killed: logged, continue;
//! - it answers what the info does not allow (`abort` without `can_abort`, `delay`
//!   without `can_delay`) or something else: logged and ignored, continue.
//!
//! A `done` message needs no answer: the agent waits for the notifier at most
//! [`DONE_WAIT`] and ignores its output. A `restart` warning
//! ([`Notifier::warn_restart`]) allows neither abort nor delay: `continue` means
//! "restart now", and short of it the agent waits out the countdown, so the user
//! has the time to save their work even if the notifier only shows the text and
//! exits. A `restart` with countdown `0` is "restarting now": shown like a
//! `done` message, no answer awaited.
//!
//! Uninstall jobs tell the user nothing: `notify` and `done_action_text` describe
//! the package's installation, and an uninstall is the admin's decision to take
//! it away (OCS has no notify on removal either).

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use sitecast_common::info::{Info, Notify};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// With no countdown (`countdown_s = 0`, OCS's "wait for the user") the agent
/// still waits at most this long: a notifier that never answers must not hold
/// every later deployment of the computer forever.
pub const UNTIMED_WAIT: Duration = Duration::from_secs(3600);

/// How long the agent waits for a notifier showing a `done` message to exit.
pub const DONE_WAIT: Duration = Duration::from_secs(60);

/// How much of the notifier's stdout is read for the answer, and of its stderr
/// for the log; the rest is drained and dropped.
const ANSWER_BYTES: usize = 1024;
const STDERR_BYTES: usize = 1024;

/// Once the notifier has exited, how long its pipes may stay open (held by a
/// process it left behind) before the agent stops reading them.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The package's action is about to run (the info's `notify`).
    Before,
    /// The action succeeded (the info's `done_action_text`).
    Done,
    /// The computer is about to restart.
    Restart,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Before => "before",
            Kind::Done => "done",
            Kind::Restart => "restart",
        }
    }
}

/// What the deployment does after the user was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Go on (the user agreed, did not answer in time, or could not be asked).
    Continue,
    /// Do not run the package: `ERR_ABORTED`.
    Abort,
    /// Not now: the package waits for a later download cycle.
    Delay,
}

/// One message for the user.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// How long the user has to answer; zero: no countdown.
    pub countdown: Duration,
    pub can_abort: bool,
    pub can_delay: bool,
    /// The package the message is about, if any.
    pub package: Option<&'a Info>,
}

impl<'a> Notice<'a> {
    /// The info's `notify`, before `info`'s action runs.
    pub fn before(info: &'a Info, notify: &'a Notify) -> Self {
        Notice {
            kind: Kind::Before,
            text: &notify.text,
            countdown: Duration::from_secs(notify.countdown_s),
            can_abort: notify.can_abort,
            can_delay: notify.can_delay,
            package: Some(info),
        }
    }
}

/// How the notifier run went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ran {
    /// It exited 0; the first line of its stdout, trimmed.
    Answered(String),
    /// It could not start, exited non-zero or was killed by someone else.
    Failed(String),
    /// The countdown ran out first; it was killed.
    TimedOut,
}

/// What the user said, as far as the deployment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// An answer the notice allows.
    Said(Answer),
    /// No usable answer: the deployment goes on.
    Nothing,
}

/// Splits `agent.toml`'s `notifier` into the program and its arguments.
pub fn parse_command(command: &str) -> Result<Vec<String>, String> {
    let words =
        shell_words::split(command).map_err(|_| format!("'{command}' has unbalanced quotes"))?;
    if words.is_empty() {
        return Err("is empty (leave it out on a headless machine)".into());
    }
    Ok(words)
}

/// The configured notifier, or none (headless).
#[derive(Debug, Clone)]
pub struct Notifier {
    words: Option<Vec<String>>,
    untimed_wait: Duration,
    done_wait: Duration,
}

impl Notifier {
    /// From `agent.toml`'s `notifier` (see [`parse_command`]).
    pub fn new(command: Option<&str>) -> Result<Self, String> {
        Ok(Notifier {
            words: command.map(parse_command).transpose()?,
            untimed_wait: UNTIMED_WAIT,
            done_wait: DONE_WAIT,
        })
    }

    /// Whether a notifier command is configured (someone may be told).
    pub fn is_configured(&self) -> bool {
        self.words.is_some()
    }

    /// No notifier: every text is logged, every question answered `continue`.
    pub fn headless() -> Self {
        Notifier {
            words: None,
            untimed_wait: UNTIMED_WAIT,
            done_wait: DONE_WAIT,
        }
    }

    /// The same notifier with other bounds on its waits (tests do not wait an hour).
    #[cfg(test)]
    fn with_waits(self, untimed_wait: Duration, done_wait: Duration) -> Self {
        Notifier {
            untimed_wait,
            done_wait,
            ..self
        }
    }

    /// Asks the user (a `before` or `restart` notice) and answers what the
    /// deployment does: only an answer the notice allows stops or delays it.
    pub async fn ask(&self, notice: &Notice<'_>) -> Answer {
        match self.hear(notice).await {
            Heard::Said(answer) => answer,
            Heard::Nothing => Answer::Continue,
        }
    }

    /// Shows `info`'s `done_action_text`, if it has one; no answer is needed.
    pub async fn done(&self, info: &Info) {
        let Some(text) = info.done_action_text() else {
            return;
        };
        self.tell(&Notice {
            kind: Kind::Done,
            text,
            countdown: Duration::ZERO,
            can_abort: false,
            can_delay: false,
            package: Some(info),
        })
        .await;
    }

    /// Shows a notice that needs no answer, waiting for the notifier at most
    /// `done_wait` and ignoring what it says.
    async fn tell(&self, notice: &Notice<'_>) {
        let package = notice
            .package
            .map(|p| p.id().to_string())
            .unwrap_or_default();
        let (kind, text) = (notice.kind.as_str(), notice.text);
        let Some(words) = &self.words else {
            tracing::info!(%package, kind, %text, "no notifier configured; the user is not told");
            return;
        };
        match run(words, &env(notice), self.done_wait).await {
            Ran::Answered(_) => {}
            Ran::Failed(why) => {
                tracing::warn!(%package, kind, %why, "the notifier failed to show the text")
            }
            Ran::TimedOut => {
                tracing::warn!(%package, kind, wait = ?self.done_wait, "the notifier showing the text did not exit; stopped it")
            }
        }
    }

    /// Warns the user that the computer restarts in `countdown` (OCO's restart
    /// timeout), and returns when the restart may go ahead: at once if the user
    /// answers `continue`, otherwise when the countdown has run out (even if the
    /// notifier only showed the text and exited, or failed: the user may be there
    /// with work to save). A zero countdown means "restart now": the user is
    /// told (`SITECAST_NOTIFY_COUNTDOWN_S=0`) like a done text, without waiting
    /// for an answer. With no notifier configured nobody can be told, and it
    /// returns at once.
    pub async fn warn_restart(&self, text: &str, countdown: Duration, package: Option<&Info>) {
        let started = Instant::now();
        let notice = Notice {
            kind: Kind::Restart,
            text,
            countdown,
            can_abort: false,
            can_delay: false,
            package,
        };
        if self.words.is_none() {
            tracing::info!(%text, "restart: no notifier configured; the user is not told");
            return;
        }
        if countdown.is_zero() {
            // Not the untimed wait of a `before` notice: nobody is asked anything.
            self.tell(&notice).await;
            return;
        }
        if self.hear(&notice).await == Heard::Said(Answer::Continue) {
            tracing::info!("the user agreed to restart now");
            return;
        }
        match started.checked_add(countdown) {
            Some(end) => tokio::time::sleep_until(end.into()).await,
            // Only for countdowns no caller passes (restart_after caps them).
            None => tokio::time::sleep(countdown).await,
        }
    }

    async fn hear(&self, notice: &Notice<'_>) -> Heard {
        let package = notice
            .package
            .map(|p| p.id().to_string())
            .unwrap_or_default();
        let kind = notice.kind.as_str();
        let Some(words) = &self.words else {
            tracing::info!(%package, kind, text = %notice.text, "no notifier configured; the user is not asked, the deployment goes on");
            return Heard::Nothing;
        };
        let limit = if notice.countdown.is_zero() {
            self.untimed_wait
        } else {
            notice.countdown
        };
        let line = match run(words, &env(notice), limit).await {
            Ran::Answered(line) => line,
            Ran::Failed(why) => {
                tracing::warn!(%package, kind, %why, "the notifier failed; the deployment goes on");
                return Heard::Nothing;
            }
            Ran::TimedOut => {
                tracing::info!(%package, kind, ?limit, "the user did not answer in time; the deployment goes on");
                return Heard::Nothing;
            }
        };
        let heard = match line.to_ascii_lowercase().as_str() {
            "" => {
                tracing::info!(%package, kind, "the user was told; no answer, the deployment goes on");
                return Heard::Nothing;
            }
            "continue" => Answer::Continue,
            "abort" if notice.can_abort => Answer::Abort,
            "delay" if notice.can_delay => Answer::Delay,
            "abort" | "delay" => {
                tracing::warn!(%package, kind, answer = %line, "the user answered what the package does not allow; ignored, the deployment goes on");
                return Heard::Nothing;
            }
            _ => {
                tracing::warn!(%package, kind, answer = %line, "the notifier answered neither continue, abort nor delay; ignored, the deployment goes on");
                return Heard::Nothing;
            }
        };
        tracing::info!(%package, kind, answer = ?heard, "the user answered");
        Heard::Said(heard)
    }
}

/// The variables of the protocol for `notice`.
fn env(notice: &Notice<'_>) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("SITECAST_NOTIFY_KIND", notice.kind.as_str().to_owned()),
        ("SITECAST_NOTIFY_TEXT", notice.text.to_owned()),
        (
            "SITECAST_NOTIFY_COUNTDOWN_S",
            notice.countdown.as_secs().to_string(),
        ),
        ("SITECAST_NOTIFY_CAN_ABORT", notice.can_abort.to_string()),
        ("SITECAST_NOTIFY_CAN_DELAY", notice.can_delay.to_string()),
    ];
    if let Some(info) = notice.package {
        vars.push(("SITECAST_PACKAGE_ID", info.id().to_string()));
        vars.push(("SITECAST_PACKAGE_NAME", info.name().to_owned()));
        vars.push(("SITECAST_PACKAGE_VERSION", info.version().to_owned()));
    }
    vars
}

/// The package variables the agent's own environment might carry, removed when
/// a message is about no package so the notifier is not misled.
const PACKAGE_VARS: [&str; 3] = [
    "SITECAST_PACKAGE_ID",
    "SITECAST_PACKAGE_NAME",
    "SITECAST_PACKAGE_VERSION",
];

/// Runs the notifier in its own process group, for at most `limit`.
async fn run(words: &[String], env: &[(&'static str, String)], limit: Duration) -> Ran {
    let Some((program, args)) = words.split_first() else {
        return Ran::Failed("the notifier command is empty".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove(PACKAGE_VARS[0])
        .env_remove(PACKAGE_VARS[1])
        .env_remove(PACKAGE_VARS[2])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Should this future be dropped, the notifier does not outlive it.
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Ran::Failed(format!("cannot start '{program}': {e}")),
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let mut answer = Vec::new();
    let mut errors = Vec::new();
    let status = {
        let reading = async {
            tokio::join!(
                read_head(stdout, ANSWER_BYTES, &mut answer),
                read_head(stderr, STDERR_BYTES, &mut errors)
            )
        };
        tokio::pin!(reading);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let mut read_all = false;
        let status = loop {
            tokio::select! {
                _ = &mut reading, if !read_all => read_all = true,
                status = child.wait() => break status,
                () = &mut deadline => {
                    // The whole group: a script's dialog is its child.
                    if let Some(pgid) = pgid {
                        match killpg(pgid, Signal::SIGKILL) {
                            Ok(()) | Err(Errno::ESRCH) => {}
                            Err(e) => tracing::warn!(%pgid, error = %e, "cannot kill the notifier"),
                        }
                    }
                    let _ = child.wait().await;
                    return Ran::TimedOut;
                }
            }
        };
        if !read_all {
            let _ = tokio::time::timeout(PIPE_GRACE, &mut reading).await;
        }
        status
    };
    let stderr = String::from_utf8_lossy(&errors).trim().to_owned();
    match status {
        Ok(status) if status.success() => {
            let text = String::from_utf8_lossy(&answer);
            Ran::Answered(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        Ok(status) => Ran::Failed(format!("'{program}' {status}; stderr: {stderr}")),
        Err(e) => Ran::Failed(format!("cannot wait for '{program}': {e}")),
    }
}

/// Reads `stream` to its end, keeping its first `keep` bytes in `into` (the
/// rest is drained, so the notifier never blocks on a full pipe). A read error
/// ends it like an end of file: the answer is then what came before.
async fn read_head<R: AsyncRead + Unpin>(stream: Option<R>, keep: usize, into: &mut Vec<u8>) {
    let Some(mut stream) = stream else {
        return;
    };
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = keep.saturating_sub(into.len());
                into.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
