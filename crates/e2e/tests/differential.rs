//! The differential test of the rollout runner: a replay's control plane and the real
//! control plane's driver, handed the same fleet, the same heartbeats and the same clock,
//! come to the same wave plans, wave decisions, rollbacks and bad marks.
//!
//! The replay runs the 18 November scenario on a small fleet with the canary gates as the
//! only layer (so doubled files reach rollouts and are rolled back) and keeps a transcript
//! of what its control plane was handed. The transcript then drives a real
//! `rampart_control::Service` (SQLite store in a temp dir, a clock the test sets): each
//! publication is published, each rollout start is preceded by the nodes' last words as
//! heartbeats and followed by the driver's auto-rollout, each step's heartbeats go through
//! `Service::heartbeat` before `Service::reconcile_all`, and the simulated operator's
//! rollback is a `command_rollout`. The audit log must then hold exactly the events the
//! replay's runner decided, at the same times. Beats carry the deaths the replay's nodes
//! reported (digest active, uptime, time on it; the replay knows no cause), so the driver's
//! restarts and death gates see what the runner's saw.
//!
//! A second replay, 29 October 2025 with every layer, drives the watch: the rollout passes
//! its waves, the canary dies 5 minutes after loading the file, and both fail the watch.
//!
//! One thing differs on purpose: the real control plane refuses a doubled file at publish
//! (duplicate names), so each doubled file is handed to it with its duplicates dropped (the
//! same version, another digest). Digests are mapped both ways; what the edges report is
//! the replay's, unchanged.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rampart_api::heartbeat::{AckNack, ApplyReport, BeatCounters, Death, ScoreHistogram};
use rampart_api::{
    Active, Heartbeat, KIND_FEATURES, Labels, Registration, RolloutAction, RolloutCommand,
};
use rampart_artifact::{Digest, Envelope, Keyring, SecretKey};
use rampart_control::auth::{Caller, Role, Tokens};
use rampart_control::fleet::to_beat;
use rampart_control::store::{Batch, Target, Write};
use rampart_control::{Clock, Config, Service, SqliteStore, Store};
use rampart_rollout::{Action, Apply, Beat, Command};
use rampart_score::edge_contract;
use rampart_sim::control::{Entry, Transcript};
use rampart_sim::mode::Variant;
use rampart_sim::producer::{Publication, key_seed};
use rampart_sim::replay::{Shared, run_recorded};
use rampart_sim::{Layer, Scenario};

const MINUTE: u64 = 60_000;

/// What both sides decided, comparable: `(subject, at_ms, what, detail)`.
type Decision = (String, u64, String, String);

/// The control plane's names for the replay's digests, and back.
#[derive(Default)]
struct Digests {
    to_control: HashMap<Digest, Digest>,
    versions: HashMap<Digest, u64>,
}

impl Digests {
    fn control(&self, d: Digest) -> Digest {
        self.to_control.get(&d).copied().unwrap_or(d)
    }

    /// `text` with every replay digest replaced by the control plane's.
    fn rename(&self, mut text: String) -> String {
        for (sim, control) in &self.to_control {
            text = text.replace(&sim.to_string(), &control.to_string());
        }
        text
    }
}

fn scenario() -> Scenario {
    let mut s = Scenario::load("nov18").unwrap();
    s.fleet.pops = 12;
    s.fleet.nodes_per_pop = 2;
    // Two doubled files rolled back, two good ones rolled out.
    s.end = s.start + 45 * MINUTE;
    s
}

/// The bytes the real control plane is handed for `file`: the file itself, or, when it is
/// a doubled file (which it refuses at publish), the same version with the duplicates and
/// the shard's columns dropped (the features of `seed` only).
fn for_control(file: &Publication, seed: &Publication, key: &SecretKey) -> (Digest, Vec<u8>) {
    if !file.faulty {
        return (file.digest, file.bytes.to_vec());
    }
    let mut doc = (*file.document).clone();
    let known: std::collections::HashSet<&str> = seed
        .document
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    let mut seen = std::collections::HashSet::new();
    doc.features
        .retain(|f| known.contains(f.name.as_str()) && seen.insert(f.name.clone()));
    (doc.digest(), Envelope::sign(&doc, key).to_json())
}

/// A replay beat as an edge would send it, naming the control plane's digests.
fn heartbeat(beat: &Beat, digests: &Digests, seq: u64) -> Heartbeat {
    let counts = beat.scores.counts();
    let verdict = beat.apply.as_ref().map(|a| match a {
        Apply::Accepted { digest } => ApplyReport {
            digest: digests.control(*digest),
            version: None,
            verdict: AckNack::Ack,
            issues: Vec::new(),
            at_ms: 0,
        },
        Apply::Rejected { digest, codes } => ApplyReport {
            digest: digests.control(*digest),
            version: None,
            verdict: AckNack::Nack,
            issues: codes.clone(),
            at_ms: 0,
        },
    });
    Heartbeat {
        seq,
        active: beat.active.map(|d| Active {
            version: digests.versions.get(&d).copied().unwrap_or(0),
            digest: digests.control(d),
        }),
        module_enabled: true,
        verdict,
        last_rejection: None,
        counters: BeatCounters {
            requests: beat.counters.requests,
            errors_5xx: beat.counters.errors_5xx,
            module_errors: beat.counters.module_errors,
            restarts: u64::from(beat.restarts),
        },
        scores: ScoreHistogram {
            buckets: counts.iter().skip(1).copied().collect(),
            unscored: counts.first().copied().unwrap_or(0),
        },
        seen: None,
        wait_ms: 0,
        deaths: beat
            .deaths
            .iter()
            .map(|d| Death {
                detected_at_ms: d.detected_at_ms,
                active: d.active.map(|a| Active {
                    version: digests.versions.get(&a).copied().unwrap_or(0),
                    digest: digests.control(a),
                }),
                active_for_ms: d.active_for_ms,
                uptime_ms: d.uptime_ms,
                cause: Default::default(),
            })
            .collect(),
    }
}

