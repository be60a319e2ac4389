//! The bounded archive of applied files, `versions/<version>.rfeat`, that `pin` reads.

use std::fs;
use std::path::Path;

use crate::config::DataDir;
use crate::disk::{self, DiskError};

/// Most directory entries looked at when listing the archive (the store writes at most
/// `archive_len` files; anything past this is not ours and is ignored).
pub const MAX_ARCHIVE_SCAN: usize = 4_096;

/// Writes `bytes` as `versions/<version>.rfeat` and removes the oldest files beyond `keep`.
pub(crate) fn store(
    layout: &DataDir,
    version: u64,
    bytes: &[u8],
    keep: usize,
) -> Result<(), DiskError> {
    disk::write_atomic(&layout.version_file(version), bytes)?;
    let versions = list(&layout.versions_dir())?;
    let excess = versions.len().saturating_sub(keep.max(1));
    for old in versions.iter().take(excess) {
        let path = layout.version_file(*old);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DiskError::Io {
                    op: "remove",
                    path,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The archived versions, ascending.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, DiskError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DiskError::Io {
                op: "list",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut versions: Vec<u64> = entries
        .take(MAX_ARCHIVE_SCAN)
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_suffix(".rfeat")?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        disk::ensure_dir(&layout.versions_dir()).unwrap();
        fs::write(layout.versions_dir().join("notes.txt"), b"not ours").unwrap();
        for v in [3, 1, 7, 5, 9] {
            store(&layout, v, format!("v{v}").as_bytes(), 3).unwrap();
        }
        assert_eq!(list(&layout.versions_dir()).unwrap(), [5, 7, 9]);
        assert!(layout.versions_dir().join("notes.txt").exists());
        assert_eq!(
            disk::read_capped(&layout.version_file(9), 10).unwrap(),
            b"v9"
        );
    }

    #[test]
    fn a_missing_archive_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(&dir.path().join("versions")).unwrap().is_empty());
    }
}
