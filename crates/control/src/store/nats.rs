//! The NATS JetStream backend: one replicated commit log, replayed into the SQLite model.
//!
//! - **The log** (`{ns}_LOG`, replicas `min(3, servers)`): every [`Batch`] is one message,
//!   appended with `Nats-Expected-Last-Sequence` set to the last sequence this store has
//!   applied (the **fence**: a second writer, or one that missed a message, is refused and
//!   stays refused) and `Nats-Msg-Id` (**de-duplication**: a publish whose answer timed out is
//!   retried with the same id for up to [`PUBLISH_RETRY`], so it lands once).
//! - **The model**: state is the log replayed into a private SQLite file through the very
//!   same `apply` as [`SqliteStore`], so a write means one thing in both backends; a batch
//!   is checked against the model before it is appended, so the log holds only batches that
//!   apply. Every [`SNAPSHOT_EVERY`] messages the model is copied into an object
//!   (`{ns}_SNAPSHOTS`), so opening replays only what came after.
//! - **Artifacts** (bytes) live in an object store (`{ns}_ARTIFACTS`) named by digest, put
//!   before the batch that references them is appended; the log carries metadata only.
//! - **Heartbeats** live in a KV bucket (`{ns}_BEATS`, history [`BEAT_WINDOW`]): they are
//!   level-based and too frequent for the log.
//!
//! An answer is sent only after the log acknowledged the batch (stored on a majority of the
//! replicas), so nothing acknowledged is lost when this process or a minority of NATS
//! servers dies.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::ServerAddr;
use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use rampart_api::{ArtifactMeta, AuditEntry};
use rampart_artifact::Digest;
use tokio::io::AsyncReadExt;

pub mod kill;

use super::sqlite::{BEAT_WINDOW, DB_FILE, SqliteStore};
use super::{ArtifactRecord, Batch, BeatRecord, Loaded, RolloutRecord, Store, StoreError, Write};

/// The namespace of stream, bucket and subject names when none is given.
pub const DEFAULT_NAMESPACE: &str = "RAMPART";

/// At most this many replicas of the log, buckets and object stores.
pub const MAX_REPLICAS: usize = 3;

/// A publish whose acknowledgement timed out (or found no stream leader) is retried with
/// the same message id for this long before the commit fails.
pub const PUBLISH_RETRY: Duration = Duration::from_secs(10);

/// Opening the store (connect, create, replay) is retried for this long.
pub const OPEN_RETRY: Duration = Duration::from_secs(10);

/// Pause between two attempts of a publish (or of an open).
pub const PUBLISH_BACKOFF: Duration = Duration::from_millis(100);

/// How long one JetStream request (publish, get, create) waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long connecting to the NATS servers may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The log's de-duplication window: a retried message id is recognised for this long
/// (longer than [`PUBLISH_RETRY`]).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The model is copied into the snapshot object after this many log messages.
pub const SNAPSHOT_EVERY: u64 = 1_000;

/// Replaying the log at open waits at most this long for its next message.
pub const REPLAY_IDLE: Duration = Duration::from_secs(10);

/// Log messages applied to the model in one SQLite transaction while replaying.
pub const REPLAY_CHUNK: usize = 1_000;

/// Heartbeats written to the KV bucket concurrently.
pub const BEAT_PUTS_IN_FLIGHT: usize = 64;

/// How long a leader lease lasts without renewal: the lease bucket's `max_age`, so the
/// servers drop an unrenewed lease by themselves. At most 5 s (issue 15).
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// The leader renews its lease (and a follower looks for a free one, and follows the log)
/// this often: a third of [`LEASE_TTL`], so two renewals may fail before the lease lapses.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);

/// The key of the lease in its bucket.
const LEASE_KEY: &str = "leader";

/// The header naming the lease epoch (the revision of the lease's creation) a log message
/// was appended under.
const LEASE_HEADER: &str = "Rampart-Lease";

/// A new leader retries appending its lease marker this many times when the log moves
/// under it (the deposed leader's last append).
const MARKER_ATTEMPTS: usize = 5;

/// The name of the snapshot object in its store.
const SNAPSHOT_OBJECT: &str = "model";

/// Where a NATS store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port`), any of the cluster's.
    pub servers: Vec<String>,
    /// Replicas of the log and buckets; `None`: `min(MAX_REPLICAS, servers.len())`.
    pub replicas: Option<usize>,
    /// Prefix of every stream and bucket name (`{ns}_LOG`, …); several control planes can
    /// share one cluster under different namespaces.
    pub namespace: String,
}

