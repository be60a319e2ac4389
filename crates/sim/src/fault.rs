//! Faults a scenario describes with `[[fault]]` entries, and the marks they leave on the files
//! the generator publishes.
//!
//! A fault starts at a time and rides on every file the generator publishes from then on (until
//! its optional end), so each layer meets it where it would in production: the generator's
//! guards and the control plane's validation see the file's content, the rollout sees the
//! heartbeats of the nodes that load it, the edge sees the process it runs in. Two families:
//!
//! - **In the data**: `duplicate_rows` is the fault of 18 November, in the ClickHouse cluster
//!   (the unscoped query returns every feature twice); `score_shift` with a number moves the
//!   file's own bias, so the real model moves every score of every node that loads it;
//!   `score_shift = "all_1"` sets the bias so low that every score is 1; `sign_flip` flips the
//!   sign of one weight (the most influential on the embedded sample unless named); `retrain`
//!   shifts every logit by its `shift`, as a retrain that moved the model would. These files
//!   pass every structural check: only judging their output (shadow scoring) or watching the
//!   scores of the nodes that serve them (the score-shift gate) can tell.
//! - **In the process**: `crash_after`, `error_rate`, `latency` and `score_shift = "all_0"` are
//!   bugs that a valid file triggers in the data plane (Azure Front Door, 29 October 2025). The
//!   file carries a [`Mark`]; a node the fault hits ([`Fault::hits`]) misbehaves while it serves
//!   a marked file. Such a file is still a *new* file: its bias moves by [`MARK_NUDGE`] per
//!   entry, which changes the digest and no score.
//!
//! # The decision that matters
//! **The mark is ground truth, never evidence.** No layer reads it: layers see only what the
//! node does (dies, fails requests, scores differently), exactly as they would in production.

use serde::{Deserialize, Serialize};

use crate::clock::{DAY, MINUTE, format_time};
use crate::source::Answer;

/// Most `[[fault]]` entries in a scenario (a node's hits are a bit set of this width).
pub const MAX_FAULTS: usize = 32;
/// Longest `crash_after`, in minutes (a day).
pub const MAX_CRASH_AFTER_MINUTES: f64 = 1_440.0;
/// Largest `latency`, in milliseconds.
pub const MAX_LATENCY_MS: u64 = 60_000;
/// Largest `score_shift` of the model's bias (logit units: 4 moves a 50 to about 98).
pub const MAX_SCORE_SHIFT: f64 = 20.0;
/// The bias of an `all_1` file: every score of the real model is 1 (the shadow tests' "every
/// score 1" file, `crates/fit/tests/shadow.rs`).
pub const ALL_ONE_BIAS: f64 = -999.0;
/// A `retrain` whose shift is below this (logit units) is the ordinary drift of a retrain, not
/// a fault: its file is not marked faulty (ground truth), so serving it is no exposure. 0.5
/// moves a score of 50 to 62.
pub const RETRAIN_FAULT_SHIFT: f64 = 0.5;
/// How much a process fault moves the bias of the file it rides on, per entry: enough to make
/// a new file (new digest, new content for the generator), far too little to move a score.
pub const MARK_NUDGE: f64 = 1e-9;

