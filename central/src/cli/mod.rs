//! The `sitecast` admin CLI: a thin client of central's HTTP API.
//!
//! Two stages, as ripgrep does: clap parses raw flags ([`Cli`]), then [`run`]
//! resolves where central is and performs one command. Human-readable tables by
//! default; `--json` prints exactly the API's response body.

mod client;
mod groups;
mod render;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use futures_util::StreamExt;
use sitecast_common::ids::{ComputerId, ContainerId, IdError, PackageId};
use sitecast_common::wire::Coverage;
use sitecast_common::wire::{
    ActivationRequest, Assigned, AssignmentRequest, Computer, ComputerDetail, Container,
    ContainerChanged, ContainerRequest, Deactivated, Group, Package, PackageGroup, Relay,
    RelayCreated, RelayRequest, Rule, RuleEvaluated, Site, SiteRequest, Stats, ValidateRequest,
    Validated,
};

pub use client::{Answer, Client};

use crate::config::CentralConfig;
use crate::error::CentralError;
use crate::init::{read_token, Layout};

/// Connection options come before the command (`relay add` has a `--url` of its own).
#[derive(Parser, Debug)]
#[command(name = "sitecast", version, about = "Sitecast admin CLI")]
pub struct Cli {
    /// Read the URL, admin token and CA from a central's directory.
    #[arg(long, conflicts_with_all = ["url", "token", "ca"])]
    pub central_dir: Option<PathBuf>,
    /// Central's API URL, e.g. https://127.0.0.1:8443 [env: SITECAST_URL].
    #[arg(long)]
    pub url: Option<String>,
    /// The admin token [env: SITECAST_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// The CA certificate central's TLS certificate is checked against [env: SITECAST_CA].
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON response body instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sites: branch offices, plants, shops.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Relays: the per-site caches agents download from.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Packages: create, activate for sites, assign to computers, follow.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Computers enrolled by their agents.
    #[command(subcommand)]
    Computer(ComputerCommand),
    /// Job containers (OCO): packages run in order on computers, with a start,
    /// an end, a priority, IP ranges, time frames and retries.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Computers no relay serves, each site's relays and computers, relays
    /// whose holdings are stale, and subnets two sites' relays both serve.
    Coverage {
        /// Relays not in touch for longer are out of touch, e.g. 1h (default:
        /// central.toml's relay_stale_after).
        #[arg(long)]
        relay_stale_after: Option<String>,
        /// Computers in touch within this count as seen recently, e.g. 7d
        /// (default: central.toml's computer_recent_within).
        #[arg(long)]
        computer_recent_within: Option<String>,
    },
    /// Computer groups: static members, or dynamic by subnet, tag, OS, hostname.
    #[command(subcommand)]
    Group(groups::GroupCommand),
    /// Package groups, which deployment rules deploy.
    #[command(subcommand, name = "package-group")]
    PackageGroup(groups::PackageGroupCommand),
    /// Deployment rules (OCO): computers × a package group, re-evaluated as they change.
    #[command(subcommand)]
    Rule(groups::RuleCommand),
}

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    Add {
        name: String,
        #[arg(long = "subnet")]
        subnets: Vec<String>,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum RelayCommand {
    /// Add a relay; prints its id and token (give both to the site admin).
    Add {
        #[arg(long)]
        site: String,
        #[arg(long = "subnet", required = true)]
        subnets: Vec<String>,
        #[arg(long)]
        url: String,
    },
    List,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub version: String,
    /// The package file (omit for a command-only package).
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[arg(long, value_parser = ["launch", "execute", "store"])]
    pub action: String,
    #[arg(long)]
    pub command: Option<String>,
    #[arg(long)]
    pub path: Option<String>,
    /// 0 (urgent, first) to 10.
    #[arg(long)]
    pub priority: Option<String>,
    /// e.g. 4MiB.
    #[arg(long)]
    pub fragment_size: Option<String>,
    #[arg(long)]
    pub os: Option<String>,
    /// Exit codes that mean success, e.g. 0,3010.
    #[arg(long)]
    pub success_codes: Option<String>,
    /// The command that removes what the package installed.
    #[arg(long)]
    pub uninstall_command: Option<String>,
    /// Exit codes of the uninstall command that mean success, e.g. 0,3010.
    #[arg(long, requires = "uninstall_command")]
    pub uninstall_success_codes: Option<String>,
    /// Seconds the command may run before it is killed (default 3600).
    #[arg(long)]
    pub command_timeout: Option<String>,
    /// Inferred from the file's first bytes when not given.
    #[arg(long, value_parser = ["none", "zip", "tar.gz"])]
    pub archive: Option<String>,
    /// The older version this package replaces (a package id of the same name),
    /// or `none`; default: the newest existing package of the same name.
    #[arg(long, value_name = "ID|none")]
    pub supersedes: Option<String>,
    /// Tell the computer's user this before the action runs (OCS "notify user").
    #[arg(long, value_name = "TEXT")]
    pub notify_text: Option<String>,
    /// How long the user has to answer (e.g. 5m); then the deployment goes on.
    /// Default: no countdown.
    #[arg(long, value_name = "DURATION", requires = "notify_text")]
    pub notify_countdown: Option<String>,
    /// The user may abort the deployment (reported ERR_ABORTED).
    #[arg(long, requires = "notify_text")]
    pub notify_can_abort: bool,
    /// The user may delay the deployment to a later download cycle.
    #[arg(long, requires = "notify_text")]
    pub notify_can_delay: bool,
    /// Tell the computer's user this once the action succeeded.
    #[arg(long, value_name = "TEXT")]
    pub done_action_text: Option<String>,
    /// The computer restarts after installing it (after its job container's
    /// restart timeout, through the agent's power command).
    #[arg(long)]
    pub restart: bool,
}

#[derive(Subcommand, Debug)]
pub enum PackageCommand {
    Create(Box<CreateArgs>),
    List,
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Make the relays of sites replicate a package.
    Activate {
        id: String,
        #[arg(
            long = "site",
            required_unless_present = "all_sites",
            conflicts_with = "all_sites"
        )]
        sites: Vec<String>,
        #[arg(long)]
        all_sites: bool,
        /// never | always | after:DURATION
        #[arg(long)]
        fallback: Option<String>,
    },
    /// Undo an activation (OCS's red cross): the sites' relays drop the package
    /// and its install jobs not yet notified on their computers are cancelled.
    Deactivate {
        id: String,
        #[arg(
            long = "site",
            required_unless_present = "all_sites",
            conflicts_with = "all_sites"
        )]
        sites: Vec<String>,
        #[arg(long)]
        all_sites: bool,
    },
    /// Deploy a package to computers.
    Assign {
        id: String,
        #[command(flatten)]
        target: groups::TargetArgs,
    },
    Stats {
        id: String,
    },
    /// Clear the statistics of computers where the package is in place
    /// (--success), cancel assignments not yet notified (--not-notified), or both (--all).
    #[command(group(ArgGroup::new("what").required(true).args(["success", "not_notified", "all"])))]
    Validate {
        id: String,
        /// Remove the lines of computers with SUCCESS or ERR_ALREADY_SETUP.
        #[arg(long)]
        success: bool,
        /// Unassign computers still WAITING_NOTIFICATION.
        #[arg(long)]
        not_notified: bool,
        /// Both.
        #[arg(long)]
        all: bool,
    },
}

