//! `examples/features.json` at the repository root is the example model, byte for byte.
//! Regenerate it with `RAMPART_BLESS=1 cargo test -p rampart-score --test examples_file`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_artifact::{Contract, Policy, check};
use rampart_score::catalog::edge_contract;
use rampart_score::example::example_document;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/features.json");

#[test]
fn examples_features_json_is_the_example_model() {
    let want = example_document(1).to_pretty_json() + "\n";
    if std::env::var_os("RAMPART_BLESS").is_some() {
        std::fs::write(PATH, &want).unwrap();
    }
    let have = std::fs::read_to_string(PATH).unwrap();
    assert!(
        have == want,
        "examples/features.json is stale: run RAMPART_BLESS=1 cargo test -p rampart-score --test examples_file"
    );
    // And it is valid for the edge (known names) and for the default contract.
    for contract in [edge_contract(), Contract::default()] {
        let policy = Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        };
        check(have.as_bytes(), &policy).unwrap();
    }
}
