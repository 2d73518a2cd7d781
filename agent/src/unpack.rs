//! Unpacking a verified package file into a target directory, without ever writing outside it.
//!
//! The package's digest and signature were checked before we get here, but that only
//! proves central sent it, not that the archive is well-behaved: a `store` package unpacks
//! into an admin-chosen path on every managed computer, so one careless or hostile archive
//! must not be able to reach `/etc`. Every entry is therefore checked before anything is
//! created (SPEC "Formats", `ERR_UNPACK`):
//!
//! - names are relative and made only of normal components: no `/x`, no `C:`, no empty
//!   name, and no `..` at all, even one that would stay inside (`a/../b`);
//! - nothing is created through a symlink: every existing ancestor of an entry, and the entry
//!   itself, is inspected with `symlink_metadata` first, which also protects against symlinks
//!   that were already in a `store` path;
//! - symlinks must stay inside the target when resolved lexically from their own directory,
//!   and are written in that normal form (`..`s first, then names), so no later entry can
//!   make a `x/..` in them climb somewhere else;
//! - hard links may only name a regular file this same run extracted;
//! - devices, FIFOs, sockets and unknown entry types are refused;
//! - regular files replace what was there by unlink + create-new, never by writing into an
//!   existing inode (which could be a hard link to a file outside);
//! - data is streamed and counted against [`UnpackLimits`], so a zip or gzip bomb stops at
//!   the cap; tar metadata (long names, pax headers, skipped data) has its own small budget
//!   because the `tar` crate reads it into memory;
//! - given a [`Space`], what the archive declares (a zip's sizes; a tar.gz or plain file
//!   at least its own size) must fit on the target's disk before anything is written, and
//!   every write is charged against the free space, so an archive stops with
//!   [`UnpackError::NoSpace`] before it fills the disk.
//!
//! What this cannot stop is a local user racing us by swapping a checked directory for a
//! symlink between the check and the write; the agent's temporary directories are its own,
//! and a `store` path writable by untrusted users is already lost.
//!
//! On error the work stops and what this unpack created is removed again (what it
//! replaced in a `store` path is gone: it was unlinked before the new file was made), so
//! a refused archive leaves nothing behind, whatever the retries.
//!
//! Every unpack records what it created ([`Unpacked::manifest`]): the files, hard links
//! and symlinks it wrote and the directories it made, in creation order, each with its
//! inode, so that a `store` package can be uninstalled ([`crate::manifest`]).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sitecast_common::info::Archive;

use crate::manifest::{EntryKind, Manifest};
use crate::space::{Guard, Space, SpaceError};

mod formats;
mod names;

use names::{entry_path, link_target};

/// Caps on what one package may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of file data written, summed over all entries.
    pub max_bytes: u64,
    /// Entries of any kind (files, directories, links) in the archive.
    pub max_entries: u64,
}

/// By default a package may unpack to this many times its own size...
pub const UNPACK_RATIO: u64 = 20;
/// ...and to at least this much, so small packages of very compressible data still work.
pub const UNPACK_FLOOR: u64 = 1 << 30;

impl UnpackLimits {
    /// The limits for a package file of `package_bytes`: `configured` (agent.toml's
    /// `max_unpack`) if set, else [`UNPACK_RATIO`] times the package, at least
    /// [`UNPACK_FLOOR`]. A 3 MB archive that inflates to 3 GiB is a bomb, not a package.
    pub fn for_package(package_bytes: u64, configured: Option<u64>) -> Self {
        UnpackLimits {
            max_bytes: configured
                .unwrap_or_else(|| package_bytes.saturating_mul(UNPACK_RATIO).max(UNPACK_FLOOR)),
            ..Self::default()
        }
    }
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: UNPACK_FLOOR,
            max_entries: 1_000_000,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files and hard links created.
    pub files: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// What it created under the target, and whether it created the target itself.
    pub manifest: Manifest,
}

