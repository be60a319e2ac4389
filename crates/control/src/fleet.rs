//! The in-memory mirror of the store that every request reads: nodes with their latest
//! heartbeat, desired versions, kill switches, and the running rollouts with their
//! observations. Changed only after the store committed the same change ([`Fleet::apply`]
//! takes the very [`Write`]s that were committed), so it never shows what is not durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rampart_api::fleet::Health;
use rampart_api::limits::MAX_BLESSED;
use rampart_api::{
    AckNack, Active, Desired, Heartbeat, KillSwitchEntry, KillSwitches, Module, NodeView, Scope,
    SwitchState, routes,
};
use rampart_artifact::{ContractSpec, Digest};
use rampart_rollout::observation::MAX_EXPOSURE_GAP_MS;
use rampart_rollout::{
    Apply, ArtifactRef, Beat, BeatDeath, Counters, Exposure, Queue, Run, ScoreHistogram,
};
use serde::{Deserialize, Serialize};

use crate::config::NodePolicy;
use crate::store::{BeatRecord, EnrollmentRecord, Loaded, NodeRecord, OrderState, Target, Write};

/// A rollout as the driver keeps and persists it: the runner's [`Run`] with the control
/// plane's facts about it.
pub type StoredRollout = Run<RolloutMeta>;

/// The control plane's facts about a rollout (the machine keeps the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutMeta {
    /// Its id.
    pub id: u64,
    /// The artifact kind.
    pub kind: String,
    /// Who started it (a token name).
    pub started_by: String,
    /// Why.
    pub reason: Option<String>,
    /// A break-glass push.
    pub break_glass: bool,
    /// When, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Last persisted change, ms since the Unix epoch.
    pub updated_at_ms: u64,
}

/// A running rollout in memory.
#[derive(Debug, Clone)]
pub struct Running {
    /// What is persisted.
    pub stored: StoredRollout,
    /// When it was last persisted (observations are persisted at most this often when
    /// nothing else changes).
    pub persisted_at_ms: u64,
}

/// One registered node.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    /// Its registration.
    pub record: NodeRecord,
    /// Its latest heartbeat and when it arrived.
    pub last: Option<(u64, Heartbeat)>,
    /// The latest death it reported (`detected_at_ms`): an edge resends a death until it is
    /// acknowledged, oldest first, so a death at or before this one was counted already.
    pub last_death_ms: Option<u64>,
    /// The latest death it reported (as reported: with its cause), since this process
    /// started.
    pub last_death: Option<rampart_api::Death>,
}

/// A finished rollout still under aftercare: until `until_ms` (or the next rollout of its
/// kind), deaths per node-hour on `to` are compared with `from`'s record, and a failure
/// rolls it back with no operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aftercare {
    /// The rollout.
    pub rollout: u64,
    /// The previous version.
    pub from: ArtifactRef,
    /// The version it rolled out.
    pub to: ArtifactRef,
    /// When aftercare ends, ms since the Unix epoch.
    pub until_ms: u64,
    /// The death gate's mode in the rollout's policy: `observe` records what aftercare would
    /// have done instead of rolling back, `off` skips aftercare.
    pub mode: rampart_rollout::GateMode,
    /// An observing aftercare has recorded its failure (once per process).
    pub observed: bool,
}

