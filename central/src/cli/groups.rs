//! `sitecast group`, `package-group`, `rule` and `computer tag`, and the
//! targeting flags (`--computer`, `--all`, `--subnet`, `--group`, `--tag`,
//! `--os`, `--hostname`) wherever computers are chosen.

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use sitecast_common::groups::Criteria;
use sitecast_common::ids::{ComputerId, ContainerId, GroupName, IdError, PackageId};
use sitecast_common::wire::{
    Group, GroupRequest, MembersRequest, PackageGroup, PackageGroupRequest, PackageMembersRequest,
    Rule, RuleEvaluated, RuleRequest, RuleUpdate, TagsRequest, Target,
};

use super::client::{Answer, Client};
use super::render;
use crate::error::CentralError;

/// Which computers: a list, or filters that must all hold (OCS's "search, then
/// deploy to all results").
#[derive(Args, Debug, Clone, Default)]
#[group(id = "target", required = true, multiple = true)]
pub struct TargetArgs {
    /// Computer ids (repeat the flag or separate with commas).
    #[arg(long = "computer", value_delimiter = ',',
          conflicts_with_all = ["all", "subnet", "group", "tags", "os", "hostnames"])]
    pub computers: Vec<String>,
    /// Every enrolled computer.
    #[arg(long)]
    pub all: bool,
    /// The computers with an address in this subnet.
    #[arg(long)]
    pub subnet: Option<String>,
    /// The members of this computer group.
    #[arg(long)]
    pub group: Option<String>,
    /// Computers carrying one of these tags (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Computers running one of these OSes, e.g. linux (repeatable).
    #[arg(long = "os")]
    pub os: Vec<String>,
    /// Computers whose hostname matches one of these globs, e.g. 'pc-paris-*' (repeatable).
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
}

fn some(list: &[String]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.to_vec())
}

impl TargetArgs {
    pub fn target(&self) -> Target {
        Target {
            computers: some(&self.computers),
            all: self.all.then_some(true),
            subnet: self.subnet.clone(),
            group: self.group.clone(),
            tags: some(&self.tags),
            os: some(&self.os),
            hostnames: some(&self.hostnames),
        }
    }
}

/// Dynamic membership flags, for groups and rules.
#[derive(Args, Debug, Clone, Default)]
pub struct CriteriaArgs {
    /// Computers with an address in this subnet (repeatable).
    #[arg(long = "subnet")]
    pub subnets: Vec<String>,
    /// Computers carrying this tag (repeatable: any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Computers running this OS (repeatable: any of them).
    #[arg(long = "os")]
    pub os: Vec<String>,
    /// Computers whose hostname matches this glob (repeatable: any of them).
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create a computer group: static (--computer), dynamic (--subnet, --tag,
    /// --os, --hostname: each kind any of its values, every kind given), or both.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Static members (repeat the flag or separate with commas).
        #[arg(long = "computer", value_delimiter = ',')]
        computers: Vec<String>,
        #[command(flatten)]
        criteria: CriteriaArgs,
    },
    List,
    /// A group and its members now.
    Show {
        name: String,
    },
    /// Delete a group no rule uses.
    Delete {
        name: String,
    },
    /// Add static members.
    Add {
        name: String,
        #[arg(required = true)]
        computers: Vec<String>,
    },
    /// Remove static members.
    Remove {
        name: String,
        #[arg(required = true)]
        computers: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PackageGroupCommand {
    /// Create a package group; rules deploy its packages in this order.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Package ids (repeat the flag or separate with commas).
        #[arg(long = "package", value_delimiter = ',')]
        packages: Vec<String>,
    },
    List,
    Show {
        name: String,
    },
    /// Delete a package group no rule deploys.
    Delete {
        name: String,
    },
    /// Add packages, after the others.
    Add {
        name: String,
        #[arg(required = true)]
        packages: Vec<String>,
    },
    /// Remove packages (a rule with auto-uninstall then uninstalls what it installed).
    Remove {
        name: String,
        #[arg(required = true)]
        packages: Vec<String>,
    },
}

/// `rule create`: sent as given; central validates and names the bad field.
#[derive(Args, Debug)]
pub struct RuleArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub description: Option<String>,
    /// The computer group the rule deploys to.
    #[arg(long)]
    pub group: Option<String>,
    #[command(flatten)]
    pub criteria: CriteriaArgs,
    /// The package group it deploys.
    #[arg(long)]
    pub package_group: String,
    /// Hand its jobs out at once (default: created disabled, so you can check its jobs first).
    #[arg(long)]
    pub enable: bool,
    /// Do not uninstall other versions first, nor what leaves the package group.
    #[arg(long)]
    pub no_auto_uninstall: bool,
    /// Higher first (OCO); may be negative; default 0.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    #[arg(long, value_parser = ["abort_after_failed", "ignore_failed"])]
    pub sequence: Option<String>,
}

