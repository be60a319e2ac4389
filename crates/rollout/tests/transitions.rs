//! Every transition of the rollout state machine, table-driven, on a fake clock: a phase,
//! what the observations show, an input (a reconcile at a time, or a command), and the
//! phase and actions expected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support {
    pub mod fleet;
}

use rampart_rollout::rollout::{PauseCause, Resume, RollbackCause};
use rampart_rollout::*;
use support::fleet::*;

/// What the heartbeats show.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shows {
    /// Touched nodes on the new version, everyone else on the old one, plenty of traffic.
    Healthy,
    /// The same with no traffic at all.
    Quiet,
    /// Touched nodes refused the new version.
    Nack,
    /// Touched nodes serve the new version with 100% 5xx.
    Errors,
    /// No heartbeat from anyone.
    Silence,
    /// Everyone on the old version, beating.
    AllBack,
}

const CANARY_BAKE: u64 = plan::DEFAULT_CANARY_BAKE_MS;

fn nodes() -> Vec<Node> {
    fleet(4, 2, 2) // waves of 1, 1, 2, 4 nodes
}

fn fresh() -> Rollout {
    rollout_over(&nodes(), RolloutPolicy::default())
}

/// `fresh()` moved to `phase` (the way a control plane restores a stored status), with a
/// reference baseline as the earlier waves (or the pre-rollout wait) would have left.
fn at(phase: Phase) -> Rollout {
    let mut r = fresh();
    let mut status = r.status().clone();
    status.phase = phase;
    let mut pool = Pool::default();
    pool.counters.requests = 20_000;
    pool.scores = HUMANS_AND_BOTS.sample(20_000, &mut Rng(99));
    status.reference = Some(rollout::Reference { wave: None, pool });
    r.apply(Decision {
        status,
        actions: vec![],
        requeue_after_ms: None,
        transitioned: false,
    });
    r
}

fn observe(r: &Rollout, shows: Shows, now: u64) -> Observations {
    let mut obs = Observations::new(r);
    if shows == Shows::Silence {
        return obs;
    }
    let mut rng = Rng(7);
    let touched = r.status().phase.touched(r.plan());
    for (i, node) in r.plan().nodes().iter().enumerate() {
        let is_touched = node.wave < touched && shows != Shows::AllBack;
        let on_new = is_touched && shows != Shows::Nack;
        let requests = if shows == Shows::Quiet { 0 } else { 1_000 };
        let beat = Beat {
            active: Some(if on_new { v2() } else { v1() }.digest),
            apply: (is_touched && shows == Shows::Nack).then(|| Apply::Rejected {
                digest: v2().digest,
                codes: vec!["too_many_features".into()],
            }),
            counters: Counters {
                requests,
                errors_5xx: if on_new && shows == Shows::Errors {
                    requests
                } else {
                    0
                },
                ..Counters::default()
            },
            scores: HUMANS_AND_BOTS.sample(requests, &mut rng),
            restarts: 0,
            deaths: Vec::new(),
        };
        obs.absorb(NodeIdx(i as u32), &beat, now).unwrap();
    }
    obs
}

fn baking(wave: u16) -> Phase {
    Phase::Baking {
        wave,
        started_ms: 0,
        bake_until_ms: CANARY_BAKE,
    }
}

fn verifying(wave: u16) -> Phase {
    Phase::Verifying {
        wave,
        started_ms: 0,
        since_ms: CANARY_BAKE,
    }
}

/// When the watch of `watching()` began (the last wave passed).
const WATCH_FROM: u64 = CANARY_BAKE + 1_000;

fn watching() -> Phase {
    Phase::Watching {
        since_ms: WATCH_FROM,
        until_ms: WATCH_FROM + DEFAULT_WATCH_MS,
    }
}

fn paused(resume: Resume, inconclusive: bool) -> Phase {
    Phase::Paused {
        resume,
        cause: if inconclusive {
            PauseCause::Inconclusive {
                reason: HoldReason::InsufficientRequests { have: 0, need: 1 },
            }
        } else {
            PauseCause::Operator {
                who: "bob".into(),
                reason: "lunch".into(),
            }
        },
        since_ms: CANARY_BAKE,
    }
}