/// Why a package could not be unpacked. Every variant means `ERR_UNPACK` but
/// [`UnpackError::NoSpace`].
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry '{entry}' has an absolute path")]
    AbsolutePath { entry: String },
    #[error("entry '{entry}' climbs out of the target with '..'")]
    ParentDir { entry: String },
    #[error("entry '{entry}' has an unusable name: {reason}")]
    BadName { entry: String, reason: &'static str },
    #[error("symlink '{entry}' -> '{target}' points outside the target")]
    SymlinkEscape { entry: String, target: String },
    #[error("hard link '{entry}' -> '{target}' does not name a regular file extracted earlier from this archive")]
    HardlinkEscape { entry: String, target: String },
    #[error("entry '{entry}' is a {kind}, which packages may not contain")]
    SpecialFile { entry: String, kind: String },
    #[error("entry '{entry}' would be written through the symlink {}", symlink.display())]
    ThroughSymlink { entry: String, symlink: PathBuf },
    #[error("archive unpacks to more than {limit} bytes, the most this package may (agent.toml's max_unpack; by default {UNPACK_RATIO} times the package's size, at least 1GiB)")]
    TooLarge { limit: u64 },
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("archive is corrupt: {reason}")]
    Corrupt { reason: String },
    /// `ERR_OUT_OF_SPACE`, not `ERR_UNPACK`: the archive is fine, the disk is full.
    #[error("{0}")]
    NoSpace(SpaceError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Unpacks `file` into `target` (created if missing; it may already hold files).
/// The answer says what was created ([`Unpacked::manifest`]).
///
/// `Archive::None` copies the file to `target/<name_for_plain_file>`, which must be a
/// single normal path component; it is made executable, since a plain file is as often
/// as not the program a `launch` action runs.
///
/// With `space`, the target's disk keeps its `keep_free` bytes free: the archive's
/// declared size is checked before anything is created, and every write after.
pub fn unpack(
    archive: Archive,
    file: &Path,
    target: &Path,
    name_for_plain_file: &str,
    limits: &UnpackLimits,
    space: Option<Space>,
) -> Result<Unpacked, UnpackError> {
    let guard = match space {
        Some(space) => {
            let declared = declared_size(archive, file)?;
            space
                .check(target, "the unpack", declared)
                .map_err(UnpackError::NoSpace)?;
            Some(
                space
                    .guard(target, "the unpack")
                    .map_err(UnpackError::NoSpace)?,
            )
        }
        None => None,
    };
    let root_created = create_target(target)?;
    let mut unpacker = Unpacker::new(target, limits, Manifest::new(target, root_created));
    unpacker.guard = guard;
    let unpacked = match archive {
        Archive::None => unpacker.plain(file, name_for_plain_file),
        Archive::Zip => unpacker.zip(file),
        Archive::TarGz => unpacker.tar_gz(file),
    };
    if let Err(e) = unpacked {
        let removal = crate::manifest::remove(&unpacker.manifest);
        if !removal.ok() {
            tracing::warn!(target = %target.display(), %removal, "cannot remove all a failed unpack created");
        }
        return Err(e);
    }
    Ok(Unpacked {
        files: unpacker.files,
        bytes: unpacker.bytes,
        manifest: unpacker.manifest,
    })
}

/// What the archive says it unpacks to, for the space check before the unpack: a zip's
/// entry sizes from its central directory (capped: the unpack's own cap stops a zip
/// whose entries lie), a tar.gz's or a plain file's own size, a lower bound (a gzip
/// stream declares nothing reliable before it is read).
fn declared_size(archive: Archive, file: &Path) -> Result<u64, UnpackError> {
    let own = fs::metadata(file).map_err(|e| io_error(file, e))?.len();
    match archive {
        Archive::None | Archive::TarGz => Ok(own),
        Archive::Zip => formats::zip_declared_size(file).map(|declared| declared.max(own)),
    }
}

/// Creates `target` (and what is missing above it) if it does not exist; its inode if
/// this call created it, so an uninstall may remove it (the directories above are not
/// counted: they are the admin's layout more than the package's).
pub fn create_target(target: &Path) -> Result<Option<u64>, UnpackError> {
    let existed = match fs::symlink_metadata(target) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_error(target, e)),
    };
    fs::create_dir_all(target).map_err(|e| io_error(target, e))?;
    if existed {
        return Ok(None);
    }
    let meta = fs::symlink_metadata(target).map_err(|e| io_error(target, e))?;
    Ok(meta.file_type().is_dir().then(|| meta.ino()))
}

const COPY_BUFFER: usize = 64 * 1024;

struct Unpacker<'a> {
    target: &'a Path,
    limits: &'a UnpackLimits,
    entries: u64,
    files: u64,
    bytes: u64,
    /// Relative paths of the regular files (and hard links) this run created: the only
    /// things a hard link may point at.
    extracted: HashSet<PathBuf>,
    manifest: Manifest,
    /// Files and symlinks already in the manifest: one written again replaces its entry.
    recorded: HashSet<PathBuf>,
    buf: Vec<u8>,
    /// Charged with every write, when the unpack watches free space.
    guard: Option<Guard>,
}

impl<'a> Unpacker<'a> {
    fn new(target: &'a Path, limits: &'a UnpackLimits, manifest: Manifest) -> Self {
        Unpacker {
            target,
            limits,
            entries: 0,
            files: 0,
            bytes: 0,
            extracted: HashSet::new(),
            manifest,
            recorded: HashSet::new(),
            buf: vec![0; COPY_BUFFER],
            guard: None,
        }
    }

