//! The runner: what drives one rollout between the machine and the world, written once for
//! the control plane and the fleet simulator.
//!
//! A [`Run`] is a rollout with its observations (and the caller's own facts, `M`). It is
//! started from the live nodes ([`Run::start`]: plan, create, absorb each node's last word,
//! first reconcile), fed heartbeats ([`Run::beat`]), stepped ([`Run::step`]: sync the
//! window, reconcile, apply, sync again) or commanded ([`Run::command`]), and once done says
//! what the whole fleet serves ([`Run::final_targets`]). A [`Queue`] holds the publications
//! waiting for their kind's rollout to end and decides which one starts next: one rollout at
//! a time per kind.
//!
//! What stays with the caller is only what differs between the two worlds: where the live
//! nodes and their last words come from, how actions are carried out (a store commit and
//! long-polls, or deliveries on a virtual network), and what is kept for whom (the audit
//! log, a replay's timeline).

use std::collections::BTreeMap;

use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

use crate::observation::{Beat, Observations};
use crate::plan::{Node, NodeIdx, PlanError, PlanPolicy, plan};
use crate::reconcile::{
    Action, Command, CommandError, Decision, Operator, command, hold_for_shadow, reconcile,
};
use crate::rollout::{
    ArtifactRef, BreakGlass, Phase, Rollout, RolloutPolicy, RolloutSpec, StartError,
};

/// A rollout with its observations, and the caller's facts about it (`M`: who started it
/// and why in the control plane; the file in the simulator). Serialized, it is what the
/// control plane persists: `{"meta": …, "rollout": …, "observations": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run<M> {
    /// The caller's facts.
    pub meta: M,
    /// The rollout machine.
    pub rollout: Rollout,
    /// What heartbeats showed since the current wave started.
    pub observations: Observations,
}

/// What starting a rollout needs.
#[derive(Debug, Clone)]
pub struct Start<'a> {
    /// Its id; also the plan's seed, so the same fleet gives the same waves.
    pub id: u64,
    /// What the fleet serves now.
    pub from: Option<ArtifactRef>,
    /// What it should serve.
    pub to: ArtifactRef,
    /// The live nodes to plan over.
    pub nodes: &'a [Node],
    /// How waves are cut (its seed is replaced by `id`).
    pub plan: &'a PlanPolicy,
    /// Timing and gates.
    pub policy: &'a RolloutPolicy,
    /// A break-glass push, with who and why.
    pub break_glass: Option<BreakGlass>,
    /// Held before the first wave, with the reasons (shadow scoring judged the candidate
    /// beyond policy): the rollout is created paused instead of starting its canary wave.
    pub hold: Option<Vec<String>>,
}

/// Why a rollout could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The live nodes cannot be cut into waves.
    #[error("cannot plan the rollout over {nodes} live nodes: {source}")]
    Plan {
        /// How many live nodes there were.
        nodes: usize,
        /// Why.
        source: PlanError,
    },
    /// The spec is refused.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// What one step decided and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What the caller must carry out, in order.
    pub actions: Vec<Action>,
    /// Whether the phase changed (persist at least then).
    pub transitioned: bool,
    /// Step again after this long at the latest (`None`: the rollout is done).
    pub requeue_after_ms: Option<u64>,
}

/// Where nodes stand once a rollout is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalTargets {
    /// Still running: per-node targets hold.
    Running,
    /// The whole fleet serves this version (none: the previous version was none), and
    /// per-node targets end.
    Fleet(Option<ArtifactRef>),
    /// Aborted: every node stays where it is; the per-node targets say where.
    Stay,
}

/// Publications waiting for their kind's rollout, the latest of a kind first in line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queue {
    lanes: BTreeMap<String, Lane>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Lane {
    waiting: Option<Waiting>,
    /// The digest the queue last started: never queued again.
    started: Option<Digest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    to: ArtifactRef,
    refused_at_ms: Option<u64>,
}

// === impl Run ===

