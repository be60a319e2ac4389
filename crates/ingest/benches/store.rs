//! The costs that matter: what the request path pays (a snapshot load, a request record),
//! and what one file costs to apply, refuse or recognise as unchanged.
//!
//! `cargo bench -p rampart-ingest --bench store`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicU64, Ordering};

use rampart_artifact::testing::{doc, doubled, key, signed};
use rampart_artifact::{Contract, Keyring, Validated};
use rampart_ingest::{Channel, Compiler, Config, Store};

fn main() {
    divan::main();
}

/// The model of the bench: the feature names.
struct Names;

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Compiler for Names {
    type Model = Vec<String>;
    type Error = Never;

    fn compile(&self, validated: &Validated) -> Result<Vec<String>, Never> {
        Ok(validated.document().names().map(str::to_owned).collect())
    }
}

fn store(dir: &std::path::Path) -> Store<Names> {
    let config = Config::new(dir, Contract::default(), Keyring::new([key().public()]));
    let store = Store::boot(config, Names, 0).unwrap();
    store.offer(&signed(&doc(1, 60)), Channel::Watch, 0);
    store
}

#[divan::bench]
fn snapshot_and_model(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    bencher.bench(|| {
        let snap = store.snapshot();
        divan::black_box(snap.scoring_model().map(Vec::len))
    });
}

#[divan::bench]
fn record_request(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let reader = store.reader();
    bencher.bench(|| reader.record_request(divan::black_box(false)));
}

/// A new 60-feature version: verify, validate, compile, journal (fsync), swap, archive
/// (fsync).
#[divan::bench(sample_count = 30, sample_size = 1)]
fn apply_new_version(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let next = AtomicU64::new(2);
    bencher
        .with_inputs(|| {
            let v = next.fetch_add(1, Ordering::Relaxed);
            signed(&doc(v, 60))
        })
        .bench_refs(|bytes| store.offer(bytes, Channel::Watch, 1));
}

/// The 18 November file (240 features, 120 duplicates): refused, counted, logged once.
#[divan::bench]
fn refuse_18_november(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let bytes = signed(&doubled(2, 120));
    bencher.bench(|| store.offer(&bytes, Channel::Watch, 1));
}

/// The watcher re-reading the file that is serving.
#[divan::bench]
fn unchanged(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let bytes = signed(&doc(1, 60));
    bencher.bench(|| store.offer(&bytes, Channel::Watch, 1));
}
