//! The control plane's operations, independent of HTTP: each takes the caller and a typed
//! request and returns a typed answer or an [`Error`] that maps to one JSON error.
//!
//! Writes are serialized by one async lock and follow one path: build a [`Batch`], commit
//! it to the store, mirror the same writes into the in-memory [`Fleet`], and bump the
//! revision that wakes long-polling heartbeats. Reads only touch the mirror (or the store,
//! for artifact bytes and history).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rampart_api::limits::{MAX_IDENT_LEN, MAX_LONG_POLL_MS};
use rampart_api::{
    ApiError, ArtifactList, ArtifactMeta, AuditPage, ContractList, DiffView, ErrorCode, Heartbeat,
    HeartbeatAnswer, KIND_FEATURES, KillSwitchEntry, KillSwitchList, KillSwitchSet, NodeList,
    NodeView, Order, PublishResult, RegisterAnswer, Registration, check_ident,
};
use rampart_artifact::{Contract, ContractSpec, Diff, Digest, Issue, Policy, check};
use tokio::sync::{Notify, watch};

use crate::auth::Caller;
use crate::config::{Config, MAX_NODES};
use crate::fleet::Fleet;
use crate::store::{ArtifactRecord, Batch, NewAudit, NodeRecord, Store, StoreError, Write};

/// The control plane: config, store, and the in-memory mirror.
#[derive(Debug)]
pub struct Service<S> {
    pub(crate) store: S,
    pub(crate) config: Config,
    fleet: Mutex<Fleet>,
    /// Serializes every commit with its mirror update, so the mirror follows the store's
    /// order. An async lock: it is held across the store's await.
    pub(crate) write: tokio::sync::Mutex<()>,
    /// Bumped after every commit that may change some node's desired state.
    revision: watch::Sender<u64>,
    /// Wakes the rollout driver (a heartbeat from a planned node, a new rollout).
    pub(crate) nudge: Notify,
    /// `true` once shutdown began: long-polls answer at once.
    shutdown: watch::Sender<bool>,
    /// Where the time comes from.
    clock: Clock,
    /// Refused identity checks, for `/v1/health`.
    pub(crate) refusals: crate::enroll::Refusals,
    /// Requests waiting for a second admin.
    approvals: Mutex<crate::approvals::Approvals>,
    /// The keys publishes are checked against: the config's, then each keyset's
    /// ([`crate::trust`]).
    keyring: arc_swap::ArcSwap<rampart_artifact::Keyring>,
    /// The keyset in use and its refusals, when the control plane has one.
    trust: Mutex<Option<crate::trust::TrustReport>>,
    /// Shadow scoring before a rollout's first wave, built on first use (`None`: the
    /// embedded sample did not load; rollouts are then not judged, and say so).
    pub(crate) shadow: std::sync::OnceLock<Option<rampart_fit::shadow::ShadowCheck>>,
    /// Whether this replica leads (always, on SQLite) or follows ([`crate::ha`]).
    role: watch::Sender<Role>,
    /// This replica's own URL, once it listens (what `/v1/health` names as leader).
    url: std::sync::OnceLock<String>,
}

/// This replica's part: the leader writes and reconciles; a follower serves reads and
/// answers writes with the leader's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Writes and reconciles rollouts.
    Leader,
    /// Follows the leader's log; `leader` is its URL when known.
    Follower {
        /// The leader's URL, from its lease.
        leader: Option<String>,
    },
}

/// Where the control plane reads the time, in ms since the Unix epoch: the wall clock, or
/// the one a test (or a replay) drives, so the driver can be run step by step.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

