//! What heartbeats tell the rollout, per node and pooled by version.
//!
//! The caller (control plane or simulator) feeds every heartbeat to
//! [`Observations::absorb`] and calls [`Observations::sync`] before each reconcile. Requests
//! are pooled by the version that served them, since the start of the current wave: the
//! **new** pool (every node serving the new digest), the **fleet baseline** (every node still
//! serving the previous digest), and the **same-PoP baseline** (nodes on the previous digest
//! in the PoPs of the current wave but not in it: the same traffic mix as the wave, which is
//! the fairest comparison). Pooling at absorb time keeps a reconcile over 1,320 nodes at
//! O(nodes) cheap checks plus O(buckets) statistics.

use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

use crate::plan::NodeIdx;
use crate::rollout::Rollout;

/// Buckets of a [`ScoreHistogram`]: index 0 holds unscored requests, 1..=99 the scores.
pub const BUCKETS: usize = 100;

/// The most issue codes kept per NACK (an edge reports every issue; a few say enough).
pub const MAX_NACK_CODES: usize = 8;

/// The longest gap between two beats of a node counted as exposure (node-time on the version
/// it served): a node silent for longer was likely down, and its silence is not time served.
pub const MAX_EXPOSURE_GAP_MS: u64 = 60_000;

/// Request counters: since the last heartbeat in a [`Beat`], since the window start in a
/// [`NodeState`] or a [`Pool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests served.
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors_5xx: u64,
    /// Requests on which the bot module failed (and the fail policy applied).
    pub module_errors: u64,
    /// Requests left without a score (any reason).
    pub unscored: u64,
}

/// How many requests got each score. Bucket 0 is *unscored*; it sorts below score 1 in the
/// distribution tests, so "everything unscored" is a shift down, like "everything 1".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreHistogram {
    counts: [u64; BUCKETS],
}

/// The outcome of applying a version on a node, as its heartbeat reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Apply {
    /// The node activated this digest (ACK).
    Accepted {
        /// The digest.
        digest: Digest,
    },
    /// The node refused this digest and kept its version (NACK).
    Rejected {
        /// The digest.
        digest: Digest,
        /// Issue codes (`too_many_features`…), at most [`MAX_NACK_CODES`] kept.
        codes: Vec<String>,
    },
}

/// One heartbeat of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// The digest the node serves now (`None`: nothing loaded yet).
    pub active: Option<Digest>,
    /// The last apply outcome, if any since the previous beat.
    pub apply: Option<Apply>,
    /// Counters since the previous beat (deltas).
    pub counters: Counters,
    /// Scores since the previous beat (deltas).
    pub scores: ScoreHistogram,
    /// Process restarts since the previous beat.
    pub restarts: u32,
    /// Deaths the node reported in this beat (each once: the caller drops a death it has
    /// seen before), each with the digest that was active when the run died.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deaths: Vec<BeatDeath>,
}

/// A run of a node that died, as reported in a [`Beat`]: evidence against the version that
/// was active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeatDeath {
    /// When the node detected it (its next boot), ms; with the node it identifies the death.
    pub detected_at_ms: u64,
    /// The digest active when the run died (`None`: it served nothing).
    pub active: Option<Digest>,
    /// How long the process had run, when known.
    pub uptime_ms: Option<u64>,
    /// How long that digest had been active, when known.
    pub active_for_ms: Option<u64>,
}

/// Deaths and node-time on one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// Deaths with this version active.
    pub deaths: u64,
    /// Node-time on this version, ms (gaps between beats, each at most
    /// [`MAX_EXPOSURE_GAP_MS`]).
    pub exposure_ms: u64,
}

/// Deaths and exposure on the new and the previous version since the rollout started (not
/// reset by waves: deaths are rare, and a rate needs the whole record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeathTally {
    /// On the rollout's new version.
    pub new: Exposure,
    /// On the previous version.
    pub previous: Exposure,
}

/// What is known of one node since the window start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Virtual or wall time of the last heartbeat.
    pub last_heartbeat_ms: Option<u64>,
    /// The digest served at the last heartbeat.
    pub active: Option<Digest>,
    /// Issue codes if the node ever NACKed the rollout's new digest (sticky: a NACK is
    /// evidence even if a later beat ACKs).
    pub nack: Option<Vec<String>>,
    /// Restarts since the window start.
    pub restarts: u32,
    /// Counters since the window start or since `active` last changed, whichever is later.
    pub counters: Counters,
    /// In a PoP of the current wave but not in it: part of the same-PoP baseline.
    pub same_pop: bool,
}

