//! Counters of the request path, as atomics, rendered as Prometheus text on the admin path.
//!
//! The request path only does relaxed `fetch_add`s: no lock, no allocation. Everything that
//! costs (formatting, reading the store's status) happens when `/metrics` is scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use rampart_ingest::shard::{self, Padded, SHARDS};

/// Upper bounds (inclusive) of the score histogram's buckets. Scores are 1..=99, so the last
/// bucket is everything; 1 = surely automated, 99 = surely human.
pub const SCORE_BUCKETS: [u8; 10] = [9, 19, 29, 39, 49, 59, 69, 79, 89, 99];

/// Slots of the exact score histogram the edge agent reports in heartbeats: slot 0 counts
/// unscored requests, slot `s` counts score `s` (1 to 99).
pub const SCORE_SLOTS: usize = 100;

/// Why a request went to the origin (or was answered) without a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnscoredReason {
    /// The kill switch has the bot module off.
    Disabled,
    /// No model is active (nothing valid has arrived yet). Label `no_plan`, kept for dashboards.
    NoModel,
    /// The module failed on this request and the fail policy let it through.
    Failed,
}

/// How the bot module failed on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleFailure {
    /// It returned an error.
    Error,
    /// It panicked, and the panic was caught at the module boundary.
    Panic,
}

/// Every counter of the edge's request path, one copy per thread shard
/// ([`rampart_ingest::shard`]): a request bumps only its worker's copy, so workers never
/// share a cache line on the request path; readers add the copies up.
#[derive(Debug)]
pub struct Metrics {
    shards: Box<[Padded<Shard>; SHARDS]>,
}

/// One shard's counters.
#[derive(Debug, Default)]
struct Shard {
    /// Responses by status class: index 0 is 1xx … index 4 is 5xx.
    responses: [AtomicU64; 5],
    /// Origin refused, reset or otherwise failed: answered 502.
    origin_errors: AtomicU64,
    /// Origin sent no response head within the timeout: answered 504.
    origin_timeouts: AtomicU64,
    /// Requests refused with 400 as malformed (`proxy::conformance`).
    malformed: AtomicU64,
    module_errors: AtomicU64,
    module_panics: AtomicU64,
    /// Requests answered 403 by the `--block-below` rule.
    blocked: AtomicU64,
    /// Requests answered 503 because the module failed under `fail-policy closed`.
    failed_closed: AtomicU64,
    unscored_disabled: AtomicU64,
    unscored_no_plan: AtomicU64,
    unscored_failed: AtomicU64,
    /// Non-cumulative counts per [`SCORE_BUCKETS`] entry.
    score_buckets: [AtomicU64; SCORE_BUCKETS.len()],
    score_sum: AtomicU64,
    /// Every score exactly, and unscored, for the heartbeat's histogram.
    slots: ScoreSlots,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    /// Connections refused because their client address held its cap.
    refused_per_client: AtomicU64,
    /// Connections closed because no request head came within the header timeout.
    header_timeouts: AtomicU64,
    in_flight: AtomicU64,
}

/// The exact score histogram: [`SCORE_SLOTS`] counters, incremented with one relaxed add
/// per request (no lock, no allocation), read by the edge agent once per beat.
#[derive(Debug)]
struct ScoreSlots([AtomicU64; SCORE_SLOTS]);

/// The cumulative counts the edge agent turns into a heartbeat's deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Responses sent to clients.
    pub requests: u64,
    /// Of those, 5xx.
    pub errors_5xx: u64,
    /// Bot-module failures (errors and caught panics).
    pub module_errors: u64,
    /// Slot 0: unscored requests; slot `s`: requests scored `s`.
    pub scores: [u64; SCORE_SLOTS],
}

/// Counts one request in flight for as long as it lives (also when its future is dropped).
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

/// Adds `from` into `into` (both relaxed; wrapping, like the atomics themselves).
fn add_into(into: &AtomicU64, from: &AtomicU64) {
    into.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
}

// === impl ScoreSlots ===