    /// Notes a file or symlink this run wrote at `rel`.
    fn record(&mut self, kind: EntryKind, rel: &Path, ino: u64) {
        let rewritten = !self.recorded.insert(rel.to_path_buf());
        self.manifest.push(kind, rel, ino, rewritten);
    }

    fn count_entry(&mut self) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn plain(&mut self, file: &Path, name: &str) -> Result<(), UnpackError> {
        let rel = entry_path(name, Path::new(name))?;
        if rel.components().count() != 1 || name.contains(['/', '\\']) {
            return Err(UnpackError::BadName {
                entry: name.to_owned(),
                reason: "a plain file needs a single file name",
            });
        }
        self.count_entry()?;
        let mut source = File::open(file).map_err(|e| io_error(file, e))?;
        self.file(name, &rel, 0o755, &mut source, &|e| io_error(file, e))
    }

    fn dir(&mut self, shown: &str, rel: &Path) -> Result<(), UnpackError> {
        self.ensure_dir(shown, rel)
    }

    fn file(
        &mut self,
        shown: &str,
        rel: &Path,
        mode: u32,
        reader: &mut dyn Read,
        read_error: &dyn Fn(io::Error) -> UnpackError,
    ) -> Result<(), UnpackError> {
        let path = self.place_file(shown, rel)?;
        let mut out = create_new(&path)?;
        // Recorded at once: if the copy fails, the file is still ours.
        let ino = out.metadata().map_err(|e| io_error(&path, e))?.ino();
        self.record(EntryKind::File, rel, ino);
        self.copy(reader, &mut out, &path, read_error)?;
        set_file_mode(&out, &path, mode)?;
        self.extracted.insert(rel.to_path_buf());
        self.files += 1;
        Ok(())
    }

    fn copy(
        &mut self,
        reader: &mut dyn Read,
        out: &mut File,
        path: &Path,
        read_error: &dyn Fn(io::Error) -> UnpackError,
    ) -> Result<(), UnpackError> {
        use std::io::Write;

        loop {
            let n = match reader.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            let total = self.bytes.saturating_add(n as u64);
            if total > self.limits.max_bytes {
                return Err(UnpackError::TooLarge {
                    limit: self.limits.max_bytes,
                });
            }
            if let Some(guard) = &mut self.guard {
                guard.charge(n as u64).map_err(UnpackError::NoSpace)?;
            }
            out.write_all(&self.buf[..n])
                .map_err(|e| io_error(path, e))?;
            self.bytes = total;
        }
    }

    fn symlink(
        &mut self,
        shown: &str,
        rel: &Path,
        link: &Path,
        shown_link: &str,
    ) -> Result<(), UnpackError> {
        let normal = link_target(shown, rel, link, shown_link)?;
        let path = self.place_link(shown, rel)?;
        create_symlink(shown, &normal, &path)?;
        self.extracted.remove(rel);
        let ino = fs::symlink_metadata(&path)
            .map_err(|e| io_error(&path, e))?
            .ino();
        self.record(EntryKind::Symlink, rel, ino);
        Ok(())
    }

    fn hardlink(
        &mut self,
        shown: &str,
        rel: &Path,
        link: &Path,
        shown_link: &str,
    ) -> Result<(), UnpackError> {
        let escape = || UnpackError::HardlinkEscape {
            entry: shown.to_owned(),
            target: shown_link.to_owned(),
        };
        let source_rel = entry_path(shown_link, link).map_err(|_| escape())?;
        if source_rel == rel || !self.extracted.contains(&source_rel) {
            return Err(escape());
        }
        // It was a regular file when written; make sure nothing turned it, or a directory
        // above it, into a symlink since.
        if !self.is_real_file(&source_rel)? {
            return Err(escape());
        }
        let path = self.place_file(shown, rel)?;
        fs::hard_link(self.target.join(&source_rel), &path).map_err(|e| io_error(&path, e))?;
        let ino = fs::symlink_metadata(&path)
            .map_err(|e| io_error(&path, e))?
            .ino();
        self.record(EntryKind::File, rel, ino);
        self.extracted.insert(rel.to_path_buf());
        self.files += 1;
        Ok(())
    }

    /// Creates `rel` and the directories above it as needed, refusing to pass through a
    /// symlink or to treat a file as a directory.
    fn ensure_dir(&mut self, shown: &str, rel: &Path) -> Result<(), UnpackError> {
        let mut path = self.target.to_path_buf();
        let mut made = PathBuf::new();
        for component in rel.components() {
            path.push(component);
            made.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) => check_dir(shown, &path, &meta.file_type())?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => match make_dir(&path) {
                    Ok(()) => {
                        let ino = fs::symlink_metadata(&path)
                            .map_err(|e| io_error(&path, e))?
                            .ino();
                        self.manifest.push(EntryKind::Dir, &made, ino, false);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let meta = fs::symlink_metadata(&path).map_err(|e| io_error(&path, e))?;
                        check_dir(shown, &path, &meta.file_type())?;
                    }
                    Err(e) => return Err(io_error(&path, e)),
                },
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Ok(())
    }

