//! Contract validation: pure, reports every issue at once.

use std::collections::HashMap;

use crate::contract::Contract;
use crate::decode::Skip;
use crate::document::{Digest, Document, SCHEMA};
use crate::issue::{Issue, Issues, quote};

/// A document that passed validation against a contract. Only [`validate`] and
/// [`crate::check`] make one.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    document: Document,
    digest: Digest,
    canonical_len: usize,
}

// === impl Validated ===

impl Validated {
    /// The document.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The digest of its canonical bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Size of its canonical bytes.
    pub fn canonical_len(&self) -> usize {
        self.canonical_len
    }

    /// The document's version.
    pub fn version(&self) -> u64 {
        self.document.version
    }

    /// Gives the document back.
    pub fn into_document(self) -> Document {
        self.document
    }
}

/// Checks a document against a consumer's contract and, when given, the version it would
/// replace. Reports every issue at once.
pub fn validate(
    document: &Document,
    contract: &Contract,
    previous: Option<&Document>,
) -> Result<Validated, Vec<Issue>> {
    let mut issues = Issues::default();
    let count = document.features.len();
    content(
        document,
        count,
        Skip::default(),
        contract,
        previous,
        &mut issues,
    );
    finish(document.clone(), contract, issues)
}

/// Adds the size check, computes the digest, and builds the result.
pub(crate) fn finish(
    document: Document,
    contract: &Contract,
    mut issues: Issues,
) -> Result<Validated, Vec<Issue>> {
    let canonical = document.canonical_bytes();
    if canonical.len() > contract.max_bytes() {
        issues.push(Issue::TooLarge {
            what: "document",
            size: u64::try_from(canonical.len()).ok(),
            limit: contract.max_bytes(),
        });
    }
    if !issues.is_empty() {
        return Err(issues.into_vec());
    }
    Ok(Validated {
        digest: Digest::of(&canonical),
        canonical_len: canonical.len(),
        document,
    })
}

