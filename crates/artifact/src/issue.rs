//! The typed problems that validation reports, every one at once.

use std::fmt;

use serde::Serialize;

use crate::limits::{MAX_QUOTED_LEN, MAX_REPORTED_ISSUES};

/// One specific thing wrong with an input.
///
/// Each variant has a stable [`code`](Issue::code) (used in metrics labels, the JSON output of
/// `rampart artifact validate` and the golden corpus) and a one-line message. Untrusted text
/// quoted back (names, types) is truncated and escaped with [`quote`].
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Issue {
    /// The input is empty (0 bytes, or only whitespace).
    #[error("input is empty")]
    Empty,
    /// The input is larger than allowed; checked before parsing.
    #[error("{what} is {} bytes, over the limit of {limit}", size.map_or_else(|| "more than the limit".into(), |s| s.to_string()))]
    TooLarge {
        /// `file`, `payload` or `document`.
        what: &'static str,
        /// Size in bytes when known.
        size: Option<u64>,
        /// The limit in bytes.
        limit: usize,
    },
    /// The input nests deeper than [`crate::limits::MAX_DEPTH`].
    #[error("JSON nests deeper than {limit} levels (at byte {offset})")]
    TooDeep {
        /// The depth limit.
        limit: usize,
        /// Byte offset where the limit was passed.
        offset: usize,
    },
    /// The input is not valid JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A required field is absent.
    #[error("missing field `{path}`")]
    MissingField {
        /// Where, e.g. `features[3].weight`.
        path: String,
    },
    /// A field has the wrong JSON type or an impossible value.
    #[error("field `{path}` must be {expected}, found {found}")]
    WrongType {
        /// Where.
        path: String,
        /// What was expected.
        expected: &'static str,
        /// What was found (a JSON type name or a short excerpt).
        found: String,
    },
    /// A field this schema does not define (documents are strict: a typo is not ignored).
    #[error("unknown field `{path}`")]
    UnknownField {
        /// Where.
        path: String,
    },
    /// `schema` is not the one this code reads.
    #[error("schema is {found}, expected \"{expected}\"")]
    WrongSchema {
        /// The schema found (quoted).
        found: String,
        /// The schema expected.
        expected: &'static str,
    },
    /// `created_at` is not an RFC 3339 timestamp.
    #[error("created_at {found} is not an RFC 3339 timestamp")]
    BadTimestamp {
        /// The value found (quoted).
        found: String,
    },
    /// `version` is 0; versions start at 1.
    #[error("version must be at least 1")]
    VersionZero,
    /// `version` does not grow over the version already held.
    #[error("version {version} is not above the current version {previous}")]
    VersionNotAbove {
        /// The version of this input.
        version: u64,
        /// The version it would replace.
        previous: u64,
    },
    /// The provenance `source` carries credentials (`user:password@`).
    #[error("provenance.source carries credentials; publish the URL without them")]
    CredentialsInSource,
    /// The same feature name appears more than once.
    #[error("feature {name} appears {count} times")]
    DuplicateName {
        /// The name (quoted).
        name: String,
        /// How many times it appears.
        count: usize,
    },
    /// More features than the consumer has room for.
    #[error("{count} features, over the limit of {limit}")]
    TooManyFeatures {
        /// Features in the input.
        count: usize,
        /// The contract's `max_features`.
        limit: usize,
    },
    /// Fewer features than the contract requires (an empty query result, usually).
    #[error("{count} features, under the minimum of {min}")]
    TooFewFeatures {
        /// Features in the input.
        count: usize,
        /// The contract's `min_features`.
        min: usize,
    },
    /// A feature name is the empty string.
    #[error("features[{index}].name is empty")]
    EmptyName {
        /// Position in `features`.
        index: usize,
    },
    /// A feature name is longer than the contract allows.
    #[error("features[{index}].name is {len} bytes, over the limit of {limit}: {name}")]
    NameTooLong {
        /// Position in `features`.
        index: usize,
        /// Length in bytes.
        len: usize,
        /// The contract's `max_name_len`.
        limit: usize,
        /// The start of the name (quoted, truncated).
        name: String,
    },
    /// A feature name has a character outside `[A-Za-z0-9_.]`, or does not start with a
    /// letter or `_`.
    #[error(
        "features[{index}].name {name} has a forbidden character {character} at byte {position}"
    )]
    MalformedName {
        /// Position in `features`.
        index: usize,
        /// The name (quoted, truncated).
        name: String,
        /// The offending character (quoted).
        character: String,
        /// Its byte offset in the name.
        position: usize,
    },
    /// A feature name the consumer does not know (no extractor computes it).
    #[error("feature {name} is not known to consumer {consumer}")]
    UnknownName {
        /// The name (quoted).
        name: String,
        /// The contract's consumer.
        consumer: String,
    },
    /// A feature type the contract does not allow.
    #[error("feature {name} has type {found}, not one of the allowed types")]
    UnknownType {
        /// The feature name (quoted).
        name: String,
        /// The type (quoted).
        found: String,
    },
    /// A weight or the bias is NaN or infinite.
    #[error("{path} is not a finite number")]
    NonFiniteWeight {
        /// `model.bias` or `features[i].weight`.
        path: String,
    },
    /// A weight or the bias is finite but larger in magnitude than the contract allows.
    #[error("{path} is {value}, beyond ±{limit}")]
    WeightOutOfRange {
        /// Where.
        path: String,
        /// The value.
        value: f64,
        /// The contract's `max_abs_weight`.
        limit: f64,
    },
    /// An envelope whose payload type is not a rampart feature file.
    #[error("payloadType is {found}, expected \"{expected}\"")]
    WrongPayloadType {
        /// What was found (quoted).
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A base64 field does not decode.
    #[error("`{path}` is not valid base64")]
    BadBase64 {
        /// Where.
        path: String,
    },
    /// An envelope carries no signature, or more than allowed.
    #[error("envelope has {count} signatures; between 1 and {limit} are accepted")]
    SignatureCount {
        /// Signatures present.
        count: usize,
        /// [`crate::limits::MAX_SIGNATURES`].
        limit: usize,
    },
    /// A signature by a trusted key that does not verify: the payload was altered, or the
    /// signature was made with another key under the same key id.
    #[error("signature by key {keyid} does not verify")]
    BadSignature {
        /// The key id.
        keyid: String,
    },
    /// No signature is by a key this consumer trusts.
    #[error("signed by unknown key(s) {keyids}; trusted: {trusted}")]
    UnknownKey {
        /// Key ids on the envelope (comma-separated, quoted).
        keyids: String,
        /// Key ids trusted here.
        trusted: String,
    },
    /// A bare document where a signed envelope is required.
    #[error("document is not signed; a signed envelope is required")]
    Unsigned,
    /// More issues than [`MAX_REPORTED_ISSUES`]; this many were left out.
    #[error("{omitted} more issues not shown")]
    Truncated {
        /// Issues left out.
        omitted: usize,
    },
}

