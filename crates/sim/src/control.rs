//! The control plane's part: validation at publish, and the distribution of each file,
//! either to the whole fleet at once or through rampart's rollout engine.
//!
//! Validation is the control plane's own call, [`rampart_artifact::check`] against the edge's
//! contract with the trusted keys. The rollout is driven by the control plane's own runner,
//! [`rampart_rollout::runner`]: its [`Queue`] holds a publication while a rollout runs (the
//! latest waiting file starts when the rollout ends), [`Run::start`] plans over the
//! reachable nodes with each node's last word, [`Run::step`] reconciles every second with
//! the heartbeats of that second, and [`Run::final_targets`] says what the fleet serves once
//! it is done. What is left here is the simulator's own world: actions become deliveries on
//! the virtual network and lines of the timeline, and a simulated operator rolls back a
//! rollout left paused too long.
//!
//! After the last wave the runner watches the whole fleet for the scenario's
//! `[rollout] watch` (the restarts and death gates see the deaths edges report in their
//! beats). A rollout that finished its watch blesses its version
//! ([`rampart_rollout::Rollout::blessing`], the control plane's own rule); the blessed
//! versions travel to every node as the heartbeat answer carries them, and edges promote
//! only a blessed version to last-known-good. Not modelled: the real control plane's
//! aftercare (deaths per node-hour compared after a rollout succeeded).
//!
//! Before a rollout's first wave, with shadow scoring on (the policy's `shadow = "enforce"`),
//! the control plane judges the candidate against the file the fleet serves with its own
//! check, [`ShadowCheck::judge`] on the embedded labelled sample, and a candidate beyond
//! policy starts held ([`Start::hold`]): paused before wave 0, no node told. The simulated
//! operator aborts a held rollout after [`OPERATOR_RESPONSE_MS`] (they read the reasons and
//! do not approve a file that scores wrong); the fleet stays on what it serves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rampart_artifact::{Contract, Digest, Keyring, Policy, check};
use rampart_fit::shadow::{Judgement, ShadowCheck};
use rampart_ingest::VersionDigest;
use rampart_rollout::{
    Action, ArtifactRef, Beat, Command, Event, FinalTargets, Gate, GateMode, GatePolicy, Node,
    NodeIdx, Operator, Phase, PlanPolicy, Queue, RolloutPolicy, Run, RunError, Start,
};

use crate::clock::MINUTE;
use crate::fleet::{Delivery, Fleet};
use crate::mode::{Gates, Layer};
use crate::producer::Publication;
use crate::report::Timeline;
use rampart_rollout::rollout::PauseCause;

/// How long an inconclusive (paused) rollout waits before the simulated operator rolls it
/// back: the engine never passes a wave blindly, and someone has to look.
pub const OPERATOR_RESPONSE_MS: u64 = 5 * MINUTE;

/// A value no measured rate or distance can reach: a gate with it as its margin never fails.
const NEVER: f64 = 2.0;
/// A timeout no replay reaches.
const NEVER_MS: u64 = u64::MAX / 4;

/// Most blessed versions the control plane hands out, newest first (as the heartbeat
/// answer carries them: `rampart_api::limits::MAX_BLESSED`).
pub const MAX_BLESSED: usize = 8;

/// The one artifact kind a replay rolls out (named as the control plane names it).
const KIND: &str = "features";

/// The control plane of one run.
#[derive(Debug)]
pub struct Control {
    validation: Option<(Contract, Keyring)>,
    staged: Option<(PlanPolicy, RolloutPolicy)>,
    /// Shadow scoring before wave 0 (with the policy's `shadow` mode).
    shadow: Option<Arc<ShadowCheck>>,
    propagation_ms: u64,
    registry: Vec<Node>,
    index: HashMap<String, usize>,
    artifacts: HashMap<Digest, Arc<Publication>>,
    bad: HashSet<Digest>,
    desired: Option<Arc<Publication>>,
    queue: Queue,
    running: Option<Run<Running>>,
    next_id: u64,
    /// The blessed versions, newest first (at most [`MAX_BLESSED`]).
    blessed: Vec<VersionDigest>,
    /// What happened to each published file.
    pub fates: Vec<(Arc<Publication>, Fate)>,
    /// What the control plane was handed and decided, when asked to record it.
    transcript: Option<Transcript>,
}

