//! A fault that waits, with real processes: `rampart control`, six `rampart edge` children
//! (with `RAMPART_TEST_HOOKS=1`), an origin and traffic through every edge, and the test as
//! each edge's supervisor (an edge that dies is started again on its data dir, as systemd
//! would).
//!
//! Version 1 rolls out, is blessed, and every edge soaks it into last-known-good. Version 2
//! carries the abort hook's marker: an edge dies [`ABORT_AFTER_SECS`] after activating it,
//! longer than every wave's bake, so version 2 passes every wave (the 29 October 2025 Azure
//! Front Door fault: a config that kills the data plane minutes after loading it). The
//! rollout then **watches** the whole fleet: the first deaths fail the watch, the fleet rolls
//! back to version 1, version 2 is marked bad. Asserted:
//! - the rollout was watching before the first death, and the gate that failed names
//!   deaths (restarts or the death-rate gate);
//! - no edge ever held version 2 as last-known-good (it was never blessed);
//! - the last wave's edges never died and none of their requests failed: only edges that
//!   died lost requests;
//! - an edge restarted afterwards boots on version 1.
//!
//!
//! The same fault after the watch: version 2 kills an edge only after its (short) watch
//! passed, so it is blessed and becomes last-known-good on the edges. The deaths that follow
//! fail the control plane's aftercare (the death-rate gate over the fleet's per-version
//! record), which rolls the finished rollout back with no operator, audited; version 2 loses
//! its blessing, and every edge drops it from last-known-good (the repair Azure's engineers
//! made by hand).
//!
//! Both print the time from the first death to the whole fleet serving version 1 again
//! (docs/BENCHMARKS.md, "Faults that wait, real processes").
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Fleet, FleetSpec, POLL, until};
use rampart_api::StartRollout;
use rampart_artifact::Envelope;
use rampart_edge::abort_hook::TEST_ABORT_MARKER;
use rampart_up::inject::{catalog_document, failed_gate};
use rampart_up::load::{Load, LoadSpec};
use rampart_up::origin::Origin;
use rampart_up::stack;

const BEAT_MS: u64 = 200;

/// Canary 4 s, half the fleet 4 s, the rest 1 s; the watch is asked for per rollout.
const POLICY: &str = "\
[plan]
canary_bake_ms = 4000
waves = [ { share = 0.5, bake_ms = 4000 }, { share = 1.0, bake_ms = 1000 } ]
[rollout]
tick_ms = 100
baseline_wait_ms = 1000
[rollout.gates]
min_requests = 50
[rollout.gates.shift]
min_scores = 50
";

const NODES: [(&str, &str, &str); 6] = [
    ("fra-1", "fra", "eu"),
    ("fra-2", "fra", "eu"),
    ("ams-1", "ams", "eu"),
    ("ams-2", "ams", "eu"),
    ("iad-1", "iad", "us"),
    ("iad-2", "iad", "us"),
];

/// Version 2 kills an edge this long after it becomes active: longer than the waves take
/// (about 9 s), shorter than the watch.
const ABORT_AFTER_SECS: u64 = 14;

/// Version 2's watch: long enough that only a failure ends it within the test.
const WATCH_MS: u64 = 60_000;

/// Requests per second through each edge.
const RATE: u32 = 40;

/// Upper bound of the whole fault, from the start of version 2's rollout to the fleet back
/// on version 1.
const FAULT_WAIT: Duration = Duration::from_secs(120);

/// Upper bound of one wait for an edge (a boot, an activation, a promotion).
const EDGE_WAIT: Duration = Duration::from_secs(30);

/// The most times the test restarts one edge (each death of version 2 is one).
const MAX_RESTARTS: u32 = 5;

fn signed(fleet: &Fleet, version: u64, query: Option<&str>) -> Vec<u8> {
    let key = fleet.work.signing_key().unwrap();
    let mut doc = catalog_document(version).unwrap();
    if let Some(q) = query {
        doc.provenance.query = q.to_owned();
    }
    Envelope::sign(&doc, &key).to_json()
}

/// Traffic through one edge, bounded in count and so in time.
fn load(target: SocketAddr, seed: u64) -> Load {
    Load::start_spec(LoadSpec {
        targets: vec![target],
        rate: RATE,
        seed,
        max_requests: u64::from(RATE) * 240,
        header: None,
    })
    .unwrap()
}

