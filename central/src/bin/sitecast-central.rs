//! `sitecast-central`: initialise a central's directory, or serve it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sitecast_central::clock::{Clock, SystemClock};
use sitecast_central::init::{self, InitOptions, DEFAULT_API_LISTEN, DEFAULT_QUIC_LISTEN};
use sitecast_central::{keys, server, Central, Listeners};
use sitecast_common::units::Duration;

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
    /// The keys that sign infos, under the root key: list, rotate, revoke, renew.
    /// Works beside a serving central, which takes a new key set up within seconds.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// The key set: its version, expiry and keys (the active one marked).
    List {
        #[arg(long)]
        dir: PathBuf,
    },
    /// A new active signing key; the old ones stay trusted until revoked.
    Rotate {
        #[command(flatten)]
        root: RootArgs,
        /// How long the new key set is valid (duration grammar).
        #[arg(long, default_value = "365d")]
        expires: Duration,
    },
    /// Take a key out of the key set; the infos it signed are signed again with the active key.
    Revoke {
        #[command(flatten)]
        root: RootArgs,
        keyid: String,
    },
    /// The same keys under a new expiry.
    Renew {
        #[command(flatten)]
        root: RootArgs,
        #[arg(long, default_value = "365d")]
        expires: Duration,
    },
}

#[derive(clap::Args)]
struct RootArgs {
    #[arg(long)]
    dir: PathBuf,
    /// The root key, wherever it is kept (default DIR/keys/root.key).
    #[arg(long)]
    root: Option<PathBuf>,
}

impl RootArgs {
    fn paths(&self) -> (init::Layout, PathBuf) {
        let layout = init::Layout::new(&self.dir);
        let root = self.root.clone().unwrap_or_else(|| layout.root_key());
        (layout, root)
    }
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
        Command::Key { command } => key(command),
    }
}

fn key(command: KeyCommand) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let changed = match command {
        KeyCommand::List { dir } => {
            let layout = init::Layout::new(&dir);
            let (set, active) = keys::current(&layout, now)
                .with_context(|| format!("reading the keys of {}", dir.display()))?;
            println!("key set version {}, expires {}", set.version, set.expires);
            for k in set.keys {
                let mark = if k.keyid == active { "  (active)" } else { "" };
                println!("  {}{mark}", k.keyid);
            }
            return Ok(());
        }
        KeyCommand::Rotate { root, expires } => {
            let (layout, root) = root.paths();
            keys::rotate(&layout, &root, expires.into(), now)?
        }
        KeyCommand::Revoke { root, keyid } => {
            let (layout, root) = root.paths();
            keys::revoke(&layout, &root, &keyid, now)?
        }
        KeyCommand::Renew { root, expires } => {
            let (layout, root) = root.paths();
            keys::renew(&layout, &root, expires.into(), now)?
        }
    };
    println!(
        "key set version {}, expires {}; active key {}; keys {}",
        changed.version,
        changed.expires,
        changed.active,
        changed.keys.join(", ")
    );
    Ok(())
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
