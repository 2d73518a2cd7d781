//! Tests of the space rules: checks that keep `keep_free` free and name what is
//! short, and a guard that reads the disk again only when its forecast is short.

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::path::Path;

use super::*;

thread_local! {
    /// What the test probe answers, and how often it was asked.
    static FREE: Cell<u64> = const { Cell::new(0) };
    static READS: Cell<u32> = const { Cell::new(0) };
}

fn probe(_: &Path) -> io::Result<u64> {
    READS.with(|r| r.set(r.get() + 1));
    Ok(FREE.with(Cell::get))
}

fn space(free: u64, keep_free: u64) -> Space {
    FREE.with(|f| f.set(free));
    READS.with(|r| r.set(0));
    Space { keep_free, probe }
}

#[test]
fn check_keeps_keep_free_free_and_names_the_directory_and_the_bytes_short() {
    let s = space(100, 10);
    assert!(s.check(Path::new("/d"), "the download", 90).is_ok());
    let Err(SpaceError::Short(short)) = s.check(Path::new("/d"), "the download", 91) else {
        panic!("91 + 10 > 100 fits");
    };
    assert_eq!(short.short(), 1);
    let text = short.to_string();
    assert!(text.contains("in /d: the download needs"), "{text}");
    assert!(text.contains("1 bytes short"), "{text}");
}

#[test]
fn guard_reads_the_disk_again_only_when_the_forecast_is_short() {
    let s = space(100, 10);
    let mut guard = s.guard(Path::new("/d"), "the unpack").unwrap();
    assert_eq!(READS.with(Cell::get), 1);
    for _ in 0..9 {
        guard.charge(10).unwrap();
    }
    assert_eq!(
        READS.with(Cell::get),
        1,
        "90 of 90 usable bytes: no new read"
    );
    // Someone freed space meanwhile: seen before giving up.
    FREE.with(|f| f.set(1000));
    guard.charge(10).unwrap();
    assert_eq!(READS.with(Cell::get), 2);
    // The disk filled up behind our back: refused at the next write that does not fit.
    FREE.with(|f| f.set(15));
    let mut charged = 0;
    let err = loop {
        match guard.charge(10) {
            Ok(()) => charged += 1,
            Err(e) => break e,
        }
        assert!(charged < 100, "never refused");
    };
    let SpaceError::Short(short) = err else {
        panic!("{err}")
    };
    assert_eq!((short.free, short.needed, short.short()), (15, 10, 5));
    assert!(
        short.what.starts_with("the unpack (after "),
        "{}",
        short.what
    );
}

#[test]
fn a_missing_directory_is_measured_where_it_will_be_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("a/b/c");
    assert_eq!(existing_ancestor(&missing), tmp.path());
    let free = Space::disk(0).free(&missing).unwrap();
    assert!(free > 0);
}
