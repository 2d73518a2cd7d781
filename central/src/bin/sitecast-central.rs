//! `sitecast-central`: initialise a central's directory, or serve it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sitecast_central::clock::SystemClock;
use sitecast_central::init::{self, InitOptions, DEFAULT_API_LISTEN, DEFAULT_QUIC_LISTEN};
use sitecast_central::{server, Central, Listeners};

#[derive(Parser)]
#[command(name = "sitecast-central", version, about = "Sitecast central server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new central: keys, CA and server certificate, tokens, central.toml.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = DEFAULT_API_LISTEN)]
        api_listen: SocketAddr,
        #[arg(long, default_value = DEFAULT_QUIC_LISTEN)]
        quic_listen: SocketAddr,
        /// Host name or IP address for the server certificate (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Serve the HTTPS API until SIGINT or SIGTERM (initialises DIR on first start).
    Serve {
        #[arg(long, default_value = "./sitecast-data")]
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
        Command::Init {
            dir,
            api_listen,
            quic_listen,
            names,
        } => {
            let mut opts = InitOptions {
                api_listen,
                quic_listen,
                ..InitOptions::default()
            };
            if !names.is_empty() {
                opts.names = names;
            }
            let layout = init::init(&dir, &opts)?;
            println!("initialised {}", layout.dir.display());
            println!("admin token:  {}", layout.admin_token().display());
            println!("enroll token: {}", layout.enroll_token().display());
            println!("CA:           {}", layout.ca_cert().display());
            Ok(())
        }
        Command::Serve { dir } => serve(dir).await,
    }
}

async fn serve(dir: PathBuf) -> anyhow::Result<()> {
    if !init::Layout::new(&dir).config().exists() {
        init::init(&dir, &InitOptions::default())
            .with_context(|| format!("initialising {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "initialised a new central");
    }
    let loaded = init::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
    let (api_listen, quic_listen) = (loaded.config.api_listen, loaded.config.quic_listen);
    let listeners = Listeners::bind(&loaded.layout, api_listen, quic_listen).await?;
    let central = Arc::new(Central::open(loaded, Arc::new(SystemClock))?);
    let addr = listeners.api_addr()?;
    let quic_addr = listeners.quic_addr()?;
    tracing::info!(%addr, %quic_addr, "serving the HTTPS API and the QUIC endpoint");
    // Machine-readable lines on stdout, for scripts and tests that bind port 0. A
    // closed stdout must not stop the server, so write errors are ignored.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "sitecast-central: serving https://{addr}");
        let _ = writeln!(out, "sitecast-central: quic {quic_addr}");
        let _ = out.flush();
    }
    sitecast_central::run(central, listeners, server::signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
