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
//!
//! **Recurrence.** The rule above only sees a loop: a file that kills the process minutes
//! after loading it (Azure Front Door, 29 October 2025: about 5 minutes, in background
//! processing) dies too late after its activation to be blamed. So [`decide`] also counts,
//! per version, every death detected within `recurrence_window_secs` of now whatever the
//! uptime at the death: `recurrence_deaths` of them poison the version too
//! ([`Rule::Recurrence`]), and the boot serves the newest last-known-good that is not
//! poisoned. The defaults (3 within 30 minutes) let a version that dies once a day on an
//! unrelated OOM live, and catch a file that kills every run after 5 or 10 minutes within
//! its third death: at most about 30 minutes of a crash every few minutes on one node, and
//! the control plane, which sees the deaths of every node ([`deaths`]), acts sooner.
//!
//! [`deaths`] turns the same journal into the deaths the edge reports to the control plane,
//! each with its cause when the run recorded one ([`Event::Panicked`], [`Event::Exited`]),
//! minus those already reported ([`Event::DeathReported`]).

use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

/// Deaths of one version, within the window, that poison it.
pub const DEFAULT_CRASH_THRESHOLD: u32 = 3;

/// The window in which deaths count (Cloudflare's proxy restarted in seconds; 60 s holds a
/// loop, not the odd crash a day).
pub const DEFAULT_WINDOW_SECS: u64 = 60;

/// Deaths of any version, within the window, that turn the bot module off at boot.
pub const DEFAULT_SAFE_MODE_THRESHOLD: u32 = 6;

/// Deaths of one version within [`DEFAULT_RECURRENCE_WINDOW_SECS`], whatever the uptime at
/// each, that poison it (three: one death is an accident, two can be a coincidence).
pub const DEFAULT_RECURRENCE_DEATHS: u32 = 3;

/// The window of the recurrence rule: 30 minutes holds three deaths of a file that kills the
/// process 5 to 10 minutes after loading it, and not a death a day.
pub const DEFAULT_RECURRENCE_WINDOW_SECS: u64 = 30 * 60;

/// How often a running edge writes [`Event::Alive`] in its journal: the granularity of the
/// uptime and time-on-version it reports for a death (a run is known alive until its last
/// event).
pub const ALIVE_INTERVAL_MS: u64 = 60_000;

/// The thresholds of the sentinel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelConfig {
    /// Deaths after activating one version that poison it ([`DEFAULT_CRASH_THRESHOLD`]).
    pub crash_threshold: u32,
    /// Seconds in which deaths count ([`DEFAULT_WINDOW_SECS`]).
    pub window_secs: u64,
    /// Deaths in all that boot the module off ([`DEFAULT_SAFE_MODE_THRESHOLD`]).
    pub safe_mode_threshold: u32,
    /// Deaths of one version within `recurrence_window_secs`, at any uptime, that poison it
    /// ([`DEFAULT_RECURRENCE_DEATHS`]; 0 turns the rule off).
    #[serde(default = "default_recurrence_deaths")]
    pub recurrence_deaths: u32,
    /// The recurrence rule's window ([`DEFAULT_RECURRENCE_WINDOW_SECS`]).
    #[serde(default = "default_recurrence_window_secs")]
    pub recurrence_window_secs: u64,
}

fn default_recurrence_deaths() -> u32 {
    DEFAULT_RECURRENCE_DEATHS
}

fn default_recurrence_window_secs() -> u64 {
    DEFAULT_RECURRENCE_WINDOW_SECS
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
    /// The process was still running ([`ALIVE_INTERVAL_MS`]): how long a dead run lived.
    Alive {
        /// Wall clock, ms since the Unix epoch.
        at_ms: u64,
    },
    /// A panic escaped every isolation boundary (written by the edge's panic hook, once per
    /// run): the run's death, if it died, is a panic.
    Panicked {
        /// Wall clock, ms since the Unix epoch.
        at_ms: u64,
    },
    /// The process chose to exit with a non-zero code (a failure after boot).
    Exited {
        /// Wall clock, ms since the Unix epoch.
        at_ms: u64,
        /// The exit code.
        code: i32,
    },
    /// The run's supervisor saw it killed by `signal` (written after the run ended, by
    /// `rampart edge record-exit`, before the next boot): not a sign of life.
    Killed {
        /// Wall clock, ms since the Unix epoch (when the supervisor wrote it).
        at_ms: u64,
        /// The signal number.
        signal: i32,
    },
    /// The control plane answered a heartbeat that carried the death detected at
    /// `detected_at_ms`: it is not sent again.
    DeathReported {
        /// Wall clock, ms since the Unix epoch.
        at_ms: u64,
        /// The death's [`Death::detected_at_ms`].
        detected_at_ms: u64,
    },
}

