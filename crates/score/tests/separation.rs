//! The example model separates real browsers from tools, crawlers and headless browsers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/traffic.rs"]
mod traffic;

use rampart_score::{Score, Scorer, blocks};
use traffic::{AUTOMATED, BROWSERS, example_model, header_map, headers, view};

fn score_of(scorer: &Scorer, ua: &str, kit: traffic::Kit, client: u32) -> u8 {
    let map = header_map(&headers(kit, ua));
    match scorer.score(Some(&example_model()), &view(&map, client, 1_000)) {
        Score::Scored(s) => s,
        other => panic!("{ua}: {other:?}"),
    }
}

#[test]
fn browsers_score_above_70_and_automation_below_20() {
    let scorer = Scorer::new();
    let mut report = Vec::new();
    let mut bad = Vec::new();
    let model = example_model();
    let logit = |ua: &str, kit, n| {
        let map = header_map(&headers(kit, ua));
        model.logit(&scorer.features(&view(&map, n, 1_000)))
    };
    for (i, (ua, kit)) in BROWSERS.iter().enumerate() {
        let s = score_of(&scorer, ua, *kit, i as u32);
        let z = logit(ua, *kit, 500 + i as u32);
        report.push(format!("{s:>3} {z:>6.2} human {ua}"));
        if s <= 70 {
            bad.push(format!("browser scored {s}: {ua}"));
        }
    }
    for (i, (ua, kit)) in AUTOMATED.iter().enumerate() {
        let s = score_of(&scorer, ua, *kit, 1000 + i as u32);
        let z = logit(ua, *kit, 1500 + i as u32);
        report.push(format!("{s:>3} {z:>6.2} bot   {ua}"));
        if s >= 20 {
            bad.push(format!("automation scored {s}: {ua}"));
        }
    }
    println!("{}", report.join("\n"));
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn a_block_rule_at_30_passes_every_browser_and_stops_every_tool() {
    let scorer = Scorer::new();
    for (i, (ua, kit)) in BROWSERS.iter().enumerate() {
        let s = score_of(&scorer, ua, *kit, 2000 + i as u32);
        assert!(!blocks(Score::Scored(s), Some(30)), "{ua}");
    }
    for (i, (ua, kit)) in AUTOMATED.iter().enumerate() {
        let s = score_of(&scorer, ua, *kit, 3000 + i as u32);
        assert!(blocks(Score::Scored(s), Some(30)), "{ua}");
    }
}

#[test]
fn a_browser_user_agent_at_machine_rate_scores_lower() {
    let scorer = Scorer::new();
    let (ua, kit) = BROWSERS[0];
    let map = header_map(&headers(kit, ua));
    let model = example_model();
    let first = scorer
        .score(Some(&model), &view(&map, 9, 5_000))
        .value()
        .unwrap();
    let mut last = first;
    for _ in 0..600 {
        last = scorer
            .score(Some(&model), &view(&map, 9, 5_000))
            .value()
            .unwrap();
    }
    assert!(
        last + 20 < first,
        "first {first}, after 600 in a minute {last}"
    );
    // A new minute starts over.
    let next = scorer
        .score(Some(&model), &view(&map, 9, 65_000))
        .value()
        .unwrap();
    assert_eq!(next, first);
}

#[test]
fn the_same_browser_without_its_browser_headers_scores_lower() {
    // A scraper that copies a Chrome user agent onto curl's headers.
    let scorer = Scorer::new();
    let (ua, kit) = BROWSERS[0];
    let real = score_of(&scorer, ua, kit, 4000);
    let spoofed = score_of(&scorer, ua, traffic::Kit::Curl, 4001);
    assert!(spoofed + 40 < real, "real {real}, spoofed {spoofed}");
}
