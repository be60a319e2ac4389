//! A gate in `observe` mode, with real edges scoring real traffic: the policy sets
//! `[rollout.gates.modes] score_shift = "observe"`, and a valid file whose every score is 1
//! (the old proxy's failure on 18 November) goes through every wave. The rollout's record
//! says what the gate would have done, with its numbers: it would have rolled back at the
//! canary. The audit log has it once, and the enforcing gates still judged every wave.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Fleet, FleetSpec};
use rampart_artifact::Envelope;
use rampart_up::inject::{ALL_ONES_BIAS, catalog_document};
use rampart_up::load::Load;
use rampart_up::origin::Origin;

/// Short bakes and small samples; the score-shift gate only observes.
const POLICY: &str = "\
[plan]
canary_bake_ms = 1500
waves = [ { share = 1.0, bake_ms = 500 } ]
[rollout]
shadow = \"observe\"
tick_ms = 100
baseline_wait_ms = 1000
[rollout.gates]
min_requests = 100
[rollout.gates.shift]
min_scores = 100
[rollout.gates.modes]
score_shift = \"observe\"
";

const BEAT_MS: u64 = 200;

/// Requests per second through the four edges.
const RATE: u32 = 200;

const NODES: [(&str, &str, &str); 4] = [
    ("fra-1", "fra", "eu"),
    ("fra-2", "fra", "eu"),
    ("iad-1", "iad", "us"),
    ("iad-2", "iad", "us"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observing_score_shift_gate_lets_every_score_one_through_and_says_it_would_have_stopped_the_canary()
 {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let fleet = Fleet::start(
        origin.addr(),
        &FleetSpec {
            policy: POLICY,
            beat_ms: BEAT_MS,
            nodes: &NODES,
            canary: "fra-1",
            edge_extra: Vec::new(),
            test_hooks: false,
        },
    );
    let _load = Load::start(fleet.edges.iter().map(|e| e.proxy).collect(), RATE, 11).unwrap();
    fleet.wait_beating(0, 30).await;
    let key = fleet.work.signing_key().unwrap();

    let v1 = fleet
        .publish(Envelope::sign(&catalog_document(1).unwrap(), &key).to_json())
        .await;
    let r1 = fleet.rollout(v1, 300).await;
    let done = fleet.wait_rollout(r1.id, 60, |v| v.done).await;
    assert_eq!(done.phase, "succeeded", "{done:#?}");
    assert!(done.observed.is_empty(), "{:#?}", done.observed);

    // Every score 1: enforced, the score-shift gate stops this at the canary (tests/fleet.rs).
    let mut doc = catalog_document(2).unwrap();
    doc.model.bias = ALL_ONES_BIAS;
    let v2 = fleet.publish(Envelope::sign(&doc, &key).to_json()).await;
    let r2 = fleet.rollout(v2, 1_500).await;
    let done = fleet.wait_rollout(r2.id, 90, |v| v.done).await;
    assert_eq!(
        done.phase, "succeeded",
        "the observing gate acted: {done:#?}"
    );
    assert!(fleet.all_serve(2).await);
    assert!(
        fleet.anon.artifact_meta(&v2).await.unwrap().bad.is_none(),
        "an observing gate marks nothing bad"
    );

    // The record: it would have rolled back at the canary, with the numbers.
    assert_eq!(done.observed.len(), 1, "{:#?}", done.observed);
    let o = &done.observed[0];
    assert_eq!(o.gate, "score_shift");
    assert_eq!(o.wave, Some(0));
    assert_eq!(o.would, "would have rolled back at wave 0 (canary)");
    let d = o.numbers["ks"]["d"].as_f64().unwrap();
    assert!(d > 0.3, "KS D {d}: {o:#?}");
    assert!(o.explanation.contains("KS"), "{}", o.explanation);
    let canary_gates: Vec<_> = done.gates.iter().map(|g| g.verdict.as_str()).collect();
    assert!(
        !canary_gates.contains(&"fail"),
        "no enforcing gate failed: {:#?}",
        done.gates
    );

    // Shadow scoring, observing too, recorded that it would have held the file before wave 0.
    let audit = fleet.anon.audit(0, 1000).await.unwrap();
    let shadow: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "rollout.shadow_observed")
        .collect();
    assert_eq!(shadow.len(), 1, "{shadow:#?}");
    assert_eq!(shadow[0].subject, format!("rollout/{}", r2.id));
    let create = audit
        .entries
        .iter()
        .find(|e| e.action == "rollout.create" && e.subject == format!("rollout/{}", r2.id))
        .unwrap();
    assert_eq!(
        create.detail["shadow"]["result"], "held",
        "{}",
        create.detail
    );
    assert_eq!(create.detail["shadow"]["mode"], "observe");

    // Audited once, by the control plane, with the same numbers.
    let audit = fleet.anon.audit(0, 1000).await.unwrap();
    let observed: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "rollout.gate_observed")
        .collect();
    assert_eq!(observed.len(), 1, "{observed:#?}");
    let entry = observed[0];
    assert_eq!(entry.who, "control");
    assert_eq!(entry.subject, format!("rollout/{}", r2.id));
    assert_eq!(entry.detail["wave"], 0);
    assert_eq!(entry.detail["failure"]["gate"], "score_shift");
    assert!(
        entry
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("would have rolled back at wave 0"),
        "{entry:#?}"
    );
    // The CLI says it too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["rollout", "status", &r2.id.to_string(), "--control"])
        .arg(&fleet.control.as_ref().unwrap().url)
        .env("RAMPART_CA", fleet.work.tls().ca_cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("observe: gate score_shift would have rolled back at wave 0 (canary)"),
        "{text}"
    );
    fleet.stop();
}

