//! The rampart rollout engine: a feature file reaches the fleet in waves by fault domain,
//! each wave baked and judged by health gates against nodes still on the previous version,
//! then the whole fleet watched against its record before the rollout
//! ([`Phase::Watching`]); a failed gate rolls every touched node back and marks the digest
//! bad. Deaths that nodes report are evidence: the death gate compares deaths per node-hour
//! on the new version with the previous one's.
//!
//! Pure: no I/O, no clock, no randomness but a seed in the plan policy. Time comes in as
//! `now_ms`, heartbeats as [`Beat`]s, operator input as [`Command`]s, so the control plane
//! and the fleet simulator run this same code (the simulator on a virtual clock).
//!
//! The one decision that matters: **the rollout is a level-driven reconcile.**
//! [`reconcile()`]`(&Rollout, &Observations, now_ms)` returns a [`Decision`] (the next
//! status, the actions, when to call again) and is a pure function of its inputs, so it can
//! be called on every heartbeat, after a crash, or twice, with the same result. A failure
//! in the observations becomes a rollback on the first call that sees it, whatever the
//! bake time left: that is what lets the control plane promise every node of a bad wave
//! back within two heartbeat intervals.
//!
//! # Layout
//! - [`plan`](mod@plan): [`Node`] inventory, [`PlanPolicy`], [`plan()`] into [`Wave`]s.
//! - [`observation`]: [`Beat`], [`Counters`], [`ScoreHistogram`], [`Observations`] pooled
//!   by version.
//! - [`stats`]: Kolmogorov–Smirnov and Mann–Whitney from histograms, two-proportion z, the
//!   conditional binomial test of two death rates ([`death_rate_test`]).
//! - [`gate`]: each gate as a pure function to a [`Verdict`]; [`GateReport`].
//! - [`rollout`]: [`Rollout`], [`RolloutSpec`], [`Status`], [`Phase`].
//! - [`reconcile`](mod@reconcile): [`reconcile()`], [`command()`], [`Decision`], [`Action`].
//! - [`runner`]: [`Run`] (a rollout with its observations: start, beat, step, command,
//!   final targets) and the [`Queue`] of waiting publications, one rollout per kind: the
//!   code the control plane's driver and the simulator both wrap.
//!
//! # Calling it
//! ```
//! use rampart_artifact::Digest;
//! use rampart_rollout::*;
//!
//! let nodes: Vec<Node> = (0..8)
//!     .map(|i| Node { id: format!("edge-{i}"), pop: format!("pop-{}", i / 2),
//!                     region: "eu".into(), canary: i == 0 })
//!     .collect();
//! let from = ArtifactRef { version: 1, digest: Digest::of(b"v1") };
//! let to = ArtifactRef { version: 2, digest: Digest::of(b"v2") };
//! let spec = RolloutSpec {
//!     id: "r-2".into(), from: Some(from), to,
//!     plan: plan(&nodes, &PlanPolicy::default())?,
//!     policy: RolloutPolicy::default(), break_glass: None,
//! };
//! let mut rollout = Rollout::new(spec, 0)?;
//! let mut obs = Observations::new(&rollout);
//! // Heartbeats arrive (here: one per node, every node on v1, 100 requests scored 90).
//! let mut scores = ScoreHistogram::new();
//! scores.add_to(90, 100);
//! let beat = Beat { active: Some(from.digest), apply: None,
//!                   counters: Counters { requests: 100, ..Counters::default() },
//!                   scores, restarts: 0, deaths: vec![] };
//! for node in rollout.plan().nodes() {
//!     obs.absorb(rollout.plan().index_of(&node.id).unwrap(), &beat, 1_000)?;
//! }
//! obs.sync(&rollout);
//! let decision = reconcile(&rollout, &obs, 1_000); // baseline seen: start the canary wave
//! let actions = rollout.apply(decision);
//! assert!(actions.iter().any(|a| matches!(a, Action::SetDesired { target: Target::New, .. })));
//! assert!(matches!(rollout.status().phase, Phase::Baking { wave: 0, .. }));
//! obs.sync(&rollout); // a new wave: a new window
//! // … every heartbeat: obs.absorb(idx, &beat, now)?; then
//! //   rollout.apply(reconcile(&rollout, &obs, now)), carry out the actions, obs.sync(&rollout).
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod gate;
pub mod observation;
pub mod plan;
pub mod reconcile;
pub mod rollout;
pub mod runner;
pub mod stats;

pub use gate::{
    BaselineKind, DeathLimits, DeathNumbers, Failure, Gate, GateMode, GateModes, GatePolicy,
    GateReport, HoldReason, Numbers, Overall, Verdict,
};
pub use observation::{
    Apply, Beat, BeatDeath, Counters, DeathTally, Exposure, NodeState, Observations, Pool,
    ScoreHistogram,
};
pub use plan::{Node, NodeIdx, Plan, PlanError, PlanPolicy, Wave, WaveShare, plan};
pub use reconcile::{
    Action, Actor, AuditRecord, Command, CommandError, Decision, Event, Operator, command,
    hold_for_shadow, reconcile,
};
pub use rollout::{
    ArtifactRef, BadMark, BreakGlass, DEFAULT_AFTERCARE_MS, DEFAULT_WATCH_MS, Phase, Rollout,
    RolloutPolicy, RolloutSpec, StartError, Status, Target, WouldHave,
};
pub use runner::{FinalTargets, Queue, Run, RunError, Start, Step};
pub use stats::{DeathTest, death_rate_test};
