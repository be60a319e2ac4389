//! The bad input the edge must survive (issue 3): each file is refused with its own code, the
//! version serving stays, the counters move, `/status` shows the issues. And the kill
//! switch, exercised both ways on every apply path, and the log flood.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::fs::File;

use fixtures::*;
use rampart_ingest::{ApplyOutcome, Channel, DataDir, Rejection, Store};

const T0: u64 = 1_763_463_900_000;

fn store_with_v5(dir: &std::path::Path) -> (Store<TestCompiler>, rampart_artifact::Digest) {
    let store = Store::boot(config(dir), TestCompiler::new(200), T0).unwrap();
    let outcome = store.offer(&good(5), Channel::Watch, T0);
    let ApplyOutcome::Applied { version: 5, digest } = outcome else {
        panic!("{outcome:?}");
    };
    (store, digest)
}

/// Asserts that `outcome` is a rejection of `code` whose issues include `issue`, that v5 is
/// still serving, and that the counters and `/status` say so.
fn assert_refused(
    store: &Store<TestCompiler>,
    d5: rampart_artifact::Digest,
    outcome: &ApplyOutcome,
    code: &str,
    issue: Option<&str>,
) {
    let ApplyOutcome::Rejected { kept, rejection } = outcome else {
        panic!("expected a rejection ({code}), got {outcome:?}");
    };
    assert_eq!(*kept, Some((5, d5)), "{rejection}");
    assert_eq!(rejection.code(), code, "{rejection}");
    let codes: Vec<&str> = rejection.issues().iter().map(|i| i.code()).collect();
    if let Some(issue) = issue {
        assert!(codes.contains(&issue), "{issue} not in {codes:?}");
    }
    let snap = store.snapshot();
    assert_eq!(snap.digest(), Some(d5));
    assert_eq!(snap.scoring_model().unwrap().names.len(), 60);
    let status = store.status();
    let last = status.last_rejection.unwrap();
    assert_eq!(last.code, code);
    if let Some(issue) = issue {
        assert!(last.issues.iter().any(|i| i.code() == issue));
        assert!(store.metrics().issues_of(issue) >= 1);
    }
    assert_eq!(status.active.unwrap().version, 5);
}

#[test]
fn every_bad_input_is_refused_with_its_code_and_v5_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = vec![
        (
            "18 November",
            november_18(6),
            "invalid",
            Some("duplicate_name"),
        ),
        (
            "201 features",
            too_many(6),
            "invalid",
            Some("too_many_features"),
        ),
        ("truncated", truncated(6), "invalid", Some("invalid_json")),
        (
            "not JSON",
            b"<html>502</html>".to_vec(),
            "invalid",
            Some("invalid_json"),
        ),
        ("empty", Vec::new(), "invalid", Some("empty")),
        (
            "bad signature",
            bad_signature(6),
            "invalid",
            Some("bad_signature"),
        ),
        (
            "another key's signature",
            other_keys_signature(6),
            "invalid",
            Some("unknown_key"),
        ),
        (
            "older version",
            good(4),
            "invalid",
            Some("version_not_above"),
        ),
        (
            "unknown name",
            unknown_name(6),
            "invalid",
            Some("unknown_name"),
        ),
        (
            "huge weight",
            huge_weight(6),
            "invalid",
            Some("weight_out_of_range"),
        ),
        (
            "unsigned",
            rampart_artifact::Document::canonical_bytes(&doc(6, 60)),
            "invalid",
            Some("unsigned"),
        ),
        ("signed garbage", signed_garbage(), "invalid", None),
        (
            "compiler panic",
            with_feature(6, COMPILE_PANIC_FEATURE),
            "compile",
            None,
        ),
    ];
    let before = store.metrics();
    for (name, bytes, code, issue) in &cases {
        let outcome = store.offer(bytes, Channel::Watch, T0 + 1);
        eprintln!("{name}: {:?}", outcome.rejection().map(ToString::to_string));
        assert_refused(&store, d5, &outcome, code, *issue);
    }
    let after = store.metrics();
    assert_eq!(after.rejected - before.rejected, cases.len() as u64);
    assert_eq!(
        after.rejections_of("invalid") - before.rejections_of("invalid"),
        12
    );
    assert_eq!(after.rejections_of("compile"), 1);
    assert_eq!(after.applied, 1);
    // The 18 November file reports the count too, and every duplicate.
    assert!(after.issues_of("too_many_features") >= 2);
    assert_eq!(after.issues_of("duplicate_name"), 120);
}

