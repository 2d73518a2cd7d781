//! Archives that cannot fill a disk, against the real `sitecast-agent`: a 1 MB
//! tar.gz that inflates past a GiB is refused under the default cap (20 times the
//! package, at least 1 GiB) with `ERR_UNPACK` before its command runs, and leaves
//! nothing behind in the agent's `work/`, where it was being unpacked.
#![allow(clippy::unwrap_used)]

use std::io::Read;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use sitecast_tests::{enc, wait_status, Central};

/// A tar.gz holding one file of `len` zero bytes, compressed as it is built.
fn zero_bomb(len: u64) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "zeros.bin", std::io::repeat(0).take(len))
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_archive_that_inflates_past_its_cap_is_refused_and_leaves_nothing() {
    let c = Central::start().await;
    let agent = c.agent("pc-1", "127.0.0.1").await;
    let bomb = zero_bomb((1 << 30) + (64 << 20));
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
    let ran = c.path("ran");
    let query = format!(
        "name=bomb&version=1&action=execute&archive=tar.gz&command={}",
        enc(&format!("touch '{}'", ran.display()))
    );
    let p = c.upload_everywhere(&query, bomb).await;
    c.post(
        &format!("/packages/{p}/assignments"),
        json!({"computers": [agent.id]}),
    )
    .await;

    agent.once_process(env!("CARGO_BIN_EXE_sitecast-agent"));
    let stats: Value = wait_status(&c, &p, "ERR_UNPACK", 1).await;
    let output = stats["computers"][0]["output"].as_str().unwrap();
    assert!(
        output.contains(&format!("more than {} bytes", 1u64 << 30)),
        "{output}"
    );
    assert!(!ran.exists(), "the command ran");
    assert_eq!(files_in(&agent.dir.join("work")), Vec::<String>::new());
}
