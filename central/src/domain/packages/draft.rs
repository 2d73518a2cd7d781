//! An upload's query parameters checked into a draft info document, before a
//! byte of the body is read: every field's error names the field.

use sitecast_common::fragment::check_fragment_size;
use sitecast_common::ids::{slug, PackageId};
use sitecast_common::info::{ActionDoc, Archive, Info, InfoDoc, InfoError, UninstallDoc, SCHEMA};
use sitecast_common::info::{NotifyDoc, MAX_NOTIFY_COUNTDOWN_S, MAX_USER_TEXT};
use sitecast_common::units::Duration as Span;
use sitecast_common::units::Size;
use sitecast_common::wire::UploadParams;

use crate::error::CentralError;
use crate::store::{ActivationRecord, PackageRecord};
use crate::tokens;

/// Upload parameters, checked before a byte of the body is read.
pub struct Draft {
    pub doc: InfoDoc,
    pub explicit_archive: Option<Archive>,
}

pub fn info_error(e: InfoError) -> CentralError {
    CentralError::invalid(e.to_string())
}

fn required<'a>(field: &str, value: &'a Option<String>) -> Result<&'a str, CentralError> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| CentralError::invalid(format!("bad {field}: missing")))
}

pub fn draft(params: &UploadParams, default_fragment_size: u64) -> Result<Draft, CentralError> {
    let name = required("name", &params.name)?.to_owned();
    let version = required("version", &params.version)?.to_owned();
    let action = match required("action", &params.action)? {
        "launch" => ActionDoc::Launch {
            command: required("command", &params.command)
                .map_err(|_| CentralError::invalid("bad command: launch needs a command"))?
                .to_owned(),
        },
        "execute" => ActionDoc::Execute {
            command: required("command", &params.command)
                .map_err(|_| CentralError::invalid("bad command: execute needs a command"))?
                .to_owned(),
        },
        "store" => ActionDoc::Store {
            path: required("path", &params.path)
                .map_err(|_| CentralError::invalid("bad path: store needs a path"))?
                .to_owned(),
        },
        other => {
            return Err(CentralError::invalid(format!(
                "bad action: '{other}' is not one of launch, execute, store"
            )))
        }
    };
    let priority = match params.priority.as_deref() {
        None => 5,
        Some(p) => p
            .trim()
            .parse::<i64>()
            .map_err(|_| CentralError::invalid(format!("bad priority: '{p}' is not a number")))?,
    };
    let fragment_size = match params.fragment_size.as_deref() {
        None => default_fragment_size,
        Some(s) => s
            .trim()
            .parse::<Size>()
            .map_err(|e| CentralError::invalid(format!("bad fragment_size: {e}")))?
            .bytes(),
    };
    check_fragment_size(fragment_size)
        .map_err(|e| CentralError::invalid(format!("bad fragment_size: {e}")))?;
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
            return Err(CentralError::invalid(
                "bad uninstall_success_exit_codes: given without uninstall_command",
            ))
        }
        None => None,
    };
    let command_timeout_s = match params.command_timeout_s.as_deref() {
        None => sitecast_common::info::DEFAULT_COMMAND_TIMEOUT_S,
        Some(t) => t.trim().parse::<u64>().map_err(|_| {
            CentralError::invalid(format!(
                "bad command_timeout_s: '{t}' is not a number of seconds"
            ))
        })?,
    };
    let (notify, done_action_text) = user_texts(params)?;
    let restart = match params.restart.as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(CentralError::invalid(format!(
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
fn user_texts(params: &UploadParams) -> Result<(Option<NotifyDoc>, Option<String>), CentralError> {
    let text = |field: &str, value: &Option<String>| -> Result<Option<String>, CentralError> {
        value
            .as_ref()
            .map(|t| {
                sitecast_common::info::check_text(t, MAX_USER_TEXT)
                    .map(|()| t.clone())
                    .map_err(|reason| CentralError::invalid(format!("bad {field}: {reason}")))
            })
            .transpose()
    };
    let flag = |field: &str, value: &Option<String>| -> Result<bool, CentralError> {
        match value.as_deref().map(str::trim) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(CentralError::invalid(format!(
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
                return Err(CentralError::invalid(format!(
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
            .map_err(|e| CentralError::invalid(format!("bad notify_countdown: {e}")))?
            .as_secs(),
    };
    if countdown_s > MAX_NOTIFY_COUNTDOWN_S {
        return Err(CentralError::invalid(format!(
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
fn exit_codes(field: &str, list: Option<&str>) -> Result<Vec<i32>, CentralError> {
    match list {
        None => Ok(vec![0]),
        Some(list) => list
            .split(',')
            .map(|c| {
                c.trim().parse::<i32>().map_err(|_| {
                    CentralError::invalid(format!("bad {field}: '{c}' is not an exit code"))
                })
            })
            .collect(),
    }
}

pub fn new_package_id(name: &str, version: &str) -> Result<PackageId, CentralError> {
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
        .map_err(|e| CentralError::invalid(format!("bad name: {e}")))
}

/// The record of a new package, from its signed info: activated nowhere yet.
pub fn package_record(
    info: &Info,
    info_sha256: String,
    created_at: jiff::Timestamp,
) -> PackageRecord {
    let doc = InfoDoc::from(info);
    PackageRecord {
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
        activation: ActivationRecord::default(),
        uninstall: doc.uninstall,
        supersedes: info.supersedes().cloned(),
        notify: doc.notify,
        done_action_text: doc.done_action_text,
        restart: info.restart(),
    }
}
