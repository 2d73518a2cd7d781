//! The store below the routes: what it must refuse whatever a route asks.

use crate::harness::*;

/// Enrollment names a computer `<hostname slug>-<6 random hex digits>`, so two
/// agents with the same host name (cloned images, "ubuntu", "localhost") draw the
/// same id once in 16.7 million pairs; among 5 000 such machines that is more
/// likely than not. The store must refuse the second record rather than replace
/// the first and hand both agents one identity.
#[test]
fn the_store_never_merges_two_computers_that_draw_the_same_id() {
    use crate::harness::store::{ComputerRecord, SledStore, Store};
    use crate::harness::tokens;

    let tmp = tempfile::tempdir().unwrap();
    let store = SledStore::open(&tmp.path().join("db")).unwrap();
    let record = |hostname: &str| ComputerRecord {
        id: "ubuntu-0a1b2c".parse().unwrap(),
        hostname: hostname.to_owned(),
        os: "linux".to_owned(),
        addresses: vec!["10.1.0.5".parse().unwrap()],
        enrolled_at: ts(T0),
        last_seen: Some(ts(T0)),
        tags: Vec::new(),
        macs: vec![],
        pending: false,
    };
    store
        .add_computer(&record("first"), tokens::digest("token-of-the-first"))
        .unwrap();
    let second = store.add_computer(&record("second"), tokens::digest("token-of-the-second"));
    assert!(
        second.is_err(),
        "a second computer with an existing id was accepted"
    );
    let id = record("first").id;
    assert_eq!(store.computer(&id).unwrap().unwrap().hostname, "first");
    assert_eq!(store.computers().unwrap().len(), 1);
    assert!(store
        .token_owner(tokens::digest("token-of-the-second"))
        .unwrap()
        .is_none());
}
