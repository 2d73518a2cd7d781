//! `sitecast-agent`: runs on each managed computer.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sitecast-agent", version, about = "Sitecast agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this computer with central.
    Enroll,
    /// Poll once, deploy what was given, report and exit.
    Once,
    /// Poll forever.
    Run,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Enroll => "enroll",
        Command::Once => "once",
        Command::Run => "run",
    };
    anyhow::bail!("sitecast-agent {name} is not available in this build yet (agents arrive with the relay/agent milestone)")
}
