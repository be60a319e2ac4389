//! Every bound of the wire, shared by the server (which enforces it) and the client (which
//! stays under it).

use rampart_artifact::limits::{HARD_MAX_BYTES, MAX_ENVELOPE_OVERHEAD};

/// Number of buckets of a [`crate::ScoreHistogram`]: one per score, 1 to 99.
pub const SCORE_BUCKETS: usize = 99;

/// Longest node id, label value or token name, in bytes.
pub const MAX_IDENT_LEN: usize = 64;

/// Longest free-text reason (rollouts, kill switches, break glass), in bytes.
pub const MAX_REASON_LEN: usize = 512;

/// Longest software version string an edge reports, in bytes.
pub const MAX_SOFTWARE_VERSION_LEN: usize = 128;

/// Most issues an edge may attach to a NACK or a rejection in one heartbeat; the edge's own
/// report is already capped by the artifact crate, this keeps a heartbeat small.
pub const MAX_HEARTBEAT_ISSUES: usize = 64;

/// Most deaths an edge reports in one heartbeat (the rest wait for the next beats): a crash
/// loop is told in a few beats, and a beat stays small.
pub const MAX_DEATHS_PER_BEAT: usize = 16;

/// Most blessed versions a heartbeat answer or an order carries (an edge keeps fewer: its
/// last-known-good history).
pub const MAX_BLESSED: usize = 8;

/// Longest message in a heartbeat's rejection, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Longest a heartbeat may be held by the control plane waiting for a change. An edge asks
/// for less with `wait_ms`; the server never holds longer, so a proxy or load balancer with a
/// 60 s idle timeout in between never cuts a healthy long-poll.
pub const MAX_LONG_POLL_MS: u64 = 30_000;

/// The heartbeat interval the control plane tells edges by default.
pub const DEFAULT_BEAT_INTERVAL_MS: u64 = 1_000;

/// The largest JSON body the control plane accepts for anything but a publish.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The largest artifact body: a signed envelope around the largest document any contract may
/// allow ([`HARD_MAX_BYTES`]): `wire_limit(HARD_MAX_BYTES)`, written out to be a constant. The
/// server also checks every registered contract's own cap.
pub const MAX_ARTIFACT_BODY: usize = HARD_MAX_BYTES.div_ceil(3) * 4 + MAX_ENVELOPE_OVERHEAD;

/// Largest id the API accepts for a rollout, an approval or an audit sequence number: the
/// store keeps them as SQLite integers (signed 64-bit), so a larger one names nothing. A
/// request with one is a 400 naming the parameter, not a store failure.
pub const MAX_ID: u64 = 9_223_372_036_854_775_807;

/// Longest bake a rollout request may ask for (`bake_ms`), in ms: a week. Longer is a typo,
/// and a bound keeps every deadline computed from it far from overflow.
pub const MAX_BAKE_MS: u64 = 7 * 24 * 3_600_000;

/// The longest post-rollout watch a start request may ask for: a week.
pub const MAX_WATCH_MS: u64 = 7 * 24 * 3_600_000;

/// Most items in one page of a list (artifacts, audit entries, rollouts).
pub const MAX_PAGE: usize = 1_000;

/// Items in a page when the request does not say.
pub const DEFAULT_PAGE: usize = 100;

/// How long the client waits to connect.
pub const CLIENT_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// How long the client waits for any answer other than a long-poll heartbeat.
pub const CLIENT_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// What the client adds to a heartbeat's `wait_ms` before it gives up: the server answers at
/// the end of the wait, this covers the trip and a busy server.
pub const CLIENT_LONG_POLL_MARGIN_MS: u64 = 5_000;

/// A publish may take this long (the control plane verifies and fsyncs an artifact of up to
/// [`MAX_ARTIFACT_BODY`] before it answers).
pub const CLIENT_PUBLISH_TIMEOUT_MS: u64 = 60_000;

#[cfg(test)]
mod tests {
    const _: () = assert!(MAX_JSON_BODY < MAX_ARTIFACT_BODY);
    use super::*;

    #[test]
    fn an_artifact_body_fits_the_largest_contract() {
        assert_eq!(
            MAX_ARTIFACT_BODY,
            rampart_artifact::limits::wire_limit(HARD_MAX_BYTES)
        );
    }
}
