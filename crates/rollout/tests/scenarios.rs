//! Whole rollouts on a fake clock: edges that beat every second and answer the desired
//! version as a [`Behaviour`] says; each bad behaviour must stop at the canary, roll back,
//! and say why with numbers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support {
    pub mod fleet;
}

use rampart_rollout::*;
use support::fleet::*;

/// Nodes ever told to take the new version.
fn ever_new(d: &Driver) -> Vec<String> {
    let mut out: Vec<String> = d
        .all_actions()
        .filter_map(|a| match a {
            Action::SetDesired {
                nodes,
                target: Target::New,
                ..
            } => Some(nodes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    out.sort();
    out
}

fn failure(d: &Driver) -> Failure {
    match &d.rollout.status().cause {
        Some(rampart_rollout::rollout::RollbackCause::Gate { failure, .. }) => failure.clone(),
        other => panic!("no gate failure: {other:?}"),
    }
}

fn assert_stopped_at_canary(d: &Driver, gate: Gate, marked_bad: bool) -> Failure {
    assert!(
        matches!(d.phase(), Phase::RolledBack { .. }),
        "{:?}",
        d.phase()
    );
    let canary = d.rollout.plan().ids(0, 0);
    assert_eq!(
        ever_new(d),
        canary,
        "only the canary ever got the new version"
    );
    let f = failure(d);
    assert_eq!(f.gate, gate, "{}", f.explanation);
    assert_eq!(d.rollout.is_bad(&v2().digest), marked_bad);
    assert_eq!(
        d.all_actions().any(|a| matches!(a, Action::MarkBad { .. })),
        marked_bad
    );
    // Every node serves (or is told to serve) the previous version again.
    for i in 0..d.rollout.plan().len() {
        assert_eq!(d.desired[i], Some(v1().digest));
        assert_eq!(
            d.rollout.desired(NodeIdx(i as u32)),
            Target::Previous,
            "node {i}"
        );
    }
    f
}

#[test]
fn a_healthy_version_reaches_every_node_wave_by_wave() {
    let nodes = fleet(20, 4, 4);
    let mut d = Driver::new(&nodes, Behaviour::Healthy);
    let phase = d.run(2_000).clone();
    assert!(
        matches!(phase, Phase::Succeeded { touched: 4, .. }),
        "{phase:?}"
    );
    assert!(d.active.iter().all(|a| *a == Some(v2().digest)));
    let waves: Vec<u16> = d
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::WavePassed { wave, report } => {
                // Each passing wave reports every gate passing with real numbers.
                assert!(matches!(report.overall(), Overall::Pass));
                assert!(matches!(report.score_shift, Verdict::Pass { .. }));
                Some(*wave)
            }
            _ => None,
        })
        .collect();
    assert_eq!(waves, vec![0, 1, 2, 3]);
    assert!(!d.all_actions().any(|a| matches!(a, Action::MarkBad { .. })));
    assert!(!d.rollout.is_active());
    // The bake is respected: the canary wave lasted at least its bake time.
    let plan = d.rollout.plan();
    let first_pass = d
        .decisions
        .iter()
        .position(|x| {
            x.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Audit(AuditRecord {
                        event: Event::WavePassed { .. },
                        ..
                    })
                )
            })
        })
        .unwrap();
    assert!(first_pass as u64 * BEAT_MS >= plan.waves()[0].bake_ms);
}

#[test]
fn the_full_fleet_rolls_out_and_the_last_wave_is_judged_against_the_reference() {
    let nodes = fleet(330, 4, 8);
    let mut d = Driver::new(&nodes, Behaviour::Healthy);
    assert!(matches!(d.run(2_000), Phase::Succeeded { .. }));
    let last = d
        .events()
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::WavePassed { wave: 3, report } => Some(report.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.baseline, BaselineKind::Reference);
    assert_eq!(last.progress.on_new, 660 + 528 + 131 + 1);
}