impl<M> Run<M> {
    /// Plans `start.nodes` into waves, creates the rollout, absorbs each planned node's last
    /// word (`(node id, received at, beat)`: so the heartbeat gate knows who is alive before
    /// the first beat of this rollout), and takes the first step at `now_ms`.
    pub fn start<'b>(
        start: Start<'_>,
        meta: M,
        last_words: impl IntoIterator<Item = (&'b str, u64, Beat)>,
        now_ms: u64,
    ) -> Result<(Run<M>, Step), RunError> {
        let mut policy = start.plan.clone();
        policy.seed = start.id;
        let plan = plan(start.nodes, &policy).map_err(|source| RunError::Plan {
            nodes: start.nodes.len(),
            source,
        })?;
        let spec = RolloutSpec {
            id: start.id.to_string(),
            from: start.from,
            to: start.to,
            plan,
            policy: start.policy.clone(),
            break_glass: start.break_glass,
        };
        let rollout = Rollout::new(spec, now_ms)?;
        let observations = Observations::new(&rollout);
        let mut run = Run {
            meta,
            rollout,
            observations,
        };
        for (node, at_ms, beat) in last_words {
            run.beat(node, &beat, at_ms);
        }
        let decision = match start.hold {
            Some(reasons) => hold_for_shadow(&run.rollout, reasons, now_ms),
            None => reconcile(&run.rollout, &run.observations, now_ms),
        };
        let step = run.take(decision);
        Ok((run, step))
    }

    /// Records a heartbeat of `node` received at `now_ms`. Returns whether this rollout
    /// planned the node (then a step may decide something new).
    pub fn beat(&mut self, node: &str, beat: &Beat, now_ms: u64) -> bool {
        match self.rollout.plan().index_of(node) {
            Some(idx) => self.beat_at(idx, beat, now_ms),
            None => false,
        }
    }

    /// [`Run::beat`] for a node known by its index in this rollout's plan (a caller that
    /// maps its own fleet to the plan once saves a lookup by name per heartbeat). Returns
    /// whether the index is in the plan.
    pub fn beat_at(&mut self, idx: NodeIdx, beat: &Beat, now_ms: u64) -> bool {
        // Out of range means a caller's stale map; `matches` would report such a mismatch
        // to the gates as a hold, so nothing is absorbed and the caller hears `false`.
        self.observations.absorb(idx, beat, now_ms).is_ok()
    }

    /// One reconcile at `now_ms` with what was absorbed so far.
    pub fn step(&mut self, now_ms: u64) -> Step {
        self.observations.sync(&self.rollout);
        let decision = reconcile(&self.rollout, &self.observations, now_ms);
        self.take(decision)
    }

    /// An operator's command at `now_ms`.
    pub fn command(
        &mut self,
        cmd: Command,
        by: &Operator,
        now_ms: u64,
    ) -> Result<Step, CommandError> {
        self.observations.sync(&self.rollout);
        let decision = command(&self.rollout, cmd, by, now_ms)?;
        Ok(self.take(decision))
    }

    /// Whether the rollout is done (it acts no more).
    pub fn is_done(&self) -> bool {
        !self.rollout.is_active()
    }

    /// Where nodes stand now that the rollout is done.
    pub fn final_targets(&self) -> FinalTargets {
        match self.rollout.status().phase {
            Phase::Succeeded { .. } => FinalTargets::Fleet(Some(*self.rollout.to())),
            Phase::RolledBack { .. } | Phase::Failed { .. } => {
                FinalTargets::Fleet(self.rollout.from().copied())
            }
            Phase::Aborted { .. } => FinalTargets::Stay,
            _ => FinalTargets::Running,
        }
    }

    /// Takes the machine (and facts) of `committed`, a copy of this run stepped while this
    /// one kept absorbing heartbeats: the observations absorbed meanwhile are kept.
    pub fn adopt(&mut self, committed: &Run<M>)
    where
        M: Clone,
    {
        self.meta = committed.meta.clone();
        self.rollout = committed.rollout.clone();
        self.observations.sync(&self.rollout);
    }