/// What the control plane of one run was handed and what its runner decided, in order:
/// the input of the differential test that drives the real control plane's driver with the
/// same fleet, beats and clock, and the decisions it must come to.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// Every node of the fleet.
    pub registry: Vec<Node>,
    /// How rollouts are cut and judged (`None`: files are pushed, not rolled out).
    pub policies: Option<(PlanPolicy, RolloutPolicy)>,
    /// What happened, in order.
    pub entries: Vec<Entry>,
}

/// One line of a [`Transcript`].
#[derive(Debug, Clone)]
pub enum Entry {
    /// The file every node serves before any rollout.
    Seed {
        /// When.
        at: u64,
        /// The file.
        file: Arc<Publication>,
    },
    /// A file is published (validation and bad marks already passed).
    Publish {
        /// When.
        at: u64,
        /// The file.
        file: Arc<Publication>,
    },
    /// A rollout is due to start: each reachable node's last word.
    Start {
        /// When.
        at: u64,
        /// Its file.
        to: ArtifactRef,
        /// `(node, beat)` for every reachable node.
        last_words: Vec<(String, Beat)>,
    },
    /// A rollout started with these waves (node ids per wave).
    Planned {
        /// The rollout's id.
        rollout: String,
        /// Node ids, wave by wave.
        waves: Vec<Vec<String>>,
    },
    /// The heartbeats of a step, absorbed by the running rollout, then the step.
    Step {
        /// When.
        at: u64,
        /// `(node, beat)`.
        beats: Vec<(String, Beat)>,
    },
    /// The simulated operator's command on the running rollout.
    Command {
        /// When.
        at: u64,
        /// The rollout's id.
        rollout: String,
        /// The command.
        command: Command,
        /// Who and why.
        by: Operator,
    },
    /// What the runner decided, to carry out in order.
    Decided {
        /// When.
        at: u64,
        /// The actions.
        actions: Vec<Action>,
    },
}

/// What became of a file the generator handed over.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Refused by validation (every issue code, deduplicated).
    Refused(Vec<String>),
    /// Sent to the whole fleet at once.
    Pushed,
    /// Rolled out to every wave.
    RolledOut,
    /// Rolled back by a gate during the watch after the last wave (the whole fleet).
    FailedWatch {
        /// The gate.
        gate: String,
        /// Its explanation.
        why: String,
    },
    /// Rolled back by a gate, in a wave.
    RolledBack {
        /// The gate.
        gate: String,
        /// The wave.
        wave: u16,
        /// Its explanation.
        why: String,
    },
    /// Rolled back by the (simulated) operator after an inconclusive pause.
    RolledBackByOperator,
    /// Replaced by a later file before its rollout started.
    Superseded,
    /// Held before wave 0 by shadow scoring (no node was told), then aborted by the
    /// (simulated) operator.
    HeldByShadow(Vec<String>),
}

/// The simulator's facts about the running rollout.
#[derive(Debug)]
struct Running {
    file: Arc<Publication>,
    paused_since: Option<u64>,
    /// Each fleet node's index in the rollout's plan, mapped once: a replay's second brings
    /// a heartbeat from every node.
    plan_of_fleet: Vec<Option<NodeIdx>>,
}

// === impl Control ===

impl Control {
    /// A control plane for `fleet`: validating with `validation` when given, rolling out
    /// with `gates` when given (else pushing to every node within `propagation_ms`),
    /// watching the whole fleet for `watch_ms` after the last wave, and shadow-scoring each
    /// candidate before wave 0 with `shadow` when given (policy `shadow = "enforce"`; else
    /// `"off"`).
    pub fn new(
        fleet: &Fleet,
        validation: Option<(Contract, Keyring)>,
        gates: Option<Gates>,
        propagation_ms: u64,
        watch_ms: u64,
        shadow: Option<Arc<ShadowCheck>>,
    ) -> Control {
        let registry: Vec<Node> = fleet
            .nodes()
            .iter()
            .map(|n| {
                let pop = fleet.pops().get(n.pop as usize);
                Node {
                    id: n.id.clone(),
                    pop: pop.map(|p| p.name.clone()).unwrap_or_default(),
                    region: pop.map(|p| p.region.clone()).unwrap_or_default(),
                    canary: pop.is_some_and(|p| p.canary),
                }
            })
            .collect();
        let index = registry
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        Control {
            validation,
            staged: gates.map(|g| (PlanPolicy::default(), policy(g, watch_ms, shadow.is_some()))),
            shadow,
            propagation_ms,
            registry,
            index,
            artifacts: HashMap::new(),
            bad: HashSet::new(),
            desired: None,
            queue: Queue::new(),
            running: None,
            next_id: 0,
            blessed: Vec::new(),
            fates: Vec::new(),
            transcript: None,
        }
    }

