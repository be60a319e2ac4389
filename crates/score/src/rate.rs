//! A per-client request counter in bounded memory, shared by every worker thread.
//!
//! A count-min sketch: [`ROWS`] rows of `slots` cells, each cell one `AtomicU64` holding a
//! minute number (high 32 bits) and a count (low 32 bits). A client hashes to one cell per
//! row with independent bits of a seeded hash; a hit bumps both cells and the estimate is the
//! smaller count.
//!
//! Collisions: two clients in the same cell share its count, so an estimate can only be too
//! high, never too low (a bot cannot hide behind a quiet neighbour). Taking the minimum of
//! two rows makes a wrong estimate need a collision in both. With the default 16,384 slots
//! per row and N active clients in a minute, a given client is over-counted with probability
//! about (1 - e^(-N/16384))^2: about 0.4% at 1,000 clients, 15% at 10,000. The seed is random
//! per table by default, so collisions cannot be aimed at.
//!
//! Windows: a cell whose minute is not the current one reads as 0 and restarts at 1 on the
//! next hit (fixed windows, not sliding). A clock that goes backwards restarts the window.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cells per row of a table made by [`RateTable::new`]: 2 rows × 16,384 × 8 bytes = 256 KiB.
pub const DEFAULT_SLOTS: usize = 16_384;

/// Most cells per row [`RateTable::with_slots`] accepts (2 rows × 16 Mi × 8 bytes = 256 MiB).
pub const MAX_SLOTS: usize = 1 << 24;

/// Rows of the sketch: each hit touches this many cells.
pub const ROWS: usize = 2;

/// Length of a counting window, in milliseconds.
pub const WINDOW_MS: u64 = 60_000;

/// A bounded, lock-free request counter keyed by client address.
#[derive(Debug)]
pub struct RateTable {
    cells: Box<[AtomicU64]>,
    slots: usize,
    seed: u64,
}

// === impl RateTable ===

impl RateTable {
    /// A table of [`DEFAULT_SLOTS`] per row with a random seed.
    pub fn new() -> Self {
        Self::with_slots(DEFAULT_SLOTS, random_seed())
    }

    /// A table of `slots` cells per row (rounded up to a power of two, clamped to
    /// 1..=[`MAX_SLOTS`]) with a fixed seed, for reproducible runs.
    pub fn with_slots(slots: usize, seed: u64) -> Self {
        let slots = slots
            .clamp(1, MAX_SLOTS)
            .checked_next_power_of_two()
            .unwrap_or(MAX_SLOTS);
        let cells = (0..ROWS * slots).map(|_| AtomicU64::new(0)).collect();
        RateTable { cells, slots, seed }
    }

