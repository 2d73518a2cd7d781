//! What central answers a relay's requests on the replication link
//! (`domain::replication`): byte ranges of the info and of each fragment, and
//! why it has none or declines a delta.

use crate::harness::*;

fn pid(text: &str) -> PackageId {
    text.parse().unwrap()
}

impl Central {
    fn answer(&self, request: &ReplicationRequest) -> Answer {
        replication::answer(self.state.as_ref().unwrap(), request).unwrap()
    }

    /// A 2,500-byte `store` package in 1 KiB fragments (three, the last of 452 bytes).
    async fn given_stored(&self, name: &str, version: &str, extra: &[(&str, &str)]) -> String {
        let mut params = vec![
            ("name", name),
            ("version", version),
            ("action", "store"),
            ("path", "/opt/app"),
            ("archive", "none"),
            ("fragment_size", "1KiB"),
        ];
        params.extend_from_slice(extra);
        let p = self.given_package(&params, Some(&data(2500))).await;
        p["id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn infos_and_fragments_are_byte_ranges_of_their_files() {
    let c = Central::start().await;
    let id = c.given_stored("app", "1", &[]).await;
    let Answer::Send { path, offset, len } = c.answer(&ReplicationRequest::Info {
        package_id: pid(&id),
    }) else {
        panic!("no info sent");
    };
    assert_eq!((offset, len), (0, std::fs::metadata(&path).unwrap().len()));
    let envelope: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(envelope["signatures"].is_array(), "{envelope}");

    let ranges: Vec<(u64, u64)> = (1..=3)
        .map(|index| {
            match c.answer(&ReplicationRequest::Fragment {
                package_id: pid(&id),
                index,
            }) {
                Answer::Send { offset, len, .. } => (offset, len),
                other => panic!("fragment {index}: {other:?}"),
            }
        })
        .collect();
    assert_eq!(ranges, [(0, 1024), (1024, 1024), (2048, 452)]);
    for index in [0, 4] {
        let answer = c.answer(&ReplicationRequest::Fragment {
            package_id: pid(&id),
            index,
        });
        assert_eq!(
            answer,
            Answer::NotFound(format!("package '{id}' has no fragment {index}"))
        );
    }
    assert_eq!(
        c.answer(&ReplicationRequest::Info {
            package_id: pid("gone-1"),
        }),
        Answer::NotFound("package 'gone-1' not found".into())
    );
}

#[tokio::test]
async fn a_delta_is_sent_only_against_what_the_package_supersedes_and_when_smaller() {
    let c = Central::start().await;
    let v1 = c.given_stored("app", "1", &[]).await;
    let other = c.given_stored("other", "1", &[]).await;
    let v2 = c.given_stored("app", "2", &[("supersedes", &v1)]).await;
    let delta = |base: &str, lacking| ReplicationRequest::Delta {
        package_id: pid(&v2),
        base_id: pid(base),
        lacking,
    };
    assert_eq!(
        c.answer(&delta(&other, 2500)),
        Answer::Declined(format!("'{v2}' does not supersede '{other}'"))
    );
    // Same bytes in both versions: the delta is tiny, and smaller than what is lacking.
    let Answer::Send { offset, len, .. } = c.answer(&delta(&v1, 2500)) else {
        panic!("no delta sent");
    };
    assert!(offset == 0 && len > 0 && len < 2500, "{len}");
    match c.answer(&delta(&v1, len)) {
        Answer::Declined(reason) => assert!(reason.contains("not smaller"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
