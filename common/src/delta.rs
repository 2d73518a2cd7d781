//! Deltas between two versions of a package (SPEC "Versions, deltas and relay
//! content"): the rsync algorithm of `fast_rsync`, cut into windows so neither
//! side ever holds a package whole.
//!
//! - **Signature by chunks.** A block's signature does not depend on what comes
//!   before it, so the base's signature is built from chunks read one after the
//!   other ([`SignatureBuilder`]): the same bytes as one `Signature::calculate`
//!   over the whole file.
//! - **Windowed delta.** The target is diffed one window at a time (a whole
//!   number of fragments, about [`WINDOW`] bytes) against the whole base's
//!   signature; each window's delta is a frame of the container ([`Header`],
//!   [`FrameHeader`]), which central compresses as one zstd stream.
//! - **Apply by positional reads.** [`apply`] interprets one window's librsync
//!   delta against a base it reads with [`ReadAt`] (the relay's fragment files),
//!   so the base is never loaded: copies are reads at an offset. Its output is
//!   bounded by the frame's announced length.
//!
//! The reconstructed bytes are never trusted: the relay checks every fragment's
//! SHA-256 against the signed info, and the whole digest, before anything counts.

use std::io;

use fast_rsync::{Signature, SignatureOptions};

/// Target bytes per window (rounded down to whole fragments, at least one).
pub const WINDOW: u64 = 8 << 20;
/// Magic of the container: "SCDL" and a version.
pub const MAGIC: [u8; 8] = *b"SCDL\0\0\0\x01";
/// Strong-hash bytes kept per block in the signature (MD4 prefix; matches are
/// only hints: every fragment is verified by SHA-256 afterwards).
pub const CRYPTO_HASH_SIZE: u32 = 8;

const DELTA_MAGIC: u32 = 0x7273_0236;
const OP_END: u8 = 0;
const OP_LITERAL_1: u8 = 0x01;
const OP_LITERAL_64: u8 = 0x40;
const OP_LITERAL_N1: u8 = 0x41;
const OP_LITERAL_N8: u8 = 0x44;
const OP_COPY_N1_N1: u8 = 0x45;
const OP_COPY_N8_N8: u8 = 0x54;

/// Why a delta could not be applied or decoded.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("not a Sitecast delta (bad magic)")]
    BadMagic,
    #[error("bad delta: {0}")]
    Malformed(String),
    #[error("delta copies {len} bytes at {offset}, beyond the base")]
    CopyOutOfBounds { offset: u64, len: u64 },
    #[error("delta writes more than the {limit} bytes its frame announced")]
    TooLong { limit: u64 },
    #[error("reading the base: {0}")]
    Base(#[from] io::Error),
}

/// Block size of the signature for a base of `len` bytes: small blocks find
/// more matches (256 bytes, against rsync's square root of the length), but at
/// most about 256 Ki blocks, so the signature stays a few MiB whatever the size.
pub fn block_size_for(len: u64) -> u32 {
    let size = (len >> 18).clamp(256, 64 << 10);
    // A multiple of 64, which keeps chunk boundaries on block boundaries.
    u32::try_from(size / 64 * 64).unwrap_or(64 << 10)
}

/// The target window for a package with `fragment_size` fragments: whole
/// fragments, about [`WINDOW`] bytes.
pub fn window_for(fragment_size: u64) -> u64 {
    let f = fragment_size.max(1);
    (WINDOW / f).max(1) * f
}

/// Builds a base's signature from consecutive chunks, each a whole number of
/// blocks except the last.
pub struct SignatureBuilder {
    block_size: u32,
    serialized: Vec<u8>,
    header: usize,
}

impl SignatureBuilder {
    pub fn new(block_size: u32) -> Self {
        Self {
            block_size,
            serialized: Vec::new(),
            header: 0,
        }
    }

    /// How many bytes each chunk but the last must hold: a multiple of the block size.
    pub fn chunk_len(&self) -> usize {
        self.block_size as usize * 1024
    }

    /// Adds the next chunk of the base.
    pub fn push(&mut self, chunk: &[u8]) {
        let sig = Signature::calculate(
            chunk,
            SignatureOptions {
                block_size: self.block_size,
                crypto_hash_size: CRYPTO_HASH_SIZE,
            },
        );
        let bytes = sig.serialized();
        // Every serialized signature starts with the same 12-byte header
        // (magic, block size, hash size); the blocks follow.
        if self.serialized.is_empty() {
            self.header = bytes.len() - blocks_len(chunk.len(), self.block_size);
            self.serialized.extend_from_slice(bytes);
        } else {
            self.serialized.extend_from_slice(&bytes[self.header..]);
        }
    }

    /// The whole base's signature.
    pub fn finish(mut self) -> Result<Signature, DeltaError> {
        if self.serialized.is_empty() {
            self.push(&[]);
        }
        Signature::deserialize(self.serialized)
            .map_err(|e| DeltaError::Malformed(format!("signature: {e}")))
    }
}

fn blocks_len(len: usize, block_size: u32) -> usize {
    len.div_ceil(block_size as usize) * (4 + CRYPTO_HASH_SIZE as usize)
}

