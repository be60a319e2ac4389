//! Shadow scoring of a 10,000-request sample, candidate and serving (the goal: well
//! under a second, to fit the generator's 5-minute cycle). The sample is the embedded
//! labelled one, repeated to [`REQUESTS`] rows.
//!
//! - `shadow_10k`: both files score every request, the shift test, the flips and precision
//!   and recall.
//! - `embedded_sample`: building the embedded labelled sample itself (done once per run).
//!
//! Run: `cargo bench -p rampart-fit --bench shadow`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_artifact::{Document, Model as DocModel, testing, validate};
use rampart_fit::dataset::Dataset;
use rampart_fit::shadow::{EMBEDDED_SEED, Sample, ShadowPolicy, shadow};
use rampart_generate::Catalog;
use rampart_score::{FeatureId, Features, Model, edge_contract};
use rampart_traffic::Profiles;

/// Requests in the benchmarked sample.
const REQUESTS: usize = 10_000;

fn main() {
    let ds = Dataset::build(&Profiles::embedded().unwrap(), EMBEDDED_SEED);
    eprintln!(
        "sample: {REQUESTS} requests, {} bytes of extractor values ({} per request)",
        REQUESTS * std::mem::size_of::<Features>(),
        std::mem::size_of::<Features>()
    );
    drop(ds);
    divan::main();
}

fn models() -> (Model, Model) {
    let catalog = Catalog::embedded().unwrap();
    let doc = Document {
        model: DocModel { bias: catalog.bias },
        ..testing::document(1, catalog.features.clone())
    };
    let contract = edge_contract();
    let serving = Model::compile(&validate(&doc, &contract, None).unwrap(), 200).unwrap();
    let mut moved = doc.clone();
    moved.version = 2;
    moved.model.bias += 2.0;
    let candidate = Model::compile(&validate(&moved, &contract, None).unwrap(), 200).unwrap();
    (candidate, serving)
}

fn sample() -> Sample {
    let ds = Dataset::build(&Profiles::embedded().unwrap(), EMBEDDED_SEED);
    let mut rows = Vec::with_capacity(REQUESTS);
    let mut human = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let at = i % ds.len();
        let mut f = Features::zeroed();
        for (id, x) in FeatureId::ALL.iter().zip(&ds.rows[at]) {
            f.set(*id, *x);
        }
        rows.push(f);
        human.push(ds.human[at]);
    }
    Sample::new(rows, Some(human)).unwrap()
}

#[divan::bench(sample_count = 20)]
fn shadow_10k(bencher: divan::Bencher) {
    let (candidate, serving) = models();
    let s = sample();
    let policy = ShadowPolicy::default();
    bencher.bench(|| shadow(&candidate, &serving, &s, &policy));
}

#[divan::bench(sample_count = 5)]
fn embedded_sample() -> Sample {
    Sample::embedded().unwrap()
}