    /// From now on, keeps a [`Transcript`] of what this control plane is handed and decides.
    pub fn record(&mut self) {
        self.transcript = Some(Transcript {
            registry: self.registry.clone(),
            policies: self.staged.clone(),
            entries: Vec::new(),
        });
    }

    /// The transcript kept since [`Control::record`].
    pub fn take_transcript(&mut self) -> Option<Transcript> {
        self.transcript.take()
    }

    fn note(&mut self, entry: impl FnOnce() -> Entry) {
        if let Some(t) = &mut self.transcript {
            t.entries.push(entry());
        }
    }

    /// The file the whole fleet should serve before any rollout (sent at once to every
    /// node), blessed: the fleet served it before the day, after its own rollout.
    pub fn seed(&mut self, file: Arc<Publication>, fleet: &mut Fleet, now: u64) {
        self.note(|| Entry::Seed {
            at: now,
            file: Arc::clone(&file),
        });
        self.artifacts.insert(file.digest, Arc::clone(&file));
        fleet.broadcast(&Delivery::File(Arc::clone(&file)), now, 0);
        self.bless(&artifact(&file), fleet, now);
        self.desired = Some(file);
    }

    /// The blessed versions, newest first.
    pub fn blessed(&self) -> &[VersionDigest] {
        &self.blessed
    }

    /// Blesses `version` and hands the blessed versions to every node.
    fn bless(&mut self, version: &ArtifactRef, fleet: &mut Fleet, now: u64) {
        let vd = VersionDigest {
            version: version.version,
            digest: version.digest,
        };
        if self.blessed.first() == Some(&vd) {
            return;
        }
        self.blessed.retain(|b| b.digest != vd.digest);
        self.blessed.insert(0, vd);
        self.blessed.truncate(MAX_BLESSED);
        self.hand_out_blessed(fleet, now);
    }

    /// Withdraws the blessing of `digest` (a version rolled back or marked bad).
    fn unbless(&mut self, digest: &Digest, fleet: &mut Fleet, now: u64) {
        let before = self.blessed.len();
        self.blessed.retain(|b| b.digest != *digest);
        if self.blessed.len() != before {
            self.hand_out_blessed(fleet, now);
        }
    }

    /// The blessed versions reach each node with its next heartbeat answer (the next step).
    fn hand_out_blessed(&self, fleet: &mut Fleet, now: u64) {
        let list: Arc<[VersionDigest]> = Arc::from(self.blessed.as_slice());
        fleet.broadcast(&Delivery::Blessed(list), now, 0);
    }

    /// The file the whole fleet was last sent (pushed, or rolled out to every wave).
    pub fn desired(&self) -> Option<&Arc<Publication>> {
        self.desired.as_ref()
    }

    /// Whether heartbeats are wanted (a rollout runs).
    pub fn wants_beats(&self) -> bool {
        self.running.is_some()
    }

    /// The generator (or an operator) publishes a file.
    pub fn publish(
        &mut self,
        file: Arc<Publication>,
        fleet: &mut Fleet,
        now: u64,
        timeline: &mut Timeline,
    ) {
        if let Some((contract, keyring)) = &self.validation {
            let policy = Policy {
                contract,
                keyring: Some(keyring),
                previous: None,
            };
            if let Err(issues) = check(&file.bytes, &policy) {
                let mut codes: Vec<String> = issues.iter().map(|i| i.code().to_owned()).collect();
                codes.sort();
                codes.dedup();
                timeline.push(
                    now,
                    Some(Layer::ControlValidation),
                    format!(
                        "control plane refuses version {} ({} issues: {})",
                        file.version,
                        issues.len(),
                        codes.join(", ")
                    ),
                );
                self.fates.push((file, Fate::Refused(codes)));
                return;
            }
        }
        if self.bad.contains(&file.digest) {
            self.fates
                .push((file, Fate::Refused(vec!["marked_bad".to_owned()])));
            return;
        }
        self.artifacts.insert(file.digest, Arc::clone(&file));
        self.note(|| Entry::Publish {
            at: now,
            file: Arc::clone(&file),
        });
        if self.staged.is_some() {
            if let Some(old) = self
                .queue
                .publish(KIND, artifact(&file))
                .and_then(|old| self.artifacts.get(&old.digest))
            {
                self.fates.push((Arc::clone(old), Fate::Superseded));
            }
            self.start_if_idle(fleet, now, timeline);
        } else {
            fleet.broadcast(&Delivery::File(Arc::clone(&file)), now, self.propagation_ms);
            self.desired = Some(Arc::clone(&file));
            self.fates.push((file, Fate::Pushed));
        }
    }

