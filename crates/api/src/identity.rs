//! Who a node is: one-time bootstrap tokens an admin issues, the per-node credential an edge
//! gets for one, removing a node, and the two-person approvals of the big switches.
//!
//! A node's credential is a random secret the control plane makes at enrollment and keeps
//! only as a hash; the edge sends it as `Authorization: Bearer`, like every other token.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_IDENT_LEN, MAX_REASON_LEN};
use crate::{Invalid, check_ident, check_text};

/// The longest a bootstrap token may live, ms (7 days): a token that waits longer for its
/// edge is a forgotten secret.
pub const MAX_ENROLLMENT_TTL_MS: u64 = 7 * 24 * 3_600_000;

/// A bootstrap token's life when the request does not say, ms (1 hour).
pub const DEFAULT_ENROLLMENT_TTL_MS: u64 = 3_600_000;

/// An admin asks for a one-time bootstrap token for `node` (`POST /v1/enrollments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueEnrollment {
    /// The node id the token enrolls, and only that one.
    pub node: String,
    /// Why (required: it goes to the audit log).
    pub reason: String,
    /// How long the token is valid, ms (default [`DEFAULT_ENROLLMENT_TTL_MS`], at most
    /// [`MAX_ENROLLMENT_TTL_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// The bootstrap token, shown once (the control plane keeps only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentIssued {
    /// The node it enrolls.
    pub node: String,
    /// The secret: give it to the edge (`--enroll-token-file`).
    pub token: String,
    /// When it stops working, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// What an edge gets for its bootstrap token (`POST /v1/nodes/{node}/enroll`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The node.
    pub node: String,
    /// Its credential, shown once: the bearer token of every later call of this node.
    pub credential: String,
}

/// An admin removes a node (`DELETE /v1/nodes/{node}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveNode {
    /// Why (required: it goes to the audit log).
    pub reason: String,
}

/// The answer to a removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRemoved {
    /// The node removed, with its contract and credential.
    pub node: String,
}

/// A request that waits for a second admin (`202 Accepted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    /// Its id: `POST /v1/approvals/{id}` approves it.
    pub id: u64,
    /// What it does: `killswitch.set` (fleet-wide) or `rollout.start` (break glass).
    pub action: String,
    /// The request as the first admin sent it.
    pub request: serde_json::Value,
    /// The first admin (a token name); another one must approve.
    pub requested_by: String,
    /// When, ms since the Unix epoch.
    pub requested_at_ms: u64,
    /// When it lapses unapproved, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Pending approvals, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalList {
    /// The approvals.
    pub approvals: Vec<ApprovalView>,
}

/// A request approved by a second admin, and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approved {
    /// The approval.
    pub approval: ApprovalView,
    /// The second admin.
    pub approved_by: String,
    /// The answer the request gets once it takes effect (a kill-switch list, a rollout).
    pub result: serde_json::Value,
}

/// A write that either took effect or waits for a second admin.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<T> {
    /// It took effect.
    Done(T),
    /// It waits for `POST /v1/approvals/{id}` by another admin.
    Pending(ApprovalView),
}

// === impl IssueEnrollment ===

impl IssueEnrollment {
    /// Checks the wire bounds.
    pub fn check(&self) -> Result<(), Invalid> {
        check_ident("node", &self.node, MAX_IDENT_LEN)?;
        check_reason(&self.reason)?;
        match self.ttl_ms {
            Some(0) => Err(Invalid::new("ttl_ms", "must be at least 1")),
            Some(t) if t > MAX_ENROLLMENT_TTL_MS => Err(Invalid::new(
                "ttl_ms",
                format!("must be at most {MAX_ENROLLMENT_TTL_MS}"),
            )),
            _ => Ok(()),
        }
    }
}

// === impl RemoveNode ===

impl RemoveNode {
    /// Checks the wire bounds.
    pub fn check(&self) -> Result<(), Invalid> {
        check_reason(&self.reason)
    }
}

// === impl Decision ===

impl<T> Decision<T> {
    /// The result, when it took effect.
    pub fn done(self) -> Option<T> {
        match self {
            Decision::Done(t) => Some(t),
            Decision::Pending(_) => None,
        }
    }

    /// The approval, when it waits for one.
    pub fn pending(self) -> Option<ApprovalView> {
        match self {
            Decision::Done(_) => None,
            Decision::Pending(a) => Some(a),
        }
    }
}

fn check_reason(reason: &str) -> Result<(), Invalid> {
    if reason.trim().is_empty() {
        return Err(Invalid::new("reason", "is required"));
    }
    check_text("reason", reason, MAX_REASON_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_needs_a_node_a_reason_and_a_sane_ttl() {
        let ok = IssueEnrollment {
            node: "fra-1".into(),
            reason: "new box".into(),
            ttl_ms: None,
        };
        assert!(ok.check().is_ok());
        let bad = |f: fn(&mut IssueEnrollment)| {
            let mut e = ok.clone();
            f(&mut e);
            e.check().unwrap_err().field
        };
        assert_eq!(bad(|e| e.node = "a/b".into()), "node");
        assert_eq!(bad(|e| e.reason = " ".into()), "reason");
        assert_eq!(bad(|e| e.reason = "a\u{1b}[31m".into()), "reason");
        assert_eq!(bad(|e| e.ttl_ms = Some(0)), "ttl_ms");
        assert_eq!(
            bad(|e| e.ttl_ms = Some(MAX_ENROLLMENT_TTL_MS + 1)),
            "ttl_ms"
        );
        assert!(
            RemoveNode {
                reason: String::new()
            }
            .check()
            .is_err()
        );
    }
}
