//! Tests of the replication planner on a virtual clock: priority order, restored
//! and lost content, kept delta bases and their eviction, deltas, windows, the
//! cap, disconnections and back-off.

use super::*;

fn now(secs: u64) -> Now {
    let wall = jiff::civil::date(2026, 11, 23).at(0, 0, 0, 0); // a Monday
    Now {
        mono: Duration::from_secs(secs),
        wall: wall
            .checked_add(jiff::SignedDuration::from_secs(secs as i64))
            .unwrap(),
    }
}

fn id(s: &str) -> PackageId {
    s.parse().unwrap()
}

fn wanted(name: &str, priority: u8) -> Wanted {
    Wanted {
        id: id(name),
        priority,
        info_sha256: format!("sha-{name}"),
        supersedes: None,
    }
}

fn shape(count: u32) -> Shape {
    Shape {
        size: u64::from(count) * 100,
        fragment_size: 100,
        count,
    }
}

fn drain(p: &mut Planner, t: Now) -> Vec<Action> {
    std::iter::from_fn(|| p.poll_action(t)).collect()
}

#[test]
fn fetches_info_then_fragments_in_priority_order() {
    let mut p = Planner::new(PlannerConfig {
        parallel: 2,
        ..Default::default()
    });
    let t = now(0);
    p.handle(t, Event::Connected);
    p.handle(
        t,
        Event::Activated(vec![wanted("late", 5), wanted("urgent", 0)]),
    );
    assert_eq!(
        drain(&mut p, t),
        vec![
            Action::FetchInfo { id: id("urgent") },
            Action::FetchInfo { id: id("late") }
        ]
    );
    p.handle(
        t,
        Event::InfoHeld {
            id: id("late"),
            shape: shape(2),
        },
    );
    p.handle(
        t,
        Event::InfoHeld {
            id: id("urgent"),
            shape: shape(1),
        },
    );
    assert_eq!(
        drain(&mut p, t),
        vec![
            Action::FetchFragment {
                id: id("urgent"),
                index: 1,
                len: 100
            },
            Action::FetchFragment {
                id: id("late"),
                index: 1,
                len: 100
            },
        ]
    );
    p.handle(
        t,
        Event::FragmentFailed {
            id: id("late"),
            index: 1,
        },
    );
    assert_eq!(
        drain(&mut p, t),
        vec![Action::FetchFragment {
            id: id("late"),
            index: 1,
            len: 100
        }]
    );
    assert!(!p.converged());
    p.handle(
        t,
        Event::FragmentHeld {
            id: id("urgent"),
            index: 1,
        },
    );
    p.handle(
        t,
        Event::FragmentHeld {
            id: id("late"),
            index: 1,
        },
    );
    assert_eq!(
        drain(&mut p, t),
        vec![Action::FetchFragment {
            id: id("late"),
            index: 2,
            len: 100
        }]
    );
    p.handle(
        t,
        Event::FragmentHeld {
            id: id("late"),
            index: 2,
        },
    );
    assert!(drain(&mut p, t).is_empty());
    assert!(p.converged());
}

#[test]
fn restored_content_resumes_and_unwanted_content_is_dropped() {
    let mut p = Planner::new(PlannerConfig::default());
    let t = now(0);
    p.handle(
        t,
        Event::Restored {
            id: id("kept"),
            info_sha256: "sha-kept".into(),
            shape: shape(3),
            held: BTreeSet::from([1, 3]),
        },
    );
    p.handle(
        t,
        Event::Restored {
            id: id("old"),
            info_sha256: "sha-old".into(),
            shape: shape(1),
            held: BTreeSet::new(),
        },
    );
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![wanted("kept", 5)]));
    assert_eq!(
        drain(&mut p, t),
        vec![
            Action::Drop { id: id("old") },
            Action::FetchFragment {
                id: id("kept"),
                index: 2,
                len: 100
            }
        ]
    );
}

fn version(name: &str, base: &str) -> Wanted {
    Wanted {
        supersedes: Some(id(base)),
        ..wanted(name, 5)
    }
}

fn restored(p: &mut Planner, t: Now, name: &str, count: u32, held: &[u32]) {
    p.handle(
        t,
        Event::Restored {
            id: id(name),
            info_sha256: format!("sha-{name}"),
            shape: shape(count),
            held: held.iter().copied().collect(),
        },
    );
}

