//! End to end: sources that fail are abandoned and the download goes on from the
//! next one. A relay that stalls, trickles, refuses connections or serves bad
//! data is given up on within the agent's deadlines, skipped for a back-off
//! period (remembered in the agent's DIR) and reported to central, which shows
//! it in `GET /relays`. An agent stopped mid-download fetches only what it lacks;
//! `central_fallback = after:…` counts from when the agent first saw the package.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sitecast_common::units::{Duration as Span, Rate};
use sitecast_tests::{
    closed_port, fragment_of, package_reply, payload, wait_until, Agent, Central, Relay, Reply,
};

/// Fragment size of the test packages.
const FRAG: usize = 64 << 10;

/// Deadlines small enough for tests (yet with room for a loaded machine's real
/// relay): stalled after 3 s without a byte, trickling below 1 KiB/s over 4 s,
/// and a failed relay skipped for the rest of the test.
fn quick(agent: &Agent) {
    agent.tune_downloads(|d| {
        d.connect_timeout = Span::from_secs(3);
        d.stall_timeout = Span::from_secs(3);
        d.min_rate = Rate::from_bytes_per_sec(1024);
        d.min_rate_window = Span::from_secs(4);
        d.backoff = Span::from_secs(3600);
        d.backoff_max = Span::from_secs(3600);
    });
}

fn id(p: &Value) -> String {
    p["id"].as_str().unwrap().to_owned()
}

/// A site with a real relay serving 127.1.0.0/16 and a stored package of four
/// fragments it holds; returns the relay, the package id and its data.
async fn site_with_package(c: &Central, name: &str) -> (Relay, String, Vec<u8>) {
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let (pid, data) = store_package(c, name, 1).await;
    c.wait_held(&relay.id, &pid).await;
    (relay, pid, data)
}

/// A `store` package of 200 000 bytes (four fragments), activated everywhere.
async fn store_package(c: &Central, name: &str, seed: u32) -> (String, Vec<u8>) {
    let data = payload(200_000, seed);
    let target = c.path(&format!("stored-{name}"));
    let p = c
        .upload(
            &format!(
                "name={name}&version=1&action=store&path={}&archive=none&fragment_size=64KiB",
                target.display()
            ),
            data.clone(),
        )
        .await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    (pid, data)
}

async fn assign(c: &Central, pid: &str, agent: &Agent) {
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"computers": [agent.id]}),
    )
    .await;
}

