//! A real fleet on loopback: one `rampart control`, ten `rampart edge` children following it,
//! an origin, and realistic traffic through the edges the whole time.
//!
//! In order: a good version reaches all ten; a file the control plane accepts but the edges
//! refuse (signed with a rotated key the control plane trusts and the edges do not yet)
//! stops at the canary and rolls back with no failed request; a valid file whose every score
//! is 1 is stopped by the score-shift gate and the canary goes back to the previous version;
//! the control plane is SIGKILLed in the middle of a rollout, the edges keep serving while it
//! is gone, it restarts on the same data dir, the rollout resumes and every edge rejoins.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use rampart_host::clock::now_ms;
use std::time::Duration;

use common::{Fleet, FleetSpec};
use rampart_artifact::Envelope;
use rampart_up::inject::{ALL_ONES_BIAS, catalog_document, failed_gate};
use rampart_up::load::Load;
use rampart_up::origin::Origin;
use rampart_up::stack;
use rampart_up::status;

/// Short bakes and small samples, so the whole file runs in about a minute on 2 cores.
/// Shadow scoring is off: the "every score is 1" file must reach the canary, for the
/// score-shift gate to stop it on real traffic (tests/observe.rs has the shadow hold).
const POLICY: &str = "\
[plan]
canary_bake_ms = 1000
[rollout]
shadow = \"off\"
tick_ms = 100
baseline_wait_ms = 1000
[rollout.gates]
min_requests = 100
[rollout.gates.shift]
min_scores = 100
";

const BEAT_MS: u64 = 200;

/// Requests per second through the ten edges (50 each).
const RATE: u32 = 500;

const NODES: [(&str, &str, &str); 10] = [
    ("fra-1", "fra", "eu"),
    ("fra-2", "fra", "eu"),
    ("ams-1", "ams", "eu"),
    ("ams-2", "ams", "eu"),
    ("iad-1", "iad", "us"),
    ("iad-2", "iad", "us"),
    ("sjc-1", "sjc", "us"),
    ("sjc-2", "sjc", "us"),
    ("sin-1", "sin", "ap"),
    ("sin-2", "sin", "ap"),
];

