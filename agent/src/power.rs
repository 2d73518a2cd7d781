//! The computer's power (OCO): the MAC addresses central needs for
//! Wake-on-LAN, shutting down when central says so (a job container woke the
//! computer and its jobs are done), and restarting after a package that needs
//! it, once the container's restart timeout has passed.
//!
//! Both go through `agent.toml`'s `power_command`, invoked as `<command>
//! shutdown` or `<command> restart` (split like a POSIX shell, run without
//! one). Without a `power_command` the agent only logs what it would have done,
//! so a developer's machine is never switched off by a test deployment.
//!
//! Every poll also says how long the computer has been on ([`Uptime`]), so
//! central can tell a computer it woke from one that was on all along (only
//! the former may be shut down). A restart the agent asked for does not count
//! as being off: the boot that follows it continues the time before it
//! (`DIR/restart.json`, [`on_for`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::info::Info;
use sitecast_common::power::MAX_RESTART_TIMEOUT;
use sitecast_common::power::{MacAddr, PowerAction};
use tokio::process::Command;

use crate::error::AgentError;
use crate::notify::Notifier;
use sitecast_io::write_atomically;

/// Where Linux lists network interfaces, each with its `address`.
const SYS_CLASS_NET: &str = "/sys/class/net";
/// Linux's seconds since boot (then the idle seconds).
const PROC_UPTIME: &str = "/proc/uptime";
/// A power command that takes longer than this is left to itself.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long after the agent asked for a restart a boot still is that restart:
/// shutting down and booting again take minutes at most, and a later boot is
/// the computer being switched on again.
pub const RESTART_GAP: Duration = Duration::from_secs(15 * 60);
/// How much earlier than the restart was asked a boot may seem and still be
/// it: the wall clock after the boot comes from the hardware clock, which may
/// be a little behind the one that was running.
pub const RESTART_CLOCK_SLACK: Duration = Duration::from_secs(60);

/// `DIR/restart.json`: the last restart the agent asked for (its wall clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartMark {
    /// When the power command was run with `restart`.
    pub asked_at: Timestamp,
    /// Since when the computer had been on then.
    pub on_since: Timestamp,
}

/// What a poll says of how long the computer has been on (`uptime_s`).
#[derive(Debug, Clone)]
pub struct Uptime {
    file: PathBuf,
    mark: PathBuf,
}

impl Uptime {
    /// Reads `file` (agent.toml's `uptime_file`; none: `/proc/uptime`) and keeps
    /// restarts in `mark` (`DIR/restart.json`).
    pub fn new(file: Option<&Path>, mark: PathBuf) -> Self {
        Uptime {
            file: file.map_or_else(|| PathBuf::from(PROC_UPTIME), Path::to_path_buf),
            mark,
        }
    }

    /// Seconds the computer has been on ([`on_for`]); `None` if its uptime
    /// cannot be read (not Linux).
    pub fn seconds(&self) -> Option<u64> {
        let uptime = read_uptime(&self.file)?;
        Some(on_for(
            uptime,
            crate::clock::now(),
            self.last_mark().as_ref(),
        ))
    }

    fn last_mark(&self) -> Option<RestartMark> {
        let bytes = std::fs::read(&self.mark).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The agent is about to restart the computer: remembers since when it has
    /// been on, so the boot that follows continues that time.
    pub fn mark_restart(&self) {
        let Some(seconds) = self.seconds() else {
            return;
        };
        let now = crate::clock::now();
        let on_since = i64::try_from(seconds)
            .ok()
            .and_then(|s| now.as_second().checked_sub(s))
            .and_then(|s| Timestamp::from_second(s).ok());
        let Some(on_since) = on_since else {
            return;
        };
        let mark = RestartMark {
            asked_at: now,
            on_since,
        };
        let written = serde_json::to_vec(&mark)
            .map_err(AgentError::encode("restart mark"))
            .and_then(|bytes| write_atomically(&self.mark, &bytes).map_err(Into::into));
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot remember the restart: after it the computer will look freshly booted to central");
        }
    }
}

/// Seconds since boot from a file in `/proc/uptime`'s format: the whole
/// seconds of its first number (`None`: no such file, or not that format).
pub fn read_uptime(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = text.split_whitespace().next()?;
    let whole = first.split_once('.').map_or(first, |(whole, _)| whole);
    whole.parse().ok()
}

