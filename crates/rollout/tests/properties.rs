//! Properties over random fleets, observations and operator input: plans keep PoPs in at
//! most two consecutive waves; reconcile never panics and is a pure function; nodes of waves
//! the rollout has not reached are never touched; a failing observation is answered by a
//! rollback on the very next reconcile.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support {
    pub mod fleet;
}

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rampart_artifact::Digest;
use rampart_rollout::rollout::{PauseCause, Resume};
use rampart_rollout::stats::{ks_two_sample, mann_whitney};
use rampart_rollout::*;
use support::fleet::*;

/// A fleet from PoP sizes, regions and canary labels.
fn build(pops: &[(usize, u8)], canaries: &[bool]) -> Vec<Node> {
    let mut out = Vec::new();
    let mut k = 0;
    for (p, &(size, region)) in pops.iter().enumerate() {
        for n in 0..size {
            out.push(Node {
                id: format!("p{p}-{n}"),
                pop: format!("p{p}"),
                region: format!("r{region}"),
                canary: canaries.get(k).copied().unwrap_or(false),
            });
            k += 1;
        }
    }
    out
}

fn check_plan(nodes: &[Node], policy: &PlanPolicy) -> Result<(), TestCaseError> {
    let plan = plan(nodes, policy).unwrap();
    let waves = plan.waves();
    prop_assert!(!waves.is_empty());
    prop_assert!(waves.len() <= 1 + policy.waves.len());
    let mut seen = vec![0u8; nodes.len()];
    for (w, wave) in waves.iter().enumerate() {
        prop_assert!(!wave.nodes.is_empty(), "empty wave {}", w);
        prop_assert!(wave.nodes.windows(2).all(|p| p[0] < p[1]));
        for idx in &wave.nodes {
            seen[idx.index()] += 1;
            prop_assert_eq!(plan.wave_of(*idx), Some(w as u16));
        }
    }
    prop_assert!(
        seen.iter().all(|s| *s == 1),
        "every node in exactly one wave"
    );
    let mut pop_waves: BTreeMap<u32, BTreeSet<u16>> = BTreeMap::new();
    for n in plan.nodes() {
        pop_waves.entry(n.pop).or_default().insert(n.wave);
    }
    for (pop, ws) in &pop_waves {
        prop_assert!(ws.len() <= 2, "pop {} in waves {:?}", pop, ws);
        if let (Some(a), Some(b)) = (ws.first(), ws.last()) {
            prop_assert!(b - a <= 1, "pop {} in non-consecutive waves {:?}", pop, ws);
        }
    }
    let labelled: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.canary)
        .map(|n| n.id.as_str())
        .collect();
    let first: BTreeSet<&str> = waves[0]
        .nodes
        .iter()
        .map(|i| plan.node(*i).unwrap().id.as_str())
        .collect();
    if labelled.is_empty() {
        prop_assert_eq!(first.len(), 1);
    } else {
        prop_assert_eq!(first, labelled);
    }
    // The same fleet in another order gives the same plan.
    let mut reversed = nodes.to_vec();
    reversed.reverse();
    prop_assert_eq!(&super_plan(&reversed, policy), &plan);
    Ok(())
}

fn super_plan(nodes: &[Node], policy: &PlanPolicy) -> Plan {
    plan(nodes, policy).unwrap()
}

