//! Shadow scoring on the embedded labelled sample, on files that pass every structural check:
//! the same file, a small retrain (allowed), "every score is 1", one weight's sign flipped, and
//! a retrain that shifts scores a lot (each held, with the numbers that hold it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_artifact::{Document, Model as DocModel, testing, validate};
use rampart_fit::dataset::Dataset;
use rampart_fit::shadow::{self, Sample, ShadowPolicy, shadow};
use rampart_generate::Catalog;
use rampart_rollout::Verdict;
use rampart_score::{Model, edge_contract};
use rampart_traffic::Profiles;

fn serving_document() -> Document {
    let catalog = Catalog::embedded().unwrap();
    Document {
        model: DocModel { bias: catalog.bias },
        ..testing::document(1, catalog.features.clone())
    }
}

fn compile(doc: &Document) -> Model {
    let contract = edge_contract();
    Model::compile(&validate(doc, &contract, None).unwrap(), 200).unwrap()
}

fn candidate(change: impl FnOnce(&mut Document)) -> Model {
    let mut doc = serving_document();
    doc.version = 2;
    change(&mut doc);
    compile(&doc)
}

fn sample() -> Sample {
    Sample::embedded().unwrap()
}

#[test]
fn the_same_model_changes_nothing() {
    let s = sample();
    assert!(s.len() > 1_000, "{} requests", s.len());
    let serving = compile(&serving_document());
    let r = shadow(&candidate(|_| {}), &serving, &s, &ShadowPolicy::default());
    assert!(r.passes(), "{}", r.text());
    assert!(r.labelled);
    assert!(
        r.flips
            .iter()
            .all(|f| f.to_blocked == 0.0 && f.to_allowed == 0.0)
    );
    assert_eq!(r.serving, r.candidate);
    // The serving model is a real one: it catches most bots at "block below 30".
    let q = r.serving.unwrap();
    assert!(
        q.recall.unwrap() > 0.5 && q.precision.unwrap() > 0.8,
        "{q:?}"
    );
}

#[test]
fn a_small_retrain_is_allowed() {
    let serving = compile(&serving_document());
    let c = candidate(|d| {
        for f in &mut d.features {
            f.weight *= 1.02;
        }
    });
    let r = shadow(&c, &serving, &sample(), &ShadowPolicy::default());
    assert!(r.passes(), "{}", r.text());
    assert!(matches!(r.shift, Verdict::Pass { .. }), "{:?}", r.shift);
}

#[test]
fn every_score_one_is_held_on_every_count() {
    let serving = compile(&serving_document());
    let c = candidate(|d| d.model.bias = -999.0);
    let r = shadow(&c, &serving, &sample(), &ShadowPolicy::default());
    assert!(!r.passes());
    let text = r.text();
    assert!(matches!(r.shift, Verdict::Fail(_)), "{text}");
    // Every human is now blocked at "block below 30": precision for bots collapses.
    let at30 = r.flips.iter().find(|f| f.threshold == 30).unwrap();
    assert!((at30.blocked_candidate - 1.0).abs() < 1e-9, "{text}");
    assert!(
        r.held.iter().any(|h| h.contains("change verdict")),
        "{text}"
    );
    assert!(r.held.iter().any(|h| h.contains("precision")), "{text}");
}

#[test]
fn the_most_influential_weight_with_its_sign_flipped_is_held() {
    // Influence on this sample: |weight| × mean |value| (a rare binary feature with a large
    // raw weight moves few requests).
    let ds = Dataset::build(&Profiles::embedded().unwrap(), shadow::EMBEDDED_SEED);
    let doc = serving_document();
    let influence = |name: &str, w: f64| {
        let id = rampart_score::FeatureId::from_name(name).unwrap();
        let mean: f64 = ds
            .rows
            .iter()
            .map(|r| f64::from(r[id.index()]).abs())
            .sum::<f64>()
            / ds.rows.len() as f64;
        w.abs() * mean
    };
    let top = doc
        .features
        .iter()
        .max_by(|a, b| influence(&a.name, a.weight).total_cmp(&influence(&b.name, b.weight)))
        .unwrap()
        .name
        .clone();
    let serving = compile(&doc);
    let c = candidate(|d| {
        let f = d.features.iter_mut().find(|f| f.name == top).unwrap();
        f.weight = -f.weight;
    });
    let r = shadow(&c, &serving, &sample(), &ShadowPolicy::default());
    assert!(!r.passes(), "{top}: {}", r.text());
    // How many single sign flips the policy holds, for the record (docs/shadow.md).
    let held = doc
        .features
        .iter()
        .filter(|x| {
            let c = candidate(|d| {
                let f = d.features.iter_mut().find(|f| f.name == x.name).unwrap();
                f.weight = -f.weight;
            });
            !shadow(&c, &serving, &sample(), &ShadowPolicy::default()).passes()
        })
        .count();
    eprintln!(
        "single sign flips held: {held} of {} (most influential: {top})",
        doc.features.len()
    );
}

#[test]
fn a_retrain_that_shifts_scores_a_lot_is_held_and_a_looser_policy_lets_it_through() {
    let serving = compile(&serving_document());
    let c = candidate(|d| d.model.bias += 2.0);
    let r = shadow(&c, &serving, &sample(), &ShadowPolicy::default());
    assert!(!r.passes(), "{}", r.text());
    // The same file, judged with limits no shift reaches.
    let mut loose = ShadowPolicy::default();
    loose.shift.min_d = 1.1;
    loose.max_flip_share = 1.0;
    loose.max_recall_drop = 1.0;
    loose.max_precision_drop = 1.0;
    assert!(shadow(&c, &serving, &sample(), &loose).passes());
}

#[test]
fn a_recorded_sample_reads_from_json_lines_and_refuses_what_it_cannot_read() {
    let text = "{\"features\": {\"ua_length\": 120, \"ua_is_empty\": 0}, \"human\": true}\n\
                {\"features\": {}, \"human\": false}\n";
    assert_eq!(Sample::from_jsonl(text).unwrap().len(), 2);
    assert!(err_of("{\"features\": {\"ua_length\": \"x\"}}").contains("finite number"));
    let err = err_of;
    assert!(err("").contains("empty"));
    assert!(err("{}").contains("line 1"), "{}", err("{}"));
    assert!(err("{\"features\": {\"nope\": 1}}").contains("not an extractor"));
    assert!(err("{\"features\": {}, \"human\": true}\n{\"features\": {}}").contains("line 2"));
    assert!(err("not json").contains("not JSON"));
}

fn err_of(t: &str) -> String {
    Sample::from_jsonl(t).unwrap_err().to_string()
}

#[test]
fn as_the_generators_output_check_it_holds_every_score_one_and_passes_a_small_retrain() {
    use rampart_generate::OutputCheck as _;
    let check = shadow::ShadowCheck::embedded(edge_contract()).unwrap();
    let published = serving_document();
    let mut ones = published.clone();
    ones.version = 2;
    ones.model.bias = -999.0;
    let reasons = check.check(&ones, &published).unwrap_err();
    assert!(
        reasons.iter().any(|r| r.contains("score distribution")),
        "{reasons:?}"
    );
    let mut retrain = published.clone();
    retrain.version = 2;
    for f in &mut retrain.features {
        f.weight *= 1.02;
    }
    let ok = check.check(&retrain, &published).unwrap();
    assert!(ok.starts_with("within policy"), "{ok}");
}
