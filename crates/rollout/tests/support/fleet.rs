//! Test support: realistic score mixes, fleets, and a fake-clock driver that plays edges
//! answering a rollout, so tests read like scenarios.

#![allow(dead_code)]

use rampart_artifact::Digest;
use rampart_rollout::*;

/// splitmix64: a seeded, dependency-free PRNG (tests must be reproducible).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A traffic mix: bots scored low, humans high, a little unscored.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub bot_share: f64,
    pub bot_mean: f64,
    pub human_mean: f64,
    pub human_sd: f64,
    pub unscored_share: f64,
}

pub const HUMANS_AND_BOTS: Mix = Mix {
    bot_share: 0.30,
    bot_mean: 8.0,
    human_mean: 85.0,
    human_sd: 8.0,
    unscored_share: 0.003,
};

impl Mix {
    /// Probabilities of the 100 buckets (0 unscored).
    pub fn probabilities(&self) -> [f64; 100] {
        let mode = |mean: f64, sd: f64, lo: usize, hi: usize| {
            let mut w = [0.0; 100];
            let mut sum = 0.0;
            for (x, slot) in w.iter_mut().enumerate().take(hi + 1).skip(lo) {
                let z = (x as f64 - mean) / sd;
                *slot = (-0.5 * z * z).exp();
                sum += *slot;
            }
            w.iter_mut().for_each(|v| *v /= sum);
            w
        };
        let bots = mode(self.bot_mean, 6.0, 1, 45);
        let humans = mode(self.human_mean, self.human_sd, 30, 99);
        let scored = 1.0 - self.unscored_share;
        let mut p = [0.0; 100];
        p[0] = self.unscored_share;
        for x in 1..100 {
            p[x] = scored * (self.bot_share * bots[x] + (1.0 - self.bot_share) * humans[x]);
        }
        p
    }

    /// `n` requests drawn from the mix.
    pub fn sample(&self, n: u64, rng: &mut Rng) -> ScoreHistogram {
        sample(&self.probabilities(), n, rng)
    }
}

/// `n` draws from bucket probabilities `p`.
pub fn sample(p: &[f64; 100], n: u64, rng: &mut Rng) -> ScoreHistogram {
    let mut cdf = [0.0; 100];
    let mut acc = 0.0;
    for (c, x) in cdf.iter_mut().zip(p) {
        acc += x;
        *c = acc;
    }
    let mut h = ScoreHistogram::new();
    for _ in 0..n {
        let u = rng.unit() * acc;
        let b = cdf.partition_point(|c| *c < u).min(99);
        h.add_to(b, 1);
    }
    h
}

/// All requests in one bucket.
pub fn all_in(bucket: usize, n: u64) -> ScoreHistogram {
    let mut h = ScoreHistogram::new();
    h.add_to(bucket, n);
    h
}

/// `pops` PoPs of `per_pop` nodes over `regions` regions, no canary labels.
pub fn fleet(pops: usize, per_pop: usize, regions: usize) -> Vec<Node> {
    (0..pops)
        .flat_map(|p| {
            (0..per_pop).map(move |n| Node {
                id: format!("pop{p:03}-n{n}"),
                pop: format!("pop{p:03}"),
                region: format!("r{}", p % regions.max(1)),
                canary: false,
            })
        })
        .collect()
}

pub fn v1() -> ArtifactRef {
    ArtifactRef {
        version: 1,
        digest: Digest::of(b"feature file v1"),
    }
}

pub fn v2() -> ArtifactRef {
    ArtifactRef {
        version: 2,
        digest: Digest::of(b"feature file v2"),
    }
}

pub fn rollout_over(nodes: &[Node], policy: RolloutPolicy) -> Rollout {
    let spec = RolloutSpec {
        id: "r-test".into(),
        from: Some(v1()),
        to: v2(),
        plan: plan(nodes, &PlanPolicy::default()).unwrap(),
        policy,
        break_glass: None,
    };
    Rollout::new(spec, 0).unwrap()
}

