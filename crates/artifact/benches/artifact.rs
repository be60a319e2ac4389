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

/// Times `check` on `bytes` under the default contract, with `keys` when given; `ok` says
/// whether the input must pass.
fn bench_check(b: Bencher, bytes: &[u8], keys: Option<&Keyring>, ok: bool) {
    let contract = Contract::default();
    b.bench(|| {
        let policy = Policy {
            contract: &contract,
            keyring: keys,
            previous: None,
        };
        let r = check(black_box(bytes), &policy);
        assert_eq!(r.is_ok(), ok);
        r
    });
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
    let keys = keyring();
    bench_check(
        b,
        &corpus("good/signed-features-60.json"),
        Some(&keys),
        true,
    );
}

/// Parse + validate a bare 60-feature file (no signature): the share of the signature.
#[divan::bench]
fn check_bare_60(b: Bencher) {
    bench_check(b, &corpus("good/features-60.json"), None, true);
}

/// The 18 November file is rejected with all 106 issues.
#[divan::bench]
fn reject_nov18(b: Bencher) {
    bench_check(b, &corpus("bad/nov18.json"), None, false);
}

/// A 100 MB input is rejected (goal: ≤ 5 ms, peak heap ≤ 4 MiB).
#[divan::bench]
fn reject_100mb(b: Bencher) {
    bench_check(b, &vec![b'{'; 100 * 1024 * 1024], None, false);
}

/// A 1 MiB file of nesting is rejected (goal: ≤ 5 ms, peak heap ≤ 4 MiB).
#[divan::bench]
fn reject_deep_1mib(b: Bencher) {
    bench_check(b, &vec![b'['; 1024 * 1024], None, false);
}

/// A 1 MiB well-formed-looking file (a long string): the worst case that must be parsed.
#[divan::bench]
fn reject_1mib_string(b: Bencher) {
    let mut bytes = b"{\"schema\":\"".to_vec();
    bytes.resize(1024 * 1024 - 2, b'a');
    bytes.extend_from_slice(b"\"}");
    bench_check(b, &bytes, None, false);
}
