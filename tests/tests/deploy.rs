//! End to end: packages reach the computers of every site through their own
//! site's relay, verified — and nothing unverified is ever unpacked or run.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sitecast_tests::{files_under, payload, tar_gz, Central};

/// A launch package: `install.sh` writes its argument's file, then prints.
fn installer(marker: &std::path::Path, exit: i32) -> Vec<u8> {
    let script = format!(
        "#!/bin/sh\necho installed > '{}'\necho hello from $SITECAST_PACKAGE_NAME\nexit {exit}\n",
        marker.display()
    );
    tar_gz(&[
        ("install.sh", script.as_bytes(), 0o755),
        ("data.bin", &payload(300_000, 1), 0o644),
    ])
}

async fn launch_package(c: &Central, name: &str, body: Vec<u8>, extra: &str) -> Value {
    c.upload(
        &format!(
            "name={name}&version=1.0&action=launch&command=install.sh&fragment_size=64KiB{extra}"
        ),
        body,
    )
    .await
}

fn id(p: &Value) -> String {
    p["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_site_downloads_from_its_own_relay_and_an_unserved_subnet_from_central() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    c.add_site("lyon", &["127.2.0.0/16"]).await;
    let paris = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let lyon = c.relay("lyon", &["127.2.0.0/16"], "127.2.0.1").await;
    let marker = c.path("markers");
    std::fs::create_dir_all(&marker).unwrap();
    let body = installer(&marker.join("$(hostname)"), 0);
    let size = body.len() as u64;
    let p = launch_package(&c, "hello", body, "").await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.wait_held(&paris.id, &pid).await;
    c.wait_held(&lyon.id, &pid).await;

    let a1 = c.agent("pc-paris", "127.1.0.11").await;
    let a2 = c.agent("pc-lyon", "127.2.0.11").await;
    let a3 = c.agent("pc-roaming", "127.3.0.11").await;
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"all": true}),
    )
    .await;
    for a in [&a1, &a2] {
        assert_eq!(
            a.once_codes().await,
            vec![(pid.clone(), "SUCCESS".to_owned())]
        );
    }
    assert_eq!(
        c.status().await["fragment_bytes_to_agents"],
        0,
        "central served fragments to served sites"
    );
    // No relay serves 127.3.0.0/16: central is its source.
    assert_eq!(
        a3.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(c.status().await["fragment_bytes_to_agents"], size);

    let stats = c.stats(&pid).await;
    assert_eq!(stats["counts"], json!({"SUCCESS": 3}));
    assert!(stats["computers"][0]["output"]
        .as_str()
        .unwrap()
        .contains("hello from hello"));
    // Each relay received the package from central once and served it to its agent.
    for r in [&paris, &lyon] {
        c.wait_relay_counter(&r.id, "bytes_to_agents", size).await;
        let view = c.relay_view(&r.id).await;
        let from = view["bytes_from_central"].as_u64().unwrap();
        assert!(from >= size && from < size + 4096, "{view}");
        let to = view["bytes_to_agents"].as_u64().unwrap();
        assert!(to >= size && to < size + 4096, "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_relay_lacks_the_package_waits_and_takes_nothing_from_central() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    c.silent_relay("paris", &["127.1.0.0/16"], "127.1.0.1")
        .await;
    let marker = c.path("ran");
    let p = launch_package(&c, "hello", installer(&marker, 0), "").await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    let a = c.agent("pc", "127.1.0.11").await;
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"computers": [a.id]}),
    )
    .await;
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "waiting".to_owned())]
    );
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);
    assert!(!marker.exists());
    assert_eq!(c.stats(&pid).await["counts"], json!({"NOTIFIED": 1}));

    // With central_fallback = always, the same agent goes to central.
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"sites": ["paris"], "fallback": "always"}),
    )
    .await;
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert!(marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_fragment_is_fetched_again_from_the_next_source_and_never_unpacked() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let wide = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let floor = c.relay("paris", &["127.1.5.0/24"], "127.1.5.1").await;
    let original = payload(200_000, 7);
    let target = c.path("stored");
    let p = c
        .upload(
            &format!(
                "name=data&version=1&action=store&path={}&archive=none&fragment_size=64KiB",
                target.display()
            ),
            original.clone(),
        )
        .await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.wait_held(&wide.id, &pid).await;
    c.wait_held(&floor.id, &pid).await;
    // The most specific relay serves one corrupted fragment.
    let bad = floor.cache(&pid).join("2");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&bad, bytes).unwrap();

    let a = c.agent("pc", "127.1.5.20").await;
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"computers": [a.id]}),
    )
    .await;
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(std::fs::read(target.join("data")).unwrap(), original);
    assert_eq!(c.status().await["fragment_bytes_to_agents"], 0);
    // The bad fragment came from the other relay, and so did the rest: a relay
    // that served bad data is skipped for a while (and reported).
    let rest = original.len() as u64 - 65536;
    c.wait_relay_counter(&wide.id, "bytes_to_agents", rest)
        .await;
    let wide_view = c.relay_view(&wide.id).await;
    assert_eq!(wide_view["bytes_to_agents"], rest, "{wide_view}");
    let problems = c.problems(&floor.id).await;
    assert_eq!(problems["counts"], json!({"bad_data": 1}), "{problems}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_info_on_a_relay_never_runs_and_the_authentic_copy_is_used() {
    use base64::Engine;
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let good = c.path("good");
    let pwned = c.path("pwned");
    let p = c
        .upload(
            &format!(
                "name=cmd&version=1&action=execute&command=touch%20{}",
                good.display()
            ),
            vec![],
        )
        .await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.wait_held(&relay.id, &pid).await;
    // Payload changed, old signature kept.
    let info_path = relay.cache(&pid).join("info.dsse.json");
    let mut env: Value = serde_json::from_slice(&std::fs::read(&info_path).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    let forged = payload.replace(good.to_str().unwrap(), pwned.to_str().unwrap());
    assert_ne!(forged, payload);
    env["payload"] = json!(b64.encode(forged));
    std::fs::write(&info_path, serde_json::to_vec(&env).unwrap()).unwrap();

    let a = c.agent("pc", "127.1.0.11").await;
    c.post(
        &format!("/packages/{pid}/assignments"),
        json!({"computers": [a.id]}),
    )
    .await;
    assert_eq!(
        a.once_codes().await,
        vec![(pid.clone(), "SUCCESS".to_owned())]
    );
    assert!(good.exists());
    assert!(!pwned.exists(), "the forged command ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_store_paths_repeats_and_timeouts() {
    let c = Central::start().await;
    let a = c.agent("pc", "127.9.0.11").await;
    let assign = |pid: String| {
        let c = &c;
        let aid = a.id.clone();
        async move {
            c.post(
                &format!("/packages/{pid}/assignments"),
                json!({"computers": [aid]}),
            )
            .await;
        }
    };
    let m = c.path("m");
    // Exit 3 with success codes [0,3] → SUCCESS; exit 4 → ERR_EXIT_CODE.
    let three = id(&launch_package(&c, "three", installer(&m, 3), "&success_exit_codes=0,3").await);
    let four = id(&launch_package(&c, "four", installer(&m, 4), "&success_exit_codes=0,3").await);
    assign(three.clone()).await;
    assign(four.clone()).await;
    let mut codes = a.once_codes().await;
    codes.sort();
    let mut expected = vec![
        (three.clone(), "SUCCESS".to_owned()),
        (four.clone(), "ERR_EXIT_CODE".to_owned()),
    ];
    expected.sort();
    assert_eq!(codes, expected);
    assert_eq!(c.stats(&four).await["computers"][0]["exit_code"], 4);

    // A second run of a package that succeeded: ERR_ALREADY_SETUP, not run again.
    std::fs::remove_file(&m).unwrap();
    assign(three.clone()).await;
    assert_eq!(
        a.once_codes().await,
        vec![(three.clone(), "ERR_ALREADY_SETUP".to_owned())]
    );
    assert!(!m.exists());

    // Store creates its target path.
    let deep = c.path("a/b/c");
    let store = id(&c
        .upload(
            &format!("name=files&version=1&action=store&path={}", deep.display()),
            tar_gz(&[("etc/app.conf", b"x=1\n", 0o644)]),
        )
        .await);
    assign(store.clone()).await;
    assert_eq!(a.once_codes().await, vec![(store, "SUCCESS".to_owned())]);
    assert_eq!(std::fs::read(deep.join("etc/app.conf")).unwrap(), b"x=1\n");

    // A command past command_timeout_s is killed and reported.
    let slow = id(&c
        .upload("name=slow&version=1&action=execute&command=echo%20start;%20sleep%2060&command_timeout_s=1", vec![])
        .await);
    assign(slow.clone()).await;
    assert_eq!(
        a.once_codes().await,
        vec![(slow.clone(), "ERR_TIMEOUT".to_owned())]
    );
    let line = &c.stats(&slow).await["computers"][0];
    assert!(line["output"].as_str().unwrap().contains("start"), "{line}");
    assert!(
        line["output"]
            .as_str()
            .unwrap()
            .contains("killed after 1 s"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_that_escape_their_target_are_refused_and_write_nothing_outside() {
    let c = Central::start().await;
    let a = c.agent("pc", "127.9.0.12").await;
    let base = c.path("base");
    std::fs::create_dir_all(&base).unwrap();
    let abs = c.path("evil-absolute");
    let abs_name = abs.to_str().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tgz-parent", tar_gz(&[("../x", b"evil", 0o644)])),
        ("tgz-absolute", tar_gz(&[(abs_name, b"evil", 0o644)])),
        (
            "tgz-symlink",
            sitecast_tests::tar_gz_symlink("link", "../../outside"),
        ),
        ("zip-parent", sitecast_tests::zip(&[("../x", b"evil")])),
        ("zip-absolute", sitecast_tests::zip(&[(abs_name, b"evil")])),
    ];
    for (name, body) in cases {
        let target = base.join(name).join("target");
        let p = c
            .upload(
                &format!(
                    "name={name}&version=1&action=store&path={}",
                    target.display()
                ),
                body,
            )
            .await;
        let pid = id(&p);
        c.post(
            &format!("/packages/{pid}/assignments"),
            json!({"computers": [a.id]}),
        )
        .await;
        assert_eq!(
            a.once_codes().await,
            vec![(pid.clone(), "ERR_UNPACK".to_owned())],
            "{name}"
        );
        let outside: Vec<_> = files_under(&base.join(name))
            .into_iter()
            .filter(|p| !p.starts_with(&target))
            .collect();
        assert!(
            outside.is_empty(),
            "{name} wrote outside its target: {outside:?}"
        );
        assert!(!abs.exists(), "{name} wrote to an absolute path");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_drops_a_package_that_is_deleted() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let p = c
        .upload(
            "name=doomed&version=1&action=store&path=/opt/x&fragment_size=4KiB",
            payload(20_000, 3),
        )
        .await;
    let pid = id(&p);
    c.post(
        &format!("/packages/{pid}/activations"),
        json!({"all_sites": true}),
    )
    .await;
    c.wait_held(&relay.id, &pid).await;
    assert!(relay.cache(&pid).join("5").exists());
    let resp = c
        .http
        .delete(format!("{}/api/v1/packages/{pid}", c.url))
        .bearer_auth(&c.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let cache = relay.cache(&pid);
    sitecast_tests::wait_until("the relay to drop the deleted package", || {
        let gone = !cache.exists();
        async move { gone }
    })
    .await;
}
