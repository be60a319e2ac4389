//! The fleet: PoPs of nodes, the files and switches travelling to them, and their traffic.
//!
//! Each step (one virtual second) every node boots if its restart is over, takes what reached
//! it, and serves its share of the traffic: a node's request rate for the step, split into
//! humans and bots by its PoP's mix, scored by the distribution of the model it serves (see
//! [`crate::traffic`]). The step's counts go to the report's [`Tally`]; while a rollout runs,
//! each reachable node also sends a heartbeat ([`Beat`]) with the same counts, its restarts
//! and the deaths it detected at boot. Deaths detected while no rollout runs are reported
//! to a control plane that keeps them for no rollout (the replay does not model aftercare).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use rampart_artifact::{Digest, Keyring};
use rampart_ingest::{BootError, SentinelConfig, VersionDigest};
use rampart_rollout::{Beat, Counters, ScoreHistogram};
use rampart_traffic::Rng;

use crate::clock::{Calendar, SECOND};
use crate::fault::Effect;
use crate::mode::Layer;
use crate::node::guarded::{Edge, EdgeConfig};
use crate::node::naive::{Kind, Loads, Proxy, Supervisor};
use crate::node::{Node, Serving};
use crate::producer::Publication;
use crate::scenario::{RestartTarget, Scenario};
use crate::traffic::{Dist, HISTOGRAM_BUCKETS, Models};

/// Salt of the fleet's random stream (PoP sizes and mixes, wedge-prone nodes, push delays).
const FLEET_SALT: u64 = 0xf1ee_7000;
/// Salt of the streams that pick the nodes each `[[fault]]` hits (one stream per entry, apart
/// from the fleet's, so adding a fault moves nothing else).
const FAULT_SALT: u64 = 0xfa17_0000;

/// Which edge software the fleet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    /// The naive proxies (FL2 and FL), optionally under rampart's crash-loop sentinel.
    Naive {
        /// Supervise each process with the sentinel, with these thresholds.
        sentinel: Option<SentinelConfig>,
        /// Last-known-good takes only blessed versions.
        require_blessing: bool,
    },
    /// rampart's edge: a real ingest store per node.
    Guarded {
        /// The store's sentinel thresholds.
        sentinel: SentinelConfig,
        /// Last-known-good takes only blessed versions.
        require_blessing: bool,
    },
}

/// One node of the fleet.
#[derive(Debug)]
pub struct SimNode {
    /// Its id, as the control plane's registry knows it.
    pub id: String,
    /// Index of its PoP.
    pub pop: u32,
    /// Its software.
    pub node: Node,
    /// Whether a request of it ever failed or was slowed, or a human was blocked by a faulty
    /// file.
    pub affected: bool,
    /// The `[[fault]]` entries that hit it (bit `i`: entry `i`).
    pub hits: u32,
    /// The marked file it serves and since when (process up with it loaded).
    since: Option<(Digest, u64)>,
}

/// A point of presence.
#[derive(Debug, Clone)]
pub struct Pop {
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Requests per second of each of its nodes.
    pub rate: f64,
    /// Share of its requests sent by bots.
    pub bot_share: f64,
    /// Its nodes are canaries.
    pub canary: bool,
    /// Cut off from the control plane until then.
    pub partitioned_until: u64,
}

/// Counts of one step (or summed over a minute, a bucket, a run). Requests are scaled to the
/// fleet's rate, so they are fractional.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Requests served or failed.
    pub requests: f64,
    /// Requests answered with a 5xx (node down or failing).
    pub failed: f64,
    /// Requests from people.
    pub humans: f64,
    /// People blocked by a "block bots" rule, for any reason (the model's own mistakes too).
    pub humans_blocked: f64,
    /// People blocked because of the fault: a score 0 from a file the proxy could not load, or
    /// a score from a faulty file.
    pub humans_blocked_by_fault: f64,
    /// Requests passed unscored.
    pub unscored: f64,
    /// Requests slowed by a fault (served, late).
    pub slowed: f64,
}

