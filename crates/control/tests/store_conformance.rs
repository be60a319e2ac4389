//! One conformance suite for every `Store` backend: SQLite, NATS on one server, NATS on a
//! 3-server cluster (R3). Each case gets a fresh store (a temporary dir, or a namespace of
//! its own on the shared servers); the NATS-only cases check what SQLite gets from its file
//! lock and fsync: a stale writer is fenced, and nothing acknowledged is lost nor any audit
//! entry duplicated when a NATS server or the writing process is SIGKILLed.
//!
//! Needs `nats-server` on PATH (see `rampart_e2e::nats`); fails loudly without it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step fails the test"
)]

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_api::{
    ArtifactMeta, BadMark, Heartbeat, KillSwitchEntry, Labels, Module, Registration,
};
use rampart_artifact::{ContractSpec, Digest};
use rampart_control::store::nats::SNAPSHOT_EVERY;
use rampart_control::store::{
    AnyStore, ArtifactRecord, Batch, BeatRecord, NatsConfig, NatsStore, NewAudit, NodeRecord,
    RolloutRecord, SqliteStore, Store, StoreError, StoreSpec, Target, Write,
};
use rampart_e2e::NatsCluster;

/// A limit above every audit log here.
const ALL: usize = 1_000_000;

// === the backends ===

/// Where a case's store lives; [`Backend::open`] may be called again to reopen it.
enum Backend {
    Sqlite(tempfile::TempDir),
    Nats(NatsConfig),
}

impl Backend {
    fn sqlite() -> Self {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    fn nats(cluster: &NatsCluster, namespace: &str) -> Self {
        let mut config = NatsConfig::parse(&cluster.url()).unwrap();
        config.namespace = namespace.to_uppercase();
        Backend::Nats(config)
    }

    async fn open(&self) -> AnyStore {
        match self {
            Backend::Sqlite(dir) => AnyStore::Sqlite(SqliteStore::open(dir.path()).unwrap()),
            Backend::Nats(config) => {
                AnyStore::Nats(Box::new(NatsStore::open(config).await.unwrap()))
            }
        }
    }
}

/// Runs every case, each on a fresh backend from `make(case name)`.
async fn suite(make: impl Fn(&str) -> Backend) {
    a_batch_lands_whole_or_not_at_all(make("whole")).await;
    one_running_rollout_per_kind(make("rollouts")).await;
    everything_committed_is_there_after_reopening(make("reopen")).await;
    the_order_sequence_moves_only_with_its_batch(make("order")).await;
    artifacts_are_found_by_digest_version_and_time(make("artifacts")).await;
    the_audit_log_pages_in_order(make("audit")).await;
    the_heartbeat_window_is_bounded_and_removal_clears_it(make("beats")).await;
    every_node_s_latest_beat_is_loaded(make("fleet")).await;
}

#[tokio::test]
async fn conformance_sqlite() {
    suite(|_| Backend::sqlite()).await;
}

#[tokio::test]
async fn conformance_nats_single_server() {
    let cluster = NatsCluster::start(1);
    suite(|case| Backend::nats(&cluster, case)).await;
}

#[tokio::test]
async fn conformance_nats_three_server_cluster() {
    let cluster = NatsCluster::start(3);
    suite(|case| Backend::nats(&cluster, case)).await;
}

// === the cases ===

fn meta(v: u64) -> ArtifactMeta {
    ArtifactMeta {
        digest: Digest::of(&v.to_le_bytes()),
        kind: "features".into(),
        version: v,
        features: 1,
        size: 3,
        signer: "k".into(),
        created_at: "t".into(),
        source: "s".into(),
        published_at_ms: v,
        published_by: "gen".into(),
        bad: None,
        blessed: false,
    }
}

fn put(v: u64) -> Write {
    Write::PutArtifact(Box::new(ArtifactRecord {
        meta: meta(v),
        bytes: format!("bytes of {v}").into_bytes(),
    }))
}

fn audit(n: u64) -> Write {
    Write::Audit(NewAudit {
        at_ms: n,
        who: "alice".into(),
        action: "test".into(),
        subject: "s".into(),
        reason: None,
        detail: serde_json::json!({ "n": n }),
    })
}

fn rollout(id: u64, done: bool) -> Write {
    Write::PutRollout(Box::new(RolloutRecord {
        id,
        kind: "features".into(),
        digest: Digest::of(b"x"),
        done,
        state: serde_json::json!({ "n": id }),
    }))
}

fn node(name: &str) -> Write {
    Write::PutNode(Box::new(NodeRecord {
        registration: Registration {
            node: name.into(),
            labels: Labels {
                pop: "fra".into(),
                region: "eu".into(),
                canary: false,
            },
            contract: ContractSpec::default(),
            software_version: "1".into(),
        },
        registered_at_ms: 1,
    }))
}

async fn a_batch_lands_whole_or_not_at_all(b: Backend) {
    let s = b.open().await;
    s.commit(Batch::one(put(1))).await.unwrap();
    s.commit(Batch::one(Write::MarkBad {
        digest: meta(1).digest,
        mark: BadMark {
            at_ms: 2,
            reason: "nack".into(),
            rollout: Some(1),
        },
    }))
    .await
    .unwrap();
    let mut batch = Batch::one(audit(1));
    batch.push(put(1));
    assert_eq!(
        s.commit(batch).await,
        Err(StoreError::MarkedBad(meta(1).digest))
    );
    assert!(s.audit(0, 10).await.unwrap().is_empty());
    // The refused batch did not poison the store: the next one lands.
    s.commit(Batch::one(audit(2))).await.unwrap();
    drop(s);
    let s = b.open().await;
    let entries = s.audit(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].detail["n"], 2);
    let m = s.artifact_meta(meta(1).digest).await.unwrap().unwrap();
    assert_eq!(m.bad.unwrap().reason, "nack");
}

