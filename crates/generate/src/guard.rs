//! The producer guards: pure functions from a candidate (and what came before) to refusals.
//! Nothing is published while any guard refuses; every refusal of a run is reported at once.
//!
//! | guard | refuses when | until |
//! |---|---|---|
//! | [`duplicates`] | a name appears twice (never deduplicated: it means the query is wrong) | the source is fixed |
//! | [`weights`] | a feature has no weight | the weights are fixed |
//! | [`contracts`] | any consumer contract refuses the document | the source is fixed |
//! | [`delta`] | count ratio > [`MAX_COUNT_RATIO`] or < [`MIN_COUNT_RATIO`], or more than [`MAX_NAME_CHURN`] of names changed, against the last published file | `--approve-delta` |
//! | [`flapping`] | a content digest comes back after a different one within [`FLAP_WINDOW`] runs (A, B, A) | `--unfreeze` |

use std::collections::HashMap;
use std::fmt;

use rampart_artifact::{Contract, Diff, Digest, Document, Feature, Issue, validate};
use serde::Serialize;

/// The delta guard holds a file whose feature count is more than this times the last
/// published count (60 → 91 is held; 18 November doubled it).
pub const MAX_COUNT_RATIO: f64 = 1.5;

/// The delta guard holds a file whose feature count is less than this times the last
/// published count (60 → 40 is held).
pub const MIN_COUNT_RATIO: f64 = 0.67;

/// The delta guard holds a file in which more than this share of the last published names
/// were added or removed (`max(added, removed) / old count`; 13 of 60 is held).
pub const MAX_NAME_CHURN: f64 = 0.20;

/// Runs the flapping guard looks back over, the current one included: six runs are half an
/// hour at the five-minute cadence, long enough to see good, bad, good.
pub const FLAP_WINDOW: usize = 6;

/// Why a candidate is not published.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
pub enum Refusal {
    /// Names that appear more than once, with their counts.
    Duplicates {
        /// `(name, count)` in first-seen order.
        names: Vec<(String, usize)>,
    },
    /// Features the weights do not cover.
    Weights {
        /// The names.
        missing: Vec<String>,
    },
    /// A consumer contract refused the document.
    Contract {
        /// The consumer.
        consumer: String,
        /// Every issue it found.
        issues: Vec<Issue>,
    },
    /// The file changed too much against the last published one.
    Delta {
        /// Features in the last published file.
        old_count: usize,
        /// Features in the candidate.
        new_count: usize,
        /// Names added.
        added: usize,
        /// Names removed.
        removed: usize,
    },
    /// The content came back to an earlier state after a different one.
    Flapping {
        /// The content digests of the runs in the window, oldest first, current last.
        digests: Vec<Digest>,
    },
    /// Publishing was frozen by an earlier run.
    Frozen {
        /// When it was frozen (RFC 3339).
        since: String,
        /// Why.
        reason: String,
    },
    /// The candidate's output, scored on a sample beside the published file's, moved beyond
    /// policy ([`OutputCheck`](crate::job::OutputCheck), shadow scoring in the `rampart`
    /// binary).
    Shadow {
        /// Every reason, with its numbers.
        reasons: Vec<String>,
    },
    /// The control plane refused the file (`--publish`): it checks every registered edge's
    /// contract, which the generator may not know.
    ControlPlane {
        /// The HTTP status (422 invalid, 409 marked bad, 413 too large).
        status: u16,
        /// The API's error code.
        error: String,
        /// Its message.
        message: String,
        /// Every issue it found.
        issues: Vec<rampart_api::IssueReport>,
    },
}

// === impl Refusal ===

