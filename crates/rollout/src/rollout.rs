//! The rollout: what is rolled out to whom (the spec, fixed at start) and where it stands
//! (the status, replaced by each [`Decision`]). Both are plain serde data:
//! the control plane stores them as JSON and a restarted control plane resumes from them.

use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

use crate::gate::{Failure, GatePolicy, GateReport, HoldReason};
use crate::observation::{Pool, Window};
use crate::plan::{NodeIdx, Plan};
use crate::reconcile::{Action, Decision};

/// How often a waiting rollout asks to be reconciled again (the heartbeat interval): a
/// failure seen in a heartbeat is acted on within one tick even if nothing else calls.
pub const DEFAULT_TICK_MS: u64 = 1_000;

/// How long a baked wave may hold (too little traffic, nodes late) before the rollout
/// pauses as inconclusive and waits for an operator, rather than passing blindly.
pub const DEFAULT_HOLD_CAP_MS: u64 = 300_000;

/// How long a rollback may take before the rollout is `Failed` (some nodes that still beat
/// did not return to the previous version). Nodes that stopped beating are reported as
/// unconfirmed instead.
pub const DEFAULT_ROLLBACK_TIMEOUT_MS: u64 = 30_000;

/// How long a pending rollout waits for a pre-rollout baseline (enough requests and scores
/// on the previous version) before it starts without one. The baseline becomes the
/// reference for waves with no baseline nodes left, such as a break-glass wave.
pub const DEFAULT_BASELINE_WAIT_MS: u64 = 10_000;

/// How long the fleet is watched after the last wave passed, with every fail gate over the
/// whole fleet against its record before the rollout, before the rollout succeeds and its
/// version is blessed: a file that kills the process minutes after loading it must fail
/// here, not after it became everyone's last-known-good.
pub const DEFAULT_WATCH_MS: u64 = 600_000;

/// How long after a rollout succeeded the control plane keeps comparing deaths per
/// node-hour on its version with the previous version's record (unless another rollout of
/// the kind starts first); a failure rolls the finished rollout back with no operator.
pub const DEFAULT_AFTERCARE_MS: u64 = 24 * 3_600_000;

/// The window id of the watch in [`Window::wave`]: past every wave, so the watch has its own
/// window (pools, restarts) and no wave's same-PoP baseline.
pub const WATCH_WINDOW: u16 = u16::MAX;

/// The longest operator or break-glass reason kept (bytes).
pub const MAX_REASON_LEN: usize = 1_024;

/// A version of an artifact: its number and the digest that identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The document's `version`.
    pub version: u64,
    /// The digest of its canonical bytes.
    pub digest: Digest,
}

/// Timing and gate thresholds of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutPolicy {
    /// Gate thresholds.
    pub gates: GatePolicy,
    /// See [`DEFAULT_TICK_MS`].
    pub tick_ms: u64,
    /// See [`DEFAULT_HOLD_CAP_MS`].
    pub hold_cap_ms: u64,
    /// See [`DEFAULT_ROLLBACK_TIMEOUT_MS`].
    pub rollback_timeout_ms: u64,
    /// See [`DEFAULT_BASELINE_WAIT_MS`].
    pub baseline_wait_ms: u64,
    /// See [`DEFAULT_WATCH_MS`]; 0 succeeds as soon as the last wave passes (no watch).
    pub watch_ms: u64,
    /// See [`DEFAULT_AFTERCARE_MS`] (0: none).
    pub aftercare_ms: u64,
    /// Shadow scoring before the first wave: `enforce` holds a candidate beyond the shadow
    /// policy (paused before wave 0 until an operator resumes it with a reason), `observe`
    /// only records it, `off` does not score. The control plane scores; the engine holds
    /// ([`Start::hold`](crate::runner::Start)).
    pub shadow: crate::gate::GateMode,
}

/// The explicit flag for a fleet-wide push at once: who and why. Audited; the single wave
/// is still verified by every gate and still rolls back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    /// Who pulled it.
    pub by: String,
    /// Why (must not be empty).
    pub reason: String,
}

/// What to roll out, to whom, how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    /// The control plane's id for this rollout.
    pub id: String,
    /// The version the fleet serves now and goes back to on rollback (`None`: the fleet
    /// has none yet; then there is no baseline and rollback clears the desired version).
    pub from: Option<ArtifactRef>,
    /// The version rolled out.
    pub to: ArtifactRef,
    /// The waves.
    pub plan: Plan,
    /// Timing and thresholds.
    pub policy: RolloutPolicy,
    /// Set for a break-glass rollout (with a break-glass plan).
    pub break_glass: Option<BreakGlass>,
}

/// A rollout: its spec and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    spec: RolloutSpec,
    status: Status,
}