/// One `[[fault]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// When files start carrying it.
    pub at: u64,
    /// When files stop carrying it (`None`: never).
    pub until: Option<u64>,
    /// Share of edge nodes it hits (1: all).
    pub nodes: f64,
    /// Only nodes of this proxy kind (by position: the same nodes run FL in the naive fleet).
    pub proxy: Option<ProxyKind>,
    /// What it does.
    pub kind: FaultKind,
    /// What the report says about it.
    pub note: Option<String>,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultKind {
    /// The process dies this long after loading a marked file, and again after each reload.
    CrashAfter {
        /// Milliseconds from loading to death.
        after_ms: u64,
    },
    /// Scores move.
    ScoreShift {
        /// How.
        by: Shift,
    },
    /// This share of requests fails (5xx) on a node serving a marked file.
    ErrorRate {
        /// Share of requests, 0 to 1.
        share: f64,
    },
    /// Scoring is slowed by this much on a node serving a marked file.
    Latency {
        /// Milliseconds added to each request.
        ms: u64,
    },
    /// One weight of the file has its sign flipped (a retrain or an export bug), every node
    /// that loads it.
    SignFlip {
        /// The feature (the most influential on the embedded sample unless the scenario
        /// names one).
        feature: &'static str,
    },
    /// A retrain that shifts every logit by this much (the file's bias moves), every node that
    /// loads it. Ground truth calls it a fault only from [`RETRAIN_FAULT_SHIFT`].
    Retrain {
        /// Logit units.
        shift: f64,
    },
    /// The 18 November fault: ClickHouse nodes take a permission change one by one and the
    /// unscoped feature query returns every column twice (plus the shard-only ones).
    DuplicateRows {
        /// Time between two ClickHouse nodes taking the change.
        every_ms: u64,
        /// Columns only the shard tables have.
        extra_columns: u32,
    },
}

/// How a `score_shift` moves scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    /// The file's bias moves by this much (logit units): every node that loads it.
    Bias(f64),
    /// Every score is 0 on the nodes the fault hits (the old proxy of 18 November).
    AllZero,
    /// Every score is 1: the file's bias is [`ALL_ONE_BIAS`] (in the file: every node that
    /// loads it).
    AllOne,
}

/// A proxy kind a fault can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    /// The old proxy.
    Fl,
    /// The new proxy.
    Fl2,
}

/// The mark a process fault leaves on a published file: which entry, and what it does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    /// Index of the `[[fault]]` entry.
    pub fault: usize,
    /// What it does.
    pub kind: FaultKind,
}

/// What the marks of the file a node serves do to it, for the faults that hit it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Effect {
    /// Dies this long after loading the file.
    pub crash_after_ms: Option<u64>,
    /// Every score is 0.
    pub score_zero: bool,
    /// Share of requests that fail.
    pub error_share: f64,
    /// Milliseconds added to each request.
    pub latency_ms: u64,
}

/// A `[[fault]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    pub(crate) at: String,
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) until: Option<String>,
    #[serde(default)]
    pub(crate) nodes: Option<f64>,
    #[serde(default)]
    pub(crate) proxy: Option<ProxyKind>,
    #[serde(default)]
    pub(crate) note: Option<String>,
    #[serde(default)]
    pub(crate) minutes: Option<f64>,
    #[serde(default)]
    pub(crate) by: Option<RawShift>,
    #[serde(default)]
    pub(crate) share: Option<f64>,
    #[serde(default)]
    pub(crate) ms: Option<u64>,
    #[serde(default)]
    pub(crate) every: Option<String>,
    #[serde(default)]
    pub(crate) extra_columns: Option<u32>,
    #[serde(default)]
    pub(crate) feature: Option<String>,
    #[serde(default)]
    pub(crate) shift: Option<f64>,
}

/// `by = 1.5` or `by = "all_0"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawShift {
    Number(f64),
    Word(String),
}

/// Every kind, for error messages.
pub const KINDS: &str =
    "crash_after, score_shift, error_rate, latency, duplicate_rows, sign_flip, retrain";

// === impl Fault ===

impl Fault {
    /// Whether files published at `at` carry it.
    pub fn active(&self, at: u64) -> bool {
        at >= self.at && self.until.is_none_or(|u| at < u)
    }

    /// Whether it is a process fault (a mark on the file), not a fault in the data.
    pub fn is_process_fault(&self) -> bool {
        !matches!(
            self.kind,
            FaultKind::DuplicateRows { .. }
                | FaultKind::ScoreShift {
                    by: Shift::Bias(_) | Shift::AllOne
                }
                | FaultKind::SignFlip { .. }
                | FaultKind::Retrain { .. }
        )
    }

