//! The flags of `sitecast group`, `package-group` and `rule`, and the
//! targeting flags (`--computer`, `--all`, `--subnet`, `--group`, `--tag`,
//! `--os`, `--hostname`) wherever computers are chosen.

use clap::{Args, Subcommand};
use sitecast_common::wire::{RuleUpdate, Target};

use crate::error::CliError;

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
    pub(crate) fn update(&self) -> Result<RuleUpdate, CliError> {
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
            return Err(CliError::Invalid(
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