// === impl Issue ===

impl Issue {
    /// A stable snake_case code for this kind of issue.
    pub fn code(&self) -> &'static str {
        match self {
            Issue::Empty => "empty",
            Issue::TooLarge { .. } => "too_large",
            Issue::TooDeep { .. } => "too_deep",
            Issue::InvalidJson { .. } => "invalid_json",
            Issue::MissingField { .. } => "missing_field",
            Issue::WrongType { .. } => "wrong_type",
            Issue::UnknownField { .. } => "unknown_field",
            Issue::WrongSchema { .. } => "wrong_schema",
            Issue::BadTimestamp { .. } => "bad_timestamp",
            Issue::VersionZero => "version_zero",
            Issue::VersionNotAbove { .. } => "version_not_above",
            Issue::CredentialsInSource => "credentials_in_source",
            Issue::DuplicateName { .. } => "duplicate_name",
            Issue::TooManyFeatures { .. } => "too_many_features",
            Issue::TooFewFeatures { .. } => "too_few_features",
            Issue::EmptyName { .. } => "empty_name",
            Issue::NameTooLong { .. } => "name_too_long",
            Issue::MalformedName { .. } => "malformed_name",
            Issue::UnknownName { .. } => "unknown_name",
            Issue::UnknownType { .. } => "unknown_type",
            Issue::NonFiniteWeight { .. } => "non_finite_weight",
            Issue::WeightOutOfRange { .. } => "weight_out_of_range",
            Issue::WrongPayloadType { .. } => "wrong_payload_type",
            Issue::BadBase64 { .. } => "bad_base64",
            Issue::SignatureCount { .. } => "signature_count",
            Issue::BadSignature { .. } => "bad_signature",
            Issue::UnknownKey { .. } => "unknown_key",
            Issue::Unsigned => "unsigned",
            Issue::Truncated { .. } => "truncated",
        }
    }

    /// All codes, for documentation and metrics pre-registration.
    pub const CODES: &'static [&'static str] = &[
        "empty",
        "too_large",
        "too_deep",
        "invalid_json",
        "missing_field",
        "wrong_type",
        "unknown_field",
        "wrong_schema",
        "bad_timestamp",
        "version_zero",
        "version_not_above",
        "credentials_in_source",
        "duplicate_name",
        "too_many_features",
        "too_few_features",
        "empty_name",
        "name_too_long",
        "malformed_name",
        "unknown_name",
        "unknown_type",
        "non_finite_weight",
        "weight_out_of_range",
        "wrong_payload_type",
        "bad_base64",
        "signature_count",
        "bad_signature",
        "unknown_key",
        "unsigned",
        "truncated",
    ];
}

