//! The heartbeat: an edge's state up, its desired state down.
//!
//! Up: the version it serves, its verdict (ACK/NACK) on the version it was told to take,
//! its last refusal, and counters since its previous beat (requests, 5xx, module errors,
//! restarts, and the scores it gave as a histogram). Down: the version it should serve and
//! where to fetch it, the kill switches, and when to beat next. See the crate docs for the
//! etag that makes the long-poll safe.

use rampart_artifact::{Digest, Issue};
use serde::{Deserialize, Serialize};

use crate::error::IssueReport;
use crate::killswitch::KillSwitches;
use crate::limits::{MAX_DEATHS_PER_BEAT, MAX_HEARTBEAT_ISSUES, MAX_MESSAGE_LEN, SCORE_BUCKETS};
use crate::{Invalid, check_text};

/// What an edge reports, every beat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Counts beats of this process from 0; it restarts with the process.
    pub seq: u64,
    /// The version it serves, when it serves one.
    #[serde(default)]
    pub active: Option<Active>,
    /// Whether the bot module runs (the kill switch and the edge's own safe mode).
    pub module_enabled: bool,
    /// Its verdict on the last desired version it tried.
    #[serde(default)]
    pub verdict: Option<ApplyReport>,
    /// The last file it refused, from any source.
    #[serde(default)]
    pub last_rejection: Option<Rejection>,
    /// Counts since the previous beat.
    pub counters: BeatCounters,
    /// Scores given since the previous beat.
    pub scores: ScoreHistogram,
    /// The `etag` of the last answer the edge acted on; `None` after a start.
    #[serde(default)]
    pub seen: Option<String>,
    /// How long the control plane may hold the answer when nothing changed, in ms (clamped to
    /// [`crate::limits::MAX_LONG_POLL_MS`]; 0 answers at once).
    #[serde(default)]
    pub wait_ms: u64,
    /// Deaths of earlier runs of this edge not yet reported (each reported once, oldest
    /// first, at most [`MAX_DEATHS_PER_BEAT`]): the control plane correlates them with the
    /// versions that were active (deaths are evidence against a version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deaths: Vec<Death>,
}

/// A run of the edge process that ended without a clean exit, as the next run found it in
/// its boot journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Death {
    /// When the death was detected (the boot after it), ms since the Unix epoch (edge clock).
    pub detected_at_ms: u64,
    /// The version that was active when the run died; `None` when it served nothing.
    #[serde(default)]
    pub active: Option<Active>,
    /// How long that version had been active when the run was last seen alive, in ms, when
    /// the journal knows.
    #[serde(default)]
    pub active_for_ms: Option<u64>,
    /// How long the process had run when it was last seen alive, in ms, when known.
    #[serde(default)]
    pub uptime_ms: Option<u64>,
    /// Why it died, when known.
    #[serde(default)]
    pub cause: DeathCause,
}

/// Why a run died, as far as the edge (or its supervisor) can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeathCause {
    /// Killed by a signal (its number), as a supervisor reported it.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// A panic that escaped the module's isolation (recorded by the panic hook).
    Panic,
    /// Exited with a non-zero code without a clean shutdown.
    Exit {
        /// The exit code.
        code: i32,
    },
    /// No record of how: the run simply stopped (SIGKILL, OOM, power).
    #[default]
    Unknown,
}

/// A version and its digest, as served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Active {
    /// The version.
    pub version: u64,
    /// Its digest.
    pub digest: Digest,
}

/// ACK or NACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckNack {
    /// Fetched, verified, validated, swapped in, and soaked.
    Ack,
    /// Refused: the edge keeps serving what it had.
    Nack,
}

/// An edge's verdict on one desired version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyReport {
    /// The desired digest it is about.
    pub digest: Digest,
    /// Its version, when the edge could read it.
    #[serde(default)]
    pub version: Option<u64>,
    /// ACK or NACK.
    pub verdict: AckNack,
    /// For a NACK: the issue codes, or the refusal code (`fetch_failed`, `poisoned`…).
    #[serde(default)]
    pub issues: Vec<String>,
    /// When, ms since the Unix epoch (the edge's clock).
    pub at_ms: u64,
}

/// A file an edge refused, with every issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// When, ms since the Unix epoch (the edge's clock).
    pub at_ms: u64,
    /// Its version, when readable.
    #[serde(default)]
    pub version: Option<u64>,
    /// Its digest, when known.
    #[serde(default)]
    pub digest: Option<Digest>,
    /// The edge's refusal code.
    pub code: String,
    /// One line for people.
    pub message: String,
    /// The artifact issues.
    #[serde(default)]
    pub issues: Vec<IssueReport>,
}

/// Counts since the previous beat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeatCounters {
    /// Requests handled.
    pub requests: u64,
    /// Of those, answered with a 5xx (by the edge or the origin).
    pub errors_5xx: u64,
    /// Of those, where the bot module failed (error or caught panic).
    pub module_errors: u64,
    /// Process restarts since the previous beat (the edge's boot journal knows).
    pub restarts: u64,
}