/// What nodes do with the new version.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Serve it like the old one.
    Healthy,
    /// Refuse it (keep the old one) with these issue codes.
    Nack(Vec<String>),
    /// Serve it with this share of 5xx.
    Errors5xx(f64),
    /// Serve it, every request scored in this bucket (0 = unscored).
    AllIn(usize),
    /// Restart once after switching, then serve it.
    Restart,
    /// Stop sending heartbeats while serving it (beats again once sent back).
    Silent,
    /// Stop sending heartbeats for good after switching.
    Dead,
    /// Keep serving the old version without a NACK.
    Ignore,
}

/// Edges answering a rollout on a fake clock, one heartbeat per node per second.
pub struct Driver {
    pub rollout: Rollout,
    pub obs: Observations,
    pub now: u64,
    pub rng: Rng,
    /// What each node serves (plan order).
    pub active: Vec<Option<Digest>>,
    /// What the control plane wants each node to serve.
    pub desired: Vec<Option<Digest>>,
    pub behaviour: Behaviour,
    pub requests_per_beat: u64,
    pub mix: Mix,
    pub decisions: Vec<Decision>,
    /// Nodes that already restarted once.
    restarted: Vec<bool>,
    /// Nodes that died (`Behaviour::Dead`).
    dead: Vec<bool>,
    /// Pre-drawn healthy histograms (drawing per request per node is slow in debug builds).
    healthy: Vec<ScoreHistogram>,
}

pub const BEAT_MS: u64 = 1_000;

impl Driver {
    pub fn new(nodes: &[Node], behaviour: Behaviour) -> Driver {
        Driver::with_policy(nodes, behaviour, RolloutPolicy::default())
    }

    pub fn with_policy(nodes: &[Node], behaviour: Behaviour, policy: RolloutPolicy) -> Driver {
        let rollout = rollout_over(nodes, policy);
        Driver::for_rollout(rollout, behaviour)
    }

    pub fn for_rollout(rollout: Rollout, behaviour: Behaviour) -> Driver {
        let obs = Observations::new(&rollout);
        let n = rollout.plan().len();
        let from = rollout.from().map(|f| f.digest);
        let mut rng = Rng(42);
        let requests_per_beat = 40;
        let healthy = (0..64)
            .map(|_| HUMANS_AND_BOTS.sample(requests_per_beat, &mut rng))
            .collect();
        Driver {
            rollout,
            obs,
            now: 0,
            rng,
            active: vec![from; n],
            desired: vec![from; n],
            behaviour,
            requests_per_beat,
            mix: HUMANS_AND_BOTS,
            decisions: Vec::new(),
            restarted: vec![false; n],
            dead: vec![false; n],
            healthy,
        }
    }

    /// Sets the requests each node serves per beat (redraws the healthy samples).
    pub fn set_requests_per_beat(&mut self, n: u64) {
        self.requests_per_beat = n;
        let mix = self.mix;
        self.healthy = (0..64).map(|_| mix.sample(n, &mut self.rng)).collect();
    }

    /// Every node beats (as it behaves), then one reconcile at `now`.
    pub fn beat_and_reconcile(&mut self) -> &Decision {
        self.beat_all();
        self.reconcile()
    }

