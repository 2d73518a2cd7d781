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
//!   because the `tar` crate reads it into memory.
//!
//! What this cannot stop is a local user racing us by swapping a checked directory for a
//! symlink between the check and the write; the agent's temporary directories are its own,
//! and a `store` path writable by untrusted users is already lost.
//!
//! On error the work stops; what was written inside the target stays (callers unpack
//! `launch` and `execute` packages into a fresh temporary directory they remove).
//!
//! Every unpack records what it created ([`Unpacked::manifest`]): the files, hard links
//! and symlinks it wrote and the directories it made, in creation order, each with its
//! inode, so that a `store` package can be uninstalled ([`crate::manifest`]).

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::read::GzDecoder;
use sitecast_common::info::Archive;
use zip::result::ZipError;

use crate::manifest::{EntryKind, Manifest};

/// Caps on what one package may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of file data written, summed over all entries.
    pub max_bytes: u64,
    /// Entries of any kind (files, directories, links) in the archive.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 64 << 30,
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

/// Why a package could not be unpacked. Every variant means `ERR_UNPACK`.
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
    #[error("archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("archive is corrupt: {reason}")]
    Corrupt { reason: String },
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
pub fn unpack(
    archive: Archive,
    file: &Path,
    target: &Path,
    name_for_plain_file: &str,
    limits: &UnpackLimits,
) -> Result<Unpacked, UnpackError> {
    let root_created = create_target(target)?;
    let mut unpacker = Unpacker::new(target, limits, Manifest::new(target, root_created));
    match archive {
        Archive::None => unpacker.plain(file, name_for_plain_file)?,
        Archive::Zip => unpacker.zip(file)?,
        Archive::TarGz => unpacker.tar_gz(file)?,
    }
    Ok(Unpacked {
        files: unpacker.files,
        bytes: unpacker.bytes,
        manifest: unpacker.manifest,
    })
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

/// Bytes of tar metadata (headers, padding, GNU long names, pax records, data of entries
/// we skip) allowed between two entries. The `tar` crate reads long names and pax
/// records whole into memory, so a gzip bomb there would exhaust memory before any
/// byte cap applied; real archives need a few KiB.
const TAR_METADATA_BUDGET: u64 = 4 << 20;

/// Longest symlink target read from a zip entry (Linux's PATH_MAX).
const MAX_LINK_TARGET: u64 = 4096;

// Unix file type bits, as zip's external attributes carry them.
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

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

    fn zip(&mut self, file: &Path) -> Result<(), UnpackError> {
        let failed = Rc::new(Cell::new(false));
        let source = Source {
            inner: File::open(file).map_err(|e| io_error(file, e))?,
            failed: Rc::clone(&failed),
        };
        let read_error = |e: io::Error| classify(file, &failed, e);
        let zip_error = |e: ZipError| match e {
            ZipError::Io(e) => read_error(e),
            other => UnpackError::Corrupt {
                reason: other.to_string(),
            },
        };
        let mut zip = zip::ZipArchive::new(source).map_err(zip_error)?;
        // The central directory says how many entries there are: refuse before writing.
        if u64::try_from(zip.len()).unwrap_or(u64::MAX) > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        for index in 0..zip.len() {
            self.count_entry()?;
            let mut entry = zip.by_index(index).map_err(zip_error)?;
            let shown = entry.name().to_owned();
            // Zip names use '/', but some Windows tools write '\': read both as separators,
            // so `a\..\..\x` cannot mean one thing here and another on Windows.
            let slashed = shown.replace('\\', "/");
            let rel = entry_path(&shown, Path::new(&slashed))?;
            let mode = entry.unix_mode().unwrap_or(0);
            match mode & S_IFMT {
                S_IFLNK => {
                    let mut raw = Vec::new();
                    (&mut entry)
                        .take(MAX_LINK_TARGET + 1)
                        .read_to_end(&mut raw)
                        .map_err(read_error)?;
                    if raw.len() as u64 > MAX_LINK_TARGET {
                        return Err(UnpackError::Corrupt {
                            reason: format!("symlink '{shown}' has an overlong target"),
                        });
                    }
                    let link = String::from_utf8(raw).map_err(|_| UnpackError::Corrupt {
                        reason: format!("symlink '{shown}' has a target that is not UTF-8"),
                    })?;
                    let slashed_link = link.replace('\\', "/");
                    self.symlink(&shown, &rel, Path::new(&slashed_link), &link)?;
                }
                S_IFDIR => self.dir(&shown, &rel)?,
                0 | S_IFREG if slashed.ends_with('/') => self.dir(&shown, &rel)?,
                0 | S_IFREG => {
                    let mode = if mode == 0 { 0o644 } else { mode };
                    self.file(&shown, &rel, mode, &mut entry, &read_error)?;
                }
                kind => return Err(special(&shown, kind)),
            }
        }
        Ok(())
    }

    fn tar_gz(&mut self, file: &Path) -> Result<(), UnpackError> {
        let failed = Rc::new(Cell::new(false));
        let source = Source {
            inner: File::open(file).map_err(|e| io_error(file, e))?,
            failed: Rc::clone(&failed),
        };
        let budget = Rc::new(Budget::default());
        let stream = Budgeted {
            inner: GzDecoder::new(source),
            budget: Rc::clone(&budget),
        };
        let read_error = |e: io::Error| classify(file, &failed, e);
        let mut archive = tar::Archive::new(stream);
        for entry in archive.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            budget.spent.set(0);
            self.count_entry()?;
            self.tar_entry(&mut entry, &budget, &read_error)?;
        }
        // Read to the end so the gzip trailer's CRC and length are checked too.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(read_error)?;
        Ok(())
    }

    fn tar_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        budget: &Budget,
        read_error: &dyn Fn(io::Error) -> UnpackError,
    ) -> Result<(), UnpackError> {
        use tar::EntryType;

        let kind = entry.header().entry_type();
        // Archive-wide pax records (git archive puts the commit id there) describe no file.
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = entry.path().map_err(|_| UnpackError::BadName {
            entry: shown.clone(),
            reason: "not representable as a path on this system",
        })?;
        let rel = entry_path(&shown, &path)?;
        match kind {
            // Before ustar, a trailing slash on a regular entry marked a directory.
            EntryType::Regular if shown.ends_with('/') => self.dir(&shown, &rel),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mode = entry.header().mode().map_err(|e| UnpackError::Corrupt {
                    reason: format!("entry '{shown}': {e}"),
                })?;
                budget.in_data.set(true);
                let written = self.file(&shown, &rel, mode, entry, read_error);
                budget.in_data.set(false);
                written
            }
            EntryType::Directory => self.dir(&shown, &rel),
            EntryType::Symlink | EntryType::Link => {
                let shown_link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| UnpackError::Corrupt {
                        reason: format!("link '{shown}' has no target"),
                    })?;
                let link = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.into_owned())
                    .ok_or_else(|| UnpackError::BadName {
                        entry: shown_link.clone(),
                        reason: "not representable as a path on this system",
                    })?;
                if kind == EntryType::Symlink {
                    self.symlink(&shown, &rel, &link, &shown_link)
                } else {
                    self.hardlink(&shown, &rel, &link, &shown_link)
                }
            }
            EntryType::Char => Err(special(&shown, S_IFCHR)),
            EntryType::Block => Err(special(&shown, S_IFBLK)),
            EntryType::Fifo => Err(special(&shown, S_IFIFO)),
            other => Err(UnpackError::SpecialFile {
                entry: shown,
                kind: format!("tar entry of type {other:?}"),
            }),
        }
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

