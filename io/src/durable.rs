//! Crash-safe writes: a temporary name beside the target, fsync, rename, then
//! fsync of the directory, so a crash leaves the old content or the new,
//! never a mix, and what returned `Ok` survives a power cut.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An I/O failure, with the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |source| IoError {
        path: path.to_owned(),
        source,
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn fsync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content:
/// through `.NAME.tmp` in the same directory, fsynced, renamed, and the
/// directory fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_with_mode(path, bytes, 0o666)
}

/// [`write_atomically`] for a file holding a secret (a bearer token, a key): on Unix it
/// is readable and writable by its owner alone (0600) from the moment it exists, so no
/// other user can read it even while it is written. (Windows gives a new file the ACL
/// of its directory; the agent's and relay's directories are theirs alone.)
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IoError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| IoError {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    // A temporary left by a crash may have another mode: start afresh.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(at(&tmp)(e)),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(&tmp).map_err(at(&tmp))?;
    f.write_all(bytes).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_is_for_its_owner_alone_even_over_a_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        write_atomically(&path, b"old").unwrap();
        // A temporary a crash left behind, readable by all.
        std::fs::write(dir.path().join(".agent.toml.tmp"), b"x").unwrap();
        write_secret(&path, b"token = \"s3cret\"").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"token = \"s3cret\"");
    }

    #[test]
    fn a_failure_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("state.json");
        let e = write_atomically(&path, b"x").unwrap_err();
        assert!(e.path.ends_with("missing/.state.json.tmp"), "{e}");
        let e = write_atomically(Path::new("/"), b"x").unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::InvalidInput);
    }
}
