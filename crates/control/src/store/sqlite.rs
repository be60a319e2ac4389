//! The SQLite backend: one file `control.sqlite3` in the data dir, WAL mode,
//! `synchronous=FULL` (a commit is on disk before the answer leaves), schema migrations by
//! `PRAGMA user_version`, and an exclusive `flock` on the database file so two control planes never drive one fleet.
//!
//! Two connections: a writer (every batch, serialized) and a reader (artifact bytes, lists,
//! audit), so a large fetch never waits behind a commit. Both run on tokio's blocking pool.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rampart_api::limits::MAX_BLESSED;
use rampart_api::{ArtifactMeta, AuditEntry, BadMark, Heartbeat, KillSwitchEntry, Registration};
use rampart_artifact::Digest;
use rusqlite::{Connection, OptionalExtension, params};

mod identity;

use super::{
    ArtifactRecord, Batch, BeatRecord, Loaded, NodeRecord, OrderState, RolloutRecord, Store,
    StoreError, Target, Write,
};

/// The database file in the data dir.
pub const DB_FILE: &str = "control.sqlite3";

/// Recent heartbeats kept per node (the latest is also kept on its own).
pub const BEAT_WINDOW: usize = 16;

/// How long a connection waits for the other one's lock before failing, in ms.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The schema, one migration per entry; `PRAGMA user_version` counts the applied ones.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE artifacts (
    digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    published_at_ms INTEGER NOT NULL,
    meta TEXT NOT NULL,
    bad TEXT,
    bytes BLOB NOT NULL
);
CREATE INDEX artifacts_by_time ON artifacts (published_at_ms DESC, digest);
CREATE INDEX artifacts_by_version ON artifacts (kind, version);
CREATE TABLE nodes (
    node TEXT PRIMARY KEY,
    registered_at_ms INTEGER NOT NULL,
    registration TEXT NOT NULL
);
CREATE TABLE heartbeats (
    node TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    beat TEXT NOT NULL
);
CREATE TABLE beat_window (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    beat TEXT NOT NULL
);
CREATE INDEX beat_window_by_node ON beat_window (node, id);
CREATE TABLE desired (
    kind TEXT NOT NULL,
    node TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (kind, node)
);
CREATE TABLE kill_switches (
    module TEXT NOT NULL,
    node TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (module, node)
);
CREATE TABLE rollouts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    done INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE UNIQUE INDEX one_running_rollout_per_kind ON rollouts (kind) WHERE done = 0;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT,
    detail TEXT
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    identity::MIGRATION,
    r#"
CREATE TABLE orders (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE blessed (
    digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    rollout INTEGER NOT NULL
);
CREATE TABLE version_records (
    digest TEXT PRIMARY KEY,
    deaths INTEGER NOT NULL,
    exposure_ms INTEGER NOT NULL
);
"#,
];

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// An exclusive `flock` on the database file itself, held for the life of the store; the
    /// OS releases it when the process dies, SIGKILL included, so a restart never finds a
    /// stale lock. On the database, not on a file beside it: deleting a lock file cannot let
    /// a second control plane in. (`flock` and SQLite's own POSIX record locks do not
    /// interact on Linux, and this descriptor stays open as long as the connections.)
    _lock: Arc<File>,
}

// === impl SqliteStore ===

