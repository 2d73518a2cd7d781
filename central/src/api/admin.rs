//! Admin routes: sites, relays, packages (upload with the version it
//! supersedes, activation and deactivation, assignment, statistics) and computers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use ipnet::IpNet;
use sitecast_common::fragment::{sha256_hex, MAX_FRAGMENT_SIZE};
use sitecast_common::ids::{slug, ComputerId, PackageId, RelayId, SiteName};
use sitecast_common::info::{ActionDoc, Archive, Info, InfoDoc, InfoError, UninstallDoc, SCHEMA};
use sitecast_common::info::{NotifyDoc, MAX_NOTIFY_COUNTDOWN_S, MAX_USER_TEXT};
use sitecast_common::signing;
use sitecast_common::status::StatusCode as Status;
use sitecast_common::subnet::select_relays;
use sitecast_common::units::Duration as Span;
use sitecast_common::units::Size;
use sitecast_common::wire::{
    Activation, ActivationRequest, Assigned, AssignmentRequest, CentralFallback, CentralStatus,
    ComputerDetail, ComputerPackage, ComputerStat, Deactivated, Holding, Package, Relay,
    RelayCreated, RelayRequest, Site, SiteRequest, Stats, UploadParams, ValidateRequest, Validated,
};

use super::containers;
use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use super::Central;
use crate::error::CentralError;
use crate::packaging::{UploadError, UploadSink};
use crate::stats;
use crate::store::{JobRecord, RelayRecord};
use crate::tokens;
use sitecast_common::wire::JobKind;

type Shared = State<Arc<Central>>;

pub(super) fn parse_subnet(field: &str, text: &str) -> Result<IpNet, ApiError> {
    text.trim()
        .parse::<IpNet>()
        .map_err(|_| ApiError::bad_request(format!("bad {field}: '{text}' is not a CIDR subnet")))
}

fn parse_subnets(field: &str, list: &[String]) -> Result<Vec<IpNet>, ApiError> {
    list.iter().map(|s| parse_subnet(field, s)).collect()
}

fn package_id(text: &str) -> Result<PackageId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found("package", text))
}

pub async fn add_site(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<Response, ApiError> {
    let name: SiteName = req
        .name
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad name: {e}")))?;
    let site = Site {
        name,
        subnets: parse_subnets("subnets", &req.subnets)?,
        created_at: c.clock.now(),
    };
    let reply = site.clone();
    c.blocking(move |c| c.store.add_site(&site)).await?;
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

pub async fn list_sites(_: Admin, State(c): Shared) -> Result<Json<Vec<Site>>, ApiError> {
    Ok(Json(c.store.sites()?))
}

pub async fn add_relay(
    _: Admin,
    State(c): Shared,
    ApiJson(req): ApiJson<RelayRequest>,
) -> Result<Response, ApiError> {
    let site: SiteName = req
        .site
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad site: {e}")))?;
    if c.store.site(&site)?.is_none() {
        return Err(ApiError::not_found("site", &site));
    }
    if req.subnets.is_empty() {
        return Err(ApiError::bad_request(
            "bad subnets: a relay serves at least one subnet",
        ));
    }
    let subnets = parse_subnets("subnets", &req.subnets)?;
    let url = req.url.trim().trim_end_matches('/').to_owned();
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| ApiError::bad_request(format!("bad url: '{}' {e}", req.url)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ApiError::bad_request(format!(
            "bad url: '{}' is not an http:// or https:// URL with a host",
            req.url
        )));
    }
    let id: RelayId = format!("relay-{}-{}", slug(site.as_str(), 40), tokens::suffix())
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad site: {e}")))?;
    let token = tokens::generate();
    let record = RelayRecord {
        id: id.clone(),
        site,
        subnets,
        url,
        created_at: c.clock.now(),
        last_seen: None,
        holdings: BTreeMap::new(),
        bytes_from_central: 0,
        quic_bytes_from_central: 0,
        bytes_to_agents: 0,
        problems: Default::default(),
        replication: Default::default(),
        health: Default::default(),
    };
    let digest = tokens::digest(&token);
    c.blocking(move |c| c.store.add_relay(&record, digest))
        .await?;
    Ok((StatusCode::CREATED, Json(RelayCreated { id, token })).into_response())
}

pub(super) fn relay_view(record: RelayRecord, packages: &[Package]) -> Relay {
    let mut activated: Vec<&Package> = packages
        .iter()
        .filter(|p| p.activation.all_sites || p.activation.sites.contains(&record.site))
        .collect();
    // The relay replicates in priority order, so a package waits for those before it.
    activated.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
    let rate = record.replication.rate;
    let mut queued = 0u64;
    let mut holdings: Vec<Holding> = activated
        .into_iter()
        .map(|p| {
            let held = record.fragments_held(p);
            let complete = record.holds_whole(p);
            let missing = u64::from(p.fragments.saturating_sub(held));
            queued += (missing * p.fragment_size).min(p.size);
            Holding {
                package_id: p.id.clone(),
                held,
                total: p.fragments,
                complete,
                eta_s: if complete {
                    Some(0)
                } else {
                    (rate > 0).then(|| queued.div_ceil(rate))
                },
            }
        })
        .collect();
    holdings.sort_by(|a, b| a.package_id.cmp(&b.package_id));
    Relay {
        id: record.id,
        site: record.site,
        subnets: record.subnets,
        url: record.url,
        last_seen: record.last_seen,
        holdings,
        bytes_from_central: record.bytes_from_central,
        quic_bytes_from_central: record.quic_bytes_from_central,
        bytes_to_agents: record.bytes_to_agents,
        problems: record.problems,
        replication: record.replication,
        health: record.health,
    }
}

pub async fn status(_: Admin, State(c): Shared) -> Json<CentralStatus> {
    Json(CentralStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        fragment_bytes_to_agents: c.fragment_bytes_to_agents.load(Ordering::Relaxed),
        bytes_to_relays: c.bytes_to_relays.load(Ordering::Relaxed),
        relays_connected: c.changes.receiver_count() as u64,
    })
}