/// A refused or failed request: one [`ApiError`] body with its status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// The code (and so the status).
    pub code: ErrorCode,
    /// One line for people.
    pub message: String,
    /// Artifact issues, for 422.
    pub issues: Vec<Issue>,
    /// On a follower's 503: the leader's URL.
    pub leader: Option<String>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed to load.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored rollout cannot be read by this version.
    #[error("a stored rollout cannot be read: {0}")]
    Rollout(#[from] serde_json::Error),
    /// No key to verify artifacts with.
    #[error("no trusted public key: give at least one --pubkey")]
    NoKeys,
    /// The database is behind its epoch file, or the file is unusable.
    #[error(transparent)]
    Epoch(#[from] crate::epoch::EpochError),
}

/// Checks the database's epoch against the epoch file beside it and settles both (see
/// [`crate::epoch`]): refuses a database that is behind, unless `--reinitialize`.
async fn settle_epoch<S: Store>(
    config: &Config,
    store: &S,
    loaded: &mut crate::store::Loaded,
    now_ms: u64,
) -> Result<(), StartError> {
    use crate::epoch;
    let dir = &config.data_dir;
    let db = loaded.order.map(|o| o.epoch);
    let decision = epoch::decide(dir, db, epoch::read(dir)?, config.reinitialize.is_some())?;
    if decision.store {
        store
            .commit(epoch::batch(
                &decision,
                db,
                config.reinitialize.as_deref(),
                now_ms,
            ))
            .await?;
        let seq = loaded.order.map_or(0, |o| o.seq);
        loaded.order = Some(crate::store::OrderState {
            epoch: decision.epoch,
            seq,
            at_ms: now_ms,
        });
    }
    if decision.file {
        epoch::write(dir, decision.epoch)?;
    }
    if decision.reinitialized {
        tracing::warn!(
            epoch = decision.epoch,
            reason = config.reinitialize.as_deref().unwrap_or(""),
            "control plane reinitialized on a new epoch (audited)"
        );
    }
    Ok(())
}

// === impl Error ===

impl Error {
    /// An error with a code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            issues: Vec::new(),
            leader: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The JSON body.
    pub fn body(&self) -> ApiError {
        let body = if self.issues.is_empty() {
            ApiError::new(self.code, self.message.clone())
        } else {
            ApiError::with_issues(self.code, self.message.clone(), &self.issues)
        };
        ApiError {
            leader: self.leader.clone(),
            ..body
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::MarkedBad(d) => Error::new(
                ErrorCode::MarkedBad,
                format!("artifact {d} is marked bad (a rollout failed with it); publish a new one"),
            ),
            StoreError::Conflict(m) => Error::conflict(m),
            StoreError::Corrupt(_) | StoreError::Backend(_) => {
                if let Some(suppressed) = crate::client_log::admit("store") {
                    tracing::error!(error = %e, suppressed, "store failure");
                }
                Error::internal(format!("the control plane's store failed: {e}"))
            }
        }
    }
}

impl From<rampart_api::Invalid> for Error {
    fn from(e: rampart_api::Invalid) -> Self {
        Error::bad_request(e.to_string())
    }
}

// === impl Service ===

impl<S: Store> Service<S> {
    /// Loads the store and builds the mirror.
    pub async fn open(config: Config, store: S) -> Result<Arc<Self>, StartError> {
        Self::open_with_clock(config, store, Clock::system()).await
    }

    /// [`Service::open`] with the time read from `clock`.
    pub async fn open_with_clock(
        config: Config,
        store: S,
        clock: Clock,
    ) -> Result<Arc<Self>, StartError> {
        if config.keyring.is_empty() {
            return Err(StartError::NoKeys);
        }
        let mut loaded = store.load().await?;
        settle_epoch(&config, &store, &mut loaded, clock.now_ms()).await?;
        let fleet = Fleet::from_loaded(loaded)?;
        Ok(Arc::new(Service {
            store,
            fleet: Mutex::new(fleet),
            write: tokio::sync::Mutex::new(()),
            revision: watch::Sender::new(0),
            nudge: Notify::new(),
            shutdown: watch::Sender::new(false),
            clock,
            refusals: crate::enroll::Refusals::default(),
            approvals: Mutex::new(crate::approvals::Approvals::default()),
            keyring: arc_swap::ArcSwap::from_pointee(config.keyring.clone()),
            trust: Mutex::new(config.trust.as_ref().map(crate::trust::TrustConfig::report)),
            shadow: std::sync::OnceLock::new(),
            role: watch::Sender::new(Role::Leader),
            url: std::sync::OnceLock::new(),
            config,
        }))
    }

    /// Now, by the service's clock.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The mirror, locked. Never held across an await (the lints check).
    pub(crate) fn fleet(&self) -> MutexGuard<'_, Fleet> {
        // No code panics while holding it; were one to, the mirror is still consistent
        // (every change is a single insert or remove).
        self.fleet.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pending approvals, locked. Never held across an await.
    pub(crate) fn approvals(&self) -> MutexGuard<'_, crate::approvals::Approvals> {
        self.approvals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Refused identity checks since start.
    pub fn refusals(&self) -> crate::enroll::RefusalCounts {
        self.refusals.counts()
    }

    /// Starts shutdown: long-polls answer now.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        self.nudge.notify_one();
    }

    /// A receiver that sees shutdown begin.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// This replica's role.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// Records this replica's URL (once, when it listens).
    pub fn set_url(&self, url: String) {
        let _ = self.url.set(url);
    }

    /// The leader's URL as this replica knows it: its own when it leads.
    pub fn leader_url(&self) -> Option<String> {
        match self.role() {
            Role::Leader => self.url.get().cloned(),
            Role::Follower { leader } => leader,
        }
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        *self.role.borrow() == Role::Leader
    }

    /// Follows role changes (the driver waits on it while following).
    pub fn role_signal(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Sets the role; wakes the driver when it changed.
    pub(crate) fn set_role(&self, role: Role) {
        if self.role.send_if_modified(|r| {
            let changed = *r != role;
            *r = role;
            changed
        }) {
            self.nudge.notify_one();
        }
    }

    /// The answer to a write on a follower: 503 naming the leader.
    pub fn not_leader(&self) -> Error {
        match self.role() {
            Role::Follower {
                leader: Some(leader),
            } => Error {
                leader: Some(leader.clone()),
                ..Error::new(
                    ErrorCode::Unavailable,
                    format!("this replica follows; the leader is {leader}"),
                )
            },
            _ => Error::new(
                ErrorCode::Unavailable,
                "this replica follows and no leader is known; retry shortly",
            ),
        }
    }

    /// Rebuilds the mirror from the store (a follower after applying the leader's log; a
    /// new leader before it reconciles) and wakes every long-poll and the driver.
    pub async fn reload(&self) -> Result<(), StartError> {
        let _write = self.write.lock().await;
        let loaded = self.store.load().await?;
        let fleet = Fleet::from_loaded(loaded)?;
        *self.fleet() = fleet;
        self.bump();
        self.nudge.notify_one();
        Ok(())
    }

    /// Commits a batch and mirrors it. Call with the write lock held. A batch that changes
    /// what some node must do also raises the order sequence, in the same transaction.
    pub(crate) async fn commit(&self, mut batch: Batch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        if batch.changes_orders() {
            batch.push(Write::NextOrder { at_ms: self.now() });
        }
        self.store.commit(batch.clone()).await?;
        let changed = {
            let mut fleet = self.fleet();
            batch
                .writes
                .iter()
                .fold(false, |changed, w| fleet.apply(w) | changed)
        };
        if changed {
            self.bump();
        }
        Ok(())
    }

    /// Wakes every long-poll to look at its node's desired state again.
    pub(crate) fn bump(&self) {
        self.revision.send_modify(|r| *r = r.wrapping_add(1));
    }

    // --- artifacts ---

    /// The contracts a publish must satisfy: the registered ones that meet the contract
    /// quorum ([`crate::config::NodePolicy`]) and the configured ones, or the default
    /// contract when there is none.
    pub fn contracts(&self) -> ContractList {
        let now = self.now();
        let mut specs = self.fleet().contracts(now, &self.config.node_policy);
        for c in &self.config.contracts {
            if !specs.contains(c.spec()) {
                specs.push(c.spec().clone());
            }
        }
        if specs.is_empty() {
            specs.push(ContractSpec::default());
        }
        ContractList { contracts: specs }
    }

    /// Verifies `bytes` against the trusted keys and validates it against every contract,
    /// reporting every distinct issue at once.
    pub fn validate(
        &self,
        bytes: &[u8],
    ) -> Result<(rampart_artifact::Checked, Vec<String>), Error> {
        let mut issues: Vec<Issue> = Vec::new();
        let mut broken: Vec<String> = Vec::new();
        let mut consumers = Vec::new();
        let mut passed = None;
        let keyring = self.keyring();
        for spec in self.contracts().contracts {
            let consumer = spec.consumer.clone();
            let contract = Contract::try_from(spec)
                .map_err(|e| Error::internal(format!("contract of {consumer}: {e}")))?;
            let policy = Policy {
                contract: &contract,
                keyring: Some(&keyring),
                previous: None,
            };
            match check(bytes, &policy) {
                Ok(checked) => {
                    passed.get_or_insert(checked);
                }
                Err(found) => {
                    broken.push(consumer.clone());
                    for i in found {
                        if !issues.contains(&i) {
                            issues.push(i);
                        }
                    }
                }
            }
            consumers.push(consumer);
        }
        if !issues.is_empty() {
            return Err(Error {
                code: ErrorCode::Invalid,
                message: format!(
                    "refused: the file breaks the contract of {} ({} issues)",
                    broken.join(", "),
                    issues.len()
                ),
                issues,
                leader: None,
            });
        }
        let checked = passed.ok_or_else(|| Error::internal("no contract to check against"))?;
        Ok((checked, consumers))
    }

    /// Publishes a signed file (`created` says whether it was stored now).
    pub async fn publish(&self, caller: &Caller, bytes: Vec<u8>) -> Result<PublishResult, Error> {
        let (checked, consumers) = self.validate(&bytes)?;
        let doc = checked.validated.document();
        let digest = checked.validated.digest();
        if let Some(existing) = self.store.artifact_meta(digest).await? {
            if existing.bad.is_some() {
                return Err(StoreError::MarkedBad(digest).into());
            }
            return Ok(PublishResult {
                artifact: ArtifactMeta {
                    blessed: self.is_blessed(&existing.digest),
                    ..existing
                },
                created: false,
                checked_against: consumers,
            });
        }
        let now = self.now();
        let meta = ArtifactMeta {
            digest,
            kind: KIND_FEATURES.to_owned(),
            version: doc.version,
            features: doc.features.len(),
            size: bytes.len(),
            signer: checked
                .signer
                .as_ref()
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
            created_at: doc.created_at.clone(),
            source: doc.provenance.source.clone(),
            published_at_ms: now,
            published_by: caller.name.clone(),
            bad: None,
            blessed: false,
        };
        let audit = NewAudit {
            at_ms: now,
            who: caller.name.clone(),
            action: "artifact.publish".into(),
            subject: digest.to_string(),
            reason: None,
            detail: serde_json::json!({
                "version": meta.version,
                "features": meta.features,
                "signer": meta.signer,
                "checked_against": consumers,
            }),
        };
        let mut batch = Batch::one(Write::PutArtifact(Box::new(ArtifactRecord {
            meta: meta.clone(),
            bytes,
        })));
        batch.push(Write::Audit(audit));
        let _w = self.write.lock().await;
        // Under the write lock: two publishes of different files with one version cannot
        // both pass. Edges refuse a second file with a version they already hold.
        if let Some(other) = self
            .store
            .artifact_at(meta.kind.clone(), meta.version)
            .await?
        {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "version {} of {} is already stored as {} (a different file); publish it with a higher version",
                    meta.version, meta.kind, other.digest
                ),
            ));
        }
        self.commit(batch).await?;
        Ok(PublishResult {
            artifact: meta,
            created: true,
            checked_against: consumers,
        })
    }

    /// The exact bytes of an artifact.
    pub async fn artifact_bytes(&self, digest: Digest) -> Result<Vec<u8>, Error> {
        self.store
            .artifact(digest)
            .await?
            .map(|r| r.bytes)
            .ok_or_else(|| Error::not_found(format!("no artifact {digest}")))
    }

    /// One artifact's metadata.
    pub async fn artifact_meta(&self, digest: Digest) -> Result<ArtifactMeta, Error> {
        let mut meta = self
            .store
            .artifact_meta(digest)
            .await?
            .ok_or_else(|| Error::not_found(format!("no artifact {digest}")))?;
        meta.blessed = self.is_blessed(&meta.digest);
        Ok(meta)
    }

    /// Artifacts, newest first.
    pub async fn artifacts(&self, limit: usize) -> Result<ArtifactList, Error> {
        let mut artifacts = self.store.artifacts(limit).await?;
        for meta in &mut artifacts {
            meta.blessed = self.is_blessed(&meta.digest);
        }
        Ok(ArtifactList { artifacts })
    }

    /// Whether `digest` is among the blessed versions sent to edges.
    pub fn is_blessed(&self, digest: &Digest) -> bool {
        self.fleet()
            .blessed
            .values()
            .any(|list| list.iter().any(|a| a.digest == *digest))
    }

    /// What changed from `against` (default: the stored version just below) to `digest`.
    pub async fn diff(&self, digest: Digest, against: Option<Digest>) -> Result<DiffView, Error> {
        let new = self
            .store
            .artifact(digest)
            .await?
            .ok_or_else(|| Error::not_found(format!("no artifact {digest}")))?;
        let old_digest = match against {
            Some(d) => d,
            None => {
                self.store
                    .artifact_before(new.meta.kind.clone(), new.meta.version)
                    .await?
                    .ok_or_else(|| {
                        Error::not_found(format!("no artifact before version {}", new.meta.version))
                    })?
                    .digest
            }
        };
        let old = self
            .store
            .artifact(old_digest)
            .await?
            .ok_or_else(|| Error::not_found(format!("no artifact {old_digest}")))?;
        let (old_doc, new_doc) = (document(&old.bytes)?, document(&new.bytes)?);
        Ok(DiffView::new(
            old_digest,
            digest,
            &Diff::between(&old_doc, &new_doc),
        ))
    }

    // --- fleet ---

    /// Registers (or re-registers) a node.
    pub async fn register(
        &self,
        caller: &Caller,
        reg: Registration,
    ) -> Result<RegisterAnswer, Error> {
        reg.check()?;
        Contract::try_from(reg.contract.clone())
            .map_err(|e| Error::bad_request(format!("contract: {e}")))?;
        let _w = self.write.lock().await;
        let now = self.now();
        let (created, registered_at_ms, unchanged) = {
            let fleet = self.fleet();
            match fleet.nodes.get(&reg.node) {
                Some(n) => (
                    false,
                    n.record.registered_at_ms,
                    n.record.registration == reg,
                ),
                None if fleet.nodes.len() >= MAX_NODES => {
                    return Err(Error::conflict(format!(
                        "the fleet is full ({MAX_NODES} nodes)"
                    )));
                }
                None => (true, now, false),
            }
        };
        if !unchanged {
            let mut batch = Batch::one(Write::PutNode(Box::new(NodeRecord {
                registration: reg.clone(),
                registered_at_ms,
            })));
            batch.push(Write::Audit(NewAudit {
                at_ms: now,
                who: caller.name.clone(),
                action: if created {
                    "node.register"
                } else {
                    "node.reregister"
                }
                .into(),
                subject: reg.node.clone(),
                reason: None,
                detail: serde_json::json!({
                    "labels": reg.labels,
                    "consumer": reg.contract.consumer,
                    "max_features": reg.contract.max_features,
                    "software_version": reg.software_version,
                }),
            }));
            self.commit(batch).await?;
        }
        Ok(RegisterAnswer {
            node: reg.node,
            created,
            beat_interval_ms: self.config.beat_interval_ms,
        })
    }

    /// Takes a heartbeat and answers it: at once when the node's desired state is not the
    /// one it last saw, else when it changes or `beat.wait_ms` (at most
    /// [`MAX_LONG_POLL_MS`]) ran out.
    pub async fn heartbeat(&self, node: &str, beat: Heartbeat) -> Result<HeartbeatAnswer, Error> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        check_ident("node", node, MAX_IDENT_LEN)?;
        beat.check()?;
        let now = self.now();
        // Subscribe before reading the state: a change between the read and the wait is
        // then seen by the wait.
        let mut revision = self.revision.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        let (desire, planned) = {
            let mut fleet = self.fleet();
            if !fleet.nodes.contains_key(node) {
                return Err(Error::new(
                    ErrorCode::UnknownNode,
                    format!("node {node} is not registered; register first"),
                ));
            }
            let planned = fleet.beat(node, &beat, now);
            (fleet.desire(KIND_FEATURES, node), planned)
        };
        if planned {
            self.nudge.notify_one();
        }
        let answer = |desire: crate::fleet::NodeDesire, changed: bool| HeartbeatAnswer {
            order: self.sign_order(node, &desire),
            desired: desire.desired,
            kill_switches: desire.kill_switches,
            etag: desire.etag,
            beat_interval_ms: self.config.beat_interval_ms,
            changed,
            blessed: desire.blessed,
        };
        let seen = beat.seen.as_deref();
        if seen != Some(desire.etag.as_str()) {
            return Ok(answer(desire, true));
        }
        let wait = Duration::from_millis(beat.wait_ms.min(MAX_LONG_POLL_MS));
        let deadline = tokio::time::Instant::now() + wait;
        let mut current = desire;
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = revision.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = shutdown.changed() => break,
                () = tokio::time::sleep_until(deadline) => break,
            }
            current = self.fleet().desire(KIND_FEATURES, node);
            if seen != Some(current.etag.as_str()) {
                return Ok(answer(current, true));
            }
        }
        Ok(answer(current, false))
    }

    /// The keys publishes are checked against now.
    pub fn keyring(&self) -> Arc<rampart_artifact::Keyring> {
        self.keyring.load_full()
    }

    /// Takes a new keyset: publishes are checked against `keyring` from now on.
    pub fn set_keyset(
        &self,
        keyring: rampart_artifact::Keyring,
        keyset: &rampart_artifact::Keyset,
    ) {
        self.keyring.store(Arc::new(keyring));
        if let Some(r) = self.trust_lock().as_mut() {
            r.keyset_version = keyset.version();
            r.keyset_expires = keyset.expires().to_owned();
        }
    }

    /// Counts and logs a refused keyset; the one in use stays.
    pub fn keyset_refused(&self, message: String) {
        tracing::warn!("keyset refused, keeping the one in use: {message}");
        if let Some(r) = self.trust_lock().as_mut() {
            r.refused_total = r.refused_total.saturating_add(1);
            r.last_refusal = Some(message);
        }
    }

    /// The keyset in use and its refusals (`None` without a keyset).
    pub fn trust_report(&self) -> Option<crate::trust::TrustReport> {
        self.trust_lock().clone()
    }

    fn trust_lock(&self) -> MutexGuard<'_, Option<crate::trust::TrustReport>> {
        self.trust.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The signed order of `desire` for `node`, when the control plane has a director key.
    fn sign_order(
        &self,
        node: &str,
        desire: &crate::fleet::NodeDesire,
    ) -> Option<rampart_artifact::Envelope> {
        let key = self.config.director_key.as_ref()?;
        let order = Order {
            node: node.to_owned(),
            epoch: desire.order.epoch,
            seq: desire.order.seq,
            kind: KIND_FEATURES.to_owned(),
            desired: desire.desired.clone(),
            kill_switches: desire.kill_switches.clone(),
            issued_at_ms: desire.order.at_ms,
            blessed: desire.blessed.clone(),
        };
        Some(order.sign(key))
    }

    /// The epoch and order sequence in use.
    pub fn order_state(&self) -> crate::store::OrderState {
        self.fleet().order
    }

    /// The fleet.
    pub fn nodes(&self) -> NodeList {
        let now = self.now();
        let fleet = self.fleet();
        NodeList {
            nodes: fleet
                .nodes
                .keys()
                .filter_map(|id| fleet.view(KIND_FEATURES, id, now, self.config.stale_after_ms))
                .collect(),
        }
    }

    /// One node.
    pub fn node(&self, node: &str) -> Result<NodeView, Error> {
        self.fleet()
            .view(KIND_FEATURES, node, self.now(), self.config.stale_after_ms)
            .ok_or_else(|| Error::not_found(format!("no node {node}")))
    }

    // --- kill switches ---

    /// Sets (or clears) a kill switch; answers every setting.
    pub async fn set_kill_switch(
        &self,
        caller: &Caller,
        set: KillSwitchSet,
    ) -> Result<KillSwitchList, Error> {
        set.check()?;
        let _w = self.write.lock().await;
        let now = self.now();
        if let Some(node) = &set.node
            && !self.fleet().nodes.contains_key(node)
        {
            return Err(Error::not_found(format!("no node {node}")));
        }
        let write = match (&set.node, set.clear) {
            (Some(node), true) => Write::ClearKillSwitch {
                module: set.module,
                node: node.clone(),
            },
            _ => Write::SetKillSwitch(KillSwitchEntry {
                module: set.module,
                node: set.node.clone(),
                enabled: set.enabled,
                reason: set.reason.clone(),
                set_by: caller.name.clone(),
                at_ms: now,
            }),
        };
        let mut batch = Batch::one(write);
        batch.push(Write::Audit(NewAudit {
            at_ms: now,
            who: caller.name.clone(),
            action: if set.clear {
                "killswitch.clear"
            } else {
                "killswitch.set"
            }
            .into(),
            subject: format!(
                "{}@{}",
                set.module.as_str(),
                set.node.as_deref().unwrap_or("fleet")
            ),
            reason: Some(set.reason.clone()),
            detail: serde_json::json!({ "enabled": set.enabled }),
        }));
        self.commit(batch).await?;
        self.publish_kill_order(caller, &set, now).await;
        Ok(self.kill_switches())
    }

    /// Takes into this control plane's state (and audit log, as `killswitch.break_glass`)
    /// every break-glass kill order of the kill bucket (`set_by` `break-glass:…`, signed by
    /// this control plane's director key) newer than the setting it has for that scope, so
    /// that both paths agree again once the control plane is back. Leader only; idempotent:
    /// an imported setting carries the order's `issued_at_ms`, so it is not taken twice.
    /// Answers how many were taken.
    pub async fn import_break_glass(&self) -> Result<usize, Error> {
        let Some(key) = self.config.director_key.clone() else {
            return Ok(0);
        };
        if !self.is_leader() {
            return Ok(0);
        }
        let values = self.store.kill_values().await?;
        if values.is_empty() {
            return Ok(0);
        }
        let director = rampart_artifact::Keyring::new([key.public()]);
        let _w = self.write.lock().await;
        let (batch, taken) = self.break_glass_batch(values, &director);
        if let Some(batch) = batch {
            self.commit(batch).await?;
            tracing::warn!(
                taken,
                "break-glass kill switches from the kill bucket taken into the state and audit log"
            );
        }
        Ok(taken)
    }

    /// The batch that takes the break-glass orders among `values` (see
    /// [`Service::import_break_glass`]), and how many it takes.
    fn break_glass_batch(
        &self,
        values: Vec<(String, Vec<bytes::Bytes>)>,
        director: &rampart_artifact::Keyring,
    ) -> (Option<Batch>, usize) {
        let fleet = self.fleet();
        let mut batch: Option<Batch> = None;
        let mut taken = 0;
        for (name, history) in values {
            // The highest seq among the key's values that verify and belong under it, as
            // the edges decide: a forgery or a replay put after it hides nothing.
            let Some(order) = history
                .iter()
                .filter_map(|value| {
                    let envelope = rampart_api::KillOrder::envelope(value).ok()?;
                    let (order, _) = rampart_api::KillOrder::open(&envelope, director).ok()?;
                    (order.scope.key() == name).then_some(order)
                })
                .max_by_key(|o| o.seq)
            else {
                continue;
            };
            if !order.set_by.starts_with("break-glass:") {
                continue;
            }
            let (node, current) = match &order.scope {
                rampart_api::KillScope::Fleet => (None, fleet.kill_fleet.get(&order.module)),
                rampart_api::KillScope::Node(id) => {
                    if !fleet.nodes.contains_key(id) {
                        continue;
                    }
                    (
                        Some(id.clone()),
                        fleet.kill_nodes.get(&(order.module, id.clone())),
                    )
                }
            };
            if current.is_some_and(|c| c.at_ms >= order.issued_at_ms) {
                continue;
            }
            if order.clear && current.is_none() {
                continue;
            }
            let write = match (&node, order.clear) {
                (Some(node), true) => Write::ClearKillSwitch {
                    module: order.module,
                    node: node.clone(),
                },
                _ => Write::SetKillSwitch(KillSwitchEntry {
                    module: order.module,
                    node: node.clone(),
                    enabled: order.enabled,
                    reason: order.reason.clone(),
                    set_by: order.set_by.clone(),
                    at_ms: order.issued_at_ms,
                }),
            };
            let audit = Write::Audit(NewAudit {
                at_ms: self.now(),
                who: order.set_by.clone(),
                action: "killswitch.break_glass".into(),
                subject: format!(
                    "{}@{}",
                    order.module.as_str(),
                    node.as_deref().unwrap_or("fleet")
                ),
                reason: Some(order.reason.clone()),
                detail: serde_json::json!({
                    "enabled": order.enabled,
                    "clear": order.clear,
                    "seq": order.seq,
                    "issued_at_ms": order.issued_at_ms,
                }),
            });
            match batch.as_mut() {
                Some(b) => {
                    b.push(write);
                }
                None => batch = Some(Batch::one(write)),
            }
            if let Some(b) = batch.as_mut() {
                b.push(audit);
            }
            taken += 1;
        }
        (batch, taken)
    }

    /// Puts the switch just committed where edges watch it without the control plane (the
    /// NATS kill bucket, signed with the director key). Best effort: the switch is committed
    /// and reaches edges in heartbeat answers whatever happens here; a failure is logged.
    async fn publish_kill_order(&self, caller: &Caller, set: &KillSwitchSet, now: u64) {
        let Some(key) = self.config.director_key.clone() else {
            return;
        };
        let order = rampart_api::KillOrder {
            module: set.module,
            enabled: set.enabled,
            clear: set.clear,
            scope: match &set.node {
                Some(node) => rampart_api::KillScope::Node(node.clone()),
                None => rampart_api::KillScope::Fleet,
            },
            reason: set.reason.clone(),
            set_by: caller.name.clone(),
            seq: 0,
            issued_at_ms: now,
        };
        match self.store.put_kill_order(order, key).await {
            Ok(Some(written)) => tracing::info!(
                key = %written.scope.key(),
                seq = written.seq,
                "kill switch put in the kill bucket"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(
                error = %e,
                "kill switch committed but not put in the kill bucket: edges get it from heartbeats only"
            ),
        }
    }

    /// Every kill-switch setting.
    pub fn kill_switches(&self) -> KillSwitchList {
        let fleet = self.fleet();
        KillSwitchList {
            switches: fleet
                .kill_fleet
                .values()
                .chain(fleet.kill_nodes.values())
                .cloned()
                .collect(),
        }
    }

    // --- audit ---

    /// Audit entries after `after`, oldest first.
    pub async fn audit(&self, after: u64, limit: usize) -> Result<AuditPage, Error> {
        let entries = self.store.audit(after, limit).await?;
        let next_after = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq))
            .flatten();
        Ok(AuditPage {
            entries,
            next_after,
        })
    }

    /// Writes the heartbeats received since the last flush, and what they added to the
    /// versions' death and exposure records.
    pub async fn flush_beats(&self) -> Result<usize, Error> {
        if !self.is_leader() {
            return Ok(0);
        }
        let (beats, records): (Vec<_>, Vec<_>) = {
            let mut fleet = self.fleet();
            (
                fleet.pending_beats.drain().map(|(_, b)| b).collect(),
                fleet.pending_records.drain().collect(),
            )
        };
        let n = beats.len();
        if !records.is_empty() {
            let _w = self.write.lock().await;
            if let Err(e) = self
                .commit(Batch::one(Write::AddRecords(records.clone())))
                .await
            {
                // Keep them for the next flush.
                let mut fleet = self.fleet();
                for (digest, e) in records {
                    let p = fleet.pending_records.entry(digest).or_default();
                    p.deaths = p.deaths.saturating_add(e.deaths);
                    p.exposure_ms = p.exposure_ms.saturating_add(e.exposure_ms);
                }
                return Err(e);
            }
        }
        self.store.record_beats(beats).await?;
        Ok(n)
    }
}

// === impl Clock ===

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(Arc::new(rampart_host::clock::now_ms))
    }

    /// A clock that reads `f`.
    pub fn from_fn(f: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// Now, in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({} ms)", self.now_ms())
    }
}

/// The document inside stored bytes (verified when stored; only decoded here).
fn document(bytes: &[u8]) -> Result<rampart_artifact::Document, Error> {
    rampart_artifact::decode(bytes, rampart_artifact::limits::HARD_MAX_BYTES)
        .map(|d| d.document)
        .map_err(|issues| {
            Error::internal(format!(
                "stored artifact does not decode: {}",
                issues.first().map(ToString::to_string).unwrap_or_default()
            ))
        })
}
