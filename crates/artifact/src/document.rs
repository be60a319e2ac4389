//! The feature file document (schema `rampart.features/v1`), its canonical bytes and digest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The schema identifier of a v1 feature file.
pub const SCHEMA: &str = "rampart.features/v1";

/// A feature file: which request features the bot model reads, with which weights.
///
/// This is plain data: any value of it can exist in memory (a generator builds one field by
/// field). [`crate::validate`] decides whether a consumer may use it, and [`crate::decode`]
/// builds one from untrusted bytes. Field order here is the canonical order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Grows by at least one with every published file.
    pub version: u64,
    /// When the file was generated, RFC 3339.
    pub created_at: String,
    /// Where the file came from.
    pub provenance: Provenance,
    /// What the scorer needs beside per-feature weights.
    pub model: Model,
    /// The features, in the order the scorer evaluates them.
    pub features: Vec<Feature>,
}

/// Where a feature file came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The source, without credentials: `clickhouse://host:8123/default`, `catalog:…`.
    pub source: String,
    /// The exact query (or catalog path) that produced the features.
    pub query: String,
    /// Rows the query returned.
    pub rows: u64,
    /// The program that generated the file.
    pub generator: String,
    /// Its version.
    pub generator_version: String,
    /// The source server's version, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}

/// The model parameters that are not per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Intercept of the logistic model.
    pub bias: f64,
}

/// One feature: a request property computed by a named extractor, and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The extractor's name, as the column is named in ClickHouse.
    pub name: String,
    /// The ClickHouse type name as `system.columns` reports it (`Float64`, `UInt8`…).
    #[serde(rename = "type")]
    pub ty: String,
    /// The logistic weight.
    pub weight: f64,
}

/// A sha256 digest of a document's canonical bytes, written `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

// === impl Document ===

impl Document {
    /// The canonical bytes: compact JSON, fields in declaration order, features in file
    /// order, numbers in their shortest round-trip form. Two documents are equal exactly when
    /// their canonical bytes are, and decoding the canonical bytes gives the document back.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of strings and numbers into a Vec cannot fail, except on
        // a non-finite float, which serde_json writes as `null` (and validation refuses).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The digest of [`canonical_bytes`](Self::canonical_bytes).
    pub fn digest(&self) -> Digest {
        Digest::of(&self.canonical_bytes())
    }

    /// Indented JSON for people (not canonical).
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Feature names in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }
}

// === impl Digest ===

impl Digest {
    /// The sha256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits, for logs and tables.
    pub fn short(&self) -> String {
        hex(self.0.get(..6).unwrap_or(&[]))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex(&self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a digest (expected sha256:<64 hex digits>)")]
pub struct ParseDigestError;

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("sha256:").ok_or(ParseDigestError)?;
        if hex.len() != 64 {
            return Err(ParseDigestError);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let s = std::str::from_utf8(pair).map_err(|_| ParseDigestError)?;
            *byte = u8::from_str_radix(s, 16).map_err(|_| ParseDigestError)?;
        }
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn doc() -> Document {
        Document {
            model: Model { bias: -0.5 },
            ..testing::document(3, vec![testing::feature("ua_length", "UInt32", 0.1)])
        }
    }

    #[test]
    fn canonical_bytes_round_trip() {
        let d = doc();
        let bytes = d.canonical_bytes();
        let back: Document = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.canonical_bytes(), bytes);
    }

    #[test]
    fn canonical_bytes_ignore_formatting() {
        let d = doc();
        let pretty = d.to_pretty_json();
        let back: Document = serde_json::from_str(&pretty).unwrap();
        assert_eq!(back.digest(), d.digest());
    }

    #[test]
    fn digest_changes_with_any_weight() {
        let a = doc();
        let mut b = doc();
        b.features[0].weight = 0.1000001;
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn digest_parses_what_it_prints() {
        let d = doc().digest();
        let s = d.to_string();
        assert!(s.starts_with("sha256:") && s.len() == 71, "{s}");
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert!("sha256:zz".parse::<Digest>().is_err());
        assert!("md5:00".parse::<Digest>().is_err());
        let bad_hex = format!("sha256:{}", "g".repeat(64));
        assert!(bad_hex.parse::<Digest>().is_err());
    }
}
