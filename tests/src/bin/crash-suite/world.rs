//! The deployment under test, made of the real binaries on loopback: a central,
//! two sites (`127.1.0.0/16`, `127.2.0.0/16`) with a relay each, and one agent
//! (`sitecast-agent run`) per site. Each process can be killed with SIGKILL and
//! started again on the same directory and addresses.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ed25519_dalek::VerifyingKey;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::api::Api;

/// How long a process may take to be up again.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A component of the deployment, the target of a kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    Central,
    Relay(usize),
    Agent(usize),
}

pub struct Relay {
    pub id: String,
    pub dir: PathBuf,
    /// `http://IP:PORT`, its server for agents.
    pub url: String,
    child: Option<Child>,
}

pub struct Agent {
    pub id: String,
    pub dir: PathBuf,
    child: Option<Child>,
}

pub struct World {
    pub root: PathBuf,
    bin: PathBuf,
    central_dir: PathBuf,
    central: Option<Child>,
    pub relays: Vec<Relay>,
    pub agents: Vec<Agent>,
    pub api: Api,
    /// Central's info-signing key, which every signed info must verify against.
    pub signing_key: VerifyingKey,
    /// Where every package's command writes its marker lines.
    pub runs_log: PathBuf,
    starts: u64,
}

fn free_tcp_port(ip: &str) -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

fn free_udp_port(ip: &str) -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind((ip, 0))?.local_addr()?.port())
}

/// Runs a short command (init, enroll) to its end; its output goes to `log`.
async fn run_to_end(cmd: &mut Command, log: &Path) -> anyhow::Result<()> {
    let out = cmd.output().await.context("cannot run a setup command")?;
    let mut f = OpenOptions::new().create(true).append(true).open(log)?;
    f.write_all(&out.stdout)?;
    f.write_all(&out.stderr)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Rewrites a TOML file with `edit` applied.
fn edit_toml(path: &Path, edit: impl FnOnce(&mut toml::Table)) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut table: toml::Table = text.parse()?;
    edit(&mut table);
    std::fs::write(path, toml::to_string(&table)?)?;
    Ok(())
}

fn table(entries: &[(&str, &str)]) -> toml::Value {
    toml::Value::Table(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), toml::Value::String((*v).to_owned())))
            .collect(),
    )
}

impl World {
    pub async fn build(root: &Path, bin: &Path) -> anyhow::Result<World> {
        std::fs::create_dir_all(root.join("logs"))?;
        let central_dir = root.join("central");
        let api_port = free_tcp_port("127.0.0.1")?;
        let quic_port = free_udp_port("127.0.0.1")?;
        run_to_end(
            Command::new(bin.join("sitecast-central"))
                .arg("init")
                .arg("--dir")
                .arg(&central_dir)
                .arg("--api-listen")
                .arg(format!("127.0.0.1:{api_port}"))
                .arg("--quic-listen")
                .arg(format!("127.0.0.1:{quic_port}")),
            &root.join("logs/setup.log"),
        )
        .await?;
        // Agents poll every second, so a deployment takes seconds, not minutes.
        edit_toml(&central_dir.join("central.toml"), |t| {
            t.insert("poll_interval".into(), toml::Value::String("1s".into()));
        })?;
        let token = std::fs::read_to_string(central_dir.join("admin.token"))?;
        let ca = central_dir.join("tls/ca.pem");
        let api = Api::new(&format!("https://127.0.0.1:{api_port}"), &ca, &token)?;
        let signing_key = sitecast_common::signing::verifying_key_from_pem(
            &std::fs::read_to_string(central_dir.join("keys/signing.pub"))?,
        )?;
        let mut world = World {
            root: root.to_owned(),
            bin: bin.to_owned(),
            central_dir,
            central: None,
            relays: Vec::new(),
            agents: Vec::new(),
            api,
            signing_key,
            runs_log: root.join("runs.log"),
            starts: 0,
        };
        world.start(Victim::Central).await?;
        for (n, site) in [(1, "paris"), (2, "lyon")] {
            world.add_site(n, site, &ca).await?;
        }
        Ok(world)
    }

