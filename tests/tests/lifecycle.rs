//! A relay's content lifecycle end to end (SPEC "Versions, deltas and relay
//! content"): the scrub finds a fragment rotted on disk and it is fetched again;
//! `import` prestages a package from offline media with no fragment byte from
//! central, a running relay takes it up and agents install it from there, and
//! forged infos or tampered data are refused with nothing committed; the disk
//! quota evicts a kept delta base and never activated content; the relay
//! reports all of it as its health.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Value};
use sitecast_common::wire::{ErrorBody, RelayStatus};
use sitecast_relay::clock::ShiftedClock;
use sitecast_tests::{payload, wait_until, Central, Relay};

const FRAG: usize = 16 << 10;

async fn package(
    c: &Central,
    name: &str,
    version: &str,
    len: usize,
    seed: u32,
) -> (String, Vec<u8>) {
    let data = payload(len, seed);
    let p = c
        .upload(
            &format!(
                "name={name}&version={version}&action=store&path={}&archive=none&fragment_size=16KiB",
                c.path(&format!("installed-{name}")).display()
            ),
            data.clone(),
        )
        .await;
    (p["id"].as_str().unwrap().to_owned(), data)
}

async fn activate(c: &Central, id: &str) {
    c.post(
        &format!("/packages/{id}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
}

async fn health(c: &Central, relay: &str) -> Value {
    c.relay_view(relay).await["health"].clone()
}

fn fragments_on_disk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

fn set_config(dir: &Path, change: impl FnOnce(&mut sitecast_relay::RelayConfig)) {
    let mut config = sitecast_relay::RelayConfig::load(dir).unwrap();
    change(&mut config);
    config.save(dir).unwrap();
}

/// Writes what a USB disk would carry: the signed info and the data file.
fn media(c: &Central, name: &str, info: &[u8], data: &[u8]) -> (PathBuf, PathBuf) {
    let dir = c.path(&format!("usb-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (i, d) = (dir.join("info.dsse.json"), dir.join("data.bin"));
    std::fs::write(&i, info).unwrap();
    std::fs::write(&d, data).unwrap();
    (i, d)
}

async fn import(
    dir: &Path,
    info: &Path,
    data: &Path,
) -> Result<sitecast_relay::import::Imported, sitecast_relay::RelayError> {
    let (dir, info, data) = (dir.to_owned(), info.to_owned(), data.to_owned());
    tokio::task::spawn_blocking(move || sitecast_relay::import::import(&dir, &info, &data))
        .await
        .unwrap()
}

/// A central with one Paris relay that holds a 100 kB package whole.
async fn relay_holding_a_package() -> (Central, Relay, String, Vec<u8>) {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let r = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let (id, data) = package(&c, "app", "1", 100_000, 1).await;
    activate(&c, &id).await;
    c.wait_held(&r.id, &id).await;
    (c, r, id, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_answers_health_and_errors_in_their_wire_types() {
    // Central keeps running while the relay is asked.
    let (_central, r, id, data) = relay_holding_a_package().await;
    let http = reqwest::Client::new();
    let answer = http
        .get(format!("{}/v1/health", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let status: RelayStatus = answer.json().await.unwrap();
    assert_eq!(
        (status.status.as_str(), status.relay_id.as_str()),
        ("ok", r.id.as_str())
    );
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    let fragments = data.len().div_ceil(FRAG) as u32;
    assert_eq!(status.holdings.get(&id.parse().unwrap()), Some(&fragments));
    assert!(status.bytes_from_central >= data.len() as u64);
    for (path, says) in [
        ("/v1/packages/nothing-1/info", "not held by this relay"),
        ("/v1/nowhere", "no such route"),
    ] {
        let answer = http.get(format!("{}{path}", r.url)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        let body: ErrorBody = answer.json().await.unwrap();
        assert!(body.error.contains(says), "{path}: {}", body.error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_finds_a_flipped_byte_and_the_fragment_is_fetched_again() {
    let (c, r, id, data) = relay_holding_a_package().await;
    let before = c.relay_view(&r.id).await["bytes_from_central"]
        .as_u64()
        .unwrap();
    assert!(before >= data.len() as u64);
    // No scrub yet: the default interval is a week.
    let h = health(&c, &r.id).await;
    assert_eq!(h["last_scrub"], Value::Null, "{h}");
    assert_eq!(h["scrub_interval_s"], 7 * 86_400, "{h}");

    // The disk rots one bit of fragment 3.
    let path = r.cache(&id).join("3");
    let good = data[2 * FRAG..3 * FRAG].to_vec();
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, good);
    bytes[100] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    // Scrub every second, set on the running relay.
    set_config(&r.dir, |c| c.scrub_interval = Some("1s".parse().unwrap()));

    wait_until("the scrub to report a bad fragment", || async {
        health(&c, &r.id).await["scrub_bad_total"] == 1
    })
    .await;
    let h = health(&c, &r.id).await;
    assert!(h["last_scrub"].is_string(), "{h}");
    assert_eq!(h["scrub_interval_s"], 1, "{h}");
    // Fetched again from central: that fragment and nothing else.
    wait_until("the fragment to be good again", || async {
        std::fs::read(&path).ok().as_deref() == Some(&good[..])
    })
    .await;
    c.wait_held(&r.id, &id).await;
    c.wait_relay_counter(&r.id, "bytes_from_central", before + FRAG as u64)
        .await;
    assert_eq!(
        c.relay_view(&r.id).await["bytes_from_central"],
        before + FRAG as u64
    );
    // Later scrubs find everything good: the total stays at one.
    let first = h["last_scrub"].clone();
    wait_until("a clean scrub after the repair", || async {
        let h = health(&c, &r.id).await;
        h["last_scrub"] != first && h["scrub_bad"] == 0 && fragments_on_disk(&r.cache(&id)) == 7
    })
    .await;
    assert_eq!(health(&c, &r.id).await["scrub_bad_total"], 1);
    // The scrub's record survives a restart (DIR/scrub.json).
    let record: Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("scrub.json")).unwrap()).unwrap();
    assert_eq!(record["bad_total"], 1, "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_package_is_served_without_a_fragment_byte_from_central() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    // Monday 10:00, window on Saturdays: no fragment moves from central.
    let clock = Arc::new(ShiftedClock::default());
    clock.set_wall(jiff::civil::date(2026, 11, 23).at(10, 0, 0, 0));
    let r = c
        .relay_with(
            "paris",
            &["127.1.0.0/16"],
            "127.1.0.2",
            |config| config.schedule = Some("SAT 0:00-23:59".parse().unwrap()),
            Some(Arc::clone(&clock) as _),
        )
        .await;
    let (id, data) = package(&c, "big", "1", 200_000, 2).await;
    activate(&c, &id).await;
    // The signed info moves at any time; it is all the relay fetches.
    wait_until(
        "the relay to hold the info behind a closed window",
        || async {
            let view = c.relay_view(&r.id).await;
            view["replication"]["window_open"] == false
                && view["bytes_from_central"].as_u64().unwrap_or(0) > 0
                && r.cache(&id).join("info.dsse.json").exists()
        },
    )
    .await;
    let before = c.relay_view(&r.id).await["bytes_from_central"].clone();
    assert!(
        before.as_u64().unwrap() < FRAG as u64,
        "only the info: {before}"
    );

    let (info, file) = media(&c, "big", &c.info_bytes(&id).await, &data);
    let done = import(&r.dir, &info, &file).await.unwrap();
    assert_eq!((done.id.as_str(), done.fragments), (id.as_str(), 13));
    // The running relay takes it up and says it holds it whole.
    c.wait_held(&r.id, &id).await;
    assert_eq!(fragments_on_disk(&r.cache(&id)), 13);
    wait_until("the import notice to be taken up", || async {
        !r.dir.join("imports").join(&id).exists()
    })
    .await;
    let view = c.relay_view(&r.id).await;
    assert_eq!(view["replication"]["window_open"], false, "{view}");
    assert_eq!(view["bytes_from_central"], before, "{view}");

    // Saturday: the window opens. The planner knows the import holds it all, so
    // the next package (after it in the planner's order) is all that moves.
    let (next, next_data) = package(&c, "zz", "1", 20_000, 6).await;
    activate(&c, &next).await;
    clock.set_wall(jiff::civil::date(2026, 11, 28).at(10, 0, 0, 0));
    c.wait_held(&r.id, &next).await;
    let next_info = c.info_bytes(&next).await.len() as u64;
    let expected = before.as_u64().unwrap() + next_info + next_data.len() as u64;
    c.wait_relay_counter(&r.id, "bytes_from_central", expected)
        .await;
    assert_eq!(c.relay_view(&r.id).await["bytes_from_central"], expected);

    // An agent of the site installs it from the relay.
    let a = c.agent("pc", "127.1.0.20").await;
    c.post(
        &format!("/packages/{id}/assignments"),
        json!({"computers": [a.id]}),
    )
    .await;
    assert_eq!(
        a.once_codes().await,
        vec![(id.clone(), "SUCCESS".to_owned())]
    );
    c.wait_relay_counter(&r.id, "bytes_to_agents", data.len() as u64)
        .await;
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);
    assert_eq!(c.relay_view(&r.id).await["bytes_from_central"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_forged_infos_tampered_data_and_a_relay_without_keys() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let r = c.relay("paris", &["127.1.0.0/16"], "127.1.0.3").await;
    // The relay remembers central's keys from its first Welcome.
    wait_until("the relay to remember central's keys", || async {
        r.dir.join("signing-keys.json").exists()
    })
    .await;
    let (id, data) = package(&c, "tool", "1", 50_000, 3).await;
    let envelope = c.info_bytes(&id).await;
    let nothing_committed = || {
        assert!(!r.cache(&id).exists(), "something of {id} was committed");
        assert!(!r.dir.join("imports").join(&id).exists());
        let staging: Vec<_> = std::fs::read_dir(r.dir.join("cache/tmp"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("import-"))
            .collect();
        assert!(staging.is_empty(), "staging left behind: {staging:?}");
    };

    // A flipped byte in the data: fragment 2 is named, with both digests.
    let mut tampered = data.clone();
    tampered[20_000] ^= 0x01;
    let (info, file) = media(&c, "tampered", &envelope, &tampered);
    let err = import(&r.dir, &info, &file).await.unwrap_err().to_string();
    assert!(
        err.contains("fragment 2 (bytes 16384..32768)") && err.contains("SHA-256"),
        "{err}"
    );
    nothing_committed();

    // A truncated data file.
    let (info, file) = media(&c, "short", &envelope, &data[..40_000]);
    let err = import(&r.dir, &info, &file).await.unwrap_err().to_string();
    assert!(
        err.contains("40000 bytes, the signed info says 50000"),
        "{err}"
    );
    nothing_committed();

    // A forged info: the payload changed, the signature kept.
    let mut doc: Value = serde_json::from_slice(&envelope).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload_text =
        String::from_utf8(b64.decode(doc["payload"].as_str().unwrap()).unwrap()).unwrap();
    let forged_payload = payload_text.replace("\"priority\": 5", "\"priority\": 0");
    assert_ne!(forged_payload, payload_text);
    doc["payload"] = b64.encode(forged_payload.as_bytes()).into();
    let (info, file) = media(&c, "forged", &serde_json::to_vec(&doc).unwrap(), &data);
    let err = import(&r.dir, &info, &file).await.unwrap_err().to_string();
    assert!(
        err.contains("does not verify against central's signing keys"),
        "{err}"
    );
    nothing_committed();

    // The same info signed by a key that is not central's.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let parsed = sitecast_common::info::Info::from_json(payload_text.as_bytes()).unwrap();
    let resigned = sitecast_common::signing::sign_info(&stranger, &parsed);
    let (info, file) = media(&c, "stranger", &resigned, &data);
    let err = import(&r.dir, &info, &file).await.unwrap_err().to_string();
    assert!(
        err.contains("does not verify against central's signing keys"),
        "{err}"
    );
    nothing_committed();

    // A relay that never connected knows no keys and verifies nothing.
    let fresh = c.path("fresh-relay");
    sitecast_relay::enroll(
        &fresh,
        sitecast_relay::EnrollOptions {
            central: "127.0.0.1:9".into(),
            ca: c.layout.ca_cert(),
            id: "relay-fresh-1".parse().unwrap(),
            token: "t".into(),
            listen: "127.1.0.4:0".parse().unwrap(),
            schedule: None,
            max_rate: None,
            max_disk: None,
            scrub_interval: None,
        },
    )
    .unwrap();
    let (info, file) = media(&c, "fresh", &envelope, &data);
    let err = import(&fresh, &info, &file).await.unwrap_err().to_string();
    assert!(err.contains("no signing keys of central known"), "{err}");
    assert!(!fresh.join("cache").join(&id).exists());

    // The genuine article goes in.
    let done = import(&r.dir, &info, &file).await.unwrap();
    assert_eq!((done.fragments, done.bytes), (4, 50_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_quota_evicts_a_kept_base_and_never_activated_content() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let r = c.relay("paris", &["127.1.0.0/16"], "127.1.0.5").await;
    let (v1, _) = package(&c, "app", "1", 100_000, 4).await;
    let (v2, _) = package(&c, "app", "2", 120_000, 5).await;
    // v2 supersedes v1. This branch's upload cannot say so yet; central fills
    // the record's field from the signed info's `supersedes`, and the test
    // writes it there as that will.
    let store = &c.state.store;
    let mut record = store.package(&v2.parse().unwrap()).unwrap().unwrap();
    record.supersedes = Some(v1.parse().unwrap());
    store.delete_package(&record.id).unwrap();
    store.add_package(&record).unwrap();
    activate(&c, &v1).await;
    activate(&c, &v2).await;
    c.wait_held(&r.id, &v1).await;
    c.wait_held(&r.id, &v2).await;

    // v1 goes from central; v2 supersedes it, so the relay keeps it as a base.
    c.delete(&format!("/packages/{v1}")).await;
    wait_until("v1 to be kept as a delta base", || async {
        health(&c, &r.id).await["kept"] == json!([v1])
    })
    .await;
    assert_eq!(fragments_on_disk(&r.cache(&v1)), 7);
    let h = health(&c, &r.id).await;
    assert!(
        h["disk_used"].as_u64().unwrap() > 220_000,
        "both versions are on disk: {h}"
    );
    assert!(h["disk_free"].as_u64().unwrap() > 0, "{h}");
    assert!(
        h["version"]
            .as_str()
            .unwrap()
            .starts_with("sitecast-relay "),
        "{h}"
    );

    // 175 KiB: both versions exceed it, v2 alone does not. v1 is evicted.
    set_config(&r.dir, |c| c.max_disk = Some("175KiB".parse().unwrap()));
    wait_until("v1 to be evicted", || async {
        let h = health(&c, &r.id).await;
        !r.cache(&v1).exists()
            && h["kept"] == json!([])
            && h["evicted"] == 1
            && h["max_disk"] == 175 * 1024
            && h["disk_used"].as_u64().unwrap() < 175 * 1024
    })
    .await;
    assert_eq!(health(&c, &r.id).await["over_quota"], false);
    c.wait_held(&r.id, &v2).await;
    assert_eq!(fragments_on_disk(&r.cache(&v2)), 8);

    // 64 KiB: what is activated alone exceeds it. Reported, and kept.
    set_config(&r.dir, |c| {
        c.max_disk = Some("64KiB".parse().unwrap());
    });
    wait_until("the relay to report it is over its quota", || async {
        health(&c, &r.id).await["over_quota"] == true
    })
    .await;
    assert_eq!(fragments_on_disk(&r.cache(&v2)), 8);
    c.wait_held(&r.id, &v2).await;
    assert_eq!(health(&c, &r.id).await["evicted"], 1);
}