/// Where a rollout stands, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The state.
    pub phase: Phase,
    /// The last gate evaluation (every gate with its numbers).
    pub report: Option<GateReport>,
    /// The baseline recorded when the last wave passed, for waves that have no baseline
    /// nodes left.
    pub reference: Option<Reference>,
    /// The fleet's record before the rollout (previous version, before the first wave):
    /// what the watch compares the whole fleet with.
    #[serde(default)]
    pub before: Option<Reference>,
    /// Why the rollout rolled back.
    pub cause: Option<RollbackCause>,
    /// The digest marked bad by this rollout, if any.
    pub bad: Option<BadMark>,
    /// When the rollout was created.
    pub created_ms: u64,
    /// When the phase last changed.
    pub changed_ms: u64,
    /// What observing gates would have done: the first failure of each, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<WouldHave>,
}

/// The first failure of an observing gate ([`GateMode::Observe`](crate::gate::GateMode)) in
/// a rollout: had it enforced, the rollout would have rolled back then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WouldHave {
    /// The wave it would have stopped (`None`: during the watch after the last wave).
    pub wave: Option<u16>,
    /// When.
    pub at_ms: u64,
    /// What it said, with its numbers.
    pub failure: crate::gate::Failure,
}

/// The states of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Created; the first reconcile starts the canary wave.
    Pending,
    /// A wave's nodes were told to switch; gates watch for failures while it bakes.
    Baking {
        /// The wave.
        wave: u16,
        /// When it started.
        started_ms: u64,
        /// When the bake ends (moved by a pause).
        bake_until_ms: u64,
    },
    /// The bake is over; the wave is promoted when every gate passes.
    Verifying {
        /// The wave.
        wave: u16,
        /// When it started.
        started_ms: u64,
        /// When verification began (the hold cap counts from here).
        since_ms: u64,
    },
    /// Stopped by an operator or as inconclusive. Fail gates still roll back.
    Paused {
        /// Where a resume goes.
        resume: Resume,
        /// Who or what paused.
        cause: PauseCause,
        /// Since when.
        since_ms: u64,
    },
    /// Touched nodes were told to go back to the previous version.
    RollingBack {
        /// Waves `0..touched` are rolled back.
        touched: u16,
        /// Since when.
        since_ms: u64,
    },
    /// Every wave passed; the whole fleet is watched until `until_ms` (fail gates still roll
    /// everything back), then the rollout succeeds.
    Watching {
        /// When the watch began (the last wave passed).
        since_ms: u64,
        /// When it ends (moved by a pause).
        until_ms: u64,
    },
    /// Every wave passed, and the watch after them.
    Succeeded {
        /// Waves touched (all).
        touched: u16,
        /// When.
        at_ms: u64,
    },
    /// Stopped by an operator; nodes stay where they are (use rollback to revert).
    Aborted {
        /// Waves `0..touched` got the new version.
        touched: u16,
        /// When.
        at_ms: u64,
    },
    /// Every touched node that still reports is back on the previous version.
    RolledBack {
        /// Waves rolled back.
        touched: u16,
        /// When.
        at_ms: u64,
        /// Nodes that never confirmed (no heartbeat).
        unconfirmed: u32,
    },
    /// The rollback did not complete: reporting nodes stayed on the new version.
    Failed {
        /// Waves rolled back.
        touched: u16,
        /// When.
        at_ms: u64,
        /// Reporting nodes not back.
        stuck: u32,
    },
}

/// The phase a paused rollout resumes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Resume {
    /// Not started.
    Pending,
    /// Baking, with this much bake left.
    Baking {
        /// The wave.
        wave: u16,
        /// When it started.
        started_ms: u64,
        /// Bake left at the pause.
        remaining_ms: u64,
    },
    /// Verifying (the hold cap restarts on resume).
    Verifying {
        /// The wave.
        wave: u16,
        /// When it started.
        started_ms: u64,
    },
    /// Watching, with this much watch left.
    Watching {
        /// When the watch began.
        since_ms: u64,
        /// Watch left at the pause.
        remaining_ms: u64,
    },
}

/// Why a rollout is paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum PauseCause {
    /// An operator paused it.
    Operator {
        /// Who.
        who: String,
        /// Why.
        reason: String,
    },
    /// Gates held past the hold cap: not enough evidence either way.
    Inconclusive {
        /// The hold.
        reason: HoldReason,
    },
    /// Shadow scoring held the candidate before the first wave: scored beside the serving
    /// file on a sample, it moves beyond policy. Nothing was exposed to it; an operator
    /// resumes it (approves, with a reason) or aborts it.
    Shadow {
        /// Every reason, with the numbers.
        reasons: Vec<String>,
    },
}

