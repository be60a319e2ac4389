//! Node identity: one-time bootstrap tokens, per-node credentials, what a node may say,
//! removing a node, and ageing out the contracts of nodes gone quiet.
//!
//! An admin issues a bootstrap token for one node id (`POST /v1/enrollments`); the edge
//! trades it once for its own credential (`POST /v1/nodes/{node}/enroll`). Both secrets are
//! 256 random bits that the control plane keeps only as sha256 hashes. A node's credential
//! is a bearer token like the others, so TLS (not this module) keeps it off the wire; it was
//! chosen over a key pair the edge signs with because a bearer secret needs no per-request
//! signature, nonce or clock agreement, and the threat here is a shared secret speaking for
//! every node, which a per-node secret removes.
//!
//! A credential speaks for its own node id only: another node's credential gets 403, is
//! counted ([`Refusals`]) and audited (`node.refused`), and changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use rampart_api::identity::DEFAULT_ENROLLMENT_TTL_MS;
use rampart_api::limits::MAX_IDENT_LEN;
use rampart_api::{
    Enrolled, EnrollmentIssued, ErrorCode, IssueEnrollment, NodeRemoved, RemoveNode, check_ident,
};
use rampart_artifact::Digest;
use rampart_host::secret::{TOKEN_BYTES, random_hex};
use serde::Serialize;

use crate::auth::{Action, Caller, Denied, Role, bearer, permit};
use crate::service::{Error, Service};
use crate::store::{Batch, EnrollmentRecord, NewAudit, Store, Write};

/// Most bootstrap tokens waiting for their edge at once (expired ones do not count, and are
/// burned when the next token is issued): a script issuing tokens in a loop stops here
/// rather than filling the store.
pub const MAX_PENDING_ENROLLMENTS: usize = 10_000;

/// Refused identity checks since start, shown in `/v1/health`.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Writes without a known token or credential (401).
    pub unauthenticated: AtomicU64,
    /// A node's credential used for another node (403).
    pub other_node: AtomicU64,
    /// Enrollments refused (unknown, used, expired or another node's bootstrap token).
    pub enrollment: AtomicU64,
}

/// [`Refusals`] as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefusalCounts {
    /// See [`Refusals::unauthenticated`].
    pub unauthenticated: u64,
    /// See [`Refusals::other_node`].
    pub other_node: u64,
    /// See [`Refusals::enrollment`].
    pub enrollment: u64,
}

// === impl Refusals ===

impl Refusals {
    /// The counts now.
    pub fn counts(&self) -> RefusalCounts {
        RefusalCounts {
            unauthenticated: self.unauthenticated.load(Ordering::Relaxed),
            other_node: self.other_node.load(Ordering::Relaxed),
            enrollment: self.enrollment.load(Ordering::Relaxed),
        }
    }
}

// === impl Service (identity) ===

impl<S: Store> Service<S> {
    /// Who sent `header` (an operator's token, or a node's credential), if it may do
    /// `action`: 401 for no or an unknown token, 403 for a role that may not.
    pub fn authenticate(&self, header: Option<&str>, action: Action) -> Result<Caller, Error> {
        let unauthenticated = || {
            self.refusals
                .unauthenticated
                .fetch_add(1, Ordering::Relaxed);
            denied(&Denied::Unauthenticated)
        };
        let Some(secret) = bearer(header) else {
            return Err(unauthenticated());
        };
        let caller = match self.config.tokens.identify(secret) {
            Some(c) => c,
            None => {
                // The hash of 256 random bits is the map key: a timing difference in the
                // lookup tells nothing about a secret nobody can guess.
                let hash = Digest::of(secret.as_bytes());
                match self.fleet().credentials.get(&hash) {
                    Some(node) => Caller {
                        name: node.clone(),
                        role: Role::Node,
                    },
                    None => return Err(unauthenticated()),
                }
            }
        };
        permit(caller, action).map_err(|d| denied(&d))
    }

