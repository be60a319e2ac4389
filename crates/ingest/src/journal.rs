//! The sentinel's files: the append-only boot journal and the list of poisoned versions.
//!
//! The journal is JSON lines of [`Event`]. It is bounded: at boot only its last
//! `max_bytes` are read (a torn or malformed line, as SIGKILL can leave, is skipped), and
//! when it grows past `max_bytes` it is rewritten with only what a decision still needs.

use std::fs::{File, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use rampart_artifact::Digest;
use rampart_artifact::limits::read_bounded;
use serde::{Deserialize, Serialize};

use crate::disk::{self, DiskError};
use crate::sentinel::Event;

/// Most poisoned versions remembered; the oldest are forgotten first (versions only grow,
/// so an old poisoned version is refused by the version rule anyway).
pub const MAX_POISONED: usize = 64;

/// Largest poisoned-list file read (64 entries need about 8 KiB).
pub const MAX_POISONED_FILE_BYTES: usize = 64 * 1024;

/// A version the sentinel refuses until a higher one is activated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poisoned {
    /// The version.
    pub version: u64,
    /// The digest it crashed with.
    pub digest: Digest,
    /// Deaths counted when it was poisoned.
    pub deaths: u32,
    /// When it was poisoned, ms since the Unix epoch.
    pub at_ms: u64,
}

/// The open boot journal.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    /// This run's boot and latest activation: all that compaction must keep of this run.
    boot: Option<Event>,
    activation: Option<Event>,
}

// === impl Journal ===