impl SqliteStore {
    /// Opens (creating when needed) the store in `dir`, migrating the schema. Fails when
    /// another process holds the data dir.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Durability::Full)
    }

    /// Opens a materialized copy whose durability lives elsewhere (the NATS commit log):
    /// `synchronous=OFF`, since a crash loses nothing the log does not hold.
    pub(crate) fn open_cache(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Durability::Off)
    }

    fn open_with(dir: &Path, sync: Durability) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
        lock.try_lock().map_err(|e| {
            StoreError::Backend(format!(
                "database {} is in use by another control plane ({e})",
                path.display()
            ))
        })?;
        let mut writer = connect(&path, sync)?;
        migrate(&mut writer)?;
        let reader = connect(&path, sync)?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            path,
            _lock: Arc::new(lock),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What [`Store::commit`] would answer, without writing anything: the batch is applied
    /// in a transaction that is rolled back. The NATS backend asks this before it appends a
    /// batch to its log, so the log holds only batches that apply.
    pub(crate) async fn check(&self, batch: Batch) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            for w in &batch.writes {
                apply(&tx, w)?;
            }
            tx.rollback().map_err(backend)
        })
        .await
    }

    /// Applies batches read back from a log, each whole or not at all, in one transaction:
    /// a batch that fails now failed when it was first committed too (the writes are
    /// deterministic), so it is skipped, as it was then. Returns how many were skipped.
    pub(crate) async fn replay(&self, batches: Vec<Batch>) -> Result<usize, StoreError> {
        self.write(move |conn| {
            let mut tx = conn.transaction().map_err(backend)?;
            let mut skipped = 0;
            for batch in &batches {
                let sp = tx.savepoint().map_err(backend)?;
                let applied = batch.writes.iter().try_for_each(|w| apply(&sp, w));
                if applied.is_ok() {
                    sp.commit().map_err(backend)?;
                } else {
                    skipped += 1;
                    sp.finish().map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)?;
            Ok(skipped)
        })
        .await
    }

    /// A consistent copy of the whole database as bytes (`VACUUM INTO` a file beside it),
    /// taken between batches.
    pub(crate) async fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        let copy = self.path.with_extension("snapshot");
        self.write(move |conn| {
            // VACUUM INTO refuses an existing file.
            let _ = std::fs::remove_file(&copy);
            conn.execute("VACUUM INTO ?1", params![copy.to_string_lossy()])
                .map_err(backend)?;
            let bytes = std::fs::read(&copy)
                .map_err(|e| StoreError::Backend(format!("read {}: {e}", copy.display())))?;
            let _ = std::fs::remove_file(&copy);
            Ok(bytes)
        })
        .await
    }

    async fn on<T, F>(conn: &Arc<Mutex<Connection>>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(conn);
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic while holding it, which the lints rule out; were
            // it to happen, SQLite rolled the open transaction back, so the connection is
            // usable.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task: {e}")))?
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on(&self.writer, f).await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on(&self.reader, f).await
    }
}

