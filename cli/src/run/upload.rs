//! `package create`: the package file streamed to central, with a progress bar
//! on a terminal, and the package's settings as query parameters.

use std::io::IsTerminal;

use futures_util::StreamExt;

use crate::args::CreateArgs;
use crate::client::{Answer, Client};
use crate::error::CliError;

pub(super) async fn create(client: &Client, args: &CreateArgs) -> Result<Answer, CliError> {
    let mut query: Vec<(&str, String)> = vec![
        ("name", args.name.clone()),
        ("version", args.version.clone()),
        ("action", args.action.clone()),
    ];
    let optional = [
        ("command", &args.command),
        ("path", &args.path),
        ("priority", &args.priority),
        ("fragment_size", &args.fragment_size),
        ("os", &args.os),
        ("success_exit_codes", &args.success_codes),
        ("archive", &args.archive),
        ("supersedes", &args.supersedes),
        ("command_timeout_s", &args.command_timeout),
        ("uninstall_command", &args.uninstall_command),
        (
            "uninstall_success_exit_codes",
            &args.uninstall_success_codes,
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let notify = [
        ("notify_text", &args.notify_text),
        ("notify_countdown", &args.notify_countdown),
        ("done_action_text", &args.done_action_text),
    ];
    for (k, v) in notify {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    for (k, on) in [
        ("notify_can_abort", args.notify_can_abort),
        ("notify_can_delay", args.notify_can_delay),
    ] {
        if on {
            query.push((k, "true".to_owned()));
        }
    }
    if args.restart {
        query.push(("restart", "true".into()));
    }
    let body = match &args.file {
        None => reqwest::Body::from(Vec::new()),
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(CliError::io(path))?;
            let len = file.metadata().await.map_err(CliError::io(path))?.len();
            let bar = progress_bar(len);
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10).inspect(
                move |chunk| {
                    if let Ok(c) = chunk {
                        bar.inc(c.len() as u64);
                        if bar.position() >= len {
                            bar.finish_and_clear();
                        }
                    }
                },
            );
            reqwest::Body::wrap_stream(stream)
        }
    };
    client.post_body("/packages", &query, body).await
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