#[test]
fn the_18_november_file_names_the_count_on_status() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let outcome = store.offer(&november_18(6), Channel::Control, T0 + 1);
    assert_refused(&store, d5, &outcome, "invalid", Some("too_many_features"));
    let json = serde_json::to_value(store.status()).unwrap();
    let last = &json["last_rejection"];
    assert_eq!(last["code"], "invalid");
    assert_eq!(last["origin"], "control");
    assert_eq!(last["issues"][0]["code"], "too_many_features");
    assert_eq!(last["issues"][0]["count"], 240);
    assert!(last["message"].as_str().unwrap().contains("240 features"));
}

#[test]
fn a_100_mb_file_is_refused_by_its_length_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let path = dir.path().join("huge.rfeat");
    // Sparse: 100 MB long, nothing written. The size in the issue can only come from
    // metadata (a capped read stops without knowing the total).
    File::create(&path)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    let outcome = store.offer_file(&path, Channel::Watch, T0 + 1);
    assert_refused(&store, d5, &outcome, "invalid", Some("too_large"));
    match &outcome.rejection().unwrap().issues()[0] {
        rampart_artifact::Issue::TooLarge { what, size, limit } => {
            assert_eq!(*what, "file");
            assert_eq!(*size, Some(100 * 1024 * 1024));
            assert_eq!(*limit, store.config().max_file_bytes());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_file_is_an_io_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let outcome = store.offer_file(&dir.path().join("gone.rfeat"), Channel::Watch, T0 + 1);
    assert_refused(&store, d5, &outcome, "io", None);
}

#[test]
fn offer_file_reads_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_v5(dir.path());
    let path = dir.path().join("v6.rfeat");
    std::fs::write(&path, good(6)).unwrap();
    let outcome = store.offer_file(&path, Channel::Watch, T0 + 1);
    assert!(
        matches!(outcome, ApplyOutcome::Applied { version: 6, .. }),
        "{outcome:?}"
    );
}

#[test]
fn a_file_that_does_not_fit_the_compiler_is_a_compile_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::boot(config(dir.path()), TestCompiler::new(100), T0).unwrap();
    store.offer(&good(5), Channel::Watch, T0);
    let d5 = store.snapshot().digest().unwrap();
    // 150 features: inside the contract (200), outside the module's room (100).
    let outcome = store.offer(&signed(&doc(6, 150)), Channel::Watch, T0 + 1);
    assert_refused(&store, d5, &outcome, "compile", None);
    let Some(Rejection::Compile(message)) = outcome.rejection() else {
        panic!("{outcome:?}");
    };
    assert!(message.contains("150 features"), "{message}");
    assert_eq!(store.status().last_rejection.unwrap().version, Some(6));
}

#[test]
fn the_same_file_twice_is_unchanged_and_a_higher_version_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let again = store.offer(&good(5), Channel::Watch, T0 + 1);
    assert_eq!(
        again,
        ApplyOutcome::Unchanged {
            version: 5,
            digest: d5
        }
    );
    // The same document signed again (other bytes, same digest) is not a regression either.
    let mut resigned = good(5);
    resigned.insert(0, b' ');
    let again = store.offer(&resigned, Channel::Control, T0 + 2);
    assert!(
        matches!(again, ApplyOutcome::Unchanged { version: 5, .. }),
        "{again:?}"
    );
    let next = store.offer(&good(6), Channel::Watch, T0 + 3);
    assert!(matches!(next, ApplyOutcome::Applied { version: 6, .. }));
    let m = store.metrics();
    assert_eq!((m.applied, m.unchanged, m.rejected), (2, 2, 0));
    let active = store.status().active.unwrap();
    assert_eq!(
        (active.version, active.channel, active.since_ms),
        (6, Channel::Watch, T0 + 3)
    );
}

#[test]
fn a_reader_holding_a_snapshot_keeps_its_model_across_a_swap() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let held = store.snapshot();
    store.offer(&signed(&doc(6, 10)), Channel::Watch, T0 + 1);
    assert_eq!(held.digest(), Some(d5));
    assert_eq!(held.scoring_model().unwrap().names.len(), 60);
    assert_eq!(store.snapshot().scoring_model().unwrap().names.len(), 10);
}

