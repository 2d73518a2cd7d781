//! The two archive formats, zip and tar.gz, read entry by entry: each entry's
//! kind decoded (zip's Unix mode bits, tar's entry types) and handed to the
//! [`Unpacker`]'s checked writers, reading errors told apart (the package file
//! is corrupt, or reading it failed), and tar metadata held to its own budget.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use flate2::read::GzDecoder;
use zip::result::ZipError;

use super::{entry_path, io_error, UnpackError, Unpacker};

/// Bytes of tar metadata (headers, padding, GNU long names, pax records, data of entries
/// we skip) allowed between two entries. The `tar` crate reads long names and pax
/// records whole into memory, so a gzip bomb there would exhaust memory before any
/// byte cap applied; real archives need a few KiB.
pub(super) const TAR_METADATA_BUDGET: u64 = 4 << 20;

/// Longest symlink target read from a zip entry (Linux's PATH_MAX).
const MAX_LINK_TARGET: u64 = 4096;

// Unix file type bits, as zip's external attributes carry them.
const S_IFMT: u32 = 0o170_000;
pub(super) const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
pub(super) const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
pub(super) const S_IFCHR: u32 = 0o020_000;
pub(super) const S_IFIFO: u32 = 0o010_000;

impl Unpacker<'_> {
    pub(super) fn zip(&mut self, file: &Path) -> Result<(), UnpackError> {
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
        listed_once(file, &zip)?;
        own_bytes(&mut zip, &zip_error)?;
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

    pub(super) fn tar_gz(&mut self, file: &Path) -> Result<(), UnpackError> {
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
}

/// The bytes a zip's central directory says its entries unpack to (saturating: a
/// lying directory is stopped by the unpack's byte cap, not believed).
pub(super) fn zip_declared_size(file: &Path) -> Result<u64, UnpackError> {
    let failed = Rc::new(Cell::new(false));
    let source = Source {
        inner: File::open(file).map_err(|e| io_error(file, e))?,
        failed: Rc::clone(&failed),
    };
    let mut zip = zip::ZipArchive::new(source).map_err(|e| match e {
        ZipError::Io(e) => classify(file, &failed, e),
        other => UnpackError::Corrupt {
            reason: other.to_string(),
        },
    })?;
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index).map_err(|e| UnpackError::Corrupt {
            reason: e.to_string(),
        })?;
        total = total.saturating_add(entry.size());
    }
    Ok(total)
}

/// The central directory lists each name once. The zip reader keeps one entry per name,
/// so a name listed twice shows only as fewer entries than the end-of-central-directory
/// record counts (read here; zip64 archives, which count elsewhere, are left to the
/// reader and to [`own_bytes`]).
fn listed_once<R: Read + Seek>(file: &Path, zip: &zip::ZipArchive<R>) -> Result<(), UnpackError> {
    const EOCD_LEN: u64 = 22;
    let mut f = File::open(file).map_err(|e| io_error(file, e))?;
    let tail = EOCD_LEN + zip.comment().len() as u64;
    let mut eocd = [0u8; EOCD_LEN as usize];
    f.seek(SeekFrom::End(-i64::try_from(tail).unwrap_or(i64::MAX)))
        .and_then(|_| f.read_exact(&mut eocd))
        .map_err(|e| io_error(file, e))?;
    if eocd[..4] != *b"PK\x05\x06" {
        return Ok(());
    }
    let listed = u16::from_le_bytes([eocd[10], eocd[11]]);
    if listed != u16::MAX && usize::from(listed) != zip.len() {
        return Err(UnpackError::Corrupt {
            reason: format!(
                "the central directory lists {listed} entries but only {} names: a name appears twice",
                zip.len()
            ),
        });
    }
    Ok(())
}

/// Each zip entry owns its bytes, and each name is given once: entries whose local
/// headers and data overlap (one compressed stream read under many names: a bomb that
/// beats any ratio) or a name given twice (which one is the package's?) are refused
/// before anything is written.
fn own_bytes<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    zip_error: &dyn Fn(ZipError) -> UnpackError,
) -> Result<(), UnpackError> {
    let mut spans = Vec::with_capacity(zip.len());
    let mut names = HashSet::with_capacity(zip.len());
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index).map_err(zip_error)?;
        let name = entry.name().replace('\\', "/");
        if !names.insert(name.trim_end_matches('/').to_owned()) {
            return Err(UnpackError::Corrupt {
                reason: format!("entry '{}' appears twice", entry.name()),
            });
        }
        let end = entry.data_start().saturating_add(entry.compressed_size());
        spans.push((entry.header_start(), end, index));
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [(_, end, first), (start, _, second)] = pair {
            if start < end {
                let name = |i: usize| zip.name_for_index(i).unwrap_or("?").to_owned();
                return Err(UnpackError::Corrupt {
                    reason: format!(
                        "entries '{}' and '{}' share bytes of the archive",
                        name(*first),
                        name(*second)
                    ),
                });
            }
        }
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
