//! The relay's content on disk: signed infos and verified fragments.
//!
//! Layout under `DIR/cache/`: `<package>/info.dsse.json` and `<package>/<n>` (one
//! file per fragment, numbered from 1). A fragment file exists only once its bytes
//! matched the SHA-256 in the signed info: it is written to `tmp/`, fsynced and
//! renamed into place, so after a crash the relay holds exactly what it held.
//! The relay is a cache: wiping this directory loses nothing but WAN bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sitecast_common::ids::PackageId;

use crate::error::RelayError;

const INFO: &str = "info.dsse.json";

pub use sitecast_io::{fsync_dir, write_atomically};

/// The relay's cache directory.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    tmp_seq: AtomicU64,
}

impl Cache {
    /// Opens the cache, removing half-written temporary files.
    pub fn open(root: &Path) -> Result<Self, RelayError> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(RelayError::io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(RelayError::io(&tmp))?;
        Ok(Self {
            root: root.to_owned(),
            tmp_seq: AtomicU64::new(0),
        })
    }

    /// The cache of a relay that may be running, for another process (`import`):
    /// nothing is swept, so the relay's temporary files are left alone.
    pub fn attach(root: &Path) -> Result<Self, RelayError> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(RelayError::io(&tmp))?;
        Ok(Self {
            root: root.to_owned(),
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes on disk per package (its info and fragments, by file length).
    pub fn usage(&self) -> Result<BTreeMap<PackageId, u64>, RelayError> {
        let mut usage = BTreeMap::new();
        for id in self.packages()? {
            let dir = self.dir(&id);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // Dropped meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(RelayError::io(dir)(e)),
            };
            let mut bytes = 0u64;
            for entry in entries.flatten() {
                if let Ok(meta) = entry.metadata() {
                    if meta.is_file() {
                        bytes += meta.len();
                    }
                }
            }
            usage.insert(id, bytes);
        }
        Ok(usage)
    }

    /// Deletes a fragment found bad, if the file at its path is still the one
    /// that was checked (`ino`): a fresh copy renamed into place meanwhile stays.
    pub fn remove_bad_fragment(
        &self,
        id: &PackageId,
        index: u32,
        ino: u64,
    ) -> Result<bool, RelayError> {
        use std::os::unix::fs::MetadataExt;
        let path = self.fragment_path(id, index);
        match fs::metadata(&path) {
            Ok(m) if m.ino() == ino => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(RelayError::io(path)(e)),
        }
        fs::remove_file(&path).map_err(RelayError::io(&path))?;
        fsync_dir(&self.dir(id))?;
        Ok(true)
    }

    fn dir(&self, id: &PackageId) -> PathBuf {
        self.root.join(id.as_str())
    }

    pub fn info_path(&self, id: &PackageId) -> PathBuf {
        self.dir(id).join(INFO)
    }

    pub fn fragment_path(&self, id: &PackageId, index: u32) -> PathBuf {
        self.dir(id).join(index.to_string())
    }

    /// Packages with a directory in the cache.
    pub fn packages(&self) -> Result<Vec<PackageId>, RelayError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(RelayError::io(&self.root))? {
            let entry = entry.map_err(RelayError::io(&self.root))?;
            if let Ok(id) = entry.file_name().to_string_lossy().parse::<PackageId>() {
                if entry.path().is_dir() && entry.file_name() != "tmp" {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The signed info, byte for byte, if held.
    pub fn info(&self, id: &PackageId) -> Result<Option<Vec<u8>>, RelayError> {
        let path = self.info_path(id);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RelayError::io(path)(e)),
        }
    }

    /// Stores a signed info that the caller verified.
    pub fn store_info(&self, id: &PackageId, envelope: &[u8]) -> Result<(), RelayError> {
        let dir = self.dir(id);
        fs::create_dir_all(&dir).map_err(RelayError::io(&dir))?;
        write_atomically(&self.info_path(id), envelope).map_err(Into::into)
    }

    /// Fragment numbers held for a package.
    pub fn fragments_held(&self, id: &PackageId) -> Result<BTreeSet<u32>, RelayError> {
        let dir = self.dir(id);
        let mut held = BTreeSet::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(held),
            Err(e) => return Err(RelayError::io(dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(RelayError::io(&dir))?;
            if let Ok(n) = entry.file_name().to_string_lossy().parse::<u32>() {
                held.insert(n);
            }
        }
        Ok(held)
    }

    /// A fresh temporary path for a fragment being received.
    pub fn temp_path(&self, id: &PackageId, index: u32) -> PathBuf {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{id}.{index}.{seq}"))
    }

    /// Moves a fragment, already written and fsynced at `tmp` and verified by the
    /// caller against the signed info, into the cache.
    pub fn commit_fragment(
        &self,
        tmp: &Path,
        id: &PackageId,
        index: u32,
    ) -> Result<(), RelayError> {
        let dir = self.dir(id);
        fs::create_dir_all(&dir).map_err(RelayError::io(&dir))?;
        let path = self.fragment_path(id, index);
        fs::rename(tmp, &path).map_err(RelayError::io(&path))?;
        fsync_dir(&dir).map_err(Into::into)
    }

    /// Stores a fragment whose bytes the caller verified against the signed info.
    pub fn store_fragment(
        &self,
        id: &PackageId,
        index: u32,
        bytes: &[u8],
    ) -> Result<(), RelayError> {
        let tmp = self.temp_path(id, index);
        let mut f = File::create(&tmp).map_err(RelayError::io(&tmp))?;
        f.write_all(bytes).map_err(RelayError::io(&tmp))?;
        f.sync_all().map_err(RelayError::io(&tmp))?;
        self.commit_fragment(&tmp, id, index)
    }

    /// Drops a package's content.
    pub fn remove(&self, id: &PackageId) -> Result<(), RelayError> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => fsync_dir(&self.root).map_err(Into::into),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RelayError::io(dir)(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fragments_and_infos_persist_and_temporaries_do_not() {
        let tmp = tempfile::tempdir().unwrap();
        let id: PackageId = "p-1".parse().unwrap();
        {
            let cache = Cache::open(tmp.path()).unwrap();
            cache.store_info(&id, b"{}").unwrap();
            cache.store_fragment(&id, 1, b"one").unwrap();
            cache.store_fragment(&id, 3, b"three").unwrap();
            fs::write(tmp.path().join("tmp/p-1.2.9"), b"half").unwrap();
        }
        let cache = Cache::open(tmp.path()).unwrap();
        assert_eq!(cache.packages().unwrap(), vec![id.clone()]);
        assert_eq!(cache.info(&id).unwrap().unwrap(), b"{}");
        assert_eq!(cache.fragments_held(&id).unwrap(), BTreeSet::from([1, 3]));
        assert_eq!(fs::read(cache.fragment_path(&id, 3)).unwrap(), b"three");
        assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
        cache.remove(&id).unwrap();
        assert!(cache.packages().unwrap().is_empty());
        assert!(cache.info(&id).unwrap().is_none());
    }
}