#[test]
fn the_request_paths_reader_sees_every_swap_and_counts_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let reader = store.reader();
    let clone = reader.clone();
    assert_eq!(reader.load().digest(), Some(d5));
    store.offer(&good(6), Channel::Watch, T0 + 1);
    store.set_module_enabled(false, "incident 43");
    for r in [&reader, &clone] {
        let snap = r.load();
        assert_eq!(snap.version(), Some(6));
        assert!(
            snap.scoring_model().is_none(),
            "the kill switch is in the same snapshot"
        );
        assert_eq!(r.snapshot().version(), Some(6));
    }
    reader.record_request(false);
    clone.record_request(true);
    let m = store.metrics();
    assert_eq!((m.requests, m.module_errors), (2, 1));
    // A reader outlives the store without keeping its writer: it still reads the last swap.
    drop(store);
    assert_eq!(clone.load().version(), Some(6));
}

#[test]
fn kill_switch_off_and_on_through_every_apply_path() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_v5(dir.path());
    assert!(store.snapshot().scoring_model().is_some());

    store.set_module_enabled(false, "incident 42");
    let snap = store.snapshot();
    assert!(!snap.module_enabled);
    assert!(snap.scoring_model().is_none(), "off means unscored");
    assert_eq!(snap.version(), Some(5));

    // Off survives a good apply, a bad apply and an unchanged apply.
    assert!(matches!(
        store.offer(&good(6), Channel::Control, T0 + 1),
        ApplyOutcome::Applied { version: 6, .. }
    ));
    assert!(store.snapshot().scoring_model().is_none());
    assert!(matches!(
        store.offer(&november_18(7), Channel::Watch, T0 + 2),
        ApplyOutcome::Rejected { .. }
    ));
    assert!(
        store
            .offer(&good(6), Channel::Watch, T0 + 3)
            .rejection()
            .is_none()
    );
    let snap = store.snapshot();
    assert!(!snap.module_enabled && snap.scoring_model().is_none());
    assert_eq!(snap.version(), Some(6));
    let status = store.status();
    assert!(!status.module_enabled && !status.scoring);
    assert_eq!(status.kill_switch_reason.as_deref(), Some("incident 42"));

    // Off survives a restart (v6 is promoted to last-known-good first, so it boots with it).
    store.tick(T0 + 4);
    drop(store);
    let store = Store::boot(config(dir.path()), TestCompiler::new(200), T0 + 10).unwrap();
    assert!(!store.snapshot().module_enabled);
    assert_eq!(store.snapshot().version(), Some(6));
    assert!(store.snapshot().scoring_model().is_none());

    // On again: the model of the latest good file scores, and stays on through applies.
    store.set_module_enabled(true, "incident 42 resolved");
    assert!(store.snapshot().scoring_model().is_some());
    assert!(matches!(
        store.offer(&good(7), Channel::Watch, T0 + 11),
        ApplyOutcome::Applied { version: 7, .. }
    ));
    assert!(
        store
            .offer(&truncated(8), Channel::Watch, T0 + 12)
            .rejection()
            .is_some()
    );
    let snap = store.snapshot();
    assert!(snap.module_enabled);
    assert_eq!(snap.version(), Some(7));
    assert!(snap.scoring_model().is_some());
    drop(store);
    let store = Store::boot(config(dir.path()), TestCompiler::new(200), T0 + 20).unwrap();
    assert!(store.snapshot().module_enabled);
}

#[test]
fn a_flood_of_10_000_rejections_is_a_handful_of_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d5) = store_with_v5(dir.path());
    let bad: [Vec<u8>; 3] = [Vec::new(), b"not json".to_vec(), other_keys_signature(6)];
    let subscriber = CountingSubscriber::default();
    let events = subscriber.events.clone();
    let before = store.metrics();
    tracing::subscriber::with_default(subscriber, || {
        // 10,000 files over 20 s, the edge ticking every second.
        for i in 0..10_000u64 {
            let now = T0 + i * 2;
            let outcome = store.offer(&bad[(i % 3) as usize], Channel::Watch, now);
            assert!(outcome.rejection().is_some());
            if i % 500 == 0 {
                store.tick(now);
            }
        }
        store.tick(T0 + 60_000);
    });
    let after = store.metrics();
    let lines = events.load(std::sync::atomic::Ordering::Relaxed);
    // 3 kinds × (a first line + a summary) × 2 windows of 10 s.
    assert!(lines <= 12, "{lines} log lines");
    assert!(lines >= 3, "{lines}: each kind is logged at least once");
    assert_eq!(after.log_lines - before.log_lines, lines as u64);
    assert_eq!(after.rejected - before.rejected, 10_000);
    assert!(after.log_suppressed - before.log_suppressed >= 9_990);
    assert_eq!(store.snapshot().digest(), Some(d5));
}

