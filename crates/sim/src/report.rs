//! What a replay found: per-minute counts, 5-minute buckets, headline numbers, the timeline,
//! and which layer stopped the fault; written as `summary.json` and `report.html`.
//!
//! - [`summary`]: the JSON document (deterministic: the same seed gives the same bytes).
//! - [`chart`]: hand-written SVG charts.
//! - [`html`]: the offline report page.

pub mod chart;
pub mod html;
pub mod summary;

use serde::Serialize;

use crate::clock::{MINUTE, format_time};
use crate::fleet::{Census, Tally, Totals};
use crate::mode::{Layer, Layers, Mode};
use crate::scenario::Scenario;

/// A run contains a part of the fault (failures, or people blocked) when it keeps that part
/// under this share of the naive run's.
pub const CONTAINED_SHARE_OF_NAIVE: f64 = 0.05;

/// A minute counts as impact when at least this share of requests failed, or of people was
/// blocked because of the fault (a node or two restarting is not an outage).
pub const IMPACT_MIN_SHARE: f64 = 0.001;

/// Events of a run, in time order, for people.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    entries: Vec<Entry>,
}

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// When (virtual ms since midnight).
    #[serde(skip)]
    pub at_ms: u64,
    /// When, `HH:MM:SS`.
    pub at: String,
    /// The layer that acted, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// What happened.
    pub what: String,
}

/// One 5-minute bucket of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Its start.
    pub start: u64,
    /// Its counts.
    pub tally: Tally,
    /// The fleet at its end.
    pub census: Census,
}

/// What happened to the fault's candidates, layer by layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stops {
    /// Generator runs on a node with the permission change.
    pub runs_on_changed_nodes: u32,
    /// … whose answer the scoped query kept clean.
    pub scoped_query: u32,
    /// Faulty candidates the producer guards held.
    pub generator_guards: u32,
    /// Faulty files the control plane refused.
    pub control_validation: u32,
    /// Faulty files a health gate rolled back (or that never left the rollout queue).
    pub canary_gates: u32,
    /// Faulty files the score-shift gate rolled back.
    pub score_shift_gate: u32,
    /// Faulty files that reached the fleet.
    pub reached_fleet: u32,
    /// Edge refusals of faulty files (node × file).
    pub edge_nacks: u64,
    /// Versions the sentinel poisoned (node × file).
    pub sentinel_poisonings: u64,
    /// Faulty files the watch after the last wave rolled back (absent when none).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub watch: u32,
    /// Of `sentinel_poisonings`, those by the recurrence rule on a naive proxy's supervisor
    /// (absent when none).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub recurrence_poisonings: u64,
    /// Faulty candidates shadow scoring held: in the generator (runs) or before wave 0
    /// (files; absent when none).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub shadow: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// The numbers of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its key.
    pub key: String,
    /// For people.
    pub label: String,
    /// The single layer it adds (ablation rows).
    pub layer: Option<Layer>,
    /// Its layers.
    pub layers: Layers,
    /// Counts per minute from the scenario's start.
    pub minutes: Vec<Tally>,
    /// 5-minute buckets.
    pub buckets: Vec<Bucket>,
    /// Node counters at the end.
    pub totals: Totals,
    /// What stopped the fault.
    pub stops: Stops,
    /// Rollouts started, and how many a gate or an operator rolled back.
    pub rollouts: (u32, u32),
    /// Files published by the generator (and by hand).
    pub published: u32,
    /// Versions that carried the fault.
    pub faulty_versions: Vec<u64>,
    /// The timeline.
    pub timeline: Timeline,
    /// When the generator first produced a faulty candidate (the fault entered the pipeline).
    pub fault_from_ms: Option<u64>,
    /// The first layer that acted on a faulty file, and when.
    pub detection: Option<Detection>,
}

/// The first act of a layer against a faulty file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// When.
    pub at_ms: u64,
    /// Which layer.
    pub layer: Layer,
}

/// A whole replay: the scenario, the mode, every run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// The mode.
    pub mode: Mode,
    /// The runs, the naive one first.
    pub runs: Vec<Run>,
}