/// A run that ended without a clean exit, as the journal tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Death {
    /// When it was detected: the `at_ms` of the boot that followed it (its identity: each
    /// boot detects at most one death, the run before it).
    pub detected_at_ms: u64,
    /// When the dead run booted, ms since the Unix epoch.
    pub boot_at_ms: u64,
    /// The version (and digest) active when it died: the last it activated.
    pub active: Option<(u64, Digest)>,
    /// How long that version had been active when the run was last seen alive, in ms (a
    /// lower bound, to [`ALIVE_INTERVAL_MS`]).
    pub active_for_ms: Option<u64>,
    /// How long the run had lived when last seen alive, in ms (a lower bound, likewise).
    pub uptime_ms: u64,
    /// Why, when the run recorded it.
    pub cause: DeathCause,
}

/// Why a run died, as far as its journal tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeathCause {
    /// A panic outside every isolation boundary ([`Event::Panicked`]).
    Panic,
    /// An exit the process chose, with this code ([`Event::Exited`]).
    Exit {
        /// The exit code.
        code: i32,
    },
    /// Killed by this signal, as its supervisor recorded it ([`Event::Killed`]).
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// No record: SIGKILL, OOM, power, an abort, with no supervisor to tell.
    Unknown,
}

/// Which rule blamed a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Deaths soon after activating it, within `window_secs` (a crash loop).
    CrashLoop,
    /// Deaths while it was active within `recurrence_window_secs`, at any uptime.
    Recurrence,
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
    /// The rule that blamed it.
    pub rule: Rule,
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
            recurrence_deaths: DEFAULT_RECURRENCE_DEATHS,
            recurrence_window_secs: DEFAULT_RECURRENCE_WINDOW_SECS,
        }
    }
}

impl SentinelConfig {
    fn window_ms(&self) -> u64 {
        self.window_secs.saturating_mul(1000)
    }

    /// How far back a decision looks: the longer of the two windows, in ms (what journal
    /// compaction must keep, twice over).
    pub fn horizon_ms(&self) -> u64 {
        self.window_secs
            .max(self.recurrence_window_secs)
            .saturating_mul(1000)
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
    let recurrence_window = config.recurrence_window_secs.saturating_mul(1000);
    // In order of first death; a handful of entries at most.
    let mut blamed: Vec<Suspect> = Vec::new();
    let mut recurring: Vec<Suspect> = Vec::new();
    let mut deaths: u32 = 0;
    for run in runs(events, now_ms) {
        if run.clean {
            continue;
        }
        let Some((activated_ms, version, digest)) = run.last else {
            continue;
        };
        let detected_ms = run.detected_ms;
        // saturating_sub: a clock that went backwards makes ages 0, which counts (fail safe).
        let age = now_ms.saturating_sub(detected_ms);
        if age <= window && detected_ms.saturating_sub(activated_ms) <= window {
            deaths = deaths.saturating_add(1);
            blame(&mut blamed, version, digest, Rule::CrashLoop);
        }
        if config.recurrence_deaths > 0 && age <= recurrence_window {
            blame(&mut recurring, version, digest, Rule::Recurrence);
        }
    }
    let mut poison: Vec<Suspect> = blamed
        .into_iter()
        .filter(|s| s.deaths >= config.crash_threshold)
        .collect();
    for s in recurring {
        if s.deaths >= config.recurrence_deaths && !poison.iter().any(|p| p.version == s.version) {
            poison.push(s);
        }
    }
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

/// The deaths in `events` (oldest first, this boot not included; this boot at `now_ms`
/// detects the last run's), oldest first, without those a later run recorded as reported.
/// Every run that died counts, whether or not it activated anything and however long it
/// lived: the control plane judges what a death means.
pub fn deaths(events: &[Event], now_ms: u64) -> Vec<Death> {
    let reported: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::DeathReported { detected_at_ms, .. } => Some(*detected_at_ms),
            _ => None,
        })
        .collect();
    runs(events, now_ms)
        .into_iter()
        .filter(|run| !run.clean && !reported.contains(&run.detected_ms))
        .map(|run| Death {
            detected_at_ms: run.detected_ms,
            boot_at_ms: run.boot_ms,
            active: run.last.map(|(_, v, d)| (v, d)),
            active_for_ms: run.last.map(|(at, _, _)| run.seen_ms.saturating_sub(at)),
            uptime_ms: run.seen_ms.saturating_sub(run.boot_ms),
            // A panic is the most specific (its abort is the signal a supervisor sees).
            cause: match (run.panicked, run.signal, run.exit_code) {
                (true, _, _) => DeathCause::Panic,
                (false, Some(signal), _) => DeathCause::Signal { signal },
                (false, None, Some(code)) => DeathCause::Exit { code },
                (false, None, None) => DeathCause::Unknown,
            },
        })
        .collect()
}

