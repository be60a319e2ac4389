//! The crash-loop sentinel's decision: pure, time passed in.
//!
//! The boot journal ([`crate::journal`]) records what each run of the process did: it
//! booted, it activated version V, it exited cleanly. A run that activated something and
//! has no clean exit before the next boot **died**, and its death is attributed to the last
//! version it activated. At each boot, [`decide`] reads the past runs:
//!
//! - a death counts when it was detected (by the boot that followed it, or by this boot)
//!   within `window_secs` of now, **and** that detection came within `window_secs` of the
//!   activation it is blamed on (a version that served for hours before an unrelated OOM is
//!   not a suspect);
//! - `crash_threshold` counted deaths of version V: V is poisoned and this boot serves
//!   last-known-good ([`BootDecision::LastKnownGood`]);
//! - `safe_mode_threshold` counted deaths of any versions: the bot module boots off, fail
//!   open ([`BootDecision::SafeMode`]), because falling back did not stop the loop.
//!
//! A run that died before activating anything is not counted: with no model the module does
//! nothing, so the death is not the module's.

use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

/// Deaths of one version, within the window, that poison it.
pub const DEFAULT_CRASH_THRESHOLD: u32 = 3;

/// The window in which deaths count (Cloudflare's proxy restarted in seconds; 60 s holds a
/// loop, not the odd crash a day).
pub const DEFAULT_WINDOW_SECS: u64 = 60;

/// Deaths of any version, within the window, that turn the bot module off at boot.
pub const DEFAULT_SAFE_MODE_THRESHOLD: u32 = 6;

/// The thresholds of the sentinel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelConfig {
    /// Deaths after activating one version that poison it ([`DEFAULT_CRASH_THRESHOLD`]).
    pub crash_threshold: u32,
    /// Seconds in which deaths count ([`DEFAULT_WINDOW_SECS`]).
    pub window_secs: u64,
    /// Deaths in all that boot the module off ([`DEFAULT_SAFE_MODE_THRESHOLD`]).
    pub safe_mode_threshold: u32,
}

/// One line of the boot journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The process started.
    Boot {
        /// Wall clock, ms since the Unix epoch.
        at_ms: u64,
    },
    /// A version was swapped in (written before the swap, so a death right after the swap
    /// is blamed on the new version).
    Activated {
        /// Wall clock, ms since the Unix epoch.
        at_ms: u64,
        /// The version.
        version: u64,
        /// Its digest.
        digest: Digest,
    },
    /// The process shut down cleanly.
    CleanExit {
        /// Wall clock, ms since the Unix epoch.
        at_ms: u64,
    },
}

/// A version blamed for deaths within the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suspect {
    /// The version.
    pub version: u64,
    /// The digest it was activated with (the last one, if several).
    pub digest: Digest,
    /// Its counted deaths.
    pub deaths: u32,
}

/// What this boot must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum BootDecision {
    /// No crash loop: serve last-known-good until something newer arrives.
    Normal {
        /// Counted deaths (all under the thresholds).
        deaths: u32,
    },
    /// A version crossed the crash threshold: poison it, serve last-known-good.
    LastKnownGood {
        /// The versions to poison (each with at least `crash_threshold` deaths).
        poison: Vec<Suspect>,
        /// Counted deaths in all.
        deaths: u32,
    },
    /// Deaths crossed the safe-mode threshold: boot with the bot module off.
    SafeMode {
        /// The versions to poison as well.
        poison: Vec<Suspect>,
        /// Counted deaths in all.
        deaths: u32,
    },
}

// === impl SentinelConfig ===

impl Default for SentinelConfig {
    fn default() -> Self {
        SentinelConfig {
            crash_threshold: DEFAULT_CRASH_THRESHOLD,
            window_secs: DEFAULT_WINDOW_SECS,
            safe_mode_threshold: DEFAULT_SAFE_MODE_THRESHOLD,
        }
    }
}

impl SentinelConfig {
    fn window_ms(&self) -> u64 {
        self.window_secs.saturating_mul(1000)
    }
}