/// The default: shadow scoring enforces.
const ENFORCING: &str = "\
[plan]
canary_bake_ms = 1500
waves = [ { share = 1.0, bake_ms = 500 } ]
[rollout]
tick_ms = 100
baseline_wait_ms = 1000
[rollout.gates]
min_requests = 100
[rollout.gates.shift]
min_scores = 100
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_scoring_holds_every_score_one_before_wave_0_until_an_operator_approves_it_with_a_reason()
 {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let fleet = Fleet::start(
        origin.addr(),
        &FleetSpec {
            policy: ENFORCING,
            beat_ms: BEAT_MS,
            nodes: &NODES,
            canary: "fra-1",
            edge_extra: Vec::new(),
            test_hooks: false,
        },
    );
    let _load = Load::start(fleet.edges.iter().map(|e| e.proxy).collect(), RATE, 13).unwrap();
    fleet.wait_beating(0, 30).await;
    let key = fleet.work.signing_key().unwrap();
    let v1 = fleet
        .publish(Envelope::sign(&catalog_document(1).unwrap(), &key).to_json())
        .await;
    let r1 = fleet.rollout(v1, 300).await;
    assert_eq!(
        fleet.wait_rollout(r1.id, 60, |v| v.done).await.phase,
        "succeeded"
    );

    // A retrain that changes nothing the sample sees passes shadow scoring and rolls out.
    let v2 = fleet
        .publish(Envelope::sign(&catalog_document(2).unwrap(), &key).to_json())
        .await;
    let r2 = fleet.rollout(v2, 300).await;
    assert_eq!(
        fleet.wait_rollout(r2.id, 60, |v| v.done).await.phase,
        "succeeded"
    );

    // The canary's sample of recent requests (extractor values and scores only) judges a
    // candidate on the fleet's own traffic: every score 1 is held on it too.
    let sample = rampart_up::status::get_text(fleet.edge("fra-1").admin, "/sample")
        .await
        .unwrap();
    let rows = sample.lines().count();
    assert!(rows >= 10, "{rows} sampled requests");
    assert!(
        sample
            .lines()
            .all(|l| !l.contains("user-agent") && !l.contains("127.0.0.1")),
        "no header value, no address: {}",
        sample.lines().next().unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let sample_file = write("sample.jsonl", sample.as_bytes());
    let serving = write(
        "v2.json",
        &serde_json::to_vec(&catalog_document(2).unwrap()).unwrap(),
    );
    let mut ones_doc = catalog_document(3).unwrap();
    ones_doc.model.bias = ALL_ONES_BIAS;
    let ones = write("v3.json", &serde_json::to_vec(&ones_doc).unwrap());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["artifact", "shadow", "--candidate"])
        .arg(&ones)
        .arg("--against")
        .arg(&serving)
        .arg("--sample")
        .arg(&sample_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text.contains(&format!("{rows} requests scored")), "{text}");

    // Every score 1: held before wave 0, nobody told.
    let mut doc = catalog_document(3).unwrap();
    doc.model.bias = ALL_ONES_BIAS;
    let v3 = fleet.publish(Envelope::sign(&doc, &key).to_json()).await;
    let held = fleet.rollout(v3, 1_500).await;
    assert_eq!(held.phase, "paused", "{held:#?}");
    assert!(held.waves.iter().all(|w| w.phase == "pending"), "{held:#?}");
    let outcome = held.outcome.clone().unwrap_or_default();
    assert!(
        outcome.starts_with("held before wave 0 by shadow scoring"),
        "{outcome}"
    );
    assert!(outcome.contains("score distribution"), "{outcome}");
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    for n in fleet.anon.nodes().await.unwrap().nodes {
        assert_eq!(n.desired.as_ref().map(|d| d.version), Some(2), "{n:?}");
        assert_eq!(n.active.map(|a| a.version), Some(2), "{n:?}");
    }
    let audit = fleet.anon.audit(0, 1000).await.unwrap();
    let entry = audit
        .entries
        .iter()
        .find(|e| e.action == "rollout.shadow_held")
        .expect("audited");
    assert_eq!(entry.who, "control");
    assert!(
        entry.reason.as_deref().unwrap_or("").contains("KS"),
        "{entry:#?}"
    );

    // Approving needs a reason; with one, it goes to the canary, where the (enforcing)
    // score-shift gate stops it on real traffic.
    let refused = fleet.admin.rollout_resume(held.id, None).await.unwrap_err();
    assert_eq!(refused.status(), Some(409), "{refused}");
    fleet
        .admin
        .rollout_resume(held.id, Some("drill: see the gate stop it".into()))
        .await
        .unwrap();
    let done = fleet.wait_rollout(held.id, 90, |v| v.done).await;
    assert_eq!(done.phase, "rolled_back", "{done:#?}");
    assert_eq!(
        rampart_up::inject::failed_gate(&done).as_deref(),
        Some("score_shift"),
        "{done:#?}"
    );
    let audit = fleet.anon.audit(0, 1000).await.unwrap();
    assert!(
        audit.entries.iter().any(|e| e.action == "rollout.command"
            && e.who != "control"
            && e.reason.as_deref() == Some("drill: see the gate stop it")),
        "the approval is audited with its reason"
    );
    fleet.stop();
}
