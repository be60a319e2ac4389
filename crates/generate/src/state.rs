//! The generator's state directory: what was last published, the content digests of the last
//! runs (for the flapping guard), a freeze, and counters. Every file is written atomically
//! (temp file, fsync, rename, fsync of the directory), and one generator at a time holds the
//! directory's lock.
//!
//! ```text
//! STATE_DIR/
//!   state.json       State: published version and digests, run history, freeze, counters
//!   published.json   the last published document (bare, for the delta guard)
//!   lock             held (flock) while a run is in progress
//! ```

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rampart_artifact::{Digest, Document};
use rampart_host::file;
use serde::{Deserialize, Serialize};

/// The schema identifier of `state.json`.
pub const STATE_SCHEMA: &str = "rampart.generate-state/v1";
/// The state file.
pub const STATE_FILE: &str = "state.json";
/// The last published document.
pub const PUBLISHED_FILE: &str = "published.json";
/// The lock file.
pub const LOCK_FILE: &str = "lock";
/// Runs kept in the history (the flapping guard reads the last few; the rest is for people).
pub const HISTORY_KEPT: usize = 32;
/// Largest state or published file read back, in bytes.
pub const MAX_STATE_BYTES: u64 = 4 * 1024 * 1024;

/// What the generator remembers between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Always [`STATE_SCHEMA`].
    pub schema: String,
    /// The last published file, if any.
    pub published: Option<Published>,
    /// The last runs that produced a candidate, oldest first (at most [`HISTORY_KEPT`]).
    pub history: Vec<Run>,
    /// Set when the flapping guard froze publishing.
    pub frozen: Option<Freeze>,
    /// Totals over the directory's life.
    pub counters: RunTotals,
}

/// The last published file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// Its version.
    pub version: u64,
    /// The digest of its document.
    pub digest: Digest,
    /// The digest of its content (features and bias).
    pub content: Digest,
    /// When it was published (RFC 3339).
    pub at: String,
    /// Where it went (a path or URL).
    pub output: String,
}

/// One run that produced a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// When (RFC 3339).
    pub at: String,
    /// The candidate's content digest.
    pub content: Digest,
    /// Its feature count.
    pub features: usize,
}

/// A freeze set by the flapping guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// When (RFC 3339).
    pub since: String,
    /// Why (the flapping guard's explanation).
    pub reason: String,
}

/// Run totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunTotals {
    /// Runs started.
    pub runs: u64,
    /// Runs that published a file.
    pub published: u64,
    /// Runs whose candidate equalled the published content.
    pub unchanged: u64,
    /// Runs a guard held.
    pub held: u64,
    /// Runs whose source failed.
    pub failed: u64,
}

/// An open, locked state directory.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

/// A state directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state dir {}: {what}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another generator holds the lock.
    #[error("state dir {} is in use by another generator", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A state file that is not what this generator writes.
    #[error("state dir {}: {file} is corrupt: {detail}", dir.display())]
    Corrupt {
        /// The directory.
        dir: PathBuf,
        /// The file.
        file: &'static str,
        /// What is wrong.
        detail: String,
    },
}

// === impl State ===

impl Default for State {
    fn default() -> Self {
        State {
            schema: STATE_SCHEMA.to_owned(),
            published: None,
            history: Vec::new(),
            frozen: None,
            counters: RunTotals::default(),
        }
    }
}

impl State {
    /// Appends a run, keeping the last [`HISTORY_KEPT`].
    pub fn record(&mut self, run: Run) {
        self.history.push(run);
        let extra = self.history.len().saturating_sub(HISTORY_KEPT);
        self.history.drain(..extra);
    }

    /// The content digests of the history, oldest first.
    pub fn digests(&self) -> Vec<Digest> {
        self.history.iter().map(|r| r.content).collect()
    }

    /// The version the next published file gets.
    pub fn next_version(&self) -> u64 {
        self.published.as_ref().map_or(1, |p| p.version + 1)
    }
}

// === impl StateDir ===