#[test]
fn a_whole_superseded_package_is_kept_as_a_base_until_evicted() {
    let mut p = Planner::new(PlannerConfig::default());
    let t = now(0);
    restored(&mut p, t, "v1", 2, &[1, 2]);
    restored(&mut p, t, "partial", 2, &[1]);
    p.handle(t, Event::Connected);
    p.handle(
        t,
        Event::Activated(vec![version("v2", "v1"), version("w2", "partial")]),
    );
    let actions = drain(&mut p, t);
    // A partial base is no base: dropped. The whole one is kept.
    assert!(actions.contains(&Action::Drop { id: id("partial") }));
    assert!(!actions.contains(&Action::Drop { id: id("v1") }));
    assert_eq!(p.kept(), vec![id("v1")]);
    // Reported with its holdings, so central knows what the relay keeps.
    assert!(p.progress().iter().any(|g| g.id == id("v1") && g.held == 2));
    // Eviction drops it; a wanted package is never evicted.
    p.handle(t, Event::Evict { id: id("v2") });
    p.handle(t, Event::Evict { id: id("v1") });
    assert!(drain(&mut p, t).contains(&Action::Drop { id: id("v1") }));
    assert!(p.kept().is_empty());

    // Nothing wanted supersedes a kept base any more: dropped.
    let mut p = Planner::new(PlannerConfig::default());
    restored(&mut p, t, "v1", 1, &[1]);
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![version("v2", "v1")]));
    drain(&mut p, t);
    assert_eq!(p.kept(), vec![id("v1")]);
    p.handle(t, Event::Activated(vec![wanted("other", 5)]));
    assert!(drain(&mut p, t).contains(&Action::Drop { id: id("v1") }));
    // Wanted again: it comes back from the kept set, nothing to fetch.
    let mut p = Planner::new(PlannerConfig::default());
    restored(&mut p, t, "v1", 1, &[1]);
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![version("v2", "v1")]));
    drain(&mut p, t);
    p.handle(t, Event::Activated(vec![wanted("v1", 5)]));
    // v2 was never held whole: dropped; v1 is back, with nothing to fetch.
    assert_eq!(drain(&mut p, t), vec![Action::Drop { id: id("v2") }]);
    assert!(p.converged());
}

#[test]
fn a_delta_is_asked_once_before_fragments_and_what_it_lacks_follows_as_fragments() {
    let mut p = Planner::new(PlannerConfig::default());
    let t = now(0);
    restored(&mut p, t, "v1", 3, &[1, 2, 3]);
    p.handle(t, Event::Connected);
    p.handle(
        t,
        Event::Activated(vec![wanted("v1", 5), version("v2", "v1")]),
    );
    assert_eq!(drain(&mut p, t), vec![Action::FetchInfo { id: id("v2") }]);
    p.handle(
        t,
        Event::InfoHeld {
            id: id("v2"),
            shape: shape(3),
        },
    );
    assert_eq!(
        drain(&mut p, t),
        vec![Action::FetchDelta {
            id: id("v2"),
            base: id("v1"),
            lacking: 300
        }]
    );
    // No fragment of it while the delta is under way.
    assert_eq!(drain(&mut p, t), vec![]);
    // Lost with the connection: asked again.
    p.handle(t, Event::Disconnected);
    p.handle(t, Event::Connected);
    assert!(matches!(
        drain(&mut p, t).as_slice(),
        [Action::FetchDelta { .. }]
    ));
    // It yielded fragments 1 and 3; 2 follows as a plain fragment, no second delta.
    p.handle(
        t,
        Event::DeltaHeld {
            id: id("v2"),
            indices: vec![1, 3, 9],
        },
    );
    assert_eq!(
        drain(&mut p, t),
        vec![Action::FetchFragment {
            id: id("v2"),
            index: 2,
            len: 100
        }]
    );
    p.handle(
        t,
        Event::FragmentHeld {
            id: id("v2"),
            index: 2,
        },
    );
    assert!(p.converged());

    // Declined: every fragment, plainly.
    let mut p = Planner::new(PlannerConfig {
        parallel: 8,
        ..Default::default()
    });
    restored(&mut p, t, "v1", 1, &[1]);
    restored(&mut p, t, "v2", 2, &[]);
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![version("v2", "v1")]));
    let asked = drain(&mut p, t);
    assert!(asked.contains(&Action::FetchDelta {
        id: id("v2"),
        base: id("v1"),
        lacking: 200
    }));
    p.handle(t, Event::DeltaFailed { id: id("v2") });
    assert_eq!(
        drain(&mut p, t)
            .iter()
            .filter(|a| matches!(a, Action::FetchFragment { .. }))
            .count(),
        2
    );
}

