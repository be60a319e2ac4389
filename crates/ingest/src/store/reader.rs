//! The request path's side of the store: it reads the snapshot and counts requests, and
//! cannot offer a file or break glass.

use std::fmt;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::counters::ApplyCounters;
use crate::snapshot::Snapshot;
use crate::soak::Meter;

/// A read-only handle on a [`Store`](super::Store), for the request path: one atomic load
/// per request and two relaxed adds per recorded request. Cloning it clones one `Arc`; it
/// does not keep the writer's state alive.
pub struct Reader<M> {
    shared: Arc<Shared<M>>,
}

/// What the writer shares with its readers.
pub(super) struct Shared<M> {
    /// The snapshot; only a writer holding the store's lock stores into it.
    pub(super) current: ArcSwap<Snapshot<M>>,
    /// The soak meter of the active version.
    pub(super) meter: Meter,
    pub(super) counters: ApplyCounters,
}

// === impl Reader ===

impl<M> Reader<M> {
    pub(super) fn new(shared: Arc<Shared<M>>) -> Self {
        Reader { shared }
    }

    /// What the request path reads: one atomic load, never blocked by a writer, and no
    /// reference-count increment (arc-swap's guard), so worker threads do not contend on
    /// the snapshot's counter. Hold it for one request, not longer.
    pub fn load(&self) -> Guard<Arc<Snapshot<M>>> {
        self.shared.current.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn snapshot(&self) -> Arc<Snapshot<M>> {
        self.shared.current.load_full()
    }

    /// Called for every request the module saw; `module_error` when it failed (error or
    /// panic caught). Relaxed adds only: it counts for `/metrics` and feeds the soak of
    /// the active version.
    pub fn record_request(&self, module_error: bool) {
        self.shared.counters.request(module_error);
        self.shared.meter.record(module_error);
    }
}

impl<M> Clone for Reader<M> {
    fn clone(&self) -> Self {
        Reader {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> fmt::Debug for Reader<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("snapshot", &self.shared.current.load())
            .finish_non_exhaustive()
    }
}

// === impl Shared ===

impl<M> Shared<M> {
    pub(super) fn new(snapshot: Snapshot<M>, counters: ApplyCounters) -> Self {
        Shared {
            current: ArcSwap::from_pointee(snapshot),
            meter: Meter::default(),
            counters,
        }
    }
}
