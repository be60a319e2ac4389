//! The level-driven reconcile and the operator commands: state, observations and time in;
//! the next status, the actions, and when to call again out.
//!
//! [`reconcile`] is a pure function: the same rollout, observations and `now_ms` give the
//! same [`Decision`], so a control plane that crashed between two calls, or calls twice, does
//! no harm. Each call makes at most one transition. A failure in the observations turns into
//! a rollback on the very call that first sees it, in any phase where nodes carry the new
//! version (baking, verifying, paused).

use serde::{Deserialize, Serialize};

use crate::gate::{self, Context, Failure, GateReport, HoldReason, Overall};
use crate::observation::Observations;
use crate::plan::Plan;
use crate::rollout::{
    ArtifactRef, BadMark, BreakGlass, MAX_REASON_LEN, PauseCause, Phase, Reference, Resume,
    RollbackCause, Rollout, Target, WouldHave,
};
use rampart_artifact::Digest;

/// What a reconcile or a command decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The rollout's next status (store it: [`Rollout::apply`]).
    pub status: crate::rollout::Status,
    /// What the caller must do, in order.
    pub actions: Vec<Action>,
    /// Call [`reconcile`] again after this long at the latest (`None`: finished; `Some(0)`:
    /// at once, another transition is due).
    pub requeue_after_ms: Option<u64>,
    /// Whether the phase changed (persist at least then).
    pub transitioned: bool,
}

/// Something the caller does for a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Hand these nodes a new desired version (waves `first_wave..=last_wave`).
    SetDesired {
        /// First wave concerned.
        first_wave: u16,
        /// Last wave concerned.
        last_wave: u16,
        /// The nodes' ids.
        nodes: Vec<String>,
        /// New or previous version.
        target: Target,
        /// The version (`None`: the previous version is none; clear the desired version).
        version: Option<ArtifactRef>,
    },
    /// Refuse this digest from now on (publish and rollout), with why.
    MarkBad {
        /// The digest.
        digest: Digest,
        /// Why, with the numbers.
        reason: String,
    },
    /// Append to the audit log.
    Audit(AuditRecord),
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When.
    pub at_ms: u64,
    /// The rollout.
    pub rollout: String,
    /// Who.
    pub actor: Actor,
    /// What.
    pub event: Event,
}

/// Who caused an audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The rollout engine itself.
    System,
    /// An operator.
    Operator {
        /// Who.
        who: String,
        /// Why.
        reason: String,
    },
}

/// Audited events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The rollout started its first wave.
    Started {
        /// Previous version.
        from: Option<ArtifactRef>,
        /// New version.
        to: ArtifactRef,
        /// Waves in the plan.
        waves: u16,
        /// Nodes in the plan.
        nodes: u32,
        /// Set for a break-glass push.
        break_glass: Option<BreakGlass>,
    },
    /// A wave's nodes were told to switch.
    WaveStarted {
        /// The wave.
        wave: u16,
        /// Its nodes.
        nodes: u32,
    },
    /// A wave's bake ended (elapsed or promoted).
    Baked {
        /// The wave.
        wave: u16,
    },
    /// A wave passed every gate.
    WavePassed {
        /// The wave.
        wave: u16,
        /// The gates' numbers.
        report: Box<GateReport>,
    },
    /// Gates held past the hold cap.
    Inconclusive {
        /// The wave.
        wave: u16,
        /// The hold.
        reason: HoldReason,
    },
    /// Every wave passed: the whole fleet is watched until `until_ms`.
    Watching {
        /// When the watch ends.
        until_ms: u64,
    },
    /// The watch ended with no failure (its last report).
    WatchPassed {
        /// The gates' numbers.
        report: Box<GateReport>,
    },
    /// A gate failed during the watch: the whole fleet rolls back.
    WatchFailed {
        /// The failure with its numbers.
        failure: Failure,
    },
    /// Shadow scoring held the candidate before the first wave (enforce mode).
    ShadowHeld {
        /// Every reason, with the numbers.
        reasons: Vec<String>,
    },
    /// Every wave passed (and the watch after them).
    Succeeded,
    /// An observing gate ([`GateMode::Observe`](crate::gate::GateMode)) failed for the first
    /// time in this rollout: had it enforced, the rollout would have rolled back here.
    /// Nothing else happens.
    GateObserved {
        /// The wave it would have stopped (`None`: during the watch after the last wave).
        wave: Option<u16>,
        /// What it would have said, with its numbers.
        failure: Failure,
    },
    /// A gate failed.
    GateFailed {
        /// The wave.
        wave: u16,
        /// The failure with its numbers.
        failure: Failure,
    },
    /// Nodes of waves `0..touched` were told to go back.
    RollbackStarted {
        /// Waves rolled back.
        touched: u16,
        /// Whether the digest was marked bad.
        marked_bad: bool,
    },
    /// The rollback completed.
    RolledBack {
        /// Nodes that never confirmed.
        unconfirmed: u32,
    },
    /// The rollback did not complete in time.
    RollbackStuck {
        /// Reporting nodes not back.
        stuck: u32,
    },
    /// An operator command took effect.
    Command {
        /// `promote`, `pause`, `resume`, `abort` or `rollback`.
        command: String,
    },
    /// The stored state did not fit the plan.
    Corrupt {
        /// What.
        what: String,
    },
}

