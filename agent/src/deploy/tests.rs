//! Tests of where one package comes from: my subnets' relays longest prefix
//! first, relays in back-off skipped, a pending relay against the fallback to
//! central, and the per-source byte counts read back from the download directory.

use super::*;
use sitecast_common::wire::RelayRef;

const ME: &str = "10.1.2.7";
const HOUR: Duration = Duration::from_secs(3600);

fn relay(id: &str, subnet: &str) -> RelayRef {
    RelayRef {
        id: id.parse().unwrap(),
        url: format!("http://{id}"),
        subnets: vec![subnet.parse().unwrap()],
    }
}

fn polled(relays: Vec<RelayRef>, pending: bool, fallback: &str) -> PolledPackage {
    PolledPackage {
        id: "app-1".parse().unwrap(),
        priority: 5,
        info_sha256: "0".repeat(64),
        relays,
        relay_pending: pending,
        central_fallback: fallback.parse().unwrap(),
        kind: Default::default(),
        restart_timeout_s: 300,
        job: None,
        downgrade: None,
    }
}

/// The sources as names ("central" or the relay id), with nothing skipped.
fn names(p: &PolledPackage, waited: Duration) -> Vec<String> {
    names_skipping(p, waited, &[])
}

fn names_skipping(p: &PolledPackage, waited: Duration, skip: &[&str]) -> Vec<String> {
    let until: Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
    let skipped = |id: &RelayId| skip.contains(&id.as_str()).then_some(until);
    let found = match p.kind {
        JobKind::Install => fragment_sources(p, &[ME.parse().unwrap()], waited, &skipped),
        JobKind::Uninstall => info_sources(p, &[ME.parse().unwrap()], &skipped),
    };
    assert_eq!(
        found
            .skipped
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>(),
        skip.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    );
    found
        .sources
        .iter()
        .map(|s| match s {
            Source::Relay { id, .. } => id.to_string(),
            Source::Central => "central".to_owned(),
        })
        .collect()
}

/// A resumed download starts from the counts in DIR; a missing or garbled
/// file only starts them afresh.
#[test]
fn source_counts_are_read_back_from_the_download_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(SOURCES_FILE);
    assert!(load_sources(&path).is_empty());
    std::fs::write(
        &path,
        r#"[{"relay_id":null,"bytes":5},{"relay_id":"relay-a","bytes":7},{"relay_id":"relay-a","bytes":1}]"#,
    )
    .unwrap();
    let counts = load_sources(&path);
    assert_eq!(counts[&None], 5);
    assert_eq!(counts[&Some("relay-a".parse().unwrap())], 8);
    std::fs::write(&path, "not json").unwrap();
    assert!(load_sources(&path).is_empty());
}

#[test]
fn relays_of_my_subnets_longest_prefix_first_and_central_only_if_allowed() {
    let relays = vec![
        relay("relay-wide", "10.1.0.0/16"),
        relay("relay-floor", "10.1.2.0/24"),
        relay("relay-elsewhere", "10.2.0.0/16"),
    ];
    let never = polled(relays.clone(), false, "never");
    assert_eq!(names(&never, HOUR), ["relay-floor", "relay-wide"]);
    let always = polled(relays.clone(), false, "always");
    assert_eq!(
        names(&always, Duration::ZERO),
        ["relay-floor", "relay-wide", "central"]
    );
    // after: central becomes the next source once the agent has waited that long.
    let after = polled(relays, false, "after:2h");
    assert_eq!(names(&after, HOUR), ["relay-floor", "relay-wide"]);
    assert_eq!(
        names(&after, 2 * HOUR),
        ["relay-floor", "relay-wide", "central"]
    );
}

#[test]
fn a_pending_relay_means_waiting_unless_the_fallback_allows_central() {
    let pending = |fallback| polled(vec![], true, fallback);
    assert!(names(&pending("never"), 100 * HOUR).is_empty());
    assert!(names(&pending("after:2h"), HOUR).is_empty());
    assert!(names(&pending("after:2h"), 2 * HOUR - Duration::from_secs(1)).is_empty());
    assert_eq!(names(&pending("after:2h"), 2 * HOUR), ["central"]);
    assert_eq!(names(&pending("always"), Duration::ZERO), ["central"]);
}

#[test]
fn an_unserved_computer_uses_central_whatever_the_fallback() {
    for fallback in ["never", "always", "after:2h"] {
        let p = polled(
            vec![relay("relay-elsewhere", "10.2.0.0/16")],
            false,
            fallback,
        );
        assert_eq!(names(&p, Duration::ZERO), ["central"], "{fallback}");
    }
}

/// An uninstall job needs only the signed info, which central may always serve:
/// it never waits for a relay that lacks the package, whatever the fallback.
#[test]
fn an_uninstall_job_takes_its_info_from_its_relays_then_central() {
    let uninstall = |relays, pending, fallback| PolledPackage {
        kind: JobKind::Uninstall,
        ..polled(relays, pending, fallback)
    };
    let install = polled(vec![], true, "never");
    assert!(names(&install, 100 * HOUR).is_empty(), "installs wait");
    assert_eq!(
        names(&uninstall(vec![], true, "never"), Duration::ZERO),
        ["central"]
    );
    let relays = vec![relay("relay-floor", "10.1.2.0/24")];
    assert_eq!(
        names(&uninstall(relays.clone(), false, "never"), Duration::ZERO),
        ["relay-floor", "central"]
    );
    assert_eq!(
        names_skipping(
            &uninstall(relays, false, "never"),
            Duration::ZERO,
            &["relay-floor"]
        ),
        ["central"]
    );
}

#[test]
fn relays_in_back_off_are_skipped_but_do_not_open_central() {
    let relays = vec![
        relay("relay-wide", "10.1.0.0/16"),
        relay("relay-floor", "10.1.2.0/24"),
    ];
    let never = polled(relays.clone(), false, "never");
    assert_eq!(
        names_skipping(&never, HOUR, &["relay-floor"]),
        ["relay-wide"]
    );
    // Every relay skipped: wait, as when every one of them failed.
    assert!(names_skipping(&never, HOUR, &["relay-floor", "relay-wide"]).is_empty());
    let after = polled(relays, false, "after:2h");
    assert!(names_skipping(&after, HOUR, &["relay-floor", "relay-wide"]).is_empty());
    assert_eq!(
        names_skipping(&after, 3 * HOUR, &["relay-floor", "relay-wide"]),
        ["central"]
    );
}