/// Counters and scores pooled over a group of nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Summed counters.
    pub counters: Counters,
    /// Summed score histogram.
    pub scores: ScoreHistogram,
}

/// Identifies the window the pools cover: a wave and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The wave.
    pub wave: u16,
    /// When the wave started.
    pub started_ms: u64,
}

/// Everything the gates read, for one rollout. Built with [`Observations::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observations {
    from: Option<Digest>,
    to: Digest,
    nodes: Vec<NodeState>,
    new: Pool,
    fleet_baseline: Pool,
    same_pop_baseline: Pool,
    window: Option<Window>,
    #[serde(default)]
    deaths: DeathTally,
}

/// Why a heartbeat could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ObserveError {
    /// The node index is not in the plan.
    #[error("node index {0} is not in the plan")]
    UnknownNode(u32),
}

// === impl Counters ===

impl Counters {
    /// Adds `other`, saturating.
    pub fn add(&mut self, other: &Counters) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors_5xx = self.errors_5xx.saturating_add(other.errors_5xx);
        self.module_errors = self.module_errors.saturating_add(other.module_errors);
        self.unscored = self.unscored.saturating_add(other.unscored);
    }
}

// === impl ScoreHistogram ===

impl Default for ScoreHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl ScoreHistogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        ScoreHistogram {
            counts: [0; BUCKETS],
        }
    }

    /// From raw counts (index 0 unscored).
    pub fn from_counts(counts: [u64; BUCKETS]) -> Self {
        ScoreHistogram { counts }
    }

    /// The counts, index 0 unscored.
    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// Counts one request with a score; out-of-range values (never sent by an edge) are
    /// clamped into 1..=99 so they keep their order.
    pub fn record_score(&mut self, score: u8) {
        self.add_to(usize::from(score.clamp(1, 99)), 1);
    }

    /// Counts one unscored request.
    pub fn record_unscored(&mut self) {
        self.add_to(0, 1);
    }

    /// Adds `n` to a bucket (0 unscored); an index past the end is ignored.
    pub fn add_to(&mut self, bucket: usize, n: u64) {
        if let Some(c) = self.counts.get_mut(bucket) {
            *c = c.saturating_add(n);
        }
    }

    /// Adds every bucket of `other`, saturating.
    pub fn merge(&mut self, other: &ScoreHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// Requests counted (scored and unscored).
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |s, c| s.saturating_add(*c))
    }

    /// Unscored requests.
    pub fn unscored(&self) -> u64 {
        self.counts.first().copied().unwrap_or(0)
    }
}

impl Serialize for ScoreHistogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.counts.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ScoreHistogram {
    /// A sequence of at most [`BUCKETS`] counts; missing trailing buckets are zero.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<u64>::deserialize(d)?;
        if v.len() > BUCKETS {
            return Err(serde::de::Error::invalid_length(
                v.len(),
                &"at most 100 buckets",
            ));
        }
        let mut counts = [0; BUCKETS];
        for (c, x) in counts.iter_mut().zip(v) {
            *c = x;
        }
        Ok(ScoreHistogram { counts })
    }
}

// === impl Pool ===

impl Pool {
    fn add(&mut self, counters: &Counters, scores: &ScoreHistogram) {
        self.counters.add(counters);
        self.scores.merge(scores);
    }
}

// === impl Beat ===

impl Beat {
    /// A beat from a node serving `active` with no traffic.
    pub fn idle(active: Option<Digest>) -> Self {
        Beat {
            active,
            apply: None,
            counters: Counters::default(),
            scores: ScoreHistogram::new(),
            restarts: 0,
            deaths: Vec::new(),
        }
    }
}

// === impl DeathTally ===

impl DeathTally {
    /// The side a digest counts on: the new version's, the previous one's, or none.
    fn side_mut(
        &mut self,
        active: Option<Digest>,
        from: Option<Digest>,
        to: Digest,
    ) -> Option<&mut Exposure> {
        match active {
            Some(d) if d == to => Some(&mut self.new),
            Some(d) if Some(d) == from => Some(&mut self.previous),
            _ => None,
        }
    }
}

// === impl Observations ===

impl Observations {
    /// Empty observations for `rollout`, with the window of its current wave.
    pub fn new(rollout: &Rollout) -> Self {
        let mut obs = Observations {
            from: rollout.from().map(|f| f.digest),
            to: rollout.to().digest,
            nodes: vec![NodeState::default(); rollout.plan().len()],
            new: Pool::default(),
            fleet_baseline: Pool::default(),
            same_pop_baseline: Pool::default(),
            window: None,
            deaths: DeathTally::default(),
        };
        obs.sync(rollout);
        obs
    }

