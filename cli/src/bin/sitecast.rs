//! `sitecast`: the admin CLI. Errors are printed once, here, with a non-zero exit.

use clap::Parser;
use sitecast_cli::{run, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match run(cli, &mut out).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sitecast: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