impl Refusal {
    /// The guard's name (`duplicates`, `contract`, `delta`…), for logs and counters.
    pub fn guard(&self) -> &'static str {
        match self {
            Refusal::Duplicates { .. } => "duplicates",
            Refusal::Weights { .. } => "weights",
            Refusal::Contract { .. } => "contract",
            Refusal::Delta { .. } => "delta",
            Refusal::Flapping { .. } => "flapping",
            Refusal::Frozen { .. } => "frozen",
            Refusal::Shadow { .. } => "shadow",
            Refusal::ControlPlane { .. } => "control_plane",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Duplicates { names } => {
                let shown: Vec<String> = names
                    .iter()
                    .take(8)
                    .map(|(n, c)| format!("{n} x{c}"))
                    .collect();
                let more = names.len().saturating_sub(8);
                write!(
                    f,
                    "duplicates: {} feature names appear more than once ({}{}); the query or the data is wrong (an unscoped system.columns query returns one row per database)",
                    names.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(", and {more} more")
                    } else {
                        String::new()
                    }
                )
            }
            Refusal::Weights { missing } => write!(
                f,
                "weights: {} features have no weight: {}",
                missing.len(),
                list(missing, 8)
            ),
            Refusal::Contract { consumer, issues } => {
                let shown: Vec<String> = issues.iter().take(5).map(|i| i.to_string()).collect();
                write!(
                    f,
                    "contract: consumer {consumer} refuses the file ({} issues): {}",
                    issues.len(),
                    shown.join("; ")
                )
            }
            Refusal::Delta {
                old_count,
                new_count,
                added,
                removed,
            } => write!(
                f,
                "delta: {old_count} -> {new_count} features (ratio {:.2}, allowed {MIN_COUNT_RATIO}..{MAX_COUNT_RATIO}), {added} names added and {removed} removed (churn {:.0}%, allowed {:.0}%); held until a run with --approve-delta",
                ratio(*old_count, *new_count),
                churn(*old_count, *added, *removed) * 100.0,
                MAX_NAME_CHURN * 100.0
            ),
            Refusal::Flapping { digests } => {
                let shown: Vec<String> = digests.iter().map(Digest::short).collect();
                write!(
                    f,
                    "flapping: the feature set went back to an earlier state within {FLAP_WINDOW} runs ({}); publishing is frozen until a run with --unfreeze. Find why the source alternates (a partial rollout on the database nodes?) before unfreezing",
                    shown.join(" -> ")
                )
            }
            Refusal::Shadow { reasons } => write!(
                f,
                "shadow: scored beside the published file, the candidate moves beyond policy: {}; held until a run with --approve-shadow",
                reasons.join("; ")
            ),
            Refusal::Frozen { since, reason } => write!(
                f,
                "frozen: publishing has been frozen since {since} ({reason}); run with --unfreeze once the source is stable"
            ),
            Refusal::ControlPlane {
                status,
                error,
                message,
                issues,
            } => {
                write!(f, "control plane: refused ({status} {error}): {message}")?;
                for issue in issues {
                    write!(f, "\n      {}: {}", issue.code, issue.message)?;
                }
                Ok(())
            }
        }
    }
}

/// Duplicate names: an error, never deduplicated.
pub fn duplicates(features: &[Feature]) -> Option<Refusal> {
    let mut counts: HashMap<&str, usize> = HashMap::with_capacity(features.len());
    let mut order = Vec::new();
    for f in features {
        let c = counts.entry(f.name.as_str()).or_insert(0);
        if *c == 1 {
            order.push(f.name.as_str());
        }
        *c += 1;
    }
    if order.is_empty() {
        return None;
    }
    Some(Refusal::Duplicates {
        names: order
            .into_iter()
            .map(|n| (n.to_owned(), counts.get(n).copied().unwrap_or(0)))
            .collect(),
    })
}

/// Features without a weight.
pub fn weights(unweighted: &[String]) -> Option<Refusal> {
    (!unweighted.is_empty()).then(|| Refusal::Weights {
        missing: unweighted.to_vec(),
    })
}

/// Every contract must accept the document (with the last published one as the version it
/// replaces). One refusal per refusing consumer.
pub fn contracts(
    document: &Document,
    contracts: &[Contract],
    previous: Option<&Document>,
) -> Vec<Refusal> {
    contracts
        .iter()
        .filter_map(|c| {
            validate(document, c, previous)
                .err()
                .map(|issues| Refusal::Contract {
                    consumer: c.consumer().to_owned(),
                    issues,
                })
        })
        .collect()
}

