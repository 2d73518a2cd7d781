//! The info document: what a package is, how to check it and what to do with it.
//!
//! [`InfoDoc`] is the serde wire shape (exactly the fields of SPEC "Formats");
//! [`Info`] is the validated domain value, built only through `TryFrom<InfoDoc>`,
//! so an `Info` in hand always has a priority in 0..=10, a command where its action
//! needs one, and a fragment list that fits its size. Signing lives in
//! [`crate::signing`]; this module only describes.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fragment::{FragmentPlan, Sha256Digest};
use crate::ids::PackageId;

/// Version of the info document format that this code writes and reads.
pub const SCHEMA: u32 = 1;

/// An info document that does not hold together, naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("bad {field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("not an info document: {0}")]
    Json(String),
}

fn field(field: &'static str, reason: impl Into<String>) -> InfoError {
    InfoError::Field {
        field,
        reason: reason.into(),
    }
}

/// The info document as it is written in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoDoc {
    pub schema: u32,
    pub id: String,
    pub name: String,
    pub version: String,
    pub os: String,
    pub priority: i64,
    pub action: ActionDoc,
    pub archive: String,
    pub size: u64,
    pub sha256: String,
    pub fragment_size: u64,
    pub fragments: Vec<String>,
    #[serde(default = "default_success_codes")]
    pub success_exit_codes: Vec<i32>,
    #[serde(default = "default_timeout")]
    pub command_timeout_s: u64,
    #[serde(default)]
    pub notify: Option<NotifyDoc>,
    #[serde(default)]
    pub done_action_text: Option<String>,
    #[serde(default)]
    pub supersedes: Option<String>,
    #[serde(default)]
    pub uninstall: Option<UninstallDoc>,
    pub issued_at: String,
}

pub fn default_success_codes() -> Vec<i32> {
    vec![0]
}

/// One hour: long enough for big installers, short enough to free a stuck agent.
pub const DEFAULT_COMMAND_TIMEOUT_S: u64 = 3600;

fn default_timeout() -> u64 {
    DEFAULT_COMMAND_TIMEOUT_S
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ActionDoc {
    Launch { command: String },
    Execute { command: String },
    Store { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyDoc {
    pub text: String,
    pub countdown_s: u64,
    pub can_abort: bool,
    pub can_delay: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UninstallDoc {
    pub command: String,
    #[serde(default = "default_success_codes")]
    pub success_exit_codes: Vec<i32>,
}

/// Which systems a package is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Os {
    Any,
    Linux,
    Windows,
}

impl Os {
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Any => "any",
            Os::Linux => "linux",
            Os::Windows => "windows",
        }
    }
}

impl FromStr for Os {
    type Err = InfoError;
    fn from_str(s: &str) -> Result<Self, InfoError> {
        match s {
            "any" => Ok(Os::Any),
            "linux" => Ok(Os::Linux),
            "windows" => Ok(Os::Windows),
            _ => Err(field(
                "os",
                format!("'{s}' is not one of any, linux, windows"),
            )),
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the package file is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Archive {
    None,
    Zip,
    TarGz,
}

impl Archive {
    pub fn as_str(self) -> &'static str {
        match self {
            Archive::None => "none",
            Archive::Zip => "zip",
            Archive::TarGz => "tar.gz",
        }
    }

    /// Recognises a zip or gzip file by its first bytes (what `package create`
    /// does when no `--archive` is given).
    pub fn sniff(head: &[u8]) -> Archive {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Archive::Zip
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Archive::TarGz
        } else {
            Archive::None
        }
    }
}

impl FromStr for Archive {
    type Err = InfoError;
    fn from_str(s: &str) -> Result<Self, InfoError> {
        match s {
            "none" => Ok(Archive::None),
            "zip" => Ok(Archive::Zip),
            "tar.gz" => Ok(Archive::TarGz),
            _ => Err(field(
                "archive",
                format!("'{s}' is not one of none, zip, tar.gz"),
            )),
        }
    }
}

impl fmt::Display for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Deployment priority, 0 (urgent, first) to 10 (last), as in OCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    pub const MAX: u8 = 10;

    pub fn new(value: i64) -> Result<Self, InfoError> {
        u8::try_from(value)
            .ok()
            .filter(|v| *v <= Self::MAX)
            .map(Priority)
            .ok_or_else(|| field("priority", format!("{value} is not between 0 and 10")))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// What the agent does once the package is rebuilt and unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run a program of the archive (the command's first word), inside the unpacked directory.
    Launch { command: String },
    /// Run a shell command, environment variables expanded.
    Execute { command: String },
    /// Unpack into `path`, created if missing.
    Store { path: String },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Launch { .. } => "launch",
            Action::Execute { .. } => "execute",
            Action::Store { .. } => "store",
        }
    }
}