async fn one_running_rollout_per_kind(b: Backend) {
    let s = b.open().await;
    s.commit(Batch::one(rollout(1, false))).await.unwrap();
    assert!(matches!(
        s.commit(Batch::one(rollout(2, false))).await,
        Err(StoreError::Conflict(_))
    ));
    s.commit(Batch::one(rollout(1, true))).await.unwrap();
    s.commit(Batch::one(rollout(2, false))).await.unwrap();
    check_rollouts(&s).await;
    drop(s);
    check_rollouts(&b.open().await).await;
}

async fn check_rollouts(s: &AnyStore) {
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded.last_rollout_id, 2);
    assert_eq!(loaded.active_rollouts.len(), 1);
    assert_eq!(loaded.active_rollouts[0].id, 2);
    assert_eq!(loaded.finished.len(), 1);
    assert_eq!(s.rollouts(10).await.unwrap().len(), 2);
    assert!(s.rollout(1).await.unwrap().unwrap().done);
}

async fn everything_committed_is_there_after_reopening(b: Backend) {
    let digest = meta(1).digest;
    {
        let s = b.open().await;
        s.commit(Batch::one(Write::SetEpoch { epoch: 7, at_ms: 1 }))
            .await
            .unwrap();
        let mut batch = Batch::one(put(1));
        batch.push(node("fra-1"));
        batch.push(Write::SetDesired {
            kind: "features".into(),
            node: None,
            target: Some(Target { version: 1, digest }),
        });
        batch.push(Write::SetKillSwitch(KillSwitchEntry {
            module: Module::Bot,
            node: None,
            enabled: false,
            reason: "r".into(),
            set_by: "alice".into(),
            at_ms: 3,
        }));
        batch.push(Write::Bless {
            kind: "features".into(),
            version: 1,
            digest,
            at_ms: 4,
            rollout: 1,
        });
        batch.push(Write::AddRecords(vec![(
            digest,
            rampart_rollout::Exposure {
                deaths: 1,
                exposure_ms: 10,
            },
        )]));
        batch.push(Write::NextOrder { at_ms: 5 });
        batch.push(audit(1));
        s.commit(batch).await.unwrap();
    }
    let s = b.open().await;
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded.nodes.len(), 1);
    assert_eq!(loaded.desired.len(), 1);
    assert_eq!(loaded.kill_switches.len(), 1);
    assert_eq!(loaded.blessed.len(), 1);
    assert_eq!(loaded.records.len(), 1);
    let order = loaded.order.unwrap();
    assert_eq!((order.epoch, order.seq, order.at_ms), (7, 1, 5));
    assert_eq!(s.audit(0, 10).await.unwrap()[0].seq, 1);
    let artifact = s.artifact(digest).await.unwrap().unwrap();
    assert_eq!(artifact.bytes, b"bytes of 1");
    assert_eq!(artifact.meta.version, 1);
}