    /// Readies the place of a regular file or hard link: parents exist, and whatever was
    /// there is gone, unless it is a symlink (which may be an admin's link out of a
    /// `store` path) or a directory.
    fn place_file(&mut self, shown: &str, rel: &Path) -> Result<PathBuf, UnpackError> {
        let (path, existing) = self.place(shown, rel)?;
        match existing {
            None => {}
            Some(kind) if kind.is_symlink() => {
                return Err(UnpackError::ThroughSymlink {
                    entry: shown.to_owned(),
                    symlink: path,
                })
            }
            Some(kind) if kind.is_dir() => return Err(conflict(&path, "is a directory")),
            Some(_) => fs::remove_file(&path).map_err(|e| io_error(&path, e))?,
        }
        Ok(path)
    }

    /// Readies the place of a symlink: replacing an old symlink is fine, as removing a
    /// link never touches what it points at.
    fn place_link(&mut self, shown: &str, rel: &Path) -> Result<PathBuf, UnpackError> {
        let (path, existing) = self.place(shown, rel)?;
        match existing {
            None => {}
            Some(kind) if kind.is_dir() => return Err(conflict(&path, "is a directory")),
            Some(_) => fs::remove_file(&path).map_err(|e| io_error(&path, e))?,
        }
        Ok(path)
    }

    fn place(
        &mut self,
        shown: &str,
        rel: &Path,
    ) -> Result<(PathBuf, Option<fs::FileType>), UnpackError> {
        let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
        if rel.as_os_str().is_empty() {
            return Err(UnpackError::BadName {
                entry: shown.to_owned(),
                reason: "names the target directory itself",
            });
        }
        if let Some(parent) = parent {
            self.ensure_dir(shown, parent)?;
        }
        let path = self.target.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok((path, Some(meta.file_type()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((path, None)),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn is_real_file(&self, rel: &Path) -> Result<bool, UnpackError> {
        let mut path = self.target.to_path_buf();
        let mut kind = None;
        for component in rel.components() {
            path.push(component);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io_error(&path, e)),
            };
            if meta.file_type().is_symlink() {
                return Ok(false);
            }
            kind = Some(meta.file_type());
        }
        Ok(kind.is_some_and(|k| k.is_file()))
    }
}

fn check_dir(shown: &str, path: &Path, kind: &fs::FileType) -> Result<(), UnpackError> {
    if kind.is_symlink() {
        return Err(UnpackError::ThroughSymlink {
            entry: shown.to_owned(),
            symlink: path.to_path_buf(),
        });
    }
    if !kind.is_dir() {
        return Err(conflict(path, "is not a directory"));
    }
    Ok(())
}

fn io_error(path: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn conflict(path: &Path, what: &str) -> UnpackError {
    io_error(
        path,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("already exists and {what}"),
        ),
    )
}

fn create_new(path: &Path) -> Result<File, UnpackError> {
    let mut options = OpenOptions::new();
    // create_new is O_EXCL: it fails rather than follow a symlink someone slipped in.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| io_error(path, e))
}

/// Keeps only "executable or not": packages never get setuid, setgid, sticky or
/// group/world-writable files.
fn masked_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(unix)]
fn set_file_mode(file: &File, path: &Path, mode: u32) -> Result<(), UnpackError> {
    use std::os::unix::fs::PermissionsExt;
    // On the open handle (fchmod), so the mode lands on the file we wrote, whatever
    // the path has become; and whatever the agent's umask is.
    file.set_permissions(fs::Permissions::from_mode(masked_mode(mode)))
        .map_err(|e| io_error(path, e))
}

#[cfg(not(unix))]
fn set_file_mode(_file: &File, _path: &Path, _mode: u32) -> Result<(), UnpackError> {
    Ok(())
}

#[cfg(unix)]
fn make_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new().mode(0o755).create(path)?;
    // Independent of the agent's umask: a `store` path is read by other users' programs.
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_dir(path: &Path) -> io::Result<()> {
    fs::create_dir(path)
}

#[cfg(unix)]
fn create_symlink(_shown: &str, target: &Path, path: &Path) -> Result<(), UnpackError> {
    std::os::unix::fs::symlink(target, path).map_err(|e| io_error(path, e))
}

#[cfg(not(unix))]
fn create_symlink(shown: &str, _target: &Path, _path: &Path) -> Result<(), UnpackError> {
    Err(UnpackError::SpecialFile {
        entry: shown.to_owned(),
        kind: "symbolic link (not supported on this system)".to_owned(),
    })
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests;