    /// Ok when `caller` is `node`'s own credential; else 403, counted and audited.
    pub async fn speaks_for(&self, caller: &Caller, node: &str) -> Result<(), Error> {
        let Err(refused) = caller.speaks_for(node) else {
            return Ok(());
        };
        self.refusals.other_node.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = crate::client_log::admit("node.refused") {
            tracing::warn!(caller = %caller.name, role = %caller.role, node, suppressed, "{refused}");
        }
        let now = self.now();
        let _w = self.write.lock().await;
        self.commit(Batch::one(Write::Audit(NewAudit {
            at_ms: now,
            who: caller.name.clone(),
            action: "node.refused".into(),
            subject: node.to_owned(),
            reason: Some(refused.to_string()),
            detail: serde_json::json!({ "role": caller.role.to_string() }),
        })))
        .await?;
        Err(denied(&refused))
    }

    /// Issues a one-time bootstrap token for `req.node` (shown once, stored hashed).
    pub async fn issue_enrollment(
        &self,
        caller: &Caller,
        req: IssueEnrollment,
    ) -> Result<EnrollmentIssued, Error> {
        req.check()?;
        let token = random_hex(TOKEN_BYTES)
            .map_err(|e| Error::internal(format!("no randomness for a token: {e}")))?;
        let _w = self.write.lock().await;
        let now = self.now();
        // Expired tokens are burned here, so the ones kept stay bounded.
        let (pending, expired) = {
            let fleet = self.fleet();
            let expired: Vec<Digest> = fleet
                .enrollments
                .values()
                .filter(|e| e.expires_at_ms <= now)
                .map(|e| e.hash)
                .collect();
            (
                fleet.enrollments.len().saturating_sub(expired.len()),
                expired,
            )
        };
        if pending >= MAX_PENDING_ENROLLMENTS {
            return Err(Error::conflict(format!(
                "{MAX_PENDING_ENROLLMENTS} bootstrap tokens are waiting for their edges; \
                 let some be used or expire"
            )));
        }
        let expires_at_ms = now.saturating_add(req.ttl_ms.unwrap_or(DEFAULT_ENROLLMENT_TTL_MS));
        let mut batch = Batch::one(Write::PutEnrollment(EnrollmentRecord {
            hash: Digest::of(token.as_bytes()),
            node: req.node.clone(),
            issued_by: caller.name.clone(),
            issued_at_ms: now,
            expires_at_ms,
        }));
        for hash in expired {
            batch.push(Write::BurnEnrollment { hash, at_ms: now });
        }
        batch.push(Write::Audit(NewAudit {
            at_ms: now,
            who: caller.name.clone(),
            action: "enrollment.issue".into(),
            subject: req.node.clone(),
            reason: Some(req.reason),
            detail: serde_json::json!({ "expires_at_ms": expires_at_ms }),
        }));
        self.commit(batch).await?;
        Ok(EnrollmentIssued {
            node: req.node,
            token,
            expires_at_ms,
        })
    }

