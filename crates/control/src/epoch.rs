//! The control plane's epoch, kept twice: in its database (with the order sequence) and in
//! a file beside it, `control.epoch`. A database that was emptied, truncated or replaced by
//! an older copy has a lower epoch than the file (or none): the control plane then refuses
//! to start, because it would forget kill switches and rollouts and sign orders that edges
//! have already seen bettered. `rampart control --reinitialize --reason TEXT` starts it
//! anyway, on a new epoch above both (audited), which edges accept as newer.
//!
//! The database is written first, then the file: a crash between the two leaves the file
//! behind the database, which the next start repairs; never the file ahead of a database
//! that did not take the change.

use std::path::{Path, PathBuf};

use rampart_host::file;

use crate::store::{Batch, NewAudit, Write};

/// The epoch file, beside the database in the data dir.
pub const EPOCH_FILE: &str = "control.epoch";

/// The largest epoch file read (one decimal number and a newline).
pub const MAX_EPOCH_FILE_BYTES: usize = 64;

/// The epoch of a control plane's very first start.
pub const FIRST_EPOCH: u64 = 1;

/// What to do at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The epoch to run with.
    pub epoch: u64,
    /// Whether the database must be given this epoch (first start, reinitialize).
    pub store: bool,
    /// Whether the file must be (re)written.
    pub file: bool,
    /// Whether this is an operator's `--reinitialize`.
    pub reinitialized: bool,
}

/// Why the control plane refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// The database is behind its epoch file.
    #[error(
        "the database in {dir} is behind its epoch file: database epoch {db}, {file_name} says {file} \
         (the database was emptied, truncated or replaced by an older copy); refusing to start, \
         as it would undo kill switches and rollouts the edges already follow. If this is \
         intended, start once with `rampart control --reinitialize --reason TEXT` (audited)",
        db = .db.map_or_else(|| "none".to_owned(), |e| e.to_string()),
        file_name = EPOCH_FILE
    )]
    Behind {
        /// The data dir.
        dir: PathBuf,
        /// The database's epoch.
        db: Option<u64>,
        /// The file's epoch.
        file: u64,
    },
    /// The epoch file cannot be read or written.
    #[error("epoch file: {0}")]
    File(#[from] file::Error),
    /// The epoch file does not hold a number.
    #[error("epoch file {path}: {text:?} is not an epoch")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (bounded).
        text: String,
    },
}

/// The start rule, pure: `db` and `file` are the epochs found (`None`: none).
pub fn decide(
    dir: &Path,
    db: Option<u64>,
    file: Option<u64>,
    reinitialize: bool,
) -> Result<Decision, EpochError> {
    if reinitialize {
        let epoch = db
            .unwrap_or(0)
            .max(file.unwrap_or(0))
            .saturating_add(1)
            .max(FIRST_EPOCH);
        return Ok(Decision {
            epoch,
            store: true,
            file: true,
            reinitialized: true,
        });
    }
    match (db, file) {
        (None, None) => Ok(Decision {
            epoch: FIRST_EPOCH,
            store: true,
            file: true,
            reinitialized: false,
        }),
        (Some(d), None) => Ok(Decision {
            epoch: d,
            store: false,
            file: true,
            reinitialized: false,
        }),
        (Some(d), Some(f)) if d >= f => Ok(Decision {
            epoch: d,
            store: false,
            file: d != f,
            reinitialized: false,
        }),
        (db, Some(file)) => Err(EpochError::Behind {
            dir: dir.to_owned(),
            db,
            file,
        }),
    }
}

/// Reads the epoch file in `dir` (`None` when there is none).
pub fn read(dir: &Path) -> Result<Option<u64>, EpochError> {
    let path = dir.join(EPOCH_FILE);
    let text = match file::read_text(&path, MAX_EPOCH_FILE_BYTES) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    text.trim()
        .parse::<u64>()
        .map(Some)
        .map_err(|_| EpochError::Corrupt {
            path,
            text: text.chars().take(MAX_EPOCH_FILE_BYTES).collect(),
        })
}

/// Writes the epoch file in `dir` (mode 0600, atomically).
pub fn write(dir: &Path, epoch: u64) -> Result<(), EpochError> {
    file::write_private(&dir.join(EPOCH_FILE), format!("{epoch}\n").as_bytes())?;
    Ok(())
}

/// The writes that give the database `decision`'s epoch, with the audit entry of a
/// reinitialization.
pub fn batch(decision: &Decision, db: Option<u64>, reason: Option<&str>, now_ms: u64) -> Batch {
    let mut batch = Batch::one(Write::SetEpoch {
        epoch: decision.epoch,
        at_ms: now_ms,
    });
    if decision.reinitialized {
        batch.push(Write::Audit(NewAudit {
            at_ms: now_ms,
            who: "control".to_owned(),
            action: "reinitialize".to_owned(),
            subject: format!("epoch {}", decision.epoch),
            reason: reason.map(str::to_owned),
            detail: serde_json::json!({ "epoch": decision.epoch, "previous_db_epoch": db }),
        }));
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(db: Option<u64>, file: Option<u64>, re: bool) -> Result<Decision, EpochError> {
        decide(Path::new("/data"), db, file, re)
    }

    #[test]
    fn a_first_start_takes_epoch_one() {
        let first = d(None, None, false).unwrap();
        assert_eq!((first.epoch, first.store, first.file), (1, true, true));
    }

    #[test]
    fn a_database_behind_its_file_refuses_to_start() {
        for (db, file) in [(None, Some(1)), (Some(1), Some(2)), (None, Some(7))] {
            let e = d(db, file, false).unwrap_err();
            assert!(matches!(e, EpochError::Behind { .. }), "{db:?} {file:?}");
            assert!(e.to_string().contains("--reinitialize"), "{e}");
        }
    }

    #[test]
    fn a_file_behind_or_missing_is_repaired() {
        let same = d(Some(3), Some(3), false).unwrap();
        assert_eq!((same.epoch, same.store, same.file), (3, false, false));
        let behind = d(Some(4), Some(3), false).unwrap();
        assert_eq!((behind.epoch, behind.file), (4, true));
        let lost = d(Some(2), None, false).unwrap();
        assert_eq!((lost.epoch, lost.file), (2, true));
    }

    #[test]
    fn reinitialize_goes_above_both() {
        let r = d(None, Some(5), true).unwrap();
        assert_eq!(
            (r.epoch, r.store, r.file, r.reinitialized),
            (6, true, true, true)
        );
        assert_eq!(d(Some(9), Some(5), true).unwrap().epoch, 10);
        assert_eq!(d(None, None, true).unwrap().epoch, 1);
        let b = batch(&r, None, Some("disk lost"), 7);
        assert_eq!(b.writes.len(), 2);
        assert!(matches!(b.writes[1], Write::Audit(ref a) if a.action == "reinitialize"));
    }

    #[test]
    fn the_file_round_trips_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), 42).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(42));
        std::fs::write(dir.path().join(EPOCH_FILE), "forty-two").unwrap();
        assert!(matches!(read(dir.path()), Err(EpochError::Corrupt { .. })));
    }
}
