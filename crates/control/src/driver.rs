//! The rollout driver: starts rollouts, carries out operator commands, and reconciles every
//! running rollout on a timer and whenever a planned node beats.
//!
//! The driving itself is the rollout runner's ([`rampart_rollout::runner`], the code the
//! replay runs too): [`Run::start`] over the live nodes with their last heartbeats,
//! [`Run::step`] and [`Run::command`], [`Run::final_targets`] once done, and the auto-rollout
//! [`Queue`](rampart_rollout::Queue). What this module adds is durability. One step: take a
//! copy of the [`Run`] from the mirror, step it, and commit its new state **in the same batch**
//! as the writes its actions call for (desired versions per node, the bad mark, audit
//! entries). Only then does the
//! mirror change and do long-polling edges hear of it. Killed between two steps, a
//! restarted control plane loads the last committed state and the next reconcile picks up
//! from there: the machine is level-driven, so a step replayed is a step repeated, not a
//! step doubled.

use std::sync::Arc;
use std::time::Duration;

use rampart_api::{
    Active, GateView, ObservedView, RolloutAction, RolloutCommand, RolloutList, RolloutView,
    StartRollout, WaveView,
};
use rampart_artifact::Digest;
use rampart_fit::shadow::Judgement;
use rampart_rollout::GateMode;
use rampart_rollout::{
    Action, Actor, ArtifactRef, Beat, BreakGlass, Command, Event, FinalTargets, Gate, Node,
    Numbers, Operator, Phase, Run, RunError, Start, Step, Verdict,
};
use serde_json::json;

use crate::auth::Caller;
use crate::config::{
    AUTO_ROLLOUT_RETRY_MS, BEAT_FLUSH_MS, KILL_IMPORT_MS, MAX_RECONCILE_INTERVAL_MS,
    MIN_RECONCILE_GAP_MS, PERSIST_OBSERVATIONS_MS,
};
use crate::fleet::{Aftercare, RolloutMeta, Running, StoredRollout, to_beat};
use crate::service::{Error, Service};
use crate::store::{Batch, NewAudit, RolloutRecord, Store, Target, Write};

/// Who the audit log names for the driver's own decisions.
pub const SYSTEM_ACTOR: &str = "control";

/// What shadow scoring said before a rollout's first wave.
#[derive(Debug, Clone, PartialEq)]
enum Shadow {
    /// Not scored, and why.
    Skipped(String),
    /// Within policy (the report's first line).
    Pass(String),
    /// Beyond policy, with every reason.
    Held(Vec<String>),
}

impl Shadow {
    /// The `shadow` part of the `rollout.create` audit entry.
    fn detail(&self, mode: GateMode) -> serde_json::Value {
        match self {
            Shadow::Skipped(why) => json!({ "mode": mode, "result": "skipped", "why": why }),
            Shadow::Pass(line) => json!({ "mode": mode, "result": "pass", "line": line }),
            Shadow::Held(reasons) => json!({ "mode": mode, "result": "held", "reasons": reasons }),
        }
    }
}

// === impl Service (rollouts) ===