async fn the_order_sequence_moves_only_with_its_batch(b: Backend) {
    let s = b.open().await;
    assert_eq!(s.load().await.unwrap().order, None);
    let early = Batch {
        writes: vec![put(1), Write::NextOrder { at_ms: 5 }],
    };
    assert!(matches!(
        s.commit(early).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.artifact_meta(meta(1).digest).await.unwrap().is_none());
    s.commit(Batch::one(Write::SetEpoch { epoch: 3, at_ms: 1 }))
        .await
        .unwrap();
    s.commit(Batch::one(rollout(1, false))).await.unwrap();
    let failing = Batch {
        writes: vec![Write::NextOrder { at_ms: 7 }, rollout(2, false)],
    };
    assert!(s.commit(failing).await.is_err());
    s.commit(Batch::one(Write::NextOrder { at_ms: 9 }))
        .await
        .unwrap();
    drop(s);
    let order = b.open().await.load().await.unwrap().order.unwrap();
    assert_eq!((order.epoch, order.seq, order.at_ms), (3, 1, 9));
}

async fn artifacts_are_found_by_digest_version_and_time(b: Backend) {
    let s = b.open().await;
    for v in [1, 2, 5] {
        s.commit(Batch::one(put(v))).await.unwrap();
    }
    // Storing the same digest again changes nothing.
    s.commit(Batch::one(put(2))).await.unwrap();
    let list: Vec<u64> = s
        .artifacts(10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(list, [5, 2, 1], "newest first");
    assert_eq!(s.artifacts(1).await.unwrap().len(), 1);
    let at = s.artifact_at("features".into(), 2).await.unwrap().unwrap();
    assert_eq!(at.digest, meta(2).digest);
    assert!(s.artifact_at("features".into(), 3).await.unwrap().is_none());
    let before = s
        .artifact_before("features".into(), 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.version, 2);
    assert!(
        s.artifact_before("features".into(), 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.artifact(Digest::of(b"none")).await.unwrap().is_none());
    assert_eq!(
        s.artifact(meta(5).digest).await.unwrap().unwrap().bytes,
        b"bytes of 5"
    );
}

async fn the_audit_log_pages_in_order(b: Backend) {
    let s = b.open().await;
    for n in 1..=25 {
        s.commit(Batch::one(audit(n))).await.unwrap();
    }
    let first = s.audit(0, 10).await.unwrap();
    assert_eq!(first.len(), 10);
    let next = s.audit(first[9].seq, 100).await.unwrap();
    assert_eq!(next.len(), 15);
    let all: Vec<u64> = first.iter().chain(&next).map(|e| e.seq).collect();
    assert_eq!(all, (1..=25).collect::<Vec<_>>());
    assert_eq!(next[14].detail["n"], 25);
}

async fn the_heartbeat_window_is_bounded_and_removal_clears_it(b: Backend) {
    let window = rampart_control::store::sqlite::BEAT_WINDOW as u64;
    let s = b.open().await;
    s.commit(Batch {
        writes: vec![node("a"), node("b.c")],
    })
    .await
    .unwrap();
    for round in 0..(window + 5) {
        let beats = ["a", "b.c"]
            .iter()
            .map(|n| BeatRecord {
                node: (*n).into(),
                at_ms: round,
                beat: Heartbeat::empty(round),
            })
            .collect();
        s.record_beats(beats).await.unwrap();
    }
    let recent = s.recent_beats("a".into()).await.unwrap();
    assert_eq!(recent.len() as u64, window);
    assert_eq!(recent[0].beat.seq, window + 4, "newest first");
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded.beats.len(), 2);
    assert!(loaded.beats.iter().all(|b| b.at_ms == window + 4));
    assert!(s.recent_beats("nobody".into()).await.unwrap().is_empty());
    s.commit(Batch::one(Write::RemoveNode { node: "a".into() }))
        .await
        .unwrap();
    assert!(s.recent_beats("a".into()).await.unwrap().is_empty());
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded.beats.len(), 1);
    assert_eq!(loaded.nodes.len(), 1);
}

async fn every_node_s_latest_beat_is_loaded(b: Backend) {
    let nodes: Vec<String> = (0..300).map(|i| format!("edge-{i:03}")).collect();
    let s = b.open().await;
    for round in 1..=3 {
        let beats = nodes
            .iter()
            .map(|n| BeatRecord {
                node: n.clone(),
                at_ms: round,
                beat: Heartbeat::empty(round),
            })
            .collect();
        s.record_beats(beats).await.unwrap();
    }
    drop(s);
    let loaded = b.open().await.load().await.unwrap();
    let got: Vec<&str> = loaded.beats.iter().map(|b| b.node.as_str()).collect();
    assert_eq!(got, nodes.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(loaded.beats.iter().all(|b| b.at_ms == 3 && b.beat.seq == 3));
}

// === NATS only: fencing, snapshots, SIGKILL ===

#[tokio::test]
async fn a_stale_writer_is_fenced_and_stays_fenced() {
    let cluster = NatsCluster::start(1);
    let b = Backend::nats(&cluster, "fence");
    let first = b.open().await;
    let second = b.open().await;
    first.commit(Batch::one(audit(1))).await.unwrap();
    // `second` has not seen entry 1: its append expects the log where it left it.
    let err = second.commit(Batch::one(audit(2))).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("fenced")),
        "{err}"
    );
    let err = second.commit(Batch::one(audit(3))).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    first.commit(Batch::one(audit(4))).await.unwrap();
    let entries = b.open().await.audit(0, 10).await.unwrap();
    let ns: Vec<_> = entries.iter().map(|e| e.detail["n"].clone()).collect();
    assert_eq!(ns, [1, 4], "only the current writer's entries landed");
}