fn kinds(d: &Decision) -> Vec<String> {
    d.actions
        .iter()
        .map(|a| match a {
            Action::SetDesired {
                target: Target::New,
                first_wave,
                ..
            } => format!("new:{first_wave}"),
            Action::SetDesired {
                target: Target::Previous,
                last_wave,
                ..
            } => format!("back:0..={last_wave}"),
            Action::MarkBad { .. } => "bad".into(),
            Action::Audit(r) => {
                let json = serde_json::to_value(&r.event).unwrap();
                format!("audit:{}", json["event"].as_str().unwrap())
            }
        })
        .collect()
}

fn phase_of(d: &Decision) -> String {
    serde_json::to_string(&d.status.phase).unwrap()
}

/// (name, phase, what heartbeats show, now, expected phase JSON fragment, expected actions)
type Row = (
    &'static str,
    Phase,
    Shows,
    u64,
    &'static str,
    Vec<&'static str>,
);

#[test]
fn every_reconcile_transition() {
    let hold_cap = RolloutPolicy::default().hold_cap_ms;
    let rb_timeout = RolloutPolicy::default().rollback_timeout_ms;
    let table: Vec<Row> = vec![
        (
            "pending starts the canary once a baseline is seen",
            Phase::Pending,
            Shows::Healthy,
            1_000,
            r#""phase":"baking","wave":0,"started_ms":1000,"bake_until_ms":61000"#,
            vec!["audit:started", "audit:wave_started", "new:0"],
        ),
        (
            "pending waits for a baseline",
            Phase::Pending,
            Shows::Silence,
            1_000,
            r#""phase":"pending""#,
            vec![],
        ),
        (
            "pending starts without a baseline after the wait",
            Phase::Pending,
            Shows::Silence,
            rollout::DEFAULT_BASELINE_WAIT_MS,
            r#""phase":"baking","wave":0"#,
            vec!["audit:started", "audit:wave_started", "new:0"],
        ),
        (
            "baking stays baking",
            baking(0),
            Shows::Healthy,
            30_000,
            r#""phase":"baking""#,
            vec![],
        ),
        (
            "baked: verify",
            baking(0),
            Shows::Healthy,
            CANARY_BAKE,
            r#""phase":"verifying","wave":0,"started_ms":0,"since_ms":60000"#,
            vec!["audit:baked"],
        ),
        (
            "a NACK while baking rolls back and marks bad",
            baking(0),
            Shows::Nack,
            5_000,
            r#""phase":"rolling_back","touched":1,"since_ms":5000"#,
            vec![
                "audit:gate_failed",
                "bad",
                "audit:rollback_started",
                "back:0..=0",
            ],
        ),
        (
            "silence past the timeout rolls back without marking",
            baking(1),
            Shows::Silence,
            40_000,
            r#""phase":"rolling_back","touched":2"#,
            vec!["audit:gate_failed", "audit:rollback_started", "back:0..=1"],
        ),
        (
            "verified: next wave",
            verifying(0),
            Shows::Healthy,
            CANARY_BAKE + 1_000,
            r#""phase":"baking","wave":1,"started_ms":61000"#,
            vec!["audit:wave_passed", "audit:wave_started", "new:1"],
        ),
        (
            "last wave verified: the whole fleet is watched",
            verifying(3),
            Shows::Healthy,
            CANARY_BAKE + 1_000,
            r#""phase":"watching","since_ms":61000,"until_ms":661000"#,
            vec!["audit:wave_passed", "audit:watching"],
        ),
        (
            "watching, healthy: the watch goes on",
            watching(),
            Shows::Healthy,
            WATCH_FROM + 1_000,
            r#""phase":"watching""#,
            vec![],
        ),
        (
            "the watch ends with no failure: succeeded",
            watching(),
            Shows::Healthy,
            WATCH_FROM + DEFAULT_WATCH_MS,
            r#""phase":"succeeded","touched":4"#,
            vec!["audit:watch_passed", "audit:succeeded"],
        ),
        (
            "5xx during the watch roll the whole fleet back and mark the file bad",
            watching(),
            Shows::Errors,
            WATCH_FROM + 1_000,
            r#""phase":"rolling_back","touched":4"#,
            vec![
                "audit:watch_failed",
                "bad",
                "audit:rollback_started",
                "back:0..=3",
            ],
        ),
        (
            "a paused watch still rolls back on a failure",
            Phase::Paused {
                resume: Resume::Watching {
                    since_ms: WATCH_FROM,
                    remaining_ms: 5_000,
                },
                cause: PauseCause::Operator {
                    who: "bob".into(),
                    reason: "look".into(),
                },
                since_ms: WATCH_FROM,
            },
            Shows::Errors,
            WATCH_FROM + 1_000,
            r#""phase":"rolling_back","touched":4"#,
            vec![
                "audit:watch_failed",
                "bad",
                "audit:rollback_started",
                "back:0..=3",
            ],
        ),
        (
            "no traffic: verifying holds",
            verifying(0),
            Shows::Quiet,
            CANARY_BAKE + 1_000,
            r#""phase":"verifying""#,
            vec![],
        ),
        (
            "held past the cap: paused as inconclusive",
            verifying(0),
            Shows::Quiet,
            CANARY_BAKE + hold_cap,
            r#""phase":"paused","resume":{"phase":"verifying","wave":0,"started_ms":0},"cause":{"by":"inconclusive","reason":{"reason":"insufficient_requests""#,
            vec!["audit:inconclusive"],
        ),
        (
            "5xx while verifying rolls back",
            verifying(2),
            Shows::Errors,
            CANARY_BAKE + 1_000,
            r#""phase":"rolling_back","touched":3"#,
            vec![
                "audit:gate_failed",
                "bad",
                "audit:rollback_started",
                "back:0..=2",
            ],
        ),
        (
            "paused still rolls back on a NACK",
            paused(
                Resume::Baking {
                    wave: 0,
                    started_ms: 0,
                    remaining_ms: 1,
                },
                false,
            ),
            Shows::Nack,
            CANARY_BAKE + 1_000,
            r#""phase":"rolling_back","touched":1"#,
            vec![
                "audit:gate_failed",
                "bad",
                "audit:rollback_started",
                "back:0..=0",
            ],
        ),
        (
            "paused and healthy stays paused",
            paused(
                Resume::Verifying {
                    wave: 1,
                    started_ms: 0,
                },
                false,
            ),
            Shows::Healthy,
            CANARY_BAKE + 1_000,
            r#""phase":"paused""#,
            vec![],
        ),
        (
            "paused before starting stays paused",
            paused(Resume::Pending, false),
            Shows::Healthy,
            CANARY_BAKE + 1_000,
            r#""phase":"paused""#,
            vec![],
        ),
        (
            "rolling back: everyone back",
            Phase::RollingBack {
                touched: 2,
                since_ms: 0,
            },
            Shows::AllBack,
            1_000,
            r#""phase":"rolled_back","touched":2,"at_ms":1000,"unconfirmed":0"#,
            vec!["audit:rolled_back"],
        ),
        (
            "rolling back: nodes still on the new version",
            Phase::RollingBack {
                touched: 2,
                since_ms: 0,
            },
            Shows::Healthy,
            1_000,
            r#""phase":"rolling_back""#,
            vec![],
        ),
        (
            "rolling back: stuck past the timeout fails",
            Phase::RollingBack {
                touched: 2,
                since_ms: 0,
            },
            Shows::Healthy,
            rb_timeout,
            r#""phase":"failed","touched":2,"at_ms":30000,"stuck":2"#,
            vec!["audit:rollback_stuck"],
        ),
        (
            "rolling back: silent past the timeout is rolled back, unconfirmed",
            Phase::RollingBack {
                touched: 2,
                since_ms: 0,
            },
            Shows::Silence,
            rb_timeout,
            r#""phase":"rolled_back","touched":2,"at_ms":30000,"unconfirmed":2"#,
            vec!["audit:rolled_back"],
        ),
        (
            "a stored wave beyond the plan rolls everything back",
            baking(9),
            Shows::Healthy,
            1_000,
            r#""phase":"rolling_back","touched":4"#,
            vec!["audit:corrupt", "audit:rollback_started", "back:0..=3"],
        ),
    ];
    for (name, phase, shows, now, expect_phase, expect_actions) in table {
        let r = at(phase);
        let obs = observe(&r, shows, now);
        let d = reconcile(&r, &obs, now);
        assert!(
            phase_of(&d).contains(expect_phase),
            "{name}: phase {} lacks {expect_phase}",
            phase_of(&d)
        );
        assert_eq!(kinds(&d), expect_actions, "{name}");
        assert_eq!(d, reconcile(&r, &obs, now), "{name}: idempotent");
        assert_eq!(
            d.transitioned,
            d.status.phase != r.status().phase,
            "{name}: transitioned flag"
        );
    }
}