impl<S: Store> Service<S> {
    /// Starts a rollout of a stored artifact to the live fleet.
    pub async fn start_rollout(
        &self,
        caller: &Caller,
        req: StartRollout,
    ) -> Result<RolloutView, Error> {
        req.check()?;
        let record = self.store.artifact(req.digest).await?.ok_or_else(|| {
            Error::not_found(format!("no artifact {}; publish it first", req.digest))
        })?;
        if record.meta.bad.is_some() {
            return Err(crate::store::StoreError::MarkedBad(req.digest).into());
        }
        // Contracts change as edges register: a file valid at publish may not be now.
        // Break glass included: it skips waves, never validation.
        self.validate(&record.bytes)?;
        let _w = self.write.lock().await;
        let now = self.now();
        let kind = record.meta.kind.clone();
        let to = ArtifactRef {
            version: record.meta.version,
            digest: record.meta.digest,
        };
        let (id, from, nodes) = {
            let fleet = self.fleet();
            if let Some(r) = fleet.running.get(&kind) {
                return Err(Error::conflict(format!(
                    "rollout {} of {kind} is running; one rollout at a time per kind",
                    r.stored.meta.id
                )));
            }
            let from = fleet.fleet_desired.get(&kind).map(|t| ArtifactRef {
                version: t.version,
                digest: t.digest,
            });
            let nodes: Vec<Node> = fleet
                .nodes
                .values()
                .filter(|n| {
                    fleet.is_live(&n.record.registration.node, now, self.config.stale_after_ms)
                })
                .map(|n| {
                    let r = &n.record.registration;
                    Node {
                        id: r.node.clone(),
                        pop: r.labels.pop.clone(),
                        region: r.labels.region.clone(),
                        canary: r.labels.canary,
                    }
                })
                .collect();
            (fleet.last_rollout_id.saturating_add(1), from, nodes)
        };
        if from.is_some_and(|f| f.digest == to.digest) {
            return Err(Error::conflict(format!(
                "the fleet already serves {}",
                to.digest
            )));
        }
        let mut policy = self.config.plan_policy.clone();
        policy.break_glass = req.break_glass;
        if let Some(bake) = req.bake_ms {
            policy.canary_bake_ms = bake;
            policy.break_glass_bake_ms = bake;
            for w in &mut policy.waves {
                w.bake_ms = bake;
            }
        }
        let mut rollout_policy = self.config.rollout_policy.clone();
        if let Some(watch) = req.watch_ms {
            rollout_policy.watch_ms = watch;
        }
        let reason = req.reason.clone().filter(|r| !r.trim().is_empty());
        let shadow = self
            .shadow_before_start(&record.bytes, from, &rollout_policy, req.break_glass)
            .await;
        let start = Start {
            id,
            from,
            to,
            nodes: &nodes,
            plan: &policy,
            policy: &rollout_policy,
            break_glass: req.break_glass.then(|| BreakGlass {
                by: caller.name.clone(),
                reason: reason.clone().unwrap_or_default(),
            }),
            hold: match (&shadow, rollout_policy.shadow) {
                (Shadow::Held(reasons), GateMode::Enforce) => Some(reasons.clone()),
                _ => None,
            },
        };
        let meta = RolloutMeta {
            id,
            kind: kind.clone(),
            started_by: caller.name.clone(),
            reason: reason.clone(),
            break_glass: req.break_glass,
            started_at_ms: now,
            updated_at_ms: now,
        };
        // What each node said last, so the heartbeat gate knows who is alive.
        let last_words: Vec<(String, u64, Beat)> = self
            .fleet()
            .nodes
            .values()
            .filter_map(|n| {
                n.last.as_ref().map(|(at, beat)| {
                    // Deaths of the last beat were counted when it arrived.
                    let mut b = to_beat(beat);
                    b.deaths.clear();
                    (n.record.registration.node.clone(), *at, b)
                })
            })
            .collect();
        // The first step starts the canary wave in the same commit as the creation.
        let (stored, step) = Run::start(
            start,
            meta,
            last_words
                .iter()
                .map(|(node, at, beat)| (node.as_str(), *at, beat.clone())),
            now,
        )
        .map_err(|e| match e {
            RunError::Plan { .. } => Error::conflict(e.to_string()),
            RunError::Start(e) => Error::bad_request(e.to_string()),
        })?;
        let running = Running {
            stored,
            persisted_at_ms: 0,
        };
        let mut first = Batch::one(Write::Audit(NewAudit {
            at_ms: now,
            who: caller.name.clone(),
            action: if req.break_glass {
                "rollout.break_glass"
            } else {
                "rollout.create"
            }
            .into(),
            subject: format!("rollout/{id}"),
            reason,
            detail: json!({
                "digest": to.digest,
                "version": to.version,
                "from": from,
                "break_glass": req.break_glass,
                "nodes": nodes.len(),
                "waves": running.stored.rollout.plan().wave_count(),
                "shadow": shadow.detail(rollout_policy.shadow),
            }),
        }));
        if let (Shadow::Held(reasons), GateMode::Observe) = (&shadow, rollout_policy.shadow) {
            first.push(Write::Audit(NewAudit {
                at_ms: now,
                who: SYSTEM_ACTOR.into(),
                action: "rollout.shadow_observed".into(),
                subject: format!("rollout/{id}"),
                reason: Some(format!(
                    "shadow scoring (observe mode) would have held it before wave 0: {}",
                    reasons.join("; ")
                )),
                detail: json!({ "reasons": reasons }),
            }));
        }
        let stored = self.carry_out(running, step, now, Some(&mut first)).await?;
        self.nudge.notify_one();
        Ok(view(&stored))
    }

