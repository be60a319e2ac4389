//! The append-only audit log: who (a token name, or `control` for the rollout driver), what,
//! when, why.

use serde::{Deserialize, Serialize};

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who: the token's name, or `control` for automatic decisions.
    pub who: String,
    /// What, a stable verb: `artifact.publish`, `rollout.start`, `rollout.rollback`,
    /// `artifact.mark_bad`, `killswitch.set`…
    pub action: String,
    /// On what: a digest, a rollout id, a node.
    pub subject: String,
    /// Why, as given by the operator or computed by a gate (with the numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else worth keeping (gate numbers, break-glass flag, issue codes).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// A page of the log, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` to read on; `None` when this page reached the end.
    pub next_after: Option<u64>,
}