impl StateDir {
    /// Opens (creating it if needed) and locks a state directory.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        let io = |what: &str, source| StateError::Io {
            dir: dir.to_owned(),
            what: what.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| io("create", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| io("open lock", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    dir: dir.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        Ok(StateDir {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads the state (the default when there is none yet).
    pub fn load(&self) -> Result<State, StateError> {
        let Some(bytes) = self.read(STATE_FILE)? else {
            return Ok(State::default());
        };
        let state: State =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupt(STATE_FILE, e.to_string()))?;
        if state.schema != STATE_SCHEMA {
            return Err(self.corrupt(STATE_FILE, format!("schema {:?}", state.schema)));
        }
        Ok(state)
    }

    /// Writes the state atomically.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        bytes.push(b'\n');
        self.write(STATE_FILE, &bytes)
    }

    /// The last published document, checked against the state's record of it.
    pub fn published(&self, state: &State) -> Result<Option<Document>, StateError> {
        let Some(record) = &state.published else {
            return Ok(None);
        };
        let Some(bytes) = self.read(PUBLISHED_FILE)? else {
            return Err(self.corrupt(
                PUBLISHED_FILE,
                "missing, but state.json records a publication".into(),
            ));
        };
        let doc: Document = serde_json::from_slice(&bytes)
            .map_err(|e| self.corrupt(PUBLISHED_FILE, e.to_string()))?;
        if doc.digest() != record.digest {
            return Err(self.corrupt(
                PUBLISHED_FILE,
                format!(
                    "digest {} is not the recorded {}",
                    doc.digest(),
                    record.digest
                ),
            ));
        }
        Ok(Some(doc))
    }

    /// Writes the published document atomically.
    pub fn save_published(&self, doc: &Document) -> Result<(), StateError> {
        let mut bytes = doc.to_pretty_json().into_bytes();
        bytes.push(b'\n');
        self.write(PUBLISHED_FILE, &bytes)
    }

    fn read(&self, name: &'static str) -> Result<Option<Vec<u8>>, StateError> {
        let limit = usize::try_from(MAX_STATE_BYTES).unwrap_or(usize::MAX);
        match file::read_capped(&self.dir.join(name), limit) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(file::Error::TooLarge { .. }) => {
                Err(self.corrupt(name, format!("larger than {MAX_STATE_BYTES} bytes")))
            }
            Err(file::Error::Io { op, source, .. }) => Err(self.io(format!("{op} {name}"), source)),
            Err(e) => Err(self.io(format!("read {name}"), e.into_io())),
        }
    }

    fn write(&self, name: &'static str, bytes: &[u8]) -> Result<(), StateError> {
        file::write_atomic(&self.dir.join(name), bytes)
            .map_err(|e| self.io(format!("write {name}"), e.into_io()))
    }

    fn io(&self, what: String, source: std::io::Error) -> StateError {
        StateError::Io {
            dir: self.dir.clone(),
            what,
            source,
        }
    }

    fn corrupt(&self, file: &'static str, detail: String) -> StateError {
        StateError::Corrupt {
            dir: self.dir.clone(),
            file,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tag: &[u8]) -> Run {
        Run {
            at: "2025-11-18T11:05:00Z".into(),
            content: Digest::of(tag),
            features: 60,
        }
    }

    #[test]
    fn a_new_dir_has_the_default_state_and_version_1_next() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(&tmp.path().join("state")).unwrap();
        let s = dir.load().unwrap();
        assert_eq!(s, State::default());
        assert_eq!(s.next_version(), 1);
        assert_eq!(dir.published(&s).unwrap(), None);
    }

    #[test]
    fn state_round_trips_and_history_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let mut s = State::default();
        for i in 0..(HISTORY_KEPT + 5) {
            s.record(run(&i.to_le_bytes()));
        }
        assert_eq!(s.history.len(), HISTORY_KEPT);
        assert_eq!(s.history[0], run(&5usize.to_le_bytes()));
        s.counters.held = 3;
        dir.save(&s).unwrap();
        assert_eq!(dir.load().unwrap(), s);
    }

    #[test]
    fn one_generator_per_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let first = StateDir::open(tmp.path()).unwrap();
        assert!(matches!(
            StateDir::open(tmp.path()),
            Err(StateError::Locked { .. })
        ));
        drop(first);
        StateDir::open(tmp.path()).unwrap();
    }

    #[test]
    fn corrupt_or_inconsistent_files_are_errors_not_resets() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        fs::write(tmp.path().join(STATE_FILE), "{").unwrap();
        assert!(matches!(dir.load(), Err(StateError::Corrupt { .. })));
        let mut s = State {
            published: Some(Published {
                version: 1,
                digest: Digest::of(b"x"),
                content: Digest::of(b"y"),
                at: "t".into(),
                output: "o".into(),
            }),
            ..State::default()
        };
        assert!(matches!(
            dir.published(&s),
            Err(StateError::Corrupt {
                file: PUBLISHED_FILE,
                ..
            })
        ));
        let doc = rampart_score::example_document(1);
        dir.save_published(&doc).unwrap();
        assert!(
            matches!(dir.published(&s), Err(StateError::Corrupt { .. })),
            "digest mismatch"
        );
        s.published.as_mut().unwrap().digest = doc.digest();
        assert_eq!(dir.published(&s).unwrap(), Some(doc));
    }

    #[test]
    fn saves_leave_no_temp_file_and_an_oversized_file_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        dir.save(&State::default()).unwrap();
        dir.save(&State::default()).unwrap();
        let mut names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [LOCK_FILE, STATE_FILE], "no temp file left");
        let big = vec![b' '; usize::try_from(MAX_STATE_BYTES).unwrap() + 1];
        fs::write(tmp.path().join(STATE_FILE), big).unwrap();
        assert!(matches!(
            dir.load(),
            Err(StateError::Corrupt {
                file: STATE_FILE,
                ..
            })
        ));
    }
}
