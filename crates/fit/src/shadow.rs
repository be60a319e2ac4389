//! Shadow scoring: a candidate feature file and the serving one score the **same** sample of
//! requests before anyone is exposed to the candidate, and the difference is judged.
//!
//! Structural checks (contracts, limits, signatures) cannot see a valid file that scores
//! wrong: on 18 November the old proxy scored every request 0 with a file it accepted. The
//! score-shift gate catches such a file, but only after the canary's users were scored by it.
//! Here the sample is scored twice, offline:
//!
//! - the **distribution shift**, by the score-shift gate itself
//!   ([`rampart_rollout::gate::shift_gate`]: Kolmogorov–Smirnov D with its p-value, and the
//!   Mann–Whitney AUC for the direction), candidate against serving;
//! - the **verdict flips** at common block thresholds ([`THRESHOLDS`]): the share of requests
//!   a "block below T" rule would treat differently;
//! - on a **labelled** sample, precision and recall for bots (a bot is caught when its score is
//!   below the policy's threshold), before and after.
//!
//! A candidate beyond [`ShadowPolicy`] is **held**, with every number. The default sample is
//! the embedded labelled one ([`Sample::embedded`]: requests the traffic generator makes from
//! every browser and bot profile of the data, as the edge's extractors see them); a recorded
//! one is read from a file ([`Sample::from_jsonl`], format in `docs/shadow.md`).
//!
//! Scoring is the edge's own: each row becomes [`Features`] and [`Model::score`] gives the
//! score, so what is judged here is what the edge would answer.

use std::fmt::Write as _;

use rampart_rollout::gate::{ShiftLimits, Verdict, shift_gate};
use rampart_rollout::{Numbers, ScoreHistogram};
use rampart_score::catalog::COUNT;
use rampart_score::score::Score;
use rampart_score::{FeatureId, Features, Model};
use rampart_traffic::Profiles;
use serde::Serialize;

use crate::dataset::Dataset;

/// The block thresholds flips are counted at ("block scores below T").
pub const THRESHOLDS: [u8; 3] = [10, 30, 50];

/// The threshold precision and recall are measured at, and flips are judged at.
pub const DEFAULT_THRESHOLD: u8 = 30;

/// The largest share of requests whose verdict at the threshold may flip.
pub const DEFAULT_MAX_FLIP_SHARE: f64 = 0.02;

/// The largest drop of recall for bots (share of bots caught) a candidate may bring.
pub const DEFAULT_MAX_RECALL_DROP: f64 = 0.05;

/// The largest drop of precision for bots (share of blocked requests that are bots).
pub const DEFAULT_MAX_PRECISION_DROP: f64 = 0.05;

/// The most requests a sample may hold.
pub const MAX_SAMPLE: usize = 200_000;

/// The largest sample file read.
pub const MAX_SAMPLE_BYTES: u64 = 256 * 1024 * 1024;

/// The seed of the embedded labelled sample (the fit's own).
pub const EMBEDDED_SEED: u64 = 1;

/// What a candidate may change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShadowPolicy {
    /// The distribution test: the score-shift gate's thresholds (its defaults).
    pub shift: ShiftLimits,
    /// See [`DEFAULT_THRESHOLD`].
    pub threshold: u8,
    /// See [`DEFAULT_MAX_FLIP_SHARE`].
    pub max_flip_share: f64,
    /// See [`DEFAULT_MAX_RECALL_DROP`].
    pub max_recall_drop: f64,
    /// See [`DEFAULT_MAX_PRECISION_DROP`].
    pub max_precision_drop: f64,
}

/// Requests to score: the extractor values of each, and its label when known.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    rows: Vec<Features>,
    human: Option<Vec<bool>>,
}