/// Everything requests read.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Registered nodes by id.
    pub nodes: BTreeMap<String, NodeEntry>,
    /// What the fleet should serve, by kind.
    pub fleet_desired: BTreeMap<String, Target>,
    /// Per-node overrides (set by rollouts), by (kind, node).
    pub node_desired: BTreeMap<(String, String), Target>,
    /// Fleet kill switches.
    pub kill_fleet: BTreeMap<Module, KillSwitchEntry>,
    /// Per-node kill switches.
    pub kill_nodes: BTreeMap<(Module, String), KillSwitchEntry>,
    /// Running rollouts, by kind.
    pub running: BTreeMap<String, Running>,
    /// Heartbeats not yet written to the store, latest per node.
    pub pending_beats: HashMap<String, BeatRecord>,
    /// The highest rollout id used.
    pub last_rollout_id: u64,
    /// Auto-rollout's queue: the newest publication per kind, waiting for its turn (a
    /// digest it started is never started again by it; a refused one is retried).
    pub queue: Queue,
    /// Node credentials: sha256 of the secret → node id.
    pub credentials: HashMap<Digest, String>,
    /// Node id → its credential's hash (to replace it on re-enrollment).
    pub credential_of: BTreeMap<String, Digest>,
    /// Unused bootstrap tokens by hash.
    pub enrollments: HashMap<Digest, EnrollmentRecord>,
    /// Nodes whose contract aged out (audited once; a heartbeat brings it back).
    pub aged_out: BTreeSet<String>,
    /// The epoch and the sequence of the last change of desired state: the signed orders'.
    pub order: OrderState,
    /// Blessed versions by kind, newest first, at most [`MAX_BLESSED`].
    pub blessed: BTreeMap<String, Vec<Active>>,
    /// Deaths and node-time per version (digest), as stored plus what heartbeats added.
    pub records: HashMap<Digest, Exposure>,
    /// What heartbeats added to `records` since the last flush to the store.
    pub pending_records: HashMap<Digest, Exposure>,
    /// Finished rollouts under aftercare, by kind.
    pub aftercare: BTreeMap<String, Aftercare>,
}

/// What a node should do, and its etag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDesire {
    /// The version to serve.
    pub desired: Option<Desired>,
    /// The switches.
    pub kill_switches: KillSwitches,
    /// Names the two above.
    pub etag: String,
    /// The epoch and sequence this desired state is part of.
    pub order: OrderState,
    /// The blessed versions of the kind, newest first.
    pub blessed: Vec<Active>,
}

// === impl Aftercare ===

impl Aftercare {
    /// The aftercare of a rollout that succeeded with a previous version to compare with.
    pub fn of(stored: &StoredRollout) -> Option<Aftercare> {
        let r = &stored.rollout;
        let rampart_rollout::Phase::Succeeded { at_ms, .. } = r.status().phase else {
            return None;
        };
        let aftercare_ms = r.policy().aftercare_ms;
        (aftercare_ms > 0).then_some(())?;
        Some(Aftercare {
            rollout: stored.meta.id,
            from: *r.from()?,
            to: *r.to(),
            until_ms: at_ms.saturating_add(aftercare_ms),
            mode: r.policy().gates.modes.deaths,
            observed: false,
        })
    }
}

// === impl Fleet ===

impl Fleet {
    /// The mirror of what the store loaded.
    pub fn from_loaded(loaded: Loaded) -> Result<Self, serde_json::Error> {
        let mut fleet = Fleet {
            last_rollout_id: loaded.last_rollout_id,
            order: loaded.order.unwrap_or_default(),
            ..Fleet::default()
        };
        for record in loaded.nodes {
            fleet.nodes.insert(
                record.registration.node.clone(),
                NodeEntry {
                    record,
                    last: None,
                    last_death_ms: None,
                    last_death: None,
                },
            );
        }
        for b in loaded.beats {
            if let Some(n) = fleet.nodes.get_mut(&b.node) {
                n.last_death_ms = b.beat.deaths.iter().map(|d| d.detected_at_ms).max();
                n.last_death = b
                    .beat
                    .deaths
                    .iter()
                    .max_by_key(|d| d.detected_at_ms)
                    .cloned();
                n.last = Some((b.at_ms, b.beat));
            }
        }
        for (kind, node, target) in loaded.desired {
            match node {
                None => {
                    fleet.fleet_desired.insert(kind, target);
                }
                Some(node) => {
                    fleet.node_desired.insert((kind, node), target);
                }
            }
        }
        for e in loaded.kill_switches {
            fleet.put_switch(e);
        }
        for e in loaded.enrollments {
            fleet.enrollments.insert(e.hash, e);
        }
        for (node, hash) in loaded.credentials {
            fleet.credentials.insert(hash, node.clone());
            fleet.credential_of.insert(node, hash);
        }
        for (kind, active) in loaded.blessed {
            let list = fleet.blessed.entry(kind).or_default();
            if list.len() < MAX_BLESSED {
                list.push(active);
            }
        }
        fleet.records = loaded.records.into_iter().collect();
        for r in loaded.finished {
            let stored: StoredRollout = serde_json::from_value(r.state)?;
            if let Some(care) = Aftercare::of(&stored) {
                fleet.aftercare.insert(r.kind, care);
            }
        }
        for r in loaded.active_rollouts {
            // A newer rollout of the kind runs: the finished one's aftercare is over.
            fleet.aftercare.remove(&r.kind);
            let stored: StoredRollout = serde_json::from_value(r.state)?;
            let persisted_at_ms = stored.meta.updated_at_ms;
            fleet.running.insert(
                r.kind,
                Running {
                    stored,
                    persisted_at_ms,
                },
            );
        }
        Ok(fleet)
    }