/// Why a rollout rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum RollbackCause {
    /// A gate failed.
    Gate {
        /// In which wave.
        wave: u16,
        /// The failure, with its numbers.
        failure: Failure,
    },
    /// A gate failed during the watch after the last wave (the whole fleet rolls back).
    Watch {
        /// The failure, with its numbers.
        failure: Failure,
    },
    /// An operator asked.
    Operator {
        /// Who.
        who: String,
        /// Why.
        reason: String,
    },
    /// The stored state was inconsistent with the plan: everything is rolled back.
    Corrupt {
        /// What was wrong.
        what: String,
    },
}

/// A digest this rollout found bad: the control plane refuses to publish it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadMark {
    /// The digest.
    pub digest: Digest,
    /// Why, with the numbers.
    pub reason: String,
    /// When.
    pub at_ms: u64,
}

/// A baseline kept for later waves: from before the rollout, then from each passed wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The wave that passed (`None`: recorded before the first wave).
    pub wave: Option<u16>,
    /// Its baseline's counters and scores.
    pub pool: Pool,
}

/// What a node should serve according to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The rollout's new version.
    New,
    /// The previous version.
    Previous,
}

/// Why a rollout could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The rollout has no id.
    #[error("the rollout id is empty")]
    EmptyId,
    /// `from` and `to` are the same digest.
    #[error("the new version has the same digest as the current one")]
    SameVersion,
    /// Break glass without a reason.
    #[error("break glass needs a non-empty reason and who pulled it")]
    BreakGlassWithoutReason,
    /// A reason longer than [`MAX_REASON_LEN`].
    #[error("the reason is longer than {MAX_REASON_LEN} bytes")]
    ReasonTooLong,
    /// A single-wave plan without the break-glass flag.
    #[error("a break-glass plan needs the break-glass flag with a reason")]
    BreakGlassPlanWithoutFlag,
    /// The break-glass flag with a staged plan.
    #[error("the break-glass flag needs a break-glass plan (one wave)")]
    FlagWithoutBreakGlassPlan,
}

// === impl RolloutPolicy ===

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            gates: GatePolicy::default(),
            tick_ms: DEFAULT_TICK_MS,
            hold_cap_ms: DEFAULT_HOLD_CAP_MS,
            rollback_timeout_ms: DEFAULT_ROLLBACK_TIMEOUT_MS,
            baseline_wait_ms: DEFAULT_BASELINE_WAIT_MS,
            watch_ms: DEFAULT_WATCH_MS,
            aftercare_ms: DEFAULT_AFTERCARE_MS,
            shadow: crate::gate::GateMode::Enforce,
        }
    }
}

// === impl Rollout ===

impl Rollout {
    /// A pending rollout, after checking the spec (break glass needs both the flag with a
    /// reason and a break-glass plan, and nothing else gets a one-wave plan by accident).
    pub fn new(spec: RolloutSpec, now_ms: u64) -> Result<Rollout, StartError> {
        if spec.id.trim().is_empty() {
            return Err(StartError::EmptyId);
        }
        if spec.from.is_some_and(|f| f.digest == spec.to.digest) {
            return Err(StartError::SameVersion);
        }
        match (&spec.break_glass, spec.plan.is_break_glass()) {
            (Some(bg), true) => {
                if bg.reason.trim().is_empty() || bg.by.trim().is_empty() {
                    return Err(StartError::BreakGlassWithoutReason);
                }
                if bg.reason.len() > MAX_REASON_LEN || bg.by.len() > MAX_REASON_LEN {
                    return Err(StartError::ReasonTooLong);
                }
            }
            (Some(_), false) => return Err(StartError::FlagWithoutBreakGlassPlan),
            (None, true) => return Err(StartError::BreakGlassPlanWithoutFlag),
            (None, false) => {}
        }
        Ok(Rollout {
            spec,
            status: Status {
                phase: Phase::Pending,
                report: None,
                reference: None,
                before: None,
                cause: None,
                bad: None,
                created_ms: now_ms,
                changed_ms: now_ms,
                observed: Vec::new(),
            },
        })
    }

    /// Takes a decision's status and returns its actions for the caller to carry out.
    pub fn apply(&mut self, decision: Decision) -> Vec<Action> {
        self.status = decision.status;
        decision.actions
    }

    /// The spec.
    pub fn spec(&self) -> &RolloutSpec {
        &self.spec
    }