    /// Trades the bootstrap token in `header` for `node`'s credential, and burns the token.
    /// A replaced credential stops working at once (re-enrollment of a rebuilt box).
    pub async fn enroll(&self, node: &str, header: Option<&str>) -> Result<Enrolled, Error> {
        check_ident("node", node, MAX_IDENT_LEN)?;
        let Some(secret) = bearer(header) else {
            self.refusals.enrollment.fetch_add(1, Ordering::Relaxed);
            return Err(denied(&Denied::Unauthenticated));
        };
        let hash = Digest::of(secret.as_bytes());
        let credential = random_hex(TOKEN_BYTES)
            .map_err(|e| Error::internal(format!("no randomness for a credential: {e}")))?;
        let _w = self.write.lock().await;
        let now = self.now();
        let found = self.fleet().enrollments.get(&hash).cloned();
        let refusal = match &found {
            None => Some((
                ErrorCode::Unauthorized,
                "unknown or already used bootstrap token".to_owned(),
            )),
            Some(e) if e.expires_at_ms <= now => Some((
                ErrorCode::Unauthorized,
                format!("the bootstrap token for {} expired", e.node),
            )),
            Some(e) if e.node != node => Some((
                ErrorCode::Forbidden,
                format!("the bootstrap token is for node {:?}, not {node:?}", e.node),
            )),
            Some(_) => None,
        };
        if let Some((code, message)) = refusal {
            self.refusals.enrollment.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = crate::client_log::admit("enroll.refused") {
                tracing::warn!(node, suppressed, "enrollment refused: {message}");
            }
            // A presented token that did not work is burned: it was lost or misused.
            let mut batch = Batch::default();
            if found.is_some() {
                batch.push(Write::BurnEnrollment { hash, at_ms: now });
            }
            batch.push(Write::Audit(NewAudit {
                at_ms: now,
                who: format!("enroll:{node}"),
                action: "node.enroll_refused".into(),
                subject: node.to_owned(),
                reason: Some(message.clone()),
                detail: serde_json::Value::Null,
            }));
            self.commit(batch).await?;
            return Err(Error::new(code, message));
        }
        let issued_by = found.map(|e| e.issued_by).unwrap_or_default();
        let mut batch = Batch::one(Write::BurnEnrollment { hash, at_ms: now });
        batch.push(Write::PutCredential {
            node: node.to_owned(),
            hash: Digest::of(credential.as_bytes()),
            at_ms: now,
        });
        batch.push(Write::Audit(NewAudit {
            at_ms: now,
            who: node.to_owned(),
            action: "node.enroll".into(),
            subject: node.to_owned(),
            reason: None,
            detail: serde_json::json!({ "issued_by": issued_by }),
        }));
        self.commit(batch).await?;
        Ok(Enrolled {
            node: node.to_owned(),
            credential,
        })
    }

    /// Removes a node: its registration and contract, heartbeats, own targets and kill
    /// switches, and credential. A rollout running over it sees it as a node gone dead.
    pub async fn remove_node(
        &self,
        caller: &Caller,
        node: &str,
        req: RemoveNode,
    ) -> Result<NodeRemoved, Error> {
        check_ident("node", node, MAX_IDENT_LEN)?;
        req.check()?;
        let _w = self.write.lock().await;
        let now = self.now();
        let known = {
            let fleet = self.fleet();
            fleet.nodes.contains_key(node) || fleet.credential_of.contains_key(node)
        };
        if !known {
            return Err(Error::not_found(format!("no node {node}")));
        }
        let mut batch = Batch::one(Write::RemoveNode {
            node: node.to_owned(),
        });
        batch.push(Write::Audit(NewAudit {
            at_ms: now,
            who: caller.name.clone(),
            action: "node.remove".into(),
            subject: node.to_owned(),
            reason: Some(req.reason),
            detail: serde_json::Value::Null,
        }));
        self.commit(batch).await?;
        Ok(NodeRemoved {
            node: node.to_owned(),
        })
    }

    /// Ages out the contracts of nodes not seen for `contract_max_age_ms`: one audit entry
    /// each (`node.contract_aged_out`); publish validation already leaves them out.
    pub async fn age_contracts(&self) -> Result<usize, Error> {
        let max_age = self.config.node_policy.contract_max_age_ms;
        let now = self.now();
        let aged = self.fleet().newly_aged(now, max_age);
        if aged.is_empty() {
            return Ok(0);
        }
        let _w = self.write.lock().await;
        let mut batch = Batch::default();
        for (node, seen) in &aged {
            batch.push(Write::Audit(NewAudit {
                at_ms: now,
                who: crate::driver::SYSTEM_ACTOR.into(),
                action: "node.contract_aged_out".into(),
                subject: node.clone(),
                reason: Some(format!("not seen for more than {max_age} ms")),
                detail: serde_json::json!({ "last_seen_ms": seen }),
            }));
        }
        self.commit(batch).await?;
        let mut fleet = self.fleet();
        for (node, _) in &aged {
            tracing::info!(node, "contract aged out: node not seen for {max_age} ms");
            fleet.aged_out.insert(node.clone());
        }
        Ok(aged.len())
    }
}

/// The error for a refusal.
pub fn denied(d: &Denied) -> Error {
    match d {
        Denied::Unauthenticated => Error::new(ErrorCode::Unauthorized, d.to_string()),
        Denied::Forbidden { .. } | Denied::OtherNode { .. } => {
            Error::new(ErrorCode::Forbidden, d.to_string())
        }
    }
}
