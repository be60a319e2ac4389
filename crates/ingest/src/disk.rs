//! The two file operations ingestion trusts, a capped read and an atomic replace, with
//! ingestion's own [`DiskError`]; the operations themselves are `rampart_host::file`'s.
//!
//! Every file in the data dir is read with [`read_capped`] (opened without blocking and
//! refused unless it is a regular file, so a FIFO never hangs a reader; its length from metadata is
//! compared with the cap before a byte is read, and the read itself stops at the cap, so a
//! file that grows between the two checks is still refused) and written with
//! [`write_atomic`] (temp file, fsync, rename, fsync of the directory), so a crash at any
//! instant leaves either the old file or the new one, never half of one.

use std::io;
use std::path::{Path, PathBuf};

use rampart_host::file;

/// Why a data-dir file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The file's length (from metadata) or its content is over the cap; nothing past the cap
    /// was read.
    #[error("{path} is {} bytes, over the limit of {limit}", size.map_or_else(|| "more than the limit".to_owned(), |s| s.to_string()))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length when known from metadata.
        size: Option<u64>,
        /// The cap in bytes.
        limit: usize,
    },
    /// The path is not a regular file (a FIFO, a device, a directory): nothing was read and
    /// the reading thread never blocked on it.
    #[error("{path} is not a regular file (it is {kind})")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The operating system refused an operation.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (`open`, `read`, `write`, `rename`, `sync`…).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

// === impl DiskError ===

impl DiskError {
    /// Whether the file simply does not exist (a fresh data dir).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DiskError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl From<file::Error> for DiskError {
    fn from(e: file::Error) -> Self {
        match e {
            file::Error::TooLarge { path, size, limit } => {
                DiskError::TooLarge { path, size, limit }
            }
            file::Error::Io { op, path, source } => DiskError::Io { op, path, source },
            file::Error::NotRegular { path, kind } => DiskError::NotRegular { path, kind },
            // Ingestion reads bytes, never text: kept total rather than assumed away.
            file::Error::NotUtf8 { path, source } => DiskError::Io {
                op: "read",
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, source),
            },
        }
    }
}

/// Reads a whole file of at most `limit` bytes: metadata length first, then a read that
/// stops at `limit + 1` bytes ([`rampart_host::file::read_capped`]).
pub fn read_capped(path: &Path, limit: usize) -> Result<Vec<u8>, DiskError> {
    file::read_capped(path, limit).map_err(DiskError::from)
}

/// Replaces `path` with `bytes` atomically and durably: a temp file beside it, fsync,
/// rename over `path`, fsync of the directory (without the last step a power cut can forget
/// the rename); see [`rampart_host::file::write_atomic`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DiskError> {
    file::write_atomic(path, bytes).map_err(DiskError::from)
}

/// Renames `from` to `to` (replacing it) and makes the rename durable.
pub fn rename_durable(from: &Path, to: &Path) -> Result<(), DiskError> {
    file::rename_durable(from, to).map_err(DiskError::from)
}

/// Creates a directory and its parents.
pub fn ensure_dir(path: &Path) -> Result<(), DiskError> {
    file::ensure_dir(path).map_err(DiskError::from)
}

/// Fsyncs the directory holding `path`, so a rename or a new file in it survives a power cut.
pub fn sync_parent(path: &Path) -> Result<(), DiskError> {
    file::sync_parent(path).map_err(DiskError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.rfeat");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_capped(&path, 3).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.rfeat"], "no temp file left");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_by_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        write_atomic(&path, &[b'x'; 11]).unwrap();
        match read_capped(&path, 10) {
            Err(DiskError::TooLarge {
                size: Some(11),
                limit: 10,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(read_capped(&path, 11).unwrap().len(), 11);
    }

    #[test]
    fn a_missing_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_capped(&dir.path().join("nope"), 10).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
