//! End to end: delta replication (SPEC "Versions, deltas and relay content"). A
//! relay holding v1 receives v2 as a delta — counted on its QUIC connection —
//! and the result verifies; a corrupted delta and a base that is not what
//! central believes both fall back to plain fragments and still verify.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sitecast_tests::{payload, Central, Relay};

const FRAGMENT: u64 = 256 << 10;

/// v2: v1 with an insertion, a changed stretch and a new tail.
fn next_version(v1: &[u8]) -> Vec<u8> {
    let mut v2 = v1.to_vec();
    v2.splice(1_000_000..1_000_000, payload(20_000, 7));
    v2[2_500_000..2_500_300].copy_from_slice(&payload(300, 8));
    v2.extend_from_slice(&payload(50_000, 9));
    v2
}

struct Versions {
    c: Central,
    relay: Relay,
    v1: String,
    v2: String,
    v2_bytes: Vec<u8>,
}

/// A relay of site paris holding v1 (activated), and v2 uploaded (superseding
/// v1) but not yet activated.
async fn versions() -> Versions {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let v1_bytes = payload(4 << 20, 1);
    let v2_bytes = next_version(&v1_bytes);
    let query = |version: &str, extra: &str| {
        format!("name=app&version={version}&action=store&path=/opt/app&archive=none&fragment_size=256KiB{extra}")
    };
    let v1 = c.upload(&query("1", ""), v1_bytes).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.post(
        &format!("/packages/{v1}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    c.wait_held(&relay.id, &v1).await;
    let v2 = c
        .upload(&query("2", &format!("&supersedes={v1}")), v2_bytes.clone())
        .await;
    assert_eq!(v2["supersedes"], v1.as_str(), "{v2}");
    Versions {
        v2: v2["id"].as_str().unwrap().to_owned(),
        c,
        relay,
        v1,
        v2_bytes,
    }
}

impl Versions {
    /// Central's delta from v1 to v2 (computed now if not yet): its path and size.
    fn delta(&self) -> (std::path::PathBuf, u64) {
        let (b, t) = (self.v1.parse().unwrap(), self.v2.parse().unwrap());
        let files = &self.c.state.files;
        self.c
            .state
            .deltas
            .get_or_compute(
                (&b, &files.data_path(&b)),
                (&t, &files.data_path(&t)),
                FRAGMENT,
            )
            .unwrap()
    }

    async fn counters(&self) -> (u64, u64) {
        let view = self.c.relay_view(&self.relay.id).await;
        (
            view["bytes_from_central"].as_u64().unwrap(),
            view["quic_bytes_from_central"].as_u64().unwrap(),
        )
    }

    async fn replicate_v2(&self) -> (u64, u64) {
        let before = self.counters().await;
        self.c
            .post(
                &format!("/packages/{}/activations", self.v2),
                json!({"sites": ["paris"]}),
            )
            .await;
        self.c.wait_held(&self.relay.id, &self.v2).await;
        let after = self.counters().await;
        (after.0 - before.0, after.1 - before.1)
    }

    /// The relay's fragments of v2, concatenated, are v2's bytes.
    fn assert_v2_verifies(&self) {
        let dir = self.relay.cache(&self.v2);
        let count = self.v2_bytes.len().div_ceil(FRAGMENT as usize);
        let mut rebuilt = Vec::new();
        for i in 1..=count {
            rebuilt.extend(std::fs::read(dir.join(i.to_string())).unwrap());
        }
        assert!(rebuilt == self.v2_bytes, "v2 on the relay differs from v2");
    }

    fn info_len(&self) -> u64 {
        std::fs::metadata(self.c.state.files.info_path(&self.v2.parse().unwrap()))
            .unwrap()
            .len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_holding_v1_receives_v2_as_a_delta() {
    let v = versions().await;
    let (_, delta_len) = v.delta();
    let full = v.v2_bytes.len() as u64;
    assert!(delta_len < full / 20, "delta {delta_len} for {full} bytes");
    let (app, quic) = v.replicate_v2().await;
    // The application bytes are exactly the signed info and the delta.
    assert_eq!(app, v.info_len() + delta_len);
    // On the wire: that plus QUIC's own overhead (headers, acks, the activated
    // set and the report acknowledgements), a few percent and a few KiB.
    let budget = (v.info_len() + delta_len) * 105 / 100 + (24 << 10);
    assert!(quic <= budget, "{quic} bytes on the wire, budget {budget}");
    v.assert_v2_verifies();
    // v1 is still activated, so still held whole.
    let view = v.c.relay_view(&v.relay.id).await;
    let holdings: &Vec<Value> = view["holdings"].as_array().unwrap();
    assert!(holdings
        .iter()
        .any(|h| h["package_id"] == v.v1.as_str() && h["complete"] == true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_delta_falls_back_to_fragments_and_verifies() {
    let v = versions().await;
    let (path, delta_len) = v.delta();
    // Flip bytes in the middle of the cached delta, as a bad disk would.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (app, _) = v.replicate_v2().await;
    // The delta crossed, then fragments for what it could not give.
    assert!(app > v.info_len() + delta_len, "{app}");
    v.assert_v2_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_that_is_not_what_central_believes_falls_back_to_fragments() {
    let v = versions().await;
    // The relay's copy of v1 changed on disk after it was verified.
    let fragment = v.relay.cache(&v.v1).join("3");
    let mut bytes = std::fs::read(&fragment).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&fragment, &bytes).unwrap();
    let (_, delta_len) = v.delta();
    let (app, _) = v.replicate_v2().await;
    // The delta, plus at least the fragment built from the damaged stretch.
    assert!(app >= v.info_len() + delta_len + FRAGMENT, "{app}");
    assert!(
        app < v.v2_bytes.len() as u64,
        "{app}: it did not refetch everything"
    );
    v.assert_v2_verifies();
}