/// The NATS JetStream store.
#[derive(Clone)]
pub struct NatsStore {
    model: SqliteStore,
    /// The model's private directory, removed with the last clone.
    _model_dir: Arc<tempfile::TempDir>,
    js: jetstream::Context,
    log_stream: String,
    log_subject: String,
    artifacts: object_store::ObjectStore,
    snapshots: object_store::ObjectStore,
    beats: kv::Store,
    beats_bucket: String,
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// The leader lease bucket (`{ns}_LEASE`, `max_age` [`LEASE_TTL`]).
    lease: kv::Store,
    /// The kill-switch bucket edges watch (`{ns}_KILL`, see [`kill`]).
    kills: kv::Store,
    /// The namespace of every name above.
    namespace: String,
    /// The artifacts bucket's name.
    artifacts_name: String,
    standing: Arc<std::sync::Mutex<Standing>>,
    /// Serializes snapshot uploads; holds the sequence of the newest one stored.
    uploaded: Arc<tokio::sync::Mutex<u64>>,
}

/// The single writer's position in the log.
#[derive(Debug)]
struct Writer {
    /// This store's id, the prefix of its message ids.
    id: String,
    /// The last log sequence applied to the model.
    last_seq: u64,
    /// Messages since the last snapshot.
    since_snapshot: u64,
    /// Why this store may no longer write (fenced by another writer, or an outcome it could
    /// not learn); reads still work.
    refused: Option<String>,
}

/// This store's standing in the leader election. Its own lock, not the writer's: a
/// renewal must not wait behind an append that retries for [`PUBLISH_RETRY`].
#[derive(Debug, Default)]
struct Standing {
    /// `true` once [`NatsStore::try_lead`] was called: writes need a held lease, and a
    /// fence drops the lease (the store follows the log again) instead of refusing forever.
    ha: bool,
    /// The lease this store holds, if any.
    held: Option<Held>,
    /// The newest lease epoch seen in the log (in a marker or an append's header).
    newest_epoch: u64,
}

/// A lease held by this store.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// The revision the lease was created at: the epoch every append carries; a newer
    /// leader's epoch is larger (KV revisions only grow).
    epoch: u64,
    /// The lease's current revision, for the next compare-and-set renewal.
    revision: u64,
    /// When the lease lapses unless renewed: measured from before the request that
    /// created or renewed it, so this store gives up no later than the servers do.
    until: Instant,
}

/// Who holds the leader lease: the value of the lease key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseHolder {
    /// The replica's id (unique per process).
    pub id: String,
    /// Where its API answers (`http://…` or `https://…`).
    pub url: String,
}

/// Why an append did not land where expected.
#[derive(Debug)]
enum Append {
    /// Nothing was sent: the store may go on writing.
    NotSent(StoreError),
    /// Fenced, or the outcome is unknown: the store stops writing.
    Stop(StoreError),
}

// === impl NatsConfig ===

impl NatsConfig {
    /// Parses `nats://HOST:PORT[,HOST:PORT…]` (each may carry its own `nats://`).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("nats://")
            .ok_or_else(|| StoreError::Backend(format!("{url}: expected nats://HOST:PORT")))?;
        let servers: Vec<String> = rest
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let s = s.strip_prefix("nats://").unwrap_or(s);
                format!("nats://{s}")
            })
            .collect();
        if servers.is_empty() {
            return Err(StoreError::Backend(format!("{url}: no server")));
        }
        for s in &servers {
            s.parse::<ServerAddr>()
                .map_err(|e| StoreError::Backend(format!("{s}: {e}")))?;
        }
        Ok(NatsConfig {
            servers,
            replicas: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
        })
    }

    /// The replicas used: the given number, or one per server up to [`MAX_REPLICAS`].
    pub fn replicas(&self) -> usize {
        self.replicas
            .unwrap_or(self.servers.len())
            .clamp(1, MAX_REPLICAS)
    }
}

// === impl NatsStore ===

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("log", &self.log_stream)
            .field("model", &self.model.path())
            .finish_non_exhaustive()
    }
}

