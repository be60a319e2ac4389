//! The replay loop: one run of a scenario with a set of layers, on a virtual clock.
//!
//! Time advances in steps of one second from a short warm-up before the scenario's start (so
//! every node serves the first file, and has kept it as last-known-good, when the report
//! starts). Each step: the timeline's events that are due, a generator run when one is due,
//! one control-plane reconcile with the last step's heartbeats, then the fleet's step (files
//! and switches arriving, boots, traffic, heartbeats).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rampart_artifact::{Keyring, SecretKey};
use rampart_fit::shadow::ShadowCheck;
use rampart_generate::guard::Refusal;
use rampart_generate::source::{ClickHouse, Endpoint};
use rampart_ingest::{BootError, SentinelConfig};
use rampart_score::edge_contract;
use rampart_traffic::{ProfileError, Rng};

use crate::clock::{MINUTE, SECOND};
use crate::control::{Control, Fate, Transcript};
use crate::fleet::{EdgeKind, Fleet, Tally};
use crate::mode::{Layer, Layers, Mode, Variant};
use crate::producer::{Producer, ProducerError, Publication, RunResult, key_seed};
use crate::report::{Bucket, Detection, Report, Run, Stops, Timeline};
use crate::scenario::{Action, Scenario};
use crate::source::{Source, SourceError, UNSCOPED_QUERY};
use crate::traffic::{BUCKET_MS, Models, POOL_SIZE, Pool};

/// One step of the virtual clock: the heartbeat interval and the reconcile cadence.
pub const STEP_MS: u64 = SECOND;
/// Warm-up before the scenario's start: the first file is served and soaked by then.
pub const WARMUP_MS: u64 = 2 * MINUTE;
/// Salt of the stream that picks the ClickHouse node of each generator run.
const GENERATOR_SALT: u64 = 0x6e_6e72;

