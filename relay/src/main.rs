//! `sitecast-relay`: the per-site cache that replicates packages from central and
//! serves the agents of its site.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sitecast_common::constraint::TimeFrames;
use sitecast_common::units::{Duration, Rate};
use sitecast_relay::config::MaxDisk;
use sitecast_relay::{enroll, serve, EnrollOptions, RelayConfig};

#[derive(Parser)]
#[command(name = "sitecast-relay", version, about = "Sitecast site relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write DIR/relay.toml for a relay added on central (`sitecast relay add`).
    Enroll {
        #[arg(long)]
        dir: PathBuf,
        /// Central's QUIC endpoint, HOST:PORT.
        #[arg(long)]
        central: String,
        /// Central's CA certificate (tls/ca.pem in central's DIR).
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        id: sitecast_common::ids::RelayId,
        #[arg(long)]
        token: String,
        /// Address of the HTTP server for agents.
        #[arg(long)]
        listen: SocketAddr,
        /// When fragments may move from central, e.g. "MON-FRI 18:00-23:59,SAT 0:00-23:59".
        #[arg(long)]
        schedule: Option<TimeFrames>,
        /// Cap on fragment bytes from central, e.g. 20MB/s.
        #[arg(long)]
        max_rate: Option<Rate>,
        /// Quota on the cache, e.g. 50GiB: above it, superseded versions kept as
        /// delta bases are evicted, least recently needed first.
        #[arg(long)]
        max_disk: Option<MaxDisk>,
        /// How often every held fragment is re-hashed, e.g. 7d (0s: never).
        #[arg(long)]
        scrub_interval: Option<Duration>,
    },
    /// Change the schedule, cap, disk quota or scrub interval of a relay (a
    /// running relay takes them up within a second).
    Config {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        schedule: Option<TimeFrames>,
        #[arg(long)]
        max_rate: Option<Rate>,
        /// A size (50GiB), or unlimited.
        #[arg(long)]
        max_disk: Option<MaxDisk>,
        /// A duration (7d), or 0s to stop scrubbing.
        #[arg(long)]
        scrub_interval: Option<Duration>,
    },
    /// Prestage a package from offline media: its signed info (as `GET
    /// /packages/ID/info` returns it) and its data file, both verified before
    /// anything is committed. A running relay takes it up within a second.
    Import {
        #[arg(long)]
        dir: PathBuf,
        /// The signed info (DSSE envelope).
        #[arg(long)]
        info: PathBuf,
        /// The package's file.
        #[arg(long)]
        data: PathBuf,
    },
    /// Replicate from central and serve agents until SIGINT or SIGTERM.
    Serve {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Enroll {
            dir,
            central,
            ca,
            id,
            token,
            listen,
            schedule,
            max_rate,
            max_disk,
            scrub_interval,
        } => {
            let config = enroll(
                &dir,
                EnrollOptions {
                    central,
                    ca,
                    id,
                    token,
                    listen,
                    schedule,
                    max_rate,
                    max_disk: max_disk.and_then(|m| m.0),
                    scrub_interval,
                },
            )?;
            println!("relay {} enrolled in {}", config.id, dir.display());
            Ok(())
        }
        Command::Config {
            dir,
            schedule,
            max_rate,
            max_disk,
            scrub_interval,
        } => {
            let mut config = RelayConfig::load(&dir)?;
            if schedule.is_none()
                && max_rate.is_none()
                && max_disk.is_none()
                && scrub_interval.is_none()
            {
                anyhow::bail!(
                    "nothing to change: give --schedule, --max-rate, --max-disk or --scrub-interval"
                );
            }
            if let Some(MaxDisk(m)) = max_disk {
                config.max_disk = m;
            }
            if let Some(i) = scrub_interval {
                config.scrub_interval = Some(i);
            }
            if let Some(s) = schedule {
                config.schedule = (!s.is_empty()).then_some(s);
            }
            if let Some(r) = max_rate {
                config.max_rate = (!r.is_unlimited()).then_some(r);
            }
            config.save(&dir)?;
            println!("relay {} configuration updated", config.id);
            Ok(())
        }
        Command::Import { dir, info, data } => {
            let done = sitecast_relay::import::import(&dir, &info, &data)?;
            println!(
                "imported {} ({} {}): {} fragments, {} bytes",
                done.id, done.name, done.version, done.fragments, done.bytes
            );
            Ok(())
        }
        Command::Serve { dir } => {
            let config = RelayConfig::load(&dir)?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, relay = %config.id, "serving agents");
            {
                use std::io::Write;
                // A closed stdout must not stop the relay.
                let _ = writeln!(std::io::stdout(), "sitecast-relay: serving http://{addr}");
            }
            serve(&dir, listener, signal()).await?;
            Ok(())
        }
    }
}

async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
