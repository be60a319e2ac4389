//! Last-known-good on disk and break glass: soak, promotion, boot, corrupt files, pin.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::Path;

use fixtures::*;
use rampart_ingest::{ApplyOutcome, Channel, Config, DataDir, SoakConfig, Store};

const T0: u64 = 1_763_463_900_000;
const SEC: u64 = 1000;

fn boot(config: Config, now: u64) -> Store<TestCompiler> {
    Store::boot(config, TestCompiler::new(200), now).unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    // Test files are small and ours.
    #[allow(clippy::disallowed_methods)]
    std::fs::read(path).unwrap()
}

#[test]
fn a_version_becomes_last_known_good_after_its_soak_of_time_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let mut cfg = config(dir.path());
    cfg.soak = SoakConfig {
        secs: 10,
        requests: 5,
    };
    let store = boot(cfg, T0);
    // What the request path holds: it feeds the soak.
    let reader = store.reader();
    let v1 = good(1);
    store.offer(&v1, Channel::Watch, T0);
    for _ in 0..4 {
        reader.record_request(false);
    }
    store.tick(T0 + 10 * SEC);
    assert!(!layout.lkg_file(1).exists(), "4 requests are not enough");
    reader.record_request(false);
    store.tick(T0 + 9 * SEC);
    assert!(!layout.lkg_file(1).exists(), "9 s are not enough");
    store.tick(T0 + 10 * SEC);
    assert_eq!(read(&layout.lkg_file(1)), v1, "the exact signed bytes");
    assert_eq!(store.metrics().lkg_writes, 1);
    let status = store.status();
    assert_eq!(status.lkg.current.unwrap().version, 1);
    assert!(status.soak.unwrap().done);

    // A module error restarts the soak of the next version.
    let v2 = good(2);
    store.offer(&v2, Channel::Watch, T0 + 20 * SEC);
    for _ in 0..10 {
        reader.record_request(false);
    }
    reader.record_request(true);
    store.tick(T0 + 30 * SEC);
    assert!(!layout.lkg_file(2).exists());
    for _ in 0..5 {
        reader.record_request(false);
    }
    store.tick(T0 + 39 * SEC);
    assert!(!layout.lkg_file(2).exists(), "only 9 s since the error");
    store.tick(T0 + 40 * SEC);
    assert_eq!(read(&layout.lkg_file(2)), v2);
    assert_eq!(read(&layout.lkg_file(1)), v1, "the previous one is kept");
    assert_eq!(store.status().lkg.current.unwrap().version, 2);
    let m = store.metrics();
    assert_eq!((m.requests, m.module_errors, m.lkg_writes), (21, 1, 2));
}

#[test]
fn a_restart_serves_last_known_good_before_anything_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(3), Channel::Control, T0);
    store.tick(T0 + SEC);
    store.offer(&good(4), Channel::Control, T0 + 2 * SEC);
    // v4 never soaked: the restart serves v3.
    store.clean_exit(T0 + 3 * SEC);
    drop(store);
    let store = boot(config(dir.path()), T0 + 4 * SEC);
    let snap = store.snapshot();
    let active = snap.active.as_ref().unwrap();
    assert_eq!((active.version, active.channel), (3, Channel::Boot));
    assert!(snap.scoring_model().is_some());
    // The version rule holds against what boot served.
    let older = store.offer(&good(2), Channel::Watch, T0 + 5 * SEC);
    assert_eq!(
        older.rejection().unwrap().issues()[0].code(),
        "version_not_above"
    );
    assert!(matches!(
        store.offer(&good(4), Channel::Watch, T0 + 6 * SEC),
        ApplyOutcome::Applied { version: 4, .. }
    ));
}

#[test]
fn a_corrupt_newest_falls_back_to_the_one_before_then_to_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Watch, T0);
    store.tick(T0 + SEC);
    store.offer(&good(2), Channel::Watch, T0 + 2 * SEC);
    store.tick(T0 + 3 * SEC);
    drop(store);

    // Half a file, as a full disk might leave without the atomic rename.
    let v2 = read(&layout.lkg_file(2));
    std::fs::write(layout.lkg_file(2), &v2[..v2.len() / 2]).unwrap();
    let store = boot(config(dir.path()), T0 + 4 * SEC);
    assert_eq!(store.snapshot().version(), Some(1));
    let status = store.status();
    assert_eq!(status.lkg.current.unwrap().version, 1);
    assert_eq!(status.lkg.history.len(), 1);
    assert!(
        status.lkg.boot_problems[0].contains("2.rfeat"),
        "{:?}",
        status.lkg
    );
    assert_eq!(status.last_rejection.unwrap().channel, Channel::Boot);
    assert_eq!(store.metrics().rejections_of("invalid"), 1);
    // The next promotion writes its own file and keeps the one before as it was.
    store.offer(&good(3), Channel::Watch, T0 + 5 * SEC);
    store.tick(T0 + 6 * SEC);
    assert_eq!(read(&layout.lkg_file(3)), good(3));
    assert_eq!(read(&layout.lkg_file(1)), good(1));
    drop(store);

    // All unusable: signed by a key no longer trusted, not JSON. No model, no crash.
    std::fs::write(layout.lkg_file(3), other_keys_signature(3)).unwrap();
    std::fs::write(layout.lkg_file(2), other_keys_signature(2)).unwrap();
    std::fs::write(layout.lkg_file(1), b"\0\0\0").unwrap();
    let store = boot(config(dir.path()), T0 + 7 * SEC);
    let snap = store.snapshot();
    assert!(snap.active.is_none() && snap.scoring_model().is_none());
    assert_eq!(store.status().lkg.boot_problems.len(), 3);
    assert!(matches!(
        store.offer(&good(10), Channel::Watch, T0 + 8 * SEC),
        ApplyOutcome::Applied { version: 10, .. }
    ));
}

