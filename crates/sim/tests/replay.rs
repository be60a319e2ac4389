#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Whole replays on a smaller fleet (40 PoPs × 4: the same shape, fast in a debug build).

use rampart_sim::clock::parse_time_of_day;
use rampart_sim::report::Containment;
use rampart_sim::{Layer, Mode, Scenario, Summary, replay, report};

/// PoPs of the test fleet (4 nodes each, as the scenarios say).
const POPS: u32 = 40;
/// PoPs of the ablation's test fleet: eight runs, so smaller, still several waves.
const ABLATION_POPS: u32 = 12;

fn scenario(name: &str) -> Scenario {
    sized(name, POPS)
}

fn sized(name: &str, pops: u32) -> Scenario {
    Scenario::load(name)
        .unwrap()
        .resized(Some(pops), None)
        .unwrap()
}

fn summary(name: &str, mode: Mode) -> Summary {
    Summary::of(&replay(&scenario(name), mode, &mut |_| {}).unwrap())
}

fn minutes(hm: &str) -> u64 {
    parse_time_of_day(hm).unwrap() / 60_000
}

#[test]
fn the_same_seed_writes_the_same_summary_bytes() {
    let s = scenario("nov18");
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    report::write(&replay(&s, Mode::Rampart, &mut |_| {}).unwrap(), a.path()).unwrap();
    report::write(&replay(&s, Mode::Rampart, &mut |_| {}).unwrap(), b.path()).unwrap();
    let read = |d: &tempfile::TempDir| std::fs::read(d.path().join("summary.json")).unwrap();
    assert_eq!(read(&a), read(&b));
    let html = std::fs::read_to_string(a.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Layer by layer"));
    // Self-contained: no URL but the SVG namespace (which names, never fetches).
    let without_namespace = html.replace("http://www.w3.org/2000/svg", "");
    assert!(!without_namespace.contains("://"), "the report links out");
    // Another seed is another day.
    let mut other = s.clone();
    other.seed += 1;
    let c = Summary::of(&replay(&other, Mode::Naive, &mut |_| {}).unwrap());
    let a_naive: serde_json::Value = serde_json::from_slice(&read(&a)).unwrap();
    assert_ne!(
        serde_json::to_value(&c.runs[0].timeline).unwrap(),
        a_naive["runs"][0]["timeline"]
    );
}

#[test]
fn naive_has_the_shape_of_the_day_and_rampart_has_no_impact() {
    let sum = summary("nov18", Mode::Rampart);
    let naive = &sum.runs[0];
    let h = &naive.headline;
    assert!(h.impact_minutes > 200, "{h:?}");
    assert!(h.peak_failed_share > 0.5, "{h:?}");
    assert!(h.peak_blocked_human_share > 0.1, "{h:?}");
    assert!(h.crashes > 1000);
    // The first bad file reaches the fleet around 11:20.
    let first = minutes(h.first_impact.as_deref().unwrap());
    assert!(
        (minutes("11:15")..=minutes("11:35")).contains(&first),
        "{h:?}"
    );
    // Good, bad, good: a bucket without failures after one with them, before 13:00.
    let shares: Vec<(u64, f64)> = naive
        .buckets
        .iter()
        .map(|b| (minutes(&b.start), b.failed_share))
        .collect();
    let flap = shares
        .windows(3)
        .any(|w| w[2].0 < minutes("13:00") && w[0].1 > 0.3 && w[1].1 < 0.05 && w[2].1 > 0.3);
    assert!(flap, "no good/bad/good alternation: {shares:?}");
    // Steady failure until the manual fix, recovery after 14:30, a tail until 17:06.
    let at = |hm: &str| shares.iter().find(|(m, _)| *m == minutes(hm)).unwrap().1;
    assert!(at("14:00") > 0.5);
    assert!(at("14:35") < 0.2 && at("14:35") > 0.001);
    assert!(at("16:30") > 0.001, "the long tail");
    assert!(at("17:15") < 0.0001);
    let last = minutes(h.last_impact.as_deref().unwrap());
    assert!(
        (minutes("17:00")..=minutes("17:10")).contains(&last),
        "{h:?}"
    );

    let rampart = &sum.runs[1];
    let r = &rampart.headline;
    assert_eq!(r.impact_minutes, 0, "{r:?}");
    assert_eq!(r.failed_requests, 0);
    assert_eq!(r.blocked_humans, 0);
    assert_eq!(r.nodes_ever_affected, 0);
    assert_eq!(r.crashes, 0);
    assert_eq!(rampart.stops.reached_fleet, 0);
    assert!(rampart.stops.scoped_query > 10, "{:?}", rampart.stops);
    assert_eq!(rampart.stopped_by[0].layer, Layer::ScopedQuery);
    // Good files still roll out, in waves, every retrain.
    assert!(rampart.rollouts_started >= 3);
    assert_eq!(rampart.rollouts_rolled_back, 0);
}

#[test]
fn every_ablation_row_stops_the_fault_it_can_see() {
    let sum =
        Summary::of(&replay(&sized("nov18", ABLATION_POPS), Mode::Ablation, &mut |_| {}).unwrap());
    assert_eq!(sum.runs.len(), 1 + Layer::ALL.len());
    for run in &sum.runs[1..] {
        let layer = run.layer.unwrap();
        let v = run.headline.verdict;
        // Blessed last-known-good cannot see a file that kills the process as it loads: the
        // file never soaks, so it never becomes last-known-good anyway.
        if layer == Layer::BlessedLkg {
            assert_eq!(v, Containment::NotStopped, "{}", run.key);
            assert_eq!(
                run.headline.failed_requests,
                sum.runs[0].headline.failed_requests
            );
            continue;
        }
        // Shadow scoring judges only a file the edge's contract compiles: the doubled file
        // (over 200 features) is not judged, so it never holds one. Its row rides on waves
        // in which no gate can fail; a canary that crashes as it loads the file never
        // confirms it, so the rollout stalls at the canary and later files queue behind it:
        // that, not shadow scoring, is what keeps the fleet off the file.
        if layer == Layer::Shadow {
            assert_eq!(run.stops.shadow, 0, "{:?}", run.stops);
            assert!(
                run.stopped_by.iter().all(|s| s.layer != Layer::Shadow),
                "{:?}",
                run.stopped_by
            );
            continue;
        }
        // The watch alone judges by restarts and deaths, and a wave's gates are the same
        // gates: an FL2 crash loop fails its wave (a canary-gate stop), late, because a
        // process that dies as it loads the file sends no heartbeat to report its restarts.
        if layer == Layer::Watch {
            assert!(
                matches!(v, Containment::Contained),
                "{}: {v:?} {:?}",
                run.key,
                run.headline
            );
            assert!(
                run.stopped_by.iter().any(|s| s.layer == Layer::CanaryGates),
                "{:?}",
                run.stopped_by
            );
            continue;
        }
        // The sentinel only sees processes that die: it ends every FL2 crash loop, but the old
        // proxy never dies, so its zero scores keep blocking people. That is the score-shift
        // gate's job (and the edge's, which never loads the file). Its recurrence rule alone
        // does the same, by counting the same deaths another way.
        if matches!(layer, Layer::Sentinel | Layer::Recurrence) {
            assert_eq!(
                v,
                Containment::FailuresOnly,
                "{}: {:?}",
                run.key,
                run.headline
            );
            assert!(run.stops.sentinel_poisonings > 0);
            assert_eq!(
                run.stops.recurrence_poisonings > 0,
                layer == Layer::Recurrence,
                "{:?}",
                run.stops
            );
        } else {
            assert!(
                matches!(v, Containment::NoImpact | Containment::Contained),
                "{}: {v:?} {:?}",
                run.key,
                run.headline
            );
        }
        assert!(
            run.stopped_by.iter().any(|s| s.layer == layer),
            "{} stopped by {:?}",
            run.key,
            run.stopped_by
        );
        // Whatever a layer costs, it is at most a twentieth of the day's failures.
        assert!(run.headline.failed_requests * 20 < sum.runs[0].headline.failed_requests);
    }
}

#[test]
fn dec5_the_kill_switch_fails_old_proxies_and_passes_unscored_on_rampart() {
    let sum = summary("dec5", Mode::Rampart);
    let naive = &sum.runs[0].headline;
    assert!((20..=30).contains(&naive.impact_minutes), "{naive:?}");
    assert!((0.2..0.35).contains(&naive.peak_failed_share), "{naive:?}");
    let rampart = &sum.runs[1];
    assert_eq!(rampart.headline.impact_minutes, 0);
    let unscored = rampart
        .buckets
        .iter()
        .find(|b| b.start == "09:00")
        .unwrap()
        .unscored_share;
    assert!(
        unscored > 0.9,
        "the module is off: requests pass unscored ({unscored})"
    );
}

#[test]
fn a_scenario_of_ones_own_runs() {
    let text = r#"
name = "tiny"
title = "A tiny fleet"
date = "2025-11-18"
start = "11:00"
end = "11:40"
[fleet]
pops = 6
nodes_per_pop = 2
regions = 2
[clickhouse]
nodes = 2
r0_only_columns = 90
change_from = "11:00"
change_every = "1m"
[[event]]
at = "11:30"
action = "restart"
target = "all"
share = 0.5
note = "half the fleet restarts"
"#;
    let s = Scenario::from_toml(text).unwrap();
    let sum = Summary::of(&replay(&s, Mode::Naive, &mut |_| {}).unwrap());
    assert_eq!(sum.runs[0].buckets.len(), 8);
    assert!(sum.runs[0].headline.impact_minutes > 0);
    assert!(
        sum.runs[0]
            .timeline
            .iter()
            .any(|e| e.what == "half the fleet restarts")
    );
}

/// A small day with one `[[fault]]` entry from 10:10, for the kinds' own tests.
fn with_fault(fault: &str) -> Scenario {
    let text = format!(
        r#"
name = "one-fault"
title = "One fault"
date = "2025-10-29"
start = "10:00"
end = "11:00"
seed = 7
[fleet]
pops = 12
nodes_per_pop = 2
regions = 3
[generator]
from = "10:00"
every = "5m"
[[fault]]
at = "10:10"
{fault}
"#
    );
    Scenario::from_toml(&text).unwrap()
}

#[test]
fn error_rate_fails_its_share_on_the_nodes_it_hits_and_the_5xx_gate_stops_it() {
    let s = with_fault("kind = \"error_rate\"\nshare = 0.5\nnodes = 0.5\n");
    let sum = Summary::of(&replay(&s, Mode::Rampart, &mut |_| {}).unwrap());
    let naive = sum.runs[0].fault.as_ref().unwrap();
    // Half the requests of half the nodes, from the push (10:10) to the end.
    assert!((0.15..0.25).contains(&naive.failed_share), "{naive:?}");
    assert!(
        naive.nodes_affected > 4 && naive.nodes_affected < 24,
        "{naive:?}"
    );
    assert_eq!(naive.detected_by, None);
    assert_eq!(naive.fault_from.as_deref(), Some("10:10"));
    let rampart = sum.runs[1].fault.as_ref().unwrap();
    assert!(
        rampart.failed_share < naive.failed_share / 10.0,
        "{rampart:?}"
    );
    assert_eq!(rampart.detected_by, Some(Layer::CanaryGates), "{rampart:?}");
    assert!(rampart.time_to_detection_minutes.unwrap() < 10.0);
    assert_eq!(sum.scenario.faults.len(), 1);
}

#[test]
fn a_numeric_score_shift_is_held_by_shadow_scoring_and_caught_by_the_score_shift_gate() {
    let s = with_fault("kind = \"score_shift\"\nby = -4.0\n");
    let sum = Summary::of(&replay(&s, Mode::Rampart, &mut |_| {}).unwrap());
    let naive = &sum.runs[0];
    assert!(
        naive.headline.peak_blocked_human_share > 0.01,
        "{:?}",
        naive.headline
    );
    // With every layer, shadow scoring holds it in the generator, before any node serves it.
    let rampart = sum.runs[1].fault.as_ref().unwrap();
    assert_eq!(rampart.detected_by, Some(Layer::Shadow), "{rampart:?}");
    assert_eq!(rampart.nodes_with_faulty_lkg, 0, "{rampart:?}");
    // The score-shift gate alone rolls it back once the canary served it.
    let sum = Summary::of(&replay(&s, Mode::Ablation, &mut |_| {}).unwrap());
    let gate = sum
        .runs
        .iter()
        .find(|r| r.layer == Some(Layer::ScoreShiftGate))
        .unwrap();
    let f = gate.fault.as_ref().unwrap();
    assert_eq!(f.detected_by, Some(Layer::ScoreShiftGate), "{f:?}");
}

#[test]
fn all_zero_scores_block_people_on_the_nodes_hit() {
    let s = with_fault("kind = \"score_shift\"\nby = \"all_0\"\nproxy = \"fl\"\n");
    let sum = Summary::of(&replay(&s, Mode::Naive, &mut |_| {}).unwrap());
    let h = &sum.runs[0].headline;
    // One node in four is an old proxy: its people are blocked by the block-bots rules.
    assert!(
        h.blocked_human_share > 0.01 && h.peak_blocked_human_share < 0.2,
        "{h:?}"
    );
    assert_eq!(h.failed_requests, 0);
}

#[test]
fn latency_slows_requests_and_no_gate_sees_it() {
    let s = with_fault("kind = \"latency\"\nms = 300\nuntil = \"10:40\"\n");
    let sum = Summary::of(&replay(&s, Mode::Rampart, &mut |_| {}).unwrap());
    for run in &sum.runs {
        let f = run.fault.as_ref().unwrap();
        assert!(f.slowed_share > 0.2, "{}: {f:?}", run.key);
        assert_eq!(f.failed_share, 0.0);
        // Heartbeats carry no latency: the rollout has nothing to stop it with.
        assert_eq!(f.detected_by, None, "{}", run.key);
    }
}

#[test]
fn afd_oct29_naive_crash_loops_on_its_own_last_known_good_and_rampart_stops_it_at_the_canary() {
    // 12 PoPs: eight and a half hours of crash loops are slow in a debug build.
    let result = replay(
        &sized("afd-oct29", ABLATION_POPS),
        Mode::Rampart,
        &mut |_| {},
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sum = report::write(&result, dir.path()).unwrap();
    // The report shows the new rows: detection by the watch, faulty last-known-good.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("last-known-good held a faulty file"));
    assert!(html.contains(Layer::Watch.label()));
    let naive = &sum.runs[0];
    let f = naive.fault.as_ref().unwrap();
    assert_eq!(f.fault_from.as_deref(), Some("15:41"));
    assert_eq!(f.nodes_affected, 48, "fleet-wide: {f:?}");
    assert_eq!(f.nodes_with_faulty_lkg, 48, "{f:?}");
    assert!(f.crashes > 500, "{f:?}");
    assert_eq!(
        f.detected_by, None,
        "no layer of the naive pipeline sees it"
    );
    assert!(f.impact_minutes > 180, "{f:?}");
    // The rollback to last-known-good at 17:40 restores the fault: still failing after it.
    let at = |hm: &str| {
        naive
            .buckets
            .iter()
            .find(|b| b.start == hm)
            .unwrap()
            .failed_share
    };
    assert!(at("17:50") > 0.01, "{}", at("17:50"));
    assert!(
        naive
            .timeline
            .iter()
            .any(|e| e.what.contains("back to their own last-known-good"))
    );
    // rampart: every wave passes before the first death (the file is valid and kills only
    // after 5 minutes), then the watch over the whole fleet sees the canary's restarts and
    // rolls everyone back before any other node has served the file 5 minutes. The file was
    // never blessed, so no edge ever kept it as last-known-good.
    let run = &sum.runs[1];
    let r = run.fault.as_ref().unwrap();
    let canary = 4; // one canary PoP of 4 nodes
    assert!(r.nodes_affected <= canary, "{r:?}");
    assert!(r.crashes <= canary, "{r:?}");
    assert_eq!(r.nodes_with_faulty_lkg, 0, "{r:?}");
    assert_eq!(r.detected_by, Some(Layer::Watch), "{r:?}");
    assert!(r.time_to_detection_minutes.unwrap() < 7.0, "{r:?}");
    assert_eq!(run.stops.watch, 1, "{:?}", run.stops);
    assert_eq!(run.stops.reached_fleet, 0, "{:?}", run.stops);
    assert!(r.impact_minutes <= 2, "{r:?}");
    let line = |what: &str| run.timeline.iter().any(|e| e.what.contains(what));
    assert!(line("every wave passed; the whole fleet is watched"));
    assert!(line("fails during the watch"));
    assert!(
        run.timeline
            .iter()
            .any(|e| e.layer == Some(Layer::Watch) && e.what.contains("gate restarts")),
        "{:#?}",
        run.timeline
    );
    // The repaired file pushed by hand at 18:30 is rolled out and blessed after its watch.
    assert!(line("rolled out to every wave"));
}

#[test]
fn afd_oct29_ablation_shows_what_each_layer_alone_can_do() {
    let sum = Summary::of(
        &replay(
            &sized("afd-oct29", ABLATION_POPS),
            Mode::Ablation,
            &mut |_| {},
        )
        .unwrap(),
    );
    let naive = sum.runs[0].fault.clone().unwrap();
    let row = |layer: Layer| {
        let run = sum.runs.iter().find(|r| r.layer == Some(layer)).unwrap();
        (run.fault.clone().unwrap(), run)
    };
    // The watch (with the death gate) alone stops it at the canary, but the naive proxies
    // keep their own 60-second last-known-good rule: each kept the file for a while.
    let (watch, _) = row(Layer::Watch);
    assert!(watch.nodes_affected <= 4, "{watch:?}");
    assert_eq!(watch.detected_by, Some(Layer::Watch), "{watch:?}");
    assert!(watch.impact_minutes <= 2, "{watch:?}");
    // The recurrence rule alone: each node dies a few times, then boots on nothing rather
    // than its poisoned last-known-good (the file itself): fleet-wide, bounded.
    let (recurrence, run) = row(Layer::Recurrence);
    assert_eq!(
        recurrence.detected_by,
        Some(Layer::Recurrence),
        "{recurrence:?}"
    );
    assert_eq!(recurrence.nodes_affected, 48, "{recurrence:?}");
    assert!(recurrence.crashes <= 5 * 48, "{recurrence:?}");
    assert!(
        recurrence.impact_minutes < naive.impact_minutes / 4,
        "{recurrence:?}"
    );
    assert!(run.stops.recurrence_poisonings >= 48, "{:?}", run.stops);
    // Blessed last-known-good alone: nothing is blessed after the day's first file (the
    // naive push runs no watched rollout), so no node keeps the bad file and the rollback
    // at 17:40 works; the nodes wedged by then stay down until the restarts by hand.
    let (blessed, _) = row(Layer::BlessedLkg);
    assert_eq!(blessed.nodes_with_faulty_lkg, 0, "{blessed:?}");
    assert!(blessed.crashes < naive.crashes, "{blessed:?}");
    assert!(blessed.failed_share < naive.failed_share, "{blessed:?}");
    // No other layer sees a valid file that kills only after 5 minutes.
    for layer in [
        Layer::ScopedQuery,
        Layer::GeneratorGuards,
        Layer::ControlValidation,
        Layer::CanaryGates,
        Layer::ScoreShiftGate,
        Layer::Sentinel,
    ] {
        let (f, _) = row(layer);
        assert_eq!(f.nodes_affected, 48, "{layer:?}: {f:?}");
        assert!(f.impact_minutes >= naive.impact_minutes, "{layer:?}: {f:?}");
    }
}

/// The `shadow` scenario's faulty files: all-1 (10:10), a flipped sign (10:50), a retrain of
/// -4 (11:30); the +0.05 retrain of 12:10 is not a fault.
const SHADOW_FAULTY: u32 = 3;

#[test]
fn shadow_scoring_holds_what_passes_every_structural_check_before_anyone_is_exposed() {
    let sum =
        Summary::of(&replay(&sized("shadow", ABLATION_POPS), Mode::Rampart, &mut |_| {}).unwrap());
    let nodes = (ABLATION_POPS * 4) as u64;

    // Naive: every file reaches every node; the all-1 file blocks people wherever a "block
    // bots" rule applies, the -4 retrain some of them.
    let naive = &sum.runs[0];
    let h = &naive.headline;
    assert_eq!(
        naive.stops.reached_fleet, SHADOW_FAULTY,
        "{:?}",
        naive.stops
    );
    assert!(h.impact_minutes >= 50, "{h:?}");
    assert!(h.peak_blocked_human_share > 0.25, "{h:?}");
    let f = naive.fault.as_ref().unwrap();
    assert_eq!(f.nodes_with_faulty_lkg, nodes, "{f:?}");
    let blocked_at = |run: &rampart_sim::report::summary::RunSummary, hm: &str| {
        run.buckets
            .iter()
            .find(|b| b.start == hm)
            .unwrap()
            .blocked_human_share
    };
    assert!(blocked_at(naive, "10:15") > 0.25);
    assert!(blocked_at(naive, "11:35") > 0.001);
    assert_eq!(
        blocked_at(naive, "12:30"),
        0.0,
        "the small retrain is no fault"
    );

    // rampart: the generator's shadow scoring holds every faulty candidate; no node ever
    // serves one, and the small retrain rolls out (watched, blessed).
    let rampart = &sum.runs[1];
    let r = &rampart.headline;
    assert_eq!(r.impact_minutes, 0, "{r:?}");
    assert_eq!(r.blocked_humans, 0);
    assert_eq!(r.nodes_ever_affected, 0);
    assert_eq!(rampart.stops.reached_fleet, 0);
    let f = rampart.fault.as_ref().unwrap();
    assert_eq!((f.nodes_affected, f.nodes_with_faulty_lkg), (0, 0), "{f:?}");
    assert_eq!(f.detected_by, Some(Layer::Shadow));
    assert_eq!(f.detected_at.as_deref(), Some("10:10"));
    assert_eq!(rampart.stopped_by.len(), 1, "{:?}", rampart.stopped_by);
    assert_eq!(rampart.stopped_by[0].layer, Layer::Shadow);
    // Six runs per 30-minute fault, every one held.
    assert_eq!(
        rampart.stops.shadow,
        6 * SHADOW_FAULTY,
        "{:?}",
        rampart.stops
    );
    assert_eq!(
        rampart.files_published, 2,
        "the first file and the small retrain"
    );
    assert_eq!(
        (rampart.rollouts_started, rampart.rollouts_rolled_back),
        (1, 0)
    );
    assert!(
        rampart
            .timeline
            .iter()
            .any(|e| e.at.as_str() > "12:10" && e.what == "version 2 rolled out to every wave"),
        "{:?}",
        rampart.timeline
    );
    let last = rampart.buckets.last().unwrap();
    assert_eq!(last.versions.len(), 1, "{:?}", last.versions);
    assert_eq!(last.versions[0].version, Some(2));
}

#[test]
fn shadow_alone_holds_each_bad_file_before_wave_0_and_the_operator_aborts_it() {
    let sum =
        Summary::of(&replay(&sized("shadow", ABLATION_POPS), Mode::Ablation, &mut |_| {}).unwrap());
    assert_eq!(sum.runs.len(), 1 + Layer::ALL.len());
    let only = sum
        .runs
        .iter()
        .find(|r| r.layer == Some(Layer::Shadow))
        .unwrap();
    assert_eq!(only.key, "only_shadow");
    let h = &only.headline;
    assert_eq!(h.verdict, Containment::NoImpact, "{h:?}");
    assert_eq!(h.nodes_ever_affected, 0);
    assert_eq!(only.stops.reached_fleet, 0);
    // The naive producer publishes each faulty file once; the control plane holds it.
    assert_eq!(only.stops.shadow, SHADOW_FAULTY, "{:?}", only.stops);
    let count = |what: &str| {
        only.timeline
            .iter()
            .filter(|e| e.what.contains(what))
            .count()
    };
    assert_eq!(
        count("shadow scoring holds version"),
        SHADOW_FAULTY as usize
    );
    assert_eq!(count("held by shadow scoring"), SHADOW_FAULTY as usize);
    let f = only.fault.as_ref().unwrap();
    assert_eq!(f.detected_by, Some(Layer::Shadow));
    assert_eq!(f.nodes_with_faulty_lkg, 0);
    // The clean files between them, and the small retrain, roll out.
    assert_eq!(only.rollouts_started, 4);
    assert_eq!(only.rollouts_rolled_back, 0);
    // Without shadow scoring, the layers that can see scores see them only on a fleet that
    // serves the file: the score-shift gate alone rolls each back from the canary.
    let gate = sum
        .runs
        .iter()
        .find(|r| r.layer == Some(Layer::ScoreShiftGate))
        .unwrap();
    assert_eq!(
        gate.stops.score_shift_gate, SHADOW_FAULTY,
        "{:?}",
        gate.stops
    );
    assert!(gate.headline.nodes_ever_affected > 0);
    for run in &sum.runs[1..] {
        if !matches!(run.layer, Some(Layer::Shadow | Layer::ScoreShiftGate)) {
            assert_eq!(run.stops.reached_fleet, SHADOW_FAULTY, "{}", run.key);
        }
    }
}

/// The numbers of docs/BENCHMARKS.md's shadow rows: the built-in `shadow` at its own size
/// (330 × 4), the code path of `rampart replay shadow --mode rampart|ablation -q`. Run with
/// `cargo test --release -p rampart-sim --test replay shadow_numbers -- --ignored --nocapture`.
#[test]
#[ignore]
fn shadow_numbers() {
    let s = Scenario::load("shadow").unwrap();
    for mode in [Mode::Rampart, Mode::Ablation] {
        let t = std::time::Instant::now();
        let sum = Summary::of(&replay(&s, mode, &mut |_| {}).unwrap());
        println!("{} {:.1} s", mode.name(), t.elapsed().as_secs_f64());
        for run in &sum.runs {
            let h = &run.headline;
            let f = run.fault.as_ref().unwrap();
            println!(
                "  {:<24} impact {:>3} min ({:?}..{:?}), blocked people {:>10} (peak {:.3}), nodes affected {:>4}, faulty LKG {:>4}, reached fleet {}, shadow stops {}, rollouts {}/{} rolled back, detected by {:?} at {:?}, {:?}",
                run.key,
                h.impact_minutes,
                h.first_impact,
                h.last_impact,
                h.blocked_humans,
                h.peak_blocked_human_share,
                h.nodes_ever_affected,
                f.nodes_with_faulty_lkg,
                run.stops.reached_fleet,
                run.stops.shadow,
                run.rollouts_started,
                run.rollouts_rolled_back,
                f.detected_by,
                f.detected_at,
                h.verdict,
            );
        }
    }
}