impl Store for SqliteStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        self.read(load).await
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            for w in &batch.writes {
                apply(&tx, w)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn record_beats(&self, beats: Vec<BeatRecord>) -> Result<(), StoreError> {
        if beats.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut latest = tx
                    .prepare_cached(
                        "INSERT INTO heartbeats (node, at_ms, beat) VALUES (?1, ?2, ?3)
                         ON CONFLICT (node) DO UPDATE SET at_ms = excluded.at_ms,
                         beat = excluded.beat",
                    )
                    .map_err(backend)?;
                let mut window = tx
                    .prepare_cached(
                        "INSERT INTO beat_window (node, at_ms, beat) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(backend)?;
                let mut prune = tx
                    .prepare_cached(
                        "DELETE FROM beat_window WHERE node = ?1 AND id <= (SELECT id FROM \
                         beat_window WHERE node = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    )
                    .map_err(backend)?;
                for b in &beats {
                    let json = to_json(&b.beat)?;
                    let at = int(b.at_ms)?;
                    latest.execute(params![b.node, at, json]).map_err(backend)?;
                    window.execute(params![b.node, at, json]).map_err(backend)?;
                    prune
                        .execute(params![b.node, int(BEAT_WINDOW as u64)?])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn recent_beats(&self, node: String) -> Result<Vec<BeatRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT at_ms, beat FROM beat_window WHERE node = ?1 ORDER BY id DESC LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![node, int(BEAT_WINDOW as u64)?], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (at, beat) = row.map_err(backend)?;
                out.push(BeatRecord {
                    node: node.clone(),
                    at_ms: uint(at)?,
                    beat: from_json::<Heartbeat>(&beat)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn artifact(&self, digest: Digest) -> Result<Option<ArtifactRecord>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT meta, bad, bytes FROM artifacts WHERE digest = ?1",
                    params![digest.to_string()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            row.map(|(meta, bad, bytes)| {
                Ok(ArtifactRecord {
                    meta: meta_from(&meta, bad.as_deref())?,
                    bytes,
                })
            })
            .transpose()
        })
        .await
    }

    async fn artifact_meta(&self, digest: Digest) -> Result<Option<ArtifactMeta>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT meta, bad FROM artifacts WHERE digest = ?1",
                    params![digest.to_string()],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(meta, bad)| meta_from(&meta, bad.as_deref()))
                .transpose()
        })
        .await
    }

    async fn artifact_at(
        &self,
        kind: String,
        version: u64,
    ) -> Result<Option<ArtifactMeta>, StoreError> {
        // A version SQLite cannot hold is not stored.
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT meta, bad FROM artifacts WHERE kind = ?1 AND version = ?2
                     ORDER BY published_at_ms LIMIT 1",
                    params![kind, version],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(meta, bad)| meta_from(&meta, bad.as_deref()))
                .transpose()
        })
        .await
    }

    async fn artifact_before(
        &self,
        kind: String,
        version: u64,
    ) -> Result<Option<ArtifactMeta>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT meta, bad FROM artifacts WHERE kind = ?1 AND version < ?2
                     ORDER BY version DESC, published_at_ms DESC LIMIT 1",
                    params![kind, int(version)?],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(meta, bad)| meta_from(&meta, bad.as_deref()))
                .transpose()
        })
        .await
    }

    async fn artifacts(&self, limit: usize) -> Result<Vec<ArtifactMeta>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT meta, bad FROM artifacts ORDER BY published_at_ms DESC, digest LIMIT ?1",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![int(limit as u64)?], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (meta, bad) = row.map_err(backend)?;
                out.push(meta_from(&meta, bad.as_deref())?);
            }
            Ok(out)
        })
        .await
    }

    async fn rollout(&self, id: u64) -> Result<Option<RolloutRecord>, StoreError> {
        self.read(move |conn| {
            let state = conn
                .query_row(
                    "SELECT state FROM rollouts WHERE id = ?1",
                    params![int(id)?],
                    |r| r.get::<_, String>(0),
                )
                .optional()
                .map_err(backend)?;
            state.map(|s| from_json::<RolloutRecord>(&s)).transpose()
        })
        .await
    }

    async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        self.read(move |conn| rollouts(conn, "1 = 1", limit)).await
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, at_ms, who, action, subject, reason, detail FROM audit
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![int(after)?, int(limit as u64)?], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, who, action, subject, reason, detail) = row.map_err(backend)?;
                out.push(AuditEntry {
                    seq: uint(seq)?,
                    at_ms: uint(at)?,
                    who,
                    action,
                    subject,
                    reason,
                    detail: detail
                        .as_deref()
                        .map(from_json::<serde_json::Value>)
                        .transpose()?
                        .unwrap_or(serde_json::Value::Null),
                });
            }
            Ok(out)
        })
        .await
    }
}

/// How a connection syncs its commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// `synchronous=FULL`: a commit is on disk before it returns.
    Full,
    /// `synchronous=OFF`: for a copy whose durability is elsewhere.
    Off,
}

fn connect(path: &Path, sync: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(backend)?;
    // WAL: readers never block the writer. FULL: a commit is fsynced before it returns,
    // which is what "acknowledged" means here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "SQLite refused WAL mode (got {mode})"
        )));
    }
    let level = match sync {
        Durability::Full => "FULL",
        Durability::Off => "OFF",
    };
    conn.pragma_update(None, "synchronous", level)
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "schema version {applied} is newer than this program ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", int(i as u64 + 1)?)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

