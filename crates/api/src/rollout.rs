//! Rollouts as operators drive and see them.

use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

use crate::heartbeat::Active;
use crate::limits::{MAX_BAKE_MS, MAX_REASON_LEN, MAX_WATCH_MS};
use crate::{Invalid, check_text};

/// Start a rollout of a stored artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRollout {
    /// The artifact to roll out (published first).
    pub digest: Digest,
    /// Why (required with `break_glass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Push to the whole fleet at once, skipping waves and gates. The artifact is still
    /// verified and validated; the push is audited with its reason. For when the staged path
    /// is itself the problem (a bad version everywhere, a known-good one to restore).
    #[serde(default)]
    pub break_glass: bool,
    /// Bake time of every wave, in ms, instead of the plan's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_ms: Option<u64>,
    /// How long the whole fleet is watched after the last wave, in ms, instead of the
    /// policy's (0: no watch; the version is blessed as soon as the last wave passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_ms: Option<u64>,
}

/// An operator command on a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutCommand {
    /// End the current wave's bake now and move on (its gates still have to pass).
    Promote,
    /// Hold where it stands: no new wave starts.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Stop; nodes already moved keep the new version.
    Abort,
    /// Stop, and move every node the rollout touched back to the previous version.
    Rollback,
}

/// The body of a command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutAction {
    /// Why (goes to the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `rollback`: also mark the digest bad, so it can be neither published nor rolled
    /// out again. Gates that fail mark it bad on their own.
    #[serde(default)]
    pub mark_bad: bool,
}

/// A rollout, as status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutView {
    /// Its id.
    pub id: u64,
    /// The artifact kind.
    pub kind: String,
    /// What is rolled out.
    pub target: Active,
    /// What it replaces (the fleet's version when it started), if anything.
    pub previous: Option<Active>,
    /// `running`, `paused`, `succeeded`, `rolled_back`, `aborted`, `failed`.
    pub phase: String,
    /// Whether the phase is final.
    pub done: bool,
    /// A break-glass push.
    pub break_glass: bool,
    /// Why it was started.
    pub reason: Option<String>,
    /// Who started it.
    pub started_by: String,
    /// When, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_at_ms: u64,
    /// The wave in progress (index into `waves`).
    pub current_wave: Option<usize>,
    /// The plan, with each wave's progress.
    pub waves: Vec<WaveView>,
    /// The latest gate evaluations, with their numbers.
    pub gates: Vec<GateView>,
    /// Why it ended (a failed gate with its numbers, an operator's reason).
    pub outcome: Option<String>,
    /// What gates in `observe` mode would have done: the first failure of each, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<ObservedView>,
    /// The rollout machine's whole state, for tools.
    pub state: serde_json::Value,
}

/// One wave of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveView {
    /// Position, from 0.
    pub index: usize,
    /// Its name (`canary`, `10%`…).
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<String>,
    /// `pending`, `rolling`, `baking`, `passed`, `failed`, `rolled_back`.
    pub phase: String,
    /// Nodes that ACKed and serve the target.
    pub acked: usize,
    /// Nodes that NACKed it.
    pub nacked: usize,
    /// Bake time, ms.
    pub bake_ms: u64,
    /// When it started, ms since the Unix epoch.
    pub started_at_ms: Option<u64>,
}

/// One gate evaluation, with its numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateView {
    /// The wave it judged.
    pub wave: usize,
    /// Its name (`nack`, `errors_5xx`, `module_errors`, `restarts`, `score_shift`,
    /// `heartbeats`).
    pub name: String,
    /// `pass`, `hold`, `fail`, `skipped`; for a gate in `observe` mode, `would_fail` or
    /// `would_hold` (it neither rolls back nor holds); `skipped` with detail `"off"` for a gate
    /// turned off.
    pub verdict: String,
    /// What was measured (a rate, a statistic), when it is a number.
    pub value: Option<f64>,
    /// The threshold it was compared with.
    pub threshold: Option<f64>,
    /// One line with the numbers.
    pub detail: String,
}

