//! The Sitecast agent, on every managed computer: enrolls with central, polls
//! for work, and deploys each package ([`deploy`]) from the relay of its own
//! subnet, verifying everything before it unpacks ([`unpack`]) or runs
//! ([`action`]) anything.

pub mod action;
pub mod backoff;
pub mod client;
pub mod config;
pub mod deploy;
pub mod error;
pub mod fsutil;
pub mod history;
pub mod unpack;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::{AgentConfig, Layout};
pub use error::AgentError;
use sitecast_common::ids::PackageId;
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
    let all: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
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
    };
    let answer = client::enroll(&opts.central, &opts.ca, opts.bind, &request).await?;
    std::fs::create_dir_all(dir).map_err(AgentError::io(dir))?;
    let ca = std::fs::read(&opts.ca).map_err(AgentError::io(&opts.ca))?;
    fsutil::write_atomically(&layout.ca(), &ca)?;
    let config = AgentConfig {
        central: opts.central.trim_end_matches('/').to_owned(),
        computer_id: answer.computer_id,
        token: answer.token,
        bind: opts.bind,
        tags: opts.tags,
        signing_keys: answer.signing_keys.into_iter().map(|k| k.pem).collect(),
        max_unpack: sitecast_common::units::Size::from_bytes(64 << 30),
        downloads: config::SourcePolicy::default(),
    };
    config.keys()?;
    config.save(&layout)?;
    Ok(config)
}

/// The result of one poll.
#[derive(Debug, Clone)]
pub struct Round {
    pub poll_interval: Duration,
    pub outcomes: Vec<(PackageId, Outcome)>,
}

/// Polls once and works through the packages in priority order.
pub async fn once(dir: &Path) -> Result<Round, AgentError> {
    let layout = Layout::new(dir);
    let config = AgentConfig::load(&layout)?;
    let keys = config.keys()?;
    let client = client::Client::new(
        &config.central,
        &config.token,
        &layout.ca(),
        config.bind,
        client::Deadlines::from(&config.downloads),
    )?;
    let addrs = addresses(config.bind);
    let poll = client.poll(&addrs).await?;
    let mut history = history::History::load(&layout.history())?;
    let backoff = std::sync::Mutex::new(backoff::Backoff::load(
        &layout.backoff(),
        config.downloads.backoff.into(),
        config.downloads.backoff_max.into(),
    ));
    let mut outcomes = Vec::new();
    for polled in &poll.packages {
        let waited = waited_since(&layout, &polled.id)?;
        let ctx = deploy::Context {
            computer_id: &config.computer_id,
            client: &client,
            keys: &keys,
            addresses: &addrs,
            downloads: &layout.downloads(),
            work: &layout.work(),
            limits: unpack::UnpackLimits {
                max_bytes: config.max_unpack.bytes(),
                ..Default::default()
            },
            already_installed: history.contains(&polled.id),
            backoff: &backoff,
        };
        let outcome = deploy::deploy(&ctx, polled, waited).await?;
        match &outcome {
            Outcome::Done(code) => {
                tracing::info!(package = %polled.id, status = %code, "deployment finished");
                if *code == sitecast_common::status::StatusCode::Success {
                    history.record(&polled.id, jiff::Timestamp::now())?;
                }
                let _ = std::fs::remove_file(first_seen_path(&layout, &polled.id));
            }
            Outcome::Waiting(why) => tracing::info!(package = %polled.id, %why, "waiting"),
        }
        outcomes.push((polled.id.clone(), outcome));
    }
    Ok(Round {
        poll_interval: Duration::from_secs(poll.poll_interval_s.max(1)),
        outcomes,
    })
}

fn first_seen_path(layout: &Layout, id: &PackageId) -> PathBuf {
    layout.downloads().join(format!("{id}.first-seen"))
}

/// How long this package has been waiting, for `central_fallback = after:…`.
fn waited_since(layout: &Layout, id: &PackageId) -> Result<Duration, AgentError> {
    let path = first_seen_path(layout, id);
    let now = jiff::Timestamp::now();
    let first = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<jiff::Timestamp>().unwrap_or(now),
        Err(_) => {
            std::fs::create_dir_all(layout.downloads())
                .map_err(AgentError::io(layout.downloads()))?;
            fsutil::write_atomically(&path, now.to_string().as_bytes())?;
            now
        }
    };
    Ok(Duration::from_secs(
        now.duration_since(first).as_secs().max(0) as u64,
    ))
}

/// Polls forever (until `shutdown`), sleeping the interval central asks for.
pub async fn run(
    dir: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    tokio::pin!(shutdown);
    loop {
        let wait = match once(dir).await {
            Ok(round) => round.poll_interval,
            Err(e) => {
                tracing::warn!(error = %e, "poll failed");
                Duration::from_secs(30)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `central_fallback = after:…` counts from the first poll that listed the
    /// package, and that moment survives a restart (it is in DIR).
    #[test]
    fn waiting_counts_from_when_the_package_was_first_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let id: PackageId = "app-1".parse().unwrap();
        assert!(waited_since(&layout, &id).unwrap() < Duration::from_secs(5));
        let path = first_seen_path(&layout, &id);
        let first = std::fs::read_to_string(&path).unwrap();
        // A later poll (or a restarted agent) does not move the first sighting.
        assert!(waited_since(&layout, &id).unwrap() < Duration::from_secs(5));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        let two_hours_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
        std::fs::write(&path, two_hours_ago.to_string()).unwrap();
        let waited = waited_since(&layout, &id).unwrap();
        assert!(
            waited >= Duration::from_secs(7200) && waited < Duration::from_secs(7300),
            "{waited:?}"
        );
        // Another package has its own clock.
        let other: PackageId = "app-2".parse().unwrap();
        assert!(waited_since(&layout, &other).unwrap() < Duration::from_secs(5));
    }
}
