//! The two file operations every service trusts: a capped read and an atomic replace.
//!
//! [`read_capped`] opens without blocking and refuses anything but a regular file before a
//! byte is read (a FIFO dropped in a watched dir, or a symlink flipped to one, would otherwise
//! block the reading thread in `open` for ever); it then compares the file's length from the
//! opened descriptor's metadata with the cap, and the read itself stops at the cap
//! ([`read_bounded`]), so a file that grows between the two checks is still refused. [`write_atomic`] writes a hidden temp file beside
//! the target, fsyncs it, renames it over the target and fsyncs the directory, so a crash at
//! any instant leaves either the old file or the new one, never half of one; on failure the
//! temp file is removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::string::FromUtf8Error;

use rampart_artifact::limits::{ReadError, read_bounded};

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file's length (from metadata) or its content is over the cap; nothing past the cap
    /// was read.
    #[error("{}", too_large(path, *size, *limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length when known from metadata; `None` when it grew past the cap while read.
        size: Option<u64>,
        /// The cap in bytes.
        limit: usize,
    },
    /// The operating system refused an operation.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was attempted (`open`, `stat`, `read`, `create`, `write`, `sync`, `rename`,
        /// `sync dir`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The path names something other than a regular file (a FIFO, a socket, a device, a
    /// directory), as seen on the opened descriptor: nothing is read from it.
    #[error("{} is not a regular file (it is {kind})", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead (`a FIFO`, `a directory`…).
        kind: &'static str,
    },
    /// A text file ([`read_text`]) holds bytes that are not UTF-8.
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the bytes went wrong.
        #[source]
        source: FromUtf8Error,
    },
}

/// Reads a whole regular file of at most `limit` bytes: opened with `O_NONBLOCK` (so a FIFO
/// cannot block `open`), checked to be a regular file with `fstat` on that descriptor (so a
/// path swapped between a check and the open cannot fool it), its length compared with the
/// cap, then a read that stops at `limit + 1` bytes.
pub fn read_capped(path: &Path, limit: usize) -> Result<Vec<u8>, Error> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(Error::io("stat", path))?.len();
    if len > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            size: Some(len),
            limit,
        });
    }
    read_bounded(file, limit).map_err(|e| match e {
        ReadError::TooLarge(t) => Error::TooLarge {
            path: path.to_owned(),
            size: t.size,
            limit,
        },
        ReadError::Io(source) => Error::Io {
            op: "read",
            path: path.to_owned(),
            source,
        },
    })
}

/// Opens `path` for reading without blocking and returns it only when the descriptor is a
/// regular file ([`Error::NotRegular`] otherwise). `O_NONBLOCK` has no effect on reads of a
/// regular file, so the descriptor is used as it is.
pub fn open_regular(path: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(Error::io("open", path))?;
    let kind = file
        .metadata()
        .map_err(Error::io("stat", path))?
        .file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(Error::NotRegular {
        path: path.to_owned(),
        kind: describe(kind),
    })
}

