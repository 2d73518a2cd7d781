//! What a `store` install put in place, and taking it away again.
//!
//! A `store` package unpacks into an admin-chosen path that may already hold other
//! things (another package's files, an admin's own). To uninstall it the agent must
//! remove exactly what the install created and nothing else, so [`crate::unpack`]
//! records a [`Manifest`] as it goes: each regular file, hard link and symlink it
//! wrote, each directory it created (not those that were already there), in creation
//! order, and whether it created the store path itself. The history keeps it with the
//! installed package ([`crate::history::Installed`]).
//!
//! Every entry carries the inode it had when it was created. [`remove`] takes an entry
//! away only if the path is still that very thing: the same kind and the same inode.
//! A file another package (or a later version of this one) wrote over is a new inode
//! and is left alone; so is a symlink somebody replaced by a directory or a file.
//! Removal never follows a symlink: no directory above an entry may be one (checked with
//! `symlink_metadata` on each, as `unpack` does when it writes), and unlinking a symlink
//! never touches what it points at. Directories go last, deepest first, and only if
//! empty: one that got foreign files is kept. The store path goes only if the install
//! created it and it is empty.
//!
//! As in `unpack`, a local user racing us by swapping a checked directory for a symlink
//! between the check and the unlink is not defended against: a store path writable by
//! untrusted users is already lost.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many kept or failed paths a [`Removal`]'s summary names; the rest are counted.
const NAMED_IN_SUMMARY: usize = 10;

/// What one `store` install created under its store path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The store path (absolute, as the signed info gave it).
    #[serde(with = "os_path")]
    pub root: PathBuf,
    /// The store path's inode, if the install created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_created: Option<u64>,
    /// What the install created under `root`, in creation order.
    #[serde(default)]
    pub entries: Vec<Entry>,
}

/// One thing the install created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: EntryKind,
    /// Relative to the manifest's root, normal components only.
    #[serde(with = "os_path")]
    pub path: PathBuf,
    /// Its inode when created: removal takes away only that very file.
    pub ino: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file (hard links included).
    File,
    Symlink,
    Dir,
}

impl EntryKind {
    fn matches(self, kind: &fs::FileType) -> bool {
        match self {
            EntryKind::File => kind.is_file(),
            EntryKind::Symlink => kind.is_symlink(),
            EntryKind::Dir => kind.is_dir(),
        }
    }
}

impl Manifest {
    /// An empty manifest for a store path; `root_created` is its inode if the install
    /// is creating it.
    pub fn new(root: &Path, root_created: Option<u64>) -> Self {
        Manifest {
            root: root.to_owned(),
            root_created,
            entries: Vec::new(),
        }
    }

    /// The install created `rel` (a file or symlink written twice is recorded once,
    /// as what it became last).
    pub(crate) fn push(&mut self, kind: EntryKind, rel: &Path, ino: u64, rewritten: bool) {
        if rewritten {
            self.entries
                .retain(|entry| entry.kind == EntryKind::Dir || entry.path != rel);
        }
        self.entries.push(Entry {
            kind,
            path: rel.to_owned(),
            ino,
        });
    }
}

/// What [`remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Files and symlinks removed.
    pub files: u64,
    /// Directories removed (the store path included).
    pub dirs: u64,
    /// Paths left in place on purpose, and why: no longer what the install created,
    /// under something that is no longer a directory, or a directory not empty.
    pub kept: Vec<(PathBuf, &'static str)>,
    /// Paths that could not be removed.
    pub failed: Vec<(PathBuf, String)>,
}

impl Removal {
    /// Everything the install created is gone or was left in place on purpose.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

impl fmt::Display for Removal {
    /// One line of counts, then the first kept and failed paths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "removed {} files or symlinks and {} directories",
            self.files, self.dirs
        )?;
        let lists: [(&str, Vec<String>); 2] = [
            (
                "could not remove",
                self.failed
                    .iter()
                    .map(|(path, why)| format!("{}: {why}", path.display()))
                    .collect(),
            ),
            (
                "kept",
                self.kept
                    .iter()
                    .map(|(path, why)| format!("{} ({why})", path.display()))
                    .collect(),
            ),
        ];
        for (title, lines) in lists {
            if lines.is_empty() {
                continue;
            }
            write!(f, "\n{title}:")?;
            for line in lines.iter().take(NAMED_IN_SUMMARY) {
                write!(f, "\n  {line}")?;
            }
            if lines.len() > NAMED_IN_SUMMARY {
                write!(f, "\n  and {} more", lines.len() - NAMED_IN_SUMMARY)?;
            }
        }
        Ok(())
    }
}

