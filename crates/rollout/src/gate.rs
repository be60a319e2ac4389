//! Health gates: each a pure function from observations to a [`Verdict`] with its numbers.
//!
//! Gates compare the nodes the rollout has touched (this wave and the earlier ones, on the
//! new version) with baseline nodes still on the previous version; during the watch after
//! the last wave, the whole fleet with its record before the rollout. Fail gates (NACK,
//! restarts, deaths, 5xx, module errors, score shift, and heartbeats or convergence past
//! their timeouts) stop the rollout at any moment, bake or not; hold gates (too little
//! traffic, nodes still switching, heartbeats late but not yet timed out) only keep a wave
//! from being promoted. The death gate alone counts over the whole rollout rather than the
//! wave: deaths are rare, and a rate needs the whole record.

use serde::{Deserialize, Serialize};

use crate::observation::{DeathTally, Observations, Pool, ScoreHistogram};
use crate::plan::{NodeIdx, Plan};
use crate::stats::{
    DeathTest, Ks, MannWhitney, death_rate_test, finite, ks_two_sample, mann_whitney,
    two_proportion_z, wilson_lower,
};

/// Requests the new version must have served (in the window) before a rate gate judges.
pub const DEFAULT_MIN_REQUESTS: u64 = 500;

/// 5xx: the new rate must exceed the baseline by at least this much (absolute share).
pub const DEFAULT_5XX_ABS_MARGIN: f64 = 0.005;

/// 5xx: … and by at least this much relative to the baseline rate (0.5 = 50% above).
pub const DEFAULT_5XX_REL_MARGIN: f64 = 0.5;

/// Module errors: absolute margin over the baseline rate.
pub const DEFAULT_MODULE_ERROR_ABS_MARGIN: f64 = 0.001;

/// Module errors: relative margin over the baseline rate.
pub const DEFAULT_MODULE_ERROR_REL_MARGIN: f64 = 0.5;

/// The confidence a rate gate needs, in standard errors (3.0 ≈ one-sided p 0.0013): the
/// new rate's Wilson lower bound at this z must clear both margins, and the two-proportion
/// z against the baseline must reach it, so a handful of errors on a small sample does not
/// fail a wave.
pub const DEFAULT_MIN_Z: f64 = 3.0;

/// Restarts a touched node may have in the window before the rollout fails: a restart
/// after a new config is how a crash loop starts.
pub const DEFAULT_MAX_RESTARTS_PER_NODE: u32 = 0;

/// Scored-or-unscored requests each side needs before the score-shift gate judges.
pub const DEFAULT_MIN_SCORES: u64 = 500;

/// Significance level of the KS test.
pub const DEFAULT_SHIFT_ALPHA: f64 = 0.001;

/// The smallest KS distance that fails, whatever the p-value: with a million requests a
/// tiny, harmless difference in traffic mix is "significant", so the effect size decides.
/// An "every score is 1" file gives D near 1 − (share of bots); healthy PoPs differ by a
/// few hundredths.
pub const DEFAULT_SHIFT_MIN_D: f64 = 0.1;

/// A node whose last heartbeat is older than this is missing (3 beats at 1 s).
pub const DEFAULT_HEARTBEAT_TIMEOUT_MS: u64 = 3_000;

/// A node missing for longer than this (since its last beat or the wave start, whichever
/// is later) fails the wave.
pub const DEFAULT_MISSING_FAIL_AFTER_MS: u64 = 30_000;

/// Share of touched nodes that may be missing without holding (rounded down: 0 for waves
/// under 100 nodes), so one dead machine does not stall a 660-node wave.
pub const DEFAULT_MAX_MISSING_SHARE: f64 = 0.01;

/// How long touched nodes may take to report the new version (or a NACK) after the wave
/// starts.
pub const DEFAULT_CONVERGE_TIMEOUT_MS: u64 = 30_000;

/// Deaths: the one-sided p-value (conditional binomial test of the two death rates) must
/// be below this.
pub const DEFAULT_DEATH_ALPHA: f64 = 0.001;

/// Deaths: at least this many deaths on the new version before the gate can fail, whatever
/// the p-value (one death on a version with little exposure proves nothing).
pub const DEFAULT_MIN_DEATHS: u64 = 3;

/// Deaths: the new version's deaths per node-hour must be at least this many times the
/// previous version's (unbounded when the previous version had none).
pub const DEFAULT_DEATH_MIN_RATIO: f64 = 3.0;

/// The most node ids a failure lists.
pub const MAX_LISTED_NODES: usize = 5;

/// Every gate threshold. Defaults are the `DEFAULT_*` constants of this module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatePolicy {
    /// See [`DEFAULT_MIN_REQUESTS`].
    pub min_requests: u64,
    /// The 5xx gate.
    pub errors_5xx: RateLimits,
    /// The module-error gate.
    pub module_errors: RateLimits,
    /// See [`DEFAULT_MAX_RESTARTS_PER_NODE`].
    pub max_restarts_per_node: u32,
    /// The score-shift gate.
    pub shift: ShiftLimits,
    /// See [`DEFAULT_HEARTBEAT_TIMEOUT_MS`].
    pub heartbeat_timeout_ms: u64,
    /// See [`DEFAULT_MISSING_FAIL_AFTER_MS`].
    pub missing_fail_after_ms: u64,
    /// See [`DEFAULT_MAX_MISSING_SHARE`].
    pub max_missing_share: f64,
    /// See [`DEFAULT_CONVERGE_TIMEOUT_MS`].
    pub converge_timeout_ms: u64,
    /// The death-correlation gate.
    pub deaths: DeathLimits,
    /// What each gate does with its verdict: act on it (the default), only record it, or
    /// nothing at all.
    pub modes: GateModes,
}