#[test]
fn a_last_wave_without_any_baseline_holds_rather_than_passing() {
    let mut r = at(verifying(3));
    let mut status = r.status().clone();
    status.reference = None;
    r.apply(Decision {
        status,
        actions: vec![],
        requeue_after_ms: None,
        transitioned: false,
    });
    let now = CANARY_BAKE + 1_000;
    let d = reconcile(&r, &observe(&r, Shows::Healthy, now), now);
    assert!(matches!(d.status.phase, Phase::Verifying { wave: 3, .. }));
    let report = d.status.report.unwrap();
    assert!(
        matches!(
            report.score_shift,
            Verdict::Hold {
                reason: HoldReason::InsufficientScores { baseline: 0, .. }
            }
        ),
        "{:?}",
        report.score_shift
    );
}

#[test]
fn terminal_phases_do_nothing_and_ask_for_no_requeue() {
    for phase in [
        Phase::Succeeded {
            touched: 4,
            at_ms: 1,
        },
        Phase::Aborted {
            touched: 2,
            at_ms: 1,
        },
        Phase::RolledBack {
            touched: 1,
            at_ms: 1,
            unconfirmed: 0,
        },
        Phase::Failed {
            touched: 1,
            at_ms: 1,
            stuck: 1,
        },
    ] {
        let r = at(phase.clone());
        for shows in [Shows::Healthy, Shows::Nack, Shows::Silence] {
            let d = reconcile(&r, &observe(&r, shows, 5_000), 5_000);
            assert_eq!(d.status.phase, phase);
            assert!(d.actions.is_empty());
            assert_eq!(d.requeue_after_ms, None);
            assert!(!r.is_active());
        }
    }
}

