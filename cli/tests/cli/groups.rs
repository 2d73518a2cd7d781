//! `sitecast group`, `package-group`, `rule`, `computer tag`, and the
//! targeting flags of `package assign` and `container create`.

use super::*;

fn members(group: &Value) -> Vec<String> {
    let group: sitecast_common::wire::Group = serde_json::from_value(group.clone()).unwrap();
    let mut ids: Vec<String> = group.members.into_iter().map(|m| m.id.into()).collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn groups_package_groups_and_rules_from_the_cli() {
    let c = Central::start();
    let a = c.enroll("pc-paris-1", "linux", &["127.1.0.5"]);
    let b = c.enroll("pc-lyon-1", "linux", &["127.2.0.5"]);
    let p1 = c.command_package("base-tools");
    let p2 = c.command_package("browser");

    // Tags: set by an admin, shown by `computer list`.
    let tagged = c.json(&["computer", "tag", &a, "kiosk", "ALPHA"]);
    assert_eq!(tagged["tags"], json!(["kiosk", "ALPHA"]));
    shows(&c.human(&["computer", "list"]), &["kiosk, ALPHA"]);
    let cleared = c.json(&["computer", "tag", &b, "--clear"]);
    assert_eq!(cleared["tags"], json!([]));

    // Groups: dynamic and static.
    let g = c.json(&[
        "group",
        "create",
        "kiosks",
        "--tag",
        "kiosk",
        "--description",
        "shop floor",
    ]);
    assert_eq!(members(&g), sorted(&[&a]));
    let g = c.json(&[
        "group",
        "create",
        "lyon",
        "--subnet",
        "127.2.0.0/16",
        "--hostname",
        "pc-*",
    ]);
    assert_eq!(members(&g), sorted(&[&b]));
    let g = c.json(&["group", "add", "kiosks", &b]);
    assert_eq!(members(&g), sorted(&[&a, &b]));
    let g = c.json(&["group", "remove", "kiosks", &b]);
    assert_eq!(members(&g), sorted(&[&a]));
    c.json_is_get(&["group", "show", "kiosks"], "/groups/kiosks");
    c.json_is_get(&["group", "list"], "/groups");
    let text = c.human(&["group", "list"]);
    shows(
        row(&text, "lyon"),
        &["subnet 127.2.0.0/16; hostname pc-*", "1"],
    );
    shows(
        &c.human(&["group", "show", "kiosks"]),
        &["shop floor", "tag kiosk", &a, "pc-paris-1"],
    );

    // Package groups keep their order.
    let pg = c.json(&["package-group", "create", "base", "--package", &p1]);
    assert_eq!(pg["packages"][0]["id"], p1.as_str());
    let pg = c.json(&["package-group", "add", "base", &p2]);
    assert_eq!(pg["packages"][1]["id"], p2.as_str());
    c.json_is_get(&["package-group", "show", "base"], "/package-groups/base");
    let text = c.human(&["package-group", "show", "base"]);
    shows(row(&text, &p2), &["browser", "2"]);

    // A rule: created disabled with its jobs, then enabled, re-evaluated, deleted.
    let rule = c.json(&[
        "rule",
        "create",
        "--name",
        "kiosk base",
        "--group",
        "kiosks",
        "--package-group",
        "base",
        "--priority",
        "5",
        "--sequence",
        "abort_after_failed",
    ]);
    let id = rule["id"].as_str().unwrap().to_owned();
    assert_eq!(rule["enabled"], false);
    assert_eq!(rule["sequence"], "abort_after_failed");
    assert_eq!(rule["jobs"].as_array().unwrap().len(), 2);
    let text = c.human(&["rule", "show", &id]);
    shows(row(&text, "enabled"), &["no"]);
    // No description given: a dash, not a blank.
    let description: Vec<&str> = row(&text, "description").split_whitespace().collect();
    assert_eq!(description, ["│", "description", "-", "│"]);
    shows(
        &text,
        &["group kiosks", "WAITING_NOTIFICATION", "base-tools"],
    );
    let enabled = c.json(&["rule", "enable", &id]);
    assert_eq!(enabled["enabled"], true);
    c.json_is_get(&["rule", "show", &id], &format!("/rules/{id}"));
    c.json_is_get(&["rule", "list"], "/rules");
    shows(
        row(&c.human(&["rule", "list"]), &id),
        &["kiosk base", "yes", "base"],
    );
    // Tagging b brings it under the rule at once.
    ok(c.run(&["computer", "tag", &b, "kiosk"]));
    let shown = c.get(&format!("/rules/{id}"));
    assert_eq!(shown["computers"], 2);
    assert_eq!(shown["jobs"].as_array().unwrap().len(), 4);
    let text = c.human(&["rule", "reevaluate", &id]);
    shows(
        &text,
        &["re-evaluated: 0 job(s) added, 0 renewed, 0 removed"],
    );
    let off = c.json(&["rule", "disable", &id]);
    assert_eq!(off["enabled"], false);
    shows(&c.human(&["rule", "delete", &id]), &["deleted rule"]);
    assert_eq!(c.get("/rules"), json!([]));
    shows(
        &c.human(&["package-group", "delete", "base"]),
        &["deleted package group base"],
    );
    shows(
        &c.human(&["group", "delete", "lyon"]),
        &["deleted group lyon"],
    );

    // Targeting by criteria wherever computers are chosen.
    let assigned: Assigned =
        serde_json::from_value(c.json(&["package", "assign", &p2, "--tag", "ALPHA"])).unwrap();
    assert_eq!(assigned.assigned, vec![a.parse().unwrap()]);
    let made: Container = serde_json::from_value(c.json(&[
        "container",
        "create",
        "--name",
        "lyon",
        "--package",
        &p1,
        "--hostname",
        "pc-lyon-*",
        "--os",
        "linux",
    ]))
    .unwrap();
    let on: Vec<String> = made
        .jobs
        .iter()
        .map(|j| j.computer_id.to_string())
        .collect();
    assert_eq!(on, vec![b.clone()]);
    let made: Container = serde_json::from_value(c.json(&[
        "container",
        "create",
        "--name",
        "kiosks",
        "--package",
        &p2,
        "--group",
        "kiosks",
    ]))
    .unwrap();
    assert_eq!(made.jobs.len(), 2);
}

#[test]
fn group_and_rule_errors_name_the_problem() {
    let c = Central::start();
    let a = c.enroll("pc-1", "linux", &["127.1.0.5"]);
    let v1 = c.version("app", "1", &["--uninstall-command", "echo bye"]);
    let v2 = c.version("app", "2", &["--uninstall-command", "echo bye"]);
    let (v1, v2) = (v1["id"].as_str().unwrap(), v2["id"].as_str().unwrap());

    fail(
        c.run(&["group", "create", "bad name"]),
        &["group name", "bad name"],
    );
    fail(
        c.run(&["group", "create", "g", "--subnet", "10.0.0.0/33"]),
        &["subnets", "10.0.0.0/33"],
    );
    fail(
        c.run(&["group", "create", "g", "--hostname", "pc-["]),
        &["hostnames", "pc-["],
    );
    fail(
        c.run(&["group", "create", "g", "--computer", "ghost-1"]),
        &["ghost-1"],
    );
    fail(c.run(&["group", "show", ".."]), &["'..'"]);
    fail(c.run(&["group", "show", "nope"]), &["group", "nope"]);
    fail(c.run(&["computer", "tag", &a, "a b"]), &["tags", "a b"]);
    fail(c.run(&["computer", "tag", &a]), &["--clear"]);
    fail(c.run(&["computer", "tag", "../x", "t"]), &["'../x'"]);

    ok(c.run(&["group", "create", "all", "--subnet", "127.0.0.0/8"]));
    ok(c.run(&["package-group", "create", "one", "--package", v1]));
    fail(
        c.run(&["rule", "create", "--name", "r", "--package-group", "one"]),
        &["group", "criteria"],
    );
    fail(
        c.run(&[
            "rule",
            "create",
            "--name",
            "r",
            "--group",
            "nope",
            "--package-group",
            "one",
        ]),
        &["group", "nope"],
    );
    ok(c.run(&[
        "rule",
        "create",
        "--name",
        "r",
        "--group",
        "all",
        "--package-group",
        "one",
    ]));
    // The uninstall/install loop OCO warns about is refused, saying why.
    fail(
        c.run(&["package-group", "add", "one", v2]),
        &["auto-uninstall", "loop", v1, v2],
    );
    fail(
        c.run(&["group", "delete", "all"]),
        &["delete those rules first"],
    );
    fail(c.run(&["rule", "show", "ghost-1"]), &["rule", "ghost-1"]);
    fail(c.run(&["rule", "enable", "../x"]), &["'../x'"]);
    fail(
        c.run(&["package", "assign", v1, "--tag", "alpha", "--computer", &a]),
        &["--computer"],
    );
    fail(
        c.run(&["package", "assign", v1, "--group", "nope"]),
        &["group", "nope"],
    );
}

#[test]
fn rule_create_flags_rule_edit_and_package_group_remove_from_the_cli() {
    let c = Central::start();
    let a = c.enroll("pc-paris-1", "linux", &["127.1.0.5"]);
    let b = c.enroll("srv-paris-2", "linux", &["127.1.0.6"]);
    let p1 = c.command_package("base-tools");
    let p2 = c.command_package("browser");
    ok(c.run(&["computer", "tag", &a, "kiosk"]));
    ok(c.run(&["computer", "tag", &b, "kiosk"]));
    ok(c.run(&[
        "package-group",
        "create",
        "base",
        "--package",
        &p1,
        "--package",
        &p2,
    ]));

    // Criteria alone choose; --enable and --no-auto-uninstall reach the rule.
    let rule = c.json(&[
        "rule",
        "create",
        "--name",
        "kiosks",
        "--tag",
        "kiosk",
        "--os",
        "linux",
        "--hostname",
        "pc-*",
        "--package-group",
        "base",
        "--enable",
        "--no-auto-uninstall",
    ]);
    let id = rule["id"].as_str().unwrap().to_owned();
    assert_eq!(rule["enabled"], true);
    assert_eq!(rule["auto_uninstall"], false);
    assert_eq!(
        rule["criteria"],
        json!({"tags": ["kiosk"], "os": ["linux"], "hostnames": ["pc-*"]})
    );
    assert_eq!(rule["computers"], 1);
    assert_eq!(rule["jobs"].as_array().unwrap().len(), 2);

    // Removing a package from the group takes its waiting job away.
    let pg = c.json(&["package-group", "remove", "base", &p2]);
    assert_eq!(pg["packages"].as_array().unwrap().len(), 1);
    let shown = c.get(&format!("/rules/{id}"));
    assert_eq!(shown["jobs"].as_array().unwrap().len(), 1);

    // rule edit: criteria given replace the old ones whole; the id stays.
    let edited = c.json(&[
        "rule",
        "edit",
        &id,
        "--hostname",
        "*-paris-*",
        "--priority",
        "-2",
        "--auto-uninstall",
        "on",
        "--description",
        "every paris kiosk",
    ]);
    assert_eq!(edited["id"], id.as_str());
    assert_eq!(edited["criteria"], json!({"hostnames": ["*-paris-*"]}));
    assert_eq!(edited["priority"], -2);
    assert_eq!(edited["auto_uninstall"], true);
    assert_eq!(edited["computers"], 2);
    shows(
        &c.human(&["rule", "show", &id]),
        &["every paris kiosk", "hostname *-paris-*", "srv-paris-2"],
    );
    ok(c.run(&["group", "create", "pilots", "--computer", &a]));
    let edited = c.json(&["rule", "edit", &id, "--group", "pilots", "--clear-criteria"]);
    assert_eq!(
        (&edited["group"], &edited["criteria"]),
        (&json!("pilots"), &json!({}))
    );
    assert_eq!(edited["computers"], 1);

    // Bad edits are named and change nothing.
    fail(c.run(&["rule", "edit", &id]), &["nothing to change"]);
    fail(
        c.run(&["rule", "edit", &id, "--no-group"]),
        &["group", "criteria"],
    );
    fail(
        c.run(&["rule", "edit", &id, "--group", "nope"]),
        &["group", "nope"],
    );
    fail(
        c.run(&["rule", "edit", &id, "--auto-uninstall", "maybe"]),
        &["maybe", "--auto-uninstall"],
    );
    fail(
        c.run(&["rule", "edit", &id, "--tag", "a b"]),
        &["tags", "a b"],
    );
    fail(
        c.run(&["rule", "edit", "ghost-1", "--priority", "1"]),
        &["rule", "ghost-1"],
    );
    fail(
        c.run(&["package-group", "remove", "base", &p2]),
        &[&p2, "base"],
    );
    assert_eq!(c.get(&format!("/rules/{id}"))["group"], "pilots");
}