    /// Mirrors one committed write (rollouts excepted: the driver keeps those). Returns
    /// whether some node's desired state may have changed.
    pub fn apply(&mut self, write: &Write) -> bool {
        match write {
            Write::PutNode(n) => {
                let id = n.registration.node.clone();
                match self.nodes.get_mut(&id) {
                    Some(entry) => entry.record.registration = n.registration.clone(),
                    None => {
                        self.nodes.insert(
                            id,
                            NodeEntry {
                                record: n.as_ref().clone(),
                                last: None,
                                last_death_ms: None,
                                last_death: None,
                            },
                        );
                    }
                }
                true
            }
            Write::SetDesired { kind, node, target } => {
                match (node, target) {
                    (None, Some(t)) => {
                        self.fleet_desired.insert(kind.clone(), *t);
                    }
                    (None, None) => {
                        self.fleet_desired.remove(kind);
                    }
                    (Some(n), Some(t)) => {
                        self.node_desired.insert((kind.clone(), n.clone()), *t);
                    }
                    (Some(n), None) => {
                        self.node_desired.remove(&(kind.clone(), n.clone()));
                    }
                }
                true
            }
            Write::ClearNodeDesired { kind } => {
                self.node_desired.retain(|(k, _), _| k != kind);
                true
            }
            Write::SetKillSwitch(e) => {
                self.put_switch(e.clone());
                true
            }
            Write::ClearKillSwitch { module, node } => {
                self.kill_nodes.remove(&(*module, node.clone()));
                true
            }
            Write::PutEnrollment(e) => {
                self.enrollments.insert(e.hash, e.clone());
                false
            }
            Write::BurnEnrollment { hash, .. } => {
                self.enrollments.remove(hash);
                false
            }
            Write::PutCredential { node, hash, .. } => {
                if let Some(old) = self.credential_of.insert(node.clone(), *hash) {
                    self.credentials.remove(&old);
                }
                self.credentials.insert(*hash, node.clone());
                false
            }
            Write::RemoveNode { node } => {
                self.nodes.remove(node);
                self.node_desired.retain(|(_, n), _| n != node);
                self.kill_nodes.retain(|(_, n), _| n != node);
                self.pending_beats.remove(node);
                self.aged_out.remove(node);
                if let Some(old) = self.credential_of.remove(node) {
                    self.credentials.remove(&old);
                }
                true
            }
            Write::NextOrder { at_ms } => {
                self.order.seq = self.order.seq.saturating_add(1);
                self.order.at_ms = *at_ms;
                true
            }
            Write::SetEpoch { epoch, at_ms } => {
                self.order.epoch = *epoch;
                self.order.at_ms = *at_ms;
                true
            }
            Write::Bless {
                kind,
                version,
                digest,
                ..
            } => {
                let list = self.blessed.entry(kind.clone()).or_default();
                list.retain(|a| a.digest != *digest);
                list.insert(
                    0,
                    Active {
                        version: *version,
                        digest: *digest,
                    },
                );
                list.truncate(MAX_BLESSED);
                true
            }
            Write::Unbless { digest } => {
                let mut changed = false;
                for list in self.blessed.values_mut() {
                    let before = list.len();
                    list.retain(|a| a.digest != *digest);
                    changed |= list.len() != before;
                }
                changed
            }
            Write::AddRecords(_) => false,
            Write::PutArtifact(_)
            | Write::MarkBad { .. }
            | Write::PutRollout(_)
            | Write::Audit(_) => false,
        }
    }