/// Why a replay failed (never because of what it simulates: a crash in the scenario is an
/// event, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The traffic profiles are broken (a build problem).
    #[error("traffic profiles: {0}")]
    Profiles(#[from] ProfileError),
    /// The data source is broken (a build problem).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The generator's dir.
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// A node's data dir.
    #[error("a node's store cannot boot: {0}")]
    Boot(#[from] BootError),
    /// The scratch dir.
    #[error("scratch dir {}: {source}", path.display())]
    Scratch {
        /// The dir.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The first file of the day could not be published.
    #[error("the first feature file could not be generated: {0}")]
    FirstFile(String),
    /// Shadow scoring's embedded sample cannot be built (a build problem).
    #[error("shadow scoring's embedded sample: {0}")]
    Shadow(#[from] rampart_fit::shadow::SampleError),
}

/// Where a replay stands, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Virtual milliseconds simulated so far, over all runs.
    pub done_ms: u64,
    /// Virtual milliseconds to simulate in all.
    pub total_ms: u64,
    /// The run under way (0-based).
    pub run: usize,
    /// Runs in all.
    pub runs: usize,
}

/// What every run of a replay shares: the scored traffic sample and the data source.
#[derive(Debug)]
pub struct Shared {
    pool: Arc<Pool>,
    source: Source,
    /// Shadow scoring with the edge's contract on the embedded labelled sample (built once).
    shadow: Arc<ShadowCheck>,
}

/// A scratch dir removed when dropped (node data dirs, generator state).
#[derive(Debug)]
struct Scratch {
    path: PathBuf,
}

// === impl Shared ===

impl Shared {
    /// The traffic pool and the source of `scenario`.
    pub fn new(scenario: &Scenario) -> Result<Shared, SimError> {
        Ok(Shared {
            pool: Arc::new(Pool::new(scenario.seed, POOL_SIZE)?),
            source: Source::new(scenario)?,
            shadow: Arc::new(ShadowCheck::embedded(edge_contract())?),
        })
    }
}

/// Replays `scenario` in `mode`: every run of the mode, one after the other.
pub fn replay(
    scenario: &Scenario,
    mode: Mode,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, SimError> {
    let shared = Shared::new(scenario)?;
    let variants = mode.variants();
    let per_run = scenario.end - scenario.start;
    let mut runs = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        let mut on_step = |done: u64| {
            progress(Progress {
                done_ms: per_run * i as u64 + done,
                total_ms: per_run * variants.len() as u64,
                run: i,
                runs: variants.len(),
            });
        };
        runs.push(run(scenario, v, &shared, &mut on_step)?);
    }
    Ok(Report {
        scenario: scenario.clone(),
        mode,
        runs,
    })
}

/// One run of `scenario` with `variant`'s layers. `on_step` hears the virtual time done.
pub fn run(
    scenario: &Scenario,
    variant: &Variant,
    shared: &Shared,
    on_step: &mut dyn FnMut(u64),
) -> Result<Run, SimError> {
    run_with(scenario, variant, shared, on_step, false).map(|(run, _)| run)
}

/// [`run`], with the [`Transcript`] of its control plane: what it was handed and decided.
pub fn run_recorded(
    scenario: &Scenario,
    variant: &Variant,
    shared: &Shared,
) -> Result<(Run, Transcript), SimError> {
    let (run, transcript) = run_with(scenario, variant, shared, &mut |_| {}, true)?;
    Ok((run, transcript.unwrap_or_default()))
}

fn run_with(
    scenario: &Scenario,
    variant: &Variant,
    shared: &Shared,
    on_step: &mut dyn FnMut(u64),
    record: bool,
) -> Result<(Run, Option<Transcript>), SimError> {
    let scratch = Scratch::new()?;
    let layers = variant.layers;
    let seed = key_seed(scenario.seed);
    let keyring = Keyring::new([SecretKey::from_seed(seed).public()]);
    let scoped = scoped_query();
    let query = if layers.scoped_query {
        scoped.as_str()
    } else {
        UNSCOPED_QUERY
    };
    let mut producer = if layers.generator_guards {
        Producer::guarded(
            seed,
            query,
            &scratch.path.join("generator"),
            layers.shadow.then(|| Arc::clone(&shared.shadow)),
        )?
    } else {
        Producer::naive(seed, query)
    };
    let kind = if layers.edge_ingestion {
        EdgeKind::Guarded {
            sentinel: sentinel_config(&layers),
            require_blessing: layers.blessed_lkg,
        }
    } else {
        EdgeKind::Naive {
            sentinel: (layers.sentinel || layers.recurrence).then(|| sentinel_config(&layers)),
            require_blessing: layers.blessed_lkg,
        }
    };
    let boot_at = scenario.start.saturating_sub(WARMUP_MS);
    let models = Models::new(Arc::clone(&shared.pool), scenario.customers.block_below);
    let mut fleet = Fleet::new(
        scenario,
        kind,
        models,
        &keyring,
        &scratch.path.join("nodes"),
        boot_at,
    )?;
    let validation = layers
        .control_validation
        .then(|| (edge_contract(), keyring.clone()));
    let mut control = Control::new(
        &fleet,
        validation,
        layers.rollout,
        scenario.generator.propagation_ms,
        if layers.watch {
            scenario.rollout.watch_ms
        } else {
            0
        },
        layers.shadow.then(|| Arc::clone(&shared.shadow)),
    );
    if record {
        control.record();
    }
    let mut timeline = Timeline::default();
    let source = &shared.source;
    let calendar = scenario.calendar;

    // The file the fleet serves when the day starts.
    let first = match producer.run(
        &source.answer(query, 0, boot_at),
        calendar.datetime(boot_at),
    ) {
        RunResult::Published(p) => p,
        other => return Err(SimError::FirstFile(format!("{other:?}"))),
    };
    control.seed(Arc::clone(&first), &mut fleet, boot_at);
    let mut last_good: Arc<Publication> = first;
    let mut published = 1u32;

    let mut rng = Rng::new(scenario.seed ^ GENERATOR_SALT);
    let mut generating = true;
    let mut next_run = scenario.generator.from;
    let mut events = scenario.events.iter().peekable();
    let mut stops = Stops::default();
    let mut beats = Vec::new();
    let mut minutes: Vec<Tally> = Vec::new();
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut minute = Tally::default();
    let mut bucket = Tally::default();

    for f in &scenario.faults {
        let what = f.describe();
        timeline.push(
            f.at,
            None,
            match &f.note {
                Some(note) => format!("fault {what}: {note}"),
                None => format!("fault {what}"),
            },
        );
    }
    // When the generator first produced a faulty candidate, and the first layer that acted
    // on a faulty file.
    let mut fault_from: Option<u64> = None;
    let mut detection: Option<Detection> = None;
    let mut detect = |at: u64, layer: Layer| {
        if detection.is_none_or(|d| at < d.at_ms) {
            detection = Some(Detection { at_ms: at, layer });
        }
    };

    let mut t = boot_at;
    while t < scenario.end {
        while let Some(e) = events.next_if(|e| e.at <= t) {
            if let Some(note) = &e.note {
                timeline.push(e.at, None, note.clone());
            }
            match &e.action {
                Action::Note => {}
                Action::StopGeneration => generating = false,
                Action::ResumeGeneration => {
                    generating = true;
                    next_run = next_run.max(t);
                }
                Action::RollbackLastGood => {
                    let n = fleet.rollback_last_good(t);
                    timeline.push(
                        t,
                        None,
                        format!(
                            "operators roll {n} naive nodes back to their own last-known-good file"
                        ),
                    );
                }
                Action::PushLastGood => {
                    let by_hand = producer.by_hand(
                        &last_good.document,
                        calendar.datetime(t),
                        last_good.epoch,
                    );
                    published += 1;
                    timeline.push(
                        t,
                        None,
                        format!(
                            "operator publishes the last good file by hand as version {}",
                            by_hand.version
                        ),
                    );
                    let by_hand = Arc::new(by_hand);
                    control.publish(by_hand, &mut fleet, t, &mut timeline);
                }
                Action::Restart { target, share } => {
                    let n = fleet.restart(*target, *share, t);
                    timeline.push(t, None, format!("operator restarts {n} nodes ({target:?})"));
                }
                Action::KillSwitch { enabled } => {
                    fleet.broadcast(
                        &crate::fleet::Delivery::KillSwitch(*enabled),
                        t,
                        scenario.generator.propagation_ms,
                    );
                }
                Action::Partition { pops, duration_ms } => {
                    fleet.partition(*pops, t.saturating_add(*duration_ms));
                }
            }
        }
        if generating && t >= next_run {
            next_run = next_run.saturating_add(scenario.generator.every_ms);
            let node = rng.below(u64::from(source.nodes())) as u32;
            let mut answer = source.answer(query, node, t);
            if source.changed(node, t) {
                stops.runs_on_changed_nodes += 1;
                if !answer.faulty {
                    stops.scoped_query += 1;
                }
            }
            let doubled = answer.faulty;
            crate::fault::apply(&scenario.faults, &mut answer, t);
            if answer.faulty {
                fault_from.get_or_insert(t);
            }
            match producer.run(&answer, calendar.datetime(t)) {
                RunResult::Published(p) => {
                    published += 1;
                    timeline.push(
                        t,
                        None,
                        format!(
                            "generator publishes version {} ({} features, ClickHouse node {node}){}",
                            p.version,
                            p.document.features.len(),
                            match (p.faulty, doubled) {
                                (true, true) => ": the doubled file",
                                (true, false) => ": a file that carries the fault",
                                _ => "",
                            }
                        ),
                    );
                    let before = control.fates.len();
                    control.publish(p, &mut fleet, t, &mut timeline);
                    note_fates(
                        control.fates.get(before..).unwrap_or_default(),
                        t,
                        &mut detect,
                    );
                }
                RunResult::Unchanged => {}
                RunResult::Held { refusals } => {
                    // The output check runs only once every other guard passed: a hold by
                    // it alone is shadow scoring's.
                    let layer = if refusals.iter().all(|r| matches!(r, Refusal::Shadow { .. })) {
                        Layer::Shadow
                    } else {
                        Layer::GeneratorGuards
                    };
                    if answer.faulty {
                        if layer == Layer::Shadow {
                            stops.shadow += 1;
                        } else {
                            stops.generator_guards += 1;
                        }
                        detect(t, layer);
                    }
                    let guards: Vec<&str> = refusals.iter().map(|r| r.guard()).collect();
                    timeline.push(
                        t,
                        Some(layer),
                        format!(
                            "generator holds a {}-feature candidate from ClickHouse node {node}: {}",
                            answer.features.len(),
                            guards.join(", ")
                        ),
                    );
                }
                RunResult::Failed(e) => {
                    timeline.push(t, None, format!("generator run failed: {e}"))
                }
            }
        }
        let before = control.fates.len();
        control.step(&beats, &mut fleet, t, &mut timeline);
        note_fates(
            control.fates.get(before..).unwrap_or_default(),
            t,
            &mut detect,
        );
        beats.clear();
        // What an operator calls the last good file: the newest one the fleet was sent whole
        // that did not carry the fault.
        if let Some(d) = control.desired()
            && !d.faulty
            && d.version > last_good.version
        {
            last_good = Arc::clone(d);
        }
        let index = t.saturating_sub(scenario.start) / BUCKET_MS;
        fleet.models_mut().set_bucket(index);
        let mut tally = Tally::default();
        let want = control.wants_beats();
        fleet.step(t, STEP_MS, &mut tally, want.then_some(&mut beats))?;
        if t >= scenario.start {
            minute.add(&tally);
            bucket.add(&tally);
            let next = t + STEP_MS;
            if (next - scenario.start).is_multiple_of(MINUTE) {
                minutes.push(std::mem::take(&mut minute));
                on_step(next - scenario.start);
            }
            if (next - scenario.start).is_multiple_of(BUCKET_MS) || next >= scenario.end {
                buckets.push(Bucket {
                    start: scenario.start + index * BUCKET_MS,
                    tally: std::mem::take(&mut bucket),
                    census: fleet.census(),
                });
            }
        }
        t += STEP_MS;
    }
    if minute.requests > 0.0 {
        minutes.push(minute);
    }

    if let Some((at, layer)) = fleet.first_defence() {
        detect(at, layer);
    }
    let totals = fleet.totals();
    let mut faulty_versions: Vec<u64> = control
        .fates
        .iter()
        .filter(|(f, _)| f.faulty)
        .map(|(f, _)| f.version)
        .collect();
    faulty_versions.sort_unstable();
    faulty_versions.dedup();
    let mut rollouts = (0u32, 0u32);
    for (file, fate) in &control.fates {
        match fate {
            Fate::RolledOut => rollouts.0 += 1,
            Fate::RolledBack { .. } | Fate::RolledBackByOperator | Fate::FailedWatch { .. } => {
                rollouts.0 += 1;
                rollouts.1 += 1;
            }
            _ => {}
        }
        if !file.faulty {
            continue;
        }
        match fate {
            Fate::HeldByShadow(_) => stops.shadow += 1,
            Fate::Refused(_) => stops.control_validation += 1,
            Fate::FailedWatch { .. } => stops.watch += 1,
            Fate::RolledBack { gate, .. } if gate == "score_shift" => stops.score_shift_gate += 1,
            Fate::RolledBack { .. } | Fate::RolledBackByOperator | Fate::Superseded => {
                stops.canary_gates += 1;
            }
            Fate::Pushed | Fate::RolledOut => stops.reached_fleet += 1,
        }
    }
    stops.edge_nacks = totals.nacks;
    stops.sentinel_poisonings = totals.poisonings;
    stops.recurrence_poisonings = totals.recurrence_poisonings;
    if totals.crashes > 0 {
        timeline.push(
            scenario.end,
            None,
            format!("{} proxy crashes in all", totals.crashes),
        );
    }
    let transcript = control.take_transcript();
    let run = Run {
        key: variant.key.clone(),
        label: variant.label.clone(),
        layer: variant.layer,
        layers,
        minutes,
        buckets,
        totals,
        stops,
        rollouts,
        published,
        faulty_versions,
        timeline,
        fault_from_ms: fault_from,
        detection,
    };
    Ok((run, transcript))
}

/// The first layer that acted on a faulty file among `fates` (new since the last look).
fn note_fates(fates: &[(Arc<Publication>, Fate)], now: u64, detect: &mut dyn FnMut(u64, Layer)) {
    for (file, fate) in fates {
        if !file.faulty {
            continue;
        }
        match fate {
            Fate::Refused(_) => detect(now, Layer::ControlValidation),
            Fate::HeldByShadow(_) => detect(now, Layer::Shadow),
            Fate::FailedWatch { .. } => detect(now, Layer::Watch),
            Fate::RolledBack { gate, .. } if gate == "score_shift" => {
                detect(now, Layer::ScoreShiftGate);
            }
            Fate::RolledBack { .. } | Fate::RolledBackByOperator => {
                detect(now, Layer::CanaryGates);
            }
            Fate::Pushed | Fate::RolledOut | Fate::Superseded => {}
        }
    }
}

/// The sentinel of a run's edges (a guarded edge's store, a naive proxy's supervisor): the
/// crash-loop rule when [`Layer::Sentinel`] is on (always on a guarded edge), the
/// recurrence rule when [`Layer::Recurrence`] is, each with rampart's defaults.
fn sentinel_config(layers: &Layers) -> SentinelConfig {
    let mut c = SentinelConfig::default();
    if !layers.has(Layer::Sentinel) {
        c.crash_threshold = u32::MAX;
        c.safe_mode_threshold = u32::MAX;
    }
    if !layers.recurrence {
        c.recurrence_deaths = 0;
    }
    c
}

/// The generator's real feature query (scoped by database and table).
pub fn scoped_query() -> String {
    match Endpoint::parse(crate::producer::SOURCE_URL) {
        Ok(e) => ClickHouse::new(e).columns_query(),
        // The constant URL parses; should it not, any scoped query keeps the model honest.
        Err(_) => "SELECT name, type FROM system.columns WHERE database = 'default' AND table = 'http_requests_features' ORDER BY name".to_owned(),
    }
}

// === impl Scratch ===

impl Scratch {
    /// A fresh dir under `/dev/shm` when there is one (the stores' fsyncs cost nothing on
    /// tmpfs), else under the system's temp dir.
    fn new() -> Result<Scratch, SimError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("rampart-sim-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|source| SimError::Scratch {
            path: path.clone(),
            source,
        })?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
