//! What central answers a relay's requests on the replication link
//! (`domain::replication`): byte ranges of the info and of each fragment, and
//! why it has none or declines a delta; nothing to a relay of a site the package
//! is not activated for.

use crate::harness::*;

fn pid(text: &str) -> PackageId {
    text.parse().unwrap()
}

impl Central {
    /// The answer to the relay of site paris (made on first use).
    fn answer_to(&self, relay: &str, request: &ReplicationRequest) -> Answer {
        let relay: RelayId = relay.parse().unwrap();
        replication::answer(self.state.as_ref().unwrap(), &relay, request).unwrap()
    }

    async fn paris_relay(&self) -> String {
        let relays = self.list_relays().await.ok(StatusCode::OK);
        if let Some(r) = relays
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["site"] == "paris")
        {
            return r["id"].as_str().unwrap().to_owned();
        }
        self.given_site("paris", &["10.1.0.0/16"]).await;
        self.given_relay("paris", &["10.1.0.0/16"], "http://paris")
            .await
            .0
    }

    /// A 10,000-byte `store` package in 4 KiB fragments (three, the last of 1,808 bytes).
    async fn given_stored(&self, name: &str, version: &str, extra: &[(&str, &str)]) -> String {
        let mut params = vec![
            ("name", name),
            ("version", version),
            ("action", "store"),
            ("path", "/opt/app"),
            ("archive", "none"),
            ("fragment_size", "4KiB"),
        ];
        params.extend_from_slice(extra);
        let p = self.given_package(&params, Some(&data(10_000))).await;
        let id = p["id"].as_str().unwrap().to_owned();
        self.paris_relay().await;
        self.activate(&id, json!({"sites": ["paris"]}))
            .await
            .ok(StatusCode::OK);
        id
    }
}

#[tokio::test]
async fn infos_and_fragments_are_byte_ranges_of_their_files() {
    let c = Central::start().await;
    let id = c.given_stored("app", "1", &[]).await;
    let paris = c.paris_relay().await;
    let Answer::Send { path, offset, len } = c.answer_to(
        &paris,
        &ReplicationRequest::Info {
            package_id: pid(&id),
        },
    ) else {
        panic!("no info sent");
    };
    assert_eq!((offset, len), (0, std::fs::metadata(&path).unwrap().len()));
    let envelope: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(envelope["signatures"].is_array(), "{envelope}");

    let ranges: Vec<(u64, u64)> = (1..=3)
        .map(|index| {
            match c.answer_to(
                &paris,
                &ReplicationRequest::Fragment {
                    package_id: pid(&id),
                    index,
                },
            ) {
                Answer::Send { offset, len, .. } => (offset, len),
                other => panic!("fragment {index}: {other:?}"),
            }
        })
        .collect();
    assert_eq!(ranges, [(0, 4096), (4096, 4096), (8192, 1808)]);
    for index in [0, 4] {
        let answer = c.answer_to(
            &paris,
            &ReplicationRequest::Fragment {
                package_id: pid(&id),
                index,
            },
        );
        assert_eq!(
            answer,
            Answer::NotFound(format!("package '{id}' has no fragment {index}"))
        );
    }
    assert_eq!(
        c.answer_to(
            &paris,
            &ReplicationRequest::Info {
                package_id: pid("gone-1"),
            }
        ),
        Answer::NotFound("package 'gone-1' not found".into())
    );
}

#[tokio::test]
async fn a_delta_is_sent_only_against_what_the_package_supersedes_and_when_smaller() {
    let c = Central::start().await;
    let v1 = c.given_stored("app", "1", &[]).await;
    let other = c.given_stored("other", "1", &[]).await;
    let v2 = c.given_stored("app", "2", &[("supersedes", &v1)]).await;
    let paris = c.paris_relay().await;
    let delta = |base: &str, lacking| ReplicationRequest::Delta {
        package_id: pid(&v2),
        base_id: pid(base),
        lacking,
    };
    assert_eq!(
        c.answer_to(&paris, &delta(&other, 10_000)),
        Answer::Declined(format!("'{v2}' does not supersede '{other}'"))
    );
    // Same bytes in both versions: the delta is tiny, and smaller than what is lacking.
    let Answer::Send { offset, len, .. } = c.answer_to(&paris, &delta(&v1, 10_000)) else {
        panic!("no delta sent");
    };
    assert!(offset == 0 && len > 0 && len < 10_000, "{len}");
    match c.answer_to(&paris, &delta(&v1, len)) {
        Answer::Declined(reason) => assert!(reason.contains("not smaller"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// A relay of another site gets nothing of a package activated for paris alone: not
/// its info, a fragment or a delta, until it is activated there too.
#[tokio::test]
async fn a_relay_gets_only_what_is_activated_for_its_site() {
    let c = Central::start().await;
    let v1 = c.given_stored("app", "1", &[]).await;
    let v2 = c.given_stored("app", "2", &[("supersedes", &v1)]).await;
    c.given_site("lyon", &["10.2.0.0/16"]).await;
    let (lyon, _) = c.given_relay("lyon", &["10.2.0.0/16"], "http://lyon").await;
    let refused =
        |id: &str| Answer::NotFound(format!("package '{id}' is not activated for site 'lyon'"));
    let requests = [
        ReplicationRequest::Info {
            package_id: pid(&v2),
        },
        ReplicationRequest::Fragment {
            package_id: pid(&v2),
            index: 1,
        },
        ReplicationRequest::Delta {
            package_id: pid(&v2),
            base_id: pid(&v1),
            lacking: 10_000,
        },
    ];
    for request in &requests {
        assert_eq!(c.answer_to(&lyon, request), refused(&v2), "{request:?}");
    }
    c.activate(&v2, json!({"sites": ["lyon"]}))
        .await
        .ok(StatusCode::OK);
    for request in &requests {
        assert!(
            matches!(c.answer_to(&lyon, request), Answer::Send { .. }),
            "{request:?}"
        );
    }
    // An unknown relay (deleted since it connected) gets nothing at all.
    let gone = c.answer_to("relay-gone-1", &requests[0]);
    assert!(matches!(gone, Answer::NotFound(reason) if reason.contains("no longer exists")));
}
