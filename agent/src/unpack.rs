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

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::read::GzDecoder;
use sitecast_common::info::Archive;
use zip::result::ZipError;

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files and hard links created.
    pub files: u64,
    /// Bytes of file data written.
    pub bytes: u64,
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
    fs::create_dir_all(target).map_err(|e| io_error(target, e))?;
    let mut unpacker = Unpacker::new(target, limits);
    match archive {
        Archive::None => unpacker.plain(file, name_for_plain_file)?,
        Archive::Zip => unpacker.zip(file)?,
        Archive::TarGz => unpacker.tar_gz(file)?,
    }
    Ok(unpacker.done)
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
    done: Unpacked,
    /// Relative paths of the regular files (and hard links) this run created: the only
    /// things a hard link may point at.
    extracted: HashSet<PathBuf>,
    buf: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    fn new(target: &'a Path, limits: &'a UnpackLimits) -> Self {
        Unpacker {
            target,
            limits,
            entries: 0,
            done: Unpacked::default(),
            extracted: HashSet::new(),
            buf: vec![0; COPY_BUFFER],
        }
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
        self.copy(reader, &mut out, &path, read_error)?;
        set_file_mode(&out, &path, mode)?;
        self.extracted.insert(rel.to_path_buf());
        self.done.files += 1;
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
            let total = self.done.bytes.saturating_add(n as u64);
            if total > self.limits.max_bytes {
                return Err(UnpackError::TooLarge {
                    limit: self.limits.max_bytes,
                });
            }
            out.write_all(&self.buf[..n])
                .map_err(|e| io_error(path, e))?;
            self.done.bytes = total;
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
        self.extracted.insert(rel.to_path_buf());
        self.done.files += 1;
        Ok(())
    }

    /// Creates `rel` and the directories above it as needed, refusing to pass through a
    /// symlink or to treat a file as a directory.
    fn ensure_dir(&self, shown: &str, rel: &Path) -> Result<(), UnpackError> {
        let mut path = self.target.to_path_buf();
        for component in rel.components() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) => check_dir(shown, &path, &meta.file_type())?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => match make_dir(&path) {
                    Ok(()) => {}
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
    fn place_file(&self, shown: &str, rel: &Path) -> Result<PathBuf, UnpackError> {
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
    fn place_link(&self, shown: &str, rel: &Path) -> Result<PathBuf, UnpackError> {
        let (path, existing) = self.place(shown, rel)?;
        match existing {
            None => {}
            Some(kind) if kind.is_dir() => return Err(conflict(&path, "is a directory")),
            Some(_) => fs::remove_file(&path).map_err(|e| io_error(&path, e))?,
        }
        Ok(path)
    }

    fn place(
        &self,
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
mod tests {
    use std::io::{Cursor, Write};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use flate2::write::GzEncoder;
    use flate2::Compression;
    use tar::EntryType;
    use zip::write::SimpleFileOptions;

    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Format {
        Zip,
        TarGz,
    }

    const FORMATS: [Format; 2] = [Format::Zip, Format::TarGz];

    /// Whether an error is the one a case expects.
    type Expect = fn(&UnpackError) -> bool;

    /// One archive entry, written as is: names are not cleaned up, which is the point.
    enum Spec<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        /// Tar only.
        Hardlink(&'a str, &'a str),
        /// A device, FIFO or socket, by its `S_IF*` type.
        Special(&'a str, u32),
        /// Tar only: any header type with any data.
        Tar(&'a str, EntryType, &'a [u8]),
    }

    impl Format {
        fn archive(self) -> Archive {
            match self {
                Format::Zip => Archive::Zip,
                Format::TarGz => Archive::TarGz,
            }
        }

        fn build(self, specs: &[Spec]) -> Vec<u8> {
            match self {
                Format::Zip => zip_bytes(specs),
                Format::TarGz => tar_gz_bytes(specs),
            }
        }
    }

    fn raw_field(field: &mut [u8], value: &str) {
        assert!(
            value.len() < field.len(),
            "{value} does not fit a tar header"
        );
        field.fill(0);
        field[..value.len()].copy_from_slice(value.as_bytes());
    }

    /// Writes headers byte by byte, so names `tar::Header::set_path` would refuse
    /// (`../x`, `/x`) go in unchanged.
    fn tar_gz_bytes(specs: &[Spec]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for spec in specs {
            let (name, kind, data, mode, link): (&str, EntryType, &[u8], u32, Option<&str>) =
                match *spec {
                    Spec::File(name, data, mode) => (name, EntryType::Regular, data, mode, None),
                    Spec::Dir(name) => (name, EntryType::Directory, &[], 0o755, None),
                    Spec::Symlink(name, to) => (name, EntryType::Symlink, &[], 0o777, Some(to)),
                    Spec::Hardlink(name, to) => (name, EntryType::Link, &[], 0o644, Some(to)),
                    Spec::Special(name, kind) => {
                        let kind = match kind {
                            S_IFCHR => EntryType::Char,
                            S_IFBLK => EntryType::Block,
                            S_IFIFO => EntryType::Fifo,
                            other => panic!("tar has no file type {other:o}"),
                        };
                        (name, kind, &[], 0o644, None)
                    }
                    Spec::Tar(name, kind, data) => (name, kind, data, 0o644, None),
                };
            let mut header = tar::Header::new_gnu();
            raw_field(&mut header.as_old_mut().name, name);
            if let Some(link) = link {
                raw_field(&mut header.as_old_mut().linkname, link);
            }
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn zip_bytes(specs: &[Spec]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default();
        let mut patches = Vec::new();
        for spec in specs {
            match *spec {
                Spec::File(name, data, mode) => {
                    writer
                        .start_file(name, options.unix_permissions(mode))
                        .unwrap();
                    writer.write_all(data).unwrap();
                }
                Spec::Dir(name) => writer.add_directory(name, options).unwrap(),
                Spec::Symlink(name, to) => writer.add_symlink(name, to, options).unwrap(),
                Spec::Special(name, kind) => {
                    writer.start_file(name, options).unwrap();
                    patches.push((name, kind | 0o644));
                }
                Spec::Hardlink(..) | Spec::Tar(..) => panic!("zip has no such entries"),
            }
        }
        let mut bytes = writer.finish().unwrap().into_inner();
        for (name, mode) in patches {
            set_zip_mode(&mut bytes, name, mode);
        }
        bytes
    }

    /// The zip writer only takes permission bits, so file types it cannot express are
    /// patched into the central directory's external attributes.
    fn set_zip_mode(bytes: &mut [u8], name: &str, mode: u32) {
        let mut from = 0;
        while let Some(pos) = bytes[from..].windows(4).position(|w| w == b"PK\x01\x02") {
            let at = from + pos;
            let name_len = usize::from(u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]));
            if &bytes[at + 46..at + 46 + name_len] == name.as_bytes() {
                bytes[at + 5] = 3; // made by Unix
                bytes[at + 38..at + 42].copy_from_slice(&(mode << 16).to_le_bytes());
                return;
            }
            from = at + 4;
        }
        panic!("no central directory entry for {name}");
    }

    /// `root/target` (where packages go) next to `root/outside` (which must never change).
    struct Scene {
        _root: tempfile::TempDir,
        _packages: tempfile::TempDir,
        root: PathBuf,
        target: PathBuf,
        outside: PathBuf,
        package: PathBuf,
    }

    impl Scene {
        fn new() -> Self {
            let root_dir = tempfile::tempdir().unwrap();
            let packages = tempfile::tempdir().unwrap();
            let root = root_dir.path().to_path_buf();
            let outside = root.join("outside");
            fs::create_dir(&outside).unwrap();
            fs::write(outside.join("sentinel"), "original").unwrap();
            Scene {
                target: root.join("target"),
                package: packages.path().join("package"),
                root,
                outside,
                _root: root_dir,
                _packages: packages,
            }
        }

        fn unpack(&self, format: Format, specs: &[Spec]) -> Result<Unpacked, UnpackError> {
            self.unpack_with(format, specs, &UnpackLimits::default())
        }

        fn unpack_with(
            &self,
            format: Format,
            specs: &[Spec],
            limits: &UnpackLimits,
        ) -> Result<Unpacked, UnpackError> {
            self.unpack_bytes(format.archive(), &format.build(specs), limits)
        }

        fn unpack_bytes(
            &self,
            archive: Archive,
            bytes: &[u8],
            limits: &UnpackLimits,
        ) -> Result<Unpacked, UnpackError> {
            fs::write(&self.package, bytes).unwrap();
            unpack(archive, &self.package, &self.target, "setup.bin", limits)
        }

        fn assert_nothing_outside(&self) {
            assert_eq!(names(&self.root), ["outside", "target"]);
            assert_eq!(names(&self.outside), ["sentinel"]);
            assert_eq!(
                fs::read_to_string(self.outside.join("sentinel")).unwrap(),
                "original"
            );
        }

        /// `{outside}` in `text` replaced by the absolute path of the outside directory.
        fn with_outside(&self, text: &str) -> String {
            text.replace("{outside}", self.outside.to_str().unwrap())
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn exists(path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    /// Incompressible, reproducible bytes.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn unpack_round_trips_tree_contents_and_exec_bits() {
        for format in FORMATS {
            let scene = Scene::new();
            let script = b"#!/bin/sh\necho hi\n";
            let done = scene
                .unpack(
                    format,
                    &[
                        Spec::Dir("top/"),
                        Spec::Dir("top/nested/"),
                        Spec::File("top/nested/data.txt", b"hello", 0o666),
                        Spec::File("./top/run.sh", script, 0o4777),
                        Spec::File("loose/deep/file", b"x", 0o640),
                    ],
                )
                .unwrap();
            assert_eq!(
                done,
                Unpacked {
                    files: 3,
                    bytes: 5 + script.len() as u64 + 1
                },
                "{format:?}"
            );
            let t = &scene.target;
            assert_eq!(fs::read(t.join("top/nested/data.txt")).unwrap(), b"hello");
            assert_eq!(fs::read(t.join("top/run.sh")).unwrap(), script);
            assert_eq!(fs::read(t.join("loose/deep/file")).unwrap(), b"x");
            // Executable or not survives; setuid and world-writable do not.
            assert_eq!(mode_of(&t.join("top/run.sh")), 0o755, "{format:?}");
            assert_eq!(mode_of(&t.join("top/nested/data.txt")), 0o644, "{format:?}");
            assert_eq!(mode_of(&t.join("loose/deep/file")), 0o644, "{format:?}");
            assert_eq!(mode_of(&t.join("loose/deep")), 0o755, "{format:?}");
            scene.assert_nothing_outside();
        }
    }

    #[test]
    fn unpack_refuses_names_that_leave_the_target() {
        let cases: [(&str, Expect); 5] = [
            (
                "../x",
                |e| matches!(e, UnpackError::ParentDir { entry } if entry == "../x"),
            ),
            ("a/../../x", |e| matches!(e, UnpackError::ParentDir { .. })),
            ("a/../x", |e| matches!(e, UnpackError::ParentDir { .. })),
            ("", |e| matches!(e, UnpackError::BadName { .. })),
            ("{outside}/abs", |e| {
                matches!(e, UnpackError::AbsolutePath { .. })
            }),
        ];
        for format in FORMATS {
            for (name, expected) in cases {
                let scene = Scene::new();
                let name = scene.with_outside(name);
                let err = scene
                    .unpack(format, &[Spec::File(&name, b"evil", 0o644)])
                    .unwrap_err();
                assert!(expected(&err), "{format:?} {name:?}: {err}");
                scene.assert_nothing_outside();
            }
        }
    }

    #[test]
    fn unpack_reads_zip_backslashes_as_separators_and_refuses_drives() {
        let cases: [(&str, Expect); 4] = [
            (r"a\..\..\x", |e| matches!(e, UnpackError::ParentDir { .. })),
            ("C:/x", |e| matches!(e, UnpackError::AbsolutePath { .. })),
            (r"C:\x", |e| matches!(e, UnpackError::AbsolutePath { .. })),
            (r"\\server\share\x", |e| {
                matches!(e, UnpackError::AbsolutePath { .. })
            }),
        ];
        for (name, expected) in cases {
            let scene = Scene::new();
            let err = scene
                .unpack(Format::Zip, &[Spec::File(name, b"evil", 0o644)])
                .unwrap_err();
            assert!(expected(&err), "{name:?}: {err}");
            scene.assert_nothing_outside();
        }
        let scene = Scene::new();
        scene
            .unpack(Format::Zip, &[Spec::File(r"dir\file.txt", b"ok", 0o644)])
            .unwrap();
        assert_eq!(fs::read(scene.target.join("dir/file.txt")).unwrap(), b"ok");
    }

    #[test]
    fn unpack_refuses_symlinks_that_point_outside() {
        for format in FORMATS {
            for (name, to) in [
                ("l", "../../outside"),
                ("l", ".."),
                ("sub/l", "../../x"),
                ("sub/l", "x/../../.."),
                ("l", "/etc"),
                ("l", "{outside}"),
            ] {
                let scene = Scene::new();
                let to = &*scene.with_outside(to);
                let err = scene
                    .unpack(format, &[Spec::Symlink(name, to)])
                    .unwrap_err();
                assert!(
                    matches!(&err, UnpackError::SymlinkEscape { entry, target }
                        if entry == name && target == to),
                    "{format:?} {name} -> {to}: {err}"
                );
                assert!(!exists(&scene.target.join(name)));
                scene.assert_nothing_outside();
            }
        }
    }

    #[test]
    fn unpack_never_writes_through_a_symlink_to_outside_from_the_same_archive() {
        for format in FORMATS {
            for to in ["../outside", "{outside}"] {
                let scene = Scene::new();
                let to = &*scene.with_outside(to);
                let err = scene
                    .unpack(
                        format,
                        &[
                            Spec::Symlink("d", to),
                            Spec::File("d/passwd", b"evil", 0o644),
                        ],
                    )
                    .unwrap_err();
                assert!(
                    matches!(err, UnpackError::SymlinkEscape { .. }),
                    "{format:?}: {err}"
                );
                scene.assert_nothing_outside();
            }
        }
    }

    #[test]
    fn unpack_never_writes_through_an_internal_symlink_either() {
        for format in FORMATS {
            let scene = Scene::new();
            let err = scene
                .unpack(
                    format,
                    &[
                        Spec::Dir("real/"),
                        Spec::Symlink("alias", "real"),
                        Spec::File("alias/f", b"x", 0o644),
                    ],
                )
                .unwrap_err();
            assert!(
                matches!(&err, UnpackError::ThroughSymlink { entry, symlink }
                    if entry == "alias/f" && symlink == &scene.target.join("alias")),
                "{format:?}: {err}"
            );
            assert!(!exists(&scene.target.join("real/f")));
        }
    }

    /// Zip readers keep one entry per name, so only tar can name a path twice.
    #[test]
    fn unpack_tar_replaces_symlinks_but_not_with_files() {
        let scene = Scene::new();
        scene
            .unpack(
                Format::TarGz,
                &[
                    Spec::Symlink("l", "a"),
                    Spec::Symlink("l", "b"),
                    Spec::File("f", b"x", 0o644),
                    Spec::Symlink("f", "b"),
                ],
            )
            .unwrap();
        assert_eq!(
            fs::read_link(scene.target.join("l")).unwrap(),
            Path::new("b")
        );
        assert_eq!(
            fs::read_link(scene.target.join("f")).unwrap(),
            Path::new("b")
        );

        let scene = Scene::new();
        let err = scene
            .unpack(
                Format::TarGz,
                &[Spec::Symlink("l", "f"), Spec::File("l", b"x", 0o644)],
            )
            .unwrap_err();
        assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err}");
        assert!(!exists(&scene.target.join("f")));
    }

    #[test]
    fn unpack_keeps_internal_symlinks_in_normal_form() {
        for format in FORMATS {
            let scene = Scene::new();
            scene
                .unpack(
                    format,
                    &[
                        Spec::File("sub/file", b"data", 0o644),
                        Spec::Symlink("link", "sub/file"),
                        Spec::Symlink("sub/self", "./file"),
                        Spec::Symlink("sub/round", "../sub/./file"),
                        Spec::Symlink("sub/root", ".."),
                        Spec::Symlink("here", "."),
                        Spec::Symlink("later", "sub"),
                    ],
                )
                .unwrap();
            let t = &scene.target;
            for (link, to) in [
                ("link", "sub/file"),
                ("sub/self", "file"),
                ("sub/round", "file"),
                ("sub/root", ".."),
                ("here", "."),
                ("later", "sub"),
            ] {
                assert_eq!(
                    fs::read_link(t.join(link)).unwrap(),
                    Path::new(to),
                    "{format:?} {link}"
                );
            }
            assert_eq!(fs::read(t.join("link")).unwrap(), b"data");
            assert_eq!(fs::read(t.join("sub/round")).unwrap(), b"data");
            assert_eq!(fs::read(t.join("sub/root/later/file")).unwrap(), b"data");
            scene.assert_nothing_outside();
        }
    }

    #[test]
    fn unpack_tar_hard_links_only_to_files_it_extracted() {
        let scene = Scene::new();
        let done = scene
            .unpack(
                Format::TarGz,
                &[
                    Spec::File("f", b"data", 0o755),
                    Spec::Hardlink("h", "f"),
                    Spec::Hardlink("d/h2", "./f"),
                ],
            )
            .unwrap();
        assert_eq!(done, Unpacked { files: 3, bytes: 4 });
        let t = &scene.target;
        let ino = fs::metadata(t.join("f")).unwrap().ino();
        assert_eq!(fs::metadata(t.join("h")).unwrap().ino(), ino);
        assert_eq!(fs::metadata(t.join("d/h2")).unwrap().ino(), ino);

        for case in [
            "outside",
            "absolute",
            "not extracted",
            "symlink",
            "directory",
            "itself",
            "replaced by a symlink",
        ] {
            let scene = Scene::new();
            fs::create_dir(&scene.target).unwrap();
            fs::write(scene.target.join("pre"), "already here").unwrap();
            let sentinel = scene.with_outside("{outside}/sentinel");
            let specs = match case {
                "outside" => vec![Spec::Hardlink("h", "../outside/sentinel")],
                "absolute" => vec![Spec::Hardlink("h", &sentinel)],
                "not extracted" => vec![Spec::Hardlink("h", "pre")],
                "symlink" => vec![
                    Spec::File("f", b"x", 0o644),
                    Spec::Symlink("s", "f"),
                    Spec::Hardlink("h", "s"),
                ],
                "directory" => vec![Spec::Dir("d/"), Spec::Hardlink("h", "d")],
                "itself" => vec![Spec::File("h", b"x", 0o644), Spec::Hardlink("h", "h")],
                _ => vec![
                    Spec::File("f", b"x", 0o644),
                    Spec::Symlink("f", "g"),
                    Spec::Hardlink("h", "f"),
                ],
            };
            let err = scene.unpack(Format::TarGz, &specs).unwrap_err();
            assert!(
                matches!(&err, UnpackError::HardlinkEscape { entry, .. } if entry == "h"),
                "{case}: {err}"
            );
            scene.assert_nothing_outside();
        }
    }

    #[test]
    fn unpack_refuses_devices_fifos_and_sockets() {
        for (format, kinds) in [
            (Format::TarGz, [S_IFCHR, S_IFBLK, S_IFIFO]),
            (Format::Zip, [S_IFCHR, S_IFIFO, S_IFSOCK]),
        ] {
            for kind in kinds {
                let scene = Scene::new();
                let err = scene
                    .unpack(format, &[Spec::Special("dev", kind)])
                    .unwrap_err();
                assert!(
                    matches!(&err, UnpackError::SpecialFile { entry, .. } if entry == "dev"),
                    "{format:?} {kind:o}: {err}"
                );
                assert!(!exists(&scene.target.join("dev")));
            }
        }
    }

    #[test]
    fn unpack_refuses_pre_existing_symlinks_in_the_target() {
        for format in FORMATS {
            for specs in [
                vec![Spec::File("etc/passwd", b"evil", 0o644)],
                vec![Spec::Dir("etc/sub/")],
                vec![Spec::Dir("etc/")],
                vec![Spec::File("conf", b"evil", 0o644)],
            ] {
                let scene = Scene::new();
                fs::create_dir(&scene.target).unwrap();
                std::os::unix::fs::symlink(&scene.outside, scene.target.join("etc")).unwrap();
                std::os::unix::fs::symlink(
                    scene.outside.join("sentinel"),
                    scene.target.join("conf"),
                )
                .unwrap();
                let err = scene.unpack(format, &specs).unwrap_err();
                assert!(
                    matches!(err, UnpackError::ThroughSymlink { .. }),
                    "{format:?}: {err}"
                );
                scene.assert_nothing_outside();
            }
        }
    }

    #[test]
    fn unpack_into_a_store_path_keeps_other_files_and_breaks_outside_hard_links() {
        for format in FORMATS {
            let scene = Scene::new();
            let t = &scene.target;
            fs::create_dir_all(t.join("a")).unwrap();
            fs::write(t.join("keep.txt"), "mine").unwrap();
            fs::write(t.join("a/old.txt"), "old").unwrap();
            fs::hard_link(scene.outside.join("sentinel"), t.join("shared")).unwrap();
            scene
                .unpack(
                    format,
                    &[
                        Spec::File("a/old.txt", b"new", 0o644),
                        Spec::File("shared", b"new", 0o644),
                    ],
                )
                .unwrap();
            assert_eq!(fs::read_to_string(t.join("keep.txt")).unwrap(), "mine");
            assert_eq!(fs::read_to_string(t.join("a/old.txt")).unwrap(), "new");
            assert_eq!(fs::read_to_string(t.join("shared")).unwrap(), "new");
            scene.assert_nothing_outside();
        }
    }

    #[test]
    fn unpack_stops_a_bomb_at_max_bytes() {
        let zeros = vec![0u8; 10 << 20];
        let limits = UnpackLimits {
            max_bytes: 1 << 20,
            ..UnpackLimits::default()
        };
        for format in FORMATS {
            let scene = Scene::new();
            let bytes = format.build(&[Spec::File("bomb", &zeros, 0o644)]);
            assert!(
                bytes.len() < 64 << 10,
                "{format:?} bomb is {} bytes",
                bytes.len()
            );
            let err = scene
                .unpack_bytes(format.archive(), &bytes, &limits)
                .unwrap_err();
            assert!(
                matches!(err, UnpackError::TooLarge { limit } if limit == 1 << 20),
                "{format:?}: {err}"
            );
            assert!(fs::metadata(scene.target.join("bomb")).unwrap().len() <= 1 << 20);

            // Exactly at the cap is fine.
            let scene = Scene::new();
            let done = scene
                .unpack_with(
                    format,
                    &[Spec::File("full", &zeros[..1 << 20], 0o644)],
                    &limits,
                )
                .unwrap();
            assert_eq!(done.bytes, 1 << 20);
        }
    }

    #[test]
    fn unpack_stops_at_max_entries() {
        let specs: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
        let specs: Vec<Spec> = specs.iter().map(|n| Spec::File(n, b"x", 0o644)).collect();
        for format in FORMATS {
            let limits = |max_entries| UnpackLimits {
                max_entries,
                ..UnpackLimits::default()
            };
            let err = Scene::new()
                .unpack_with(format, &specs, &limits(3))
                .unwrap_err();
            assert!(
                matches!(err, UnpackError::TooManyEntries { limit: 3 }),
                "{format:?}: {err}"
            );
            let done = Scene::new()
                .unpack_with(format, &specs, &limits(5))
                .unwrap();
            assert_eq!(done.files, 5);
        }
    }

    #[test]
    fn unpack_reports_corrupt_archives_without_panicking() {
        let data = noise(200 << 10);
        for format in FORMATS {
            let good = format.build(&[
                Spec::File("a.txt", b"hello", 0o644),
                Spec::File("noise.bin", &data, 0o644),
            ]);
            let mut flipped = good.clone();
            flipped[good.len() / 2] ^= 0x55;
            let cases: [(&str, Vec<u8>); 5] = [
                ("empty", Vec::new()),
                ("garbage", b"this is not an archive at all".repeat(10)),
                ("truncated", good[..good.len() / 2].to_vec()),
                ("truncated at the end", good[..good.len() - 4].to_vec()),
                ("flipped", flipped),
            ];
            for (case, bytes) in cases {
                let scene = Scene::new();
                let err = scene
                    .unpack_bytes(format.archive(), &bytes, &UnpackLimits::default())
                    .unwrap_err();
                assert!(
                    matches!(err, UnpackError::Corrupt { .. }),
                    "{format:?} {case}: {err}"
                );
                scene.assert_nothing_outside();
            }
        }
    }

    #[test]
    fn unpack_bounds_tar_metadata() {
        let big = vec![0u8; 2 * TAR_METADATA_BUDGET as usize];
        for spec in [
            Spec::Tar("././@LongLink", EntryType::GNULongName, &big),
            Spec::Tar("d/", EntryType::Directory, &big),
        ] {
            let scene = Scene::new();
            let err = scene
                .unpack(Format::TarGz, &[spec, Spec::File("f", b"x", 0o644)])
                .unwrap_err();
            assert!(
                matches!(&err, UnpackError::Corrupt { reason } if reason.contains("metadata")),
                "{err}"
            );
        }
    }

    #[test]
    fn unpack_skips_pax_global_headers() {
        let scene = Scene::new();
        let done = scene
            .unpack(
                Format::TarGz,
                &[
                    Spec::Tar(
                        "pax_global_header",
                        EntryType::XGlobalHeader,
                        b"15 comment=abc\n",
                    ),
                    Spec::File("f", b"x", 0o644),
                ],
            )
            .unwrap();
        assert_eq!(done, Unpacked { files: 1, bytes: 1 });
        assert_eq!(names(&scene.target), ["f"]);
    }

    #[test]
    fn unpack_plain_file_copies_under_the_given_name() {
        let scene = Scene::new();
        let data = noise(100 << 10);
        fs::write(&scene.package, &data).unwrap();
        let done = unpack(
            Archive::None,
            &scene.package,
            &scene.target,
            "setup.sh",
            &UnpackLimits::default(),
        )
        .unwrap();
        assert_eq!(
            done,
            Unpacked {
                files: 1,
                bytes: data.len() as u64
            }
        );
        assert_eq!(fs::read(scene.target.join("setup.sh")).unwrap(), data);
        assert_eq!(mode_of(&scene.target.join("setup.sh")), 0o755);

        let small = UnpackLimits {
            max_bytes: 1000,
            ..UnpackLimits::default()
        };
        let err = unpack(Archive::None, &scene.package, &scene.target, "big", &small).unwrap_err();
        assert!(
            matches!(err, UnpackError::TooLarge { limit: 1000 }),
            "{err}"
        );
    }

    #[test]
    fn unpack_plain_file_refuses_names_that_are_not_one_component() {
        let scene = Scene::new();
        let absolute = scene.with_outside("{outside}/x");
        let cases: [(&str, Expect); 7] = [
            ("../x", |e| matches!(e, UnpackError::ParentDir { .. })),
            ("..", |e| matches!(e, UnpackError::ParentDir { .. })),
            (&absolute, |e| matches!(e, UnpackError::AbsolutePath { .. })),
            ("a/b", |e| matches!(e, UnpackError::BadName { .. })),
            ("x/", |e| matches!(e, UnpackError::BadName { .. })),
            (".", |e| matches!(e, UnpackError::BadName { .. })),
            ("", |e| matches!(e, UnpackError::BadName { .. })),
        ];
        fs::write(&scene.package, b"payload").unwrap();
        for (name, expected) in cases {
            let err = unpack(
                Archive::None,
                &scene.package,
                &scene.target,
                name,
                &UnpackLimits::default(),
            )
            .unwrap_err();
            assert!(expected(&err), "{name:?}: {err}");
        }
        assert!(names(&scene.target).is_empty());
        scene.assert_nothing_outside();
    }

    #[test]
    fn unpack_reports_a_missing_package_file_as_io() {
        let scene = Scene::new();
        for archive in [Archive::None, Archive::Zip, Archive::TarGz] {
            let err = unpack(
                archive,
                &scene.package,
                &scene.target,
                "x",
                &UnpackLimits::default(),
            )
            .unwrap_err();
            assert!(
                matches!(&err, UnpackError::Io { path, .. } if path == &scene.package),
                "{err}"
            );
        }
    }

    /// Every name over a small alphabet: accepted exactly when relative and free of `..`,
    /// and then reduced to its normal components.
    #[test]
    fn entry_path_accepts_exactly_relative_names_without_parent_dirs() {
        let alphabet = ["a", "b", "..", ".", ""];
        let mut names = vec![String::new()];
        let mut frontier = vec![Vec::<&str>::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for parts in &frontier {
                for part in alphabet {
                    let mut longer = parts.clone();
                    longer.push(part);
                    let joined = longer.join("/");
                    names.push(joined.clone());
                    names.push(format!("/{joined}"));
                    next.push(longer);
                }
            }
            frontier = next;
        }
        for name in &names {
            let result = entry_path(name, Path::new(name));
            let parts: Vec<&str> = name.split('/').collect();
            if name.is_empty() {
                assert!(
                    matches!(result, Err(UnpackError::BadName { .. })),
                    "{name:?}"
                );
            } else if name.starts_with('/') {
                assert!(
                    matches!(result, Err(UnpackError::AbsolutePath { .. })),
                    "{name:?}"
                );
            } else if parts.contains(&"..") {
                assert!(
                    matches!(result, Err(UnpackError::ParentDir { .. })),
                    "{name:?}"
                );
            } else {
                let normal: PathBuf = parts.iter().filter(|p| !matches!(**p, "" | ".")).collect();
                assert_eq!(result.unwrap(), normal, "{name:?}");
            }
        }
    }

    /// Every link target over a small alphabet, from several depths: refused exactly when
    /// it climbs above the target, otherwise rewritten to `..`s then names that resolve to
    /// the same place.
    #[test]
    fn link_target_matches_lexical_resolution() {
        fn resolve(dir: &[&str], link: &str) -> Option<Vec<String>> {
            if link.starts_with('/') {
                return None;
            }
            let mut at: Vec<String> = dir.iter().map(|s| (*s).to_owned()).collect();
            for part in link.split('/') {
                match part {
                    "" | "." => {}
                    ".." => {
                        at.pop()?;
                    }
                    name => at.push(name.to_owned()),
                }
            }
            Some(at)
        }
        let alphabet = ["a", "..", ".", "x"];
        let mut links = Vec::new();
        let mut frontier = vec![Vec::<&str>::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for parts in &frontier {
                for part in alphabet {
                    let mut longer = parts.clone();
                    longer.push(part);
                    links.push(longer.join("/"));
                    links.push(format!("/{}", longer.join("/")));
                    next.push(longer);
                }
            }
            frontier = next;
        }
        for dir in [&[][..], &["x"][..], &["x", "y"][..]] {
            let rel: PathBuf = dir.iter().chain(&["link"]).collect();
            for link in &links {
                let result = link_target("link", &rel, Path::new(link), link);
                match resolve(dir, link) {
                    None => assert!(
                        matches!(result, Err(UnpackError::SymlinkEscape { .. })),
                        "{dir:?} {link:?}"
                    ),
                    Some(expected) => {
                        let normal = result.unwrap();
                        let text = normal.to_str().unwrap();
                        assert_eq!(resolve(dir, text), Some(expected), "{dir:?} {link:?}");
                        let parts: Vec<&str> = text.split('/').collect();
                        let ups = parts.iter().take_while(|p| **p == "..").count();
                        assert!(
                            parts[ups..].iter().all(|p| *p != ".." && !p.is_empty()) || text == ".",
                            "{dir:?} {link:?} -> {text}"
                        );
                    }
                }
            }
        }
    }
}
