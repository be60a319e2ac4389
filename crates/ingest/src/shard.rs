//! Per-thread shards for counters bumped on every request.
//!
//! One atomic bumped by every proxy worker moves its cache line between cores on each
//! request: on the 2-core bench machine that was a measurable share of the edge's
//! per-request CPU (docs/BENCHMARKS.md). Each worker thread says which shard is its own
//! ([`enter`]) and bumps only that one; readers (the admin API, once a second or per
//! scrape) add the shards up. Threads that never call [`enter`] share shard 0, which is
//! still correct, only not contention-free.
//!
//! Sums use wrapping arithmetic, so a gauge raised on one shard and lowered on another
//! (a connection opened on one thread and closed on another) still adds up exactly.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shards per counter; threads beyond this share (index modulo [`SHARDS`]).
pub const SHARDS: usize = 8;

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes `index` (taken modulo [`SHARDS`]) this thread's shard. Proxy worker `i` calls it
/// with `i + 1`, leaving shard 0 to every other thread.
pub fn enter(index: usize) {
    SHARD.with(|s| s.set(index % SHARDS));
}

/// This thread's shard, `0..SHARDS`.
pub fn current() -> usize {
    SHARD.with(Cell::get)
}

/// A value aligned to its own cache lines (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

/// A counter with one padded cell per shard.
#[derive(Debug, Default)]
pub struct ShardedCounter {
    cells: [Padded<AtomicU64>; SHARDS],
}

// === impl ShardedCounter ===

impl ShardedCounter {
    /// Adds `n` on this thread's shard (relaxed).
    pub fn add(&self, n: u64) {
        if let Some(cell) = self.cells.get(current()) {
            cell.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The total over every shard.
    pub fn sum(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |t, c| t.wrapping_add(c.0.load(Ordering::Relaxed)))
    }

    /// The total, setting every shard to zero (adds racing with it land before or after).
    pub fn take(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |t, c| t.wrapping_add(c.0.swap(0, Ordering::Relaxed)))
    }

    /// Sets every shard to zero.
    pub fn reset(&self) {
        for c in &self.cells {
            c.0.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_add_on_their_own_shard_and_the_sum_sees_all() {
        let counter = std::sync::Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let c = counter.clone();
                std::thread::spawn(move || {
                    enter(i);
                    for _ in 0..1000 {
                        c.add(1);
                    }
                    current()
                })
            })
            .collect();
        let shards: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(shards, [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]);
        assert_eq!(counter.sum(), 12_000);
        // Shard 1 got threads 1 and 9.
        assert_eq!(counter.cells[1].0.load(Ordering::Relaxed), 2000);
        assert_eq!(counter.take(), 12_000);
        assert_eq!(counter.sum(), 0);
    }

    #[test]
    fn a_gauge_moved_across_shards_still_sums() {
        let g = ShardedCounter::default();
        enter(3);
        g.add(1);
        enter(5);
        g.add(u64::MAX); // minus one, on another shard
        assert_eq!(g.sum(), 0);
        g.add(2);
        assert_eq!(g.sum(), 2);
        g.reset();
        assert_eq!(g.sum(), 0);
        enter(0);
    }

    #[test]
    fn cells_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<Padded<AtomicU64>>(), 128);
        assert_eq!(std::mem::size_of::<ShardedCounter>(), 128 * SHARDS);
    }
}