/// The container's header, after [`MAGIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Target bytes per window (the last one may be shorter).
    pub window: u64,
    /// The whole target's size.
    pub target_size: u64,
}

impl Header {
    pub const LEN: usize = MAGIC.len() + 16;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..16].copy_from_slice(&self.window.to_be_bytes());
        out[16..24].copy_from_slice(&self.target_size.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8; Self::LEN]) -> Result<Self, DeltaError> {
        if bytes[..8] != MAGIC {
            return Err(DeltaError::BadMagic);
        }
        let window = u64::from_be_bytes(bytes[8..16].try_into().unwrap_or_default());
        let target_size = u64::from_be_bytes(bytes[16..24].try_into().unwrap_or_default());
        if window == 0 || window > 4 * WINDOW.max(1 << 30) {
            return Err(DeltaError::Malformed(format!("window of {window} bytes")));
        }
        Ok(Self {
            window,
            target_size,
        })
    }

    /// Target bytes of window `i` (from 0).
    pub fn window_len(&self, i: u64) -> u64 {
        let start = i.saturating_mul(self.window);
        self.window.min(self.target_size.saturating_sub(start))
    }

    /// Number of windows.
    pub fn windows(&self) -> u64 {
        self.target_size.div_ceil(self.window)
    }
}

/// One window's frame: the target bytes it yields and the length of its
/// librsync delta, which follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub out_len: u64,
    pub delta_len: u64,
}

impl FrameHeader {
    pub const LEN: usize = 16;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.out_len.to_be_bytes());
        out[8..].copy_from_slice(&self.delta_len.to_be_bytes());
        out
    }

    /// Decodes a frame header, refusing lengths the header's window cannot
    /// produce, so a hostile frame cannot make the relay allocate much.
    pub fn decode(bytes: &[u8; Self::LEN], header: &Header, i: u64) -> Result<Self, DeltaError> {
        let out_len = u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
        let delta_len = u64::from_be_bytes(bytes[8..].try_into().unwrap_or_default());
        let expected = header.window_len(i);
        if out_len != expected {
            return Err(DeltaError::Malformed(format!(
                "window {i} yields {out_len} bytes, expected {expected}"
            )));
        }
        // A delta is at worst all literals: the bytes plus a little framing.
        if delta_len > out_len + out_len / 16 + 64 {
            return Err(DeltaError::Malformed(format!(
                "window {i}'s delta of {delta_len} bytes is too long for {out_len} bytes"
            )));
        }
        Ok(Self { out_len, delta_len })
    }
}

