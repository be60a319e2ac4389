//! Scoring a request allocates nothing in steady state, counted by dhat.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/traffic.rs"]
mod traffic;

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};

use http::Method;
use rampart_score::{AgentMemo, RequestView, Score, Scorer};
use traffic::{AUTOMATED, BROWSERS, example_model, header_map, headers, view};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

// One test function: dhat allows one profiler at a time per process.
#[test]
fn scoring_1000_requests_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let model = example_model();
    let scorer = Scorer::new();
    let maps: Vec<_> = BROWSERS
        .iter()
        .chain(AUTOMATED)
        .map(|(ua, kit)| header_map(&headers(*kit, ua)))
        .collect();
    let post = Method::POST;
    let request = |i: usize| -> RequestView<'_> {
        let mut r = view(
            &maps[i % maps.len()],
            (i % 97) as u32,
            1_000 + (i as u64) * 900,
        );
        if i.is_multiple_of(3) {
            r.path = "/static/../app.v2.js";
            r.query = Some("q=1&page=2");
            r.method = &post;
        }
        if i.is_multiple_of(5) {
            r.client = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 1));
        }
        r
    };

    // Warm up: the user-agent automaton is built on first use, and the memo's buffer grows
    // to the longest agent once.
    let mut memo = AgentMemo::default();
    for i in 0..maps.len() {
        black_box(scorer.score(Some(&model), &request(i)));
        black_box(scorer.score_memo(Some(&model), &request(i), &mut memo));
    }

    // The counter works: an allocation between two readings shows.
    let a = dhat::HeapStats::get();
    black_box(vec![0u8; 16]);
    let b = dhat::HeapStats::get();
    assert_eq!(b.total_blocks, a.total_blocks + 1);

    let before = dhat::HeapStats::get();
    let mut scored = 0;
    for i in 0..1_000 {
        if let Score::Scored(_) = black_box(scorer.score(Some(&model), &request(i))) {
            scored += 1;
        }
        black_box(scorer.score(None, &request(i)).header_value());
        // With the per-connection memo: runs of one agent, then another.
        if let Score::Scored(_) =
            black_box(scorer.score_memo(Some(&model), &request(i / 4), &mut memo))
        {
            scored += 1;
        }
    }
    let after = dhat::HeapStats::get();
    assert_eq!(scored, 2_000);
    assert_eq!(
        after.total_blocks - before.total_blocks,
        0,
        "{} allocations ({} bytes) while scoring 1,000 requests",
        after.total_blocks - before.total_blocks,
        after.total_bytes - before.total_bytes
    );
}