pub async fn list_relays(_: Admin, State(c): Shared) -> Result<Json<Vec<Relay>>, ApiError> {
    let packages = c.store.packages()?;
    let relays = c.store.relays()?;
    Ok(Json(
        relays
            .into_iter()
            .map(|r| relay_view(r, &packages))
            .collect(),
    ))
}

pub async fn delete_relay(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: RelayId = id.parse().map_err(|_| ApiError::not_found("relay", &id))?;
    let shown = id.clone();
    if c.blocking(move |c| c.store.delete_relay(&id)).await? {
        // Its connection, if any, notices and closes.
        c.notify_relays();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("relay", shown))
    }
}

/// Upload parameters, checked before a byte of the body is read.
struct Draft {
    doc: InfoDoc,
    explicit_archive: Option<Archive>,
}

fn info_error(e: InfoError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn required<'a>(field: &str, value: &'a Option<String>) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("bad {field}: missing")))
}

fn draft(params: &UploadParams, default_fragment_size: u64) -> Result<Draft, ApiError> {
    let name = required("name", &params.name)?.to_owned();
    let version = required("version", &params.version)?.to_owned();
    let action = match required("action", &params.action)? {
        "launch" => ActionDoc::Launch {
            command: required("command", &params.command)
                .map_err(|_| ApiError::bad_request("bad command: launch needs a command"))?
                .to_owned(),
        },
        "execute" => ActionDoc::Execute {
            command: required("command", &params.command)
                .map_err(|_| ApiError::bad_request("bad command: execute needs a command"))?
                .to_owned(),
        },
        "store" => ActionDoc::Store {
            path: required("path", &params.path)
                .map_err(|_| ApiError::bad_request("bad path: store needs a path"))?
                .to_owned(),
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "bad action: '{other}' is not one of launch, execute, store"
            )))
        }
    };
    let priority = match params.priority.as_deref() {
        None => 5,
        Some(p) => p
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("bad priority: '{p}' is not a number")))?,
    };
    let fragment_size = match params.fragment_size.as_deref() {
        None => default_fragment_size,
        Some(s) => s
            .trim()
            .parse::<Size>()
            .map_err(|e| ApiError::bad_request(format!("bad fragment_size: {e}")))?
            .bytes(),
    };
    if fragment_size == 0 || fragment_size > MAX_FRAGMENT_SIZE {
        return Err(ApiError::bad_request(format!(
            "bad fragment_size: must be between 1 byte and 1GiB, got {fragment_size}"
        )));
    }
    let explicit_archive = params
        .archive
        .as_deref()
        .map(str::parse::<Archive>)
        .transpose()
        .map_err(info_error)?;
    let success_exit_codes =
        exit_codes("success_exit_codes", params.success_exit_codes.as_deref())?;
    let uninstall = match params.uninstall_command.as_deref() {
        Some(command) => Some(UninstallDoc {
            command: command.to_owned(),
            success_exit_codes: exit_codes(
                "uninstall_success_exit_codes",
                params.uninstall_success_exit_codes.as_deref(),
            )?,
        }),
        None if params.uninstall_success_exit_codes.is_some() => {
            return Err(ApiError::bad_request(
                "bad uninstall_success_exit_codes: given without uninstall_command",
            ))
        }
        None => None,
    };
    let command_timeout_s = match params.command_timeout_s.as_deref() {
        None => sitecast_common::info::DEFAULT_COMMAND_TIMEOUT_S,
        Some(t) => t.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "bad command_timeout_s: '{t}' is not a number of seconds"
            ))
        })?,
    };
    let (notify, done_action_text) = user_texts(params)?;
    let restart = match params.restart.as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "bad restart: '{other}' is not true or false"
            )))
        }
    };
    let doc = InfoDoc {
        schema: SCHEMA,
        // The real id, plan and time are filled in once the file is in.
        id: "draft".into(),
        name,
        version,
        os: params.os.clone().unwrap_or_else(|| "any".into()),
        priority,
        action,
        archive: explicit_archive.unwrap_or(Archive::None).as_str().into(),
        size: 1,
        sha256: "0".repeat(64),
        fragment_size,
        fragments: vec!["0".repeat(64)],
        success_exit_codes,
        command_timeout_s,
        notify,
        done_action_text,
        supersedes: None,
        uninstall,
        issued_at: "2000-01-01T00:00:00Z".into(),
        restart,
    };
    Info::try_from(doc.clone()).map_err(info_error)?;
    Ok(Draft {
        doc,
        explicit_archive,
    })
}

