//! The virtual clock: times of day on the scenario's date, in milliseconds since midnight UTC.
//!
//! Nothing in the simulator reads the wall clock. Every component gets `now` from here, and the
//! services that want epoch time (the ingest store's journal, the generator's `created_at`) get
//! it converted from the scenario's date, so a replay of 18 November 2025 writes files dated
//! that day.

use time::{Date, OffsetDateTime, Time};

/// One second in virtual milliseconds.
pub const SECOND: u64 = 1_000;
/// One minute in virtual milliseconds.
pub const MINUTE: u64 = 60 * SECOND;
/// One hour in virtual milliseconds.
pub const HOUR: u64 = 60 * MINUTE;
/// One day: no scenario may run past midnight.
pub const DAY: u64 = 24 * HOUR;

/// The scenario's date and the conversions from virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    date: Date,
    midnight_unix_ms: u64,
}

/// A time or a duration that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Not `HH:MM` or `HH:MM:SS` within a day.
    #[error("{0:?} is not a time of day (HH:MM or HH:MM:SS)")]
    TimeOfDay(String),
    /// Not a duration such as `90s`, `5m`, `1h` or `1h30m`.
    #[error("{0:?} is not a duration (such as 500ms, 90s, 5m, 1h, 1h30m)")]
    Duration(String),
    /// Not an ISO date `YYYY-MM-DD`.
    #[error("{0:?} is not a date (YYYY-MM-DD)")]
    Date(String),
}

// === impl Calendar ===

impl Calendar {
    /// The calendar of an ISO date (`2025-11-18`).
    pub fn parse(date: &str) -> Result<Calendar, ClockError> {
        let bad = || ClockError::Date(date.to_owned());
        let mut parts = date.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        let (y, m, d) = (next()?, next()?, next()?);
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let day: u8 = d.parse().map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
        let midnight = date.with_time(Time::MIDNIGHT).assume_utc();
        let unix_ms = midnight.unix_timestamp_nanos() / 1_000_000;
        let midnight_unix_ms =
            u64::try_from(unix_ms).map_err(|_| ClockError::Date(date.to_string()))?;
        Ok(Calendar {
            date,
            midnight_unix_ms,
        })
    }

    /// The date.
    pub fn date(&self) -> Date {
        self.date
    }

    /// Milliseconds since the Unix epoch at virtual time `at`.
    pub fn unix_ms(&self, at: u64) -> u64 {
        self.midnight_unix_ms.saturating_add(at)
    }

    /// The date and time at virtual time `at`, in UTC.
    pub fn datetime(&self, at: u64) -> OffsetDateTime {
        let nanos = i128::from(self.unix_ms(at)) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or_else(|_| self.date.with_time(Time::MIDNIGHT).assume_utc())
    }
}

/// Reads `HH:MM` or `HH:MM:SS` as milliseconds since midnight.
pub fn parse_time_of_day(s: &str) -> Result<u64, ClockError> {
    let bad = || ClockError::TimeOfDay(s.to_owned());
    let parts: Vec<&str> = s.trim().split(':').collect();
    let num = |p: Option<&&str>, max: u64| -> Result<u64, ClockError> {
        let p = p.ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = p.parse().map_err(|_| bad())?;
        if n > max {
            return Err(bad());
        }
        Ok(n)
    };
    let (h, m, sec) = match parts.len() {
        2 => (num(parts.first(), 23)?, num(parts.get(1), 59)?, 0),
        3 => (
            num(parts.first(), 23)?,
            num(parts.get(1), 59)?,
            num(parts.get(2), 59)?,
        ),
        _ => return Err(bad()),
    };
    Ok(h * HOUR + m * MINUTE + sec * SECOND)
}

/// Reads a duration: a sequence of `<number><unit>` with units `ms`, `s`, `m`, `h`
/// (`1h30m`, `90s`, `500ms`).
pub fn parse_duration(s: &str) -> Result<u64, ClockError> {
    let bad = || ClockError::Duration(s.to_owned());
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let (n, tail) = rest.split_at(digits);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let (unit, tail) = if let Some(t) = tail.strip_prefix("ms") {
            (1, t)
        } else if let Some(t) = tail.strip_prefix('s') {
            (SECOND, t)
        } else if let Some(t) = tail.strip_prefix('m') {
            (MINUTE, t)
        } else if let Some(t) = tail.strip_prefix('h') {
            (HOUR, t)
        } else {
            return Err(bad());
        };
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        rest = tail;
    }
    Ok(total)
}

/// `HH:MM`, or `HH:MM:SS` when the seconds are not zero.
pub fn format_time(at: u64) -> String {
    let h = at / HOUR;
    let m = (at % HOUR) / MINUTE;
    let s = (at % MINUTE) / SECOND;
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_round_trip() {
        assert_eq!(parse_time_of_day("11:05").unwrap(), 11 * HOUR + 5 * MINUTE);
        assert_eq!(
            parse_time_of_day("17:06:30").unwrap(),
            17 * HOUR + 6 * MINUTE + 30 * SECOND
        );
        assert_eq!(format_time(parse_time_of_day("09:12").unwrap()), "09:12");
        assert_eq!(
            format_time(parse_time_of_day("09:12:07").unwrap()),
            "09:12:07"
        );
        for bad in [
            "", "24:00", "11", "11:60", "1:2:3:4", "ab:cd", "-1:00", "111:00",
        ] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), 5 * MINUTE);
        assert_eq!(parse_duration("1h30m").unwrap(), 90 * MINUTE);
        assert_eq!(parse_duration("500ms").unwrap(), 500);
        assert_eq!(parse_duration("90s").unwrap(), 90 * SECOND);
        for bad in ["", "5", "m", "5x", "1h-3m", "9999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_calendar_dates_virtual_time() {
        let c = Calendar::parse("2025-11-18").unwrap();
        let t = c.datetime(parse_time_of_day("11:20").unwrap());
        assert_eq!(t.hour(), 11);
        assert_eq!(t.minute(), 20);
        assert_eq!(t.day(), 18);
        assert_eq!(c.unix_ms(0) % DAY, 0);
        assert!(Calendar::parse("2025-13-01").is_err());
    }
}
