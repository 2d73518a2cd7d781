//! The fetches the replicator runs over an [`Upstream`]: a signed info, a
//! fragment, a delta. Each is verified before anything is committed.
//!
//! Every fragment is streamed to a temporary file while it is hashed, and only
//! renamed into the cache once its SHA-256 matches the signed info; a bad one is
//! discarded and fetched again. Nothing is held whole in memory.
//!
//! A fetch answers the planner's [`Event`] for what it got (held or failed);
//! an `Err` means the link or the disk broke, and the replicator drops the
//! connection, as the planner's view of what is in flight is then unreliable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use sitecast_common::fragment::{sha256_hex, FragmentPlan};
use sitecast_common::ids::PackageId;
use sitecast_common::info::Info;
use sitecast_common::protocol::{self, Request, Response};
use sitecast_common::replication::{Event, Shape};
use sitecast_common::signing;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use sitecast_io::blocking;

use crate::cache::Cache;
use crate::error::{LinkError, RelayError};
use crate::upstream::{Body, Upstream};

/// Counts bytes from central as they arrive (the replicator sums them).
#[derive(Debug, Clone)]
pub struct Meter(mpsc::UnboundedSender<u64>);

impl Meter {
    pub fn new(tx: mpsc::UnboundedSender<u64>) -> Self {
        Self(tx)
    }

    fn add(&self, bytes: u64) {
        // The replicator outlives its fetches.
        let _ = self.0.send(bytes);
    }
}

/// What a fetch needs besides its request.
#[derive(Clone)]
pub struct Fetcher {
    pub upstream: Arc<dyn Upstream>,
    pub cache: Arc<Cache>,
    pub meter: Meter,
}

pub fn shape_of(info: &Info) -> Shape {
    Shape {
        size: info.plan().size(),
        fragment_size: info.plan().fragment_size(),
        count: info.plan().count(),
    }
}

/// Asks for `req`: the announced length and the data, or why central has none.
async fn request(f: &Fetcher, req: Request) -> Result<(u64, Box<dyn Body>), RelayError> {
    let package = req.package_id().to_string();
    match f.upstream.request(req).await? {
        (Response::Data { len }, body) => Ok((len, body)),
        (Response::NotFound { reason } | Response::Declined { reason }, _) => {
            Err(RelayError::BadContent { package, reason })
        }
    }
}

/// Fetches a signed info, checks it is the one central announced and that it
/// verifies, and stores it.
pub async fn info(
    f: &Fetcher,
    keys: &[VerifyingKey],
    id: PackageId,
    expected_sha256: Option<String>,
) -> Result<Event, RelayError> {
    let envelope = match fetch_info(f, &id).await {
        Ok(e) => e,
        Err(e @ RelayError::Link(_)) => return Err(e),
        Err(e) => {
            tracing::warn!(package = %id, error = %e, "no info");
            return Ok(Event::InfoFailed { id });
        }
    };
    let verified = signing::verify_info(&envelope, keys);
    match verified {
        Ok(info) if Some(sha256_hex(&envelope)) == expected_sha256 && info.id() == &id => {
            let cache = Arc::clone(&f.cache);
            let (pid, bytes) = (id.clone(), envelope);
            blocking(move || cache.store_info(&pid, &bytes)).await?;
            Ok(Event::InfoHeld {
                shape: shape_of(&info),
                id,
            })
        }
        other => {
            tracing::warn!(package = %id, verified = ?other.err(), "central's info does not match what it announced");
            Ok(Event::InfoFailed { id })
        }
    }
}