/// What a gate does with its verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMode {
    /// Its failures roll the rollout back and its holds keep a wave waiting.
    #[default]
    Enforce,
    /// It computes its verdict and numbers, and the rollout records what it would have done
    /// ([`Verdict::WouldFail`], [`Verdict::WouldHold`]); it never holds, pauses or rolls back.
    /// For trying a new threshold (or a new gate) on real rollouts before it acts.
    Observe,
    /// It is not computed ([`SkipReason::Off`]).
    Off,
}

/// The mode of every gate (policy file: `[rollout.gates.modes]`, e.g.
/// `score_shift = "observe"`); a gate not named enforces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateModes {
    /// [`Gate::Nack`].
    pub nack: GateMode,
    /// [`Gate::Restarts`].
    pub restarts: GateMode,
    /// [`Gate::Errors5xx`].
    pub errors_5xx: GateMode,
    /// [`Gate::ModuleErrors`].
    pub module_errors: GateMode,
    /// [`Gate::ScoreShift`].
    pub score_shift: GateMode,
    /// [`Gate::Heartbeat`].
    pub heartbeat: GateMode,
    /// [`Gate::Convergence`].
    pub convergence: GateMode,
    /// [`Gate::Deaths`] (also after the rollout: aftercare).
    pub deaths: GateMode,
}

/// Thresholds of the death-correlation gate: fail when deaths per node-hour on the new
/// version are above the previous version's with p below `alpha`, at least `min_deaths`
/// deaths, and a rate ratio of at least `min_ratio`. A policy file may set any subset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeathLimits {
    /// See [`DEFAULT_DEATH_ALPHA`].
    pub alpha: f64,
    /// See [`DEFAULT_MIN_DEATHS`].
    pub min_deaths: u64,
    /// See [`DEFAULT_DEATH_MIN_RATIO`].
    pub min_ratio: f64,
}

/// Thresholds of a rate gate: fail when the new rate is, with confidence `min_z`, above the
/// baseline by both margins.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimits {
    /// Absolute margin (share of requests).
    pub abs_margin: f64,
    /// Relative margin (fraction of the baseline rate).
    pub rel_margin: f64,
    /// Confidence in standard errors: for the Wilson lower bound of the new rate, and the
    /// minimum one-sided two-proportion z (when there is a baseline).
    pub min_z: f64,
}

/// Thresholds of the score-shift gate. A policy file may set any subset of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShiftLimits {
    /// See [`DEFAULT_MIN_SCORES`].
    pub min_scores: u64,
    /// See [`DEFAULT_SHIFT_ALPHA`].
    pub alpha: f64,
    /// See [`DEFAULT_SHIFT_MIN_D`].
    pub min_d: f64,
}

/// The gates, in the order a report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// A touched node refused the new version.
    Nack,
    /// A touched node restarted.
    Restarts,
    /// 5xx rate against the baseline. (Serialized `errors_5xx` like its policy field;
    /// `errors5xx`, serde's first spelling, is still read from stored rollouts.)
    #[serde(rename = "errors_5xx", alias = "errors5xx")]
    Errors5xx,
    /// Bot-module error rate against the baseline.
    ModuleErrors,
    /// Score distribution against the baseline.
    ScoreShift,
    /// Touched nodes stopped sending heartbeats.
    Heartbeat,
    /// Touched nodes did not report the new version in time.
    Convergence,
    /// Nodes on the new version die at a higher rate than nodes on the previous one.
    Deaths,
}

/// What one gate concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Healthy, with what was measured.
    Pass {
        /// The measurements.
        numbers: Numbers,
    },
    /// Not applicable to this rollout.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// Cannot judge yet; the wave waits.
    Hold {
        /// Why, with numbers.
        reason: HoldReason,
    },
    /// Unhealthy: the rollout rolls back.
    Fail(Failure),
    /// An observing gate ([`GateMode::Observe`]) failed: had it enforced, the rollout would
    /// have rolled back. Nothing happens but the record.
    WouldFail(Failure),
    /// An observing gate cannot judge yet: had it enforced, the wave would wait. The wave
    /// does not wait for it.
    WouldHold {
        /// Why, with numbers.
        reason: HoldReason,
    },
}

/// A failed gate: which, the numbers, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The gate.
    pub gate: Gate,
    /// What was measured.
    pub numbers: Numbers,
    /// One line that explains the numbers.
    pub explanation: String,
}

/// Measurements of a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Numbers {
    /// NACKs among touched nodes.
    Nack {
        /// Nodes that NACKed.
        nacked: u32,
        /// Up to [`MAX_LISTED_NODES`] of them.
        nodes: Vec<String>,
        /// The first one's issue codes.
        codes: Vec<String>,
    },
    /// Restarts among touched nodes.
    Restarts {
        /// Nodes that restarted.
        restarted: u32,
        /// Most restarts of one node.
        worst: u32,
        /// The threshold.
        allowed_per_node: u32,
        /// Up to [`MAX_LISTED_NODES`] of them.
        nodes: Vec<String>,
    },
    /// A rate against the baseline.
    Rate(RateNumbers),
    /// The score distribution against the baseline.
    Shift(ShiftNumbers),
    /// Heartbeats of touched nodes.
    Heartbeat {
        /// Nodes missing now.
        missing: u32,
        /// Nodes missing past the fail timeout.
        timed_out: u32,
        /// Missing nodes tolerated.
        allowed: u32,
        /// Longest time a node has been missing.
        longest_ms: u64,
        /// Up to [`MAX_LISTED_NODES`] of them.
        nodes: Vec<String>,
    },
    /// Deaths per node-hour on the new version against the previous one.
    Deaths(DeathNumbers),
    /// Touched nodes not yet on the new version.
    Convergence {
        /// Nodes that beat but do not serve the new version and did not NACK.
        pending: u32,
        /// Time since the wave started.
        waited_ms: u64,
        /// Up to [`MAX_LISTED_NODES`] of them.
        nodes: Vec<String>,
    },
}