/// Something on its way to a node.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A feature file.
    File(Arc<Publication>),
    /// The bot module's kill switch.
    KillSwitch(bool),
    /// The control plane's blessed versions, newest first (a heartbeat answer carries them).
    Blessed(Arc<[VersionDigest]>),
}

#[derive(Debug)]
struct Pending {
    at: u64,
    seq: u64,
    node: usize,
    delivery: Delivery,
}

/// The fleet.
#[derive(Debug)]
pub struct Fleet {
    nodes: Vec<SimNode>,
    pops: Vec<Pop>,
    queue: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    rng: Rng,
    models: Models,
    loads: Loads,
    calendar: Calendar,
    block_rule_share: f64,
    /// Files carrying process faults that were sent, by digest: what a node serving one does.
    marked: HashMap<Digest, Arc<Publication>>,
    /// Faulty files that were sent.
    faulty: HashSet<Digest>,
    /// The first time a node-level layer acted on a faulty file: an edge's NACK, or the
    /// sentinel poisoning a version on a naive proxy.
    first_defence: Option<(u64, Layer)>,
}

// === impl Fleet ===

impl Fleet {
    /// Builds the scenario's fleet running `kind`, every node up with nothing loaded.
    /// Guarded nodes get a data dir each under `data_root`.
    pub fn new(
        scenario: &Scenario,
        kind: EdgeKind,
        models: Models,
        keyring: &Keyring,
        data_root: &Path,
        now: u64,
    ) -> Result<Fleet, BootError> {
        let f = &scenario.fleet;
        let mut rng = Rng::new(scenario.seed ^ FLEET_SALT);
        let pops: Vec<Pop> = (0..f.pops)
            .map(|p| {
                let weight = 1.0 + f.pop_weight_spread * (2.0 * rng.unit() - 1.0);
                let bot = f.bot_share + f.bot_share_spread * (2.0 * rng.unit() - 1.0);
                Pop {
                    name: format!("pop-{p:04}"),
                    region: format!("region-{}", p % f.regions),
                    rate: f.requests_per_node * weight,
                    bot_share: bot.clamp(0.0, 1.0),
                    canary: p < f.canary_pops,
                    partitioned_until: 0,
                }
            })
            .collect();
        let total = scenario.node_count();
        // Old-proxy nodes are spread over PoPs: node 0 of every PoP first, then node 1…, so
        // every PoP (a canary PoP too) has its share of them.
        let fl_nodes = (scenario.proxy.fl_share * total as f64).round() as usize;
        let mut fault_rngs: Vec<Rng> = (0..scenario.faults.len())
            .map(|i| {
                Rng::new(scenario.seed ^ FAULT_SALT ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9))
            })
            .collect();
        let mut nodes = Vec::with_capacity(total);
        for (p, pop) in pops.iter().enumerate() {
            for j in 0..f.nodes_per_pop as usize {
                let rank = j * f.pops as usize + p;
                let id = format!("{}-n{j:03}", pop.name);
                // The same positions run the old proxy in the naive fleet; a fault limited to
                // a proxy kind hits the same places whichever software runs there.
                let is_fl = rank < fl_nodes;
                let mut hits = 0u32;
                for (i, (fault, rng)) in scenario.faults.iter().zip(&mut fault_rngs).enumerate() {
                    if fault.hits(is_fl, rng.unit()) {
                        hits |= 1 << i;
                    }
                }
                let node = match &kind {
                    EdgeKind::Naive {
                        sentinel,
                        require_blessing,
                    } => {
                        let proxy_kind = if is_fl { Kind::Fl } else { Kind::Fl2 };
                        let wedge = (proxy_kind == Kind::Fl2
                            && rng.chance(scenario.proxy.wedge_share))
                        .then_some(scenario.proxy.wedge_after_ms);
                        let mut proxy = Proxy::new(
                            proxy_kind,
                            scenario.proxy.restart_ms,
                            scenario.proxy.fl_module_off,
                            wedge,
                            sentinel.clone().map(Supervisor::new),
                        );
                        if *require_blessing {
                            proxy.require_blessing();
                        }
                        Node::Naive(Box::new(proxy))
                    }
                    EdgeKind::Guarded {
                        sentinel,
                        require_blessing,
                    } => Node::Guarded(Box::new(Edge::boot(
                        data_root.join(&id),
                        keyring.clone(),
                        EdgeConfig {
                            sentinel: sentinel.clone(),
                            require_blessing: *require_blessing,
                        },
                        scenario.calendar,
                        scenario.proxy.restart_ms,
                        now,
                    )?)),
                };
                nodes.push(SimNode {
                    id,
                    pop: p as u32,
                    node,
                    affected: false,
                    hits,
                    since: None,
                });
            }
        }
        Ok(Fleet {
            nodes,
            pops,
            queue: BinaryHeap::new(),
            seq: 0,
            rng,
            models,
            loads: Loads::default(),
            calendar: scenario.calendar,
            block_rule_share: scenario.customers.block_rule_share,
            marked: HashMap::new(),
            faulty: HashSet::new(),
            first_defence: None,
        })
    }

    /// The nodes.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// The PoPs.
    pub fn pops(&self) -> &[Pop] {
        &self.pops
    }

    /// The models and their distributions.
    pub fn models_mut(&mut self) -> &mut Models {
        &mut self.models
    }

    /// Sends `delivery` to node `node`, arriving at `at`.
    pub fn send(&mut self, node: usize, delivery: Delivery, at: u64) {
        if let Delivery::File(f) = &delivery {
            if !f.marks.is_empty() && !self.marked.contains_key(&f.digest) {
                self.marked.insert(f.digest, Arc::clone(f));
            }
            if f.faulty {
                self.faulty.insert(f.digest);
            }
        }
        self.seq += 1;
        self.queue.push(Reverse(Pending {
            at,
            seq: self.seq,
            node,
            delivery,
        }));
    }

    /// Sends `delivery` to every node, each at `now` plus a random delay below `spread`.
    pub fn broadcast(&mut self, delivery: &Delivery, now: u64, spread: u64) {
        for node in 0..self.nodes.len() {
            let delay = if spread == 0 {
                0
            } else {
                self.rng.below(spread)
            };
            self.send(node, delivery.clone(), now.saturating_add(delay));
        }
    }

    /// Cuts the last `pops` PoPs off from the control plane until `until`.
    pub fn partition(&mut self, pops: u32, until: u64) {
        let n = self.pops.len();
        for pop in self.pops.iter_mut().skip(n.saturating_sub(pops as usize)) {
            pop.partitioned_until = pop.partitioned_until.max(until);
        }
    }

    /// Whether node `i` can reach the control plane at `now`.
    pub fn reachable(&self, i: usize, now: u64) -> bool {
        self.nodes
            .get(i)
            .and_then(|n| self.pops.get(n.pop as usize))
            .is_some_and(|p| p.partitioned_until <= now)
    }

    /// Operator restarts: `share` (rounded up) of the nodes `target` names, first ids first.
    /// Returns how many.
    pub fn restart(&mut self, target: RestartTarget, share: f64, now: u64) -> usize {
        let chosen: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| match target {
                RestartTarget::All => true,
                RestartTarget::Unhealthy => match &n.node {
                    Node::Naive(p) => p.unhealthy(),
                    Node::Guarded(e) => e.unhealthy(),
                },
            })
            .map(|(i, _)| i)
            .collect();
        let count = (share * chosen.len() as f64).ceil() as usize;
        for &i in chosen.iter().take(count) {
            if let Some(n) = self.nodes.get_mut(i) {
                match &mut n.node {
                    Node::Naive(p) => p.restart(now),
                    Node::Guarded(e) => e.restart(now),
                }
            }
        }
        count.min(chosen.len())
    }

    /// Operators tell every node to go back to its own last-known-good file. Only the naive
    /// proxies have such an order; rampart's operators roll back through the control plane
    /// (see [`crate::scenario::Action::PushLastGood`]). Returns how many nodes had one.
    pub fn rollback_last_good(&mut self, now: u64) -> usize {
        let mut n = 0;
        for node in &mut self.nodes {
            if let Node::Naive(p) = &mut node.node
                && p.last_good().is_some()
            {
                p.rollback_last_good(now, &mut self.loads, &mut self.models);
                n += 1;
            }
        }
        n
    }

    /// One step of `dt` ending at `now`: deliveries that arrived, boots, and traffic. With
    /// `beats`, every reachable node that is up also reports a heartbeat `(node, beat)`.
    pub fn step(
        &mut self,
        now: u64,
        dt: u64,
        tally: &mut Tally,
        mut beats: Option<&mut Vec<(usize, Beat)>>,
    ) -> Result<(), BootError> {
        self.deliver(now);
        let secs = dt as f64 / SECOND as f64;
        let rule = self.block_rule_share;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let Some(pop) = self.pops.get(n.pop as usize) else {
                continue;
            };
            let requests = pop.rate * secs;
            match &mut n.node {
                Node::Naive(p) => {
                    let poisonings = (p.poisonings(), p.recurrence_poisonings());
                    p.advance(now, &mut self.loads, &mut self.models);
                    if p.poisonings() > poisonings.0 && self.first_defence.is_none() {
                        let layer = if p.recurrence_poisonings() > poisonings.1 {
                            Layer::Recurrence
                        } else {
                            Layer::Sentinel
                        };
                        self.first_defence = Some((now, layer));
                    }
                }
                Node::Guarded(e) => e.advance(now, requests.round() as u64, &mut self.models)?,
            }
            let mut serving = match &n.node {
                Node::Naive(p) => p.serving(),
                Node::Guarded(e) => e.serving(),
            };
            // Process faults: only once a marked file was sent, so other days pay nothing.
            let mut error_share = 0.0;
            let total_requests = requests;
            let mut requests = requests;
            if !self.marked.is_empty() {
                let effect = effect(n, serving, now, &self.marked);
                if let Some(after) = effect.crash_after_ms
                    && let Some((_, since)) = n.since
                    && now.saturating_sub(since) >= after
                {
                    match &mut n.node {
                        Node::Naive(p) => p.die(now),
                        Node::Guarded(e) => e.crash(now),
                    }
                    n.since = None;
                    serving = Serving::Down;
                }
                if !serving.fails() {
                    if effect.score_zero && matches!(serving, Serving::Scored(_)) {
                        serving = Serving::ScoreZero;
                    }
                    if effect.error_share > 0.0 {
                        error_share = effect.error_share;
                        tally.failed += requests * error_share;
                        requests *= 1.0 - error_share;
                        n.affected = true;
                    }
                    if effect.latency_ms > 0 {
                        tally.slowed += requests;
                        n.affected = true;
                    }
                }
            }
            let human_share = 1.0 - pop.bot_share;
            let humans = requests * human_share;
            tally.requests += total_requests;
            let mut dist: Option<&Dist> = None;
            match serving {
                Serving::Down | Serving::Failing => {
                    tally.failed += requests;
                    n.affected = true;
                }
                Serving::Scored(id) => {
                    let faulty = self.models.is_faulty(id);
                    dist = self.models.dist(id);
                    let blocked = humans * rule * dist.map_or(0.0, |d| d.human_blocked);
                    tally.humans += humans;
                    tally.humans_blocked += blocked;
                    if faulty && blocked > 0.0 {
                        tally.humans_blocked_by_fault += blocked;
                        n.affected = true;
                    }
                }
                Serving::ScoreZero => {
                    let blocked = humans * rule;
                    tally.humans += humans;
                    tally.humans_blocked += blocked;
                    tally.humans_blocked_by_fault += blocked;
                    n.affected = true;
                }
                Serving::Unscored => {
                    tally.humans += humans;
                    tally.unscored += requests;
                }
            }
            if let Some(out) = beats.as_deref_mut()
                && serving != Serving::Down
                && pop.partitioned_until <= now
            {
                let zero;
                let d = match serving {
                    Serving::ScoreZero => {
                        zero = Dist::zero();
                        Some(&zero)
                    }
                    _ => dist,
                };
                let mut b = beat(n, serving, requests, human_share, d, now);
                if error_share > 0.0 {
                    b.counters.requests = total_requests.round() as u64;
                    b.counters.errors_5xx = (total_requests * error_share).round() as u64;
                }
                out.push((i, b));
            } else if beats.is_none() {
                // No rollout runs: its deaths go to a control plane that keeps them for none.
                match &mut n.node {
                    Node::Naive(p) => p.drop_deaths(),
                    Node::Guarded(e) => {
                        e.take_deaths(now);
                    }
                }
            }
        }
        Ok(())
    }

    /// How many nodes serve each version now (`None`: nothing or down), with how many are
    /// down, wedged and unhealthy.
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        for n in &self.nodes {
            let version = match &n.node {
                Node::Naive(p) => {
                    if p.wedged() {
                        c.wedged += 1;
                    }
                    p.active().map(|f| f.version)
                }
                Node::Guarded(e) => e.active_version().map(|(v, _)| v),
            };
            let serving = match &n.node {
                Node::Naive(p) => p.serving(),
                Node::Guarded(e) => e.serving(),
            };
            if serving == Serving::Down {
                c.down += 1;
            } else {
                match c.versions.iter_mut().find(|(v, _)| *v == version) {
                    Some((_, count)) => *count += 1,
                    None => c.versions.push((version, 1)),
                }
            }
        }
        c.versions.sort();
        c
    }

    /// Totals over every node: crashes, NACKs, sentinel poisonings, nodes ever affected.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for n in &self.nodes {
            if n.affected {
                t.affected += 1;
            }
            let lkg_ever = match &n.node {
                Node::Naive(p) => p.lkg_ever(),
                Node::Guarded(e) => e.lkg_ever(),
            };
            if lkg_ever.iter().any(|d| self.faulty.contains(d)) {
                t.faulty_lkg += 1;
            }
            match &n.node {
                Node::Naive(p) => {
                    t.crashes += p.crashes();
                    t.poisonings += p.poisonings();
                    t.recurrence_poisonings += p.recurrence_poisonings();
                }
                Node::Guarded(e) => {
                    t.crashes += e.crashes();
                    t.nacks += e.nacks();
                    t.rollbacks += e.rollbacks();
                }
            }
        }
        t
    }

    /// The first time a node-level layer (an edge's NACK of a faulty file, the sentinel
    /// poisoning a version) acted.
    pub fn first_defence(&self) -> Option<(u64, Layer)> {
        self.first_defence
    }

    /// The fleet's calendar.
    pub fn calendar(&self) -> Calendar {
        self.calendar
    }

    /// The active digest of node `i`, as its heartbeat would say.
    pub fn active_digest(&self, i: usize) -> Option<Digest> {
        self.nodes.get(i).and_then(|n| match &n.node {
            Node::Naive(p) => p.active().map(|f| f.digest),
            Node::Guarded(e) => e.active_version().map(|(_, d)| d),
        })
    }

    fn deliver(&mut self, now: u64) {
        while self.queue.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Some(Reverse(p)) = self.queue.pop() else {
                break;
            };
            let partitioned_until = self
                .nodes
                .get(p.node)
                .and_then(|n| self.pops.get(n.pop as usize))
                .map_or(0, |pop| pop.partitioned_until);
            if partitioned_until > now {
                // The node fetches it when the link is back.
                self.send(p.node, p.delivery, partitioned_until);
                continue;
            }
            let Some(n) = self.nodes.get_mut(p.node) else {
                continue;
            };
            match (&mut n.node, p.delivery) {
                (Node::Naive(proxy), Delivery::File(f)) => {
                    proxy.offer(f, now, &mut self.loads, &mut self.models);
                }
                (Node::Naive(proxy), Delivery::KillSwitch(on)) => proxy.set_module_enabled(on),
                (Node::Guarded(edge), Delivery::File(f)) => {
                    let nacks = edge.nacks();
                    let faulty = f.faulty;
                    edge.offer(f, now, &mut self.models);
                    if faulty && edge.nacks() > nacks && self.first_defence.is_none() {
                        self.first_defence = Some((now, Layer::EdgeIngestion));
                    }
                }
                (Node::Guarded(edge), Delivery::KillSwitch(on)) => {
                    edge.set_module_enabled(on, &mut self.models);
                }
                (Node::Naive(proxy), Delivery::Blessed(list)) => proxy.set_blessed(list),
                (Node::Guarded(edge), Delivery::Blessed(list)) => edge.set_blessed(list, now),
            }
        }
    }
}