    /// Shadow scoring before a rollout's first wave: the candidate and the serving file score
    /// the embedded labelled sample ([`rampart_fit::shadow`]). Not for a break-glass push
    /// (it skips waves on purpose), a first version (nothing to compare with), files that do
    /// not compile under the edge's contract, or with the policy's `shadow = "off"`.
    async fn shadow_before_start(
        &self,
        candidate: &[u8],
        from: Option<ArtifactRef>,
        policy: &rampart_rollout::RolloutPolicy,
        break_glass: bool,
    ) -> Shadow {
        if policy.shadow == GateMode::Off {
            return Shadow::Skipped("shadow = \"off\" in the policy".into());
        }
        if break_glass {
            return Shadow::Skipped("break glass".into());
        }
        let Some(from) = from else {
            return Shadow::Skipped("no serving version to compare with".into());
        };
        let serving = match self.store.artifact(from.digest).await {
            Ok(Some(r)) => r.bytes,
            Ok(None) => {
                return Shadow::Skipped(format!("the serving file {} is not stored", from.digest));
            }
            Err(e) => return Shadow::Skipped(format!("the serving file cannot be read: {e}")),
        };
        let decode = |bytes: &[u8]| {
            rampart_artifact::decode(bytes, rampart_artifact::limits::HARD_MAX_BYTES)
                .map(|d| d.document)
                .map_err(|issues| format!("{} issues", issues.len()))
        };
        let (cand, serv) = match (decode(candidate), decode(&serving)) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => return Shadow::Skipped(format!("cannot decode: {e}")),
        };
        let check = self.shadow.get_or_init(|| {
            rampart_fit::shadow::ShadowCheck::embedded(rampart_score::edge_contract())
                .inspect_err(|e| tracing::error!(error = %e, "shadow scoring unavailable"))
                .ok()
        });
        let Some(check) = check else {
            return Shadow::Skipped("the embedded sample did not load".into());
        };
        match check.judge(&cand, &serv) {
            Judgement::Pass(line) => Shadow::Pass(line),
            Judgement::Held(reasons) => Shadow::Held(reasons),
            Judgement::NotJudged(why) => Shadow::Skipped(why),
        }
    }

    /// Carries out an operator command on rollout `id`.
    pub async fn command_rollout(
        &self,
        caller: &Caller,
        id: u64,
        cmd: RolloutCommand,
        action: RolloutAction,
    ) -> Result<RolloutView, Error> {
        action.check()?;
        let by = Operator {
            who: caller.name.clone(),
            reason: action.reason.clone().unwrap_or_default(),
        };
        let cmd = match cmd {
            RolloutCommand::Promote => Command::Promote,
            RolloutCommand::Pause => Command::Pause,
            RolloutCommand::Resume => Command::Resume,
            RolloutCommand::Abort => Command::Abort,
            RolloutCommand::Rollback => Command::Rollback {
                mark_bad: action.mark_bad,
            },
        };
        let _w = self.write.lock().await;
        let now = self.now();
        let running = self
            .fleet()
            .running
            .values()
            .find(|r| r.stored.meta.id == id)
            .cloned();
        let mut running = match running {
            Some(r) => r,
            None => self.reopen(id, cmd).await?,
        };
        let step = running
            .stored
            .command(cmd, &by, now)
            .map_err(|e| Error::conflict(e.to_string()))?;
        let stored = self.carry_out(running, step, now, None).await?;
        self.nudge.notify_one();
        Ok(view(&stored))
    }

    /// A finished rollout brought back for a rollback: only the latest of its kind, and only
    /// while no other rollout of the kind runs.
    async fn reopen(&self, id: u64, cmd: Command) -> Result<Running, Error> {
        let record = self
            .store
            .rollout(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no rollout {id}")))?;
        let stored: StoredRollout = serde_json::from_value(record.state)
            .map_err(|e| Error::internal(format!("stored rollout {id}: {e}")))?;
        if !matches!(cmd, Command::Rollback { .. }) {
            return Err(Error::conflict(format!(
                "rollout {id} is {}; only rollback applies",
                stored.rollout.status().phase.name()
            )));
        }
        if let Some(r) = self.fleet().running.get(&record.kind) {
            return Err(Error::conflict(format!(
                "rollout {} of {} is running; finish it first",
                r.stored.meta.id, record.kind
            )));
        }
        let latest = self.store.rollouts(1).await?;
        if latest.first().is_some_and(|r| r.id != id) {
            return Err(Error::conflict(format!(
                "rollout {id} is not the latest; roll back the latest one, or start a rollout of the version wanted"
            )));
        }
        Ok(Running {
            stored,
            persisted_at_ms: 0,
        })
    }

    /// With `auto_rollout`: starts a rollout of the newest published artifact when it is
    /// above the fleet's version, not bad, and nothing runs. Each digest is tried once.
    pub async fn auto_rollout(&self) {
        if !self.config.auto_rollout {
            return;
        }
        let newest = match self.store.artifacts(1).await {
            Ok(list) => list.into_iter().next(),
            Err(e) => {
                tracing::warn!(error = %e, "auto-rollout: cannot list artifacts");
                return;
            }
        };
        let Some(meta) = newest else { return };
        let now = self.now();
        let due = {
            let mut fleet = self.fleet();
            let to = ArtifactRef {
                version: meta.version,
                digest: meta.digest,
            };
            fleet.queue.publish(&meta.kind, to);
            let serving = fleet.fleet_desired.get(&meta.kind).map(|t| t.version);
            let running = fleet.running.contains_key(&meta.kind);
            let bad = meta.bad.is_some();
            fleet.queue.due(
                &meta.kind,
                running,
                serving,
                |d| bad && *d == meta.digest,
                now,
                AUTO_ROLLOUT_RETRY_MS,
            )
        };
        let Some(due) = due else { return };
        let caller = Caller {
            name: SYSTEM_ACTOR.into(),
            role: crate::auth::Role::Admin,
        };
        let req = StartRollout {
            digest: due.digest,
            reason: Some(format!(
                "auto-rollout of version {} published by {}",
                meta.version, meta.published_by
            )),
            break_glass: false,
            bake_ms: None,
            watch_ms: None,
        };
        let result = self.start_rollout(&caller, req).await;
        let mut fleet = self.fleet();
        match &result {
            Ok(v) => {
                tracing::info!(
                    rollout = v.id,
                    version = meta.version,
                    "auto-rollout started"
                );
                fleet.queue.started(&meta.kind);
            }
            Err(e) => {
                tracing::warn!(version = meta.version, error = %e, "auto-rollout refused; will retry");
                fleet.queue.refused(&meta.kind, self.now());
            }
        }
    }

    /// One reconcile of every running rollout. Returns how long until the next is due.
    pub async fn reconcile_all(&self) -> Duration {
        let kinds: Vec<String> = self.fleet().running.keys().cloned().collect();
        let mut next = MAX_RECONCILE_INTERVAL_MS;
        for kind in kinds {
            match self.reconcile_kind(&kind).await {
                Ok(Some(ms)) => next = next.min(ms),
                Ok(None) => {}
                Err(e) => tracing::error!(kind, error = %e, "reconcile failed; retrying"),
            }
        }
        Duration::from_millis(next.max(MIN_RECONCILE_GAP_MS))
    }

    async fn reconcile_kind(&self, kind: &str) -> Result<Option<u64>, Error> {
        let _w = self.write.lock().await;
        let now = self.now();
        let Some(mut running) = self.fleet().running.get(kind).cloned() else {
            return Ok(None);
        };
        let step = running.stored.step(now);
        let requeue = step.requeue_after_ms;
        self.carry_out(running, step, now, None).await?;
        Ok(requeue)
    }

    /// Carries out a step taken on `running`: commits its new state with the writes of its
    /// actions (and `extra`), then updates the mirror. Call with the write lock held.
    async fn carry_out(
        &self,
        mut running: Running,
        step: Step,
        now: u64,
        extra: Option<&mut Batch>,
    ) -> Result<StoredRollout, Error> {
        let persist = extra.is_some()
            || step.transitioned
            || !step.actions.is_empty()
            || now.saturating_sub(running.persisted_at_ms) >= PERSIST_OBSERVATIONS_MS;
        let kind = running.stored.meta.kind.clone();
        if !persist {
            // Only the gate report changed: keep it in memory, the next persist stores it.
            if let Some(r) = self.fleet().running.get_mut(&kind) {
                r.stored.adopt(&running.stored);
            }
            return Ok(running.stored);
        }
        running.stored.meta.updated_at_ms = now;
        running.persisted_at_ms = now;
        let done = running.stored.is_done();
        let mut batch = extra.map(std::mem::take).unwrap_or_default();
        batch.push(Write::PutRollout(Box::new(RolloutRecord {
            id: running.stored.meta.id,
            kind: kind.clone(),
            digest: running.stored.rollout.to().digest,
            done,
            state: serde_json::to_value(&running.stored)
                .map_err(|e| Error::internal(format!("encode rollout: {e}")))?,
        })));
        // A version rolled back (or marked bad) loses its blessing.
        let mut marked: Vec<Digest> = step
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::MarkBad { digest, .. } => Some(*digest),
                _ => None,
            })
            .collect();
        if matches!(
            running.stored.rollout.status().phase,
            Phase::RollingBack { .. } | Phase::RolledBack { .. }
        ) {
            marked.push(running.stored.rollout.to().digest);
        }
        marked.sort_unstable_by_key(|d| d.to_string());
        marked.dedup();
        batch
            .writes
            .extend(writes_for(&running.stored, step.actions, now));
        for digest in marked {
            batch
                .writes
                .extend(self.unbless(digest, running.stored.meta.id, now));
        }
        if done {
            batch.writes.extend(final_writes(&running.stored));
            batch.writes.extend(bless(&running.stored, now));
        }
        self.commit(batch).await?;
        {
            let mut fleet = self.fleet();
            let id = running.stored.meta.id;
            fleet.last_rollout_id = fleet.last_rollout_id.max(id);
            if done {
                fleet.running.remove(&kind);
                match Aftercare::of(&running.stored) {
                    Some(care) => fleet.aftercare.insert(kind.clone(), care),
                    None => fleet.aftercare.remove(&kind),
                };
            } else {
                // A rollout of the kind runs: the previous one's aftercare is over.
                fleet.aftercare.remove(&kind);
                match fleet.running.get_mut(&kind) {
                    // Keep the observations absorbed while the commit ran.
                    Some(r) => {
                        r.stored.adopt(&running.stored);
                        r.persisted_at_ms = now;
                    }
                    None => {
                        fleet.running.insert(kind, running.clone());
                    }
                }
            }
        }
        Ok(running.stored)
    }

    /// The writes that withdraw the blessing of `digest`, if it is blessed (with its audit).
    fn unbless(&self, digest: Digest, rollout: u64, now: u64) -> Vec<Write> {
        if !self.is_blessed(&digest) {
            return Vec::new();
        }
        vec![
            Write::Unbless { digest },
            Write::Audit(NewAudit {
                at_ms: now,
                who: SYSTEM_ACTOR.into(),
                action: "artifact.unblessed".into(),
                subject: digest.to_string(),
                reason: Some(format!("rolled back by rollout {rollout}")),
                detail: json!({ "rollout": rollout }),
            }),
        ]
    }

    /// Aftercare of every finished rollout still in its horizon: deaths per node-hour on its
    /// version against the previous version's record (the rollout's death gate). A failure
    /// rolls the finished rollout back (the operator rollback path, by `control`, the file
    /// marked bad and its blessing withdrawn), audited with the numbers. Returns the
    /// rollouts rolled back.
    pub async fn aftercare(&self) -> Vec<u64> {
        let now = self.now();
        let (due, observe): (Vec<_>, Vec<_>) = {
            let mut fleet = self.fleet();
            fleet.aftercare.retain(|_, c| now < c.until_ms);
            let policy = &self.config.rollout_policy.gates.deaths;
            let running: Vec<String> = fleet.running.keys().cloned().collect();
            let failed: Vec<(Aftercare, rampart_rollout::Failure)> = fleet
                .aftercare
                .iter()
                .filter(|(kind, _)| !running.contains(*kind))
                .filter(|(_, care)| care.mode != GateMode::Off && !care.observed)
                .filter_map(|(_, care)| {
                    let tally = rampart_rollout::DeathTally {
                        new: fleet
                            .records
                            .get(&care.to.digest)
                            .copied()
                            .unwrap_or_default(),
                        previous: fleet
                            .records
                            .get(&care.from.digest)
                            .copied()
                            .unwrap_or_default(),
                    };
                    match rampart_rollout::gate::death_gate(&tally, policy) {
                        Verdict::Fail(f) => Some((*care, f)),
                        _ => None,
                    }
                })
                .collect();
            for care in fleet.aftercare.values_mut() {
                if care.mode == GateMode::Observe
                    && failed.iter().any(|(c, _)| c.rollout == care.rollout)
                {
                    care.observed = true;
                }
            }
            failed
                .into_iter()
                .partition(|(care, _)| care.mode == GateMode::Enforce)
        };
        for (care, failure) in observe {
            let entry = NewAudit {
                at_ms: now,
                who: SYSTEM_ACTOR.into(),
                action: "rollout.aftercare_observed".into(),
                subject: format!("rollout/{}", care.rollout),
                reason: Some(format!(
                    "deaths gate (observe mode) would have rolled the finished rollout back: {}",
                    failure.explanation
                )),
                detail: json!({
                    "from": care.from,
                    "to": care.to,
                    "numbers": failure.numbers,
                }),
            };
            let written = {
                let _w = self.write.lock().await;
                self.commit(Batch::one(Write::Audit(entry))).await
            };
            if let Err(e) = written {
                tracing::error!(rollout = care.rollout, error = %e, "cannot audit an observing aftercare");
            }
        }
        let mut rolled = Vec::new();
        for (care, failure) in due {
            match self.aftercare_rollback(&care, &failure).await {
                Ok(()) => rolled.push(care.rollout),
                Err(e) => tracing::error!(
                    rollout = care.rollout,
                    error = %e,
                    "aftercare rollback failed; retrying"
                ),
            }
        }
        rolled
    }

    async fn aftercare_rollback(
        &self,
        care: &Aftercare,
        failure: &rampart_rollout::Failure,
    ) -> Result<(), Error> {
        let _w = self.write.lock().await;
        let now = self.now();
        let mut running = self
            .reopen(care.rollout, Command::Rollback { mark_bad: true })
            .await?;
        let reason = format!(
            "aftercare: deaths gate failed after the rollout succeeded: {}",
            failure.explanation
        );
        let by = Operator {
            who: SYSTEM_ACTOR.into(),
            reason: reason
                .chars()
                .take(rampart_rollout::rollout::MAX_REASON_LEN)
                .collect(),
        };
        let step = running
            .stored
            .command(Command::Rollback { mark_bad: true }, &by, now)
            .map_err(|e| Error::conflict(e.to_string()))?;
        let mut first = Batch::one(Write::Audit(NewAudit {
            at_ms: now,
            who: SYSTEM_ACTOR.into(),
            action: "rollout.aftercare_failed".into(),
            subject: format!("rollout/{}", care.rollout),
            reason: Some(failure.explanation.clone()),
            detail: json!({
                "from": care.from,
                "to": care.to,
                "numbers": failure.numbers,
            }),
        }));
        self.carry_out(running, step, now, Some(&mut first)).await?;
        self.fleet()
            .aftercare
            .retain(|_, c| c.rollout != care.rollout);
        self.nudge.notify_one();
        Ok(())
    }

    /// One rollout.
    pub async fn rollout(&self, id: u64) -> Result<RolloutView, Error> {
        let running = self
            .fleet()
            .running
            .values()
            .find(|r| r.stored.meta.id == id)
            .map(|r| r.stored.clone());
        if let Some(stored) = running {
            return Ok(view(&stored));
        }
        let record = self
            .store
            .rollout(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no rollout {id}")))?;
        let stored: StoredRollout = serde_json::from_value(record.state)
            .map_err(|e| Error::internal(format!("stored rollout {id}: {e}")))?;
        Ok(view(&stored))
    }

    /// Rollouts, newest first (running ones as they stand in memory).
    pub async fn rollouts(&self, limit: usize) -> Result<RolloutList, Error> {
        let records = self.store.rollouts(limit).await?;
        let fleet_running: Vec<StoredRollout> = self
            .fleet()
            .running
            .values()
            .map(|r| r.stored.clone())
            .collect();
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let stored = match fleet_running.iter().find(|s| s.meta.id == r.id) {
                Some(s) => s.clone(),
                None => serde_json::from_value(r.state)
                    .map_err(|e| Error::internal(format!("stored rollout {}: {e}", r.id)))?,
            };
            out.push(view(&stored));
        }
        Ok(RolloutList { rollouts: out })
    }
}

