//! The backend chosen at start: SQLite (the default, one file) or NATS JetStream.

use rampart_api::{ArtifactMeta, AuditEntry};
use rampart_artifact::Digest;

use super::{
    ArtifactRecord, Batch, BeatRecord, Loaded, NatsConfig, NatsStore, RolloutRecord, SqliteStore,
    Store, StoreError,
};

/// Where the control plane keeps its state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSpec {
    /// SQLite in the data dir (the default).
    #[default]
    Sqlite,
    /// NATS JetStream.
    Nats(NatsConfig),
}

/// One of the backends, behind the one trait.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// NATS JetStream (boxed: its clients are large).
    Nats(Box<NatsStore>),
}

// === impl StoreSpec ===

impl StoreSpec {
    /// Parses `--store`: `sqlite`, or `nats://HOST:PORT[,HOST:PORT…]`.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text == "sqlite" {
            Ok(StoreSpec::Sqlite)
        } else {
            NatsConfig::parse(text).map(StoreSpec::Nats)
        }
    }
}

// === impl AnyStore ===

impl AnyStore {
    /// Opens the store `spec` names (SQLite in `data_dir`). The data dir is created in every
    /// case: it holds the epoch file (and TLS files) whatever the store.
    pub async fn open(spec: &StoreSpec, data_dir: &std::path::Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(format!("create {}: {e}", data_dir.display())))?;
        match spec {
            StoreSpec::Sqlite => SqliteStore::open(data_dir).map(AnyStore::Sqlite),
            StoreSpec::Nats(config) => NatsStore::open(config)
                .await
                .map(|s| AnyStore::Nats(Box::new(s))),
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Nats($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        each!(self, s => s.load().await)
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        each!(self, s => s.commit(batch).await)
    }

    async fn put_kill_order(
        &self,
        order: rampart_api::KillOrder,
        key: std::sync::Arc<rampart_artifact::SecretKey>,
    ) -> Result<Option<rampart_api::KillOrder>, StoreError> {
        each!(self, s => s.put_kill_order(order, key).await)
    }

    async fn kill_values(&self) -> Result<Vec<(String, Vec<bytes::Bytes>)>, StoreError> {
        each!(self, s => s.kill_values().await)
    }

    async fn record_beats(&self, beats: Vec<BeatRecord>) -> Result<(), StoreError> {
        each!(self, s => s.record_beats(beats).await)
    }

    async fn recent_beats(&self, node: String) -> Result<Vec<BeatRecord>, StoreError> {
        each!(self, s => s.recent_beats(node).await)
    }

    async fn artifact(&self, digest: Digest) -> Result<Option<ArtifactRecord>, StoreError> {
        each!(self, s => s.artifact(digest).await)
    }

    async fn artifact_meta(&self, digest: Digest) -> Result<Option<ArtifactMeta>, StoreError> {
        each!(self, s => s.artifact_meta(digest).await)
    }

    async fn artifact_at(
        &self,
        kind: String,
        version: u64,
    ) -> Result<Option<ArtifactMeta>, StoreError> {
        each!(self, s => s.artifact_at(kind, version).await)
    }

    async fn artifact_before(
        &self,
        kind: String,
        version: u64,
    ) -> Result<Option<ArtifactMeta>, StoreError> {
        each!(self, s => s.artifact_before(kind, version).await)
    }

    async fn artifacts(&self, limit: usize) -> Result<Vec<ArtifactMeta>, StoreError> {
        each!(self, s => s.artifacts(limit).await)
    }

    async fn rollout(&self, id: u64) -> Result<Option<RolloutRecord>, StoreError> {
        each!(self, s => s.rollout(id).await)
    }

    async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        each!(self, s => s.rollouts(limit).await)
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        each!(self, s => s.audit(after, limit).await)
    }
}
