//! Rebuilding a package from a delta against a base the relay holds whole
//! (SPEC "Versions, deltas and relay content").
//!
//! The delta (a zstd stream of windows, `sitecast_common::delta`) is read one
//! window at a time; each window's librsync delta is applied against the base's
//! fragment files by positional reads ([`BaseFragments`]), never loading the
//! base. The window is cut into fragments and each one counts only if its
//! SHA-256 is the signed info's; when every window came through, the whole
//! file's digest must match too or nothing counts. Verified fragments are
//! written to temporary files, fsynced, and renamed into the cache at the end;
//! what the delta could not give (a corrupt stream, a base that is not what
//! central believes) is left for plain fragment fetches.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sitecast_common::delta::{self, FrameHeader, Header, ReadAt};
use sitecast_common::fragment::FragmentPlan;
use sitecast_common::ids::PackageId;

use crate::cache::Cache;
use crate::error::RelayError;

/// A held package's fragment files, read as one file by offset.
pub struct BaseFragments<'a> {
    cache: &'a Cache,
    id: &'a PackageId,
    plan: &'a FragmentPlan,
    open: RefCell<BTreeMap<u32, File>>,
}

impl<'a> BaseFragments<'a> {
    pub fn new(cache: &'a Cache, id: &'a PackageId, plan: &'a FragmentPlan) -> Self {
        Self {
            cache,
            id,
            plan,
            open: RefCell::new(BTreeMap::new()),
        }
    }
}

impl ReadAt for BaseFragments<'_> {
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        let size = self.plan.fragment_size().max(1);
        while !buf.is_empty() {
            let index =
                u32::try_from(offset / size + 1).map_err(|_| io::ErrorKind::UnexpectedEof)?;
            let within = offset % size;
            let (_, len) = self
                .plan
                .range(index)
                .map_err(|_| io::ErrorKind::UnexpectedEof)?;
            let n = buf
                .len()
                .min(usize::try_from(len - within).unwrap_or(usize::MAX));
            let mut open = self.open.borrow_mut();
            if !open.contains_key(&index) {
                // Few files stay open: copies move forward through the base.
                if open.len() >= 64 {
                    open.clear();
                }
                open.insert(index, File::open(self.cache.fragment_path(self.id, index))?);
            }
            if let Some(file) = open.get(&index) {
                file.read_exact_at(&mut buf[..n], within)?;
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.plan.size()
    }
}

/// What a delta gave.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// Fragments verified and committed to the cache.
    pub indices: Vec<u32>,
    /// Fragments the delta produced that did not match the signed info.
    pub mismatched: u32,
    /// Why it stopped early or counted nothing, if it did.
    pub problem: Option<String>,
}

/// Rebuilds `target` from the delta in `delta_file` against `base`, both
/// described by their verified signed infos' plans, committing each fragment
/// not already `held`. Blocking.
pub fn rebuild(
    cache: &Cache,
    target: (&PackageId, &FragmentPlan),
    base: (&PackageId, &FragmentPlan),
    delta_file: &Path,
    held: &BTreeSet<u32>,
) -> Result<Rebuilt, RelayError> {
    let (id, plan) = target;
    let base = BaseFragments::new(cache, base.0, base.1);
    let file = File::open(delta_file).map_err(RelayError::io(delta_file))?;
    let mut stream = zstd::Decoder::new(file).map_err(RelayError::io(delta_file))?;
    let mut out = Rebuilt::default();
    let mut written: Vec<(u32, PathBuf)> = Vec::new();
    let complete = match apply_windows(
        cache,
        id,
        plan,
        &base,
        &mut stream,
        held,
        &mut written,
        &mut out,
    ) {
        Ok(()) => true,
        Err(problem) => {
            out.problem = Some(problem);
            false
        }
    };
    if complete && out.mismatched > 0 {
        out.problem = Some(format!(
            "{} fragment(s) did not match: the base is not what central believes",
            out.mismatched
        ));
    }
    for (index, tmp) in written {
        cache.commit_fragment(&tmp, id, index)?;
        out.indices.push(index);
    }
    Ok(out)
}

