//! `sitecast-agent`: runs on each managed computer.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sitecast_agent::{enroll, once, run, EnrollOptions, Outcome};

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
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Host name to report (default: the system's).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Poll once, deploy what can be deployed now in priority order, report and exit.
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
            for (id, outcome) in round.outcomes {
                match outcome {
                    Outcome::Done(code) => println!("{id}: {code}"),
                    Outcome::Waiting(why) => println!("{id}: waiting ({why})"),
                }
            }
        }
        Command::Run { dir } => {
            run(&dir, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?
        }
    }
    Ok(())
}