    /// One reconcile with the heartbeats of the last step.
    pub fn step(
        &mut self,
        beats: &[(usize, Beat)],
        fleet: &mut Fleet,
        now: u64,
        timeline: &mut Timeline,
    ) {
        let Some(mut run) = self.running.take() else {
            self.start_if_idle(fleet, now, timeline);
            return;
        };
        for (i, beat) in beats {
            if let Some(Some(idx)) = run.meta.plan_of_fleet.get(*i) {
                run.beat_at(*idx, beat, now);
            }
        }
        if let Some(t) = &mut self.transcript {
            let registry = &self.registry;
            t.entries.push(Entry::Step {
                at: now,
                beats: beats
                    .iter()
                    .filter_map(|(i, b)| registry.get(*i).map(|n| (n.id.clone(), b.clone())))
                    .collect(),
            });
        }
        let step = run.step(now);
        self.carry_out(&step.actions, &run, fleet, now, timeline);
        if let Phase::Paused {
            since_ms, cause, ..
        } = &run.rollout.status().phase
        {
            let held = matches!(cause, PauseCause::Shadow { .. });
            let since = *run.meta.paused_since.get_or_insert(*since_ms);
            if now.saturating_sub(since) >= OPERATOR_RESPONSE_MS {
                let (reason, cmd) = if held {
                    (
                        "held by shadow scoring: the candidate scores wrong, do not approve",
                        Command::Abort,
                    )
                } else {
                    (
                        "inconclusive rollout: roll back and investigate",
                        Command::Rollback { mark_bad: false },
                    )
                };
                let by = Operator {
                    who: "operator".to_owned(),
                    reason: reason.to_owned(),
                };
                self.note(|| Entry::Command {
                    at: now,
                    rollout: run.rollout.id().to_owned(),
                    command: cmd,
                    by: by.clone(),
                });
                if let Ok(step) = run.command(cmd, &by, now) {
                    self.carry_out(&step.actions, &run, fleet, now, timeline);
                    if held {
                        timeline.push(
                            now,
                            None,
                            format!(
                                "operator aborts rollout {} of version {}, held by shadow scoring",
                                run.rollout.id(),
                                run.meta.file.version
                            ),
                        );
                    } else {
                        self.fates
                            .push((Arc::clone(&run.meta.file), Fate::RolledBackByOperator));
                    }
                }
            }
        }
        if !run.is_done() {
            self.running = Some(run);
            return;
        }
        let file = Arc::clone(&run.meta.file);
        if let Some(version) = run.rollout.blessing() {
            let version = *version;
            self.bless(&version, fleet, now);
        }
        if let FinalTargets::Fleet(Some(serving)) = run.final_targets()
            && let Some(f) = self.artifacts.get(&serving.digest)
        {
            self.desired = Some(Arc::clone(f));
        }
        match run.rollout.status().phase {
            Phase::Succeeded { .. } => {
                timeline.push(
                    now,
                    None,
                    format!("version {} rolled out to every wave", file.version),
                );
                self.fates.push((file, Fate::RolledOut));
            }
            ref phase => {
                if !self
                    .fates
                    .iter()
                    .any(|(f, fate)| f.digest == file.digest && !matches!(fate, Fate::Superseded))
                {
                    self.fates.push((
                        file,
                        Fate::RolledBack {
                            gate: phase.name().to_owned(),
                            wave: 0,
                            why: String::new(),
                        },
                    ));
                }
            }
        }
        self.start_if_idle(fleet, now, timeline);
    }