/// One threshold's flips.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flips {
    /// "Block below" this score.
    pub threshold: u8,
    /// Share of requests the serving file blocks.
    pub blocked_serving: f64,
    /// Share of requests the candidate blocks.
    pub blocked_candidate: f64,
    /// Share allowed by the serving file and blocked by the candidate.
    pub to_blocked: f64,
    /// Share blocked by the serving file and allowed by the candidate.
    pub to_allowed: f64,
}

/// Precision and recall for bots at a threshold (a bot is caught when its score is below it;
/// unscored requests are never blocked).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Blocked requests that are bots (`None`: nothing blocked).
    pub precision: Option<f64>,
    /// Bots blocked (`None`: no bot in the sample).
    pub recall: Option<f64>,
}

/// The shadow result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowReport {
    /// Requests scored (each by both files).
    pub requests: usize,
    /// Whether the sample is labelled (precision and recall are measured).
    pub labelled: bool,
    /// The distribution test, candidate against serving (the score-shift gate's verdict).
    pub shift: Verdict,
    /// Flips at each of [`THRESHOLDS`].
    pub flips: Vec<Flips>,
    /// On a labelled sample: the serving file's precision and recall at the threshold.
    pub serving: Option<Quality>,
    /// On a labelled sample: the candidate's.
    pub candidate: Option<Quality>,
    /// The policy applied.
    pub policy: ShadowPolicy,
    /// Why the candidate is held (empty: within policy).
    pub held: Vec<String>,
}

/// Why a sample file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A line is not a request record.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// More than [`MAX_SAMPLE`] requests.
    #[error("more than {MAX_SAMPLE} requests")]
    TooLarge,
    /// No request at all.
    #[error("the sample is empty")]
    Empty,
    /// Some records are labelled and some are not.
    #[error("line {line}: every record or none must carry \"human\"")]
    MixedLabels {
        /// The first line that differs.
        line: usize,
    },
    /// The embedded profiles did not load.
    #[error("the embedded profiles: {0}")]
    Profiles(String),
}

// === impl ShadowPolicy ===

impl Default for ShadowPolicy {
    fn default() -> Self {
        ShadowPolicy {
            shift: ShiftLimits::default(),
            threshold: DEFAULT_THRESHOLD,
            max_flip_share: DEFAULT_MAX_FLIP_SHARE,
            max_recall_drop: DEFAULT_MAX_RECALL_DROP,
            max_precision_drop: DEFAULT_MAX_PRECISION_DROP,
        }
    }
}

// === impl Sample ===

impl Sample {
    /// The embedded labelled sample: every browser and bot profile of the data, as the fit
    /// sees them ([`Dataset`], seed [`EMBEDDED_SEED`]).
    pub fn embedded() -> Result<Sample, SampleError> {
        let profiles = Profiles::embedded().map_err(|e| SampleError::Profiles(e.to_string()))?;
        Ok(Sample::from_dataset(&Dataset::build(
            &profiles,
            EMBEDDED_SEED,
        )))
    }

    /// The samples of a dataset, labelled.
    pub fn from_dataset(ds: &Dataset) -> Sample {
        Sample {
            rows: ds.rows.iter().map(row_features).collect(),
            human: Some(ds.human.clone()),
        }
    }

    /// Rows of extractor values, labelled (`human[i]` for row `i`) or not.
    pub fn new(rows: Vec<Features>, human: Option<Vec<bool>>) -> Result<Sample, SampleError> {
        if rows.is_empty() {
            return Err(SampleError::Empty);
        }
        if rows.len() > MAX_SAMPLE {
            return Err(SampleError::TooLarge);
        }
        if human.as_ref().is_some_and(|h| h.len() != rows.len()) {
            return Err(SampleError::MixedLabels { line: rows.len() });
        }
        Ok(Sample { rows, human })
    }

