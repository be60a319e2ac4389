//! Traffic: realistic labelled requests, scored by the real bot module, scaled to the fleet.
//!
//! A replay cannot score a million requests a second, so it scores a sample and scales it. A
//! pool of requests is drawn once from the realistic profiles (`rampart-traffic`, seeded) and
//! each request's features are extracted once by the real extractors ([`Scorer::features`]).
//! Every 5-minute bucket takes its own window of the pool; every model in use scores that window
//! with [`Model::score`], giving the model's score distribution for humans and for bots. A node's
//! requests in a step are then its request rate times that distribution, weighted by its PoP's
//! bot share. The score is a pure function of the model and the request, so scoring each request
//! of the window once per model is exact for the sample, not an approximation of it.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_artifact::Digest;
use rampart_score::{Features, Model, RateTable, Score, Scorer, blocks, rate::DEFAULT_SLOTS};
use rampart_traffic::{Mix, ProfileError, Profiles, Traffic};

use crate::clock::MINUTE;

/// Requests in the pool.
pub const POOL_SIZE: usize = 16_384;
/// Requests of the pool scored for each 5-minute bucket.
pub const SAMPLE_PER_BUCKET: usize = 4_096;
/// Length of a report bucket (and of a traffic sample's validity).
pub const BUCKET_MS: u64 = 5 * MINUTE;
/// Buckets of a score histogram: 0 is unscored, 1..=99 the scores (as heartbeats carry them).
pub const HISTOGRAM_BUCKETS: usize = 100;
/// Pool offset between two buckets' windows (coprime with the pool size, so windows move).
const WINDOW_STRIDE: usize = 1_237;

/// The scored sample of requests.
#[derive(Debug)]
pub struct Pool {
    samples: Vec<Sample>,
    humans: usize,
}

#[derive(Debug, Clone)]
struct Sample {
    human: bool,
    features: Features,
}

/// A model's score distribution over one bucket's sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    /// Share of human requests per histogram bucket (index 0 unscored; sums to 1).
    pub human: [f64; HISTOGRAM_BUCKETS],
    /// Share of bot requests per histogram bucket.
    pub bot: [f64; HISTOGRAM_BUCKETS],
    /// Share of human requests a "block below" rule blocks.
    pub human_blocked: f64,
    /// Share of bot requests a "block below" rule blocks.
    pub bot_blocked: f64,
}

/// A small id for a model, so the per-node hot loop indexes a vector instead of hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(pub u32);

/// Every model any node has loaded, by digest, with the distributions of the current bucket.
#[derive(Debug)]
pub struct Models {
    ids: HashMap<Digest, ModelId>,
    models: Vec<Arc<Model>>,
    faulty: Vec<bool>,
    bucket: Option<u64>,
    dists: Vec<Option<Dist>>,
    block_below: u8,
    pool: Arc<Pool>,
}

// === impl Pool ===

impl Pool {
    /// Draws `size` requests from the embedded profiles with `seed` and extracts their
    /// features (a fixed-seed rate table, so the client-rate features are reproducible too).
    pub fn new(seed: u64, size: usize) -> Result<Pool, ProfileError> {
        let profiles = Profiles::embedded()?;
        let scorer = Scorer::with_rate(RateTable::with_slots(DEFAULT_SLOTS, seed));
        let mut traffic = Traffic::new(&profiles, Mix::default(), seed);
        let mut samples = Vec::with_capacity(size);
        while samples.len() < size {
            let Some(req) = traffic.next_request() else {
                break;
            };
            let features = scorer.features(&req.request.view(req.at_ms));
            samples.push(Sample {
                human: !req.label.is_bot(),
                features,
            });
        }
        let humans = samples.iter().filter(|s| s.human).count();
        Ok(Pool { samples, humans })
    }

    /// Requests in the pool.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the pool is empty (the profiles gave nothing).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Share of the pool sent by people.
    pub fn human_share(&self) -> f64 {
        ratio(self.humans as f64, self.samples.len() as f64)
    }

    /// The window of `bucket`: [`SAMPLE_PER_BUCKET`] requests, wrapping around the pool.
    fn window(&self, bucket: u64) -> impl Iterator<Item = &Sample> {
        let len = self.samples.len();
        let start = if len == 0 {
            0
        } else {
            (bucket as usize).wrapping_mul(WINDOW_STRIDE) % len
        };
        self.samples
            .iter()
            .cycle()
            .skip(start)
            .take(SAMPLE_PER_BUCKET.min(len))
    }
}

// === impl Dist ===