/// What the agent tells the computer's user (OCS's notify options): before the
/// action (`notify_text`, with the countdown and what the user may answer, which
/// mean nothing without it) and after a successful one (`done_action_text`).
fn user_texts(params: &UploadParams) -> Result<(Option<NotifyDoc>, Option<String>), ApiError> {
    let text = |field: &str, value: &Option<String>| -> Result<Option<String>, ApiError> {
        value
            .as_ref()
            .map(|t| {
                sitecast_common::info::check_text(t, MAX_USER_TEXT)
                    .map(|()| t.clone())
                    .map_err(|reason| ApiError::bad_request(format!("bad {field}: {reason}")))
            })
            .transpose()
    };
    let flag = |field: &str, value: &Option<String>| -> Result<bool, ApiError> {
        match value.as_deref().map(str::trim) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "bad {field}: '{other}' is not true or false"
            ))),
        }
    };
    let done_action_text = text("done_action_text", &params.done_action_text)?;
    let Some(notify_text) = text("notify_text", &params.notify_text)? else {
        for (field, value) in [
            ("notify_countdown", &params.notify_countdown),
            ("notify_can_abort", &params.notify_can_abort),
            ("notify_can_delay", &params.notify_can_delay),
        ] {
            if value.is_some() {
                return Err(ApiError::bad_request(format!(
                    "bad {field}: given without notify_text (the user is told nothing to answer)"
                )));
            }
        }
        return Ok((None, done_action_text));
    };
    let countdown_s = match params.notify_countdown.as_deref() {
        None => 0,
        Some(t) => t
            .parse::<Span>()
            .map_err(|e| ApiError::bad_request(format!("bad notify_countdown: {e}")))?
            .as_secs(),
    };
    if countdown_s > MAX_NOTIFY_COUNTDOWN_S {
        return Err(ApiError::bad_request(format!(
            "bad notify_countdown: '{}' is longer than a day",
            params.notify_countdown.as_deref().unwrap_or_default()
        )));
    }
    let notify = NotifyDoc {
        text: notify_text,
        countdown_s,
        can_abort: flag("notify_can_abort", &params.notify_can_abort)?,
        can_delay: flag("notify_can_delay", &params.notify_can_delay)?,
    };
    Ok((Some(notify), done_action_text))
}

