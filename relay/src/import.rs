//! `sitecast-relay import`: a package prestaged from offline media (SCCM's
//! prestaged content, the field guide's `scp` at 18:00 done with a USB disk) —
//! no WAN byte moves.
//!
//! The signed info (the DSSE envelope, as `GET /packages/{id}/info` returns it)
//! is verified against central's signing keys that the relay remembered from its
//! last Welcome ([`crate::keys`]); a relay that never connected knows none and
//! refuses. The data file is streamed once: cut into fragments per the info's
//! plan, each written to a staging directory under `cache/tmp/`, fsynced and
//! hashed, and the whole file hashed too. Only when every fragment and the whole
//! digest match is anything committed (the info, then each fragment renamed into
//! the cache); otherwise the staging directory is removed and the error names
//! the fragment, its byte range and both digests.
//!
//! A running relay takes the package up without a restart: import leaves a
//! notice in `DIR/imports/<package>`, which the relay's lifecycle task reads
//! within a second (it then counts the package as held, serves it, and tells
//! its replication planner, so those fragments are never fetched). A relay that
//! is not running finds the content in its cache when it starts. As for any
//! content, a package the relay's site does not have activated is dropped when
//! the relay next hears its activated set: import after activating.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sitecast_common::fragment::sha256_hex;
use sitecast_common::ids::PackageId;
use sitecast_common::info::Info;
use sitecast_common::protocol::MAX_MESSAGE;
use sitecast_common::signing;

use crate::cache::{write_atomically, Cache};
use crate::config::RelayConfig;
use crate::error::RelayError;

/// What an import committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub id: PackageId,
    pub name: String,
    pub version: String,
    pub fragments: u32,
    pub bytes: u64,
}

/// Where import leaves notices for a running relay.
pub fn notices(dir: &Path) -> PathBuf {
    dir.join("imports")
}

/// Imports a package into the relay in `dir`: verified, then committed.
pub fn import(dir: &Path, info_file: &Path, data_file: &Path) -> Result<Imported, RelayError> {
    // A relay's DIR, enrolled: its relay.toml reads.
    RelayConfig::load(dir)?;
    let keys = crate::keys::load(dir)?;
    if keys.is_empty() {
        return Err(RelayError::Invalid(format!(
            "no signing keys of central known in {}: run `sitecast-relay serve` once while central \
             is reachable, so the relay learns the keys it needs to verify imports",
            dir.display()
        )));
    }
    let envelope = read_info(info_file)?;
    let info = signing::verify_info(&envelope, &keys).map_err(|e| RelayError::BadContent {
        package: info_file.display().to_string(),
        reason: format!("the signed info does not verify against central's signing keys: {e}"),
    })?;
    let id = info.id().clone();
    let cache = Cache::attach(&dir.join("cache"))?;
    if let Some(held) = cache.info(&id)? {
        if held != envelope {
            return Err(RelayError::BadContent {
                package: id.to_string(),
                reason: format!(
                    "the relay holds another signed info for this package (SHA-256 {}, the file's is {})",
                    sha256_hex(&held),
                    sha256_hex(&envelope)
                ),
            });
        }
    }
    let staging = cache.root().join("tmp").join(format!(
        "import-{}-{}",
        std::process::id(),
        crate::clock::timestamp().as_nanosecond()
    ));
    fs::create_dir_all(&staging).map_err(RelayError::io(&staging))?;
    let staged = stage(&info, data_file, &staging);
    let result = staged.and_then(|()| commit(&cache, &info, &envelope, &staging));
    let _ = fs::remove_dir_all(&staging);
    result?;
    let notice = notices(dir);
    fs::create_dir_all(&notice).map_err(RelayError::io(&notice))?;
    write_atomically(&notice.join(id.as_str()), b"")?;
    tracing::info!(package = %id, fragments = info.plan().count(), "imported from offline media");
    Ok(Imported {
        id,
        name: info.name().to_owned(),
        version: info.version().to_owned(),
        fragments: info.plan().count(),
        bytes: info.plan().size(),
    })
}

fn read_info(path: &Path) -> Result<Vec<u8>, RelayError> {
    let len = fs::metadata(path).map_err(RelayError::io(path))?.len();
    if len > u64::from(MAX_MESSAGE) {
        return Err(RelayError::BadContent {
            package: path.display().to_string(),
            reason: format!("{len} bytes is too large for a signed info"),
        });
    }
    fs::read(path).map_err(RelayError::io(path))
}

/// Cuts the data file into fragments in `staging`, each fsynced and verified,
/// and checks the whole file's digest.
fn stage(info: &Info, data_file: &Path, staging: &Path) -> Result<(), RelayError> {
    let plan = info.plan();
    let bad = |reason: String| RelayError::BadContent {
        package: info.id().to_string(),
        reason: format!("{}: {reason}", data_file.display()),
    };
    let mut data = File::open(data_file).map_err(RelayError::io(data_file))?;
    let size = data.metadata().map_err(RelayError::io(data_file))?.len();
    if size != plan.size() {
        return Err(bad(format!(
            "{size} bytes, the signed info says {}",
            plan.size()
        )));
    }
    let mut whole = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    for index in 1..=plan.count() {
        let (offset, len) = plan.range(index).map_err(|e| bad(e.to_string()))?;
        let path = staging.join(index.to_string());
        let mut out = File::create(&path).map_err(RelayError::io(&path))?;
        let mut hasher = Sha256::new();
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = data
                .read(&mut buf[..want])
                .map_err(RelayError::io(data_file))?;
            if n == 0 {
                return Err(bad(format!(
                    "ended inside fragment {index} ({left} bytes missing)"
                )));
            }
            hasher.update(&buf[..n]);
            whole.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(RelayError::io(&path))?;
            left -= n as u64;
        }
        out.sync_all().map_err(RelayError::io(&path))?;
        let actual: [u8; 32] = hasher.finalize().into();
        let expected = plan.digest(index).map_err(|e| bad(e.to_string()))?;
        if &actual != expected {
            return Err(bad(format!(
                "fragment {index} (bytes {offset}..{}) has SHA-256 {}, the signed info says {}",
                offset + len,
                hex::encode(actual),
                hex::encode(expected)
            )));
        }
    }
    let actual: [u8; 32] = whole.finalize().into();
    if &actual != plan.sha256() {
        return Err(bad(format!(
            "the whole file has SHA-256 {}, the signed info says {}",
            hex::encode(actual),
            hex::encode(plan.sha256())
        )));
    }
    Ok(())
}

/// Moves the verified fragments and the info into the cache.
fn commit(cache: &Cache, info: &Info, envelope: &[u8], staging: &Path) -> Result<(), RelayError> {
    let id = info.id();
    cache.store_info(id, envelope)?;
    for index in 1..=info.plan().count() {
        cache.commit_fragment(&staging.join(index.to_string()), id, index)?;
    }
    Ok(())
}

/// The packages named by import notices in `dir` (the notices are left for
/// [`done`]).
pub fn pending(dir: &Path) -> Vec<PackageId> {
    let Ok(entries) = fs::read_dir(notices(dir)) else {
        return Vec::new();
    };
    let mut ids: Vec<PackageId> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    ids.sort();
    ids
}

/// Removes the notice for `id` once the running relay took the package up.
pub fn done(dir: &Path, id: &PackageId) {
    let _ = fs::remove_file(notices(dir).join(id.as_str()));
}
