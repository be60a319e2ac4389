//! Rate-limited logging: a flood of one failure is one line, then one summary per interval.
//!
//! On 18 November the systems that enriched and reported the flood of errors ate the CPU
//! the proxy needed. Here the first occurrence of a kind of failure is logged; repeats within
//! the interval are only counted, and when the interval is over one line says how many there
//! were. Memory is bounded: at most [`MAX_LOG_KINDS`] kinds are tracked, and kinds past that
//! share one `other` entry.

use std::collections::HashMap;

/// Default interval in which repeats of one kind are counted, not logged.
pub const DEFAULT_LOG_INTERVAL_MS: u64 = 10_000;

/// Most kinds tracked at once, the shared [`OVERFLOW_KIND`] included (a kind is a short code
/// like `invalid:too_many_features`).
pub const MAX_LOG_KINDS: usize = 64;

/// Longest kind kept; a longer one is cut (kinds are codes, never untrusted text).
pub const MAX_KIND_LEN: usize = 96;

/// The kind that collects occurrences once [`MAX_LOG_KINDS`] kinds are tracked.
pub const OVERFLOW_KIND: &str = "other";

/// Decides which occurrences of failures are logged.
#[derive(Debug)]
pub struct LogLimiter {
    interval_ms: u64,
    kinds: HashMap<String, Window>,
}

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Log it. `suppressed` repeats of its kind went unlogged before it and were not yet
    /// summarised (a window that ended without a [`LogLimiter::flush`]): say so in the line.
    Log {
        /// Repeats counted but not logged since the last line of this kind.
        suppressed: u64,
    },
    /// Count it, do not log it.
    Suppress,
}

/// One summary line: `suppressed` occurrences of `kind` in the last `interval_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The kind.
    pub kind: String,
    /// Occurrences not logged.
    pub suppressed: u64,
    /// How long they were counted for, in ms.
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started_ms: u64,
    suppressed: u64,
}

// === impl LogLimiter ===

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_INTERVAL_MS)
    }
}

impl LogLimiter {
    /// A limiter that logs each kind at most once per `interval_ms` (plus its summary).
    pub fn new(interval_ms: u64) -> Self {
        LogLimiter {
            interval_ms,
            kinds: HashMap::new(),
        }
    }

    /// Records one occurrence of `kind` at `now_ms`.
    pub fn observe(&mut self, kind: &str, now_ms: u64) -> Throttle {
        let kind = cut(kind);
        // One slot stays for the overflow entry.
        let room = MAX_LOG_KINDS.saturating_sub(1);
        if !self.kinds.contains_key(kind) && self.kinds.len() >= room {
            self.evict(now_ms);
        }
        let key = if self.kinds.contains_key(kind) || self.kinds.len() < room {
            kind
        } else {
            OVERFLOW_KIND
        };
        match self.kinds.get_mut(key) {
            Some(w) if now_ms.saturating_sub(w.started_ms) < self.interval_ms => {
                w.suppressed = w.suppressed.saturating_add(1);
                Throttle::Suppress
            }
            Some(w) => {
                let suppressed = w.suppressed;
                *w = Window {
                    started_ms: now_ms,
                    suppressed: 0,
                };
                Throttle::Log { suppressed }
            }
            None => {
                self.kinds.insert(
                    key.to_owned(),
                    Window {
                        started_ms: now_ms,
                        suppressed: 0,
                    },
                );
                Throttle::Log { suppressed: 0 }
            }
        }
    }

    /// Ends the windows that are over: returns one summary per kind that had repeats, and
    /// forgets the kinds that had none (their next occurrence is logged as new).
    pub fn flush(&mut self, now_ms: u64) -> Vec<Summary> {
        let interval = self.interval_ms;
        let mut out = Vec::new();
        self.kinds.retain(|kind, w| {
            let elapsed = now_ms.saturating_sub(w.started_ms);
            if elapsed < interval {
                return true;
            }
            if w.suppressed > 0 {
                out.push(Summary {
                    kind: kind.clone(),
                    suppressed: w.suppressed,
                    interval_ms: elapsed,
                });
            }
            false
        });
        out.sort_by(|a, b| a.kind.cmp(&b.kind));
        out
    }

