//! Crash-safe writes: a temporary name beside the target, fsync, rename, then
//! fsync of the directory, so a crash leaves the old content or the new,
//! never a mix, and what returned `Ok` survives a power cut.

use std::fs::File;
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| IoError {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut f = File::create(&tmp).map_err(at(&tmp))?;
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
