//! Every bound the artifact code enforces, in one place.
//!
//! Limits that a consumer may choose live in [`crate::Contract`] (with the defaults below);
//! the rest are fixed here because they protect the parser itself.

use std::io::Read;

/// Default cap on the number of features: the edge preallocates room for this many
/// (Cloudflare's bot module had room for 200, about 60 were in use on 18 November 2025).
pub const DEFAULT_MAX_FEATURES: usize = 200;

/// Default lower bound on the number of features: an empty file is a broken query, not a model.
pub const DEFAULT_MIN_FEATURES: usize = 1;

/// Default cap on the size of a document (its canonical bytes, or a bare file as read).
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;

/// Default cap on the length of a feature name, in bytes.
pub const DEFAULT_MAX_NAME_LEN: usize = 64;

/// Default cap on the absolute value of a weight or of the bias. A logistic model whose
/// weights are this large is saturated: every request scores 1 or 99.
pub const DEFAULT_MAX_ABS_WEIGHT: f64 = 1000.0;

/// A contract may not raise `max_features` past this, whatever its file says.
pub const HARD_MAX_FEATURES: usize = 100_000;

/// A contract may not raise `max_bytes` past this, whatever its file says.
pub const HARD_MAX_BYTES: usize = 64 * 1024 * 1024;

/// A contract may not raise `max_name_len` past this.
pub const HARD_MAX_NAME_LEN: usize = 1024;

/// Deepest JSON nesting accepted (a document needs 3 levels, an envelope 3). Checked by a
/// byte scan before any parsing, so a 10,000-deep input costs a few dozen bytes of reading.
pub const MAX_DEPTH: usize = 16;

/// Most signatures an envelope may carry.
pub const MAX_SIGNATURES: usize = 8;

/// An envelope may exceed the base64 size of its payload by at most this many bytes
/// (field names, payload type, signatures).
pub const MAX_ENVELOPE_OVERHEAD: usize = 16 * 1024;

/// Most issues reported for one input; past this a single `truncated` issue says how many
/// more there were, so a 1 MiB file of bad names cannot produce a 1 GiB report.
pub const MAX_REPORTED_ISSUES: usize = 256;

/// Longest excerpt of untrusted text (a name, a type) quoted back in an issue.
pub const MAX_QUOTED_LEN: usize = 64;

/// The largest file that may hold a document of at most `max_bytes`: a bare document is
/// bounded by `max_bytes` itself, a signed envelope by the base64 size of such a payload plus
/// [`MAX_ENVELOPE_OVERHEAD`].
pub fn wire_limit(max_bytes: usize) -> usize {
    max_bytes
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_add(MAX_ENVELOPE_OVERHEAD)
}

/// Reads at most `limit` bytes from `reader`.
///
/// Returns [`TooLarge`] as soon as byte `limit + 1` shows up, having buffered at most
/// `limit + 1` bytes: the size is checked before everything is read, so a 100 MB input costs
/// no more memory than a file at the limit. Callers that can (files) should also check the
/// length from metadata first.
pub fn read_bounded<R: Read>(reader: R, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(ReadError::TooLarge(TooLarge { size: None, limit }));
    }
    Ok(buf)
}

/// An input over its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The size when known (from metadata); `None` when reading stopped at the limit.
    pub size: Option<u64>,
    /// The limit in bytes.
    pub limit: usize,
}

/// Why [`read_bounded`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The input holds more than the limit.
    #[error("input is larger than the limit of {} bytes", .0.limit)]
    TooLarge(TooLarge),
    /// The reader failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bounded_accepts_exactly_the_limit() {
        let data = [7u8; 100];
        assert_eq!(read_bounded(&data[..], 100).unwrap().len(), 100);
    }

    #[test]
    fn read_bounded_refuses_one_byte_more() {
        let data = [7u8; 101];
        assert!(matches!(
            read_bounded(&data[..], 100),
            Err(ReadError::TooLarge(TooLarge { limit: 100, .. }))
        ));
    }

    #[test]
    fn read_bounded_stops_reading_at_the_limit() {
        // An endless reader: would never finish if the cap were not applied while reading.
        let endless = std::io::repeat(b'x');
        assert!(matches!(
            read_bounded(endless, 1024),
            Err(ReadError::TooLarge(_))
        ));
    }

    #[test]
    fn wire_limit_covers_a_base64_payload_at_the_limit() {
        let max = DEFAULT_MAX_BYTES;
        let b64 = max.div_ceil(3) * 4;
        assert!(wire_limit(max) >= b64 + 1024);
        assert_eq!(wire_limit(usize::MAX), usize::MAX);
    }
}
