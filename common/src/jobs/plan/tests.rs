//! Tests of job planning, the busy rule, container states and poll order.

use super::*;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn pkg(id: &str, name: &str, uninstallable: bool) -> PlannedPackage {
    PlannedPackage {
        id: id.parse().unwrap(),
        name: name.into(),
        uninstallable,
    }
}

fn times(start: &str, end: Option<&str>) -> ContainerTimes {
    ContainerTimes {
        created_at: ts("2026-11-21T00:00:00Z"),
        start_at: ts(start),
        end_at: end.map(ts),
        cancelled_at: None,
    }
}

fn end(status: StatusCode, finished: Option<&str>) -> JobEnd {
    JobEnd {
        status,
        finished_at: finished.map(ts),
    }
}

#[test]
fn container_states() {
    let now = ts("2026-11-21T12:00:00Z");
    let waiting = [end(StatusCode::WaitingNotification, None)];
    let r = times("2026-11-22T00:00:00Z", None);
    assert_eq!(container_state(r, &waiting, now).0, ContainerState::Waiting);
    let r = times("2026-11-21T00:00:00Z", Some("2026-11-21T06:00:00Z"));
    assert_eq!(
        container_state(r, &waiting, now),
        (ContainerState::Failed, Some(ts("2026-11-21T06:00:00Z")))
    );
    let r = times("2026-11-21T00:00:00Z", None);
    assert_eq!(
        container_state(r, &[end(StatusCode::Notified, None)], now).0,
        ContainerState::Running
    );
    let at = Some("2026-11-21T10:00:00Z");
    assert_eq!(
        container_state(
            r,
            &[
                end(StatusCode::Success, at),
                end(StatusCode::ErrAlreadySetup, None)
            ],
            now
        ),
        (ContainerState::Succeeded, Some(ts("2026-11-21T10:00:00Z")))
    );
    assert_eq!(
        container_state(
            r,
            &[
                end(StatusCode::Success, at),
                end(StatusCode::ErrExitCode, at)
            ],
            now
        )
        .0,
        ContainerState::Failed
    );
    let mut cancelled = r;
    cancelled.cancelled_at = Some(now);
    assert_eq!(
        container_state(cancelled, &[end(StatusCode::Downloading, None)], now),
        (ContainerState::Cancelled, None)
    );
}

#[test]
fn an_install_uninstalls_other_versions_of_its_name_first() {
    let new = pkg("app-2", "app", true);
    let installed = [
        pkg("app-1", "app", true),
        pkg("app-0", "app", false),
        pkg("other-1", "other", true),
        pkg("app-2", "app", true),
    ];
    let planned = plan(
        std::slice::from_ref(&new),
        &installed,
        JobKind::Install,
        true,
    );
    assert_eq!(
        planned,
        vec![
            ("app-1".parse().unwrap(), JobKind::Uninstall),
            ("app-2".parse().unwrap(), JobKind::Install),
        ]
    );
    let plain = plan(
        std::slice::from_ref(&new),
        &installed,
        JobKind::Install,
        false,
    );
    assert_eq!(plain, vec![("app-2".parse().unwrap(), JobKind::Install)]);
    let removal = plan(
        std::slice::from_ref(&new),
        &installed,
        JobKind::Uninstall,
        true,
    );
    assert_eq!(
        removal,
        vec![("app-2".parse().unwrap(), JobKind::Uninstall)]
    );
}

#[test]
fn busy_means_an_install_that_will_still_run() {
    let job = |status, container_live| PendingJob {
        kind: JobKind::Install,
        status,
        container_live,
    };
    assert!(busy(job(StatusCode::WaitingNotification, true)));
    assert!(!busy(job(StatusCode::WaitingNotification, false)));
    assert!(busy(job(StatusCode::Notified, false)));
    assert!(busy(job(StatusCode::Downloading, false)));
    assert!(!busy(job(StatusCode::Success, true)));
    assert!(!busy(PendingJob {
        kind: JobKind::Uninstall,
        ..job(StatusCode::Notified, true)
    }));
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (0..3i32, 0..4u64, 0..3usize, 0..3u8, 1..4u32, any::<bool>()).prop_map(
        |(priority, seq, package, package_priority, order, current)| Candidate {
            container: format!("c-{seq}").parse().unwrap(),
            container_priority: priority,
            container_seq: seq,
            container_created: Timestamp::UNIX_EPOCH,
            package: format!("p-{package}").parse().unwrap(),
            package_priority,
            order,
            current,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every requested package gets its job, in the order asked, each
    /// uninstall comes before the install it makes room for, and no job is
    /// planned twice.
    #[test]
    fn plans_keep_order_and_never_repeat(
        names in proptest::collection::vec(0..3usize, 1..4),
        old in proptest::collection::vec((0..3usize, 0..3usize, any::<bool>()), 0..5),
        auto in any::<bool>(),
    ) {
        let mut packages = Vec::new();
        for (i, n) in names.iter().enumerate() {
            packages.push(pkg(&format!("new-{i}"), &format!("n{n}"), true));
        }
        let installed: Vec<PlannedPackage> = old
            .iter()
            .enumerate()
            .map(|(i, (v, n, u))| pkg(&format!("old-{i}-{v}"), &format!("n{n}"), *u))
            .collect();
        let planned = plan(&packages, &installed, JobKind::Install, auto);
        let installs: Vec<&PackageId> = planned
            .iter()
            .filter(|(_, k)| *k == JobKind::Install)
            .map(|(p, _)| p)
            .collect();
        let asked: Vec<&PackageId> = packages.iter().map(|p| &p.id).collect();
        prop_assert_eq!(installs, asked);
        let mut seen = std::collections::BTreeSet::new();
        for job in &planned {
            prop_assert!(seen.insert(job.clone()), "planned twice: {:?}", job);
        }
        for (at, (id, kind)) in planned.iter().enumerate() {
            if *kind == JobKind::Uninstall {
                prop_assert!(auto);
                let old = installed.iter().find(|o| &o.id == id).unwrap();
                prop_assert!(old.uninstallable);
                let first_install_of_name = planned
                    .iter()
                    .position(|(p, k)| *k == JobKind::Install
                        && packages.iter().any(|q| &q.id == p && q.name == old.name));
                prop_assert!(first_install_of_name.is_some_and(|i| at < i));
            }
        }
    }

    /// A poll hands out one job per package, each from the candidates, and a
    /// job under way keeps its package; the order follows the priorities.
    #[test]
    fn polls_hand_one_job_per_package(
        candidates in proptest::collection::vec(candidate(), 0..8),
    ) {
        let chosen = poll_order(&candidates);
        let mut packages = std::collections::BTreeSet::new();
        for &i in &chosen {
            prop_assert!(i < candidates.len());
            prop_assert!(packages.insert(candidates[i].package.clone()));
        }
        for c in &candidates {
            prop_assert!(packages.contains(&c.package));
        }
        for (i, c) in candidates.iter().enumerate() {
            if c.current && !chosen.contains(&i) {
                // Another job of its package under way won the place.
                prop_assert!(chosen.iter().any(|&j| candidates[j].package == c.package && candidates[j].current));
            }
        }
        let key = |c: &Candidate| {
            (-c.container_priority, c.package_priority, c.container_seq, c.container.clone(), c.order)
        };
        for &i in &chosen {
            let c = &candidates[i];
            if c.current {
                continue;
            }
            // Not under way: the first of its package in the order.
            for other in candidates.iter().filter(|o| o.package == c.package) {
                prop_assert!(key(other) >= key(c));
            }
        }
    }
}
