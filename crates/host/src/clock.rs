//! The wall clock, for services: pure code takes `now` as an argument instead.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch: 0 if the clock is before 1970, `u64::MAX`
/// past the year 584 million.
pub fn now_ms() -> u64 {
    millis_since_epoch(SystemTime::now())
}

fn millis_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn now_is_after_2025_and_moves_forward() {
        // 2025-01-01T00:00:00Z
        let a = now_ms();
        assert!(a > 1_735_689_600_000, "{a}");
        assert!(now_ms() >= a);
    }

    #[test]
    fn a_clock_before_1970_reads_zero() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(millis_since_epoch(before), 0);
        assert_eq!(millis_since_epoch(UNIX_EPOCH), 0);
        assert_eq!(
            millis_since_epoch(UNIX_EPOCH + Duration::from_millis(1_500)),
            1_500
        );
    }
}
