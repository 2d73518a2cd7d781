//! `sitecast group`, `package-group`, `rule` and `computer tag`: one request each
//! (`group remove` and `package-group remove`: one per member removed).

use sitecast_common::ids::{ComputerId, ContainerId, GroupName, IdError, PackageId};
use sitecast_common::wire::{
    GroupRequest, MembersRequest, PackageGroupRequest, PackageMembersRequest, RuleRequest,
    TagsRequest,
};

use crate::args::groups::{GroupCommand, PackageGroupCommand, RuleCommand};
use crate::client::{Answer, Client};
use crate::error::CliError;

fn invalid(e: IdError) -> CliError {
    CliError::Invalid(e.to_string())
}

/// Paths take checked names only (see `package_path`).
fn group_path(kind: &str, name: &str, rest: &str) -> Result<String, CliError> {
    let name: GroupName = name.parse().map_err(invalid)?;
    Ok(format!("/{kind}/{name}{rest}"))
}

fn rule_path(id: &str, rest: &str) -> Result<String, CliError> {
    let id: ContainerId = id.parse().map_err(invalid)?;
    Ok(format!("/rules/{id}{rest}"))
}

pub async fn group(client: &Client, cmd: &GroupCommand) -> Result<Answer, CliError> {
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
            last.ok_or_else(|| CliError::Invalid("name at least one computer".into()))
        }
    }
}

pub async fn package_group(client: &Client, cmd: &PackageGroupCommand) -> Result<Answer, CliError> {
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
            last.ok_or_else(|| CliError::Invalid("name at least one package".into()))
        }
    }
}

pub async fn rule(client: &Client, cmd: &RuleCommand) -> Result<Answer, CliError> {
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
pub async fn tag(client: &Client, id: &str, tags: &[String]) -> Result<Answer, CliError> {
    let id: ComputerId = id.parse().map_err(invalid)?;
    let req = TagsRequest {
        tags: tags.to_vec(),
    };
    client
        .put_json(&format!("/computers/{id}/tags"), &req)
        .await
}
