//! Package files on central's disk, and the upload pipeline that makes them.
//!
//! Layout under `DIR/packages/`: `<id>/data` (the whole file) and
//! `<id>/info.dsse.json` (the signed envelope, byte for byte). An upload is
//! written to `tmp/` while it is hashed and fragmented, fsynced, then the package
//! directory is assembled in `tmp/` and renamed into place; only then is the
//! metadata stored. On start, [`PackageFiles::open`] empties `tmp/` and removes
//! package directories without metadata, so after any crash a package is either
//! complete or absent.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sitecast_common::fragment::{FragmentHasher, FragmentPlan, MAX_FRAGMENTS};
use sitecast_common::ids::PackageId;
use tokio::sync::mpsc;

use crate::error::CentralError;
use crate::tokens;
use sitecast_io::fsync_dir;

/// How many body chunks may wait for the disk: bounds an upload's memory.
const CHUNK_QUEUE: usize = 8;

/// Package files on disk.
#[derive(Debug, Clone)]
pub struct PackageFiles {
    root: PathBuf,
}

impl PackageFiles {
    /// Opens (creating if needed) the package directory and removes whatever a
    /// crash left behind: temporary files and packages whose metadata never landed.
    pub fn open(root: &Path, known: &HashSet<PackageId>) -> Result<Self, CentralError> {
        let files = Self {
            root: root.to_owned(),
        };
        let tmp = files.tmp_dir();
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(CentralError::io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(CentralError::io(&tmp))?;
        for entry in fs::read_dir(root).map_err(CentralError::io(root))? {
            let entry = entry.map_err(CentralError::io(root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "tmp" {
                continue;
            }
            let orphan = name
                .parse::<PackageId>()
                .map_or(true, |id| !known.contains(&id));
            if orphan {
                tracing::warn!(dir = %entry.path().display(), "removing package files without metadata");
                let p = entry.path();
                if p.is_dir() {
                    fs::remove_dir_all(&p).map_err(CentralError::io(&p))?;
                } else {
                    fs::remove_file(&p).map_err(CentralError::io(&p))?;
                }
            }
        }
        fsync_dir(root)?;
        Ok(files)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn data_path(&self, id: &PackageId) -> PathBuf {
        self.root.join(id.as_str()).join("data")
    }

    pub fn info_path(&self, id: &PackageId) -> PathBuf {
        self.root.join(id.as_str()).join("info.dsse.json")
    }

    /// A new temporary path for an upload.
    pub fn temp_upload(&self) -> TempFile {
        TempFile(
            self.tmp_dir()
                .join(format!("upload-{}.part", tokens::suffix())),
        )
    }

    /// Moves a fully written, fsynced upload and its signed info into place.
    pub fn publish(
        &self,
        id: &PackageId,
        data: TempFile,
        envelope: &[u8],
    ) -> Result<(), CentralError> {
        let staging = self.tmp_dir().join(format!("{id}.staging"));
        fs::create_dir(&staging).map_err(CentralError::io(&staging))?;
        let data_path = staging.join("data");
        fs::rename(&data.0, &data_path).map_err(CentralError::io(&data_path))?;
        let info = staging.join("info.dsse.json");
        let mut f = File::create(&info).map_err(CentralError::io(&info))?;
        f.write_all(envelope).map_err(CentralError::io(&info))?;
        f.sync_all().map_err(CentralError::io(&info))?;
        fsync_dir(&staging)?;
        let target = self.root.join(id.as_str());
        fs::rename(&staging, &target).map_err(CentralError::io(&target))?;
        fsync_dir(&self.root)?;
        fsync_dir(&self.tmp_dir()).map_err(Into::into)
    }

    /// Removes a package's files (after its metadata is gone).
    pub fn remove(&self, id: &PackageId) -> Result<(), CentralError> {
        let dir = self.root.join(id.as_str());
        match fs::remove_dir_all(&dir) {
            Ok(()) => fsync_dir(&self.root).map_err(Into::into),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CentralError::io(dir)(e)),
        }
    }
}

/// A temporary upload file, removed when dropped unless it was published.
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // After publish the path no longer exists and this is a no-op.
        let _ = fs::remove_file(&self.0);
    }
}

/// What an upload produced.
#[derive(Debug)]
pub struct Received {
    pub file: TempFile,
    pub plan: FragmentPlan,
    /// The first bytes of the file, to recognise archives.
    pub head: Vec<u8>,
}

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the package is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Its info would list more fragments than a package may have.
    #[error("the package is larger than {max} fragments of {fragment_size} bytes; upload it with a larger fragment_size")]
    TooManyFragments { max: u64, fragment_size: u64 },
    #[error("the upload was interrupted: {0}")]
    Body(String),
    #[error("the package writer stopped")]
    WriterStopped,
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// A sink that writes an upload to disk while hashing it, on a blocking thread,
/// fed through a bounded queue so memory stays flat however large the file.
pub struct UploadSink {
    tx: mpsc::Sender<bytes::Bytes>,
    task: tokio::task::JoinHandle<Result<Received, CentralError>>,
    received: u64,
    limit: u64,
    fragment_size: u64,
    max_fragments: u64,
}

impl UploadSink {
    pub fn start(file: TempFile, fragment_size: u64, limit: u64) -> Result<Self, CentralError> {
        Self::start_with(file, fragment_size, limit, MAX_FRAGMENTS)
    }