/// Runs the driver until shutdown: reconciles when a rollout asks, when a planned node
/// beats (at most every [`MIN_RECONCILE_GAP_MS`]), and at least every
/// [`MAX_RECONCILE_INTERVAL_MS`]; flushes heartbeats every [`BEAT_FLUSH_MS`].
pub async fn run<S: Store>(service: Arc<Service<S>>) {
    let mut shutdown = service.shutdown_signal();
    let flusher = {
        let service = Arc::clone(&service);
        let mut shutdown = service.shutdown_signal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(BEAT_FLUSH_MS));
            let mut imported: Option<tokio::time::Instant> = None;
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => break,
                }
                if !service.is_leader() {
                    continue;
                }
                if let Err(e) = service.flush_beats().await {
                    tracing::warn!(error = %e, "heartbeats not written; next flush retries");
                }
                if let Err(e) = service.age_contracts().await {
                    tracing::warn!(error = %e, "contract ageing not recorded; next tick retries");
                }
                service.expire_approvals().await;
                if imported.is_none_or(|at: tokio::time::Instant| {
                    at.elapsed() >= Duration::from_millis(KILL_IMPORT_MS)
                }) {
                    imported = Some(tokio::time::Instant::now());
                    if let Err(e) = service.import_break_glass().await {
                        tracing::warn!(error = %e, "break-glass kill switches not imported; retrying");
                    }
                }
            }
            let _ = service.flush_beats().await;
        })
    };
    let mut auto_checked: Option<tokio::time::Instant> = None;
    let mut role = service.role_signal();
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        // Only the leader reconciles (crate::ha); a follower waits to be promoted.
        if !service.is_leader() {
            auto_checked = None;
            tokio::select! {
                _ = role.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(MAX_RECONCILE_INTERVAL_MS)) => {}
                _ = shutdown.changed() => break,
            }
            continue;
        }
        // A store read: once per interval, not on every heartbeat's nudge.
        if auto_checked
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(MAX_RECONCILE_INTERVAL_MS))
        {
            auto_checked = Some(tokio::time::Instant::now());
            service.auto_rollout().await;
        }
        let next = service.reconcile_all().await;
        service.aftercare().await;
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = service.nudge.notified() => {
                tokio::time::sleep(Duration::from_millis(MIN_RECONCILE_GAP_MS)).await;
            }
            _ = shutdown.changed() => break,
        }
    }
    let _ = flusher.await;
}