    fn put_switch(&mut self, e: KillSwitchEntry) {
        match e.node.clone() {
            None => {
                self.kill_fleet.insert(e.module, e);
            }
            Some(n) => {
                self.kill_nodes.insert((e.module, n), e);
            }
        }
    }

    /// What `node` should serve for `kind`: its own setting, else the fleet's.
    pub fn target(&self, kind: &str, node: &str) -> Option<Target> {
        self.node_desired
            .get(&(kind.to_owned(), node.to_owned()))
            .or_else(|| self.fleet_desired.get(kind))
            .copied()
    }

    /// The kill switches `node` must apply: its own setting, else the fleet's, else on.
    pub fn switches(&self, node: &str) -> KillSwitches {
        let state = |module: Module| {
            let (entry, scope) = match self.kill_nodes.get(&(module, node.to_owned())) {
                Some(e) => (Some(e), Scope::Node),
                None => (self.kill_fleet.get(&module), Scope::Fleet),
            };
            entry.map_or_else(SwitchState::default, |e| SwitchState {
                enabled: e.enabled,
                scope,
                reason: Some(e.reason.clone()),
                set_by: Some(e.set_by.clone()),
                at_ms: Some(e.at_ms),
            })
        };
        KillSwitches {
            bot: state(Module::Bot),
        }
    }

    /// Everything `node` should do, with its etag.
    pub fn desire(&self, kind: &str, node: &str) -> NodeDesire {
        let desired = self.target(kind, node).map(|t| Desired {
            version: t.version,
            digest: t.digest,
            fetch: routes::artifact(&t.digest),
        });
        let kill_switches = self.switches(node);
        let blessed = self.blessed.get(kind).cloned().unwrap_or_default();
        let etag = etag(&desired, &kill_switches, &blessed);
        NodeDesire {
            desired,
            kill_switches,
            etag,
            order: self.order,
            blessed,
        }
    }

    /// Records a heartbeat in memory and in the running rollouts' observations. Returns
    /// whether a running rollout planned this node (the driver should look again).
    /// Deaths the node reported before are dropped (by `detected_at_ms`), new ones are
    /// counted against the version that was active, and the time since the node's previous
    /// beat against the version it served then (the per-version records of aftercare).
    pub fn beat(&mut self, node: &str, beat: &Heartbeat, now_ms: u64) -> bool {
        let mut converted = to_beat(beat);
        if let Some(n) = self.nodes.get_mut(node) {
            let seen = n.last_death_ms;
            if let Some(newest) = beat
                .deaths
                .iter()
                .filter(|d| seen.is_none_or(|s| d.detected_at_ms > s))
                .max_by_key(|d| d.detected_at_ms)
            {
                n.last_death = Some(newest.clone());
            }
            converted
                .deaths
                .retain(|d| seen.is_none_or(|s| d.detected_at_ms > s));
            n.last_death_ms = seen.max(converted.deaths.iter().map(|d| d.detected_at_ms).max());
            if let Some((at, previous)) = &n.last
                && let Some(active) = previous.active
            {
                let gap = now_ms.saturating_sub(*at).min(MAX_EXPOSURE_GAP_MS);
                add_record(
                    &mut self.records,
                    &mut self.pending_records,
                    active.digest,
                    0,
                    gap,
                );
            }
            for d in &converted.deaths {
                if let Some(digest) = d.active {
                    add_record(&mut self.records, &mut self.pending_records, digest, 1, 0);
                }
            }
            n.last = Some((now_ms, beat.clone()));
        } else {
            converted.deaths.clear();
        }
        self.aged_out.remove(node);
        self.pending_beats.insert(
            node.to_owned(),
            BeatRecord {
                node: node.to_owned(),
                at_ms: now_ms,
                beat: beat.clone(),
            },
        );
        let mut planned = false;
        for running in self.running.values_mut() {
            planned |= running.stored.beat(node, &converted, now_ms);
        }
        planned
    }

