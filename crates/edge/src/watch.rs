//! The watch dir: feature files dropped here are applied, once each, when they stop changing.
//!
//! A bounded poll loop rather than inotify: it works the same on every file system
//! (including network and container mounts), costs one directory listing per interval, and
//! its debounce is simple to state: a file is applied when its length and modification time
//! are the same on two consecutive polls. A file that changes again later is applied again.
//! Writers should still write elsewhere (or to a dot-file) and rename into the dir.
//!
//! Files are never read here: the store opens each without blocking, refuses anything that is
//! not a regular file (a FIFO, a device), checks the length before reading with a cap, on a
//! blocking thread. Each poll is bounded ([`MAX_WATCH_SCAN`] names listed, the newest
//! [`MAX_WATCH_ENTRIES`] files kept, [`MAX_APPLIES_PER_POLL`] applied), so a flooded dir
//! delays nothing: the newest file is taken first.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Most directory entries listed per poll (names only: listing costs no `stat`). A dir
/// holding more is listed a slice at a time, the next slice on the next poll, so a poll never
/// stalls and every entry is seen within `entries / MAX_WATCH_SCAN` polls.
pub const MAX_WATCH_SCAN: usize = 100_000;

/// Most candidate files kept per poll: the newest by modification time. A flood of older
/// files cannot hide a new one, whatever its place in the directory listing.
pub const MAX_WATCH_ENTRIES: usize = 10_000;

/// Most files applied per poll, so one poll cannot hold the store's writer for long: the
/// newest ready ones, applied oldest first among them.
pub const MAX_APPLIES_PER_POLL: usize = 256;

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// The poll loop's memory: files seen once (pending) and files already applied.
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    pending: HashMap<PathBuf, Stamp>,
    done: HashMap<PathBuf, Stamp>,
    /// Where the next listing starts when the dir holds more than [`MAX_WATCH_SCAN`] entries.
    offset: usize,
}

// === impl Watcher ===

impl Watcher {
    /// Watches `dir` (which need not exist yet).
    pub fn new(dir: PathBuf) -> Self {
        Watcher {
            dir,
            pending: HashMap::new(),
            done: HashMap::new(),
            offset: 0,
        }
    }

    /// The watched dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lists the dir and returns the files that are ready: unchanged since the last poll
    /// and not applied in this form before, the newest [`MAX_APPLIES_PER_POLL`] of them,
    /// oldest first. They count as applied from now.
    pub fn poll(&mut self) -> std::io::Result<Vec<PathBuf>> {
        let seen = self.scan()?;
        // Forget files that are gone, so memory follows the dir.
        self.done.retain(|p, _| seen.contains_key(p));
        let mut ready: Vec<(Option<SystemTime>, PathBuf)> = Vec::new();
        let mut pending = HashMap::new();
        for (path, stamp) in seen {
            if self.done.get(&path) == Some(&stamp) {
                continue;
            }
            if self.pending.get(&path) == Some(&stamp) {
                ready.push((stamp.modified, path));
            } else {
                pending.insert(path, stamp);
            }
        }
        // Newest first, so the cut keeps the newest; whatever does not fit this poll stays
        // pending with its stamp, ready next time.
        ready.sort_by(|a, b| b.cmp(a));
        for (_, path) in ready.iter().skip(MAX_APPLIES_PER_POLL) {
            if let Some(stamp) = self.pending.get(path) {
                pending.insert(path.clone(), *stamp);
            }
        }
        ready.truncate(MAX_APPLIES_PER_POLL);
        ready.reverse();
        for (_, path) in &ready {
            if let Some(stamp) = self.pending.get(path) {
                self.done.insert(path.clone(), *stamp);
            }
        }
        self.pending = pending;
        Ok(ready.into_iter().map(|(_, p)| p).collect())
    }

