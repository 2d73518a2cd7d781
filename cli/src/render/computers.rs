//! Computers: `computer list` and `computer show` (its packages and jobs), and the
//! enroll tokens that let them in.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use sitecast_common::wire::{Computer, ComputerDetail, CreatedEnrollToken, EnrollToken};

use super::containers::{exit, job_package};
use super::{at, join, table, when};

pub fn computers(list: &[Computer]) -> String {
    let mut t = table(&[
        "COMPUTER",
        "HOSTNAME",
        "OS",
        "ADDRESSES",
        "TAGS",
        "LAST SEEN",
        "MACS",
    ]);
    for c in list {
        t.add_row(vec![
            c.id.to_string(),
            c.hostname.clone(),
            c.os.clone(),
            join(&c.addresses),
            join(&c.tags),
            when(c.last_seen),
            join(&c.macs),
        ]);
    }
    t.to_string()
}

/// A computer as a key-value table, then the packages assigned to it.
pub fn computer(d: &ComputerDetail) -> String {
    let c = &d.computer;
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    let rows: Vec<(&str, String)> = vec![
        ("id", c.id.to_string()),
        ("hostname", c.hostname.clone()),
        ("os", c.os.clone()),
        ("addresses", join(&c.addresses)),
        ("tags", join(&c.tags)),
        ("macs", join(&c.macs)),
        ("enrolled", when(Some(c.enrolled_at))),
        ("last seen", when(c.last_seen)),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    let mut p = table(&[
        "PACKAGE",
        "NAME",
        "VERSION",
        "STATUS",
        "INSTALLED",
        "INSTALLED AT",
        "UPDATED",
    ]);
    for a in &d.packages {
        p.add_row(vec![
            a.package_id.to_string(),
            a.name.clone(),
            a.version.clone(),
            a.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            if a.installed { "yes" } else { "no" }.to_owned(),
            at(a.installed_at),
            at(a.updated_at),
        ]);
    }
    let mut text = format!("{t}\n{p}");
    if !d.jobs.is_empty() {
        let mut j = table(&[
            "CONTAINER",
            "#",
            "PACKAGE",
            "KIND",
            "STATUS",
            "EXIT",
            "UPDATED",
        ]);
        for job in &d.jobs {
            j.add_row(vec![
                job.container_id.to_string(),
                job.order.to_string(),
                job_package(job),
                job.kind.to_string(),
                job.status.to_string(),
                exit(job.exit_code),
                when(Some(job.updated_at)),
            ]);
        }
        text.push('\n');
        text.push_str(&j.to_string());
    }
    text
}

pub fn enroll_tokens(list: &[EnrollToken]) -> String {
    let mut t = table(&["ENROLL TOKEN", "USED", "USES", "EXPIRES", "TAGS", "CREATED"]);
    for e in list {
        t.add_row(vec![
            e.id.clone(),
            e.used.to_string(),
            e.uses.map_or_else(|| "any".to_owned(), |n| n.to_string()),
            e.expires_at
                .map_or_else(|| "never".to_owned(), |at| when(Some(at))),
            join(&e.tags),
            when(Some(e.created_at)),
        ]);
    }
    t.to_string()
}

/// A new token: the table of it, then its secret, shown this once.
pub fn created_enroll_token(c: &CreatedEnrollToken) -> String {
    format!(
        "{}\ntoken: {}\n(shown once: give it to `sitecast-agent enroll --token`)",
        enroll_tokens(std::slice::from_ref(&c.enroll_token)),
        c.token
    )
}