/// One run of the process as the journal tells it.
#[derive(Debug)]
struct Run {
    boot_ms: u64,
    /// The boot that followed it (or `now_ms` for the last run).
    detected_ms: u64,
    /// The last event's time: when it was last seen alive.
    seen_ms: u64,
    last: Option<(u64, u64, Digest)>,
    clean: bool,
    panicked: bool,
    exit_code: Option<i32>,
    signal: Option<i32>,
}

/// The runs in `events`, oldest first; events before the first boot are ignored.
fn runs(events: &[Event], now_ms: u64) -> Vec<Run> {
    let mut done = Vec::new();
    let mut run: Option<Run> = None;
    for event in events {
        if let Event::Boot { at_ms } = event {
            if let Some(mut prev) = run.take() {
                prev.detected_ms = *at_ms;
                done.push(prev);
            }
            run = Some(Run {
                boot_ms: *at_ms,
                detected_ms: now_ms,
                seen_ms: *at_ms,
                last: None,
                clean: false,
                panicked: false,
                exit_code: None,
                signal: None,
            });
            continue;
        }
        let Some(r) = run.as_mut() else {
            continue;
        };
        match event {
            Event::Boot { .. } => {}
            Event::Activated {
                at_ms,
                version,
                digest,
            } => {
                r.last = Some((*at_ms, *version, *digest));
                r.seen_ms = r.seen_ms.max(*at_ms);
            }
            Event::CleanExit { at_ms } => {
                r.clean = true;
                r.seen_ms = r.seen_ms.max(*at_ms);
            }
            Event::Alive { at_ms } => r.seen_ms = r.seen_ms.max(*at_ms),
            Event::Panicked { at_ms } => {
                r.panicked = true;
                r.seen_ms = r.seen_ms.max(*at_ms);
            }
            Event::Exited { at_ms, code } => {
                r.exit_code = Some(*code);
                r.seen_ms = r.seen_ms.max(*at_ms);
            }
            // Written by the supervisor after the run ended: when it died is not known.
            Event::Killed { signal, .. } => r.signal = Some(*signal),
            // Written by a later run about an earlier one: not a sign of life of this run's
            // version, but of the process.
            Event::DeathReported { at_ms, .. } => r.seen_ms = r.seen_ms.max(*at_ms),
        }
    }
    if let Some(last) = run {
        done.push(last);
    }
    done
}

