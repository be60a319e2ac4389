//! Durable state behind one trait, so the rollout driver and the API never see SQL.
//!
//! Every change is a [`Batch`] of [`Write`]s applied atomically: a reconcile's new rollout
//! state, the desired versions it sets, the digest it marks bad and its audit entry land
//! together or not at all. An answer is sent only after its batch is durable (SQLite:
//! `synchronous=FULL`), so nothing acknowledged is lost to a SIGKILL. Heartbeats are the
//! exception by design: they are level-based (the next beat repeats the state), so they are
//! written in batches and may lose the last fraction of a second.
//!
//! Two backends: [`SqliteStore`] (one file, the default) and [`NatsStore`] (a replicated
//! commit log on NATS JetStream, replayed into the same SQLite model, so every write means
//! the same thing in both); [`AnyStore`] picks one at start. One conformance suite
//! (`crates/control/tests/store_conformance.rs`) runs against both.

pub mod any;
pub mod nats;
pub mod sqlite;

use std::future::Future;

use rampart_api::{
    ArtifactMeta, AuditEntry, BadMark, Heartbeat, KillSwitchEntry, Module, Registration,
};
use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

pub use any::{AnyStore, StoreSpec};
pub use nats::{NatsConfig, NatsStore};
pub use sqlite::SqliteStore;

/// A stored artifact: its metadata and its exact signed bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Metadata (the digest is the key).
    pub meta: ArtifactMeta,
    /// The bytes as published.
    pub bytes: Vec<u8>,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// What it registered.
    pub registration: Registration,
    /// When it first registered, ms since the Unix epoch.
    pub registered_at_ms: u64,
}

/// A one-time bootstrap token as stored: its hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    /// sha256 of the token.
    pub hash: Digest,
    /// The node it enrolls.
    pub node: String,
    /// The admin who issued it.
    pub issued_by: String,
    /// When, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// When it stops working, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// A node's latest heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeatRecord {
    /// The node.
    pub node: String,
    /// When it arrived (control plane clock), ms since the Unix epoch.
    pub at_ms: u64,
    /// What it said.
    pub beat: Heartbeat,
}

/// A version and digest that a node (or the fleet) should serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The version.
    pub version: u64,
    /// Its digest.
    pub digest: Digest,
}

/// A rollout as stored: the columns the store indexes, and an opaque state that only the
/// driver reads (the rollout machine's state and its observations, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Its id, from 1.
    pub id: u64,
    /// The artifact kind: at most one rollout per kind is not `done`.
    pub kind: String,
    /// The digest rolled out.
    pub digest: Digest,
    /// Whether it reached a final phase.
    pub done: bool,
    /// Everything else, owned by the driver.
    pub state: serde_json::Value,
}