/// Random access to the base, as positional reads.
pub trait ReadAt {
    /// Fills `buf` from `offset`; an error if the base is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

/// Applies one window's librsync `delta` against `base`, appending at most
/// `limit` bytes to `out`.
pub fn apply(
    base: &(impl ReadAt + ?Sized),
    delta: &[u8],
    out: &mut Vec<u8>,
    limit: u64,
) -> Result<(), DeltaError> {
    let mut rest = delta;
    let mut take = |n: usize, what: &str| -> Result<&[u8], DeltaError> {
        if rest.len() < n {
            return Err(DeltaError::Malformed(format!("truncated {what}")));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let int = |bytes: &[u8]| bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    if int(take(4, "magic")?) != u64::from(DELTA_MAGIC) {
        return Err(DeltaError::Malformed("not an rsync delta".into()));
    }
    let start = out.len() as u64;
    let room = |out: &Vec<u8>, n: u64| -> Result<(), DeltaError> {
        if (out.len() as u64 - start).saturating_add(n) > limit {
            return Err(DeltaError::TooLong { limit });
        }
        Ok(())
    };
    loop {
        let cmd = take(1, "command")?[0];
        match cmd {
            OP_END => break,
            OP_LITERAL_1..=OP_LITERAL_N8 => {
                let n = if cmd <= OP_LITERAL_64 {
                    u64::from(cmd - OP_LITERAL_1 + 1)
                } else {
                    int(take(1 << (cmd - OP_LITERAL_N1), "literal length")?)
                };
                room(out, n)?;
                let n = usize::try_from(n).map_err(|_| DeltaError::TooLong { limit })?;
                out.extend_from_slice(take(n, "literal")?);
            }
            OP_COPY_N1_N1..=OP_COPY_N8_N8 => {
                let mode = cmd - OP_COPY_N1_N1;
                let offset = int(take(1 << (mode / 4), "copy offset")?);
                let len = int(take(1 << (mode % 4), "copy length")?);
                let end = offset.checked_add(len);
                if len == 0 || end.is_none_or(|e| e > base.len()) {
                    return Err(DeltaError::CopyOutOfBounds { offset, len });
                }
                room(out, len)?;
                let at = out.len();
                let len = usize::try_from(len).map_err(|_| DeltaError::TooLong { limit })?;
                out.resize(at + len, 0);
                base.read_exact_at(&mut out[at..], offset)?;
            }
            other => {
                return Err(DeltaError::Malformed(format!(
                    "unknown command 0x{other:02x}"
                )))
            }
        }
    }
    if !rest.is_empty() {
        return Err(DeltaError::Malformed(format!(
            "{} bytes after the end",
            rest.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    fn signature(base: &[u8], block: u32) -> Signature {
        let mut b = SignatureBuilder::new(block);
        for chunk in base.chunks(b.chunk_len()) {
            b.push(chunk);
        }
        b.finish().unwrap()
    }

    #[test]
    fn a_signature_built_by_chunks_is_the_whole_file_s() {
        let base = noise(3 * 1024 * 1024 + 777, 7);
        let block = 1024;
        let whole = Signature::calculate(
            &base,
            SignatureOptions {
                block_size: block,
                crypto_hash_size: CRYPTO_HASH_SIZE,
            },
        );
        assert_eq!(signature(&base, block).serialized(), whole.serialized());
        // An empty base has a signature too.
        assert!(SignatureBuilder::new(block).finish().is_ok());
    }

    #[test]
    fn a_delta_reconstructs_the_target_through_positional_reads() {
        let base = noise(300_000, 1);
        let mut target = base.clone();
        target[1000..1100].copy_from_slice(&noise(100, 2));
        target.splice(50_000..50_000, noise(5000, 3));
        target.truncate(280_000);
        let sig = signature(&base, 1024);
        let mut delta = Vec::new();
        fast_rsync::diff(&sig.index(), &target, &mut delta).unwrap();
        assert!(delta.len() < target.len() / 10, "{}", delta.len());
        let mut out = Vec::new();
        apply(&base[..], &delta, &mut out, target.len() as u64).unwrap();
        assert_eq!(out, target);
        // The frame's limit holds.
        let mut short = Vec::new();
        assert!(matches!(
            apply(&base[..], &delta, &mut short, target.len() as u64 - 1),
            Err(DeltaError::TooLong { .. })
        ));
    }

    #[test]
    fn bad_deltas_are_refused() {
        let base = noise(4096, 1);
        let mut out = Vec::new();
        for bad in [
            &b"nope"[..],
            &[0x72, 0x73, 0x02, 0x36][..],
            &[0x72, 0x73, 0x02, 0x36, 0x49, 0xff, 0xff, 0x10, 0][..],
            &[0x72, 0x73, 0x02, 0x36, 0x99, 0][..],
            &[0x72, 0x73, 0x02, 0x36, 0x41, 200, 1, 2][..],
            &[0x72, 0x73, 0x02, 0x36, 0, 7][..],
        ] {
            assert!(apply(&base[..], bad, &mut out, 1 << 20).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers_round_trip_and_hostile_frames_are_refused() {
        let h = Header {
            window: 8 << 20,
            target_size: 20 << 20,
        };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.windows(), 3);
        assert_eq!(h.window_len(2), 4 << 20);
        let mut bad = h.encode();
        bad[0] = b'X';
        assert!(matches!(Header::decode(&bad), Err(DeltaError::BadMagic)));
        let f = FrameHeader {
            out_len: 8 << 20,
            delta_len: 100,
        };
        assert_eq!(FrameHeader::decode(&f.encode(), &h, 0).unwrap(), f);
        assert!(FrameHeader::decode(&f.encode(), &h, 2).is_err());
        let huge = FrameHeader {
            out_len: 8 << 20,
            delta_len: 1 << 40,
        };
        assert!(FrameHeader::decode(&huge.encode(), &h, 0).is_err());
        assert_eq!(window_for(4 << 20), 8 << 20);
        assert_eq!(window_for(3 << 20), 6 << 20);
        assert_eq!(window_for(64 << 20), 64 << 20);
        assert_eq!(block_size_for(0), 256);
        assert_eq!(block_size_for(64 << 20), 256);
        assert_eq!(block_size_for(1 << 30), 4096);
        assert_eq!(block_size_for(1 << 40), 64 << 10);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn apply_agrees_with_fast_rsync(
            base in proptest::collection::vec(any::<u8>(), 0..5000),
            edits in proptest::collection::vec((0usize..5000, proptest::collection::vec(any::<u8>(), 0..300)), 0..5),
        ) {
            let mut target = base.clone();
            for (at, bytes) in edits {
                let at = at.min(target.len());
                target.splice(at..at, bytes);
            }
            let sig = signature(&base, 64);
            let mut delta = Vec::new();
            fast_rsync::diff(&sig.index(), &target, &mut delta).unwrap();
            let mut ours = Vec::new();
            apply(&base[..], &delta, &mut ours, target.len() as u64).unwrap();
            let mut theirs = Vec::new();
            fast_rsync::apply(&base, &delta, &mut theirs).unwrap();
            prop_assert_eq!(&ours, &target);
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn garbage_never_panics(delta in proptest::collection::vec(any::<u8>(), 0..200)) {
            let base = noise(1000, 5);
            let mut out = Vec::new();
            let _ = apply(&base[..], &delta, &mut out, 10_000);
            let mut framed = vec![0x72, 0x73, 0x02, 0x36];
            framed.extend_from_slice(&delta);
            let _ = apply(&base[..], &framed, &mut out, 10_000);
        }
    }
}
