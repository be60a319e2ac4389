//! The rampart wire: every JSON body that travels between the control plane, the edges and
//! the CLI, under `/v1`, and a small typed [`Client`] for it.
//!
//! The control plane serves these types ([`rampart-control`]), the edge agent sends
//! [`Heartbeat`]s and reads [`HeartbeatAnswer`]s, the CLI and the generator publish and drive
//! rollouts. Nothing here does I/O except [`client`].
//!
//! # Layout
//! - [`routes`]: every path, as the server's route templates and as builders for the client.
//! - [`error`]: the one JSON error body (`{ "error", "message", "issues"? }`) and its codes;
//!   [`IssueReport`], an artifact issue as it travels.
//! - [`artifact`]: publish results, metadata, lists, diffs.
//! - [`fleet`]: node registration and the fleet view.
//! - [`heartbeat`]: what an edge reports (versions, ACK/NACK, counters, score histogram) and
//!   what it is told (desired version, kill switches, next beat).
//! - [`order`]: the signed [`Order`] inside a heartbeat answer (director key, epoch,
//!   sequence) and the edge's rule for admitting one ([`order::admit`]).
//! - [`killswitch`], [`rollout`], [`audit`]: operator requests and views.
//! - [`limits`]: every bound both sides enforce.
//! - [`client`]: [`Client`], with timeouts, for the edge agent (tokio), the CLI, the generator
//!   and tests; [`Transport`]: the CA it trusts instead of the web PKI, and plain HTTP only
//!   when asked for and only to loopback (the bearer token never crosses a network in clear).
//! - [`token`]: bearer-token files and `RAMPART_TOKEN`, as every client reads them.
//! - [`error::is_refusal`]: the one rule for which answers refuse the input (exit 1, held).
//!
//! # The decision that matters
//! **The heartbeat is level-based and carries an etag.** An edge always reports its whole
//! state (active version, its verdict on the desired version, counters since the last beat)
//! and echoes the `etag` of the last answer it acted on. The control plane answers at once
//! when the node's desired state has a different etag, and otherwise holds the request (a
//! long-poll, bounded by [`limits::MAX_LONG_POLL_MS`]) until it changes. So a change reaches
//! an edge in one round trip, a lost answer is repaired by the next beat, and an edge that
//! NACKed a version is not told the same thing again in a busy loop.
//!
//! [`rampart-control`]: ../rampart_control/index.html

pub mod artifact;
pub mod audit;
pub mod client;
pub mod error;
pub mod fleet;
pub mod heartbeat;
pub mod identity;
pub mod killswitch;
pub mod limits;
pub mod nats_link;
pub mod order;
pub mod rollout;
pub mod routes;
pub mod token;

pub use artifact::{ArtifactList, ArtifactMeta, BadMark, ChangeView, DiffView, PublishResult};
pub use audit::{AuditEntry, AuditPage};
pub use client::{Client, ClientError, Transport};
pub use error::{ApiError, ErrorCode, IssueReport};
pub use fleet::{ContractList, Health, Labels, NodeList, NodeView, RegisterAnswer, Registration};
pub use heartbeat::{
    AckNack, Active, ApplyReport, BeatCounters, Death, DeathCause, Desired, Heartbeat,
    HeartbeatAnswer, Rejection, ScoreHistogram,
};
pub use identity::{
    ApprovalList, ApprovalView, Approved, Decision, Enrolled, EnrollmentIssued, IssueEnrollment,
    NodeRemoved, RemoveNode,
};
pub use killswitch::{
    KILL_BUCKET, KILL_HISTORY, KILL_KEY_FLEET, KILL_PAYLOAD_TYPE, KillOrder, KillScope,
    KillSwitchEntry, KillSwitchList, KillSwitchSet, KillSwitches, MAX_KILL_ORDER_BYTES,
    MAX_KILL_VALUE_BYTES, Module, Scope, SwitchState,
};
pub use order::{Admitted, Applied, ORDER_PAYLOAD_TYPE, Order, OrderRefusal};
pub use rollout::{
    GateView, ObservedView, RolloutAction, RolloutCommand, RolloutList, RolloutView, StartRollout,
    WaveView,
};

/// The API version every path starts with.
pub const API_VERSION: &str = "v1";

/// The one artifact kind today: feature files. One rollout at a time runs per kind.
pub const KIND_FEATURES: &str = "features";

/// A field failed the wire's own bounds (a node id too long, a histogram of the wrong
/// length). The server answers it with 400 and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// The field, as a JSON path.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

// === impl Invalid ===

impl Invalid {
    /// An invalid field.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Checks an identifier (node id, label value, token name): 1 to `max` bytes of
/// `[A-Za-z0-9._-]`, so it is safe in paths, logs and SQL text alike.
pub fn check_ident(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.is_empty() || value.len() > max {
        return Err(Invalid::new(field, format!("must be 1 to {max} bytes")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Invalid::new(
            field,
            format!("has a forbidden character {c:?} (allowed: A-Z a-z 0-9 . _ -)"),
        ));
    }
    Ok(())
}

/// Checks free text (a reason, a message): at most `max` bytes, no control characters
/// except none at all, so it prints on one log line.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.len() > max {
        return Err(Invalid::new(field, format!("must be at most {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not hold control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_are_bounded_and_plain() {
        assert!(check_ident("id", "edge-1.fra_a", 64).is_ok());
        assert!(check_ident("id", "", 64).is_err());
        assert!(check_ident("id", &"a".repeat(65), 64).is_err());
        let e = check_ident("id", "a/b", 64).unwrap_err();
        assert_eq!(e.field, "id");
        assert!(e.problem.contains("'/'"), "{e}");
        assert!(check_ident("id", "é", 64).is_err());
    }

    #[test]
    fn text_is_bounded_and_one_line() {
        assert!(check_text("reason", "canary looks fine", 10).is_err());
        assert!(check_text("reason", "ok", 10).is_ok());
        assert!(check_text("reason", "a\nb", 10).is_err());
        assert!(check_text("reason", "", 10).is_ok());
    }
}
