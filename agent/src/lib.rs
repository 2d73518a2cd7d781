//! The Sitecast agent, on every managed computer: enrolls with central, polls
//! for work, and follows OCS's download cycle ([`cycle`], driving
//! `sitecast_common::deployment::DownloadCycle`) to deploy each package
//! ([`deploy`], [`install`]) from the relay of its own subnet, verifying everything
//! before it unpacks ([`unpack`]) or runs ([`action`]) anything, and to run uninstall
//! jobs ([`uninstall`], removing what a `store` install created: [`manifest`]).
//! The computer's user is told through a configurable command ([`notify`]).

pub mod action;
pub mod backoff;
pub mod client;
pub mod clock;
pub mod config;
pub mod context;
pub mod cycle;
pub mod deploy;
pub mod error;
pub mod floors;
pub mod history;
pub mod install;
pub mod journal;
pub mod manifest;
pub mod notify;
pub mod power;
pub mod space;
pub mod trust;
pub mod uninstall;
pub mod unpack;
mod worker;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::{AgentConfig, Layout};
pub use error::AgentError;
use sitecast_common::ids::PackageId;
use sitecast_common::jobs::JobKind;
use sitecast_common::wire::EnrollRequest;

pub use deploy::Outcome;

/// What `sitecast-agent enroll` is told.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub central: String,
    pub ca: PathBuf,
    pub enroll_token: String,
    pub bind: Option<IpAddr>,
    pub tags: Vec<String>,
    /// Defaults to the system's host name.
    pub hostname: Option<String>,
    /// The command that tells the computer's user (`agent.toml`'s `notifier`).
    pub notifier: Option<String>,
    /// MAC addresses for Wake-on-LAN, written to agent.toml (empty: the
    /// interfaces' are reported).
    pub macs: Vec<sitecast_common::power::MacAddr>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This computer's addresses: the bind address, or every non-loopback interface
/// address (loopback ones if there is nothing else).
pub fn addresses(bind: Option<IpAddr>) -> Vec<IpAddr> {
    if let Some(ip) = bind {
        return vec![ip];
    }
    let all: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            // Central keeps the addresses it saw last; relays are then chosen by those.
            tracing::warn!(error = %e, "cannot list the network interfaces");
            Vec::new()
        }
    };
    let outside: Vec<IpAddr> = all.iter().copied().filter(|a| !a.is_loopback()).collect();
    if outside.is_empty() {
        all
    } else {
        outside
    }
}

/// Enrolls with central and writes DIR (refuses an already enrolled DIR).
pub async fn enroll(dir: &Path, opts: EnrollOptions) -> Result<AgentConfig, AgentError> {
    let layout = Layout::new(dir);
    if let Some(command) = &opts.notifier {
        notify::parse_command(command)
            .map_err(|reason| AgentError::Invalid(format!("bad --notifier: {reason}")))?;
    }
    if layout.config().exists() {
        return Err(AgentError::Invalid(format!(
            "{} already exists; this computer is already enrolled",
            layout.config().display()
        )));
    }
    let request = EnrollRequest {
        enroll_token: opts.enroll_token.trim().to_owned(),
        hostname: opts.hostname.unwrap_or_else(hostname),
        os: std::env::consts::OS.to_owned(),
        addresses: addresses(opts.bind)
            .iter()
            .map(ToString::to_string)
            .collect(),
        tags: opts.tags.clone(),
        macs: power::macs(&opts.macs)
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    let answer = client::enroll(&opts.central, &opts.ca, opts.bind, &request).await?;
    std::fs::create_dir_all(dir).map_err(AgentError::io(dir))?;
    let ca = std::fs::read(&opts.ca).map_err(AgentError::io(&opts.ca))?;
    sitecast_io::write_atomically(&layout.ca(), &ca)?;
    let config = AgentConfig {
        central: opts.central.trim_end_matches('/').to_owned(),
        computer_id: answer.computer_id,
        token: answer.token,
        bind: opts.bind,
        tags: opts.tags,
        signing_keys: answer.signing_keys.into_iter().map(|k| k.pem).collect(),
        root_key: answer.root_key,
        max_unpack: None,
        keep_free: None,
        mac_addresses: opts.macs,
        power_command: None,
        uptime_file: None,
        downloads: config::SourcePolicy::default(),
        cycle: sitecast_common::deployment::CycleConfig::default(),
        notifier: opts.notifier,
    };
    config.keys()?;
    let mut trust = trust::Trust::load(&layout, &config)?;
    if let Some(keyset) = &answer.keyset {
        trust.offer(keyset, crate::clock::now())?;
    }
    config.save(&layout)?;
    Ok(config)
}

/// What one `once` call did.
#[derive(Debug, Clone)]
pub struct Round {
    /// The last poll's interval.
    pub poll_interval: Duration,
    /// Each job the polls listed, in the order they first came (each poll lists
    /// them in central's running order), and what became of it. A package may
    /// appear twice: installed, then uninstalled by the next job.
    pub outcomes: Vec<(PackageId, Outcome)>,
    /// The kind of each job of `outcomes`, index for index.
    pub kinds: Vec<JobKind>,
}

/// Polls and works through what it can now: the download cycle without latencies
/// (see [`cycle::Mode::Once`]), urgent packages first, then in central's order. While
/// jobs end, it polls again (central then hands out the next job of each job
/// container), so one call runs a container's whole sequence. A package that has no
/// source, or whose fetch fails, is left waiting for a later call.
pub async fn once(dir: &Path) -> Result<Round, AgentError> {
    let (mut worker, config) = worker::Worker::open(dir, true)?;
    worker.recover().await;
    cycle::drive(
        &mut worker,
        config,
        cycle::Mode::Once,
        std::future::pending(),
    )
    .await?;
    let poll_interval = worker.poll_interval();
    let (outcomes, kinds) = worker
        .round()
        .await?
        .into_iter()
        .map(|(id, kind, outcome)| ((id, outcome), kind))
        .unzip();
    Ok(Round {
        poll_interval,
        outcomes,
        kinds,
    })
}

/// Follows the download cycle (`agent.toml`'s `[cycle]`) until `shutdown`:
/// polls central at the interval it hands out, and downloads and installs as
/// the cycle decides (see [`cycle`]). A fetch in flight is abandoned at
/// shutdown (the download resumes next time); an install runs to its end.
pub async fn run(
    dir: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let (mut worker, config) = worker::Worker::open(dir, false)?;
    worker.recover().await;
    cycle::drive(&mut worker, config, cycle::Mode::Run, shutdown).await?;
    worker.flush().await;
    Ok(())
}
