//! Two people for the big switches: a fleet-wide kill-switch change and a break-glass
//! rollout start wait for a second, different admin.
//!
//! The first request is checked, stored as a pending approval (answered `202` with its id)
//! and audited (`approval.request`). Another admin's `POST /v1/approvals/{id}` makes it take
//! effect as the pair `first+second` (so the kill switch's `set_by`, the rollout's
//! `started_by` and their audit entries name both), audited as `approval.grant`. The same
//! admin approving gets 403 (`approval.refused`). Pending approvals live in memory only: a
//! restart drops them (fail closed: nothing happens), and they lapse after
//! [`APPROVAL_TTL_MS`] (`approval.expired`).

use std::collections::BTreeMap;

use rampart_api::{
    ApprovalList, ApprovalView, Approved, Decision, ErrorCode, KillSwitchList, KillSwitchSet,
    RolloutView, StartRollout,
};

use crate::auth::{Caller, Role};
use crate::service::{Error, Service};
use crate::store::{Batch, NewAudit, Store, Write};

/// How long a request waits for its second admin (15 minutes).
pub const APPROVAL_TTL_MS: u64 = 15 * 60_000;

/// Most requests waiting at once; past it, a new one is refused (409).
pub const MAX_PENDING_APPROVALS: usize = 64;

/// Pending approvals, by id.
#[derive(Debug, Default)]
pub struct Approvals {
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    view: ApprovalView,
    request: Request,
}

/// A request that needs two admins.
#[derive(Debug, Clone)]
pub enum Request {
    /// `PUT /v1/killswitches` without `node`.
    KillSwitch(KillSwitchSet),
    /// `POST /v1/rollouts` with `break_glass`.
    BreakGlass(StartRollout),
}

// === impl Request ===

impl Request {
    fn action(&self) -> &'static str {
        match self {
            Request::KillSwitch(_) => "killswitch.set",
            Request::BreakGlass(_) => "rollout.start",
        }
    }

    fn reason(&self) -> Option<String> {
        match self {
            Request::KillSwitch(s) => Some(s.reason.clone()),
            Request::BreakGlass(r) => r.reason.clone(),
        }
    }

    fn body(&self) -> serde_json::Value {
        match self {
            Request::KillSwitch(s) => serde_json::to_value(s),
            Request::BreakGlass(r) => serde_json::to_value(r),
        }
        .unwrap_or(serde_json::Value::Null)
    }

    fn check(&self) -> Result<(), Error> {
        match self {
            Request::KillSwitch(s) => s.check()?,
            Request::BreakGlass(r) => r.check()?,
        }
        Ok(())
    }
}

// === impl Service (approvals) ===

impl<S: Store> Service<S> {
    /// Sets a kill switch: a node's at once, the fleet's once a second admin approves.
    pub async fn kill_switch_decision(
        &self,
        caller: &Caller,
        set: KillSwitchSet,
    ) -> Result<Decision<KillSwitchList>, Error> {
        if set.node.is_some() {
            return self.set_kill_switch(caller, set).await.map(Decision::Done);
        }
        self.request_approval(caller, Request::KillSwitch(set))
            .await
            .map(Decision::Pending)
    }

    /// Starts a rollout: at once, or, for break glass, once a second admin approves.
    pub async fn rollout_decision(
        &self,
        caller: &Caller,
        req: StartRollout,
    ) -> Result<Decision<RolloutView>, Error> {
        if !req.break_glass {
            return self.start_rollout(caller, req).await.map(Decision::Done);
        }
        self.request_approval(caller, Request::BreakGlass(req))
            .await
            .map(Decision::Pending)
    }

    /// Stores `request` until another admin approves it.
    pub async fn request_approval(
        &self,
        caller: &Caller,
        request: Request,
    ) -> Result<ApprovalView, Error> {
        request.check()?;
        self.expire_approvals().await;
        let _w = self.write.lock().await;
        let now = self.now();
        let view = {
            let mut approvals = self.approvals();
            if approvals.pending.len() >= MAX_PENDING_APPROVALS {
                return Err(Error::conflict(format!(
                    "{MAX_PENDING_APPROVALS} requests are waiting for approval already"
                )));
            }
            approvals.next_id = approvals.next_id.saturating_add(1);
            ApprovalView {
                id: approvals.next_id,
                action: request.action().into(),
                request: request.body(),
                requested_by: caller.name.clone(),
                requested_at_ms: now,
                expires_at_ms: now.saturating_add(APPROVAL_TTL_MS),
            }
        };
        self.commit(Batch::one(Write::Audit(NewAudit {
            at_ms: now,
            who: caller.name.clone(),
            action: "approval.request".into(),
            subject: format!("approval/{}", view.id),
            reason: request.reason(),
            detail: serde_json::json!({
                "action": view.action,
                "request": view.request,
                "expires_at_ms": view.expires_at_ms,
            }),
        })))
        .await?;
        self.approvals().pending.insert(
            view.id,
            Pending {
                view: view.clone(),
                request,
            },
        );
        Ok(view)
    }