/// The delta guard: the candidate against the last published file (none: nothing to compare,
/// the first file passes).
pub fn delta(previous: Option<&Document>, candidate: &Document) -> Option<Refusal> {
    let previous = previous?;
    let d = Diff::between(previous, candidate);
    let r = d.count_ratio();
    let held = !(MIN_COUNT_RATIO..=MAX_COUNT_RATIO).contains(&r) || d.name_churn() > MAX_NAME_CHURN;
    held.then_some(Refusal::Delta {
        old_count: d.old_count,
        new_count: d.new_count,
        added: d.added.len(),
        removed: d.removed.len(),
    })
}

/// The flapping guard: `history` holds the content digests of earlier runs (oldest first);
/// the candidate flaps when its digest appears among the last `FLAP_WINDOW - 1` of them with a
/// different digest after it (A, B, A).
pub fn flapping(history: &[Digest], candidate: Digest) -> Option<Refusal> {
    let start = history.len().saturating_sub(FLAP_WINDOW - 1);
    let window = history.get(start..).unwrap_or(&[]);
    let last_same = window.iter().rposition(|d| *d == candidate)?;
    let changed_since = window
        .get(last_same + 1..)
        .is_some_and(|after| after.iter().any(|d| *d != candidate));
    changed_since.then(|| {
        let mut digests = window.to_vec();
        digests.push(candidate);
        Refusal::Flapping { digests }
    })
}

/// The digest of what a scorer reads (features with types and weights, and the bias): the
/// same content gives the same digest whatever its version, time and provenance.
pub fn content_digest(features: &[Feature], bias: f64) -> Digest {
    #[derive(Serialize)]
    struct Content<'a> {
        bias: f64,
        features: &'a [Feature],
    }
    let bytes = serde_json::to_vec(&Content { bias, features }).unwrap_or_default();
    Digest::of(&bytes)
}

fn ratio(old: usize, new: usize) -> f64 {
    if old == 0 {
        f64::INFINITY
    } else {
        new as f64 / old as f64
    }
}

fn churn(old: usize, added: usize, removed: usize) -> f64 {
    if old == 0 {
        1.0
    } else {
        added.max(removed) as f64 / old as f64
    }
}

