//! The API's connections: their caps and timeouts as the running server applies them, what
//! `/v1/health` shows about them, and the fleet-first rule near the cap.
//!
//! # Heartbeats first near the cap
//! The connection cap ([`ConnLimits::effective_cap`]) is what keeps the process inside its
//! descriptor budget; the fleet must not be locked out of it by operators' tools, a
//! dashboard left open, or a client that opens connections in a loop. From
//! [`HIGH_WATER_PERCENT`](crate::config::HIGH_WATER_PERCENT) of the cap on ("shedding"), two things change, both checked per
//! request against the open count (one atomic load):
//! - requests other than fleet traffic (node registration `POST /v1/nodes`, enrollment,
//!   heartbeats, `GET /v1/health`) are answered 503 `unavailable` with `retry-after`
//!   (counted as `shed`);
//! - every response, fleet traffic included, carries `connection: close`, so keep-alive
//!   connections are given back after their request instead of idling in a slot.
//!
//! Slow clients that never send a request head are not helped by either: the header
//! timeout closes them, and the per-client cap keeps one address from holding more than its
//! share meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use rampart_api::routes;
use rampart_serve::ConnStats;
use serde::Serialize;

use crate::config::ConnLimits;

/// The running server's connection settings and counters. See the module docs.
#[derive(Debug)]
pub struct Connections {
    stats: Arc<ConnStats>,
    limits: ConnLimits,
    cap: usize,
    high_water: usize,
    shed: AtomicU64,
}

/// What `/v1/health` says about connections (`connections`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionsReport {
    /// Connections open now.
    pub open: u64,
    /// The connection cap in force (the configured one, lowered to the descriptor budget).
    pub cap: u64,
    /// Open connections from which non-fleet requests are shed.
    pub high_water: u64,
    /// Connections one client address may hold (0: no cap).
    pub per_client_cap: u64,
    /// The header timeout, ms.
    pub header_timeout_ms: u64,
    /// The idle timeout, ms.
    pub idle_timeout_ms: u64,
    /// Connections admitted since start.
    pub accepted: u64,
    /// Connections refused with 503 at the cap.
    pub refused_over_cap: u64,
    /// Connections refused with 429 at the per-client cap.
    pub refused_per_client: u64,
    /// Connections closed without a complete request head within the header timeout.
    pub closed_header_timeout: u64,
    /// Keep-alive connections closed after the idle timeout.
    pub closed_idle: u64,
    /// Requests answered 503 above the high-water mark because they were not fleet traffic.
    pub shed: u64,
}

// === impl Connections ===

impl Connections {
    /// The settings `limits` applied with the connection cap `cap`, counting into `stats`.
    pub fn new(limits: ConnLimits, cap: usize, stats: Arc<ConnStats>) -> Arc<Self> {
        Arc::new(Connections {
            stats,
            limits,
            cap,
            high_water: ConnLimits::high_water(cap),
            shed: AtomicU64::new(0),
        })
    }

    /// Whether the open connections are at or above the high-water mark.
    pub fn shedding(&self) -> bool {
        self.stats.open() >= self.high_water as u64
    }

    /// Counts a shed request.
    pub fn count_shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters and settings now.
    pub fn report(&self) -> ConnectionsReport {
        let c = self.stats.counts();
        ConnectionsReport {
            open: c.open,
            cap: self.cap as u64,
            high_water: self.high_water as u64,
            per_client_cap: self.limits.max_connections_per_client as u64,
            header_timeout_ms: self.limits.header_timeout_ms,
            idle_timeout_ms: self.limits.idle_timeout_ms,
            accepted: c.accepted,
            refused_over_cap: c.refused_over_cap,
            refused_per_client: c.refused_per_client,
            closed_header_timeout: c.closed_header_timeout,
            closed_idle: c.closed_idle,
            shed: self.shed.load(Ordering::Relaxed),
        }
    }
}

/// Whether a request is fleet traffic, served even above the high-water mark: node
/// registration, enrollment, heartbeats, and `/v1/health`.
pub fn is_fleet(method: &Method, path: &str) -> bool {
    if *method == Method::GET {
        return path == routes::HEALTH;
    }
    if *method != Method::POST {
        return false;
    }
    if path == routes::NODES {
        return true;
    }
    let Some(rest) = path.strip_prefix("/v1/nodes/") else {
        return false;
    };
    match rest.split_once('/') {
        Some((node, tail)) => !node.is_empty() && (tail == "heartbeat" || tail == "enroll"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_traffic_is_registration_enrollment_heartbeats_and_health() {
        assert!(is_fleet(&Method::POST, "/v1/nodes/edge-1/heartbeat"));
        assert!(is_fleet(&Method::POST, "/v1/nodes/edge-1/enroll"));
        assert!(is_fleet(&Method::POST, "/v1/nodes"));
        assert!(is_fleet(&Method::GET, "/v1/health"));
        assert!(!is_fleet(&Method::GET, "/v1/nodes"));
        assert!(!is_fleet(&Method::GET, "/v1/nodes/edge-1/heartbeat"));
        assert!(!is_fleet(&Method::POST, "/v1/nodes//heartbeat"));
        assert!(!is_fleet(&Method::POST, "/v1/nodes/a/b/heartbeat"));
        assert!(!is_fleet(&Method::POST, "/v1/artifacts"));
        assert!(!is_fleet(&Method::GET, "/v1/audit"));
        assert!(!is_fleet(&Method::DELETE, "/v1/nodes/edge-1"));
    }

    #[test]
    fn shedding_starts_at_the_high_water_mark() {
        use rampart_serve::Events as _;
        let stats = Arc::new(ConnStats::default());
        let c = Connections::new(ConnLimits::default(), 10, Arc::clone(&stats));
        assert_eq!(c.report().high_water, 9);
        for _ in 0..8 {
            stats.opened();
        }
        assert!(!c.shedding());
        stats.opened();
        assert!(c.shedding());
        stats.closed();
        assert!(!c.shedding());
        assert_eq!(c.report().open, 8);
        assert_eq!(c.report().accepted, 9);
    }
}