    /// Counts one request from `client` at `now_ms` and returns the estimated number of
    /// requests from it in the current window, this one included (at least 1).
    pub fn hit(&self, client: IpAddr, now_ms: u64) -> u32 {
        let window = window_of(now_ms);
        let mut estimate = u32::MAX;
        for cell in self.cells_of(client) {
            let bump = |packed: u64| {
                let count = if (packed >> 32) as u32 == window {
                    (packed as u32).saturating_add(1)
                } else {
                    1
                };
                Some(pack(window, count))
            };
            // The closure always returns Some, so both arms carry the previous value.
            let previous = match cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, bump) {
                Ok(v) | Err(v) => v,
            };
            let now = bump(previous).map_or(1, |p| p as u32);
            estimate = estimate.min(now);
        }
        estimate
    }

    /// The estimated number of requests from `client` in the window of `now_ms`, without
    /// counting one.
    pub fn peek(&self, client: IpAddr, now_ms: u64) -> u32 {
        let window = window_of(now_ms);
        self.cells_of(client)
            .map(|cell| {
                let packed = cell.load(Ordering::Relaxed);
                if (packed >> 32) as u32 == window {
                    packed as u32
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(0)
    }

    /// Cells per row.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bytes held by the cells: fixed at construction, whatever the traffic.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.cells)
    }

    /// The cell of `client` in each row.
    fn cells_of(&self, client: IpAddr) -> impl Iterator<Item = &AtomicU64> {
        let h = hash(self.seed, client);
        let mask = self.slots - 1;
        // Low and high halves of the hash pick the cells: independent for a good mixer.
        let picks = [(h as usize) & mask, ((h >> 32) as usize) & mask];
        picks
            .into_iter()
            .enumerate()
            .filter_map(move |(row, i)| self.cells.get(row * self.slots + i))
    }
}

impl Default for RateTable {
    fn default() -> Self {
        Self::new()
    }
}

fn window_of(now_ms: u64) -> u32 {
    // Minutes since the epoch fit in 32 bits for 8,000 years; wrapping after that only
    // restarts a window.
    (now_ms / WINDOW_MS) as u32
}

fn pack(window: u32, count: u32) -> u64 {
    (u64::from(window) << 32) | u64::from(count)
}

/// The key of a client: an IPv4 address, or the /64 of an IPv6 one (a single host can use
/// any address of its /64, so counting addresses would let it reset its count at will).
fn hash(seed: u64, client: IpAddr) -> u64 {
    let (key, family) = match client.to_canonical() {
        IpAddr::V4(a) => (u64::from(u32::from(a)), 4),
        IpAddr::V6(a) => ((u128::from(a) >> 64) as u64, 6),
    };
    mix(mix(seed ^ key).wrapping_add(family))
}

/// The splitmix64 finalizer: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed from the process's random hasher keys (std seeds them from the OS once).
fn random_seed() -> u64 {
    RandomState::new().hash_one(0x0072_616d_7061_7274_u64)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    use super::*;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn counts_within_a_window_and_restarts_in_the_next() {
        let t = RateTable::with_slots(1024, 7);
        let a = v4(0x0a00_0001);
        for expected in 1..=5 {
            assert_eq!(t.hit(a, 1_000), expected);
        }
        assert_eq!(t.peek(a, 59_999), 5);
        assert_eq!(t.peek(a, 60_000), 0);
        assert_eq!(t.hit(a, 60_000), 1);
        // Back in time: a different window again, restarted.
        assert_eq!(t.hit(a, 1_000), 1);
    }

    #[test]
    fn clients_are_counted_apart() {
        let t = RateTable::with_slots(4096, 1);
        let (a, b) = (v4(1), v4(2));
        for _ in 0..10 {
            t.hit(a, 0);
        }
        assert_eq!(t.hit(b, 0), 1);
        assert_eq!(t.peek(a, 0), 10);
    }

    #[test]
    fn ipv6_is_counted_by_its_64_prefix_and_mapped_v4_as_v4() {
        let t = RateTable::with_slots(4096, 3);
        let x: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let y: Ipv6Addr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        t.hit(IpAddr::V6(x), 0);
        assert_eq!(t.hit(IpAddr::V6(y), 0), 2);
        assert_eq!(t.peek(IpAddr::V6(other), 0), 0);
        let mapped = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped();
        t.hit(IpAddr::V6(mapped), 0);
        assert_eq!(t.peek(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 0), 1);
    }

    #[test]
    fn memory_is_bounded_whatever_the_number_of_clients() {
        let t = RateTable::with_slots(256, 9);
        let before = t.memory_bytes();
        assert_eq!(before, ROWS * 256 * 8);
        for n in 0..100_000 {
            t.hit(v4(n), 0);
        }
        assert_eq!(t.memory_bytes(), before);
        // Collisions only over-count: every client sees at least its own hits.
        assert!(t.peek(v4(42), 0) >= 1);
    }

    #[test]
    fn estimates_never_under_count() {
        let t = RateTable::with_slots(16, 5);
        for n in 0..200u32 {
            for _ in 0..(n % 7) + 1 {
                t.hit(v4(n), 0);
            }
        }
        for n in 0..200u32 {
            let own = (n % 7) + 1;
            assert!(t.peek(v4(n), 0) >= own, "client {n}");
        }
    }

    #[test]
    fn slots_are_rounded_and_clamped() {
        assert_eq!(RateTable::with_slots(1000, 0).slots(), 1024);
        assert_eq!(RateTable::with_slots(0, 0).slots(), 1);
        assert_eq!(RateTable::new().slots(), DEFAULT_SLOTS);
        assert_eq!(RateTable::new().memory_bytes(), 256 * 1024);
    }

    #[test]
    fn counts_saturate() {
        let t = RateTable::with_slots(1, 0);
        if let Some(cell) = t.cells.first() {
            cell.store(pack(0, u32::MAX - 1), Ordering::Relaxed);
        }
        if let Some(cell) = t.cells.get(1) {
            cell.store(pack(0, u32::MAX - 1), Ordering::Relaxed);
        }
        assert_eq!(t.hit(v4(1), 0), u32::MAX);
        assert_eq!(t.hit(v4(1), 0), u32::MAX);
    }

    #[test]
    fn threads_share_one_table_without_losing_hits() {
        let t = Arc::new(RateTable::with_slots(64, 11));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        t.hit(v4(77), 120_000);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.peek(v4(77), 120_000), 40_000);
    }
}
