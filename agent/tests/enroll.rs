//! The real `sitecast-agent enroll` with `--mac` and `--tag`: the MAC
//! addresses (either notation) reach central and agent.toml's `mac_addresses`,
//! the tags reach central; a bad one is named and nothing is enrolled.
#![allow(clippy::unwrap_used)]

use sitecast_tests::Central;

async fn enroll(c: &Central, dir: &std::path::Path, macs: &[&str]) -> std::process::Output {
    let args: Vec<&str> = macs.iter().flat_map(|m| ["--mac", m]).collect();
    enroll_with(c, dir, &args).await
}

async fn enroll_with(c: &Central, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitecast-agent"));
    cmd.arg("enroll")
        .arg("--dir")
        .arg(dir)
        .args(["--central", &c.url, "--token", &c.enroll_token])
        .arg("--ca")
        .arg(c.layout.ca_cert())
        .args(["--bind", "127.1.0.5", "--hostname", "pc-mac"]);
    cmd.args(args);
    cmd.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_mac_reaches_central_and_agent_toml() {
    let c = Central::start().await;
    let dir = c.path("agent-mac");
    let out = enroll(&c, &dir, &["52-54-00-AB-CD-EF", "52:54:00:00:00:02"]).await;
    assert!(out.status.success(), "{out:?}");
    let config = sitecast_agent::AgentConfig::load(&sitecast_agent::Layout::new(&dir)).unwrap();
    let written: Vec<String> = config
        .mac_addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(written, ["52:54:00:ab:cd:ef", "52:54:00:00:00:02"]);
    // It holds the computer's bearer token: nobody else may read it.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("agent.toml"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "agent.toml is {mode:o}");
    let computers = c.get("/computers").await;
    assert_eq!(
        computers[0]["macs"],
        serde_json::json!(["52:54:00:ab:cd:ef", "52:54:00:00:00:02"])
    );

    let bad = c.path("agent-bad-mac");
    let out = enroll(&c, &bad, &["52:54:00:ab:cd:zz"]).await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--mac") && stderr.contains("52:54:00:ab:cd:zz"),
        "{stderr}"
    );
    assert!(!bad.join("agent.toml").exists());
    assert_eq!(c.get("/computers").await.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_tag_reaches_central_and_a_bad_one_is_named() {
    let c = Central::start().await;
    let dir = c.path("agent-tag");
    let out = enroll_with(&c, &dir, &["--tag", "kiosk", "--tag", "Shop-12"]).await;
    assert!(out.status.success(), "{out:?}");
    let computers = c.get("/computers").await;
    assert_eq!(
        computers[0]["tags"],
        serde_json::json!(["kiosk", "Shop-12"])
    );

    let bad = c.path("agent-bad-tag");
    let out = enroll_with(&c, &bad, &["--tag", "no way"]).await;
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no way"), "{stderr}");
    assert!(!bad.join("agent.toml").exists());
    assert_eq!(c.get("/computers").await.as_array().unwrap().len(), 1);
}