/// Every content check. `count` is the number of entries in `features` as read (malformed
/// ones included); `skip` names fields whose shape was already reported.
pub(crate) fn content(
    doc: &Document,
    count: usize,
    skip: Skip,
    contract: &Contract,
    previous: Option<&Document>,
    issues: &mut Issues,
) {
    if !skip.schema && doc.schema != SCHEMA {
        issues.push(Issue::WrongSchema {
            found: quote(&doc.schema),
            expected: SCHEMA,
        });
    }
    if !skip.version {
        if doc.version == 0 {
            issues.push(Issue::VersionZero);
        }
        if let Some(prev) = previous
            && doc.version <= prev.version
        {
            issues.push(Issue::VersionNotAbove {
                version: doc.version,
                previous: prev.version,
            });
        }
    }
    if !skip.created_at
        && time::OffsetDateTime::parse(
            &doc.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .is_err()
    {
        issues.push(Issue::BadTimestamp {
            found: quote(&doc.created_at),
        });
    }
    if has_credentials(&doc.provenance.source) {
        issues.push(Issue::CredentialsInSource);
    }
    if !skip.bias {
        weight("model.bias", doc.model.bias, contract, issues);
    }
    if skip.features {
        return;
    }
    if count > contract.max_features() {
        issues.push(Issue::TooManyFeatures {
            count,
            limit: contract.max_features(),
        });
    }
    if count < contract.min_features() {
        issues.push(Issue::TooFewFeatures {
            count,
            min: contract.min_features(),
        });
    }
    // Duplicates first: on 18 November they were the root cause, so they lead the report.
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(doc.features.len());
    let mut order: Vec<&str> = Vec::new();
    for f in &doc.features {
        let n = seen.entry(f.name.as_str()).or_insert(0);
        *n += 1;
        if *n == 2 {
            order.push(f.name.as_str());
        }
    }
    for name in order {
        issues.push(Issue::DuplicateName {
            name: quote(name),
            count: seen.get(name).copied().unwrap_or(2),
        });
    }
    for (index, f) in doc.features.iter().enumerate() {
        let name_ok = check_name(index, &f.name, contract, issues);
        if name_ok && !contract.knows_name(&f.name) {
            issues.push(Issue::UnknownName {
                name: quote(&f.name),
                consumer: contract.consumer().to_owned(),
            });
        }
        if !contract.allows_type(&f.ty) {
            issues.push(Issue::UnknownType {
                name: quote(&f.name),
                found: quote(&f.ty),
            });
        }
        weight(
            &format!("features[{index}].weight"),
            f.weight,
            contract,
            issues,
        );
    }
}

/// The name rule: 1 to `max_name_len` bytes, `[A-Za-z_][A-Za-z0-9_.]*`.
fn check_name(index: usize, name: &str, contract: &Contract, issues: &mut Issues) -> bool {
    if name.is_empty() {
        issues.push(Issue::EmptyName { index });
        return false;
    }
    if name.len() > contract.max_name_len() {
        issues.push(Issue::NameTooLong {
            index,
            len: name.len(),
            limit: contract.max_name_len(),
            name: quote(name),
        });
        return false;
    }
    for (position, c) in name.char_indices() {
        let ok = c.is_ascii_alphabetic()
            || c == '_'
            || (position > 0 && (c.is_ascii_digit() || c == '.'));
        if !ok {
            issues.push(Issue::MalformedName {
                index,
                name: quote(name),
                character: quote(c.encode_utf8(&mut [0; 4])),
                position,
            });
            return false;
        }
    }
    true
}

fn weight(path: &str, value: f64, contract: &Contract, issues: &mut Issues) {
    if !value.is_finite() {
        issues.push(Issue::NonFiniteWeight {
            path: path.to_owned(),
        });
    } else if value.abs() > contract.max_abs_weight() {
        issues.push(Issue::WeightOutOfRange {
            path: path.to_owned(),
            value,
            limit: contract.max_abs_weight(),
        });
    }
}

/// `scheme://user:pass@host…` or a password in the query string.
fn has_credentials(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    if lower.contains("password=") {
        return true;
    }
    match source.split_once("://") {
        Some((_, rest)) => rest
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|authority| authority.contains('@')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::doc;

    fn codes(d: &Document, c: &Contract, prev: Option<&Document>) -> Vec<&'static str> {
        match validate(d, c, prev) {
            Ok(_) => vec![],
            Err(issues) => issues.iter().map(Issue::code).collect(),
        }
    }

    #[test]
    fn a_good_document_validates_with_its_digest() {
        let d = doc(2, 60);
        let v = validate(&d, &Contract::default(), None).unwrap();
        assert_eq!(v.digest(), d.digest());
        assert_eq!(v.document(), &d);
        assert_eq!(v.canonical_len(), d.canonical_bytes().len());
    }

    #[test]
    fn the_18_november_file_reports_each_duplicate_and_the_count() {
        let mut d = doc(2, 120);
        let copy = d.features.clone();
        d.features.extend(copy);
        let issues = validate(&d, &Contract::default(), None).unwrap_err();
        assert_eq!(
            issues[0],
            Issue::TooManyFeatures {
                count: 240,
                limit: 200
            }
        );
        assert_eq!(
            issues[1],
            Issue::DuplicateName {
                name: "\"f_0\"".into(),
                count: 2
            }
        );
        assert_eq!(
            issues
                .iter()
                .filter(|i| i.code() == "duplicate_name")
                .count(),
            120
        );
    }

    #[test]
    fn a_duplicate_under_the_limit_is_still_an_issue() {
        let mut d = doc(2, 3);
        d.features[2].name = "f_0".into();
        assert_eq!(codes(&d, &Contract::default(), None), ["duplicate_name"]);
    }

    #[test]
    fn exactly_the_limit_passes_one_more_fails() {
        assert!(codes(&doc(2, 200), &Contract::default(), None).is_empty());
        assert_eq!(
            codes(&doc(2, 201), &Contract::default(), None),
            ["too_many_features"]
        );
    }

    #[test]
    fn no_features_is_too_few() {
        assert_eq!(
            codes(&doc(2, 0), &Contract::default(), None),
            ["too_few_features"]
        );
    }

    #[test]
    fn names_follow_the_rule() {
        let mut d = doc(2, 5);
        d.features[0].name = String::new();
        d.features[1].name = "x".repeat(10_000);
        d.features[2].name = "bad\u{0}name".into();
        d.features[3].name = "1starts_with_digit".into();
        d.features[4].name = "ok.nested_name_2".into();
        assert_eq!(
            codes(&d, &Contract::default(), None),
            [
                "empty_name",
                "name_too_long",
                "malformed_name",
                "malformed_name"
            ]
        );
        let issues = validate(&d, &Contract::default(), None).unwrap_err();
        // The 10 KB name is quoted back short.
        assert!(issues[1].to_string().len() < 200, "{}", issues[1]);
        assert!(issues[2].to_string().contains("\\0"), "{}", issues[2]);
    }

    #[test]
    fn unknown_names_and_types() {
        let c =
            Contract::from_toml("known_names = [\"f_0\", \"f_1\"]\nallowed_types = [\"Float64\"]")
                .unwrap();
        let mut d = doc(2, 3);
        d.features[1].ty = "Array(String)".into();
        assert_eq!(codes(&d, &c, None), ["unknown_type", "unknown_name"]);
    }

    #[test]
    fn weights_must_be_finite_and_bounded() {
        let mut d = doc(2, 3);
        d.features[0].weight = f64::NAN;
        d.features[1].weight = f64::INFINITY;
        d.features[2].weight = 1e300;
        d.model.bias = f64::NEG_INFINITY;
        assert_eq!(
            codes(&d, &Contract::default(), None),
            [
                "non_finite_weight",
                "non_finite_weight",
                "non_finite_weight",
                "weight_out_of_range"
            ]
        );
    }

    #[test]
    fn versions_must_grow() {
        let prev = doc(2, 3);
        let mut d = doc(2, 3);
        assert_eq!(
            codes(&d, &Contract::default(), Some(&prev)),
            ["version_not_above"]
        );
        d.version = 3;
        assert!(codes(&d, &Contract::default(), Some(&prev)).is_empty());
        d.version = 0;
        assert_eq!(codes(&d, &Contract::default(), None), ["version_zero"]);
    }

    #[test]
    fn schema_timestamp_and_credentials() {
        let mut d = doc(2, 3);
        d.schema = "rampart.features/v2".into();
        d.created_at = "yesterday".into();
        d.provenance.source = "clickhouse://bot:hunter2@ch:8123/default".into();
        assert_eq!(
            codes(&d, &Contract::default(), None),
            ["wrong_schema", "bad_timestamp", "credentials_in_source"]
        );
    }

    #[test]
    fn credentials_detection() {
        assert!(has_credentials("http://u:p@h/x"));
        assert!(has_credentials("http://h/x?user=a&password=b"));
        assert!(!has_credentials("http://h/x@y"));
        assert!(!has_credentials("catalog:embedded"));
    }

    #[test]
    fn size_is_bounded_by_the_contract() {
        let c = Contract::from_toml("max_bytes = 500").unwrap();
        assert_eq!(codes(&doc(2, 60), &c, None), ["too_large"]);
    }
}
