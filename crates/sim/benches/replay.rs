//! One whole replay of 18 November (11:00 to 17:30) on a 40 × 4 fleet, per run kind.
//! The full-size numbers (330 × 4 and 330 × 50, every mode) come from `crates/sim/bench.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rampart_sim::replay::{Shared, run};
use rampart_sim::{Layer, Scenario, Variant};

fn main() {
    divan::main();
}

fn scenario() -> Scenario {
    Scenario::load("nov18")
        .unwrap()
        .resized(Some(40), Some(4))
        .unwrap()
}

#[divan::bench(sample_count = 5)]
fn naive(b: divan::Bencher) {
    let s = scenario();
    let shared = Shared::new(&s).unwrap();
    b.bench(|| run(&s, &Variant::naive(), &shared, &mut |_| {}).unwrap());
}

#[divan::bench(sample_count = 5)]
fn rampart(b: divan::Bencher) {
    let s = scenario();
    let shared = Shared::new(&s).unwrap();
    b.bench(|| run(&s, &Variant::rampart(), &shared, &mut |_| {}).unwrap());
}

#[divan::bench(sample_count = 5)]
fn only_edge_ingestion(b: divan::Bencher) {
    let s = scenario();
    let shared = Shared::new(&s).unwrap();
    b.bench(|| {
        run(
            &s,
            &Variant::only(Layer::EdgeIngestion),
            &shared,
            &mut |_| {},
        )
        .unwrap()
    });
}
