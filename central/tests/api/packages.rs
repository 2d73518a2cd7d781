//! Packages: upload (parameters, archive kinds, limits), show, signed info,
//! fragments served byte for byte, uninstall procedure and delete.

use crate::harness::*;

#[tokio::test]
async fn an_uploaded_package_is_fragmented_signed_and_served_byte_for_byte() {
    let c = Central::start().await;
    let bytes = data(10_000);
    let params = [
        ("name", "Acme Editor"),
        ("version", "2.4.1"),
        ("action", "launch"),
        ("command", "setup.sh --quiet /S"),
        ("priority", "3"),
        ("archive", "none"),
        ("fragment_size", "4KiB"),
        ("os", "linux"),
        ("success_exit_codes", "0,3010"),
    ];
    let created = c.given_package(&params, Some(&bytes)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("acme-editor-2.4.1-"), "{id}");
    assert_eq!(created["name"], "Acme Editor");
    assert_eq!(created["version"], "2.4.1");
    assert_eq!(created["os"], "linux");
    assert_eq!(created["priority"], 3);
    assert_eq!(
        created["action"],
        json!({"kind": "launch", "command": "setup.sh --quiet /S"})
    );
    assert_eq!(created["archive"], "none");
    assert_eq!(created["size"], 10_000);
    assert_eq!(created["sha256"], sha256_hex(&bytes));
    assert_eq!(created["fragment_size"], 4096);
    assert_eq!(created["fragments"], 3);
    assert_eq!(created["success_exit_codes"], json!([0, 3010]));
    assert_eq!(time_of(&created["created_at"]), ts(T0));
    assert_eq!(
        created["activation"],
        json!({"all_sites": false, "sites": [], "central_fallback": "never"})
    );

    // show and list answer the same package.
    assert_eq!(c.show_package(&id).await.ok(StatusCode::OK), created);
    assert_eq!(
        c.list_packages().await.ok(StatusCode::OK),
        json!([created.clone()])
    );

    // The signed info, byte for byte.
    let reply = c.package_info(&id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.headers.get(CONTENT_TYPE).unwrap(), "application/json");
    let envelope = reply.body.to_vec();
    assert_eq!(sha256_hex(&envelope), created["info_sha256"]);
    let on_disk = std::fs::read(c.dir().join("packages").join(&id).join("info.dsse.json")).unwrap();
    assert_eq!(envelope, on_disk);
    let env: Value = serde_json::from_slice(&envelope).unwrap();
    assert_eq!(env["payloadType"], signing::INFO_PAYLOAD_TYPE);
    let key = c.trusted_key();
    assert_eq!(env["signatures"][0]["keyid"], signing::key_id(&key));

    let info = signing::verify_info(&envelope, &[key]).unwrap();
    assert_eq!(info.id().as_str(), id);
    assert_eq!(info.name(), "Acme Editor");
    assert_eq!(info.version(), "2.4.1");
    assert_eq!(info.priority().get(), 3);
    assert_eq!(info.os().as_str(), "linux");
    assert_eq!(info.archive().as_str(), "none");
    assert_eq!(info.success_exit_codes(), [0, 3010]);
    assert_eq!(info.issued_at(), ts(T0));
    let plan = info.plan();
    assert_eq!(plan.size(), 10_000);
    assert_eq!(plan.fragment_size(), 4096);
    assert_eq!(hex::encode(plan.sha256()), sha256_hex(&bytes));
    assert_eq!(plan.count(), 3);
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        assert_eq!(
            hex::encode(plan.fragments()[i]),
            sha256_hex(chunk),
            "fragment {}",
            i + 1
        );
    }
    // The file itself is kept whole on disk.
    assert_eq!(
        std::fs::read(c.dir().join("packages").join(&id).join("data")).unwrap(),
        bytes
    );
    // A key the info was not signed with does not verify it.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(signing::verify_info(&envelope, &[other]).is_err());
}

#[tokio::test]
async fn a_command_only_package_needs_no_body() {
    let c = Central::start().await;
    let created = c
        .given_package(
            &[
                ("name", "flush-dns"),
                ("version", "1"),
                ("action", "execute"),
                ("command", "ipconfig /flushdns && echo $HOME"),
            ],
            None,
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        created["action"],
        json!({"kind": "execute", "command": "ipconfig /flushdns && echo $HOME"})
    );
    assert_eq!(created["size"], 0);
    assert_eq!(created["fragments"], 0);
    assert_eq!(created["sha256"], sha256_hex(b""));
    assert_eq!(created["archive"], "none");
    assert_eq!(created["os"], "any");
    assert_eq!(created["priority"], 5);
    assert_eq!(created["fragment_size"], 4 << 20);
    assert_eq!(created["success_exit_codes"], json!([0]));

    let envelope = c.package_info(id).await.body;
    assert_eq!(sha256_hex(&envelope), created["info_sha256"]);
    let info = signing::verify_info(&envelope, &[c.trusted_key()]).unwrap();
    assert_eq!(info.plan().count(), 0);
    assert_eq!(info.plan().size(), 0);

    // A store package needs a path, and gets one.
    let stored = c
        .given_package(
            &[
                ("name", "wallpaper"),
                ("version", "1"),
                ("action", "store"),
                ("path", "/srv/wallpapers"),
            ],
            Some(b"not really a jpeg"),
        )
        .await;
    assert_eq!(
        stored["action"],
        json!({"kind": "store", "path": "/srv/wallpapers"})
    );
}

