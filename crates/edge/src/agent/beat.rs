//! The pure parts of a heartbeat: counters since the last delivered beat, the score
//! histogram, the verdict on a desired version, the last refusal as the wire carries it.

use rampart_api::limits::{MAX_HEARTBEAT_ISSUES, MAX_MESSAGE_LEN, SCORE_BUCKETS};
use rampart_api::{ApplyReport, BeatCounters, Desired, IssueReport, Rejection, ScoreHistogram};
use rampart_ingest::ApplyOutcome;
use rampart_ingest::status::LastRejection;

use crate::metrics::{SCORE_SLOTS, Totals};

/// The NACK code when the artifact could not be fetched for a reason retrying cannot fix.
pub const NACK_FETCH_FAILED: &str = "fetch_failed";

/// The NACK code when the artifact is larger than this edge's contract allows on the wire.
pub const NACK_TOO_LARGE: &str = "too_large";

/// The NACK code when the bytes fetched for a digest are another document.
pub const NACK_DIGEST_MISMATCH: &str = "digest_mismatch";

/// A death from the boot journal as the wire carries it.
pub fn death(d: &rampart_ingest::Death) -> rampart_api::Death {
    rampart_api::Death {
        detected_at_ms: d.detected_at_ms,
        active: d
            .active
            .map(|(version, digest)| rampart_api::Active { version, digest }),
        active_for_ms: d.active_for_ms,
        uptime_ms: Some(d.uptime_ms),
        cause: match d.cause {
            rampart_ingest::DeathCause::Panic => rampart_api::DeathCause::Panic,
            rampart_ingest::DeathCause::Exit { code } => rampart_api::DeathCause::Exit { code },
            rampart_ingest::DeathCause::Signal { signal } => {
                rampart_api::DeathCause::Signal { signal }
            }
            rampart_ingest::DeathCause::Unknown => rampart_api::DeathCause::Unknown,
        },
    }
}

/// The blessed list of an answer as the store takes it (at most
/// [`MAX_BLESSED`](rampart_api::limits::MAX_BLESSED) entries are read).
pub fn blessed(list: &[rampart_api::Active]) -> Vec<rampart_ingest::VersionDigest> {
    list.iter()
        .take(rampart_api::limits::MAX_BLESSED)
        .map(|a| rampart_ingest::VersionDigest {
            version: a.version,
            digest: a.digest,
        })
        .collect()
}

/// Counters and scores between `base` (the totals of the last delivered beat) and `now`.
pub fn deltas(now: &Totals, base: &Totals, restarts: u64) -> (BeatCounters, ScoreHistogram) {
    let counters = BeatCounters {
        requests: now.requests.saturating_sub(base.requests),
        errors_5xx: now.errors_5xx.saturating_sub(base.errors_5xx),
        module_errors: now.module_errors.saturating_sub(base.module_errors),
        restarts,
    };
    let slot = |i: usize| {
        let n = now.scores.get(i).copied().unwrap_or(0);
        n.saturating_sub(base.scores.get(i).copied().unwrap_or(0))
    };
    let scores = ScoreHistogram {
        buckets: (1..SCORE_SLOTS).map(slot).take(SCORE_BUCKETS).collect(),
        unscored: slot(0),
    };
    (counters, scores)
}

/// The verdict on `desired` after the store's `outcome`: ACK when that very digest serves,
/// NACK with the artifact issue codes (or the refusal code) otherwise.
pub fn verdict(desired: &Desired, outcome: &ApplyOutcome, at_ms: u64) -> ApplyReport {
    match outcome {
        ApplyOutcome::Applied { version, digest } | ApplyOutcome::Unchanged { version, digest }
            if *digest == desired.digest =>
        {
            ApplyReport::ack(desired.digest, *version, at_ms)
        }
        ApplyOutcome::Applied { .. } | ApplyOutcome::Unchanged { .. } => {
            nack_code(desired, NACK_DIGEST_MISMATCH, at_ms)
        }
        ApplyOutcome::Rejected { rejection, .. } => {
            if rejection.issues().is_empty() {
                nack_code(desired, rejection.code(), at_ms)
            } else {
                ApplyReport::nack(
                    desired.digest,
                    Some(desired.version),
                    rejection.issues(),
                    at_ms,
                )
            }
        }
    }
}

/// A NACK of `desired` with one refusal code.
pub fn nack_code(desired: &Desired, code: &str, at_ms: u64) -> ApplyReport {
    let mut report = ApplyReport::nack(desired.digest, Some(desired.version), &[], at_ms);
    report.issues.push(code.to_owned());
    report
}

/// The store's last refusal as a heartbeat carries it: bounded, one line.
pub fn rejection(last: &LastRejection) -> Rejection {
    Rejection {
        at_ms: last.at_ms,
        version: last.version,
        digest: None,
        code: one_line(last.code, MAX_MESSAGE_LEN),
        message: one_line(&last.message, MAX_MESSAGE_LEN),
        issues: last
            .issues
            .iter()
            .take(MAX_HEARTBEAT_ISSUES)
            .map(|issue| {
                let mut report = IssueReport::from(issue);
                report.message = one_line(&report.message, MAX_MESSAGE_LEN);
                report
            })
            .collect(),
    }
}