#[tokio::test]
async fn a_batch_larger_than_a_message_is_refused_and_the_store_goes_on() {
    let cluster = NatsCluster::start(1);
    let s = Backend::nats(&cluster, "large").open().await;
    let mut huge = NewAudit {
        at_ms: 1,
        who: "alice".into(),
        action: "test".into(),
        subject: "s".into(),
        reason: None,
        detail: serde_json::Value::Null,
    };
    huge.detail = serde_json::json!({ "blob": "x".repeat(2 << 20) });
    let err = s.commit(Batch::one(Write::Audit(huge))).await.unwrap_err();
    assert!(err.to_string().contains("max_payload"), "{err}");
    s.commit(Batch::one(audit(2))).await.unwrap();
    assert_eq!(s.audit(0, ALL).await.unwrap().len(), 1);
}

#[tokio::test]
async fn opening_starts_from_the_newest_snapshot_and_replays_the_rest() {
    let cluster = NatsCluster::start(1);
    let b = Backend::nats(&cluster, "snap");
    let total = SNAPSHOT_EVERY + 7;
    {
        let s = b.open().await;
        for n in 1..=total {
            s.commit(Batch::one(audit(n))).await.unwrap();
        }
    }
    // The snapshot is uploaded in the background: wait (bounded) until it is there.
    let client = async_nats::connect(cluster.urls()[0].as_str())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let snapshots = js.get_object_store("SNAP_SNAPSHOTS").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while snapshots.info("model").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no snapshot after {SNAPSHOT_EVERY} batches"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = b.open().await;
    let entries = s.audit(0, ALL).await.unwrap();
    assert_eq!(entries.len() as u64, total);
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1 && e.detail["n"] == i as u64 + 1)
    );
    let AnyStore::Nats(n) = &s else {
        panic!("a NATS backend")
    };
    assert_eq!(n.last_seq().await, total);
    s.commit(Batch::one(audit(total + 1))).await.unwrap();
}

