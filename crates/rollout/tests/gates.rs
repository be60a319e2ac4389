//! Each gate alone, on realistic numbers: a bimodal human/bot score mix for the shift gate
//! (normal noise and a different PoP mix must pass, broken files must fail), and rates with
//! and without a baseline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support {
    pub mod fleet;
}

use rampart_rollout::gate::{
    DEFAULT_MIN_REQUESTS, RateLimits, ShiftLimits, heartbeat_gate, rate_gate, shift_gate,
};
use rampart_rollout::*;
use support::fleet::*;

fn limits() -> ShiftLimits {
    GatePolicy::default().shift
}

fn d_of(v: &Verdict) -> f64 {
    match v {
        Verdict::Pass {
            numbers: Numbers::Shift(s),
        } => s.ks.d,
        Verdict::Fail(Failure {
            numbers: Numbers::Shift(s),
            ..
        }) => s.ks.d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_equally_healthy_groups_pass_at_every_sample_size() {
    // 120 independent pairs at sizes from just over the minimum to a busy wave.
    let mut rng = Rng(1);
    let mut worst: f64 = 0.0;
    for (i, n) in [600u64, 2_000, 20_000, 60_000]
        .iter()
        .cycle()
        .take(120)
        .enumerate()
    {
        let a = HUMANS_AND_BOTS.sample(*n, &mut rng);
        let b = HUMANS_AND_BOTS.sample(*n * 3, &mut rng);
        let v = shift_gate(&a, &b, &limits());
        assert!(
            matches!(v, Verdict::Pass { .. }),
            "pair {i} (n = {n}): {v:?}"
        );
        worst = worst.max(d_of(&v));
    }
    assert!(worst < 0.1, "noise stays under the effect floor: {worst}");
}

#[test]
fn a_pop_with_somewhat_more_bots_is_not_a_shift() {
    // Healthy PoPs differ in traffic: 30% against 36% bots is a real but harmless difference,
    // significant at these sizes yet under the effect floor.
    let more_bots = Mix {
        bot_share: 0.36,
        ..HUMANS_AND_BOTS
    };
    let mut rng = Rng(2);
    let a = more_bots.sample(100_000, &mut rng);
    let b = HUMANS_AND_BOTS.sample(300_000, &mut rng);
    let v = shift_gate(&a, &b, &limits());
    assert!(matches!(v, Verdict::Pass { .. }), "{v:?}");
    let Verdict::Pass {
        numbers: Numbers::Shift(s),
    } = v
    else {
        panic!()
    };
    assert!(
        s.ks.p_value < 1e-6,
        "the difference is real: p = {}",
        s.ks.p_value
    );
    assert!(s.ks.d > 0.03 && s.ks.d < 0.1, "D = {}", s.ks.d);
}

#[test]
fn broken_files_shift_the_distribution_and_fail() {
    let mut rng = Rng(3);
    let baseline = HUMANS_AND_BOTS.sample(50_000, &mut rng);
    let humans_scored_as_bots = Mix {
        human_mean: 40.0,
        ..HUMANS_AND_BOTS
    };
    let cases: Vec<(&str, ScoreHistogram, f64, bool)> = vec![
        // (what, the new version's scores, smallest D expected, shift down?)
        ("every score 1", all_in(1, 2_000), 0.6, true),
        ("every request unscored", all_in(0, 2_000), 0.95, true),
        ("zero weights: every score 50", all_in(50, 2_000), 0.6, true),
        ("every score 99", all_in(99, 2_000), 0.6, false),
        (
            "humans pushed towards bot scores",
            humans_scored_as_bots.sample(2_000, &mut rng),
            0.5,
            true,
        ),
    ];
    for (what, new, min_d, down) in cases {
        let v = shift_gate(&new, &baseline, &limits());
        let Verdict::Fail(f) = &v else {
            panic!("{what}: {v:?}")
        };
        assert_eq!(f.gate, Gate::ScoreShift);
        assert!(d_of(&v) >= min_d, "{what}: D = {}", d_of(&v));
        let Numbers::Shift(s) = &f.numbers else {
            panic!()
        };
        assert_eq!(s.mann_whitney.unwrap().auc < 0.5, down, "{what}");
        assert_eq!(
            f.explanation.contains("down"),
            down,
            "{what}: {}",
            f.explanation
        );
        assert!(f.explanation.contains("KS D ="), "{}", f.explanation);
    }
}

#[test]
fn a_subtle_shift_with_few_samples_is_not_judged_blindly() {
    let mut rng = Rng(4);
    let few = all_in(1, 400);
    let baseline = HUMANS_AND_BOTS.sample(50_000, &mut rng);
    assert_eq!(
        shift_gate(&few, &baseline, &limits()),
        Verdict::Hold {
            reason: HoldReason::InsufficientScores {
                new: 400,
                baseline: 50_000,
                need: limits().min_scores
            }
        }
    );
    assert!(matches!(
        shift_gate(&baseline, &ScoreHistogram::new(), &limits()),
        Verdict::Hold { .. }
    ));
}

#[test]
fn the_shift_thresholds_are_configurable() {
    let mut rng = Rng(5);
    let more_bots = Mix {
        bot_share: 0.36,
        ..HUMANS_AND_BOTS
    };
    let a = more_bots.sample(100_000, &mut rng);
    let b = HUMANS_AND_BOTS.sample(100_000, &mut rng);
    let strict = ShiftLimits {
        min_d: 0.02,
        ..limits()
    };
    assert!(matches!(shift_gate(&a, &b, &strict), Verdict::Fail(_)));
}

fn rl() -> RateLimits {
    GatePolicy::default().errors_5xx
}

#[test]
fn the_5xx_gate_needs_traffic_a_margin_and_significance() {
    let min = DEFAULT_MIN_REQUESTS;
    // Too few requests: hold, whatever the rate.
    assert!(matches!(
        rate_gate(Gate::Errors5xx, (10, 10), Some((0, 1_000_000)), &rl(), min),
        Verdict::Hold {
            reason: HoldReason::InsufficientRequests { have: 10, .. }
        }
    ));
    // Same rate as the baseline: pass.
    assert!(matches!(
        rate_gate(
            Gate::Errors5xx,
            (20, 10_000),
            Some((2_000, 1_000_000)),
            &rl(),
            min
        ),
        Verdict::Pass { .. }
    ));
    // Above by the relative margin but under the absolute one: pass (0.1% → 0.3%).
    assert!(matches!(
        rate_gate(
            Gate::Errors5xx,
            (30, 10_000),
            Some((1_000, 1_000_000)),
            &rl(),
            min
        ),
        Verdict::Pass { .. }
    ));
    // Above by the absolute margin but under the relative one on a high baseline: pass
    // (10% → 10.6%).
    assert!(matches!(
        rate_gate(
            Gate::Errors5xx,
            (1_060, 10_000),
            Some((100_000, 1_000_000)),
            &rl(),
            min
        ),
        Verdict::Pass { .. }
    ));
    // Both margins, but a handful of errors that proves nothing: pass (4 of 500 vs 0.1%;
    // a normal-approximation z would say 4.9).
    let v = rate_gate(
        Gate::Errors5xx,
        (4, 500),
        Some((1_000, 1_000_000)),
        &rl(),
        min,
    );
    assert!(matches!(v, Verdict::Pass { .. }), "{v:?}");
    // Clearly worse: fail, with the numbers.
    let v = rate_gate(
        Gate::Errors5xx,
        (300, 10_000),
        Some((1_000, 1_000_000)),
        &rl(),
        min,
    );
    let Verdict::Fail(f) = v else { panic!("{v:?}") };
    let Numbers::Rate(r) = f.numbers else {
        panic!()
    };
    assert_eq!((r.new_rate, r.baseline_rate), (0.03, 0.001));
    assert!(r.z.unwrap() > 10.0);
    assert!(r.new_rate_lower > 0.02);
    assert!(f.explanation.contains("3.000%"), "{}", f.explanation);
}

#[test]
fn without_a_baseline_the_absolute_margin_alone_applies() {
    let min = DEFAULT_MIN_REQUESTS;
    // 0.6% of 1,000 does not prove a rate above 0.5%; 3% does.
    assert!(matches!(
        rate_gate(Gate::Errors5xx, (6, 1_000), None, &rl(), min),
        Verdict::Pass { .. }
    ));
    assert!(matches!(
        rate_gate(Gate::Errors5xx, (30, 1_000), None, &rl(), min),
        Verdict::Fail(_)
    ));
    let me = GatePolicy::default().module_errors;
    let Verdict::Fail(f) = rate_gate(Gate::ModuleErrors, (50, 1_000), Some((0, 0)), &me, min)
    else {
        panic!()
    };
    assert_eq!(f.gate, Gate::ModuleErrors);
    assert!(f.explanation.starts_with("module error rate"));
}

#[test]
fn missing_heartbeats_are_tolerated_only_in_big_waves() {
    // 660 touched nodes tolerate 6 missing; 4 tolerate none.
    let nodes = fleet(330, 4, 6);
    let r = rollout_over(&nodes, RolloutPolicy::default());
    let plan = r.plan();
    let policy = GatePolicy::default();
    let tally = |touched: u32, missing: u32, timed_out: u32| {
        let mut t = gate::Tally::default();
        t.progress.nodes = touched;
        t.progress.missing = missing;
        t.timed_out = timed_out;
        t
    };
    assert!(matches!(
        heartbeat_gate(&tally(660, 6, 6), plan, &policy),
        Verdict::Pass { .. }
    ));
    assert!(matches!(
        heartbeat_gate(&tally(660, 7, 0), plan, &policy),
        Verdict::Hold {
            reason: HoldReason::MissingHeartbeats {
                missing: 7,
                allowed: 6
            }
        }
    ));
    assert!(matches!(
        heartbeat_gate(&tally(660, 7, 7), plan, &policy),
        Verdict::Fail(_)
    ));
    assert!(matches!(
        heartbeat_gate(&tally(4, 1, 0), plan, &policy),
        Verdict::Hold { .. }
    ));
    assert!(matches!(
        heartbeat_gate(&tally(4, 1, 1), plan, &policy),
        Verdict::Fail(_)
    ));
}

#[test]
fn only_artifact_evidence_marks_a_digest_bad() {
    for gate in [
        Gate::Nack,
        Gate::Restarts,
        Gate::Errors5xx,
        Gate::ModuleErrors,
        Gate::ScoreShift,
    ] {
        assert!(gate.marks_bad(), "{gate:?}");
    }
    assert!(!Gate::Heartbeat.marks_bad());
    assert!(!Gate::Convergence.marks_bad());
}

#[test]
fn the_canary_is_compared_with_its_own_pop() {
    // The canary's PoP has many more bots than the fleet; its PoP-mates are the baseline,
    // so a healthy canary there passes.
    let nodes = fleet(20, 4, 4);
    let mut d = Driver::new(&nodes, Behaviour::Healthy);
    d.set_requests_per_beat(100);
    assert!(d.run_until(5, |p| matches!(p, Phase::Baking { wave: 0, .. })));
    let canary = d.rollout.plan().waves()[0].nodes[0];
    let canary_pop = d.rollout.plan().node(canary).unwrap().pop;
    let botty = Mix {
        bot_share: 0.7,
        ..HUMANS_AND_BOTS
    };
    for _ in 0..70 {
        let now = d.now;
        for i in 0..d.rollout.plan().len() {
            let idx = NodeIdx(i as u32);
            let node = d.rollout.plan().node(idx).unwrap();
            let mix = if node.pop == canary_pop {
                botty
            } else {
                HUMANS_AND_BOTS
            };
            let active = Some(if idx == canary { v2() } else { v1() }.digest);
            let beat = Beat {
                active,
                apply: None,
                counters: Counters {
                    requests: 100,
                    ..Counters::default()
                },
                scores: mix.sample(100, &mut d.rng),
                restarts: 0,
                deaths: Vec::new(),
            };
            d.obs.absorb(idx, &beat, now).unwrap();
        }
        d.reconcile();
        if !matches!(
            d.phase(),
            Phase::Baking { wave: 0, .. } | Phase::Verifying { wave: 0, .. }
        ) {
            break;
        }
    }
    assert!(
        matches!(d.phase(), Phase::Baking { wave: 1, .. }),
        "{:?}",
        d.phase()
    );
    let passed = d
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::WavePassed { wave: 0, report } => Some(report.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(passed.baseline, BaselineKind::SamePop);
}