    /// Whether it hits the node of fleet position `rank` (old proxy when `is_fl`), given a
    /// uniform draw `draw` in 0..1 made for this node and this entry.
    pub fn hits(&self, is_fl: bool, draw: f64) -> bool {
        let kind_ok = match self.proxy {
            None => true,
            Some(ProxyKind::Fl) => is_fl,
            Some(ProxyKind::Fl2) => !is_fl,
        };
        kind_ok && draw < self.nodes
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            FaultKind::CrashAfter { after_ms } => format!(
                "the process dies {} after loading the file",
                minutes_text(after_ms)
            ),
            FaultKind::ScoreShift {
                by: Shift::Bias(by),
            } => format!("the file's bias moves by {by:+}"),
            FaultKind::ScoreShift { by: Shift::AllZero } => "every score is 0".to_owned(),
            FaultKind::ScoreShift { by: Shift::AllOne } => {
                format!("every score is 1 (the file's bias is {ALL_ONE_BIAS})")
            }
            FaultKind::SignFlip { feature } => {
                format!("the weight of {feature} has its sign flipped")
            }
            FaultKind::Retrain { shift } if shift.abs() < RETRAIN_FAULT_SHIFT => {
                format!("a retrain shifts every logit by {shift:+} (within a retrain's drift)")
            }
            FaultKind::Retrain { shift } => {
                format!("a retrain shifts every logit by {shift:+}")
            }
            FaultKind::ErrorRate { share } => {
                format!("{:.1}% of requests fail", share * 100.0)
            }
            FaultKind::Latency { ms } => format!("scoring is {ms} ms slower"),
            FaultKind::DuplicateRows { .. } => {
                "ClickHouse returns every feature twice to the unscoped query".to_owned()
            }
        };
        let whom = match (self.proxy, self.nodes >= 1.0) {
            (None, true) => "every node".to_owned(),
            (None, false) => format!("{:.0}% of nodes", self.nodes * 100.0),
            (Some(k), true) => format!("every {k:?} node"),
            (Some(k), false) => format!("{:.0}% of {k:?} nodes", self.nodes * 100.0),
        };
        let until = self
            .until
            .map(|u| format!(" until {}", format_time(u)))
            .unwrap_or_default();
        format!("from {}{until}: {what} ({whom})", format_time(self.at))
    }
}

fn minutes_text(ms: u64) -> String {
    if ms.is_multiple_of(MINUTE) {
        format!("{} min", ms / MINUTE)
    } else {
        format!("{:.1} min", ms as f64 / MINUTE as f64)
    }
}

// === impl Effect ===

impl Effect {
    /// The effect of `marks` on a node whose hits are `hits` (bit `i`: entry `i` hits it).
    pub fn of(marks: &[Mark], hits: u32) -> Effect {
        let mut e = Effect::default();
        for m in marks {
            if m.fault >= MAX_FAULTS || hits & (1 << m.fault) == 0 {
                continue;
            }
            match m.kind {
                FaultKind::CrashAfter { after_ms } => {
                    e.crash_after_ms = Some(e.crash_after_ms.map_or(after_ms, |a| a.min(after_ms)));
                }
                FaultKind::ScoreShift { by: Shift::AllZero } => e.score_zero = true,
                FaultKind::ErrorRate { share } => e.error_share = e.error_share.max(share),
                FaultKind::Latency { ms } => e.latency_ms = e.latency_ms.saturating_add(ms),
                FaultKind::ScoreShift { .. }
                | FaultKind::DuplicateRows { .. }
                | FaultKind::SignFlip { .. }
                | FaultKind::Retrain { .. } => {}
            }
        }
        e
    }

    /// Whether it changes anything.
    pub fn is_none(&self) -> bool {
        *self == Effect::default()
    }
}

