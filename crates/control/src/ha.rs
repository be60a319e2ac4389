//! The HA control plane on NATS: 2–3 replicas on one log, one leader by a lease.
//!
//! Every [`LEASE_RENEW`] each replica runs one [`step`]: the leader renews its lease
//! (compare-and-set on the lease's revision) and reads the log's tail, to notice a newer
//! leader's marker; a follower applies the log's new messages to its model, rebuilds its
//! mirror, and takes the lease when it is free. Taking it means: create the lease key
//! (the servers refuse when it exists), catch up with the log, append a marker under the new
//! lease epoch, rebuild the mirror, and only then reconcile. The fencing argument is in
//! `docs/nats.md` ("HA: leader lease and failover"); the store enforces it
//! ([`NatsStore::try_lead`]).

use std::sync::Arc;

use crate::service::{Role, Service};
use crate::store::AnyStore;
use crate::store::nats::{LEASE_RENEW, LeaseHolder, NatsStore};

/// Runs the election until shutdown. Does nothing on a SQLite store (always the leader).
pub async fn run(service: Arc<Service<AnyStore>>, me: LeaseHolder) {
    let AnyStore::Nats(store) = service.store() else {
        return;
    };
    let store: &NatsStore = store;
    let mut shutdown = service.shutdown_signal();
    let mut tick = tokio::time::interval(LEASE_RENEW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        step(&service, store, &me).await;
    }
}

/// One round of the election (see the module docs).
pub async fn step(service: &Service<AnyStore>, store: &NatsStore, me: &LeaseHolder) {
    if service.is_leader() {
        let renewed = match store.renew(me).await {
            Ok(renewed) => renewed,
            Err(e) => {
                tracing::warn!("lease renewal failed: {e}");
                false
            }
        };
        if let Err(e) = store.follow().await {
            tracing::warn!("reading the log's tail failed: {e}");
        }
        if renewed && store.is_leader() {
            return;
        }
        tracing::warn!("lost the leader lease: following");
        service.set_role(Role::Follower { leader: None });
    }
    match store.follow().await {
        Ok(true) => {
            if let Err(e) = service.reload().await {
                tracing::warn!("rebuilding the mirror from the log failed: {e}");
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!("following the log failed: {e}"),
    }
    match store.leader().await {
        Ok(Some(holder)) => service.set_role(Role::Follower {
            leader: Some(holder.url),
        }),
        Ok(None) => match store.try_lead(me).await {
            Ok(true) => match service.reload().await {
                Ok(()) => {
                    tracing::info!(id = me.id, url = me.url, "leading");
                    service.set_role(Role::Leader);
                }
                Err(e) => tracing::warn!("took the lease but could not load the state: {e}"),
            },
            Ok(false) => {}
            Err(e) => tracing::warn!("taking the leader lease failed: {e}"),
        },
        Err(e) => tracing::warn!("reading the leader lease failed: {e}"),
    }
}