/// The first failure of a gate in `observe` mode: what it would have done had it enforced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedView {
    /// The gate (`score_shift`, …).
    pub gate: String,
    /// The wave it would have stopped (`None`: during the watch after the last wave).
    pub wave: Option<usize>,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// In words: `would have rolled back at wave 0 (canary)`.
    pub would: String,
    /// The gate's explanation, with its numbers.
    pub explanation: String,
    /// The numbers, as the gate measured them.
    pub numbers: serde_json::Value,
}

/// Rollouts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutList {
    /// The rollouts.
    pub rollouts: Vec<RolloutView>,
}

// === impl StartRollout ===

impl StartRollout {
    /// Checks the wire bounds: a break-glass push needs a reason; a bake is at most
    /// [`MAX_BAKE_MS`], a watch at most [`MAX_WATCH_MS`].
    pub fn check(&self) -> Result<(), Invalid> {
        if self.bake_ms.is_some_and(|b| b > MAX_BAKE_MS) {
            return Err(Invalid::new(
                "bake_ms",
                format!("must be at most {MAX_BAKE_MS} (a week)"),
            ));
        }
        if self.watch_ms.is_some_and(|w| w > MAX_WATCH_MS) {
            return Err(Invalid::new(
                "watch_ms",
                format!("must be at most {MAX_WATCH_MS} (a week)"),
            ));
        }
        let reason = self.reason.as_deref().unwrap_or("");
        check_text("reason", reason, MAX_REASON_LEN)?;
        if self.break_glass && reason.trim().is_empty() {
            return Err(Invalid::new("reason", "is required with break_glass"));
        }
        Ok(())
    }
}

// === impl RolloutCommand ===

impl RolloutCommand {
    /// Every command.
    pub const ALL: &[RolloutCommand] = &[
        RolloutCommand::Promote,
        RolloutCommand::Pause,
        RolloutCommand::Resume,
        RolloutCommand::Abort,
        RolloutCommand::Rollback,
    ];

    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutCommand::Promote => "promote",
            RolloutCommand::Pause => "pause",
            RolloutCommand::Resume => "resume",
            RolloutCommand::Abort => "abort",
            RolloutCommand::Rollback => "rollback",
        }
    }

    /// The command for a path segment.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

// === impl RolloutAction ===

impl RolloutAction {
    /// Checks the wire bounds.
    pub fn check(&self) -> Result<(), Invalid> {
        check_text(
            "reason",
            self.reason.as_deref().unwrap_or(""),
            MAX_REASON_LEN,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_glass_needs_a_reason() {
        let mut s = StartRollout {
            digest: Digest::of(b"x"),
            reason: None,
            break_glass: true,
            bake_ms: None,
            watch_ms: None,
        };
        assert_eq!(s.check().unwrap_err().field, "reason");
        s.reason = Some("restore v41 everywhere: v42 broke canary and region".into());
        assert!(s.check().is_ok());
        s.break_glass = false;
        s.reason = None;
        assert!(s.check().is_ok());
    }

    #[test]
    fn a_bake_is_at_most_a_week() {
        let mut s = StartRollout {
            digest: Digest::of(b"x"),
            reason: None,
            break_glass: false,
            bake_ms: Some(MAX_BAKE_MS),
            watch_ms: None,
        };
        assert!(s.check().is_ok());
        s.bake_ms = Some(MAX_BAKE_MS + 1);
        assert_eq!(s.check().unwrap_err().field, "bake_ms");
        s.bake_ms = Some(u64::MAX);
        assert_eq!(s.check().unwrap_err().field, "bake_ms");
    }

    #[test]
    fn commands_are_path_segments() {
        for c in RolloutCommand::ALL {
            assert_eq!(RolloutCommand::parse(c.as_str()), Some(*c));
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert_eq!(RolloutCommand::parse("explode"), None);
    }
}
