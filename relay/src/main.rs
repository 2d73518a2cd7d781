//! `sitecast-relay`: the per-site cache that replicates packages from central.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sitecast-relay", version, about = "Sitecast site relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write DIR/relay.toml for a relay added on central.
    Enroll,
    /// Change the schedule or cap of a relay.
    Config,
    /// Replicate from central and serve agents.
    Serve,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Enroll => "enroll",
        Command::Config => "config",
        Command::Serve => "serve",
    };
    anyhow::bail!("sitecast-relay {name} is not available in this build yet (relays arrive with the relay/agent milestone)")
}