#[test]
fn a_lost_fragment_is_fetched_again_and_a_damaged_base_dropped() {
    let mut p = Planner::new(PlannerConfig::default());
    let t = now(0);
    restored(&mut p, t, "v1", 2, &[1, 2]);
    restored(&mut p, t, "app", 2, &[1, 2]);
    p.handle(t, Event::Connected);
    p.handle(
        t,
        Event::Activated(vec![wanted("app", 5), version("v2", "v1")]),
    );
    drain(&mut p, t);
    p.handle(
        t,
        Event::Lost {
            id: id("app"),
            index: 2,
        },
    );
    p.handle(
        t,
        Event::Lost {
            id: id("v1"),
            index: 1,
        },
    );
    let actions = drain(&mut p, t);
    assert!(
        actions.contains(&Action::Drop { id: id("v1") }),
        "{actions:?}"
    );
    assert!(actions.contains(&Action::FetchFragment {
        id: id("app"),
        index: 2,
        len: 100
    }));
}

#[test]
fn content_restored_while_running_is_added_and_nothing_of_it_is_fetched() {
    // An import from offline media while the window is closed: the info was
    // fetched, the fragments came from the media.
    let mut p = Planner::new(PlannerConfig {
        schedule: Some("SAT 0:00-23:59".parse().unwrap()),
        ..Default::default()
    });
    let t = now(0); // a Monday
    p.handle(t, Event::Connected);
    p.handle(
        t,
        Event::Activated(vec![wanted("app", 5), wanted("lib", 5)]),
    );
    drain(&mut p, t);
    p.handle(
        t,
        Event::InfoHeld {
            id: id("app"),
            shape: shape(3),
        },
    );
    restored(&mut p, t, "app", 3, &[1, 2, 3]);
    // The other one's info is still in flight: the import lands meanwhile.
    restored(&mut p, t, "lib", 2, &[1, 2]);
    p.handle(
        t,
        Event::InfoHeld {
            id: id("lib"),
            shape: shape(2),
        },
    );
    assert!(p.converged(), "{:?}", p.progress());
    let saturday = now(5 * 86_400);
    assert_eq!(drain(&mut p, saturday), vec![]);
    // Another content under a known id adds nothing.
    p.handle(
        t,
        Event::Restored {
            id: id("app"),
            info_sha256: "other".into(),
            shape: shape(9),
            held: BTreeSet::from([9]),
        },
    );
    assert!(p.progress().iter().all(|g| g.held <= 3));
}

#[test]
fn a_lost_info_starts_the_package_over_and_drops_a_kept_base() {
    let mut p = Planner::new(PlannerConfig::default());
    let t = now(0);
    restored(&mut p, t, "app", 2, &[1, 2]);
    restored(&mut p, t, "v1", 1, &[1]);
    p.handle(t, Event::Connected);
    p.handle(
        t,
        Event::Activated(vec![wanted("app", 5), version("v2", "v1")]),
    );
    drain(&mut p, t);
    assert_eq!(p.kept(), vec![id("v1")]);
    p.handle(t, Event::InfoLost { id: id("app") });
    p.handle(t, Event::InfoLost { id: id("v1") });
    let actions = drain(&mut p, t);
    assert!(
        actions.contains(&Action::Drop { id: id("v1") }),
        "{actions:?}"
    );
    assert!(
        actions.contains(&Action::FetchInfo { id: id("app") }),
        "{actions:?}"
    );
    assert!(p.kept().is_empty());
    p.handle(
        t,
        Event::InfoHeld {
            id: id("app"),
            shape: shape(2),
        },
    );
    assert_eq!(
        drain(&mut p, t)
            .iter()
            .filter(|a| matches!(a, Action::FetchFragment { id: i, .. } if *i == id("app")))
            .count(),
        2
    );
    // Lost before the activated set arrived: not counted as held any more.
    let mut p = Planner::new(PlannerConfig::default());
    restored(&mut p, t, "app", 2, &[1, 2]);
    p.handle(
        t,
        Event::Lost {
            id: id("app"),
            index: 2,
        },
    );
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![wanted("app", 5)]));
    assert_eq!(
        drain(&mut p, t),
        vec![Action::FetchFragment {
            id: id("app"),
            index: 2,
            len: 100
        }]
    );
}