    /// The distinct contracts that count in publish validation: per consumer group, those
    /// shared by at least `contract_quorum` of the group's enrolled nodes seen within
    /// `contract_max_age_ms` (all of them, when the group is smaller than the quorum).
    /// A node that never enrolled, or went quiet, does not count.
    pub fn contracts(&self, now_ms: u64, policy: &NodePolicy) -> Vec<ContractSpec> {
        // consumer → (eligible nodes, spec key → (spec, nodes sharing it))
        type Group = (usize, BTreeMap<String, (ContractSpec, usize)>);
        let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
        for (id, n) in &self.nodes {
            if !self.counts(id, n, now_ms, policy.contract_max_age_ms) {
                continue;
            }
            let spec = &n.record.registration.contract;
            let key = serde_json::to_string(spec).unwrap_or_default();
            let group = groups.entry(spec.consumer.as_str()).or_default();
            group.0 += 1;
            group.1.entry(key).or_insert_with(|| (spec.clone(), 0)).1 += 1;
        }
        let mut out = Vec::new();
        for (eligible, specs) in groups.into_values() {
            let need = policy.contract_quorum.clamp(1, eligible.max(1));
            out.extend(
                specs
                    .into_values()
                    .filter(|(_, sharing)| *sharing >= need)
                    .map(|(spec, _)| spec),
            );
        }
        out
    }

    /// Whether a node's contract counts: enrolled, and seen (registered or beating) within
    /// `max_age_ms`.
    fn counts(&self, id: &str, n: &NodeEntry, now_ms: u64, max_age_ms: u64) -> bool {
        self.credential_of.contains_key(id) && now_ms.saturating_sub(last_seen(n)) <= max_age_ms
    }

    /// Nodes whose contract just aged out (not seen for `max_age_ms`, not yet reported).
    pub fn newly_aged(&self, now_ms: u64, max_age_ms: u64) -> Vec<(String, u64)> {
        self.nodes
            .iter()
            .filter(|(id, _)| !self.aged_out.contains(*id))
            .filter_map(|(id, n)| {
                let seen = last_seen(n);
                (now_ms.saturating_sub(seen) > max_age_ms).then(|| (id.clone(), seen))
            })
            .collect()
    }

    /// One node as operators see it.
    pub fn view(
        &self,
        kind: &str,
        node: &str,
        now_ms: u64,
        stale_after_ms: u64,
    ) -> Option<NodeView> {
        let entry = self.nodes.get(node)?;
        let desire = self.desire(kind, node);
        let reg = &entry.record.registration;
        let (last_beat_ms, beat) = match &entry.last {
            Some((at, b)) => (Some(*at), Some(b)),
            None => (None, None),
        };
        let health = match (last_beat_ms, beat) {
            (Some(at), Some(b)) if now_ms.saturating_sub(at) <= stale_after_ms => {
                let nacked = desire.desired.as_ref().is_some_and(|d| b.nacks(&d.digest));
                let c = &b.counters;
                if nacked || c.errors_5xx > 0 || c.module_errors > 0 || c.restarts > 0 {
                    Health::Degraded
                } else {
                    Health::Healthy
                }
            }
            (Some(_), _) => Health::Stale,
            _ => Health::New,
        };
        Some(NodeView {
            node: reg.node.clone(),
            labels: reg.labels.clone(),
            software_version: reg.software_version.clone(),
            contract: reg.contract.clone(),
            registered_at_ms: entry.record.registered_at_ms,
            last_beat_ms,
            active: beat.and_then(|b| b.active),
            desired: desire.desired,
            verdict: beat.and_then(|b| b.verdict.clone()),
            last_rejection: beat.and_then(|b| b.last_rejection.clone()),
            module_enabled: beat.map(|b| b.module_enabled),
            kill_switches: desire.kill_switches,
            health,
            last_death: entry.last_death.clone(),
        })
    }

    /// Whether `node` beat within `horizon_ms` of `now_ms`.
    pub fn is_live(&self, node: &str, now_ms: u64, horizon_ms: u64) -> bool {
        self.nodes
            .get(node)
            .and_then(|n| n.last.as_ref())
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) <= horizon_ms)
    }
}

/// When a node was last heard from: its last beat, else its registration.
fn last_seen(n: &NodeEntry) -> u64 {
    n.last
        .as_ref()
        .map_or(n.record.registered_at_ms, |(at, _)| *at)
        .max(n.record.registered_at_ms)
}

