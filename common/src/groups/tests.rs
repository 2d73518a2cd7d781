//! Unit and property tests of groups, criteria and rule evaluation.

use super::*;

fn pkg(id: &str, name: &str) -> RulePackage {
    RulePackage {
        id: id.parse().unwrap(),
        name: name.into(),
        uninstallable: true,
    }
}

fn installed(p: &RulePackage, by_rule: bool) -> InstalledPackage {
    InstalledPackage {
        package: p.clone(),
        by_rule,
    }
}

fn pid(s: &str) -> PackageId {
    s.parse().unwrap()
}

fn job(order: u32, package: &str, kind: JobKind, status: StatusCode) -> ExistingJob {
    ExistingJob {
        order,
        package: pid(package),
        kind,
        status,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn tags_are_checked_and_compared_without_case() {
    let t: Tag = "ALPHA".parse().unwrap();
    assert!(t.same(&"alpha".parse().unwrap()));
    let e = "al pha".parse::<Tag>().unwrap_err();
    assert_eq!(e.field, "tags");
    assert!(e.to_string().contains("'al pha'"), "{e}");
    assert!("".parse::<Tag>().is_err());
    assert!("x".repeat(65).parse::<Tag>().is_err());
    let list = parse_tags(&["a".into(), "A".into(), "b:1".into()]).unwrap();
    assert_eq!(list.len(), 2);
}

#[test]
fn criteria_name_the_bad_field_and_token() {
    let e = Criteria::parse(&["10.0.0.0/33".into()], &[], &[], &[]).unwrap_err();
    assert_eq!((e.field, e.token.as_str()), ("subnets", "10.0.0.0/33"));
    let e = Criteria::parse(&[], &["ok".into(), "no way".into()], &[], &[]).unwrap_err();
    assert_eq!((e.field, e.token.as_str()), ("tags", "no way"));
    let e = Criteria::parse(&[], &[], &["".into()], &[]).unwrap_err();
    assert_eq!(e.field, "os");
    let e = Criteria::parse(&[], &[], &[], &["pc-[".into()]).unwrap_err();
    assert_eq!((e.field, e.token.as_str()), ("hostnames", "pc-["));
}

#[test]
fn criteria_match_any_value_of_every_kind_given() {
    let tags: Vec<Tag> = vec!["ALPHA".parse().unwrap()];
    let addresses = [ip("10.1.2.3")];
    let pc = Candidate {
        hostname: "PC-Paris-042",
        os: "linux",
        addresses: &addresses,
        tags: &tags,
    };
    assert!(Criteria::default().matches(pc));
    assert!(Criteria::default().is_empty());
    let c = |s: &[&str], t: &[&str], o: &[&str], h: &[&str]| {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Criteria::parse(&v(s), &v(t), &v(o), &v(h)).unwrap()
    };
    assert!(c(&["10.1.0.0/16"], &[], &[], &[]).matches(pc));
    assert!(!c(&["10.2.0.0/16"], &[], &[], &[]).matches(pc));
    assert!(c(&["10.2.0.0/16", "10.1.2.0/24"], &[], &[], &[]).matches(pc));
    assert!(c(&[], &["beta", "alpha"], &[], &[]).matches(pc));
    assert!(!c(&[], &["beta"], &[], &[]).matches(pc));
    assert!(c(&[], &[], &["Linux"], &[]).matches(pc));
    assert!(!c(&[], &[], &["windows"], &[]).matches(pc));
    assert!(c(&[], &[], &[], &["pc-paris-*"]).matches(pc));
    assert!(c(&[], &[], &[], &["PC-*-04?"]).matches(pc));
    assert!(!c(&[], &[], &[], &["pc-lyon-*"]).matches(pc));
    // Kinds combine: every one given must match.
    assert!(c(&["10.1.0.0/16"], &["alpha"], &["linux"], &["pc-*"]).matches(pc));
    assert!(!c(&["10.1.0.0/16"], &["alpha"], &["windows"], &["pc-*"]).matches(pc));
    // Stored criteria read back the same.
    let stored = c(&["10.1.0.0/16"], &["alpha"], &["linux"], &["pc-*"]);
    let text = serde_json::to_string(&stored).unwrap();
    assert_eq!(serde_json::from_str::<Criteria>(&text).unwrap(), stored);
}

#[test]
fn a_member_wants_each_package_it_lacks_in_group_order() {
    let a = pkg("a-1", "a");
    let b = pkg("b-1", "b");
    let w = wants(
        true,
        &[a.clone(), b.clone()],
        &[installed(&b, true)],
        true,
        &[],
    );
    assert_eq!(w, vec![(pid("a-1"), JobKind::Install)]);
    let w = wants(true, &[a.clone(), b.clone()], &[], false, &[]);
    assert_eq!(
        w,
        vec![
            (pid("a-1"), JobKind::Install),
            (pid("b-1"), JobKind::Install)
        ]
    );
    assert!(wants(false, &[a, b], &[], true, &[]).is_empty());
}

#[test]
fn auto_uninstall_removes_other_versions_first_and_what_left_the_group() {
    let v1 = pkg("app-1", "app");
    let v2 = pkg("app-2", "app");
    let tool = pkg("tool-1", "tool");
    // Upgrading: the old version goes before the new one comes.
    let w = wants(
        true,
        std::slice::from_ref(&v2),
        &[installed(&v1, false)],
        true,
        &[],
    );
    assert_eq!(
        w,
        vec![
            (pid("app-1"), JobKind::Uninstall),
            (pid("app-2"), JobKind::Install)
        ]
    );
    // Without auto-uninstall the old version stays.
    let w = wants(
        true,
        std::slice::from_ref(&v2),
        &[installed(&v1, false)],
        false,
        &[],
    );
    assert_eq!(w, vec![(pid("app-2"), JobKind::Install)]);
    // A package the rule installed and that left the group is uninstalled...
    let w = wants(
        true,
        std::slice::from_ref(&v2),
        &[installed(&v2, true), installed(&tool, true)],
        true,
        &[],
    );
    assert_eq!(w, vec![(pid("tool-1"), JobKind::Uninstall)]);
    // ...but not one installed by someone else, nor one with no way to uninstall it.
    let w = wants(
        true,
        std::slice::from_ref(&v2),
        &[installed(&v2, true), installed(&tool, false)],
        true,
        &[],
    );
    assert!(w.is_empty());
    let mut stuck = tool.clone();
    stuck.uninstallable = false;
    let w = wants(
        true,
        std::slice::from_ref(&v2),
        &[installed(&v2, true), installed(&stuck, true)],
        true,
        &[],
    );
    assert!(w.is_empty());
}

#[test]
fn reconcile_adds_keeps_renews_and_removes() {
    use StatusCode::*;
    let w = vec![(pid("a"), JobKind::Install), (pid("b"), JobKind::Install)];
    // Nothing yet: both added.
    assert_eq!(
        reconcile(&w, &[], false),
        vec![
            Change::Add(pid("a"), JobKind::Install),
            Change::Add(pid("b"), JobKind::Install)
        ]
    );
    // Waiting and under way: kept.
    let existing = [
        job(1, "a", JobKind::Install, WaitingNotification),
        job(2, "b", JobKind::Install, Downloading),
    ];
    assert!(reconcile(&w, &existing, false).is_empty());
    // Failed: kept failed, renewed only on demand.
    let existing = [
        job(1, "a", JobKind::Install, ErrExitCode),
        job(2, "b", JobKind::Install, Notified),
    ];
    assert!(reconcile(&w, &existing, false).is_empty());
    assert_eq!(reconcile(&w, &existing, true), vec![Change::Renew(1)]);
    // Succeeded before but wanted again: a new job.
    let existing = [
        job(1, "a", JobKind::Install, Success),
        job(2, "b", JobKind::Install, Notified),
    ];
    assert_eq!(
        reconcile(&w, &existing, false),
        vec![Change::Add(pid("a"), JobKind::Install)]
    );
    // The latest job of a package decides.
    let existing = [
        job(1, "a", JobKind::Install, Success),
        job(3, "a", JobKind::Install, WaitingNotification),
        job(2, "b", JobKind::Install, Notified),
    ];
    assert!(reconcile(&w, &existing, false).is_empty());
    // No longer wanted: waiting ones go, handed-out and finished ones stay.
    let existing = [
        job(1, "a", JobKind::Install, WaitingNotification),
        job(2, "b", JobKind::Install, Notified),
        job(3, "c", JobKind::Install, ErrExitCode),
    ];
    assert_eq!(reconcile(&[], &existing, false), vec![Change::Remove(1)]);
}

#[test]
fn two_versions_of_a_name_with_auto_uninstall_are_refused() {
    let group = [
        pkg("app-1", "app"),
        pkg("tool-1", "tool"),
        pkg("app-2", "app"),
    ];
    let e = loop_check(true, "office", &group).unwrap_err();
    assert!(e.contains("'office'") && e.contains("'app'"), "{e}");
    assert!(e.contains("app-1, app-2") && e.contains("loop"), "{e}");
    assert!(loop_check(false, "office", &group).is_ok());
    assert!(loop_check(true, "office", &group[..2]).is_ok());
}

/// Runs a rule on one computer the way central and the agent do: the first job
/// wanted runs and succeeds, then the rule is re-evaluated (central does after
/// every change to what is installed), until nothing is wanted. Returns what is
/// installed and how many jobs ran, or `None` if it never settles.
fn settle(
    group: &[RulePackage],
    start: Vec<InstalledPackage>,
    auto_uninstall: bool,
) -> Option<(Vec<InstalledPackage>, usize)> {
    let mut installed = start;
    for ran in 0..50 {
        let want = wants(true, group, &installed, auto_uninstall, &[]);
        if want.is_empty() {
            return Some((installed, ran));
        }
        if let Some((id, kind)) = want.into_iter().next() {
            match kind {
                JobKind::Install => {
                    let p = group.iter().find(|p| p.id == id).unwrap().clone();
                    installed.push(InstalledPackage {
                        package: p,
                        by_rule: true,
                    });
                }
                JobKind::Uninstall => installed.retain(|i| i.package.id != id),
            }
        }
    }
    None
}

fn arb_package() -> impl proptest::strategy::Strategy<Value = RulePackage> {
    use proptest::prelude::*;
    (0u8..4, 0u8..3, any::<bool>()).prop_map(|(name, version, uninstallable)| RulePackage {
        id: format!("p{name}-{version}").parse().unwrap(),
        name: format!("p{name}"),
        uninstallable,
    })
}

proptest::proptest! {
    /// Whatever was installed before, a rule that `loop_check` accepts settles,
    /// running no more jobs than it first wanted: every package of its group
    /// installed and, with auto-uninstall, no other uninstallable version left of
    /// the names it installed.
    #[test]
    fn an_accepted_rule_settles_at_once(
        group in proptest::collection::vec(arb_package(), 0..5),
        before in proptest::collection::vec((arb_package(), proptest::prelude::any::<bool>()), 0..5),
        auto_uninstall in proptest::prelude::any::<bool>(),
    ) {
        let mut group = group;
        group.dedup_by(|a, b| a.id == b.id);
        let mut start: Vec<InstalledPackage> = Vec::new();
        for (p, by_rule) in before {
            if !start.iter().any(|i| i.package.id == p.id) {
                start.push(InstalledPackage { package: p, by_rule });
            }
        }
        proptest::prop_assume!(loop_check(auto_uninstall, "g", &group).is_ok());
        let once = wants(true, &group, &start, auto_uninstall, &[]).len();
        let had: Vec<PackageId> = start.iter().map(|i| i.package.id.clone()).collect();
        let (end, ran) = settle(&group, start, auto_uninstall).expect("settles");
        proptest::prop_assert!(ran <= once, "ran {ran} jobs, {once} wanted at first");
        for p in &group {
            proptest::prop_assert!(end.iter().any(|i| i.package.id == p.id));
            // Installing a version first removes the others (a version already
            // there installs nothing, so it removes nothing).
            if auto_uninstall && !had.contains(&p.id) {
                let others = end.iter().filter(|i| {
                    i.package.name == p.name && i.package.id != p.id && i.package.uninstallable
                });
                proptest::prop_assert_eq!(others.count(), 0);
            }
        }
    }
}

#[test]
fn the_loop_that_loop_check_refuses_never_settles() {
    // Two versions of one name with auto-uninstall: each round undoes the last.
    let group = [pkg("app-1", "app"), pkg("app-2", "app")];
    assert!(loop_check(true, "g", &group).is_err());
    assert_eq!(settle(&group, Vec::new(), true), None);
    // The same group without auto-uninstall settles.
    assert!(settle(&group, Vec::new(), false).is_some());
}

#[test]
fn a_version_another_rule_deploys_is_kept() {
    let v1 = pkg("app-1", "app");
    let v2 = pkg("app-2", "app");
    // Another rule deploys v1 here: upgrading to v2 leaves it alone.
    let w = wants(
        true,
        std::slice::from_ref(&v2),
        &[installed(&v1, false)],
        true,
        &[pid("app-1")],
    );
    assert_eq!(w, vec![(pid("app-2"), JobKind::Install)]);
    // Nor is it uninstalled when it leaves this rule's group.
    let w = wants(
        true,
        std::slice::from_ref(&v2),
        &[installed(&v2, true), installed(&v1, true)],
        true,
        &[pid("app-1")],
    );
    assert!(w.is_empty(), "{w:?}");
}

/// A rule of [`settle_all`]: its package group and whether it auto-uninstalls.
type SimRule = (Vec<RulePackage>, bool);

/// [`settle`] for several rules on one computer, each told what the others
/// deploy (`protect`) as central does, or told nothing.
fn settle_all(rules: &[SimRule], protect: bool) -> Option<Vec<InstalledPackage>> {
    let mut installed: Vec<InstalledPackage> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    for _ in 0..100 {
        let mut next = None;
        for (r, (group, auto)) in rules.iter().enumerate() {
            let kept: Vec<PackageId> = if protect {
                let others = rules.iter().enumerate().filter(|(o, _)| *o != r);
                others
                    .flat_map(|(_, (g, _))| g.iter().map(|p| p.id.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            let mine: Vec<InstalledPackage> = installed
                .iter()
                .zip(&owner)
                .map(|(i, o)| InstalledPackage {
                    package: i.package.clone(),
                    by_rule: *o == r,
                })
                .collect();
            if let Some(first) = wants(true, group, &mine, *auto, &kept).into_iter().next() {
                next = Some((r, first));
                break;
            }
        }
        let Some((r, (id, kind))) = next else {
            return Some(installed);
        };
        match kind {
            JobKind::Install => {
                let p = rules[r].0.iter().find(|p| p.id == id).unwrap().clone();
                installed.push(InstalledPackage {
                    package: p,
                    by_rule: false,
                });
                owner.push(r);
            }
            JobKind::Uninstall => {
                if let Some(at) = installed.iter().position(|i| i.package.id == id) {
                    installed.remove(at);
                    owner.remove(at);
                }
            }
        }
    }
    None
}

#[test]
fn two_rules_with_two_versions_loop_unless_each_keeps_the_others() {
    let v1 = pkg("app-1", "app");
    let v2 = pkg("app-2", "app");
    // One rule with v1 and no auto-uninstall, another with v2 and auto-uninstall:
    // each group passes loop_check, yet told nothing they undo each other.
    let rules = [(vec![v1], false), (vec![v2], true)];
    assert!(rules.iter().all(|(g, a)| loop_check(*a, "g", g).is_ok()));
    assert_eq!(settle_all(&rules, false), None);
    let end = settle_all(&rules, true).expect("settles");
    assert_eq!(end.len(), 2, "both versions stay: {end:?}");
}

proptest::proptest! {
    /// Any set of rules that `loop_check` accepts one by one settles on a
    /// computer they all cover, with every package any of them deploys installed.
    #[test]
    fn accepted_rules_settle_together(
        rules in proptest::collection::vec(
            (proptest::collection::vec(arb_package(), 0..4), proptest::prelude::any::<bool>()),
            1..4,
        ),
    ) {
        let mut rules = rules;
        for (group, _) in &mut rules {
            let mut seen = Vec::new();
            group.retain(|p| {
                let fresh = !seen.contains(&p.id);
                seen.push(p.id.clone());
                fresh
            });
        }
        proptest::prop_assume!(rules.iter().all(|(g, a)| loop_check(*a, "g", g).is_ok()));
        let end = settle_all(&rules, true);
        proptest::prop_assert!(end.is_some(), "never settles");
        let end = end.unwrap_or_default();
        for (group, _) in &rules {
            for p in group {
                proptest::prop_assert!(end.iter().any(|i| i.package.id == p.id), "{} missing", p.id);
            }
        }
    }
}

#[test]
fn only_a_real_failure_of_a_wanted_package_blocks_what_a_rule_adds() {
    use crate::jobs::Sequence;
    let existing = [
        job(1, "a-1", JobKind::Install, StatusCode::Success),
        job(2, "b-1", JobKind::Install, StatusCode::ErrPreviousFailed),
        job(3, "c-1", JobKind::Install, StatusCode::ErrExitCode),
        job(4, "d-1", JobKind::Install, StatusCode::ErrTimeout),
    ];
    let wants = [
        (pid("b-1"), JobKind::Install),
        (pid("c-1"), JobKind::Install),
        (pid("d-1"), JobKind::Install),
    ];
    let abort = Sequence::AbortAfterFailed;
    let first = blocker(&existing, &wants, &[], abort).map(|j| j.order);
    assert_eq!(first, Some(3), "the first real failure, not one it stopped");
    let renewed = blocker(&existing, &wants, &[3], abort).map(|j| j.order);
    assert_eq!(renewed, Some(4), "a renewed job stops nothing");
    let unwanted = blocker(&existing, &wants[..1], &[], abort);
    assert_eq!(unwanted, None, "a package no longer wanted stops nothing");
    assert_eq!(
        blocker(&existing, &wants, &[], Sequence::IgnoreFailed),
        None
    );
}