    /// The status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.spec.plan
    }

    /// The policy.
    pub fn policy(&self) -> &RolloutPolicy {
        &self.spec.policy
    }

    /// The previous version.
    pub fn from(&self) -> Option<&ArtifactRef> {
        self.spec.from.as_ref()
    }

    /// The new version.
    pub fn to(&self) -> &ArtifactRef {
        &self.spec.to
    }

    /// The version this rollout blesses, if any: its new version once it succeeded (every
    /// wave passed, and the watch after them). The one place that says what a rollout
    /// blesses: the control plane's driver and the simulator's control plane both ask it,
    /// and hand the blessed versions to the edges, which promote a version to
    /// last-known-good only once it is blessed. A rollout watched with `watch_ms = 0`
    /// blesses as soon as its last wave passes (nothing watched it).
    pub fn blessing(&self) -> Option<&ArtifactRef> {
        match self.status.phase {
            Phase::Succeeded { .. } => Some(&self.spec.to),
            _ => None,
        }
    }

    /// Whether the rollout still acts (the control plane allows one active rollout per
    /// artifact kind): pending, baking, verifying, watching, paused or rolling back.
    pub fn is_active(&self) -> bool {
        matches!(
            self.status.phase,
            Phase::Pending
                | Phase::Baking { .. }
                | Phase::Verifying { .. }
                | Phase::Watching { .. }
                | Phase::Paused { .. }
                | Phase::RollingBack { .. }
        )
    }

    /// The digest this rollout marked bad, if any.
    pub fn marked_bad(&self) -> Option<&BadMark> {
        self.status.bad.as_ref()
    }

    /// Whether this rollout marked `digest` bad.
    pub fn is_bad(&self, digest: &Digest) -> bool {
        self.status
            .bad
            .as_ref()
            .is_some_and(|b| b.digest == *digest)
    }

    /// What node `idx` should serve now (the level the control plane hands out; the
    /// `SetDesired` actions are the edges of it): the new version in touched waves unless
    /// the rollout rolls or rolled back, the previous one everywhere else.
    pub fn desired(&self, idx: NodeIdx) -> Target {
        let touched = self.status.phase.touched(self.plan());
        let reverting = matches!(
            self.status.phase,
            Phase::RollingBack { .. } | Phase::RolledBack { .. } | Phase::Failed { .. }
        );
        match self.plan().wave_of(idx) {
            Some(w) if w < touched && !reverting => Target::New,
            _ => Target::Previous,
        }
    }

    /// [`desired`](Self::desired) as a version (`None`: the previous version is none).
    pub fn desired_version(&self, idx: NodeIdx) -> Option<&ArtifactRef> {
        match self.desired(idx) {
            Target::New => Some(&self.spec.to),
            Target::Previous => self.spec.from.as_ref(),
        }
    }
}

// === impl Phase ===

impl Phase {
    /// How many waves (from the first) have been told to take the new version.
    pub fn touched(&self, plan: &Plan) -> u16 {
        let raw = match *self {
            Phase::Pending => 0,
            Phase::Baking { wave, .. } | Phase::Verifying { wave, .. } => wave.saturating_add(1),
            Phase::Watching { .. } => u16::MAX,
            Phase::Paused { resume, .. } => resume.touched(),
            Phase::RollingBack { touched, .. }
            | Phase::Succeeded { touched, .. }
            | Phase::Aborted { touched, .. }
            | Phase::RolledBack { touched, .. }
            | Phase::Failed { touched, .. } => touched,
        };
        raw.min(plan.wave_count())
    }

    /// The window of the wave this phase is in, if it is in one (observations pool
    /// requests per window).
    pub fn window(&self) -> Option<Window> {
        match *self {
            Phase::Baking {
                wave, started_ms, ..
            }
            | Phase::Verifying {
                wave, started_ms, ..
            } => Some(Window { wave, started_ms }),
            Phase::Watching { since_ms, .. } => Some(Window {
                wave: WATCH_WINDOW,
                started_ms: since_ms,
            }),
            Phase::Paused { resume, .. } => resume.window(),
            _ => None,
        }
    }

    /// A short name (`baking`, `rolled_back`…).
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Baking { .. } => "baking",
            Phase::Verifying { .. } => "verifying",
            Phase::Watching { .. } => "watching",
            Phase::Paused { .. } => "paused",
            Phase::RollingBack { .. } => "rolling_back",
            Phase::Succeeded { .. } => "succeeded",
            Phase::Aborted { .. } => "aborted",
            Phase::RolledBack { .. } => "rolled_back",
            Phase::Failed { .. } => "failed",
        }
    }
}

// === impl Resume ===

impl Resume {
    /// Waves touched at the pause (every wave for a watch: [`Phase::touched`] caps it at the
    /// plan's).
    pub fn touched(self) -> u16 {
        match self {
            Resume::Pending => 0,
            Resume::Baking { wave, .. } | Resume::Verifying { wave, .. } => wave.saturating_add(1),
            Resume::Watching { .. } => u16::MAX,
        }
    }

    /// The window of the paused wave.
    pub fn window(self) -> Option<Window> {
        match self {
            Resume::Pending => None,
            Resume::Baking {
                wave, started_ms, ..
            }
            | Resume::Verifying { wave, started_ms } => Some(Window { wave, started_ms }),
            Resume::Watching { since_ms, .. } => Some(Window {
                wave: WATCH_WINDOW,
                started_ms: since_ms,
            }),
        }
    }
}
