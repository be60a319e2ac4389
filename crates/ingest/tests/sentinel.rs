//! The crash-loop sentinel end to end: in process (a store dropped without `clean_exit` is a
//! death), then with a real child process killed by SIGKILL or dying of a real panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fixtures::*;
use rampart_host::clock::now_ms;
use rampart_ingest::{ApplyOutcome, Channel, Config, Mode, Store};
use serde::{Deserialize, Serialize};

const T0: u64 = 1_763_463_900_000;
const SEC: u64 = 1000;

fn boot(config: Config, now: u64) -> Store<TestCompiler> {
    Store::boot(config, TestCompiler::new(200), now).unwrap()
}

/// v2 is the bad file of these tests: valid, but its model panics when it scores.
fn file(version: u64) -> Vec<u8> {
    if version == 2 {
        with_feature(2, PANIC_FEATURE)
    } else {
        good(version)
    }
}

#[test]
fn deaths_after_a_version_poison_it_then_turn_the_module_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || config(dir.path());
    let mut now = T0;

    // A good version soaks into last-known-good, and the process exits cleanly.
    let store = boot(cfg(), now);
    store.offer(&file(1), Channel::Control, now);
    store.tick(now + SEC);
    store.clean_exit(now + 2 * SEC);
    drop(store);

    // Three runs die after activating v2.
    for _ in 0..3 {
        now += 5 * SEC;
        let store = boot(cfg(), now);
        assert_eq!(store.status().sentinel.decision.code(), "normal");
        assert_eq!(store.snapshot().version(), Some(1));
        assert!(
            store
                .offer(&file(2), Channel::Control, now)
                .rejection()
                .is_none()
        );
        drop(store); // no clean_exit: a death
    }

    // The next boot serves last-known-good and refuses v2.
    now += 5 * SEC;
    let store = boot(cfg(), now);
    let status = store.status();
    assert_eq!(status.sentinel.decision.code(), "last_known_good");
    assert_eq!(status.sentinel.decision.deaths(), 3);
    assert_eq!(status.poisoned.len(), 1);
    assert_eq!(status.poisoned[0].version, 2);
    assert_eq!(status.poisoned[0].deaths, 3);
    assert_eq!(store.snapshot().version(), Some(1));
    assert!(store.snapshot().scoring_model().is_some());
    let refused = store.offer(&file(2), Channel::Control, now);
    assert_eq!(refused.rejection().unwrap().code(), "poisoned");
    assert_eq!(store.metrics().poisoned, 1);
    drop(store); // this run dies too, blamed on v1 (activated at boot)

    // Two more deaths with v1: six in the window. The module boots off.
    for _ in 0..2 {
        now += 5 * SEC;
        drop(boot(cfg(), now));
    }
    now += 5 * SEC;
    let store = boot(cfg(), now);
    let snap = store.snapshot();
    assert!(
        matches!(snap.mode, Mode::SafeMode { .. }),
        "{:?}",
        snap.mode
    );
    assert!(snap.scoring_model().is_none(), "safe mode fails open");
    // v1 died three times too: poisoned, so last-known-good is unusable and no model loads.
    assert_eq!(snap.version(), None);
    let status = store.status();
    assert_eq!(status.sentinel.decision.code(), "safe_mode");
    let mut poisoned: Vec<u64> = status.poisoned.iter().map(|p| p.version).collect();
    poisoned.sort_unstable();
    assert_eq!(poisoned, [1, 2]);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["mode"]["mode"], "safe_mode");
    assert!(
        json["mode"]["reason"]
            .as_str()
            .unwrap()
            .contains("6 deaths")
    );

    // Poisoned versions stay refused; a higher one is accepted, the module stays off until
    // an operator clears safe mode.
    assert_eq!(
        store
            .offer(&file(2), Channel::Control, now)
            .rejection()
            .unwrap()
            .code(),
        "poisoned"
    );
    assert!(matches!(
        store.offer(&file(3), Channel::Control, now),
        ApplyOutcome::Applied { version: 3, .. }
    ));
    assert!(store.snapshot().scoring_model().is_none());
    store.clear_safe_mode("looked at it");
    assert_eq!(store.snapshot().scoring_model().unwrap().names.len(), 60);
    store.clean_exit(now + SEC);
    drop(store);

    // Poisoning survives restarts; once the deaths are out of both windows (the recurrence
    // rule looks back 30 minutes), boots are normal.
    now += 31 * 60 * SEC;
    let store = boot(cfg(), now);
    assert_eq!(store.status().sentinel.decision.code(), "normal");
    assert_eq!(store.status().poisoned.len(), 2);
    assert_eq!(
        store.pin(2, now).rejection().unwrap().code(),
        "poisoned",
        "break glass does not bring back a poisoned version"
    );
}

// === the real process test ===

/// Set in the child's environment: run [`child_entry`] for real.
const CHILD_ENV: &str = "RAMPART_INGEST_CHILD";
const DIR_ENV: &str = "RAMPART_INGEST_DIR";
const SCRIPT_ENV: &str = "RAMPART_INGEST_SCRIPT";

/// How long the parent waits for a child before killing it and failing.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

/// What a child saw, written to `report.json` before it waits to be killed or panics.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Report {
    decision: String,
    deaths: u32,
    boot_version: Option<u64>,
    safe_mode: bool,
    poisoned: Vec<u64>,
    outcomes: Vec<String>,
    scoring: bool,
}

fn child_config(dir: &Path) -> Config {
    let mut cfg = config(dir);
    // Default thresholds (3 and 6); a wide window so a slow machine cannot age deaths out
    // between two runs of this test.
    cfg.sentinel.window_secs = 600;
    cfg
}