/// Operator commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// End the bake now (gates still verify); on an inconclusive pause, accept the wave;
    /// while watching, end the watch now (the rollout succeeds).
    Promote,
    /// Stop progressing (fail gates still roll back).
    Pause,
    /// Continue after a pause.
    Resume,
    /// Stop for good; nodes stay where they are.
    Abort,
    /// Send touched nodes back to the previous version.
    Rollback {
        /// Also mark the new digest bad.
        mark_bad: bool,
    },
}

/// Who gives a command, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Who.
    pub who: String,
    /// Why.
    pub reason: String,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command makes no sense in this phase.
    #[error("cannot {command} a rollout that is {phase}")]
    NotAllowed {
        /// The command.
        command: &'static str,
        /// The phase.
        phase: &'static str,
    },
    /// The operator's name is empty.
    #[error("a command needs the operator's name")]
    NoOperator,
    /// A reason longer than [`MAX_REASON_LEN`].
    #[error("the reason is longer than {MAX_REASON_LEN} bytes")]
    ReasonTooLong,
    /// Approving a candidate held by shadow scoring needs a reason.
    #[error("a rollout held by shadow scoring is approved with a reason")]
    ReasonRequired,
}

/// The next step of `rollout` given what `obs` shows at `now_ms`.
pub fn reconcile(rollout: &Rollout, obs: &Observations, now_ms: u64) -> Decision {
    let mut d = Decision::keep(rollout);
    let plan = rollout.plan();
    let waves = plan.wave_count();
    let tick = rollout.policy().tick_ms.max(1);
    match rollout.status().phase {
        Phase::Pending => {
            let policy = rollout.policy();
            let base = obs.fleet_baseline();
            let enough = obs.matches(rollout)
                && base.counters.requests >= policy.gates.min_requests
                && base.scores.total() >= policy.gates.shift.min_scores;
            let waited = now_ms.saturating_sub(rollout.status().created_ms);
            if rollout.from().is_some() && !enough && waited < policy.baseline_wait_ms {
                // Wait (briefly) for a before-picture of the fleet on the previous version.
                d.requeue_after_ms = Some(tick.min(policy.baseline_wait_ms - waited));
                return d;
            }
            if rollout.from().is_some() && enough {
                let before = Reference {
                    wave: None,
                    pool: base.clone(),
                };
                d.status.reference = Some(before.clone());
                d.status.before = Some(before);
            }
            let to = *rollout.to();
            d.audit(
                rollout,
                now_ms,
                Event::Started {
                    from: rollout.from().copied(),
                    to,
                    waves,
                    nodes: u32::try_from(plan.len()).unwrap_or(u32::MAX),
                    break_glass: rollout.spec().break_glass.clone(),
                },
            );
            start_wave(rollout, &mut d, 0, now_ms);
        }
        Phase::Baking {
            wave,
            started_ms,
            bake_until_ms,
        } => {
            if wave >= waves {
                return corrupt(rollout, d, now_ms, "baking wave beyond the plan");
            }
            let report = judge(rollout, obs, wave, started_ms, now_ms);
            observed(rollout, &mut d, &report, Some(wave), now_ms);
            if let Overall::Fail(f) = report.overall() {
                let failure = f.clone();
                d.status.report = Some(report);
                return gate_failed(rollout, d, wave, failure, now_ms);
            }
            d.status.report = Some(report);
            if now_ms >= bake_until_ms {
                d.set_phase(
                    Phase::Verifying {
                        wave,
                        started_ms,
                        since_ms: now_ms,
                    },
                    now_ms,
                );
                d.audit(rollout, now_ms, Event::Baked { wave });
                d.requeue_after_ms = Some(0);
            } else {
                d.requeue_after_ms = Some(tick.min(bake_until_ms - now_ms));
            }
        }
        Phase::Verifying {
            wave,
            started_ms,
            since_ms,
        } => {
            if wave >= waves {
                return corrupt(rollout, d, now_ms, "verifying wave beyond the plan");
            }
            let report = judge(rollout, obs, wave, started_ms, now_ms);
            observed(rollout, &mut d, &report, Some(wave), now_ms);
            match report.overall() {
                Overall::Fail(f) => {
                    let failure = f.clone();
                    d.status.report = Some(report);
                    return gate_failed(rollout, d, wave, failure, now_ms);
                }
                Overall::Hold(reason) => {
                    let reason = *reason;
                    d.status.report = Some(report);
                    if now_ms.saturating_sub(since_ms) >= rollout.policy().hold_cap_ms {
                        d.set_phase(
                            Phase::Paused {
                                resume: Resume::Verifying { wave, started_ms },
                                cause: PauseCause::Inconclusive { reason },
                                since_ms: now_ms,
                            },
                            now_ms,
                        );
                        d.audit(rollout, now_ms, Event::Inconclusive { wave, reason });
                    }
                }
                Overall::Pass => {
                    remember_baseline(&mut d, obs, &report, wave, rollout);
                    d.audit(
                        rollout,
                        now_ms,
                        Event::WavePassed {
                            wave,
                            report: Box::new(report.clone()),
                        },
                    );
                    d.status.report = Some(report);
                    advance(rollout, &mut d, wave, now_ms);
                }
            }
        }
        Phase::Watching { since_ms, until_ms } => {
            let report = judge_watch(rollout, obs, since_ms, now_ms);
            observed(rollout, &mut d, &report, None, now_ms);
            if let Overall::Fail(f) = report.overall() {
                let failure = f.clone();
                d.status.report = Some(report);
                return watch_failed(rollout, d, failure, now_ms);
            }
            if now_ms >= until_ms {
                d.audit(
                    rollout,
                    now_ms,
                    Event::WatchPassed {
                        report: Box::new(report.clone()),
                    },
                );
                d.status.report = Some(report);
                succeed(rollout, &mut d, now_ms);
            } else {
                d.status.report = Some(report);
                d.requeue_after_ms = Some(tick.min(until_ms - now_ms));
            }
        }
        Phase::Paused {
            resume: Resume::Watching { since_ms, .. },
            ..
        } => {
            let report = judge_watch(rollout, obs, since_ms, now_ms);
            observed(rollout, &mut d, &report, None, now_ms);
            if let Overall::Fail(f) = report.overall() {
                let failure = f.clone();
                d.status.report = Some(report);
                return watch_failed(rollout, d, failure, now_ms);
            }
            d.status.report = Some(report);
        }
        Phase::Paused { resume, .. } => {
            // Pause stops progress, not protection.
            if let Resume::Baking {
                wave, started_ms, ..
            }
            | Resume::Verifying { wave, started_ms } = resume
            {
                if wave >= waves {
                    return corrupt(rollout, d, now_ms, "paused wave beyond the plan");
                }
                let report = judge(rollout, obs, wave, started_ms, now_ms);
                observed(rollout, &mut d, &report, Some(wave), now_ms);
                if let Overall::Fail(f) = report.overall() {
                    let failure = f.clone();
                    d.status.report = Some(report);
                    return gate_failed(rollout, d, wave, failure, now_ms);
                }
                d.status.report = Some(report);
            }
        }
        Phase::RollingBack { touched, since_ms } => {
            let (stuck, unconfirmed) = not_back(rollout, obs, touched, now_ms);
            let timed_out = now_ms.saturating_sub(since_ms) >= rollout.policy().rollback_timeout_ms;
            if stuck == 0 && (unconfirmed == 0 || timed_out) {
                d.set_phase(
                    Phase::RolledBack {
                        touched,
                        at_ms: now_ms,
                        unconfirmed,
                    },
                    now_ms,
                );
                d.audit(rollout, now_ms, Event::RolledBack { unconfirmed });
                d.requeue_after_ms = None;
            } else if timed_out {
                d.set_phase(
                    Phase::Failed {
                        touched,
                        at_ms: now_ms,
                        stuck,
                    },
                    now_ms,
                );
                d.audit(rollout, now_ms, Event::RollbackStuck { stuck });
                d.requeue_after_ms = None;
            }
        }
        Phase::Succeeded { .. }
        | Phase::Aborted { .. }
        | Phase::RolledBack { .. }
        | Phase::Failed { .. } => d.requeue_after_ms = None,
    }
    d
}

