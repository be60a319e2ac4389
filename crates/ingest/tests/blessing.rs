//! Last-known-good blessed by the fleet, kept as a history, and deaths out of the journal:
//! a version soaked here is promoted only once blessed (with a control plane), the last
//! three stay, an unblessed one leaves, a poisoned newest boots the one before, three deaths
//! at any uptime poison a version, and each death is reported once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use rampart_artifact::Digest;
use rampart_ingest::{Channel, Config, DataDir, DeathCause, Rule, Store, VersionDigest};

const T0: u64 = 1_763_463_900_000;
const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;

fn boot(config: Config, now: u64) -> Store<TestCompiler> {
    Store::boot(config, TestCompiler::new(200), now).unwrap()
}

fn blessed_config(dir: &std::path::Path) -> Config {
    let mut c = config(dir);
    c.require_blessing = true;
    c
}

fn vd(store: &Store<TestCompiler>) -> VersionDigest {
    let snap = store.snapshot();
    let a = snap.active.as_ref().unwrap();
    VersionDigest {
        version: a.version,
        digest: a.digest,
    }
}

fn history(store: &Store<TestCompiler>) -> Vec<u64> {
    store
        .status()
        .lkg
        .history
        .iter()
        .map(|h| h.version)
        .collect()
}

#[test]
fn with_a_control_plane_only_a_blessed_version_becomes_last_known_good() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let store = boot(blessed_config(dir.path()), T0);
    store.offer(&good(1), Channel::Control, T0);
    let v1 = vd(&store);
    // Soaked, but nothing blessed yet (no answer, then an answer blessing something else).
    store.tick(T0 + SEC);
    assert!(!layout.lkg_file(1).exists());
    let other = VersionDigest {
        version: 9,
        digest: Digest::of(b"9"),
    };
    store.set_blessed(&[other], T0 + 2 * SEC);
    store.tick(T0 + 3 * SEC);
    assert!(!layout.lkg_file(1).exists(), "not in the blessed list");
    assert!(!store.status().soak.unwrap().done);
    // Blessed: the next tick promotes it.
    store.set_blessed(&[v1], T0 + 4 * SEC);
    store.tick(T0 + 5 * SEC);
    assert!(layout.lkg_file(1).exists());
    let status = store.status();
    assert_eq!(status.lkg.blessed, Some(vec![v1]));
    assert!(status.lkg.require_blessing);
    assert_eq!(status.lkg.current, Some(v1));
}

#[test]
fn without_a_control_plane_the_soak_alone_promotes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let store = boot(config(dir.path()), T0);
    store.offer(&good(1), Channel::Watch, T0);
    store.tick(T0 + SEC);
    assert!(layout.lkg_file(1).exists());
}

#[test]
fn the_last_three_blessed_versions_are_kept_and_an_unblessed_one_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let store = boot(blessed_config(dir.path()), T0);
    let mut blessed = Vec::new();
    for v in 1..=4 {
        let now = T0 + v * 10 * SEC;
        store.offer(&good(v), Channel::Control, now);
        blessed.insert(0, vd(&store));
        store.set_blessed(&blessed, now + SEC);
        store.tick(now + 2 * SEC);
    }
    assert_eq!(history(&store), [4, 3, 2]);
    assert!(!layout.lkg_file(1).exists());
    // A rollback after the watch unblesses 4: it leaves lkg/ at once.
    store.set_blessed(&blessed[1..], T0 + 60 * SEC);
    assert_eq!(history(&store), [3, 2]);
    assert!(!layout.lkg_file(4).exists());
    assert_eq!(store.metrics().lkg_unblessed, 1);
    // An empty list removes nothing (and promotes nothing).
    store.set_blessed(&[], T0 + 61 * SEC);
    assert_eq!(history(&store), [3, 2]);
    drop(store);
    // The restart serves the newest still blessed.
    let store = boot(blessed_config(dir.path()), T0 + 70 * SEC);
    assert_eq!(store.snapshot().version(), Some(3));
}

