//! Keys that rotate, end to end: `sitecast-central key rotate` twice and
//! `key revoke` while central serves; agents and relays take each new key set
//! from their pinned root without re-enrolling, a package signed by the newest
//! key installs, the revoked key's infos are signed again and still deploy, and
//! the revoked key verifies nothing any more. And the version floor: an older
//! version is refused `ERR_DOWNGRADE` unless its container says it is an
//! intended downgrade.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sitecast_central::clock::Clock;
use sitecast_central::keys;
use sitecast_common::{keyset, signing};
use sitecast_tests::{payload, wait_until, Central};

async fn package(c: &Central, name: &str, version: &str) -> String {
    let p = c
        .upload(
            &format!(
                "name={name}&version={version}&action=store&path={}&archive=none&fragment_size=16KiB",
                c.path(&format!("installed-{name}-{version}")).display()
            ),
            payload(40_000, 7),
        )
        .await;
    p["id"].as_str().unwrap().to_owned()
}

async fn deploy(c: &Central, relay: &str, id: &str) {
    c.post(
        &format!("/packages/{id}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    c.wait_held(relay, id).await;
}

async fn wait_version(c: &Central, version: u64) {
    wait_until("central takes the new key set up", || async {
        c.state.keys().set.version() == version
    })
    .await;
}

fn code_of(codes: &[(String, String)], id: &str) -> String {
    codes
        .iter()
        .find(|(p, _)| p == id)
        .map(|(_, code)| code.clone())
        .unwrap_or_else(|| panic!("no report for {id} in {codes:?}"))
}

#[tokio::test]
async fn keys_rotate_twice_and_a_revoked_key_verifies_nothing() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let agent = c.agent("pc-1", "127.1.0.11").await;
    let first = c.state.keys().keyid();

    let old = package(&c, "old", "1.0").await;
    deploy(&c, &relay.id, &old).await;
    let old_envelope = c.info_bytes(&old).await;

    let now = c.clock.now();
    let root = c.layout.root_key();
    keys::rotate(&c.layout, &root, keys::DEFAULT_EXPIRY, now).unwrap();
    keys::rotate(&c.layout, &root, keys::DEFAULT_EXPIRY, now).unwrap();
    wait_version(&c, 3).await;
    let newest = c.state.keys().keyid();
    assert_ne!(newest, first);

    // Signed by a key the agent never saw at enrollment.
    let new = package(&c, "new", "1.0").await;
    assert_eq!(
        signing::signers(&c.info_bytes(&new).await).unwrap(),
        vec![newest.clone()]
    );
    deploy(&c, &relay.id, &new).await;
    c.post(
        &format!("/packages/{new}/assignments"),
        json!({"all": true}),
    )
    .await;
    assert_eq!(code_of(&agent.once_codes().await, &new), "SUCCESS");

    keys::revoke(&c.layout, &root, &first, now).unwrap();
    wait_version(&c, 4).await;
    // Central signed the old package's info again, and the relay took it up.
    let resigned = c.info_bytes(&old).await;
    assert_ne!(resigned, old_envelope);
    assert_eq!(signing::signers(&resigned).unwrap(), vec![newest.clone()]);
    c.wait_held(&relay.id, &old).await;
    wait_until("the relay holds key set 4", || async {
        let bytes = std::fs::read(relay.dir.join("keyset.dsse.json")).unwrap_or_default();
        keyset::verify(&bytes, &c.state.keys().root).is_ok_and(|s| s.version() == 4)
    })
    .await;
    c.post(
        &format!("/packages/{old}/assignments"),
        json!({"all": true}),
    )
    .await;
    assert_eq!(code_of(&agent.once_codes().await, &old), "SUCCESS");

    // The agent holds set 4, under which the revoked key's envelope is refused.
    let held = std::fs::read(agent.dir.join("keyset.dsse.json")).unwrap();
    let set = keyset::verify(&held, &c.state.keys().root).unwrap();
    assert_eq!(set.version(), 4);
    assert!(!set.lists(&first));
    assert!(matches!(
        signing::verify_info(&old_envelope, set.trusted(now).unwrap()),
        Err(signing::VerifyError::UnknownKey { .. })
    ));
    let relay_keys = sitecast_relay::keys::load(&relay.dir).unwrap();
    assert!(signing::verify_info(&old_envelope, &relay_keys).is_err());
    assert!(signing::verify_info(&resigned, &relay_keys).is_ok());
}

#[tokio::test]
async fn an_older_version_is_refused_unless_its_container_is_an_intended_downgrade() {
    let c = Central::start().await;
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c.relay("paris", &["127.1.0.0/16"], "127.1.0.1").await;
    let agent = c.agent("pc-1", "127.1.0.11").await;
    let v2 = package(&c, "app", "2.0").await;
    let v1 = package(&c, "app", "1.10").await;
    let v1_old = package(&c, "app", "1.9").await;
    for id in [&v2, &v1, &v1_old] {
        deploy(&c, &relay.id, id).await;
    }
    c.post(&format!("/packages/{v2}/assignments"), json!({"all": true}))
        .await;
    assert_eq!(code_of(&agent.once_codes().await, &v2), "SUCCESS");

    let container = |name: &str, id: &str, downgrade: bool| {
        json!({"name": name, "packages": [id], "all": true,
               "auto_uninstall": false, "downgrade": downgrade})
    };
    c.post("/containers", container("rollback", &v1, false))
        .await;
    assert_eq!(code_of(&agent.once_codes().await, &v1), "ERR_DOWNGRADE");
    let stats: Value = c.stats(&v1).await;
    assert!(stats.to_string().contains("ERR_DOWNGRADE"), "{stats}");

    c.post("/containers", container("intended", &v1, true))
        .await;
    assert_eq!(code_of(&agent.once_codes().await, &v1), "SUCCESS");
    // The floor is 1.10 now: 1.9 is older still.
    c.post("/containers", container("older", &v1_old, false))
        .await;
    assert_eq!(code_of(&agent.once_codes().await, &v1_old), "ERR_DOWNGRADE");
}