/// Names a desired state: equal states, equal etags. Without blessed versions the etag is
/// the one of a control plane that never blessed (edges keep their long-poll across an
/// upgrade).
fn etag(desired: &Option<Desired>, switches: &KillSwitches, blessed: &[Active]) -> String {
    let bytes = if blessed.is_empty() {
        serde_json::to_vec(&(desired, switches))
    } else {
        serde_json::to_vec(&(desired, switches, blessed))
    }
    .unwrap_or_default();
    Digest::of(&bytes).short()
}

/// Adds deaths and node-time to a version's record and to what the next flush stores.
fn add_record(
    records: &mut HashMap<Digest, Exposure>,
    pending: &mut HashMap<Digest, Exposure>,
    digest: Digest,
    deaths: u64,
    exposure_ms: u64,
) {
    for e in [
        records.entry(digest).or_default(),
        pending.entry(digest).or_default(),
    ] {
        e.deaths = e.deaths.saturating_add(deaths);
        e.exposure_ms = e.exposure_ms.saturating_add(exposure_ms);
    }
}

/// A heartbeat as the rollout machine reads it.
pub fn to_beat(beat: &Heartbeat) -> Beat {
    let mut counts = [0u64; rampart_rollout::observation::BUCKETS];
    let (unscored, scores) = counts.split_at_mut(1);
    if let Some(u) = unscored.first_mut() {
        *u = beat.scores.unscored;
    }
    for (c, b) in scores.iter_mut().zip(&beat.scores.buckets) {
        *c = *b;
    }
    let apply = beat.verdict.as_ref().map(|v| match v.verdict {
        AckNack::Ack => Apply::Accepted { digest: v.digest },
        AckNack::Nack => Apply::Rejected {
            digest: v.digest,
            codes: v.issues.clone(),
        },
    });
    Beat {
        active: beat.active.map(|a: Active| a.digest),
        apply,
        counters: Counters {
            requests: beat.counters.requests,
            errors_5xx: beat.counters.errors_5xx,
            module_errors: beat.counters.module_errors,
            unscored: beat.scores.unscored,
        },
        scores: ScoreHistogram::from_counts(counts),
        restarts: u32::try_from(beat.counters.restarts).unwrap_or(u32::MAX),
        deaths: beat
            .deaths
            .iter()
            .map(|d| BeatDeath {
                detected_at_ms: d.detected_at_ms,
                active: d.active.map(|a| a.digest),
                uptime_ms: d.uptime_ms,
                active_for_ms: d.active_for_ms,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_api::{Labels, Registration};

    fn fleet() -> Fleet {
        let mut f = Fleet::default();
        for id in ["a", "b"] {
            f.apply(&Write::PutNode(Box::new(NodeRecord {
                registration: Registration {
                    node: id.into(),
                    labels: Labels {
                        pop: "p".into(),
                        region: "r".into(),
                        canary: false,
                    },
                    contract: ContractSpec::default(),
                    software_version: "0".into(),
                },
                registered_at_ms: 1,
            })));
        }
        f
    }

    fn target(v: u64) -> Target {
        Target {
            version: v,
            digest: Digest::of(&v.to_le_bytes()),
        }
    }

    #[test]
    fn a_node_follows_the_fleet_unless_it_has_its_own_target() {
        let mut f = fleet();
        assert_eq!(f.target("features", "a"), None);
        f.apply(&Write::SetDesired {
            kind: "features".into(),
            node: None,
            target: Some(target(1)),
        });
        f.apply(&Write::SetDesired {
            kind: "features".into(),
            node: Some("a".into()),
            target: Some(target(2)),
        });
        assert_eq!(f.target("features", "a"), Some(target(2)));
        assert_eq!(f.target("features", "b"), Some(target(1)));
        f.apply(&Write::ClearNodeDesired {
            kind: "features".into(),
        });
        assert_eq!(f.target("features", "a"), Some(target(1)));
    }

    #[test]
    fn etags_change_with_the_desired_state_only() {
        let mut f = fleet();
        let before = f.desire("features", "a").etag;
        assert_eq!(before, f.desire("features", "b").etag);
        f.apply(&Write::SetKillSwitch(KillSwitchEntry {
            module: Module::Bot,
            node: Some("a".into()),
            enabled: false,
            reason: "drift".into(),
            set_by: "alice".into(),
            at_ms: 5,
        }));
        let a = f.desire("features", "a");
        assert_ne!(a.etag, before);
        assert!(!a.kill_switches.bot.enabled);
        assert_eq!(a.kill_switches.bot.scope, Scope::Node);
        assert_eq!(f.desire("features", "b").etag, before);
        f.apply(&Write::ClearKillSwitch {
            module: Module::Bot,
            node: "a".into(),
        });
        assert_eq!(f.desire("features", "a").etag, before);
    }

    #[test]
    fn a_heartbeat_becomes_a_beat_with_unscored_in_bucket_zero() {
        let mut hb = Heartbeat::empty(0);
        hb.scores.record(1);
        hb.scores.record(99);
        hb.scores.record_unscored();
        hb.counters.requests = 3;
        hb.counters.restarts = 2;
        let b = to_beat(&hb);
        assert_eq!(b.scores.counts()[0], 1);
        assert_eq!(b.scores.counts()[1], 1);
        assert_eq!(b.scores.counts()[99], 1);
        assert_eq!(b.counters.unscored, 1);
        assert_eq!(b.restarts, 2);
    }

    #[test]
    fn a_contract_counts_once_a_quorum_of_enrolled_live_nodes_shares_it() {
        let mut f = fleet();
        let policy = |quorum: usize| NodePolicy {
            contract_quorum: quorum,
            contract_max_age_ms: 100,
        };
        // Registered but never enrolled (an old database): nothing counts.
        assert!(f.contracts(50, &policy(2)).is_empty());
        let tiny = ContractSpec {
            max_features: 1,
            ..ContractSpec::default()
        };
        f.apply(&Write::PutNode(Box::new(NodeRecord {
            registration: Registration {
                node: "c".into(),
                labels: Labels {
                    pop: "p".into(),
                    region: "r".into(),
                    canary: false,
                },
                contract: tiny.clone(),
                software_version: "0".into(),
            },
            registered_at_ms: 1,
        })));
        for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
            f.apply(&Write::PutCredential {
                node: n.into(),
                hash: Digest::of(&[u8::try_from(i).unwrap()]),
                at_ms: 1,
            });
        }
        // Same consumer: the default contract is shared by 2 of 3, the tiny one by 1.
        assert_eq!(f.contracts(50, &policy(2)), vec![ContractSpec::default()]);
        assert_eq!(f.contracts(50, &policy(1)).len(), 2);
        // A quorum above the group: all three must share it; none does.
        assert!(f.contracts(50, &policy(5)).is_empty());
        // Quiet for longer than the max age: aged out, reported once per silence.
        f.beat("a", &Heartbeat::empty(0), 150);
        f.beat("b", &Heartbeat::empty(0), 150);
        assert_eq!(f.contracts(200, &policy(1)), vec![ContractSpec::default()]);
        assert_eq!(f.newly_aged(200, 100), vec![("c".to_owned(), 1)]);
        f.aged_out.insert("c".into());
        assert!(f.newly_aged(200, 100).is_empty());
        // Removal takes the contract and the credential.
        f.apply(&Write::RemoveNode { node: "a".into() });
        assert!(!f.nodes.contains_key("a") && !f.credential_of.contains_key("a"));
        assert_eq!(f.credentials.len(), 2);
    }

    #[test]
    fn health_follows_the_last_beat() {
        let mut f = fleet();
        assert_eq!(
            f.view("features", "a", 10, 100).unwrap().health,
            Health::New
        );
        f.beat("a", &Heartbeat::empty(0), 10);
        assert_eq!(
            f.view("features", "a", 20, 100).unwrap().health,
            Health::Healthy
        );
        assert_eq!(
            f.view("features", "a", 200, 100).unwrap().health,
            Health::Stale
        );
        let mut bad = Heartbeat::empty(1);
        bad.counters.errors_5xx = 1;
        f.beat("a", &bad, 300);
        assert_eq!(
            f.view("features", "a", 300, 100).unwrap().health,
            Health::Degraded
        );
        assert!(f.is_live("a", 300, 100) && !f.is_live("b", 300, 100));
        assert_eq!(f.pending_beats.len(), 1);
    }
}
