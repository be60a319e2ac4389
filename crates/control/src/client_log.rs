//! The one gate for ERROR and WARN lines about failures a client can cause (a refused
//! enrollment, another node's credential, a store failure a request ran into): the first of
//! each kind is logged, repeats within [`CLIENT_LOG_INTERVAL_MS`] are counted, and the next
//! line of the kind says how many were not logged. Unauthenticated requests can be sent in a
//! loop; the log must not grow with them (the 18 November lesson: error reporting that eats
//! the machine). Built on [`rampart_host::limiter::LogLimiter`], the limiter ingestion uses.
//!
//! Process-wide, because a failure may be logged where no [`Service`](crate::Service) is at
//! hand (the conversion of a store error into an answer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

use rampart_host::limiter::{LogLimiter, Throttle};

/// At most one ERROR/WARN line per kind of client-caused failure in this interval; the rest
/// are counted, and the count goes in the next line of the kind and in `/v1/health`
/// (`log_suppressed`). Ten seconds keeps a flood to a handful of lines a minute while a new
/// kind of failure still shows at once.
pub const CLIENT_LOG_INTERVAL_MS: u64 = 10_000;

/// A rate-limited gate: a [`LogLimiter`] and the total it suppressed.
#[derive(Debug)]
pub struct ClientLog {
    limiter: Mutex<LogLimiter>,
    suppressed: AtomicU64,
}

static GLOBAL: LazyLock<ClientLog> = LazyLock::new(|| ClientLog::new(CLIENT_LOG_INTERVAL_MS));

/// `Some(repeats not logged since the last line of this kind)` when a line about `kind` may
/// be logged now, from the process-wide gate; `None` when it is only counted.
pub fn admit(kind: &str) -> Option<u64> {
    GLOBAL.admit(kind, rampart_host::clock::now_ms())
}

/// Lines not logged by the process-wide gate since start.
pub fn suppressed() -> u64 {
    GLOBAL.suppressed()
}

// === impl ClientLog ===

impl ClientLog {
    /// A gate that lets one line per kind through per `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        ClientLog {
            limiter: Mutex::new(LogLimiter::new(interval_ms)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// One occurrence of `kind` at `now_ms`: `Some(repeats not logged before it)` to log it,
    /// `None` to only count it.
    pub fn admit(&self, kind: &str, now_ms: u64) -> Option<u64> {
        // The limiter's state stays consistent under a panic elsewhere: keep using it.
        let verdict = self
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(kind, now_ms);
        match verdict {
            Throttle::Log { suppressed } => Some(suppressed),
            Throttle::Suppress => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Occurrences not logged since start.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_one_kind_is_one_line_per_interval_with_the_count() {
        let gate = ClientLog::new(CLIENT_LOG_INTERVAL_MS);
        let t0 = 1_000_000;
        assert_eq!(gate.admit("enroll.refused", t0), Some(0));
        for i in 1..=999 {
            assert_eq!(gate.admit("enroll.refused", t0 + i), None);
        }
        assert_eq!(gate.suppressed(), 999);
        // Another kind is not held back by the flood.
        assert_eq!(gate.admit("store", t0 + 1_000), Some(0));
        // After the interval, one line again, carrying the count.
        assert_eq!(
            gate.admit("enroll.refused", t0 + CLIENT_LOG_INTERVAL_MS),
            Some(999)
        );
        assert_eq!(
            gate.admit("enroll.refused", t0 + CLIENT_LOG_INTERVAL_MS + 1),
            None
        );
        assert_eq!(gate.suppressed(), 1_000);
    }

    #[test]
    fn the_process_wide_gate_counts_what_it_holds_back() {
        let kind = "test.the_process_wide_gate";
        let before = suppressed();
        assert!(admit(kind).is_some());
        assert!(admit(kind).is_none());
        assert!(suppressed() > before);
    }
}