/// Holds a pending rollout before its first wave because shadow scoring judged its
/// candidate beyond policy: paused (resume: pending) with the reasons, audited. Anything but a
/// pending rollout is left as it is.
pub fn hold_for_shadow(rollout: &Rollout, reasons: Vec<String>, now_ms: u64) -> Decision {
    let mut d = Decision::keep(rollout);
    if rollout.status().phase != Phase::Pending {
        return d;
    }
    d.set_phase(
        Phase::Paused {
            resume: Resume::Pending,
            cause: PauseCause::Shadow {
                reasons: reasons.clone(),
            },
            since_ms: now_ms,
        },
        now_ms,
    );
    d.audit(rollout, now_ms, Event::ShadowHeld { reasons });
    d.requeue_after_ms = None;
    d
}

/// Applies an operator command at `now_ms`.
pub fn command(
    rollout: &Rollout,
    cmd: Command,
    by: &Operator,
    now_ms: u64,
) -> Result<Decision, CommandError> {
    if by.who.trim().is_empty() {
        return Err(CommandError::NoOperator);
    }
    if by.reason.len() > MAX_REASON_LEN || by.who.len() > MAX_REASON_LEN {
        return Err(CommandError::ReasonTooLong);
    }
    let phase = &rollout.status().phase;
    if matches!(cmd, Command::Resume | Command::Promote)
        && matches!(
            phase,
            Phase::Paused {
                cause: PauseCause::Shadow { .. },
                ..
            }
        )
        && by.reason.trim().is_empty()
    {
        return Err(CommandError::ReasonRequired);
    }
    let refuse = || CommandError::NotAllowed {
        command: cmd.name(),
        phase: phase.name(),
    };
    let mut d = Decision::keep(rollout);
    let actor = Actor::Operator {
        who: by.who.clone(),
        reason: by.reason.clone(),
    };
    d.actions.push(Action::Audit(AuditRecord {
        at_ms: now_ms,
        rollout: rollout.id().to_owned(),
        actor,
        event: Event::Command {
            command: cmd.name().to_owned(),
        },
    }));
    let touched = phase.touched(rollout.plan());
    match (cmd, phase) {
        (
            Command::Promote,
            &Phase::Baking {
                wave, started_ms, ..
            },
        ) => {
            d.set_phase(
                Phase::Verifying {
                    wave,
                    started_ms,
                    since_ms: now_ms,
                },
                now_ms,
            );
            d.requeue_after_ms = Some(0);
        }
        (
            Command::Promote,
            Phase::Paused {
                resume: Resume::Verifying { wave, .. },
                cause: PauseCause::Inconclusive { .. },
                ..
            },
        ) => advance(rollout, &mut d, *wave, now_ms),
        (Command::Promote, Phase::Watching { .. }) => succeed(rollout, &mut d, now_ms),
        (
            Command::Promote,
            Phase::Paused {
                resume: Resume::Pending,
                cause: PauseCause::Shadow { .. },
                ..
            },
        ) => {
            d.set_phase(Phase::Pending, now_ms);
            d.requeue_after_ms = Some(0);
        }
        (Command::Pause, Phase::Pending) => d.pause(Resume::Pending, by, now_ms),
        (Command::Pause, &Phase::Watching { since_ms, until_ms }) => d.pause(
            Resume::Watching {
                since_ms,
                remaining_ms: until_ms.saturating_sub(now_ms),
            },
            by,
            now_ms,
        ),
        (
            Command::Pause,
            &Phase::Baking {
                wave,
                started_ms,
                bake_until_ms,
            },
        ) => d.pause(
            Resume::Baking {
                wave,
                started_ms,
                remaining_ms: bake_until_ms.saturating_sub(now_ms),
            },
            by,
            now_ms,
        ),
        (
            Command::Pause,
            &Phase::Verifying {
                wave, started_ms, ..
            },
        ) => d.pause(Resume::Verifying { wave, started_ms }, by, now_ms),
        (Command::Resume, Phase::Paused { resume, .. }) => {
            let next = match *resume {
                Resume::Pending => Phase::Pending,
                Resume::Baking {
                    wave,
                    started_ms,
                    remaining_ms,
                } => Phase::Baking {
                    wave,
                    started_ms,
                    bake_until_ms: now_ms.saturating_add(remaining_ms),
                },
                Resume::Verifying { wave, started_ms } => Phase::Verifying {
                    wave,
                    started_ms,
                    since_ms: now_ms,
                },
                Resume::Watching {
                    since_ms,
                    remaining_ms,
                } => Phase::Watching {
                    since_ms,
                    until_ms: now_ms.saturating_add(remaining_ms),
                },
            };
            d.set_phase(next, now_ms);
            d.requeue_after_ms = Some(0);
        }
        (
            Command::Abort,
            Phase::Pending
            | Phase::Baking { .. }
            | Phase::Verifying { .. }
            | Phase::Watching { .. }
            | Phase::Paused { .. },
        ) => {
            d.set_phase(
                Phase::Aborted {
                    touched,
                    at_ms: now_ms,
                },
                now_ms,
            );
            d.requeue_after_ms = None;
        }
        (
            Command::Rollback { mark_bad },
            Phase::Pending
            | Phase::Baking { .. }
            | Phase::Verifying { .. }
            | Phase::Watching { .. }
            | Phase::Paused { .. }
            | Phase::Aborted { .. }
            | Phase::Succeeded { .. }
            | Phase::Failed { .. },
        ) => {
            let cause = RollbackCause::Operator {
                who: by.who.clone(),
                reason: by.reason.clone(),
            };
            let reason = format!("rolled back by {}: {}", by.who, by.reason);
            roll_back(
                rollout,
                &mut d,
                touched,
                cause,
                mark_bad.then_some(reason),
                now_ms,
            );
        }
        _ => return Err(refuse()),
    }
    Ok(d)
}