fn stored(c: &Central, name: &str) -> Vec<u8> {
    std::fs::read(c.path(&format!("stored-{name}")).join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_trickling_relays_are_abandoned_and_the_next_source_completes() {
    let c = Central::start().await;
    let (relay, pid, data) = site_with_package(&c, "app").await;
    let info = c.info_bytes(&pid).await;

    // The most specific relay sends headers, then nothing; the next one sends
    // a byte every 100 ms (never silent for 3 s, but 10 B/s).
    let (i, d) = (info.clone(), data.clone());
    let stall = c
        .fake_relay("paris", &["127.1.5.0/24"], "127.1.5.1", move |path| match (
            fragment_of(path),
            package_reply(path, &i, &d, FRAG),
        ) {
            (Some(_), Some(body)) => Reply::Stall(body.len()),
            (None, Some(body)) => Reply::Bytes(body),
            _ => Reply::Status(404),
        })
        .await;
    let (i, d) = (info.clone(), data.clone());
    let trickle = c
        .fake_relay("paris", &["127.1.4.0/22"], "127.1.4.1", move |path| match (
            fragment_of(path),
            package_reply(path, &i, &d, FRAG),
        ) {
            (Some(_), Some(body)) => Reply::Trickle(body, Duration::from_millis(100)),
            (None, Some(body)) => Reply::Bytes(body),
            _ => Reply::Status(404),
        })
        .await;
    c.pretend_holds(&stall.id, &[&pid]).await;
    c.pretend_holds(&trickle.id, &[&pid]).await;

    let a = c.agent("pc", "127.1.5.20").await;
    quick(&a);
    assign(&c, &pid, &a).await;
    let started = Instant::now();
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    // 3 s of stall plus a 4 s window of trickle; generous for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stored(&c, "app"), data);

    // Each misbehaving relay was tried once, for fragment 1, then skipped.
    let first = format!("/v1/packages/{pid}/fragments/1");
    assert_eq!(
        stall.paths(),
        vec![format!("/v1/packages/{pid}/info"), first.clone()]
    );
    assert_eq!(trickle.paths(), vec![first]);
    assert!(trickle.bytes_served() < 1024, "{}", trickle.bytes_served());
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);
    c.wait_relay_counter(&relay.id, "bytes_to_agents", data.len() as u64)
        .await;

    // Central knows, per relay: kind, detail, computer, package.
    let p = c.problems(&stall.id).await;
    assert_eq!(p["count"], 1, "{p}");
    assert_eq!(p["counts"], json!({"stalled": 1}));
    assert_eq!(p["last"]["kind"], "stalled");
    assert_eq!(p["last"]["computer_id"], a.id.as_str());
    assert_eq!(p["last"]["package_id"], pid.as_str());
    let detail = p["last"]["detail"].as_str().unwrap();
    assert!(detail.contains("no byte for 3 s"), "{detail}");
    let p = c.problems(&trickle.id).await;
    assert_eq!(p["counts"], json!({"stalled": 1}), "{p}");
    let detail = p["last"]["detail"].as_str().unwrap();
    assert!(detail.contains("trickling"), "{detail}");
    assert_eq!(c.problems(&relay.id).await["count"], 0);

    // The back-off is in DIR: the next run (a restarted agent) skips both at once.
    let backoff = std::fs::read_to_string(a.dir.join("backoff.json")).unwrap();
    assert!(
        backoff.contains(&stall.id) && backoff.contains(&trickle.id),
        "{backoff}"
    );
    let (second, second_data) = store_package(&c, "tool", 2).await;
    c.wait_held(&relay.id, &second).await;
    c.pretend_holds(&stall.id, &[&pid, &second]).await;
    c.pretend_holds(&trickle.id, &[&pid, &second]).await;
    assign(&c, &second, &a).await;
    assert_eq!(
        a.once_codes().await,
        vec![(second.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(stored(&c, "tool"), second_data);
    assert_eq!(stall.paths().len(), 2, "{:?}", stall.paths());
    assert_eq!(trickle.paths().len(), 1, "{:?}", trickle.paths());
    assert_eq!(c.problems(&stall.id).await["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_and_bad_data_relays_are_skipped_and_reported() {
    let c = Central::start().await;
    let (relay, pid, data) = site_with_package(&c, "app").await;
    let info = c.info_bytes(&pid).await;

    // Most specific first: a port nobody listens on, a relay with a wrong info,
    // one whose fragments are corrupted, one whose fragments are cut short.
    let refusing = c
        .register_relay(
            "paris",
            &["127.1.5.0/24"],
            &format!("http://127.1.5.1:{}", closed_port("127.1.5.1").await),
        )
        .await;
    let (i, d) = (info.clone(), data.clone());
    let wrong_info = c
        .fake_relay("paris", &["127.1.4.0/23"], "127.1.4.1", move |path| match (
            fragment_of(path),
            package_reply(path, &i, &d, FRAG),
        ) {
            (None, Some(mut body)) => {
                body.extend_from_slice(b" ");
                Reply::Bytes(body)
            }
            (_, Some(body)) => Reply::Bytes(body),
            _ => Reply::Status(404),
        })
        .await;
    let (i, d) = (info.clone(), data.clone());
    let corrupt = c
        .fake_relay("paris", &["127.1.0.0/21"], "127.1.3.1", move |path| match (
            fragment_of(path),
            package_reply(path, &i, &d, FRAG),
        ) {
            (Some(_), Some(mut body)) => {
                body[100] ^= 0xff;
                Reply::Bytes(body)
            }
            (None, Some(body)) => Reply::Bytes(body),
            _ => Reply::Status(404),
        })
        .await;
    let (i, d) = (info.clone(), data.clone());
    let short = c
        .fake_relay("paris", &["127.1.0.0/20"], "127.1.2.1", move |path| match (
            fragment_of(path),
            package_reply(path, &i, &d, FRAG),
        ) {
            (Some(_), Some(body)) => Reply::Bytes(body[..body.len() / 2].to_vec()),
            (None, Some(body)) => Reply::Bytes(body),
            _ => Reply::Status(404),
        })
        .await;
    for r in [&refusing, &wrong_info.id, &corrupt.id, &short.id] {
        c.pretend_holds(r, &[&pid]).await;
    }

    let a = c.agent("pc", "127.1.5.20").await;
    quick(&a);
    assign(&c, &pid, &a).await;
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(stored(&c, "app"), data);
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);

    // The info: refused, then a wrong one, then the corrupting relay's (good) one.
    let info_path = format!("/v1/packages/{pid}/info");
    let first = format!("/v1/packages/{pid}/fragments/1");
    assert_eq!(wrong_info.paths(), vec![info_path.clone()]);
    assert_eq!(corrupt.paths(), vec![info_path, first.clone()]);
    assert_eq!(short.paths(), vec![first]);
    c.wait_relay_counter(&relay.id, "bytes_to_agents", data.len() as u64)
        .await;

    let expect = [
        (refusing.as_str(), "refused", "cannot connect"),
        (
            wrong_info.id.as_str(),
            "bad_data",
            "served an info whose SHA-256",
        ),
        (corrupt.id.as_str(), "bad_data", "fragment 1 has SHA-256"),
        (
            short.id.as_str(),
            "bad_data",
            "ended after 32768 of the 65536 bytes",
        ),
    ];
    for (relay_id, kind, words) in expect {
        let p = c.problems(relay_id).await;
        assert_eq!(p["count"], 1, "{relay_id}: {p}");
        assert_eq!(p["counts"], json!({ kind: 1 }), "{relay_id}: {p}");
        assert_eq!(p["last"]["computer_id"], a.id.as_str());
        let detail = p["last"]["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{relay_id}: {detail}");
        assert!(
            detail.contains(relay_id),
            "the detail names the relay: {detail}"
        );
    }
    assert_eq!(c.problems(&relay.id).await["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_stopped_mid_download_fetches_only_the_missing_fragments() {
    const K: u32 = 3;
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let data = payload(8 * FRAG - 1000, 5);
    let (pid, data) = {
        let target = c.path("stored-big");
        let p = c
            .upload(
                &format!(
                    "name=big&version=1&action=store&path={}&archive=none&fragment_size=64KiB",
                    target.display()
                ),
                data.clone(),
            )
            .await;
        (id(&p), data)
    };
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    let info = c.info_bytes(&pid).await;
    // Serves fragments 1..=K; past them it stalls until the gate opens.
    let gate = Arc::new(AtomicBool::new(false));
    let (open, i, d) = (Arc::clone(&gate), info.clone(), data.clone());
    let fake = c
        .fake_relay("paris", &["127.1.0.0/16"], "127.1.0.2", move |path| {
            let Some(body) = package_reply(path, &i, &d, FRAG) else {
                return Reply::Status(404);
            };
            match fragment_of(path) {
                Some(n) if n > K && !open.load(Ordering::SeqCst) => Reply::Silent,
                _ => Reply::Bytes(body),
            }
        })
        .await;
    c.pretend_holds(&fake.id, &[&pid]).await;
    let a = c.agent("pc", "127.1.0.30").await;
    assign(&c, &pid, &a).await;

    // The agent is stopped while it waits for fragment K+1, like a kill.
    let dir = a.dir.clone();
    let run = tokio::spawn(async move { sitecast_agent::once(&dir).await });
    let next = format!("/v1/packages/{pid}/fragments/{}", K + 1);
    wait_until("the agent to ask for fragment K+1", || {
        let asked = fake.paths().contains(&next);
        async move { asked }
    })
    .await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let mut held: Vec<String> = std::fs::read_dir(a.download_dir(&pid))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<u32>().is_ok())
        .collect();
    held.sort();
    assert_eq!(held, ["1", "2", "3"]);
    let before = fake.bytes_served();
    assert_eq!(before, info.len() as u64 + u64::from(K) * FRAG as u64);
    let asked_before = fake.paths().len();

    // Restarted: only fragments K+1.. are fetched, and the info is not fetched again.
    gate.store(true, Ordering::SeqCst);
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(
        std::fs::read(c.path("stored-big").join("big")).unwrap(),
        data
    );
    let missing = data.len() as u64 - u64::from(K) * FRAG as u64;
    assert_eq!(fake.bytes_served() - before, missing);
    let asked: Vec<u32> = fake.paths()[asked_before..]
        .iter()
        .map(|p| fragment_of(p).unwrap())
        .collect();
    assert_eq!(asked, [4, 5, 6, 7, 8]);
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);
    // The bytes per source were counted across the restart: all of them, once.
    let stats = c.stats(&pid).await;
    assert_eq!(
        stats["computers"][0]["sources"],
        json!([{"relay_id": fake.id, "bytes": data.len()}]),
        "{stats}"
    );
    // Nothing went wrong with the relay: it was neither reported nor skipped.
    assert_eq!(c.problems(&fake.id).await["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_fallback_after_counts_from_when_the_agent_first_saw_the_package() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    // The site's relay never replicates anything: the agent must wait for it.
    c.silent_relay("paris", &["127.1.0.0/16"], "127.1.0.1")
        .await;
    let data = payload(100_000, 9);
    let p = c
        .upload(
            &format!(
                "name=late&version=1&action=store&path={}&archive=none&fragment_size=64KiB",
                c.path("stored-late").display()
            ),
            data.clone(),
        )
        .await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"sites": ["paris"], "fallback": "after:1h"}),
    )
    .await;
    let a = c.agent("pc", "127.1.0.11").await;
    assign(&c, &pid, &a).await;

    // First sight: it waits, and remembers when it first saw the package.
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "waiting".to_owned())]
    );
    let seen = a.dir.join("downloads").join(format!("{pid}.first-seen"));
    let first = std::fs::read_to_string(&seen).unwrap();
    // Polling again does not restart the clock.
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "waiting".to_owned())]
    );
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), first);
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);

    // An hour and a half after it first saw it, central is allowed.
    let first: jiff::Timestamp = first.trim().parse().unwrap();
    let earlier = first - jiff::SignedDuration::from_mins(90);
    std::fs::write(&seen, earlier.to_string()).unwrap();
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(
        std::fs::read(c.path("stored-late").join("late")).unwrap(),
        data
    );
    assert_eq!(
        c.status().await["fragment_bytes_to_agents"],
        data.len() as u64
    );
    assert!(!seen.exists(), "the first sighting is forgotten once done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_problem_report_central_refuses_does_not_stop_the_deployment() {
    let c = Central::start().await;
    let (relay, pid, data) = site_with_package(&c, "app").await;
    // This relay answers 500, and is deleted from central just before it does:
    // the agent's problem report gets a 404.
    let me = Arc::new(std::sync::OnceLock::<String>::new());
    let (state, who) = (Arc::clone(&c.state), Arc::clone(&me));
    let doomed = c
        .fake_relay("paris", &["127.1.5.0/24"], "127.1.5.1", move |_| {
            if let Some(id) = who.get() {
                state.store.delete_relay(&id.parse().unwrap()).unwrap();
            }
            Reply::Status(500)
        })
        .await;
    me.set(doomed.id.clone()).unwrap();
    c.pretend_holds(&doomed.id, &[&pid]).await;

    let a = c.agent("pc", "127.1.5.20").await;
    quick(&a);
    assign(&c, &pid, &a).await;
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(stored(&c, "app"), data);
    assert_eq!(doomed.paths(), vec![format!("/v1/packages/{pid}/info")]);
    let relays = c.get("/relays").await;
    assert_eq!(relays.as_array().unwrap().len(), 1, "{relays}");
    assert_eq!(relays[0]["id"], relay.id.as_str());
    // The agent still skips the relay it gave up on, report or not.
    let backoff = std::fs::read_to_string(a.dir.join("backoff.json")).unwrap();
    assert!(backoff.contains(&doomed.id), "{backoff}");
    assert!(backoff.contains("answered 500"), "{backoff}");
}