    /// A recorded sample, one JSON object per line: `{"features": {"name": value, …},
    /// "human": true}` (`human` on every line or on none; names the edge's extractor
    /// catalog; a name not in it, or a value that is not a finite number, is an error).
    pub fn from_jsonl(text: &str) -> Result<Sample, SampleError> {
        let mut rows = Vec::new();
        let mut labels: Vec<bool> = Vec::new();
        let mut labelled = None;
        for (at, line) in text.lines().enumerate() {
            let n = at + 1;
            if line.trim().is_empty() {
                continue;
            }
            if rows.len() >= MAX_SAMPLE {
                return Err(SampleError::TooLarge);
            }
            let bad = |reason: String| SampleError::Line { line: n, reason };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
            let obj = v
                .get("features")
                .and_then(|f| f.as_object())
                .ok_or_else(|| bad("no \"features\" object".into()))?;
            let mut f = Features::zeroed();
            for (name, value) in obj {
                let id = FeatureId::from_name(name)
                    .ok_or_else(|| bad(format!("{name:?} is not an extractor of the edge")))?;
                let x = value
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad(format!("{name}: {value} is not a finite number")))?;
                f.set(id, x as f32);
            }
            let human = match v.get("human") {
                None => None,
                Some(h) => Some(
                    h.as_bool()
                        .ok_or_else(|| bad("\"human\" is not true or false".into()))?,
                ),
            };
            match (labelled, human) {
                (None, h) => labelled = Some(h.is_some()),
                (Some(true), None) | (Some(false), Some(_)) => {
                    return Err(SampleError::MixedLabels { line: n });
                }
                _ => {}
            }
            if let Some(h) = human {
                labels.push(h);
            }
            rows.push(f);
        }
        Sample::new(rows, (labelled == Some(true)).then_some(labels))
    }

    /// Requests in the sample.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn row_features(row: &[f32; COUNT]) -> Features {
    let mut f = Features::zeroed();
    for (id, x) in FeatureId::ALL.iter().zip(row) {
        f.set(*id, *x);
    }
    f
}

/// Scores `sample` with both files and judges the candidate against `policy`.
pub fn shadow(
    candidate: &Model,
    serving: &Model,
    sample: &Sample,
    policy: &ShadowPolicy,
) -> ShadowReport {
    let mut hist_candidate = ScoreHistogram::new();
    let mut hist_serving = ScoreHistogram::new();
    let mut flips = THRESHOLDS.map(FlipCount::new);
    let mut q_serving = QualityCount::default();
    let mut q_candidate = QualityCount::default();
    for (i, f) in sample.rows.iter().enumerate() {
        let (a, b) = (serving.score(f), candidate.score(f));
        record(&mut hist_serving, a);
        record(&mut hist_candidate, b);
        for c in &mut flips {
            c.add(blocked(a, c.threshold), blocked(b, c.threshold));
        }
        if let Some(human) = sample.human.as_ref().and_then(|h| h.get(i)) {
            q_serving.add(!human, blocked(a, policy.threshold));
            q_candidate.add(!human, blocked(b, policy.threshold));
        }
    }
    let n = sample.len();
    let shift = shift_gate(&hist_candidate, &hist_serving, &policy.shift);
    let flips: Vec<Flips> = flips.iter().map(|c| c.shares(n)).collect();
    let labelled = sample.human.is_some();
    let (serving_q, candidate_q) = if labelled {
        (Some(q_serving.quality()), Some(q_candidate.quality()))
    } else {
        (None, None)
    };
    let mut held = Vec::new();
    if let Some(f) = shift.failure() {
        held.push(format!("score distribution: {}", f.explanation));
    }
    if let Some(f) = flips.iter().find(|f| f.threshold == policy.threshold) {
        let flipped = f.to_blocked + f.to_allowed;
        if flipped > policy.max_flip_share {
            held.push(format!(
                "{:.2}% of requests change verdict at \"block below {}\" ({:.2}% newly blocked, \
                 {:.2}% newly allowed; at most {:.2}%)",
                flipped * 100.0,
                f.threshold,
                f.to_blocked * 100.0,
                f.to_allowed * 100.0,
                policy.max_flip_share * 100.0
            ));
        }
    }
    if let (Some(a), Some(b)) = (serving_q, candidate_q) {
        let drop = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => x - y,
            (Some(x), None) => x,
            _ => 0.0,
        };
        let recall = drop(a.recall, b.recall);
        if recall > policy.max_recall_drop {
            held.push(format!(
                "recall for bots falls by {:.1} points ({} → {}; at most {:.1})",
                recall * 100.0,
                pct(a.recall),
                pct(b.recall),
                policy.max_recall_drop * 100.0
            ));
        }
        let precision = drop(a.precision, b.precision);
        if precision > policy.max_precision_drop {
            held.push(format!(
                "precision for bots falls by {:.1} points ({} → {}; at most {:.1})",
                precision * 100.0,
                pct(a.precision),
                pct(b.precision),
                policy.max_precision_drop * 100.0
            ));
        }
    }
    ShadowReport {
        requests: n,
        labelled,
        shift,
        flips,
        serving: serving_q,
        candidate: candidate_q,
        policy: *policy,
        held,
    }
}