/// Nodes by what they serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// `(version, nodes)`, ascending; `None` is nodes up with nothing loaded.
    pub versions: Vec<(Option<u64>, usize)>,
    /// Nodes down.
    pub down: usize,
    /// Nodes wedged (a subset of down).
    pub wedged: usize,
}

/// Per-node counters summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Proxy crashes.
    pub crashes: u64,
    /// Files edges refused.
    pub nacks: u64,
    /// Rollbacks edges took (files applied below the version they served).
    pub rollbacks: u64,
    /// Versions the sentinel poisoned (node × version).
    pub poisonings: u64,
    /// Of `poisonings`, those by the recurrence rule.
    pub recurrence_poisonings: u64,
    /// Nodes whose last-known-good ever held a faulty file.
    pub faulty_lkg: u64,
    /// Nodes whose requests ever failed or whose users were blocked by the fault.
    pub affected: u64,
}

/// What the marked file `n` serves does to it now, and since when it serves it.
fn effect(
    n: &mut SimNode,
    serving: Serving,
    now: u64,
    marked: &HashMap<Digest, Arc<Publication>>,
) -> Effect {
    let file = if serving == Serving::Down {
        None
    } else {
        match &n.node {
            Node::Naive(p) => p.active().filter(|f| !f.marks.is_empty()),
            Node::Guarded(e) => e.active_version().and_then(|(_, d)| marked.get(&d)),
        }
    };
    let Some(file) = file else {
        n.since = None;
        return Effect::default();
    };
    if n.since.is_none_or(|(d, _)| d != file.digest) {
        n.since = Some((file.digest, now));
    }
    if n.hits == 0 {
        return Effect::default();
    }
    Effect::of(&file.marks, n.hits)
}