async fn fetch_info(f: &Fetcher, id: &PackageId) -> Result<Vec<u8>, RelayError> {
    let (len, mut body) = request(
        f,
        Request::Info {
            package_id: id.clone(),
        },
    )
    .await?;
    if len > u64::from(protocol::MAX_MESSAGE) {
        return Err(RelayError::BadContent {
            package: id.to_string(),
            reason: format!("an info of {len} bytes is too large"),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    while (bytes.len() as u64) < len {
        let left = len - bytes.len() as u64;
        let chunk = body
            .chunk(left as usize)
            .await?
            .ok_or_else(|| LinkError::Cut {
                what: format!("the info of {id}"),
                missing: left,
            })?;
        bytes.extend_from_slice(&chunk);
    }
    bytes.truncate(len as usize);
    f.meter.add(len);
    Ok(bytes)
}

/// Fetches fragment `index` of `id`: held, or failed (and discarded) if what
/// came is not what the signed info says.
pub async fn fragment(
    f: &Fetcher,
    id: PackageId,
    index: u32,
    plan: &FragmentPlan,
) -> Result<Event, RelayError> {
    match fetch_fragment(f, &id, index, plan).await {
        Ok(()) => Ok(Event::FragmentHeld { id, index }),
        Err(e @ RelayError::Link(_)) => Err(e),
        Err(e) => {
            tracing::warn!(package = %id, fragment = index, error = %e, "fragment discarded; it will be fetched again");
            Ok(Event::FragmentFailed { id, index })
        }
    }
}

/// Streams one fragment to a temporary file while hashing it; commits it to the
/// cache only if the digest matches.
async fn fetch_fragment(
    f: &Fetcher,
    id: &PackageId,
    index: u32,
    plan: &FragmentPlan,
) -> Result<(), RelayError> {
    let bad = |reason: String| RelayError::BadContent {
        package: id.to_string(),
        reason: format!("fragment {index}: {reason}"),
    };
    let (_, expected_len) = plan.range(index).map_err(|e| bad(e.to_string()))?;
    let (len, mut body) = request(
        f,
        Request::Fragment {
            package_id: id.clone(),
            index,
        },
    )
    .await?;
    if len != expected_len {
        return Err(bad(format!(
            "central announced {len} bytes, the signed info says {expected_len}"
        )));
    }
    let tmp = f.cache.temp_path(id, index);
    // Buffered: each tokio file write is a hop to the blocking pool.
    let mut file = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(&tmp)
            .await
            .map_err(RelayError::io(&tmp))?,
    );
    let result = async {
        let mut hasher = Sha256::new();
        let mut left = len;
        while left > 0 {
            let chunk = body
                .chunk(left.min(256 << 10) as usize)
                .await?
                .ok_or_else(|| LinkError::Cut {
                    what: format!("fragment {index}"),
                    missing: left,
                })?;
            let chunk = &chunk[..chunk.len().min(left as usize)];
            hasher.update(chunk);
            file.write_all(chunk).await.map_err(RelayError::io(&tmp))?;
            left -= chunk.len() as u64;
            f.meter.add(chunk.len() as u64);
        }
        file.flush().await.map_err(RelayError::io(&tmp))?;
        file.get_ref()
            .sync_all()
            .await
            .map_err(RelayError::io(&tmp))?;
        let actual: [u8; 32] = hasher.finalize().into();
        let expected = plan.digest(index).map_err(|e| bad(e.to_string()))?;
        if &actual != expected {
            return Err(bad(format!(
                "SHA-256 {} does not match the signed info's {}",
                hex::encode(actual),
                hex::encode(expected)
            )));
        }
        Ok(())
    }
    .await;
    drop(file);
    match result {
        Ok(()) => {
            let cache = Arc::clone(&f.cache);
            let (pid, tmp) = (id.clone(), tmp.clone());
            blocking(move || cache.commit_fragment(&tmp, &pid, index)).await
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// A delta the planner asked for, with the verified plans of both packages.
pub struct DeltaWanted {
    pub id: PackageId,
    pub base: PackageId,
    pub lacking: u64,
    pub target_plan: FragmentPlan,
    pub base_plan: FragmentPlan,
    pub max_rate: Option<u64>,
}

/// Asks central for a delta, receives it into a temporary file (paced by the
/// cap), and rebuilds the fragments it gives; whatever it cannot give is left
/// for plain fragment fetches.
pub async fn delta(f: &Fetcher, w: DeltaWanted) -> Result<Event, RelayError> {
    let id = w.id.clone();
    let req = Request::Delta {
        package_id: w.id.clone(),
        base_id: w.base.clone(),
        lacking: w.lacking,
    };
    let (len, mut body) = match request(f, req).await {
        Ok(answer) => answer,
        Err(e @ RelayError::Link(_)) => return Err(e),
        Err(e) => {
            tracing::info!(package = %id, base = %w.base, reason = %e, "no delta; plain fragments");
            return Ok(Event::DeltaFailed { id });
        }
    };
    if len >= w.lacking {
        tracing::warn!(package = %id, len, lacking = w.lacking, "central offered a delta larger than what it replaces");
        return Ok(Event::DeltaFailed { id });
    }
    let tmp = f.cache.temp_path(&id, 0).with_extension("delta");
    let received = receive_to_file(&mut *body, &f.meter, &tmp, len, w.max_rate).await;
    if let Err(e) = received {
        let _ = tokio::fs::remove_file(&tmp).await;
        return match e {
            RelayError::Link(_) => Err(e),
            other => {
                tracing::warn!(package = %id, error = %other, "delta not received; plain fragments");
                Ok(Event::DeltaFailed { id })
            }
        };
    }
    let cache = Arc::clone(&f.cache);
    let path = tmp.clone();
    let rebuilt = blocking(move || {
        let held = cache.fragments_held(&w.id)?;
        crate::delta::rebuild(
            &cache,
            (&w.id, &w.target_plan),
            (&w.base, &w.base_plan),
            &path,
            &held,
        )
    })
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    let rebuilt = rebuilt?;
    match &rebuilt.problem {
        None => {
            tracing::info!(package = %id, fragments = rebuilt.indices.len(), delta_bytes = len, "rebuilt from a delta")
        }
        Some(problem) => {
            tracing::warn!(package = %id, fragments = rebuilt.indices.len(), %problem, "delta partly unusable; the rest as plain fragments")
        }
    }
    Ok(Event::DeltaHeld {
        id,
        indices: rebuilt.indices,
    })
}

/// Receives `len` bytes into `path` (fsynced), counting them, no faster than
/// `max_rate` bytes per second when there is a cap.
async fn receive_to_file(
    body: &mut dyn Body,
    meter: &Meter,
    path: &Path,
    len: u64,
    max_rate: Option<u64>,
) -> Result<(), RelayError> {
    let mut file = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(path)
            .await
            .map_err(RelayError::io(path))?,
    );
    let started = tokio::time::Instant::now();
    let mut got = 0u64;
    while got < len {
        let chunk = body
            .chunk((len - got).min(256 << 10) as usize)
            .await?
            .ok_or_else(|| LinkError::Cut {
                what: "a delta".into(),
                missing: len - got,
            })?;
        let chunk = &chunk[..chunk.len().min((len - got) as usize)];
        file.write_all(chunk).await.map_err(RelayError::io(path))?;
        got += chunk.len() as u64;
        meter.add(chunk.len() as u64);
        if let Some(rate) = max_rate.filter(|r| *r > 0) {
            let due = started + Duration::from_secs_f64(got as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
        }
    }
    file.flush().await.map_err(RelayError::io(path))?;
    file.get_ref()
        .sync_all()
        .await
        .map_err(RelayError::io(path))
}