/// A rate gate's measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateNumbers {
    /// Events (5xx or module errors) on the new version.
    pub new_events: u64,
    /// Requests on the new version.
    pub new_requests: u64,
    /// `new_events / new_requests`.
    pub new_rate: f64,
    /// Events on the baseline (0 without one).
    pub baseline_events: u64,
    /// Requests on the baseline (0 without one).
    pub baseline_requests: u64,
    /// The baseline rate (0 without one).
    pub baseline_rate: f64,
    /// One-sided two-proportion z, when there is a baseline.
    pub z: Option<f64>,
    /// The Wilson lower bound of the new rate at `limits.min_z`.
    pub new_rate_lower: f64,
    /// The thresholds applied.
    pub limits: RateLimits,
}

/// The death-correlation gate's measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeathNumbers {
    /// The test, with deaths and exposure on each version (`None`: a version had no
    /// exposure yet).
    pub test: Option<DeathTest>,
    /// Deaths on the new version (also without a test).
    pub new_deaths: u64,
    /// The thresholds applied.
    pub limits: DeathLimits,
}

/// The score-shift gate's measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShiftNumbers {
    /// Kolmogorov–Smirnov: D, p-value, where.
    pub ks: Ks,
    /// Mann–Whitney: the direction and size of the shift.
    pub mann_whitney: Option<MannWhitney>,
    /// Share of new requests unscored.
    pub unscored_new: f64,
    /// Share of baseline requests unscored.
    pub unscored_baseline: f64,
    /// The thresholds applied.
    pub limits: ShiftLimits,
}

/// Why a gate cannot judge yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum HoldReason {
    /// The new version has served too few requests.
    InsufficientRequests {
        /// Requests so far.
        have: u64,
        /// Requests needed.
        need: u64,
    },
    /// Too few scores on one side for the distribution test.
    InsufficientScores {
        /// New-version scores so far.
        new: u64,
        /// Baseline scores so far.
        baseline: u64,
        /// Needed on each side.
        need: u64,
    },
    /// Touched nodes still switching.
    Converging {
        /// Nodes not yet on the new version.
        pending: u32,
        /// Time since the wave started.
        waited_ms: u64,
    },
    /// More touched nodes missing than tolerated, not yet past the fail timeout.
    MissingHeartbeats {
        /// Missing nodes.
        missing: u32,
        /// Tolerated.
        allowed: u32,
    },
    /// The observations were built for another rollout or not synced to this wave
    /// ([`Observations::sync`]).
    ObservationsOutOfSync,
}

/// Why a gate does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// There is no previous version to compare with (the first version a fleet gets).
    NoPreviousVersion,
    /// The report was stored before this gate existed.
    NotMeasured,
    /// The policy turned the gate off ([`GateMode::Off`]).
    Off,
}

/// Which group the gates compared the new version with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// Nodes on the previous version in the wave's own PoPs.
    SamePop,
    /// Every node on the previous version.
    Fleet,
    /// The baseline recorded when an earlier wave passed (the last wave has no one left).
    Reference,
    /// None: no previous version, or no traffic on it.
    None,
}

/// Node counts over the touched waves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Touched nodes.
    pub nodes: u32,
    /// Serving the new version.
    pub on_new: u32,
    /// NACKed the new version.
    pub nacked: u32,
    /// Not yet switched (beating, no NACK).
    pub pending: u32,
    /// Heartbeats late.
    pub missing: u32,
    /// Restarted in the window.
    pub restarted: u32,
}

/// Every gate's verdict at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// When.
    pub at_ms: u64,
    /// The wave being judged (nodes of waves `0..=wave` are touched).
    pub wave: u16,
    /// What the rates and the distribution were compared with.
    pub baseline: BaselineKind,
    /// Node counts.
    pub progress: Progress,
    /// [`Gate::Nack`].
    pub nack: Verdict,
    /// [`Gate::Restarts`].
    pub restarts: Verdict,
    /// [`Gate::Errors5xx`].
    pub errors_5xx: Verdict,
    /// [`Gate::ModuleErrors`].
    pub module_errors: Verdict,
    /// [`Gate::ScoreShift`].
    pub score_shift: Verdict,
    /// [`Gate::Heartbeat`].
    pub heartbeat: Verdict,
    /// [`Gate::Convergence`].
    pub convergence: Verdict,
    /// [`Gate::Deaths`] (absent from reports stored before the gate existed).
    #[serde(default = "Verdict::not_measured")]
    pub deaths: Verdict,
}

/// The combined verdict of a report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Overall<'a> {
    /// Every gate passed or was skipped.
    Pass,
    /// No gate failed, at least one holds (the first, in report order).
    Hold(&'a HoldReason),
    /// A gate failed (the first, in report order).
    Fail(&'a Failure),
}

/// What the gates read: a rollout's touched waves at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The observations.
    pub obs: &'a Observations,
    /// Thresholds.
    pub policy: &'a GatePolicy,
    /// The wave being judged.
    pub wave: u16,
    /// When it started.
    pub wave_started_ms: u64,
    /// Now.
    pub now_ms: u64,
    /// Whether there is a previous version (else no baseline exists).
    pub has_previous: bool,
    /// The baseline recorded when an earlier wave passed.
    pub reference: Option<&'a Pool>,
}

/// One pass over the touched nodes, counting what the per-node gates need.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Node counts.
    pub progress: Progress,
    /// Nodes missing past the fail timeout.
    pub timed_out: u32,
    /// Longest time a node has been missing.
    pub longest_missing_ms: u64,
    /// Most restarts of one node.
    pub worst_restarts: u32,
    /// Examples of NACKed nodes.
    pub nacked_nodes: Listed,
    /// Examples of restarted nodes.
    pub restarted_nodes: Listed,
    /// Examples of missing nodes.
    pub missing_nodes: Listed,
    /// Examples of pending nodes.
    pub pending_nodes: Listed,
}