/// Checks the audit log after a crash: every acknowledged `n` is there exactly once, and
/// nothing is there twice.
async fn assert_acked_exactly_once(s: &AnyStore, acked: &[u64]) {
    let entries = s.audit(0, ALL).await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for e in &entries {
        *seen.entry(e.detail["n"].as_u64().unwrap()).or_insert(0) += 1;
    }
    for n in acked {
        assert_eq!(seen.get(n), Some(&1), "acknowledged entry {n} lost");
    }
    assert!(
        seen.values().all(|c| *c == 1),
        "an audit entry was duplicated: {seen:?}"
    );
}

#[tokio::test]
async fn a_nats_server_killed_under_writes_loses_nothing_acknowledged() {
    let mut cluster = NatsCluster::start(3);
    let b = Backend::nats(&cluster, "killnode");
    let s = b.open().await;
    let mut acked = Vec::new();
    let mut failed = 0;
    let mut leader = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 1..=300u64 {
        assert!(Instant::now() < deadline, "writes too slow");
        if n == 100 {
            leader = log_leader(&cluster, "KILLNODE_LOG").await;
            cluster.kill(leader);
        }
        if n == 200 {
            cluster.restart(leader);
        }
        match s.commit(Batch::one(audit(n))).await {
            Ok(()) => acked.push(n),
            Err(e) => {
                // An unknown outcome stops this writer; a new one takes over.
                failed += 1;
                eprintln!("commit {n}: {e}");
                break;
            }
        }
    }
    assert_eq!(failed, 0, "the log kept a majority: every commit must land");
    drop(s);
    let s = b.open().await;
    assert_acked_exactly_once(&s, &acked).await;
    assert_eq!(s.audit(0, ALL).await.unwrap().len(), 300);
}

/// The index of the server leading the stream `name` (servers are named `n0`, `n1`, …).
async fn log_leader(cluster: &NatsCluster, name: &str) -> usize {
    let client = async_nats::connect(cluster.urls()[0].as_str())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(name).await.unwrap();
    let info = stream.info().await.unwrap();
    let leader = info.cluster.as_ref().unwrap().leader.clone().unwrap();
    leader.trim_start_matches('n').parse().unwrap()
}

/// The child side of the SIGKILL test: commits numbered audit entries to the store named by
/// `RAMPART_CONFORMANCE_CHILD`, printing `acked N` after each acknowledgement, until killed.
#[tokio::test]
async fn sigkill_child_writer() {
    let Ok(url) = std::env::var("RAMPART_CONFORMANCE_CHILD") else {
        return; // Run as a normal test: nothing to do.
    };
    let mut config = NatsConfig::parse(&url).unwrap();
    config.namespace = "SIGKILL".into();
    let s = AnyStore::open(&StoreSpec::Nats(config), std::path::Path::new("."))
        .await
        .unwrap();
    for n in 1..=100_000u64 {
        s.commit(Batch::one(audit(n))).await.unwrap();
        println!("acked {n}");
    }
}

#[tokio::test]
async fn a_sigkilled_writer_loses_nothing_acknowledged() {
    let cluster = NatsCluster::start(3);
    // The log and buckets are created here, on a cluster that just formed (opening waits
    // for it), so the child only opens them: its acknowledgements are the only thing timed.
    drop(Backend::nats(&cluster, "sigkill").open().await);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigkill_child_writer", "--nocapture"])
        .env("RAMPART_CONFORMANCE_CHILD", cluster.url())
        .stdout(Stdio::piped())
        // Its panics, if any, in this test's output.
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked.push(n.trim().parse::<u64>().unwrap());
        }
        if acked.len() >= 200 || Instant::now() > deadline {
            break;
        }
    }
    // SIGKILL by PID, mid-stream: the next commit is in flight.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        acked.len() >= 200,
        "the child acknowledged {} writes, then {status}",
        acked.len()
    );
    let b = Backend::nats(&cluster, "sigkill");
    let s = b.open().await;
    assert_acked_exactly_once(&s, &acked).await;
    let total = s.audit(0, ALL).await.unwrap().len();
    assert!(
        total <= acked.len() + 1,
        "at most the one write in flight landed unacknowledged: {total} vs {}",
        acked.len()
    );
    // The new writer continues the log where the killed one stopped.
    s.commit(Batch::one(audit(1_000_000))).await.unwrap();
}

