//! The computer's power (OCO): the MAC addresses central needs for
//! Wake-on-LAN, shutting down when central says so (a job container woke the
//! computer and its jobs are done), and restarting after a package that needs
//! it, once the container's restart timeout has passed.
//!
//! Both go through `agent.toml`'s `power_command`, invoked as `<command>
//! shutdown` or `<command> restart` (split like a POSIX shell, run without
//! one). Without a `power_command` the agent only logs what it would have done,
//! so a developer's machine is never switched off by a test deployment.

use std::path::Path;
use std::time::Duration;

use sitecast_common::info::Info;
use sitecast_common::power::{MacAddr, PowerAction};
use tokio::process::Command;

use crate::error::AgentError;
use crate::notify::Notifier;

/// Where Linux lists network interfaces, each with its `address`.
const SYS_CLASS_NET: &str = "/sys/class/net";
/// A power command that takes longer than this is left to itself.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

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
/// a 48-bit address (InfiniBand's, say). Sorted, without repeats.
pub fn detect_macs(root: &Path) -> Vec<MacAddr> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<MacAddr> = entries
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
        .filter_map(|text| text.trim().parse::<MacAddr>().ok())
        .filter(|mac| !mac.is_zero())
        .collect();
    found.sort();
    found.dedup();
    found
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
/// logged-in user can save their work (OCO's restart timeout). With a notifier
/// the user is warned and may let it go ahead at once (`continue`); without one
/// nobody can be told, and the whole timeout is waited out.
pub async fn restart_after(notifier: &Notifier, timeout: Duration, package: Option<&Info>) {
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
/// (without one, only logs).
pub async fn restart(
    command: Option<&str>,
    notifier: &Notifier,
    timeout: Duration,
    package: Option<&Info>,
) {
    if command.is_none() {
        tracing::warn!(
            "a package needs a restart, but agent.toml sets no power_command: not restarting"
        );
        return;
    }
    restart_after(notifier, timeout, package).await;
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
        restart(Some(&command), &Notifier::headless(), Duration::ZERO, None).await;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("power.sh.log")).unwrap(),
            "--flag shutdown\n--flag restart\n"
        );
        let failing = format!("{} shutdown", dir.path().join("missing").display());
        assert!(run(&failing, PowerAction::Shutdown).await.is_err());
        // No command: nothing runs, nothing fails.
        act(None, PowerAction::Shutdown).await;
    }

    #[tokio::test]
    async fn the_user_is_warned_before_a_restart_and_may_let_it_go_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("told.log");
        let script = dir.path().join("notifier.sh");
        std::fs::write(
            &script,
            format!(
                "echo \"$SITECAST_NOTIFY_KIND|$SITECAST_NOTIFY_COUNTDOWN_S|$SITECAST_NOTIFY_TEXT\" >> {}\necho continue\n",
                log.display()
            ),
        )
        .unwrap();
        let notifier = Notifier::new(Some(&format!("/bin/sh {}", script.display()))).unwrap();
        let power = dir.path().join("power.sh");
        std::fs::write(&power, "echo \"$1\" >> \"$0.log\"\n").unwrap();
        let command = format!("/bin/sh {}", power.display());
        // A ten-minute timeout the user cuts short: the restart follows the answer.
        let ten_minutes = Duration::from_secs(600);
        tokio::time::timeout(
            Duration::from_secs(120),
            restart(Some(&command), &notifier, ten_minutes, None),
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