#[test]
fn only_a_rollout_that_finished_its_watch_blesses_its_version() {
    let to = *fresh().to();
    assert_eq!(fresh().blessing(), None, "pending");
    for phase in [baking(0), verifying(3), watching()] {
        assert_eq!(at(phase.clone()).blessing(), None, "{phase:?}");
    }
    for phase in [
        Phase::Aborted {
            touched: 4,
            at_ms: 1,
        },
        Phase::RollingBack {
            touched: 4,
            since_ms: 1,
        },
        Phase::RolledBack {
            touched: 4,
            at_ms: 1,
            unconfirmed: 0,
        },
        Phase::Failed {
            touched: 4,
            at_ms: 1,
            stuck: 1,
        },
    ] {
        assert_eq!(at(phase.clone()).blessing(), None, "{phase:?}");
    }
    let done = at(Phase::Succeeded {
        touched: 4,
        at_ms: 1,
    });
    assert_eq!(done.blessing(), Some(&to));
    // The watch ends with no failure: the decision's status blesses.
    let mut r = at(watching());
    let obs = observe(&r, Shows::Healthy, WATCH_FROM + DEFAULT_WATCH_MS);
    r.apply(reconcile(&r, &obs, WATCH_FROM + DEFAULT_WATCH_MS));
    assert_eq!(r.blessing(), Some(&to));
}