#[test]
fn a_fresh_data_dir_boots_with_no_model_and_no_complaint() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(&dir.path().join("new/deeper")), T0);
    assert!(store.snapshot().active.is_none());
    let status = store.status();
    assert!(status.last_rejection.is_none() && status.lkg.boot_problems.is_empty());
    assert_eq!(store.metrics().rejected, 0);
    assert!(status.sentinel.journal_ok);
}

#[test]
fn a_data_dir_that_cannot_be_created_is_a_boot_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::boot(config(&file.join("sub")), TestCompiler::new(200), T0).unwrap_err();
    assert!(err.to_string().contains("data dir"), "{err}");
}

#[test]
fn pin_serves_an_archived_version_and_refuses_applies_until_unpin() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.archive_len = 3;
    let store = boot(cfg, T0);
    for v in 1..=5 {
        store.offer(&good(v), Channel::Control, T0 + v);
    }
    assert_eq!(store.status().archive, [3, 4, 5]);
    let pinned = store.pin(3, T0 + 10);
    assert!(
        matches!(pinned, ApplyOutcome::Applied { version: 3, .. }),
        "{pinned:?}"
    );
    let snap = store.snapshot();
    assert_eq!(snap.active.as_ref().unwrap().channel, Channel::Pinned);
    let status = store.status();
    assert_eq!((status.pinned, status.break_glass), (Some(3), true));

    let refused = store.offer(&good(6), Channel::Control, T0 + 11);
    assert_eq!(refused.rejection().unwrap().code(), "pinned");
    assert_eq!(store.snapshot().version(), Some(3));
    assert_eq!(store.metrics().rejections_of("pinned"), 1);

    // Not archived (pruned): refused, v3 stays.
    let gone = store.pin(1, T0 + 12);
    assert_eq!(gone.rejection().unwrap().code(), "io");
    assert_eq!(store.snapshot().version(), Some(3));

    assert_eq!(store.unpin(), Some(3));
    let status = store.status();
    assert_eq!((status.pinned, status.break_glass), (None, false));
    assert!(matches!(
        store.offer(&good(6), Channel::Control, T0 + 13),
        ApplyOutcome::Applied { version: 6, .. }
    ));
}

#[test]
fn a_tampered_archive_file_cannot_be_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    store.offer(&good(2), Channel::Control, T0 + 1);
    std::fs::write(layout.version_file(1), bad_signature(1)).unwrap();
    let refused = store.pin(1, T0 + 2);
    assert_eq!(
        refused.rejection().unwrap().issues()[0].code(),
        "bad_signature"
    );
    // A file under the wrong name is refused too.
    std::fs::write(layout.version_file(7), good(2)).unwrap();
    assert_eq!(store.pin(7, T0 + 3).rejection().unwrap().code(), "io");
    assert_eq!(store.snapshot().version(), Some(2));
    assert_eq!(store.status().pinned, None);
}

#[test]
fn force_last_known_good_goes_back_and_pins() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    store.tick(T0 + 1);
    store.offer(&good(2), Channel::Control, T0 + 2);
    let forced = store.force_last_known_good(T0 + 3);
    assert!(
        matches!(forced, ApplyOutcome::Applied { version: 1, .. }),
        "{forced:?}"
    );
    let snap = store.snapshot();
    assert_eq!(
        snap.active.as_ref().unwrap().channel,
        Channel::LastKnownGood
    );
    let status = store.status();
    assert_eq!((status.pinned, status.break_glass), (Some(1), true));
    assert_eq!(
        store
            .offer(&good(3), Channel::Control, T0 + 4)
            .rejection()
            .unwrap()
            .code(),
        "pinned"
    );
    // Forcing again while it serves is unchanged, still pinned.
    assert!(matches!(
        store.force_last_known_good(T0 + 5),
        ApplyOutcome::Unchanged { version: 1, .. }
    ));
    store.unpin();
    assert!(
        store
            .offer(&good(3), Channel::Control, T0 + 6)
            .rejection()
            .is_none()
    );
}

#[test]
fn force_last_known_good_without_one_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    let refused = store.force_last_known_good(T0 + 1);
    assert_eq!(refused.rejection().unwrap().code(), "io");
    assert_eq!(refused.serving().unwrap().0, 1);
    assert_eq!(store.status().pinned, None);
}