#[test]
fn windows_hold_back_fragments_but_not_priority_zero() {
    let mut p = Planner::new(PlannerConfig {
        parallel: 4,
        schedule: Some("18:00-23:59".parse().unwrap()),
        max_rate: None,
    });
    let t = now(3600); // 01:00
    p.handle(t, Event::Connected);
    p.handle(
        t,
        Event::Activated(vec![wanted("normal", 5), wanted("urgent", 0)]),
    );
    drain(&mut p, t);
    p.handle(
        t,
        Event::InfoHeld {
            id: id("normal"),
            shape: shape(1),
        },
    );
    p.handle(
        t,
        Event::InfoHeld {
            id: id("urgent"),
            shape: shape(1),
        },
    );
    assert_eq!(
        drain(&mut p, t),
        vec![Action::FetchFragment {
            id: id("urgent"),
            index: 1,
            len: 100
        }]
    );
    // The planner asks to look again at the next minute.
    assert_eq!(p.poll_timeout(t), Some(Duration::from_secs(3660)));
    let evening = now(18 * 3600);
    assert_eq!(
        drain(&mut p, evening),
        vec![Action::FetchFragment {
            id: id("normal"),
            index: 1,
            len: 100
        }]
    );
}

#[test]
fn the_cap_paces_fragment_starts() {
    let mut p = Planner::new(PlannerConfig {
        parallel: 8,
        schedule: None,
        max_rate: Some(250),
    });
    let t = now(0);
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![wanted("a", 5)]));
    drain(&mut p, t);
    p.handle(
        t,
        Event::InfoHeld {
            id: id("a"),
            shape: shape(10),
        },
    );
    // 100-byte fragments at 250 B/s: one start now, the next at 0.4 s.
    assert_eq!(drain(&mut p, t).len(), 1);
    assert_eq!(p.poll_timeout(t), Some(Duration::from_millis(400)));
    let later = Now {
        mono: Duration::from_millis(400),
        ..t
    };
    assert_eq!(drain(&mut p, later).len(), 1);
}

#[test]
fn disconnection_loses_what_was_in_flight_and_repeated_failures_back_off() {
    let mut p = Planner::new(PlannerConfig::default());
    let t = now(0);
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![wanted("a", 5)]));
    drain(&mut p, t);
    p.handle(t, Event::Disconnected);
    assert!(drain(&mut p, t).is_empty());
    p.handle(t, Event::Connected);
    p.handle(t, Event::Activated(vec![wanted("a", 5)]));
    assert_eq!(drain(&mut p, t), vec![Action::FetchInfo { id: id("a") }]);
    for _ in 0..FAILURES_BEFORE_BACKOFF - 1 {
        p.handle(t, Event::InfoFailed { id: id("a") });
        assert_eq!(drain(&mut p, t), vec![Action::FetchInfo { id: id("a") }]);
    }
    p.handle(t, Event::InfoFailed { id: id("a") });
    assert!(drain(&mut p, t).is_empty());
    assert_eq!(p.poll_timeout(t), Some(MIN_BACKOFF));
}

#[test]
fn kept_bases_are_evictable_only_while_the_activated_set_is_current() {
    let mut p = Planner::new(PlannerConfig::default());
    let t = now(0);
    p.handle(
        t,
        Event::Restored {
            id: id("v1"),
            info_sha256: "sha-v1".into(),
            shape: shape(1),
            held: BTreeSet::from([1]),
        },
    );
    assert_eq!(p.evictable(), None);
    p.handle(t, Event::Connected);
    // Connected, but not told the set yet.
    assert_eq!(p.evictable(), None);
    let v2 = Wanted {
        supersedes: Some(id("v1")),
        ..wanted("v2", 5)
    };
    p.handle(t, Event::Activated(vec![v2.clone()]));
    assert_eq!(p.evictable(), Some(vec![id("v1")]));
    p.handle(t, Event::Disconnected);
    assert_eq!(p.evictable(), None);
    // Still kept, but not evictable until the new link tells the set again.
    assert_eq!(p.kept(), vec![id("v1")]);
    p.handle(t, Event::Connected);
    assert_eq!(p.evictable(), None);
    p.handle(t, Event::Activated(vec![v2]));
    assert_eq!(p.evictable(), Some(vec![id("v1")]));
}
