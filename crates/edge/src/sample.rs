//! A bounded, privacy-safe sample of recent requests, for shadow scoring
//! (`rampart artifact shadow --sample`, `docs/shadow.md`): one request in [`SAMPLE_EVERY`]
//! scored by the bot module, kept as its **extractor values** and the score the serving file
//! gave, the newest [`SAMPLE_CAPACITY`] of them. No body, no cookie, no address, no header
//! value, no URL: the extractor values (lengths, counts, flags, the per-client rate) cannot be
//! turned back into a request.
//!
//! On the request path it costs one atomic increment, and for a sampled request a `try_lock`
//! (a contended lock skips the sample rather than wait) and a copy of the values.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use rampart_score::{FeatureId, Features, Score};

/// One request in this many is sampled.
pub const SAMPLE_EVERY: u64 = 16;

/// The most requests the sample keeps (the oldest go first): 10,000 × 316 bytes, about 3 MB.
pub const SAMPLE_CAPACITY: usize = 10_000;

/// The sample.
#[derive(Debug, Default)]
pub struct RequestSample {
    seen: AtomicU64,
    skipped: AtomicU64,
    rows: Mutex<VecDeque<(Features, Score)>>,
}

/// What `/status` says of the sample.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SampleStatus {
    /// Requests kept now.
    pub rows: usize,
    /// See [`SAMPLE_CAPACITY`].
    pub capacity: usize,
    /// See [`SAMPLE_EVERY`].
    pub every: u64,
    /// Sampled requests skipped because the lock was busy.
    pub skipped: u64,
}

// === impl RequestSample ===

impl RequestSample {
    /// Offers a scored request: kept when it is the one in [`SAMPLE_EVERY`].
    pub fn offer(&self, features: &Features, score: Score) {
        if !self
            .seen
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SAMPLE_EVERY)
        {
            return;
        }
        let Ok(mut rows) = self.rows.try_lock() else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if rows.len() >= SAMPLE_CAPACITY {
            rows.pop_front();
        }
        rows.push_back((features.clone(), score));
    }

    /// The sample as JSON lines, oldest first, in the format `rampart artifact shadow
    /// --sample` reads: `{"features": {name: value, …}, "score": N}` (values that are 0 are
    /// left out; `score` is `null` when the request was not scored).
    pub fn jsonl(&self) -> String {
        let rows: Vec<(Features, Score)> = {
            let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            rows.iter().cloned().collect()
        };
        let mut out = String::with_capacity(rows.len() * 256);
        for (f, score) in rows {
            let features: serde_json::Map<String, serde_json::Value> = FeatureId::ALL
                .iter()
                .map(|id| (id, f.get(*id)))
                .filter(|(_, x)| *x != 0.0)
                .map(|(id, x)| (id.name().to_owned(), serde_json::json!(x)))
                .collect();
            let score = match score {
                Score::Scored(s) => serde_json::json!(s),
                Score::Unscored(_) => serde_json::Value::Null,
            };
            out.push_str(&serde_json::json!({ "features": features, "score": score }).to_string());
            out.push('\n');
        }
        out
    }

    /// Its size and settings.
    pub fn status(&self) -> SampleStatus {
        SampleStatus {
            rows: self
                .rows
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            capacity: SAMPLE_CAPACITY,
            every: SAMPLE_EVERY,
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_every_is_kept_and_the_newest_capacity_stay() {
        let s = RequestSample::default();
        let mut f = Features::zeroed();
        f.set(FeatureId::ALL[0], 3.0);
        for _ in 0..SAMPLE_EVERY * 3 {
            s.offer(&f, Score::Scored(42));
        }
        assert_eq!(s.status().rows, 3);
        let text = s.jsonl();
        assert_eq!(text.lines().count(), 3);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["score"], 42);
        assert_eq!(first["features"][FeatureId::ALL[0].name()], 3.0);
        assert_eq!(
            first["features"].as_object().unwrap().len(),
            1,
            "zeros left out"
        );
        for _ in 0..(SAMPLE_CAPACITY as u64 + 10) * SAMPLE_EVERY {
            s.offer(&f, Score::Scored(7));
        }
        assert_eq!(s.status().rows, SAMPLE_CAPACITY);
        assert!(s.jsonl().lines().all(|l| l.ends_with("\"score\":7}")));
    }
}
