//! Computer groups, package groups and deployment rules.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use sitecast_common::groups::Criteria;
use sitecast_common::wire::{Group, PackageGroup, Rule, RuleEvaluated};

/// A key-value table; an empty value shows as `-`.
fn kv(rows: Vec<(&str, String)>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    for (k, v) in rows {
        let v = if v.is_empty() { "-".to_owned() } else { v };
        t.add_row(vec![k.to_owned(), v]);
    }
    t
}

fn header(h: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(h.to_vec());
    t
}

fn join<T: ToString>(items: &[T]) -> String {
    let s = items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// Criteria in one line, e.g. `subnet 10.1.0.0/16; tag alpha, beta`.
pub fn criteria(c: &Criteria) -> String {
    let mut parts = Vec::new();
    if !c.subnets.is_empty() {
        parts.push(format!("subnet {}", join(&c.subnets)));
    }
    if !c.tags.is_empty() {
        parts.push(format!("tag {}", join(&c.tags)));
    }
    if !c.os.is_empty() {
        parts.push(format!("os {}", join(&c.os)));
    }
    if !c.hostnames.is_empty() {
        let globs: Vec<&str> = c.hostnames.iter().map(|g| g.as_str()).collect();
        parts.push(format!("hostname {}", globs.join(", ")));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

pub fn groups(list: &[Group]) -> String {
    let mut t = header(&["GROUP", "STATIC", "CRITERIA", "MEMBERS", "RULES"]);
    for g in list {
        t.add_row(vec![
            g.name.to_string(),
            g.computers.len().to_string(),
            criteria(&g.criteria),
            g.members.len().to_string(),
            join(&g.rules),
        ]);
    }
    t.to_string()
}

pub fn group_detail(g: &Group) -> String {
    let t = kv(vec![
        ("name", g.name.to_string()),
        ("description", g.description.clone()),
        ("static members", join(&g.computers)),
        ("criteria", criteria(&g.criteria)),
        ("rules", join(&g.rules)),
        ("created", super::timestamp(g.created_at)),
    ]);
    let mut m = header(&["MEMBER", "HOSTNAME"]);
    for member in &g.members {
        m.add_row(vec![member.id.to_string(), member.hostname.clone()]);
    }
    format!("{t}\n{m}")
}

pub fn package_groups(list: &[PackageGroup]) -> String {
    let mut t = header(&["PACKAGE GROUP", "PACKAGES", "RULES"]);
    for g in list {
        let ids: Vec<&str> = g.packages.iter().map(|p| p.id.as_str()).collect();
        t.add_row(vec![g.name.to_string(), join(&ids), join(&g.rules)]);
    }
    t.to_string()
}

pub fn package_group_detail(g: &PackageGroup) -> String {
    let t = kv(vec![
        ("name", g.name.to_string()),
        ("description", g.description.clone()),
        ("rules", join(&g.rules)),
        ("created", super::timestamp(g.created_at)),
    ]);
    let mut p = header(&["#", "PACKAGE", "NAME", "VERSION"]);
    for (i, member) in g.packages.iter().enumerate() {
        p.add_row(vec![
            (i + 1).to_string(),
            member.id.to_string(),
            member.name.clone(),
            member.version.clone(),
        ]);
    }
    format!("{t}\n{p}")
}

fn computers_of(r: &Rule) -> String {
    match &r.group {
        Some(g) if r.criteria.is_empty() => format!("group {g}"),
        Some(g) => format!("group {g}; {}", criteria(&r.criteria)),
        None => criteria(&r.criteria),
    }
}

fn counts(r: &Rule) -> String {
    let parts: Vec<String> = r.counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    join(&parts)
}

pub fn rules(list: &[Rule]) -> String {
    let mut t = header(&[
        "RULE",
        "NAME",
        "ENABLED",
        "COMPUTERS",
        "PACKAGE GROUP",
        "PRIORITY",
        "JOBS",
    ]);
    for r in list {
        t.add_row(vec![
            r.id.to_string(),
            r.name.clone(),
            if r.enabled { "yes" } else { "no" }.into(),
            format!("{} ({})", r.computers, computers_of(r)),
            r.package_group.to_string(),
            r.priority.to_string(),
            counts(r),
        ]);
    }
    t.to_string()
}

pub fn rule_detail(r: &Rule) -> String {
    let t = kv(vec![
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("description", r.description.clone()),
        (
            "enabled",
            if r.enabled {
                "yes"
            } else {
                "no (jobs are not handed out)"
            }
            .into(),
        ),
        (
            "computers",
            format!("{} ({})", r.computers, computers_of(r)),
        ),
        ("package group", r.package_group.to_string()),
        (
            "auto uninstall",
            if r.auto_uninstall { "yes" } else { "no" }.into(),
        ),
        ("priority", r.priority.to_string()),
        ("sequence", r.sequence.to_string()),
        ("created", super::timestamp(r.created_at)),
        ("jobs", counts(r)),
    ]);
    if r.jobs.is_empty() {
        return t.to_string();
    }
    format!("{t}\n{}", super::jobs(&r.jobs))
}

pub fn rule_evaluated(e: &RuleEvaluated) -> String {
    format!(
        "rule {} re-evaluated: {} job(s) added, {} renewed, {} removed\n{}",
        e.rule.id,
        e.evaluation.added,
        e.evaluation.renewed,
        e.evaluation.removed,
        rule_detail(&e.rule)
    )
}
