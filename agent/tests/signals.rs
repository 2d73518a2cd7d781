//! The real `sitecast-agent run` stops cleanly on SIGTERM (systemd's stop) as
//! on SIGINT, once it is running and polling central.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sitecast_tests::{wait_until, Central};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_cleanly_on_sigterm_and_sigint() {
    let c = Central::start().await;
    for (name, signal) in [("pc-term", Signal::SIGTERM), ("pc-int", Signal::SIGINT)] {
        let agent = c.agent(name, "127.0.0.1").await;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sitecast-agent"))
            .args(["run", "--dir"])
            .arg(&agent.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It is running: central saw a poll after the enrollment.
        wait_until(&format!("{name} to poll"), || async {
            let computers = c.get("/computers").await;
            computers
                .as_array()
                .unwrap()
                .iter()
                .any(|pc| pc["id"] == agent.id.as_str() && pc["last_seen"] != pc["enrolled_at"])
        })
        .await;
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        kill(pid, signal).unwrap();
        let mut status = None;
        wait_until(&format!("{name} to exit on {signal}"), || {
            status = child.try_wait().unwrap();
            std::future::ready(status.is_some())
        })
        .await;
        assert!(status.unwrap().success(), "{name}: {status:?}");
    }
}