/// `rule edit`: only what is given changes.
#[derive(Args, Debug)]
pub struct RuleEditArgs {
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// The computer group it deploys to from now on.
    #[arg(long, conflicts_with = "no_group")]
    pub group: Option<String>,
    /// Drop the computer group: the criteria alone choose.
    #[arg(long)]
    pub no_group: bool,
    /// Criteria given replace the rule's criteria whole.
    #[command(flatten)]
    pub criteria: CriteriaArgs,
    /// Remove every criterion: the group alone chooses.
    #[arg(long, conflicts_with_all = ["subnets", "tags", "os", "hostnames"])]
    pub clear_criteria: bool,
    #[arg(long)]
    pub package_group: Option<String>,
    /// Uninstall other versions first, and what leaves the package group.
    #[arg(long, value_parser = ["on", "off"])]
    pub auto_uninstall: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    #[arg(long, value_parser = ["abort_after_failed", "ignore_failed"])]
    pub sequence: Option<String>,
}

impl RuleEditArgs {
    fn update(&self) -> Result<RuleUpdate, CentralError> {
        let c = &self.criteria;
        let given = !(c.subnets.is_empty()
            && c.tags.is_empty()
            && c.os.is_empty()
            && c.hostnames.is_empty());
        let replace = |l: &Vec<String>| (given || self.clear_criteria).then(|| l.clone());
        let update = RuleUpdate {
            name: self.name.clone(),
            description: self.description.clone(),
            group: if self.no_group {
                Some(String::new())
            } else {
                self.group.clone()
            },
            subnets: replace(&c.subnets),
            tags: replace(&c.tags),
            os: replace(&c.os),
            hostnames: replace(&c.hostnames),
            package_group: self.package_group.clone(),
            auto_uninstall: self.auto_uninstall.as_deref().map(|v| v == "on"),
            priority: self.priority,
            sequence: self.sequence.clone(),
        };
        if update == RuleUpdate::default() {
            return Err(CentralError::Invalid(
                "rule edit: nothing to change (see --help for what can be)".into(),
            ));
        }
        Ok(update)
    }
}

#[derive(Subcommand, Debug)]
pub enum RuleCommand {
    /// Create a deployment rule (computers × a package group); prints it with its jobs.
    Create(Box<RuleArgs>),
    /// Change a rule (only what is given); it is re-evaluated at once.
    Edit(Box<RuleEditArgs>),
    List,
    /// A rule and its jobs.
    Show {
        id: String,
    },
    /// Start handing its jobs out.
    Enable {
        id: String,
    },
    /// Stop handing its jobs out (jobs under way run to their end).
    Disable {
        id: String,
    },
    /// Delete a rule and its jobs (what it installed stays installed).
    Delete {
        id: String,
    },
    /// Re-evaluate now, and start its failed jobs over.
    Reevaluate {
        id: String,
    },
}

fn invalid(e: IdError) -> CentralError {
    CentralError::Invalid(e.to_string())
}

/// Paths take checked names only (see `package_path`).
fn group_path(kind: &str, name: &str, rest: &str) -> Result<String, CentralError> {
    let name: GroupName = name.parse().map_err(invalid)?;
    Ok(format!("/{kind}/{name}{rest}"))
}

fn rule_path(id: &str, rest: &str) -> Result<String, CentralError> {
    let id: ContainerId = id.parse().map_err(invalid)?;
    Ok(format!("/rules/{id}{rest}"))
}