/// Adds one death of `version` to `list`.
fn blame(list: &mut Vec<Suspect>, version: u64, digest: Digest, rule: Rule) {
    match list.iter_mut().find(|s| s.version == version) {
        Some(s) => {
            s.deaths = s.deaths.saturating_add(1);
            s.digest = digest;
        }
        None => list.push(Suspect {
            version,
            digest,
            deaths: 1,
            rule,
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
        fn alive(mut self) -> Self {
            self.events.push(Event::Alive { at_ms: self.now });
            self
        }
        fn panicked(mut self) -> Self {
            self.events.push(Event::Panicked { at_ms: self.now });
            self
        }
        fn exited(mut self, code: i32) -> Self {
            self.events.push(Event::Exited {
                at_ms: self.now,
                code,
            });
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
        /// The crash-loop rule alone (recurrence off).
        fn decide_loop_only(&self) -> BootDecision {
            let config = SentinelConfig {
                recurrence_deaths: 0,
                ..SentinelConfig::default()
            };
            decide(&self.events, self.now, &config)
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
                    deaths: 3,
                    rule: Rule::CrashLoop,
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
        assert_eq!(j.decide_loop_only(), BootDecision::Normal { deaths: 0 });
        // The recurrence rule still sees three deaths of 7 within 30 minutes.
        let d = j.decide();
        assert_eq!(d.code(), "last_known_good");
        assert_eq!(d.deaths(), 0);
        assert_eq!(d.poison()[0].rule, Rule::Recurrence);
    }

    #[test]
    fn the_window_edge_is_inclusive() {
        let mut j = Journal::default().dies_after(7).dies_after(7).dies_after(7);
        // The first death was detected at 5 s; now = 65 s is exactly 60 s later.
        j.now = 65 * SEC;
        assert_eq!(j.decide_loop_only().code(), "last_known_good");
        j.now = 65 * SEC + 1;
        assert_eq!(j.decide_loop_only().code(), "normal");
    }

    #[test]
    fn a_death_long_after_activation_is_not_blamed() {
        // Activated at 0, ran for 10 minutes, died; twice more the same way.
        let mut j = Journal::default();
        for _ in 0..3 {
            let t = j.now / SEC;
            j = j.boot().activate(7).at(t + 600);
        }
        assert_eq!(j.decide_loop_only(), BootDecision::Normal { deaths: 0 });
    }

    #[test]
    fn three_deaths_of_one_version_within_30_minutes_poison_it_at_any_uptime() {
        // Azure Front Door, 29 October 2025: the file kills the process 5 minutes after it
        // is loaded, every run.
        let mut j = Journal::default().boot().activate(6).clean();
        for _ in 0..3 {
            let t = j.now / SEC;
            j = j.boot().activate(7).at(t + 150).alive().at(t + 300);
        }
        let d = j.decide();
        assert_eq!(d.code(), "last_known_good");
        assert_eq!(d.deaths(), 0, "none is a crash loop");
        assert_eq!(
            d.poison(),
            [Suspect {
                version: 7,
                digest: digest(7),
                deaths: 3,
                rule: Rule::Recurrence
            }]
        );
        // Two deaths are not enough, nor three spread over more than 30 minutes.
        let mut two = Journal::default();
        for _ in 0..2 {
            let t = two.now / SEC;
            two = two.boot().activate(7).at(t + 300);
        }
        assert_eq!(two.decide().code(), "normal");
        let mut slow = Journal::default();
        for _ in 0..3 {
            let t = slow.now / SEC;
            slow = slow.boot().activate(7).at(t + 16 * 60);
        }
        assert_eq!(slow.decide().code(), "normal", "deaths 16 minutes apart");
    }

    #[test]
    fn recurrence_blames_the_version_active_at_each_death_only() {
        // 7 then 8 then 7: two deaths each at most.
        let mut j = Journal::default();
        for v in [7, 8, 7, 8] {
            let t = j.now / SEC;
            j = j.boot().activate(v).at(t + 300);
        }
        assert_eq!(j.decide().code(), "normal");
        let clean = Journal::default()
            .boot()
            .activate(7)
            .at(300)
            .clean()
            .boot()
            .activate(7)
            .at(600)
            .clean()
            .boot()
            .activate(7)
            .at(900)
            .clean();
        assert_eq!(
            clean.decide().code(),
            "normal",
            "clean exits are not deaths"
        );
    }

    #[test]
    fn deaths_carry_their_cause_uptime_and_time_on_version() {
        let j = Journal::default()
            .boot()
            .at(10)
            .activate(7)
            .at(70)
            .alive()
            .at(100)
            .panicked()
            .at(200)
            .boot()
            .at(201)
            .exited(2)
            .at(300)
            .boot()
            .at(301)
            .clean()
            .at(400)
            .boot()
            .activate(8)
            .at(500);
        let deaths = deaths(&j.events, j.now);
        assert_eq!(deaths.len(), 3, "{deaths:?}");
        assert_eq!(
            deaths[0],
            Death {
                detected_at_ms: 200 * SEC,
                boot_at_ms: 0,
                active: Some((7, digest(7))),
                active_for_ms: Some(90 * SEC),
                uptime_ms: 100 * SEC,
                cause: DeathCause::Panic,
            }
        );
        assert_eq!(deaths[1].cause, DeathCause::Exit { code: 2 });
        assert_eq!(deaths[1].active, None);
        assert_eq!(deaths[2].detected_at_ms, 500 * SEC, "the last run: now");
        assert_eq!(deaths[2].cause, DeathCause::Unknown);
        assert_eq!(deaths[2].active_for_ms, Some(0));
    }

    #[test]
    fn a_reported_death_is_not_extracted_again() {
        let mut j = Journal::default().dies_after(7).dies_after(7);
        let first = deaths(&j.events, j.now);
        assert_eq!(first.len(), 2);
        j.events.push(Event::DeathReported {
            at_ms: j.now,
            detected_at_ms: first[0].detected_at_ms,
        });
        let again: Vec<u64> = deaths(&j.events, j.now)
            .iter()
            .map(|d| d.detected_at_ms)
            .collect();
        assert_eq!(again, [first[1].detected_at_ms]);
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
            ..SentinelConfig::default()
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
