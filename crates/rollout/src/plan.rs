//! The fleet inventory and the plan: which nodes get a new version in which wave.
//!
//! Waves follow fault domains. The canary wave comes first (nodes labelled `canary`, or one
//! node of one PoP), then cumulative shares of the fleet (by default about 10%, 50%, 100%).
//! Whole PoPs go together; a PoP is split only when it is larger than the wave it falls in,
//! and then across two consecutive waves, never more: a PoP is one failure domain, and a
//! version should reach it in at most two steps. PoPs are taken round-robin over regions, so
//! until the last wave every region keeps nodes on the previous version.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Default cumulative share of the fleet after each wave that follows the canary.
pub const DEFAULT_WAVE_SHARES: [f64; 3] = [0.10, 0.50, 1.0];

/// Default bake time of the canary wave: long enough for a few hundred heartbeats' worth of
/// traffic on the canary nodes, short enough to fit between two feature files (5 minutes).
pub const DEFAULT_CANARY_BAKE_MS: u64 = 60_000;

/// Default bake time of each wave after the canary.
pub const DEFAULT_WAVE_BAKE_MS: u64 = 45_000;

/// Default bake time of the single break-glass wave (still verified by every gate).
pub const DEFAULT_BREAK_GLASS_BAKE_MS: u64 = 30_000;

/// The most nodes a plan takes (indices are `u32`; far above any fleet we target).
pub const MAX_NODES: usize = 1_000_000;

/// The most waves a plan has, canary included.
pub const MAX_WAVES: usize = 16;

/// One node of the fleet inventory, as the control plane's registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Unique id (the edge's registered name).
    pub id: String,
    /// The point of presence (city) the node serves: the unit of failure.
    pub pop: String,
    /// The region the PoP belongs to.
    pub region: String,
    /// Labelled as a canary: gets every version first.
    #[serde(default)]
    pub canary: bool,
}

/// How to cut a fleet into waves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanPolicy {
    /// Bake time of the canary wave.
    pub canary_bake_ms: u64,
    /// The waves after the canary: cumulative share of the fleet (strictly increasing, the
    /// last exactly 1.0) and bake time.
    pub waves: Vec<WaveShare>,
    /// Breaks ties between PoPs and regions (and picks the canary when none is labelled), so
    /// the same fleet gives the same plan, and a new seed rotates the early PoPs.
    pub seed: u64,
    /// One wave with the whole fleet. Only a rollout started with a break-glass reason
    /// accepts such a plan.
    pub break_glass: bool,
    /// Bake time of the break-glass wave.
    pub break_glass_bake_ms: u64,
}

/// One wave after the canary, as a policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WaveShare {
    /// Cumulative share of the fleet's nodes once this wave is done, in (0, 1].
    pub share: f64,
    /// How long the wave bakes before it is verified.
    pub bake_ms: u64,
}

/// The position of a node in a [`Plan`] (nodes are sorted by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeIdx(pub u32);

/// A node as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedNode {
    /// The node's id.
    pub id: String,
    /// Index into [`Plan::pops`].
    pub pop: u32,
    /// The region.
    pub region: String,
    /// Labelled canary.
    pub canary: bool,
    /// The wave the node belongs to.
    pub wave: u16,
}

/// One wave of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// The wave's nodes, ascending.
    pub nodes: Vec<NodeIdx>,
    /// Bake time.
    pub bake_ms: u64,
}

/// Waves over a fleet. Built by [`plan`]; deserialized plans are checked (indices in range,
/// every node in exactly one wave), so a corrupt stored plan is an error, not a panic later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPlan")]
pub struct Plan {
    nodes: Vec<PlannedNode>,
    pops: Vec<String>,
    waves: Vec<Wave>,
    break_glass: bool,
}