/// The faults of `faults` that ride on a file published at `at`: the answer's content moves
/// (bias nudge or shift), it is marked faulty, and the process faults' marks are returned.
pub fn apply(faults: &[Fault], answer: &mut Answer, at: u64) {
    for (i, f) in faults.iter().enumerate() {
        if !f.active(at) {
            continue;
        }
        match f.kind {
            // In the cluster: the source answers it (see `Source::answer`).
            FaultKind::DuplicateRows { .. } => {}
            FaultKind::ScoreShift {
                by: Shift::Bias(by),
            } => {
                answer.bias += by;
                answer.faulty = true;
            }
            FaultKind::ScoreShift { by: Shift::AllOne } => {
                answer.bias = ALL_ONE_BIAS;
                answer.faulty = true;
            }
            FaultKind::SignFlip { feature } => {
                if let Some(f) = answer.features.iter_mut().find(|f| f.name == feature)
                    && f.weight != 0.0
                {
                    f.weight = -f.weight;
                    answer.faulty = true;
                }
            }
            FaultKind::Retrain { shift } => {
                answer.bias += shift;
                answer.faulty |= shift.abs() >= RETRAIN_FAULT_SHIFT;
            }
            kind => {
                answer.bias += MARK_NUDGE * (i as f64 + 1.0);
                answer.faulty = true;
                answer.marks.push(Mark { fault: i, kind });
            }
        }
    }
}