/// Up to [`MAX_LISTED_NODES`] node indices, without allocating.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listed {
    items: [Option<NodeIdx>; MAX_LISTED_NODES],
}

/// Evaluates every gate.
pub fn evaluate(ctx: &Context<'_>) -> GateReport {
    let mut report = evaluate_all(ctx);
    report.apply_modes(&ctx.policy.modes);
    report
}

/// Every gate, each as if it enforced.
fn evaluate_all(ctx: &Context<'_>) -> GateReport {
    let tally = Tally::count(ctx);
    let (baseline_kind, baseline) = choose_baseline(ctx);
    let new = ctx.obs.new_pool();
    let min = ctx.policy.min_requests;
    let rate_base = |f: fn(&Pool) -> u64| baseline.map(|b| (f(b), b.counters.requests));
    GateReport {
        at_ms: ctx.now_ms,
        wave: ctx.wave,
        baseline: baseline_kind,
        progress: tally.progress,
        nack: nack_gate(&tally, ctx.plan, ctx.obs),
        restarts: restart_gate(&tally, ctx.plan, ctx.policy.max_restarts_per_node),
        errors_5xx: rate_gate(
            Gate::Errors5xx,
            (new.counters.errors_5xx, new.counters.requests),
            rate_base(|p| p.counters.errors_5xx),
            &ctx.policy.errors_5xx,
            min,
        ),
        module_errors: rate_gate(
            Gate::ModuleErrors,
            (new.counters.module_errors, new.counters.requests),
            rate_base(|p| p.counters.module_errors),
            &ctx.policy.module_errors,
            min,
        ),
        score_shift: if ctx.has_previous {
            shift_gate(
                &new.scores,
                baseline.map_or(&EMPTY_HISTOGRAM, |b| &b.scores),
                &ctx.policy.shift,
            )
        } else {
            Verdict::Skipped {
                reason: SkipReason::NoPreviousVersion,
            }
        },
        heartbeat: heartbeat_gate(&tally, ctx.plan, ctx.policy),
        convergence: convergence_gate(
            &tally,
            ctx.plan,
            ctx.now_ms.saturating_sub(ctx.wave_started_ms),
            ctx.policy.converge_timeout_ms,
        ),
        deaths: if ctx.has_previous {
            death_gate(ctx.obs.deaths(), &ctx.policy.deaths)
        } else {
            Verdict::Skipped {
                reason: SkipReason::NoPreviousVersion,
            }
        },
    }
}

/// What an absent baseline's scores look like.
const EMPTY_HISTOGRAM: ScoreHistogram = ScoreHistogram::new();

/// The first baseline with enough requests among the same-PoP one, the fleet one and the
/// recorded reference; else the largest non-empty one.
fn choose_baseline<'a>(ctx: &Context<'a>) -> (BaselineKind, Option<&'a Pool>) {
    if !ctx.has_previous {
        return (BaselineKind::None, None);
    }
    let candidates = [
        (BaselineKind::SamePop, Some(ctx.obs.same_pop_baseline())),
        (BaselineKind::Fleet, Some(ctx.obs.fleet_baseline())),
        (BaselineKind::Reference, ctx.reference),
    ];
    let enough = candidates.iter().find_map(|(kind, pool)| {
        pool.filter(|p| p.counters.requests >= ctx.policy.min_requests)
            .map(|p| (*kind, Some(p)))
    });
    enough.unwrap_or_else(|| {
        candidates
            .iter()
            .filter_map(|(kind, pool)| pool.map(|p| (*kind, p)))
            .filter(|(_, p)| p.counters.requests > 0 || p.scores.total() > 0)
            .max_by_key(|(_, p)| p.counters.requests)
            .map_or((BaselineKind::None, None), |(k, p)| (k, Some(p)))
    })
}

/// Fails if any touched node NACKed the new version.
pub fn nack_gate(tally: &Tally, plan: &Plan, obs: &Observations) -> Verdict {
    let nacked = tally.progress.nacked;
    let nodes = tally.nacked_nodes.ids(plan);
    let codes = tally
        .nacked_nodes
        .iter()
        .next()
        .and_then(|i| obs.node(i))
        .and_then(|n| n.nack.clone())
        .unwrap_or_default();
    let numbers = Numbers::Nack {
        nacked,
        nodes,
        codes,
    };
    if nacked == 0 {
        return Verdict::Pass { numbers };
    }
    let explanation = match &numbers {
        Numbers::Nack { nodes, codes, .. } => format!(
            "{nacked} of {} touched nodes refused the new version (first: {}, issues: {})",
            tally.progress.nodes,
            nodes.first().map_or("?", String::as_str),
            if codes.is_empty() {
                "none reported".to_owned()
            } else {
                codes.join(", ")
            }
        ),
        _ => String::new(),
    };
    Verdict::Fail(Failure {
        gate: Gate::Nack,
        numbers,
        explanation,
    })
}

/// Fails if a touched node restarted more than `allowed_per_node` times in the window.
pub fn restart_gate(tally: &Tally, plan: &Plan, allowed_per_node: u32) -> Verdict {
    let numbers = Numbers::Restarts {
        restarted: tally.progress.restarted,
        worst: tally.worst_restarts,
        allowed_per_node,
        nodes: if tally.worst_restarts > allowed_per_node {
            tally.restarted_nodes.ids(plan)
        } else {
            Vec::new()
        },
    };
    if tally.worst_restarts <= allowed_per_node {
        return Verdict::Pass { numbers };
    }
    let explanation = format!(
        "{} touched nodes restarted since the wave started, one {} times (allowed {allowed_per_node})",
        tally.progress.restarted, tally.worst_restarts
    );
    Verdict::Fail(Failure {
        gate: Gate::Restarts,
        numbers,
        explanation,
    })
}