    /// Requests waiting for a second admin.
    pub fn pending_approvals(&self) -> ApprovalList {
        let now = self.now();
        ApprovalList {
            approvals: self
                .approvals()
                .pending
                .values()
                .filter(|p| p.view.expires_at_ms > now)
                .map(|p| p.view.clone())
                .collect(),
        }
    }

    /// A second admin approves request `id`: it takes effect as `first+second`.
    pub async fn approve(&self, caller: &Caller, id: u64) -> Result<Approved, Error> {
        self.expire_approvals().await;
        let pending = self.approvals().pending.get(&id).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "no pending approval {id} (expired, done or never made)"
            ))
        })?;
        let now = self.now();
        if pending.view.requested_by == caller.name {
            let message = format!(
                "{} asked for approval {id}: a different admin must approve it",
                caller.name
            );
            let _w = self.write.lock().await;
            self.commit(Batch::one(Write::Audit(NewAudit {
                at_ms: now,
                who: caller.name.clone(),
                action: "approval.refused".into(),
                subject: format!("approval/{id}"),
                reason: Some(message.clone()),
                detail: serde_json::Value::Null,
            })))
            .await?;
            return Err(Error::new(ErrorCode::Forbidden, message));
        }
        // Taken out first: two approvers racing do not both apply it.
        if self.approvals().pending.remove(&id).is_none() {
            return Err(Error::not_found(format!("approval {id} was just taken")));
        }
        let pair = Caller {
            name: format!("{}+{}", pending.view.requested_by, caller.name),
            role: Role::Admin,
        };
        {
            let _w = self.write.lock().await;
            self.commit(Batch::one(Write::Audit(NewAudit {
                at_ms: now,
                who: caller.name.clone(),
                action: "approval.grant".into(),
                subject: format!("approval/{id}"),
                reason: pending.request.reason(),
                detail: serde_json::json!({
                    "action": pending.view.action,
                    "requested_by": pending.view.requested_by,
                    "approved_by": caller.name,
                    "request": pending.view.request,
                }),
            })))
            .await?;
        }
        let result = match pending.request {
            Request::KillSwitch(set) => {
                serde_json::to_value(self.set_kill_switch(&pair, set).await?)
            }
            Request::BreakGlass(req) => serde_json::to_value(self.start_rollout(&pair, req).await?),
        }
        .map_err(|e| Error::internal(format!("cannot encode the result: {e}")))?;
        Ok(Approved {
            approval: pending.view,
            approved_by: caller.name.clone(),
            result,
        })
    }

    /// Drops lapsed requests, one audit entry each.
    pub async fn expire_approvals(&self) {
        let now = self.now();
        let lapsed: Vec<ApprovalView> = {
            let mut approvals = self.approvals();
            let ids: Vec<u64> = approvals
                .pending
                .iter()
                .filter(|(_, p)| p.view.expires_at_ms <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| approvals.pending.remove(id))
                .map(|p| p.view)
                .collect()
        };
        if lapsed.is_empty() {
            return;
        }
        let mut batch = Batch::default();
        for v in &lapsed {
            batch.push(Write::Audit(NewAudit {
                at_ms: now,
                who: crate::driver::SYSTEM_ACTOR.into(),
                action: "approval.expired".into(),
                subject: format!("approval/{}", v.id),
                reason: Some(format!("not approved within {APPROVAL_TTL_MS} ms")),
                detail: serde_json::json!({ "action": v.action, "requested_by": v.requested_by }),
            }));
        }
        let _w = self.write.lock().await;
        if let Err(e) = self.commit(batch).await {
            tracing::warn!(error = %e, "expired approvals not audited");
        }
    }
}
