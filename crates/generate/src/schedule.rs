//! `--every`: the generator on a cadence. Each run stands alone (it reads what it needs from
//! the state dir); a failed or held run is logged and counted and publishes nothing; the loop
//! stops on SIGINT or SIGTERM (checked every [`STOP_POLL`]) or after `--max-runs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::job::{Job, Outcome};

/// Shortest interval accepted: a feature file every second is already a storm.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// How often a sleeping schedule checks for a stop signal.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// What a schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs made.
    pub runs: u64,
    /// Runs that published.
    pub published: u64,
    /// Runs with nothing new.
    pub unchanged: u64,
    /// Runs a guard held.
    pub held: u64,
    /// Runs that failed (source, state, output).
    pub failed: u64,
}

/// An interval that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad interval {given:?}: {why}")]
pub struct IntervalError {
    /// The value given.
    pub given: String,
    /// What is wrong.
    pub why: String,
}

/// Parses `90s`, `5m`, `1h` (a whole number and a unit) into a duration between
/// [`MIN_INTERVAL`] and [`MAX_INTERVAL`].
pub fn parse_interval(given: &str) -> Result<Duration, IntervalError> {
    let err = |why: &str| IntervalError {
        given: given.to_owned(),
        why: why.to_owned(),
    };
    let s = given.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| err("needs a unit: s, m or h"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| err("needs a whole number"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(|| err("unit must be s, m or h"))?;
    let d = Duration::from_secs(secs);
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&d) {
        return Err(err("must be between 1s and 24h"));
    }
    Ok(d)
}

/// A flag set by SIGINT and SIGTERM.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Runs `job` every `every` (on a fixed cadence; a run that overruns skips the ticks it
/// missed) until `stop` is set or `max_runs` runs were made. `--approve-delta` and
/// `--unfreeze` apply to the first run only: an approval is for one change, not a standing
/// permission.
pub fn run_every(
    job: &mut Job,
    every: Duration,
    max_runs: Option<u64>,
    stop: &AtomicBool,
    clock: &mut dyn FnMut() -> OffsetDateTime,
    log: &mut dyn FnMut(String),
) -> Summary {
    let mut summary = Summary::default();
    let start = Instant::now();
    let mut tick: u32 = 0;
    while !stop.load(Ordering::Relaxed) && max_runs.is_none_or(|m| summary.runs < m) {
        summary.runs += 1;
        match job.run_once(clock()) {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Published { .. } => summary.published += 1,
                    Outcome::Unchanged { .. } => summary.unchanged += 1,
                    Outcome::Held { .. } => summary.held += 1,
                }
                log(format!("run {}: {outcome}", summary.runs));
            }
            Err(e) => {
                summary.failed += 1;
                log(format!("run {}: failed: {e}", summary.runs));
            }
        }
        job.approve_delta = false;
        job.approve_shadow = false;
        job.unfreeze = false;
        if max_runs.is_some_and(|m| summary.runs >= m) {
            break;
        }
        // The next tick after now, on the cadence set by the start.
        let elapsed = start.elapsed();
        let period = every.as_nanos().max(1);
        let next_tick = u32::try_from(elapsed.as_nanos() / period + 1).unwrap_or(u32::MAX);
        tick = next_tick.max(tick + 1);
        let due = every.saturating_mul(tick);
        while !stop.load(Ordering::Relaxed) {
            let now = start.elapsed();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(STOP_POLL));
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Output;
    use crate::source::{CatalogSource, Source};

    #[test]
    fn sigterm_and_sigint_set_the_stop_flag_instead_of_killing() {
        let stop = stop_on_signals().unwrap();
        assert!(!stop.load(Ordering::Relaxed));
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        assert!(stop.load(Ordering::Relaxed));
        stop.store(false, Ordering::Relaxed);
        signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
        assert!(stop.load(Ordering::Relaxed));
    }

    #[test]
    fn intervals_parse_within_bounds() {
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "5",
            "m",
            "0s",
            "25h",
            "5 m",
            "1.5m",
            "-1m",
            "5d",
            "99999999999999999999h",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    fn job(dir: &std::path::Path, source: Source) -> Job {
        Job {
            source,
            contracts: vec![rampart_score::edge_contract()],
            key: rampart_artifact::SecretKey::from_seed([3; 32]),
            state_dir: dir.join("state"),
            output: Output::File(dir.join("out.json")),
            approve_delta: true,
            unfreeze: true,
            output_check: None,
            approve_shadow: false,
        }
    }

    #[test]
    fn runs_on_a_cadence_counts_outcomes_and_stops_at_max_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = job(tmp.path(), Source::Catalog(CatalogSource::Embedded));
        let stop = AtomicBool::new(false);
        let mut lines = Vec::new();
        let started = Instant::now();
        let s = run_every(
            &mut j,
            Duration::from_secs(1),
            Some(3),
            &stop,
            &mut OffsetDateTime::now_utc,
            &mut |l| lines.push(l),
        );
        assert_eq!(
            s,
            Summary {
                runs: 3,
                published: 1,
                unchanged: 2,
                held: 0,
                failed: 0
            }
        );
        // Three runs on a 1 s cadence span two intervals.
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(lines[0].contains("published version 1"), "{lines:?}");
        assert!(!j.approve_delta && !j.unfreeze, "one-shot flags are spent");
    }

    #[test]
    fn failures_are_counted_and_a_stop_flag_ends_the_loop() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = Source::Catalog(CatalogSource::File(tmp.path().join("none.json")));
        let mut j = job(tmp.path(), missing);
        let stop = AtomicBool::new(false);
        let mut lines = Vec::new();
        let mut runs = 0;
        let mut clock = || {
            runs += 1;
            if runs == 2 {
                stop.store(true, Ordering::Relaxed);
            }
            OffsetDateTime::now_utc()
        };
        let s = run_every(
            &mut j,
            Duration::from_secs(1),
            None,
            &stop,
            &mut clock,
            &mut |l| lines.push(l),
        );
        assert_eq!((s.runs, s.failed), (2, 2));
        assert!(lines.iter().all(|l| l.contains("failed")), "{lines:?}");
        assert!(!tmp.path().join("out.json").exists());
    }
}