/// Compares a rate on the new version, `(events, requests)`, with a baseline's. Holds under
/// `min_requests`; fails when the new rate's Wilson lower bound at `min_z` is above the
/// baseline rate by both margins and the two-proportion z reaches `min_z` (without a
/// baseline, the lower bound must clear the absolute margin alone).
pub fn rate_gate(
    gate: Gate,
    new: (u64, u64),
    baseline: Option<(u64, u64)>,
    limits: &RateLimits,
    min_requests: u64,
) -> Verdict {
    let (new_events, new_requests) = (new.0.min(new.1), new.1);
    if new_requests < min_requests {
        return Verdict::Hold {
            reason: HoldReason::InsufficientRequests {
                have: new_requests,
                need: min_requests,
            },
        };
    }
    let new_rate = ratio(new_events, new_requests);
    let (baseline_events, baseline_requests) = baseline
        .filter(|b| b.1 > 0)
        .map_or((0, 0), |(e, n)| (e.min(n), n));
    let baseline_rate = ratio(baseline_events, baseline_requests);
    let z = (baseline_requests > 0)
        .then(|| two_proportion_z(new_events, new_requests, baseline_events, baseline_requests))
        .flatten();
    let lower = wilson_lower(new_events, new_requests, limits.min_z).unwrap_or(0.0);
    let numbers = RateNumbers {
        new_events,
        new_requests,
        new_rate,
        baseline_events,
        baseline_requests,
        baseline_rate,
        z,
        new_rate_lower: lower,
        limits: *limits,
    };
    let above = lower > baseline_rate + limits.abs_margin
        && lower > baseline_rate * (1.0 + limits.rel_margin)
        && z.is_none_or(|z| z >= limits.min_z);
    if !above {
        return Verdict::Pass {
            numbers: Numbers::Rate(numbers),
        };
    }
    let what = match gate {
        Gate::ModuleErrors => "module error",
        _ => "5xx",
    };
    let explanation = format!(
        "{what} rate {:.3}% ({new_events} of {new_requests}; at least {:.3}% at {} sigma) \
         against {:.3}% on the baseline ({baseline_events} of {baseline_requests}); margins \
         {:.3}% and +{:.0}%{}",
        new_rate * 100.0,
        lower * 100.0,
        limits.min_z,
        baseline_rate * 100.0,
        limits.abs_margin * 100.0,
        limits.rel_margin * 100.0,
        z.map_or_else(String::new, |z| format!(", z = {z:.1}"))
    );
    Verdict::Fail(Failure {
        gate,
        numbers: Numbers::Rate(numbers),
        explanation,
    })
}

/// Compares the new version's score distribution with the baseline's: fails when the KS
/// distance is at least `min_d` and significant at `alpha`; holds under `min_scores` on
/// either side.
pub fn shift_gate(
    new: &ScoreHistogram,
    baseline: &ScoreHistogram,
    limits: &ShiftLimits,
) -> Verdict {
    let (n_new, n_base) = (new.total(), baseline.total());
    let hold = Verdict::Hold {
        reason: HoldReason::InsufficientScores {
            new: n_new,
            baseline: n_base,
            need: limits.min_scores,
        },
    };
    if n_new < limits.min_scores || n_base < limits.min_scores {
        return hold;
    }
    let Some(ks) = ks_two_sample(new, baseline) else {
        return hold;
    };
    let mw = mann_whitney(new, baseline);
    let numbers = ShiftNumbers {
        ks,
        mann_whitney: mw,
        unscored_new: ratio(new.unscored(), n_new),
        unscored_baseline: ratio(baseline.unscored(), n_base),
        limits: *limits,
    };
    if ks.d < limits.min_d || ks.p_value > limits.alpha {
        return Verdict::Pass {
            numbers: Numbers::Shift(numbers),
        };
    }
    let direction = if ks.cdf_new > ks.cdf_baseline {
        "down (towards bot or unscored)"
    } else {
        "up (towards human)"
    };
    let at = match ks.at_bucket {
        0 => "unscored".to_owned(),
        s => format!("score {s}"),
    };
    let p = if ks.p_value < 1e-300 {
        "< 1e-300".to_owned()
    } else {
        format!("= {:.1e}", ks.p_value)
    };
    let explanation = format!(
        "score distribution shifted {direction}: KS D = {:.3} (fails from {:.3}), p {p} \
         (fails below {}); {:.1}% of new against {:.1}% of baseline requests at or below {at}; \
         unscored {:.1}% against {:.1}%{}",
        ks.d,
        limits.min_d,
        limits.alpha,
        ks.cdf_new * 100.0,
        ks.cdf_baseline * 100.0,
        numbers.unscored_new * 100.0,
        numbers.unscored_baseline * 100.0,
        mw.map_or_else(String::new, |m| format!(
            "; Mann-Whitney AUC {:.3} (0.5 = no shift)",
            m.auc
        ))
    );
    Verdict::Fail(Failure {
        gate: Gate::ScoreShift,
        numbers: Numbers::Shift(numbers),
        explanation,
    })
}

/// Holds while more touched nodes than tolerated are missing; fails when more than
/// tolerated are missing past the timeout.
pub fn heartbeat_gate(tally: &Tally, plan: &Plan, policy: &GatePolicy) -> Verdict {
    let allowed = allowed_missing(tally.progress.nodes, policy.max_missing_share);
    let missing = tally.progress.missing;
    let numbers = Numbers::Heartbeat {
        missing,
        timed_out: tally.timed_out,
        allowed,
        longest_ms: tally.longest_missing_ms,
        nodes: if missing > allowed {
            tally.missing_nodes.ids(plan)
        } else {
            Vec::new()
        },
    };
    if tally.timed_out > allowed {
        let explanation = format!(
            "{} touched nodes sent no heartbeat for over {} ms (longest {} ms; {allowed} tolerated)",
            tally.timed_out, policy.missing_fail_after_ms, tally.longest_missing_ms
        );
        return Verdict::Fail(Failure {
            gate: Gate::Heartbeat,
            numbers,
            explanation,
        });
    }
    if missing > allowed {
        return Verdict::Hold {
            reason: HoldReason::MissingHeartbeats { missing, allowed },
        };
    }
    Verdict::Pass { numbers }
}

