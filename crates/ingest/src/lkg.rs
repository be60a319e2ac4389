//! Last-known-good on disk: `lkg/<version>.rfeat`, the exact signed bytes of the last
//! [`keep`](crate::Config::lkg_keep) versions that served their soak (and, with a control
//! plane, were blessed by the fleet). The newest that is not poisoned is served at boot.
//!
//! An older data dir holds `lkg/current.rfeat` and `lkg/previous.rfeat`: the boot renames
//! each valid one to its version's name (`migrate`), once.

use std::fs;

use crate::archive;
use crate::config::DataDir;
use crate::disk::{self, DiskError};
use crate::status::VersionDigest;

/// What the store knows to be in `lkg/`: valid files only (a file that failed verification
/// at boot is not listed, and is overwritten if its version is promoted again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lkg {
    /// Newest (highest version) first, at most `keep`.
    history: Vec<VersionDigest>,
}

/// A file from the layout before the history: `current.rfeat` or `previous.rfeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Legacy {
    Current,
    Previous,
}

// === impl Lkg ===

impl Lkg {
    /// The history, newest first.
    pub(crate) fn history(&self) -> &[VersionDigest] {
        &self.history
    }

    /// The newest entry.
    pub(crate) fn newest(&self) -> Option<VersionDigest> {
        self.history.first().copied()
    }

    /// Whether `digest` is last-known-good.
    pub(crate) fn contains(&self, digest: &rampart_artifact::Digest) -> bool {
        self.history.iter().any(|vd| vd.digest == *digest)
    }

    /// Records a file found valid at boot (`lkg/<version>.rfeat`).
    pub(crate) fn found(&mut self, vd: VersionDigest) {
        self.insert(vd);
    }

    /// Writes `bytes` (version `vd`) as `lkg/<version>.rfeat` and removes the oldest files
    /// beyond `keep`. Returns `false` when it already is last-known-good. Crash-safe: the new
    /// file lands whole (atomic write) before an old one is removed.
    pub(crate) fn promote(
        &mut self,
        layout: &DataDir,
        bytes: &[u8],
        vd: VersionDigest,
        keep: usize,
    ) -> Result<bool, DiskError> {
        if self.contains(&vd.digest) {
            return Ok(false);
        }
        disk::write_atomic(&layout.lkg_file(vd.version), bytes)?;
        self.insert(vd);
        while self.history.len() > keep.max(1) {
            let Some(oldest) = self.history.last().copied() else {
                break;
            };
            remove_file(&layout.lkg_file(oldest.version))?;
            self.history.pop();
        }
        Ok(true)
    }

    /// Removes `version` from the history and from disk (the fleet no longer blesses it, or
    /// it is poisoned). Returns whether it was there.
    pub(crate) fn remove(&mut self, layout: &DataDir, version: u64) -> Result<bool, DiskError> {
        let Some(index) = self.history.iter().position(|vd| vd.version == version) else {
            return Ok(false);
        };
        remove_file(&layout.lkg_file(version))?;
        self.history.remove(index);
        Ok(true)
    }

    fn insert(&mut self, vd: VersionDigest) {
        self.history.retain(|h| h.version != vd.version);
        let at = self
            .history
            .iter()
            .position(|h| h.version < vd.version)
            .unwrap_or(self.history.len());
        self.history.insert(at, vd);
    }
}

/// The versions named in `lkg/`, newest first.
pub(crate) fn list(layout: &DataDir) -> Result<Vec<u64>, DiskError> {
    let mut versions = archive::list(&layout.lkg_dir())?;
    versions.reverse();
    Ok(versions)
}

/// Renames a legacy file holding `version` to `lkg/<version>.rfeat` (a file already there
/// wins: the legacy one is removed).
pub(crate) fn migrate(layout: &DataDir, legacy: Legacy, version: u64) -> Result<(), DiskError> {
    let from = legacy.path(layout);
    let to = layout.lkg_file(version);
    if to.exists() {
        remove_file(&from)
    } else {
        disk::rename_durable(&from, &to)
    }
}

fn remove_file(path: &std::path::Path) -> Result<(), DiskError> {
    match fs::remove_file(path) {
        Ok(()) => disk::sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DiskError::Io {
            op: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

// === impl Legacy ===

impl Legacy {
    pub(crate) const ALL: [Legacy; 2] = [Legacy::Current, Legacy::Previous];

    pub(crate) fn path(self, layout: &DataDir) -> std::path::PathBuf {
        match self {
            Legacy::Current => layout.lkg_current(),
            Legacy::Previous => layout.lkg_previous(),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Legacy::Current => "lkg/current.rfeat",
            Legacy::Previous => "lkg/previous.rfeat",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_artifact::Digest;

    fn vd(v: u64) -> VersionDigest {
        VersionDigest {
            version: v,
            digest: Digest::of(&v.to_le_bytes()),
        }
    }

    fn setup() -> (tempfile::TempDir, DataDir) {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        disk::ensure_dir(&layout.lkg_dir()).unwrap();
        (dir, layout)
    }

    #[test]
    fn promotion_keeps_a_history_of_three() {
        let (_dir, layout) = setup();
        let mut lkg = Lkg::default();
        assert!(lkg.promote(&layout, b"one", vd(1), 3).unwrap());
        assert!(!lkg.promote(&layout, b"one", vd(1), 3).unwrap());
        for v in 2..=4 {
            assert!(lkg.promote(&layout, b"x", vd(v), 3).unwrap());
        }
        assert_eq!(lkg.history(), [vd(4), vd(3), vd(2)]);
        assert_eq!(list(&layout).unwrap(), [4, 3, 2]);
        assert!(!layout.lkg_file(1).exists());
        assert_eq!(lkg.newest(), Some(vd(4)));
    }

    #[test]
    fn an_older_version_promoted_takes_its_place_by_version() {
        let (_dir, layout) = setup();
        let mut lkg = Lkg::default();
        lkg.promote(&layout, b"5", vd(5), 2).unwrap();
        lkg.promote(&layout, b"7", vd(7), 2).unwrap();
        lkg.promote(&layout, b"6", vd(6), 2).unwrap();
        assert_eq!(lkg.history(), [vd(7), vd(6)]);
        assert!(!layout.lkg_file(5).exists());
    }

    #[test]
    fn a_removed_version_leaves_disk_and_history() {
        let (_dir, layout) = setup();
        let mut lkg = Lkg::default();
        lkg.promote(&layout, b"1", vd(1), 3).unwrap();
        lkg.promote(&layout, b"2", vd(2), 3).unwrap();
        assert!(lkg.remove(&layout, 2).unwrap());
        assert!(!lkg.remove(&layout, 2).unwrap());
        assert_eq!(lkg.history(), [vd(1)]);
        assert_eq!(list(&layout).unwrap(), [1]);
    }

    #[test]
    fn a_legacy_file_is_renamed_once() {
        let (_dir, layout) = setup();
        disk::write_atomic(&layout.lkg_current(), b"two").unwrap();
        disk::write_atomic(&layout.lkg_previous(), b"one").unwrap();
        disk::write_atomic(&layout.lkg_file(1), b"one").unwrap();
        migrate(&layout, Legacy::Current, 2).unwrap();
        migrate(&layout, Legacy::Previous, 1).unwrap();
        assert!(!layout.lkg_current().exists() && !layout.lkg_previous().exists());
        assert_eq!(disk::read_capped(&layout.lkg_file(2), 9).unwrap(), b"two");
        assert_eq!(list(&layout).unwrap(), [2, 1]);
    }
}
