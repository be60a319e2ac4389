//! Faults with real processes: `rampart control` and `rampart edge` children on loopback,
//! real signals and real HTTP.
//!
//! - An edge SIGKILLed (by PID) three times right after it activates version 2, restarted
//!   each time as a supervisor would: the fourth boot serves last-known-good (version 1)
//!   with version 2 poisoned, and the control plane's rollout of version 2 rolls back
//!   through the restarts gate.
//! - 50 successive valid files dropped into an edge's watch dir under traffic: no failed
//!   request, and no request reaches the origin without a numeric score.
//! - A rollout whose canary's bot module fails (the `RAMPART_TEST_HOOKS` panic header on
//!   traffic through the canary during the wave): fail-closed, the 5xx gate rolls it back;
//!   fail-open, requests pass and the module-error gate rolls it back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::{Fleet, FleetSpec, until};
use rampart_api::RolloutView;
use rampart_artifact::Envelope;
use rampart_edge::module::TEST_PANIC_HEADER;
use rampart_up::inject::{catalog_document, failed_gate};
use rampart_up::load::{Load, LoadSpec, LoadTotals};
use rampart_up::origin::Origin;
use rampart_up::stack;
use rampart_up::status;

const BEAT_MS: u64 = 200;

/// Upper bound of one wait for an edge (a boot, an activation).
const EDGE_WAIT: Duration = Duration::from_secs(30);

/// Upper bound of one rollout, in seconds.
const ROLLOUT_SECS: u64 = 60;

/// Short bakes and small samples. The restarts gate allows two restarts per node, so the
/// rollout still offers version 2 to the canary after its first two deaths (as a fleet
/// would keep offering a file before the gate sees enough): the third death is the
/// sentinel's threshold, and the restart it reports fails the gate.
const SIGKILL_POLICY: &str = "\
[plan]
canary_bake_ms = 300
[rollout]
tick_ms = 100
baseline_wait_ms = 500
[rollout.gates]
min_requests = 50
max_restarts_per_node = 2
[rollout.gates.shift]
min_scores = 50
";

/// Short bakes and small samples; the gates' other thresholds are the defaults.
const GATE_POLICY: &str = "\
[plan]
canary_bake_ms = 300
[rollout]
tick_ms = 100
baseline_wait_ms = 500
[rollout.gates]
min_requests = 100
[rollout.gates.shift]
min_scores = 100
";

fn signed(fleet: &Fleet, version: u64) -> Vec<u8> {
    let key = fleet.work.signing_key().unwrap();
    Envelope::sign(&catalog_document(version).unwrap(), &key).to_json()
}

/// Traffic through `targets`: bounded in count (`rate` × `secs`) and so in time.
fn load(targets: Vec<std::net::SocketAddr>, rate: u32, secs: u64, panic: bool) -> Load {
    Load::start_spec(LoadSpec {
        targets,
        rate,
        seed: 13,
        max_requests: u64::from(rate) * secs,
        header: panic.then(|| {
            (
                http::HeaderName::from_static(TEST_PANIC_HEADER),
                http::HeaderValue::from_static("1"),
            )
        }),
    })
    .unwrap()
}

/// Stops `load` and waits until nothing is in flight; its totals.
async fn finish(load: &Load) -> LoadTotals {
    load.stop();
    until("the load to drain", EDGE_WAIT, async || load.is_done()).await;
    load.stats().totals()
}