/// Why a fleet could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No nodes.
    #[error("the fleet is empty")]
    EmptyFleet,
    /// More nodes than [`MAX_NODES`].
    #[error("{count} nodes, over the limit of {MAX_NODES}")]
    TooManyNodes {
        /// How many were given.
        count: usize,
    },
    /// A node has an empty id.
    #[error("a node has an empty id")]
    EmptyId,
    /// A node has no PoP.
    #[error("node {id} has no pop")]
    MissingPop {
        /// The node.
        id: String,
    },
    /// Two nodes share an id.
    #[error("node id {id} appears twice")]
    DuplicateNode {
        /// The id.
        id: String,
    },
    /// The nodes of one PoP name different regions.
    #[error("pop {pop} is in two regions ({first} and {second})")]
    PopInTwoRegions {
        /// The PoP.
        pop: String,
        /// One region.
        first: String,
        /// Another.
        second: String,
    },
    /// The policy is not usable.
    #[error("invalid plan policy: {0}")]
    InvalidPolicy(&'static str),
    /// A stored plan is inconsistent.
    #[error("invalid stored plan: {0}")]
    Corrupt(&'static str),
}

/// The serialized shape of a [`Plan`], before its checks.
#[derive(Deserialize)]
struct RawPlan {
    nodes: Vec<PlannedNode>,
    pops: Vec<String>,
    waves: Vec<Wave>,
    break_glass: bool,
}

/// A group of nodes of one PoP that the filler keeps together.
#[derive(Debug)]
struct Unit {
    /// Sorted node indices.
    nodes: Vec<u32>,
    /// The rest of a PoP already started in an earlier wave: must go whole into the next one.
    pinned: bool,
}

/// Builds the waves for `nodes`. The result does not depend on the order of `nodes`.
pub fn plan(nodes: &[Node], policy: &PlanPolicy) -> Result<Plan, PlanError> {
    policy.check()?;
    if nodes.is_empty() {
        return Err(PlanError::EmptyFleet);
    }
    if nodes.len() > MAX_NODES {
        return Err(PlanError::TooManyNodes { count: nodes.len() });
    }
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for pair in sorted.windows(2) {
        if let [a, b] = pair
            && a.id == b.id
        {
            return Err(PlanError::DuplicateNode { id: a.id.clone() });
        }
    }

    // PoPs in name order, with their nodes (ascending, as `sorted` is) and region.
    let mut by_pop: BTreeMap<&str, (&str, Vec<u32>)> = BTreeMap::new();
    for (i, node) in (0u32..).zip(&sorted) {
        if node.id.is_empty() {
            return Err(PlanError::EmptyId);
        }
        if node.pop.is_empty() {
            return Err(PlanError::MissingPop {
                id: node.id.clone(),
            });
        }
        let entry = by_pop
            .entry(node.pop.as_str())
            .or_insert_with(|| (node.region.as_str(), Vec::new()));
        if entry.0 != node.region {
            return Err(PlanError::PopInTwoRegions {
                pop: node.pop.clone(),
                first: entry.0.to_owned(),
                second: node.region.clone(),
            });
        }
        entry.1.push(i);
    }
    let pops: Vec<String> = by_pop.keys().map(|p| (*p).to_owned()).collect();
    let mut planned: Vec<PlannedNode> = sorted
        .iter()
        .map(|n| PlannedNode {
            id: n.id.clone(),
            pop: pops
                .binary_search_by(|p| p.as_str().cmp(n.pop.as_str()))
                .ok()
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(0),
            region: n.region.clone(),
            canary: n.canary,
            wave: 0,
        })
        .collect();

    let all: Vec<u32> = (0u32..).take(sorted.len()).collect();
    let waves = if policy.break_glass {
        vec![(all, policy.break_glass_bake_ms)]
    } else {
        let order = spread_order(&by_pop, policy.seed);
        fill(&order, &sorted, policy)
    };

    let mut out = Vec::with_capacity(waves.len());
    for (w, (members, bake_ms)) in (0u16..).zip(waves) {
        for &i in &members {
            if let Some(node) = planned.get_mut(i as usize) {
                node.wave = w;
            }
        }
        out.push(Wave {
            nodes: members.into_iter().map(NodeIdx).collect(),
            bake_ms,
        });
    }
    Ok(Plan {
        nodes: planned,
        pops,
        waves: out,
        break_glass: policy.break_glass,
    })
}

/// PoPs (with their nodes) in the order waves take them: regions and PoPs shuffled by the
/// seed (ties by name), then round-robin over regions.
fn spread_order<'a>(
    by_pop: &'a BTreeMap<&'a str, (&'a str, Vec<u32>)>,
    seed: u64,
) -> Vec<&'a [u32]> {
    let mut regions: BTreeMap<&str, Vec<Ranked<'_>>> = BTreeMap::new();
    for (pop, (region, members)) in by_pop {
        regions
            .entry(region)
            .or_default()
            .push((mix(seed, pop), pop, members.as_slice()));
    }
    let mut regions: Vec<(u64, &str, Vec<Ranked<'_>>)> = regions
        .into_iter()
        .map(|(name, mut pops)| {
            pops.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            (mix(seed ^ REGION_SALT, name), name, pops)
        })
        .collect();
    regions.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut order = Vec::with_capacity(by_pop.len());
    let mut round = 0;
    while order.len() < by_pop.len() {
        for (_, _, pops) in &regions {
            if let Some((_, _, members)) = pops.get(round) {
                order.push(*members);
            }
        }
        round += 1;
    }
    order
}

/// A PoP ranked for the spread order: seeded rank, name, nodes.
type Ranked<'a> = (u64, &'a str, &'a [u32]);

/// Cuts the ordered PoPs into waves: `(members, bake_ms)`, empty waves dropped.
fn fill(order: &[&[u32]], sorted: &[&Node], policy: &PlanPolicy) -> Vec<(Vec<u32>, u64)> {
    let total = sorted.len();
    let is_canary = |i: &u32| sorted.get(*i as usize).is_some_and(|n| n.canary);
    let mut canary: Vec<u32> = order
        .iter()
        .flat_map(|members| members.iter().copied())
        .filter(is_canary)
        .collect();
    if canary.is_empty() {
        // No labels: the first node of the first PoP in seeded order.
        canary.extend(order.first().and_then(|m| m.first()).copied());
    }
    canary.sort_unstable();

    // The rest of each PoP that has a canary is pinned to the wave right after the canary.
    let mut pinned = VecDeque::new();
    let mut free = VecDeque::new();
    for members in order {
        let rest: Vec<u32> = members
            .iter()
            .copied()
            .filter(|i| canary.binary_search(i).is_err())
            .collect();
        if rest.is_empty() {
            continue;
        }
        if rest.len() < members.len() {
            pinned.push_back(Unit {
                nodes: rest,
                pinned: true,
            });
        } else {
            free.push_back(Unit {
                nodes: rest,
                pinned: false,
            });
        }
    }
    let mut queue: VecDeque<Unit> = pinned.into_iter().chain(free).collect();

    let mut assigned = canary.len();
    let mut waves = vec![(canary, policy.canary_bake_ms)];
    let mut previous_target = 0;
    let last = policy.waves.len().saturating_sub(1);
    for (k, wave) in policy.waves.iter().enumerate() {
        let target = share_target(wave.share, total);
        let is_last = k == last;
        let wave_size = target.saturating_sub(previous_target).max(1);
        previous_target = target;
        let mut members = Vec::new();
        while queue.front().is_some_and(|u| u.pinned) {
            if let Some(unit) = queue.pop_front() {
                assigned += unit.nodes.len();
                members.extend(unit.nodes);
            }
        }
        while (assigned < target || is_last)
            && let Some(mut unit) = queue.pop_front()
        {
            let size = unit.nodes.len();
            if is_last || assigned + size <= target {
                assigned += size;
                members.extend(unit.nodes);
                continue;
            }
            let gap = target - assigned;
            let over = assigned + size - target;
            if size > wave_size && !unit.pinned {
                // The PoP is larger than the whole wave: its first `gap` nodes now, the rest
                // whole in the next wave.
                let rest = unit.nodes.split_off(gap);
                assigned += unit.nodes.len();
                members.extend(unit.nodes);
                queue.push_front(Unit {
                    nodes: rest,
                    pinned: true,
                });
            } else if over <= gap {
                assigned += size;
                members.extend(unit.nodes);
            } else {
                queue.push_front(unit);
                break;
            }
        }
        if !members.is_empty() {
            members.sort_unstable();
            waves.push((members, wave.bake_ms));
        }
    }
    waves
}

/// Nodes that should be done after a wave of cumulative `share` in a fleet of `total`.
fn share_target(share: f64, total: usize) -> usize {
    if share >= 1.0 {
        return total;
    }
    // `share` is checked finite and in (0, 1); fleets are at most MAX_NODES, exact in f64.
    // The epsilon keeps a product that should be a whole number of nodes, but lands a hair
    // above it in binary, from rounding up a node.
    let t = (share * total as f64 - 1e-9).ceil();
    if t <= 0.0 { 0 } else { (t as usize).min(total) }
}

/// Salt so a region and a PoP with the same name do not get the same rank.
const REGION_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// A stable 64-bit hash of `seed` and `s` (FNV-1a then a splitmix finalizer): std's hasher
/// is not promised stable across releases, and a plan must not change with the compiler.
fn mix(seed: u64, s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

// === impl PlanPolicy ===

impl Default for PlanPolicy {
    fn default() -> Self {
        PlanPolicy {
            canary_bake_ms: DEFAULT_CANARY_BAKE_MS,
            waves: DEFAULT_WAVE_SHARES
                .iter()
                .map(|&share| WaveShare {
                    share,
                    bake_ms: DEFAULT_WAVE_BAKE_MS,
                })
                .collect(),
            seed: 0,
            break_glass: false,
            break_glass_bake_ms: DEFAULT_BREAK_GLASS_BAKE_MS,
        }
    }
}

impl PlanPolicy {
    /// The break-glass policy: the whole fleet in one wave.
    pub fn break_glass() -> Self {
        PlanPolicy {
            break_glass: true,
            ..PlanPolicy::default()
        }
    }

    fn check(&self) -> Result<(), PlanError> {
        if self.waves.is_empty() {
            return Err(PlanError::InvalidPolicy("no waves after the canary"));
        }
        if self.waves.len() + 1 > MAX_WAVES {
            return Err(PlanError::InvalidPolicy("too many waves"));
        }
        let mut previous = 0.0;
        for wave in &self.waves {
            if !wave.share.is_finite() || wave.share <= previous || wave.share > 1.0 {
                return Err(PlanError::InvalidPolicy(
                    "wave shares must increase strictly within (0, 1]",
                ));
            }
            previous = wave.share;
        }
        if previous < 1.0 {
            return Err(PlanError::InvalidPolicy(
                "the last wave must reach share 1.0",
            ));
        }
        Ok(())
    }
}

// === impl NodeIdx ===

impl NodeIdx {
    /// As a `usize` index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

// === impl Plan ===

impl Plan {
    /// Every node, sorted by id.
    pub fn nodes(&self) -> &[PlannedNode] {
        &self.nodes
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the plan has no nodes (never, for a plan from [`plan`]).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// PoP names, sorted; [`PlannedNode::pop`] indexes this.
    pub fn pops(&self) -> &[String] {
        &self.pops
    }

    /// The waves, canary first.
    pub fn waves(&self) -> &[Wave] {
        &self.waves
    }

    /// One wave.
    pub fn wave(&self, wave: u16) -> Option<&Wave> {
        self.waves.get(usize::from(wave))
    }

    /// Number of waves.
    pub fn wave_count(&self) -> u16 {
        u16::try_from(self.waves.len()).unwrap_or(u16::MAX)
    }

    /// Whether this is a single-wave break-glass plan.
    pub fn is_break_glass(&self) -> bool {
        self.break_glass
    }

    /// One node.
    pub fn node(&self, idx: NodeIdx) -> Option<&PlannedNode> {
        self.nodes.get(idx.index())
    }

    /// The index of the node with this id (binary search, no allocation).
    pub fn index_of(&self, id: &str) -> Option<NodeIdx> {
        self.nodes
            .binary_search_by(|n| n.id.as_str().cmp(id))
            .ok()
            .and_then(|i| u32::try_from(i).ok())
            .map(NodeIdx)
    }

    /// The wave of a node.
    pub fn wave_of(&self, idx: NodeIdx) -> Option<u16> {
        self.node(idx).map(|n| n.wave)
    }

    /// The nodes of waves `0..touched`, in wave order.
    pub fn touched(&self, touched: u16) -> impl Iterator<Item = NodeIdx> + '_ {
        self.waves
            .iter()
            .take(usize::from(touched))
            .flat_map(|w| w.nodes.iter().copied())
    }

    /// The ids of the nodes of waves `first..=last`.
    pub fn ids(&self, first: u16, last: u16) -> Vec<String> {
        self.waves
            .iter()
            .enumerate()
            .skip(usize::from(first))
            .take(usize::from(last.saturating_sub(first)) + 1)
            .flat_map(|(_, w)| w.nodes.iter())
            .filter_map(|&i| self.node(i).map(|n| n.id.clone()))
            .collect()
    }
}

impl TryFrom<RawPlan> for Plan {
    type Error = PlanError;

    fn try_from(raw: RawPlan) -> Result<Self, Self::Error> {
        if raw.nodes.is_empty() || raw.waves.is_empty() {
            return Err(PlanError::Corrupt("no nodes or no waves"));
        }
        if raw.nodes.len() > MAX_NODES || raw.waves.len() > MAX_WAVES {
            return Err(PlanError::Corrupt("over the limits"));
        }
        for pair in raw.nodes.windows(2) {
            if let [a, b] = pair
                && a.id >= b.id
            {
                return Err(PlanError::Corrupt("nodes not sorted by unique id"));
            }
        }
        let mut seen = vec![false; raw.nodes.len()];
        for (w, wave) in (0u16..).zip(&raw.waves) {
            if wave.nodes.is_empty() {
                return Err(PlanError::Corrupt("empty wave"));
            }
            for idx in &wave.nodes {
                let node = raw
                    .nodes
                    .get(idx.index())
                    .ok_or(PlanError::Corrupt("node index out of range"))?;
                if node.wave != w || (node.pop as usize) >= raw.pops.len() {
                    return Err(PlanError::Corrupt("node wave or pop inconsistent"));
                }
                match seen.get_mut(idx.index()) {
                    Some(s) if !*s => *s = true,
                    _ => return Err(PlanError::Corrupt("node in two waves")),
                }
            }
        }
        if seen.iter().any(|s| !s) {
            return Err(PlanError::Corrupt("node in no wave"));
        }
        if raw.break_glass && raw.waves.len() != 1 {
            return Err(PlanError::Corrupt("break-glass plan with several waves"));
        }
        Ok(Plan {
            nodes: raw.nodes,
            pops: raw.pops,
            waves: raw.waves,
            break_glass: raw.break_glass,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(pops: usize, per_pop: usize, regions: usize) -> Vec<Node> {
        let mut out = Vec::new();
        for p in 0..pops {
            for n in 0..per_pop {
                out.push(Node {
                    id: format!("pop{p:03}-n{n}"),
                    pop: format!("pop{p:03}"),
                    region: format!("r{}", p % regions.max(1)),
                    canary: false,
                });
            }
        }
        out
    }

    fn sizes(plan: &Plan) -> Vec<usize> {
        plan.waves().iter().map(|w| w.nodes.len()).collect()
    }

    #[test]
    fn the_full_fleet_gets_one_canary_then_10_50_100_percent() {
        let plan = plan(&fleet(330, 4, 6), &PlanPolicy::default()).unwrap();
        assert_eq!(sizes(&plan), vec![1, 131, 528, 660]);
        let bakes: Vec<u64> = plan.waves().iter().map(|w| w.bake_ms).collect();
        assert_eq!(
            bakes,
            vec![
                DEFAULT_CANARY_BAKE_MS,
                DEFAULT_WAVE_BAKE_MS,
                DEFAULT_WAVE_BAKE_MS,
                DEFAULT_WAVE_BAKE_MS
            ]
        );
        // The canary's PoP-mates come right after it.
        let canary = plan.waves()[0].nodes[0];
        let pop = plan.node(canary).unwrap().pop;
        let mates: Vec<u16> = plan
            .nodes()
            .iter()
            .filter(|n| n.pop == pop && n.id != plan.node(canary).unwrap().id)
            .map(|n| n.wave)
            .collect();
        assert_eq!(mates, vec![1, 1, 1]);
    }

    #[test]
    fn labelled_canaries_form_the_first_wave() {
        let mut nodes = fleet(10, 2, 2);
        nodes[3].canary = true;
        nodes[8].canary = true;
        let plan = plan(&nodes, &PlanPolicy::default()).unwrap();
        let first: Vec<&str> = plan.waves()[0]
            .nodes
            .iter()
            .map(|&i| plan.node(i).unwrap().id.as_str())
            .collect();
        assert_eq!(first, vec![nodes[3].id.as_str(), nodes[8].id.as_str()]);
    }

    #[test]
    fn early_waves_spread_over_regions() {
        let plan = plan(&fleet(60, 4, 6), &PlanPolicy::default()).unwrap();
        let regions: std::collections::BTreeSet<&str> = plan.waves()[1]
            .nodes
            .iter()
            .map(|&i| plan.node(i).unwrap().region.as_str())
            .collect();
        assert_eq!(regions.len(), 6, "the 10% wave touches every region");
    }

    #[test]
    fn a_pop_larger_than_its_wave_is_split_in_two_consecutive_waves() {
        // 2 PoPs of 100: the canary PoP's rest goes whole to wave 1, the other PoP whole later.
        let plan = plan(&fleet(2, 100, 1), &PlanPolicy::default()).unwrap();
        assert_eq!(sizes(&plan), vec![1, 99, 100]);
        // One PoP of 3 small ones plus a huge one.
        let mut nodes = fleet(3, 1, 1);
        nodes.extend((0..50).map(|n| Node {
            id: format!("big-{n:02}"),
            pop: "big".into(),
            region: "r0".into(),
            canary: false,
        }));
        let plan = super::plan(&nodes, &PlanPolicy::default()).unwrap();
        let big_waves: std::collections::BTreeSet<u16> = plan
            .nodes()
            .iter()
            .filter(|n| n.id.starts_with("big"))
            .map(|n| n.wave)
            .collect();
        assert!(big_waves.len() <= 2, "{big_waves:?}");
    }

    #[test]
    fn tiny_fleets_get_no_empty_waves() {
        assert_eq!(
            sizes(&plan(&fleet(1, 1, 1), &PlanPolicy::default()).unwrap()),
            vec![1]
        );
        assert_eq!(
            sizes(&plan(&fleet(1, 2, 1), &PlanPolicy::default()).unwrap()),
            vec![1, 1]
        );
        assert_eq!(
            sizes(&plan(&fleet(3, 1, 1), &PlanPolicy::default()).unwrap()),
            vec![1, 1, 1]
        );
    }

    #[test]
    fn break_glass_is_one_wave() {
        let plan = plan(&fleet(5, 3, 2), &PlanPolicy::break_glass()).unwrap();
        assert_eq!(sizes(&plan), vec![15]);
        assert!(plan.is_break_glass());
    }

    #[test]
    fn the_seed_rotates_the_canary_deterministically() {
        let nodes = fleet(50, 2, 5);
        let a = plan(&nodes, &PlanPolicy::default()).unwrap();
        let b = plan(&nodes, &PlanPolicy::default()).unwrap();
        assert_eq!(a, b);
        let canaries: std::collections::BTreeSet<NodeIdx> = (0..20)
            .map(|seed| {
                let p = plan(
                    &nodes,
                    &PlanPolicy {
                        seed,
                        ..PlanPolicy::default()
                    },
                )
                .unwrap();
                p.waves()[0].nodes[0]
            })
            .collect();
        assert!(canaries.len() > 5, "seeds pick different canaries");
    }

    #[test]
    fn bad_inventories_and_policies_are_errors() {
        let policy = PlanPolicy::default();
        assert_eq!(plan(&[], &policy), Err(PlanError::EmptyFleet));
        let mut nodes = fleet(2, 2, 1);
        nodes[1].id = nodes[0].id.clone();
        assert!(matches!(
            plan(&nodes, &policy),
            Err(PlanError::DuplicateNode { .. })
        ));
        let mut nodes = fleet(2, 2, 1);
        nodes[1].region = "elsewhere".into();
        assert!(matches!(
            plan(&nodes, &policy),
            Err(PlanError::PopInTwoRegions { .. })
        ));
        let mut nodes = fleet(2, 2, 1);
        nodes[2].pop.clear();
        assert!(matches!(
            plan(&nodes, &policy),
            Err(PlanError::MissingPop { .. })
        ));
        let mut nodes = fleet(2, 2, 1);
        nodes[0].id.clear();
        assert_eq!(plan(&nodes, &policy), Err(PlanError::EmptyId));
        for shares in [vec![], vec![0.5], vec![0.5, 0.4, 1.0], vec![f64::NAN, 1.0]] {
            let policy = PlanPolicy {
                waves: shares
                    .into_iter()
                    .map(|share| WaveShare { share, bake_ms: 1 })
                    .collect(),
                ..PlanPolicy::default()
            };
            assert!(matches!(
                plan(&fleet(2, 2, 1), &policy),
                Err(PlanError::InvalidPolicy(_))
            ));
        }
    }

    #[test]
    fn index_lookup_and_serde_round_trip() {
        let plan = plan(&fleet(7, 3, 2), &PlanPolicy::default()).unwrap();
        for (i, n) in plan.nodes().iter().enumerate() {
            assert_eq!(plan.index_of(&n.id), Some(NodeIdx(i as u32)));
        }
        assert_eq!(plan.index_of("nope"), None);
        let json = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        // A stored plan whose wave names a node out of range is refused.
        let corrupt = json.replacen("\"nodes\":[0", "\"nodes\":[999", 1);
        assert!(corrupt != json);
        assert!(serde_json::from_str::<Plan>(&corrupt).is_err());
    }
}
