//! The version floor of each package name installed here (`DIR/floors.json`):
//! the version of the name's last successful install. An install of an older
//! version is refused `ERR_DOWNGRADE` unless its job carries central's signed
//! downgrade ticket ([`sitecast_common::keyset::verify_downgrade`]), so whoever
//! can only replay old signed infos cannot bring back an old, vulnerable version.
//! Uninstalling keeps the floor: a rollback could follow an uninstall.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sitecast_common::keyset::compare_versions;

use crate::error::AgentError;

#[derive(Debug)]
pub struct Floors {
    path: PathBuf,
    floors: BTreeMap<String, String>,
}

impl Floors {
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        Ok(Self {
            path: path.to_owned(),
            floors: crate::history::load_json_or_empty(path)?,
        })
    }

    /// The installed version `version` of `name` would go below, if any.
    pub fn above(&self, name: &str, version: &str) -> Option<&str> {
        self.floors
            .get(name)
            .filter(|floor| compare_versions(version, floor) == std::cmp::Ordering::Less)
            .map(String::as_str)
    }

    /// `version` of `name` is installed: the floor from now on (written down
    /// before this returns; lower than before only after an intended downgrade).
    pub fn record(&mut self, name: &str, version: &str) -> Result<(), AgentError> {
        if self.floors.get(name).is_some_and(|v| v == version) {
            return Ok(());
        }
        let previous = self.floors.insert(name.to_owned(), version.to_owned());
        let bytes = serde_json::to_vec_pretty(&self.floors)
            .map_err(AgentError::encode("version floors"))?;
        sitecast_io::write_atomically(&self.path, &bytes).inspect_err(|_| {
            match previous {
                Some(v) => self.floors.insert(name.to_owned(), v),
                None => self.floors.remove(name),
            };
        })?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_refuses_older_versions_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floors.json");
        let mut floors = Floors::load(&path).unwrap();
        assert_eq!(floors.above("firefox", "1.0"), None);
        floors.record("firefox", "129.0").unwrap();
        let floors = Floors::load(&path).unwrap();
        assert_eq!(floors.above("firefox", "128.0.5"), Some("129.0"));
        assert_eq!(floors.above("firefox", "129.0"), None);
        assert_eq!(floors.above("firefox", "130.0"), None);
        assert_eq!(floors.above("zlib", "0.1"), None);
        std::fs::write(&path, b"nope").unwrap();
        assert!(Floors::load(&path)
            .unwrap_err()
            .to_string()
            .contains("floors.json"));
    }
}