/// How long the computer has been on at `now` (the agent's wall clock), booted
/// `uptime_s` ago: since that boot, or, if that boot is the restart `mark`
/// asked for (within [`RESTART_GAP`] after it, [`RESTART_CLOCK_SLACK`]
/// before), since the computer was on then.
pub fn on_for(uptime_s: u64, now: Timestamp, mark: Option<&RestartMark>) -> u64 {
    let Some(mark) = mark else {
        return uptime_s;
    };
    let booted = now
        .as_second()
        .saturating_sub(i64::try_from(uptime_s).unwrap_or(i64::MAX));
    let after_ask = i128::from(booted) - i128::from(mark.asked_at.as_second());
    let window = -i128::from(RESTART_CLOCK_SLACK.as_secs())..=i128::from(RESTART_GAP.as_secs());
    if !window.contains(&after_ask) {
        return uptime_s;
    }
    let since = now.as_second().saturating_sub(mark.on_since.as_second());
    u64::try_from(since).unwrap_or(0).max(uptime_s)
}

/// This computer's MAC addresses: `configured` (agent.toml's `mac_addresses`)
/// if any, else those of its interfaces.
pub fn macs(configured: &[MacAddr]) -> Vec<MacAddr> {
    if configured.is_empty() {
        detect_macs(Path::new(SYS_CLASS_NET))
    } else {
        configured.to_vec()
    }
}

/// The MACs of the interfaces under `root` (a `/sys/class/net`): every
/// `IFACE/address` but loopback's, all-zero ones (no hardware) and what is not
/// a 48-bit address (InfiniBand's, say). Interfaces backed by a device
/// (`IFACE/device`: a NIC, virtio's too) are the ones a magic packet can wake;
/// if there are any, bridges, veths and other virtual ones (no `device`), whose
/// made-up MACs wake nothing, are left out. Sorted, without repeats.
pub fn detect_macs(root: &Path) -> Vec<MacAddr> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let found: Vec<(MacAddr, bool)> = entries
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("address")).ok()?;
            let mac = text.trim().parse::<MacAddr>().ok()?;
            Some((mac, e.path().join("device").exists()))
        })
        .filter(|(mac, _)| !mac.is_zero())
        .collect();
    let hardware = found.iter().any(|(_, device)| *device);
    let mut macs: Vec<MacAddr> = found
        .into_iter()
        .filter(|(_, device)| *device || !hardware)
        .map(|(mac, _)| mac)
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// Checks a `power_command` setting: it must split into a program and its
/// arguments.
pub fn check_command(command: &str) -> Result<(), String> {
    match shell_words::split(command) {
        Ok(words) if !words.is_empty() => Ok(()),
        Ok(_) => Err("power_command is empty".into()),
        Err(e) => Err(format!("power_command '{command}': {e}")),
    }
}

/// The wait between a package that needs a restart and the restart, so a
/// logged-in user can save their work (OCO's restart timeout, at most
/// [`MAX_RESTART_TIMEOUT`]). With a notifier the user is warned and may let it
/// go ahead at once (`continue`; a zero timeout is only told); without one
/// nobody can be told, and the whole timeout is waited out.
pub async fn restart_after(notifier: &Notifier, timeout: Duration, package: Option<&Info>) {
    // Central refuses longer ones; an agent does not wait days on a peer's word.
    let most = Duration::from(MAX_RESTART_TIMEOUT);
    if timeout > most {
        tracing::warn!(
            timeout_s = timeout.as_secs(),
            "the restart timeout is longer than a day; waiting a day"
        );
    }
    let timeout = timeout.min(most);
    tracing::info!(
        timeout_s = timeout.as_secs(),
        "a package needs a restart: restarting after the timeout"
    );
    if notifier.is_configured() {
        let text = match package {
            Some(info) => format!(
                "{} {} needs a restart: this computer restarts in {}. Save your work.",
                info.name(),
                info.version(),
                sitecast_common::units::Duration::from_secs(timeout.as_secs())
            ),
            None => format!(
                "This computer restarts in {}. Save your work.",
                sitecast_common::units::Duration::from_secs(timeout.as_secs())
            ),
        };
        notifier.warn_restart(&text, timeout, package).await;
    } else {
        tokio::time::sleep(timeout).await;
    }
}

/// A package that needs a restart was installed: warns the user and waits
/// `timeout` ([`restart_after`]), then runs the power command with `restart`
/// (without one, only logs), first marking the restart in `uptime` so the
/// computer does not look freshly switched on after it.
pub async fn restart(
    command: Option<&str>,
    notifier: &Notifier,
    timeout: Duration,
    package: Option<&Info>,
    uptime: &Uptime,
) {
    if command.is_none() {
        tracing::warn!(
            "a package needs a restart, but agent.toml sets no power_command: not restarting"
        );
        return;
    }
    restart_after(notifier, timeout, package).await;
    uptime.mark_restart();
    act(command, PowerAction::Restart).await;
}