/// Checks one entry; `field` names it in errors (`fault[2]`).
pub(crate) fn check(
    raw: RawFault,
    field: &str,
    parse_time: impl Fn(&str, &str) -> Result<u64, crate::scenario::ScenarioError>,
    parse_duration: impl Fn(&str, &str) -> Result<u64, crate::scenario::ScenarioError>,
) -> Result<Fault, crate::scenario::ScenarioError> {
    let err = |name: &str, problem: String| crate::scenario::ScenarioError::Bound {
        field: format!("{field}.{name}"),
        problem,
    };
    let at = parse_time(&format!("{field}.at"), &raw.at)?;
    let until = raw
        .until
        .as_deref()
        .map(|u| parse_time(&format!("{field}.until"), u))
        .transpose()?;
    if until.is_some_and(|u| u <= at || u >= DAY) {
        return Err(err(
            "until",
            "must be after `at`, on the same day".to_owned(),
        ));
    }
    let nodes = raw.nodes.unwrap_or(1.0);
    if !(nodes.is_finite() && nodes > 0.0 && nodes <= 1.0) {
        return Err(err(
            "nodes",
            "must be a share of nodes above 0 and at most 1".to_owned(),
        ));
    }
    if let Some(n) = &raw.note
        && n.len() > 512
    {
        return Err(err("note", "must be at most 512 bytes".to_owned()));
    }
    // Fields that only some kinds read: a field another kind reads is a mistake, not a no-op.
    let given: [(&str, bool); 8] = [
        ("minutes", raw.minutes.is_some()),
        ("by", raw.by.is_some()),
        ("share", raw.share.is_some()),
        ("ms", raw.ms.is_some()),
        ("every", raw.every.is_some()),
        ("extra_columns", raw.extra_columns.is_some()),
        ("feature", raw.feature.is_some()),
        ("shift", raw.shift.is_some()),
    ];
    let reads: &[&str] = match raw.kind.as_str() {
        "crash_after" => &["minutes"],
        "score_shift" => &["by"],
        "error_rate" => &["share"],
        "latency" => &["ms"],
        "duplicate_rows" => &["every", "extra_columns"],
        "sign_flip" => &["feature"],
        "retrain" => &["shift"],
        other => {
            return Err(err("kind", format!("{other:?} is not one of {KINDS}")));
        }
    };
    for (name, present) in given {
        if present && !reads.contains(&name) {
            return Err(err(name, format!("does not apply to kind {:?}", raw.kind)));
        }
    }
    let required = |name: &str| err(name, format!("is required for kind {:?}", raw.kind));
    let kind = match raw.kind.as_str() {
        "crash_after" => {
            let m = raw.minutes.ok_or_else(|| required("minutes"))?;
            if !(m.is_finite() && m > 0.0 && m <= MAX_CRASH_AFTER_MINUTES) {
                return Err(err(
                    "minutes",
                    format!("must be above 0 and at most {MAX_CRASH_AFTER_MINUTES}"),
                ));
            }
            FaultKind::CrashAfter {
                after_ms: (m * MINUTE as f64).round() as u64,
            }
        }
        "score_shift" => {
            let by = match raw.by.ok_or_else(|| required("by"))? {
                RawShift::Number(b) if b.is_finite() && b != 0.0 && b.abs() <= MAX_SCORE_SHIFT => {
                    Shift::Bias(b)
                }
                RawShift::Number(_) => {
                    return Err(err(
                        "by",
                        format!("must be a non-zero shift of at most {MAX_SCORE_SHIFT} either way"),
                    ));
                }
                RawShift::Word(w) if w == "all_0" => Shift::AllZero,
                RawShift::Word(w) if w == "all_1" => Shift::AllOne,
                RawShift::Word(w) => {
                    return Err(err(
                        "by",
                        format!("{w:?} is neither a number nor \"all_0\" nor \"all_1\""),
                    ));
                }
            };
            if matches!(by, Shift::Bias(_) | Shift::AllOne) && (nodes < 1.0 || raw.proxy.is_some())
            {
                return Err(err(
                    "nodes",
                    "a numeric score_shift is in the file itself: it hits every node that \
                     loads it, so `nodes` must be 1 and `proxy` unset (use by = \"all_0\" for a \
                     per-node fault)"
                        .to_owned(),
                ));
            }
            FaultKind::ScoreShift { by }
        }
        "error_rate" => {
            let share = raw.share.ok_or_else(|| required("share"))?;
            if !(share.is_finite() && share > 0.0 && share <= 1.0) {
                return Err(err(
                    "share",
                    "must be a share of requests above 0 and at most 1".to_owned(),
                ));
            }
            FaultKind::ErrorRate { share }
        }
        "sign_flip" | "retrain" if nodes < 1.0 || raw.proxy.is_some() => {
            return Err(err(
                "nodes",
                format!(
                    "{} is in the file itself: it hits every node that loads it, so `nodes` \
                     must be 1 and `proxy` unset",
                    raw.kind
                ),
            ));
        }
        "sign_flip" => {
            let feature = match raw.feature.as_deref() {
                Some(name) => rampart_score::FeatureId::from_name(name)
                    .map(rampart_score::FeatureId::name)
                    .ok_or_else(|| {
                        err(
                            "feature",
                            format!("{name:?} is not a feature of the edge's catalog"),
                        )
                    })?,
                None => most_influential().map_err(|e| err("feature", e))?,
            };
            FaultKind::SignFlip { feature }
        }
        "retrain" => {
            let shift = raw.shift.ok_or_else(|| required("shift"))?;
            if !(shift.is_finite() && shift != 0.0 && shift.abs() <= MAX_SCORE_SHIFT) {
                return Err(err(
                    "shift",
                    format!("must be a non-zero shift of at most {MAX_SCORE_SHIFT} either way"),
                ));
            }
            FaultKind::Retrain { shift }
        }
        "latency" => {
            let ms = raw.ms.ok_or_else(|| required("ms"))?;
            if ms == 0 || ms > MAX_LATENCY_MS {
                return Err(err("ms", format!("must be 1 to {MAX_LATENCY_MS}")));
            }
            FaultKind::Latency { ms }
        }
        _ => {
            if nodes < 1.0 || raw.proxy.is_some() || until.is_some() {
                return Err(err(
                    "nodes",
                    "duplicate_rows is in the ClickHouse cluster, not in the nodes: every \
                     proxy that loads the file meets it (FL2 panics, FL scores 0), and the \
                     cluster does not take the change back; `nodes`, `proxy` and `until` do \
                     not apply"
                        .to_owned(),
                ));
            }
            let every_ms = parse_duration(
                &format!("{field}.every"),
                raw.every.as_deref().unwrap_or("5m"),
            )?;
            FaultKind::DuplicateRows {
                every_ms,
                extra_columns: raw.extra_columns.unwrap_or(0),
            }
        }
    };
    Ok(Fault {
        at,
        until,
        nodes,
        proxy: raw.proxy,
        kind,
        note: raw.note,
    })
}

