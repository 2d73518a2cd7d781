//! Central's delta cache: a compressed delta per (base, target) pair, computed
//! once with `fast_rsync` and kept in `DIR/deltas/BASE..TARGET.delta`.
//!
//! The base's signature is built chunk by chunk and the target diffed one window
//! at a time (`sitecast_common::delta`), each window's delta a frame of one zstd
//! stream written to a temporary file, fsynced and renamed: a crash leaves no
//! half delta, and memory stays a few windows whatever the package size.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sitecast_common::delta::{self, FrameHeader, Header, SignatureBuilder};
use sitecast_common::ids::PackageId;

use crate::error::CentralError;
use sitecast_io::fsync_dir;

/// zstd levels: deltas are computed once and sent to every relay, so more CPU
/// for fewer WAN bytes pays — up to a size where the strongest level would take
/// minutes.
const LEVEL: i32 = 19;
const LEVEL_LARGE: i32 = 9;
const LARGE: u64 = 256 << 20;

/// The deltas directory.
#[derive(Debug)]
pub struct Deltas {
    dir: PathBuf,
    /// One computation at a time: two relays asking for the same pair wait for
    /// one result, and the machine's cores stay for serving.
    computing: Mutex<()>,
}

impl Deltas {
    /// Opens `dir`, removing temporary files a crash left.
    pub fn open(dir: &Path) -> Result<Self, CentralError> {
        fs::create_dir_all(dir).map_err(CentralError::io(dir))?;
        for entry in fs::read_dir(dir).map_err(CentralError::io(dir))? {
            let path = entry.map_err(CentralError::io(dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(CentralError::io(&path))?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            computing: Mutex::new(()),
        })
    }

    pub fn path(&self, base: &PackageId, target: &PackageId) -> PathBuf {
        self.dir.join(format!("{base}..{target}.delta"))
    }

    /// The delta from `base` to `target` (their data files), computed if not
    /// cached; returns its path and size. Blocking.
    pub fn get_or_compute(
        &self,
        base: (&PackageId, &Path),
        target: (&PackageId, &Path),
        fragment_size: u64,
    ) -> Result<(PathBuf, u64), CentralError> {
        let path = self.path(base.0, target.0);
        if let Ok(meta) = fs::metadata(&path) {
            return Ok((path, meta.len()));
        }
        let _one = self.computing.lock().unwrap_or_else(|e| e.into_inner());
        // Another relay's request may have computed it meanwhile.
        if let Ok(meta) = fs::metadata(&path) {
            return Ok((path, meta.len()));
        }
        let started = std::time::Instant::now();
        let tmp = path.with_extension("tmp");
        let result = compute(base.1, target.1, fragment_size, &tmp);
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path).map_err(CentralError::io(&path))?;
        fsync_dir(&self.dir)?;
        let size = fs::metadata(&path).map_err(CentralError::io(&path))?.len();
        tracing::info!(base = %base.0, target = %target.0, bytes = size, ms = started.elapsed().as_millis() as u64, "delta computed");
        Ok((path, size))
    }

    /// Removes every delta that starts or ends at `package` (it was deleted).
    pub fn forget(&self, package: &PackageId) -> Result<(), CentralError> {
        let start = format!("{package}..");
        let end = format!("..{package}.delta");
        for entry in fs::read_dir(&self.dir).map_err(CentralError::io(&self.dir))? {
            let entry = entry.map_err(CentralError::io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&start) || name.ends_with(&end) {
                let p = entry.path();
                fs::remove_file(&p).map_err(CentralError::io(&p))?;
            }
        }
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the file).
fn read_full(file: &mut File, buf: &mut [u8], path: &Path) -> Result<usize, CentralError> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CentralError::io(path)(e)),
        }
    }
    Ok(filled)
}

