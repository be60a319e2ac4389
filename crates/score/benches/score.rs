//! Scoring speed: extract + score one request with the 60-odd-feature example model and with
//! a 200-feature model (goals: ≤ 2 µs and ≤ 5 µs median).
//!
//! The 200-feature model repeats catalog entries (the catalog has fewer than 200 names),
//! built with the bench-only `Model::from_raw_for_bench`; scoring cost depends on the number
//! of terms, not on which features they are.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/support/traffic.rs"]
mod traffic;

use divan::{Bencher, black_box};
use rampart_score::{AgentMemo, FeatureId, Model, Scorer, extract};
use traffic::{AUTOMATED, BROWSERS, example_model, header_map, headers, view};

fn main() {
    divan::main();
}

/// A model of `n` terms cycling through the example model's features.
fn model_of(n: usize) -> Model {
    let example = example_model();
    let terms: Vec<(FeatureId, f32)> = example.terms().cycle().take(n).collect();
    Model::from_raw_for_bench(&terms, example.bias())
}

fn bench_score(bencher: Bencher, model: &Model, ua: &str, kit: traffic::Kit) {
    let scorer = Scorer::new();
    let map = header_map(&headers(kit, ua));
    let req = view(&map, 1, 1_000);
    bencher.bench_local(|| scorer.score(Some(black_box(model)), black_box(&req)));
}

/// Extract + score, Chrome desktop with its 14 headers, the example model.
#[divan::bench]
fn score_chrome_example_model(bencher: Bencher) {
    let (ua, kit) = BROWSERS[0];
    bench_score(bencher, &example_model(), ua, kit);
}

/// Extract + score, Chrome desktop, the example model, as the edge does it: with the client
/// connection's user-agent memo (the same agent as the last request on the connection).
#[divan::bench]
fn score_chrome_example_model_memo(bencher: Bencher) {
    let (ua, kit) = BROWSERS[0];
    let model = example_model();
    let scorer = Scorer::new();
    let map = header_map(&headers(kit, ua));
    let req = view(&map, 1, 1_000);
    let mut memo = AgentMemo::default();
    bencher.bench_local(|| scorer.score_memo(Some(black_box(&model)), black_box(&req), &mut memo));
}

/// Extract + score, Chrome desktop, 200 features.
#[divan::bench]
fn score_chrome_200_features(bencher: Bencher) {
    let (ua, kit) = BROWSERS[0];
    bench_score(bencher, &model_of(200), ua, kit);
}

/// Extract + score, Googlebot-Mobile (a long user agent), the example model.
#[divan::bench]
fn score_crawler_example_model(bencher: Bencher) {
    let (ua, kit) = AUTOMATED[8];
    bench_score(bencher, &example_model(), ua, kit);
}

/// Extract + score, curl (3 headers), the example model.
#[divan::bench]
fn score_curl_example_model(bencher: Bencher) {
    let (ua, kit) = AUTOMATED[0];
    bench_score(bencher, &example_model(), ua, kit);
}

/// Extraction alone (every catalog feature), Chrome desktop.
#[divan::bench]
fn extract_chrome(bencher: Bencher) {
    let scorer = Scorer::new();
    let (ua, kit) = BROWSERS[0];
    let map = header_map(&headers(kit, ua));
    let req = view(&map, 1, 1_000);
    bencher.bench_local(|| extract(black_box(&req), scorer.rate()));
}

/// The model alone (dot product and sigmoid), by number of terms.
#[divan::bench(args = [60, 200])]
fn model_only(bencher: Bencher, n: usize) {
    let model = model_of(n);
    let scorer = Scorer::new();
    let (ua, kit) = BROWSERS[0];
    let map = header_map(&headers(kit, ua));
    let features = scorer.features(&view(&map, 1, 1_000));
    bencher.bench_local(|| black_box(&model).score(black_box(&features)));
}

/// Why the model stores `f32`: a 200-term gather-dot-product in `f32` against `f64`.
#[divan::bench(types = [f32, f64])]
fn dot_200<T>(bencher: Bencher)
where
    T: Copy + From<f32> + std::ops::Mul<Output = T> + std::ops::AddAssign + Default,
{
    let ids: Vec<usize> = (0..200).map(|i| (i * 7) % 81).collect();
    let weights: Vec<T> = (0..200).map(|i| T::from(i as f32 / 200.0)).collect();
    let values: Vec<T> = (0..81).map(|i| T::from(i as f32)).collect();
    bencher.bench_local(|| {
        let mut sum = T::default();
        for (i, w) in black_box(&ids).iter().zip(black_box(&weights)) {
            sum += *w * values[*i];
        }
        sum
    });
}
