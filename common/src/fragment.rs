//! The fragment plan: a package file cut into fixed-size fragments, with the
//! SHA-256 of each fragment and of the whole file.
//!
//! [`FragmentHasher`] is push-based so central can feed it the chunks of an upload
//! as they arrive (it never holds more than one fragment's hasher state, never the
//! data); [`plan_reader`] drives it from any `Read`. Fragments are numbered from 1,
//! as in OCS.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// Smallest fragment size accepted: every fragment costs a request and 64 hex digits
/// in the signed info every agent downloads, so a tiny one only bloats the info.
pub const MIN_FRAGMENT_SIZE: u64 = 4 << 10;

/// Largest fragment size accepted: a fragment is the unit of retry and of the
/// download deadlines, so it must stay small.
pub const MAX_FRAGMENT_SIZE: u64 = 64 << 20;

/// Most fragments a package may have: its info stays under 5 MB (a fragment's digest
/// is 64 hex digits and some JSON), whatever the package; a larger package takes a
/// larger fragment size (at [`MAX_FRAGMENT_SIZE`], 4 TiB).
pub const MAX_FRAGMENTS: u64 = 65_536;

/// `fragment_size` is one central may cut a new package into: within
/// [`MIN_FRAGMENT_SIZE`]..=[`MAX_FRAGMENT_SIZE`]. (Plans and infos read back accept any
/// size up to the maximum: the bound is central's policy, the count is what they check.)
pub fn check_fragment_size(fragment_size: u64) -> Result<(), FragmentError> {
    if (MIN_FRAGMENT_SIZE..=MAX_FRAGMENT_SIZE).contains(&fragment_size) {
        Ok(())
    } else {
        Err(FragmentError::BadFragmentSize(fragment_size))
    }
}

/// The result of hashing a file: its size, digest and per-fragment digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentPlan {
    size: u64,
    fragment_size: u64,
    sha256: Sha256Digest,
    fragments: Vec<Sha256Digest>,
}

/// A fragment number outside `1..=count`, or a plan whose parts disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("fragment size must be between 4KiB and 64MiB, got {0} bytes")]
    BadFragmentSize(u64),
    #[error("{count} fragments are more than a package may have ({MAX_FRAGMENTS}); use a larger fragment size")]
    TooManyFragments { count: u64 },
    #[error("fragment {index} does not exist (the package has {count})")]
    NoSuchFragment { index: u32, count: u32 },
    #[error("a package of {size} bytes in fragments of {fragment_size} bytes has {expected} fragments, not {actual}")]
    CountMismatch {
        size: u64,
        fragment_size: u64,
        expected: u64,
        actual: u64,
    },
    #[error("fragment {index}: expected SHA-256 {expected}, got {actual}")]
    HashMismatch {
        index: u32,
        expected: String,
        actual: String,
    },
}