/// Runs the gates for `wave`, or a holding report if the observations do not fit.
fn judge(
    rollout: &Rollout,
    obs: &Observations,
    wave: u16,
    started_ms: u64,
    now_ms: u64,
) -> GateReport {
    let window = rollout.status().phase.window();
    if !obs.matches(rollout) || obs.window() != window {
        return GateReport::holding(now_ms, wave, HoldReason::ObservationsOutOfSync);
    }
    gate::evaluate(&Context {
        plan: rollout.plan(),
        obs,
        policy: &rollout.policy().gates,
        wave,
        wave_started_ms: started_ms,
        now_ms,
        has_previous: rollout.from().is_some(),
        reference: rollout.status().reference.as_ref().map(|r| &r.pool),
    })
}

/// Runs the gates over the whole fleet during the watch: every wave is touched, the window
/// is the watch's, and the baseline is the fleet's record before the rollout (else the last
/// recorded one).
fn judge_watch(rollout: &Rollout, obs: &Observations, since_ms: u64, now_ms: u64) -> GateReport {
    let last = rollout.plan().wave_count().saturating_sub(1);
    let window = rollout.status().phase.window();
    if !obs.matches(rollout) || obs.window() != window {
        return GateReport::holding(now_ms, last, HoldReason::ObservationsOutOfSync);
    }
    let status = rollout.status();
    gate::evaluate(&Context {
        plan: rollout.plan(),
        obs,
        policy: &rollout.policy().gates,
        wave: last,
        wave_started_ms: since_ms,
        now_ms,
        has_previous: rollout.from().is_some(),
        reference: status
            .before
            .as_ref()
            .or(status.reference.as_ref())
            .map(|r| &r.pool),
    })
}

