//! Deaths and blessing with real processes: `rampart control` and `rampart edge` children on
//! loopback.
//!
//! - An edge following a control plane never promotes a soaked file the control plane has not
//!   blessed; SIGKILLed twice, each restart reports the death before it exactly once (the
//!   journal records each acknowledged death once, and the first is never sent again).
//! - The abort test hook: a file marked `rampart-test-abort-after-secs=1` kills an edge started
//!   with `RAMPART_TEST_HOOKS=1`, and does nothing to one started without it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Fleet, FleetSpec, until};
use rampart_artifact::Envelope;
use rampart_edge::abort_hook::TEST_ABORT_MARKER;
use rampart_up::inject::catalog_document;
use rampart_up::origin::Origin;
use rampart_up::stack;

const BEAT_MS: u64 = 200;

/// Upper bound of one wait for an edge (a boot, an activation, a report).
const EDGE_WAIT: Duration = Duration::from_secs(30);

const POLICY: &str = "\
[rollout]
tick_ms = 100
";

fn signed(fleet: &Fleet, version: u64, query: Option<&str>) -> Vec<u8> {
    let key = fleet.work.signing_key().unwrap();
    let mut doc = catalog_document(version).unwrap();
    if let Some(q) = query {
        doc.provenance.query = q.to_owned();
    }
    Envelope::sign(&doc, &key).to_json()
}

fn one_edge(origin: std::net::SocketAddr, test_hooks: bool) -> Fleet {
    Fleet::start(
        origin,
        &FleetSpec {
            policy: POLICY,
            beat_ms: BEAT_MS,
            nodes: &[("fra-1", "fra", "eu")],
            canary: "fra-1",
            // Soaked at the first tick: only the blessing can hold it back.
            edge_extra: ["--soak-secs", "0", "--soak-requests", "0"]
                .map(String::from)
                .to_vec(),
            test_hooks,
        },
    )
}

fn journal(fleet: &Fleet) -> PathBuf {
    fleet.work.root.join("edges/fra-1/data/sentinel/journal")
}

/// The `detected_at_ms` of every `death_reported` line of the journal.
fn reported(fleet: &Fleet) -> Vec<u64> {
    // A small test file of ours.
    #[allow(clippy::disallowed_methods)]
    let text = std::fs::read_to_string(journal(fleet)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "death_reported")
        .filter_map(|e| e["detected_at_ms"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unblessed_file_is_never_last_known_good_and_each_death_is_reported_once() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut fleet = one_edge(origin.addr(), false);
    fleet.wait_beating(0, 30).await;
    let edge = fleet.edge("fra-1");
    stack::drop_into(&edge.watch_dir, "v1.rfeat", &signed(&fleet, 1, None)).unwrap();
    until("version 1 active", EDGE_WAIT, async || {
        fleet.serving("fra-1").await == Some(1)
    })
    .await;
    // Several ticks of a soak of 0 s and 0 requests, and answers that bless nothing.
    until("the blessed list received", EDGE_WAIT, async || {
        fleet.status("fra-1").await["lkg"]["blessed"].is_array()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = fleet.status("fra-1").await;
    assert_eq!(status["lkg"]["require_blessing"], true, "{status}");
    assert!(status["lkg"]["current"].is_null(), "{status}");
    assert_eq!(status["lkg"]["history"], serde_json::json!([]), "{status}");
    assert_eq!(status["soak"]["done"], false, "{status}");

    // Two crashes: each restart reports the death before it, once.
    for deaths in 1..=2usize {
        fleet.sigkill_and_restart("fra-1");
        until("the death reported", EDGE_WAIT, async || {
            reported(&fleet).len() >= deaths
                && fleet.status("fra-1").await["pending_deaths"] == serde_json::json!([])
        })
        .await;
        let list = reported(&fleet);
        let mut distinct = list.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(list.len(), deaths, "{list:?}");
        assert_eq!(distinct.len(), deaths, "a death reported twice: {list:?}");
        let metrics = rampart_up::status::get_text(fleet.edge("fra-1").admin, "/metrics")
            .await
            .unwrap();
        assert!(
            metrics.contains("rampart_edge_deaths_found_total 1\n"),
            "only the run just before: {metrics}"
        );
        assert!(metrics.contains("rampart_edge_deaths_reported_total 1\n"));
    }
    // Still nothing promoted: nothing was blessed.
    assert!(fleet.status("fra-1").await["lkg"]["current"].is_null());
    fleet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abort_hook_kills_a_marked_edge_only_with_test_hooks_on() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let marker = format!("embedded catalog {TEST_ABORT_MARKER}1");
    for hooks in [false, true] {
        let mut fleet = one_edge(origin.addr(), hooks);
        fleet.wait_beating(0, 30).await;
        let edge = fleet.edge("fra-1");
        stack::drop_into(
            &edge.watch_dir,
            "v1.rfeat",
            &signed(&fleet, 1, Some(&marker)),
        )
        .unwrap();
        if hooks {
            let edge = fleet
                .edges
                .iter_mut()
                .find(|e| e.spec.id == "fra-1")
                .unwrap();
            let deadline = std::time::Instant::now() + EDGE_WAIT;
            while edge.child.is_running() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the marked edge is still running"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            until("version 1 active", EDGE_WAIT, async || {
                fleet.serving("fra-1").await == Some(1)
            })
            .await;
            // Three times the marker's delay, then still serving.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let edge = fleet
                .edges
                .iter_mut()
                .find(|e| e.spec.id == "fra-1")
                .unwrap();
            assert!(edge.child.is_running(), "aborted without test hooks");
            assert_eq!(fleet.serving("fra-1").await, Some(1));
        }
        fleet.stop();
    }
}