impl NatsStore {
    /// Connects, creates the log and buckets when missing, and rebuilds the model from the
    /// newest snapshot and the log after it.
    ///
    /// Retried for up to [`OPEN_RETRY`]: a cluster that just started (or lost a server) has
    /// no stream leader for a moment, and answers "no responders".
    pub async fn open(config: &NatsConfig) -> Result<Self, StoreError> {
        let deadline = Instant::now() + OPEN_RETRY;
        loop {
            match Self::open_once(config).await {
                Ok(store) => return Ok(store),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("opening the NATS store, retrying: {e}");
                    tokio::time::sleep(PUBLISH_BACKOFF).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn open_once(config: &NatsConfig) -> Result<Self, StoreError> {
        let js = connect(config).await?;
        let ns = &config.namespace;
        let replicas = config.replicas();
        let log_stream = format!("{ns}_LOG");
        let log_subject = format!("{}.log", ns.to_lowercase());
        let mut log = js
            .get_or_create_stream(stream::Config {
                name: log_stream.clone(),
                subjects: vec![log_subject.clone()],
                num_replicas: replicas,
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| nats("create the log", e))?;
        let artifacts = object_store(
            &js,
            format!("{ns}_{}", rampart_api::nats_link::ARTIFACTS_BUCKET),
            replicas,
        )
        .await?;
        let snapshots = object_store(&js, format!("{ns}_SNAPSHOTS"), replicas).await?;
        let beats_name = format!("{ns}_BEATS");
        let beats = beats_bucket(&js, beats_name.clone(), replicas).await?;
        let lease = lease_bucket(&js, format!("{ns}_LEASE"), replicas).await?;
        let kills = kill::bucket(&js, ns, replicas).await?;

        let model_dir = tempfile::Builder::new()
            .prefix("rampart-nats-model")
            .tempdir()
            .map_err(|e| StoreError::Backend(format!("model dir: {e}")))?;
        let snap_seq = restore_snapshot(&snapshots, model_dir.path()).await?;
        let model = SqliteStore::open_cache(model_dir.path())?;
        let last = log
            .info()
            .await
            .map_err(|e| nats("log info", e))?
            .state
            .last_sequence;
        let newest_epoch = if last > snap_seq {
            replay(&log, &model, snap_seq, last).await?
        } else {
            0
        };
        let id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        Ok(NatsStore {
            model,
            _model_dir: Arc::new(model_dir),
            js,
            log_stream,
            log_subject,
            artifacts,
            snapshots,
            beats,
            beats_bucket: beats_name,
            lease,
            kills,
            namespace: ns.clone(),
            artifacts_name: format!("{ns}_{}", rampart_api::nats_link::ARTIFACTS_BUCKET),
            writer: Arc::new(tokio::sync::Mutex::new(Writer {
                id,
                last_seq: last,
                since_snapshot: last.saturating_sub(snap_seq),
                refused: None,
            })),
            standing: Arc::new(std::sync::Mutex::new(Standing {
                newest_epoch,
                ..Standing::default()
            })),
            uploaded: Arc::new(tokio::sync::Mutex::new(snap_seq)),
        })
    }

    /// The last log sequence applied to the model.
    pub async fn last_seq(&self) -> u64 {
        self.writer.lock().await.last_seq
    }

    /// The standing, even if a thread panicked holding it (it holds plain values).
    fn standing(&self) -> std::sync::MutexGuard<'_, Standing> {
        self.standing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lease epoch an append is made under (0 without an election), or why this store
    /// may not write: under an election, only while it holds an unexpired lease and has seen
    /// no newer leader's marker in the log.
    fn may_write(&self) -> Result<u64, StoreError> {
        let mut standing = self.standing();
        if !standing.ha {
            return Ok(0);
        }
        match standing.held {
            Some(held) if Instant::now() < held.until && standing.newest_epoch <= held.epoch => {
                Ok(held.epoch)
            }
            Some(_) => {
                standing.held = None;
                Err(StoreError::Conflict(
                    "not the leader: the lease lapsed or another replica took it".to_owned(),
                ))
            }
            None => Err(StoreError::Conflict("not the leader".to_owned())),
        }
    }

    /// Drops the lease, if any, when under an election; returns whether under one.
    fn step_down(&self, why: &str) -> bool {
        let mut standing = self.standing();
        if standing.ha && standing.held.take().is_some() {
            tracing::warn!("leader lease dropped: {why}");
        }
        standing.ha
    }

    /// The object store of artifact bytes (`{ns}_ARTIFACTS`).
    fn artifacts_bucket(&self) -> &str {
        &self.artifacts_name
    }

    /// The NATS connection and the namespace, for the control API over NATS
    /// ([`crate::nats_api`]).
    pub fn api_link(&self) -> (async_nats::Client, String) {
        (self.js.client(), self.namespace.clone())
    }

    /// Whether this store holds an unexpired leader lease.
    pub fn is_leader(&self) -> bool {
        let standing = self.standing();
        standing
            .held
            .is_some_and(|h| Instant::now() < h.until && standing.newest_epoch <= h.epoch)
    }

    /// The lease's holder, as the bucket says now (`None`: the lease is free).
    pub async fn leader(&self) -> Result<Option<LeaseHolder>, StoreError> {
        match self
            .lease
            .get(LEASE_KEY)
            .await
            .map_err(|e| nats("read the lease", e))?
        {
            Some(value) => from_json(&value).map(Some),
            None => Ok(None),
        }
    }

    /// Takes the leader lease if it is free: creates the lease key (refused by the servers
    /// when it exists), catches up with the log, and appends a **marker** (an empty batch
    /// under the new lease epoch) at the end of the log. From the marker on, a deposed
    /// leader cannot append: its expected last sequence is behind the marker, and if it
    /// followed the log up to the marker it saw the newer epoch. Returns whether this
    /// store leads.
    pub async fn try_lead(&self, me: &LeaseHolder) -> Result<bool, StoreError> {
        self.standing().ha = true;
        if self.is_leader() {
            return Ok(true);
        }
        let value = serde_json::to_vec(me)
            .map_err(|e| StoreError::Corrupt(format!("encode the lease: {e}")))?;
        let started = Instant::now();
        let epoch = match self.lease.create(LEASE_KEY, Bytes::from(value)).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(nats("create the lease", e)),
        };
        let until = started + LEASE_TTL;
        let marker = serde_json::to_vec(&Batch::default())
            .map_err(|e| StoreError::Corrupt(format!("encode the marker: {e}")))?;
        let mut writer = self.writer.lock().await;
        for _ in 0..MARKER_ATTEMPTS {
            self.catch_up(&mut writer).await?;
            if Instant::now() >= until {
                break;
            }
            let expected = writer.last_seq;
            let id = format!("{}-{}", writer.id, expected + 1);
            match self
                .append(&id, expected, epoch, Bytes::from(marker.clone()))
                .await
            {
                Ok(seq) => {
                    writer.last_seq = seq;
                    let mut standing = self.standing();
                    standing.newest_epoch = standing.newest_epoch.max(epoch);
                    standing.held = Some(Held {
                        epoch,
                        revision: epoch,
                        until,
                    });
                    tracing::info!(epoch, seq, "took the leader lease");
                    return Ok(true);
                }
                // The deposed leader's last append, or an unknown outcome: catch up, retry.
                Err(Append::NotSent(e) | Append::Stop(e)) => {
                    tracing::debug!("lease marker not appended, retrying: {e}");
                }
            }
        }
        Err(StoreError::Backend(
            "took the lease but could not append its marker in time".to_owned(),
        ))
    }

    /// Renews the held lease (compare-and-set on its revision). Returns whether this store
    /// still leads; a failed renewal, or one that meets another holder, drops the lease.
    pub async fn renew(&self, me: &LeaseHolder) -> Result<bool, StoreError> {
        let Some(held) = self.standing().held else {
            return Ok(false);
        };
        let started = Instant::now();
        if started >= held.until {
            self.step_down("it lapsed before it was renewed");
            return Ok(false);
        }
        let value = serde_json::to_vec(me)
            .map_err(|e| StoreError::Corrupt(format!("encode the lease: {e}")))?;
        match self
            .lease
            .update(LEASE_KEY, Bytes::from(value), held.revision)
            .await
        {
            Ok(revision) => {
                let mut standing = self.standing();
                if let Some(h) = standing.held.as_mut()
                    && h.epoch == held.epoch
                {
                    h.revision = revision;
                    h.until = started + LEASE_TTL;
                }
                drop(standing);
                Ok(self.is_leader())
            }
            Err(e) => {
                self.step_down(&format!("renewal failed: {e}"));
                Ok(false)
            }
        }
    }

    /// Applies the log's new messages to the model (a follower's loop; the leader's too, to
    /// notice a newer leader's marker). Returns whether anything was applied.
    pub async fn follow(&self) -> Result<bool, StoreError> {
        let mut writer = self.writer.lock().await;
        self.catch_up(&mut writer).await
    }

    async fn catch_up(&self, writer: &mut Writer) -> Result<bool, StoreError> {
        let mut log = self
            .js
            .get_stream(&self.log_stream)
            .await
            .map_err(|e| nats("get the log", e))?;
        let last = log
            .info()
            .await
            .map_err(|e| nats("log info", e))?
            .state
            .last_sequence;
        if last <= writer.last_seq {
            return Ok(false);
        }
        let epoch = replay(&log, &self.model, writer.last_seq, last).await?;
        writer.since_snapshot += last - writer.last_seq;
        writer.last_seq = last;
        let mut standing = self.standing();
        standing.newest_epoch = standing.newest_epoch.max(epoch);
        if let Some(held) = standing.held
            && standing.newest_epoch > held.epoch
        {
            standing.held = None;
            tracing::warn!(
                newest = standing.newest_epoch,
                mine = held.epoch,
                "a newer leader's marker is in the log: stepping down"
            );
        }
        Ok(true)
    }

    /// Appends one encoded batch at `expected + 1`, retrying with the same message id.
    /// Returns the sequence it landed at; [`StoreError::Conflict`] when fenced.
    async fn append(
        &self,
        id: &str,
        expected: u64,
        epoch: u64,
        payload: Bytes,
    ) -> Result<u64, Append> {
        let deadline = Instant::now() + PUBLISH_RETRY;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(id)
                .expected_last_sequence(expected)
                .header(LEASE_HEADER, epoch.to_string().as_str());
            let ack = match self
                .js
                .send_publish(self.log_subject.clone(), publish)
                .await
            {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match ack {
                Ok(ack) if ack.sequence == expected + 1 => return Ok(ack.sequence),
                Ok(ack) => {
                    return Err(Append::Stop(StoreError::Conflict(format!(
                        "fenced: the log placed this batch at {} instead of {}",
                        ack.sequence,
                        expected + 1
                    ))));
                }
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::MaxPayloadExceeded => {
                    // Refused by the client before sending: nothing can have landed.
                    return Err(Append::NotSent(StoreError::Backend(format!(
                        "a batch of {} bytes is larger than the servers' max_payload: {e}",
                        payload.len()
                    ))));
                }
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    // Either another writer appended, or an earlier attempt of ours landed
                    // and its answer was lost: the message at `expected + 1` tells which.
                    return match self.landed(id, expected + 1).await {
                        Ok(true) => Ok(expected + 1),
                        Ok(false) => Err(Append::Stop(StoreError::Conflict(format!(
                            "fenced: the log moved past {expected} (another writer)"
                        )))),
                        Err(e) => Err(Append::Stop(e)),
                    };
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(PUBLISH_BACKOFF).await;
        }
        Err(Append::Stop(StoreError::Backend(format!(
            "append to the log: no acknowledgement within {PUBLISH_RETRY:?}: {last_error}"
        ))))
    }

    /// Whether the log's message at `seq` is ours (message id `id`).
    async fn landed(&self, id: &str, seq: u64) -> Result<bool, StoreError> {
        let log = self
            .js
            .get_stream(&self.log_stream)
            .await
            .map_err(|e| nats("get the log", e))?;
        match log.get_raw_message(seq).await {
            Ok(m) => Ok(m
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .is_some_and(|v| v.as_str() == id)),
            Err(_) => Ok(false),
        }
    }

    /// Puts the bytes of every artifact of the batch into the object store (once per
    /// digest) and returns the batch as logged: metadata only.
    async fn put_artifacts(&self, batch: &Batch) -> Result<Batch, StoreError> {
        let mut logged = Batch::default();
        for w in &batch.writes {
            if let Write::PutArtifact(record) = w {
                let name = record.meta.digest.to_string();
                if self.artifacts.info(&name).await.is_err() {
                    self.artifacts
                        .put(name.as_str(), &mut record.bytes.as_slice())
                        .await
                        .map_err(|e| nats("put an artifact", e))?;
                }
                logged.push(Write::PutArtifact(Box::new(ArtifactRecord {
                    meta: record.meta.clone(),
                    bytes: Vec::new(),
                })));
            } else {
                logged.push(w.clone());
            }
        }
        Ok(logged)
    }

    /// Every node's latest heartbeat, sorted by node: one watch over the bucket delivering
    /// the last value of each key (not a get per key: a fleet has thousands).
    async fn latest_beats(&self) -> Result<Vec<BeatRecord>, StoreError> {
        // The bucket's own status is cached when it is opened: ask its stream.
        let mut stream = self
            .js
            .get_stream(format!("KV_{}", self.beats_bucket))
            .await
            .map_err(|e| nats("heartbeat bucket", e))?;
        let stored = stream
            .info()
            .await
            .map_err(|e| nats("heartbeat bucket", e))?
            .state
            .messages;
        if stored == 0 {
            return Ok(Vec::new());
        }
        let mut watch = self
            .beats
            .watch_with_history(">")
            .await
            .map_err(|e| nats("watch the heartbeats", e))?;
        let mut latest = std::collections::BTreeMap::new();
        loop {
            let entry = tokio::time::timeout(REPLAY_IDLE, watch.next())
                .await
                .map_err(|_| {
                    StoreError::Backend(format!("heartbeats: no entry within {REPLAY_IDLE:?}"))
                })?
                .ok_or_else(|| StoreError::Backend("heartbeats: the watch ended".to_owned()))?
                .map_err(|e| nats("watch the heartbeats", e))?;
            if entry.operation == kv::Operation::Put {
                let beat = from_json::<BeatRecord>(&entry.value)?;
                latest.insert(beat.node.clone(), beat);
            } else {
                latest.retain(|node, _| beat_key(node) != entry.key);
            }
            if entry.delta == 0 {
                break;
            }
        }
        Ok(latest.into_values().collect())
    }

    /// Copies the model into the snapshot object, in the background, in order.
    fn snapshot_later(&self, seq: u64, model: Vec<u8>) {
        let snapshots = self.snapshots.clone();
        let uploaded = Arc::clone(&self.uploaded);
        tokio::spawn(async move {
            let mut done = uploaded.lock().await;
            if *done >= seq {
                return;
            }
            let mut bytes = Vec::with_capacity(model.len() + 8);
            bytes.extend_from_slice(&seq.to_be_bytes());
            bytes.extend_from_slice(&model);
            match snapshots.put(SNAPSHOT_OBJECT, &mut bytes.as_slice()).await {
                Ok(_) => *done = seq,
                Err(e) => tracing::warn!(seq, "snapshot of the model not stored: {e}"),
            }
        });
    }
}

impl Store for NatsStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        let mut loaded = self.model.load().await?;
        loaded.beats = self.latest_beats().await?;
        Ok(loaded)
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await;
        if let Some(why) = &writer.refused {
            return Err(StoreError::Conflict(format!(
                "this store may not write: {why}"
            )));
        }
        let epoch = self.may_write()?;
        // The log holds only batches that apply: a refused one is refused here, unlogged.
        self.model.check(batch.clone()).await?;
        let logged = self.put_artifacts(&batch).await?;
        let payload = serde_json::to_vec(&logged)
            .map_err(|e| StoreError::Corrupt(format!("encode a batch: {e}")))?;
        let expected = writer.last_seq;
        let id = format!("{}-{}", writer.id, expected + 1);
        let seq = match self
            .append(&id, expected, epoch, Bytes::from(payload))
            .await
        {
            Ok(seq) => seq,
            Err(Append::NotSent(e)) => return Err(e),
            Err(Append::Stop(e)) => {
                // Fenced, or the outcome is unknown: either way this store's model may be
                // behind the log, so it stops writing. Without a lease, for good (a restart
                // replays the log); under a lease, it steps down and follows the log again.
                if self.step_down("the log refused an append") {
                    tracing::warn!("{e}");
                } else {
                    writer.refused = Some(e.to_string());
                }
                return Err(e);
            }
        };
        writer.last_seq = seq;
        let removed: Vec<String> = logged
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::RemoveNode { node } => Some(node.clone()),
                _ => None,
            })
            .collect();
        if let Err(e) = self.model.commit(logged).await {
            // The batch is in the log (acknowledged), but the model missed it: answer the
            // truth about the batch and stop writing on a model that is behind.
            tracing::error!("a logged batch did not apply to the model: {e}");
            writer.refused = Some(format!("model behind the log: {e}"));
        }
        for node in removed {
            if let Err(e) = self.beats.purge(beat_key(&node)).await {
                tracing::warn!(node, "heartbeats of a removed node not purged: {e}");
            }
        }
        writer.since_snapshot += 1;
        if writer.since_snapshot >= SNAPSHOT_EVERY {
            match self.model.snapshot().await {
                Ok(bytes) => {
                    writer.since_snapshot = 0;
                    self.snapshot_later(seq, bytes);
                }
                Err(e) => tracing::warn!("snapshot of the model not taken: {e}"),
            }
        }
        Ok(())
    }

