//! The per-connection user-agent memo changes nothing: `extract_memo` gives exactly what
//! `extract` gives, whatever the sequence of user agents on the connection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/traffic.rs"]
mod traffic;

use http::HeaderMap;
use proptest::prelude::*;
use rampart_score::{AgentMemo, MAX_MEMO_UA, RateTable, Scorer, extract, extract_memo};
use traffic::{AUTOMATED, BROWSERS, example_model, header_map, headers, view};

/// Every sample agent, plus one too long to keep, and a request without a user agent.
fn maps() -> Vec<HeaderMap> {
    let mut maps: Vec<HeaderMap> = BROWSERS
        .iter()
        .chain(AUTOMATED)
        .map(|(ua, kit)| header_map(&headers(*kit, ua)))
        .collect();
    let long = format!("Mozilla/5.0 {}", "x".repeat(MAX_MEMO_UA));
    maps.push(header_map(&[("user-agent", long)]));
    maps.push(header_map(&[("accept", "*/*".to_owned())]));
    maps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_memo_never_changes_a_feature(picks in prop::collection::vec(0usize..1000, 1..40)) {
        let maps = maps();
        let plain = RateTable::with_slots(1024, 7);
        let memoed = RateTable::with_slots(1024, 7);
        let mut memo = AgentMemo::default();
        for (i, pick) in picks.iter().enumerate() {
            // Runs of the same agent, as on a real connection, and switches between them.
            let map = &maps[(pick / 7) % maps.len()];
            let req = view(map, (pick % 3) as u32, 1_000 + i as u64 * 700);
            prop_assert_eq!(extract_memo(&req, &memoed, &mut memo), extract(&req, &plain));
        }
    }
}

#[test]
fn scores_with_and_without_the_memo_agree() {
    let maps = maps();
    let model = example_model();
    let plain = Scorer::with_rate(RateTable::with_slots(1024, 9));
    let memoed = Scorer::with_rate(RateTable::with_slots(1024, 9));
    let mut memo = AgentMemo::default();
    for round in 0..3u64 {
        for (i, map) in maps.iter().enumerate() {
            for repeat in 0..3u64 {
                let req = view(map, i as u32, 1_000 + round * 10_000 + repeat);
                assert_eq!(
                    memoed.score_memo(Some(&model), &req, &mut memo),
                    plain.score(Some(&model), &req)
                );
            }
        }
    }
}
