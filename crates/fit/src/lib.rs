//! `rampart model fit`: a logistic bot model over the edge's extractor catalog, fitted on
//! real user agents turned into realistic requests, evaluated on user agents it never saw. Its
//! output is the generator's catalog file (`catalog/features.catalog.json`) and its report
//! (`docs/model.md`).
//!
//! Steps: build the samples ([`dataset`]), drop extractors that do not vary, standardize on
//! the training part, fit by Newton's method with an L2 penalty ([`logistic`]), keep the
//! [`TARGET_FEATURES`] largest standardized weights and fit again, then fold the
//! standardization back into raw weights and a bias, so the edge evaluates raw extractor
//! values: `z = bias + Σ weight·value`, high for humans.
//!
//! # Layout
//! - [`fit`]: the whole fit, samples to [`FitResult`] (catalog, report, evaluations).
//! - [`dataset`]: the labelled samples from the traffic generator, split by user agent.
//! - [`logistic`]: L2-regularized logistic regression by Newton's method.
//! - [`auc`]: the area under the ROC curve.
//! - [`shadow`]: a candidate file and the serving one score the same sample; the shift, the
//!   verdict flips and the change in precision and recall decide whether it is held.
//! - `report`: the Markdown report, written from the numbers of the run.
//!
//! The one decision that matters: **the fit is a crate of its own, off the producer's path.**
//! It needs the extractors ([`rampart_score`]) and the traffic generator ([`rampart_traffic`]);
//! the generator only reads the catalog file the fit writes, so it depends on neither, and a
//! change to the fit never rebuilds what publishes feature files. The fit is deterministic for
//! a seed, so the committed catalog is checked against a fresh fit by a test.

pub mod auc;
pub mod dataset;
pub mod logistic;
mod report;
pub mod shadow;

use rampart_artifact::Feature;
use rampart_generate::catalog::{CATALOG_SCHEMA, Catalog};
use rampart_score::catalog::{CATALOG, COUNT};
use rampart_score::edge_contract;
use rampart_traffic::{Kind, Profiles};
use serde_json::json;

use dataset::Dataset;
use logistic::Matrix;

/// Features kept in the catalog: about as many as Cloudflare's file had (about 60 of room
/// for 200).
pub const TARGET_FEATURES: usize = 60;

/// The L2 penalty on standardized weights, against class-balanced sample weights that sum to
/// the number of training samples. Large enough to keep rare binary features from taking
/// huge raw weights; small enough not to cost AUC.
pub const L2_PENALTY: f64 = 20.0;

/// An extractor whose standard deviation on the training part is below this does not vary
/// and gets no weight (the client-rate features, for one: every sample is its client's first
/// request).
pub const MIN_STD: f64 = 1e-9;

/// The held-out AUC the fit aims at (reported, not enforced).
pub const GOAL_AUC: f64 = 0.95;

/// What to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitOptions {
    /// The data directory, as given (shown in the report and the catalog).
    pub data: String,
    /// The seed of the traffic generator.
    pub seed: u64,
    /// Features to keep.
    pub features: usize,
}

/// One model evaluated on the held-out part.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Which model (`user agent only`, `all features`, `catalog`).
    pub name: &'static str,
    /// Features it uses.
    pub features: usize,
    /// Held-out AUC, humans against every bot.
    pub auc: f64,
    /// Held-out AUC of humans against each kind of bot.
    pub by_kind: Vec<(Kind, f64)>,
}

/// A fitted model and how it did.
#[derive(Debug, Clone)]
pub struct FitResult {
    /// The catalog file to write.
    pub catalog: Catalog,
    /// The report (Markdown) to write.
    pub report: String,
    /// User-agent features only, every varying feature, and the catalog's.
    pub evaluations: Vec<Evaluation>,
    /// Samples by part: (train, test).
    pub samples: (usize, usize),
}