    fn take(&mut self, decision: Decision) -> Step {
        let transitioned = decision.transitioned;
        let requeue_after_ms = decision.requeue_after_ms;
        let actions = self.rollout.apply(decision);
        self.observations.sync(&self.rollout);
        Step {
            actions,
            transitioned,
            requeue_after_ms,
        }
    }
}

// === impl Queue ===

impl Queue {
    /// An empty queue.
    pub fn new() -> Queue {
        Queue::default()
    }

    /// `to` is published for `kind`. It takes the place of the publication waiting there
    /// (returned), unless it is that one already or the queue started it before (a digest is
    /// started once).
    pub fn publish(&mut self, kind: &str, to: ArtifactRef) -> Option<ArtifactRef> {
        let lane = self.lanes.entry(kind.to_owned()).or_default();
        if lane.started == Some(to.digest) || lane.waiting.is_some_and(|w| w.to == to) {
            return None;
        }
        lane.waiting
            .replace(Waiting {
                to,
                refused_at_ms: None,
            })
            .map(|w| w.to)
    }

    /// The publication of `kind` to start at `now_ms`, if any: none while a rollout of the
    /// kind runs (`running`), none the fleet serves already or has passed (`serving`, the
    /// fleet's version), none marked bad, and none refused less than `retry_ms` ago.
    pub fn due(
        &self,
        kind: &str,
        running: bool,
        serving: Option<u64>,
        is_bad: impl Fn(&Digest) -> bool,
        now_ms: u64,
        retry_ms: u64,
    ) -> Option<ArtifactRef> {
        if running {
            return None;
        }
        let w = self.lanes.get(kind)?.waiting?;
        let retrying = w
            .refused_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < retry_ms);
        let passed = serving.is_some_and(|v| v >= w.to.version);
        (!retrying && !passed && !is_bad(&w.to.digest)).then_some(w.to)
    }

    /// The waiting publication of `kind` started: it leaves the queue for good.
    pub fn started(&mut self, kind: &str) {
        if let Some(lane) = self.lanes.get_mut(kind)
            && let Some(w) = lane.waiting.take()
        {
            lane.started = Some(w.to.digest);
        }
    }

    /// The waiting publication of `kind` could not start at `now_ms`: it waits, and is due
    /// again after the caller's retry delay.
    pub fn refused(&mut self, kind: &str, now_ms: u64) {
        if let Some(w) = self
            .lanes
            .get_mut(kind)
            .and_then(|lane| lane.waiting.as_mut())
        {
            w.refused_at_ms = Some(now_ms);
        }
    }

    /// The publication waiting for `kind`, if any.
    pub fn waiting(&self, kind: &str) -> Option<ArtifactRef> {
        self.lanes
            .get(kind)
            .and_then(|lane| lane.waiting)
            .map(|w| w.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{Counters, ScoreHistogram};
    use crate::rollout::Target;

    const KIND: &str = "bot-features/v1";

    fn art(version: u64) -> ArtifactRef {
        ArtifactRef {
            version,
            digest: Digest::of(format!("v{version}").as_bytes()),
        }
    }

    fn nodes() -> Vec<Node> {
        (0..8)
            .map(|i| Node {
                id: format!("edge-{i}"),
                pop: format!("pop-{}", i / 2),
                region: "eu".into(),
                canary: i == 0,
            })
            .collect()
    }

    fn beat(active: ArtifactRef) -> Beat {
        let mut scores = ScoreHistogram::new();
        scores.add_to(90, 100);
        Beat {
            active: Some(active.digest),
            apply: None,
            counters: Counters {
                requests: 100,
                ..Counters::default()
            },
            scores,
            restarts: 0,
            deaths: Vec::new(),
        }
    }

    fn started(id: u64, nodes: &[Node]) -> (Run<()>, Step) {
        let plan = PlanPolicy::default();
        let policy = RolloutPolicy::default();
        let start = Start {
            id,
            from: Some(art(1)),
            to: art(2),
            nodes,
            plan: &plan,
            policy: &policy,
            break_glass: None,
            hold: None,
        };
        let words: Vec<(String, Beat)> =
            nodes.iter().map(|n| (n.id.clone(), beat(art(1)))).collect();
        Run::start(
            start,
            (),
            words.iter().map(|(id, b)| (id.as_str(), 1_000, b.clone())),
            1_000,
        )
        .unwrap()
    }

    #[test]
    fn a_start_plans_with_the_id_as_seed_and_starts_the_canary_on_last_words() {
        let nodes = nodes();
        let (run, step) = started(7, &nodes);
        let policy = PlanPolicy {
            seed: 7,
            ..PlanPolicy::default()
        };
        assert_eq!(run.rollout.plan(), &plan(&nodes, &policy).unwrap());
        assert_eq!(run.rollout.id(), "7");
        // Last words carry the baseline: the canary wave starts at once.
        assert!(step.transitioned);
        assert!(step.actions.iter().any(|a| matches!(
            a,
            Action::SetDesired {
                target: Target::New,
                ..
            }
        )));
        assert!(matches!(
            run.rollout.status().phase,
            Phase::Baking { wave: 0, .. }
        ));
        assert_eq!(run.final_targets(), FinalTargets::Running);
    }

    #[test]
    fn a_start_over_no_node_is_a_plan_error() {
        let (plan, policy) = (PlanPolicy::default(), RolloutPolicy::default());
        let start = Start {
            id: 1,
            from: Some(art(1)),
            to: art(2),
            nodes: &[],
            plan: &plan,
            policy: &policy,
            break_glass: None,
            hold: None,
        };
        let err = Run::start(start, (), [], 0).unwrap_err();
        assert!(matches!(err, RunError::Plan { nodes: 0, .. }), "{err}");
    }

    #[test]
    fn a_start_to_the_version_served_is_refused() {
        let nodes = nodes();
        let (plan, policy) = (PlanPolicy::default(), RolloutPolicy::default());
        let start = Start {
            id: 1,
            from: Some(art(2)),
            to: art(2),
            nodes: &nodes,
            plan: &plan,
            policy: &policy,
            break_glass: None,
            hold: None,
        };
        let err = Run::start(start, (), [], 0).unwrap_err();
        assert_eq!(err, RunError::Start(StartError::SameVersion));
    }

    #[test]
    fn a_beat_from_a_node_outside_the_plan_is_not_absorbed() {
        let nodes = nodes();
        let (mut run, _) = started(1, &nodes);
        let before = run.observations.clone();
        assert!(!run.beat("stranger", &beat(art(1)), 2_000));
        assert_eq!(run.observations, before);
        assert!(!run.beat_at(NodeIdx(99), &beat(art(1)), 2_000));
        assert_eq!(run.observations, before);
        assert!(run.beat("edge-3", &beat(art(1)), 2_000));
        assert_ne!(run.observations, before);
        let idx = run.rollout.plan().index_of("edge-4").unwrap();
        let after = run.observations.clone();
        assert!(run.beat_at(idx, &beat(art(1)), 2_000));
        assert_ne!(run.observations, after);
    }

    #[test]
    fn a_nack_rolls_back_and_the_fleet_returns_to_the_previous_version() {
        let nodes = nodes();
        let (mut run, _) = started(1, &nodes);
        let canary = run
            .rollout
            .plan()
            .wave(0)
            .and_then(|w| w.nodes.first())
            .and_then(|i| run.rollout.plan().node(*i))
            .map(|n| n.id.clone())
            .unwrap();
        let mut nack = beat(art(1));
        nack.apply = Some(crate::observation::Apply::Rejected {
            digest: art(2).digest,
            codes: vec!["unknown_key".into()],
        });
        run.beat(&canary, &nack, 2_000);
        let step = run.step(2_000);
        assert!(
            step.actions
                .iter()
                .any(|a| matches!(a, Action::MarkBad { digest, .. } if *digest == art(2).digest))
        );
        // Rolling back until the canary says it serves v1 again.
        run.beat(&canary, &beat(art(1)), 3_000);
        let mut t = 3_000;
        while !run.is_done() && t < 600_000 {
            t += 1_000;
            run.step(t);
        }
        assert!(run.is_done());
        assert_eq!(run.final_targets(), FinalTargets::Fleet(Some(art(1))));
    }

    #[test]
    fn an_abort_leaves_nodes_where_they_are() {
        let nodes = nodes();
        let (mut run, _) = started(1, &nodes);
        let by = Operator {
            who: "alice".into(),
            reason: "look first".into(),
        };
        let step = run.command(Command::Abort, &by, 2_000).unwrap();
        assert!(step.transitioned);
        assert!(run.is_done());
        assert_eq!(run.final_targets(), FinalTargets::Stay);
        assert!(run.command(Command::Pause, &by, 3_000).is_err());
    }

    #[test]
    fn adopt_keeps_what_was_absorbed_meanwhile() {
        let nodes = nodes();
        let (mut mirror, _) = started(1, &nodes);
        let mut committed = mirror.clone();
        committed.step(1_500);
        mirror.beat("edge-5", &beat(art(1)), 1_600);
        let absorbed = mirror.observations.clone();
        mirror.adopt(&committed);
        assert_eq!(mirror.rollout, committed.rollout);
        assert_eq!(mirror.observations, absorbed);
    }

    #[test]
    fn the_latest_publication_waits_and_supersedes_the_one_before() {
        let mut q = Queue::new();
        assert_eq!(q.publish(KIND, art(2)), None);
        assert_eq!(
            q.publish(KIND, art(2)),
            None,
            "the same one again is no news"
        );
        assert_eq!(q.publish(KIND, art(3)), Some(art(2)));
        assert_eq!(q.waiting(KIND), Some(art(3)));
        assert_eq!(q.waiting("other"), None);
    }

    #[test]
    fn one_rollout_at_a_time_per_kind() {
        let mut q = Queue::new();
        q.publish(KIND, art(2));
        q.publish("other", art(5));
        let never_bad = |_: &Digest| false;
        assert_eq!(q.due(KIND, true, Some(1), never_bad, 0, 0), None);
        assert_eq!(q.due(KIND, false, Some(1), never_bad, 0, 0), Some(art(2)));
        assert_eq!(q.due("other", false, None, never_bad, 0, 0), Some(art(5)));
    }

    #[test]
    fn nothing_bad_or_already_passed_is_due() {
        let mut q = Queue::new();
        q.publish(KIND, art(2));
        assert_eq!(q.due(KIND, false, Some(2), |_| false, 0, 0), None);
        assert_eq!(q.due(KIND, false, Some(3), |_| false, 0, 0), None);
        assert_eq!(
            q.due(KIND, false, Some(1), |d| *d == art(2).digest, 0, 0),
            None
        );
    }

    #[test]
    fn a_started_digest_is_never_queued_again() {
        let mut q = Queue::new();
        q.publish(KIND, art(2));
        q.started(KIND);
        assert_eq!(q.waiting(KIND), None);
        assert_eq!(q.publish(KIND, art(2)), None);
        assert_eq!(q.due(KIND, false, Some(1), |_| false, 0, 0), None);
        q.publish(KIND, art(3));
        assert_eq!(q.due(KIND, false, Some(1), |_| false, 0, 0), Some(art(3)));
    }

    #[test]
    fn a_refused_publication_is_due_again_after_the_retry_delay() {
        let mut q = Queue::new();
        q.publish(KIND, art(2));
        q.refused(KIND, 1_000);
        assert_eq!(q.due(KIND, false, None, |_| false, 30_999, 30_000), None);
        assert_eq!(
            q.due(KIND, false, None, |_| false, 31_000, 30_000),
            Some(art(2))
        );
        // Published again while refused: still refused (the same digest, no news).
        q.publish(KIND, art(2));
        assert_eq!(q.due(KIND, false, None, |_| false, 2_000, 30_000), None);
        // A new one is due at once.
        q.publish(KIND, art(3));
        assert_eq!(
            q.due(KIND, false, None, |_| false, 2_000, 30_000),
            Some(art(3))
        );
    }
}