    fn start_if_idle(&mut self, fleet: &mut Fleet, now: u64, timeline: &mut Timeline) {
        if self.running.is_some() {
            return;
        }
        let Some((plan_policy, rollout_policy)) = &self.staged else {
            return;
        };
        let serving = self.desired.as_ref().map(|d| d.version);
        let bad = &self.bad;
        let Some(file) = self
            .queue
            .due(KIND, false, serving, |d| bad.contains(d), now, NEVER_MS)
            .and_then(|to| self.artifacts.get(&to.digest))
            .cloned()
        else {
            return;
        };
        self.next_id += 1;
        let nodes: Vec<Node> = self
            .registry
            .iter()
            .enumerate()
            .filter(|(i, _)| fleet.reachable(*i, now))
            .map(|(_, n)| n.clone())
            .collect();
        // Shadow scoring before wave 0, as the control plane's driver does: the candidate
        // against what the fleet serves, on the embedded labelled sample.
        let judged = match (&self.shadow, &self.desired, rollout_policy.shadow) {
            (Some(check), Some(serving), GateMode::Enforce | GateMode::Observe) => {
                match check.judge(&file.document, &serving.document) {
                    Judgement::Held(reasons) => Some(reasons),
                    Judgement::Pass(_) | Judgement::NotJudged(_) => None,
                }
            }
            _ => None,
        };
        if let Some(reasons) = &judged {
            timeline.push(
                now,
                Some(Layer::Shadow),
                format!(
                    "shadow scoring {} version {} before wave 0: {}",
                    if rollout_policy.shadow == GateMode::Enforce {
                        "holds"
                    } else {
                        "would hold (observe)"
                    },
                    file.version,
                    reasons.first().map_or("", String::as_str)
                ),
            );
        }
        let hold = judged.filter(|_| rollout_policy.shadow == GateMode::Enforce);
        let held = hold.clone();
        let start = Start {
            id: self.next_id,
            from: self.desired.as_deref().map(artifact),
            to: artifact(&file),
            nodes: &nodes,
            plan: plan_policy,
            policy: rollout_policy,
            break_glass: None,
            hold,
        };
        // The registry's last word from each node: alive, and serving what it serves.
        let last_words = self
            .registry
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), now, Beat::idle(fleet.active_digest(i))));
        let meta = Running {
            file,
            paused_since: None,
            plan_of_fleet: Vec::new(),
        };
        if let Some(t) = &mut self.transcript {
            t.entries.push(Entry::Start {
                at: now,
                to: start.to,
                last_words: start
                    .nodes
                    .iter()
                    .filter_map(|n| self.index.get(&n.id).map(|i| (n.id.clone(), *i)))
                    .map(|(id, i)| (id, Beat::idle(fleet.active_digest(i))))
                    .collect(),
            });
        }
        match Run::start(start, meta, last_words, now) {
            Ok((mut run, step)) => {
                self.queue.started(KIND);
                run.meta.plan_of_fleet = self
                    .registry
                    .iter()
                    .map(|n| run.rollout.plan().index_of(&n.id))
                    .collect();
                let plan = run.rollout.plan();
                self.note(|| Entry::Planned {
                    rollout: run.rollout.id().to_owned(),
                    waves: plan
                        .waves()
                        .iter()
                        .map(|w| {
                            w.nodes
                                .iter()
                                .filter_map(|i| plan.node(*i).map(|n| n.id.clone()))
                                .collect()
                        })
                        .collect(),
                });
                self.carry_out(&step.actions, &run, fleet, now, timeline);
                if let Some(reasons) = held {
                    self.fates
                        .push((Arc::clone(&run.meta.file), Fate::HeldByShadow(reasons)));
                }
                self.running = Some(run);
            }
            Err(e) => {
                // Refused for good: a later publication takes its place in the queue.
                self.queue.refused(KIND, now);
                let line = match e {
                    RunError::Plan { source, .. } => format!("cannot plan a rollout: {source}"),
                    RunError::Start(e) => format!("cannot start a rollout: {e}"),
                };
                timeline.push(now, None, line);
            }
        }
    }

    fn carry_out(
        &mut self,
        actions: &[Action],
        run: &Run<Running>,
        fleet: &mut Fleet,
        now: u64,
        timeline: &mut Timeline,
    ) {
        self.note(|| Entry::Decided {
            at: now,
            actions: actions.to_vec(),
        });
        for action in actions {
            match action {
                Action::SetDesired { nodes, version, .. } => {
                    let file = version
                        .as_ref()
                        .and_then(|v| self.artifacts.get(&v.digest))
                        .cloned();
                    if let Some(file) = file {
                        for id in nodes {
                            if let Some(i) = self.index.get(id) {
                                fleet.send(*i, Delivery::File(Arc::clone(&file)), now);
                            }
                        }
                    }
                }
                Action::MarkBad { digest, .. } => {
                    self.bad.insert(*digest);
                    self.unbless(digest, fleet, now);
                }
                Action::Audit(record) => match &record.event {
                    Event::Started { from, to, waves, nodes, .. } => timeline.push(
                        now,
                        None,
                        format!(
                            "rollout {} of version {} starts ({} waves over {nodes} nodes, from version {})",
                            run.rollout.id(),
                            to.version,
                            waves,
                            from.map_or("none".to_owned(), |f| f.version.to_string())
                        ),
                    ),
                    Event::GateFailed { wave, failure } => {
                        let layer = if failure.gate == Gate::ScoreShift {
                            Layer::ScoreShiftGate
                        } else {
                            Layer::CanaryGates
                        };
                        timeline.push(
                            now,
                            Some(layer),
                            format!(
                                "rollout {} of version {}: gate {} fails in wave {wave}: {}",
                                run.rollout.id(),
                                run.meta.file.version,
                                failure.gate.key(),
                                failure.explanation
                            ),
                        );
                        self.fates.push((
                            Arc::clone(&run.meta.file),
                            Fate::RolledBack {
                                gate: failure.gate.key().to_owned(),
                                wave: *wave,
                                why: failure.explanation.clone(),
                            },
                        ));
                    }
                    Event::Watching { until_ms } => timeline.push(
                        now,
                        None,
                        format!(
                            "rollout {} of version {}: every wave passed; the whole fleet is watched for {} min",
                            run.rollout.id(),
                            run.meta.file.version,
                            until_ms.saturating_sub(now) / MINUTE
                        ),
                    ),
                    Event::WatchFailed { failure } => {
                        timeline.push(
                            now,
                            Some(Layer::Watch),
                            format!(
                                "rollout {} of version {}: gate {} fails during the watch: {}",
                                run.rollout.id(),
                                run.meta.file.version,
                                failure.gate.key(),
                                failure.explanation
                            ),
                        );
                        self.fates.push((
                            Arc::clone(&run.meta.file),
                            Fate::FailedWatch {
                                gate: failure.gate.key().to_owned(),
                                why: failure.explanation.clone(),
                            },
                        ));
                    }
                    Event::RolledBack { unconfirmed } => timeline.push(
                        now,
                        None,
                        format!(
                            "rollout {} rolled back ({unconfirmed} nodes unconfirmed)",
                            run.rollout.id()
                        ),
                    ),
                    Event::Inconclusive { wave, .. } => timeline.push(
                        now,
                        None,
                        format!(
                            "rollout {} paused as inconclusive in wave {wave}",
                            run.rollout.id()
                        ),
                    ),
                    _ => {}
                },
            }
        }
    }
}