    async fn put_kill_order(
        &self,
        order: rampart_api::KillOrder,
        key: Arc<rampart_artifact::SecretKey>,
    ) -> Result<Option<rampart_api::KillOrder>, StoreError> {
        kill::put(&self.kills, order, &key).await.map(Some)
    }

    async fn kill_values(&self) -> Result<Vec<(String, Vec<Bytes>)>, StoreError> {
        kill::values(&self.kills).await
    }

    async fn record_beats(&self, beats: Vec<BeatRecord>) -> Result<(), StoreError> {
        let puts = beats.into_iter().map(|b| {
            let kv = self.beats.clone();
            async move {
                let value = serde_json::to_vec(&b)
                    .map_err(|e| StoreError::Corrupt(format!("encode a beat: {e}")))?;
                kv.put(beat_key(&b.node), Bytes::from(value))
                    .await
                    .map_err(|e| nats("put a beat", e))
            }
        });
        futures_util::stream::iter(puts)
            .buffer_unordered(BEAT_PUTS_IN_FLIGHT)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    async fn recent_beats(&self, node: String) -> Result<Vec<BeatRecord>, StoreError> {
        let key = beat_key(&node);
        if self
            .beats
            .entry(key.as_str())
            .await
            .map_err(|e| nats("read a beat", e))?
            .is_none()
        {
            return Ok(Vec::new());
        }
        let history: Vec<kv::Entry> = self
            .beats
            .history(key)
            .await
            .map_err(|e| nats("beat history", e))?
            .try_collect()
            .await
            .map_err(|e| nats("beat history", e))?;
        let mut out = Vec::new();
        for entry in history.iter().rev().take(BEAT_WINDOW) {
            if entry.operation != kv::Operation::Put {
                break;
            }
            out.push(from_json::<BeatRecord>(&entry.value)?);
        }
        Ok(out)
    }

    async fn artifact(&self, digest: Digest) -> Result<Option<ArtifactRecord>, StoreError> {
        let Some(meta) = self.model.artifact_meta(digest).await? else {
            return Ok(None);
        };
        // Direct gets, no consumer per read: a whole fleet fetches a new file at once.
        let read = rampart_api::nats_link::read_object(
            &self.js,
            self.artifacts_bucket(),
            &digest.to_string(),
            rampart_api::limits::MAX_ARTIFACT_BODY,
        )
        .await
        .map_err(|e| StoreError::Backend(format!("read artifact {digest}: {e}")))?;
        match read {
            rampart_api::nats_link::ObjectRead::Bytes(bytes) => {
                Ok(Some(ArtifactRecord { meta, bytes }))
            }
            other => Err(StoreError::Backend(format!(
                "artifact {digest} is known but its bytes are not readable: {other:?}"
            ))),
        }
    }

    async fn artifact_meta(&self, digest: Digest) -> Result<Option<ArtifactMeta>, StoreError> {
        self.model.artifact_meta(digest).await
    }

    async fn artifact_at(
        &self,
        kind: String,
        version: u64,
    ) -> Result<Option<ArtifactMeta>, StoreError> {
        self.model.artifact_at(kind, version).await
    }

    async fn artifact_before(
        &self,
        kind: String,
        version: u64,
    ) -> Result<Option<ArtifactMeta>, StoreError> {
        self.model.artifact_before(kind, version).await
    }

    async fn artifacts(&self, limit: usize) -> Result<Vec<ArtifactMeta>, StoreError> {
        self.model.artifacts(limit).await
    }

    async fn rollout(&self, id: u64) -> Result<Option<RolloutRecord>, StoreError> {
        self.model.rollout(id).await
    }

    async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        self.model.rollouts(limit).await
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.model.audit(after, limit).await
    }
}

