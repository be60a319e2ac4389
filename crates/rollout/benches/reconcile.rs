//! The cost of the rollout engine at the real fleet's size (330 PoPs × 4 nodes), as the
//! simulator calls it every virtual second: reconcile (every gate, including the KS and
//! Mann–Whitney tests), one heartbeat absorbed, a whole second of the fleet (1,320 beats,
//! sync, reconcile), and the plan. Allocations are counted by divan's profiler.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/support/fleet.rs"]
mod fleet;

use divan::{AllocProfiler, Bencher, black_box};
use fleet::*;
use rampart_rollout::rollout::Reference;
use rampart_rollout::stats::{ks_two_sample, mann_whitney};
use rampart_rollout::*;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

const POPS: usize = 330;
const PER_POP: usize = 4;

/// A rollout of the full fleet standing in `phase`, with a reference baseline.
fn rollout_at(phase: Phase) -> Rollout {
    let mut r = rollout_over(&fleet(POPS, PER_POP, 8), RolloutPolicy::default());
    let mut status = r.status().clone();
    status.phase = phase;
    let mut pool = Pool::default();
    pool.counters.requests = 1_000_000;
    pool.scores = HUMANS_AND_BOTS.sample(100_000, &mut Rng(9));
    status.reference = Some(Reference { wave: None, pool });
    r.apply(Decision {
        status,
        actions: vec![],
        requeue_after_ms: None,
        transitioned: false,
    });
    r
}

/// Realistic beats for every node: touched ones on the new version.
fn beats(r: &Rollout) -> Vec<Beat> {
    let touched = r.status().phase.touched(r.plan());
    let mut rng = Rng(3);
    r.plan()
        .nodes()
        .iter()
        .map(|n| {
            let on_new = n.wave < touched;
            Beat {
                active: Some(if on_new { v2() } else { v1() }.digest),
                apply: None,
                counters: Counters {
                    requests: 400,
                    ..Counters::default()
                },
                scores: HUMANS_AND_BOTS.sample(400, &mut rng),
                restarts: 0,
                deaths: Vec::new(),
            }
        })
        .collect()
}

fn observed(r: &Rollout, now: u64) -> Observations {
    let mut obs = Observations::new(r);
    for (i, beat) in beats(r).iter().enumerate() {
        obs.absorb(NodeIdx(i as u32), beat, now).unwrap();
    }
    obs
}

fn baking_half() -> Phase {
    // Wave 2 of 4: 660 touched nodes, 660 baseline nodes.
    Phase::Baking {
        wave: 2,
        started_ms: 0,
        bake_until_ms: 1_000_000,
    }
}

/// One reconcile while the 50% wave bakes: every gate over 660 touched nodes.
#[divan::bench]
fn reconcile_baking_50_percent(bencher: Bencher) {
    let r = rollout_at(baking_half());
    let obs = observed(&r, 10_000);
    bencher.bench_local(|| reconcile(black_box(&r), black_box(&obs), 10_000));
}

/// One reconcile verifying the last wave: 1,320 touched nodes, against the reference.
#[divan::bench]
fn reconcile_verifying_last_wave(bencher: Bencher) {
    let r = rollout_at(Phase::Verifying {
        wave: 3,
        started_ms: 0,
        since_ms: 5_000,
    });
    let obs = observed(&r, 10_000);
    bencher.bench_local(|| reconcile(black_box(&r), black_box(&obs), 10_000));
}

/// One heartbeat absorbed (pooled into one or two pools).
#[divan::bench]
fn absorb_one_beat(bencher: Bencher) {
    let r = rollout_at(baking_half());
    let mut obs = observed(&r, 10_000);
    let beat = beats(&r).swap_remove(0);
    bencher.bench_local(|| obs.absorb(NodeIdx(0), black_box(&beat), 10_000));
}

/// A virtual second of the simulator: 1,320 beats, sync, reconcile.
#[divan::bench]
fn fleet_second(bencher: Bencher) {
    let r = rollout_at(baking_half());
    let mut obs = observed(&r, 10_000);
    let beats = beats(&r);
    bencher.bench_local(|| {
        for (i, beat) in beats.iter().enumerate() {
            obs.absorb(NodeIdx(i as u32), beat, 11_000).unwrap();
        }
        obs.sync(&r);
        reconcile(&r, &obs, 11_000)
    });
}

/// The two-sample tests alone on pooled histograms.
#[divan::bench]
fn ks_and_mann_whitney(bencher: Bencher) {
    let mut rng = Rng(5);
    let a = HUMANS_AND_BOTS.sample(100_000, &mut rng);
    let b = HUMANS_AND_BOTS.sample(100_000, &mut rng);
    bencher.bench_local(|| (ks_two_sample(&a, &b), mann_whitney(black_box(&a), &b)));
}

/// Planning the full fleet.
#[divan::bench]
fn plan_full_fleet(bencher: Bencher) {
    let nodes = fleet(POPS, PER_POP, 8);
    let policy = PlanPolicy::default();
    bencher.bench_local(|| plan(black_box(&nodes), &policy));
}
