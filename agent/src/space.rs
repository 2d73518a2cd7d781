//! Free disk space: what a download or an unpack needs, checked before it starts and
//! charged while an unpack writes, so a deployment stops with `ERR_OUT_OF_SPACE`
//! naming the directory and the bytes short instead of filling the computer's disk.
//!
//! Every check keeps agent.toml's `keep_free` free on top of what the step needs:
//! a desktop whose disk a deployment filled to the last byte is broken for its user
//! whatever the package does. Free space is what an unprivileged writer may use
//! (`statvfs`'s `f_bavail`, Windows' free bytes available to the caller), read
//! from the nearest directory that exists, since a store path may not yet.
//!
//! The numbers are a forecast, not a reservation: another program may write
//! meanwhile. That is why an unpack is charged as it writes ([`Guard`]) and not
//! only checked before it starts.

use std::io;
use std::path::{Path, PathBuf};

use sitecast_common::units::human_bytes;

/// Reads the bytes free for us in the filesystem holding a directory.
pub type Probe = fn(&Path) -> io::Result<u64>;

/// The space rules a deployment follows: how much to leave free, and how free
/// space is read (the disk's own figure, except in tests).
#[derive(Debug, Clone, Copy)]
pub struct Space {
    pub keep_free: u64,
    pub probe: Probe,
}

/// By default a deployment leaves this much of a disk free.
pub const DEFAULT_KEEP_FREE: u64 = 256 << 20;

impl Space {
    /// The rules for the real disk, keeping `keep_free` bytes free.
    pub fn disk(keep_free: u64) -> Self {
        Space {
            keep_free,
            probe: disk_free,
        }
    }

    /// Free bytes in the filesystem holding `dir` (or its nearest existing ancestor).
    pub fn free(&self, dir: &Path) -> io::Result<u64> {
        (self.probe)(existing_ancestor(dir))
    }

    /// Whether `needed` more bytes fit in `dir` with `keep_free` left over; `what`
    /// says what they are for, in the error.
    pub fn check(&self, dir: &Path, what: &str, needed: u64) -> Result<(), SpaceError> {
        let free = self.free(dir).map_err(|source| SpaceError::Unreadable {
            dir: dir.to_owned(),
            source,
        })?;
        if needed.saturating_add(self.keep_free) <= free {
            return Ok(());
        }
        Err(SpaceError::Short(Shortfall {
            dir: dir.to_owned(),
            what: what.to_owned(),
            needed,
            keep_free: self.keep_free,
            free,
        }))
    }

    /// Whether every need fits at once: needs of directories on the same filesystem
    /// are added up (a download and its unpack on one disk need both), others are
    /// checked apart. The first short filesystem is the error, naming its first
    /// directory and everything it was to hold.
    pub fn check_all(&self, needs: &[(&Path, &str, u64)]) -> Result<(), SpaceError> {
        let mut groups: Vec<(Filesystem, &Path, Vec<&str>, u64)> = Vec::new();
        for &(dir, what, bytes) in needs {
            let fs =
                filesystem(existing_ancestor(dir)).map_err(|source| SpaceError::Unreadable {
                    dir: dir.to_owned(),
                    source,
                })?;
            match groups.iter_mut().find(|g| g.0 == fs) {
                Some(group) => {
                    group.2.push(what);
                    group.3 = group.3.saturating_add(bytes);
                }
                None => groups.push((fs, dir, vec![what], bytes)),
            }
        }
        for (_, dir, whats, bytes) in groups {
            self.check(dir, &whats.join(" and "), bytes)?;
        }
        Ok(())
    }

    /// A guard that `dir`'s writes are charged to, starting from what is free now.
    pub fn guard(&self, dir: &Path, what: &str) -> Result<Guard, SpaceError> {
        let free = self.free(dir).map_err(|source| SpaceError::Unreadable {
            dir: dir.to_owned(),
            source,
        })?;
        Ok(Guard {
            space: *self,
            dir: dir.to_owned(),
            what: what.to_owned(),
            free,
            charged: 0,
            total: 0,
        })
    }
}

fn disk_free(dir: &Path) -> io::Result<u64> {
    fs4::available_space(dir)
}

/// `dir` itself if it exists, else the closest directory above it that does (the
/// filesystem a missing store path will be created in); `dir` when none does, so
/// the probe's error names it.
fn existing_ancestor(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .unwrap_or(dir)
}

/// Which filesystem a path is on: its device on Unix.
#[cfg(unix)]
type Filesystem = u64;

#[cfg(unix)]
fn filesystem(path: &Path) -> io::Result<Filesystem> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.dev())
}

/// Which filesystem a path is on: its volume (the drive or share prefix) on
/// Windows, where a volume mounted in a folder is rare enough to be taken for
/// its parent's.
#[cfg(not(unix))]
type Filesystem = Option<std::ffi::OsString>;

#[cfg(not(unix))]
fn filesystem(path: &Path) -> io::Result<Filesystem> {
    let path = std::path::absolute(path)?;
    Ok(path.components().next().and_then(|c| match c {
        std::path::Component::Prefix(p) => Some(p.as_os_str().to_ascii_uppercase()),
        _ => None,
    }))
}

/// Not enough room for what a step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub dir: PathBuf,
    /// What the bytes were for ("the download", "the unpack").
    pub what: String,
    pub needed: u64,
    pub keep_free: u64,
    pub free: u64,
}

impl Shortfall {
    /// Bytes to free before it fits.
    pub fn short(&self) -> u64 {
        self.needed
            .saturating_add(self.keep_free)
            .saturating_sub(self.free)
    }
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not enough free space in {}: {} needs {} ({} bytes) and {} stay free (agent.toml's keep_free), \
             but {} ({} bytes) are free: {} bytes short",
            self.dir.display(),
            self.what,
            human_bytes(self.needed),
            self.needed,
            human_bytes(self.keep_free),
            human_bytes(self.free),
            self.free,
            self.short(),
        )
    }
}

/// Why a space check failed.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    #[error("{0}")]
    Short(Shortfall),
    #[error("cannot read the free space of {}: {source}", dir.display())]
    Unreadable {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Charges the bytes an unpack writes against the free space it started from, and
/// reads the disk again only when the forecast says the next write would not fit
/// (so a long unpack costs a `statvfs` per threshold, not per write, and space freed
/// meanwhile is seen before giving up).
#[derive(Debug)]
pub struct Guard {
    space: Space,
    dir: PathBuf,
    what: String,
    /// Free bytes when last read.
    free: u64,
    /// Bytes written since then.
    charged: u64,
    /// Bytes written in all.
    total: u64,
}

impl Guard {
    /// Accounts for `n` more bytes about to be written; an error if they would eat
    /// into `keep_free`.
    pub fn charge(&mut self, n: u64) -> Result<(), SpaceError> {
        let fits = |free: u64, charged: u64| {
            charged
                .saturating_add(n)
                .saturating_add(self.space.keep_free)
                <= free
        };
        if !fits(self.free, self.charged) {
            self.free = self
                .space
                .free(&self.dir)
                .map_err(|source| SpaceError::Unreadable {
                    dir: self.dir.clone(),
                    source,
                })?;
            self.charged = 0;
            if !fits(self.free, 0) {
                return Err(SpaceError::Short(Shortfall {
                    dir: self.dir.clone(),
                    what: format!("{} (after {} written)", self.what, human_bytes(self.total)),
                    needed: n,
                    keep_free: self.space.keep_free,
                    free: self.free,
                }));
            }
        }
        self.charged += n;
        self.total += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