/// A comma-separated list of exit codes (`0,3010`); `[0]` when absent.
fn exit_codes(field: &str, list: Option<&str>) -> Result<Vec<i32>, ApiError> {
    match list {
        None => Ok(vec![0]),
        Some(list) => list
            .split(',')
            .map(|c| {
                c.trim().parse::<i32>().map_err(|_| {
                    ApiError::bad_request(format!("bad {field}: '{c}' is not an exit code"))
                })
            })
            .collect(),
    }
}

fn new_package_id(name: &str, version: &str) -> Result<PackageId, ApiError> {
    let mut base = slug(name, 32);
    if base.is_empty() {
        base = "pkg".into();
    }
    let v = slug(version, 20);
    let text = if v.is_empty() {
        format!("{base}-{}", tokens::suffix())
    } else {
        format!("{base}-{v}-{}", tokens::suffix())
    };
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("bad name: {e}")))
}

fn package_view(info: &Info, info_sha256: String, created_at: jiff::Timestamp) -> Package {
    let doc = InfoDoc::from(info);
    Package {
        id: info.id().clone(),
        name: doc.name,
        version: doc.version,
        os: doc.os,
        priority: info.priority().get(),
        action: doc.action,
        archive: doc.archive,
        size: doc.size,
        sha256: doc.sha256,
        fragment_size: doc.fragment_size,
        fragments: info.plan().count(),
        success_exit_codes: doc.success_exit_codes,
        info_sha256,
        created_at,
        activation: Activation::default(),
        uninstall: doc.uninstall,
        supersedes: info.supersedes().cloned(),
        notify: doc.notify,
        done_action_text: doc.done_action_text,
        restart: info.restart(),
    }
}

pub async fn create_package(
    _: Admin,
    State(c): Shared,
    ApiQuery(params): ApiQuery<UploadParams>,
    body: Body,
) -> Result<Response, ApiError> {
    let mut draft = draft(&params, c.config.default_fragment_size.bytes())?;
    if c.store
        .package_id_by_name(&draft.doc.name, &draft.doc.version)?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "package '{}' version '{}' already exists",
                draft.doc.name, draft.doc.version
            ),
        ));
    }
    // Checked before a byte of the body is read, like every other parameter.
    draft.doc.supersedes =
        superseded(&c, &draft.doc.name, params.supersedes.as_deref())?.map(String::from);

    let limit = c.config.max_package_size.bytes();
    let mut sink = UploadSink::start(c.files.temp_upload(), draft.doc.fragment_size, limit)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let pushed = match chunk {
            Ok(bytes) => sink.push(bytes).await,
            Err(e) => Err(UploadError::Body(e.to_string())),
        };
        match pushed {
            Ok(()) => {}
            Err(UploadError::WriterStopped) => return Err(upload_error(sink.finish().await.err())),
            Err(e) => return Err(upload_error(Some(e))),
        }
    }
    let received = sink.finish().await.map_err(|e| upload_error(Some(e)))?;

    let mut id = new_package_id(&draft.doc.name, &draft.doc.version)?;
    while c.store.package(&id)?.is_some() || c.files.data_path(&id).exists() {
        id = new_package_id(&draft.doc.name, &draft.doc.version)?;
    }
    let plan = &received.plan;
    let mut doc = draft.doc;
    doc.id = id.to_string();
    doc.archive = draft
        .explicit_archive
        .unwrap_or_else(|| Archive::sniff(&received.head))
        .as_str()
        .into();
    doc.size = plan.size();
    doc.sha256 = hex::encode(plan.sha256());
    doc.fragments = plan.fragments().iter().map(hex::encode).collect();
    let now = c.clock.now();
    doc.issued_at = now.to_string();
    let info = Info::try_from(doc).map_err(info_error)?;
    let envelope = signing::sign_info(&c.signing_key, &info);
    let package = package_view(&info, sha256_hex(&envelope), now);

    let reply = package.clone();
    c.blocking(move |c| {
        c.files.publish(&package.id, received.file, &envelope)?;
        if let Err(e) = c.store.add_package(&package) {
            // Lost a race with an identical name and version: take the files back.
            c.files.remove(&package.id)?;
            return Err(e);
        }
        Ok(())
    })
    .await?;
    tracing::info!(id = %reply.id, size = reply.size, fragments = reply.fragments, "package created");
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// The package a new version of `name` supersedes (SPEC "Versions"): the one
/// `given` names, which must exist and bear the same name; none for `none`;
/// by default the newest existing package of that name (none if it is the first).
fn superseded(c: &Central, name: &str, given: Option<&str>) -> Result<Option<PackageId>, ApiError> {
    let text = match given.map(str::trim) {
        None => return Ok(c.store.packages_named(name)?.pop().map(|p| p.id)),
        Some("none") => return Ok(None),
        Some("") => {
            return Err(ApiError::bad_request(
                "bad supersedes: empty (give a package id of the same name, or none)",
            ))
        }
        Some(text) => text,
    };
    let id: PackageId = text
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad supersedes: {e}")))?;
    let Some(old) = c.store.package(&id)? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("bad supersedes: package '{id}' not found"),
        ));
    };
    if old.name != name {
        return Err(ApiError::bad_request(format!(
            "bad supersedes: package '{id}' is named '{}', not '{name}' (a package supersedes only an older version of its own name)",
            old.name
        )));
    }
    Ok(Some(id))
}

