//! `summary.json`: the replay's numbers, per run and per 5-minute bucket.
//!
//! Deterministic: it holds virtual times, counts and shares (rounded to 6 decimals), never a
//! wall-clock time or a path, so the same scenario and seed give the same bytes.

use serde::Serialize;

use crate::clock::{MINUTE, format_time};
use crate::fleet::Totals;
use crate::mode::{Layer, Layers, Mode};
use crate::report::{Containment, Entry, Report, Run, Stops};
use crate::traffic::BUCKET_MS;

/// The schema id of `summary.json`.
pub const SUMMARY_SCHEMA: &str = "rampart.replay-summary/v1";

/// The document.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// [`SUMMARY_SCHEMA`].
    pub schema: &'static str,
    /// The scenario.
    pub scenario: ScenarioInfo,
    /// The mode.
    pub mode: Mode,
    /// Minutes in a bucket.
    pub bucket_minutes: u64,
    /// The runs, the naive one first.
    pub runs: Vec<RunSummary>,
}

/// The scenario, briefly.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// Title.
    pub title: String,
    /// Date.
    pub date: String,
    /// Start (UTC).
    pub start: String,
    /// End (UTC).
    pub end: String,
    /// Seed.
    pub seed: u64,
    /// PoPs.
    pub pops: u32,
    /// Nodes per PoP.
    pub nodes_per_pop: u32,
    /// Nodes.
    pub nodes: usize,
    /// The `[[fault]]` entries, one line each (absent when the scenario has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Key.
    pub key: String,
    /// Label.
    pub label: String,
    /// The one layer added to the naive pipeline (ablation rows).
    pub layer: Option<Layer>,
    /// Its layers.
    pub layers: Layers,
    /// The headline numbers.
    pub headline: HeadlineSummary,
    /// Layers that stopped faulty files, in the order a file meets them.
    pub stopped_by: Vec<StopSummary>,
    /// The raw counts behind `stopped_by`.
    pub stops: Stops,
    /// Rollouts started.
    pub rollouts_started: u32,
    /// Rollouts rolled back.
    pub rollouts_rolled_back: u32,
    /// Files published.
    pub files_published: u32,
    /// Per 5-minute bucket.
    pub buckets: Vec<BucketSummary>,
    /// The fault rows (present when the scenario has `[[fault]]` entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultRow>,
    /// What happened, in order.
    pub timeline: Vec<Entry>,
}

/// A run against a scenario's `[[fault]]` entries: the rows of the fault table.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRow {
    /// Minutes in which at least 0.1% of requests failed or were slowed, or of people were
    /// blocked by the fault.
    pub impact_minutes: u32,
    /// Share of requests that failed, over the run.
    pub failed_share: f64,
    /// Share of requests slowed by the fault, over the run.
    pub slowed_share: f64,
    /// Nodes whose requests ever failed or were slowed, or whose users the fault blocked.
    pub nodes_affected: u64,
    /// Process deaths (panics and process faults).
    pub crashes: u64,
    /// Nodes whose last-known-good ever held a faulty file (a rollback to last-known-good
    /// there restores the fault).
    pub nodes_with_faulty_lkg: u64,
    /// When the generator first produced a faulty candidate.
    pub fault_from: Option<String>,
    /// When a layer first acted on a faulty file (`null`: none did).
    pub detected_at: Option<String>,
    /// That layer.
    pub detected_by: Option<Layer>,
    /// From `fault_from` to `detected_at`, in minutes.
    pub time_to_detection_minutes: Option<f64>,
}

/// Headline numbers of a run.
#[derive(Debug, Clone, Serialize)]
pub struct HeadlineSummary {
    /// Minutes in which at least 0.1% of requests failed or of people were blocked by the fault.
    pub impact_minutes: u32,
    /// First such minute.
    pub first_impact: Option<String>,
    /// Last such minute.
    pub last_impact: Option<String>,
    /// From the first impact minute to the end of the last.
    pub time_to_recovery_minutes: Option<u64>,
    /// Share of requests that failed (5xx), over the run.
    pub failed_share: f64,
    /// Highest failed share of a bucket.
    pub peak_failed_share: f64,
    /// Share of people blocked by the fault, over the run.
    pub blocked_human_share: f64,
    /// Highest such share of a bucket.
    pub peak_blocked_human_share: f64,
    /// Requests failed, scaled to the fleet's rate.
    pub failed_requests: u64,
    /// People's requests blocked by the fault, scaled.
    pub blocked_humans: u64,
    /// People blocked by a healthy model's own mistakes (not the fault), for scale.
    pub model_false_positive_share: f64,
    /// Nodes whose requests ever failed or whose users the fault blocked.
    pub nodes_ever_affected: u64,
    /// Proxy crashes.
    pub crashes: u64,
    /// Whether the fault caused no impact minute at all.
    pub no_impact: bool,
    /// How the run fared against the fault, compared with the naive run.
    pub verdict: Containment,
}

// === impl HeadlineSummary ===

impl HeadlineSummary {
    /// The verdict for people.
    pub fn verdict_text(&self) -> &'static str {
        self.verdict.describe()
    }
}