/// A relay that redirects is a relay that failed: the agent never follows it to the
/// other host, reports the relay and takes the package from the next source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_never_follows_a_relays_redirect() {
    let c = Central::start().await;
    let (relay, pid, data) = site_with_package(&c, "app").await;
    let info = c.info_bytes(&pid).await;
    // Where the redirects point: it would serve the right bytes, and must get no request.
    let (i, d) = (info.clone(), data.clone());
    let elsewhere = sitecast_tests::FakeRelay::start("127.1.6.1", move |path| {
        package_reply(path, &i, &d, FRAG).map_or(Reply::Status(404), Reply::Bytes)
    })
    .await;
    let target = elsewhere.url.clone();
    let redirecting = c
        .fake_relay("paris", &["127.1.5.0/24"], "127.1.5.1", move |path| {
            Reply::Redirect(format!("{target}{path}"))
        })
        .await;
    c.pretend_holds(&redirecting.id, &[&pid]).await;

    let a = c.agent("pc", "127.1.5.20").await;
    quick(&a);
    assign(&c, &pid, &a).await;
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(stored(&c, "app"), data);
    assert_eq!(
        elsewhere.paths(),
        Vec::<String>::new(),
        "the redirect was followed"
    );
    assert_eq!(redirecting.paths().len(), 1, "{:?}", redirecting.paths());
    let p = c.problems(&redirecting.id).await;
    assert_eq!(p["count"], 1, "{p}");
    assert_eq!(c.problems(&relay.id).await["count"], 0);
}