fn fleet_strategy() -> impl Strategy<Value = (Vec<(usize, u8)>, Vec<bool>, u64)> {
    (
        prop::collection::vec(
            prop_oneof![
                8 => (1usize..=8, 0u8..8),
                1 => (9usize..=80, 0u8..8),
            ],
            1..=120,
        ),
        prop::collection::vec(prop::bool::weighted(0.02), 0..600),
        any::<u64>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn plans_keep_pops_in_at_most_two_consecutive_waves((pops, canaries, seed) in fleet_strategy()) {
        let nodes = build(&pops, &canaries);
        check_plan(&nodes, &PlanPolicy { seed, ..PlanPolicy::default() })?;
    }

    #[test]
    fn tiny_fleets_plan_too(sizes in prop::collection::vec(1usize..=3, 1..=3), canary in any::<bool>(), seed in any::<u64>()) {
        let pops: Vec<(usize, u8)> = sizes.iter().map(|s| (*s, 0)).collect();
        let nodes = build(&pops, &[canary]);
        check_plan(&nodes, &PlanPolicy { seed, ..PlanPolicy::default() })?;
    }

    #[test]
    fn histogram_statistics_are_bounded_and_symmetric(
        a in prop::collection::vec(0u64..1_000_000, 100),
        b in prop::collection::vec(0u64..1_000_000, 100),
    ) {
        let mut ha = ScoreHistogram::new();
        let mut hb = ScoreHistogram::new();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            ha.add_to(i, *x);
            hb.add_to(i, *y);
        }
        if let (Some(k1), Some(k2)) = (ks_two_sample(&ha, &hb), ks_two_sample(&hb, &ha)) {
            prop_assert!((0.0..=1.0).contains(&k1.d));
            prop_assert!((0.0..=1.0).contains(&k1.p_value));
            prop_assert!((k1.d - k2.d).abs() < 1e-12);
            let (m1, m2) = (mann_whitney(&ha, &hb).unwrap(), mann_whitney(&hb, &ha).unwrap());
            prop_assert!((0.0..=1.0).contains(&m1.auc));
            prop_assert!((m1.auc + m2.auc - 1.0).abs() < 1e-9);
            prop_assert!((0.0..=1.0).contains(&m1.p_value));
        }
    }
}

#[test]
fn the_full_fleet_plan_has_the_properties() {
    let pops: Vec<(usize, u8)> = (0..330).map(|p| (4, (p % 9) as u8)).collect();
    for seed in 0..20 {
        check_plan(
            &build(&pops, &[]),
            &PlanPolicy {
                seed,
                ..PlanPolicy::default()
            },
        )
        .unwrap();
    }
}

// --- reconcile under arbitrary input ---

fn digest_strategy() -> impl Strategy<Value = Option<Digest>> {
    prop_oneof![
        Just(Some(v1().digest)),
        Just(Some(v2().digest)),
        Just(Some(Digest::of(b"something else"))),
        Just(None),
    ]
}

fn beat_strategy() -> impl Strategy<Value = (usize, Beat, u64)> {
    (
        0usize..64,
        digest_strategy(),
        prop::option::of((any::<bool>(), digest_strategy())),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        prop::collection::vec((0usize..110, any::<u64>()), 0..4),
        any::<u32>(),
        0u64..400_000,
    )
        .prop_map(
            |(node, active, apply, (r, e, m, u), buckets, restarts, at)| {
                let mut scores = ScoreHistogram::new();
                for (b, n) in buckets {
                    scores.add_to(b, n);
                }
                let apply = apply.and_then(|(ok, d)| {
                    d.map(|digest| {
                        if ok {
                            Apply::Accepted { digest }
                        } else {
                            Apply::Rejected {
                                digest,
                                codes: vec!["x".into()],
                            }
                        }
                    })
                });
                (
                    node,
                    Beat {
                        active,
                        apply,
                        counters: Counters {
                            requests: r,
                            errors_5xx: e,
                            module_errors: m,
                            unscored: u,
                        },
                        scores,
                        restarts,
                        deaths: Vec::new(),
                    },
                    at,
                )
            },
        )
}

