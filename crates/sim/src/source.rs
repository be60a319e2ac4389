//! The data the generator reads: a ClickHouse cluster whose nodes take a permission change one
//! by one, and the bot model whose weights are retrained on a schedule.
//!
//! This is the environment, not a rampart layer, so it is a model: `system.columns` of the
//! feature table lists the model's features in database `default`; on a node that has taken the
//! permission change, a query that does not name its database also gets the same columns of the
//! shard database `r0`, plus the columns only `r0` has. Which query text is asked decides which
//! answer comes back, so the generator's real query (scoped by database) and the query of
//! 18 November (unscoped) meet the same cluster.

use std::collections::HashMap;

use rampart_artifact::Feature;
use rampart_generate::catalog::{CATALOG_SCHEMA, Catalog, CatalogError};
use rampart_generate::source::join_weights;
use rampart_traffic::Rng;

use crate::fault::Mark;
use crate::scenario::Scenario;

/// The feature query of 18 November 2025, as the post-mortem printed it: no database filter.
pub const UNSCOPED_QUERY: &str =
    "SELECT name, type FROM system.columns WHERE table = 'http_requests_features' ORDER BY name;";

/// The ClickHouse type of the columns only `r0` has (shard bookkeeping).
pub const R0_ONLY_TYPE: &str = "UInt32";

/// Salt of the random stream that orders the nodes' permission changes.
const CHANGE_ORDER_SALT: u64 = 0x5eed_c0de;
/// Salt of the random stream of retrained weights.
const RETRAIN_SALT: u64 = 0x7e7a_1a1d;

/// The cluster and the model, over the scenario's time.
#[derive(Debug, Clone)]
pub struct Source {
    base: Catalog,
    changed_at: Vec<Option<u64>>,
    r0_only: Vec<(String, String)>,
    retrain_every_ms: Option<u64>,
    weight_drift: f64,
    seed: u64,
    start: u64,
}

/// What one query on one node returned, joined with the model's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The node asked.
    pub node: u32,
    /// Whether the node had taken the permission change.
    pub changed: bool,
    /// Whether `r0` rows came back (the fault reached the candidate).
    pub faulty: bool,
    /// The retrain epoch of the weights.
    pub epoch: u64,
    /// The features (columns joined with weights; unweighted columns get 0), in query order.
    pub features: Vec<Feature>,
    /// The model's bias.
    pub bias: f64,
    /// Rows the query returned.
    pub rows: usize,
    /// Process faults riding on the file made from this answer (see [`crate::fault`]).
    pub marks: Vec<Mark>,
}

/// Why the source cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The embedded model catalog is broken (a build problem).
    #[error("the embedded model catalog: {0}")]
    Catalog(#[from] CatalogError),
}

// === impl Source ===

impl Source {
    /// The scenario's cluster over the embedded model catalog.
    pub fn new(scenario: &Scenario) -> Result<Source, SourceError> {
        let base = Catalog::embedded()?;
        let ch = &scenario.clickhouse;
        let nodes = ch.nodes as usize;
        // Which node changes when: a seeded permutation, so "one by one" is not "in name order".
        let mut order: Vec<usize> = (0..nodes).collect();
        let mut rng = Rng::new(scenario.seed ^ CHANGE_ORDER_SALT);
        for i in (1..order.len()).rev() {
            let j = rng.index(i + 1);
            order.swap(i, j);
        }
        let mut changed_at = vec![None; nodes];
        if let Some(from) = ch.change_from {
            for (rank, node) in order.iter().enumerate() {
                if let Some(slot) = changed_at.get_mut(*node) {
                    *slot =
                        Some(from.saturating_add(ch.change_every_ms.saturating_mul(rank as u64)));
                }
            }
        }
        let r0_only = (0..ch.r0_only_columns)
            .map(|i| (format!("r0_shard_col_{i:03}"), R0_ONLY_TYPE.to_owned()))
            .collect();
        Ok(Source {
            base,
            changed_at,
            r0_only,
            retrain_every_ms: scenario.generator.retrain_every_ms,
            weight_drift: scenario.generator.weight_drift,
            seed: scenario.seed,
            start: scenario.start,
        })
    }

    /// Nodes in the cluster.
    pub fn nodes(&self) -> u32 {
        u32::try_from(self.changed_at.len()).unwrap_or(u32::MAX)
    }

    /// Whether `node` has taken the permission change at `at`.
    pub fn changed(&self, node: u32, at: u64) -> bool {
        self.changed_at
            .get(node as usize)
            .copied()
            .flatten()
            .is_some_and(|t| t <= at)
    }

    /// How many nodes have taken the change at `at`.
    pub fn changed_count(&self, at: u64) -> u32 {
        (0..self.nodes()).filter(|n| self.changed(*n, at)).count() as u32
    }

    /// The retrain epoch at `at` (0 before the first retrain after the start).
    pub fn epoch(&self, at: u64) -> u64 {
        match self.retrain_every_ms {
            Some(every) if every > 0 => at.saturating_sub(self.start) / every,
            _ => 0,
        }
    }