/// Starts wave `wave`.
fn start_wave(rollout: &Rollout, d: &mut Decision, wave: u16, now_ms: u64) {
    let plan = rollout.plan();
    let bake = plan.wave(wave).map_or(0, |w| w.bake_ms);
    let nodes = plan.ids(wave, wave);
    d.audit(
        rollout,
        now_ms,
        Event::WaveStarted {
            wave,
            nodes: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
        },
    );
    d.actions.push(Action::SetDesired {
        first_wave: wave,
        last_wave: wave,
        nodes,
        target: Target::New,
        version: Some(*rollout.to()),
    });
    d.set_phase(
        Phase::Baking {
            wave,
            started_ms: now_ms,
            bake_until_ms: now_ms.saturating_add(bake),
        },
        now_ms,
    );
    d.requeue_after_ms = Some(rollout.policy().tick_ms.max(1).min(bake.max(1)));
}

/// After `wave` passed (or was accepted): the next wave, or success.
fn advance(rollout: &Rollout, d: &mut Decision, wave: u16, now_ms: u64) {
    let waves = rollout.plan().wave_count();
    let watch = rollout.policy().watch_ms;
    if wave.saturating_add(1) < waves {
        start_wave(rollout, d, wave + 1, now_ms);
    } else if watch > 0 {
        let until_ms = now_ms.saturating_add(watch);
        d.set_phase(
            Phase::Watching {
                since_ms: now_ms,
                until_ms,
            },
            now_ms,
        );
        d.audit(rollout, now_ms, Event::Watching { until_ms });
        d.requeue_after_ms = Some(rollout.policy().tick_ms.max(1).min(watch));
    } else {
        succeed(rollout, d, now_ms);
    }
}