/// `container create`: every option is sent as given; central validates it and
/// names the bad field or token.
#[derive(Args, Debug)]
pub struct ContainerArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Package ids, run in this order on each computer (repeat the flag or separate with commas).
    #[arg(long = "package", required = true, value_delimiter = ',')]
    pub packages: Vec<String>,
    #[command(flatten)]
    pub target: groups::TargetArgs,
    /// When the jobs may start: RFC 3339 (2026-11-21T18:00:00Z) or central's
    /// local time (2026-11-21 18:00); default now.
    #[arg(long)]
    pub start: Option<String>,
    /// When jobs not yet handed out stop being handed out (same forms as --start).
    #[arg(long)]
    pub end: Option<String>,
    /// Higher first (OCO); may be negative; default 0.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Addresses (as central sees them) allowed to run the jobs, e.g. "10.1.0.0/16,!10.1.9.0/24".
    #[arg(long)]
    pub ip_ranges: Option<String>,
    /// When (central's clock and time zone) jobs are handed out, e.g. "MON-FRI 18:00-23:59".
    #[arg(long)]
    pub time_frames: Option<String>,
    /// What a failed job does to the computer's later jobs (default ignore_failed).
    #[arg(long, value_parser = ["abort_after_failed", "ignore_failed"])]
    pub sequence: Option<String>,
    /// Uninstall the packages instead of installing them.
    #[arg(long)]
    pub uninstall: bool,
    /// Do not uninstall the other installed versions of each package's name first.
    #[arg(long, conflicts_with = "uninstall")]
    pub no_auto_uninstall: bool,
    /// Automatic retries of a failed job (default 0).
    #[arg(long)]
    pub retries: Option<u32>,
    /// Wait before the first retry, doubled after each, e.g. 10m (default 5m).
    #[arg(long)]
    pub retry_backoff: Option<String>,
    /// Wake the computers with Wake-on-LAN when the container starts (through
    /// the relays of their subnets).
    #[arg(long)]
    pub wol: bool,
    /// Shut down the computers that were woken (off before, up within
    /// central.toml's wol_shutdown_expiry) once their jobs are done.
    #[arg(long, requires = "wol")]
    pub shutdown_after: bool,
    /// How long agents wait before restarting for a package that needs it,
    /// e.g. 10m (default 5m, at most a day; 0s: restart at once).
    #[arg(long)]
    pub restart_timeout: Option<String>,
}