    async fn add_site(&mut self, n: u8, site: &str, ca: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        let subnet = format!("127.{n}.0.0/16");
        let body = json!({"name": site, "subnets": [subnet]});
        self.api
            .answered("add a site", deadline, |a| {
                let body = body.clone();
                async move { a.post("/sites", &body).await }
            })
            .await?;
        let ip = format!("127.{n}.0.1");
        let port = free_tcp_port(&ip)?;
        let url = format!("http://{ip}:{port}");
        let body = json!({"site": site, "subnets": [subnet], "url": url});
        let created = self
            .api
            .answered("add a relay", deadline, |a| {
                let body = body.clone();
                async move { a.post("/relays", &body).await }
            })
            .await?;
        let id = created["id"].as_str().context("relay id")?.to_owned();
        let relay_token = created["token"].as_str().context("relay token")?;
        let dir = self.root.join(format!("relay-{site}"));
        let quic = std::fs::read_to_string(self.central_dir.join("central.toml"))?
            .parse::<toml::Table>()?
            .get("quic_listen")
            .and_then(|v| v.as_str())
            .context("quic_listen")?
            .to_owned();
        run_to_end(
            Command::new(self.bin.join("sitecast-relay"))
                .arg("enroll")
                .arg("--dir")
                .arg(&dir)
                .args(["--central", &quic, "--id", &id, "--token", relay_token])
                .arg("--ca")
                .arg(ca)
                .args(["--listen", &format!("{ip}:{port}")])
                // Replication takes a moment, so that kills land in it; the
                // scrub runs all the time, so that it runs into kills too.
                .args(["--max-rate", "128KiB/s", "--scrub-interval", "2s"]),
            &self.root.join("logs/setup.log"),
        )
        .await?;
        self.relays.push(Relay {
            id,
            dir,
            url,
            child: None,
        });
        self.start(Victim::Relay(self.relays.len() - 1)).await?;

        let dir = self.root.join(format!("agent-{site}"));
        let enroll_token = std::fs::read_to_string(self.central_dir.join("enroll.token"))?;
        run_to_end(
            Command::new(self.bin.join("sitecast-agent"))
                .arg("enroll")
                .arg("--dir")
                .arg(&dir)
                .args([
                    "--central",
                    &self.api_url()?,
                    "--token",
                    enroll_token.trim(),
                ])
                .arg("--ca")
                .arg(ca)
                .args(["--bind", &format!("127.{n}.0.11")])
                .args(["--hostname", &format!("pc-{site}")]),
            &self.root.join("logs/setup.log"),
        )
        .await?;
        let config = std::fs::read_to_string(dir.join("agent.toml"))?.parse::<toml::Table>()?;
        let id = config
            .get("computer_id")
            .and_then(|v| v.as_str())
            .context("computer_id")?
            .to_owned();
        // Every package at every cycle, with no pause; a relay killed mid-download
        // is tried again within seconds, not the default five minutes; downloads
        // are capped so that kills land in them.
        edit_toml(&dir.join("agent.toml"), |t| {
            t.insert(
                "cycle".into(),
                table(&[
                    ("cycle_latency", "0s"),
                    ("frag_latency", "0s"),
                    ("max_rate", "96KiB/s"),
                ]),
            );
            if let Some(toml::Value::Table(c)) = t.get_mut("cycle") {
                c.insert("period_length".into(), toml::Value::Integer(1));
            }
            t.insert(
                "downloads".into(),
                table(&[
                    ("connect_timeout", "2s"),
                    ("stall_timeout", "3s"),
                    ("backoff", "1s"),
                    ("backoff_max", "2s"),
                ]),
            );
        })?;
        self.agents.push(Agent {
            id,
            dir,
            child: None,
        });
        self.start(Victim::Agent(self.agents.len() - 1)).await
    }

    fn api_url(&self) -> anyhow::Result<String> {
        let listen = std::fs::read_to_string(self.central_dir.join("central.toml"))?
            .parse::<toml::Table>()?
            .get("api_listen")
            .and_then(|v| v.as_str())
            .context("api_listen")?
            .to_owned();
        Ok(format!("https://{listen}"))
    }