/// The feature whose weight moves the embedded model's scores most on the embedded labelled
/// sample (shadow scoring's): influence is |weight| × mean |value| (a rare flag with a large
/// raw weight moves few requests). Computed once.
pub fn most_influential() -> Result<&'static str, String> {
    static TOP: std::sync::OnceLock<Result<&'static str, String>> = std::sync::OnceLock::new();
    TOP.get_or_init(|| {
        let catalog = rampart_generate::Catalog::embedded().map_err(|e| e.to_string())?;
        let profiles = rampart_traffic::Profiles::embedded().map_err(|e| e.to_string())?;
        let ds =
            rampart_fit::dataset::Dataset::build(&profiles, rampart_fit::shadow::EMBEDDED_SEED);
        let rows = ds.rows.len().max(1) as f64;
        catalog
            .features
            .iter()
            .filter_map(|f| {
                let id = rampart_score::FeatureId::from_name(&f.name)?;
                let mean = ds
                    .rows
                    .iter()
                    .map(|r| r.get(id.index()).map_or(0.0, |v| f64::from(*v).abs()))
                    .sum::<f64>()
                    / rows;
                Some((id.name(), f.weight.abs() * mean))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(name, _)| name)
            .ok_or_else(|| "the embedded catalog has no feature of the edge's".to_owned())
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_time_of_day;
    use crate::scenario::{NOV18, Scenario};

    const BASE: &str = "name='x'\ntitle='t'\ndate='2025-10-29'\nstart='15:00'\nend='16:00'\n[fleet]\npops=10\nnodes_per_pop=2\n";

    fn with(fault: &str) -> Result<Scenario, crate::scenario::ScenarioError> {
        Scenario::from_toml(&format!("{BASE}[[fault]]\nat='15:10'\n{fault}"))
    }

    #[test]
    fn every_kind_parses() {
        let kinds = [
            (
                "kind='crash_after'\nminutes=5\n",
                FaultKind::CrashAfter {
                    after_ms: 5 * MINUTE,
                },
            ),
            (
                "kind='score_shift'\nby=-2.5\n",
                FaultKind::ScoreShift {
                    by: Shift::Bias(-2.5),
                },
            ),
            (
                "kind='score_shift'\nby='all_0'\nnodes=0.5\nproxy='fl'\n",
                FaultKind::ScoreShift { by: Shift::AllZero },
            ),
            (
                "kind='error_rate'\nshare=0.3\n",
                FaultKind::ErrorRate { share: 0.3 },
            ),
            (
                "kind='latency'\nms=250\nuntil='15:30'\n",
                FaultKind::Latency { ms: 250 },
            ),
            (
                "kind='duplicate_rows'\nevery='5m'\nextra_columns=90\n",
                FaultKind::DuplicateRows {
                    every_ms: 5 * MINUTE,
                    extra_columns: 90,
                },
            ),
        ];
        for (text, kind) in kinds {
            let s = with(text).unwrap();
            assert_eq!(s.faults.len(), 1, "{text}");
            assert_eq!(s.faults[0].kind, kind, "{text}");
            assert_eq!(s.faults[0].at, parse_time_of_day("15:10").unwrap());
        }
        let s = with("kind='score_shift'\nby='all_0'\nnodes=0.5\nproxy='fl'\n").unwrap();
        assert_eq!(s.faults[0].nodes, 0.5);
        assert_eq!(s.faults[0].proxy, Some(ProxyKind::Fl));
    }

    #[test]
    fn the_kinds_that_ride_in_the_file_parse_and_change_its_content() {
        let s = with("kind='score_shift'\nby='all_1'\n").unwrap();
        assert_eq!(
            s.faults[0].kind,
            FaultKind::ScoreShift { by: Shift::AllOne }
        );
        let s = with("kind='sign_flip'\nfeature='ua_length'\n").unwrap();
        assert_eq!(
            s.faults[0].kind,
            FaultKind::SignFlip {
                feature: "ua_length"
            }
        );
        // Unnamed: the most influential on the embedded sample (docs/shadow.md names it).
        let s = with("kind='sign_flip'\n").unwrap();
        assert_eq!(
            s.faults[0].kind,
            FaultKind::SignFlip {
                feature: "hdr_host_first"
            }
        );
        let s = with("kind='retrain'\nshift=0.05\n").unwrap();
        assert_eq!(s.faults[0].kind, FaultKind::Retrain { shift: 0.05 });
        for (text, field, problem) in [
            (
                "kind='sign_flip'\nfeature='nope'\n",
                "feature",
                "not a feature",
            ),
            (
                "kind='sign_flip'\nnodes=0.5\n",
                "nodes",
                "in the file itself",
            ),
            ("kind='retrain'\n", "shift", "required"),
            ("kind='retrain'\nshift=0\n", "shift", "non-zero"),
            (
                "kind='retrain'\nshift=0.1\nproxy='fl'\n",
                "nodes",
                "in the file",
            ),
            ("kind='retrain'\nshift=0.1\nby=2\n", "by", "does not apply"),
            (
                "kind='score_shift'\nby='all_1'\nnodes=0.5\n",
                "nodes",
                "in the file",
            ),
        ] {
            let msg = with(text).unwrap_err().to_string();
            assert!(
                msg.contains(&format!("fault[0].{field}")) && msg.contains(problem),
                "{text:?}: {msg}"
            );
        }

        let at = |hm| parse_time_of_day(hm).unwrap();
        let answer = |fault: &str| {
            let s = with(fault).unwrap();
            let src = crate::source::Source::new(&s).unwrap();
            let clean = src.answer("", 0, at("15:20"));
            let mut a = clean.clone();
            apply(&s.faults, &mut a, at("15:20"));
            (clean, a)
        };
        let (clean, a) = answer("kind='score_shift'\nby='all_1'\n");
        assert!(a.faulty && a.marks.is_empty() && a.features == clean.features);
        assert_eq!(a.bias, ALL_ONE_BIAS);
        let (clean, a) = answer("kind='sign_flip'\n");
        assert!(a.faulty && a.marks.is_empty() && a.bias == clean.bias);
        let changed: Vec<_> = clean
            .features
            .iter()
            .zip(&a.features)
            .filter(|(c, f)| c.weight != f.weight)
            .collect();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0.name, "hdr_host_first");
        assert_eq!(changed[0].1.weight, -changed[0].0.weight);
        // A small retrain is a new file but not a fault; a large one is.
        let (clean, a) = answer("kind='retrain'\nshift=0.05\n");
        assert!(!a.faulty && a.bias == clean.bias + 0.05);
        let (_, a) = answer("kind='retrain'\nshift=-2\n");
        assert!(a.faulty);
    }

    #[test]
    fn bad_entries_name_their_field_and_problem() {
        for (text, field, problem) in [
            ("kind='explode'\n", "fault[0].kind", "not one of"),
            ("kind='crash_after'\n", "fault[0].minutes", "required"),
            (
                "kind='crash_after'\nminutes=0\n",
                "fault[0].minutes",
                "above 0",
            ),
            (
                "kind='crash_after'\nminutes=5\nnodes=1.5\n",
                "fault[0].nodes",
                "share",
            ),
            (
                "kind='crash_after'\nminutes=5\nnodes=0\n",
                "fault[0].nodes",
                "share",
            ),
            ("kind='error_rate'\nshare=-0.1\n", "fault[0].share", "share"),
            ("kind='error_rate'\nshare=2\n", "fault[0].share", "share"),
            (
                "kind='error_rate'\nshare=0.1\nms=5\n",
                "fault[0].ms",
                "does not apply",
            ),
            ("kind='latency'\nms=0\n", "fault[0].ms", "1 to"),
            ("kind='score_shift'\nby='some'\n", "fault[0].by", "all_0"),
            (
                "kind='score_shift'\nby=2\nnodes=0.5\n",
                "fault[0].nodes",
                "in the file itself",
            ),
            (
                "kind='duplicate_rows'\nproxy='fl2'\n",
                "fault[0].nodes",
                "ClickHouse",
            ),
            (
                "kind='latency'\nms=5\nuntil='15:00'\n",
                "fault[0].until",
                "after",
            ),
        ] {
            let msg = with(text).unwrap_err().to_string();
            assert!(
                msg.contains(field) && msg.contains(problem),
                "{text:?}: {msg}"
            );
        }
        let msg = with("kind='latency'\nms=5\nspeed=3\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unknown field `speed`"), "{msg}");
        let twice = format!(
            "{BASE}[clickhouse]\nchange_from='15:05'\n[[fault]]\nat='15:10'\nkind='duplicate_rows'\n"
        );
        let msg = Scenario::from_toml(&twice).unwrap_err().to_string();
        assert!(msg.contains("say the same thing"), "{msg}");
    }

    #[test]
    fn nov18_written_as_a_duplicate_rows_fault_is_the_same_day() {
        let legacy = Scenario::from_toml(NOV18).unwrap();
        let rewritten = NOV18
            .replace("change_from = \"11:05\"\n", "")
            .replace("change_every = \"5m\"\n", "")
            .replace("r0_only_columns = 90\n", "")
            + "\n[[fault]]\nat = \"11:05\"\nkind = \"duplicate_rows\"\nevery = \"5m\"\nextra_columns = 90\n";
        let s = Scenario::from_toml(&rewritten).unwrap();
        assert_eq!(s.clickhouse, legacy.clickhouse);
        assert_eq!(s.faults.len(), 1);
        assert!(!s.faults[0].is_process_fault());
    }

    #[test]
    fn process_faults_mark_the_file_and_move_no_score() {
        let s = with("kind='crash_after'\nminutes=5\nuntil='15:40'\n").unwrap();
        let src = crate::source::Source::new(&s).unwrap();
        let at = |hm| parse_time_of_day(hm).unwrap();
        let mut before = src.answer("", 0, at("15:05"));
        apply(&s.faults, &mut before, at("15:05"));
        assert!(!before.faulty && before.marks.is_empty());
        let mut during = src.answer("", 0, at("15:10"));
        apply(&s.faults, &mut during, at("15:10"));
        assert!(during.faulty);
        assert_eq!(during.marks.len(), 1);
        assert!(during.bias != before.bias && (during.bias - before.bias).abs() < 1e-6);
        let mut after = src.answer("", 0, at("15:40"));
        apply(&s.faults, &mut after, at("15:40"));
        assert!(!after.faulty);
    }

    #[test]
    fn a_numeric_score_shift_is_in_the_files_content() {
        let s = with("kind='score_shift'\nby=3\n").unwrap();
        let src = crate::source::Source::new(&s).unwrap();
        let t = parse_time_of_day("15:20").unwrap();
        let mut a = src.answer("", 0, t);
        let bias = a.bias;
        apply(&s.faults, &mut a, t);
        assert!(a.faulty && a.marks.is_empty());
        assert_eq!(a.bias, bias + 3.0);
    }

    #[test]
    fn an_effect_applies_only_to_the_nodes_hit() {
        let marks = [
            Mark {
                fault: 0,
                kind: FaultKind::CrashAfter {
                    after_ms: 5 * MINUTE,
                },
            },
            Mark {
                fault: 1,
                kind: FaultKind::ErrorRate { share: 0.25 },
            },
        ];
        assert!(Effect::of(&marks, 0).is_none());
        let e = Effect::of(&marks, 0b10);
        assert_eq!((e.crash_after_ms, e.error_share), (None, 0.25));
        let e = Effect::of(&marks, 0b11);
        assert_eq!(e.crash_after_ms, Some(5 * MINUTE));
        let f = with("kind='latency'\nms=5\nnodes=0.5\nproxy='fl2'\n")
            .unwrap()
            .faults
            .remove(0);
        assert!(f.hits(false, 0.2));
        assert!(!f.hits(false, 0.7));
        assert!(!f.hits(true, 0.2));
    }
}