// === impl BootDecision ===

impl BootDecision {
    /// The versions to poison.
    pub fn poison(&self) -> &[Suspect] {
        match self {
            BootDecision::Normal { .. } => &[],
            BootDecision::LastKnownGood { poison, .. } | BootDecision::SafeMode { poison, .. } => {
                poison
            }
        }
    }

    /// Counted deaths.
    pub fn deaths(&self) -> u32 {
        match self {
            BootDecision::Normal { deaths }
            | BootDecision::LastKnownGood { deaths, .. }
            | BootDecision::SafeMode { deaths, .. } => *deaths,
        }
    }

    /// Whether the module must boot off.
    pub fn is_safe_mode(&self) -> bool {
        matches!(self, BootDecision::SafeMode { .. })
    }

    /// A stable name: `normal`, `last_known_good`, `safe_mode`.
    pub fn code(&self) -> &'static str {
        match self {
            BootDecision::Normal { .. } => "normal",
            BootDecision::LastKnownGood { .. } => "last_known_good",
            BootDecision::SafeMode { .. } => "safe_mode",
        }
    }
}

/// Decides this boot from the journal of past runs (`events`, oldest first, this boot not
/// included) at `now_ms`. Events before the first `Boot` are ignored (a compacted journal
/// may start mid-run).
pub fn decide(events: &[Event], now_ms: u64, config: &SentinelConfig) -> BootDecision {
    let window = config.window_ms();
    // (version, digest, deaths), in order of first death; a handful of entries at most.
    let mut blamed: Vec<Suspect> = Vec::new();
    let mut deaths: u32 = 0;
    let mut run: Option<Run> = None;
    for event in events {
        match event {
            Event::Boot { at_ms } => {
                if let Some(prev) = run.take() {
                    count(prev, *at_ms, now_ms, window, &mut blamed, &mut deaths);
                }
                run = Some(Run::default());
            }
            Event::Activated {
                at_ms,
                version,
                digest,
            } => {
                if let Some(r) = run.as_mut() {
                    r.last = Some((*at_ms, *version, *digest));
                }
            }
            Event::CleanExit { .. } => {
                if let Some(r) = run.as_mut() {
                    r.clean = true;
                }
            }
        }
    }
    if let Some(last) = run {
        count(last, now_ms, now_ms, window, &mut blamed, &mut deaths);
    }
    let poison: Vec<Suspect> = blamed
        .into_iter()
        .filter(|s| s.deaths >= config.crash_threshold)
        .collect();
    if deaths >= config.safe_mode_threshold {
        BootDecision::SafeMode { poison, deaths }
    } else if !poison.is_empty() {
        BootDecision::LastKnownGood { poison, deaths }
    } else {
        BootDecision::Normal { deaths }
    }
}

/// Whether the last run in `events` (oldest first, this boot not included) died: it booted
/// and has no clean exit. Unlike [`decide`], it counts a death before any activation and
/// outside the window too: it is what the edge reports as a restart in its first heartbeat,
/// and the control plane judges whether a restart matters.
pub fn last_run_died(events: &[Event]) -> bool {
    let Some(start) = events.iter().rposition(|e| matches!(e, Event::Boot { .. })) else {
        return false;
    };
    !events
        .iter()
        .skip(start)
        .any(|e| matches!(e, Event::CleanExit { .. }))
}

/// One run of the process as the journal tells it.
#[derive(Debug, Default)]
struct Run {
    last: Option<(u64, u64, Digest)>,
    clean: bool,
}