    /// Kinds tracked now.
    pub fn tracked(&self) -> usize {
        self.kinds.len()
    }

    /// Drops windows that are over and had no repeats (nothing to summarise is lost).
    fn evict(&mut self, now_ms: u64) {
        let interval = self.interval_ms;
        self.kinds
            .retain(|_, w| w.suppressed > 0 || now_ms.saturating_sub(w.started_ms) < interval);
    }
}

fn cut(kind: &str) -> &str {
    if kind.len() <= MAX_KIND_LEN {
        return kind;
    }
    let mut end = MAX_KIND_LEN;
    while !kind.is_char_boundary(end) {
        end -= 1;
    }
    kind.get(..end).unwrap_or(OVERFLOW_KIND)
}

// === impl Summary ===

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} more like this ({}) in the last {} s",
            self.suppressed,
            self.kind,
            self.interval_ms.div_ceil(1000)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_logged_and_repeats_are_counted() {
        let mut l = LogLimiter::new(10_000);
        assert_eq!(l.observe("a", 0), Throttle::Log { suppressed: 0 });
        for t in 1..=511 {
            assert_eq!(l.observe("a", t), Throttle::Suppress);
        }
        assert_eq!(l.observe("b", 0), Throttle::Log { suppressed: 0 });
        assert!(l.flush(9_999).is_empty());
        let summaries = l.flush(10_000);
        assert_eq!(
            summaries,
            [Summary {
                kind: "a".into(),
                suppressed: 511,
                interval_ms: 10_000
            }]
        );
        assert_eq!(
            summaries[0].to_string(),
            "511 more like this (a) in the last 10 s"
        );
        // Both windows are over: both kinds are new again.
        assert_eq!(l.tracked(), 0);
        assert_eq!(l.observe("a", 10_001), Throttle::Log { suppressed: 0 });
    }

    #[test]
    fn without_a_flush_the_next_line_carries_the_count() {
        let mut l = LogLimiter::new(100);
        l.observe("a", 0);
        l.observe("a", 1);
        l.observe("a", 2);
        assert_eq!(l.observe("a", 150), Throttle::Log { suppressed: 2 });
    }

    #[test]
    fn a_flood_of_ten_thousand_is_a_handful_of_lines() {
        let mut l = LogLimiter::new(10_000);
        let mut lines = 0;
        // 10,000 occurrences over 20 s, flushed every second as the edge's tick does.
        for i in 0..10_000u64 {
            let now = i * 2;
            if matches!(
                l.observe("invalid:too_many_features", now),
                Throttle::Log { .. }
            ) {
                lines += 1;
            }
            if now % 1000 == 0 {
                lines += l.flush(now).len();
            }
        }
        lines += l.flush(30_000).len();
        assert!(lines <= 6, "{lines}");
        assert!(lines >= 2, "{lines}");
    }

    #[test]
    fn memory_is_bounded_by_the_number_of_kinds() {
        let mut l = LogLimiter::new(10_000);
        for i in 0..10_000 {
            l.observe(&format!("kind-{i}"), 0);
        }
        assert!(l.tracked() <= MAX_LOG_KINDS);
        // Kinds past the bound share one entry: logged once, then counted.
        assert_eq!(l.observe("yet-another", 1), Throttle::Suppress);
        let other = l.flush(10_000);
        assert!(other.iter().any(|s| s.kind == OVERFLOW_KIND));
    }

    #[test]
    fn quiet_kinds_are_evicted_to_make_room() {
        let mut l = LogLimiter::new(100);
        for i in 0..MAX_LOG_KINDS {
            l.observe(&format!("k{i}"), 0);
        }
        // All windows are over and had no repeats: a new kind gets its own entry.
        assert_eq!(l.observe("fresh", 200), Throttle::Log { suppressed: 0 });
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn long_kinds_are_cut() {
        let mut l = LogLimiter::new(100);
        let long = "é".repeat(200);
        l.observe(&long, 0);
        let s = l.observe(&long, 1);
        assert_eq!(s, Throttle::Suppress);
        let summary = l.flush(1_000);
        assert!(summary[0].kind.len() <= MAX_KIND_LEN);
    }
}
