//! `cargo bench -p rampart-artifact`: the untrusted-input path, timed, with allocation counts
//! per iteration (divan's AllocProfiler). Peak-heap bounds are asserted in tests/heap.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use divan::{AllocProfiler, Bencher, black_box};
use rampart_artifact::{Contract, Keyring, Policy, PublicKey, check};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/corpus/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn keyring() -> Keyring {
    let pem = std::fs::read_to_string(format!(
        "{}/tests/keys/test.pub",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    Keyring::new([PublicKey::from_pem(&pem).unwrap()])
}

/// Verify + parse + validate a signed 60-feature file (goal: median ≤ 100 µs).
#[divan::bench]
fn check_signed_60(b: Bencher) {
    let bytes = corpus("good/signed-features-60.json");
    let contract = Contract::default();
    let keys = keyring();
    b.bench(|| {
        let policy = Policy {
            contract: &contract,
            keyring: Some(&keys),
            previous: None,
        };
        check(black_box(&bytes), &policy).unwrap()
    });
}

/// Parse + validate a bare 60-feature file (no signature): the share of the signature.
#[divan::bench]
fn check_bare_60(b: Bencher) {
    let bytes = corpus("good/features-60.json");
    let contract = Contract::default();
    b.bench(|| {
        let policy = Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        };
        check(black_box(&bytes), &policy).unwrap()
    });
}

/// The 18 November file is rejected with all 106 issues.
#[divan::bench]
fn reject_nov18(b: Bencher) {
    let bytes = corpus("bad/nov18.json");
    let contract = Contract::default();
    b.bench(|| {
        let policy = Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        };
        check(black_box(&bytes), &policy).unwrap_err()
    });
}

/// A 100 MB input is rejected (goal: ≤ 5 ms, peak heap ≤ 4 MiB).
#[divan::bench]
fn reject_100mb(b: Bencher) {
    let bytes = vec![b'{'; 100 * 1024 * 1024];
    let contract = Contract::default();
    b.bench(|| {
        let policy = Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        };
        check(black_box(&bytes), &policy).unwrap_err()
    });
}

/// A 1 MiB file of nesting is rejected (goal: ≤ 5 ms, peak heap ≤ 4 MiB).
#[divan::bench]
fn reject_deep_1mib(b: Bencher) {
    let bytes = vec![b'['; 1024 * 1024];
    let contract = Contract::default();
    b.bench(|| {
        let policy = Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        };
        check(black_box(&bytes), &policy).unwrap_err()
    });
}

/// A 1 MiB well-formed-looking file (a long string): the worst case that must be parsed.
#[divan::bench]
fn reject_1mib_string(b: Bencher) {
    let mut bytes = b"{\"schema\":\"".to_vec();
    bytes.resize(1024 * 1024 - 2, b'a');
    bytes.extend_from_slice(b"\"}");
    let contract = Contract::default();
    b.bench(|| {
        let policy = Policy {
            contract: &contract,
            keyring: None,
            previous: None,
        };
        check(black_box(&bytes), &policy).unwrap_err()
    });
}
