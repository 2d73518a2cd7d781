//! `sitecast-agent`: runs on each managed computer.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sitecast_agent::{enroll, once, run, EnrollOptions, Outcome};
use sitecast_common::jobs::JobKind;
use sitecast_common::power::MacAddr;

#[derive(Parser)]
#[command(name = "sitecast-agent", version, about = "Sitecast agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this computer with central.
    Enroll {
        #[arg(long)]
        dir: PathBuf,
        /// Central's API URL, e.g. https://central.example.com:8443.
        #[arg(long)]
        central: String,
        /// Central's CA certificate.
        #[arg(long)]
        ca: PathBuf,
        /// The enroll token.
        #[arg(long)]
        token: String,
        /// Source address of every connection, and this computer's address.
        #[arg(long)]
        bind: Option<IpAddr>,
        /// A tag for this computer (OCS's TAG; repeatable): central's groups,
        /// rules and `--tag` targeting choose computers by it.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Host name to report (default: the system's).
        #[arg(long)]
        hostname: Option<String>,
        /// The command that tells the computer's user about deployments and
        /// reads the answer (agent.toml's `notifier`; see the README).
        #[arg(long, value_name = "CMD")]
        notifier: Option<String>,
        /// A MAC address for Wake-on-LAN (repeatable; default: the interfaces').
        #[arg(long = "mac")]
        macs: Vec<MacAddr>,
    },
    /// Poll, deploy and uninstall what can be done now, urgent first then in central's
    /// order, report, poll again while jobs end (a job container's next job), and exit.
    Once {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Poll central and follow the download cycle (`[cycle]` in agent.toml) until interrupted.
    Run {
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
            token,
            bind,
            tags,
            hostname,
            notifier,
            macs,
        } => {
            let config = enroll(
                &dir,
                EnrollOptions {
                    central,
                    ca,
                    enroll_token: token,
                    bind,
                    tags,
                    hostname,
                    notifier,
                    macs,
                },
            )
            .await?;
            println!("enrolled as {}", config.computer_id);
        }
        Command::Once { dir } => {
            let round = once(&dir).await?;
            if round.outcomes.is_empty() {
                println!("nothing to deploy");
            }
            for ((id, outcome), kind) in round.outcomes.into_iter().zip(round.kinds) {
                let job = match kind {
                    JobKind::Install => id.to_string(),
                    JobKind::Uninstall => format!("{id} (uninstall)"),
                };
                match outcome {
                    Outcome::Done(code) => println!("{job}: {code}"),
                    Outcome::Waiting(why) => println!("{job}: waiting ({why})"),
                }
            }
        }
        Command::Run { dir } => run(&dir, stop_signal()).await?,
    }
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM (what systemd and `kill` send): `run` finishes
/// the step under way and exits cleanly.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the agent");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("stopping");
}