/// The versions an edge's `/status` names as last-known-good (current and history).
fn lkg_versions(status: &serde_json::Value) -> Vec<u64> {
    let lkg = &status["lkg"];
    let mut out: Vec<u64> = lkg["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    out.extend(lkg["current"]["version"].as_u64());
    out
}

/// The test as the fleet's supervisor: dead edges started again, deaths counted, every
/// last-known-good version any edge showed remembered.
#[derive(Default)]
struct Supervisor {
    deaths: BTreeMap<String, u32>,
    first_death: Option<Instant>,
    lkg_seen: BTreeSet<u64>,
}

impl Supervisor {
    /// One round: restarts every edge that died (its traffic stops with it: a restarted edge
    /// listens on a new port) and reads every edge's last-known-good.
    async fn round(&mut self, fleet: &mut Fleet, loads: &BTreeMap<String, Load>) {
        for at in 0..fleet.edges.len() {
            let Some(status) = fleet.edges[at].child.exit_status() else {
                continue;
            };
            let id = fleet.edges[at].spec.id.clone();
            record_exit(fleet, &id, status);
            self.first_death.get_or_insert_with(Instant::now);
            let n = self.deaths.entry(id.clone()).or_default();
            *n += 1;
            assert!(*n <= MAX_RESTARTS, "{id} died {n} times");
            if let Some(l) = loads.get(&id) {
                l.stop();
            }
            let spec = fleet.edges[at].spec.clone();
            fleet.edges[at] = stack::start_edge(&spec, &fleet.work).unwrap();
        }
        for e in &fleet.edges {
            if let Ok(s) = rampart_up::status::get_json(e.admin, "/status").await {
                self.lkg_seen.extend(lkg_versions(&s));
            }
        }
    }
}

/// What a supervisor does when an edge exits (as systemd's `ExecStopPost=` would): tells
/// the edge's journal how its run ended, so the next boot reports the death's cause.
fn record_exit(fleet: &Fleet, id: &str, status: std::process::ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["edge", "record-exit", "--data-dir"])
        .arg(fleet.work.root.join(format!("edges/{id}/data")));
    match (status.signal(), status.code()) {
        (Some(signal), _) => cmd.args(["--signal", &signal.to_string()]),
        (None, Some(code)) => cmd.args(["--exit-code", &code.to_string()]),
        (None, None) => return,
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "record-exit for {id}: {out:?}");
}

/// Six edges with test hooks and traffic through each; version 1 rolled out, blessed and
/// soaked into last-known-good everywhere.
async fn fleet_on_v1(origin: SocketAddr) -> (Fleet, BTreeMap<String, Load>) {
    let fleet = Fleet::start(
        origin,
        &FleetSpec {
            policy: POLICY,
            beat_ms: BEAT_MS,
            nodes: &NODES,
            canary: "fra-1",
            // Last-known-good after 1 s and 20 requests, once blessed.
            edge_extra: ["--soak-secs", "1", "--soak-requests", "20"]
                .map(String::from)
                .to_vec(),
            test_hooks: true,
        },
    );
    let loads: BTreeMap<String, Load> = fleet
        .edges
        .iter()
        .zip(1..)
        .map(|(e, seed)| (e.spec.id.clone(), load(e.proxy, seed)))
        .collect();
    fleet.wait_beating(0, 30).await;
    let v1 = fleet.publish(signed(&fleet, 1, None)).await;
    let r1 = fleet.rollout(v1, 300).await;
    let done = fleet.wait_rollout(r1.id, 90, |v| v.done).await;
    assert_eq!(done.phase, "succeeded", "{done:#?}");
    for (id, _, _) in NODES {
        until("version 1 as last-known-good", EDGE_WAIT, async || {
            fleet.status(id).await["lkg"]["current"]["version"] == 1
        })
        .await;
    }
    (fleet, loads)
}

/// Version 2, killing an edge `abort_after_secs` after activating it.
async fn publish_fatal_v2(fleet: &Fleet, abort_after_secs: u64) -> rampart_artifact::Digest {
    let marker = format!("embedded catalog {TEST_ABORT_MARKER}{abort_after_secs}");
    fleet.publish(signed(fleet, 2, Some(&marker))).await
}