fn record(h: &mut ScoreHistogram, s: Score) {
    match s {
        Score::Scored(x) => h.record_score(x),
        Score::Unscored(_) => h.record_unscored(),
    }
}

fn blocked(s: Score, threshold: u8) -> bool {
    rampart_score::score::blocks(s, Some(threshold))
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".to_owned(), |x| format!("{:.1}%", x * 100.0))
}

#[derive(Debug, Clone, Copy)]
struct FlipCount {
    threshold: u8,
    serving: usize,
    candidate: usize,
    to_blocked: usize,
    to_allowed: usize,
}

impl FlipCount {
    fn new(threshold: u8) -> Self {
        FlipCount {
            threshold,
            serving: 0,
            candidate: 0,
            to_blocked: 0,
            to_allowed: 0,
        }
    }

    fn add(&mut self, serving: bool, candidate: bool) {
        self.serving += usize::from(serving);
        self.candidate += usize::from(candidate);
        self.to_blocked += usize::from(!serving && candidate);
        self.to_allowed += usize::from(serving && !candidate);
    }

    fn shares(&self, n: usize) -> Flips {
        let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        Flips {
            threshold: self.threshold,
            blocked_serving: share(self.serving),
            blocked_candidate: share(self.candidate),
            to_blocked: share(self.to_blocked),
            to_allowed: share(self.to_allowed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct QualityCount {
    bots: usize,
    blocked: usize,
    blocked_bots: usize,
}

impl QualityCount {
    fn add(&mut self, bot: bool, blocked: bool) {
        self.bots += usize::from(bot);
        self.blocked += usize::from(blocked);
        self.blocked_bots += usize::from(bot && blocked);
    }

    fn quality(&self) -> Quality {
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        Quality {
            precision: ratio(self.blocked_bots, self.blocked),
            recall: ratio(self.blocked_bots, self.bots),
        }
    }
}

// === impl ShadowReport ===

impl ShadowReport {
    /// Whether the candidate is within policy.
    pub fn passes(&self) -> bool {
        self.held.is_empty()
    }

    /// The report for people: the verdict, then every number.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} requests{} scored by both files",
            if self.passes() {
                "within policy"
            } else {
                "HELD"
            },
            self.requests,
            if self.labelled { " (labelled)" } else { "" }
        );
        for h in &self.held {
            let _ = writeln!(s, "  held: {h}");
        }
        match &self.shift {
            Verdict::Pass {
                numbers: Numbers::Shift(n),
            }
            | Verdict::Fail(rampart_rollout::Failure {
                numbers: Numbers::Shift(n),
                ..
            }) => {
                let _ = writeln!(
                    s,
                    "  shift: KS D {:.3} (p {:.2e}; fails at D ≥ {} with p ≤ {}), Mann–Whitney AUC {}, unscored {:.1}% → {:.1}%",
                    n.ks.d,
                    n.ks.p_value,
                    n.limits.min_d,
                    n.limits.alpha,
                    n.mann_whitney
                        .map_or("–".to_owned(), |m| format!("{:.3}", m.auc)),
                    n.unscored_baseline * 100.0,
                    n.unscored_new * 100.0
                );
            }
            other => {
                let _ = writeln!(s, "  shift: not judged ({other:?})");
            }
        }
        for f in &self.flips {
            let _ = writeln!(
                s,
                "  block below {:>2}: blocked {:.2}% → {:.2}%; flips {:.2}% newly blocked, {:.2}% newly allowed",
                f.threshold,
                f.blocked_serving * 100.0,
                f.blocked_candidate * 100.0,
                f.to_blocked * 100.0,
                f.to_allowed * 100.0
            );
        }
        if let (Some(a), Some(b)) = (self.serving, self.candidate) {
            let _ = writeln!(
                s,
                "  bots at block below {}: precision {} → {}, recall {} → {}",
                self.policy.threshold,
                pct(a.precision),
                pct(b.precision),
                pct(a.recall),
                pct(b.recall)
            );
        }
        s
    }
}

/// Shadow scoring of a candidate beside the published (serving) file on the embedded
/// labelled sample, both compiled under the edge's contract: the generator's output check
/// ([`rampart_generate::OutputCheck`], run by `rampart generate` unless `--no-shadow`) and the
/// control plane's judge before a rollout's first wave.
#[derive(Debug)]
pub struct ShadowCheck {
    sample: Sample,
    contract: rampart_artifact::Contract,
    policy: ShadowPolicy,
}

/// What [`ShadowCheck::judge`] concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Within policy: the first line of the report.
    Pass(String),
    /// Beyond policy: every reason, with the numbers.
    Held(Vec<String>),
    /// A file does not compile under the edge's contract (another consumer's file, or a
    /// contract changed since): nothing to score; the other checks decide.
    NotJudged(String),
}

// === impl ShadowCheck ===

impl ShadowCheck {
    /// On the embedded labelled sample, compiling under `contract`, with the default policy.
    pub fn embedded(contract: rampart_artifact::Contract) -> Result<Self, SampleError> {
        Ok(ShadowCheck {
            sample: Sample::embedded()?,
            contract,
            policy: ShadowPolicy::default(),
        })
    }