/// The writes an action list calls for.
fn writes_for(stored: &StoredRollout, actions: Vec<Action>, now: u64) -> Vec<Write> {
    let id = stored.meta.id;
    let kind = &stored.meta.kind;
    let mut out = Vec::new();
    for action in actions {
        match action {
            Action::SetDesired { nodes, version, .. } => {
                let target = version.map(|v| Target {
                    version: v.version,
                    digest: v.digest,
                });
                out.extend(nodes.into_iter().map(|node| Write::SetDesired {
                    kind: kind.clone(),
                    node: Some(node),
                    target,
                }));
            }
            Action::MarkBad { digest, reason } => {
                out.push(Write::MarkBad {
                    digest,
                    mark: rampart_api::BadMark {
                        at_ms: now,
                        reason: reason.clone(),
                        rollout: Some(id),
                    },
                });
                out.push(Write::Audit(NewAudit {
                    at_ms: now,
                    who: SYSTEM_ACTOR.into(),
                    action: "artifact.mark_bad".into(),
                    subject: digest.to_string(),
                    reason: Some(reason),
                    detail: json!({ "rollout": id }),
                }));
            }
            Action::Audit(record) => {
                let detail = serde_json::to_value(&record.event).unwrap_or_default();
                let name = detail
                    .get("event")
                    .and_then(|e| e.as_str())
                    .unwrap_or("event")
                    .to_owned();
                let (who, reason) = match &record.actor {
                    Actor::System => (SYSTEM_ACTOR.to_owned(), event_reason(&record.event)),
                    Actor::Operator { who, reason } => (who.clone(), Some(reason.clone())),
                };
                out.push(Write::Audit(NewAudit {
                    at_ms: record.at_ms,
                    who,
                    action: format!("rollout.{name}"),
                    subject: format!("rollout/{id}"),
                    reason,
                    detail,
                }));
            }
        }
    }
    out
}