/// Why a fit failed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// Inputs of mismatched sizes.
    #[error("mismatched inputs: {0}")]
    Shape(String),
    /// The Newton system could not be solved.
    #[error("the Newton system is singular")]
    Singular,
    /// The fit ran off to infinity.
    #[error("the fit diverged")]
    Diverged,
    /// A part of the split, or a class, is empty.
    #[error("the {0} is empty")]
    Empty(&'static str),
    /// A raw weight beyond what the edge contract accepts.
    #[error("weight of {name} is {weight}, beyond the edge contract's ±{limit}")]
    WeightTooLarge {
        /// The feature.
        name: String,
        /// Its raw weight.
        weight: f64,
        /// The contract's limit.
        limit: f64,
    },
}

/// A model over a subset of columns, standardized, with what is needed to fold it back.
struct Fitted {
    columns: Vec<usize>,
    mean: Vec<f64>,
    std: Vec<f64>,
    model: logistic::Logistic,
}

// === impl Fitted ===

impl Fitted {
    fn logit(&self, row: &[f32; COUNT]) -> f64 {
        let z: Vec<f64> = standardized(row, &self.columns, &self.mean, &self.std);
        self.model.logit(&z)
    }

    /// Raw weights by column and the raw bias.
    fn raw(&self) -> (Vec<(usize, f64)>, f64) {
        let mut bias = self.model.bias;
        let mut weights = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            let w = self.model.weights.get(i).copied().unwrap_or(0.0);
            let (m, s) = (at(&self.mean, i), at(&self.std, i));
            weights.push((*c, w / s));
            bias -= w * m / s;
        }
        (weights, bias)
    }
}

/// Fits the model on `profiles` and evaluates it on the held-out user agents.
pub fn fit(profiles: &Profiles, options: &FitOptions) -> Result<FitResult, FitError> {
    let ds = Dataset::build(profiles, options.seed);
    let train: Vec<usize> = (0..ds.len()).filter(|i| !flag(&ds.test, *i)).collect();
    let test: Vec<usize> = (0..ds.len()).filter(|i| flag(&ds.test, *i)).collect();
    if train.is_empty() {
        return Err(FitError::Empty("training part"));
    }
    if test.is_empty() {
        return Err(FitError::Empty("held-out part"));
    }
    let varying: Vec<usize> = (0..COUNT)
        .filter(|c| column_std(&ds, &train, *c) > MIN_STD)
        .collect();
    let ua_only: Vec<usize> = varying
        .iter()
        .copied()
        .filter(|c| name(*c).starts_with("ua_"))
        .collect();

    let ua = fit_columns(&ds, &train, ua_only)?;
    let all = fit_columns(&ds, &train, varying.clone())?;
    let mut ranked: Vec<(usize, f64)> = all
        .columns
        .iter()
        .zip(&all.model.weights)
        .map(|(c, w)| (*c, w.abs()))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<usize> = ranked
        .iter()
        .take(options.features.max(1))
        .map(|(c, _)| *c)
        .collect();
    chosen.sort_unstable();
    let fin = fit_columns(&ds, &train, chosen)?;

    let evaluations = vec![
        evaluate("user agent only", &ua, &ds, &test)?,
        evaluate("all varying features", &all, &ds, &test)?,
        evaluate("catalog", &fin, &ds, &test)?,
    ];

    let limit = edge_contract().max_abs_weight();
    let (raw, bias) = fin.raw();
    let mut features = Vec::with_capacity(raw.len());
    for (c, weight) in &raw {
        if !weight.is_finite() || weight.abs() > limit {
            return Err(FitError::WeightTooLarge {
                name: name(*c).to_owned(),
                weight: *weight,
                limit,
            });
        }
        features.push(Feature {
            name: name(*c).to_owned(),
            ty: CATALOG.get(*c).map_or("", |e| e.ty).to_owned(),
            weight: *weight,
        });
    }
    // By name: the order `ORDER BY name` gives a table built from this catalog.
    features.sort_by(|a, b| a.name.cmp(&b.name));
    let final_auc = evaluations.last().map_or(0.0, |e| e.auc);
    let catalog = Catalog {
        schema: CATALOG_SCHEMA.to_owned(),
        bias,
        features,
        fit: json!({
            "method": "logistic regression, Newton (IRLS), L2 on standardized weights, folded to raw",
            "data": options.data,
            "seed": options.seed,
            "l2": L2_PENALTY,
            "samples_train": train.len(),
            "samples_held_out": test.len(),
            "held_out_auc": round6(final_auc),
            "generator_version": rampart_generate::job::GENERATOR_VERSION,
        }),
    };
    let standardized: Vec<(usize, f64)> = fin
        .columns
        .iter()
        .copied()
        .zip(fin.model.weights.iter().copied())
        .collect();
    let report = report::render(&report::Inputs {
        options,
        profiles,
        ds: &ds,
        train: train.len(),
        test: test.len(),
        varying: &varying,
        evaluations: &evaluations,
        catalog: &catalog,
        standardized: &standardized,
    });
    Ok(FitResult {
        catalog,
        report,
        evaluations,
        samples: (train.len(), test.len()),
    })
}