    /// Runs `query` on `node` at `at`: the columns it lists, joined with the weights of the
    /// model of that time.
    pub fn answer(&self, query: &str, node: u32, at: u64) -> Answer {
        let changed = self.changed(node, at);
        let scoped = names_database(query);
        let mut columns: Vec<(String, String)> = self
            .base
            .features
            .iter()
            .map(|f| (f.name.clone(), f.ty.clone()))
            .collect();
        let faulty = changed && !scoped;
        if faulty {
            let r0 = columns.clone();
            columns.extend(r0);
            columns.extend(self.r0_only.iter().cloned());
        }
        // ORDER BY name: ClickHouse returns the two databases' rows interleaved by name.
        columns.sort_by(|a, b| a.0.cmp(&b.0));
        let rows = columns.len();
        let epoch = self.epoch(at);
        let (weights, bias) = self.weights(epoch);
        let (features, _unweighted) = join_weights(columns, &weights);
        Answer {
            node,
            changed,
            faulty,
            epoch,
            features,
            bias,
            rows,
            marks: Vec::new(),
        }
    }

    /// The model's weights and bias of retrain `epoch`: the embedded catalog's weights, each
    /// moved by at most `weight_drift` of itself, and its bias (epoch 0 is the catalog exactly).
    /// The bias stays: it is large (about -11), and moving it moves every score at once.
    pub fn weights(&self, epoch: u64) -> (HashMap<String, f64>, f64) {
        let mut rng = Rng::new(self.seed ^ RETRAIN_SALT ^ epoch.wrapping_mul(0x9E37_79B9));
        let drift = if epoch == 0 { 0.0 } else { self.weight_drift };
        let mut nudge = |w: f64| w * (1.0 + drift * (2.0 * rng.unit() - 1.0));
        let weights = self
            .base
            .features
            .iter()
            .map(|f| (f.name.clone(), nudge(f.weight)))
            .collect();
        (weights, self.base.bias)
    }

    /// The answer as a catalog file, the format the generator reads.
    pub fn catalog(answer: &Answer) -> Catalog {
        Catalog {
            schema: CATALOG_SCHEMA.to_owned(),
            bias: answer.bias,
            features: answer.features.clone(),
            fit: serde_json::Value::Null,
        }
    }
}

/// Whether a `system.columns` query filters on the database (the fix of 18 November).
pub fn names_database(query: &str) -> bool {
    query.to_ascii_lowercase().contains("database =")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{MINUTE, parse_time_of_day};
    use crate::scenario::Scenario;

    fn scoped_query() -> String {
        let endpoint =
            rampart_generate::source::Endpoint::parse("clickhouse://clickhouse:8123/default")
                .unwrap();
        rampart_generate::source::ClickHouse::new(endpoint).columns_query()
    }

    #[test]
    fn the_unscoped_query_on_a_changed_node_doubles_the_file_past_200() {
        let s = Scenario::load("nov18").unwrap();
        let src = Source::new(&s).unwrap();
        let t = parse_time_of_day("17:00").unwrap();
        assert_eq!(src.changed_count(t), 24);
        let bad = src.answer(UNSCOPED_QUERY, 0, t);
        assert!(bad.faulty);
        assert_eq!(bad.features.len(), 60 * 2 + 90);
        assert!(bad.features.len() > 200);
        let good = src.answer(&scoped_query(), 0, t);
        assert!(!good.faulty);
        assert_eq!(good.features.len(), 60);
    }

    #[test]
    fn nodes_change_one_by_one() {
        let s = Scenario::load("nov18").unwrap();
        let src = Source::new(&s).unwrap();
        let at = |hm| parse_time_of_day(hm).unwrap();
        assert_eq!(src.changed_count(at("11:04")), 0);
        assert_eq!(src.changed_count(at("11:05")), 1);
        assert_eq!(src.changed_count(at("11:05") + 5 * MINUTE), 2);
        assert_eq!(src.changed_count(at("12:59")), 23);
        let before = src.answer(UNSCOPED_QUERY, 3, at("11:00"));
        assert!(!before.faulty);
    }

    #[test]
    fn retrained_weights_drift_a_little_and_epoch_zero_is_the_catalog() {
        let s = Scenario::load("nov18").unwrap();
        let src = Source::new(&s).unwrap();
        let (w0, b0) = src.weights(0);
        let (w1, b1) = src.weights(1);
        let cat = Catalog::embedded().unwrap();
        assert_eq!(b0, cat.bias);
        assert_eq!(b1, cat.bias);
        assert_ne!(w0, w1);
        for f in &cat.features {
            let (a, b) = (w0[&f.name], w1[&f.name]);
            assert_eq!(a, f.weight);
            assert!((b - a).abs() <= a.abs() * s.generator.weight_drift + 1e-12);
        }
        assert_eq!(src.weights(2), src.weights(2));
    }

    #[test]
    fn names_database_sees_the_generators_real_query() {
        assert!(names_database(&scoped_query()));
        assert!(!names_database(UNSCOPED_QUERY));
    }
}