/// Once a rollout succeeded (its watch passed): its version is blessed, audited.
fn bless(stored: &StoredRollout, now: u64) -> Vec<Write> {
    let Some(&to) = stored.rollout.blessing() else {
        return Vec::new();
    };
    vec![
        Write::Bless {
            kind: stored.meta.kind.clone(),
            version: to.version,
            digest: to.digest,
            at_ms: now,
            rollout: stored.meta.id,
        },
        Write::Audit(NewAudit {
            at_ms: now,
            who: SYSTEM_ACTOR.into(),
            action: "artifact.blessed".into(),
            subject: to.digest.to_string(),
            reason: Some(format!(
                "rollout {} passed every wave and its watch",
                stored.meta.id
            )),
            detail: json!({ "rollout": stored.meta.id, "version": to.version }),
        }),
    ]
}

/// Once a rollout is done: the fleet's version, and every node follows it again.
fn final_writes(stored: &StoredRollout) -> Vec<Write> {
    let kind = stored.meta.kind.clone();
    let FinalTargets::Fleet(fleet) = stored.final_targets() else {
        // Aborted: nodes stay where they are; the per-node targets say where.
        return Vec::new();
    };
    vec![
        Write::SetDesired {
            kind: kind.clone(),
            node: None,
            target: fleet.map(|v| Target {
                version: v.version,
                digest: v.digest,
            }),
        },
        Write::ClearNodeDesired { kind },
    ]
}