/// Holds while touched nodes have not switched; fails once they took longer than
/// `timeout_ms` since the wave started.
pub fn convergence_gate(tally: &Tally, plan: &Plan, waited_ms: u64, timeout_ms: u64) -> Verdict {
    let pending = tally.progress.pending;
    let numbers = Numbers::Convergence {
        pending,
        waited_ms,
        nodes: if pending > 0 {
            tally.pending_nodes.ids(plan)
        } else {
            Vec::new()
        },
    };
    if pending == 0 {
        return Verdict::Pass { numbers };
    }
    if waited_ms >= timeout_ms {
        let explanation = format!(
            "{pending} touched nodes still do not serve the new version {waited_ms} ms after \
             the wave started (timeout {timeout_ms} ms) and reported no NACK"
        );
        return Verdict::Fail(Failure {
            gate: Gate::Convergence,
            numbers,
            explanation,
        });
    }
    Verdict::Hold {
        reason: HoldReason::Converging { pending, waited_ms },
    }
}

/// Compares deaths per node-hour on the new version with the previous version's (the
/// conditional binomial test, [`death_rate_test`]): fails when p < `alpha`, the new version
/// has at least `min_deaths` deaths and its rate is at least `min_ratio` times the previous
/// one's. Passes (with its numbers) otherwise: too few deaths is not a reason to hold.
pub fn death_gate(tally: &DeathTally, limits: &DeathLimits) -> Verdict {
    let (new, previous) = (tally.new, tally.previous);
    let test = death_rate_test(
        new.deaths,
        new.exposure_ms,
        previous.deaths,
        previous.exposure_ms,
    );
    let numbers = DeathNumbers {
        test,
        new_deaths: new.deaths,
        limits: *limits,
    };
    let Some(t) = test else {
        return Verdict::Pass {
            numbers: Numbers::Deaths(numbers),
        };
    };
    let fails = t.p_value < limits.alpha
        && t.new_deaths >= limits.min_deaths
        && t.rate_ratio.is_none_or(|r| r >= limits.min_ratio);
    if !fails {
        return Verdict::Pass {
            numbers: Numbers::Deaths(numbers),
        };
    }
    let explanation = format!(
        "nodes on the new version died {} times in {:.2} node-hours ({:.2} per node-hour) \
         against {} in {:.2} node-hours ({:.2} per node-hour) on the previous version; rate \
         ratio {} (fails from {}), p = {:.1e} (fails below {}, at least {} deaths)",
        t.new_deaths,
        t.new_exposure_ms as f64 / 3_600_000.0,
        t.new_per_node_hour,
        t.previous_deaths,
        t.previous_exposure_ms as f64 / 3_600_000.0,
        t.previous_per_node_hour,
        t.rate_ratio
            .map_or_else(|| "unbounded".to_owned(), |r| format!("{r:.1}")),
        limits.min_ratio,
        t.p_value,
        limits.alpha,
        limits.min_deaths,
    );
    Verdict::Fail(Failure {
        gate: Gate::Deaths,
        numbers: Numbers::Deaths(numbers),
        explanation,
    })
}

/// Missing nodes tolerated among `nodes`.
fn allowed_missing(nodes: u32, share: f64) -> u32 {
    let a = (f64::from(nodes) * share.clamp(0.0, 1.0)).floor();
    if a >= f64::from(u32::MAX) {
        u32::MAX
    } else if a > 0.0 {
        a as u32
    } else {
        0
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        finite(a as f64 / b as f64)
    }
}

// === impl GatePolicy ===

impl Default for ShiftLimits {
    fn default() -> Self {
        ShiftLimits {
            min_scores: DEFAULT_MIN_SCORES,
            alpha: DEFAULT_SHIFT_ALPHA,
            min_d: DEFAULT_SHIFT_MIN_D,
        }
    }
}

impl Default for DeathLimits {
    fn default() -> Self {
        DeathLimits {
            alpha: DEFAULT_DEATH_ALPHA,
            min_deaths: DEFAULT_MIN_DEATHS,
            min_ratio: DEFAULT_DEATH_MIN_RATIO,
        }
    }
}

impl Default for GatePolicy {
    fn default() -> Self {
        GatePolicy {
            min_requests: DEFAULT_MIN_REQUESTS,
            errors_5xx: RateLimits {
                abs_margin: DEFAULT_5XX_ABS_MARGIN,
                rel_margin: DEFAULT_5XX_REL_MARGIN,
                min_z: DEFAULT_MIN_Z,
            },
            module_errors: RateLimits {
                abs_margin: DEFAULT_MODULE_ERROR_ABS_MARGIN,
                rel_margin: DEFAULT_MODULE_ERROR_REL_MARGIN,
                min_z: DEFAULT_MIN_Z,
            },
            max_restarts_per_node: DEFAULT_MAX_RESTARTS_PER_NODE,
            shift: ShiftLimits::default(),
            heartbeat_timeout_ms: DEFAULT_HEARTBEAT_TIMEOUT_MS,
            missing_fail_after_ms: DEFAULT_MISSING_FAIL_AFTER_MS,
            max_missing_share: DEFAULT_MAX_MISSING_SHARE,
            converge_timeout_ms: DEFAULT_CONVERGE_TIMEOUT_MS,
            deaths: DeathLimits::default(),
            modes: GateModes::default(),
        }
    }
}

// === impl GateModes ===