/// Scores given since the previous beat: `buckets[s - 1]` counts score `s` (1 to 99), and
/// `unscored` the requests that passed without a score. Unscored is not score 0: a file that
/// makes every request unscored, or every score 1, shows as a shifted distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreHistogram {
    /// Exactly [`SCORE_BUCKETS`] counts.
    pub buckets: Vec<u64>,
    /// Requests without a score.
    pub unscored: u64,
}

/// The version a node should serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// Its version.
    pub version: u64,
    /// Its digest.
    pub digest: Digest,
    /// Where to fetch its exact signed bytes (a path under the control plane's URL).
    pub fetch: String,
}

/// What the control plane tells an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// The version to serve; `None` while nothing was ever rolled out.
    pub desired: Option<Desired>,
    /// The kill switches to apply.
    pub kill_switches: KillSwitches,
    /// Names this desired state: send it back as [`Heartbeat::seen`] once acted on.
    pub etag: String,
    /// When to beat next, in ms (right away after a long-poll that ran its course).
    pub beat_interval_ms: u64,
    /// Whether the answer differs from what the edge had seen (`false`: the wait ran out).
    pub changed: bool,
    /// The same desired state as a signed [`Order`](crate::order::Order) (director key,
    /// epoch, sequence). An edge with a keyset applies only this, never the unsigned fields
    /// above; `None` from a control plane without a director key (the legacy/dev path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<rampart_artifact::Envelope>,
    /// Versions the fleet has blessed (their rollout finished its watch), newest first, at
    /// most [`MAX_BLESSED`](crate::limits::MAX_BLESSED): an edge promotes to last-known-good only a blessed version.
    /// Carried in the signed order too; an edge with a keyset reads it only from there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blessed: Vec<Active>,
}

// === impl Heartbeat ===

impl Heartbeat {
    /// A first beat: nothing served, nothing counted.
    pub fn empty(seq: u64) -> Self {
        Heartbeat {
            seq,
            active: None,
            module_enabled: true,
            verdict: None,
            last_rejection: None,
            counters: BeatCounters::default(),
            scores: ScoreHistogram::default(),
            seen: None,
            wait_ms: 0,
            deaths: Vec::new(),
        }
    }

    /// Checks the wire bounds.
    pub fn check(&self) -> Result<(), Invalid> {
        self.scores.check()?;
        if let Some(v) = &self.verdict {
            if v.issues.len() > MAX_HEARTBEAT_ISSUES {
                return Err(Invalid::new(
                    "verdict.issues",
                    format!("at most {MAX_HEARTBEAT_ISSUES}"),
                ));
            }
            for code in &v.issues {
                check_text("verdict.issues", code, MAX_MESSAGE_LEN)?;
            }
        }
        if let Some(r) = &self.last_rejection {
            if r.issues.len() > MAX_HEARTBEAT_ISSUES {
                return Err(Invalid::new(
                    "last_rejection.issues",
                    format!("at most {MAX_HEARTBEAT_ISSUES}"),
                ));
            }
            check_text("last_rejection.code", &r.code, MAX_MESSAGE_LEN)?;
            check_text("last_rejection.message", &r.message, MAX_MESSAGE_LEN)?;
        }
        if let Some(seen) = &self.seen {
            check_text("seen", seen, MAX_MESSAGE_LEN)?;
        }
        if self.deaths.len() > MAX_DEATHS_PER_BEAT {
            return Err(Invalid::new(
                "deaths",
                format!("at most {MAX_DEATHS_PER_BEAT} per beat"),
            ));
        }
        Ok(())
    }

    /// Whether this beat NACKs `digest`.
    pub fn nacks(&self, digest: &Digest) -> bool {
        self.verdict
            .as_ref()
            .is_some_and(|v| v.verdict == AckNack::Nack && v.digest == *digest)
    }

    /// Whether this beat ACKs `digest` (and serves it).
    pub fn acks(&self, digest: &Digest) -> bool {
        self.verdict
            .as_ref()
            .is_some_and(|v| v.verdict == AckNack::Ack && v.digest == *digest)
            && self.active.is_some_and(|a| a.digest == *digest)
    }
}

// === impl ApplyReport ===

impl ApplyReport {
    /// A NACK with the artifact issues' codes (at most [`MAX_HEARTBEAT_ISSUES`]).
    pub fn nack(digest: Digest, version: Option<u64>, issues: &[Issue], at_ms: u64) -> Self {
        ApplyReport {
            digest,
            version,
            verdict: AckNack::Nack,
            issues: issues
                .iter()
                .take(MAX_HEARTBEAT_ISSUES)
                .map(|i| i.code().to_owned())
                .collect(),
            at_ms,
        }
    }

    /// An ACK.
    pub fn ack(digest: Digest, version: u64, at_ms: u64) -> Self {
        ApplyReport {
            digest,
            version: Some(version),
            verdict: AckNack::Ack,
            issues: Vec::new(),
            at_ms,
        }
    }
}

// === impl ScoreHistogram ===