/// The longest text shown to a computer's user (`notify.text`, `done_action_text`), in bytes.
pub const MAX_USER_TEXT: usize = 4096;

/// The longest countdown a package may give the user to answer: a day. (`0`: no
/// countdown; the agent bounds that wait itself.)
pub const MAX_NOTIFY_COUNTDOWN_S: u64 = 86_400;

/// What the agent tells the computer's user before the action runs (OCS's
/// "notify user"): the text, the seconds the user has to answer (0: no
/// countdown), and whether the user may abort or delay the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub text: String,
    pub countdown_s: u64,
    pub can_abort: bool,
    pub can_delay: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uninstall {
    pub command: String,
    pub success_exit_codes: Vec<i32>,
}

/// A validated info document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    id: PackageId,
    name: String,
    version: String,
    os: Os,
    priority: Priority,
    action: Action,
    archive: Archive,
    plan: FragmentPlan,
    success_exit_codes: Vec<i32>,
    command_timeout_s: u64,
    notify: Option<Notify>,
    done_action_text: Option<String>,
    supersedes: Option<PackageId>,
    uninstall: Option<Uninstall>,
    issued_at: Timestamp,
}

impl Info {
    pub fn id(&self) -> &PackageId {
        &self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn os(&self) -> Os {
        self.os
    }
    pub fn priority(&self) -> Priority {
        self.priority
    }
    pub fn action(&self) -> &Action {
        &self.action
    }
    pub fn archive(&self) -> Archive {
        self.archive
    }
    pub fn plan(&self) -> &FragmentPlan {
        &self.plan
    }
    pub fn success_exit_codes(&self) -> &[i32] {
        &self.success_exit_codes
    }
    pub fn command_timeout_s(&self) -> u64 {
        self.command_timeout_s
    }
    pub fn notify(&self) -> Option<&Notify> {
        self.notify.as_ref()
    }
    pub fn done_action_text(&self) -> Option<&str> {
        self.done_action_text.as_deref()
    }
    pub fn supersedes(&self) -> Option<&PackageId> {
        self.supersedes.as_ref()
    }
    pub fn uninstall(&self) -> Option<&Uninstall> {
        self.uninstall.as_ref()
    }
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// Parses and validates an info document's JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, InfoError> {
        let doc: InfoDoc =
            serde_json::from_slice(bytes).map_err(|e| InfoError::Json(e.to_string()))?;
        Info::try_from(doc)
    }

    /// The JSON bytes of this document (what gets signed).
    pub fn to_json(&self) -> Vec<u8> {
        let doc = InfoDoc::from(self);
        // Serialising plain structs of strings and numbers into memory cannot fail.
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }
}

fn text(name: &'static str, value: String, max: usize) -> Result<String, InfoError> {
    check_text(&value, max).map_err(|reason| field(name, reason))?;
    Ok(value)
}

