//! Properties over arbitrary input: nothing that arrives, in a file or in the data dir, makes
//! the store panic or stop serving what it served.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use proptest::prelude::*;
use rampart_ingest::sentinel::{Event, Rule, SentinelConfig, deaths, decide};
use rampart_ingest::{Channel, DataDir, Store};

const T0: u64 = 1_763_463_900_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A signed file with bytes flipped, cut or spliced is refused, and v5 keeps serving.
    #[test]
    fn mangled_files_are_refused_and_v5_keeps_serving(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::boot(config(dir.path()), TestCompiler::new(200), T0).unwrap();
        store.offer(&good(5), Channel::Watch, T0);
        let d5 = store.snapshot().digest();
        let mut bytes = good(6);
        for (at, byte) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let outcome = store.offer(&bytes, Channel::Watch, T0 + 1);
        if bytes != good(6) {
            // Any change to a signed file either breaks its JSON, its signature, or
            // (whitespace outside the payload) nothing at all.
            match outcome.rejection() {
                Some(_) => prop_assert_eq!(store.snapshot().digest(), d5),
                None => prop_assert_eq!(store.snapshot().version(), Some(6)),
            }
        }
    }

    /// Any bytes at all as input: refused or applied, never a panic, always a snapshot.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::boot(config(dir.path()), TestCompiler::new(200), T0).unwrap();
        store.offer(&good(5), Channel::Watch, T0);
        let outcome = store.offer(&bytes, Channel::Watch, T0 + 1);
        prop_assert!(outcome.rejection().is_some());
        prop_assert_eq!(store.snapshot().version(), Some(5));
    }

    /// Whatever the data dir holds (a journal, a poisoned list, a kill switch, a
    /// last-known-good of garbage), boot succeeds.
    #[test]
    fn a_garbage_data_dir_still_boots(
        journal in proptest::collection::vec(any::<u8>(), 0..4096),
        poisoned in proptest::collection::vec(any::<u8>(), 0..512),
        module in proptest::collection::vec(any::<u8>(), 0..128),
        lkg in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        std::fs::create_dir_all(layout.sentinel_dir()).unwrap();
        std::fs::create_dir_all(layout.lkg_dir()).unwrap();
        std::fs::write(layout.journal(), &journal).unwrap();
        std::fs::write(layout.poisoned(), &poisoned).unwrap();
        std::fs::write(layout.module_state(), &module).unwrap();
        std::fs::write(layout.lkg_current(), &lkg).unwrap();
        let store = Store::boot(config(dir.path()), TestCompiler::new(200), T0).unwrap();
        prop_assert!(store.snapshot().active.is_none());
        prop_assert!(store.offer(&good(1), Channel::Watch, T0).rejection().is_none());
    }

    /// The decision never counts more deaths than there were runs, and never poisons a
    /// version that no run activated.
    #[test]
    fn decisions_are_bounded_by_the_journal(
        script in proptest::collection::vec((0u8..3, 0u64..5, 0u64..120_000), 0..64),
        now in 0u64..400_000,
    ) {
        let events: Vec<Event> = script
            .iter()
            .map(|(kind, version, at_ms)| match kind {
                0 => Event::Boot { at_ms: *at_ms },
                1 => Event::Activated {
                    at_ms: *at_ms,
                    version: *version,
                    digest: rampart_artifact::Digest::of(&version.to_le_bytes()),
                },
                _ => Event::CleanExit { at_ms: *at_ms },
            })
            .collect();
        let boots = events.iter().filter(|e| matches!(e, Event::Boot { .. })).count();
        let decision = decide(&events, now, &SentinelConfig::default());
        prop_assert!(decision.deaths() as usize <= boots);
        for suspect in decision.poison() {
            prop_assert!(suspect.deaths >= 3);
            let activated = events.iter().any(|e| {
                matches!(e, Event::Activated { version, .. } if *version == suspect.version)
            });
            prop_assert!(activated, "poisoned {} that no run activated", suspect.version);
        }
    }

    /// The recurrence rule agrees with the deaths the edge reports: a version is poisoned by
    /// recurrence exactly when at least `recurrence_deaths` of its reported deaths were
    /// detected within the window, whatever the uptime at each; deaths are at most one per
    /// boot, each with a distinct detection time.
    #[test]
    fn recurrence_counts_the_reported_deaths(
        script in proptest::collection::vec((0u8..4, 0u64..4, 0u64..20), 0..64),
        now_extra in 0u64..3_600_000,
    ) {
        // Times only grow (as a clock does, boots a ms apart at least: a boot's time is its
        // death's identity), by up to 20 minutes a step.
        let mut at = 0u64;
        let mut events = Vec::new();
        for (kind, version, step) in &script {
            at += 1 + step * 60_000;
            events.push(match kind {
                0 => Event::Boot { at_ms: at },
                1 => Event::Activated {
                    at_ms: at,
                    version: *version,
                    digest: rampart_artifact::Digest::of(&version.to_le_bytes()),
                },
                2 => Event::Alive { at_ms: at },
                _ => Event::CleanExit { at_ms: at },
            });
        }
        let now = at + now_extra;
        let config = SentinelConfig::default();
        let reported = deaths(&events, now);
        let boots = events.iter().filter(|e| matches!(e, Event::Boot { .. })).count();
        prop_assert!(reported.len() <= boots);
        let mut detected: Vec<u64> = reported.iter().map(|d| d.detected_at_ms).collect();
        detected.dedup();
        prop_assert_eq!(detected.len(), reported.len());
        let decision = decide(&events, now, &config);
        let window = config.recurrence_window_secs * 1000;
        for version in 0u64..4 {
            let recent = reported
                .iter()
                .filter(|d| d.active.is_some_and(|(v, _)| v == version))
                .filter(|d| now.saturating_sub(d.detected_at_ms) <= window)
                .count() as u32;
            let poisoned = decision.poison().iter().any(|s| s.version == version);
            if recent >= config.recurrence_deaths {
                prop_assert!(poisoned, "version {} died {} times recently", version, recent);
            }
            if poisoned {
                let s = decision.poison().iter().find(|s| s.version == version).unwrap();
                if s.rule == Rule::Recurrence {
                    prop_assert!(recent >= config.recurrence_deaths);
                }
            }
        }
    }
}