/// Every wave passed, and the watch if any: the rollout succeeded.
fn succeed(rollout: &Rollout, d: &mut Decision, now_ms: u64) {
    d.set_phase(
        Phase::Succeeded {
            touched: rollout.plan().wave_count(),
            at_ms: now_ms,
        },
        now_ms,
    );
    d.audit(rollout, now_ms, Event::Succeeded);
    d.requeue_after_ms = None;
}

/// A gate failed during the watch: roll the whole fleet back.
fn watch_failed(rollout: &Rollout, mut d: Decision, failure: Failure, now_ms: u64) -> Decision {
    let all = rollout.plan().wave_count();
    let mark = failure.gate.marks_bad().then(|| {
        format!(
            "{} gate failed during the watch after the last wave: {}",
            gate_name(failure.gate),
            failure.explanation
        )
    });
    d.audit(
        rollout,
        now_ms,
        Event::WatchFailed {
            failure: failure.clone(),
        },
    );
    roll_back(
        rollout,
        &mut d,
        all,
        RollbackCause::Watch { failure },
        mark,
        now_ms,
    );
    d
}

/// Keeps the baseline a passed wave was judged against, for waves with no baseline left.
fn remember_baseline(
    d: &mut Decision,
    obs: &Observations,
    report: &GateReport,
    wave: u16,
    rollout: &Rollout,
) {
    let pool = match report.baseline {
        gate::BaselineKind::SamePop => obs.same_pop_baseline(),
        gate::BaselineKind::Fleet => obs.fleet_baseline(),
        gate::BaselineKind::Reference | gate::BaselineKind::None => return,
    };
    if pool.counters.requests >= rollout.policy().gates.min_requests {
        d.status.reference = Some(Reference {
            wave: Some(wave),
            pool: pool.clone(),
        });
    }
}