fn list(names: &[String], max: usize) -> String {
    let mut s = names
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > max {
        s.push_str(&format!(", and {} more", names.len() - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use rampart_artifact::testing;
    use rampart_score::edge_contract;

    use super::*;

    fn feature(name: &str) -> Feature {
        testing::feature(name, "UInt8", 0.5)
    }

    fn doc(names: &[String]) -> Document {
        testing::document(2, names.iter().map(|n| feature(n)).collect())
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f{i}")).collect()
    }

    #[test]
    fn duplicates_are_reported_with_counts_not_removed() {
        assert_eq!(duplicates(&[feature("a"), feature("b")]), None);
        let r = duplicates(&[
            feature("a"),
            feature("b"),
            feature("a"),
            feature("a"),
            feature("b"),
        ])
        .unwrap();
        assert_eq!(
            r,
            Refusal::Duplicates {
                names: vec![("a".into(), 3), ("b".into(), 2)]
            }
        );
        assert!(r.to_string().contains("a x3"), "{r}");
    }

    #[test]
    fn the_18_november_file_is_refused_by_the_edge_contract() {
        // Every catalog name twice, plus enough r0 columns to pass 200.
        let catalog: Vec<String> = rampart_score::CATALOG
            .iter()
            .map(|e| e.name.to_owned())
            .collect();
        let mut doubled = catalog.clone();
        doubled.extend(catalog.iter().cloned());
        doubled.extend(catalog.iter().cloned());
        let d = Document {
            features: doubled
                .iter()
                .map(|n| Feature {
                    name: n.clone(),
                    ty: rampart_score::lookup(n).unwrap().ty().into(),
                    weight: 0.1,
                })
                .collect(),
            ..doc(&[])
        };
        let refusals = contracts(&d, &[edge_contract()], None);
        assert_eq!(refusals.len(), 1);
        let Refusal::Contract { consumer, issues } = &refusals[0] else {
            panic!("{refusals:?}")
        };
        assert_eq!(consumer, "edge");
        assert!(
            issues
                .iter()
                .any(|i| matches!(i, Issue::TooManyFeatures { .. }))
        );
        assert!(
            issues
                .iter()
                .any(|i| matches!(i, Issue::DuplicateName { .. }))
        );
    }

    #[test]
    fn every_contract_is_asked_and_each_refusal_named() {
        let small = Contract::from_toml("consumer = \"small\"\nmax_features = 3").unwrap();
        let big = Contract::from_toml("consumer = \"big\"").unwrap();
        let d = doc(&names(5));
        let r = contracts(&d, &[big.clone(), small], None);
        assert_eq!(r.len(), 1);
        assert!(r[0].to_string().contains("consumer small"), "{}", r[0]);
        assert!(contracts(&d, &[big], None).is_empty());
    }

    #[test]
    fn weights_guard_lists_the_missing() {
        assert_eq!(weights(&[]), None);
        let r = weights(&["x".into()]).unwrap();
        assert_eq!(r.guard(), "weights");
    }

    #[test]
    fn delta_thresholds() {
        let old = doc(&names(60));
        assert_eq!(delta(None, &old), None, "the first file passes");
        // Count alone (repeats of known names add no new name): 60 -> 90 passes, 91 is held.
        let grown = |extra: usize| {
            let mut n = names(60);
            n.extend(names(extra));
            doc(&n)
        };
        assert_eq!(delta(Some(&old), &grown(30)), None, "1.5 exactly passes");
        assert!(delta(Some(&old), &grown(31)).is_some());
        // 60 -> 40: ratio 0.667 is held; 60 -> 41 (0.683) passes, when no name changed.
        let mut base = names(40);
        base.extend(names(20));
        let old2 = doc(&base);
        assert!(delta(Some(&old2), &doc(&names(40))).is_some());
        let mut n41 = names(40);
        n41.push("f0".into());
        assert_eq!(delta(Some(&old2), &doc(&n41)), None);
        assert!(delta(Some(&old), &doc(&names(100))).is_some());
        // Replace 12 of 60 names (20%): passes; 13: held.
        let swap = |k: usize| {
            let mut n = names(60);
            for (i, name) in n.iter_mut().enumerate().take(k) {
                *name = format!("g{i}");
            }
            doc(&n)
        };
        assert_eq!(delta(Some(&old), &swap(12)), None);
        let r = delta(Some(&old), &swap(13)).unwrap();
        assert_eq!(
            r,
            Refusal::Delta {
                old_count: 60,
                new_count: 60,
                added: 13,
                removed: 13
            }
        );
        assert!(r.to_string().contains("--approve-delta"));
    }

    #[test]
    fn delta_sees_a_doubling_by_duplicates() {
        let old = doc(&names(60));
        let mut twice = names(60);
        twice.extend(names(60));
        let r = delta(Some(&old), &doc(&twice)).unwrap();
        assert!(matches!(
            r,
            Refusal::Delta {
                new_count: 120,
                added: 0,
                ..
            }
        ));
    }

    #[test]
    fn flapping_is_a_return_after_a_change_within_the_window() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = Digest::of(b"c");
        assert_eq!(flapping(&[], a), None);
        assert_eq!(flapping(&[a, a, a], a), None, "steady");
        assert_eq!(flapping(&[a, b], c), None, "moving on");
        assert_eq!(flapping(&[a, b, b], b), None, "changed once");
        let r = flapping(&[a, b], a).unwrap();
        assert_eq!(
            r,
            Refusal::Flapping {
                digests: vec![a, b, a]
            }
        );
        assert!(flapping(&[a, a, b, b], a).is_some());
        // B then A five runs later: A left the window (the current run is the sixth).
        assert_eq!(flapping(&[a, b, b, b, b, b], a), None);
        assert!(flapping(&[a, b, b, b, b], a).is_some());
        assert!(r.to_string().contains("--unfreeze"));
    }

    #[test]
    fn content_digest_ignores_version_and_time_but_not_weights() {
        let d1 = doc(&names(3));
        let mut d2 = d1.clone();
        d2.version = 9;
        d2.created_at = "2030-01-01T00:00:00Z".into();
        assert_eq!(
            content_digest(&d1.features, d1.model.bias),
            content_digest(&d2.features, d2.model.bias)
        );
        d2.features[0].weight = 0.25;
        assert_ne!(
            content_digest(&d1.features, d1.model.bias),
            content_digest(&d2.features, d2.model.bias)
        );
        assert_ne!(
            content_digest(&d1.features, 0.0),
            content_digest(&d1.features, 1.0)
        );
    }
}