#[test]
fn every_command_transition() {
    let incon = |wave| {
        paused(
            Resume::Verifying {
                wave,
                started_ms: 0,
            },
            true,
        )
    };
    let paused_baking = paused(
        Resume::Baking {
            wave: 1,
            started_ms: 0,
            remaining_ms: 20_000,
        },
        false,
    );
    let now = 100_000;
    let table: Vec<(&str, Phase, Command, &str, Vec<&str>)> = vec![
        (
            "promote ends the bake",
            baking(1),
            Command::Promote,
            r#""phase":"verifying","wave":1,"started_ms":0,"since_ms":100000"#,
            vec!["audit:command"],
        ),
        (
            "promote accepts an inconclusive wave",
            incon(1),
            Command::Promote,
            r#""phase":"baking","wave":2"#,
            vec!["audit:command", "audit:wave_started", "new:2"],
        ),
        (
            "promote accepts an inconclusive last wave: the watch starts",
            incon(3),
            Command::Promote,
            r#""phase":"watching","since_ms":100000,"until_ms":700000"#,
            vec!["audit:command", "audit:watching"],
        ),
        (
            "promote ends a watch",
            watching(),
            Command::Promote,
            r#""phase":"succeeded","touched":4"#,
            vec!["audit:command", "audit:succeeded"],
        ),
        (
            "pause a watch",
            watching(),
            Command::Pause,
            r#""resume":{"phase":"watching","since_ms":61000,"remaining_ms":561000}"#,
            vec!["audit:command"],
        ),
        (
            "resume a watch: the time left, from now",
            Phase::Paused {
                resume: Resume::Watching {
                    since_ms: WATCH_FROM,
                    remaining_ms: 5_000,
                },
                cause: PauseCause::Operator {
                    who: "bob".into(),
                    reason: "look".into(),
                },
                since_ms: WATCH_FROM,
            },
            Command::Resume,
            r#""phase":"watching","since_ms":61000,"until_ms":105000"#,
            vec!["audit:command"],
        ),
        (
            "rollback while watching",
            watching(),
            Command::Rollback { mark_bad: true },
            r#""phase":"rolling_back","touched":4"#,
            vec![
                "audit:command",
                "bad",
                "audit:rollback_started",
                "back:0..=3",
            ],
        ),
        (
            "pause before start",
            Phase::Pending,
            Command::Pause,
            r#""phase":"paused","resume":{"phase":"pending"},"cause":{"by":"operator","who":"alice""#,
            vec!["audit:command"],
        ),
        (
            "pause keeps the bake left",
            Phase::Baking {
                wave: 1,
                started_ms: 0,
                bake_until_ms: now + 20_000,
            },
            Command::Pause,
            r#""resume":{"phase":"baking","wave":1,"started_ms":0,"remaining_ms":20000}"#,
            vec!["audit:command"],
        ),
        (
            "pause while verifying",
            verifying(2),
            Command::Pause,
            r#""resume":{"phase":"verifying","wave":2,"started_ms":0}"#,
            vec!["audit:command"],
        ),
        (
            "resume to pending",
            paused(Resume::Pending, false),
            Command::Resume,
            r#""phase":"pending""#,
            vec!["audit:command"],
        ),
        (
            "resume bakes what was left",
            paused_baking.clone(),
            Command::Resume,
            r#""phase":"baking","wave":1,"started_ms":0,"bake_until_ms":120000"#,
            vec!["audit:command"],
        ),
        (
            "resume verifying restarts the hold cap",
            incon(0),
            Command::Resume,
            r#""phase":"verifying","wave":0,"started_ms":0,"since_ms":100000"#,
            vec!["audit:command"],
        ),
        (
            "abort before start",
            Phase::Pending,
            Command::Abort,
            r#""phase":"aborted","touched":0"#,
            vec!["audit:command"],
        ),
        (
            "abort while baking",
            baking(0),
            Command::Abort,
            r#""phase":"aborted","touched":1"#,
            vec!["audit:command"],
        ),
        (
            "abort freezes a wave",
            verifying(1),
            Command::Abort,
            r#""phase":"aborted","touched":2"#,
            vec!["audit:command"],
        ),
        (
            "abort while paused",
            paused_baking.clone(),
            Command::Abort,
            r#""phase":"aborted","touched":2"#,
            vec!["audit:command"],
        ),
        (
            "rollback before start is immediate",
            Phase::Pending,
            Command::Rollback { mark_bad: false },
            r#""phase":"rolled_back","touched":0"#,
            vec![
                "audit:command",
                "audit:rollback_started",
                "audit:rolled_back",
            ],
        ),
        (
            "rollback while baking, marking bad",
            baking(2),
            Command::Rollback { mark_bad: true },
            r#""phase":"rolling_back","touched":3"#,
            vec![
                "audit:command",
                "bad",
                "audit:rollback_started",
                "back:0..=2",
            ],
        ),
        (
            "rollback while verifying",
            verifying(0),
            Command::Rollback { mark_bad: false },
            r#""phase":"rolling_back","touched":1"#,
            vec!["audit:command", "audit:rollback_started", "back:0..=0"],
        ),
        (
            "rollback while paused",
            paused_baking,
            Command::Rollback { mark_bad: false },
            r#""phase":"rolling_back","touched":2"#,
            vec!["audit:command", "audit:rollback_started", "back:0..=1"],
        ),
        (
            "rollback after abort",
            Phase::Aborted {
                touched: 2,
                at_ms: 5,
            },
            Command::Rollback { mark_bad: false },
            r#""phase":"rolling_back","touched":2"#,
            vec!["audit:command", "audit:rollback_started", "back:0..=1"],
        ),
        (
            "rollback after success",
            Phase::Succeeded {
                touched: 4,
                at_ms: 5,
            },
            Command::Rollback { mark_bad: false },
            r#""phase":"rolling_back","touched":4"#,
            vec!["audit:command", "audit:rollback_started", "back:0..=3"],
        ),
        (
            "rollback retried after a stuck rollback",
            Phase::Failed {
                touched: 1,
                at_ms: 5,
                stuck: 1,
            },
            Command::Rollback { mark_bad: false },
            r#""phase":"rolling_back","touched":1"#,
            vec!["audit:command", "audit:rollback_started", "back:0..=0"],
        ),
    ];
    let op = Operator {
        who: "alice".into(),
        reason: "because".into(),
    };
    for (name, phase, cmd, expect_phase, expect_actions) in table {
        let r = at(phase);
        let d = command(&r, cmd, &op, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            phase_of(&d).contains(expect_phase),
            "{name}: phase {} lacks {expect_phase}",
            phase_of(&d)
        );
        assert_eq!(kinds(&d), expect_actions, "{name}");
        if let Some(RollbackCause::Operator { who, .. }) = &d.status.cause {
            assert_eq!(who, "alice");
        }
    }
}

