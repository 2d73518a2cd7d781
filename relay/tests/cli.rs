//! The real `sitecast-relay` binary's `enroll --max-disk --scrub-interval`,
//! `config --max-disk … --scrub-interval …` and `import`: what they write, and
//! errors that name what is wrong.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use sitecast_tests::Central;

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitecast-relay"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn config(dir: &Path) -> sitecast_relay::RelayConfig {
    sitecast_relay::RelayConfig::load(dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_scrub_are_set_at_enroll_and_changed_by_config_and_import_needs_keys() {
    let c = Central::start().await;
    let dir = c.path("relay");
    let d = dir.to_str().unwrap();
    let ca = c.layout.ca_cert();
    let enrolled = relay(&[
        "enroll",
        "--dir",
        d,
        "--central",
        "127.0.0.1:9",
        "--ca",
        ca.to_str().unwrap(),
        "--id",
        "relay-paris-1",
        "--token",
        "t",
        "--listen",
        "127.1.0.1:0",
        "--max-disk",
        "50GiB",
        "--scrub-interval",
        "1d",
    ]);
    assert!(enrolled.status.success(), "{}", text(&enrolled));
    // It holds the relay's bearer token: nobody else may read it, after a change either.
    let mode = || {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("relay.toml"))
                .unwrap()
                .permissions(),
        ) & 0o777
    };
    assert_eq!(mode(), 0o600);
    let c1 = config(&dir);
    assert_eq!(c1.max_disk_bytes(), Some(50 << 30));
    assert_eq!(
        c1.scrub_every(),
        Some(std::time::Duration::from_secs(86_400))
    );

    let changed = relay(&[
        "config",
        "--dir",
        d,
        "--max-disk",
        "2GiB",
        "--scrub-interval",
        "0s",
    ]);
    assert!(changed.status.success(), "{}", text(&changed));
    let c2 = config(&dir);
    assert_eq!(
        (c2.max_disk_bytes(), c2.scrub_every()),
        (Some(2 << 30), None)
    );
    // Nothing else moved.
    assert_eq!((c2.schedule, c2.max_rate), (c1.schedule, c1.max_rate));
    assert_eq!(mode(), 0o600);

    let lifted = relay(&["config", "--dir", d, "--max-disk", "unlimited"]);
    assert!(lifted.status.success(), "{}", text(&lifted));
    assert_eq!(config(&dir).max_disk_bytes(), None);
    assert!(!std::fs::read_to_string(dir.join("relay.toml"))
        .unwrap()
        .lines()
        .any(|l| l.starts_with("max_disk")));

    let bad = relay(&["config", "--dir", d, "--max-disk", "lots"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("lots"), "{}", text(&bad));

    // Never connected: no keys to verify an import with.
    let info = c.path("info.json");
    std::fs::write(&info, b"{}").unwrap();
    let refused = relay(&[
        "import",
        "--dir",
        d,
        "--info",
        info.to_str().unwrap(),
        "--data",
        info.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("no signing keys of central known"),
        "{}",
        text(&refused)
    );
}