    pub fn name(&self, v: Victim) -> String {
        match v {
            Victim::Central => "central".into(),
            Victim::Relay(i) => format!("relay {}", self.relays[i].id),
            Victim::Agent(i) => format!("agent {}", self.agents[i].id),
        }
    }

    fn log(&self, name: &str) -> anyhow::Result<std::fs::File> {
        let path = self.root.join("logs").join(name);
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(f, "==== start {} ====", self.starts)?;
        Ok(f)
    }

    /// Starts a component and waits until it is up (central serving, a relay
    /// answering its health route; an agent as soon as it runs).
    pub async fn start(&mut self, v: Victim) -> anyhow::Result<()> {
        self.starts += 1;
        match v {
            Victim::Central => self.start_central().await,
            Victim::Relay(i) => {
                let log = self.log(&format!("relay-{i}.log"))?;
                let child = Command::new(self.bin.join("sitecast-relay"))
                    .arg("serve")
                    .arg("--dir")
                    .arg(&self.relays[i].dir)
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .kill_on_drop(true)
                    .spawn()?;
                self.relays[i].child = Some(child);
                let health = format!("{}/v1/health", self.relays[i].url);
                let deadline = Instant::now() + START_DEADLINE;
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()?;
                loop {
                    if let Ok(r) = http.get(&health).send().await {
                        if r.status().is_success() {
                            return Ok(());
                        }
                    }
                    if Instant::now() > deadline {
                        bail!("relay {} did not answer {health}", self.relays[i].id);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Victim::Agent(i) => {
                let log = self.log(&format!("agent-{i}.log"))?;
                let child = Command::new(self.bin.join("sitecast-agent"))
                    .arg("run")
                    .arg("--dir")
                    .arg(&self.agents[i].dir)
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .kill_on_drop(true)
                    .spawn()?;
                self.agents[i].child = Some(child);
                Ok(())
            }
        }
    }

    async fn start_central(&mut self) -> anyhow::Result<()> {
        let out = self.root.join("logs/central.out");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let stderr = self.log("central.log")?;
            let stdout = std::fs::File::create(&out)?;
            let mut child = Command::new(self.bin.join("sitecast-central"))
                .arg("serve")
                .arg("--dir")
                .arg(&self.central_dir)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdout(stdout)
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()?;
            // It prints where it serves once its listeners are bound.
            loop {
                if std::fs::read_to_string(&out)?.contains("sitecast-central: serving") {
                    self.central = Some(child);
                    return Ok(());
                }
                if let Some(status) = child.try_wait()? {
                    // Its old sockets may still be going away: try again.
                    eprintln!("crash-suite: central exited at start ({status}); starting it again");
                    break;
                }
                if Instant::now() > deadline {
                    bail!("central did not start serving");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if Instant::now() > deadline {
                bail!("central did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self, v: Victim) -> anyhow::Result<()> {
        let child = match v {
            Victim::Central => self.central.take(),
            Victim::Relay(i) => self.relays[i].child.take(),
            Victim::Agent(i) => self.agents[i].child.take(),
        };
        let Some(mut child) = child else {
            bail!("{} is not running", self.name(v));
        };
        // `kill` is SIGKILL on Unix.
        child.kill().await?;
        Ok(())
    }

    /// A component that exited by itself is a failure of the suite's run.
    pub fn exited(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        let mut look = |name: String, child: &mut Option<Child>| {
            if let Some(c) = child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    gone.push(format!("{name} exited by itself ({status})"));
                    *child = None;
                }
            }
        };
        look("central".into(), &mut self.central);
        for r in &mut self.relays {
            look(format!("relay {}", r.id), &mut r.child);
        }
        for a in &mut self.agents {
            look(format!("agent {}", a.id), &mut a.child);
        }
        gone
    }

    pub async fn stop_all(&mut self) {
        if let Some(mut c) = self.central.take() {
            let _ = c.kill().await;
        }
        for r in &mut self.relays {
            if let Some(mut c) = r.child.take() {
                let _ = c.kill().await;
            }
        }
        for a in &mut self.agents {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill().await;
            }
        }
    }
}