/// Opens an object store, creating it when missing.
async fn object_store(
    js: &jetstream::Context,
    bucket: String,
    replicas: usize,
) -> Result<object_store::ObjectStore, StoreError> {
    if let Ok(store) = js.get_object_store(&bucket).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| nats("create an object store", e))
}

/// Connects to `config`'s servers ([`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`]) and returns
/// the JetStream context every store and the break-glass path work through.
pub(crate) async fn connect(config: &NatsConfig) -> Result<jetstream::Context, StoreError> {
    let servers = config
        .servers
        .iter()
        .map(|s| s.parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Backend(format!("server address: {e}")))?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(servers)
        .await
        .map_err(|e| nats("connect", e))?;
    Ok(jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client))
}

/// Opens the heartbeat bucket, creating it when missing.
async fn beats_bucket(
    js: &jetstream::Context,
    bucket: String,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    open_kv(
        js,
        kv::Config {
            bucket,
            history: i64::try_from(BEAT_WINDOW).unwrap_or(1),
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        },
        "create the heartbeat bucket",
    )
    .await
}

/// Attempts to open (or create) a KV bucket: a cluster that just lost a server or is
/// electing its meta leader answers "not found" or refuses a create for a while.
pub const KV_OPEN_ATTEMPTS: u32 = 10;