#[test]
fn readers_see_whole_snapshots_while_files_are_applied() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    // The model of version v has 10 + v % 50 features: a reader can tell a torn snapshot.
    let features = |v: u64| 10 + (v % 50) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.archive_len = 2;
    let store = Arc::new(Store::boot(cfg, TestCompiler::new(200), T0).unwrap());
    let files: Vec<Vec<u8>> = (1..=50u64)
        .flat_map(|v| [signed(&doc(v, features(v))), november_18(v + 1)])
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    // One reader: the machine has two cores, and the writer needs one.
    let readers: Vec<_> = (0..1)
        .map(|_| {
            let store = Arc::clone(&store);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut seen, mut last) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let snap = store.snapshot();
                    if let (Some(v), Some(model)) = (snap.version(), snap.scoring_model()) {
                        assert_eq!(model.names.len(), features(v), "torn snapshot at v{v}");
                        assert!(v >= last, "went back from v{last} to v{v}");
                        last = v;
                        seen += 1;
                    }
                    std::thread::yield_now();
                }
                seen
            })
        })
        .collect();
    for (i, bytes) in files.iter().enumerate() {
        let outcome = store.offer(bytes, Channel::Watch, T0 + i as u64);
        assert_eq!(outcome.rejection().is_some(), i % 2 == 1, "{outcome:?}");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let m = store.metrics();
    assert_eq!((m.applied, m.rejected), (50, 50));
    assert_eq!(store.snapshot().version(), Some(50));
}

/// Issue 13: a corrupted or truncated `module.json` booted with the module on and said
/// nothing. Now the copy is used, and when both are lost the policy decides, loudly.
#[test]
fn a_damaged_kill_switch_state_falls_back_to_its_copy_then_to_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let (store, _) = store_with_v5(dir.path());
    store.set_module_enabled(false, "incident 44");
    drop(store);
    let copy = rampart_ingest::disk::read_capped(&layout.module_state_copy(), 4096).unwrap();
    assert_eq!(
        copy,
        rampart_ingest::disk::read_capped(&layout.module_state(), 4096).unwrap()
    );

    // Truncated first file: the copy says off, and the boot says what happened.
    std::fs::write(layout.module_state(), b"{\"enabled\":fa").unwrap();
    let store = Store::boot(config(dir.path()), TestCompiler::new(200), T0 + 10).unwrap();
    assert!(!store.snapshot().module_enabled);
    let status = store.status();
    assert_eq!(status.kill_switch_reason.as_deref(), Some("incident 44"));
    assert_eq!(status.boot_problems.len(), 1, "{:?}", status.boot_problems);
    assert!(
        status.boot_problems[0].contains("read from module.copy.json (enabled: false)"),
        "{:?}",
        status.boot_problems
    );
    drop(store);

    // Both damaged (one empty, one garbage): the default policy keeps the module off.
    std::fs::write(layout.module_state(), b"").unwrap();
    std::fs::write(layout.module_state_copy(), b"\x00\x01").unwrap();
    let store = Store::boot(config(dir.path()), TestCompiler::new(200), T0 + 20).unwrap();
    assert!(!store.snapshot().module_enabled);
    let status = store.status();
    assert!(
        status.boot_problems[0].contains("module off by policy module_state_lost=off"),
        "{:?}",
        status.boot_problems
    );
    assert_eq!(
        status.kill_switch_reason,
        status.boot_problems.first().cloned()
    );
    drop(store);

    // The other policy, asked for explicitly: on, and still reported.
    let mut c = config(dir.path());
    c.module_state_lost = rampart_ingest::ModuleStateLost::On;
    let store = Store::boot(c, TestCompiler::new(200), T0 + 30).unwrap();
    assert!(store.snapshot().module_enabled);
    assert!(store.status().boot_problems[0].contains("module on by policy"));
    drop(store);

    // A fresh data dir (neither file) is on, with nothing to report.
    let fresh = tempfile::tempdir().unwrap();
    let store = Store::boot(config(fresh.path()), TestCompiler::new(200), T0).unwrap();
    assert!(store.snapshot().module_enabled);
    assert!(store.status().boot_problems.is_empty());
}