/// One write, inside the caller's transaction (or savepoint).
fn apply(tx: &Connection, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::PutArtifact(record) => {
            let digest = record.meta.digest.to_string();
            let existing: Option<Option<String>> = tx
                .query_row(
                    "SELECT bad FROM artifacts WHERE digest = ?1",
                    params![digest],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match existing {
                Some(Some(_)) => return Err(StoreError::MarkedBad(record.meta.digest)),
                Some(None) => {}
                None => {
                    let mut meta = record.meta.clone();
                    meta.bad = None;
                    tx.execute(
                        "INSERT INTO artifacts (digest, kind, version, published_at_ms, meta,
                         bad, bytes) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
                        params![
                            digest,
                            meta.kind,
                            int(meta.version)?,
                            int(meta.published_at_ms)?,
                            to_json(&meta)?,
                            record.bytes
                        ],
                    )
                    .map_err(backend)?;
                }
            }
        }
        Write::MarkBad { digest, mark } => {
            tx.execute(
                "UPDATE artifacts SET bad = ?2 WHERE digest = ?1 AND bad IS NULL",
                params![digest.to_string(), to_json(mark)?],
            )
            .map_err(backend)?;
        }
        Write::PutNode(node) => {
            tx.execute(
                "INSERT INTO nodes (node, registered_at_ms, registration) VALUES (?1, ?2, ?3)
                 ON CONFLICT (node) DO UPDATE SET registration = excluded.registration",
                params![
                    node.registration.node,
                    int(node.registered_at_ms)?,
                    to_json(&node.registration)?
                ],
            )
            .map_err(backend)?;
        }
        Write::SetDesired { kind, node, target } => {
            let node = node.as_deref().unwrap_or("");
            match target {
                Some(t) => tx.execute(
                    "INSERT INTO desired (kind, node, version, digest) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, node) DO UPDATE SET version = excluded.version,
                     digest = excluded.digest",
                    params![kind, node, int(t.version)?, t.digest.to_string()],
                ),
                None => tx.execute(
                    "DELETE FROM desired WHERE kind = ?1 AND node = ?2",
                    params![kind, node],
                ),
            }
            .map_err(backend)?;
        }
        Write::ClearNodeDesired { kind } => {
            tx.execute(
                "DELETE FROM desired WHERE kind = ?1 AND node != ''",
                params![kind],
            )
            .map_err(backend)?;
        }
        Write::SetKillSwitch(entry) => {
            tx.execute(
                "INSERT INTO kill_switches (module, node, entry) VALUES (?1, ?2, ?3)
                 ON CONFLICT (module, node) DO UPDATE SET entry = excluded.entry",
                params![
                    entry.module.as_str(),
                    entry.node.as_deref().unwrap_or(""),
                    to_json(entry)?
                ],
            )
            .map_err(backend)?;
        }
        Write::ClearKillSwitch { module, node } => {
            tx.execute(
                "DELETE FROM kill_switches WHERE module = ?1 AND node = ?2",
                params![module.as_str(), node],
            )
            .map_err(backend)?;
        }
        Write::PutRollout(r) => {
            tx.execute(
                "INSERT INTO rollouts (id, kind, digest, done, state) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET done = excluded.done, state = excluded.state",
                params![
                    int(r.id)?,
                    r.kind,
                    r.digest.to_string(),
                    r.done,
                    to_json(r.as_ref())?
                ],
            )
            .map_err(|e| {
                if is_constraint(&e) {
                    StoreError::Conflict(format!("a rollout of kind {} is already running", r.kind))
                } else {
                    backend(e)
                }
            })?;
        }
        Write::PutEnrollment(_)
        | Write::BurnEnrollment { .. }
        | Write::PutCredential { .. }
        | Write::RemoveNode { .. } => identity::apply(tx, write)?,
        Write::Audit(a) => {
            let detail = if a.detail.is_null() {
                None
            } else {
                Some(to_json(&a.detail)?)
            };
            tx.execute(
                "INSERT INTO audit (at_ms, who, action, subject, reason, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![int(a.at_ms)?, a.who, a.action, a.subject, a.reason, detail],
            )
            .map_err(backend)?;
        }
        Write::NextOrder { at_ms } => {
            let changed = tx
                .execute(
                    "UPDATE orders SET seq = seq + 1, at_ms = ?1 WHERE id = 1",
                    params![int(*at_ms)?],
                )
                .map_err(backend)?;
            if changed != 1 {
                return Err(StoreError::Conflict(
                    "no epoch in the store: the order sequence cannot move".to_owned(),
                ));
            }
        }
        Write::Bless {
            kind,
            version,
            digest,
            at_ms,
            rollout,
        } => {
            tx.execute(
                "INSERT INTO blessed (digest, kind, version, at_ms, rollout)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (digest) DO UPDATE SET at_ms = excluded.at_ms,
                 rollout = excluded.rollout",
                params![
                    digest.to_string(),
                    kind,
                    int(*version)?,
                    int(*at_ms)?,
                    int(*rollout)?
                ],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM blessed WHERE kind = ?1 AND digest NOT IN
                 (SELECT digest FROM blessed WHERE kind = ?1
                  ORDER BY at_ms DESC, version DESC LIMIT ?2)",
                params![kind, int(MAX_BLESSED as u64)?],
            )
            .map_err(backend)?;
        }
        Write::Unbless { digest } => {
            tx.execute(
                "DELETE FROM blessed WHERE digest = ?1",
                params![digest.to_string()],
            )
            .map_err(backend)?;
        }
        Write::AddRecords(records) => {
            for (digest, e) in records {
                tx.execute(
                    "INSERT INTO version_records (digest, deaths, exposure_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (digest) DO UPDATE SET deaths = deaths + excluded.deaths,
                     exposure_ms = exposure_ms + excluded.exposure_ms",
                    params![digest.to_string(), int(e.deaths)?, int(e.exposure_ms)?],
                )
                .map_err(backend)?;
            }
        }
        Write::SetEpoch { epoch, at_ms } => {
            tx.execute(
                "INSERT INTO orders (id, epoch, seq, at_ms) VALUES (1, ?1, 0, ?2)
                 ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, at_ms = excluded.at_ms",
                params![int(*epoch)?, int(*at_ms)?],
            )
            .map_err(backend)?;
        }
    }
    Ok(())
}

