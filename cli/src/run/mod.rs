//! The second stage of the CLI: one parsed command becomes one request to
//! central (a few for `group remove` and `package show`), and its answer is
//! printed, as a table or as the API's exact JSON body.

mod groups;
mod upload;

use std::collections::BTreeSet;

use sitecast_common::ids::{ComputerId, ContainerId, IdError, PackageId};
use sitecast_common::wire::{
    ActivationRequest, Assigned, AssignmentRequest, Computer, ComputerDetail, Container,
    ContainerChanged, Coverage, CreatedEnrollToken, Deactivated, EnrollToken, EnrollTokenRequest,
    Group, Package, PackageGroup, Relay, RelayCreated, RelayRequest, Rule, RuleEvaluated, Site,
    SiteRequest, Stats, ValidateRequest, Validated,
};

use crate::args::groups::{GroupCommand, PackageGroupCommand, RuleCommand};
use crate::args::{
    Cli, Command, ComputerCommand, ContainerCommand, EnrollTokenCommand, PackageCommand,
    RelayCommand, SiteCommand,
};
use crate::client::{Answer, Client};
use crate::connection::connect;
use crate::error::CliError;
use crate::render;

/// Runs one command, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let client = connect(&cli)?;
    let answer = send(&client, &cli.command).await?;
    let io = |e: std::io::Error| CliError::io("standard output")(e);
    if cli.json {
        out.write_all(&answer.body).map_err(io)?;
        if !answer.body.is_empty() {
            writeln!(out).map_err(io)?;
        }
        return Ok(());
    }
    let text = show(&client, &cli.command, &answer).await?;
    writeln!(out, "{text}").map_err(io)
}

