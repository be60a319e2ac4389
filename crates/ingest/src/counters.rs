//! Counters for `/metrics`: atomics written by the store, read as plain numbers.

use std::sync::atomic::{AtomicU64, Ordering};

use rampart_artifact::Issue;
use serde::Serialize;

use crate::outcome::{ApplyOutcome, Rejection};
use crate::shard::ShardedCounter;

/// Monotonic counters. Relaxed atomics: each is an independent count, read for metrics.
#[derive(Debug)]
pub struct ApplyCounters {
    applied: AtomicU64,
    unchanged: AtomicU64,
    rejected: AtomicU64,
    /// Indexed like [`Rejection::CODES`].
    rejections: Box<[AtomicU64]>,
    /// Indexed like [`Issue::CODES`]; one count per issue reported.
    issues: Box<[AtomicU64]>,
    requests: ShardedCounter,
    module_errors: ShardedCounter,
    lkg_writes: AtomicU64,
    disk_errors: AtomicU64,
    log_lines: AtomicU64,
    log_suppressed: AtomicU64,
    poisoned: AtomicU64,
    lkg_unblessed: AtomicU64,
    deaths_found: AtomicU64,
    deaths_reported: AtomicU64,
    deaths_dropped: AtomicU64,
}

/// The counters as plain numbers, for the edge to render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// Files applied (swapped in).
    pub applied: u64,
    /// Files that were the one already serving.
    pub unchanged: u64,
    /// Files refused.
    pub rejected: u64,
    /// Refusals by [`Rejection::code`], every code listed.
    pub rejections: Vec<CodeCount>,
    /// Issues reported in refused files by artifact issue code, every code listed.
    pub issues: Vec<CodeCount>,
    /// Requests recorded by [`crate::Reader::record_request`].
    pub requests: u64,
    /// Of those, requests whose module call failed (error or panic caught).
    pub module_errors: u64,
    /// Last-known-good files written.
    pub lkg_writes: u64,
    /// Failed writes or reads in the data dir (the store keeps serving from memory).
    pub disk_errors: u64,
    /// Log lines the store emitted for failures (rate-limited).
    pub log_lines: u64,
    /// Failures counted but not logged because of the rate limit.
    pub log_suppressed: u64,
    /// Versions poisoned by the sentinel (at boot).
    pub poisoned: u64,
    /// Last-known-good versions removed because the control plane no longer blesses them.
    pub lkg_unblessed: u64,
    /// Deaths of earlier runs found in the boot journal, not yet reported at boot.
    pub deaths_found: u64,
    /// Deaths the control plane acknowledged (it answered a beat carrying them).
    pub deaths_reported: u64,
    /// Deaths dropped unreported because the queue was full
    /// ([`MAX_PENDING_DEATHS`](crate::config::MAX_PENDING_DEATHS)).
    pub deaths_dropped: u64,
}

/// One labelled count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeCount {
    /// The code (a metrics label value).
    pub code: &'static str,
    /// Its count.
    pub count: u64,
}

// === impl ApplyCounters ===

impl Default for ApplyCounters {
    fn default() -> Self {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        ApplyCounters {
            applied: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            rejections: zeros(Rejection::CODES.len()),
            issues: zeros(Issue::CODES.len()),
            requests: ShardedCounter::default(),
            module_errors: ShardedCounter::default(),
            lkg_writes: AtomicU64::new(0),
            disk_errors: AtomicU64::new(0),
            log_lines: AtomicU64::new(0),
            log_suppressed: AtomicU64::new(0),
            poisoned: AtomicU64::new(0),
            lkg_unblessed: AtomicU64::new(0),
            deaths_found: AtomicU64::new(0),
            deaths_reported: AtomicU64::new(0),
            deaths_dropped: AtomicU64::new(0),
        }
    }
}

impl ApplyCounters {
    /// Counts an apply outcome, with its rejection code and issue codes.
    pub(crate) fn outcome(&self, outcome: &ApplyOutcome) {
        match outcome {
            ApplyOutcome::Applied { .. } => bump(&self.applied),
            ApplyOutcome::Unchanged { .. } => bump(&self.unchanged),
            ApplyOutcome::Rejected { rejection, .. } => self.rejected(rejection),
        }
    }

    /// Counts a refusal, with its code and issue codes.
    pub(crate) fn rejected(&self, rejection: &Rejection) {
        bump(&self.rejected);
        bump_code(&self.rejections, Rejection::CODES, rejection.code());
        for issue in rejection.issues() {
            bump_code(&self.issues, Issue::CODES, issue.code());
        }
    }