fn upload_error(e: Option<UploadError>) -> ApiError {
    match e {
        Some(UploadError::TooLarge { limit }) => ApiError::too_large(format!(
            "the package is larger than the limit of {limit} bytes"
        )),
        Some(UploadError::Body(m)) => {
            ApiError::bad_request(format!("the upload was interrupted: {m}"))
        }
        Some(UploadError::Central(e)) => e.into(),
        Some(UploadError::WriterStopped) | None => {
            tracing::error!("package writer stopped without an error");
            ApiError::internal()
        }
    }
}

pub async fn list_packages(_: Admin, State(c): Shared) -> Result<Json<Vec<Package>>, ApiError> {
    Ok(Json(c.store.packages()?))
}

pub(super) fn find_package(c: &Central, id: &str) -> Result<Package, ApiError> {
    let pid = package_id(id)?;
    c.store
        .package(&pid)?
        .ok_or_else(|| ApiError::not_found("package", id))
}

pub async fn show_package(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Package>, ApiError> {
    Ok(Json(find_package(&c, &id)?))
}

pub async fn delete_package(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let package = find_package(&c, &id)?;
    c.blocking(move |c| {
        c.store.delete_package(&package.id)?;
        super::groups::forget_package(c, &package.id)?;
        c.deltas.forget(&package.id)?;
        c.files.remove(&package.id)
    })
    .await?;
    c.notify_relays();
    Ok(StatusCode::NO_CONTENT)
}

/// The signed envelope, byte for byte as it was signed.
pub(super) async fn envelope_response(
    c: &Arc<Central>,
    id: &PackageId,
) -> Result<Response, ApiError> {
    let path = c.files.info_path(id);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::from(CentralError::io(&path)(e)))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

pub async fn package_info(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let package = find_package(&c, &id)?;
    envelope_response(&c, &package.id).await
}

pub async fn activate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ActivationRequest>,
) -> Result<Json<Package>, ApiError> {
    let package = find_package(&c, &id)?;
    let sites = match chosen_sites(&c, req.sites, req.all_sites)? {
        Sites::Named(names) => Some(names),
        Sites::All => None,
    };
    let fallback = req
        .fallback
        .map(|f| f.parse::<CentralFallback>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("bad fallback: {e}")))?;
    let pid = package.id.clone();
    let updated = c
        .blocking(move |c| {
            let updated = c.store.update_activation(&pid, &|a| {
                match &sites {
                    // Activations add up, as OCS's do per server group.
                    Some(names) => {
                        let mut set: BTreeSet<SiteName> = a.sites.iter().cloned().collect();
                        set.extend(names.iter().cloned());
                        a.sites = set.into_iter().collect();
                    }
                    None => a.all_sites = true,
                }
                if let Some(f) = fallback {
                    a.central_fallback = f;
                }
            })?;
            // An activation already in force keeps the time it began.
            let now = c.clock.now();
            c.store.update_activation_times(&pid, &|t| match &sites {
                Some(names) => {
                    for name in names {
                        t.sites.entry(name.clone()).or_insert(now);
                    }
                }
                None => {
                    t.all_sites.get_or_insert(now);
                }
            })?;
            Ok(updated)
        })
        .await?;
    c.notify_relays();
    Ok(Json(updated))
}