impl Default for ScoreHistogram {
    fn default() -> Self {
        ScoreHistogram {
            buckets: vec![0; SCORE_BUCKETS],
            unscored: 0,
        }
    }
}

impl ScoreHistogram {
    /// Counts one score; scores outside 1..=99 are clamped into it (the scorer never gives
    /// one, and a histogram must not lose a request).
    pub fn record(&mut self, score: u8) {
        let index = usize::from(score.clamp(1, 99)) - 1;
        if let Some(b) = self.buckets.get_mut(index) {
            *b = b.saturating_add(1);
        }
    }

    /// Counts one request without a score.
    pub fn record_unscored(&mut self) {
        self.unscored = self.unscored.saturating_add(1);
    }

    /// Adds another histogram's counts (a wrong-length one adds what it has).
    pub fn merge(&mut self, other: &ScoreHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a = a.saturating_add(*b);
        }
        self.unscored = self.unscored.saturating_add(other.unscored);
    }

    /// Scored requests.
    pub fn scored(&self) -> u64 {
        self.buckets.iter().fold(0u64, |n, b| n.saturating_add(*b))
    }

    /// Scored and unscored requests.
    pub fn total(&self) -> u64 {
        self.scored().saturating_add(self.unscored)
    }

    /// Checks the length.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.buckets.len() != SCORE_BUCKETS {
            return Err(Invalid::new(
                "scores.buckets",
                format!(
                    "must hold exactly {SCORE_BUCKETS} counts, holds {}",
                    self.buckets.len()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deaths_travel_in_a_beat_and_too_many_are_refused() {
        let mut beat = Heartbeat::empty(0);
        assert!(!serde_json::to_string(&beat).unwrap().contains("deaths"));
        beat.deaths.push(Death {
            detected_at_ms: 10,
            active: None,
            active_for_ms: Some(300_000),
            uptime_ms: None,
            cause: DeathCause::Signal { signal: 9 },
        });
        let json = serde_json::to_string(&beat).unwrap();
        assert!(
            json.contains(r#""cause":{"kind":"signal","signal":9}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Heartbeat>(&json).unwrap(), beat);
        let unknown: Death = serde_json::from_str(r#"{"detected_at_ms":1}"#).unwrap();
        assert_eq!(unknown.cause, DeathCause::Unknown);
        beat.deaths = vec![unknown; MAX_DEATHS_PER_BEAT + 1];
        assert_eq!(beat.check().unwrap_err().field, "deaths");
    }

    #[test]
    fn a_histogram_counts_every_score_and_clamps() {
        let mut h = ScoreHistogram::default();
        h.record(1);
        h.record(99);
        h.record(0);
        h.record(200);
        h.record_unscored();
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[98], 2);
        assert_eq!((h.scored(), h.total()), (4, 5));
        let mut sum = ScoreHistogram::default();
        sum.merge(&h);
        sum.merge(&h);
        assert_eq!(sum.total(), 10);
        assert!(h.check().is_ok());
    }

    #[test]
    fn a_histogram_of_the_wrong_length_is_refused() {
        let h = ScoreHistogram {
            buckets: vec![0; 10],
            unscored: 0,
        };
        let e = h.check().unwrap_err();
        assert_eq!(e.field, "scores.buckets");
        let mut beat = Heartbeat::empty(0);
        beat.scores = h;
        assert!(beat.check().is_err());
    }

    #[test]
    fn verdicts_are_about_one_digest() {
        let d = rampart_artifact::Digest::of(b"a");
        let other = rampart_artifact::Digest::of(b"b");
        let mut beat = Heartbeat::empty(1);
        beat.verdict = Some(ApplyReport::nack(
            d,
            Some(2),
            &[Issue::TooManyFeatures {
                count: 400,
                limit: 200,
            }],
            5,
        ));
        assert!(beat.nacks(&d) && !beat.nacks(&other) && !beat.acks(&d));
        assert_eq!(
            beat.verdict.as_ref().unwrap().issues,
            vec!["too_many_features"]
        );
        beat.verdict = Some(ApplyReport::ack(d, 2, 6));
        assert!(
            !beat.acks(&d),
            "an ACK counts only while the version serves"
        );
        beat.active = Some(Active {
            version: 2,
            digest: d,
        });
        assert!(beat.acks(&d));
    }

    #[test]
    fn too_many_issues_are_refused() {
        let mut beat = Heartbeat::empty(1);
        beat.verdict = Some(ApplyReport {
            digest: rampart_artifact::Digest::of(b"a"),
            version: None,
            verdict: AckNack::Nack,
            issues: vec!["x".into(); MAX_HEARTBEAT_ISSUES + 1],
            at_ms: 0,
        });
        assert_eq!(beat.check().unwrap_err().field, "verdict.issues");
    }

    #[test]
    fn a_heartbeat_round_trips() {
        let mut beat = Heartbeat::empty(3);
        beat.scores.record(40);
        beat.counters.requests = 1;
        beat.seen = Some("e1".into());
        let json = serde_json::to_string(&beat).unwrap();
        assert_eq!(serde_json::from_str::<Heartbeat>(&json).unwrap(), beat);
    }
}