/// The request a command makes, and central's successful answer.
async fn send(client: &Client, command: &Command) -> Result<Answer, CliError> {
    Ok(match command {
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
        Command::Package(PackageCommand::Create(args)) => upload::create(client, args).await?,
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
                    _ => return Err(CliError::Invalid(
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
        Command::Computer(ComputerCommand::Delete { id }) => {
            client.delete(&computer_path(id, "")?).await?
        }
        Command::Computer(ComputerCommand::Approve { id }) => {
            client.post_empty(&computer_path(id, "/approve")?).await?
        }
        Command::Computer(ComputerCommand::Reject { id }) => {
            client.post_empty(&computer_path(id, "/reject")?).await?
        }
        Command::Computer(ComputerCommand::RemoveAssignment { id, package }) => {
            let package: PackageId = package
                .parse()
                .map_err(|e: IdError| CliError::Invalid(e.to_string()))?;
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
            groups::tag(client, id, tags).await?
        }
        Command::EnrollToken(EnrollTokenCommand::Create {
            uses,
            expires,
            tags,
        }) => {
            let req = EnrollTokenRequest {
                uses: *uses,
                expires: expires.clone(),
                tags: tags.clone(),
            };
            client.post_json("/enroll-tokens", &req).await?
        }
        Command::EnrollToken(EnrollTokenCommand::List) => client.get("/enroll-tokens").await?,
        Command::EnrollToken(EnrollTokenCommand::Delete { id }) => {
            client.delete(&enroll_token_path(id)?).await?
        }
        Command::Group(cmd) => groups::group(client, cmd).await?,
        Command::PackageGroup(cmd) => groups::package_group(client, cmd).await?,
        Command::Rule(cmd) => groups::rule(client, cmd).await?,
    })
}

/// An answer as the admin reads it: a table, or a sentence saying what was done.
async fn show(client: &Client, command: &Command, answer: &Answer) -> Result<String, CliError> {
    Ok(match command {
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
            render::package(&p, &superseded_chain(client, &p).await?)
        }
        Command::Package(_) => render::package(&answer.json::<Package>()?, &[]),
        Command::Computer(ComputerCommand::List) => {
            render::computers(&answer.json::<Vec<Computer>>()?)
        }
        Command::Computer(ComputerCommand::Show { .. }) => {
            render::computer(&answer.json::<ComputerDetail>()?)
        }
        Command::Computer(ComputerCommand::Delete { id }) => {
            format!("deleted computer {id}; its token no longer works")
        }
        Command::Computer(ComputerCommand::Approve { .. }) => {
            render::computers(&[answer.json::<Computer>()?])
        }
        Command::Computer(ComputerCommand::Reject { id }) => {
            format!("rejected computer {id}: deleted, its token no longer works")
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
        Command::EnrollToken(EnrollTokenCommand::Create { .. }) => {
            render::created_enroll_token(&answer.json::<CreatedEnrollToken>()?)
        }
        Command::EnrollToken(EnrollTokenCommand::List) => {
            render::enroll_tokens(&answer.json::<Vec<EnrollToken>>()?)
        }
        Command::EnrollToken(EnrollTokenCommand::Delete { id }) => {
            format!("deleted enroll token {id}; it enrolls nobody from now on")
        }
        Command::Computer(ComputerCommand::Tag { .. }) => {
            render::computers(&[answer.json::<Computer>()?])
        }
        Command::Group(GroupCommand::List) => render::groups(&answer.json::<Vec<Group>>()?),
        Command::Group(GroupCommand::Delete { name }) => format!("deleted group {name}"),
        Command::Group(_) => render::group_detail(&answer.json::<Group>()?),
        Command::PackageGroup(PackageGroupCommand::List) => {
            render::package_groups(&answer.json::<Vec<PackageGroup>>()?)
        }
        Command::PackageGroup(PackageGroupCommand::Delete { name }) => {
            format!("deleted package group {name}")
        }
        Command::PackageGroup(_) => render::package_group_detail(&answer.json::<PackageGroup>()?),
        Command::Rule(RuleCommand::List) => render::rules(&answer.json::<Vec<Rule>>()?),
        Command::Rule(RuleCommand::Delete { id }) => format!("deleted rule {id}"),
        Command::Rule(RuleCommand::Reevaluate { .. }) => {
            render::rule_evaluated(&answer.json::<RuleEvaluated>()?)
        }
        Command::Rule(_) => render::rule_detail(&answer.json::<Rule>()?),
    })
}

/// The API path of a package. The id is checked against the package-id grammar
/// first: escaping cannot stop `.` or `..` from being resolved as dot segments,
/// which would send the request to another route.
fn package_path(id: &str, rest: &str) -> Result<String, CliError> {
    let id: PackageId = id
        .parse()
        .map_err(|e: IdError| CliError::Invalid(e.to_string()))?;
    Ok(format!("/packages/{id}{rest}"))
}

/// The API path of a computer, its id checked as [`package_path`] checks package ids.
fn computer_path(id: &str, rest: &str) -> Result<String, CliError> {
    let id: ComputerId = id
        .parse()
        .map_err(|e: IdError| CliError::Invalid(e.to_string()))?;
    Ok(format!("/computers/{id}{rest}"))
}

/// The API path of an enroll token: its id is letters, digits and `-` only, so it
/// never reroutes.
fn enroll_token_path(id: &str) -> Result<String, CliError> {
    if id.is_empty() || !id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-') {
        return Err(CliError::Invalid(format!(
            "'{id}' is not an enroll token id (letters, digits and '-')"
        )));
    }
    Ok(format!("/enroll-tokens/{id}"))
}

/// The API path of a container, its id checked as [`package_path`] checks package ids.
fn container_path(id: &str, rest: &str) -> Result<String, CliError> {
    let id: ContainerId = id
        .parse()
        .map_err(|e: IdError| CliError::Invalid(e.to_string()))?;
    Ok(format!("/containers/{id}{rest}"))
}

/// The packages `p` supersedes, newest first, followed through
/// `GET /packages/{id}`: the chain ends at a package central no longer has, or
/// at one already in it.
async fn superseded_chain(
    client: &Client,
    p: &Package,
) -> Result<Vec<render::Superseded>, CliError> {
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
            Err(CliError::Api { status: 404, .. }) => {
                chain.push(render::Superseded::Deleted(id));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(chain)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