/// Writes the delta container from `base` to `target` into `out`, fsynced.
fn compute(base: &Path, target: &Path, fragment_size: u64, out: &Path) -> Result<(), CentralError> {
    let base_len = fs::metadata(base).map_err(CentralError::io(base))?.len();
    let mut builder = SignatureBuilder::new(delta::block_size_for(base_len));
    let mut chunk = vec![0u8; builder.chunk_len()];
    let mut file = File::open(base).map_err(CentralError::io(base))?;
    loop {
        let n = read_full(&mut file, &mut chunk, base)?;
        if n == 0 {
            break;
        }
        builder.push(&chunk[..n]);
        if n < chunk.len() {
            break;
        }
    }
    drop(chunk);
    let signature = builder
        .finish()
        .map_err(|e| CentralError::Invalid(e.to_string()))?;
    let index = signature.index();

    let target_len = fs::metadata(target)
        .map_err(CentralError::io(target))?
        .len();
    let header = Header {
        window: delta::window_for(fragment_size),
        target_size: target_len,
    };
    let sink = File::create(out).map_err(CentralError::io(out))?;
    let level = if target_len > LARGE {
        LEVEL_LARGE
    } else {
        LEVEL
    };
    let mut z = zstd::Encoder::new(BufWriter::new(sink), level).map_err(CentralError::io(out))?;
    z.write_all(&header.encode())
        .map_err(CentralError::io(out))?;
    let mut window = vec![0u8; usize::try_from(header.window).unwrap_or(usize::MAX)];
    let mut frame = Vec::new();
    let mut file = File::open(target).map_err(CentralError::io(target))?;
    for i in 0..header.windows() {
        let len = usize::try_from(header.window_len(i)).unwrap_or(usize::MAX);
        let n = read_full(&mut file, &mut window[..len], target)?;
        if n != len {
            return Err(CentralError::Invalid(format!(
                "{} changed while its delta was computed",
                target.display()
            )));
        }
        frame.clear();
        fast_rsync::diff(&index, &window[..n], &mut frame)
            .map_err(|e| CentralError::Invalid(format!("delta: {e}")))?;
        let head = FrameHeader {
            out_len: n as u64,
            delta_len: frame.len() as u64,
        };
        z.write_all(&head.encode()).map_err(CentralError::io(out))?;
        z.write_all(&frame).map_err(CentralError::io(out))?;
    }
    let writer = z.finish().map_err(CentralError::io(out))?;
    let file = writer
        .into_inner()
        .map_err(|e| CentralError::io(out)(e.into_error()))?;
    file.sync_all().map_err(CentralError::io(out))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Applies a container from its bytes, as a relay does (whole, for the test).
    fn apply_all(base: &[u8], container: &[u8]) -> Vec<u8> {
        let raw = zstd::decode_all(container).unwrap();
        let header = Header::decode(raw[..Header::LEN].try_into().unwrap()).unwrap();
        let mut at = Header::LEN;
        let mut out = Vec::new();
        for i in 0..header.windows() {
            let f = FrameHeader::decode(
                raw[at..at + FrameHeader::LEN].try_into().unwrap(),
                &header,
                i,
            )
            .unwrap();
            at += FrameHeader::LEN;
            let d = &raw[at..at + f.delta_len as usize];
            at += f.delta_len as usize;
            delta::apply(base, d, &mut out, f.out_len).unwrap();
        }
        assert_eq!(at, raw.len());
        out
    }

    #[test]
    fn a_delta_is_computed_once_cached_and_reconstructs_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let base = noise(20 << 20, 1);
        // v2: v1 with a changed stretch, an insertion and a cut end, over three windows.
        let mut target = base.clone();
        target[5 << 20..(5 << 20) + 4096].copy_from_slice(&noise(4096, 2));
        target.splice(9 << 20..9 << 20, noise(100_000, 3));
        target.truncate(19 << 20);
        let (bp, tp) = (tmp.path().join("b"), tmp.path().join("t"));
        fs::write(&bp, &base).unwrap();
        fs::write(&tp, &target).unwrap();
        let deltas = Deltas::open(&tmp.path().join("deltas")).unwrap();
        let (b, t): (PackageId, PackageId) = ("app-1".parse().unwrap(), "app-2".parse().unwrap());
        let (path, size) = deltas
            .get_or_compute((&b, &bp), (&t, &tp), 4 << 20)
            .unwrap();
        assert!(size < 200_000, "{size}");
        let container = fs::read(&path).unwrap();
        assert_eq!(container.len() as u64, size);
        assert_eq!(apply_all(&base, &container), target);
        // Cached: not computed again (the target may even be gone).
        fs::remove_file(&tp).unwrap();
        assert_eq!(
            deltas
                .get_or_compute((&b, &bp), (&t, &tp), 4 << 20)
                .unwrap(),
            (path.clone(), size)
        );
        // A deleted package takes its deltas with it; a crash's leftovers go at open.
        fs::write(tmp.path().join("deltas/x..y.tmp"), b"half").unwrap();
        deltas.forget(&t).unwrap();
        assert!(!path.exists());
        Deltas::open(&tmp.path().join("deltas")).unwrap();
        assert!(!tmp.path().join("deltas/x..y.tmp").exists());
    }
}
