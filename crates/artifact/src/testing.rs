//! Builders for tests and benches: documents with N features, the 18 November shape, test keys
//! and signed files, a contract knowing N names. Behind the `test-util` feature, off by default:
//! only test code turns it on (dev-dependencies, and `rampart-e2e`, which is test support), so
//! `cargo build -p rampart-cli` does not carry it.
//!
//! ```toml
//! [dev-dependencies]
//! rampart-artifact = { workspace = true, features = ["test-util"] }
//! ```
//!
//! One set for the workspace, so a test's file cannot drift from the format. Every builder
//! returns a plain value that a test may change afterwards (`d.model.bias = …`), or use with
//! struct-update syntax (`Document { version: 9, ..doc(1, 60) }`).
//!
//! ```
//! use rampart_artifact::testing::{doc, doubled, key, signed};
//! use rampart_artifact::{Contract, Keyring, Policy, check};
//!
//! let contract = Contract::default();
//! let keyring = Keyring::new([key().public()]);
//! let policy = Policy { contract: &contract, keyring: Some(&keyring), previous: None };
//! assert!(check(&signed(&doc(1, 60)), &policy).is_ok());
//! assert!(check(&signed(&doubled(2, 120)), &policy).is_err());
//! ```

use crate::{
    Contract, ContractError, ContractSpec, Document, Envelope, Feature, Model, Provenance, SCHEMA,
    SecretKey,
};

/// The `created_at` of every built document.
pub const CREATED_AT: &str = "2025-11-18T11:05:00Z";

/// The seed of [`key`].
pub const KEY_SEED: [u8; 32] = [7; 32];

/// The seed of [`other_key`].
pub const OTHER_KEY_SEED: [u8; 32] = [9; 32];

/// The weight of each feature of [`doc`].
pub const WEIGHT: f64 = 0.25;

/// The bias of [`doc`].
pub const BIAS: f64 = 0.5;

/// The producer's test key: the one consumers under test trust.
pub fn key() -> SecretKey {
    SecretKey::from_seed(KEY_SEED)
}

/// A second key, for files a consumer under test does not trust.
pub fn other_key() -> SecretKey {
    SecretKey::from_seed(OTHER_KEY_SEED)
}

/// A feature of `name`, ClickHouse type `ty` and `weight`.
pub fn feature(name: &str, ty: &str, weight: f64) -> Feature {
    Feature {
        name: name.to_owned(),
        ty: ty.to_owned(),
        weight,
    }
}

/// `n` features `f_0`, `f_1`, … of type `Float64`, each of `weight`.
pub fn features(n: usize, weight: f64) -> Vec<Feature> {
    (0..n)
        .map(|i| feature(&format!("f_{i}"), "Float64", weight))
        .collect()
}

/// Features of the given names, of type `Float64`, each of `weight`.
pub fn named(names: &[&str], weight: f64) -> Vec<Feature> {
    names
        .iter()
        .map(|n| feature(n, "Float64", weight))
        .collect()
}

/// A document of `version` holding `features`, bias 0, with a test provenance (`rows` is the
/// number of features).
pub fn document(version: u64, features: Vec<Feature>) -> Document {
    Document {
        schema: SCHEMA.to_owned(),
        version,
        created_at: CREATED_AT.to_owned(),
        provenance: Provenance {
            source: "catalog:test".to_owned(),
            query: "q".to_owned(),
            rows: features.len() as u64,
            generator: "test".to_owned(),
            generator_version: "0".to_owned(),
            server_version: None,
        },
        model: Model { bias: 0.0 },
        features,
    }
}

/// A good document of `version`: `n` features `f_0`.. of weight [`WEIGHT`], bias [`BIAS`]
/// (valid against the default contract for `n` up to 200).
pub fn doc(version: u64, n: usize) -> Document {
    doc_weighted(version, n, WEIGHT)
}

/// [`doc`] with every feature of `weight`: files of one version and size that differ.
pub fn doc_weighted(version: u64, n: usize, weight: f64) -> Document {
    Document {
        model: Model { bias: BIAS },
        ..document(version, features(n, weight))
    }
}

/// The 18 November file: [`doc`] with every one of its `n` features twice.
pub fn doubled(version: u64, n: usize) -> Document {
    let mut d = doc(version, n);
    let again = d.features.clone();
    d.features.extend(again);
    d
}

/// The default contract, knowing only the names of [`features`]`(n, _)` and `extra` (the
/// names a test hooks on).
pub fn contract_knowing(n: usize, extra: &[&str]) -> Result<Contract, ContractError> {
    let mut names: Vec<String> = features(n, WEIGHT).into_iter().map(|f| f.name).collect();
    names.extend(extra.iter().map(|n| (*n).to_owned()));
    Contract::try_from(ContractSpec {
        known_names: Some(names),
        ..ContractSpec::default()
    })
}

/// `doc` signed by [`key`], as the wire bytes.
pub fn signed(doc: &Document) -> Vec<u8> {
    signed_by(doc, &key())
}

/// `doc` signed by `key`, as the wire bytes.
pub fn signed_by(doc: &Document, key: &SecretKey) -> Vec<u8> {
    Envelope::sign(doc, key).to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keyring, Policy, check};

    #[test]
    fn a_built_file_passes_and_the_doubled_one_does_not() {
        let contract = Contract::default();
        let keyring = Keyring::new([key().public()]);
        let policy = Policy {
            contract: &contract,
            keyring: Some(&keyring),
            previous: None,
        };
        let ok = check(&signed(&doc(1, 200)), &policy).unwrap();
        assert_eq!(ok.validated.document().features.len(), 200);
        let codes: Vec<_> = check(&signed(&doubled(2, 120)), &policy)
            .unwrap_err()
            .iter()
            .map(crate::Issue::code)
            .collect();
        assert!(codes.contains(&"duplicate_name"), "{codes:?}");
        assert!(codes.contains(&"too_many_features"), "{codes:?}");
        let stranger = check(&signed_by(&doc(1, 10), &other_key()), &policy).unwrap_err();
        assert_eq!(
            stranger.first().map(crate::Issue::code),
            Some("unknown_key")
        );
    }

    #[test]
    fn a_contract_knowing_n_names_refuses_the_next_one() {
        let c = contract_knowing(3, &["hook"]).unwrap();
        assert!(c.knows_name("f_2") && c.knows_name("hook"));
        assert!(!c.knows_name("f_3"));
        assert_eq!(c.max_features(), Contract::default().max_features());
        let codes: Vec<_> = crate::validate(&doc(1, 4), &c, None)
            .unwrap_err()
            .iter()
            .map(crate::Issue::code)
            .collect();
        assert_eq!(codes, ["unknown_name"]);
    }
}
