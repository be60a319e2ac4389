//! How long to wait before calling an unreachable control plane again: exponential, capped,
//! with jitter, so a fleet that lost its control plane does not come back in lockstep.

use std::time::Duration;

/// The first retry waits about this long.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// No retry waits longer: an edge rejoins within this long of the control plane's return.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Exponential backoff with "equal jitter": attempt `n` waits between half and all of
/// `min(cap, base · 2ⁿ)`, so retries spread out but never collapse to zero.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    rng: u64,
}

// === impl Backoff ===

impl Backoff {
    /// A backoff whose jitter comes from `seed` (any value; nodes should differ).
    pub fn new(seed: u64) -> Self {
        Backoff {
            attempt: 0,
            // xorshift has one forbidden state.
            rng: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The wait before the next attempt; each call doubles the ceiling up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = BACKOFF_BASE
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(BACKOFF_CAP);
        self.attempt = self.attempt.saturating_add(1).min(31);
        let half = ceiling / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            self.next_u64() % nanos
        };
        half.saturating_add(Duration::from_nanos(jitter))
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*: jitter only, not cryptography.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_half_and_all_of_the_ceiling() {
        let mut b = Backoff::new(42);
        let mut ceiling = BACKOFF_BASE;
        for _ in 0..40 {
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} for ceiling {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(BACKOFF_CAP);
        }
        assert!(b.next_delay() >= BACKOFF_CAP / 2);
    }

    #[test]
    fn a_reset_starts_over_and_seeds_spread_the_fleet() {
        let mut b = Backoff::new(0);
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.attempts(), 10);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_BASE);
        let firsts: std::collections::HashSet<Duration> = (1..50u64)
            .map(|seed| {
                let mut b = Backoff::new(seed);
                b.next_delay();
                b.next_delay()
            })
            .collect();
        assert!(firsts.len() > 10, "jitter spreads retries: {firsts:?}");
    }
}