    /// One heartbeat from every node at `now`.
    pub fn beat_all(&mut self) {
        let to = self.rollout.to().digest;
        for i in 0..self.active.len() {
            let idx = NodeIdx(i as u32);
            let mut apply = None;
            let mut restarts = 0;
            if self.desired[i] != self.active[i] && !self.dead[i] {
                match (&self.behaviour, self.desired[i] == Some(to)) {
                    (Behaviour::Nack(codes), true) => {
                        apply = Some(Apply::Rejected {
                            digest: to,
                            codes: codes.clone(),
                        });
                    }
                    (Behaviour::Ignore, true) => {}
                    _ => {
                        self.active[i] = self.desired[i];
                        if let Some(d) = self.desired[i] {
                            apply = Some(Apply::Accepted { digest: d });
                        }
                    }
                }
            }
            let on_new = self.active[i] == Some(to);
            if on_new && self.behaviour == Behaviour::Dead {
                self.dead[i] = true;
            }
            if self.dead[i] || (on_new && self.behaviour == Behaviour::Silent) {
                continue;
            }
            if on_new && self.behaviour == Behaviour::Restart && !self.restarted[i] {
                self.restarted[i] = true;
                restarts = 1;
            }
            let n = self.requests_per_beat;
            let pick = (self.rng.next_u64() % self.healthy.len() as u64) as usize;
            let mut scores = self.healthy[pick].clone();
            let mut counters = Counters {
                requests: n,
                errors_5xx: 0,
                module_errors: 0,
                unscored: scores.unscored(),
            };
            if on_new {
                match self.behaviour {
                    Behaviour::Errors5xx(rate) => {
                        counters.errors_5xx = (n as f64 * rate).round() as u64;
                    }
                    Behaviour::AllIn(bucket) => {
                        scores = all_in(bucket, n);
                        counters.unscored = scores.unscored();
                    }
                    _ => {}
                }
            }
            let beat = Beat {
                active: self.active[i],
                apply,
                counters,
                scores,
                restarts,
                deaths: Vec::new(),
            };
            self.obs.absorb(idx, &beat, self.now).unwrap();
        }
    }

    /// One reconcile at `now`; carries out the actions; the clock advances one beat.
    pub fn reconcile(&mut self) -> &Decision {
        self.obs.sync(&self.rollout);
        let d = reconcile(&self.rollout, &self.obs, self.now);
        let again = reconcile(&self.rollout, &self.obs, self.now);
        assert_eq!(d, again, "reconcile is a pure function of its inputs");
        self.carry_out(d);
        self.now += BEAT_MS;
        self.decisions.last().unwrap()
    }

    /// Applies a decision and hands out desired versions.
    pub fn carry_out(&mut self, d: Decision) {
        for action in &d.actions {
            if let Action::SetDesired { nodes, version, .. } = action {
                for id in nodes {
                    let idx = self.rollout.plan().index_of(id).unwrap();
                    self.desired[idx.index()] = version.map(|v| v.digest);
                }
            }
        }
        self.rollout.apply(d.clone());
        self.obs.sync(&self.rollout);
        self.decisions.push(d);
    }

    /// Runs a command now.
    pub fn command(&mut self, cmd: Command) -> Result<(), CommandError> {
        let op = Operator {
            who: "alice".into(),
            reason: "testing".into(),
        };
        let d = command(&self.rollout, cmd, &op, self.now)?;
        self.carry_out(d);
        Ok(())
    }

    /// Beats and reconciles until the rollout is no longer active (or `max` beats).
    pub fn run(&mut self, max: usize) -> &Phase {
        for _ in 0..max {
            if !self.rollout.is_active() {
                break;
            }
            self.beat_and_reconcile();
        }
        &self.rollout.status().phase
    }

    /// Beats and reconciles until `pred` holds on the phase (or `max` beats).
    pub fn run_until(&mut self, max: usize, pred: impl Fn(&Phase) -> bool) -> bool {
        for _ in 0..max {
            if pred(&self.rollout.status().phase) {
                return true;
            }
            self.beat_and_reconcile();
        }
        pred(&self.rollout.status().phase)
    }

    pub fn phase(&self) -> &Phase {
        &self.rollout.status().phase
    }

    pub fn all_actions(&self) -> impl Iterator<Item = &Action> {
        self.decisions.iter().flat_map(|d| d.actions.iter())
    }

    pub fn events(&self) -> Vec<&Event> {
        self.all_actions()
            .filter_map(|a| match a {
                Action::Audit(r) => Some(&r.event),
                _ => None,
            })
            .collect()
    }
}