    pub(crate) fn request(&self, module_error: bool) {
        // Every request: on this thread's shard, so workers do not share a cache line.
        self.requests.add(1);
        if module_error {
            self.module_errors.add(1);
        }
    }

    pub(crate) fn lkg_write(&self) {
        bump(&self.lkg_writes);
    }

    pub(crate) fn disk_error(&self) {
        bump(&self.disk_errors);
    }

    pub(crate) fn log_line(&self) {
        bump(&self.log_lines);
    }

    pub(crate) fn log_suppressed(&self) {
        bump(&self.log_suppressed);
    }

    pub(crate) fn poisoned(&self) {
        bump(&self.poisoned);
    }

    pub(crate) fn lkg_unblessed(&self) {
        bump(&self.lkg_unblessed);
    }

    pub(crate) fn deaths(&self, found: u64, dropped: u64) {
        self.deaths_found.fetch_add(found, Ordering::Relaxed);
        self.deaths_dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    pub(crate) fn death_reported(&self) {
        bump(&self.deaths_reported);
    }

    /// Reads every counter.
    pub fn read(&self) -> Metrics {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let list = |codes: &'static [&'static str], counts: &[AtomicU64]| {
            codes
                .iter()
                .zip(counts)
                .map(|(code, n)| CodeCount {
                    code,
                    count: get(n),
                })
                .collect()
        };
        Metrics {
            applied: get(&self.applied),
            unchanged: get(&self.unchanged),
            rejected: get(&self.rejected),
            rejections: list(Rejection::CODES, &self.rejections),
            issues: list(Issue::CODES, &self.issues),
            requests: self.requests.sum(),
            module_errors: self.module_errors.sum(),
            lkg_writes: get(&self.lkg_writes),
            disk_errors: get(&self.disk_errors),
            log_lines: get(&self.log_lines),
            log_suppressed: get(&self.log_suppressed),
            poisoned: get(&self.poisoned),
            lkg_unblessed: get(&self.lkg_unblessed),
            deaths_found: get(&self.deaths_found),
            deaths_reported: get(&self.deaths_reported),
            deaths_dropped: get(&self.deaths_dropped),
        }
    }
}

// === impl Metrics ===

impl Metrics {
    /// The count of rejection `code` (0 for an unknown code).
    pub fn rejections_of(&self, code: &str) -> u64 {
        find(&self.rejections, code)
    }

    /// The count of artifact issue `code` (0 for an unknown code).
    pub fn issues_of(&self, code: &str) -> u64 {
        find(&self.issues, code)
    }
}

fn find(list: &[CodeCount], code: &str) -> u64 {
    list.iter().find(|c| c.code == code).map_or(0, |c| c.count)
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn bump_code(counts: &[AtomicU64], codes: &[&str], code: &str) {
    if let Some(n) = codes
        .iter()
        .position(|c| *c == code)
        .and_then(|i| counts.get(i))
    {
        bump(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_artifact::Digest;

    #[test]
    fn outcomes_are_counted_by_code_and_issue() {
        let c = ApplyCounters::default();
        c.outcome(&ApplyOutcome::Applied {
            version: 1,
            digest: Digest::of(b""),
        });
        c.outcome(&ApplyOutcome::Rejected {
            kept: None,
            rejection: Rejection::Invalid(vec![
                Issue::TooManyFeatures {
                    count: 240,
                    limit: 200,
                },
                Issue::Empty,
                Issue::Empty,
            ]),
        });
        c.outcome(&ApplyOutcome::Rejected {
            kept: None,
            rejection: Rejection::Poisoned { version: 2 },
        });
        c.request(false);
        c.request(true);
        let m = c.read();
        assert_eq!((m.applied, m.unchanged, m.rejected), (1, 0, 2));
        assert_eq!(m.rejections_of("invalid"), 1);
        assert_eq!(m.rejections_of("poisoned"), 1);
        assert_eq!(m.rejections_of("pinned"), 0);
        assert_eq!(m.issues_of("too_many_features"), 1);
        assert_eq!(m.issues_of("empty"), 2);
        assert_eq!((m.requests, m.module_errors), (2, 1));
        assert_eq!(m.rejections.len(), Rejection::CODES.len());
        assert_eq!(m.issues.len(), Issue::CODES.len());
    }
}