impl Journal {
    /// Opens (or creates) the journal and returns the past events it holds, oldest first.
    /// A journal over half of `max_bytes` is compacted to the events of the last `keep_ms`,
    /// which leaves this run room to append before it must compact again.
    pub(crate) fn open(
        path: &Path,
        max_bytes: u64,
        now_ms: u64,
        keep_ms: u64,
    ) -> Result<(Journal, Vec<Event>), DiskError> {
        let events = read_tail(path, max_bytes)?;
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|source| DiskError::Io {
                op: "stat",
                path: path.to_owned(),
                source,
            })?
            .len();
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            size,
            max_bytes,
            boot: None,
            activation: None,
        };
        if size > max_bytes / 2 {
            let cutoff = now_ms.saturating_sub(keep_ms);
            let recent = recent_runs(&events, cutoff);
            journal.rewrite(&recent)?;
        }
        Ok((journal, events))
    }

    /// Appends one event and syncs it (events are rare: boots, activations, exits).
    pub(crate) fn append(&mut self, event: Event) -> Result<(), DiskError> {
        match &event {
            Event::Boot { .. } => {
                self.boot = Some(event.clone());
                self.activation = None;
            }
            Event::Activated { .. } => self.activation = Some(event.clone()),
            Event::CleanExit { .. }
            | Event::Alive { .. }
            | Event::Panicked { .. }
            | Event::Exited { .. }
            | Event::Killed { .. }
            | Event::DeathReported { .. } => {}
        }
        let mut line = serde_json::to_vec(&event).map_err(|e| DiskError::Io {
            op: "encode",
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        if self.size.saturating_add(line.len() as u64) > self.max_bytes {
            // A long-lived run activating every few minutes: only this run's boot and last
            // activation still matter to a future decision.
            let mut keep: Vec<Event> = self.boot.iter().cloned().collect();
            if !matches!(event, Event::Activated { .. }) {
                keep.extend(self.activation.iter().cloned());
            }
            if !matches!(event, Event::Boot { .. }) {
                keep.push(event);
            }
            return self.rewrite(&keep);
        }
        self.file.write_all(&line).map_err(|source| DiskError::Io {
            op: "append",
            path: self.path.clone(),
            source,
        })?;
        self.file.sync_data().map_err(|source| DiskError::Io {
            op: "sync",
            path: self.path.clone(),
            source,
        })?;
        self.size = self.size.saturating_add(line.len() as u64);
        Ok(())
    }

    fn rewrite(&mut self, events: &[Event]) -> Result<(), DiskError> {
        let mut bytes = Vec::new();
        for e in events {
            if let Ok(line) = serde_json::to_vec(e) {
                bytes.extend_from_slice(&line);
                bytes.push(b'\n');
            }
        }
        disk::write_atomic(&self.path, &bytes)?;
        self.file = open_append(&self.path)?;
        self.size = bytes.len() as u64;
        Ok(())
    }

    /// Current size in bytes.
    #[cfg(test)]
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

/// Appends one event to the journal at `path` without the store: for what the process writes
/// on its way out (the panic hook, an exit with an error), when the store's lock may be held
/// by the thread that is failing. One `write` of one line on an `O_APPEND` file, then a sync:
/// it lands after whatever the store wrote, and a torn line is skipped when read.
pub fn append_last_words(path: &Path, event: &Event) -> Result<(), DiskError> {
    let mut line = serde_json::to_vec(event).map_err(|e| DiskError::Io {
        op: "encode",
        path: path.to_owned(),
        source: e.into(),
    })?;
    line.push(b'\n');
    let mut file = open_append(path)?;
    let io = |op| {
        move |source| DiskError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    file.write_all(&line).map_err(io("append"))?;
    file.sync_data().map_err(io("sync"))
}

/// How a supervisor saw a run of the process end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorExit {
    /// Killed by this signal.
    Signal(i32),
    /// Exited with this code.
    Code(i32),
}

/// What [`record_exit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitRecord {
    /// The last run died: this event now says how (its death is reported with that cause).
    Recorded(Event),
    /// The last run shut down cleanly: nothing to say about it (a supervisor that restarts
    /// after a clean stop calls this too).
    Clean,
    /// The journal has no run at all.
    NoRun,
}

/// Records how the last run ended, as its supervisor saw it, for the next boot to report:
/// for `ExecStopPost=` of a systemd unit or any supervisor, after the process is gone and
/// before it is started again (the event belongs to the last run in the journal). Nothing is
/// written when that run exited cleanly.
pub fn record_exit(
    path: &Path,
    max_bytes: u64,
    exit: SupervisorExit,
    now_ms: u64,
) -> Result<ExitRecord, DiskError> {
    let events = read_tail(path, max_bytes)?;
    if !events.iter().any(|e| matches!(e, Event::Boot { .. })) {
        return Ok(ExitRecord::NoRun);
    }
    if !crate::sentinel::last_run_died(&events) {
        return Ok(ExitRecord::Clean);
    }
    let event = match exit {
        SupervisorExit::Signal(signal) => Event::Killed {
            at_ms: now_ms,
            signal,
        },
        SupervisorExit::Code(code) => Event::Exited {
            at_ms: now_ms,
            code,
        },
    };
    append_last_words(path, &event)?;
    Ok(ExitRecord::Recorded(event))
}

fn open_append(path: &Path) -> Result<File, DiskError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| DiskError::Io {
            op: "open",
            path: path.to_owned(),
            source,
        })
}