fn phase_strategy() -> impl Strategy<Value = Phase> {
    let t = 0u64..400_000;
    prop_oneof![
        Just(Phase::Pending),
        (0u16..6, t.clone(), t.clone()).prop_map(|(wave, s, u)| Phase::Baking {
            wave,
            started_ms: s,
            bake_until_ms: u
        }),
        (0u16..6, t.clone(), t.clone()).prop_map(|(wave, s, v)| Phase::Verifying {
            wave,
            started_ms: s,
            since_ms: v
        }),
        (0u16..6, t.clone(), any::<bool>(), t.clone()).prop_map(|(wave, s, b, since)| {
            Phase::Paused {
                resume: if b {
                    Resume::Baking {
                        wave,
                        started_ms: s,
                        remaining_ms: 5,
                    }
                } else {
                    Resume::Verifying {
                        wave,
                        started_ms: s,
                    }
                },
                cause: PauseCause::Operator {
                    who: "a".into(),
                    reason: String::new(),
                },
                since_ms: since,
            }
        }),
        (0u16..6, t.clone()).prop_map(|(touched, since)| Phase::RollingBack {
            touched,
            since_ms: since
        }),
        (0u16..6, t).prop_map(|(touched, at)| Phase::Failed {
            touched,
            at_ms: at,
            stuck: 1
        }),
    ]
}

fn command_strategy() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Promote),
        Just(Command::Pause),
        Just(Command::Resume),
        Just(Command::Abort),
        any::<bool>().prop_map(|mark_bad| Command::Rollback { mark_bad }),
    ]
}