fn spec() -> FleetSpec<'static> {
    FleetSpec {
        policy: POLICY,
        beat_ms: BEAT_MS,
        nodes: &NODES,
        canary: "fra-1",
        edge_extra: Vec::new(),
        test_hooks: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_real_edges_take_good_files_and_stop_bad_ones_at_the_canary() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut fleet = Fleet::start(origin.addr(), &spec());
    let load = Load::start(fleet.edges.iter().map(|e| e.proxy).collect(), RATE, 7).unwrap();
    fleet.wait_beating(0, 30).await;
    let key = fleet.work.signing_key().unwrap();
    let rotated = fleet.work.rotated_signing_key().unwrap();

    // 1. A good version reaches all ten.
    let v1 = fleet
        .publish(Envelope::sign(&catalog_document(1).unwrap(), &key).to_json())
        .await;
    let r1 = fleet.rollout(v1, 300).await;
    let done = fleet.wait_rollout(r1.id, 60, |v| v.done).await;
    assert_eq!(done.phase, "succeeded", "{done:#?}");
    assert!(fleet.all_serve(1).await);
    let nodes = fleet.anon.nodes().await.unwrap().nodes;
    assert!(
        nodes
            .iter()
            .all(|n| n.verdict.as_ref().is_some_and(|v| v.digest == v1))
    );

    // 2. Accepted by the control plane (it trusts the rotated key), refused by every edge
    //    (they do not yet): the canary NACKs, the rollout rolls back, nobody else sees it, and
    //    no request fails.
    let before = load.stats().totals();
    let doc = catalog_document(2).unwrap();
    let v2 = fleet
        .publish(Envelope::sign(&doc, &rotated).to_json())
        .await;
    let r2 = fleet.rollout(v2, 5_000).await;
    let done = fleet.wait_rollout(r2.id, 60, |v| v.done).await;
    assert_eq!(done.phase, "rolled_back", "{done:#?}");
    assert_eq!(failed_gate(&done).as_deref(), Some("nack"), "{done:#?}");
    assert_eq!(done.waves[0].nacked, 1);
    let nodes = fleet.anon.nodes().await.unwrap().nodes;
    for n in &nodes {
        // Back on version 1, every node ACKs it again; only the canary ever refused v2.
        assert!(n.verdict.as_ref().is_some_and(|v| v.digest == v1), "{n:?}");
        let refused = n.last_rejection.as_ref().map(|r| r.issues[0].code.as_str());
        if n.node == "fra-1" {
            assert_eq!(refused, Some("unknown_key"), "{n:?}");
        } else {
            assert_eq!(refused, None, "only the canary was asked: {n:?}");
        }
    }
    assert!(fleet.all_serve(1).await);
    assert!(
        fleet.anon.artifact_meta(&v2).await.unwrap().bad.is_some(),
        "the file is marked bad"
    );
    let during = load.stats().totals().since(&before);
    assert!(during.sent > 0);
    assert_eq!(during.failures(), 0, "{during:?}");

    // 3. Valid, and every score is 1: the canary takes it, nothing errors, and the
    //    score-shift gate stops it; the canary goes back to version 1 (a rollback the store
    //    accepts because this node served version 1 before).
    let mut doc = catalog_document(3).unwrap();
    doc.model.bias = ALL_ONES_BIAS;
    let v3 = fleet.publish(Envelope::sign(&doc, &key).to_json()).await;
    let r3 = fleet.rollout(v3, 20_000).await;
    let done = fleet.wait_rollout(r3.id, 60, |v| v.done).await;
    assert_eq!(done.phase, "rolled_back", "{done:#?}");
    assert_eq!(
        failed_gate(&done).as_deref(),
        Some("score_shift"),
        "{done:#?}"
    );
    assert!(
        done.outcome.as_deref().unwrap_or("").contains("KS"),
        "{done:#?}"
    );
    assert!(fleet.all_serve(1).await, "the canary is back on version 1");
    let canary = status::get_json(fleet.edge("fra-1").admin, "/status")
        .await
        .unwrap();
    assert_eq!(canary["control"]["verdict"]["verdict"], "ack");
    assert_eq!(canary["control"]["verdict"]["version"], 1);

    // 4. The control plane is SIGKILLed in the middle of a rollout. The edges keep serving
    //    while it is gone, it restarts on the same data dir, the rollout resumes where it
    //    stood, and every edge rejoins.
    let v4 = fleet
        .publish(Envelope::sign(&catalog_document(4).unwrap(), &key).to_json())
        .await;
    let r4 = fleet.rollout(v4, 1_500).await;
    let before_kill = fleet
        .wait_rollout(r4.id, 60, |v| v.current_wave.is_some_and(|w| w >= 1))
        .await;
    fleet.control.take().unwrap().child.kill();
    let cut_off = load.stats().totals();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let gone = load.stats().totals().since(&cut_off);
    assert!(gone.sent > 0);
    assert_eq!(
        gone.failures(),
        0,
        "edges serve without their control plane: {gone:?}"
    );
    let fra = status::get_json(fleet.edge("fra-1").admin, "/status")
        .await
        .unwrap();
    assert_eq!(fra["active"]["version"], 4, "the canary kept what it had");
    assert_eq!(fra["control"]["connected"], false, "{fra}");

    let restarted_at = now_ms();
    fleet.control = Some(stack::start_control(&fleet.control_spec, &fleet.work).unwrap());
    let after = fleet.anon.rollout_status(r4.id).await.unwrap();
    assert!(!after.done, "{after:#?}");
    assert_eq!(after.started_at_ms, before_kill.started_at_ms);
    assert!(after.current_wave >= before_kill.current_wave);
    fleet.wait_beating(restarted_at, 30).await;
    let done = fleet.wait_rollout(r4.id, 90, |v| v.done).await;
    assert_eq!(done.phase, "succeeded", "{done:#?}");
    assert!(fleet.all_serve(4).await);
    let rollouts = fleet.anon.rollouts(10).await.unwrap().rollouts;
    assert_eq!(rollouts.len(), 4, "resumed, not started again");

    let metrics = status::get_text(fleet.edge("fra-1").admin, "/metrics")
        .await
        .unwrap();
    assert!(
        metrics.contains("rampart_edge_control_connected 1\n"),
        "{metrics}"
    );

    // No request failed from start to end, and the origin saw them.
    let total = load.stats().totals();
    assert_eq!(total.failures(), 0, "{total:?}");
    assert!(origin.counts().requests() > 0);
    drop(load);
    fleet.stop();
}