#[test]
fn commands_that_make_no_sense_are_refused() {
    let op = Operator {
        who: "alice".into(),
        reason: String::new(),
    };
    let rolling = Phase::RollingBack {
        touched: 1,
        since_ms: 0,
    };
    let rolled = Phase::RolledBack {
        touched: 1,
        at_ms: 0,
        unconfirmed: 0,
    };
    let done = Phase::Succeeded {
        touched: 4,
        at_ms: 0,
    };
    let refused = [
        (Phase::Pending, Command::Promote),
        (verifying(0), Command::Promote),
        (
            paused(
                Resume::Verifying {
                    wave: 0,
                    started_ms: 0,
                },
                false,
            ),
            Command::Promote,
        ),
        (done.clone(), Command::Promote),
        (paused(Resume::Pending, false), Command::Pause),
        (rolling.clone(), Command::Pause),
        (baking(0), Command::Resume),
        (done.clone(), Command::Resume),
        (rolling.clone(), Command::Abort),
        (done, Command::Abort),
        (rolling, Command::Rollback { mark_bad: false }),
        (rolled, Command::Rollback { mark_bad: true }),
    ];
    for (phase, cmd) in refused {
        let r = at(phase.clone());
        match command(&r, cmd, &op, 1) {
            Err(CommandError::NotAllowed { command, phase: p }) => {
                assert_eq!(command, cmd.name());
                assert_eq!(p, phase.name());
            }
            other => panic!("{cmd:?} in {phase:?}: {other:?}"),
        }
    }
    let nobody = Operator {
        who: " ".into(),
        reason: "x".into(),
    };
    assert_eq!(
        command(&fresh(), Command::Pause, &nobody, 1),
        Err(CommandError::NoOperator)
    );
    let long = Operator {
        who: "alice".into(),
        reason: "x".repeat(rollout::MAX_REASON_LEN + 1),
    };
    assert_eq!(
        command(&fresh(), Command::Pause, &long, 1),
        Err(CommandError::ReasonTooLong)
    );
}

