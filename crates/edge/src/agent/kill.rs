//! Kill switches on an independent path: with `--nats`, the edge watches the kill bucket
//! (`{ns}_KILL`, keys `fleet` and `node.<this node>`) itself, so turning the bot module off
//! works while every control-plane replica is down.
//!
//! Each value is a [`KillOrder`] signed by a director key of the edge's keyset. It is
//! opened with the keyset in use, admitted against the last one applied under its key
//! ([`KillOrder::admit`]: another node's order, an older `seq`, the same `seq` with other
//! content are refused), recorded in `DATA_DIR/kill.json` (mode 0600) before it is applied,
//! and applied through `agent::set_module`, the same call as a heartbeat
//! answer's switch. The node's own order, unless it is a `clear`, wins over the fleet's.
//! Refusals are counted by code (`rampart_edge_kill_refused_total{code}`) and the last one
//! shows in `/status` under `kill_watch`.
//!
//! The watch delivers the newest value of each key, then every change. When the connection
//! or the watch ends, and after every reconnection of the client (its consumer may have lived
//! on a server that died), it is opened again with backoff ([`Backoff`]); meanwhile the edge
//! keeps what it applied (fail stale). A deleted key changes nothing: a switch is turned back on by
//! an order that says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_nats::ServerAddr;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use rampart_api::{Admitted, Applied, KILL_BUCKET, KillOrder, KillScope, OrderRefusal};
use rampart_artifact::Digest;
use rampart_host::clock::now_ms;
use rampart_host::file;
use rampart_ingest::Store;
use serde::Serialize;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::order::OrderRefusalReport;
use crate::bot::ModelCompiler;
use crate::trust::Trust;

/// The file in the data dir that holds the last kill order applied under each key.
pub const KILL_FILE: &str = "kill.json";

/// The largest kill file read (two keys' records).
pub const MAX_KILL_FILE_BYTES: usize = 4 * 1024;

/// How long a connection attempt to the NATS servers may take.
pub const KILL_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The default NATS namespace (the control plane's `RAMPART`).
pub const DEFAULT_NAMESPACE: &str = "RAMPART";

/// Where the kill bucket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillWatchConfig {
    /// `nats://host:port` of any of the cluster's servers.
    pub servers: Vec<String>,
    /// The namespace: the bucket is `{namespace}_KILL`.
    pub namespace: String,
    /// This node's id (its key is `node.<id>`).
    pub node: String,
}

/// What `/status` shows under `kill_watch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KillReport {
    /// The bucket watched.
    pub bucket: String,
    /// Whether the watch is open.
    pub connected: bool,
    /// The seq of the last order applied under `fleet`.
    pub fleet_seq: Option<u64>,
    /// The seq of the last order applied under this node's key.
    pub node_seq: Option<u64>,
    /// Orders applied since start (newer than the last applied under their key).
    pub applied_total: u64,
    /// The last order applied.
    pub last_applied: Option<KillApplied>,
    /// Orders refused since start, by code ([`OrderRefusal::code`]).
    pub refused: BTreeMap<&'static str, u64>,
    /// The last refusal.
    pub last_refusal: Option<OrderRefusalReport>,
    /// The last connection or watch error.
    pub last_error: Option<String>,
}