/// The pause between two of those attempts.
pub const KV_OPEN_BACKOFF: Duration = Duration::from_millis(300);

/// Opens the bucket `config` names, creating it when it is missing. A bucket that exists
/// is used as it is (whoever created it chose its replicas); a lookup that failed while it
/// exists (a create then refused as "already in use") is tried again, at most
/// [`KV_OPEN_ATTEMPTS`] times.
pub(crate) async fn open_kv(
    js: &jetstream::Context,
    config: kv::Config,
    what: &'static str,
) -> Result<kv::Store, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Ok(store) = js.get_key_value(config.bucket.as_str()).await {
            return Ok(store);
        }
        match js.create_key_value(config.clone()).await {
            Ok(store) => return Ok(store),
            Err(e) if attempt >= KV_OPEN_ATTEMPTS => return Err(nats(what, e)),
            Err(_) => tokio::time::sleep(KV_OPEN_BACKOFF).await,
        }
    }
}

/// Opens the leader lease bucket, creating it when missing: one value, dropped by the
/// servers [`LEASE_TTL`] after its last write.
async fn lease_bucket(
    js: &jetstream::Context,
    bucket: String,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    open_kv(
        js,
        kv::Config {
            bucket,
            history: 1,
            max_age: LEASE_TTL,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        },
        "create the lease bucket",
    )
    .await
}