/// How a run fared against the fault, compared with the naive run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Containment {
    /// The naive run itself.
    Baseline,
    /// No impact minute.
    NoImpact,
    /// Failures and blocked people both under 5% of the naive run's.
    Contained,
    /// Failures contained, blocked people not.
    FailuresOnly,
    /// Blocked people contained, failures not.
    BlockedOnly,
    /// Neither.
    NotStopped,
}

/// The headline numbers of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Headline {
    /// Minutes with impact (see [`IMPACT_MIN_SHARE`]).
    pub impact_minutes: u32,
    /// First minute with impact.
    pub first_impact_ms: Option<u64>,
    /// Last minute with impact.
    pub last_impact_ms: Option<u64>,
    /// Share of all requests that failed.
    pub failed_share: f64,
    /// Highest failed share of a 5-minute bucket.
    pub peak_failed_share: f64,
    /// Share of people blocked because of the fault.
    pub blocked_human_share: f64,
    /// Highest such share of a 5-minute bucket.
    pub peak_blocked_human_share: f64,
    /// Requests failed (scaled to the fleet).
    pub failed_requests: f64,
    /// People blocked because of the fault (scaled).
    pub blocked_humans: f64,
    /// The model's own false positives: people blocked by a healthy score (share).
    pub baseline_blocked_human_share: f64,
}

// === impl Timeline ===

impl Timeline {
    /// Adds an entry.
    pub fn push(&mut self, at_ms: u64, layer: Option<Layer>, what: String) {
        self.entries.push(Entry {
            at_ms,
            at: format_time_s(at_ms),
            layer,
            what,
        });
    }

    /// The entries in time order (stable for equal times).
    pub fn entries(&self) -> Vec<Entry> {
        let mut e = self.entries.clone();
        e.sort_by_key(|x| x.at_ms);
        e
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// === impl Containment ===

impl Containment {
    /// Whether the fault was stopped (no impact, or contained to the layer's cost).
    pub fn stopped(self) -> bool {
        matches!(self, Containment::NoImpact | Containment::Contained)
    }

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Containment::Baseline => "the day as it was",
            Containment::NoImpact => "no impact",
            Containment::Contained => "contained",
            Containment::FailuresOnly => "stops the failures, not the blocked people",
            Containment::BlockedOnly => "stops the blocked people, not the failures",
            Containment::NotStopped => "not stopped",
        }
    }
}

// === impl Tally ===

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.failed += o.failed;
        self.humans += o.humans;
        self.humans_blocked += o.humans_blocked;
        self.humans_blocked_by_fault += o.humans_blocked_by_fault;
        self.unscored += o.unscored;
        self.slowed += o.slowed;
    }

    /// Failed requests over requests.
    pub fn failed_share(&self) -> f64 {
        ratio(self.failed, self.requests)
    }

    /// People blocked because of the fault over people.
    pub fn blocked_share(&self) -> f64 {
        ratio(self.humans_blocked_by_fault, self.humans)
    }

    /// Unscored requests over requests.
    pub fn unscored_share(&self) -> f64 {
        ratio(self.unscored, self.requests)
    }

    /// Requests slowed by a fault over requests.
    pub fn slowed_share(&self) -> f64 {
        ratio(self.slowed, self.requests)
    }

    /// Whether the fault hurt in this span.
    pub fn is_impact(&self) -> bool {
        self.failed_share() >= IMPACT_MIN_SHARE
            || self.blocked_share() >= IMPACT_MIN_SHARE
            || self.slowed_share() >= IMPACT_MIN_SHARE
    }
}

// === impl Run ===

