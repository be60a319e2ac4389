//! Reading and writing the files the CLI touches, with size bounds.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use rampart_artifact::limits::{ReadError, read_bounded};

/// Reads a file of at most `limit` bytes: the length is checked from metadata before
/// reading, and reading stops at the limit in case the file grows meanwhile.
pub(crate) fn read_capped(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    if len > u64::try_from(limit).unwrap_or(u64::MAX) {
        bail!(
            "{} is {len} bytes, over the limit of {limit} bytes",
            path.display()
        );
    }
    match read_bounded(file, limit) {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge(_)) => {
            bail!("{} grew past the limit of {limit} bytes", path.display())
        }
        Err(ReadError::Io(e)) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Reads a small text file (keys, contracts).
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    /// Keys and contracts are small; anything larger is a mistake.
    const MAX_TEXT_FILE: usize = 4 * 1024 * 1024;
    let bytes = read_capped(path, MAX_TEXT_FILE)?;
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Writes a file atomically: a temp file beside it, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut f =
        fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
