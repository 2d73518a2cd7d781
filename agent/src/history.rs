//! The agent's memory of packages that succeeded, so that one is reported
//! `ERR_ALREADY_SETUP` and never run twice (OCS's behaviour).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sitecast_common::ids::PackageId;

use crate::error::AgentError;
use crate::fsutil::write_atomically;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    pub at: jiff::Timestamp,
}

/// `DIR/history.json`, rewritten atomically on every change.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    installed: BTreeMap<PackageId, Installed>,
}

impl History {
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let installed = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Config {
                path: path.to_owned(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(AgentError::io(path)(e)),
        };
        Ok(Self {
            path: path.to_owned(),
            installed,
        })
    }

    pub fn contains(&self, id: &PackageId) -> bool {
        self.installed.contains_key(id)
    }

    pub fn record(&mut self, id: &PackageId, at: jiff::Timestamp) -> Result<(), AgentError> {
        self.installed.insert(id.clone(), Installed { at });
        let bytes = serde_json::to_vec_pretty(&self.installed).unwrap_or_default();
        write_atomically(&self.path, &bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        let id: PackageId = "p-1".parse().unwrap();
        let mut h = History::load(&path).unwrap();
        assert!(!h.contains(&id));
        h.record(&id, jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert!(History::load(&path).unwrap().contains(&id));
        std::fs::write(&path, b"not json").unwrap();
        assert!(History::load(&path)
            .unwrap_err()
            .to_string()
            .contains("history.json"));
    }
}
