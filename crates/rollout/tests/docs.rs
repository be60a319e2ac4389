//! The user-facing page `docs/rollouts.md` states every default as the code has it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_rollout::gate::*;
use rampart_rollout::plan::*;
use rampart_rollout::rollout::*;

fn page() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rollouts.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_thresholds_table_matches_the_defaults() {
    let page = page();
    let rows: Vec<(&str, String)> = vec![
        ("gates.min_requests", DEFAULT_MIN_REQUESTS.to_string()),
        (
            "gates.errors_5xx.abs_margin",
            DEFAULT_5XX_ABS_MARGIN.to_string(),
        ),
        (
            "gates.errors_5xx.rel_margin",
            DEFAULT_5XX_REL_MARGIN.to_string(),
        ),
        (
            "gates.module_errors.abs_margin",
            DEFAULT_MODULE_ERROR_ABS_MARGIN.to_string(),
        ),
        (
            "gates.module_errors.rel_margin",
            DEFAULT_MODULE_ERROR_REL_MARGIN.to_string(),
        ),
        ("gates.*.min_z", DEFAULT_MIN_Z.to_string()),
        (
            "gates.max_restarts_per_node",
            DEFAULT_MAX_RESTARTS_PER_NODE.to_string(),
        ),
        ("gates.shift.min_scores", DEFAULT_MIN_SCORES.to_string()),
        ("gates.shift.alpha", DEFAULT_SHIFT_ALPHA.to_string()),
        ("gates.shift.min_d", DEFAULT_SHIFT_MIN_D.to_string()),
        (
            "gates.heartbeat_timeout_ms",
            DEFAULT_HEARTBEAT_TIMEOUT_MS.to_string(),
        ),
        (
            "gates.missing_fail_after_ms",
            DEFAULT_MISSING_FAIL_AFTER_MS.to_string(),
        ),
        (
            "gates.max_missing_share",
            DEFAULT_MAX_MISSING_SHARE.to_string(),
        ),
        (
            "gates.converge_timeout_ms",
            DEFAULT_CONVERGE_TIMEOUT_MS.to_string(),
        ),
        ("tick_ms", DEFAULT_TICK_MS.to_string()),
        ("hold_cap_ms", DEFAULT_HOLD_CAP_MS.to_string()),
        (
            "rollback_timeout_ms",
            DEFAULT_ROLLBACK_TIMEOUT_MS.to_string(),
        ),
        ("baseline_wait_ms", DEFAULT_BASELINE_WAIT_MS.to_string()),
        ("canary_bake_ms", DEFAULT_CANARY_BAKE_MS.to_string()),
        ("waves[].bake_ms", DEFAULT_WAVE_BAKE_MS.to_string()),
        (
            "break_glass_bake_ms",
            DEFAULT_BREAK_GLASS_BAKE_MS.to_string(),
        ),
    ];
    for (setting, value) in rows {
        let row = format!("| `{setting}` | {value} |");
        assert!(page.contains(&row), "docs/rollouts.md lacks the row {row}");
    }
}

#[test]
fn the_waves_table_matches_the_plan_defaults() {
    let page = page();
    let secs = |ms: u64| format!("{} s", ms / 1000);
    assert!(page.contains(&format!(
        "one node of one PoP | {} |",
        secs(DEFAULT_CANARY_BAKE_MS)
    )));
    for share in &DEFAULT_WAVE_SHARES[..2] {
        let row = format!(
            "about {}% of the fleet (cumulative) | {} |",
            (share * 100.0).round(),
            secs(DEFAULT_WAVE_BAKE_MS)
        );
        assert!(page.contains(&row), "docs/rollouts.md lacks {row}");
    }
}
