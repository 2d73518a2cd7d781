//! Small durable-write helpers: temporary name, fsync, rename, fsync the directory.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::AgentError;

pub fn fsync_dir(dir: &Path) -> Result<(), AgentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AgentError::io(dir))
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(AgentError::io(&tmp))?;
    f.write_all(bytes).map_err(AgentError::io(&tmp))?;
    f.sync_all().map_err(AgentError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(AgentError::io(path))?;
    fsync_dir(dir)
}