/// The sites an activation request names: these (each checked), or all.
enum Sites {
    Named(BTreeSet<SiteName>),
    All,
}

/// Reads `sites:[…]` or `all_sites:true` (exactly one), each site checked.
fn chosen_sites(
    c: &Central,
    sites: Option<Vec<String>>,
    all_sites: Option<bool>,
) -> Result<Sites, ApiError> {
    match (sites, all_sites) {
        (Some(_), Some(true)) => Err(ApiError::bad_request(
            "bad sites: give either sites or all_sites, not both",
        )),
        (Some(sites), _) => {
            if sites.is_empty() {
                return Err(ApiError::bad_request("bad sites: the list is empty"));
            }
            let mut names = BTreeSet::new();
            for s in &sites {
                let name: SiteName = s
                    .parse()
                    .map_err(|e| ApiError::bad_request(format!("bad sites: {e}")))?;
                if c.store.site(&name)?.is_none() {
                    return Err(ApiError::not_found("site", &name));
                }
                names.insert(name);
            }
            Ok(Sites::Named(names))
        }
        (None, Some(true)) => Ok(Sites::All),
        (None, _) => Err(ApiError::bad_request(
            "bad request body: give sites:[...] or all_sites:true",
        )),
    }
}

/// What `DELETE /packages/{id}/activations` takes away: these sites, or all.
fn withdrawn(c: &Central, req: ActivationRequest) -> Result<Sites, ApiError> {
    if req.fallback.is_some() {
        return Err(ApiError::bad_request(
            "bad fallback: a deactivation takes only sites or all_sites",
        ));
    }
    chosen_sites(c, req.sites, req.all_sites)
}

/// The computers whose site (that of the relay whose subnets contain one of
/// their addresses, longest prefix first, as `stats` counts them) is one of `sites`.
fn computers_of_sites(
    c: &Central,
    sites: &BTreeSet<SiteName>,
) -> Result<BTreeSet<ComputerId>, ApiError> {
    let relays: Vec<stats::SiteRelay> = c.store.relays()?.iter().map(Into::into).collect();
    Ok(c.store
        .computers()?
        .into_iter()
        .filter(|computer| {
            select_relays(&computer.addresses, &relays)
                .first()
                .is_some_and(|r| sites.contains(&r.site))
        })
        .map(|computer| computer.id)
        .collect())
}

/// OCS's red cross on an activation: the sites' relays stop holding the package
/// (they drop it, unless they keep it as a delta base), and the package's install
/// jobs not yet notified on the computers of those sites are cancelled (with
/// `all_sites`, on every computer). Jobs handed out or finished stay.
pub async fn deactivate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ActivationRequest>,
) -> Result<Json<Deactivated>, ApiError> {
    let package = find_package(&c, &id)?;
    let withdrawn = withdrawn(&c, req)?;
    // Removing a site from an activation for all sites leaves every other site.
    let every_site: Vec<SiteName> = c.store.sites()?.into_iter().map(|s| s.name).collect();
    let on = match &withdrawn {
        Sites::Named(sites) => Some(computers_of_sites(&c, sites)?),
        Sites::All => None,
    };
    let pid = package.id.clone();
    let (updated, cancelled) = c
        .blocking(move |c| {
            let updated = c.store.update_activation(&pid, &|a| match &withdrawn {
                Sites::All => {
                    a.all_sites = false;
                    a.sites.clear();
                }
                Sites::Named(gone) => {
                    if a.all_sites {
                        a.all_sites = false;
                        a.sites = every_site.clone();
                    }
                    a.sites.retain(|s| !gone.contains(s));
                }
            })?;
            c.store
                .update_activation_times(&pid, &|t| match &withdrawn {
                    Sites::All => *t = Default::default(),
                    Sites::Named(gone) => {
                        // The sites left of an activation for all sites have been
                        // activated since it began.
                        if let Some(all) = t.all_sites.take() {
                            for site in &updated.activation.sites {
                                let since = t.sites.entry(site.clone()).or_insert(all);
                                *since = (*since).min(all);
                            }
                        }
                        t.sites.retain(|site, _| !gone.contains(site));
                    }
                })?;
            let cancelled = c.store.remove_waiting_installs(&pid, on.as_ref())?;
            Ok((updated, cancelled))
        })
        .await?;
    c.notify_relays();
    let computers: BTreeSet<ComputerId> = cancelled.iter().map(|j| j.computer_id.clone()).collect();
    tracing::info!(
        id = %updated.id,
        all_sites = updated.activation.all_sites,
        sites = ?updated.activation.sites,
        cancelled = cancelled.len(),
        "package deactivated"
    );
    Ok(Json(Deactivated {
        package: updated,
        cancelled: cancelled.len() as u64,
        computers: computers.into_iter().collect(),
    }))
}

