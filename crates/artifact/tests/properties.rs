//! Properties over arbitrary inputs: nothing panics, and canonical bytes round-trip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use rampart_artifact::{
    Contract, Document, Envelope, Feature, Keyring, Model, Policy, Provenance, SCHEMA, SecretKey,
    check, decode, validate,
};

fn good_bytes() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/good/features-60.json"
    ))
    .unwrap()
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1000.0f64..1000.0,
        any::<f64>().prop_filter("finite", |w| w.is_finite() && w.abs() <= 1000.0),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
    ]
}

fn document() -> impl Strategy<Value = Document> {
    let feature = (
        "[a-z_][a-z0-9_.]{0,40}",
        "(Float64|Float32|UInt8|UInt32|Int64)",
        weight(),
    )
        .prop_map(|(name, ty, weight)| Feature { name, ty, weight });
    (
        1u64..u64::MAX,
        proptest::collection::vec(feature, 0..80),
        weight(),
        ".{0,60}",
        proptest::option::of("[0-9.]{1,12}"),
    )
        .prop_map(
            |(version, features, bias, query, server_version)| Document {
                schema: SCHEMA.into(),
                version,
                created_at: "2025-11-18T11:20:00.123456+01:00".into(),
                provenance: Provenance {
                    source: "clickhouse://127.0.0.1:8123/default".into(),
                    query,
                    rows: features.len() as u64,
                    generator: "proptest".into(),
                    generator_version: "0".into(),
                    server_version,
                },
                model: Model { bias },
                features,
            },
        )
}

fn inspect_policy(contract: &Contract) -> Policy<'_> {
    Policy {
        contract,
        keyring: None,
        previous: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let contract = Contract::default();
        let keys = Keyring::new([SecretKey::from_seed([1; 32]).public()]);
        let _ = check(&bytes, &inspect_policy(&contract));
        // With a keyring, random bytes must never verify: no key signed them.
        let verified = check(&bytes, &Policy { contract: &contract, keyring: Some(&keys), previous: None });
        prop_assert!(verified.is_err(), "random bytes verified: {bytes:?}");
        let _ = decode(&bytes, 1024);
    }

    #[test]
    fn mutated_good_files_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let mut bytes = good_bytes();
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        let contract = Contract::default();
        let _ = check(&bytes, &inspect_policy(&contract));
    }

    #[test]
    fn truncated_good_files_never_panic_and_never_pass(cut in 0usize..10_000) {
        let bytes = good_bytes();
        // Cut inside the content: dropping only trailing whitespace leaves the same file.
        let cut = cut % bytes.trim_ascii_end().len();
        let contract = Contract::default();
        prop_assert!(check(&bytes[..cut], &inspect_policy(&contract)).is_err());
    }

    #[test]
    fn parse_after_serialize_is_the_identity(doc in document()) {
        let bytes = doc.canonical_bytes();
        let back = decode(&bytes, usize::MAX / 2).unwrap().document;
        prop_assert_eq!(&back, &doc);
        prop_assert_eq!(back.canonical_bytes(), bytes);
        // Pretty output decodes to the same digest.
        let pretty = decode(doc.to_pretty_json().as_bytes(), usize::MAX / 2).unwrap().document;
        prop_assert_eq!(pretty.digest(), doc.digest());
    }

    #[test]
    fn signed_documents_verify_and_keep_their_digest(doc in document()) {
        let key = SecretKey::from_seed([5; 32]);
        let keys = Keyring::new([key.public()]);
        let env = Envelope::sign(&doc, &key).to_json();
        let contract = Contract::from_toml("max_features = 100000\nmin_features = 0").unwrap();
        let policy = Policy { contract: &contract, keyring: Some(&keys), previous: None };
        match check(&env, &policy) {
            Ok(checked) => {
                prop_assert_eq!(checked.validated.digest(), doc.digest());
                prop_assert_eq!(checked.signer, Some(key.public().id().clone()));
            }
            // Random names may collide; nothing else may fail.
            Err(issues) => prop_assert!(issues.iter().all(|i| i.code() == "duplicate_name"), "{:?}", issues),
        }
    }

    #[test]
    fn validate_never_panics_on_any_floats(doc in document(), w in any::<f64>(), b in any::<f64>()) {
        let mut doc = doc;
        doc.model.bias = b;
        if let Some(f) = doc.features.first_mut() {
            f.weight = w;
        }
        let _ = validate(&doc, &Contract::default(), None);
    }
}