/// Writes the newest snapshot (if any) as the model's database; returns the log sequence
/// it holds (0: none).
async fn restore_snapshot(
    snapshots: &object_store::ObjectStore,
    dir: &std::path::Path,
) -> Result<u64, StoreError> {
    let mut object = match snapshots.get(SNAPSHOT_OBJECT).await {
        Ok(object) => object,
        Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(nats("get the snapshot", e)),
    };
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| StoreError::Backend(format!("read the snapshot: {e}")))?;
    let (seq, model) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("snapshot shorter than its header".to_owned()))?;
    let path = dir.join(DB_FILE);
    let mut file = std::fs::File::create(&path)
        .map_err(|e| StoreError::Backend(format!("create {}: {e}", path.display())))?;
    file.write_all(model)
        .map_err(|e| StoreError::Backend(format!("write {}: {e}", path.display())))?;
    Ok(u64::from_be_bytes(*seq))
}

/// Applies the log's messages `after + 1 ..= last` to the model; returns the newest lease
/// epoch among them (0: none).
async fn replay(
    log: &stream::Stream,
    model: &SqliteStore,
    after: u64,
    last: u64,
) -> Result<u64, StoreError> {
    let mut epoch = 0;
    let consumer = log
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| nats("replay consumer", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats("replay the log", e))?;
    let mut chunk = Vec::new();
    let mut expected = after + 1;
    while expected <= last {
        let message = tokio::time::timeout(REPLAY_IDLE, messages.next())
            .await
            .map_err(|_| {
                StoreError::Backend(format!(
                    "replay: no log message {expected} within {REPLAY_IDLE:?}"
                ))
            })?
            .ok_or_else(|| StoreError::Backend("replay: the log consumer ended".to_owned()))?
            .map_err(|e| nats("replay the log", e))?;
        let seq = message
            .info()
            .map_err(|e| nats("replay message info", e))?
            .stream_sequence;
        if seq != expected {
            return Err(StoreError::Corrupt(format!(
                "the log has message {seq} where {expected} was expected (messages deleted?)"
            )));
        }
        if let Some(e) = message
            .headers
            .as_ref()
            .and_then(|h| h.get(LEASE_HEADER))
            .and_then(|v| v.as_str().parse::<u64>().ok())
        {
            epoch = epoch.max(e);
        }
        chunk.push(from_json::<Batch>(&message.payload)?);
        if chunk.len() >= REPLAY_CHUNK {
            model.replay(std::mem::take(&mut chunk)).await?;
        }
        expected += 1;
    }
    model.replay(chunk).await?;
    Ok(epoch)
}

/// A node's key in the heartbeat bucket: hex, since node ids may hold characters (`.`
/// runs) that KV keys refuse.
fn beat_key(node: &str) -> String {
    let mut key = String::with_capacity(2 + node.len() * 2);
    key.push_str("n_");
    for b in node.bytes() {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("decode: {e}")))
}

fn nats(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("nats: {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_or_without_a_prefix_on_each_server() {
        let c = NatsConfig::parse("nats://127.0.0.1:4222,127.0.0.1:4223,nats://h:1").unwrap();
        assert_eq!(
            c.servers,
            [
                "nats://127.0.0.1:4222",
                "nats://127.0.0.1:4223",
                "nats://h:1"
            ]
        );
        assert_eq!(c.replicas(), 3);
        assert!(NatsConfig::parse("127.0.0.1:4222").is_err());
        assert!(NatsConfig::parse("nats://").is_err());
        let one = NatsConfig::parse("nats://127.0.0.1:4222").unwrap();
        assert_eq!(one.replicas(), 1);
    }

    #[test]
    fn beat_keys_are_valid_kv_keys_for_any_node_id() {
        assert_eq!(beat_key("a..b"), "n_612e2e62");
        assert_eq!(beat_key(""), "n_");
    }
}
