//! Replication windows and caps end to end: a relay whose window is closed moves
//! no fragment bytes (priority 0 aside), then replicates as soon as the window
//! opens — with the relay's wall clock moved, not waited for — and a changed
//! `relay.toml` takes effect without a restart.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{json, Value};
use sitecast_relay::clock::ShiftedClock;
use sitecast_tests::{payload, wait_until, Central};
use tokio::sync::watch;

struct ScheduledRelay {
    id: String,
    dir: std::path::PathBuf,
    clock: Arc<ShiftedClock>,
    _stop: watch::Sender<bool>,
}

async fn relay(c: &Central, site: &str, subnet: &str, ip: &str, schedule: &str) -> ScheduledRelay {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let created = c
        .post(
            "/relays",
            json!({"site": site, "subnets": [subnet], "url": format!("http://{}", listener.local_addr().unwrap())}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let dir = c.path(&id);
    sitecast_relay::enroll(
        &dir,
        sitecast_relay::EnrollOptions {
            central: format!("127.0.0.1:{}", c.quic.port()),
            ca: c.layout.ca_cert(),
            id: id.parse().unwrap(),
            token: created["token"].as_str().unwrap().to_owned(),
            listen: listener.local_addr().unwrap(),
            schedule: Some(schedule.parse().unwrap()),
            max_rate: None,
            max_disk: None,
            scrub_interval: None,
        },
    )
    .unwrap();
    let clock = Arc::new(ShiftedClock::default());
    // Monday 10:00: outside "SAT 0:00-23:59".
    clock.set_wall(jiff::civil::date(2026, 11, 23).at(10, 0, 0, 0));
    let (stop, mut rx) = watch::channel(false);
    let (d, k) = (dir.clone(), Arc::clone(&clock));
    tokio::spawn(async move {
        sitecast_relay::serve_with_clock(
            &d,
            listener,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
            k,
        )
        .await
        .unwrap();
    });
    ScheduledRelay {
        id,
        dir,
        clock,
        _stop: stop,
    }
}

fn holding(view: &Value, package: &str) -> Value {
    view["holdings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["package_id"] == package)
        .cloned()
        .unwrap()
}

fn fragments_on_disk(dir: &std::path::Path, package: &str) -> usize {
    std::fs::read_dir(dir.join("cache").join(package))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_moves_no_fragment_bytes_until_it_opens() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let r = relay(&c, "paris", "127.1.0.0/16", "127.1.0.1", "SAT 0:00-23:59").await;
    let normal = c
        .upload(
            "name=normal&version=1&action=store&path=/opt/n&fragment_size=16KiB",
            payload(200_000, 1),
        )
        .await;
    let urgent = c
        .upload(
            "name=urgent&version=1&action=store&path=/opt/u&fragment_size=16KiB&priority=0",
            payload(50_000, 2),
        )
        .await;
    let (normal, urgent) = (
        normal["id"].as_str().unwrap(),
        urgent["id"].as_str().unwrap(),
    );
    for p in [normal, urgent] {
        c.post(
            &format!("/packages/{p}/activations"),
            json!({"sites": ["paris"]}),
        )
        .await;
    }
    // Priority 0 is urgent: it replicates outside the window.
    c.wait_held(&r.id, urgent).await;
    // The relay says its window is closed, and it already holds the other
    // package's signed info (control data moves at any time) but no fragment.
    wait_until(
        "the relay to report a closed window and the info",
        || async {
            let view = c.relay_view(&r.id).await;
            view["replication"]["window_open"] == false
                && r.dir
                    .join("cache")
                    .join(normal)
                    .join("info.dsse.json")
                    .exists()
        },
    )
    .await;
    let view = c.relay_view(&r.id).await;
    assert_eq!(holding(&view, normal)["held"], 0, "{view}");
    assert_eq!(fragments_on_disk(&r.dir, normal), 0);
    assert_eq!(holding(&view, normal)["complete"], false);

    // Saturday: the window opens and replication proceeds.
    r.clock
        .set_wall(jiff::civil::date(2026, 11, 28).at(10, 0, 0, 0));
    c.wait_held(&r.id, normal).await;
    assert_eq!(fragments_on_disk(&r.dir, normal), 13);
    wait_until("the relay to report an open window", || async {
        c.relay_view(&r.id).await["replication"]["window_open"] == true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_schedule_and_cap_take_effect_without_a_restart() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let r = relay(&c, "paris", "127.1.0.0/16", "127.1.0.2", "SAT 0:00-23:59").await;
    let p = c
        .upload(
            "name=later&version=1&action=store&path=/opt/l&fragment_size=16KiB",
            payload(100_000, 3),
        )
        .await;
    let pid = p["id"].as_str().unwrap();
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    wait_until(
        "the relay to hold the info and report a closed window",
        || async {
            c.relay_view(&r.id).await["replication"]["window_open"] == false
                && r.dir
                    .join("cache")
                    .join(pid)
                    .join("info.dsse.json")
                    .exists()
        },
    )
    .await;
    assert_eq!(fragments_on_disk(&r.dir, pid), 0);
    // What `sitecast-relay config --schedule ... --max-rate ...` does.
    let mut config = sitecast_relay::RelayConfig::load(&r.dir).unwrap();
    config.schedule = Some("MON 0:00-23:59".parse().unwrap());
    config.max_rate = Some("20MB/s".parse().unwrap());
    config.save(&r.dir).unwrap();
    c.wait_held(&r.id, pid).await;
    wait_until("the relay to report its new cap", || async {
        c.relay_view(&r.id).await["replication"]["max_rate"] == 20_000_000
    })
    .await;
}