fn fit_columns(ds: &Dataset, train: &[usize], columns: Vec<usize>) -> Result<Fitted, FitError> {
    let mean: Vec<f64> = columns.iter().map(|c| column_mean(ds, train, *c)).collect();
    let std: Vec<f64> = columns.iter().map(|c| column_std(ds, train, *c)).collect();
    let mut values = Vec::with_capacity(train.len() * columns.len());
    let mut y = Vec::with_capacity(train.len());
    for i in train {
        let row = ds.rows.get(*i).ok_or(FitError::Shape("row".into()))?;
        values.extend(standardized(row, &columns, &mean, &std));
        y.push(if flag(&ds.human, *i) { 1.0 } else { 0.0 });
    }
    let humans = y.iter().filter(|v| **v > 0.5).count();
    let bots = y.len() - humans;
    if humans == 0 || bots == 0 {
        return Err(FitError::Empty("class"));
    }
    // Class-balanced: each class weighs half of the training set.
    let n = y.len() as f64;
    let w: Vec<f64> = y
        .iter()
        .map(|v| {
            if *v > 0.5 {
                n / (2.0 * humans as f64)
            } else {
                n / (2.0 * bots as f64)
            }
        })
        .collect();
    let x = Matrix {
        cols: columns.len(),
        values,
    };
    let model = logistic::fit(&x, &y, &w, L2_PENALTY)?;
    Ok(Fitted {
        columns,
        mean,
        std,
        model,
    })
}

fn evaluate(
    label: &'static str,
    m: &Fitted,
    ds: &Dataset,
    test: &[usize],
) -> Result<Evaluation, FitError> {
    let scores: Vec<f64> = test
        .iter()
        .filter_map(|i| ds.rows.get(*i).map(|r| m.logit(r)))
        .collect();
    let human: Vec<bool> = test.iter().map(|i| flag(&ds.human, *i)).collect();
    let overall = auc::auc(&scores, &human).ok_or(FitError::Empty("held-out class"))?;
    let mut by_kind = Vec::new();
    for kind in [Kind::Tool, Kind::Crawler, Kind::Automation, Kind::Imitator] {
        let (s, h): (Vec<f64>, Vec<bool>) = test
            .iter()
            .zip(&scores)
            .filter(|(i, _)| flag(&ds.human, **i) || ds.kind.get(**i) == Some(&kind))
            .map(|(i, s)| (*s, flag(&ds.human, *i)))
            .unzip();
        if let Some(a) = auc::auc(&s, &h) {
            by_kind.push((kind, a));
        }
    }
    Ok(Evaluation {
        name: label,
        features: m.columns.len(),
        auc: overall,
        by_kind,
    })
}

fn standardized(row: &[f32; COUNT], columns: &[usize], mean: &[f64], std: &[f64]) -> Vec<f64> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| (f64::from(row.get(*c).copied().unwrap_or(0.0)) - at(mean, i)) / at(std, i))
        .collect()
}

fn column_mean(ds: &Dataset, idx: &[usize], c: usize) -> f64 {
    let sum: f64 = idx.iter().map(|i| value(ds, *i, c)).sum();
    sum / idx.len().max(1) as f64
}