/// A relay that serves steadily just above `min_rate` is still given up on once a
/// fragment takes longer than `fragment_timeout`, and the next source completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_slower_than_its_deadline_is_abandoned_however_steady() {
    let c = Central::start().await;
    let (relay, pid, data) = site_with_package(&c, "app").await;
    let info = c.info_bytes(&pid).await;
    // About 1,000 B/s, above the floor of 512 B/s: a 64 KiB fragment would take a minute.
    let (i, d) = (info.clone(), data.clone());
    let steady = c
        .fake_relay("paris", &["127.1.5.0/24"], "127.1.5.1", move |path| match (
            fragment_of(path),
            package_reply(path, &i, &d, FRAG),
        ) {
            (Some(_), Some(body)) => Reply::Trickle(body, Duration::from_millis(1)),
            (None, Some(body)) => Reply::Bytes(body),
            _ => Reply::Status(404),
        })
        .await;
    c.pretend_holds(&steady.id, &[&pid]).await;
    let a = c.agent("pc", "127.1.5.20").await;
    quick(&a);
    a.tune_downloads(|d| {
        d.min_rate = Rate::from_bytes_per_sec(512);
        d.fragment_timeout = Span::from_secs(3);
    });
    assign(&c, &pid, &a).await;
    let started = Instant::now();
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stored(&c, "app"), data);
    let p = c.problems(&steady.id).await;
    assert_eq!(p["counts"], json!({"stalled": 1}), "{p}");
    let detail = p["last"]["detail"].as_str().unwrap();
    assert!(detail.contains("fragment_timeout"), "{detail}");
    assert_eq!(c.problems(&relay.id).await["count"], 0);
}