impl GateModes {
    /// The mode of `gate`.
    pub fn of(&self, gate: Gate) -> GateMode {
        match gate {
            Gate::Nack => self.nack,
            Gate::Restarts => self.restarts,
            Gate::Errors5xx => self.errors_5xx,
            Gate::ModuleErrors => self.module_errors,
            Gate::ScoreShift => self.score_shift,
            Gate::Heartbeat => self.heartbeat,
            Gate::Convergence => self.convergence,
            Gate::Deaths => self.deaths,
        }
    }

    /// The gates that do not enforce, with their mode, in report order.
    pub fn relaxed(&self) -> Vec<(Gate, GateMode)> {
        Gate::ALL
            .into_iter()
            .map(|g| (g, self.of(g)))
            .filter(|(_, m)| *m != GateMode::Enforce)
            .collect()
    }
}

// === impl GateMode ===

impl GateMode {
    /// `verdict` as a gate in this mode gives it: unchanged when enforcing; a failure or a
    /// hold turned into what it would have been when observing; skipped when off.
    pub fn apply(self, verdict: Verdict) -> Verdict {
        match (self, verdict) {
            (GateMode::Enforce, v) => v,
            (GateMode::Off, _) => Verdict::Skipped {
                reason: SkipReason::Off,
            },
            (GateMode::Observe, Verdict::Fail(f)) => Verdict::WouldFail(f),
            (GateMode::Observe, Verdict::Hold { reason }) => Verdict::WouldHold { reason },
            (GateMode::Observe, v) => v,
        }
    }
}

// === impl Gate ===

impl Gate {
    /// Every gate, in the order a report lists them.
    pub const ALL: [Gate; 8] = [
        Gate::Nack,
        Gate::Restarts,
        Gate::Errors5xx,
        Gate::ModuleErrors,
        Gate::ScoreShift,
        Gate::Heartbeat,
        Gate::Convergence,
        Gate::Deaths,
    ];

    /// Which failure names a rollback when several gates fail at once: report order, but
    /// restarts before NACKs. A node that crash-loops on a version poisons it (the edge's
    /// sentinel) and then refuses it (`poisoned`) a few milliseconds after the heartbeat
    /// that reported the restart; that NACK is the consequence, the restarts the cause.
    /// Deaths come right after restarts: the same evidence, pooled over the fleet and
    /// weighed against the previous version.
    pub const FAILURE_PRECEDENCE: [Gate; 8] = [
        Gate::Restarts,
        Gate::Deaths,
        Gate::Nack,
        Gate::Errors5xx,
        Gate::ModuleErrors,
        Gate::ScoreShift,
        Gate::Heartbeat,
        Gate::Convergence,
    ];

    /// Its stable key, as it is serialized (`errors_5xx`, `score_shift`, …): the one name
    /// the API, the dashboard and the replay's report use.
    pub fn key(self) -> &'static str {
        match self {
            Gate::Nack => "nack",
            Gate::Restarts => "restarts",
            Gate::Errors5xx => "errors_5xx",
            Gate::ModuleErrors => "module_errors",
            Gate::ScoreShift => "score_shift",
            Gate::Heartbeat => "heartbeat",
            Gate::Convergence => "convergence",
            Gate::Deaths => "deaths",
        }
    }

    /// Whether a failure of this gate is evidence against the artifact itself, so its digest
    /// is marked bad. Missing heartbeats and slow convergence roll back without marking: a
    /// dead machine or a partition says nothing certain about the file.
    pub fn marks_bad(self) -> bool {
        !matches!(self, Gate::Heartbeat | Gate::Convergence)
    }
}

// === impl Verdict ===

impl Verdict {
    /// What a report stored before a gate existed says for it.
    pub fn not_measured() -> Verdict {
        Verdict::Skipped {
            reason: SkipReason::NotMeasured,
        }
    }

    /// The failure, if this verdict is one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Verdict::Fail(f) => Some(f),
            _ => None,
        }
    }

    /// What an observing gate would have failed on, if this verdict is that.
    pub fn would_fail(&self) -> Option<&Failure> {
        match self {
            Verdict::WouldFail(f) => Some(f),
            _ => None,
        }
    }

    /// The hold reason, if this verdict is one.
    pub fn hold(&self) -> Option<&HoldReason> {
        match self {
            Verdict::Hold { reason } => Some(reason),
            _ => None,
        }
    }
}

// === impl GateReport ===

impl GateReport {
    /// A report where every gate holds for `reason` (nothing could be measured).
    pub fn holding(at_ms: u64, wave: u16, reason: HoldReason) -> Self {
        let hold = || Verdict::Hold { reason };
        GateReport {
            at_ms,
            wave,
            baseline: BaselineKind::None,
            progress: Progress::default(),
            nack: hold(),
            restarts: hold(),
            errors_5xx: hold(),
            module_errors: hold(),
            score_shift: hold(),
            heartbeat: hold(),
            convergence: hold(),
            deaths: hold(),
        }
    }

    /// Gives each verdict the mode its gate has in `modes` ([`GateMode::apply`]).
    pub fn apply_modes(&mut self, modes: &GateModes) {
        for (gate, verdict) in self.verdicts_mut() {
            let v = std::mem::replace(verdict, Verdict::not_measured());
            *verdict = modes.of(gate).apply(v);
        }
    }

    /// What observing gates would have failed on, in report order.
    pub fn would_fail(&self) -> impl Iterator<Item = &Failure> {
        self.verdicts()
            .into_iter()
            .filter_map(|(_, v)| v.would_fail())
    }

    fn verdicts_mut(&mut self) -> [(Gate, &mut Verdict); 8] {
        [
            (Gate::Nack, &mut self.nack),
            (Gate::Restarts, &mut self.restarts),
            (Gate::Errors5xx, &mut self.errors_5xx),
            (Gate::ModuleErrors, &mut self.module_errors),
            (Gate::ScoreShift, &mut self.score_shift),
            (Gate::Heartbeat, &mut self.heartbeat),
            (Gate::Convergence, &mut self.convergence),
            (Gate::Deaths, &mut self.deaths),
        ]
    }