fn event_reason(event: &Event) -> Option<String> {
    match event {
        Event::GateFailed { failure, .. } => Some(failure.explanation.clone()),
        Event::ShadowHeld { reasons } => Some(format!(
            "shadow scoring held it before wave 0: {}",
            reasons.join("; ")
        )),
        Event::GateObserved { wave, failure } => Some(format!(
            "{} gate (observe mode) would have rolled back {}: {}",
            failure.gate.key(),
            wave.map_or("the fleet during the watch".to_owned(), |w| format!(
                "at wave {w}"
            )),
            failure.explanation
        )),
        Event::Corrupt { what } => Some(what.clone()),
        _ => None,
    }
}

/// A rollout as status.
pub fn view(stored: &StoredRollout) -> RolloutView {
    let r = &stored.rollout;
    let status = r.status();
    let plan = r.plan();
    let phase = &status.phase;
    let touched = usize::from(phase.touched(plan));
    let window = phase.window();
    let reverting = matches!(
        phase,
        Phase::RollingBack { .. } | Phase::RolledBack { .. } | Phase::Failed { .. }
    );
    let obs = &stored.observations;
    let to = r.to().digest;
    let waves = plan
        .waves()
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let current = window.is_some_and(|win| usize::from(win.wave) == i);
            let wave_phase = if i >= touched {
                "pending"
            } else if reverting {
                "rolled_back"
            } else if current {
                phase.name()
            } else {
                "passed"
            };
            let states = w.nodes.iter().filter_map(|idx| obs.node(*idx));
            let (mut acked, mut nacked) = (0, 0);
            for s in states {
                if s.active == Some(to) {
                    acked += 1;
                }
                if s.nack.is_some() {
                    nacked += 1;
                }
            }
            WaveView {
                index: i,
                name: if plan.is_break_glass() {
                    "break-glass".into()
                } else if i == 0 {
                    "canary".into()
                } else {
                    format!("wave {i}")
                },
                nodes: w
                    .nodes
                    .iter()
                    .filter_map(|idx| plan.node(*idx).map(|n| n.id.clone()))
                    .collect(),
                phase: wave_phase.into(),
                acked,
                nacked,
                bake_ms: w.bake_ms,
                started_at_ms: window.filter(|_| current).map(|win| win.started_ms),
            }
        })
        .collect();
    let gates = status
        .report
        .as_ref()
        .map(|report| {
            report
                .verdicts()
                .iter()
                .map(|(gate, verdict)| gate_view(usize::from(report.wave), *gate, verdict))
                .collect()
        })
        .unwrap_or_default();
    let observed = status
        .observed
        .iter()
        .map(|o| ObservedView {
            gate: o.failure.gate.key().to_owned(),
            wave: o.wave.map(usize::from),
            at_ms: o.at_ms,
            would: match o.wave {
                Some(0) if !plan.is_break_glass() => {
                    "would have rolled back at wave 0 (canary)".to_owned()
                }
                Some(w) => format!("would have rolled back at wave {w}"),
                None => "would have rolled back the whole fleet during the watch".to_owned(),
            },
            explanation: o.failure.explanation.clone(),
            numbers: serde_json::to_value(&o.failure.numbers).unwrap_or_default(),
        })
        .collect();
    let outcome = match (&status.cause, phase) {
        (Some(rampart_rollout::rollout::RollbackCause::Gate { wave, failure }), _) => {
            Some(format!("wave {wave}: {}", failure.explanation))
        }
        (Some(rampart_rollout::rollout::RollbackCause::Watch { failure }), _) => Some(format!(
            "watch after the last wave: {}",
            failure.explanation
        )),
        (Some(rampart_rollout::rollout::RollbackCause::Operator { who, reason }), _) => {
            Some(format!("rolled back by {who}: {reason}"))
        }
        (Some(rampart_rollout::rollout::RollbackCause::Corrupt { what }), _) => {
            Some(format!("rolled back: stored state inconsistent ({what})"))
        }
        (None, Phase::Succeeded { .. }) => {
            Some("every wave passed, and the watch after them".into())
        }
        (None, Phase::Watching { until_ms, .. }) => Some(format!(
            "every wave passed; watching the whole fleet until {until_ms} (ms since the epoch)"
        )),
        (None, Phase::Aborted { .. }) => Some("aborted by an operator".into()),
        (None, Phase::Paused { cause, .. }) => Some(pause_text(cause)),
        _ => None,
    };
    RolloutView {
        id: stored.meta.id,
        kind: stored.meta.kind.clone(),
        target: Active {
            version: r.to().version,
            digest: r.to().digest,
        },
        previous: r.from().map(|f| Active {
            version: f.version,
            digest: f.digest,
        }),
        phase: phase.name().into(),
        done: !r.is_active(),
        break_glass: stored.meta.break_glass,
        reason: stored.meta.reason.clone(),
        started_by: stored.meta.started_by.clone(),
        started_at_ms: stored.meta.started_at_ms,
        updated_at_ms: stored.meta.updated_at_ms.max(status.changed_ms),
        current_wave: window
            .map(|w| usize::from(w.wave))
            .filter(|w| *w < plan.waves().len()),
        waves,
        gates,
        outcome,
        observed,
        state: serde_json::to_value(r).unwrap_or_default(),
    }
}