fn at(mut r: Rollout, phase: Phase) -> Rollout {
    let mut status = r.status().clone();
    status.phase = phase;
    r.apply(Decision {
        status,
        actions: vec![],
        requeue_after_ms: None,
        transitioned: false,
    });
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn reconcile_never_panics_and_is_pure(
        phase in phase_strategy(),
        beats in prop::collection::vec(beat_strategy(), 0..80),
        now in 0u64..500_000,
        cmd in command_strategy(),
    ) {
        let nodes = fleet(9, 3, 3);
        let r = at(rollout_over(&nodes, RolloutPolicy::default()), phase);
        let mut obs = Observations::new(&r);
        for (node, beat, t) in &beats {
            let _ = obs.absorb(NodeIdx(*node as u32), beat, *t);
        }
        obs.sync(&r);
        let d = reconcile(&r, &obs, now);
        prop_assert_eq!(&d, &reconcile(&r, &obs, now));
        // Every number in a decision is JSON (no NaN or infinity).
        let json = serde_json::to_string(&d).unwrap();
        prop_assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), d.clone());
        let op = Operator { who: "p".into(), reason: "r".into() };
        let _ = command(&r, cmd, &op, now);
        // Observations built for another rollout are never judged as this one's.
        let other = Rollout::new(RolloutSpec {
            id: "other".into(),
            from: None,
            to: v1(),
            plan: plan(&fleet(2, 1, 1), &PlanPolicy::default()).unwrap(),
            policy: RolloutPolicy::default(),
            break_glass: None,
        }, 0).unwrap();
        let wrong = Observations::new(&other);
        let d2 = reconcile(&r, &wrong, now);
        let marks = d2.actions.iter().any(|a| matches!(a, Action::MarkBad { .. }));
        prop_assert!(!marks, "judged with another rollout's observations");
    }

    /// Random health and operator input over whole rollouts: no node of a wave the rollout
    /// has not reached is ever sent a version.
    #[test]
    fn untouched_waves_are_never_touched(
        steps in prop::collection::vec((0u8..10, 0u8..6), 1..250),
        pops in 2usize..12,
    ) {
        let nodes = fleet(pops, 3, 3);
        let mut d = Driver::new(&nodes, Behaviour::Healthy);
        d.set_requests_per_beat(60);
        let mut reached: u16 = 0;
        for (kind, arg) in steps {
            d.behaviour = match kind {
                0 => Behaviour::Nack(vec!["bad".into()]),
                1 => Behaviour::AllIn(usize::from(arg) * 19),
                2 => Behaviour::Errors5xx(1.0),
                3 => Behaviour::Silent,
                _ => Behaviour::Healthy,
            };
            let before = d.decisions.len();
            if kind == 9 {
                let cmd = [Command::Promote, Command::Pause, Command::Resume, Command::Abort,
                    Command::Rollback { mark_bad: false }, Command::Promote][usize::from(arg)];
                let _ = d.command(cmd);
            } else {
                for _ in 0..(1 + u32::from(arg) * 5) {
                    d.beat_and_reconcile();
                }
            }
            for x in &d.decisions[before..] {
                let touched = x.status.phase.touched(d.rollout.plan());
                for a in &x.actions {
                    if let Action::SetDesired { nodes, target, first_wave, last_wave, .. } = a {
                        for id in nodes {
                            let w = d.rollout.plan().wave_of(d.rollout.plan().index_of(id).unwrap()).unwrap();
                            prop_assert!(w >= *first_wave && w <= *last_wave);
                            match target {
                                // A new wave is exactly the one after those reached.
                                Target::New => prop_assert!(w <= reached.max(touched.saturating_sub(1)) && w + 1 == touched),
                                Target::Previous => prop_assert!(w <= reached),
                            }
                        }
                    }
                }
                reached = reached.max(touched.saturating_sub(1));
            }
            if !d.rollout.is_active() {
                break;
            }
        }
    }

    /// The rollback decision is emitted by the first reconcile after a failing heartbeat,
    /// wherever the rollout stands (baking, verifying or paused, any wave, any bake left).
    #[test]
    fn a_failing_heartbeat_is_answered_by_the_next_reconcile(
        wave in 0u16..4,
        beats_in in 0usize..80,
        pause in any::<bool>(),
        failure in 0u8..4,
        victim in any::<prop::sample::Index>(),
    ) {
        let nodes = fleet(6, 3, 3);
        let mut d = Driver::new(&nodes, Behaviour::Healthy);
        d.set_requests_per_beat(60);
        // Every wave of the plan, never one it does not have: a healthy fleet reaches each.
        let wave = wave % d.rollout.plan().wave_count();
        prop_assert!(
            d.run_until(2_000, |p| matches!(p, Phase::Baking { wave: w, .. } if *w == wave)),
            "a healthy fleet never reached wave {wave}: {:?}", d.phase()
        );
        for _ in 0..beats_in {
            if !matches!(d.phase(), Phase::Baking { .. } | Phase::Verifying { .. }) {
                break;
            }
            d.beat_and_reconcile();
        }
        // Healthy beats never roll back; a rollout they finished has nothing left to fail,
        // and that case is told apart, not skipped: it must have succeeded.
        prop_assert!(!matches!(d.phase(), Phase::RollingBack { .. }), "{:?}", d.phase());
        if !d.rollout.is_active() {
            prop_assert!(matches!(d.phase(), Phase::Succeeded { .. }), "{:?}", d.phase());
            return Ok(());
        }
        if pause && d.command(Command::Pause).is_err() {
            return Ok(());
        }
        let touched = d.rollout.status().phase.touched(d.rollout.plan());
        let touched_ids: BTreeSet<String> = d.rollout.plan().ids(0, touched - 1).into_iter().collect();
        let ids: Vec<&String> = touched_ids.iter().collect();
        let idx = d.rollout.plan().index_of(victim.get(&ids).as_str()).unwrap();
        let to = v2().digest;
        let beat = match failure {
            0 => Beat { apply: Some(Apply::Rejected { digest: to, codes: vec!["too_many_features".into()] }), ..Beat::idle(Some(v1().digest)) },
            1 => Beat { restarts: 1, ..Beat::idle(Some(to)) },
            2 => Beat {
                counters: Counters { requests: 1_000_000, errors_5xx: 1_000_000, ..Counters::default() },
                ..Beat::idle(Some(to))
            },
            _ => Beat {
                counters: Counters { requests: 1_000_000, ..Counters::default() },
                scores: all_in(1, 1_000_000),
                ..Beat::idle(Some(to))
            },
        };
        d.obs.absorb(idx, &beat, d.now).unwrap();
        let decision = d.reconcile().clone();
        prop_assert!(matches!(decision.status.phase, Phase::RollingBack { .. }), "{:?}", decision.status.phase);
        let back: BTreeSet<String> = decision
            .set_desired()
            .filter(|(_, t)| *t == Target::Previous)
            .flat_map(|(n, _)| n.iter().cloned())
            .collect();
        prop_assert_eq!(back, touched_ids);
        prop_assert!(decision.marks_bad(&to));
    }
}
