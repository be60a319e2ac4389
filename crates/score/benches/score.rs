//! Scoring speed: extract + score one request with the 60-odd-feature example plan and with
//! a 200-feature plan (goals: ≤ 2 µs and ≤ 5 µs median).
//!
//! The 200-feature plan repeats catalogue entries (the catalogue has fewer than 200 names),
//! built with the bench-only `Plan::from_raw_for_bench`; scoring cost depends on the number
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
use rampart_score::{AgentMemo, FeatureId, Plan, Scorer, extract};
use traffic::{AUTOMATED, BROWSERS, example_plan, header_map, headers, view};

fn main() {
    divan::main();
}

/// A plan of `n` terms cycling through the example model's features.
fn plan_of(n: usize) -> Plan {
    let example = example_plan();
    let terms: Vec<(FeatureId, f32)> = example.terms().cycle().take(n).collect();
    Plan::from_raw_for_bench(&terms, example.bias())
}

fn bench_score(bencher: Bencher, plan: &Plan, ua: &str, kit: traffic::Kit) {
    let scorer = Scorer::new();
    let map = header_map(&headers(kit, ua));
    let req = view(&map, 1, 1_000);
    bencher.bench_local(|| scorer.score(Some(black_box(plan)), black_box(&req)));
}

/// Extract + score, Chrome desktop with its 14 headers, the example plan.
#[divan::bench]
fn score_chrome_example_plan(bencher: Bencher) {
    let (ua, kit) = BROWSERS[0];
    bench_score(bencher, &example_plan(), ua, kit);
}

/// Extract + score, Chrome desktop, the example plan, as the edge does it: with the client
/// connection's user-agent memo (the same agent as the last request on the connection).
#[divan::bench]
fn score_chrome_example_plan_memo(bencher: Bencher) {
    let (ua, kit) = BROWSERS[0];
    let plan = example_plan();
    let scorer = Scorer::new();
    let map = header_map(&headers(kit, ua));
    let req = view(&map, 1, 1_000);
    let mut memo = AgentMemo::default();
    bencher.bench_local(|| scorer.score_memo(Some(black_box(&plan)), black_box(&req), &mut memo));
}

/// Extract + score, Chrome desktop, 200 features.
#[divan::bench]
fn score_chrome_200_features(bencher: Bencher) {
    let (ua, kit) = BROWSERS[0];
    bench_score(bencher, &plan_of(200), ua, kit);
}

/// Extract + score, Googlebot-Mobile (a long user agent), the example plan.
#[divan::bench]
fn score_crawler_example_plan(bencher: Bencher) {
    let (ua, kit) = AUTOMATED[8];
    bench_score(bencher, &example_plan(), ua, kit);
}

/// Extract + score, curl (3 headers), the example plan.
#[divan::bench]
fn score_curl_example_plan(bencher: Bencher) {
    let (ua, kit) = AUTOMATED[0];
    bench_score(bencher, &example_plan(), ua, kit);
}

/// Extraction alone (every catalogue feature), Chrome desktop.
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
    let plan = plan_of(n);
    let scorer = Scorer::new();
    let (ua, kit) = BROWSERS[0];
    let map = header_map(&headers(kit, ua));
    let features = scorer.features(&view(&map, 1, 1_000));
    bencher.bench_local(|| black_box(&plan).score(black_box(&features)));
}

/// Why the plan stores `f32`: a 200-term gather-dot-product in `f32` against `f64`.
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
