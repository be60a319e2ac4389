//! The tables of node identity: bootstrap tokens and node credentials (hashes only), and
//! removing a node with everything that is its own.

use rampart_artifact::Digest;
use rusqlite::{Connection, params};

use super::{backend, int, uint};
use crate::store::{EnrollmentRecord, Loaded, StoreError, Write};

/// Migration 2: adds the tables; a database made before it keeps every node, which must
/// enroll before it may speak again.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE enrollments (
    hash TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    issued_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms INTEGER
);
CREATE TABLE credentials (
    node TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    issued_at_ms INTEGER NOT NULL
);
"#;

/// Applies the identity writes; others are not ours.
pub(super) fn apply(tx: &Connection, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::PutEnrollment(e) => {
            tx.execute(
                "INSERT INTO enrollments (hash, node, issued_by, issued_at_ms, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    e.hash.to_string(),
                    e.node,
                    e.issued_by,
                    int(e.issued_at_ms)?,
                    int(e.expires_at_ms)?
                ],
            )
            .map_err(backend)?;
        }
        Write::BurnEnrollment { hash, at_ms } => {
            tx.execute(
                "UPDATE enrollments SET used_at_ms = ?2 WHERE hash = ?1 AND used_at_ms IS NULL",
                params![hash.to_string(), int(*at_ms)?],
            )
            .map_err(backend)?;
        }
        Write::PutCredential { node, hash, at_ms } => {
            tx.execute(
                "INSERT INTO credentials (node, hash, issued_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (node) DO UPDATE SET hash = excluded.hash,
                 issued_at_ms = excluded.issued_at_ms",
                params![node, hash.to_string(), int(*at_ms)?],
            )
            .map_err(backend)?;
        }
        Write::RemoveNode { node } => {
            for sql in [
                "DELETE FROM nodes WHERE node = ?1",
                "DELETE FROM heartbeats WHERE node = ?1",
                "DELETE FROM beat_window WHERE node = ?1",
                "DELETE FROM desired WHERE node = ?1",
                "DELETE FROM kill_switches WHERE node = ?1",
                "DELETE FROM credentials WHERE node = ?1",
            ] {
                tx.execute(sql, params![node]).map_err(backend)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Loads unused bootstrap tokens and every credential.
pub(super) fn load(conn: &mut Connection, loaded: &mut Loaded) -> Result<(), StoreError> {
    {
        let mut stmt = conn
            .prepare(
                "SELECT hash, node, issued_by, issued_at_ms, expires_at_ms FROM enrollments
                 WHERE used_at_ms IS NULL ORDER BY issued_at_ms",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(backend)?;
        for row in rows {
            let (hash, node, issued_by, issued, expires) = row.map_err(backend)?;
            loaded.enrollments.push(EnrollmentRecord {
                hash: digest(&hash)?,
                node,
                issued_by,
                issued_at_ms: uint(issued)?,
                expires_at_ms: uint(expires)?,
            });
        }
    }
    let mut stmt = conn
        .prepare("SELECT node, hash FROM credentials ORDER BY node")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(backend)?;
    for row in rows {
        let (node, hash) = row.map_err(backend)?;
        loaded.credentials.push((node, digest(&hash)?));
    }
    Ok(())
}

fn digest(s: &str) -> Result<Digest, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("stored hash {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use rampart_api::{Labels, Registration};
    use rampart_artifact::ContractSpec;

    use super::super::{DB_FILE, MIGRATIONS, SqliteStore, connect};
    use super::*;
    use crate::store::{Batch, Store};

    #[tokio::test]
    async fn a_database_from_before_enrollment_keeps_its_nodes_and_gains_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The schema as the previous version left it: migration 1 only, one node.
            let conn = connect(&dir.path().join(DB_FILE), super::super::Durability::Full).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let reg = Registration {
                node: "fra-1".into(),
                labels: Labels {
                    pop: "fra".into(),
                    region: "eu".into(),
                    canary: false,
                },
                contract: ContractSpec::default(),
                software_version: "old".into(),
            };
            conn.execute(
                "INSERT INTO nodes (node, registered_at_ms, registration) VALUES ('fra-1', 5, ?1)",
                params![serde_json::to_string(&reg).unwrap()],
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.nodes.len(), 1);
        assert!(loaded.credentials.is_empty() && loaded.enrollments.is_empty());
        // The new writes work on it, and removal takes the node's rows with it.
        let hash = Digest::of(b"credential");
        let mut batch = Batch::one(Write::PutCredential {
            node: "fra-1".into(),
            hash,
            at_ms: 6,
        });
        batch.push(Write::PutEnrollment(EnrollmentRecord {
            hash: Digest::of(b"boot"),
            node: "fra-2".into(),
            issued_by: "alice".into(),
            issued_at_ms: 6,
            expires_at_ms: 100,
        }));
        store.commit(batch).await.unwrap();
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.credentials, vec![("fra-1".to_owned(), hash)]);
        assert_eq!(loaded.enrollments.len(), 1);
        store
            .commit(Batch::one(Write::BurnEnrollment {
                hash: Digest::of(b"boot"),
                at_ms: 7,
            }))
            .await
            .unwrap();
        store
            .commit(Batch::one(Write::RemoveNode {
                node: "fra-1".into(),
            }))
            .await
            .unwrap();
        let loaded = store.load().await.unwrap();
        assert!(loaded.nodes.is_empty() && loaded.credentials.is_empty());
        assert!(
            loaded.enrollments.is_empty(),
            "a burned token is not loaded"
        );
    }
}