    /// The verdicts in report order.
    pub fn verdicts(&self) -> [(Gate, &Verdict); 8] {
        [
            (Gate::Nack, &self.nack),
            (Gate::Restarts, &self.restarts),
            (Gate::Errors5xx, &self.errors_5xx),
            (Gate::ModuleErrors, &self.module_errors),
            (Gate::ScoreShift, &self.score_shift),
            (Gate::Heartbeat, &self.heartbeat),
            (Gate::Convergence, &self.convergence),
            (Gate::Deaths, &self.deaths),
        ]
    }

    /// The combined verdict: the first failure in [`Gate::FAILURE_PRECEDENCE`], else the
    /// first hold in report order, else pass.
    pub fn overall(&self) -> Overall<'_> {
        let verdicts = self.verdicts();
        let failed = |gate: Gate| {
            verdicts
                .iter()
                .find(|(g, _)| *g == gate)
                .and_then(|(_, v)| v.failure())
        };
        if let Some(f) = Gate::FAILURE_PRECEDENCE.into_iter().find_map(failed) {
            return Overall::Fail(f);
        }
        if let Some(h) = verdicts.iter().find_map(|(_, v)| v.hold()) {
            return Overall::Hold(h);
        }
        Overall::Pass
    }
}

// === impl Tally ===

impl Tally {
    /// Counts the nodes of waves `0..=ctx.wave`.
    pub fn count(ctx: &Context<'_>) -> Tally {
        let mut t = Tally::default();
        let to = ctx.obs.to();
        let policy = ctx.policy;
        for idx in ctx.plan.touched(ctx.wave.saturating_add(1)) {
            t.progress.nodes = t.progress.nodes.saturating_add(1);
            let Some(node) = ctx.obs.node(idx) else {
                continue;
            };
            if node.nack.is_some() {
                t.progress.nacked += 1;
                t.nacked_nodes.push(idx);
            }
            if node.restarts > 0 {
                t.progress.restarted += 1;
                t.worst_restarts = t.worst_restarts.max(node.restarts);
                if node.restarts > policy.max_restarts_per_node {
                    t.restarted_nodes.push(idx);
                }
            }
            // A node is late from its last beat or from the wave start, whichever is later:
            // a node that was already silent gets the full timeout in each wave.
            let since = node.last_heartbeat_ms.unwrap_or(0).max(ctx.wave_started_ms);
            let silent = ctx.now_ms.saturating_sub(since);
            if silent > policy.heartbeat_timeout_ms {
                t.progress.missing += 1;
                t.missing_nodes.push(idx);
                t.longest_missing_ms = t.longest_missing_ms.max(silent);
                if silent > policy.missing_fail_after_ms {
                    t.timed_out += 1;
                }
                continue;
            }
            if node.active == Some(to) {
                t.progress.on_new += 1;
            } else if node.nack.is_none() {
                t.progress.pending += 1;
                t.pending_nodes.push(idx);
            }
        }
        t
    }
}

// === impl Listed ===

impl Listed {
    /// Adds a node if there is room.
    pub fn push(&mut self, idx: NodeIdx) {
        if let Some(slot) = self.items.iter_mut().find(|s| s.is_none()) {
            *slot = Some(idx);
        }
    }

    /// The nodes listed.
    pub fn iter(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        self.items.iter().flatten().copied()
    }

    /// Their ids.
    pub fn ids(&self, plan: &Plan) -> Vec<String> {
        self.iter()
            .filter_map(|i| plan.node(i).map(|n| n.id.clone()))
            .collect()
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn a_policy_may_set_part_of_the_shift_limits() {
        let p: GatePolicy = serde_json::from_str(r#"{"shift":{"min_d":0.2}}"#).unwrap();
        assert_eq!(p.shift.min_d, 0.2);
        assert_eq!(p.shift.alpha, DEFAULT_SHIFT_ALPHA);
        assert_eq!(p.shift.min_scores, DEFAULT_MIN_SCORES);
    }

    #[test]
    fn a_gates_key_is_its_serialized_name() {
        for gate in Gate::ALL {
            assert_eq!(serde_json::to_value(gate).unwrap(), gate.key());
            let back: Gate = serde_json::from_value(gate.key().into()).unwrap();
            assert_eq!(back, gate);
        }
        let old: Gate = serde_json::from_str("\"errors5xx\"").unwrap();
        assert_eq!(old, Gate::Errors5xx);
    }

    #[test]
    fn restarts_are_named_before_the_poisoned_nack_they_cause() {
        let mut precedence = Gate::FAILURE_PRECEDENCE.to_vec();
        precedence.sort_by_key(|g| Gate::ALL.iter().position(|a| a == g));
        assert_eq!(precedence, Gate::ALL, "every gate, once");

        let mut report = GateReport::holding(0, 0, HoldReason::ObservationsOutOfSync);
        report.nack = Verdict::Fail(Failure {
            gate: Gate::Nack,
            numbers: Numbers::Nack {
                nacked: 1,
                nodes: vec!["fra-1".into()],
                codes: vec!["poisoned".into()],
            },
            explanation: "refused".into(),
        });
        assert!(matches!(report.overall(), Overall::Fail(f) if f.gate == Gate::Nack));
        report.restarts = Verdict::Fail(Failure {
            gate: Gate::Restarts,
            numbers: Numbers::Restarts {
                restarted: 1,
                worst: 3,
                allowed_per_node: 2,
                nodes: vec!["fra-1".into()],
            },
            explanation: "restarted".into(),
        });
        assert!(matches!(report.overall(), Overall::Fail(f) if f.gate == Gate::Restarts));
    }
}