fn load(conn: &mut Connection) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    {
        let mut stmt = conn
            .prepare("SELECT registered_at_ms, registration FROM nodes ORDER BY node")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend)?;
        for row in rows {
            let (at, reg) = row.map_err(backend)?;
            loaded.nodes.push(NodeRecord {
                registration: from_json::<Registration>(&reg)?,
                registered_at_ms: uint(at)?,
            });
        }
    }
    {
        let mut stmt = conn
            .prepare("SELECT node, at_ms, beat FROM heartbeats ORDER BY node")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (node, at, beat) = row.map_err(backend)?;
            loaded.beats.push(BeatRecord {
                node,
                at_ms: uint(at)?,
                beat: from_json::<Heartbeat>(&beat)?,
            });
        }
    }
    {
        let mut stmt = conn
            .prepare("SELECT kind, node, version, digest FROM desired ORDER BY kind, node")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (kind, node, version, digest) = row.map_err(backend)?;
            let digest = digest
                .parse::<Digest>()
                .map_err(|e| StoreError::Corrupt(format!("desired digest: {e}")))?;
            let node = (!node.is_empty()).then_some(node);
            loaded.desired.push((
                kind,
                node,
                Target {
                    version: uint(version)?,
                    digest,
                },
            ));
        }
    }
    {
        let mut stmt = conn
            .prepare("SELECT entry FROM kill_switches ORDER BY module, node")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        for row in rows {
            loaded
                .kill_switches
                .push(from_json::<KillSwitchEntry>(&row.map_err(backend)?)?);
        }
    }
    loaded.active_rollouts = rollouts(conn, "done = 0", usize::MAX)?;
    let last: Option<i64> = conn
        .query_row("SELECT MAX(id) FROM rollouts", [], |r| r.get(0))
        .map_err(backend)?;
    loaded.last_rollout_id = last.map(uint).transpose()?.unwrap_or(0);
    identity::load(conn, &mut loaded)?;
    let order: Option<(i64, i64, i64)> = conn
        .query_row(
            "SELECT epoch, seq, at_ms FROM orders WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    loaded.order = order
        .map(|(epoch, seq, at_ms)| {
            Ok::<_, StoreError>(OrderState {
                epoch: uint(epoch)?,
                seq: uint(seq)?,
                at_ms: uint(at_ms)?,
            })
        })
        .transpose()?;
    {
        let mut stmt = conn
            .prepare(
                "SELECT kind, version, digest FROM blessed
                 ORDER BY kind, at_ms DESC, version DESC",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (kind, version, digest) = row.map_err(backend)?;
            loaded.blessed.push((
                kind,
                rampart_api::Active {
                    version: uint(version)?,
                    digest: parse_digest(&digest)?,
                },
            ));
        }
    }
    {
        let mut stmt = conn
            .prepare("SELECT digest, deaths, exposure_ms FROM version_records ORDER BY digest")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (digest, deaths, exposure_ms) = row.map_err(backend)?;
            loaded.records.push((
                parse_digest(&digest)?,
                rampart_rollout::Exposure {
                    deaths: uint(deaths)?,
                    exposure_ms: uint(exposure_ms)?,
                },
            ));
        }
    }
    // The latest finished rollout of each kind: aftercare resumes from it.
    let mut kinds = std::collections::BTreeSet::new();
    for r in rollouts(conn, "done = 1", FINISHED_SCAN)? {
        if kinds.insert(r.kind.clone()) {
            loaded.finished.push(r);
        }
    }
    Ok(loaded)
}