/// Stops every load and checks that only edges that died lost requests, and that none of
/// `never_died` died.
async fn only_dead_edges_failed(
    loads: &BTreeMap<String, Load>,
    deaths: &BTreeMap<String, u32>,
    never_died: &[String],
) {
    for (id, l) in loads {
        l.stop();
        until("the load to drain", EDGE_WAIT, async || l.is_done()).await;
        let totals = l.stats().totals();
        eprintln!(
            "{id}: {} deaths, {} requests sent, {} failed",
            deaths.get(id).copied().unwrap_or(0),
            totals.sent,
            totals.failures()
        );
        if never_died.contains(id) {
            assert!(!deaths.contains_key(id), "{id} died: {deaths:?}");
        }
        if !deaths.contains_key(id) {
            assert!(totals.sent > 0, "{id}: {totals:?}");
            assert_eq!(totals.failures(), 0, "{id} never died: {totals:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_kills_edges_after_every_wave_passed_fails_the_watch_and_never_becomes_last_known_good()
 {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (mut fleet, loads) = fleet_on_v1(origin.addr()).await;

    // Version 2 kills an edge ABORT_AFTER_SECS after activating it: after every wave passed.
    let v2 = publish_fatal_v2(&fleet, ABORT_AFTER_SECS).await;
    let r2 = fleet
        .start_rollout(&StartRollout {
            digest: v2,
            reason: Some("a file that kills edges after a while".into()),
            break_glass: false,
            bake_ms: None,
            watch_ms: Some(WATCH_MS),
        })
        .await;

    let started = Instant::now();
    let mut sup = Supervisor::default();
    let mut watching_before_first_death = false;
    let back_on_v1 = loop {
        assert!(
            started.elapsed() < FAULT_WAIT,
            "the fleet is not back on version 1 after {FAULT_WAIT:?}: deaths {:?}\n{:#?}",
            sup.deaths,
            fleet.anon.rollout_status(r2.id).await
        );
        sup.round(&mut fleet, &loads).await;
        let view = fleet.anon.rollout_status(r2.id).await.unwrap();
        if view.phase == "watching" && sup.first_death.is_none() {
            watching_before_first_death = true;
        }
        if view.done && fleet.all_serve(1).await {
            break view;
        }
        tokio::time::sleep(POLL).await;
    };
    let gate = failed_gate(&back_on_v1);
    eprintln!(
        "watch: first death seen → every edge on version 1: {:?}; deaths {:?}; failed gate \
         {gate:?}; rollout start → back on v1: {:?}",
        sup.first_death.map(|at| at.elapsed()),
        sup.deaths,
        started.elapsed()
    );

    // The fault passed every wave and the watch caught it.
    assert!(
        watching_before_first_death,
        "version 2 failed before its watch: {back_on_v1:#?}"
    );
    assert_eq!(back_on_v1.phase, "rolled_back", "{back_on_v1:#?}");
    assert!(
        matches!(gate.as_deref(), Some("restarts" | "deaths")),
        "{gate:?}: {back_on_v1:#?}"
    );
    let meta = fleet.anon.artifact_meta(&v2).await.unwrap();
    assert!(meta.bad.is_some(), "version 2 is marked bad: {meta:?}");
    assert!(!meta.blessed, "{meta:?}");
    assert!(
        sup.deaths.contains_key("fra-1"),
        "the canary died: {:?}",
        sup.deaths
    );

    // The control plane knows how the canary died: the supervisor recorded the signal
    // (the hook aborts: SIGABRT), the restarted edge reported it with version 2 active.
    until("the canary's death and its cause", EDGE_WAIT, async || {
        fleet.anon.node("fra-1").await.is_ok_and(|n| {
            n.last_death.is_some_and(|d| {
                d.cause == rampart_api::DeathCause::Signal { signal: 6 }
                    && d.active.map(|a| a.version) == Some(2)
            })
        })
    })
    .await;

    // Never blessed, never last-known-good.
    assert!(
        !sup.lkg_seen.contains(&2),
        "version 2 was last-known-good: {:?}",
        sup.lkg_seen
    );
    for (id, _, _) in NODES {
        let s = fleet.status(id).await;
        assert_eq!(s["lkg"]["current"]["version"], 1, "{id}: {s}");
        assert!(!lkg_versions(&s).contains(&2), "{id}: {s}");
    }

    // Only edges that died lost requests: the last wave was rolled back before its edges
    // reached the fault.
    let last_wave = back_on_v1.waves.last().unwrap();
    assert!(!last_wave.nodes.is_empty(), "{back_on_v1:#?}");
    only_dead_edges_failed(&loads, &sup.deaths, &last_wave.nodes).await;

    // An edge restarted now boots on version 1.
    fleet.sigkill_and_restart("fra-1");
    let s = fleet.status("fra-1").await;
    assert_eq!(s["active"]["version"], 1, "{s}");
    fleet.stop();
}

/// How long version 1 serves before version 2 in the aftercare test: its record (deaths and
/// node-time) is what version 2's deaths are weighed against.
const V1_RECORD: Duration = Duration::from_secs(30);

/// Version 2 of the aftercare test kills an edge this long after activating it: after its
/// 1-second watch, its blessing and its promotion to last-known-good.
const LATE_ABORT_SECS: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blessed_file_that_kills_edges_is_rolled_back_by_aftercare_and_leaves_last_known_good() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (mut fleet, loads) = fleet_on_v1(origin.addr()).await;
    tokio::time::sleep(V1_RECORD).await;

    // Version 2 passes its waves (300 ms bakes) and a 1 s watch, is blessed, and soaks into
    // last-known-good, all before its first death.
    let v2 = publish_fatal_v2(&fleet, LATE_ABORT_SECS).await;
    let r2 = fleet
        .start_rollout(&StartRollout {
            digest: v2,
            reason: Some("a file that kills edges after its watch".into()),
            break_glass: false,
            bake_ms: Some(300),
            watch_ms: Some(1_000),
        })
        .await;
    let started = Instant::now();
    let mut sup = Supervisor::default();
    let mut succeeded_before_first_death = false;
    let aftercare = loop {
        assert!(
            started.elapsed() < FAULT_WAIT,
            "no aftercare rollback after {FAULT_WAIT:?}: deaths {:?}\n{:#?}",
            sup.deaths,
            fleet.anon.rollout_status(r2.id).await
        );
        sup.round(&mut fleet, &loads).await;
        let view = fleet.anon.rollout_status(r2.id).await.unwrap();
        if view.phase == "succeeded" && sup.first_death.is_none() {
            succeeded_before_first_death = true;
        }
        let audit = fleet.admin.audit(0, 1_000).await.unwrap();
        let failed = audit.entries.into_iter().find(|e| {
            e.action == "rollout.aftercare_failed" && e.subject == format!("rollout/{}", r2.id)
        });
        if let Some(entry) = failed
            && fleet.all_serve(1).await
        {
            break entry;
        }
        tokio::time::sleep(POLL).await;
    };
    eprintln!(
        "aftercare: first death seen → every edge on version 1: {:?}; deaths {:?}; \
         rollout start → back on v1: {:?}; {:?}",
        sup.first_death.map(|at| at.elapsed()),
        sup.deaths,
        started.elapsed(),
        aftercare.reason
    );
    assert!(
        succeeded_before_first_death,
        "version 2 failed before it succeeded"
    );
    assert!(
        sup.lkg_seen.contains(&2),
        "version 2 was never last-known-good: the test did not reach the case it is about \
         ({:?})",
        sup.lkg_seen
    );
    assert_eq!(aftercare.who, "control", "{aftercare:?}");
    assert!(
        aftercare
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("died")),
        "{aftercare:?}"
    );
    let meta = fleet.anon.artifact_meta(&v2).await.unwrap();
    assert!(meta.bad.is_some(), "version 2 is marked bad: {meta:?}");
    assert!(!meta.blessed, "its blessing is withdrawn: {meta:?}");

    // Every edge drops version 2 from last-known-good once the blessing is gone.
    for (id, _, _) in NODES {
        until("version 2 out of last-known-good", EDGE_WAIT, async || {
            let s = fleet.status(id).await;
            s["lkg"]["current"]["version"] == 1 && !lkg_versions(&s).contains(&2)
        })
        .await;
    }
    only_dead_edges_failed(&loads, &sup.deaths, &[]).await;

    // A restart now boots on version 1.
    fleet.sigkill_and_restart("iad-2");
    let s = fleet.status("iad-2").await;
    assert_eq!(s["active"]["version"], 1, "{s}");
    fleet.stop();
}
