//! End to end: deployment rules (SPEC "Rules, groups, power, users") with real
//! agents — a computer added to a rule's group gets its job and deploys; a
//! package removed from the rule's package group is uninstalled; a dynamic
//! group by tag takes in an agent enrolled with that tag.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sitecast_tests::{enc, log_lines, Agent, Central};

/// A command-only package (central serves it: no relay needed) that appends
/// `install` or `uninstall` to `log`.
async fn logging_package(c: &Central, name: &str, log: &std::path::Path) -> String {
    let install = format!("echo install >> {}", log.display());
    let uninstall = format!("echo uninstall >> {}", log.display());
    let p = c
        .upload(
            &format!(
                "name={name}&version=1&action=execute&command={}&uninstall_command={}",
                enc(&install),
                enc(&uninstall)
            ),
            vec![],
        )
        .await;
    p["id"].as_str().unwrap().to_owned()
}

fn pair(package: &str, status: &str) -> (String, String) {
    (package.to_owned(), status.to_owned())
}

/// Whether central believes the package is installed on the agent's computer.
async fn installed(c: &Central, agent: &Agent, package: &str) -> bool {
    let detail: Value = c.get(&format!("/computers/{}", agent.id)).await;
    detail["packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["package_id"] == package && p["installed"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_deploys_to_computers_added_to_its_group_and_uninstalls_what_leaves_it() {
    let c = Central::start().await;
    let a = c.agent("pc-a", "127.1.0.11").await;
    let b = c.agent("pc-b", "127.1.0.12").await;
    let log = c.path("base.log");
    let p = logging_package(&c, "base", &log).await;
    c.post("/groups", json!({"name": "pilots", "computers": [a.id]}))
        .await;
    c.post("/package-groups", json!({"name": "base", "packages": [p]}))
        .await;
    let rule = c
        .post(
            "/rules",
            json!({"name": "base", "group": "pilots", "package_group": "base", "enabled": true}),
        )
        .await;
    assert_eq!(rule["enabled"], true, "{rule}");

    assert_eq!(a.once_codes().await, vec![pair(&p, "SUCCESS")]);
    assert_eq!(b.once_codes().await, vec![]);
    assert_eq!(log_lines(&log), vec!["install"]);

    // Adding b to the group makes its job at once; its next poll deploys it.
    c.post("/groups/pilots/members", json!({"computers": [b.id]}))
        .await;
    assert_eq!(b.once_codes().await, vec![pair(&p, "SUCCESS")]);
    assert_eq!(log_lines(&log), vec!["install", "install"]);
    assert!(installed(&c, &b, &p).await);

    // Removing the package from the group uninstalls it where the rule put it.
    c.delete(&format!("/package-groups/base/members/{p}")).await;
    for agent in [&a, &b] {
        let round = agent.once().await;
        assert_eq!(round.kinds, vec![sitecast_common::jobs::JobKind::Uninstall]);
        assert_eq!(agent.once_codes().await, vec![], "nothing more to do");
        assert!(!installed(&c, agent, &p).await);
    }
    assert_eq!(
        log_lines(&log),
        vec!["install", "install", "uninstall", "uninstall"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_group_by_tag_takes_in_a_newly_enrolled_tagged_agent() {
    let c = Central::start().await;
    let log = c.path("kiosk.log");
    let p = logging_package(&c, "kiosk-app", &log).await;
    c.post("/groups", json!({"name": "kiosks", "tags": ["kiosk"]}))
        .await;
    c.post("/package-groups", json!({"name": "kiosk", "packages": [p]}))
        .await;
    c.post(
        "/rules",
        json!({"name": "kiosks", "group": "kiosks", "package_group": "kiosk", "enabled": true}),
    )
    .await;

    let office = c.agent("pc-office", "127.1.0.21").await;
    let kiosk = c.tagged_agent("pc-kiosk", "127.1.0.22", &["KIOSK"]).await;
    let group = c.get("/groups/kiosks").await;
    assert_eq!(group["members"][0]["id"], kiosk.id.as_str(), "{group}");
    assert_eq!(kiosk.once_codes().await, vec![pair(&p, "SUCCESS")]);
    assert_eq!(office.once_codes().await, vec![]);
    assert_eq!(log_lines(&log), vec!["install"]);
}