/// A publication as the rollout machine names it.
fn artifact(file: &Publication) -> ArtifactRef {
    ArtifactRef {
        version: file.version,
        digest: file.digest,
    }
}

/// The rollout policy for a set of gates, a watch of `watch_ms` after the last wave (0:
/// none) and shadow scoring before wave 0 (`shadow`: enforce, else off): rampart's defaults,
/// with the gates left out given thresholds they cannot reach.
pub fn policy(gates: Gates, watch_ms: u64, shadow: bool) -> RolloutPolicy {
    let mut p = RolloutPolicy {
        watch_ms,
        shadow: if shadow {
            GateMode::Enforce
        } else {
            GateMode::Off
        },
        ..RolloutPolicy::default()
    };
    let g: &mut GatePolicy = &mut p.gates;
    match gates {
        Gates::All => {}
        Gates::Health => {
            g.shift.min_d = NEVER;
            g.deaths.min_deaths = u64::MAX;
        }
        Gates::ScoreShift => {
            g.errors_5xx.abs_margin = NEVER;
            g.module_errors.abs_margin = NEVER;
            g.max_restarts_per_node = u32::MAX;
            g.deaths.min_deaths = u64::MAX;
            g.missing_fail_after_ms = NEVER_MS;
            g.converge_timeout_ms = NEVER_MS;
        }
        Gates::Shadow => {
            g.shift.min_d = NEVER;
            g.errors_5xx.abs_margin = NEVER;
            g.module_errors.abs_margin = NEVER;
            g.max_restarts_per_node = u32::MAX;
            g.deaths.min_deaths = u64::MAX;
            g.missing_fail_after_ms = NEVER_MS;
            g.converge_timeout_ms = NEVER_MS;
        }
        Gates::Watch => {
            g.shift.min_d = NEVER;
            g.errors_5xx.abs_margin = NEVER;
            g.module_errors.abs_margin = NEVER;
            g.missing_fail_after_ms = NEVER_MS;
            g.converge_timeout_ms = NEVER_MS;
        }
    }
    p
}