#[test]
fn bad_specs_are_refused_at_start() {
    let staged = plan(&nodes(), &PlanPolicy::default()).unwrap();
    let glass = plan(&nodes(), &PlanPolicy::break_glass()).unwrap();
    let spec = |plan: &Plan, bg: Option<(&str, &str)>| RolloutSpec {
        id: "r".into(),
        from: Some(v1()),
        to: v2(),
        plan: plan.clone(),
        policy: RolloutPolicy::default(),
        break_glass: bg.map(|(by, reason)| BreakGlass {
            by: by.into(),
            reason: reason.into(),
        }),
    };
    assert_eq!(
        Rollout::new(spec(&glass, None), 0),
        Err(StartError::BreakGlassPlanWithoutFlag)
    );
    assert_eq!(
        Rollout::new(spec(&staged, Some(("oncall", "why"))), 0),
        Err(StartError::FlagWithoutBreakGlassPlan)
    );
    assert_eq!(
        Rollout::new(spec(&glass, Some(("oncall", "  "))), 0),
        Err(StartError::BreakGlassWithoutReason)
    );
    assert_eq!(
        Rollout::new(spec(&glass, Some(("", "why"))), 0),
        Err(StartError::BreakGlassWithoutReason)
    );
    assert!(Rollout::new(spec(&glass, Some(("oncall", "why"))), 0).is_ok());
    let mut same = spec(&staged, None);
    same.to = v1();
    assert_eq!(Rollout::new(same, 0), Err(StartError::SameVersion));
    let mut anonymous = spec(&staged, None);
    anonymous.id = String::new();
    assert_eq!(Rollout::new(anonymous, 0), Err(StartError::EmptyId));
}

#[test]
fn a_paused_bake_resumes_with_the_time_it_had_left() {
    let mut d = Driver::new(&nodes(), Behaviour::Healthy);
    d.set_requests_per_beat(400);
    assert!(d.run_until(10, |p| matches!(p, Phase::Baking { wave: 0, .. })));
    for _ in 0..20 {
        d.beat_and_reconcile();
    }
    let Phase::Baking { bake_until_ms, .. } = *d.phase() else {
        panic!()
    };
    let left = bake_until_ms - d.now;
    d.command(Command::Pause).unwrap();
    for _ in 0..100 {
        d.beat_and_reconcile();
        assert!(
            matches!(d.phase(), Phase::Paused { .. }),
            "paused stays paused"
        );
    }
    d.command(Command::Resume).unwrap();
    let Phase::Baking { bake_until_ms, .. } = *d.phase() else {
        panic!()
    };
    assert_eq!(bake_until_ms - d.now, left);
    // The window was kept across the pause: the same wave, the same start.
    assert!(d.run_until(200, |p| matches!(p, Phase::Baking { wave: 1, .. })));
}

#[test]
fn the_status_and_decisions_survive_json() {
    let mut d = Driver::new(&nodes(), Behaviour::AllIn(1));
    d.run(300);
    let json = serde_json::to_string(&d.rollout).unwrap();
    let back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d.rollout);
    for x in &d.decisions {
        let json = serde_json::to_string(x).unwrap();
        let back: Decision = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, x);
    }
    let obs_json = serde_json::to_string(&d.obs).unwrap();
    let obs: Observations = serde_json::from_str(&obs_json).unwrap();
    assert_eq!(obs, d.obs);
}

