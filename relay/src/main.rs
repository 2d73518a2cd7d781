//! `sitecast-relay`: the per-site cache that replicates packages from central and
//! serves the agents of its site.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sitecast_common::constraint::TimeFrames;
use sitecast_common::units::Rate;
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
    },
    /// Change the schedule or cap of a relay.
    Config {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        schedule: Option<TimeFrames>,
        #[arg(long)]
        max_rate: Option<Rate>,
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
                },
            )?;
            println!("relay {} enrolled in {}", config.id, dir.display());
            Ok(())
        }
        Command::Config {
            dir,
            schedule,
            max_rate,
        } => {
            let mut config = RelayConfig::load(&dir)?;
            if schedule.is_none() && max_rate.is_none() {
                anyhow::bail!("nothing to change: give --schedule and/or --max-rate");
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
