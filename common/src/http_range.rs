//! The HTTP `Range` request header as the relay serves fragments with it (RFC 9110
//! §14.2): one `bytes=` range, or none. Pure, so it can be tested and fuzzed apart
//! from the server.

/// A `Range` header that cannot be served (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the requested range is not satisfiable")]
pub struct Unsatisfiable;

/// A single byte range of a body of `len` bytes: `Ok(None)` means the whole body.
///
/// A range it returns is inclusive and inside the body: `start <= end < len`, so the
/// caller may send `end - start + 1` bytes from `start` without further checks.
pub fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: answering the whole body is allowed and simpler.
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| Unsatisfiable)?;
            if n == 0 {
                return Err(Unsatisfiable);
            }
            (
                len.saturating_sub(n),
                len.checked_sub(1).ok_or(Unsatisfiable)?,
            )
        }
        (s, "") => (
            s.parse().map_err(|_| Unsatisfiable)?,
            len.checked_sub(1).ok_or(Unsatisfiable)?,
        ),
        (s, e) => {
            let e: u64 = e.parse().map_err(|_| Unsatisfiable)?;
            (
                s.parse().map_err(|_| Unsatisfiable)?,
                e.min(len.saturating_sub(1)),
            )
        }
    };
    if start > end || start >= len {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::{parse_range, Unsatisfiable};

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Ok(Some((0, 4))));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=x-2"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=-0"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Err(Unsatisfiable));
    }
}