/// An audit entry before the store gives it a sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAudit {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who (a token name, or `control`).
    pub who: String,
    /// What (a stable verb).
    pub action: String,
    /// On what.
    pub subject: String,
    /// Why.
    pub reason: Option<String>,
    /// The numbers.
    pub detail: serde_json::Value,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Write {
    /// Store an artifact; nothing happens when the digest is stored already. Fails the whole
    /// batch with [`StoreError::MarkedBad`] when the digest is marked bad.
    PutArtifact(Box<ArtifactRecord>),
    /// Mark a stored digest bad (idempotent: the first mark stays).
    MarkBad {
        /// The digest.
        digest: Digest,
        /// Why and when.
        mark: BadMark,
    },
    /// Register or re-register a node.
    PutNode(Box<NodeRecord>),
    /// Set what a node (`Some`) or the whole fleet (`None`) should serve; `None` target
    /// removes a node's own setting so it follows the fleet.
    SetDesired {
        /// The artifact kind.
        kind: String,
        /// The node, or the fleet.
        node: Option<String>,
        /// The target.
        target: Option<Target>,
    },
    /// Remove every node's own desired setting of a kind (a rollout finished: all follow the
    /// fleet again).
    ClearNodeDesired {
        /// The artifact kind.
        kind: String,
    },
    /// Set a kill switch (fleet when `entry.node` is `None`).
    SetKillSwitch(KillSwitchEntry),
    /// Remove a node's kill-switch override.
    ClearKillSwitch {
        /// The module.
        module: Module,
        /// The node.
        node: String,
    },
    /// Create or replace a rollout. Fails the batch with [`StoreError::Conflict`] when
    /// another rollout of the same kind is not done.
    PutRollout(Box<RolloutRecord>),
    /// Append to the audit log.
    Audit(NewAudit),
    /// Store a bootstrap token's hash.
    PutEnrollment(EnrollmentRecord),
    /// Burn a bootstrap token: it was used (or must never be).
    BurnEnrollment {
        /// Its hash.
        hash: Digest,
        /// When, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Set (or replace) a node's credential hash.
    PutCredential {
        /// The node.
        node: String,
        /// sha256 of the credential.
        hash: Digest,
        /// When, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Remove a node: its registration (and so its contract), heartbeats, own desired
    /// targets, own kill switches and credential.
    RemoveNode {
        /// The node.
        node: String,
    },
    /// Raise the order sequence by one: the batch changes what some node must do (the
    /// service adds it, see [`Batch::changes_orders`]), so its signed orders get a new
    /// `seq` in the same transaction as the change.
    NextOrder {
        /// When, ms since the Unix epoch: the `issued_at_ms` of the orders of this `seq`.
        at_ms: u64,
    },
    /// Bless a version: its rollout finished its watch. Only the newest
    /// [`MAX_BLESSED`](rampart_api::limits::MAX_BLESSED) blessings are kept.
    Bless {
        /// The artifact kind.
        kind: String,
        /// The version.
        version: u64,
        /// Its digest.
        digest: Digest,
        /// When, ms since the Unix epoch.
        at_ms: u64,
        /// The rollout that blessed it.
        rollout: u64,
    },
    /// Withdraw a blessing (the version was rolled back after its watch).
    Unbless {
        /// The digest.
        digest: Digest,
    },
    /// Add deaths and node-time to versions' records (heartbeats since the last flush).
    AddRecords(Vec<(Digest, rampart_rollout::Exposure)>),
    /// Set the control plane's epoch (first start, `--reinitialize`); the sequence is kept.
    SetEpoch {
        /// The epoch.
        epoch: u64,
        /// When, ms since the Unix epoch.
        at_ms: u64,
    },
}

/// The order counter as stored: the epoch of this control plane and the sequence of its
/// last change of desired state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderState {
    /// The epoch.
    pub epoch: u64,
    /// The sequence.
    pub seq: u64,
    /// When the sequence last moved, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Writes applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// In order.
    pub writes: Vec<Write>,
}

/// Everything the service keeps in memory, read once at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// Registered nodes.
    pub nodes: Vec<NodeRecord>,
    /// Each node's latest heartbeat.
    pub beats: Vec<BeatRecord>,
    /// Desired targets: (kind, node or fleet, target).
    pub desired: Vec<(String, Option<String>, Target)>,
    /// Kill-switch settings.
    pub kill_switches: Vec<KillSwitchEntry>,
    /// Rollouts not done.
    pub active_rollouts: Vec<RolloutRecord>,
    /// The highest rollout id ever used (0: none).
    pub last_rollout_id: u64,
    /// Bootstrap tokens not yet used.
    pub enrollments: Vec<EnrollmentRecord>,
    /// Each enrolled node's credential hash.
    pub credentials: Vec<(String, Digest)>,
    /// The order counter; `None` in a database that never had one (new, or emptied).
    pub order: Option<OrderState>,
    /// Blessed versions: (kind, version), newest first.
    pub blessed: Vec<(String, rampart_api::Active)>,
    /// Deaths and node-time per version.
    pub records: Vec<(Digest, rampart_rollout::Exposure)>,
    /// The latest finished rollout of each kind (aftercare resumes from it).
    pub finished: Vec<RolloutRecord>,
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The artifact is marked bad.
    #[error("artifact {0} is marked bad")]
    MarkedBad(Digest),
    /// The write conflicts with the stored state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value cannot be read back (a bug, or a file edited by hand).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The backend failed (disk full, I/O error, lock).
    #[error("store failure: {0}")]
    Backend(String),
}