impl ContainerArgs {
    fn request(&self) -> ContainerRequest {
        let target = self.target.target();
        ContainerRequest {
            name: self.name.clone(),
            description: self.description.clone(),
            packages: self.packages.clone(),
            computers: target.computers,
            all: target.all,
            subnet: target.subnet,
            group: target.group,
            tags: target.tags,
            os: target.os,
            hostnames: target.hostnames,
            start_at: self.start.clone(),
            end_at: self.end.clone(),
            priority: self.priority,
            ip_ranges: self.ip_ranges.clone(),
            time_frames: self.time_frames.clone(),
            sequence: self.sequence.clone(),
            uninstall: self.uninstall.then_some(true),
            auto_uninstall: self.no_auto_uninstall.then_some(false),
            retries: self.retries,
            retry_backoff: self.retry_backoff.clone(),
            wol: self.wol.then_some(true),
            shutdown_after: self.shutdown_after.then_some(true),
            restart_timeout: self.restart_timeout.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create a job container; prints it as `container show` does.
    Create(Box<ContainerArgs>),
    /// Every container: state, jobs done, runtimes (`~` while jobs are unfinished).
    List,
    /// A container and its jobs.
    Show { id: String },
    /// Delete a container and its jobs.
    Delete { id: String },
    /// Start the container's failed jobs over.
    Retry { id: String },
    /// Cancel the container's jobs not yet started (jobs under way run to their end).
    Cancel { id: String },
}

#[derive(Subcommand, Debug)]
pub enum ComputerCommand {
    List,
    /// A computer and the packages assigned to it.
    Show {
        id: String,
    },
    /// Forget the computer's assignment of a package, running nothing on the
    /// computer (OCO "Remove assignment").
    RemoveAssignment {
        id: String,
        #[arg(long = "package")]
        package: String,
    },
    /// Set the computer's tags (OCS's TAG), replacing the ones it had.
    #[command(group(ArgGroup::new("tags_or_clear").required(true).args(["tags", "clear"])))]
    Tag {
        id: String,
        tags: Vec<String>,
        /// Remove every tag.
        #[arg(long, conflicts_with = "tags")]
        clear: bool,
    },
}

/// Resolves central's URL, token and CA from the flags, the environment or a DIR.
pub fn connect(cli: &Cli) -> Result<Client, CentralError> {
    if let Some(dir) = &cli.central_dir {
        let layout = Layout::new(dir);
        let config = CentralConfig::load(&layout.config())?;
        let token = read_token(&layout.admin_token())?;
        return Client::new(&config.local_url(), &token, &layout.ca_cert());
    }
    let missing = |what: &str, flag: &str, env: &str| {
        CentralError::Invalid(format!(
            "no {what}: give --central-dir DIR, or {flag} (or {env})"
        ))
    };
    // The environment is read here rather than by clap, so that variables exported
    // for one central never conflict with an explicit --central-dir.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = cli
        .url
        .clone()
        .or_else(|| env("SITECAST_URL"))
        .ok_or_else(|| missing("central URL", "--url", "SITECAST_URL"))?;
    let token = cli
        .token
        .clone()
        .or_else(|| env("SITECAST_TOKEN"))
        .ok_or_else(|| missing("admin token", "--token", "SITECAST_TOKEN"))?;
    let ca = cli
        .ca
        .clone()
        .or_else(|| env("SITECAST_CA").map(PathBuf::from))
        .ok_or_else(|| missing("CA certificate", "--ca", "SITECAST_CA"))?;
    Client::new(&url, &token, &ca)
}

/// Runs one command, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut dyn std::io::Write) -> Result<(), CentralError> {
    let client = connect(&cli)?;
    let json = cli.json;
    let answer = match &cli.command {
        Command::Site(SiteCommand::Add { name, subnets }) => {
            let req = SiteRequest {
                name: name.clone(),
                subnets: subnets.clone(),
            };
            client.post_json("/sites", &req).await?
        }
        Command::Site(SiteCommand::List) => client.get("/sites").await?,
        Command::Relay(RelayCommand::Add { site, subnets, url }) => {
            let req = RelayRequest {
                site: site.clone(),
                subnets: subnets.clone(),
                url: url.clone(),
            };
            client.post_json("/relays", &req).await?
        }
        Command::Relay(RelayCommand::List) => client.get("/relays").await?,
        Command::Package(PackageCommand::Create(args)) => create(&client, args).await?,
        Command::Package(PackageCommand::List) => client.get("/packages").await?,
        Command::Package(PackageCommand::Show { id }) => client.get(&package_path(id, "")?).await?,
        Command::Package(PackageCommand::Delete { id }) => {
            client.delete(&package_path(id, "")?).await?
        }
        Command::Package(PackageCommand::Activate {
            id,
            sites,
            all_sites,
            fallback,
        }) => {
            let req = ActivationRequest {
                sites: (!*all_sites).then(|| sites.clone()),
                all_sites: all_sites.then_some(true),
                fallback: fallback.clone(),
            };
            client
                .post_json(&package_path(id, "/activations")?, &req)
                .await?
        }
        Command::Package(PackageCommand::Deactivate {
            id,
            sites,
            all_sites,
        }) => {
            let req = ActivationRequest {
                sites: (!*all_sites).then(|| sites.clone()),
                all_sites: all_sites.then_some(true),
                fallback: None,
            };
            client
                .delete_json(&package_path(id, "/activations")?, &req)
                .await?
        }
        Command::Package(PackageCommand::Assign { id, target }) => {
            let t = target.target();
            let req = AssignmentRequest {
                computers: t.computers,
                all: t.all,
                subnet: t.subnet,
                group: t.group,
                tags: t.tags,
                os: t.os,
                hostnames: t.hostnames,
            };
            client
                .post_json(&package_path(id, "/assignments")?, &req)
                .await?
        }
        Command::Package(PackageCommand::Stats { id }) => {
            client.get(&package_path(id, "/stats")?).await?
        }
        Command::Package(PackageCommand::Validate {
            id,
            success,
            not_notified,
            all,
        }) => {
            let what =
                match (success, not_notified, all) {
                    (true, false, false) => "success",
                    (false, true, false) => "not_notified",
                    (false, false, true) => "all",
                    _ => return Err(CentralError::Invalid(
                        "say what to validate: exactly one of --success, --not-notified or --all"
                            .into(),
                    )),
                };
            let req = ValidateRequest {
                what: Some(what.into()),
            };
            client
                .post_json(&package_path(id, "/validate")?, &req)
                .await?
        }
        Command::Computer(ComputerCommand::List) => client.get("/computers").await?,
        Command::Computer(ComputerCommand::Show { id }) => {
            client.get(&computer_path(id, "")?).await?
        }
        Command::Computer(ComputerCommand::RemoveAssignment { id, package }) => {
            let package: PackageId = package
                .parse()
                .map_err(|e: IdError| CentralError::Invalid(e.to_string()))?;
            client
                .delete(&computer_path(id, &format!("/packages/{package}"))?)
                .await?
        }
        Command::Container(ContainerCommand::Create(args)) => {
            client.post_json("/containers", &args.request()).await?
        }
        Command::Container(ContainerCommand::List) => client.get("/containers").await?,
        Command::Container(ContainerCommand::Show { id }) => {
            client.get(&container_path(id, "")?).await?
        }
        Command::Container(ContainerCommand::Delete { id }) => {
            client.delete(&container_path(id, "")?).await?
        }
        Command::Container(ContainerCommand::Retry { id }) => {
            client.post_empty(&container_path(id, "/retry")?).await?
        }
        Command::Container(ContainerCommand::Cancel { id }) => {
            client.post_empty(&container_path(id, "/cancel")?).await?
        }
        Command::Coverage {
            relay_stale_after,
            computer_recent_within,
        } => {
            let query: Vec<(&str, String)> = [
                ("relay_stale_after", relay_stale_after),
                ("computer_recent_within", computer_recent_within),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect();
            client.get_query("/coverage", &query).await?
        }
        Command::Computer(ComputerCommand::Tag { id, tags, .. }) => {
            groups::tag(&client, id, tags).await?
        }
        Command::Group(cmd) => groups::group(&client, cmd).await?,
        Command::PackageGroup(cmd) => groups::package_group(&client, cmd).await?,
        Command::Rule(cmd) => groups::rule(&client, cmd).await?,
    };
    let io = |e: std::io::Error| CentralError::io("standard output")(e);
    if json {
        out.write_all(&answer.body).map_err(io)?;
        if !answer.body.is_empty() {
            writeln!(out).map_err(io)?;
        }
        return Ok(());
    }
    let text = match &cli.command {
        Command::Site(_) => {
            if answer.body.starts_with(b"[") {
                render::sites(&answer.json::<Vec<Site>>()?)
            } else {
                render::sites(&[answer.json::<Site>()?])
            }
        }
        Command::Relay(RelayCommand::Add { .. }) => {
            render::relay_created(&answer.json::<RelayCreated>()?)
        }
        Command::Relay(RelayCommand::List) => render::relays(&answer.json::<Vec<Relay>>()?),
        Command::Package(PackageCommand::List) => render::packages(&answer.json::<Vec<Package>>()?),
        Command::Package(PackageCommand::Delete { id }) => format!("deleted package {id}"),
        Command::Package(PackageCommand::Assign { .. }) => {
            render::assigned(&answer.json::<Assigned>()?)
        }
        Command::Package(PackageCommand::Stats { .. }) => render::stats(&answer.json::<Stats>()?),
        Command::Package(PackageCommand::Validate { .. }) => {
            render::validated(&answer.json::<Validated>()?)
        }
        Command::Package(PackageCommand::Deactivate { .. }) => {
            render::deactivated(&answer.json::<Deactivated>()?)
        }
        Command::Package(PackageCommand::Show { .. }) => {
            let p = answer.json::<Package>()?;
            render::package(&p, &superseded_chain(&client, &p).await?)
        }
        Command::Package(_) => render::package(&answer.json::<Package>()?, &[]),
        Command::Computer(ComputerCommand::List) => {
            render::computers(&answer.json::<Vec<Computer>>()?)
        }
        Command::Computer(ComputerCommand::Show { .. }) => {
            render::computer(&answer.json::<ComputerDetail>()?)
        }
        Command::Computer(ComputerCommand::RemoveAssignment { id, package }) => {
            format!("removed the assignment of {package} from {id}")
        }
        Command::Container(ContainerCommand::List) => {
            render::containers(&answer.json::<Vec<Container>>()?)
        }
        Command::Container(ContainerCommand::Create(_) | ContainerCommand::Show { .. }) => {
            render::container(&answer.json::<Container>()?)
        }
        Command::Container(ContainerCommand::Delete { id }) => format!("deleted container {id}"),
        Command::Container(ContainerCommand::Retry { .. }) => {
            render::retried(&answer.json::<ContainerChanged>()?)
        }
        Command::Container(ContainerCommand::Cancel { .. }) => {
            render::cancelled(&answer.json::<ContainerChanged>()?)
        }
        Command::Coverage { .. } => render::coverage(&answer.json::<Coverage>()?),
        Command::Computer(ComputerCommand::Tag { .. }) => {
            render::computers(&[answer.json::<Computer>()?])
        }
        Command::Group(groups::GroupCommand::List) => groups::groups(&answer.json::<Vec<Group>>()?),
        Command::Group(groups::GroupCommand::Delete { name }) => format!("deleted group {name}"),
        Command::Group(_) => groups::group_detail(&answer.json::<Group>()?),
        Command::PackageGroup(groups::PackageGroupCommand::List) => {
            groups::package_groups(&answer.json::<Vec<PackageGroup>>()?)
        }
        Command::PackageGroup(groups::PackageGroupCommand::Delete { name }) => {
            format!("deleted package group {name}")
        }
        Command::PackageGroup(_) => groups::package_group_detail(&answer.json::<PackageGroup>()?),
        Command::Rule(groups::RuleCommand::List) => groups::rules(&answer.json::<Vec<Rule>>()?),
        Command::Rule(groups::RuleCommand::Delete { id }) => format!("deleted rule {id}"),
        Command::Rule(groups::RuleCommand::Reevaluate { .. }) => {
            groups::rule_evaluated(&answer.json::<RuleEvaluated>()?)
        }
        Command::Rule(_) => groups::rule_detail(&answer.json::<Rule>()?),
    };
    writeln!(out, "{text}").map_err(io)
}

/// The API path of a package. The id is checked against the package-id grammar
/// first: escaping cannot stop `.` or `..` from being resolved as dot segments,
/// which would send the request to another route.
fn package_path(id: &str, rest: &str) -> Result<String, CentralError> {
    let id: PackageId = id
        .parse()
        .map_err(|e: IdError| CentralError::Invalid(e.to_string()))?;
    Ok(format!("/packages/{id}{rest}"))
}

/// The API path of a computer, its id checked as [`package_path`] checks package ids.
fn computer_path(id: &str, rest: &str) -> Result<String, CentralError> {
    let id: ComputerId = id
        .parse()
        .map_err(|e: IdError| CentralError::Invalid(e.to_string()))?;
    Ok(format!("/computers/{id}{rest}"))
}

/// The API path of a container, its id checked as [`package_path`] checks package ids.
fn container_path(id: &str, rest: &str) -> Result<String, CentralError> {
    let id: ContainerId = id
        .parse()
        .map_err(|e: IdError| CentralError::Invalid(e.to_string()))?;
    Ok(format!("/containers/{id}{rest}"))
}

/// The packages `p` supersedes, newest first, followed through
/// `GET /packages/{id}`: the chain ends at a package central no longer has, or
/// at one already in it.
async fn superseded_chain(
    client: &Client,
    p: &Package,
) -> Result<Vec<render::Superseded>, CentralError> {
    let mut seen = BTreeSet::from([p.id.clone()]);
    let mut chain = Vec::new();
    let mut next = p.supersedes.clone();
    while let Some(id) = next.take() {
        if !seen.insert(id.clone()) {
            chain.push(render::Superseded::Loop(id));
            break;
        }
        match client.get(&format!("/packages/{id}")).await {
            Ok(answer) => {
                next = answer.json::<Package>()?.supersedes;
                chain.push(render::Superseded::Package(id));
            }
            Err(CentralError::Api { status: 404, .. }) => {
                chain.push(render::Superseded::Deleted(id));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(chain)
}

async fn create(client: &Client, args: &CreateArgs) -> Result<Answer, CentralError> {
    let mut query: Vec<(&str, String)> = vec![
        ("name", args.name.clone()),
        ("version", args.version.clone()),
        ("action", args.action.clone()),
    ];
    let optional = [
        ("command", &args.command),
        ("path", &args.path),
        ("priority", &args.priority),
        ("fragment_size", &args.fragment_size),
        ("os", &args.os),
        ("success_exit_codes", &args.success_codes),
        ("archive", &args.archive),
        ("supersedes", &args.supersedes),
        ("command_timeout_s", &args.command_timeout),
        ("uninstall_command", &args.uninstall_command),
        (
            "uninstall_success_exit_codes",
            &args.uninstall_success_codes,
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let notify = [
        ("notify_text", &args.notify_text),
        ("notify_countdown", &args.notify_countdown),
        ("done_action_text", &args.done_action_text),
    ];
    for (k, v) in notify {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    for (k, on) in [
        ("notify_can_abort", args.notify_can_abort),
        ("notify_can_delay", args.notify_can_delay),
    ] {
        if on {
            query.push((k, "true".to_owned()));
        }
    }
    if args.restart {
        query.push(("restart", "true".into()));
    }
    let body = match &args.file {
        None => reqwest::Body::from(Vec::new()),
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(CentralError::io(path))?;
            let len = file.metadata().await.map_err(CentralError::io(path))?.len();
            let bar = progress_bar(len);
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10).inspect(
                move |chunk| {
                    if let Ok(c) = chunk {
                        bar.inc(c.len() as u64);
                        if bar.position() >= len {
                            bar.finish_and_clear();
                        }
                    }
                },
            );
            reqwest::Body::wrap_stream(stream)
        }
    };
    client.post_body("/packages", &query, body).await
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn relay_url_is_not_central_url() {
        let cli = Cli::try_parse_from([
            "sitecast",
            "--url",
            "https://central:8443",
            "--token",
            "t",
            "--ca",
            "ca.pem",
            "relay",
            "add",
            "--site",
            "paris",
            "--subnet",
            "127.1.0.0/16",
            "--url",
            "http://relay:8080",
        ])
        .unwrap();
        assert_eq!(cli.url.as_deref(), Some("https://central:8443"));
        match cli.command {
            Command::Relay(RelayCommand::Add { url, .. }) => assert_eq!(url, "http://relay:8080"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn activation_needs_a_target() {
        assert!(Cli::try_parse_from(["sitecast", "package", "activate", "p"]).is_err());
        assert!(Cli::try_parse_from([
            "sitecast",
            "package",
            "activate",
            "p",
            "--all-sites",
            "--site",
            "x"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "sitecast", "--json", "package", "activate", "p", "--site", "a", "--site", "b"
        ])
        .is_ok());
    }

    #[test]
    fn uninstall_codes_need_an_uninstall_command() {
        let base = [
            "sitecast",
            "package",
            "create",
            "--name",
            "n",
            "--version",
            "1",
            "--action",
            "execute",
            "--command",
            "x",
        ];
        let with =
            |extra: &[&'static str]| Cli::try_parse_from(base.iter().chain(extra.iter()).copied());
        assert!(with(&["--uninstall-success-codes", "0"]).is_err());
        let ok = with(&[
            "--uninstall-command",
            "rm -rf /opt/n",
            "--uninstall-success-codes",
            "0,3010",
        ])
        .unwrap();
        match ok.command {
            Command::Package(PackageCommand::Create(args)) => {
                assert_eq!(args.uninstall_command.as_deref(), Some("rm -rf /opt/n"));
                assert_eq!(args.uninstall_success_codes.as_deref(), Some("0,3010"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn package_paths_never_reroute() {
        assert_eq!(
            package_path("abc-1.0_x", "/stats").unwrap(),
            "/packages/abc-1.0_x/stats"
        );
        for bad in ["", ".", "..", "../x", "a/b", "%2e%2e"] {
            let e = package_path(bad, "").unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    fn container_create(extra: &[&str]) -> Result<ContainerRequest, clap::Error> {
        let base = ["sitecast", "container", "create", "--name", "patch"];
        let cli = Cli::try_parse_from(base.iter().chain(extra.iter()).copied())?;
        match cli.command {
            Command::Container(ContainerCommand::Create(args)) => Ok(args.request()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn container_create_sends_what_was_given() {
        let req = container_create(&[
            "--package",
            "a-1,b-2",
            "--package",
            "c-3",
            "--computer",
            "pc-1",
            "--computer",
            "pc-2,pc-3",
            "--priority",
            "-5",
            "--start",
            "2026-11-21 18:00",
            "--sequence",
            "abort_after_failed",
            "--no-auto-uninstall",
            "--retries",
            "2",
            "--retry-backoff",
            "10m",
        ])
        .unwrap();
        assert_eq!(
            req,
            ContainerRequest {
                name: "patch".into(),
                packages: vec!["a-1".into(), "b-2".into(), "c-3".into()],
                computers: Some(vec!["pc-1".into(), "pc-2".into(), "pc-3".into()]),
                priority: Some(-5),
                start_at: Some("2026-11-21 18:00".into()),
                sequence: Some("abort_after_failed".into()),
                auto_uninstall: Some(false),
                retries: Some(2),
                retry_backoff: Some("10m".into()),
                ..ContainerRequest::default()
            }
        );
        // Nothing given, nothing sent: central applies its defaults.
        let req = container_create(&["--package", "a-1", "--all", "--uninstall"]).unwrap();
        assert_eq!(
            req,
            ContainerRequest {
                name: "patch".into(),
                packages: vec!["a-1".into()],
                all: Some(true),
                uninstall: Some(true),
                ..ContainerRequest::default()
            }
        );
        let req = container_create(&[
            "--package",
            "a-1",
            "--subnet",
            "10.1.0.0/16",
            "--priority=-1",
        ])
        .unwrap();
        assert_eq!(req.subnet.as_deref(), Some("10.1.0.0/16"));
        assert_eq!(req.priority, Some(-1));
        // Search, then deploy: every filter given is sent, to hold together.
        let req = container_create(&[
            "--package",
            "a-1",
            "--subnet",
            "10.1.0.0/16",
            "--group",
            "paris",
            "--tag",
            "alpha",
            "--tag",
            "beta",
            "--os",
            "linux",
            "--hostname",
            "pc-*",
        ])
        .unwrap();
        assert_eq!(req.subnet.as_deref(), Some("10.1.0.0/16"));
        assert_eq!(req.group.as_deref(), Some("paris"));
        assert_eq!(req.tags, Some(vec!["alpha".into(), "beta".into()]));
        assert_eq!(req.os, Some(vec!["linux".into()]));
        assert_eq!(req.hostnames, Some(vec!["pc-*".into()]));
        assert_eq!(req.computers, None);
    }

    #[test]
    fn container_create_needs_a_name_packages_and_a_target() {
        use clap::error::ErrorKind;
        let kind = |extra: &[&str]| container_create(extra).unwrap_err().kind();
        assert_eq!(
            kind(&["--package", "a-1"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(kind(&["--all"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["--package", "a-1", "--all", "--computer", "pc-1"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--package", "a-1", "--tag", "alpha", "--computer", "pc-1"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["--package", "a-1", "--all", "--sequence", "abort"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&[
                "--package",
                "a-1",
                "--all",
                "--uninstall",
                "--no-auto-uninstall"
            ]),
            ErrorKind::ArgumentConflict
        );
        assert!(Cli::try_parse_from([
            "sitecast",
            "container",
            "create",
            "--package",
            "a-1",
            "--all"
        ])
        .is_err());
    }

    #[test]
    fn container_paths_never_reroute() {
        assert_eq!(
            container_path("patch-1a2b", "/retry").unwrap(),
            "/containers/patch-1a2b/retry"
        );
        for bad in ["", ".", "..", "../x", "a/b"] {
            let e = container_path(bad, "").unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn computer_paths_never_reroute() {
        assert_eq!(
            computer_path("pc-1a2b", "/packages/p-1").unwrap(),
            "/computers/pc-1a2b/packages/p-1"
        );
        for bad in ["", ".", "..", "../x", "a/b"] {
            let e = computer_path(bad, "").unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }
}