/// Why `value` is not an acceptable text of the info (empty, longer than `max`
/// bytes, or with control characters other than newline and tab), if it is not.
pub fn check_text(value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max {
        return Err(format!("must be at most {max} bytes"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn digest(name: &'static str, hex_text: &str) -> Result<Sha256Digest, InfoError> {
    let mut out = [0u8; 32];
    if hex_text.len() != 64 || hex_text.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(field(
            name,
            format!("'{hex_text}' is not a lowercase hex SHA-256"),
        ));
    }
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|_| field(name, format!("'{hex_text}' is not a lowercase hex SHA-256")))?;
    Ok(out)
}

fn exit_codes(name: &'static str, codes: Vec<i32>) -> Result<Vec<i32>, InfoError> {
    if codes.is_empty() {
        return Err(field(name, "must list at least one exit code"));
    }
    Ok(codes)
}

impl TryFrom<InfoDoc> for Info {
    type Error = InfoError;

    fn try_from(doc: InfoDoc) -> Result<Self, InfoError> {
        if doc.schema != SCHEMA {
            return Err(field(
                "schema",
                format!("{} is not supported (expected {SCHEMA})", doc.schema),
            ));
        }
        let id: PackageId = doc.id.parse().map_err(|e| field("id", format!("{e}")))?;
        let name = text("name", doc.name, 128)?;
        let version = text("version", doc.version, 64)?;
        let os: Os = doc.os.parse()?;
        let priority = Priority::new(doc.priority)?;
        let action = match doc.action {
            ActionDoc::Launch { command } => Action::Launch {
                command: text("command", command, 4096)?,
            },
            ActionDoc::Execute { command } => Action::Execute {
                command: text("command", command, 4096)?,
            },
            ActionDoc::Store { path } => Action::Store {
                path: text("path", path, 4096)?,
            },
        };
        let archive: Archive = doc.archive.parse()?;
        if archive != Archive::None && doc.size == 0 {
            return Err(field("archive", format!("{archive} needs a package file")));
        }
        if matches!(action, Action::Launch { .. }) && archive == Archive::None && doc.size == 0 {
            return Err(field(
                "action",
                "launch runs a file of the package, so it needs a package file",
            ));
        }
        let sha256 = digest("sha256", &doc.sha256)?;
        let fragments = doc
            .fragments
            .iter()
            .map(|f| digest("fragments", f))
            .collect::<Result<Vec<_>, _>>()?;
        let plan = FragmentPlan::from_parts(doc.size, doc.fragment_size, sha256, fragments)
            .map_err(|e| match e {
                crate::fragment::FragmentError::BadFragmentSize(_) => {
                    field("fragment_size", e.to_string())
                }
                _ => field("fragments", e.to_string()),
            })?;
        let success_exit_codes = exit_codes("success_exit_codes", doc.success_exit_codes)?;
        if doc.command_timeout_s == 0 {
            return Err(field("command_timeout_s", "must be at least 1 second"));
        }
        let notify = doc
            .notify
            .map(|n| -> Result<Notify, InfoError> {
                if n.countdown_s > MAX_NOTIFY_COUNTDOWN_S {
                    return Err(field(
                        "notify.countdown_s",
                        format!(
                            "{} is longer than a day ({MAX_NOTIFY_COUNTDOWN_S} s)",
                            n.countdown_s
                        ),
                    ));
                }
                Ok(Notify {
                    text: text("notify.text", n.text, MAX_USER_TEXT)?,
                    countdown_s: n.countdown_s,
                    can_abort: n.can_abort,
                    can_delay: n.can_delay,
                })
            })
            .transpose()?;
        let done_action_text = doc
            .done_action_text
            .map(|t| text("done_action_text", t, MAX_USER_TEXT))
            .transpose()?;
        let supersedes = doc
            .supersedes
            .map(|s| {
                s.parse::<PackageId>()
                    .map_err(|e| field("supersedes", e.to_string()))
            })
            .transpose()?;
        if supersedes.as_ref() == Some(&id) {
            return Err(field("supersedes", "a package cannot supersede itself"));
        }
        let uninstall = doc
            .uninstall
            .map(|u| -> Result<Uninstall, InfoError> {
                Ok(Uninstall {
                    command: text("uninstall.command", u.command, 4096)?,
                    success_exit_codes: exit_codes(
                        "uninstall.success_exit_codes",
                        u.success_exit_codes,
                    )?,
                })
            })
            .transpose()?;
        let issued_at: Timestamp = doc.issued_at.parse().map_err(|e| {
            field(
                "issued_at",
                format!("'{}' is not an RFC 3339 time: {e}", doc.issued_at),
            )
        })?;
        Ok(Info {
            id,
            name,
            version,
            os,
            priority,
            action,
            archive,
            plan,
            success_exit_codes,
            command_timeout_s: doc.command_timeout_s,
            notify,
            done_action_text,
            supersedes,
            uninstall,
            issued_at,
        })
    }
}

impl From<&Info> for InfoDoc {
    fn from(info: &Info) -> Self {
        InfoDoc {
            schema: SCHEMA,
            id: info.id.to_string(),
            name: info.name.clone(),
            version: info.version.clone(),
            os: info.os.as_str().to_owned(),
            priority: i64::from(info.priority.get()),
            action: match &info.action {
                Action::Launch { command } => ActionDoc::Launch {
                    command: command.clone(),
                },
                Action::Execute { command } => ActionDoc::Execute {
                    command: command.clone(),
                },
                Action::Store { path } => ActionDoc::Store { path: path.clone() },
            },
            archive: info.archive.as_str().to_owned(),
            size: info.plan.size(),
            sha256: hex::encode(info.plan.sha256()),
            fragment_size: info.plan.fragment_size(),
            fragments: info.plan.fragments().iter().map(hex::encode).collect(),
            success_exit_codes: info.success_exit_codes.clone(),
            command_timeout_s: info.command_timeout_s,
            notify: info.notify.as_ref().map(|n| NotifyDoc {
                text: n.text.clone(),
                countdown_s: n.countdown_s,
                can_abort: n.can_abort,
                can_delay: n.can_delay,
            }),
            done_action_text: info.done_action_text.clone(),
            supersedes: info.supersedes.as_ref().map(|s| s.to_string()),
            uninstall: info.uninstall.as_ref().map(|u| UninstallDoc {
                command: u.command.clone(),
                success_exit_codes: u.success_exit_codes.clone(),
            }),
            issued_at: info.issued_at.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fragment::plan_reader;

    pub(crate) fn sample_doc() -> InfoDoc {
        let plan = plan_reader(&b"0123456789abcdef-tail"[..], 8).unwrap();
        InfoDoc {
            schema: 1,
            id: "hello-1.0-abc123".into(),
            name: "hello".into(),
            version: "1.0".into(),
            os: "linux".into(),
            priority: 5,
            action: ActionDoc::Execute {
                command: "echo hello".into(),
            },
            archive: "none".into(),
            size: plan.size(),
            sha256: hex::encode(plan.sha256()),
            fragment_size: 8,
            fragments: plan.fragments().iter().map(hex::encode).collect(),
            success_exit_codes: vec![0, 3010],
            command_timeout_s: 600,
            notify: None,
            done_action_text: None,
            supersedes: None,
            uninstall: None,
            issued_at: "2026-11-21T08:00:00Z".into(),
        }
    }

    fn err_field(doc: InfoDoc) -> &'static str {
        match Info::try_from(doc) {
            Err(InfoError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let info = Info::try_from(sample_doc()).unwrap();
        let again = Info::from_json(&info.to_json()).unwrap();
        assert_eq!(info, again);
        assert_eq!(InfoDoc::from(&info), sample_doc());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut d = sample_doc();
        d.priority = 11;
        assert_eq!(err_field(d), "priority");
        let mut d = sample_doc();
        d.os = "beos".into();
        assert_eq!(err_field(d), "os");
        let mut d = sample_doc();
        d.action = ActionDoc::Launch {
            command: " ".into(),
        };
        assert_eq!(err_field(d), "command");
        let mut d = sample_doc();
        d.archive = "rar".into();
        assert_eq!(err_field(d), "archive");
        let mut d = sample_doc();
        d.fragments.pop();
        assert_eq!(err_field(d), "fragments");
        let mut d = sample_doc();
        d.fragment_size = 0;
        assert_eq!(err_field(d), "fragment_size");
        let mut d = sample_doc();
        d.sha256 = d.sha256.to_uppercase();
        assert_eq!(err_field(d), "sha256");
        let mut d = sample_doc();
        d.issued_at = "yesterday".into();
        assert_eq!(err_field(d), "issued_at");
        let mut d = sample_doc();
        d.success_exit_codes.clear();
        assert_eq!(err_field(d), "success_exit_codes");
        let mut d = sample_doc();
        d.supersedes = Some(d.id.clone());
        assert_eq!(err_field(d), "supersedes");
        let mut d = sample_doc();
        d.schema = 2;
        assert_eq!(err_field(d), "schema");
    }

    #[test]
    fn notify_and_done_texts_are_checked() {
        let notify = |text: &str, countdown_s| NotifyDoc {
            text: text.into(),
            countdown_s,
            can_abort: true,
            can_delay: false,
        };
        let mut d = sample_doc();
        d.notify = Some(notify("Firefox is updated.\nSave your work.", 300));
        d.done_action_text = Some("Firefox is up to date.".into());
        let info = Info::try_from(d).unwrap();
        assert_eq!(info.notify().unwrap().countdown_s, 300);
        assert!(info.notify().unwrap().can_abort);
        assert_eq!(info.done_action_text(), Some("Firefox is up to date."));
        assert_eq!(Info::from_json(&info.to_json()).unwrap(), info);

        let mut d = sample_doc();
        d.notify = Some(notify("a\u{7}bell", 0));
        assert_eq!(err_field(d), "notify.text");
        let mut d = sample_doc();
        d.notify = Some(notify(" ", 0));
        assert_eq!(err_field(d), "notify.text");
        let mut d = sample_doc();
        d.notify = Some(notify(&"x".repeat(MAX_USER_TEXT + 1), 0));
        assert_eq!(err_field(d), "notify.text");
        let mut d = sample_doc();
        d.notify = Some(notify("ok", MAX_NOTIFY_COUNTDOWN_S + 1));
        assert_eq!(err_field(d), "notify.countdown_s");
        let mut d = sample_doc();
        d.done_action_text = Some("done\r".into());
        assert_eq!(err_field(d), "done_action_text");
        assert_eq!(check_text("fine\tline\nnext", 100), Ok(()));
        assert!(check_text("abc", 2)
            .unwrap_err()
            .contains("at most 2 bytes"));
    }

    #[test]
    fn unknown_action_kind_is_a_json_error() {
        let json = serde_json::to_string(&sample_doc())
            .unwrap()
            .replace("\"execute\"", "\"reboot\"");
        match Info::from_json(json.as_bytes()) {
            Err(InfoError::Json(msg)) => assert!(msg.contains("reboot"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sniffs_archives() {
        assert_eq!(Archive::sniff(b"PK\x03\x04rest"), Archive::Zip);
        assert_eq!(Archive::sniff(&[0x1f, 0x8b, 8, 0]), Archive::TarGz);
        assert_eq!(Archive::sniff(b"#!/bin/sh"), Archive::None);
        assert_eq!(Archive::sniff(b""), Archive::None);
    }
}