#[tokio::test]
async fn the_archive_kind_is_recognised_from_the_first_bytes() {
    let c = Central::start().await;
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend(data(100));
    let mut gz = vec![0x1f, 0x8b, 0x08];
    gz.extend(data(100));
    let z = c.given_package(&launch_params("z", &[]), Some(&zip)).await;
    assert_eq!(z["archive"], "zip");
    let g = c.given_package(&launch_params("g", &[]), Some(&gz)).await;
    assert_eq!(g["archive"], "tar.gz");
    let n = c
        .given_package(&launch_params("n", &[]), Some(&data(100)))
        .await;
    assert_eq!(n["archive"], "none");
    // An explicit archive wins over the bytes.
    let e = c
        .given_package(&launch_params("e", &[("archive", "none")]), Some(&zip))
        .await;
    assert_eq!(e["archive"], "none");
}

#[tokio::test]
async fn bad_upload_parameters_name_the_field() {
    let c = Central::start().await;
    // (parameter, value, what the error must name)
    let cases: &[(&str, &str, &[&str])] = &[
        ("priority", "11", &["priority", "11"]),
        ("priority", "-1", &["priority"]),
        ("priority", "high", &["priority", "high"]),
        ("action", "install", &["action", "install"]),
        ("fragment_size", "0", &["fragment_size"]),
        ("fragment_size", "2GiB", &["fragment_size"]),
        // One fragment per byte would make an info 64 times the package's size.
        ("fragment_size", "1", &["fragment_size", "4KiB"]),
        ("fragment_size", "128MiB", &["fragment_size", "64MiB"]),
        ("fragment_size", "lots", &["fragment_size"]),
        ("os", "beos", &["os", "beos"]),
        ("archive", "rar", &["archive", "rar"]),
        ("success_exit_codes", "0,ok", &["success_exit_codes", "ok"]),
        ("colour", "red", &["colour"]),
    ];
    for &(key, value, words) in cases {
        let reply = c
            .upload(
                &launch_params("app", &[(key, value)]),
                Some(Body::from(data(10))),
            )
            .await;
        reply.err_naming(StatusCode::BAD_REQUEST, words);
    }

    // Missing parameters.
    let missing: &[(&Query, &str)] = &[
        (
            &[("version", "1"), ("action", "execute"), ("command", "x")],
            "name",
        ),
        (
            &[("name", "a"), ("action", "execute"), ("command", "x")],
            "version",
        ),
        (
            &[("name", "a"), ("version", "1"), ("command", "x")],
            "action",
        ),
        (
            &[("name", "a"), ("version", "1"), ("action", "launch")],
            "command",
        ),
        (
            &[("name", "a"), ("version", "1"), ("action", "execute")],
            "command",
        ),
        (
            &[("name", "a"), ("version", "1"), ("action", "store")],
            "path",
        ),
    ];
    for (params, field) in missing {
        c.upload(params, Some(Body::from(data(10))))
            .await
            .err_naming(StatusCode::BAD_REQUEST, &[*field]);
    }
    c.upload(
        &launch_params("app", &[("command", "   ")]),
        Some(Body::from(data(10))),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["command"]);

    // launch runs a file of the package, and an archive needs one.
    c.upload(&launch_params("app", &[]), None)
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["action"]);
    c.upload(
        &[
            ("name", "a"),
            ("version", "1"),
            ("action", "execute"),
            ("command", "x"),
            ("archive", "zip"),
        ],
        None,
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["archive"]);

    // Nothing was kept, not even a temporary file.
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    let tmp: Vec<_> = std::fs::read_dir(c.dir().join("packages/tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let leftovers: Vec<_> = std::fs::read_dir(c.dir().join("packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_duplicate_name_and_version_is_a_conflict() {
    let c = Central::start().await;
    let first = c
        .given_package(&launch_params("app", &[]), Some(&data(10)))
        .await;
    c.upload(&launch_params("app", &[]), Some(Body::from(data(20))))
        .await
        .err_naming(StatusCode::CONFLICT, &["app", "1.0"]);
    // Another version of the same name is fine.
    let second = c
        .given_package(
            &launch_params("app", &[("version", "1.1")]),
            Some(&data(20)),
        )
        .await;
    assert_ne!(first["id"], second["id"]);
    let list = c.list_packages().await.ok(StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        c.show_package(first["id"].as_str().unwrap())
            .await
            .ok(StatusCode::OK),
        first
    );
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_413_and_leaves_nothing() {
    let c = Central::start_with_config(|toml| {
        let mut replaced = false;
        let out: Vec<String> = toml
            .lines()
            .map(|l| {
                if l.starts_with("max_package_size") {
                    replaced = true;
                    "max_package_size = \"1KiB\"".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        assert!(replaced, "no max_package_size in {toml}");
        out.join("\n")
    })
    .await;
    c.upload(&launch_params("big", &[]), Some(chunked(&data(5000), 700)))
        .await
        .err_naming(StatusCode::PAYLOAD_TOO_LARGE, &["1024"]);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    // The name and version are still free.
    let ok = c
        .given_package(&launch_params("big", &[]), Some(&data(1024)))
        .await;
    assert_eq!(ok["size"], 1024);
}

#[tokio::test]
async fn an_interrupted_upload_is_refused_and_leaves_nothing() {
    let c = Central::start().await;
    let parts: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(data(3000)),
        Err(std::io::Error::other("connection reset")),
    ];
    let body = Body::from_stream(futures_util::stream::iter(parts));
    c.upload(&launch_params("app", &[]), Some(body))
        .await
        .err(StatusCode::BAD_REQUEST);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    c.given_package(&launch_params("app", &[]), Some(&data(3000)))
        .await;
}

#[tokio::test]
async fn a_deleted_package_is_gone_with_its_assignments() {
    let c = Central::start().await;
    let pkg = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    let id = pkg["id"].as_str().unwrap().to_owned();
    let agent = c.given_agent("pc1", &["10.1.0.5"]).await;
    c.assign(&id, json!({"all": true})).await.ok(StatusCode::OK);

    let reply = c.delete_package(&id).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(reply.body.is_empty());

    c.show_package(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    c.package_info(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    c.admin_get(&format!("/api/v1/packages/{id}/stats"))
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    c.delete_package(&id)
        .await
        .err_naming(StatusCode::NOT_FOUND, &[&id]);
    assert_eq!(c.list_packages().await.ok(StatusCode::OK), json!([]));
    assert!(!c.dir().join("packages").join(&id).exists());

    // The agent is no longer handed it, nor served it.
    let poll = c.poll(&agent, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"], json!([]));
    c.agent_info(&agent, &id).await.err(StatusCode::NOT_FOUND);

    // The name and version can be used again.
    let again = c
        .given_package(&launch_params("app", &[]), Some(&data(100)))
        .await;
    assert_ne!(again["id"], pkg["id"]);
}

#[tokio::test]
async fn a_package_can_carry_its_uninstall_procedure() {
    let c = Central::start().await;
    let pkg = c
        .upload(
            &[
                ("name", "tool"),
                ("version", "2"),
                ("action", "execute"),
                ("command", "install-tool"),
                ("uninstall_command", "remove-tool --quiet"),
                ("uninstall_success_exit_codes", "0,3010"),
            ],
            None,
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(
        pkg["uninstall"],
        json!({"command": "remove-tool --quiet", "success_exit_codes": [0, 3010]})
    );
    let pid = pkg["id"].as_str().unwrap();
    // The procedure is in the signed info, which is what agents act on.
    let public = sitecast_common::signing::verifying_key_from_pem(
        &std::fs::read_to_string(c.layout.signing_pub()).unwrap(),
    )
    .unwrap();
    let info =
        sitecast_common::signing::verify_info(&c.package_info(pid).await.body, &[public]).unwrap();
    let uninstall = info.uninstall().unwrap();
    assert_eq!(uninstall.command, "remove-tool --quiet");
    assert_eq!(uninstall.success_exit_codes, vec![0, 3010]);

    c.upload(
        &[
            ("name", "tool"),
            ("version", "3"),
            ("action", "execute"),
            ("command", "x"),
            ("uninstall_command", "y"),
            ("uninstall_success_exit_codes", "0,ok"),
        ],
        None,
    )
    .await
    .err_naming(
        StatusCode::BAD_REQUEST,
        &["uninstall_success_exit_codes", "ok"],
    );
    c.upload(
        &[
            ("name", "tool"),
            ("version", "4"),
            ("action", "execute"),
            ("command", "x"),
            ("uninstall_success_exit_codes", "0"),
        ],
        None,
    )
    .await
    .err_naming(
        StatusCode::BAD_REQUEST,
        &["uninstall_success_exit_codes", "uninstall_command"],
    );
}
