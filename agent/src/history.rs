//! The agent's memory of packages that are installed here: one that succeeded is
//! reported `ERR_ALREADY_SETUP` and never run twice (OCS's behaviour), until an
//! uninstall job succeeds and takes it out again. For a `store` package it also keeps
//! what the install put in place ([`crate::manifest`]), which its uninstall removes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sitecast_common::ids::PackageId;

use crate::error::AgentError;
use crate::manifest::Manifest;
use sitecast_io::write_atomically;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    pub at: jiff::Timestamp,
    /// What a `store` install created under its path. Absent for other actions, and
    /// for packages installed before the agent recorded it (older `history.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<Manifest>,
}

/// The JSON state file at `path`, or an empty value when there is none yet; a file
/// that does not parse is an error naming it, never taken for an empty one.
pub(crate) fn load_json_or_empty<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
) -> Result<T, AgentError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(AgentError::io(path)(e)),
    }
}

/// `DIR/history.json`, rewritten atomically on every change.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    installed: BTreeMap<PackageId, Installed>,
}

impl History {
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        Ok(Self {
            path: path.to_owned(),
            installed: load_json_or_empty(path)?,
        })
    }

    pub fn contains(&self, id: &PackageId) -> bool {
        self.installed.contains_key(id)
    }

    pub fn get(&self, id: &PackageId) -> Option<&Installed> {
        self.installed.get(id)
    }

    /// The package is installed (written down before this returns).
    pub fn record(&mut self, id: &PackageId, installed: Installed) -> Result<(), AgentError> {
        let previous = self.installed.insert(id.clone(), installed);
        self.save().inspect_err(|_| {
            // Memory and disk agree, whatever happened.
            match previous {
                Some(previous) => self.installed.insert(id.clone(), previous),
                None => self.installed.remove(id),
            };
        })
    }

    /// The package was uninstalled (written down before this returns); `false` if it
    /// was not in the history.
    pub fn remove(&mut self, id: &PackageId) -> Result<bool, AgentError> {
        let Some(previous) = self.installed.remove(id) else {
            return Ok(false);
        };
        self.save().inspect_err(|_| {
            self.installed.insert(id.clone(), previous);
        })?;
        Ok(true)
    }

    fn save(&self) -> Result<(), AgentError> {
        let bytes = serde_json::to_vec_pretty(&self.installed)
            .map_err(AgentError::encode("install history"))?;
        write_atomically(&self.path, &bytes).map_err(Into::into)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;
    use crate::manifest::{Entry, EntryKind};

    fn installed() -> Installed {
        Installed {
            at: jiff::Timestamp::UNIX_EPOCH,
            store: None,
        }
    }

    #[test]
    fn survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        let id: PackageId = "p-1".parse().unwrap();
        let mut h = History::load(&path).unwrap();
        assert!(!h.contains(&id));
        h.record(&id, installed()).unwrap();
        assert!(History::load(&path).unwrap().contains(&id));
        std::fs::write(&path, b"not json").unwrap();
        assert!(History::load(&path)
            .unwrap_err()
            .to_string()
            .contains("history.json"));
    }

    /// An uninstall takes the package out, on disk too, so a later install job
    /// runs again instead of answering `ERR_ALREADY_SETUP`.
    #[test]
    fn an_uninstalled_package_is_forgotten_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        let (gone, kept): (PackageId, PackageId) = ("p-1".parse().unwrap(), "p-2".parse().unwrap());
        let mut h = History::load(&path).unwrap();
        h.record(&gone, installed()).unwrap();
        h.record(&kept, installed()).unwrap();
        assert!(h.remove(&gone).unwrap());
        assert!(!h.contains(&gone));
        assert!(!h.remove(&gone).unwrap(), "not there any more");
        let reloaded = History::load(&path).unwrap();
        assert!(!reloaded.contains(&gone));
        assert!(reloaded.contains(&kept));
    }

    /// `history.json` files written before manifests existed still load; manifests,
    /// non-UTF-8 names included, survive a reload exactly.
    #[test]
    fn old_histories_load_and_manifests_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        std::fs::write(&path, br#"{"p-1": {"at": "2026-01-02T03:04:05Z"}}"#).unwrap();
        let mut h = History::load(&path).unwrap();
        let id: PackageId = "p-1".parse().unwrap();
        assert_eq!(h.get(&id).unwrap().store, None);

        let latin1 = PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
        let manifest = Manifest {
            root: "/opt/store".into(),
            root_created: Some(7),
            entries: vec![
                Entry {
                    kind: EntryKind::Dir,
                    path: "bin".into(),
                    ino: 8,
                },
                Entry {
                    kind: EntryKind::File,
                    path: latin1,
                    ino: 9,
                },
                Entry {
                    kind: EntryKind::Symlink,
                    path: "bin/tool".into(),
                    ino: 10,
                },
            ],
        };
        let stored = Installed {
            at: jiff::Timestamp::UNIX_EPOCH,
            store: Some(manifest),
        };
        let other: PackageId = "p-2".parse().unwrap();
        h.record(&other, stored.clone()).unwrap();
        let reloaded = History::load(&path).unwrap();
        assert_eq!(reloaded.get(&other), Some(&stored));
        assert!(reloaded.contains(&id));
    }
}