/// Applies every window; an `Err` says why it stopped (what was verified before
/// stays in `written`). A whole-digest mismatch discards everything written.
#[allow(clippy::too_many_arguments)]
fn apply_windows(
    cache: &Cache,
    id: &PackageId,
    plan: &FragmentPlan,
    base: &BaseFragments<'_>,
    stream: &mut impl Read,
    held: &BTreeSet<u32>,
    written: &mut Vec<(u32, PathBuf)>,
    out: &mut Rebuilt,
) -> Result<(), String> {
    let mut head = [0u8; Header::LEN];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("delta header: {e}"))?;
    let header = Header::decode(&head).map_err(|e| e.to_string())?;
    let fragment_size = plan.fragment_size().max(1);
    if header.target_size != plan.size() || header.window % fragment_size != 0 {
        return Err(format!(
            "delta for {} bytes in windows of {}, the signed info says {} bytes in fragments of {fragment_size}",
            header.target_size,
            header.window,
            plan.size()
        ));
    }
    let mut whole = Sha256::new();
    let mut window = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..header.windows() {
        let mut fh = [0u8; FrameHeader::LEN];
        stream
            .read_exact(&mut fh)
            .map_err(|e| format!("window {i}: {e}"))?;
        let frame = FrameHeader::decode(&fh, &header, i).map_err(|e| e.to_string())?;
        bytes.resize(usize::try_from(frame.delta_len).unwrap_or(0), 0);
        stream
            .read_exact(&mut bytes)
            .map_err(|e| format!("window {i}: {e}"))?;
        window.clear();
        delta::apply(base, &bytes, &mut window, frame.out_len)
            .map_err(|e| format!("window {i}: {e}"))?;
        if window.len() as u64 != frame.out_len {
            return Err(format!(
                "window {i} yielded {} bytes, not {}",
                window.len(),
                frame.out_len
            ));
        }
        whole.update(&window);
        let first = u32::try_from(i * header.window / fragment_size + 1).unwrap_or(u32::MAX);
        for (k, chunk) in window.chunks(fragment_size as usize).enumerate() {
            let index = first.saturating_add(k as u32);
            let expected = plan.digest(index).map_err(|e| e.to_string())?;
            let actual: [u8; 32] = Sha256::digest(chunk).into();
            if &actual != expected {
                out.mismatched += 1;
                continue;
            }
            if held.contains(&index) {
                continue;
            }
            let tmp = cache.temp_path(id, index);
            write_synced(&tmp, chunk).map_err(|e| format!("{}: {e}", tmp.display()))?;
            written.push((index, tmp));
        }
    }
    let digest: [u8; 32] = whole.finalize().into();
    if out.mismatched == 0 && &digest != plan.sha256() {
        for (_, tmp) in written.drain(..) {
            let _ = std::fs::remove_file(tmp);
        }
        return Err("the rebuilt file's digest is not the signed info's".into());
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sitecast_common::delta::SignatureBuilder;
    use sitecast_common::fragment::FragmentHasher;

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

    fn plan(bytes: &[u8], fragment: u64) -> FragmentPlan {
        let mut h = FragmentHasher::new(fragment).unwrap();
        h.update(bytes);
        h.finish()
    }

    /// A delta container, as central writes it.
    fn container(base: &[u8], target: &[u8], fragment: u64) -> Vec<u8> {
        let mut b = SignatureBuilder::new(delta::block_size_for(base.len() as u64));
        for c in base.chunks(b.chunk_len()) {
            b.push(c);
        }
        let sig = b.finish().unwrap();
        let header = Header {
            window: delta::window_for(fragment),
            target_size: target.len() as u64,
        };
        let mut raw = header.encode().to_vec();
        for w in target.chunks(header.window as usize) {
            let mut d = Vec::new();
            fast_rsync::diff(&sig.index(), w, &mut d).unwrap();
            raw.extend_from_slice(
                &FrameHeader {
                    out_len: w.len() as u64,
                    delta_len: d.len() as u64,
                }
                .encode(),
            );
            raw.extend_from_slice(&d);
        }
        zstd::encode_all(&raw[..], 3).unwrap()
    }

    struct Setup {
        _tmp: tempfile::TempDir,
        cache: Cache,
        delta: PathBuf,
        target: Vec<u8>,
        tplan: FragmentPlan,
        bplan: FragmentPlan,
    }

    const FRAG: u64 = 64 << 10;

    fn setup(corrupt_base: bool) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(&tmp.path().join("cache")).unwrap();
        let base = noise(3 << 20, 1);
        let mut target = base.clone();
        target.splice(100_000..100_000, noise(3000, 2));
        target[2_000_000..2_000_100].copy_from_slice(&noise(100, 3));
        let bplan = plan(&base, FRAG);
        let b: PackageId = "app-1".parse().unwrap();
        let mut on_disk = base.clone();
        if corrupt_base {
            // The relay's base differs from central's in fragment 20 (still
            // "held": the relay does not know).
            on_disk[20 * FRAG as usize + 5] ^= 0xff;
        }
        for (i, c) in on_disk.chunks(FRAG as usize).enumerate() {
            cache.store_fragment(&b, i as u32 + 1, c).unwrap();
        }
        let delta = tmp.path().join("d");
        std::fs::write(&delta, container(&base, &target, FRAG)).unwrap();
        Setup {
            tplan: plan(&target, FRAG),
            bplan,
            cache,
            delta,
            target,
            _tmp: tmp,
        }
    }

    fn ids() -> (PackageId, PackageId) {
        ("app-2".parse().unwrap(), "app-1".parse().unwrap())
    }

    #[test]
    fn a_delta_rebuilds_every_fragment_and_skips_those_held() {
        let s = setup(false);
        let (t, b) = ids();
        let held = BTreeSet::from([1, 2]);
        let r = rebuild(&s.cache, (&t, &s.tplan), (&b, &s.bplan), &s.delta, &held).unwrap();
        assert_eq!(r.problem, None);
        let count = s.tplan.count();
        assert_eq!(r.indices, (3..=count).collect::<Vec<_>>());
        let mut rebuilt = Vec::new();
        for i in 3..=count {
            rebuilt.extend(std::fs::read(s.cache.fragment_path(&t, i)).unwrap());
        }
        assert_eq!(rebuilt, s.target[2 * FRAG as usize..]);
    }

    #[test]
    fn a_wrong_base_yields_only_the_fragments_that_verify() {
        let s = setup(true);
        let (t, b) = ids();
        let r = rebuild(
            &s.cache,
            (&t, &s.tplan),
            (&b, &s.bplan),
            &s.delta,
            &BTreeSet::new(),
        )
        .unwrap();
        assert!(r.mismatched >= 1, "{r:?}");
        assert!(r.problem.as_deref().unwrap().contains("base"), "{r:?}");
        assert_eq!(r.indices.len() as u32 + r.mismatched, s.tplan.count());
        for i in &r.indices {
            let bytes = std::fs::read(s.cache.fragment_path(&t, *i)).unwrap();
            s.tplan.verify(*i, &bytes).unwrap();
        }
    }

    #[test]
    fn a_corrupt_delta_counts_nothing_unverified() {
        let s = setup(false);
        let (t, b) = ids();
        let mut bytes = std::fs::read(&s.delta).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        bytes.truncate(bytes.len() - 10);
        std::fs::write(&s.delta, &bytes).unwrap();
        let r = rebuild(
            &s.cache,
            (&t, &s.tplan),
            (&b, &s.bplan),
            &s.delta,
            &BTreeSet::new(),
        )
        .unwrap();
        assert!(r.problem.is_some(), "{r:?}");
        for i in &r.indices {
            let bytes = std::fs::read(s.cache.fragment_path(&t, *i)).unwrap();
            s.tplan.verify(*i, &bytes).unwrap();
        }
        assert!((r.indices.len() as u32) < s.tplan.count());
        // Not a delta at all.
        std::fs::write(&s.delta, b"garbage").unwrap();
        let r = rebuild(
            &s.cache,
            (&t, &s.tplan),
            (&b, &s.bplan),
            &s.delta,
            &BTreeSet::new(),
        )
        .unwrap();
        assert!(r.indices.is_empty() && r.problem.is_some());
    }
}