/// One layer's stops.
#[derive(Debug, Clone, Serialize)]
pub struct StopSummary {
    /// The layer.
    pub layer: Layer,
    /// Runs, files, or node × file refusals, by layer (see `stops`).
    pub count: u64,
}

/// One bucket.
#[derive(Debug, Clone, Serialize)]
pub struct BucketSummary {
    /// Start (UTC).
    pub start: String,
    /// Requests, scaled.
    pub requests: u64,
    /// Share that failed.
    pub failed_share: f64,
    /// Share of people blocked by the fault.
    pub blocked_human_share: f64,
    /// Share of people blocked for any reason (the model's own mistakes too).
    pub blocked_human_share_all: f64,
    /// Share passed unscored.
    pub unscored_share: f64,
    /// Nodes down at the bucket's end.
    pub nodes_down: usize,
    /// Nodes wedged at the bucket's end.
    pub nodes_wedged: usize,
    /// Nodes per version served at the bucket's end.
    pub versions: Vec<VersionCount>,
}

/// Nodes on one version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionCount {
    /// The version (`null`: nothing loaded).
    pub version: Option<u64>,
    /// Nodes serving it.
    pub nodes: usize,
}

// === impl Summary ===

impl Summary {
    /// The summary of a report.
    pub fn of(report: &Report) -> Summary {
        let s = &report.scenario;
        Summary {
            schema: SUMMARY_SCHEMA,
            scenario: ScenarioInfo {
                name: s.name.clone(),
                title: s.title.clone(),
                date: s.date.clone(),
                start: format_time(s.start),
                end: format_time(s.end),
                seed: s.seed,
                pops: s.fleet.pops,
                nodes_per_pop: s.fleet.nodes_per_pop,
                nodes: s.node_count(),
                faults: s.faults.iter().map(|f| f.describe()).collect(),
            },
            mode: report.mode,
            bucket_minutes: BUCKET_MS / MINUTE,
            runs: report
                .runs
                .iter()
                .map(|r| run(r, s.start, r.verdict(&report.runs), !s.faults.is_empty()))
                .collect(),
        }
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

fn run(r: &Run, start: u64, verdict: Containment, faults: bool) -> RunSummary {
    let h = r.headline(start);
    let totals: &Totals = &r.totals;
    let fault = faults.then(|| FaultRow {
        impact_minutes: h.impact_minutes,
        failed_share: r6(h.failed_share),
        slowed_share: r6(r.total().slowed_share()),
        nodes_affected: totals.affected,
        crashes: totals.crashes,
        nodes_with_faulty_lkg: totals.faulty_lkg,
        fault_from: r.fault_from_ms.map(format_time),
        detected_at: r.detection.map(|d| format_time(d.at_ms)),
        detected_by: r.detection.map(|d| d.layer),
        time_to_detection_minutes: r
            .fault_from_ms
            .zip(r.detection)
            .map(|(from, d)| r6(d.at_ms.saturating_sub(from) as f64 / MINUTE as f64)),
    });
    RunSummary {
        key: r.key.clone(),
        label: r.label.clone(),
        layer: r.layer,
        layers: r.layers,
        headline: HeadlineSummary {
            impact_minutes: h.impact_minutes,
            first_impact: h.first_impact_ms.map(format_time),
            last_impact: h.last_impact_ms.map(format_time),
            time_to_recovery_minutes: h
                .first_impact_ms
                .zip(h.last_impact_ms)
                .map(|(a, b)| (b - a) / MINUTE + 1),
            failed_share: r6(h.failed_share),
            peak_failed_share: r6(h.peak_failed_share),
            blocked_human_share: r6(h.blocked_human_share),
            peak_blocked_human_share: r6(h.peak_blocked_human_share),
            failed_requests: h.failed_requests.round() as u64,
            blocked_humans: h.blocked_humans.round() as u64,
            model_false_positive_share: r6(h.baseline_blocked_human_share),
            nodes_ever_affected: totals.affected,
            crashes: totals.crashes,
            no_impact: h.impact_minutes == 0,
            verdict,
        },
        stopped_by: r
            .stopped_by()
            .into_iter()
            .map(|(layer, count)| StopSummary { layer, count })
            .collect(),
        stops: r.stops.clone(),
        rollouts_started: r.rollouts.0,
        rollouts_rolled_back: r.rollouts.1,
        files_published: r.published,
        buckets: r
            .buckets
            .iter()
            .map(|b| BucketSummary {
                start: format_time(b.start),
                requests: b.tally.requests.round() as u64,
                failed_share: r6(b.tally.failed_share()),
                blocked_human_share: r6(b.tally.blocked_share()),
                blocked_human_share_all: r6(if b.tally.humans > 0.0 {
                    b.tally.humans_blocked / b.tally.humans
                } else {
                    0.0
                }),
                unscored_share: r6(b.tally.unscored_share()),
                nodes_down: b.census.down,
                nodes_wedged: b.census.wedged,
                versions: b
                    .census
                    .versions
                    .iter()
                    .map(|(version, nodes)| VersionCount {
                        version: *version,
                        nodes: *nodes,
                    })
                    .collect(),
            })
            .collect(),
        fault,
        timeline: r.timeline.entries(),
    }
}

/// Rounded to 6 decimals, so the file reads well and small float noise cannot leak into it.
fn r6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