fn column_std(ds: &Dataset, idx: &[usize], c: usize) -> f64 {
    let m = column_mean(ds, idx, c);
    let var: f64 = idx.iter().map(|i| (value(ds, *i, c) - m).powi(2)).sum();
    (var / idx.len().max(1) as f64).sqrt()
}

fn value(ds: &Dataset, i: usize, c: usize) -> f64 {
    f64::from(
        ds.rows
            .get(i)
            .and_then(|r| r.get(c))
            .copied()
            .unwrap_or(0.0),
    )
}

fn flag(v: &[bool], i: usize) -> bool {
    v.get(i).copied().unwrap_or(false)
}

fn at(v: &[f64], i: usize) -> f64 {
    v.get(i).copied().unwrap_or(1.0)
}

fn name(c: usize) -> &'static str {
    CATALOG.get(c).map_or("", |e| e.name)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use rampart_artifact::{Document, Model, testing, validate};
    use rampart_score::Scorer;
    use rampart_traffic::{Label, Mix, Traffic};

    use super::*;

    fn small_fit() -> FitResult {
        let p = Profiles::embedded().unwrap();
        fit(
            &p,
            &FitOptions {
                data: "embedded".into(),
                seed: 1,
                features: TARGET_FEATURES,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_fit_on_the_embedded_subset_separates_and_makes_an_edge_model() {
        let r = small_fit();
        let fin = r.evaluations.last().unwrap();
        assert!(fin.auc >= GOAL_AUC, "{:?}", r.evaluations);
        assert_eq!(r.catalog.features.len(), fin.features);
        assert!(r.catalog.features.len() <= TARGET_FEATURES);
        let names: Vec<_> = r.catalog.features.iter().map(|f| f.name.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "catalog features are in name order");
        // The raw model, compiled for the edge, scores traffic it never saw: humans above bots.
        let doc = Document {
            model: Model {
                bias: r.catalog.bias,
            },
            ..testing::document(1, r.catalog.features.clone())
        };
        let contract = edge_contract();
        let model =
            rampart_score::Model::compile(&validate(&doc, &contract, None).unwrap(), 200).unwrap();
        let scorer = Scorer::new();
        let mut scores = Vec::new();
        let mut human = Vec::new();
        for (i, l) in Traffic::new(&Profiles::embedded().unwrap(), Mix::default(), 99)
            .take(3000)
            .enumerate()
        {
            scores.push(f64::from(
                model.logit(&scorer.features(&l.request.view(i as u64 * 120_000))),
            ));
            human.push(l.label == Label::Human);
        }
        let a = auc::auc(&scores, &human).unwrap();
        assert!(a >= 0.9, "{a}");
    }

    #[test]
    fn the_fit_is_deterministic_and_the_seed_matters() {
        let p = Profiles::embedded().unwrap();
        let opts = |seed| FitOptions {
            data: "embedded".into(),
            seed,
            features: 20,
        };
        let a = fit(&p, &opts(5)).unwrap();
        let b = fit(&p, &opts(5)).unwrap();
        assert_eq!(a.catalog, b.catalog);
        assert_eq!(a.report, b.report);
        let c = fit(&p, &opts(6)).unwrap();
        assert_ne!(a.catalog, c.catalog);
        assert_eq!(a.catalog.features.len(), 20);
    }

    #[test]
    fn folding_back_gives_the_same_logits() {
        let p = Profiles::embedded().unwrap();
        let ds = Dataset::build(&p, 3);
        let train: Vec<usize> = (0..ds.len()).filter(|i| !ds.test[*i]).collect();
        let cols: Vec<usize> = (0..COUNT)
            .filter(|c| column_std(&ds, &train, *c) > MIN_STD)
            .take(12)
            .collect();
        let m = fit_columns(&ds, &train, cols).unwrap();
        let (raw, bias) = m.raw();
        for row in ds.rows.iter().take(50) {
            let z_raw: f64 = bias + raw.iter().map(|(c, w)| w * f64::from(row[*c])).sum::<f64>();
            assert!(
                (z_raw - m.logit(row)).abs() < 1e-9,
                "{z_raw} vs {}",
                m.logit(row)
            );
        }
    }
}