impl Default for ScoreSlots {
    fn default() -> Self {
        ScoreSlots(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl ScoreSlots {
    fn add(&self, slot: usize) {
        if let Some(c) = self.0.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// === impl InFlight ===

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.local().in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl Shard ===

impl Shard {
    /// Adds every counter of `other` into this one.
    fn add(&self, other: &Shard) {
        for (a, b) in self.responses.iter().zip(&other.responses) {
            add_into(a, b);
        }
        for (a, b) in self.score_buckets.iter().zip(&other.score_buckets) {
            add_into(a, b);
        }
        for (a, b) in self.slots.0.iter().zip(&other.slots.0) {
            add_into(a, b);
        }
        for (a, b) in [
            (&self.origin_errors, &other.origin_errors),
            (&self.origin_timeouts, &other.origin_timeouts),
            (&self.malformed, &other.malformed),
            (&self.module_errors, &other.module_errors),
            (&self.module_panics, &other.module_panics),
            (&self.blocked, &other.blocked),
            (&self.failed_closed, &other.failed_closed),
            (&self.unscored_disabled, &other.unscored_disabled),
            (&self.unscored_no_plan, &other.unscored_no_plan),
            (&self.unscored_failed, &other.unscored_failed),
            (&self.score_sum, &other.score_sum),
            (&self.connections_open, &other.connections_open),
            (&self.connections_total, &other.connections_total),
            (&self.refused_per_client, &other.refused_per_client),
            (&self.header_timeouts, &other.header_timeouts),
            (&self.in_flight, &other.in_flight),
        ] {
            add_into(a, b);
        }
    }
}

// === impl Metrics ===

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: Box::new(std::array::from_fn(|_| Padded(Shard::default()))),
        }
    }
}

impl Metrics {
    /// This thread's shard.
    fn local(&self) -> &Shard {
        let [first, rest @ ..] = &*self.shards;
        match shard::current().checked_sub(1) {
            Some(i) => rest.get(i).map_or(&first.0, |p| &p.0),
            None => &first.0,
        }
    }

    /// Every shard added up, for reading.
    fn summed(&self) -> Shard {
        let total = Shard::default();
        for s in self.shards.iter() {
            total.add(&s.0);
        }
        total
    }

    /// Counts a response sent to a client.
    pub fn response(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(c) = self.local().responses.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a 502.
    pub fn origin_error(&self) {
        self.local().origin_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 504.
    pub fn origin_timeout(&self) {
        self.local().origin_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused with 400 as malformed.
    pub fn malformed(&self) {
        self.local().malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused because its client address held its cap.
    pub fn refused_per_client(&self) {
        self.local()
            .refused_per_client
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed for want of a request head in time.
    pub fn header_timeout(&self) {
        self.local().header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a module failure.
    pub fn module_failure(&self, failure: ModuleFailure) {
        let s = self.local();
        match failure {
            ModuleFailure::Error => &s.module_errors,
            ModuleFailure::Panic => &s.module_panics,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request blocked by the score rule.
    pub fn blocked(&self) {
        self.local().blocked.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused because the module failed under `fail-policy closed`.
    pub fn failed_closed(&self) {
        self.local().failed_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a scored request.
    pub fn score(&self, score: u8) {
        let i = SCORE_BUCKETS
            .iter()
            .position(|&le| score <= le)
            .unwrap_or(SCORE_BUCKETS.len().saturating_sub(1));
        let s = self.local();
        if let Some(b) = s.score_buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        s.score_sum.fetch_add(u64::from(score), Ordering::Relaxed);
        s.slots.add(usize::from(score.clamp(1, 99)));
    }

    /// Counts a request that went on without a score.
    pub fn unscored(&self, reason: UnscoredReason) {
        let s = self.local();
        match reason {
            UnscoredReason::Disabled => &s.unscored_disabled,
            UnscoredReason::NoModel => &s.unscored_no_plan,
            UnscoredReason::Failed => &s.unscored_failed,
        }
        .fetch_add(1, Ordering::Relaxed);
        s.slots.add(0);
    }

    /// Counts an accepted connection.
    pub fn connection_opened(&self) {
        let s = self.local();
        s.connections_open.fetch_add(1, Ordering::Relaxed);
        s.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a closed connection.
    pub fn connection_closed(&self) {
        self.local()
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Panics caught at the module boundary so far.
    pub fn panics_caught(&self) -> u64 {
        self.summed().module_panics.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.local().in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Requests being served now.
    pub fn requests_in_flight(&self) -> u64 {
        self.summed().in_flight.load(Ordering::Relaxed)
    }

    /// Client connections open now.
    pub fn connections_open(&self) -> u64 {
        self.summed().connections_open.load(Ordering::Relaxed)
    }

    /// Responses sent with a status in `class` (1 to 5) so far.
    pub fn responses_in_class(&self, class: u16) -> u64 {
        let t = self.summed();
        usize::from(class)
            .checked_sub(1)
            .and_then(|i| t.responses.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The cumulative counts since start, for the edge agent's heartbeat deltas.
    pub fn totals(&self) -> Totals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let t = self.summed();
        Totals {
            requests: t
                .responses
                .iter()
                .fold(0u64, |n, c| n.saturating_add(get(c))),
            errors_5xx: t.responses.get(4).map_or(0, get),
            module_errors: get(&t.module_errors).saturating_add(get(&t.module_panics)),
            scores: std::array::from_fn(|i| t.slots.0.get(i).map_or(0, get)),
        }
    }

    /// Appends the request-path metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let t = self.summed();
        family(
            out,
            "rampart_edge_requests_total",
            "counter",
            "Responses sent to clients, by status class.",
        );
        for (i, c) in t.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "rampart_edge_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                get(c)
            );
        }
        family(
            out,
            "rampart_edge_origin_errors_total",
            "counter",
            "Requests the origin failed: 502 (unreachable, reset) or 504 (no response head in time).",
        );
        let _ = writeln!(
            out,
            "rampart_edge_origin_errors_total{{status=\"502\"}} {}",
            get(&t.origin_errors)
        );
        let _ = writeln!(
            out,
            "rampart_edge_origin_errors_total{{status=\"504\"}} {}",
            get(&t.origin_timeouts)
        );
        family(
            out,
            "rampart_edge_malformed_requests_total",
            "counter",
            "Requests refused with 400 before reaching the origin: two Host headers, HTTP/1.1 without Host, an overlong method, a broken body framing.",
        );
        let _ = writeln!(
            out,
            "rampart_edge_malformed_requests_total {}",
            get(&t.malformed)
        );
        family(
            out,
            "rampart_edge_module_errors_total",
            "counter",
            "Bot module failures on a request, by kind (panics are caught at the module boundary).",
        );
        let _ = writeln!(
            out,
            "rampart_edge_module_errors_total{{kind=\"error\"}} {}",
            get(&t.module_errors)
        );
        let _ = writeln!(
            out,
            "rampart_edge_module_errors_total{{kind=\"panic\"}} {}",
            get(&t.module_panics)
        );
        family(
            out,
            "rampart_edge_module_panics_caught_total",
            "counter",
            "Panics of the bot module caught at its boundary.",
        );
        let _ = writeln!(
            out,
            "rampart_edge_module_panics_caught_total {}",
            get(&t.module_panics)
        );
        family(
            out,
            "rampart_edge_blocked_total",
            "counter",
            "Requests answered 403 by the block-below rule.",
        );
        let _ = writeln!(out, "rampart_edge_blocked_total {}", get(&t.blocked));
        family(
            out,
            "rampart_edge_failed_closed_total",
            "counter",
            "Requests answered 503 because the module failed under fail-policy closed.",
        );
        let _ = writeln!(
            out,
            "rampart_edge_failed_closed_total {}",
            get(&t.failed_closed)
        );
        family(
            out,
            "rampart_edge_unscored_total",
            "counter",
            "Requests without a score, by reason.",
        );
        for (reason, c) in [
            ("disabled", &t.unscored_disabled),
            ("no_plan", &t.unscored_no_plan),
            ("module_failed", &t.unscored_failed),
        ] {
            let _ = writeln!(
                out,
                "rampart_edge_unscored_total{{reason=\"{reason}\"}} {}",
                get(c)
            );
        }
        family(
            out,
            "rampart_edge_bot_score",
            "histogram",
            "Bot scores given (1 = surely automated, 99 = surely human).",
        );
        let mut cumulative = 0u64;
        for (le, c) in SCORE_BUCKETS.iter().zip(&t.score_buckets) {
            cumulative = cumulative.saturating_add(get(c));
            let _ = writeln!(
                out,
                "rampart_edge_bot_score_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "rampart_edge_bot_score_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(out, "rampart_edge_bot_score_sum {}", get(&t.score_sum));
        let _ = writeln!(out, "rampart_edge_bot_score_count {cumulative}");
        family(
            out,
            "rampart_edge_connections_open",
            "gauge",
            "Client connections open now.",
        );
        let _ = writeln!(
            out,
            "rampart_edge_connections_open {}",
            get(&t.connections_open)
        );
        family(
            out,
            "rampart_edge_requests_in_flight",
            "gauge",
            "Requests being served now.",
        );
        let _ = writeln!(out, "rampart_edge_requests_in_flight {}", get(&t.in_flight));
        family(
            out,
            "rampart_edge_connections_total",
            "counter",
            "Client connections accepted.",
        );
        let _ = writeln!(
            out,
            "rampart_edge_connections_total {}",
            get(&t.connections_total)
        );
        family(
            out,
            "rampart_edge_connections_closed_early_total",
            "counter",
            "Client connections refused or closed before a request: over the per-client cap (answered 429), or no request head within the header timeout.",
        );
        let _ = writeln!(
            out,
            "rampart_edge_connections_closed_early_total{{reason=\"per_client_cap\"}} {}",
            get(&t.refused_per_client)
        );
        let _ = writeln!(
            out,
            "rampart_edge_connections_closed_early_total{{reason=\"header_timeout\"}} {}",
            get(&t.header_timeouts)
        );
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(m: &Metrics) -> String {
        let mut s = String::new();
        m.render(&mut s);
        s
    }

    #[test]
    fn status_classes_are_counted_apart() {
        let m = Metrics::default();
        m.response(StatusCode::OK);
        m.response(StatusCode::OK);
        m.response(StatusCode::BAD_GATEWAY);
        let text = rendered(&m);
        assert!(text.contains("rampart_edge_requests_total{class=\"2xx\"} 2\n"));
        assert!(text.contains("rampart_edge_requests_total{class=\"5xx\"} 1\n"));
        assert!(text.contains("rampart_edge_requests_total{class=\"4xx\"} 0\n"));
        assert_eq!(m.responses_in_class(2), 2);
        assert_eq!(m.responses_in_class(0), 0);
        assert_eq!(m.responses_in_class(9), 0);
    }

    #[test]
    fn score_histogram_is_cumulative() {
        let m = Metrics::default();
        for s in [1, 9, 10, 50, 99] {
            m.score(s);
        }
        let text = rendered(&m);
        assert!(
            text.contains("rampart_edge_bot_score_bucket{le=\"9\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("rampart_edge_bot_score_bucket{le=\"19\"} 3\n"));
        assert!(text.contains("rampart_edge_bot_score_bucket{le=\"59\"} 4\n"));
        assert!(text.contains("rampart_edge_bot_score_bucket{le=\"+Inf\"} 5\n"));
        assert!(text.contains("rampart_edge_bot_score_sum 169\n"));
        assert!(text.contains("rampart_edge_bot_score_count 5\n"));
    }

    #[test]
    fn out_of_range_scores_land_in_the_last_bucket() {
        let m = Metrics::default();
        m.score(200);
        m.score(0);
        let text = rendered(&m);
        assert!(text.contains("rampart_edge_bot_score_bucket{le=\"9\"} 1\n"));
        assert!(text.contains("rampart_edge_bot_score_bucket{le=\"99\"} 2\n"));
    }

    #[test]
    fn totals_hold_every_score_exactly_and_unscored_in_slot_0() {
        let m = Metrics::default();
        for s in [1, 1, 50, 99, 0, 200] {
            m.score(s);
        }
        m.unscored(UnscoredReason::NoModel);
        m.unscored(UnscoredReason::Failed);
        m.response(StatusCode::OK);
        m.response(StatusCode::SERVICE_UNAVAILABLE);
        m.module_failure(ModuleFailure::Panic);
        m.module_failure(ModuleFailure::Error);
        let t = m.totals();
        assert_eq!(t.scores[0], 2);
        assert_eq!(t.scores[1], 3, "0 is clamped to 1");
        assert_eq!(t.scores[50], 1);
        assert_eq!(t.scores[99], 2, "200 is clamped to 99");
        assert_eq!(t.scores.iter().sum::<u64>(), 8);
        assert_eq!((t.requests, t.errors_5xx, t.module_errors), (2, 1, 2));
    }

    #[test]
    fn module_failures_and_unscored_reasons_are_separate() {
        let m = Metrics::default();
        m.module_failure(ModuleFailure::Panic);
        m.module_failure(ModuleFailure::Error);
        m.module_failure(ModuleFailure::Panic);
        m.unscored(UnscoredReason::Disabled);
        let text = rendered(&m);
        assert!(text.contains("rampart_edge_module_errors_total{kind=\"panic\"} 2\n"));
        assert!(text.contains("rampart_edge_module_errors_total{kind=\"error\"} 1\n"));
        assert!(text.contains("rampart_edge_module_panics_caught_total 2\n"));
        assert!(text.contains("rampart_edge_unscored_total{reason=\"disabled\"} 1\n"));
        assert!(text.contains("rampart_edge_unscored_total{reason=\"no_plan\"} 0\n"));
        assert_eq!(m.panics_caught(), 2);
    }
}