/// The durable state of a control plane.
///
/// Implementations are shared by every request (`Send + Sync`), serialize batches, and
/// must not block the async runtime (SQLite runs on the blocking pool).
pub trait Store: Send + Sync + 'static {
    /// Everything the service keeps in memory.
    fn load(&self) -> impl Future<Output = Result<Loaded, StoreError>> + Send;

    /// Applies a batch atomically and durably.
    fn commit(&self, batch: Batch) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts a kill switch, signed with `key`, where edges watch for it without the control
    /// plane (the NATS kill bucket); answers the order as written (with its `seq`), or
    /// `None` for a backend without such a place (SQLite).
    fn put_kill_order(
        &self,
        order: rampart_api::KillOrder,
        key: std::sync::Arc<rampart_artifact::SecretKey>,
    ) -> impl Future<Output = Result<Option<rampart_api::KillOrder>, StoreError>> + Send {
        let _ = (order, key);
        async { Ok(None) }
    }

    /// Every key where [`Store::put_kill_order`] puts kill orders, with the values it keeps
    /// (oldest first); empty for a backend without such a place (SQLite).
    fn kill_values(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, Vec<bytes::Bytes>)>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Records heartbeats (latest per node, and a bounded window of recent ones per node).
    /// Not necessarily durable at return (see the module docs).
    fn record_beats(
        &self,
        beats: Vec<BeatRecord>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A node's recent heartbeats, newest first (at most the window).
    fn recent_beats(
        &self,
        node: String,
    ) -> impl Future<Output = Result<Vec<BeatRecord>, StoreError>> + Send;

    /// One artifact with its bytes.
    fn artifact(
        &self,
        digest: Digest,
    ) -> impl Future<Output = Result<Option<ArtifactRecord>, StoreError>> + Send;

    /// One artifact's metadata.
    fn artifact_meta(
        &self,
        digest: Digest,
    ) -> impl Future<Output = Result<Option<ArtifactMeta>, StoreError>> + Send;

    /// The stored artifact of `kind` with exactly `version`, if any (a publish refuses a
    /// second, different artifact with a version already stored: edges would refuse it).
    fn artifact_at(
        &self,
        kind: String,
        version: u64,
    ) -> impl Future<Output = Result<Option<ArtifactMeta>, StoreError>> + Send;

    /// The stored artifact of `kind` with the highest version below `version`.
    fn artifact_before(
        &self,
        kind: String,
        version: u64,
    ) -> impl Future<Output = Result<Option<ArtifactMeta>, StoreError>> + Send;

    /// Artifacts, newest first.
    fn artifacts(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ArtifactMeta>, StoreError>> + Send;

    /// One rollout.
    fn rollout(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<RolloutRecord>, StoreError>> + Send;

    /// Rollouts, newest first.
    fn rollouts(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RolloutRecord>, StoreError>> + Send;

    /// Audit entries with `seq > after`, oldest first.
    fn audit(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
}

// === impl Batch ===

impl Batch {
    /// A batch of one write.
    pub fn one(write: Write) -> Self {
        Batch {
            writes: vec![write],
        }
    }

    /// Adds a write.
    pub fn push(&mut self, write: Write) -> &mut Self {
        self.writes.push(write);
        self
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Whether a write changes what some node must do (desired versions, kill switches):
    /// such a batch must raise the order sequence.
    pub fn changes_orders(&self) -> bool {
        self.writes.iter().any(|w| {
            matches!(
                w,
                Write::SetDesired { .. }
                    | Write::ClearNodeDesired { .. }
                    | Write::SetKillSwitch(_)
                    | Write::ClearKillSwitch { .. }
                    | Write::Bless { .. }
                    | Write::Unbless { .. }
            )
        })
    }
}