    /// One bounded listing: at most [`MAX_WATCH_SCAN`] names from the current slice, of which
    /// the newest [`MAX_WATCH_ENTRIES`] regular files (symlinks followed; `stat` never opens a
    /// file, so a FIFO cannot block it) are kept with their stamps.
    fn scan(&mut self) -> std::io::Result<HashMap<PathBuf, Stamp>> {
        let mut listed = 0usize;
        let mut found: Vec<(Stamp, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.dir)?
            .skip(self.offset)
            .take(MAX_WATCH_SCAN)
        {
            listed += 1;
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Dot-files and editor/temp files are writes in progress.
            if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with('~') {
                continue;
            }
            let path = entry.path();
            // Follows symlinks: a link to a file is a file.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let stamp = Stamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            };
            found.push((stamp, path));
        }
        // A full slice: the next poll lists the next one; a short one: back to the start.
        self.offset = if listed == MAX_WATCH_SCAN {
            self.offset.saturating_add(MAX_WATCH_SCAN)
        } else {
            0
        };
        if found.len() > MAX_WATCH_ENTRIES {
            found.sort_by_key(|f| std::cmp::Reverse(f.0.modified));
            found.truncate(MAX_WATCH_ENTRIES);
        }
        Ok(found
            .into_iter()
            .map(|(stamp, path)| (path, stamp))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_file_is_ready_after_two_stable_polls_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Watcher::new(dir.path().to_owned());
        fs::write(dir.path().join("a.json"), b"one").unwrap();
        assert!(w.poll().unwrap().is_empty(), "applied before it settled");
        assert_eq!(names(&w.poll().unwrap()), ["a.json"]);
        assert!(w.poll().unwrap().is_empty(), "applied twice");
    }

    #[test]
    fn a_changing_file_waits_and_a_rewritten_file_is_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let mut w = Watcher::new(dir.path().to_owned());
        fs::write(&path, b"one").unwrap();
        w.poll().unwrap();
        fs::write(&path, b"one and more").unwrap();
        assert!(w.poll().unwrap().is_empty(), "applied while growing");
        assert_eq!(w.poll().unwrap().len(), 1);
        fs::write(&path, b"something else entirely").unwrap();
        w.poll().unwrap();
        assert_eq!(w.poll().unwrap().len(), 1);
    }

    #[test]
    fn temp_files_dirs_and_dotfiles_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".hidden"), b"x").unwrap();
        fs::write(dir.path().join("x.tmp"), b"x").unwrap();
        fs::write(dir.path().join("x~"), b"x").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("real"), b"x").unwrap();
        let mut w = Watcher::new(dir.path().to_owned());
        w.poll().unwrap();
        assert_eq!(names(&w.poll().unwrap()), ["real"]);
    }

    #[test]
    fn a_flood_of_older_files_never_hides_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        // More than MAX_WATCH_ENTRIES older files (and a few FIFOs, which are skipped).
        for i in 0..MAX_WATCH_ENTRIES + 500 {
            let path = dir.path().join(format!("junk-{i:05}.rfeat"));
            let f = fs::File::create(&path).unwrap();
            f.set_modified(old).unwrap();
        }
        for i in 0..3 {
            let fifo = dir.path().join(format!("fifo-{i}.rfeat"));
            assert!(
                std::process::Command::new("mkfifo")
                    .arg(&fifo)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        fs::write(dir.path().join("new.rfeat"), b"valid").unwrap();
        let mut w = Watcher::new(dir.path().to_owned());
        w.poll().unwrap();
        let ready = names(&w.poll().unwrap());
        assert_eq!(ready.len(), MAX_APPLIES_PER_POLL);
        assert_eq!(
            ready.last().map(String::as_str),
            Some("new.rfeat"),
            "newest last"
        );
        assert!(ready.iter().all(|n| !n.starts_with("fifo")), "{ready:?}");
    }

    #[test]
    fn a_missing_dir_is_an_error_not_a_panic() {
        let mut w = Watcher::new(PathBuf::from("/nonexistent/rampart/watch"));
        assert!(w.poll().is_err());
    }

    #[test]
    fn a_deleted_then_recreated_file_is_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let mut w = Watcher::new(dir.path().to_owned());
        fs::write(&path, b"one").unwrap();
        w.poll().unwrap();
        assert_eq!(w.poll().unwrap().len(), 1);
        fs::remove_file(&path).unwrap();
        assert!(w.poll().unwrap().is_empty());
        fs::write(&path, b"one").unwrap();
        w.poll().unwrap();
        assert_eq!(w.poll().unwrap().len(), 1);
    }
}