/// `text` without control characters, cut to at most `max` bytes on a char boundary: the
/// control plane refuses a heartbeat with a longer or multi-line message.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use rampart_artifact::{Digest, Issue};
    use rampart_ingest::{Channel, Rejection as StoreRejection};

    use super::*;

    #[test]
    fn a_death_goes_on_the_wire_with_its_cause_and_the_blessed_list_is_bounded() {
        let d = rampart_ingest::Death {
            detected_at_ms: 9,
            boot_at_ms: 1,
            active: Some((7, Digest::of(b"7"))),
            active_for_ms: Some(300_000),
            uptime_ms: 301_000,
            cause: rampart_ingest::DeathCause::Exit { code: 2 },
        };
        let wire = death(&d);
        assert_eq!(wire.detected_at_ms, 9);
        assert_eq!(wire.active.unwrap().version, 7);
        assert_eq!(wire.uptime_ms, Some(301_000));
        assert_eq!(wire.cause, rampart_api::DeathCause::Exit { code: 2 });
        let many: Vec<rampart_api::Active> = (0..20)
            .map(|v| rampart_api::Active {
                version: v,
                digest: Digest::of(&v.to_le_bytes()),
            })
            .collect();
        assert_eq!(blessed(&many).len(), rampart_api::limits::MAX_BLESSED);
        assert_eq!(blessed(&many)[0].version, 0, "newest first, as sent");
    }

    fn totals(requests: u64, score_50: u64, unscored: u64) -> Totals {
        let mut scores = [0; SCORE_SLOTS];
        scores[50] = score_50;
        scores[0] = unscored;
        Totals {
            requests,
            errors_5xx: requests / 10,
            module_errors: 1,
            scores,
        }
    }

    fn desired(n: u8) -> Desired {
        Desired {
            version: u64::from(n),
            digest: Digest::of(&[n]),
            fetch: String::new(),
        }
    }

    #[test]
    fn deltas_are_since_the_last_delivered_beat() {
        let (c, h) = deltas(&totals(100, 7, 3), &totals(40, 2, 1), 1);
        assert_eq!(
            (c.requests, c.errors_5xx, c.module_errors, c.restarts),
            (60, 6, 0, 1)
        );
        assert_eq!(h.buckets.len(), SCORE_BUCKETS);
        assert_eq!(h.buckets[49], 5, "score 50 sits in bucket 49");
        assert_eq!((h.unscored, h.total()), (2, 7));
        assert!(h.check().is_ok());
        // A counter that went backwards (it never does) gives 0, not a wrap.
        let (c, _) = deltas(&totals(1, 0, 0), &totals(5, 0, 0), 0);
        assert_eq!(c.requests, 0);
    }

    #[test]
    fn the_verdict_acks_only_the_desired_digest() {
        let d = desired(1);
        let ok = ApplyOutcome::Applied {
            version: 1,
            digest: d.digest,
        };
        let v = verdict(&d, &ok, 9);
        assert_eq!(v.verdict, rampart_api::AckNack::Ack);
        assert_eq!((v.version, v.at_ms), (Some(1), 9));
        let other = ApplyOutcome::Unchanged {
            version: 1,
            digest: Digest::of(b"other"),
        };
        assert_eq!(verdict(&d, &other, 9).issues, [NACK_DIGEST_MISMATCH]);
    }

    #[test]
    fn a_nack_carries_the_issue_codes_or_the_refusal_code() {
        let d = desired(2);
        let invalid = ApplyOutcome::Rejected {
            kept: None,
            rejection: StoreRejection::Invalid(vec![
                Issue::DuplicateName {
                    name: "\"ua\"".into(),
                    count: 2,
                },
                Issue::TooManyFeatures {
                    count: 240,
                    limit: 200,
                },
            ]),
        };
        let v = verdict(&d, &invalid, 1);
        assert_eq!(v.verdict, rampart_api::AckNack::Nack);
        assert_eq!(v.issues, ["duplicate_name", "too_many_features"]);
        let compile = ApplyOutcome::Rejected {
            kept: None,
            rejection: StoreRejection::Compile("no room".into()),
        };
        assert_eq!(verdict(&d, &compile, 1).issues, ["compile"]);
    }

    #[test]
    fn a_rejection_travels_on_one_bounded_line() {
        let last = LastRejection {
            at_ms: 5,
            channel: Channel::Control,
            version: Some(3),
            code: "invalid",
            message: format!("first\nsecond {}", "é".repeat(2000)),
            issues: vec![Issue::Empty; MAX_HEARTBEAT_ISSUES + 5],
        };
        let r = rejection(&last);
        assert!(!r.message.contains('\n'));
        assert!(r.message.len() <= MAX_MESSAGE_LEN);
        assert_eq!(r.issues.len(), MAX_HEARTBEAT_ISSUES);
        assert_eq!(r.code, "invalid");
        let mut beat = rampart_api::Heartbeat::empty(0);
        beat.last_rejection = Some(r);
        assert!(beat.check().is_ok());
    }
}
