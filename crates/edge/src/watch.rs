//! The watch dir: feature files dropped here are applied, once each, when they stop changing.
//!
//! A bounded poll loop rather than inotify: it works the same on every file system
//! (including network and container mounts), costs one directory listing per interval, and
//! its debounce is simple to state: a file is applied when its length and modification time
//! are the same on two consecutive polls. A file that changes again later is applied again.
//! Writers should still write elsewhere (or to a dot-file) and rename into the dir.
//!
//! Files are never read here: the store checks the length from metadata before reading
//! with a cap, on a blocking thread.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Most directory entries looked at per poll; a dir flooded with more is handled a slice
/// at a time instead of stalling the loop.
pub const MAX_WATCH_ENTRIES: usize = 10_000;

/// Most files applied per poll, so one poll cannot hold the store's writer for long.
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
}

// === impl Watcher ===

impl Watcher {
    /// Watches `dir` (which need not exist yet).
    pub fn new(dir: PathBuf) -> Self {
        Watcher {
            dir,
            pending: HashMap::new(),
            done: HashMap::new(),
        }
    }

    /// The watched dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lists the dir and returns the files that are ready: unchanged since the last poll
    /// and not applied in this form before, oldest first. They count as applied from now.
    pub fn poll(&mut self) -> std::io::Result<Vec<PathBuf>> {
        let mut seen: HashMap<PathBuf, Stamp> = HashMap::new();
        for entry in fs::read_dir(&self.dir)?.take(MAX_WATCH_ENTRIES) {
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
            seen.insert(
                path,
                Stamp {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                },
            );
        }
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
        ready.sort();
        // Whatever does not fit this poll stays pending with its stamp, ready next time.
        for (_, path) in ready.iter().skip(MAX_APPLIES_PER_POLL) {
            if let Some(stamp) = self.pending.get(path) {
                pending.insert(path.clone(), *stamp);
            }
        }
        ready.truncate(MAX_APPLIES_PER_POLL);
        for (_, path) in &ready {
            if let Some(stamp) = self.pending.get(path) {
                self.done.insert(path.clone(), *stamp);
            }
        }
        self.pending = pending;
        Ok(ready.into_iter().map(|(_, p)| p).collect())
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
