//! The soak a version serves before it is trusted as last-known-good.
//!
//! The request path only bumps two atomics (`Meter`); the decision (`Soak::due`) runs
//! once a second on the edge's tick, under the writer lock.

use rampart_artifact::Digest;
use serde::Serialize;

use crate::config::SoakConfig;
use crate::shard::ShardedCounter;

/// Requests and module errors since the active version was swapped in.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    requests: ShardedCounter,
    errors: ShardedCounter,
}

/// The soak of the active version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Soak {
    /// The version soaking.
    pub version: u64,
    /// Its digest.
    #[serde(skip)]
    pub digest: Digest,
    /// When the soak (re)started, ms since the Unix epoch: at activation, or at the last
    /// module error.
    pub started_ms: u64,
    /// Requests served since then.
    pub requests: u64,
    /// Whether it is written as last-known-good (or was loaded from it).
    pub done: bool,
    /// The meter's request count when the soak (re)started.
    #[serde(skip)]
    base: u64,
}

// === impl Meter ===

impl Meter {
    /// One request served; `module_error` when the module failed on it. Relaxed adds on
    /// this thread's shard.
    pub(crate) fn record(&self, module_error: bool) {
        self.requests.add(1);
        if module_error {
            self.errors.add(1);
        }
    }

    /// Starts counting for a new version.
    pub(crate) fn reset(&self) {
        self.requests.reset();
        self.errors.reset();
    }

    /// Requests so far, and the errors since the last call.
    pub(crate) fn take(&self) -> (u64, u64) {
        let errors = self.errors.take();
        (self.requests.sum(), errors)
    }
}

// === impl Soak ===

impl Soak {
    /// A soak starting at `now_ms`; `done` when the version is already last-known-good.
    pub(crate) fn start(version: u64, digest: Digest, now_ms: u64, done: bool) -> Self {
        Soak {
            version,
            digest,
            started_ms: now_ms,
            requests: 0,
            done,
            base: 0,
        }
    }

    /// Whether the version has now served its soak: `requests` is the meter's count since
    /// activation, `errors` the module errors since the last tick (any restarts the soak).
    pub(crate) fn due(
        &mut self,
        now_ms: u64,
        requests: u64,
        errors: u64,
        config: &SoakConfig,
    ) -> bool {
        if self.done {
            return false;
        }
        if errors > 0 {
            self.started_ms = now_ms;
            self.base = requests;
            self.requests = 0;
            return false;
        }
        self.requests = requests.saturating_sub(self.base);
        let served_ms = now_ms.saturating_sub(self.started_ms);
        served_ms >= config.secs.saturating_mul(1000) && self.requests >= config.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: SoakConfig = SoakConfig {
        secs: 60,
        requests: 100,
    };

    fn soak() -> Soak {
        Soak::start(2, Digest::of(b"2"), 0, false)
    }

    #[test]
    fn both_time_and_requests_are_needed() {
        let mut s = soak();
        assert!(!s.due(59_999, 1_000, 0, &CFG));
        assert!(!s.due(120_000, 99, 0, &CFG));
        assert!(s.due(60_000, 100, 0, &CFG));
    }

    #[test]
    fn a_module_error_restarts_the_soak() {
        let mut s = soak();
        assert!(!s.due(50_000, 500, 1, &CFG));
        // 60 s after the start but only 10 s after the error.
        assert!(!s.due(60_000, 1_000, 0, &CFG));
        assert_eq!(s.requests, 500);
        assert!(!s.due(110_000, 550, 0, &CFG));
        assert!(s.due(110_000, 600, 0, &CFG));
    }

    #[test]
    fn a_done_soak_is_never_due_again() {
        let mut s = Soak::start(2, Digest::of(b"2"), 0, true);
        assert!(!s.due(u64::MAX, u64::MAX, 0, &CFG));
    }

    #[test]
    fn the_meter_counts_and_hands_errors_over_once() {
        let m = Meter::default();
        m.record(false);
        m.record(true);
        assert_eq!(m.take(), (2, 1));
        assert_eq!(m.take(), (2, 0));
        m.reset();
        assert_eq!(m.take(), (0, 0));
    }
}