/// Checks an entry name and returns it as a path of normal components only (empty for
/// the target itself, as in `./`).
fn entry_path(shown: &str, path: &Path) -> Result<PathBuf, UnpackError> {
    let bad = |reason| UnpackError::BadName {
        entry: shown.to_owned(),
        reason,
    };
    if shown.is_empty() {
        return Err(bad("empty"));
    }
    if shown.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(UnpackError::AbsolutePath {
                    entry: shown.to_owned(),
                })
            }
            Component::ParentDir => {
                return Err(UnpackError::ParentDir {
                    entry: shown.to_owned(),
                })
            }
            Component::CurDir => {}
            Component::Normal(name) => {
                // `C:x` is a harmless name here but a drive on Windows: refuse it everywhere
                // so a package means the same thing on every computer.
                if rel.as_os_str().is_empty() && is_drive(name.as_encoded_bytes()) {
                    return Err(UnpackError::AbsolutePath {
                        entry: shown.to_owned(),
                    });
                }
                check_windows_name(name.as_encoded_bytes()).map_err(bad)?;
                rel.push(name);
            }
        }
    }
    Ok(rel)
}

fn is_drive(name: &[u8]) -> bool {
    matches!(name, [letter, b':', ..] if letter.is_ascii_alphabetic())
}