/// The audit entry of rollout `id` that names why it rolled back.
async fn rollback_audit(fleet: &Fleet, id: u64) -> String {
    let page = fleet.admin.audit(0, 1_000).await.unwrap();
    let subject = format!("rollout/{id}");
    page.entries
        .iter()
        .filter(|e| e.subject == subject)
        .map(|e| format!("{} {:?} {}", e.action, e.reason, e.detail))
        .filter(|line| line.contains("roll"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A good version 1 on every edge through a rollout, with traffic so its waves judge.
async fn first_version(fleet: &Fleet) -> RolloutView {
    let v1 = fleet.publish(signed(fleet, 1)).await;
    let r1 = fleet.rollout(v1, 300).await;
    let done = fleet.wait_rollout(r1.id, ROLLOUT_SECS, |v| v.done).await;
    assert_eq!(done.phase, "succeeded", "{done:#?}");
    assert!(fleet.all_serve(1).await);
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_three_times_after_activating_boots_on_last_known_good() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut fleet = Fleet::start(
        origin.addr(),
        &FleetSpec {
            policy: SIGKILL_POLICY,
            beat_ms: BEAT_MS,
            nodes: &[("fra-1", "fra", "eu"), ("fra-2", "fra", "eu")],
            canary: "fra-1",
            // Last-known-good after 20 requests and 1 s: version 1 gets there under the
            // traffic below; version 2, activated with no traffic, never does.
            edge_extra: ["--soak-secs", "1", "--soak-requests", "20"]
                .map(String::from)
                .to_vec(),
            test_hooks: false,
        },
    );
    fleet.wait_beating(0, 30).await;

    // Version 1 everywhere, soaked into last-known-good; then the traffic stops.
    let traffic = load(fleet.proxies(), 200, 60, false);
    first_version(&fleet).await;
    until(
        "version 1 as the canary's last-known-good",
        EDGE_WAIT,
        async || fleet.status("fra-1").await["lkg"]["current"]["version"] == 1,
    )
    .await;
    let sent = finish(&traffic).await;
    assert_eq!(sent.failures(), 0, "{sent:?}");

    // Version 2 to the canary; it dies right after each activation.
    let v2 = fleet.publish(signed(&fleet, 2)).await;
    let r2 = fleet.rollout(v2, 60_000).await;
    for death in 1..=3 {
        let deadline = std::time::Instant::now() + EDGE_WAIT;
        loop {
            let s = fleet.status("fra-1").await;
            if s["active"]["version"] == 2 {
                break;
            }
            let rollout = fleet.anon.rollout_status(r2.id).await.unwrap();
            assert!(
                !rollout.done && std::time::Instant::now() < deadline,
                "boot {death}: the canary never activated version 2: {s}\n{rollout:#?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let pid = fleet.sigkill_and_restart("fra-1");
        assert_ne!(pid, fleet.edge("fra-1").child.pid());
    }

    // The fourth boot: last-known-good, version 2 poisoned, and refused when offered again.
    let s = fleet.status("fra-1").await;
    assert_eq!(s["active"]["version"], 1, "{s}");
    assert_eq!(
        s["sentinel"]["decision"]["decision"], "last_known_good",
        "{s}"
    );
    assert_eq!(s["poisoned"][0]["version"], 2, "{s}");
    assert_eq!(s["poisoned"][0]["deaths"], 3, "{s}");
    let metrics = status::get_text(fleet.edge("fra-1").admin, "/metrics")
        .await
        .unwrap();
    assert!(
        metrics.contains("rampart_edge_poisoned_total 1\n"),
        "{metrics}"
    );

    // The restart the fourth boot reports fails the gate: the rollout rolls back.
    let done = fleet.wait_rollout(r2.id, ROLLOUT_SECS, |v| v.done).await;
    assert_eq!(done.phase, "rolled_back", "{done:#?}");
    assert_eq!(failed_gate(&done).as_deref(), Some("restarts"), "{done:#?}");
    let audit = rollback_audit(&fleet, r2.id).await;
    assert!(audit.contains("restarts"), "{audit}");
    assert!(
        fleet.anon.artifact_meta(&v2).await.unwrap().bad.is_some(),
        "version 2 is marked bad"
    );
    until("every edge back on version 1", EDGE_WAIT, async || {
        fleet.all_serve(1).await
    })
    .await;
    let s = fleet.status("fra-1").await;
    assert_eq!(s["active"]["version"], 1, "{s}");
    assert_eq!(s["poisoned"][0]["version"], 2, "{s}");
    fleet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_files_swapped_under_traffic_fail_no_request() {
    const FILES: u64 = 50;
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let fleet = Fleet::start(
        origin.addr(),
        &FleetSpec {
            policy: GATE_POLICY,
            beat_ms: BEAT_MS,
            nodes: &[("fra-1", "fra", "eu")],
            canary: "fra-1",
            edge_extra: ["--watch-poll-ms", "20"].map(String::from).to_vec(),
            test_hooks: false,
        },
    );
    let edge = fleet.edge("fra-1");
    let files: Vec<Vec<u8>> = (1..=FILES).map(|v| signed(&fleet, v)).collect();

    let mut scored_from = None;
    let mut traffic = None;
    for (v, bytes) in (1..=FILES).zip(&files) {
        stack::drop_into(&edge.watch_dir, &format!("v{v}.json"), bytes).unwrap();
        until(&format!("version {v} active"), EDGE_WAIT, async || {
            fleet.serving("fra-1").await == Some(v)
        })
        .await;
        if v == 1 {
            // Traffic starts once the first file serves: from here every request that
            // reaches the origin must carry a score.
            scored_from = Some((origin.counts().requests(), origin.counts().scores()[0]));
            traffic = Some(load(vec![edge.proxy], 300, 120, false));
        }
    }
    let traffic = traffic.unwrap();
    let during = traffic.stats().totals();
    let totals = finish(&traffic).await;
    let (requests_before, unscored_before) = scored_from.unwrap();
    let reached = origin.counts().requests() - requests_before;
    let unscored = origin.counts().scores()[0] - unscored_before;
    eprintln!("50 swaps: {totals:?}, {reached} reached the origin, {unscored} unscored");
    assert!(
        during.sent > 100,
        "traffic ran during the swaps: {during:?}"
    );
    assert_eq!(totals.failures(), 0, "{totals:?}");
    assert_eq!(
        totals.other + totals.blocked + totals.skipped,
        0,
        "{totals:?}"
    );
    assert_eq!(totals.ok, totals.sent, "{totals:?}");
    assert_eq!(
        reached, totals.ok,
        "every answered request reached the origin"
    );
    assert_eq!(unscored, 0, "requests without a numeric score: {unscored}");
    let s = fleet.status("fra-1").await;
    assert_eq!(s["active"]["version"], FILES, "{s}");
    assert!(s["last_rejection"].is_null(), "{s}");
    fleet.stop();
}

/// A canary whose module fails on the new version's traffic, by `fail_policy`: the rollout
/// rolls back through `gate`. Returns what the faulty requests' clients saw, and how many
/// requests reached the origin without a score.
async fn canary_module_fails(fail_policy: &str, gate: &str) -> (LoadTotals, u64) {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let fleet = Fleet::start(
        origin.addr(),
        &FleetSpec {
            policy: GATE_POLICY,
            beat_ms: BEAT_MS,
            nodes: &[
                ("fra-1", "fra", "eu"),
                ("fra-2", "fra", "eu"),
                ("ams-1", "ams", "eu"),
            ],
            canary: "fra-1",
            edge_extra: vec!["--fail-policy".into(), fail_policy.into()],
            test_hooks: true,
        },
    );
    fleet.wait_beating(0, 30).await;
    let traffic = load(fleet.proxies(), 300, 90, false);
    first_version(&fleet).await;

    let v2 = fleet.publish(signed(&fleet, 2)).await;
    let r2 = fleet.rollout(v2, 60_000).await;
    until("the canary on version 2", EDGE_WAIT, async || {
        fleet.serving("fra-1").await == Some(2)
    })
    .await;
    // During the wave, a share of the canary's traffic makes its module panic.
    let faulty = load(vec![fleet.edge("fra-1").proxy], 100, 60, true);
    let done = fleet.wait_rollout(r2.id, ROLLOUT_SECS, |v| v.done).await;
    let faulty = finish(&faulty).await;
    let healthy = finish(&traffic).await;
    assert_eq!(done.phase, "rolled_back", "{done:#?}");
    assert_eq!(failed_gate(&done).as_deref(), Some(gate), "{done:#?}");
    let audit = rollback_audit(&fleet, r2.id).await;
    assert!(audit.contains(gate), "{audit}");
    assert!(faulty.sent > 0, "{faulty:?}");
    assert_eq!(
        healthy.failures(),
        0,
        "requests without the panic header never fail: {healthy:?}"
    );
    until("every edge back on version 1", EDGE_WAIT, async || {
        fleet.all_serve(1).await
    })
    .await;
    for id in ["fra-2", "ams-1"] {
        let s = fleet.status(id).await;
        assert_eq!(
            s["control"]["verdict"]["version"], 1,
            "only the canary saw v2: {s}"
        );
    }
    fleet.stop();
    (faulty, origin.counts().scores()[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_closed_canary_answering_5xx_rolls_back_through_the_5xx_gate() {
    let (faulty, _) = canary_module_fails("closed", "errors_5xx").await;
    assert!(faulty.errors_5xx > 0, "fail-closed answers 503: {faulty:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_canary_with_module_errors_rolls_back_through_the_module_error_gate() {
    let (faulty, unscored) = canary_module_fails("open", "module_errors").await;
    assert_eq!(
        faulty.failures(),
        0,
        "fail-open lets the failed requests through: {faulty:?}"
    );
    assert!(unscored > 0, "… unscored, to the origin");
}
