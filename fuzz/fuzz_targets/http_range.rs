//! Fuzzes the relay's HTTP `Range` header parser, `http_range::parse_range`: the first
//! eight bytes are the body length (big-endian), the rest the header's value. A range it
//! accepts must lie inside the body (`start <= end < len`), since the relay sends
//! `end - start + 1` bytes from `start` on that promise alone; a header that is not a
//! `bytes=` range means the whole body; and the answer must not depend on the blanks
//! around the header's value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitecast_common::http_range::parse_range;

fuzz_target!(|data: &[u8]| {
    let (len, header) = match data.split_first_chunk::<8>() {
        Some((len, header)) => (u64::from_be_bytes(*len), header),
        None => (u64::from(data.first().copied().unwrap_or(0)), &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    for len in [len, len % 1_000_000, 0, 1, u64::MAX] {
        let answer = parse_range(Some(&header), len);
        if let Ok(Some((start, end))) = answer {
            assert!(
                start <= end && end < len,
                "{header:?} of {len}: {start}-{end}"
            );
            let count = end - start + 1;
            assert!(count <= len, "{header:?} of {len}: {count} bytes");
        }
        if !header.trim().starts_with("bytes=") {
            assert_eq!(
                answer,
                Ok(None),
                "{header:?} is no range but was read as one"
            );
        }
        let padded = format!(" \t{header}\t ");
        assert_eq!(parse_range(Some(&padded), len), answer, "{header:?} padded");
    }
    assert_eq!(parse_range(None, len), Ok(None));
});