fn gate_view(wave: usize, gate: Gate, verdict: &Verdict) -> GateView {
    let name = gate.key().to_owned();
    let (value, threshold) = match verdict {
        Verdict::Pass { numbers }
        | Verdict::Fail(rampart_rollout::Failure { numbers, .. })
        | Verdict::WouldFail(rampart_rollout::Failure { numbers, .. }) => measured(numbers),
        _ => (None, None),
    };
    let (word, detail) = match verdict {
        Verdict::Pass { numbers } => ("pass", compact(numbers)),
        Verdict::Skipped { reason } => ("skipped", compact(reason)),
        Verdict::Hold { reason } => ("hold", compact(reason)),
        Verdict::Fail(f) => ("fail", f.explanation.clone()),
        Verdict::WouldFail(f) => ("would_fail", f.explanation.clone()),
        Verdict::WouldHold { reason } => ("would_hold", compact(reason)),
    };
    GateView {
        wave,
        name,
        verdict: word.into(),
        value,
        threshold,
        detail,
    }
}

/// The headline number of a gate and what it is compared with.
fn measured(numbers: &Numbers) -> (Option<f64>, Option<f64>) {
    match numbers {
        Numbers::Rate(r) => (
            Some(r.new_rate),
            Some(r.baseline_rate + r.limits.abs_margin),
        ),
        Numbers::Shift(s) => (Some(s.ks.d), Some(s.limits.min_d)),
        Numbers::Nack { nacked, .. } => (Some(f64::from(*nacked)), Some(0.0)),
        Numbers::Restarts {
            worst,
            allowed_per_node,
            ..
        } => (Some(f64::from(*worst)), Some(f64::from(*allowed_per_node))),
        Numbers::Heartbeat {
            missing, allowed, ..
        } => (Some(f64::from(*missing)), Some(f64::from(*allowed))),
        Numbers::Convergence { pending, .. } => (Some(f64::from(*pending)), Some(0.0)),
        Numbers::Deaths(d) => (
            d.test.map(|t| t.new_per_node_hour),
            d.test
                .map(|t| t.previous_per_node_hour * d.limits.min_ratio),
        ),
    }
}

fn compact<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A paused rollout's cause in words, for the dashboard and the CLI.
fn pause_text(cause: &rampart_rollout::rollout::PauseCause) -> String {
    use rampart_rollout::gate::HoldReason;
    use rampart_rollout::rollout::PauseCause;
    match cause {
        PauseCause::Operator { who, reason } => format!("paused by {who}: {reason}"),
        PauseCause::Inconclusive { reason } => {
            let hold = match reason {
                HoldReason::InsufficientRequests { have, need } => {
                    format!("{have} of {need} requests served")
                }
                HoldReason::InsufficientScores {
                    new,
                    baseline,
                    need,
                } => {
                    format!("{new} new and {baseline} baseline scores, {need} needed on each side")
                }
                HoldReason::Converging { pending, waited_ms } => {
                    format!("{pending} nodes still switching after {waited_ms} ms")
                }
                HoldReason::MissingHeartbeats { missing, allowed } => {
                    format!("{missing} nodes without heartbeats ({allowed} tolerated)")
                }
                HoldReason::ObservationsOutOfSync => "observations out of sync".to_owned(),
            };
            format!("paused: gates inconclusive past the hold cap ({hold})")
        }
        PauseCause::Shadow { reasons } => format!(
            "held before wave 0 by shadow scoring: {}; resume it with a reason to approve, or abort it",
            reasons.join("; ")
        ),
    }
}