fn beat(
    n: &mut SimNode,
    serving: Serving,
    requests: f64,
    human_share: f64,
    dist: Option<&Dist>,
    now: u64,
) -> Beat {
    let total = requests.round() as u64;
    let mut counters = Counters {
        requests: total,
        ..Counters::default()
    };
    let mut counts = [0u64; HISTOGRAM_BUCKETS];
    match (serving, dist) {
        (Serving::Failing, _) => counters.errors_5xx = total,
        (Serving::Unscored, _) => {
            counters.unscored = total;
            if let Some(c) = counts.first_mut() {
                *c = total;
            }
        }
        (Serving::Scored(_) | Serving::ScoreZero, Some(d)) => {
            for ((c, h), b) in counts.iter_mut().zip(&d.human).zip(&d.bot) {
                *c = (requests * (human_share * h + (1.0 - human_share) * b)).round() as u64;
            }
        }
        _ => {}
    }
    let (active, report) = match &mut n.node {
        Node::Naive(p) => (p.active().map(|f| f.digest), p.take_report()),
        Node::Guarded(e) => (e.active_version().map(|(_, d)| d), e.take_report(now)),
    };
    Beat {
        active,
        apply: report.apply,
        counters,
        scores: ScoreHistogram::from_counts(counts),
        restarts: report.restarts,
        deaths: report.deaths,
    }
}

// === impl Pending ===

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}