#[test]
fn a_current_previous_layout_is_migrated_at_boot() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    std::fs::create_dir_all(layout.lkg_dir()).unwrap();
    std::fs::write(layout.lkg_current(), good(5)).unwrap();
    std::fs::write(layout.lkg_previous(), good(4)).unwrap();
    let store = boot(config(dir.path()), T0);
    assert_eq!(store.snapshot().version(), Some(5));
    assert_eq!(history(&store), [5, 4]);
    assert!(!layout.lkg_current().exists() && !layout.lkg_previous().exists());
    assert!(layout.lkg_file(5).exists() && layout.lkg_file(4).exists());
}

/// Three runs die 5 minutes after the newest last-known-good (v3) activated at boot: the
/// recurrence rule poisons it, whatever the uptime, and the next boot serves v2.
#[test]
fn three_deaths_at_any_uptime_poison_the_newest_and_the_one_before_serves() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let store = boot(config(dir.path()), T0);
    for v in 1..=3 {
        store.offer(&good(v), Channel::Watch, T0 + v * SEC);
        store.tick(T0 + v * SEC + 1);
    }
    assert_eq!(history(&store), [3, 2, 1]);
    store.clean_exit(T0 + 10 * SEC);
    drop(store);

    let mut now = T0 + MIN;
    for _ in 0..3 {
        let store = boot(config(dir.path()), now);
        assert_eq!(store.snapshot().version(), Some(3));
        assert_eq!(store.status().sentinel.decision.code(), "normal");
        // Alive for 5 minutes, then killed (dropped without a clean exit).
        store.tick(now + 5 * MIN);
        drop(store);
        now += 5 * MIN + 10 * SEC;
    }
    let store = boot(config(dir.path()), now);
    let status = store.status();
    assert_eq!(status.sentinel.decision.code(), "last_known_good");
    let poison = status.sentinel.decision.poison();
    assert_eq!((poison[0].version, poison[0].rule), (3, Rule::Recurrence));
    assert_eq!(store.snapshot().version(), Some(2), "the one before serves");
    assert_eq!(
        history(&store),
        [2, 1],
        "a poisoned version is not last-known-good"
    );
    assert!(!layout.lkg_file(3).exists());
    // The three deaths wait to be reported, each with its uptime of about 5 minutes.
    assert_eq!(status.pending_deaths.len(), 3);
    for d in &status.pending_deaths {
        assert_eq!(d.active.unwrap().0, 3);
        assert_eq!(d.uptime_ms, 5 * MIN);
        assert_eq!(d.active_for_ms, Some(5 * MIN));
        assert_eq!(d.cause, DeathCause::Unknown);
    }
}

#[test]
fn each_death_is_reported_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut now = T0;
    // Two runs die.
    for _ in 0..2 {
        let store = boot(config(dir.path()), now);
        store.offer(&good(1), Channel::Watch, now);
        drop(store);
        now += 10 * SEC;
    }
    let store = boot(config(dir.path()), now);
    let pending = store.pending_deaths(16);
    assert_eq!(pending.len(), 2);
    assert_eq!(
        store.pending_deaths(1).len(),
        1,
        "at most what a beat carries"
    );
    assert_eq!(store.metrics().deaths_found, 2);
    // The control plane acknowledged the first only (the beat carried one).
    store.deaths_reported(&[pending[0].detected_at_ms], now + SEC);
    assert_eq!(store.pending_deaths(16), pending[1..]);
    store.deaths_reported(&[pending[0].detected_at_ms], now + SEC);
    assert_eq!(store.metrics().deaths_reported, 1, "twice is once");
    store.clean_exit(now + 2 * SEC);
    drop(store);
    // The restart sends only the second again; this run exited cleanly: no new death.
    now += 10 * SEC;
    let store = boot(config(dir.path()), now);
    let again = store.pending_deaths(16);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].detected_at_ms, pending[1].detected_at_ms);
    store.deaths_reported(&[again[0].detected_at_ms], now);
    drop(store);
    // That run died: it is the only one left.
    let store = boot(config(dir.path()), now + 10 * SEC);
    let last = store.pending_deaths(16);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].detected_at_ms, now + 10 * SEC);
}
