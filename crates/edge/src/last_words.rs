//! What the process writes in its boot journal on its way out, so the next run can tell
//! the control plane why it died: a panic that escaped every isolation boundary
//! ([`panicked`], from the panic hook) and an exit with an error ([`exited`]).
//!
//! Nothing here takes the store's lock (the failing thread may hold it): the event is
//! appended to the journal's file directly
//! ([`append_last_words`]). It is armed by
//! the first [`Node`](crate::Node) of the process once its store has booted (and so written
//! this run's `boot` event): before that, an event would be blamed on the run before. A
//! SIGKILL, an OOM kill or an abort leaves nothing: the death is reported with cause
//! `unknown` (a supervisor that knows the signal could say more; see
//! `docs/edge-operations.md`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rampart_host::clock::now_ms;
use rampart_ingest::Event;
use rampart_ingest::journal::append_last_words;

/// The journal of this process's store, once it booted.
static JOURNAL: OnceLock<PathBuf> = OnceLock::new();

/// A panic is recorded once per run: the first is the one that matters, and a module
/// panicking on every request must not turn into a journal write per request.
static PANIC_RECORDED: AtomicBool = AtomicBool::new(false);

/// Arms the last words with the journal at `path` (the first call wins).
pub fn arm(path: PathBuf) {
    let _ = JOURNAL.set(path);
}

/// Called by the panic hook: records [`Event::Panicked`] unless the panic is inside an
/// isolation boundary ([`rampart_ingest::isolation`], where it is caught and counted), or
/// one was recorded already.
pub fn panicked() {
    if rampart_ingest::isolation::in_boundary() {
        return;
    }
    let Some(path) = JOURNAL.get() else {
        return;
    };
    if PANIC_RECORDED.swap(true, Ordering::Relaxed) {
        return;
    }
    // Nothing to do about a failure here: the death is then reported as `unknown`.
    let _ = append_last_words(path, &Event::Panicked { at_ms: now_ms() });
}

/// Records that the process exits with `code` (non-zero: an error after boot).
pub fn exited(code: i32) {
    if let Some(path) = JOURNAL.get() {
        let _ = append_last_words(
            path,
            &Event::Exited {
                at_ms: now_ms(),
                code,
            },
        );
    }
}