/// Records, once per gate and rollout, what an observing gate would have failed on
/// ([`Status::observed`](crate::rollout::Status), audited as [`Event::GateObserved`]).
fn observed(
    rollout: &Rollout,
    d: &mut Decision,
    report: &GateReport,
    wave: Option<u16>,
    now_ms: u64,
) {
    for failure in report.would_fail() {
        if d.status
            .observed
            .iter()
            .any(|o| o.failure.gate == failure.gate)
        {
            continue;
        }
        d.status.observed.push(WouldHave {
            wave,
            at_ms: now_ms,
            failure: failure.clone(),
        });
        d.audit(
            rollout,
            now_ms,
            Event::GateObserved {
                wave,
                failure: failure.clone(),
            },
        );
    }
}

/// A gate failed in `wave`: roll back every touched wave at once.
fn gate_failed(
    rollout: &Rollout,
    mut d: Decision,
    wave: u16,
    failure: Failure,
    now_ms: u64,
) -> Decision {
    let touched = wave.saturating_add(1);
    let mark = failure.gate.marks_bad().then(|| {
        format!(
            "{} gate failed in wave {wave}: {}",
            gate_name(failure.gate),
            failure.explanation
        )
    });
    d.audit(
        rollout,
        now_ms,
        Event::GateFailed {
            wave,
            failure: failure.clone(),
        },
    );
    roll_back(
        rollout,
        &mut d,
        touched,
        RollbackCause::Gate { wave, failure },
        mark,
        now_ms,
    );
    d
}

/// The stored phase does not fit the plan: roll back everything.
fn corrupt(rollout: &Rollout, mut d: Decision, now_ms: u64, what: &str) -> Decision {
    d.audit(
        rollout,
        now_ms,
        Event::Corrupt {
            what: what.to_owned(),
        },
    );
    let all = rollout.plan().wave_count();
    roll_back(
        rollout,
        &mut d,
        all,
        RollbackCause::Corrupt {
            what: what.to_owned(),
        },
        None,
        now_ms,
    );
    d
}

/// Sends waves `0..touched` back to the previous version; marks the new digest bad when
/// `mark_bad` carries a reason.
fn roll_back(
    rollout: &Rollout,
    d: &mut Decision,
    touched: u16,
    cause: RollbackCause,
    mark_bad: Option<String>,
    now_ms: u64,
) {
    let touched = touched.min(rollout.plan().wave_count());
    if let Some(reason) = mark_bad {
        let digest = rollout.to().digest;
        d.actions.push(Action::MarkBad {
            digest,
            reason: reason.clone(),
        });
        d.status.bad = Some(BadMark {
            digest,
            reason,
            at_ms: now_ms,
        });
    }
    d.status.cause = Some(cause);
    d.audit(
        rollout,
        now_ms,
        Event::RollbackStarted {
            touched,
            marked_bad: d.status.bad.is_some(),
        },
    );
    if touched == 0 {
        d.set_phase(
            Phase::RolledBack {
                touched,
                at_ms: now_ms,
                unconfirmed: 0,
            },
            now_ms,
        );
        d.audit(rollout, now_ms, Event::RolledBack { unconfirmed: 0 });
        d.requeue_after_ms = None;
        return;
    }
    d.actions.push(Action::SetDesired {
        first_wave: 0,
        last_wave: touched - 1,
        nodes: rollout.plan().ids(0, touched - 1),
        target: Target::Previous,
        version: rollout.from().copied(),
    });
    d.set_phase(
        Phase::RollingBack {
            touched,
            since_ms: now_ms,
        },
        now_ms,
    );
    d.requeue_after_ms = Some(rollout.policy().tick_ms.max(1));
}

