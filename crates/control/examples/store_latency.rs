//! Commit latency and open+load time of every store backend, side by side, in one run:
//! SQLite (`synchronous=FULL`), NATS on one server (R1) and NATS on a 3-server cluster (R3),
//! all on loopback.
//!
//! ```text
//! cargo run --release -p rampart-control --example store_latency [-- COMMITS]
//! ```
//!
//! Each commit is one batch as a reconcile writes it: a rollout's new state, a desired
//! version, the order sequence and an audit entry. Open+load is a fresh store on the same
//! state (NATS: the newest snapshot plus the log after it) followed by `load()`.
//! Needs `nats-server` on PATH.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed step ends it"
)]

use std::time::{Duration, Instant};

use rampart_artifact::Digest;
use rampart_control::Store as _;
use rampart_control::store::{
    AnyStore, Batch, NatsConfig, NewAudit, RolloutRecord, StoreSpec, Target, Write,
};
use rampart_e2e::NatsCluster;

/// Commits measured per backend unless given on the command line.
const DEFAULT_COMMITS: usize = 2_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let commits = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("COMMITS: a number"))
        .unwrap_or(DEFAULT_COMMITS);
    let r1 = NatsCluster::start(1);
    let r3 = NatsCluster::start(3);
    let sqlite_dir = tempfile::tempdir().unwrap();
    let nats = |cluster: &NatsCluster| {
        let mut c = NatsConfig::parse(&cluster.url()).unwrap();
        c.namespace = "BENCH".into();
        StoreSpec::Nats(c)
    };
    let backends = [
        ("SQLite", StoreSpec::Sqlite),
        ("NATS R1", nats(&r1)),
        ("NATS R3", nats(&r3)),
    ];
    println!(
        "{commits} commits per backend, one batch each (rollout state, desired, order, audit)\n"
    );
    println!("| backend | commit p50 | commit p99 | commit max | open+load |");
    println!("|---|---|---|---|---|");
    for (name, spec) in backends {
        let (mut times, open) = measure(&spec, sqlite_dir.path(), commits).await;
        times.sort();
        println!(
            "| {name} | {} | {} | {} | {} |",
            show(percentile(&times, 50.0)),
            show(percentile(&times, 99.0)),
            show(*times.last().unwrap()),
            show(open),
        );
    }
}

/// Commits `commits` batches on a fresh store, then times opening it again and loading.
async fn measure(
    spec: &StoreSpec,
    dir: &std::path::Path,
    commits: usize,
) -> (Vec<Duration>, Duration) {
    let store = AnyStore::open(spec, dir).await.unwrap();
    store
        .commit(Batch::one(Write::SetEpoch { epoch: 1, at_ms: 1 }))
        .await
        .unwrap();
    let mut times = Vec::with_capacity(commits);
    for n in 0..commits as u64 {
        let batch = reconcile(n);
        let start = Instant::now();
        store.commit(batch).await.unwrap();
        times.push(start.elapsed());
    }
    drop(store);
    let start = Instant::now();
    let store = AnyStore::open(spec, dir).await.unwrap();
    let loaded = store.load().await.unwrap();
    let open = start.elapsed();
    assert_eq!(loaded.order.unwrap().seq, commits as u64);
    (times, open)
}

/// A batch as one reconcile step writes it.
fn reconcile(n: u64) -> Batch {
    let digest = Digest::of(&n.to_le_bytes());
    Batch {
        writes: vec![
            Write::PutRollout(Box::new(RolloutRecord {
                id: 1,
                kind: "features".into(),
                digest,
                done: false,
                state: serde_json::json!({ "wave": n % 4, "step": n, "observations": [1, 2, 3] }),
            })),
            Write::SetDesired {
                kind: "features".into(),
                node: Some(format!("edge-{}", n % 100)),
                target: Some(Target { version: n, digest }),
            },
            Write::NextOrder { at_ms: n },
            Write::Audit(NewAudit {
                at_ms: n,
                who: "control".into(),
                action: "rollout.promote".into(),
                subject: "rollout 1".into(),
                reason: None,
                detail: serde_json::json!({ "wave": n % 4 }),
            }),
        ],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