/// The same beat with the control plane's digests: what `to_beat` must give back.
fn renamed(beat: &Beat, digests: &Digests) -> Beat {
    let mut b = beat.clone();
    b.active = b.active.map(|d| digests.control(d));
    for d in &mut b.deaths {
        d.active = d.active.map(|a| digests.control(a));
    }
    b.apply = b.apply.map(|a| match a {
        Apply::Accepted { digest } => Apply::Accepted {
            digest: digests.control(digest),
        },
        Apply::Rejected { digest, codes } => Apply::Rejected {
            digest: digests.control(digest),
            codes,
        },
    });
    b
}

/// What the replay's runner decided, in the audit log's terms.
fn replay_decisions(t: &Transcript, digests: &Digests) -> Vec<Decision> {
    let mut out = Vec::new();
    for entry in &t.entries {
        let Entry::Decided { at, actions } = entry else {
            continue;
        };
        for action in actions {
            match action {
                Action::Audit(record) => {
                    let detail = serde_json::to_value(&record.event).unwrap();
                    let name = detail["event"].as_str().unwrap().to_owned();
                    out.push((
                        format!("rollout/{}", record.rollout),
                        record.at_ms,
                        format!("rollout.{name}"),
                        digests.rename(detail.to_string()),
                    ));
                }
                Action::MarkBad { digest, .. } => out.push((
                    digests.control(*digest).to_string(),
                    *at,
                    "artifact.mark_bad".into(),
                    String::new(),
                )),
                Action::SetDesired { .. } => {}
            }
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn the_control_planes_driver_decides_what_the_replays_runner_decided() {
    let scenario = scenario();
    let shared = Shared::new(&scenario).unwrap();
    let (run, transcript) =
        run_recorded(&scenario, &Variant::only(Layer::CanaryGates), &shared).unwrap();
    assert!(
        run.rollouts.1 >= 2,
        "the window holds rollbacks: {:?}",
        run.rollouts
    );
    assert!(run.rollouts.0 > run.rollouts.1, "and rollouts that pass");
    // Crash-looping FL2 proxies report their deaths once they beat again.
    assert!(deaths_in(&transcript) > 0);
    let (planned, expected) = drive(&scenario, &transcript).await;
    assert!(planned >= 4, "{planned} rollouts");
    let gate_failures = expected
        .iter()
        .filter(|d| d.2 == "rollout.gate_failed")
        .count();
    assert!(gate_failures >= 2, "{expected:#?}");
}

/// 29 October 2025 with every layer: the rollout passes its waves, the watch over the
/// whole fleet fails on the canary's deaths and rolls everyone back; the real driver, handed
/// the same beats (with their deaths), comes to the same watch failure at the same time.
#[tokio::test(flavor = "current_thread")]
async fn the_driver_fails_the_watch_where_the_replay_did() {
    let mut scenario = Scenario::load("afd-oct29").unwrap();
    scenario.fleet.pops = 12;
    scenario.fleet.nodes_per_pop = 2;
    scenario.end = scenario.start + 30 * MINUTE;
    let shared = Shared::new(&scenario).unwrap();
    let (run, transcript) = run_recorded(&scenario, &Variant::rampart(), &shared).unwrap();
    assert_eq!(run.rollouts, (1, 1), "one rollout, rolled back");
    assert!(deaths_in(&transcript) > 0);
    let (planned, expected) = drive(&scenario, &transcript).await;
    assert_eq!(planned, 1);
    let names: Vec<&str> = expected.iter().map(|d| d.2.as_str()).collect();
    assert!(names.contains(&"rollout.watching"), "{names:?}");
    assert!(names.contains(&"rollout.watch_failed"), "{names:?}");
    assert!(!names.contains(&"rollout.gate_failed"), "{names:?}");
}

/// Deaths the replay's nodes reported in the beats of its steps.
fn deaths_in(t: &Transcript) -> usize {
    t.entries
        .iter()
        .map(|e| match e {
            Entry::Step { beats, .. } => beats.iter().map(|(_, b)| b.deaths.len()).sum(),
            _ => 0,
        })
        .sum()
}

/// Drives a real control plane with `transcript` and checks that it decided what the
/// replay's runner decided, in the same order at the same times. Returns the rollouts
/// planned and the decisions.
async fn drive(scenario: &Scenario, transcript: &Transcript) -> (usize, Vec<Decision>) {
    // The real control plane, with the replay's key, policies and clock.
    let key = SecretKey::from_seed(key_seed(scenario.seed));
    let dir = tempfile::tempdir().unwrap();
    let (plan_policy, rollout_policy) = transcript.policies.clone().unwrap();
    let mut tokens = Tokens::default();
    tokens.add_admin("test", &"s".repeat(32)).unwrap();
    let mut config = Config::new(dir.path().to_owned(), tokens, Keyring::new([key.public()]));
    config.plan_policy = plan_policy;
    config.rollout_policy = rollout_policy;
    config.auto_rollout = true;
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut digests = Digests::default();
    let Some(Entry::Seed { at: t0, file: seed }) = transcript.entries.first() else {
        panic!("a transcript starts with the seed file");
    };
    digests.versions.insert(seed.digest, seed.version);
    // Every node serves the seed before the day starts, as in the replay.
    store
        .commit(Batch::one(Write::SetDesired {
            kind: KIND_FEATURES.into(),
            node: None,
            target: Some(Target {
                version: seed.version,
                digest: seed.digest,
            }),
        }))
        .await
        .unwrap();
    let now = Arc::new(AtomicU64::new(*t0));
    let clock = {
        let now = Arc::clone(&now);
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    let service = Service::open_with_clock(config, store, clock)
        .await
        .unwrap();
    let admin = Caller {
        name: "test".into(),
        role: Role::Admin,
    };
    for node in &transcript.registry {
        let reg = Registration {
            node: node.id.clone(),
            labels: Labels {
                pop: node.pop.clone(),
                region: node.region.clone(),
                canary: node.canary,
            },
            contract: edge_contract().spec().clone(),
            software_version: "replay".into(),
        };
        service.register(&admin, reg).await.unwrap();
    }

    let mut seq = 0u64;
    let mut planned: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    let mut rollout_ids: HashMap<String, u64> = HashMap::new();
    for entry in &transcript.entries {
        match entry {
            Entry::Seed { .. } | Entry::Decided { .. } => {}
            Entry::Publish { at, file } => {
                now.store(*at, Ordering::SeqCst);
                let (digest, bytes) = for_control(file, seed, &key);
                digests.to_control.insert(file.digest, digest);
                digests.versions.insert(file.digest, file.version);
                service.publish(&admin, bytes).await.unwrap();
            }
            Entry::Start { at, last_words, .. } => {
                now.store(*at, Ordering::SeqCst);
                for (node, beat) in last_words {
                    seq += 1;
                    let hb = heartbeat(beat, &digests, seq);
                    assert_eq!(to_beat(&hb), renamed(beat, &digests));
                    service.heartbeat(node, hb).await.unwrap();
                }
                service.auto_rollout().await;
            }
            Entry::Planned { rollout, waves } => {
                planned.push((rollout.clone(), waves.clone()));
                rollout_ids.insert(rollout.clone(), rollout.parse().unwrap());
            }
            Entry::Step { at, beats } => {
                now.store(*at, Ordering::SeqCst);
                for (node, beat) in beats {
                    seq += 1;
                    let hb = heartbeat(beat, &digests, seq);
                    assert_eq!(to_beat(&hb), renamed(beat, &digests));
                    service.heartbeat(node, hb).await.unwrap();
                }
                service.reconcile_all().await;
            }
            Entry::Command {
                at,
                rollout,
                command,
                by,
            } => {
                now.store(*at, Ordering::SeqCst);
                let Command::Rollback { mark_bad } = command else {
                    panic!("the simulated operator only rolls back");
                };
                let caller = Caller {
                    name: by.who.clone(),
                    role: Role::Admin,
                };
                let action = RolloutAction {
                    reason: Some(by.reason.clone()),
                    mark_bad: *mark_bad,
                };
                service
                    .command_rollout(
                        &caller,
                        rollout_ids[rollout],
                        RolloutCommand::Rollback,
                        action,
                    )
                    .await
                    .unwrap();
            }
        }
    }

    // The same waves, node by node.
    for (id, waves) in &planned {
        let view = service.rollout(id.parse().unwrap()).await.unwrap();
        let control: Vec<Vec<String>> = view.waves.iter().map(|w| w.nodes.clone()).collect();
        assert_eq!(&control, waves, "the waves of rollout {id}");
    }
    // The same decisions, at the same times, in the same order.
    let expected = replay_decisions(transcript, &digests);
    let page = service.audit(0, 100_000).await.unwrap();
    let actual: Vec<Decision> = page
        .entries
        .iter()
        .filter(|e| {
            (e.action.starts_with("rollout.") && e.action != "rollout.create")
                || e.action == "artifact.mark_bad"
        })
        .map(|e| {
            let detail = if e.action == "artifact.mark_bad" {
                String::new()
            } else {
                e.detail.to_string()
            };
            (e.subject.clone(), e.at_ms, e.action.clone(), detail)
        })
        .collect();
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(e, a, "decision {i} differs");
    }
    assert_eq!(expected.len(), actual.len());
    (planned.len(), expected)
}
