//! What the control plane pays per operation: a durable commit (fsync), a heartbeat batch,
//! a node's desired state and etag, and checking a publish against a contract.
//!
//! `cargo bench -p rampart-control --bench control`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rampart_api::{Heartbeat, Labels, Registration};
use rampart_artifact::{ContractSpec, Keyring, testing};
use rampart_control::auth::Tokens;
use rampart_control::fleet::Fleet;
use rampart_control::store::{Batch, BeatRecord, NewAudit, NodeRecord, SqliteStore, Store, Write};
use rampart_control::{Config, Service};

fn main() {
    divan::main();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One audit entry, committed and fsynced (what every acknowledged write costs at least).
#[divan::bench(sample_count = 50)]
fn commit_one_write(b: divan::Bencher) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    b.bench_local(|| {
        rt.block_on(store.commit(Batch::one(Write::Audit(NewAudit {
            at_ms: 1,
            who: "bench".into(),
            action: "bench".into(),
            subject: "s".into(),
            reason: None,
            detail: serde_json::Value::Null,
        }))))
        .unwrap();
    });
}

/// 1,000 nodes' heartbeats written in one flush.
#[divan::bench(sample_count = 20)]
fn flush_1000_heartbeats(b: divan::Bencher) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut beat = Heartbeat::empty(0);
    for s in 1..=99 {
        beat.scores.record(s);
    }
    b.with_inputs(|| {
        (0..1000)
            .map(|i| BeatRecord {
                node: format!("edge-{i}"),
                at_ms: 1,
                beat: beat.clone(),
            })
            .collect::<Vec<_>>()
    })
    .bench_local_values(|beats| rt.block_on(store.record_beats(beats)).unwrap());
}

/// What a heartbeat answer costs to compute: desired version, switches, etag.
#[divan::bench]
fn desired_state_and_etag(b: divan::Bencher) {
    let mut fleet = Fleet::default();
    for i in 0..1000 {
        fleet.apply(&Write::PutNode(Box::new(NodeRecord {
            registration: Registration {
                node: format!("edge-{i}"),
                labels: Labels {
                    pop: "p".into(),
                    region: "r".into(),
                    canary: false,
                },
                contract: ContractSpec::default(),
                software_version: "0".into(),
            },
            registered_at_ms: 0,
        })));
    }
    b.bench_local(|| fleet.desire("features", divan::black_box("edge-500")));
}

/// Verifying and validating a signed 64-feature file against the default contract.
#[divan::bench]
fn validate_a_publish(b: divan::Bencher) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(
        dir.path().to_owned(),
        Tokens::default(),
        Keyring::new([testing::key().public()]),
    );
    let service = rt
        .block_on(Service::open(
            config,
            SqliteStore::open(dir.path()).unwrap(),
        ))
        .unwrap();
    // The names of the recorded runs (`feature_N`), so the numbers stay comparable.
    let features = (0..64)
        .map(|i| testing::feature(&format!("feature_{i}"), "Float64", 0.5))
        .collect();
    let bytes = testing::signed(&testing::document(1, features));
    b.bench_local(|| service.validate(divan::black_box(&bytes)).unwrap());
}