/// The computers a request names: `computers:[…]`, `all:true` or `subnet:CIDR`
/// (exactly one), each id checked.
/// `package assign`: shorthand for a job container with defaults (SPEC "Jobs").
pub async fn assign(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AssignmentRequest>,
) -> Result<Json<Assigned>, ApiError> {
    let package = find_package(&c, &id)?;
    let chosen = super::groups::choose_computers(&c, &req.target())?;
    let now = c.clock.now();
    Ok(Json(
        c.blocking(move |c| containers::assign(c, &package, chosen, now))
            .await?,
    ))
}

/// A package's statistics lines: for each computer, its latest install job of
/// the package (uninstall jobs are the computer's business, older jobs history).
fn stat_lines(c: &Central, package: &PackageId) -> Result<Vec<JobRecord>, CentralError> {
    let mut per_computer: BTreeMap<ComputerId, Vec<JobRecord>> = BTreeMap::new();
    for j in c.store.jobs_of_package(package)? {
        if j.kind == JobKind::Install {
            per_computer
                .entry(j.computer_id.clone())
                .or_default()
                .push(j);
        }
    }
    Ok(per_computer
        .values()
        .filter_map(|jobs| crate::store::jobs::latest(jobs).cloned())
        .collect())
}

pub async fn stats(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Stats>, ApiError> {
    let package = find_package(&c, &id)?;
    let mut counts = BTreeMap::new();
    let mut by_status: BTreeMap<Status, Vec<ComputerId>> = BTreeMap::new();
    let mut computers = Vec::new();
    let mut lines = Vec::new();
    for a in stat_lines(&c, &package.id)? {
        *counts.entry(a.status).or_insert(0) += 1;
        by_status
            .entry(a.status)
            .or_default()
            .push(a.computer_id.clone());
        lines.push(stats::Line {
            addresses: c
                .store
                .computer(&a.computer_id)?
                .map(|c| c.addresses)
                .unwrap_or_default(),
            sources: a.sources.clone(),
        });
        computers.push(computer_stat(&c, a)?);
    }
    // Sites as the relays' subnets draw them now.
    let relays: Vec<stats::SiteRelay> = c.store.relays()?.iter().map(Into::into).collect();
    Ok(Json(Stats {
        package_id: package.id,
        counts,
        computers,
        by_status,
        sites: stats::by_site(&lines, &relays),
    }))
}

/// The statuses `POST /packages/{id}/validate` clears for each `what`.
fn validated_statuses(what: Option<&str>) -> Result<&'static [Status], ApiError> {
    const SUCCESS: &[Status] = &[Status::Success, Status::ErrAlreadySetup];
    const NOT_NOTIFIED: &[Status] = &[Status::WaitingNotification];
    const ALL: &[Status] = &[
        Status::Success,
        Status::ErrAlreadySetup,
        Status::WaitingNotification,
    ];
    match what.map(str::trim) {
        Some("success") => Ok(SUCCESS),
        Some("not_notified") => Ok(NOT_NOTIFIED),
        Some("all") => Ok(ALL),
        Some(other) => Err(ApiError::bad_request(format!(
            "bad what: '{other}' is not one of success, not_notified, all"
        ))),
        None => Err(ApiError::bad_request(
            "bad what: missing (one of success, not_notified, all)",
        )),
    }
}