    /// Records one heartbeat of node `idx` received at `now_ms`.
    pub fn absorb(&mut self, idx: NodeIdx, beat: &Beat, now_ms: u64) -> Result<(), ObserveError> {
        let node = self
            .nodes
            .get_mut(idx.index())
            .ok_or(ObserveError::UnknownNode(idx.0))?;
        // The time since the node's previous beat was served by what it served then.
        if let Some(last) = node.last_heartbeat_ms {
            let gap = now_ms.saturating_sub(last).min(MAX_EXPOSURE_GAP_MS);
            if let Some(e) = self.deaths.side_mut(node.active, self.from, self.to) {
                e.exposure_ms = e.exposure_ms.saturating_add(gap);
            }
        }
        for death in &beat.deaths {
            if let Some(e) = self.deaths.side_mut(death.active, self.from, self.to) {
                e.deaths = e.deaths.saturating_add(1);
            }
        }
        node.last_heartbeat_ms = Some(node.last_heartbeat_ms.map_or(now_ms, |t| t.max(now_ms)));
        if node.active != beat.active {
            node.active = beat.active;
            node.counters = Counters::default();
        }
        node.counters.add(&beat.counters);
        node.restarts = node.restarts.saturating_add(beat.restarts);
        if let Some(Apply::Rejected { digest, codes }) = &beat.apply
            && *digest == self.to
            && node.nack.is_none()
        {
            node.nack = Some(codes.iter().take(MAX_NACK_CODES).cloned().collect());
        }
        if beat.active == Some(self.to) {
            self.new.add(&beat.counters, &beat.scores);
        } else if self.from.is_some() && beat.active == self.from {
            self.fleet_baseline.add(&beat.counters, &beat.scores);
            if node.same_pop {
                self.same_pop_baseline.add(&beat.counters, &beat.scores);
            }
        }
        Ok(())
    }

    /// Starts a new window when `rollout` has moved to another wave (idempotent): pools and
    /// per-node restarts and counters restart from zero, and the same-PoP baseline is
    /// recomputed for the new wave.
    pub fn sync(&mut self, rollout: &Rollout) {
        let Some(window) = rollout.status().phase.window() else {
            return;
        };
        if self.window == Some(window) {
            return;
        }
        self.window = Some(window);
        self.new = Pool::default();
        self.fleet_baseline = Pool::default();
        self.same_pop_baseline = Pool::default();
        let plan = rollout.plan();
        let mut wave_pops = vec![false; plan.pops().len()];
        for idx in plan.wave(window.wave).map_or(&[][..], |w| &w.nodes) {
            if let Some(n) = plan.node(*idx)
                && let Some(p) = wave_pops.get_mut(n.pop as usize)
            {
                *p = true;
            }
        }
        for (state, planned) in self.nodes.iter_mut().zip(plan.nodes()) {
            state.restarts = 0;
            state.counters = Counters::default();
            state.same_pop = planned.wave > window.wave
                && wave_pops
                    .get(planned.pop as usize)
                    .copied()
                    .unwrap_or(false);
        }
    }

    /// Whether these observations were built for this rollout and synced to its wave.
    pub fn matches(&self, rollout: &Rollout) -> bool {
        self.to == rollout.to().digest
            && self.from == rollout.from().map(|f| f.digest)
            && self.nodes.len() == rollout.plan().len()
    }

    /// The rollout's new digest.
    pub fn to(&self) -> Digest {
        self.to
    }

    /// The rollout's previous digest.
    pub fn from(&self) -> Option<Digest> {
        self.from
    }

    /// The window the pools cover.
    pub fn window(&self) -> Option<Window> {
        self.window
    }

    /// One node's state.
    pub fn node(&self, idx: NodeIdx) -> Option<&NodeState> {
        self.nodes.get(idx.index())
    }

    /// Every node's state, in plan order.
    pub fn nodes(&self) -> &[NodeState] {
        &self.nodes
    }

    /// Deaths and exposure per version since the rollout started.
    pub fn deaths(&self) -> &DeathTally {
        &self.deaths
    }

    /// Requests served by the new digest in this window.
    pub fn new_pool(&self) -> &Pool {
        &self.new
    }

    /// Requests served by the previous digest anywhere in this window.
    pub fn fleet_baseline(&self) -> &Pool {
        &self.fleet_baseline
    }

    /// Requests served by the previous digest in the current wave's PoPs (outside the wave).
    pub fn same_pop_baseline(&self) -> &Pool {
        &self.same_pop_baseline
    }
}