impl Run {
    /// The headline numbers.
    pub fn headline(&self, start: u64) -> Headline {
        let mut total = Tally::default();
        for m in &self.minutes {
            total.add(m);
        }
        let impact: Vec<usize> = self
            .minutes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_impact())
            .map(|(i, _)| i)
            .collect();
        let at = |i: usize| start + i as u64 * MINUTE;
        let healthy_blocked = total.humans_blocked - total.humans_blocked_by_fault;
        Headline {
            impact_minutes: impact.len() as u32,
            first_impact_ms: impact.first().map(|i| at(*i)),
            last_impact_ms: impact.last().map(|i| at(*i)),
            failed_share: total.failed_share(),
            peak_failed_share: self
                .buckets
                .iter()
                .map(|b| b.tally.failed_share())
                .fold(0.0, f64::max),
            blocked_human_share: total.blocked_share(),
            peak_blocked_human_share: self
                .buckets
                .iter()
                .map(|b| b.tally.blocked_share())
                .fold(0.0, f64::max),
            failed_requests: total.failed,
            blocked_humans: total.humans_blocked_by_fault,
            baseline_blocked_human_share: ratio(healthy_blocked, total.humans),
        }
    }

    /// How this run fared against the fault, compared with the naive run of `runs`.
    pub fn verdict(&self, runs: &[Run]) -> Containment {
        let Some(naive) = runs.iter().find(|r| r.layers == Layers::NAIVE) else {
            return Containment::NotStopped;
        };
        if self.layers == Layers::NAIVE {
            return Containment::Baseline;
        }
        let (mine, theirs) = (self.total(), naive.total());
        if !self.minutes.iter().any(Tally::is_impact) {
            return Containment::NoImpact;
        }
        let failed = mine.failed <= theirs.failed * CONTAINED_SHARE_OF_NAIVE;
        let blocked = mine.humans_blocked_by_fault
            <= theirs.humans_blocked_by_fault * CONTAINED_SHARE_OF_NAIVE;
        // A part of the fault the day did not have (no one blocked on 5 December) is not one
        // a layer can be said to stop.
        if theirs.humans_blocked_by_fault <= 0.0 {
            return if failed {
                Containment::Contained
            } else {
                Containment::NotStopped
            };
        }
        if theirs.failed <= 0.0 {
            return if blocked {
                Containment::Contained
            } else {
                Containment::NotStopped
            };
        }
        match (failed, blocked) {
            (true, true) => Containment::Contained,
            (true, false) => Containment::FailuresOnly,
            (false, true) => Containment::BlockedOnly,
            (false, false) => Containment::NotStopped,
        }
    }

    /// Every minute summed.
    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        for m in &self.minutes {
            t.add(m);
        }
        t
    }

    /// The layers that stopped faulty files, most first, as `(layer, files or runs)`.
    pub fn stopped_by(&self) -> Vec<(Layer, u64)> {
        let s = &self.stops;
        let mut v: Vec<(Layer, u64)> = [
            (Layer::ScopedQuery, u64::from(s.scoped_query)),
            (Layer::GeneratorGuards, u64::from(s.generator_guards)),
            (Layer::ControlValidation, u64::from(s.control_validation)),
            (Layer::Shadow, u64::from(s.shadow)),
            (Layer::CanaryGates, u64::from(s.canary_gates)),
            (Layer::ScoreShiftGate, u64::from(s.score_shift_gate)),
            (Layer::Watch, u64::from(s.watch)),
            (Layer::EdgeIngestion, s.edge_nacks),
            (
                Layer::Sentinel,
                s.sentinel_poisonings
                    .saturating_sub(s.recurrence_poisonings),
            ),
            (Layer::Recurrence, s.recurrence_poisonings),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
        // The first layer a file meets is the one that stopped it; the order of Layer::ALL.
        v.sort_by_key(|(l, _)| Layer::ALL.iter().position(|x| x == l));
        v
    }
}

/// Writes `summary.json` and `report.html` into `dir` (created if needed).
pub fn write(report: &Report, dir: &std::path::Path) -> std::io::Result<summary::Summary> {
    std::fs::create_dir_all(dir)?;
    let summary = summary::Summary::of(report);
    std::fs::write(dir.join("summary.json"), summary.to_json())?;
    std::fs::write(dir.join("report.html"), html::render(report, &summary))?;
    Ok(summary)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// `HH:MM:SS` always (timelines mix seconds and round minutes).
fn format_time_s(at: u64) -> String {
    let s = format_time(at);
    if s.len() == 5 { format!("{s}:00") } else { s }
}