/// Counts `run`'s death, detected at `detected_ms`, if it is one and falls in the window.
fn count(
    run: Run,
    detected_ms: u64,
    now_ms: u64,
    window: u64,
    blamed: &mut Vec<Suspect>,
    deaths: &mut u32,
) {
    if run.clean {
        return;
    }
    let Some((activated_ms, version, digest)) = run.last else {
        return;
    };
    // saturating_sub: a clock that went backwards makes ages 0, which counts (fail safe).
    let recent = now_ms.saturating_sub(detected_ms) <= window;
    let soon_after_activation = detected_ms.saturating_sub(activated_ms) <= window;
    if !(recent && soon_after_activation) {
        return;
    }
    *deaths = deaths.saturating_add(1);
    match blamed.iter_mut().find(|s| s.version == version) {
        Some(s) => {
            s.deaths = s.deaths.saturating_add(1);
            s.digest = digest;
        }
        None => blamed.push(Suspect {
            version,
            digest,
            deaths: 1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1000;

    #[test]
    fn the_last_run_died_unless_it_exited_cleanly() {
        let boot = |at_ms| Event::Boot { at_ms };
        let clean = |at_ms| Event::CleanExit { at_ms };
        let activated = Event::Activated {
            at_ms: 2,
            version: 1,
            digest: digest(1),
        };
        assert!(!last_run_died(&[]), "a first boot is no restart");
        assert!(!last_run_died(&[boot(1), activated.clone(), clean(3)]));
        assert!(last_run_died(&[boot(1), activated.clone()]));
        assert!(
            last_run_died(&[boot(1), clean(2), boot(3)]),
            "died before activating"
        );
        assert!(
            !last_run_died(&[boot(1), boot(2), clean(3)]),
            "only the last run counts"
        );
        assert!(
            !last_run_died(&[activated]),
            "a compacted journal without a boot"
        );
    }

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    /// A fake clock and a journal: `boot`, `activate`, `clean` append at the current time.
    #[derive(Default)]
    struct Journal {
        now: u64,
        events: Vec<Event>,
    }

    impl Journal {
        fn at(mut self, secs: u64) -> Self {
            self.now = secs * SEC;
            self
        }
        fn boot(mut self) -> Self {
            self.events.push(Event::Boot { at_ms: self.now });
            self
        }
        fn activate(mut self, version: u64) -> Self {
            self.events.push(Event::Activated {
                at_ms: self.now,
                version,
                digest: digest(version as u8),
            });
            self
        }
        fn clean(mut self) -> Self {
            self.events.push(Event::CleanExit { at_ms: self.now });
            self
        }
        /// A run that boots, activates `version` and dies; the next boot is 5 s later.
        fn dies_after(self, version: u64) -> Self {
            let t = self.now / SEC;
            self.boot().activate(version).at(t + 5)
        }
        fn decide(&self) -> BootDecision {
            decide(&self.events, self.now, &SentinelConfig::default())
        }
    }

    #[test]
    fn an_empty_journal_is_a_normal_first_boot() {
        assert_eq!(
            decide(&[], 0, &SentinelConfig::default()),
            BootDecision::Normal { deaths: 0 }
        );
    }

    #[test]
    fn clean_exits_are_not_deaths() {
        let j = Journal::default()
            .boot()
            .activate(7)
            .clean()
            .at(1)
            .boot()
            .activate(7)
            .clean()
            .at(2)
            .boot()
            .activate(7)
            .clean()
            .at(3);
        assert_eq!(j.decide(), BootDecision::Normal { deaths: 0 });
    }

    #[test]
    fn two_deaths_are_under_the_threshold() {
        let j = Journal::default().dies_after(7).dies_after(7);
        assert_eq!(j.decide(), BootDecision::Normal { deaths: 2 });
    }

    #[test]
    fn three_deaths_after_one_version_poison_it() {
        let j = Journal::default().dies_after(7).dies_after(7).dies_after(7);
        assert_eq!(
            j.decide(),
            BootDecision::LastKnownGood {
                poison: vec![Suspect {
                    version: 7,
                    digest: digest(7),
                    deaths: 3
                }],
                deaths: 3
            }
        );
    }

    #[test]
    fn a_death_is_blamed_on_the_last_activation_of_its_run() {
        // Each run activates 6 then 7, then dies: 7 is the suspect, 6 is not.
        let mut j = Journal::default();
        for _ in 0..3 {
            let t = j.now / SEC;
            j = j.boot().activate(6).at(t + 1).activate(7).at(t + 5);
        }
        let d = j.decide();
        assert_eq!(d.poison().len(), 1);
        assert_eq!(d.poison()[0].version, 7);
    }

    #[test]
    fn deaths_spread_over_versions_poison_none() {
        let j = Journal::default()
            .dies_after(5)
            .dies_after(6)
            .dies_after(7)
            .dies_after(5)
            .dies_after(6);
        assert_eq!(j.decide(), BootDecision::Normal { deaths: 5 });
    }

    #[test]
    fn six_deaths_boot_in_safe_mode_and_poison_the_repeat_offenders() {
        let j = Journal::default()
            .dies_after(7)
            .dies_after(7)
            .dies_after(7)
            .dies_after(6)
            .dies_after(6)
            .dies_after(5);
        match j.decide() {
            BootDecision::SafeMode { poison, deaths } => {
                assert_eq!(deaths, 6);
                let versions: Vec<u64> = poison.iter().map(|s| s.version).collect();
                assert_eq!(versions, [7]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deaths_outside_the_window_are_forgotten() {
        // Three deaths, then 61 s of quiet before this boot.
        let j = Journal::default().dies_after(7).dies_after(7).dies_after(7);
        let late = j.now / SEC + 61;
        let j = j.at(late);
        // The last run's death is detected now (61 s after its activation: too late to blame);
        // the two before were detected 71 s and 66 s ago: out of the window.
        assert_eq!(j.decide(), BootDecision::Normal { deaths: 0 });
    }

    #[test]
    fn the_window_edge_is_inclusive() {
        let mut j = Journal::default().dies_after(7).dies_after(7).dies_after(7);
        // The first death was detected at 5 s; now = 65 s is exactly 60 s later.
        j.now = 65 * SEC;
        assert_eq!(j.decide().code(), "last_known_good");
        j.now = 65 * SEC + 1;
        assert_eq!(j.decide().code(), "normal");
    }

    #[test]
    fn a_death_long_after_activation_is_not_blamed() {
        // Activated at 0, ran for 10 minutes, died; twice more the same way.
        let mut j = Journal::default();
        for _ in 0..3 {
            let t = j.now / SEC;
            j = j.boot().activate(7).at(t + 600);
        }
        assert_eq!(j.decide(), BootDecision::Normal { deaths: 0 });
    }

    #[test]
    fn a_run_that_activated_nothing_is_not_counted() {
        let j = Journal::default()
            .boot()
            .at(1)
            .boot()
            .at(2)
            .boot()
            .at(3)
            .boot()
            .at(4);
        assert_eq!(j.decide(), BootDecision::Normal { deaths: 0 });
    }

    #[test]
    fn events_before_the_first_boot_are_ignored() {
        let mut j = Journal::default().activate(7).clean();
        j = j.dies_after(8);
        assert_eq!(j.decide(), BootDecision::Normal { deaths: 1 });
    }

    #[test]
    fn a_clock_that_went_backwards_still_counts() {
        let j = Journal::default()
            .at(100)
            .dies_after(7)
            .dies_after(7)
            .dies_after(7)
            .at(10);
        assert_eq!(j.decide().code(), "last_known_good");
    }

    #[test]
    fn thresholds_are_configurable() {
        let j = Journal::default().dies_after(7);
        let one = SentinelConfig {
            crash_threshold: 1,
            window_secs: 60,
            safe_mode_threshold: 2,
        };
        assert_eq!(decide(&j.events, j.now, &one).code(), "last_known_good");
        let j = j.dies_after(8);
        let d = decide(&j.events, j.now, &one);
        assert!(d.is_safe_mode());
        assert_eq!(d.poison().len(), 2);
        assert_eq!(d.deaths(), 2);
    }

    #[test]
    fn events_round_trip_as_journal_lines() {
        let e = Event::Activated {
            at_ms: 5,
            version: 7,
            digest: digest(7),
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.starts_with("{\"event\":\"activated\""), "{line}");
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), e);
    }
}
