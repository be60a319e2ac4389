//! Generator benchmarks: the run from a source to a signed file.
//!
//! - `catalog_to_signed_file`: the default source (embedded catalog), every guard, signing
//!   and the atomic writes of the file and the state; needs nothing running.
//! - `clickhouse_to_signed_file`: the same from a local ClickHouse (the 18 November layout,
//!   started by the bench as in the integration tests); goal ≤ 1 s per run.
//!
//! Run: `cargo bench -p rampart-generate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/support/clickhouse.rs"]
mod server;

use rampart_artifact::SecretKey;
use rampart_generate::source::CatalogSource;
use rampart_generate::{Job, Output, Source};
use time::OffsetDateTime;

fn main() {
    divan::main();
}

fn job(dir: &std::path::Path, source: Source) -> Job {
    Job {
        source,
        contracts: vec![rampart_score::edge_contract()],
        key: SecretKey::from_seed([9; 32]),
        state_dir: dir.join("state"),
        output: Output::File(dir.join("features.json")),
        // Every iteration publishes the same content; the bench measures a full run, so each
        // iteration starts from an empty state dir instead.
        approve_delta: false,
        unfreeze: false,
        output_check: None,
        approve_shadow: false,
    }
}

#[divan::bench(sample_count = 30)]
fn catalog_to_signed_file(bencher: divan::Bencher) {
    bencher
        .with_inputs(|| tempfile::tempdir().unwrap())
        .bench_values(|tmp| {
            let j = job(tmp.path(), Source::Catalog(CatalogSource::Embedded));
            let out = j.run_once(OffsetDateTime::now_utc()).unwrap();
            assert_eq!(out.exit_code(), 0);
            tmp
        });
}

#[divan::bench(sample_count = 20)]
fn clickhouse_to_signed_file(bencher: divan::Bencher) {
    let server = server::Server::start();
    server.nov18_layout(&server::catalog_columns(), true);
    let url = server.source_url("default");
    bencher
        .with_inputs(|| tempfile::tempdir().unwrap())
        .bench_values(|tmp| {
            let j = job(tmp.path(), Source::parse(&url).unwrap());
            let out = j.run_once(OffsetDateTime::now_utc()).unwrap();
            assert_eq!(out.exit_code(), 0, "{out}");
            tmp
        });
}