/// OCS "Validate success" (the package is in place: clear those lines of the
/// statistics), "Unaffect not notified" (cancel assignments no agent has
/// picked up yet) and "Validate all" (both).
pub async fn validate(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Json<Validated>, ApiError> {
    let package = find_package(&c, &id)?;
    let statuses = validated_statuses(req.what.as_deref())?;
    let pid = package.id.clone();
    let (removed, remaining) = c
        .blocking(move |c| {
            let removed = c.store.remove_jobs(&pid, JobKind::Install, statuses)?;
            let remaining = stat_lines(c, &pid)?.len() as u64;
            Ok((removed, remaining))
        })
        .await?;
    let mut counts = BTreeMap::new();
    for a in &removed {
        *counts.entry(a.status).or_insert(0) += 1;
    }
    tracing::info!(id = %package.id, removed = removed.len(), remaining, "package validated");
    Ok(Json(Validated {
        package_id: package.id,
        removed: counts,
        remaining,
    }))
}

/// One computer's line in a package's statistics.
pub(super) fn computer_stat(c: &Central, a: JobRecord) -> Result<ComputerStat, ApiError> {
    let hostname = c
        .store
        .computer(&a.computer_id)?
        .map(|c| c.hostname)
        .unwrap_or_default();
    Ok(ComputerStat {
        computer_id: a.computer_id,
        hostname,
        status: a.status,
        exit_code: a.exit_code,
        output: a.output,
        fragments_done: a.fragments_done,
        updated_at: a.updated_at,
        sources: a.sources,
    })
}

pub async fn list_computers(
    _: Admin,
    State(c): Shared,
) -> Result<Json<Vec<sitecast_common::wire::Computer>>, ApiError> {
    Ok(Json(
        c.store.computers()?.iter().map(|c| c.to_wire()).collect(),
    ))
}

pub(super) fn find_computer(
    c: &Central,
    id: &str,
) -> Result<crate::store::ComputerRecord, ApiError> {
    let cid: ComputerId = id
        .parse()
        .map_err(|_| ApiError::not_found("computer", id))?;
    c.store
        .computer(&cid)?
        .ok_or_else(|| ApiError::not_found("computer", id))
}

/// A computer, its packages (installed, or with a job) by package name then
/// version, and its jobs (OCO's computer page).
pub async fn show_computer(
    _: Admin,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ComputerDetail>, ApiError> {
    let computer = find_computer(&c, &id)?;
    let jobs = c.store.jobs_on(&computer.id)?;
    let mut packages: BTreeMap<PackageId, ComputerPackage> = BTreeMap::new();
    for j in &jobs {
        let Some(p) = c.store.package(&j.package_id)? else {
            continue;
        };
        let line = packages
            .entry(p.id.clone())
            .or_insert_with(|| blank_line(p));
        if line.updated_at.is_none_or(|at| j.updated_at >= at) {
            line.status = Some(j.status);
            line.exit_code = j.exit_code;
            line.updated_at = Some(j.updated_at);
        }
    }
    for i in c.store.installed_on(&computer.id)? {
        let Some(p) = c.store.package(&i.package_id)? else {
            continue;
        };
        let line = packages
            .entry(p.id.clone())
            .or_insert_with(|| blank_line(p));
        line.installed = true;
        line.installed_at = Some(i.installed_at);
    }
    let mut packages: Vec<ComputerPackage> = packages.into_values().collect();
    packages.sort_by(|a, b| {
        (&a.name, &a.version, &a.package_id).cmp(&(&b.name, &b.version, &b.package_id))
    });
    Ok(Json(ComputerDetail {
        computer: computer.to_wire(),
        packages,
        jobs: containers::job_views(&c, jobs)?,
    }))
}

fn blank_line(p: Package) -> ComputerPackage {
    ComputerPackage {
        package_id: p.id,
        name: p.name,
        version: p.version,
        status: None,
        exit_code: None,
        updated_at: None,
        installed: false,
        installed_at: None,
    }
}

/// OCO "Remove assignment": central forgets that the package is installed on
/// the computer, and its jobs there, without running anything on the computer.
pub async fn remove_assignment(
    _: Admin,
    State(c): Shared,
    ApiPath((computer, package)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let cid = find_computer(&c, &computer)?.id;
    let pid = find_package(&c, &package)?.id;
    let (p, k) = (pid.clone(), cid.clone());
    let removed = c
        .blocking(move |c| {
            let removed = c.store.forget(&k, &p)?;
            // A rule that wants the package there makes its job again (OCO).
            super::rules::after_computer_change(c, &k);
            Ok(removed)
        })
        .await?;
    if !removed {
        return Err(ApiError::not_found("assignment", format!("{pid} on {cid}")));
    }
    tracing::info!(package = %pid, computer = %cid, "assignment removed");
    Ok(StatusCode::NO_CONTENT)
}
