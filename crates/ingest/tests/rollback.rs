//! Rollback: the control plane sends a node back to the version it served before a failed
//! rollout. `offer` from the watch dir refuses any version not above the one serving; from the
//! control plane it accepts a lower one only when this node served that very file (archive or
//! last-known-good), and verifies it again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use rampart_artifact::testing::doc_weighted;
use rampart_ingest::{ApplyOutcome, Channel, Config, DataDir, SoakConfig, Store};

const T0: u64 = 1_763_463_900_000;

fn boot(config: Config, now: u64) -> Store<TestCompiler> {
    Store::boot(config, TestCompiler::new(200), now).unwrap()
}

#[test]
fn a_rollback_to_a_version_served_before_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    store.offer(&good(2), Channel::Control, T0 + 1);
    // The watch dir may not go back, by design.
    let refused = store.offer(&good(1), Channel::Watch, T0 + 2);
    assert_eq!(
        refused.rejection().unwrap().issues()[0].code(),
        "version_not_above"
    );
    let back = store.offer(&good(1), Channel::Control, T0 + 3);
    assert!(
        matches!(back, ApplyOutcome::Applied { version: 1, .. }),
        "{back:?}"
    );
    let snap = store.snapshot();
    assert_eq!(snap.version(), Some(1));
    assert_eq!(snap.active.as_ref().unwrap().channel, Channel::Control);
    // Again: nothing changes. Forward again: a higher version applies as usual.
    assert!(matches!(
        store.offer(&good(1), Channel::Control, T0 + 4),
        ApplyOutcome::Unchanged { version: 1, .. }
    ));
    assert!(matches!(
        store.offer(&good(3), Channel::Control, T0 + 5),
        ApplyOutcome::Applied { version: 3, .. }
    ));
    assert_eq!(store.metrics().applied, 4);
}

#[test]
fn a_lower_version_never_served_here_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(5), Channel::Control, T0);
    let refused = store.offer(&good(4), Channel::Control, T0 + 1);
    let rejection = refused.rejection().unwrap();
    assert_eq!(
        rejection.issues()[0].code(),
        "version_not_above",
        "{refused:?}"
    );
    assert_eq!(store.snapshot().version(), Some(5));
    assert_eq!(store.last_rejection().unwrap().version, Some(4));
}

#[test]
fn a_different_file_under_a_version_served_before_is_refused() {
    // Version 1 was served, but these are other contents under the same version number:
    // not the file this node vouches for.
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    store.offer(&good(2), Channel::Control, T0 + 1);
    let impostor = signed(&doc_weighted(1, 60, -3.0));
    let refused = store.offer(&impostor, Channel::Control, T0 + 2);
    assert_eq!(
        refused.rejection().unwrap().issues()[0].code(),
        "version_not_above"
    );
    assert_eq!(store.snapshot().version(), Some(2));
}

#[test]
fn a_rollback_file_is_verified_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    store.offer(&good(2), Channel::Control, T0 + 1);
    for bad in [bad_signature(1), other_keys_signature(1), november_18(1)] {
        let refused = store.offer(&bad, Channel::Control, T0 + 2);
        assert_eq!(
            refused.rejection().unwrap().code(),
            "invalid",
            "{refused:?}"
        );
        assert_eq!(store.snapshot().version(), Some(2));
    }
}

#[test]
fn last_known_good_vouches_after_the_archive_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.archive_len = 1;
    let store = boot(cfg, T0);
    store.offer(&good(1), Channel::Control, T0);
    store.tick(T0 + 1); // soak of 0: version 1 becomes last-known-good
    store.offer(&good(2), Channel::Control, T0 + 2);
    assert_eq!(store.status().archive, [2]);
    assert!(!DataDir::new(dir.path()).version_file(1).exists());
    let back = store.offer(&good(1), Channel::Control, T0 + 3);
    assert!(
        matches!(back, ApplyOutcome::Applied { version: 1, .. }),
        "{back:?}"
    );
}

#[test]
fn a_rollback_survives_a_restart_through_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Never soaks: only the archive knows version 1.
    cfg.soak = SoakConfig {
        secs: 3600,
        requests: u64::MAX,
    };
    {
        let store = boot(cfg.clone(), T0);
        store.offer(&good(1), Channel::Control, T0);
        store.offer(&good(2), Channel::Control, T0 + 1);
        store.clean_exit(T0 + 2);
    }
    let store = boot(cfg, T0 + 10);
    store.offer(&good(2), Channel::Control, T0 + 11);
    assert_eq!(store.snapshot().version(), Some(2));
    assert!(matches!(
        store.offer(&good(1), Channel::Control, T0 + 12),
        ApplyOutcome::Applied { version: 1, .. }
    ));
}

#[test]
fn a_pinned_store_does_not_roll_back_until_unpinned() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    store.offer(&good(2), Channel::Control, T0 + 1);
    store.pin(2, T0 + 2);
    let refused = store.offer(&good(1), Channel::Control, T0 + 3);
    assert_eq!(refused.rejection().unwrap().code(), "pinned");
    store.unpin();
    assert!(matches!(
        store.offer(&good(1), Channel::Control, T0 + 4),
        ApplyOutcome::Applied { version: 1, .. }
    ));
}

#[test]
fn a_node_serving_nothing_applies_as_usual() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    assert!(matches!(
        store.offer(&good(3), Channel::Control, T0),
        ApplyOutcome::Applied { version: 3, .. }
    ));
    assert!(!store.restarted_after_death());
}

#[test]
fn a_death_before_this_boot_is_reported_once_as_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = boot(config(dir.path()), T0);
        store.offer(&good(1), Channel::Control, T0);
        // Dropped without clean_exit: the process died.
    }
    let store = boot(config(dir.path()), T0 + 1000);
    assert!(store.restarted_after_death());
    store.clean_exit(T0 + 2000);
    drop(store);
    let store = boot(config(dir.path()), T0 + 3000);
    assert!(!store.restarted_after_death());
}

#[test]
fn the_control_plane_cannot_put_other_content_under_the_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    let d2 = store
        .offer(&good(2), Channel::Control, T0 + 1)
        .serving()
        .unwrap()
        .1;
    let impostor = signed(&doc_weighted(2, 60, -3.0));
    let refused = store.offer(&impostor, Channel::Control, T0 + 2);
    assert_eq!(
        refused.rejection().unwrap().issues()[0].code(),
        "version_not_above"
    );
    assert_eq!(store.last_rejection().unwrap().version, Some(2));
    // The same document signed again (other bytes) is what serves: unchanged.
    let mut resigned = good(2);
    resigned.insert(0, b' ');
    assert_eq!(
        store.offer(&resigned, Channel::Control, T0 + 3),
        ApplyOutcome::Unchanged {
            version: 2,
            digest: d2
        }
    );
    assert_eq!(store.snapshot().digest(), Some(d2));
}