/// A list of issues that stops growing at [`MAX_REPORTED_ISSUES`] and counts the rest.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    list: Vec<Issue>,
    omitted: usize,
}

impl Issues {
    pub(crate) fn push(&mut self, issue: Issue) {
        if self.list.len() < MAX_REPORTED_ISSUES {
            self.list.push(issue);
        } else {
            self.omitted = self.omitted.saturating_add(1);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_vec(mut self) -> Vec<Issue> {
        if self.omitted > 0 {
            self.list.push(Issue::Truncated {
                omitted: self.omitted,
            });
        }
        self.list
    }
}

/// Quotes untrusted text for a message: at most [`MAX_QUOTED_LEN`] characters, control and
/// non-printable characters escaped, with a note of the full length when cut.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_QUOTED_LEN) + 16);
    out.push('"');
    for (shown, c) in text.chars().enumerate() {
        if shown == MAX_QUOTED_LEN {
            out.push('"');
            out.push_str(&format!("… ({} bytes)", text.len()));
            return out;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// Lists issues one per line, for humans.
#[derive(Debug)]
pub struct Report<'a>(pub &'a [Issue]);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for issue in self.0 {
            writeln!(f, "{}: {issue}", issue.code())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote("a\u{7}b\n"), "\"a\\u{7}b\\n\"");
    }

    #[test]
    fn quote_truncates_long_text_and_says_how_long() {
        let long = "x".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < 100, "{q}");
        assert!(q.ends_with("(10000 bytes)"), "{q}");
    }

    #[test]
    fn issues_stop_growing_and_count_the_rest() {
        let mut issues = Issues::default();
        for _ in 0..MAX_REPORTED_ISSUES + 5 {
            issues.push(Issue::Empty);
        }
        let v = issues.into_vec();
        assert_eq!(v.len(), MAX_REPORTED_ISSUES + 1);
        assert_eq!(v.last(), Some(&Issue::Truncated { omitted: 5 }));
    }

    #[test]
    fn every_code_is_listed_once() {
        let mut codes = Issue::CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Issue::CODES.len());
        assert!(codes.contains(&Issue::VersionZero.code()));
        assert!(codes.contains(&Issue::Truncated { omitted: 1 }.code()));
    }

    #[test]
    fn serializes_with_its_code() {
        let v = serde_json::to_value(Issue::TooManyFeatures {
            count: 240,
            limit: 200,
        })
        .unwrap();
        assert_eq!(v["code"], "too_many_features");
        assert_eq!(v["count"], 240);
    }
}