#[test]
fn a_restart_during_the_watch_rolls_the_fleet_back_and_marks_the_file_bad() {
    let r = at(watching());
    let now = WATCH_FROM + 120_000;
    let mut obs = observe(&r, Shows::Healthy, now - 1_000);
    // One node, minutes after it loaded the file, dies and comes back on it.
    let crashed = Beat {
        restarts: 1,
        deaths: vec![BeatDeath {
            detected_at_ms: now,
            active: Some(v2().digest),
            uptime_ms: Some(300_000),
            active_for_ms: Some(300_000),
        }],
        ..Beat::idle(Some(v2().digest))
    };
    obs.absorb(NodeIdx(5), &crashed, now).unwrap();
    let d = reconcile(&r, &obs, now);
    assert!(
        matches!(d.status.phase, Phase::RollingBack { touched: 4, .. }),
        "{}",
        phase_of(&d)
    );
    assert!(d.marks_bad(&v2().digest));
    let Some(RollbackCause::Watch { failure }) = &d.status.cause else {
        panic!("{:?}", d.status.cause);
    };
    assert_eq!(failure.gate, Gate::Restarts);
    assert!(
        d.status
            .bad
            .as_ref()
            .unwrap()
            .reason
            .contains("during the watch")
    );
    // The death is counted against the new version, with the time nodes served it.
    assert_eq!(obs.deaths().new.deaths, 1);
    assert_eq!(obs.deaths().previous.deaths, 0);
    assert!(obs.deaths().new.exposure_ms > 0);
}

#[test]
fn deaths_on_the_new_version_fail_the_death_gate_with_their_numbers() {
    // Restarts tolerated, so only the death correlation can catch it.
    let mut policy = RolloutPolicy::default();
    policy.gates.max_restarts_per_node = u32::MAX;
    let r = {
        let mut r = rollout_over(&nodes(), policy);
        let mut status = at(watching()).status().clone();
        status.phase = watching();
        r.apply(Decision {
            status,
            actions: vec![],
            requeue_after_ms: None,
            transitioned: false,
        });
        r
    };
    let mut obs = Observations::new(&r);
    // Half the fleet served the previous version for an hour before, quietly; then every
    // node serves the new one for 10 minutes and 5 of them die.
    for i in 0..4u32 {
        obs.absorb(NodeIdx(i), &Beat::idle(Some(v1().digest)), 0)
            .unwrap();
        for t in 1..=60u64 {
            obs.absorb(NodeIdx(i), &Beat::idle(Some(v1().digest)), t * 60_000)
                .unwrap();
        }
    }
    let start = 3_600_000;
    let mut now = start;
    for step in 1..=10u64 {
        now = start + step * 60_000;
        for i in 0..8u32 {
            let mut beat = Beat::idle(Some(v2().digest));
            if step <= 5 && i == 0 {
                beat.restarts = 1;
                beat.deaths.push(BeatDeath {
                    detected_at_ms: now,
                    active: Some(v2().digest),
                    uptime_ms: Some(60_000),
                    active_for_ms: Some(60_000),
                });
            }
            obs.absorb(NodeIdx(i), &beat, now).unwrap();
        }
    }
    let d = reconcile(&r, &obs, now);
    let Some(RollbackCause::Watch { failure }) = &d.status.cause else {
        panic!("{} {:?}", phase_of(&d), d.status.report);
    };
    assert_eq!(failure.gate, Gate::Deaths);
    let Numbers::Deaths(n) = &failure.numbers else {
        panic!("{:?}", failure.numbers);
    };
    let t = n.test.unwrap();
    assert_eq!((t.new_deaths, t.previous_deaths), (5, 0));
    // The first minute on the new version was still served by the previous one (the
    // version of the earlier beat counts).
    assert_eq!(t.previous_exposure_ms, 4 * 3_660_000);
    assert!(t.p_value < gate::DEFAULT_DEATH_ALPHA, "{}", t.p_value);
    assert!(
        failure.explanation.contains("died 5 times"),
        "{}",
        failure.explanation
    );
    assert!(d.marks_bad(&v2().digest));
}