    /// [`UploadSink::start`], refusing a package of more than `max_fragments`.
    fn start_with(
        file: TempFile,
        fragment_size: u64,
        limit: u64,
        max_fragments: u64,
    ) -> Result<Self, CentralError> {
        let mut hasher =
            FragmentHasher::new(fragment_size).map_err(|e| CentralError::Invalid(e.to_string()))?;
        let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(CHUNK_QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            let path = file.path().to_owned();
            let f = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(CentralError::io(&path))?;
            let mut out = BufWriter::with_capacity(256 << 10, f);
            let mut head = Vec::new();
            while let Some(chunk) = rx.blocking_recv() {
                if head.len() < 8 {
                    let take = (8 - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                hasher.update(&chunk);
                out.write_all(&chunk).map_err(CentralError::io(&path))?;
            }
            let f = out
                .into_inner()
                .map_err(|e| CentralError::io(&path)(e.into_error()))?;
            f.sync_all().map_err(CentralError::io(&path))?;
            Ok(Received {
                file,
                plan: hasher.finish(),
                head,
            })
        });
        Ok(Self {
            tx,
            task,
            received: 0,
            limit,
            fragment_size,
            max_fragments,
        })
    }

    pub async fn push(&mut self, chunk: bytes::Bytes) -> Result<(), UploadError> {
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        if self.received.div_ceil(self.fragment_size) > self.max_fragments {
            return Err(UploadError::TooManyFragments {
                max: self.max_fragments,
                fragment_size: self.fragment_size,
            });
        }
        if self.tx.send(chunk).await.is_err() {
            // The writer stopped early; `finish` returns its own error.
            return Err(UploadError::WriterStopped);
        }
        Ok(())
    }

    pub async fn finish(self) -> Result<Received, UploadError> {
        drop(self.tx);
        match self.task.await {
            Ok(r) => Ok(r?),
            Err(e) => Err(UploadError::Body(format!("the writer failed: {e}"))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn open_removes_what_a_crash_left_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let kept: PackageId = "kept-1".parse().unwrap();
        for dir in ["kept-1", "orphan-1", "tmp/x.staging"] {
            fs::create_dir_all(root.join(dir)).unwrap();
            fs::write(root.join(dir).join("data"), b"bytes").unwrap();
        }
        fs::write(root.join("tmp/upload-1.part"), b"half").unwrap();
        let known = HashSet::from([kept.clone()]);
        let files = PackageFiles::open(root, &known).unwrap();
        assert!(files.data_path(&kept).exists());
        assert!(!root.join("orphan-1").exists());
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn upload_is_hashed_and_published_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let files = PackageFiles::open(tmp.path(), &HashSet::new()).unwrap();
        let mut sink = UploadSink::start(files.temp_upload(), 4, 100).unwrap();
        for chunk in [&b"PK\x03"[..], b"\x04hello", b"", b"world"] {
            sink.push(bytes::Bytes::copy_from_slice(chunk))
                .await
                .unwrap();
        }
        let received = sink.finish().await.unwrap();
        assert_eq!(received.head, b"PK\x03\x04hell");
        assert_eq!(received.plan.size(), 14);
        assert_eq!(received.plan.count(), 4);
        let id: PackageId = "p-1".parse().unwrap();
        let part = received.file.path().to_owned();
        files.publish(&id, received.file, b"{}").unwrap();
        assert!(!part.exists());
        assert_eq!(
            fs::read(files.data_path(&id)).unwrap(),
            b"PK\x03\x04helloworld"
        );
        assert_eq!(fs::read(files.info_path(&id)).unwrap(), b"{}");
    }

    #[tokio::test]
    async fn an_upload_of_more_fragments_than_an_info_may_list_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let files = PackageFiles::open(tmp.path(), &HashSet::new()).unwrap();
        let mut sink = UploadSink::start_with(files.temp_upload(), 4, 1 << 20, 3).unwrap();
        sink.push(bytes::Bytes::from_static(b"123456789012"))
            .await
            .unwrap();
        let err = sink
            .push(bytes::Bytes::from_static(b"3"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                UploadError::TooManyFragments {
                    max: 3,
                    fragment_size: 4
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("larger fragment_size"), "{err}");
    }

    #[tokio::test]
    async fn oversized_upload_is_refused_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let files = PackageFiles::open(tmp.path(), &HashSet::new()).unwrap();
        let mut sink = UploadSink::start(files.temp_upload(), 4, 8).unwrap();
        sink.push(bytes::Bytes::from_static(b"12345"))
            .await
            .unwrap();
        let err = sink
            .push(bytes::Bytes::from_static(b"6789"))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::TooLarge { limit: 8 }));
        drop(sink);
        // The writer thread notices the closed queue, and the dropped temp file is removed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::read_dir(tmp.path().join("tmp")).unwrap().count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "temporary upload not removed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