#[test]
fn a_file_the_edges_refuse_stops_at_the_canary() {
    let mut d = Driver::new(
        &fleet(20, 4, 4),
        Behaviour::Nack(vec!["too_many_features".into(), "duplicate_feature".into()]),
    );
    d.run(500);
    let f = assert_stopped_at_canary(&d, Gate::Nack, true);
    match f.numbers {
        Numbers::Nack { nacked, codes, .. } => {
            assert_eq!(nacked, 1);
            assert_eq!(codes, vec!["too_many_features", "duplicate_feature"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(f.explanation.contains("too_many_features"));
    // The NACK was seen in the first beat after the switch: no bake was waited out.
    assert!(d.decisions.len() <= 4, "{} decisions", d.decisions.len());
}

#[test]
fn every_score_one_is_stopped_though_nothing_errors() {
    let mut d = Driver::new(&fleet(20, 4, 4), Behaviour::AllIn(1));
    d.run(500);
    let f = assert_stopped_at_canary(&d, Gate::ScoreShift, true);
    let Numbers::Shift(s) = f.numbers else {
        panic!("{:?}", f.numbers)
    };
    assert!(s.ks.d > 0.6, "D = {}", s.ks.d);
    assert!(s.ks.p_value < 1e-10);
    assert!(s.mann_whitney.unwrap().auc < 0.2);
    assert!(f.explanation.contains("down"), "{}", f.explanation);
    // The 5xx and module-error gates saw nothing wrong.
    let report = d.rollout.status().report.clone().unwrap();
    assert!(matches!(report.errors_5xx, Verdict::Pass { .. }));
}

#[test]
fn every_request_unscored_is_stopped() {
    let mut d = Driver::new(&fleet(20, 4, 4), Behaviour::AllIn(0));
    d.run(500);
    let f = assert_stopped_at_canary(&d, Gate::ScoreShift, true);
    let Numbers::Shift(s) = f.numbers else {
        panic!()
    };
    assert_eq!(s.ks.at_bucket, 0);
    assert!(s.unscored_new > 0.99);
}

#[test]
fn a_5xx_storm_is_stopped() {
    let mut d = Driver::new(&fleet(20, 4, 4), Behaviour::Errors5xx(1.0));
    d.run(500);
    let f = assert_stopped_at_canary(&d, Gate::Errors5xx, true);
    let Numbers::Rate(r) = f.numbers else {
        panic!()
    };
    assert_eq!(r.new_rate, 1.0);
    assert_eq!(r.baseline_rate, 0.0);
}

#[test]
fn a_restart_after_switching_is_stopped() {
    let mut d = Driver::new(&fleet(20, 4, 4), Behaviour::Restart);
    d.run(500);
    assert_stopped_at_canary(&d, Gate::Restarts, true);
}

#[test]
fn a_canary_that_goes_silent_fails_after_the_timeout_without_marking_the_file() {
    let mut d = Driver::new(&fleet(20, 4, 4), Behaviour::Silent);
    d.run(500);
    let f = assert_stopped_at_canary(&d, Gate::Heartbeat, false);
    let Numbers::Heartbeat { timed_out, .. } = f.numbers else {
        panic!()
    };
    assert_eq!(timed_out, 1);
    // Sent back, it beats again on the previous version and confirms.
    assert!(matches!(
        d.phase(),
        Phase::RolledBack { unconfirmed: 0, .. }
    ));
}

#[test]
fn a_dead_canary_is_rolled_back_as_unconfirmed_after_the_rollback_timeout() {
    let mut d = Driver::new(&fleet(20, 4, 4), Behaviour::Dead);
    d.run(500);
    assert_stopped_at_canary(&d, Gate::Heartbeat, false);
    let Phase::RolledBack {
        unconfirmed, at_ms, ..
    } = *d.phase()
    else {
        panic!()
    };
    assert_eq!(unconfirmed, 1);
    let Some(rampart_rollout::rollout::RollbackCause::Gate { .. }) = d.rollout.status().cause
    else {
        panic!()
    };
    let started = d
        .decisions
        .iter()
        .find_map(|x| match x.status.phase {
            Phase::RollingBack { since_ms, .. } => Some(since_ms),
            _ => None,
        })
        .unwrap();
    assert!(at_ms - started >= RolloutPolicy::default().rollback_timeout_ms);
}

#[test]
fn a_canary_that_never_switches_fails_convergence() {
    let mut d = Driver::new(&fleet(20, 4, 4), Behaviour::Ignore);
    d.run(500);
    assert_stopped_at_canary(&d, Gate::Convergence, false);
    assert!(matches!(
        d.phase(),
        Phase::RolledBack { unconfirmed: 0, .. }
    ));
}

#[test]
fn a_failure_in_a_later_wave_rolls_back_every_touched_wave_and_nothing_else() {
    let nodes = fleet(20, 4, 4);
    let mut d = Driver::new(&nodes, Behaviour::Healthy);
    assert!(d.run_until(1_000, |p| matches!(p, Phase::Baking { wave: 2, .. })));
    for _ in 0..5 {
        d.beat_and_reconcile();
    }
    d.behaviour = Behaviour::AllIn(50); // a file whose weights are all zero: every score 50
    let touched: Vec<String> = d.rollout.plan().ids(0, 2);
    let before = d.decisions.len();
    assert!(d.run_until(200, |p| matches!(p, Phase::RollingBack { .. })));
    let rollback = d.decisions[before..]
        .iter()
        .flat_map(|x| x.actions.iter())
        .find_map(|a| match a {
            Action::SetDesired {
                nodes,
                target: Target::Previous,
                ..
            } => Some(nodes.clone()),
            _ => None,
        })
        .unwrap();
    let mut expected = touched;
    expected.sort();
    let mut got = rollback;
    got.sort();
    assert_eq!(got, expected, "exactly the nodes of waves 0..=2");
    d.run(200);
    assert!(matches!(d.phase(), Phase::RolledBack { touched: 3, .. }));
    let wave3 = d.rollout.plan().ids(3, 3);
    assert!(ever_new(&d).iter().all(|n| !wave3.contains(n)));
}

#[test]
fn break_glass_is_one_audited_wave_that_still_rolls_back() {
    let nodes = fleet(10, 3, 2);
    let spec = RolloutSpec {
        id: "bg".into(),
        from: Some(v1()),
        to: v2(),
        plan: plan(&nodes, &PlanPolicy::break_glass()).unwrap(),
        policy: RolloutPolicy::default(),
        break_glass: Some(BreakGlass {
            by: "oncall".into(),
            reason: "known-good file must reach every PoP now".into(),
        }),
    };
    let rollout = Rollout::new(spec, 0).unwrap();
    let mut d = Driver::for_rollout(rollout, Behaviour::AllIn(1));
    d.run(500);
    assert!(matches!(d.phase(), Phase::RolledBack { touched: 1, .. }));
    let started = d
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Started { break_glass, .. } => Some(break_glass.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.unwrap().by, "oncall");
    assert_eq!(ever_new(&d).len(), 30, "the whole fleet at once");
    assert_eq!(failure(&d).gate, Gate::ScoreShift);
}

#[test]
fn too_little_traffic_pauses_as_inconclusive_instead_of_passing() {
    let nodes = fleet(4, 2, 2);
    let policy = RolloutPolicy {
        hold_cap_ms: 20_000,
        ..RolloutPolicy::default()
    };
    let mut d = Driver::with_policy(&nodes, Behaviour::Healthy, policy);
    d.set_requests_per_beat(1);
    assert!(d.run_until(200, |p| matches!(p, Phase::Paused { .. })));
    let Phase::Paused { cause, .. } = d.phase().clone() else {
        panic!()
    };
    assert!(
        matches!(
            cause,
            rampart_rollout::rollout::PauseCause::Inconclusive {
                reason: HoldReason::InsufficientRequests { .. }
            }
        ),
        "{cause:?}"
    );
    // It stays paused: no wave after the canary starts by itself.
    for _ in 0..50 {
        d.beat_and_reconcile();
    }
    assert!(matches!(d.phase(), Phase::Paused { .. }));
    assert_eq!(ever_new(&d), d.rollout.plan().ids(0, 0));
    // An operator may accept it.
    d.command(Command::Promote).unwrap();
    assert!(matches!(d.phase(), Phase::Baking { wave: 1, .. }));
}

#[test]
fn a_rollout_from_nothing_has_no_baseline_and_skips_the_shift_gate() {
    let nodes = fleet(5, 2, 1);
    let spec = RolloutSpec {
        id: "first".into(),
        from: None,
        to: v2(),
        plan: plan(&nodes, &PlanPolicy::default()).unwrap(),
        policy: RolloutPolicy::default(),
        break_glass: None,
    };
    let mut d = Driver::for_rollout(Rollout::new(spec, 0).unwrap(), Behaviour::Healthy);
    assert!(matches!(d.run(2_000), Phase::Succeeded { .. }));
    let report = d.rollout.status().report.clone().unwrap();
    assert_eq!(report.baseline, BaselineKind::None);
    assert!(matches!(report.score_shift, Verdict::Skipped { .. }));
}

fn with_shift_mode(mode: GateMode) -> RolloutPolicy {
    let mut policy = RolloutPolicy::default();
    policy.gates.modes.score_shift = mode;
    policy
}

fn observed_events(d: &Driver) -> Vec<(Option<u16>, Gate)> {
    d.all_actions()
        .filter_map(|a| match a {
            Action::Audit(AuditRecord {
                event: Event::GateObserved { wave, failure },
                ..
            }) => Some((*wave, failure.gate)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_observing_shift_gate_lets_the_bad_file_through_and_records_it_would_have_stopped_the_canary()
{
    let mut d = Driver::with_policy(
        &fleet(20, 4, 4),
        Behaviour::AllIn(1),
        with_shift_mode(GateMode::Observe),
    );
    d.run(2_000);
    assert!(
        matches!(d.phase(), Phase::Succeeded { .. }),
        "the observing gate acted: {:?}",
        d.phase()
    );
    assert!(!d.rollout.is_bad(&v2().digest));
    assert!(
        d.all_actions()
            .all(|a| !matches!(a, Action::MarkBad { .. }))
    );
    // Recorded once, at the canary, with the numbers that would have stopped it.
    assert_eq!(observed_events(&d), vec![(Some(0), Gate::ScoreShift)]);
    let observed = &d.rollout.status().observed;
    assert_eq!(observed.len(), 1, "{observed:?}");
    assert_eq!(observed[0].wave, Some(0));
    let Numbers::Shift(s) = &observed[0].failure.numbers else {
        panic!("{:?}", observed[0].failure.numbers)
    };
    assert!(s.ks.d > 0.6, "D = {}", s.ks.d);
    // The last report says what it would do, and nothing enforcing failed.
    let report = d.rollout.status().report.clone().unwrap();
    assert!(
        matches!(report.score_shift, Verdict::WouldFail(_)),
        "{:?}",
        report.score_shift
    );
    assert_eq!(report.overall(), Overall::Pass);
}

#[test]
fn an_enforcing_gate_still_acts_when_another_only_observes() {
    let mut policy = with_shift_mode(GateMode::Observe);
    policy.gates.modes.restarts = GateMode::Enforce;
    let mut d = Driver::with_policy(&fleet(20, 4, 4), Behaviour::Errors5xx(1.0), policy);
    d.run(500);
    assert_stopped_at_canary(&d, Gate::Errors5xx, true);
}

#[test]
fn a_gate_turned_off_is_not_computed_and_records_nothing() {
    let mut d = Driver::with_policy(
        &fleet(20, 4, 4),
        Behaviour::AllIn(1),
        with_shift_mode(GateMode::Off),
    );
    d.run(2_000);
    assert!(
        matches!(d.phase(), Phase::Succeeded { .. }),
        "{:?}",
        d.phase()
    );
    assert!(observed_events(&d).is_empty());
    assert!(d.rollout.status().observed.is_empty());
    let report = d.rollout.status().report.clone().unwrap();
    assert_eq!(
        report.score_shift,
        Verdict::Skipped {
            reason: gate::SkipReason::Off
        }
    );
}

#[test]
fn an_observing_gate_that_cannot_judge_does_not_hold_the_wave() {
    // Too little traffic: the rate gates hold (and pause as inconclusive) when they enforce;
    // observing, they only say they would hold.
    let mut policy = RolloutPolicy::default();
    policy.gates.modes.errors_5xx = GateMode::Observe;
    policy.gates.modes.module_errors = GateMode::Observe;
    policy.gates.modes.score_shift = GateMode::Observe;
    let policy = RolloutPolicy {
        hold_cap_ms: 20_000,
        ..policy
    };
    let mut d = Driver::with_policy(&fleet(4, 2, 2), Behaviour::Healthy, policy);
    d.set_requests_per_beat(1);
    d.run(2_000);
    assert!(
        matches!(d.phase(), Phase::Succeeded { .. }),
        "{:?}",
        d.phase()
    );
}

#[test]
fn a_rollout_held_by_shadow_scoring_waits_before_wave_0_until_approved_with_a_reason() {
    let nodes = fleet(4, 2, 2);
    let rollout = rollout_over(&nodes, RolloutPolicy::default());
    let d = hold_for_shadow(&rollout, vec!["score distribution: KS D 0.9".into()], 10);
    assert!(
        matches!(
            &d.status.phase,
            Phase::Paused {
                resume: rampart_rollout::rollout::Resume::Pending,
                cause: rampart_rollout::rollout::PauseCause::Shadow { reasons },
                ..
            } if reasons.len() == 1
        ),
        "{:?}",
        d.status.phase
    );
    assert!(
        d.actions
            .iter()
            .all(|a| !matches!(a, Action::SetDesired { .. }))
    );
    assert!(d.actions.iter().any(|a| matches!(
        a,
        Action::Audit(AuditRecord {
            event: Event::ShadowHeld { .. },
            ..
        })
    )));
    let mut driver = Driver::for_rollout(rollout, Behaviour::Healthy);
    driver.rollout.apply(d);
    // Reconciling does not start it.
    for _ in 0..5 {
        driver.beat_and_reconcile();
    }
    assert!(matches!(driver.phase(), Phase::Paused { .. }));
    assert!(ever_new(&driver).is_empty());
    // Approving needs a reason.
    let no_reason = Operator {
        who: "ops".into(),
        reason: " ".into(),
    };
    assert_eq!(
        command(&driver.rollout, Command::Resume, &no_reason, driver.now),
        Err(CommandError::ReasonRequired)
    );
    assert_eq!(
        command(&driver.rollout, Command::Promote, &no_reason, driver.now),
        Err(CommandError::ReasonRequired)
    );
    let by = Operator {
        who: "ops".into(),
        reason: "checked the sample: a planned retrain".into(),
    };
    let d = command(&driver.rollout, Command::Promote, &by, driver.now).unwrap();
    assert_eq!(d.status.phase, Phase::Pending);
    driver.rollout.apply(d);
    driver.run(2_000);
    assert!(
        matches!(driver.phase(), Phase::Succeeded { .. }),
        "{:?}",
        driver.phase()
    );
}

#[test]
fn hold_for_shadow_leaves_a_started_rollout_alone() {
    let mut d = Driver::new(&fleet(4, 2, 2), Behaviour::Healthy);
    assert!(d.run_until(100, |p| matches!(p, Phase::Baking { .. })));
    let phase = d.phase().clone();
    assert!(matches!(phase, Phase::Baking { .. }), "{phase:?}");
    let held = hold_for_shadow(&d.rollout, vec!["x".into()], d.now);
    assert_eq!(held.status.phase, phase);
    assert!(held.actions.is_empty());
}