/// Removes what `manifest` says the install created (see the [module documentation](self)).
/// Blocking. What is already gone counts for nothing; a failure does not stop the others.
pub fn remove(manifest: &Manifest) -> Removal {
    let mut removal = Removal::default();
    let root = &manifest.root;
    let (dirs, others): (Vec<&Entry>, Vec<&Entry>) = manifest
        .entries
        .iter()
        .partition(|entry| entry.kind == EntryKind::Dir);
    for entry in others.into_iter().rev() {
        remove_entry(root, entry, &mut removal);
    }
    // Children were created after their parents: the reverse order, sorted (stably) by
    // depth, takes the deepest first whatever a hand-edited history says.
    let mut dirs: Vec<&Entry> = dirs.into_iter().rev().collect();
    dirs.sort_by_key(|entry| std::cmp::Reverse(entry.path.components().count()));
    for entry in dirs {
        remove_entry(root, entry, &mut removal);
    }
    if let Some(ino) = manifest.root_created {
        match fs::symlink_metadata(root) {
            Ok(meta) if meta.file_type().is_dir() && meta.ino() == ino => {
                match fs::remove_dir(root) {
                    Ok(()) => removal.dirs += 1,
                    Err(e) if not_empty(&e) => removal.kept.push((root.clone(), "not empty")),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => removal.failed.push((root.clone(), e.to_string())),
                }
            }
            Ok(_) => removal
                .kept
                .push((root.clone(), "no longer the directory the install created")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => removal.failed.push((root.clone(), e.to_string())),
        }
    }
    removal
}

fn remove_entry(root: &Path, entry: &Entry, removal: &mut Removal) {
    let path = root.join(&entry.path);
    // A history that names anything but a plain relative path was not written by us.
    if entry.path.as_os_str().is_empty()
        || !entry
            .path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        removal
            .failed
            .push((path, "refused: not a plain relative path".into()));
        return;
    }
    match real_parents(root, &entry.path) {
        Ok(Parents::Real) => {}
        Ok(Parents::Gone) => return,
        Ok(Parents::NotDirectories) => {
            removal
                .kept
                .push((path, "a directory above it is no longer a directory"));
            return;
        }
        Err(e) => {
            removal.failed.push((path, e.to_string()));
            return;
        }
    }
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            removal.failed.push((path, e.to_string()));
            return;
        }
    };
    if !entry.kind.matches(&meta.file_type()) || meta.ino() != entry.ino {
        removal
            .kept
            .push((path, "no longer what the install created"));
        return;
    }
    let removed = match entry.kind {
        EntryKind::Dir => fs::remove_dir(&path),
        // Unlinking a symlink removes the link, never its target.
        EntryKind::File | EntryKind::Symlink => fs::remove_file(&path),
    };
    match removed {
        Ok(()) if entry.kind == EntryKind::Dir => removal.dirs += 1,
        Ok(()) => removal.files += 1,
        Err(e) if entry.kind == EntryKind::Dir && not_empty(&e) => {
            removal.kept.push((path, "not empty"));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => removal.failed.push((path, e.to_string())),
    }
}

enum Parents {
    /// Every directory between the root and the entry is a real directory.
    Real,
    /// One of them is gone, and the entry with it.
    Gone,
    /// One of them is now a symlink or a file: going through it could reach anywhere.
    NotDirectories,
}

fn real_parents(root: &Path, rel: &Path) -> io::Result<Parents> {
    let mut path = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(Parents::Real);
    };
    for component in parent.components() {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(_) => return Ok(Parents::NotDirectories),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Parents::Gone),
            Err(e) => return Err(e),
        }
    }
    Ok(Parents::Real)
}

fn not_empty(e: &io::Error) -> bool {
    // rmdir answers ENOTEMPTY on Linux, EEXIST on some other systems.
    e.kind() == io::ErrorKind::DirectoryNotEmpty
        || e.raw_os_error() == Some(nix::errno::Errno::EEXIST as i32)
}

/// A path in JSON: a string when it is UTF-8 (always, in practice), else its bytes, so
/// a tar entry with a Latin-1 name is still recorded and removed.
mod os_path {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        match path.to_str() {
            Some(text) => Repr::Text(text.to_owned()),
            None => Repr::Bytes(path.as_os_str().as_bytes().to_vec()),
        }
        .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Text(text) => PathBuf::from(text),
            Repr::Bytes(bytes) => PathBuf::from(OsString::from_vec(bytes)),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
