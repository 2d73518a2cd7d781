//! An action never runs twice: the real `sitecast-agent`, killed with SIGKILL while a
//! package's command runs, and started again. When the agent alone died, the new run
//! waits for the command it finds still running instead of starting it beside it;
//! when the command died with it (a power cut), it is not started again either. Both
//! are reported `ERR_INTERRUPTED`, and only an admin's `container retry` runs them
//! again.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sitecast_tests::{enc, wait_until, Agent, Central};

/// `sitecast-agent once`, its log going to `log`.
fn once(agent: &Agent, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sitecast-agent"))
        .args(["once", "--dir"])
        .arg(&agent.dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn sigkill(child: &mut Child) {
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A package whose command logs its start, waits for `gate` to exist, and logs its end.
async fn gated_package(c: &Central, name: &str, runs: &Path, gate: &Path) -> String {
    let command = format!(
        "echo start >> '{runs}'; while [ ! -e '{gate}' ]; do sleep 0.05; done; echo end >> '{runs}'",
        runs = runs.display(),
        gate = gate.display()
    );
    let query = format!(
        "name={name}&version=1&action=execute&command={}",
        enc(&command)
    );
    c.upload(&query, vec![]).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn job(c: &Central, container: &str) -> Value {
    c.get(&format!("/containers/{container}")).await["jobs"][0].clone()
}

async fn wait_job(c: &Central, container: &str, status: &str) -> Value {
    wait_until(&format!("the job to be {status}"), || async {
        job(c, container).await["status"] == status
    })
    .await;
    job(c, container).await
}

struct Scene {
    c: Central,
    agent: Agent,
    root: PathBuf,
}

impl Scene {
    async fn new() -> Self {
        let c = Central::start().await;
        let agent = c.agent("pc-1", "127.0.0.1").await;
        let root = c.path("scene");
        std::fs::create_dir_all(&root).unwrap();
        Scene { c, agent, root }
    }

    /// A gated package assigned to the computer through a container: its
    /// (container, runs log, gate).
    async fn assign(&self, name: &str) -> (String, PathBuf, PathBuf) {
        let (runs, gate) = (
            self.root.join(format!("{name}.runs")),
            self.root.join(format!("{name}.gate")),
        );
        let p = gated_package(&self.c, name, &runs, &gate).await;
        let container = self
            .c
            .post(
                "/containers",
                json!({"name": name, "packages": [p], "computers": [self.agent.id]}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (container, runs, gate)
    }

    /// The process group the journal recorded for the running command, once it has.
    fn journaled_pgid(&self) -> Option<i32> {
        let entry = std::fs::read_dir(self.agent.dir.join("running"))
            .ok()?
            .next()?
            .ok()?;
        let entry: Value = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
        i32::try_from(entry["pgid"].as_i64()?).ok()
    }

    /// Runs the agent until the command logged its start and the journal its process
    /// group, then kills the agent. (Killed in the few milliseconds between the two, a
    /// new run cannot wait for the command: it reports it interrupted at once.)
    async fn kill_agent_while_it_runs(&self, runs: &Path) {
        let mut first = once(&self.agent, &self.root.join("first.log"));
        wait_until("the command to start", || async { read(runs) == "start\n" }).await;
        wait_until("the journal to hold its process group", || async {
            self.journaled_pgid().is_some()
        })
        .await;
        sigkill(&mut first);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_outlived_the_killed_agent_is_waited_for_and_not_started_again() {
    let s = Scene::new().await;
    let (container, runs, gate) = s.assign("gated").await;
    s.kill_agent_while_it_runs(&runs).await;
    assert_eq!(read(&runs), "start\n", "the command outlived the agent");

    let log = s.root.join("second.log");
    let mut second = once(&s.agent, &log);
    wait_until("the new run to wait for the old command", || async {
        read(&log).contains("waiting for the command a previous run started")
    })
    .await;
    let meanwhile = job(&s.c, &container).await["status"].clone();
    assert!(
        meanwhile == "NOTIFIED" || meanwhile == "DOWNLOADING",
        "reported before the old command ended: {meanwhile}"
    );
    std::fs::write(&gate, b"").unwrap();
    let interrupted = wait_job(&s.c, &container, "ERR_INTERRUPTED").await;
    assert!(second.wait().unwrap().success());
    assert_eq!(
        read(&runs),
        "start\nend\n",
        "started once, never beside itself"
    );
    let output = interrupted["output"].as_str().unwrap();
    assert!(output.contains("ended while this run waited"), "{output}");
    // Not retried by itself: another round leaves it alone.
    assert!(once(&s.agent, &log).wait().unwrap().success());
    assert_eq!(read(&runs), "start\nend\n");

    // An admin retries it: it runs again, to its end.
    s.c.post(&format!("/containers/{container}/retry"), json!({}))
        .await;
    assert!(once(&s.agent, &log).wait().unwrap().success());
    wait_job(&s.c, &container, "SUCCESS").await;
    assert_eq!(read(&runs), "start\nend\nstart\nend\n");
}

/// A power cut: the command died with the agent. Nothing runs it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_killed_with_the_agent_is_reported_interrupted_and_not_started_again() {
    let s = Scene::new().await;
    let (container, runs, _gate) = s.assign("cut").await;
    s.kill_agent_while_it_runs(&runs).await;
    // The journal knows the command's group: kill it too, as a power cut would.
    let running = s.agent.dir.join("running");
    let pgid = s.journaled_pgid().unwrap();
    killpg(Pid::from_raw(pgid), Signal::SIGKILL).unwrap();

    assert!(once(&s.agent, &s.root.join("second.log"))
        .wait()
        .unwrap()
        .success());
    let interrupted = wait_job(&s.c, &container, "ERR_INTERRUPTED").await;
    let output = interrupted["output"].as_str().unwrap();
    assert!(output.contains("had already ended"), "{output}");
    assert_eq!(read(&runs), "start\n", "never started again");
    // Central took the report: the journal is empty again.
    assert_eq!(std::fs::read_dir(&running).unwrap().count(), 0);
}
