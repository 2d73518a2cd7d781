//! The first stage of the CLI: clap's raw flags, as typed. Nothing here talks
//! to central; [`crate::run`] turns a parsed [`Cli`] into requests.

pub mod groups;

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use sitecast_common::wire::ContainerRequest;

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
    /// Enroll tokens beside the shared one: limited uses, an expiry, tags.
    #[command(subcommand, name = "enroll-token")]
    EnrollToken(EnrollTokenCommand),
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
    /// An intended downgrade: computers with a newer version of a package's name
    /// installed take this older one (agents refuse it otherwise).
    #[arg(long, conflicts_with = "uninstall")]
    pub downgrade: bool,
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
    pub(crate) fn request(&self) -> ContainerRequest {
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
            downgrade: self.downgrade.then_some(true),
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
pub enum EnrollTokenCommand {
    /// Create a token; its secret is printed this once.
    Create {
        /// Enrollments it allows (default: any number).
        #[arg(long)]
        uses: Option<u32>,
        /// How long it is good for, e.g. 7d (default: for ever).
        #[arg(long)]
        expires: Option<String>,
        /// A tag every computer it enrolls gets (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Every token: uses, expiry, tags (never the secrets).
    List,
    /// Delete a token: it enrolls nobody from now on.
    Delete { id: String },
}

#[derive(Subcommand, Debug)]
pub enum ComputerCommand {
    List,
    /// A computer and the packages assigned to it.
    Show {
        id: String,
    },
    /// Delete the computer: its agent's token is revoked at once, and central
    /// forgets its jobs (a re-imaged machine enrolls again).
    Delete {
        id: String,
    },
    /// Approve a computer enrolled under `enroll_approval = "manual"`: it gets jobs
    /// from its next poll.
    Approve {
        id: String,
    },
    /// Reject a pending computer: it is deleted and its token revoked.
    Reject {
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
}