// === the control plane on NATS ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_on_nats_serves_what_it_stored_after_a_restart() {
    let cluster = NatsCluster::start(1);
    let mut config = NatsConfig::parse(&cluster.url()).unwrap();
    config.namespace = "SERVER".into();
    let spec = StoreSpec::Nats(config);
    let h = rampart_e2e::Harness::start_with(|c| c.store = spec.clone()).await;
    let bytes = h.sign(&rampart_artifact::testing::doc_weighted(1, 10, 0.5));
    let published = h.publisher.publish(bytes.clone()).await.unwrap();
    assert!(published.created);
    let audit = h.admin.audit(0, 100).await.unwrap();
    assert!(!audit.entries.is_empty());
    let mut h = h;
    h.server.take().unwrap().shutdown().await;
    drop(h);
    // Another control plane (another data dir) on the same NATS namespace.
    let h = rampart_e2e::Harness::start_with(|c| c.store = spec.clone()).await;
    let fetched = h.anon.fetch(&published.artifact.digest).await.unwrap();
    assert_eq!(fetched, bytes);
    let again = h.publisher.publish(bytes).await.unwrap();
    assert!(!again.created, "the artifact was kept");
    let after = h.admin.audit(0, 100).await.unwrap();
    assert_eq!(after.entries[..audit.entries.len()], audit.entries[..]);
}

// === NATS only: the leader lease ===

/// The case the lease's clock cannot cover: the old leader still believes in its lease
/// (paused or partitioned, its clock not yet past it) and its view of the log is current.
/// The new leader's marker fences it: its append expects the log where it left it, before
/// the marker. Once it follows the log it sees the newer epoch and stops leading.
#[tokio::test]
async fn a_deposed_leader_with_a_current_log_is_fenced_by_the_new_leaders_marker() {
    use rampart_control::store::nats::LeaseHolder;
    let cluster = NatsCluster::start(1);
    let mut config = NatsConfig::parse(&cluster.url()).unwrap();
    config.namespace = "LEASE".into();
    let a = NatsStore::open(&config).await.unwrap();
    let b = NatsStore::open(&config).await.unwrap();
    let holder = |id: &str| LeaseHolder {
        id: id.into(),
        url: format!("http://{id}"),
    };
    // Without the lease, a replica under the election may not write.
    assert!(a.try_lead(&holder("a")).await.unwrap());
    assert!(!b.try_lead(&holder("b")).await.unwrap());
    assert_eq!(b.leader().await.unwrap(), Some(holder("a")));
    let err = b.commit(Batch::one(audit(0))).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("not the leader")),
        "{err}"
    );
    a.commit(Batch::one(audit(1))).await.unwrap();
    assert!(b.follow().await.unwrap());

    // The lease vanishes from the bucket (as when it lapses) while `a` still holds it locally.
    let client = async_nats::connect(cluster.urls()[0].as_str())
        .await
        .unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value("LEASE_LEASE")
        .await
        .unwrap();
    kv.delete("leader").await.unwrap();
    assert!(a.is_leader(), "a's clock has not run out");
    assert!(b.try_lead(&holder("b")).await.unwrap());
    assert_eq!(a.leader().await.unwrap(), Some(holder("b")));

    let err = a.commit(Batch::one(audit(2))).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("fenced")),
        "{err}"
    );
    assert!(!a.is_leader(), "fenced: it stepped down");
    b.commit(Batch::one(audit(3))).await.unwrap();
    // Following, `a` catches up (the marker and entry 3) and still may not write.
    assert!(a.follow().await.unwrap());
    assert!(!a.try_lead(&holder("a")).await.unwrap());
    assert!(a.commit(Batch::one(audit(4))).await.is_err());
    let entries = a.audit(0, 10).await.unwrap();
    let ns: Vec<_> = entries.iter().map(|e| e.detail["n"].clone()).collect();
    assert_eq!(
        ns,
        [1, 3],
        "nothing of the deposed leader's after the marker"
    );
}