pub async fn group(client: &Client, cmd: &GroupCommand) -> Result<Answer, CentralError> {
    match cmd {
        GroupCommand::Create {
            name,
            description,
            computers,
            criteria,
        } => {
            let req = GroupRequest {
                name: name.clone(),
                description: description.clone(),
                computers: computers.clone(),
                subnets: criteria.subnets.clone(),
                tags: criteria.tags.clone(),
                os: criteria.os.clone(),
                hostnames: criteria.hostnames.clone(),
            };
            client.post_json("/groups", &req).await
        }
        GroupCommand::List => client.get("/groups").await,
        GroupCommand::Show { name } => client.get(&group_path("groups", name, "")?).await,
        GroupCommand::Delete { name } => client.delete(&group_path("groups", name, "")?).await,
        GroupCommand::Add { name, computers } => {
            let req = MembersRequest {
                computers: computers.clone(),
            };
            client
                .post_json(&group_path("groups", name, "/members")?, &req)
                .await
        }
        GroupCommand::Remove { name, computers } => {
            let mut last = None;
            for c in computers {
                let id: ComputerId = c.parse().map_err(invalid)?;
                let path = group_path("groups", name, &format!("/members/{id}"))?;
                last = Some(client.delete(&path).await?);
            }
            last.ok_or_else(|| CentralError::Invalid("name at least one computer".into()))
        }
    }
}

pub async fn package_group(
    client: &Client,
    cmd: &PackageGroupCommand,
) -> Result<Answer, CentralError> {
    const KIND: &str = "package-groups";
    match cmd {
        PackageGroupCommand::Create {
            name,
            description,
            packages,
        } => {
            let req = PackageGroupRequest {
                name: name.clone(),
                description: description.clone(),
                packages: packages.clone(),
            };
            client.post_json("/package-groups", &req).await
        }
        PackageGroupCommand::List => client.get("/package-groups").await,
        PackageGroupCommand::Show { name } => client.get(&group_path(KIND, name, "")?).await,
        PackageGroupCommand::Delete { name } => client.delete(&group_path(KIND, name, "")?).await,
        PackageGroupCommand::Add { name, packages } => {
            let req = PackageMembersRequest {
                packages: packages.clone(),
            };
            client
                .post_json(&group_path(KIND, name, "/members")?, &req)
                .await
        }
        PackageGroupCommand::Remove { name, packages } => {
            let mut last = None;
            for p in packages {
                let id: PackageId = p.parse().map_err(invalid)?;
                let path = group_path(KIND, name, &format!("/members/{id}"))?;
                last = Some(client.delete(&path).await?);
            }
            last.ok_or_else(|| CentralError::Invalid("name at least one package".into()))
        }
    }
}

pub async fn rule(client: &Client, cmd: &RuleCommand) -> Result<Answer, CentralError> {
    match cmd {
        RuleCommand::Create(args) => {
            let req = RuleRequest {
                name: args.name.clone(),
                description: args.description.clone(),
                group: args.group.clone(),
                subnets: args.criteria.subnets.clone(),
                tags: args.criteria.tags.clone(),
                os: args.criteria.os.clone(),
                hostnames: args.criteria.hostnames.clone(),
                package_group: args.package_group.clone(),
                enabled: args.enable.then_some(true),
                auto_uninstall: args.no_auto_uninstall.then_some(false),
                priority: args.priority,
                sequence: args.sequence.clone(),
            };
            client.post_json("/rules", &req).await
        }
        RuleCommand::Edit(args) => {
            let update = args.update()?;
            client.patch_json(&rule_path(&args.id, "")?, &update).await
        }
        RuleCommand::List => client.get("/rules").await,
        RuleCommand::Show { id } => client.get(&rule_path(id, "")?).await,
        RuleCommand::Enable { id } => client.post_empty(&rule_path(id, "/enable")?).await,
        RuleCommand::Disable { id } => client.post_empty(&rule_path(id, "/disable")?).await,
        RuleCommand::Delete { id } => client.delete(&rule_path(id, "")?).await,
        RuleCommand::Reevaluate { id } => client.post_empty(&rule_path(id, "/reevaluate")?).await,
    }
}

/// `computer tag ID TAG...`: the computer's tags from now on (`--clear`: none).
pub async fn tag(client: &Client, id: &str, tags: &[String]) -> Result<Answer, CentralError> {
    let id: ComputerId = id.parse().map_err(invalid)?;
    let req = TagsRequest {
        tags: tags.to_vec(),
    };
    client
        .put_json(&format!("/computers/{id}/tags"), &req)
        .await
}

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
        ("created", render::timestamp(g.created_at)),
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
        ("created", render::timestamp(g.created_at)),
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
        ("created", render::timestamp(r.created_at)),
        ("jobs", counts(r)),
    ]);
    if r.jobs.is_empty() {
        return t.to_string();
    }
    format!("{t}\n{}", render::jobs(&r.jobs))
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