/// Runs `<command> <action>` (without a command, logs that it would have);
/// failures are logged, the agent carries on.
pub async fn act(command: Option<&str>, action: PowerAction) {
    let Some(command) = command else {
        tracing::warn!(%action, "central asks for a power action, but agent.toml sets no power_command: nothing done");
        return;
    };
    match run(command, action).await {
        Ok(()) => tracing::info!(%action, %command, "power command ran"),
        Err(e) => tracing::warn!(%action, %command, error = %e, "power command failed"),
    }
}

async fn run(command: &str, action: PowerAction) -> Result<(), AgentError> {
    let words = shell_words::split(command)
        .map_err(|e| AgentError::Invalid(format!("bad power_command '{command}': {e}")))?;
    let Some((program, args)) = words.split_first() else {
        return Err(AgentError::Invalid("power_command is empty".into()));
    };
    let mut child = Command::new(program);
    child
        .args(args)
        .arg(action.as_str())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.output())
        .await
        .map_err(|_| {
            AgentError::Invalid(format!(
                "did not finish within {}s",
                COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(AgentError::io(program))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(AgentError::Invalid(format!(
            "exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_read_from_sys_class_net_without_loopback_or_zeros() {
        let root = tempfile::tempdir().unwrap();
        for (iface, address) in [
            ("lo", "00:00:00:00:00:00"),
            ("eth0", "52:54:00:AB:CD:EF"),
            ("wlan0", "52:54:00:12:34:56\n"),
            ("dummy0", "00:00:00:00:00:00"),
            (
                "ib0",
                "80:00:00:48:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:01",
            ),
            ("bond0", "52:54:00:ab:cd:ef"),
        ] {
            let dir = root.path().join(iface);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("address"), address).unwrap();
        }
        std::fs::create_dir(root.path().join("noaddress")).unwrap();
        let found: Vec<String> = detect_macs(root.path())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, ["52:54:00:12:34:56", "52:54:00:ab:cd:ef"]);
        assert!(detect_macs(&root.path().join("missing")).is_empty());
        let configured: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        assert_eq!(macs(&[configured]), vec![configured]);

        // Once an interface has a device behind it, virtual ones are left out.
        for (iface, device) in [("eth0", true), ("docker0", false), ("veth1a2b", false)] {
            let dir = root.path().join(iface);
            std::fs::create_dir_all(&dir).unwrap();
            if device {
                std::fs::create_dir(dir.join("device")).unwrap();
            }
        }
        std::fs::write(root.path().join("docker0/address"), "02:42:ac:11:00:01").unwrap();
        std::fs::write(root.path().join("veth1a2b/address"), "0e:11:22:33:44:55").unwrap();
        let found: Vec<String> = detect_macs(root.path())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, ["52:54:00:ab:cd:ef"]);
    }

    #[test]
    fn the_uptime_is_the_whole_seconds_of_the_first_number() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("uptime");
        for (text, expected) in [
            ("350735.47 234388.90\n", Some(350_735)),
            ("12 0", Some(12)),
            ("0.99 0.00", Some(0)),
            ("", None),
            ("-5.00 1.00", None),
            ("soon", None),
        ] {
            std::fs::write(&file, text).unwrap();
            assert_eq!(read_uptime(&file), expected, "{text:?}");
        }
        assert_eq!(read_uptime(&dir.path().join("missing")), None);
        // Linux's own, where there is one.
        if Path::new(PROC_UPTIME).exists() {
            assert!(read_uptime(Path::new(PROC_UPTIME)).is_some());
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_restart_the_agent_asked_for_continues_the_time_before_it() {
        // On since 08:00, restarted at 12:00; booted again 30 s later.
        let mark = RestartMark {
            asked_at: ts("2026-11-21T12:00:00Z"),
            on_since: ts("2026-11-21T08:00:00Z"),
        };
        let now = ts("2026-11-21T12:05:00Z");
        assert_eq!(on_for(270, now, None), 270);
        assert_eq!(on_for(270, now, Some(&mark)), 4 * 3600 + 5 * 60);
        // A boot a little "before" the ask (the hardware clock behind) is it too.
        assert_eq!(on_for(330, now, Some(&mark)), 4 * 3600 + 5 * 60);
        // A boot long after the restart (switched off, then on again) is not.
        let later = ts("2026-11-21T13:00:00Z");
        assert_eq!(on_for(60, later, Some(&mark)), 60);
        // Nor the boot that asked (its restart has not happened: the command
        // failed), which is long before the ask.
        assert_eq!(on_for(7200, now, Some(&mark)), 7200);
        // Never less than the uptime itself.
        let odd = RestartMark {
            asked_at: ts("2026-11-21T12:04:00Z"),
            on_since: ts("2026-11-21T12:04:59Z"),
        };
        assert_eq!(on_for(30, now, Some(&odd)), 30);
        assert_eq!(on_for(u64::MAX, now, Some(&mark)), u64::MAX);
    }

    #[test]
    fn a_marked_restart_is_read_back_through_the_uptime_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("uptime");
        let uptime = Uptime::new(Some(&file), dir.path().join("restart.json"));
        assert_eq!(uptime.seconds(), None);
        uptime.mark_restart();
        assert!(!dir.path().join("restart.json").exists());
        // On for an hour, then restarted; the new boot reads 10 s.
        std::fs::write(&file, "3600.00 0.00\n").unwrap();
        assert_eq!(uptime.seconds(), Some(3600));
        uptime.mark_restart();
        std::fs::write(&file, "10.00 0.00\n").unwrap();
        let on = uptime.seconds().unwrap();
        assert!((3600..3700).contains(&on), "{on}");
        // A garbled mark is no mark.
        std::fs::write(dir.path().join("restart.json"), "{").unwrap();
        assert_eq!(uptime.seconds(), Some(10));
    }

    #[test]
    fn a_power_command_must_be_a_program() {
        assert!(check_command("/usr/local/bin/power --now").is_ok());
        assert!(check_command("  ").unwrap_err().contains("empty"));
        assert!(check_command("power 'unclosed")
            .unwrap_err()
            .contains("'unclosed"));
    }

    #[tokio::test]
    async fn the_power_command_gets_the_action_as_its_last_argument() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("power.sh");
        std::fs::write(&script, "echo \"$1 $2\" >> \"$0.log\"\n").unwrap();
        // Through sh, not executed itself: a file just written cannot be
        // "text file busy" while another test forks.
        let command = format!("/bin/sh {} --flag", script.display());
        run(&command, PowerAction::Shutdown).await.unwrap();
        let uptime = Uptime::new(None, dir.path().join("restart.json"));
        restart(
            Some(&command),
            &Notifier::headless(),
            Duration::ZERO,
            None,
            &uptime,
        )
        .await;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("power.sh.log")).unwrap(),
            "--flag shutdown\n--flag restart\n"
        );
        let failing = format!("{} shutdown", dir.path().join("missing").display());
        assert!(run(&failing, PowerAction::Shutdown).await.is_err());
        // No command: nothing runs, nothing fails.
        act(None, PowerAction::Shutdown).await;
    }

    /// A notifier that appends `line` (shell-expanded) to the returned log and
    /// lets the restart go ahead.
    fn continuing_notifier(dir: &Path, line: &str) -> (Notifier, std::path::PathBuf) {
        let log = dir.join("told.log");
        let script = dir.join("notifier.sh");
        let text = format!("echo \"{line}\" >> {}\necho continue\n", log.display());
        std::fs::write(&script, text).unwrap();
        let notifier = Notifier::new(Some(&format!("/bin/sh {}", script.display()))).unwrap();
        (notifier, log)
    }

    /// Central refuses restart timeouts over a day; an agent handed one anyway
    /// (a newer central, a bug) waits a day, not years, and the user is told so.
    #[tokio::test]
    async fn a_restart_timeout_over_a_day_is_cut_to_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let (notifier, log) = continuing_notifier(dir.path(), "$SITECAST_NOTIFY_COUNTDOWN_S");
        tokio::time::timeout(
            Duration::from_secs(60),
            restart_after(&notifier, Duration::MAX, None),
        )
        .await
        .expect("the user's continue let the restart go ahead");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "86400\n");
    }

    #[tokio::test]
    async fn the_user_is_warned_before_a_restart_and_may_let_it_go_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let (notifier, log) = continuing_notifier(
            dir.path(),
            "$SITECAST_NOTIFY_KIND|$SITECAST_NOTIFY_COUNTDOWN_S|$SITECAST_NOTIFY_TEXT",
        );
        let power = dir.path().join("power.sh");
        std::fs::write(&power, "echo \"$1\" >> \"$0.log\"\n").unwrap();
        let command = format!("/bin/sh {}", power.display());
        // A ten-minute timeout the user cuts short: the restart follows the answer.
        let ten_minutes = Duration::from_secs(600);
        tokio::time::timeout(
            Duration::from_secs(120),
            restart(
                Some(&command),
                &notifier,
                ten_minutes,
                None,
                &Uptime::new(None, dir.path().join("restart.json")),
            ),
        )
        .await
        .expect("the user's continue let the restart go ahead");
        let told = std::fs::read_to_string(&log).unwrap();
        assert!(told.starts_with("restart|600|"), "{told}");
        assert!(told.contains("restarts in 10m"), "{told}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("power.sh.log")).unwrap(),
            "restart\n"
        );
    }
}