/// Windows silently drops trailing dots and spaces and reads `:` as a stream separator,
/// so there such names would not be what was checked.
#[cfg(windows)]
fn check_windows_name(name: &[u8]) -> Result<(), &'static str> {
    if name.contains(&b':') {
        return Err("contains ':'");
    }
    if matches!(name.last(), Some(b'.' | b' ')) {
        return Err("ends with a dot or a space");
    }
    Ok(())
}

#[cfg(not(windows))]
fn check_windows_name(_name: &[u8]) -> Result<(), &'static str> {
    Ok(())
}

/// Resolves a symlink's target lexically from the link's directory and returns it in
/// normal form: the `..`s needed to climb from that directory, then names. Directories
/// above an entry were checked to be real, so climbing them lands where the lexical
/// resolution says, whatever later entries do.
fn link_target(
    shown: &str,
    rel: &Path,
    link: &Path,
    shown_link: &str,
) -> Result<PathBuf, UnpackError> {
    let escape = || UnpackError::SymlinkEscape {
        entry: shown.to_owned(),
        target: shown_link.to_owned(),
    };
    if shown_link.is_empty() || shown_link.contains('\0') {
        return Err(UnpackError::Corrupt {
            reason: format!("symlink '{shown}' has an empty or NUL-bearing target"),
        });
    }
    let dir: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    let mut at = dir.clone();
    for (index, component) in link.components().enumerate() {
        match component {
            Component::Prefix(_) | Component::RootDir => return Err(escape()),
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop().ok_or_else(escape)?;
            }
            Component::Normal(name) => {
                if index == 0 && is_drive(name.as_encoded_bytes()) {
                    return Err(escape());
                }
                check_windows_name(name.as_encoded_bytes()).map_err(|_| escape())?;
                at.push(component);
            }
        }
    }
    let common = dir.iter().zip(&at).take_while(|(a, b)| a == b).count();
    let mut normal = PathBuf::new();
    for _ in common..dir.len() {
        normal.push("..");
    }
    for component in &at[common..] {
        normal.push(component);
    }
    if normal.as_os_str().is_empty() {
        normal.push(".");
    }
    Ok(normal)
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

fn special(shown: &str, kind: u32) -> UnpackError {
    let kind = match kind {
        S_IFCHR => "character device".to_owned(),
        S_IFBLK => "block device".to_owned(),
        S_IFIFO => "FIFO".to_owned(),
        S_IFSOCK => "socket".to_owned(),
        other => format!("file of type {other:o}"),
    };
    UnpackError::SpecialFile {
        entry: shown.to_owned(),
        kind,
    }
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

/// An error out of the decompressing chain is the package file's fault (corrupt)
/// unless reading the file itself failed.
fn classify(file: &Path, failed: &Cell<bool>, e: io::Error) -> UnpackError {
    if failed.get() {
        io_error(file, e)
    } else {
        UnpackError::Corrupt {
            reason: e.to_string(),
        }
    }
}

/// The package file, remembering whether reading it ever failed.
struct Source<R> {
    inner: R,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

impl<R: Seek> Seek for Source<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos).inspect_err(|_| self.failed.set(true))
    }
}

#[derive(Default)]
struct Budget {
    /// Set while file data is being copied out; everything else read is metadata.
    in_data: Cell<bool>,
    /// Metadata bytes read since the last entry came out.
    spent: Cell<u64>,
}

/// The decompressed tar stream, charging metadata reads against [`TAR_METADATA_BUDGET`].
struct Budgeted<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.budget.in_data.get() {
            let spent = self.budget.spent.get().saturating_add(n as u64);
            self.budget.spent.set(spent);
            if spent > TAR_METADATA_BUDGET {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("more than {TAR_METADATA_BUDGET} bytes of tar metadata for one entry"),
                ));
            }
        }
        Ok(n)
    }
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