/// Touched nodes not back on the previous version: `(still beating, silent)`.
fn not_back(rollout: &Rollout, obs: &Observations, touched: u16, now_ms: u64) -> (u32, u32) {
    let plan: &Plan = rollout.plan();
    let from = rollout.from().map(|f| f.digest);
    let timeout = rollout.policy().gates.heartbeat_timeout_ms;
    let matches = obs.matches(rollout);
    let (mut stuck, mut silent) = (0u32, 0u32);
    for idx in plan.touched(touched) {
        let node = obs.node(idx).filter(|_| matches);
        // Only a node that still beats can confirm it is back; a silent one is unconfirmed
        // whatever it said last.
        let beating = node
            .and_then(|n| n.last_heartbeat_ms)
            .is_some_and(|t| now_ms.saturating_sub(t) <= timeout);
        match (beating, node.is_some_and(|n| n.active == from)) {
            (true, true) => {}
            (true, false) => stuck += 1,
            (false, _) => silent += 1,
        }
    }
    (stuck, silent)
}

fn gate_name(gate: gate::Gate) -> &'static str {
    match gate {
        gate::Gate::Nack => "nack",
        gate::Gate::Restarts => "restarts",
        gate::Gate::Errors5xx => "5xx",
        gate::Gate::ModuleErrors => "module-errors",
        gate::Gate::ScoreShift => "score-shift",
        gate::Gate::Heartbeat => "heartbeat",
        gate::Gate::Convergence => "convergence",
        gate::Gate::Deaths => "deaths",
    }
}

// === impl Decision ===

impl Decision {
    /// No change: the same status, no actions, call again after a tick.
    fn keep(rollout: &Rollout) -> Decision {
        Decision {
            status: rollout.status().clone(),
            actions: Vec::new(),
            requeue_after_ms: Some(rollout.policy().tick_ms.max(1)),
            transitioned: false,
        }
    }

    fn set_phase(&mut self, phase: Phase, now_ms: u64) {
        self.status.phase = phase;
        self.status.changed_ms = now_ms;
        self.transitioned = true;
    }

    fn audit(&mut self, rollout: &Rollout, now_ms: u64, event: Event) {
        self.actions.push(Action::Audit(AuditRecord {
            at_ms: now_ms,
            rollout: rollout.id().to_owned(),
            actor: Actor::System,
            event,
        }));
    }

    fn pause(&mut self, resume: Resume, by: &Operator, now_ms: u64) {
        self.set_phase(
            Phase::Paused {
                resume,
                cause: PauseCause::Operator {
                    who: by.who.clone(),
                    reason: by.reason.clone(),
                },
                since_ms: now_ms,
            },
            now_ms,
        );
    }

    /// Whether this decision marks `digest` bad (the control plane must then refuse to
    /// publish or roll it out again).
    pub fn marks_bad(&self, digest: &Digest) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::MarkBad { digest: d, .. } if d == digest))
    }

    /// The nodes this decision sends to a version, with the target.
    pub fn set_desired(&self) -> impl Iterator<Item = (&[String], Target)> {
        self.actions.iter().filter_map(|a| match a {
            Action::SetDesired { nodes, target, .. } => Some((nodes.as_slice(), *target)),
            _ => None,
        })
    }
}

// === impl Command ===

impl Command {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Command::Promote => "promote",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Abort => "abort",
            Command::Rollback { .. } => "rollback",
        }
    }
}
