//! Last-known-good on disk: `lkg/current.rfeat` and `lkg/previous.rfeat`, the exact signed
//! bytes of versions that served their soak.

use crate::config::DataDir;
use crate::disk::{self, DiskError};
use crate::status::VersionDigest;

/// What the store knows to be in `lkg/` (a file that failed verification at boot is known as
/// `None`, so it is overwritten rather than kept as `previous`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lkg {
    pub(crate) current: Option<VersionDigest>,
    pub(crate) previous: Option<VersionDigest>,
}

/// Which file a boot candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Current,
    Previous,
}

// === impl Lkg ===

impl Lkg {
    /// Writes `bytes` (version `vd`) as current, moving a valid current to previous. Returns
    /// `false` when it already is current. Crash-safe at every step: the rename of current to
    /// previous comes first, so a crash before the new current lands boots on previous.
    pub(crate) fn promote(
        &mut self,
        layout: &DataDir,
        bytes: &[u8],
        vd: VersionDigest,
    ) -> Result<bool, DiskError> {
        if self.current.is_some_and(|c| c.digest == vd.digest) {
            return Ok(false);
        }
        if let Some(current) = self.current.take() {
            disk::rename_durable(&layout.lkg_current(), &layout.lkg_previous())?;
            self.previous = Some(current);
        }
        disk::write_atomic(&layout.lkg_current(), bytes)?;
        self.current = Some(vd);
        Ok(true)
    }
}

// === impl Slot ===

impl Slot {
    pub(crate) fn path(self, layout: &DataDir) -> std::path::PathBuf {
        match self {
            Slot::Current => layout.lkg_current(),
            Slot::Previous => layout.lkg_previous(),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Slot::Current => "lkg/current.rfeat",
            Slot::Previous => "lkg/previous.rfeat",
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

    #[test]
    fn promotion_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        disk::ensure_dir(&layout.lkg_dir()).unwrap();
        let mut lkg = Lkg::default();
        assert!(lkg.promote(&layout, b"one", vd(1)).unwrap());
        assert!(!lkg.promote(&layout, b"one", vd(1)).unwrap());
        assert!(lkg.promote(&layout, b"two", vd(2)).unwrap());
        assert_eq!(lkg.current, Some(vd(2)));
        assert_eq!(lkg.previous, Some(vd(1)));
        assert_eq!(disk::read_capped(&layout.lkg_current(), 9).unwrap(), b"two");
        assert_eq!(
            disk::read_capped(&layout.lkg_previous(), 9).unwrap(),
            b"one"
        );
    }

    #[test]
    fn an_invalid_current_is_overwritten_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        disk::ensure_dir(&layout.lkg_dir()).unwrap();
        disk::write_atomic(&layout.lkg_current(), b"corrupt").unwrap();
        disk::write_atomic(&layout.lkg_previous(), b"one").unwrap();
        let mut lkg = Lkg {
            current: None,
            previous: Some(vd(1)),
        };
        lkg.promote(&layout, b"two", vd(2)).unwrap();
        assert_eq!(disk::read_capped(&layout.lkg_current(), 9).unwrap(), b"two");
        assert_eq!(
            disk::read_capped(&layout.lkg_previous(), 9).unwrap(),
            b"one"
        );
    }
}