    /// Scores the sample with `candidate` and `serving` and judges the candidate.
    pub fn judge(
        &self,
        candidate: &rampart_artifact::Document,
        serving: &rampart_artifact::Document,
    ) -> Judgement {
        let (cand, serv) = match (self.compile(candidate), self.compile(serving)) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => return Judgement::NotJudged(e),
        };
        let report = shadow(&cand, &serv, &self.sample, &self.policy);
        if report.passes() {
            Judgement::Pass(report.text().lines().next().unwrap_or_default().to_owned())
        } else {
            Judgement::Held(report.held)
        }
    }

    fn compile(&self, doc: &rampart_artifact::Document) -> Result<Model, String> {
        let validated =
            rampart_artifact::validate(doc, &self.contract, None).map_err(|issues| {
                format!(
                    "version {} does not fit the edge's contract ({} issues)",
                    doc.version,
                    issues.len()
                )
            })?;
        Model::compile(&validated, self.contract.max_features())
            .map_err(|e| format!("version {} does not compile: {e}", doc.version))
    }
}

impl rampart_generate::OutputCheck for ShadowCheck {
    fn check(
        &self,
        candidate: &rampart_artifact::Document,
        published: &rampart_artifact::Document,
    ) -> Result<String, Vec<String>> {
        match self.judge(candidate, published) {
            Judgement::Pass(line) => Ok(line),
            Judgement::NotJudged(why) => Ok(format!("not judged: {why}")),
            Judgement::Held(reasons) => Err(reasons),
        }
    }
}