/// The events in the last `max_bytes` of the journal; malformed lines are skipped.
fn read_tail(path: &Path, max_bytes: u64) -> Result<Vec<Event>, DiskError> {
    let mut file = match rampart_host::file::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let io = |op| {
        move |source| DiskError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    let len = file.metadata().map_err(io("stat"))?.len();
    let skip_first = len > max_bytes;
    if skip_first {
        file.seek(SeekFrom::Start(len - max_bytes))
            .map_err(io("seek"))?;
    }
    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let bytes = read_bounded(file, limit).map_err(|e| DiskError::TooLarge {
        path: path.to_owned(),
        size: Some(len),
        limit: match e {
            rampart_artifact::limits::ReadError::TooLarge(t) => t.limit,
            rampart_artifact::limits::ReadError::Io(_) => limit,
        },
    })?;
    let mut lines = bytes.split(|b| *b == b'\n');
    if skip_first {
        // Started mid-line.
        lines.next();
    }
    Ok(lines
        .filter_map(|line| serde_json::from_slice::<Event>(line).ok())
        .collect())
}

/// The events from the first boot at or after `cutoff_ms` on (runs older than that cannot
/// count in a decision), and always the last run: a run that booted long ago can still have
/// activated a version and died just now.
fn recent_runs(events: &[Event], cutoff_ms: u64) -> Vec<Event> {
    let recent = events
        .iter()
        .position(|e| matches!(e, Event::Boot { at_ms } if *at_ms >= cutoff_ms));
    let last = events.iter().rposition(|e| matches!(e, Event::Boot { .. }));
    let start = match (recent, last) {
        (Some(r), Some(l)) => r.min(l),
        (r, l) => r.or(l).unwrap_or(events.len()),
    };
    events
        .get(start..)
        .map(<[Event]>::to_vec)
        .unwrap_or_default()
}

/// Reads the poisoned list; a missing file is an empty list, a corrupt one too (with the
/// error returned so it can be reported).
pub(crate) fn read_poisoned(path: &Path) -> (Vec<Poisoned>, Option<DiskError>) {
    match disk::read_capped(path, MAX_POISONED_FILE_BYTES) {
        Ok(bytes) => match serde_json::from_slice::<Vec<Poisoned>>(&bytes) {
            Ok(mut list) => {
                trim_poisoned(&mut list);
                (list, None)
            }
            Err(e) => (
                Vec::new(),
                Some(DiskError::Io {
                    op: "parse",
                    path: path.to_owned(),
                    source: e.into(),
                }),
            ),
        },
        Err(e) if e.is_not_found() => (Vec::new(), None),
        Err(e) => (Vec::new(), Some(e)),
    }
}

/// Writes the poisoned list atomically.
pub(crate) fn write_poisoned(path: &Path, list: &[Poisoned]) -> Result<(), DiskError> {
    let bytes = serde_json::to_vec_pretty(list).map_err(|e| DiskError::Io {
        op: "encode",
        path: path.to_owned(),
        source: e.into(),
    })?;
    disk::write_atomic(path, &bytes)
}

/// Keeps the newest [`MAX_POISONED`] entries.
pub(crate) fn trim_poisoned(list: &mut Vec<Poisoned>) {
    if list.len() > MAX_POISONED {
        list.sort_by_key(|p| p.version);
        let excess = list.len() - MAX_POISONED;
        list.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(at_ms: u64) -> Event {
        Event::Boot { at_ms }
    }

    fn act(at_ms: u64, version: u64) -> Event {
        Event::Activated {
            at_ms,
            version,
            digest: Digest::of(&version.to_le_bytes()),
        }
    }

    #[test]
    fn events_survive_reopening_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, past) = Journal::open(&path, 4096, 0, 60_000).unwrap();
        assert!(past.is_empty());
        j.append(boot(1)).unwrap();
        j.append(act(2, 7)).unwrap();
        drop(j);
        // What SIGKILL in the middle of a write leaves.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"clean_ex").unwrap();
        let (_, past) = Journal::open(&path, 4096, 3, 60_000).unwrap();
        assert_eq!(past, [boot(1), act(2, 7)]);
    }

    #[test]
    fn a_long_run_compacts_to_its_boot_and_last_activation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, _) = Journal::open(&path, 1024, 0, 60_000).unwrap();
        j.append(boot(1)).unwrap();
        for v in 1..200 {
            j.append(act(v, v)).unwrap();
            assert!(j.size() <= 1024, "{}", j.size());
        }
        let (_, past) = Journal::open(&path, 1024, 300, 60_000).unwrap();
        assert_eq!(past.first(), Some(&boot(1)));
        assert_eq!(past.last(), Some(&act(199, 199)));
        assert!(past.len() < 20, "{}", past.len());
    }

    #[test]
    fn an_oversized_journal_is_read_from_its_tail_and_compacted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut text = String::new();
        for i in 0..10_000u64 {
            text.push_str(&serde_json::to_string(&boot(i)).unwrap());
            text.push('\n');
        }
        disk::write_atomic(&path, text.as_bytes()).unwrap();
        let (j, past) = Journal::open(&path, 2048, 10_000, 50).unwrap();
        // Only the tail was read...
        assert!(past.len() < 200, "{}", past.len());
        assert!(past.first().is_some_and(|e| *e != boot(0)));
        assert_eq!(past.last(), Some(&boot(9_999)));
        // ...and only the runs of the last 50 ms were kept.
        assert!(j.size() < 2048);
        let (_, kept) = Journal::open(&path, 2048, 10_000, 50).unwrap();
        assert_eq!(kept.first(), Some(&boot(9_950)));
        assert_eq!(kept.len(), 50);
    }

    #[test]
    fn compaction_keeps_the_last_run_however_old_its_boot() {
        let events = [boot(0), act(1, 1), boot(10), act(500_000, 2)];
        assert_eq!(recent_runs(&events, 400_000), [boot(10), act(500_000, 2)]);
        assert_eq!(recent_runs(&events, 5), [boot(10), act(500_000, 2)]);
        assert_eq!(recent_runs(&events, 0), events);
        assert_eq!(recent_runs(&[act(1, 1)], 0), []);
    }

    #[test]
    fn last_words_land_after_the_store_s_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, _) = Journal::open(&path, 4096, 0, 60_000).unwrap();
        j.append(boot(1)).unwrap();
        append_last_words(&path, &Event::Panicked { at_ms: 2 }).unwrap();
        j.append(Event::Alive { at_ms: 3 }).unwrap();
        let (_, past) = Journal::open(&path, 4096, 4, 60_000).unwrap();
        assert_eq!(
            past,
            [
                boot(1),
                Event::Panicked { at_ms: 2 },
                Event::Alive { at_ms: 3 }
            ]
        );
    }

    #[test]
    fn a_supervisor_records_the_signal_of_a_dead_run_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let max = 64 * 1024;
        assert_eq!(
            record_exit(&path, max, SupervisorExit::Signal(9), 5).unwrap(),
            ExitRecord::NoRun
        );
        append_last_words(&path, &boot(1_000)).unwrap();
        append_last_words(&path, &act(1_100, 7)).unwrap();
        let recorded = record_exit(&path, max, SupervisorExit::Signal(6), 9_000).unwrap();
        assert_eq!(
            recorded,
            ExitRecord::Recorded(Event::Killed {
                at_ms: 9_000,
                signal: 6
            })
        );
        // The next boot reports the death with the signal, and the uptime the run showed
        // (the supervisor's line is not a sign of life).
        let events = read_tail(&path, max).unwrap();
        let deaths = crate::sentinel::deaths(&events, 10_000);
        assert_eq!(deaths.len(), 1, "{deaths:?}");
        assert_eq!(deaths[0].cause, crate::DeathCause::Signal { signal: 6 });
        assert_eq!(deaths[0].uptime_ms, 100);
        // A clean stop is left alone.
        append_last_words(&path, &boot(10_000)).unwrap();
        append_last_words(&path, &Event::CleanExit { at_ms: 11_000 }).unwrap();
        assert_eq!(
            record_exit(&path, max, SupervisorExit::Code(1), 12_000).unwrap(),
            ExitRecord::Clean
        );
        assert_eq!(read_tail(&path, max).unwrap().len(), events.len() + 2);
    }

    #[test]
    fn the_poisoned_list_round_trips_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poisoned.json");
        assert_eq!(read_poisoned(&path).0, []);
        let mut list: Vec<Poisoned> = (1..=100)
            .map(|v| Poisoned {
                version: v,
                digest: Digest::of(b"x"),
                deaths: 3,
                at_ms: v,
            })
            .collect();
        trim_poisoned(&mut list);
        assert_eq!(list.len(), MAX_POISONED);
        assert_eq!(list[0].version, 100 - MAX_POISONED as u64 + 1);
        write_poisoned(&path, &list).unwrap();
        assert_eq!(read_poisoned(&path).0, list);
        disk::write_atomic(&path, b"not json").unwrap();
        let (empty, err) = read_poisoned(&path);
        assert!(empty.is_empty() && err.is_some());
    }
}
