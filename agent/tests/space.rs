//! A nearly full disk, against the real `sitecast-agent` run in a mount namespace
//! of its own with a small tmpfs over one of its directories: a download that would
//! not fit beside its rebuild is refused `ERR_OUT_OF_SPACE` before a byte is fetched,
//! naming the directory and the bytes short; an archive whose unpack would not fit
//! is refused the same way before anything is unpacked or run, and the verified
//! fragments stay, so an admin's retry, once space is freed, finishes the job.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use sitecast_common::units::Size;
use sitecast_tests::{enc, payload, wait_status, zip, Agent, Central};

/// `sitecast-agent once` with a tmpfs of `size` mounted over `mount` (a directory
/// under the agent's), visible to that process alone and gone when it ends.
fn once_on_small_disk(agent: &Agent, mount: &Path, size: &str) -> Output {
    std::fs::create_dir_all(mount).unwrap();
    let mut unshare = Command::new("unshare");
    unshare.arg("--mount");
    // Root may mount in a new mount namespace; anyone else needs a user namespace too.
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        unshare.arg("--map-root-user");
    }
    let out = unshare
        .args([
            "sh",
            "-c",
            r#"mount -t tmpfs -o size="$1" tmpfs "$2" && exec "$3" once --dir "$4""#,
            "sh",
            size,
        ])
        .arg(mount)
        .arg(env!("CARGO_BIN_EXE_sitecast-agent"))
        .arg(&agent.dir)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

/// Uploads, activates everywhere and assigns through a container: (package, container).
async fn deploy(c: &Central, agent: &Agent, query: &str, body: Vec<u8>) -> (String, String) {
    let p = c.upload_everywhere(query, body).await;
    let container = c
        .post(
            "/containers",
            json!({"name": p, "packages": [p], "computers": [agent.id]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, container)
}

fn output_of(stats: &Value) -> String {
    stats["computers"][0]["output"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_does_not_fit_beside_its_rebuild_is_refused_before_it_starts() {
    let c = Central::start().await;
    let agent = c.agent("pc-1", "127.0.0.1").await;
    agent.configure(|config| config.keep_free = Some(Size::from_bytes(512 << 10)));
    let ran = c.path("ran");
    // 2 MiB to fetch and 2 MiB to rebuild do not fit in 3 MiB.
    let query = format!(
        "name=big&version=1&action=execute&archive=none&fragment_size=256KiB&command={}",
        enc(&format!("touch '{}'", ran.display()))
    );
    let (p, _) = deploy(&c, &agent, &query, payload(2 << 20, 7)).await;

    once_on_small_disk(&agent, &agent.dir.join("downloads"), "3m");
    let stats = wait_status(&c, &p, "ERR_OUT_OF_SPACE", 1).await;
    let output = output_of(&stats);
    let dir = agent.download_dir(&p);
    assert!(
        output.contains(&format!("not enough free space in {}", dir.display())),
        "{output}"
    );
    assert!(output.contains("bytes short"), "{output}");
    assert!(
        output.contains("the 0 of 8 fragments already verified are kept"),
        "{output}"
    );
    assert!(!ran.exists(), "the command ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpack_that_does_not_fit_keeps_the_download_for_the_retry_that_finishes_it() {
    let c = Central::start().await;
    let agent = c.agent("pc-1", "127.0.0.1").await;
    agent.configure(|config| config.keep_free = Some(Size::from_bytes(512 << 10)));
    let ran = c.path("ran");
    // A few KiB that unpack to 6 MiB, on a 4 MiB work disk.
    let zeros = vec![0u8; 3 << 20];
    let archive = zip(&[("a.bin", &zeros[..]), ("b.bin", &zeros[..])]);
    assert!(archive.len() < 64 << 10, "{}", archive.len());
    let query = format!(
        "name=roomy&version=1&action=execute&archive=zip&command={}",
        enc(&format!("touch '{}'", ran.display()))
    );
    let (p, container) = deploy(&c, &agent, &query, archive).await;

    once_on_small_disk(&agent, &agent.dir.join("work"), "4m");
    let stats = wait_status(&c, &p, "ERR_OUT_OF_SPACE", 1).await;
    let output = output_of(&stats);
    let work = agent.dir.join("work");
    assert!(
        output.contains(&format!("not enough free space in {}/{p}-", work.display())),
        "{output}"
    );
    assert!(output.contains("the unpack needs 6.0 MiB"), "{output}");
    assert!(!ran.exists(), "the command ran");
    // The verified download stays (the rebuilt file does not: it can be made again).
    let kept = agent.download_dir(&p);
    assert!(kept.join("1").is_file(), "the fragment went");
    assert!(kept.join("info.dsse.json").is_file(), "the info went");
    assert!(!kept.join("package").exists(), "the rebuilt file stayed");

    // Space freed (no tmpfs now): the admin's retry finishes it.
    c.post(&format!("/containers/{container}/retry"), json!({}))
        .await;
    agent.once_process(env!("CARGO_BIN_EXE_sitecast-agent"));
    wait_status(&c, &p, "SUCCESS", 1).await;
    assert!(ran.exists(), "the command did not run");
    assert!(!kept.exists(), "the download was not cleaned up");
}