fn describe(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

/// [`read_capped`], then UTF-8: keys, tokens, contracts, policies.
pub fn read_text(path: &Path, limit: usize) -> Result<String, Error> {
    String::from_utf8(read_capped(path, limit)?).map_err(|source| Error::NotUtf8 {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` with `bytes` atomically and durably: write a hidden `.NAME.tmpPID` beside
/// it, fsync it, rename it over `path`, fsync the directory (without the last step a power
/// cut can forget the rename). The temp file is hidden so a watched directory skips it, and
/// named after the process so two processes never write the same one. On failure the temp
/// file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    replace(path, bytes, 0o666)
}

/// [`write_atomic`] for a secret (a key, a token): the file is readable and writable by its
/// owner only, from the moment it exists.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    replace(path, bytes, 0o600)
}

fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let name = path.file_name().ok_or_else(|| Error::Io {
        op: "write",
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_synced(&tmp, bytes, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(Error::io("rename", path)));
    if written.is_err() {
        // Nothing to do if this fails too: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_parent(path)
}

/// Renames `from` to `to` (replacing it) and makes the rename durable.
pub fn rename_durable(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(Error::io("rename", from))?;
    sync_parent(to)
}

/// Creates a directory and its parents.
pub fn ensure_dir(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(Error::io("create dir", path))
}

/// Fsyncs the directory holding `path`, so a rename or a new file in it survives a power cut.
pub fn sync_parent(path: &Path) -> Result<(), Error> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync dir", dir))
}

fn write_synced(tmp: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    // A leftover temp file keeps its old mode: remove it so `mode` applies.
    let _ = fs::remove_file(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(Error::io("create", tmp))?;
    file.write_all(bytes).map_err(Error::io("write", tmp))?;
    file.sync_all().map_err(Error::io("sync", tmp))
}

fn too_large(path: &Path, size: Option<u64>, limit: usize) -> String {
    match size {
        Some(size) => format!(
            "{} is {size} bytes, over the limit of {limit} bytes",
            path.display()
        ),
        None => format!("{} grew past the limit of {limit} bytes", path.display()),
    }
}

// === impl Error ===

impl Error {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// Whether the file simply does not exist (a fresh data dir, no state yet).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The operating system's error, for callers whose own error types carry an
    /// [`io::Error`]; a file over its cap or not UTF-8 becomes [`io::ErrorKind::InvalidData`].
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn each_write_replaces_the_whole_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for content in [&b"a longer first version"[..], b"short", b""] {
            write_atomic(&path, content).unwrap();
            assert_eq!(read_capped(&path, content.len()).unwrap(), content);
            assert_eq!(names(dir.path()), ["state.json"]);
        }
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file_and_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: the target is a non-empty directory.
        let target = dir.path().join("t");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"keep").unwrap();
        let err = write_atomic(&target, b"new").unwrap_err();
        assert!(matches!(err, Error::Io { op: "rename", .. }), "{err:?}");
        assert_eq!(names(dir.path()), ["t"]);
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"keep");
        // The temp file cannot even be created: a missing directory.
        let err = write_atomic(&dir.path().join("no/such/dir/f"), b"x").unwrap_err();
        assert!(matches!(err, Error::Io { op: "create", .. }), "{err:?}");
        assert!(err.to_string().starts_with("cannot create "), "{err}");
    }

    #[test]
    fn a_durable_rename_replaces_and_a_missing_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        ensure_dir(&sub).unwrap();
        ensure_dir(&sub).unwrap();
        let (from, to) = (sub.join("from"), sub.join("to"));
        fs::write(&from, b"new").unwrap();
        fs::write(&to, b"old").unwrap();
        rename_durable(&from, &to).unwrap();
        assert_eq!(names(&sub), ["to"]);
        assert_eq!(fs::read(&to).unwrap(), b"new");
        let err = rename_durable(&from, &to).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let file = sub.join("to");
        assert!(matches!(
            ensure_dir(&file.join("x")),
            Err(Error::Io {
                op: "create dir",
                ..
            })
        ));
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(err.into_io().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn read_capped_accepts_the_limit_and_refuses_one_byte_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limit");
        fs::write(&path, [0u8; 64]).unwrap();
        assert_eq!(read_capped(&path, 64).unwrap(), [0u8; 64]);
        let err = read_capped(&path, 63).unwrap_err();
        let Error::TooLarge { size, limit, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((*size, *limit), (Some(64), 63), "refused by its length");
        assert_eq!(
            err.to_string(),
            format!("{} is 64 bytes, over the limit of 63 bytes", path.display())
        );
    }

    #[test]
    fn read_capped_refuses_what_is_not_a_regular_file_without_reading_it() {
        // A character device reports length 0 and never ends.
        let err = read_capped(Path::new("/dev/zero"), 16).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotRegular {
                    kind: "a character device",
                    ..
                }
            ),
            "{err:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = read_capped(dir.path(), 16).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is not a regular file (it is a directory)"),
            "{err}"
        );
    }

    #[test]
    fn a_fifo_never_blocks_a_read_even_behind_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.rfeat");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let link = dir.path().join("link.rfeat");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        // Without O_NONBLOCK `open` would wait for a writer for ever: run it on a thread and
        // give it a bound, so a regression fails instead of hanging the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let results = [
                read_capped(&fifo, 16),
                read_text(&link, 16).map(String::into_bytes),
            ];
            let _ = tx.send(results);
        });
        let results = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("read_capped blocked on a FIFO");
        for r in results {
            let err = r.unwrap_err();
            assert!(
                matches!(err, Error::NotRegular { kind: "a FIFO", .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_missing_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_capped(&dir.path().join("nope"), 10).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().starts_with("cannot open "), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(err.into_io().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn read_text_refuses_bytes_that_are_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"ok\n").unwrap();
        assert_eq!(read_text(&path, 3).unwrap(), "ok\n");
        assert!(matches!(read_text(&path, 2), Err(Error::TooLarge { .. })));
        write_atomic(&path, &[0xff, 0xfe]).unwrap();
        let err = read_text(&path, 10).unwrap_err();
        assert!(matches!(err, Error::NotUtf8 { .. }), "{err:?}");
        assert!(!err.is_not_found());
        assert_eq!(err.into_io().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_private_file_is_for_its_owner_only_and_replaces_atomically() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["admin.token"], "no temp file left");
    }
}