impl FragmentPlan {
    /// Rebuilds a plan from its parts (as an info document carries them), checking
    /// that the fragment count fits the size.
    pub fn from_parts(
        size: u64,
        fragment_size: u64,
        sha256: Sha256Digest,
        fragments: Vec<Sha256Digest>,
    ) -> Result<Self, FragmentError> {
        if fragment_size == 0 || fragment_size > MAX_FRAGMENT_SIZE {
            return Err(FragmentError::BadFragmentSize(fragment_size));
        }
        let expected = size.div_ceil(fragment_size);
        if expected > MAX_FRAGMENTS {
            return Err(FragmentError::TooManyFragments { count: expected });
        }
        if expected != fragments.len() as u64 || expected > u64::from(u32::MAX) {
            return Err(FragmentError::CountMismatch {
                size,
                fragment_size,
                expected,
                actual: fragments.len() as u64,
            });
        }
        Ok(Self {
            size,
            fragment_size,
            sha256,
            fragments,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn fragment_size(&self) -> u64 {
        self.fragment_size
    }

    pub fn sha256(&self) -> &Sha256Digest {
        &self.sha256
    }

    pub fn fragments(&self) -> &[Sha256Digest] {
        &self.fragments
    }

    /// Number of fragments (0 for an empty file).
    pub fn count(&self) -> u32 {
        // from_parts and the hasher both bound the count by u32::MAX.
        u32::try_from(self.fragments.len()).unwrap_or(u32::MAX)
    }

    /// Byte offset and length of fragment `index` (1-based) in the whole file.
    pub fn range(&self, index: u32) -> Result<(u64, u64), FragmentError> {
        let count = self.count();
        if index == 0 || index > count {
            return Err(FragmentError::NoSuchFragment { index, count });
        }
        let offset = u64::from(index - 1) * self.fragment_size;
        Ok((offset, self.fragment_size.min(self.size - offset)))
    }

    /// The expected digest of fragment `index` (1-based).
    pub fn digest(&self, index: u32) -> Result<&Sha256Digest, FragmentError> {
        let count = self.count();
        index
            .checked_sub(1)
            .and_then(|i| self.fragments.get(i as usize))
            .ok_or(FragmentError::NoSuchFragment { index, count })
    }

    /// Checks one fragment's bytes against the plan.
    pub fn verify(&self, index: u32, bytes: &[u8]) -> Result<(), FragmentError> {
        let expected = self.digest(index)?;
        let actual: Sha256Digest = Sha256::digest(bytes).into();
        if &actual != expected {
            return Err(FragmentError::HashMismatch {
                index,
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
        Ok(())
    }
}

/// Hashes a stream of bytes into a [`FragmentPlan`] as they are pushed.
#[derive(Clone)]
pub struct FragmentHasher {
    fragment_size: u64,
    whole: Sha256,
    current: Sha256,
    in_current: u64,
    size: u64,
    fragments: Vec<Sha256Digest>,
}

impl FragmentHasher {
    pub fn new(fragment_size: u64) -> Result<Self, FragmentError> {
        if fragment_size == 0 || fragment_size > MAX_FRAGMENT_SIZE {
            return Err(FragmentError::BadFragmentSize(fragment_size));
        }
        Ok(Self {
            fragment_size,
            whole: Sha256::new(),
            current: Sha256::new(),
            in_current: 0,
            size: 0,
            fragments: Vec::new(),
        })
    }

    /// Bytes pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let room = (self.fragment_size - self.in_current).min(data.len() as u64) as usize;
            let (head, tail) = data.split_at(room);
            self.current.update(head);
            self.in_current += room as u64;
            data = tail;
            if self.in_current == self.fragment_size {
                self.fragments.push(self.current.finalize_reset().into());
                self.in_current = 0;
            }
        }
    }

    pub fn finish(mut self) -> FragmentPlan {
        if self.in_current > 0 {
            self.fragments.push(self.current.finalize().into());
        }
        FragmentPlan {
            size: self.size,
            fragment_size: self.fragment_size,
            sha256: self.whole.finalize().into(),
            fragments: self.fragments,
        }
    }
}

/// Hashes everything `reader` yields into a plan.
pub fn plan_reader<R: Read>(mut reader: R, fragment_size: u64) -> io::Result<FragmentPlan> {
    let mut hasher = FragmentHasher::new(fragment_size)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// SHA-256 of a byte slice, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reassemble(plan: &FragmentPlan, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 1..=plan.count() {
            let (off, len) = plan.range(i).unwrap();
            let slice = &data[off as usize..(off + len) as usize];
            plan.verify(i, slice).unwrap();
            out.extend_from_slice(slice);
        }
        out
    }

    proptest! {
        #[test]
        fn plan_reassembles_any_input(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            fragment_size in 1u64..700,
            chunk in 1usize..900,
        ) {
            let mut hasher = FragmentHasher::new(fragment_size).unwrap();
            for piece in data.chunks(chunk) {
                hasher.update(piece);
            }
            let plan = hasher.finish();
            prop_assert_eq!(plan.size(), data.len() as u64);
            prop_assert_eq!(plan.count() as u64, (data.len() as u64).div_ceil(fragment_size));
            prop_assert_eq!(reassemble(&plan, &data), data.clone());
            prop_assert_eq!(hex::encode(plan.sha256()), sha256_hex(&data));
            prop_assert_eq!(&plan_reader(&data[..], fragment_size).unwrap(), &plan);
            let rebuilt = FragmentPlan::from_parts(
                plan.size(), fragment_size, *plan.sha256(), plan.fragments().to_vec()).unwrap();
            prop_assert_eq!(rebuilt, plan);
        }
    }

    #[test]
    fn empty_file_has_no_fragments() {
        let plan = plan_reader(&b""[..], 4).unwrap();
        assert_eq!(plan.count(), 0);
        assert_eq!(
            hex::encode(plan.sha256()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            plan.range(1),
            Err(FragmentError::NoSuchFragment { index: 1, count: 0 })
        );
    }

    #[test]
    fn exact_multiple_has_no_short_tail() {
        let data = [7u8; 12];
        let plan = plan_reader(&data[..], 4).unwrap();
        assert_eq!(plan.count(), 3);
        assert_eq!(plan.range(3).unwrap(), (8, 4));
        assert_eq!(
            plan.range(0),
            Err(FragmentError::NoSuchFragment { index: 0, count: 3 })
        );
    }

    #[test]
    fn flipped_byte_is_named() {
        let data = b"hello fragments".to_vec();
        let plan = plan_reader(&data[..], 5).unwrap();
        let mut bad = data[5..10].to_vec();
        bad[0] ^= 1;
        match plan.verify(2, &bad) {
            Err(FragmentError::HashMismatch {
                index,
                expected,
                actual,
            }) => {
                assert_eq!(index, 2);
                assert_eq!(expected, sha256_hex(&data[5..10]));
                assert_eq!(actual, sha256_hex(&bad));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn fragment_sizes_and_counts_are_bounded() {
        assert_eq!(
            FragmentHasher::new(0).err(),
            Some(FragmentError::BadFragmentSize(0))
        );
        assert!(FragmentHasher::new(MAX_FRAGMENT_SIZE + 1).is_err());
        assert_eq!(
            check_fragment_size(1),
            Err(FragmentError::BadFragmentSize(1))
        );
        assert!(check_fragment_size(MIN_FRAGMENT_SIZE).is_ok());
        assert!(check_fragment_size(MAX_FRAGMENT_SIZE).is_ok());
        assert!(check_fragment_size(MAX_FRAGMENT_SIZE + 1).is_err());
        // An info naming more fragments than a package may have is refused unread.
        let count = MAX_FRAGMENTS + 1;
        assert_eq!(
            FragmentPlan::from_parts(count * 4096, 4096, [0; 32], Vec::new()),
            Err(FragmentError::TooManyFragments { count })
        );
        assert!(matches!(
            FragmentPlan::from_parts(10, 4, [0; 32], vec![[0; 32]; 2]),
            Err(FragmentError::CountMismatch {
                expected: 3,
                actual: 2,
                ..
            })
        ));
    }
}