/// Finished rollouts read at start to find each kind's latest (there are few kinds).
const FINISHED_SCAN: usize = 64;

fn parse_digest(text: &str) -> Result<Digest, StoreError> {
    text.parse::<Digest>()
        .map_err(|e| StoreError::Corrupt(format!("stored digest: {e}")))
}

fn rollouts(
    conn: &Connection,
    filter: &str,
    limit: usize,
) -> Result<Vec<RolloutRecord>, StoreError> {
    // `filter` is one of the constant strings above, never input.
    let sql = format!("SELECT state FROM rollouts WHERE {filter} ORDER BY id DESC LIMIT ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![limit], |r| r.get::<_, String>(0))
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(from_json::<RolloutRecord>(&row.map_err(backend)?)?);
    }
    Ok(out)
}

fn meta_from(meta: &str, bad: Option<&str>) -> Result<ArtifactMeta, StoreError> {
    let mut meta = from_json::<ArtifactMeta>(meta)?;
    meta.bad = bad.map(from_json::<BadMark>).transpose()?;
    Ok(meta)
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("decode: {e}")))
}

fn int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{v} does not fit SQLite's INTEGER")))
}

fn uint(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewAudit;
    use rampart_api::Module;

    fn meta(v: u64) -> ArtifactMeta {
        ArtifactMeta {
            digest: Digest::of(&v.to_le_bytes()),
            kind: "features".into(),
            version: v,
            features: 1,
            size: 3,
            signer: "k".into(),
            created_at: "t".into(),
            source: "s".into(),
            published_at_ms: v,
            published_by: "gen".into(),
            bad: None,
            blessed: false,
        }
    }

    fn put(v: u64) -> Write {
        Write::PutArtifact(Box::new(ArtifactRecord {
            meta: meta(v),
            bytes: vec![1, 2, 3],
        }))
    }

    fn audit(action: &str) -> Write {
        Write::Audit(NewAudit {
            at_ms: 1,
            who: "alice".into(),
            action: action.into(),
            subject: "s".into(),
            reason: None,
            detail: serde_json::Value::Null,
        })
    }

    fn rollout(id: u64, done: bool) -> Write {
        Write::PutRollout(Box::new(RolloutRecord {
            id,
            kind: "features".into(),
            digest: Digest::of(b"x"),
            done,
            state: serde_json::json!({ "n": id }),
        }))
    }

    #[tokio::test]
    async fn the_order_sequence_moves_only_with_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(
            s.load().await.unwrap().order,
            None,
            "a new store has no epoch"
        );
        // Without an epoch the sequence cannot move: the batch fails whole.
        let early = Batch {
            writes: vec![put(1), Write::NextOrder { at_ms: 5 }],
        };
        assert!(matches!(
            s.commit(early).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(s.artifact_meta(meta(1).digest).await.unwrap().is_none());
        s.commit(Batch::one(Write::SetEpoch { epoch: 3, at_ms: 1 }))
            .await
            .unwrap();
        s.commit(Batch::one(rollout(1, false))).await.unwrap();
        // A batch that fails leaves the sequence where it was.
        let failing = Batch {
            writes: vec![Write::NextOrder { at_ms: 7 }, rollout(2, false)],
        };
        assert!(s.commit(failing).await.is_err());
        let order = s.load().await.unwrap().order.unwrap();
        assert_eq!((order.epoch, order.seq, order.at_ms), (3, 0, 1));
        s.commit(Batch::one(Write::NextOrder { at_ms: 9 }))
            .await
            .unwrap();
        // A new epoch keeps the sequence.
        s.commit(Batch::one(Write::SetEpoch {
            epoch: 4,
            at_ms: 10,
        }))
        .await
        .unwrap();
        drop(s);
        let order = SqliteStore::open(dir.path())
            .unwrap()
            .load()
            .await
            .unwrap()
            .order
            .unwrap();
        assert_eq!((order.epoch, order.seq, order.at_ms), (4, 1, 10));
    }

    #[tokio::test]
    async fn a_batch_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.commit(Batch::one(put(1))).await.unwrap();
        s.commit(Batch::one(Write::MarkBad {
            digest: meta(1).digest,
            mark: BadMark {
                at_ms: 2,
                reason: "nack".into(),
                rollout: Some(1),
            },
        }))
        .await
        .unwrap();
        // The audit entry comes first in the batch; the bad artifact fails the batch.
        let mut batch = Batch::one(audit("first"));
        batch.push(put(1));
        assert_eq!(
            s.commit(batch).await,
            Err(StoreError::MarkedBad(meta(1).digest))
        );
        assert!(s.audit(0, 10).await.unwrap().is_empty());
        let m = s.artifact_meta(meta(1).digest).await.unwrap().unwrap();
        assert_eq!(m.bad.unwrap().reason, "nack");
    }

    #[tokio::test]
    async fn one_running_rollout_per_kind_is_enforced_by_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.commit(Batch::one(rollout(1, false))).await.unwrap();
        assert!(matches!(
            s.commit(Batch::one(rollout(2, false))).await,
            Err(StoreError::Conflict(_))
        ));
        s.commit(Batch::one(rollout(1, true))).await.unwrap();
        s.commit(Batch::one(rollout(2, false))).await.unwrap();
        let loaded = s.load().await.unwrap();
        assert_eq!(loaded.last_rollout_id, 2);
        assert_eq!(loaded.active_rollouts.len(), 1);
        assert_eq!(loaded.active_rollouts[0].id, 2);
        assert_eq!(s.rollouts(10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn everything_committed_is_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            let mut b = Batch::one(put(1));
            b.push(Write::SetDesired {
                kind: "features".into(),
                node: None,
                target: Some(Target {
                    version: 1,
                    digest: meta(1).digest,
                }),
            });
            b.push(Write::SetKillSwitch(KillSwitchEntry {
                module: Module::Bot,
                node: None,
                enabled: false,
                reason: "r".into(),
                set_by: "alice".into(),
                at_ms: 3,
            }));
            b.push(audit("a"));
            s.commit(b).await.unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let loaded = s.load().await.unwrap();
        assert_eq!(loaded.desired.len(), 1);
        assert_eq!(loaded.kill_switches.len(), 1);
        assert_eq!(s.audit(0, 10).await.unwrap()[0].seq, 1);
        assert_eq!(
            s.artifact(meta(1).digest).await.unwrap().unwrap().bytes,
            vec![1, 2, 3]
        );
        let v: i64 = s
            .writer
            .lock()
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn blessings_and_death_records_survive_reopening_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = |v: u64| Digest::of(&v.to_le_bytes());
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            for v in 1..=(MAX_BLESSED as u64 + 2) {
                s.commit(Batch::one(Write::Bless {
                    kind: "features".into(),
                    version: v,
                    digest: d(v),
                    at_ms: v,
                    rollout: v,
                }))
                .await
                .unwrap();
            }
            s.commit(Batch::one(Write::Unbless {
                digest: d(MAX_BLESSED as u64 + 2),
            }))
            .await
            .unwrap();
            let e = |deaths, exposure_ms| rampart_rollout::Exposure {
                deaths,
                exposure_ms,
            };
            s.commit(Batch::one(Write::AddRecords(vec![(d(1), e(1, 1_000))])))
                .await
                .unwrap();
            s.commit(Batch::one(Write::AddRecords(vec![(d(1), e(2, 500))])))
                .await
                .unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let loaded = s.load().await.unwrap();
        let versions: Vec<u64> = loaded.blessed.iter().map(|(_, a)| a.version).collect();
        // The newest MAX_BLESSED were kept, then the newest was withdrawn.
        let expect: Vec<u64> = (3..=(MAX_BLESSED as u64 + 1)).rev().collect();
        assert_eq!(versions, expect);
        assert_eq!(
            loaded.records,
            vec![(
                d(1),
                rampart_rollout::Exposure {
                    deaths: 3,
                    exposure_ms: 1_500
                }
            )]
        );
    }

    /// Issue 13: deleting `control.lock` let a second control plane run on the same
    /// database. The lock is now on the database file itself.
    #[tokio::test]
    async fn a_second_store_on_the_same_database_is_refused_whatever_files_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        // Whatever lock files an operator deletes, the database stays locked.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() != DB_FILE {
                std::fs::remove_file(path).unwrap();
            }
        }
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("is in use by another control plane"),
            "{err}"
        );
        drop(first);
        let again = SqliteStore::open(dir.path()).unwrap();
        again.commit(Batch::one(audit("after"))).await.unwrap();
    }

    /// The NATS backend's model: a check writes nothing, a replay applies each batch whole
    /// or skips it, as the commit that first saw it did.
    #[tokio::test]
    async fn a_check_writes_nothing_and_a_replay_skips_what_failed_then() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open_cache(dir.path()).unwrap();
        s.check(Batch::one(audit("checked"))).await.unwrap();
        assert!(s.audit(0, 10).await.unwrap().is_empty());
        assert!(matches!(
            s.check(Batch::one(Write::NextOrder { at_ms: 1 })).await,
            Err(StoreError::Conflict(_))
        ));
        let failing = Batch {
            writes: vec![audit("lost"), Write::NextOrder { at_ms: 1 }],
        };
        let skipped = s
            .replay(vec![
                Batch::one(audit("a")),
                failing,
                Batch::one(audit("b")),
            ])
            .await
            .unwrap();
        assert_eq!(skipped, 1);
        let actions: Vec<String> = s
            .audit(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["a", "b"]);
        let copy = s.snapshot().await.unwrap();
        assert!(copy.starts_with(b"SQLite format 3\0"));
    }

    #[tokio::test]
    async fn the_audit_log_cannot_be_edited() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.commit(Batch::one(audit("a"))).await.unwrap();
        let conn = s.writer.lock().unwrap();
        assert!(
            conn.execute("UPDATE audit SET who = 'mallory'", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM audit", []).is_err());
        let who: String = conn
            .query_row("SELECT who FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(who, "alice");
    }

    #[tokio::test]
    async fn the_heartbeat_window_is_bounded_per_node() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        for round in 0..(BEAT_WINDOW as u64 + 5) {
            let beats = ["a", "b"]
                .iter()
                .map(|n| BeatRecord {
                    node: (*n).into(),
                    at_ms: round,
                    beat: Heartbeat::empty(round),
                })
                .collect();
            s.record_beats(beats).await.unwrap();
        }
        let recent = s.recent_beats("a".into()).await.unwrap();
        assert_eq!(recent.len(), BEAT_WINDOW);
        assert_eq!(recent[0].beat.seq, BEAT_WINDOW as u64 + 4, "newest first");
        let rows: i64 = s
            .writer
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM beat_window", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2 * BEAT_WINDOW as i64);
        assert_eq!(s.load().await.unwrap().beats.len(), 2);
    }

    #[tokio::test]
    async fn a_second_control_plane_cannot_open_the_same_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        let e = SqliteStore::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        drop(first);
        SqliteStore::open(dir.path()).unwrap();
    }

    #[test]
    fn the_store_runs_in_wal_mode_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let conn = s.writer.lock().unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
    }
}