/// The child: boots a store on the parent's data dir and runs the script, one action per
/// comma: `apply:N`, `tick`, `clean` (clean exit), `wait` (until SIGKILL), `serve` (score
/// with the active model: a real panic when it is v2's).
#[test]
#[ignore = "runs only as the child of real_process_deaths_poison_then_turn_the_module_off"]
fn child_entry() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("1") {
        return;
    }
    let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    let script = std::env::var(SCRIPT_ENV).unwrap();
    let store = boot(child_config(&dir), now_ms());
    let status = store.status();
    let mut report = Report {
        decision: status.sentinel.decision.code().to_owned(),
        deaths: status.sentinel.decision.deaths(),
        boot_version: store.snapshot().version(),
        safe_mode: matches!(status.mode, Mode::SafeMode { .. }),
        poisoned: status.poisoned.iter().map(|p| p.version).collect(),
        ..Report::default()
    };
    let write_report = |report: &Report| {
        let tmp = dir.join("report.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(report).unwrap()).unwrap();
        std::fs::rename(&tmp, dir.join("report.json")).unwrap();
    };
    for action in script.split(',') {
        match action.split_once(':') {
            Some(("apply", v)) => {
                let outcome = store.offer(&file(v.parse().unwrap()), Channel::Watch, now_ms());
                report.outcomes.push(match outcome.rejection() {
                    Some(r) => format!("rejected:{}", r.code()),
                    None => outcome.code().to_owned(),
                });
            }
            _ if action == "tick" => store.tick(now_ms()),
            _ if action == "clean" => store.clean_exit(now_ms()),
            _ if action == "serve" => {
                report.scoring = true;
                write_report(&report);
                // The request path without catch_unwind, as FL2's was: this panics for v2.
                let scored = store.snapshot().scoring_model().map(TestModel::score);
                eprintln!("scored {scored:?}");
            }
            _ if action == "wait" => {
                report.scoring = store.snapshot().scoring_model().is_some();
                write_report(&report);
                // Bounded: the parent kills us long before this ends.
                std::thread::sleep(CHILD_DEADLINE);
                return;
            }
            _ => panic!("unknown action {action}"),
        }
    }
    report.scoring = store.snapshot().scoring_model().is_some();
    write_report(&report);
}

/// Runs one child with `script`; kills it with SIGKILL once it reported, if the script ends
/// in `wait`. Returns how it ended and what it reported.
fn run_child(dir: &Path, script: &str) -> (ExitStatus, Report) {
    let report_path = dir.join("report.json");
    let _ = std::fs::remove_file(&report_path);
    let log = std::fs::File::create(dir.join("child.log")).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--ignored"])
        .env(CHILD_ENV, "1")
        .env(DIR_ENV, dir)
        .env(SCRIPT_ENV, script)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let waits = script.ends_with("wait");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waits && report_path.exists() {
            // Child::kill sends SIGKILL: no destructor, no clean exit, like the OOM killer.
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        if started.elapsed() > CHILD_DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("child {script} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let bytes = std::fs::read(&report_path).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.join("child.log")).unwrap_or_default();
        panic!("child {script} left no report ({e}); its log:\n{log}")
    });
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn real_process_deaths_poison_then_turn_the_module_off() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // 1. A good version, soaked to last-known-good, clean exit.
    let (status, r) = run_child(dir, "apply:1,tick,clean");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        (r.decision.as_str(), r.outcomes.as_slice()),
        ("normal", &["applied".to_owned()][..])
    );

    // 2-3. Killed by SIGKILL after activating v2.
    for _ in 0..2 {
        let (status, r) = run_child(dir, "apply:2,wait");
        assert_eq!(status.signal(), Some(9), "{status:?}");
        assert_eq!(r.decision, "normal");
        assert_eq!(r.boot_version, Some(1), "boots on last-known-good");
        assert_eq!(r.outcomes, ["applied"]);
    }

    // 4. A real panic on the request path after activating v2.
    let (status, r) = run_child(dir, "apply:2,serve");
    assert!(!status.success() && status.signal().is_none(), "{status:?}");
    assert_eq!(
        status.code(),
        Some(101),
        "the test harness's panic exit code"
    );
    assert_eq!(r.decision, "normal");

    // 5. Three deaths after v2: last-known-good, v2 poisoned and refused.
    let (status, r) = run_child(dir, "apply:2,wait");
    assert_eq!(status.signal(), Some(9));
    assert_eq!((r.decision.as_str(), r.deaths), ("last_known_good", 3));
    assert_eq!(r.poisoned, [2]);
    assert_eq!(r.boot_version, Some(1));
    assert_eq!(r.outcomes, ["rejected:poisoned"]);
    assert!(r.scoring && !r.safe_mode);

    // 6-7. Still dying, now with v1 active.
    for _ in 0..2 {
        let (status, r) = run_child(dir, "wait");
        assert_eq!(status.signal(), Some(9));
        assert_eq!(r.decision, "last_known_good");
    }

    // 8. Six deaths: the module boots off (fail open); poisoned versions stay refused, a
    // higher one is accepted.
    let (status, r) = run_child(dir, "apply:2,apply:3,clean");
    assert!(status.success(), "{status:?}");
    assert_eq!((r.decision.as_str(), r.deaths), ("safe_mode", 6));
    assert!(r.safe_mode && !r.scoring);
    assert_eq!(r.poisoned, [2, 1]);
    assert_eq!(r.boot_version, None, "v1 is poisoned too: no model");
    assert_eq!(r.outcomes, ["rejected:poisoned", "applied"]);
}
