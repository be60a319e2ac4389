//! The kill-switch bucket (`{ns}_KILL`): signed [`KillOrder`]s that edges watch themselves,
//! so a kill switch reaches them when every control-plane replica is down.
//!
//! Two writers share [`put`]: the leading control plane, after it committed a switch set
//! through its API, and `rampart killswitch set … --nats` (break-glass, no control plane).
//! Each value's `seq` is above the newest value under its key that verifies with the
//! writer's key, and at least the signing time in ms: a later write always carries a higher
//! `seq`, whoever writes it, as long as the clocks are roughly right. The put is a
//! compare-and-set on the key's revision, retried when another writer came first.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use rampart_api::{KILL_BUCKET, KILL_HISTORY, KillOrder};
use rampart_artifact::{Keyring, SecretKey};

use super::{NatsConfig, nats};
use crate::store::StoreError;

/// A put retries this many times when another writer changed the key in between.
pub const KILL_PUT_ATTEMPTS: usize = 5;

/// Keys of the kill bucket a control plane reads when it imports break-glass switches.
pub const KILL_IMPORT_MAX_KEYS: usize = 100_000;

/// The pause before a put tries again after another writer came first.
pub const KILL_PUT_BACKOFF: Duration = Duration::from_millis(20);

/// The kill bucket of namespace `ns`, created when missing (history [`KILL_HISTORY`]: the
/// bucket's own audit trail).
pub async fn bucket(
    js: &jetstream::Context,
    ns: &str,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    let name = format!("{ns}_{KILL_BUCKET}");
    super::open_kv(
        js,
        kv::Config {
            bucket: name,
            history: KILL_HISTORY,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        },
        "create the kill bucket",
    )
    .await
}

/// Connects to `config`'s servers and opens (or creates) the kill bucket: the break-glass
/// path, which needs no control plane.
pub async fn connect(config: &NatsConfig) -> Result<kv::Store, StoreError> {
    let js = super::connect(config).await?;
    bucket(&js, &config.namespace, config.replicas()).await
}

/// Every key of the bucket with the values it keeps (its history, oldest first, at most
/// [`KILL_HISTORY`]), at most [`KILL_IMPORT_MAX_KEYS`] keys. The history, not only the newest
/// value: a value nobody can verify (a forgery) must not hide the newest one that verifies.
pub async fn values(bucket: &kv::Store) -> Result<Vec<(String, Vec<Bytes>)>, StoreError> {
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let keys: Vec<String> = match bucket.keys().await {
        Ok(keys) => keys
            .take(KILL_IMPORT_MAX_KEYS)
            .try_collect()
            .await
            .map_err(|e| nats("list the kill bucket", e))?,
        Err(e) => return Err(nats("list the kill bucket", e)),
    };
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let history: Vec<kv::Entry> = bucket
            .history(key.as_str())
            .await
            .map_err(|e| nats("read the kill bucket", e))?
            .take(usize::try_from(KILL_HISTORY).unwrap_or(16))
            .try_collect()
            .await
            .map_err(|e| nats("read the kill bucket", e))?;
        let puts = history
            .into_iter()
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| e.value)
            .collect();
        out.push((key, puts));
    }
    Ok(out)
}

/// Signs `order` with `key` under a `seq` above the key's current value and puts it (see
/// the module docs); answers the order as written.
pub async fn put(
    bucket: &kv::Store,
    mut order: KillOrder,
    key: &Arc<SecretKey>,
) -> Result<KillOrder, StoreError> {
    let name = order.scope.key();
    let mine = Keyring::new([key.public()]);
    let mut last_error = None;
    for _ in 0..KILL_PUT_ATTEMPTS {
        let current = bucket
            .entry(name.as_str())
            .await
            .map_err(|e| nats("read the kill bucket", e))?;
        let previous = current
            .as_ref()
            .and_then(|e| KillOrder::envelope(&e.value).ok())
            .and_then(|env| KillOrder::open(&env, &mine).ok())
            .map_or(0, |(o, _)| o.seq);
        order.seq = previous.saturating_add(1).max(order.issued_at_ms);
        let value = Bytes::from(order.sign(key).to_json());
        let written = match current {
            Some(entry) => bucket
                .update(name.as_str(), value, entry.revision)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => bucket
                .create(name.as_str(), value)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        match written {
            Ok(()) => return Ok(order),
            Err(e) => {
                last_error = Some(e);
                tokio::time::sleep(KILL_PUT_BACKOFF).await;
            }
        }
    }
    Err(StoreError::Backend(format!(
        "nats: put the kill order {name}: {}",
        last_error.unwrap_or_default()
    )))
}