/// One applied order, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillApplied {
    /// The KV key.
    pub key: String,
    /// Its seq.
    pub seq: u64,
    /// Whether the module runs, by this order.
    pub enabled: bool,
    /// Whether it was a node's `clear`.
    pub clear: bool,
    /// Who set it.
    pub set_by: String,
    /// Why.
    pub reason: String,
    /// When this edge applied it, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Why the kill watch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KillWatchError {
    /// The kill file is unreadable.
    #[error(transparent)]
    File(#[from] file::Error),
    /// The kill file is not a record: refusing to start rather than forgetting it.
    #[error(
        "{path}: not a record of the kill orders applied ({reason}); move it away to start afresh"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The watch of the kill bucket, as one task ([`KillWatch::run`]).
#[derive(Debug)]
pub struct KillWatch {
    config: KillWatchConfig,
    store: Arc<Store<ModelCompiler>>,
    trust: Arc<Trust>,
    gate: KillGate,
    report: watch::Sender<KillReport>,
}

/// The last order admitted under each key, on disk and in memory.
#[derive(Debug)]
struct KillGate {
    path: PathBuf,
    /// The seq and digest of the last order applied, per key (`Applied::epoch` is 0).
    last: BTreeMap<String, Applied>,
    fleet: Option<KillOrder>,
    node: Option<KillOrder>,
}

// === impl KillWatch ===

impl KillWatch {
    /// The watch for `config`, with the orders applied before read from `data_dir`.
    pub fn new(
        config: KillWatchConfig,
        store: Arc<Store<ModelCompiler>>,
        trust: Arc<Trust>,
        data_dir: &Path,
    ) -> Result<Self, KillWatchError> {
        let gate = KillGate::open(data_dir)?;
        let report = KillReport {
            bucket: format!("{}_{KILL_BUCKET}", config.namespace),
            fleet_seq: gate.last.get(&KillScope::Fleet.key()).map(|a| a.seq),
            node_seq: gate
                .last
                .get(&KillScope::Node(config.node.clone()).key())
                .map(|a| a.seq),
            refused: OrderRefusal::CODES.iter().map(|c| (*c, 0)).collect(),
            ..KillReport::default()
        };
        Ok(KillWatch {
            config,
            store,
            trust,
            gate,
            report: watch::Sender::new(report),
        })
    }

    /// Follows what the watch does.
    pub fn report(&self) -> watch::Receiver<KillReport> {
        self.report.subscribe()
    }

    /// Watches until `stop` resolves, reconnecting with backoff.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut backoff = Backoff::new(now_ms() ^ 0x6b69_6c6c);
        loop {
            let error = tokio::select! {
                () = &mut stop => return,
                e = self.watch_once(&mut backoff) => e,
            };
            tracing::warn!(error = %error, "kill bucket watch ended; reconnecting");
            self.report.send_modify(|r| {
                r.connected = false;
                r.last_error = Some(error);
            });
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// One connection and watch; returns why it ended.
    async fn watch_once(&mut self, backoff: &mut Backoff) -> String {
        let servers = match self
            .config
            .servers
            .iter()
            .map(|s| s.parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(s) => s,
            Err(e) => return format!("server address: {e}"),
        };
        // Every reconnection (to this server or another) reopens the watch: its consumer may
        // have lived on a server that is gone, and then it would wait silently forever.
        let (connected_tx, mut connected) = watch::channel(0u64);
        let client = match async_nats::ConnectOptions::new()
            .connection_timeout(KILL_CONNECT_TIMEOUT)
            .event_callback(move |event| {
                if matches!(event, async_nats::Event::Connected) {
                    connected_tx.send_modify(|n| *n = n.saturating_add(1));
                }
                async {}
            })
            .connect(servers)
            .await
        {
            Ok(c) => c,
            Err(e) => return format!("connect: {e}"),
        };
        let js = jetstream::new(client);
        let bucket = format!("{}_{KILL_BUCKET}", self.config.namespace);
        let kv = match js.get_key_value(bucket.as_str()).await {
            Ok(kv) => kv,
            Err(e) => return format!("kill bucket {bucket}: {e}"),
        };
        let keys = [
            KillScope::Fleet.key(),
            KillScope::Node(self.config.node.clone()).key(),
        ];
        let mut entries = match kv.watch_many_with_history(keys).await {
            Ok(w) => w,
            Err(e) => return format!("watch: {e}"),
        };
        backoff.reset();
        self.report.send_modify(|r| {
            r.connected = true;
            r.last_error = None;
        });
        tracing::info!(bucket, node = %self.config.node, "watching the kill bucket");
        connected.mark_unchanged();
        loop {
            let entry = tokio::select! {
                entry = entries.next() => entry,
                changed = connected.changed() => {
                    return match changed {
                        Ok(()) => "reconnected to NATS: reopening the watch".to_owned(),
                        Err(_) => "the NATS connection closed".to_owned(),
                    };
                }
            };
            match entry {
                Some(Ok(entry)) if entry.operation == kv::Operation::Put => {
                    self.entry(&entry.key, &entry.value).await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("watch: {e}"),
                None => return "the watch ended".to_owned(),
            }
        }
    }

    /// Verifies, admits, records and applies one value.
    async fn entry(&mut self, key: &str, value: &[u8]) {
        let at = now_ms();
        match self
            .gate
            .admit(&self.config.node, &self.trust, key, value, at)
        {
            Ok(Some(order)) => {
                let applied = KillApplied {
                    key: key.to_owned(),
                    seq: order.seq,
                    enabled: order.enabled,
                    clear: order.clear,
                    set_by: order.set_by.clone(),
                    reason: order.reason.clone(),
                    at_ms: at,
                };
                tracing::info!(key, seq = order.seq, enabled = order.enabled, clear = order.clear, by = %order.set_by, "kill order from the kill bucket");
                self.apply().await;
                let (fleet, node) = self.seqs();
                self.report.send_modify(|r| {
                    r.applied_total = r.applied_total.saturating_add(1);
                    r.last_applied = Some(applied);
                    r.fleet_seq = fleet;
                    r.node_seq = node;
                });
            }
            Ok(None) => {}
            Err(refusal) => {
                tracing::warn!(
                    key,
                    code = refusal.code(),
                    "kill order refused, keeping what this edge has: {refusal}"
                );
                self.report.send_modify(|r| {
                    let n = r.refused.entry(refusal.code()).or_insert(0);
                    *n = n.saturating_add(1);
                    r.last_refusal = Some(OrderRefusalReport {
                        at_ms: at,
                        code: refusal.code(),
                        message: format!("{key}: {refusal}"),
                    });
                });
            }
        }
    }

    /// Sets the module as the orders held say: the node's own (unless a clear), else the
    /// fleet's; nothing when the store already agrees.
    async fn apply(&self) {
        let Some(order) = self.gate.effective() else {
            return;
        };
        if self.store.snapshot().module_enabled == order.enabled {
            return;
        }
        let reason = format!(
            "kill bucket ({}, seq {}, by {}): {}",
            order.scope.key(),
            order.seq,
            order.set_by,
            order.reason
        );
        if !super::set_module(&self.store, order.enabled, reason).await {
            tracing::error!("could not apply the kill order; it applies on the next change");
        }
    }

    fn seqs(&self) -> (Option<u64>, Option<u64>) {
        (
            self.gate.last.get(&KillScope::Fleet.key()).map(|a| a.seq),
            self.gate
                .last
                .get(&KillScope::Node(self.config.node.clone()).key())
                .map(|a| a.seq),
        )
    }
}

// === impl KillGate ===

impl KillGate {
    fn open(dir: &Path) -> Result<Self, KillWatchError> {
        let path = dir.join(KILL_FILE);
        let last = match file::read_capped(&path, MAX_KILL_FILE_BYTES) {
            Ok(bytes) => {
                serde_json::from_slice::<BTreeMap<String, Applied>>(&bytes).map_err(|e| {
                    KillWatchError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?
            }
            Err(e) if e.is_not_found() => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(KillGate {
            path,
            last,
            fleet: None,
            node: None,
        })
    }

    /// The order to apply (`Some`: newer than the last under its key, now recorded), `None`
    /// for the one already applied (a watch opened again), or why it is refused.
    fn admit(
        &mut self,
        node: &str,
        trust: &Trust,
        key: &str,
        value: &[u8],
        now: u64,
    ) -> Result<Option<KillOrder>, OrderRefusal> {
        let envelope = KillOrder::envelope(value)?;
        let keyset = trust.keyset();
        keyset
            .check_expiry(now)
            .map_err(|e| OrderRefusal::KeysetExpired(e.to_string()))?;
        let (order, digest) = KillOrder::open(&envelope, keyset.director())?;
        let last = self.last.get(key).map(|a| (a.seq, a.digest));
        let new = order.admit(node, key, &digest, last)? == Admitted::New;
        if new {
            self.record(key, order.seq, digest)?;
        }
        match order.scope {
            KillScope::Fleet => self.fleet = Some(order.clone()),
            KillScope::Node(_) => self.node = Some(order.clone()),
        }
        Ok(new.then_some(order))
    }

    /// Records `seq` as the last applied under `key`, on disk first: an order a restart
    /// would forget could let a replay of an older one through.
    fn record(&mut self, key: &str, seq: u64, digest: Digest) -> Result<(), OrderRefusal> {
        let mut next = self.last.clone();
        next.insert(
            key.to_owned(),
            Applied {
                epoch: 0,
                seq,
                digest,
            },
        );
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        file::write_private(&self.path, &bytes)
            .map_err(|e| OrderRefusal::Unrecorded(e.to_string()))?;
        self.last = next;
        Ok(())
    }

    /// The order in force: the node's own unless it is a clear, else the fleet's.
    fn effective(&self) -> Option<&KillOrder> {
        match &self.node {
            Some(node) if !node.clear => Some(node),
            _ => self.fleet.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(scope: KillScope, seq: u64, enabled: bool, clear: bool) -> KillOrder {
        KillOrder {
            module: rampart_api::Module::Bot,
            enabled,
            clear,
            scope,
            reason: "r".into(),
            set_by: "t".into(),
            seq,
            issued_at_ms: seq,
        }
    }

    #[test]
    fn forged_replayed_and_other_nodes_orders_are_refused_and_nothing_changes() {
        use rampart_artifact::SecretKey;
        let dir = tempfile::tempdir().unwrap();
        let director = SecretKey::from_seed([2; 32]);
        let trust = crate::agent::order::tests::trust(dir.path(), &director);
        let now = crate::agent::order::tests::NOW;
        let mut gate = KillGate::open(dir.path()).unwrap();
        let value = |o: &KillOrder, k: &SecretKey| o.sign(k).to_json();
        let off = order(KillScope::Fleet, 10, false, false);
        let taken = gate.admit("a", &trust, "fleet", &value(&off, &director), now);
        assert_eq!(taken.unwrap().unwrap().seq, 10);
        // The same value again (a watch reopened): admitted, nothing to apply.
        let again = gate.admit("a", &trust, "fleet", &value(&off, &director), now);
        assert_eq!(again.unwrap(), None);
        let code = |r: Result<Option<KillOrder>, OrderRefusal>| r.unwrap_err().code();
        let forged = order(KillScope::Fleet, 11, true, false);
        let other = SecretKey::from_seed([3; 32]);
        assert_eq!(
            code(gate.admit("a", &trust, "fleet", &value(&forged, &other), now)),
            "unknown_key"
        );
        let old = order(KillScope::Fleet, 9, true, false);
        assert_eq!(
            code(gate.admit("a", &trust, "fleet", &value(&old, &director), now)),
            "older"
        );
        let b = order(KillScope::Node("b".into()), 12, true, false);
        assert_eq!(
            code(gate.admit("a", &trust, "node.a", &value(&b, &director), now)),
            "other_node"
        );
        assert_eq!(
            code(gate.admit("a", &trust, "fleet", b"{}", now)),
            "malformed"
        );
        assert_eq!(gate.last.get("fleet").map(|a| a.seq), Some(10));
        assert!(!gate.effective().unwrap().enabled);
        // A restarted gate still refuses the older one.
        let mut restarted = KillGate::open(dir.path()).unwrap();
        assert_eq!(
            code(restarted.admit("a", &trust, "fleet", &value(&old, &director), now)),
            "older"
        );
    }

    #[test]
    fn the_node_order_wins_unless_it_clears_and_records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut gate = KillGate::open(dir.path()).unwrap();
        assert!(gate.effective().is_none());
        gate.fleet = Some(order(KillScope::Fleet, 1, false, false));
        assert!(!gate.effective().unwrap().enabled);
        gate.node = Some(order(KillScope::Node("a".into()), 2, true, false));
        assert!(gate.effective().unwrap().enabled);
        gate.node = Some(order(KillScope::Node("a".into()), 3, true, true));
        assert!(!gate.effective().unwrap().enabled);
        gate.record("fleet", 7, Digest::of(b"x")).unwrap();
        let again = KillGate::open(dir.path()).unwrap();
        assert_eq!(again.last.get("fleet").map(|a| a.seq), Some(7));
        std::fs::write(dir.path().join(KILL_FILE), b"nope").unwrap();
        assert!(matches!(
            KillGate::open(dir.path()),
            Err(KillWatchError::Corrupt { .. })
        ));
        let mut lost = KillGate::open(&dir.path().join("gone")).unwrap();
        assert_eq!(
            lost.record("fleet", 1, Digest::of(b"x"))
                .unwrap_err()
                .code(),
            "unrecorded"
        );
    }
}