impl Dist {
    /// Scores `samples` with `model`.
    fn of<'a>(model: &Model, samples: impl Iterator<Item = &'a Sample>, block_below: u8) -> Dist {
        let mut d = Dist::empty();
        let (mut humans, mut bots) = (0.0f64, 0.0f64);
        let (mut h_blocked, mut b_blocked) = (0.0f64, 0.0f64);
        for s in samples {
            let score = model.score(&s.features);
            let bucket = match score {
                Score::Scored(v) => usize::from(v.clamp(1, 99)),
                Score::Unscored(_) => 0,
            };
            let blocked = blocks(score, Some(block_below));
            let (hist, n, b) = if s.human {
                (&mut d.human, &mut humans, &mut h_blocked)
            } else {
                (&mut d.bot, &mut bots, &mut b_blocked)
            };
            if let Some(c) = hist.get_mut(bucket) {
                *c += 1.0;
            }
            *n += 1.0;
            if blocked {
                *b += 1.0;
            }
        }
        for c in &mut d.human {
            *c = ratio(*c, humans);
        }
        for c in &mut d.bot {
            *c = ratio(*c, bots);
        }
        d.human_blocked = ratio(h_blocked, humans);
        d.bot_blocked = ratio(b_blocked, bots);
        d
    }

    /// The old proxy on a file it could not load: every request scores 0. Heartbeats clamp 0
    /// into bucket 1 (the lowest score) and a "block below" rule blocks every request.
    pub fn zero() -> Dist {
        let mut d = Dist::empty();
        if let Some(c) = d.human.get_mut(1) {
            *c = 1.0;
        }
        if let Some(c) = d.bot.get_mut(1) {
            *c = 1.0;
        }
        d.human_blocked = 1.0;
        d.bot_blocked = 1.0;
        d
    }

    fn empty() -> Dist {
        Dist {
            human: [0.0; HISTOGRAM_BUCKETS],
            bot: [0.0; HISTOGRAM_BUCKETS],
            human_blocked: 0.0,
            bot_blocked: 0.0,
        }
    }
}

// === impl Models ===

impl Models {
    /// An empty registry scoring with `pool` under a "block below `block_below`" rule.
    pub fn new(pool: Arc<Pool>, block_below: u8) -> Models {
        Models {
            ids: HashMap::new(),
            models: Vec::new(),
            faulty: Vec::new(),
            bucket: None,
            dists: Vec::new(),
            block_below,
            pool,
        }
    }

    /// The id of the model of `digest`, registering `model` if it is new. `faulty` marks a model
    /// compiled from a file the fault produced (ground truth for the report).
    pub fn register(
        &mut self,
        digest: Digest,
        model: impl FnOnce() -> Arc<Model>,
        faulty: bool,
    ) -> ModelId {
        if let Some(id) = self.ids.get(&digest) {
            return *id;
        }
        let id = ModelId(u32::try_from(self.models.len()).unwrap_or(u32::MAX));
        self.models.push(model());
        self.faulty.push(faulty);
        self.dists.push(None);
        self.ids.insert(digest, id);
        id
    }

    /// The id of a registered digest.
    pub fn id(&self, digest: &Digest) -> Option<ModelId> {
        self.ids.get(digest).copied()
    }

    /// Whether the model came from a faulty file.
    pub fn is_faulty(&self, id: ModelId) -> bool {
        self.faulty.get(id.0 as usize).copied().unwrap_or(false)
    }

    /// Moves to `bucket`: distributions are computed again, on that bucket's sample, when asked.
    pub fn set_bucket(&mut self, bucket: u64) {
        if self.bucket != Some(bucket) {
            self.bucket = Some(bucket);
            for d in &mut self.dists {
                *d = None;
            }
        }
    }

    /// The distribution of model `id` in the current bucket.
    pub fn dist(&mut self, id: ModelId) -> Option<&Dist> {
        let i = id.0 as usize;
        let bucket = self.bucket.unwrap_or(0);
        let missing = self.dists.get(i).is_some_and(Option::is_none);
        if missing {
            let model = self.models.get(i)?;
            let d = Dist::of(model, self.pool.window(bucket), self.block_below);
            if let Some(slot) = self.dists.get_mut(i) {
                *slot = Some(d);
            }
        }
        self.dists.get(i).and_then(Option::as_ref)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use rampart_artifact::validate;
    use rampart_generate::Catalog;
    use rampart_score::edge_contract;

    use super::*;

    fn catalog_model() -> (Digest, Arc<Model>) {
        let cat = Catalog::embedded().unwrap();
        let mut doc = rampart_score::example_document(1);
        doc.model.bias = cat.bias;
        doc.features = cat.features.clone();
        let v = validate(&doc, &edge_contract(), None).unwrap();
        (v.digest(), Arc::new(Model::compile(&v, 200).unwrap()))
    }

    #[test]
    fn the_pool_is_reproducible_and_labelled() {
        let a = Pool::new(7, 512).unwrap();
        let b = Pool::new(7, 512).unwrap();
        assert_eq!(a.len(), 512);
        assert_eq!(a.human_share(), b.human_share());
        assert!(
            (0.55..0.85).contains(&a.human_share()),
            "{}",
            a.human_share()
        );
    }

    #[test]
    fn the_model_separates_humans_from_bots_and_rules_block_mostly_bots() {
        let pool = Arc::new(Pool::new(11, 4_096).unwrap());
        let mut models = Models::new(pool, 30);
        let (digest, model) = catalog_model();
        let id = models.register(digest, || model, false);
        assert_eq!(models.register(digest, unreachable_model, false), id);
        models.set_bucket(0);
        let d = models.dist(id).unwrap().clone();
        let sum: f64 = d.human.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert!(d.human_blocked < 0.1, "humans blocked: {}", d.human_blocked);
        assert!(d.bot_blocked > 0.5, "bots blocked: {}", d.bot_blocked);
        assert_eq!(Dist::zero().human_blocked, 1.0);
    }

    fn unreachable_model() -> Arc<Model> {
        Arc::new(Model::from_raw_for_bench(&[], 0.0))
    }
}
