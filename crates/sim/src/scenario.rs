//! Scenario files: a fleet, a data source, a generator schedule and a timeline of events.
//!
//! A scenario is TOML (see `docs/replay.md` for every field). It is read into plain `Raw*`
//! structs, then checked into a [`Scenario`] whose times are virtual milliseconds and whose
//! every number is within the limits below, so the replay never meets an absurd value.

use std::io::Read as _;
use std::path::Path;

use serde::Deserialize;

use crate::clock::{Calendar, ClockError, DAY, parse_duration, parse_time_of_day};
use crate::fault::{self, Fault, FaultKind, MAX_FAULTS, RawFault};

/// The 18 November 2025 scenario, compiled in so `rampart replay nov18` works anywhere.
pub const NOV18: &str = include_str!("../../../scenarios/nov18.toml");
/// The 5 December 2025 scenario (a kill switch meets a never-exercised path).
pub const DEC5: &str = include_str!("../../../scenarios/dec5.toml");
/// The 29 October 2025 scenario (a file that crashes the process minutes after loading it).
pub const AFD_OCT29: &str = include_str!("../../../scenarios/afd-oct29.toml");
/// Four files that pass every structural check, judged by their output (issue 17).
pub const SHADOW: &str = include_str!("../../../scenarios/shadow.toml");
/// The scenarios compiled in, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("nov18", NOV18),
    ("dec5", DEC5),
    ("afd-oct29", AFD_OCT29),
    ("shadow", SHADOW),
];

/// Largest scenario file read.
pub const MAX_SCENARIO_BYTES: usize = 1024 * 1024;
/// Most PoPs in a fleet.
pub const MAX_POPS: u32 = 5_000;
/// Most nodes in one PoP.
pub const MAX_NODES_PER_POP: u32 = 500;
/// Most nodes in a fleet.
pub const MAX_NODES: u64 = 200_000;
/// Most events on a timeline.
pub const MAX_EVENTS: usize = 1_000;
/// Most ClickHouse nodes.
pub const MAX_CLICKHOUSE_NODES: u32 = 1_000;
/// Most columns that exist only in the shard databases.
pub const MAX_R0_ONLY_COLUMNS: u32 = 10_000;
/// Highest request rate of one node, per second.
pub const MAX_REQUESTS_PER_NODE: f64 = 1e7;
/// Shortest generator cadence.
pub const MIN_GENERATOR_EVERY_MS: u64 = 10_000;
/// Longest post-rollout watch a scenario may ask for: a day (a replay covers one day; the
/// control plane's API accepts up to a week).
pub const MAX_WATCH_MS: u64 = DAY;

/// A checked scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name (`nov18`).
    pub name: String,
    /// One line for the report's title.
    pub title: String,
    /// A paragraph for the report.
    pub description: String,
    /// The date the times are on.
    pub calendar: Calendar,
    /// The date as written.
    pub date: String,
    /// First virtual millisecond reported.
    pub start: u64,
    /// Last virtual millisecond reported.
    pub end: u64,
    /// Everything random follows from this.
    pub seed: u64,
    /// The fleet.
    pub fleet: Fleet,
    /// How the naive fleet's proxies behave.
    pub proxy: Proxy,
    /// The customers' bot rules.
    pub customers: Customers,
    /// The data source.
    pub clickhouse: ClickHouse,
    /// The generator's schedule.
    pub generator: Generator,
    /// How rampart's control plane rolls files out.
    pub rollout: Rollout,
    /// The timeline, in time order.
    pub events: Vec<Event>,
    /// The `[[fault]]` entries, in file order (a `duplicate_rows` entry is also folded into
    /// [`Scenario::clickhouse`], where the cluster model reads it).
    pub faults: Vec<Fault>,
}

/// The fleet of edge nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Points of presence.
    pub pops: u32,
    /// Nodes in each PoP.
    pub nodes_per_pop: u32,
    /// Regions the PoPs are spread over (round robin).
    pub regions: u32,
    /// Mean requests per second of one node.
    pub requests_per_node: f64,
    /// PoP sizes vary by up to this share around the mean (0 = all equal).
    pub pop_weight_spread: f64,
    /// Mean share of requests sent by bots.
    pub bot_share: f64,
    /// The bot share of a PoP varies by up to this much around the mean.
    pub bot_share_spread: f64,
    /// PoPs whose nodes are labelled canary (the first ones by name).
    pub canary_pops: u32,
}

/// The naive fleet: Cloudflare's two proxies on 18 November.
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy {
    /// Share of each PoP's nodes that run the old proxy (FL), the rest FL2.
    pub fl_share: f64,
    /// Time from a crash (or an operator restart) to serving again.
    pub restart_ms: u64,
    /// Share of FL2 nodes that end up wedged after a long crash loop (left for an operator).
    pub wedge_share: f64,
    /// Continuous crash looping after which a wedge-prone node wedges.
    pub wedge_after_ms: u64,
    /// What the old proxy does when its bot module is switched off.
    pub fl_module_off: ModuleOff,
}

/// What a proxy does with a request while its bot module is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleOff {
    /// Lets it pass unscored (the path works).
    Unscored,
    /// Fails it with a 5xx (the never-exercised path of 5 December 2025).
    Error,
}

/// The customers' rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Customers {
    /// Share of requests whose zone blocks bots.
    pub block_rule_share: f64,
    /// Such zones block scores below this.
    pub block_below: u8,
}

/// The ClickHouse cluster the feature list is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickHouse {
    /// Nodes; a generator run asks one of them, at random.
    pub nodes: u32,
    /// Columns that exist only in the shard-local `r0` tables.
    pub r0_only_columns: u32,
    /// When the first node takes the permission change (`None`: never).
    pub change_from: Option<u64>,
    /// Time between two nodes taking it.
    pub change_every_ms: u64,
}

/// The feature-file generator's schedule and the model's retraining.
#[derive(Debug, Clone, PartialEq)]
pub struct Generator {
    /// First run.
    pub from: u64,
    /// Time between runs.
    pub every_ms: u64,
    /// Time between two retrained models (new weights): `None` never.
    pub retrain_every_ms: Option<u64>,
    /// Largest relative change of a weight at a retrain.
    pub weight_drift: f64,
    /// The naive push reaches every node within this long.
    pub propagation_ms: u64,
}

/// How rampart's control plane rolls files out (the runs with a staged rollout).
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// How long the whole fleet is watched after the last wave before the rollout succeeds
    /// and its version is blessed ([`rampart_rollout::DEFAULT_WATCH_MS`], as in the
    /// production policy, unless the scenario says; 0: no watch).
    pub watch_ms: u64,
}

/// One timeline event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When.
    pub at: u64,
    /// What happens.
    pub action: Action,
    /// What the report says about it.
    pub note: Option<String>,
}

/// What an event does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing: a line on the report's timeline.
    Note,
    /// No more generator runs.
    StopGeneration,
    /// Generator runs again.
    ResumeGeneration,
    /// An operator puts the last good file into distribution by hand.
    PushLastGood,
    /// An operator tells every node to go back to its own last-known-good file (which is the
    /// bad one if the bad one soaked long enough to be promoted).
    RollbackLastGood,
    /// An operator restarts nodes.
    Restart {
        /// Which nodes.
        target: RestartTarget,
        /// Share of those restarted (the first ones by id, rounded up).
        share: f64,
    },
    /// The bot module's kill switch, pushed to the whole fleet at once.
    KillSwitch {
        /// On (`true`) or off.
        enabled: bool,
    },
    /// PoPs lose the control plane (no files, no switches, no heartbeats) for a while.
    Partition {
        /// How many PoPs (the last ones by name).
        pops: u32,
        /// For how long.
        duration_ms: u64,
    },
}

/// Which nodes an operator restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartTarget {
    /// Nodes that serve errors (down, wedged, crash looping).
    Unhealthy,
    /// Every node.
    All,
}

/// Why a scenario cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Neither a built-in name nor a readable file.
    #[error("no scenario {name:?}: not built in ({builtin}) and not a readable file: {source}")]
    NotFound {
        /// What was asked for.
        name: String,
        /// The built-in names.
        builtin: String,
        /// Why the file could not be read.
        source: std::io::Error,
    },
    /// Larger than [`MAX_SCENARIO_BYTES`].
    #[error("scenario file is over {MAX_SCENARIO_BYTES} bytes")]
    TooLarge,
    /// Not TOML of this format.
    #[error("scenario is not valid: {0}")]
    Toml(#[from] toml::de::Error),
    /// A time or duration that cannot be read.
    #[error("scenario field `{field}`: {source}")]
    Clock {
        /// The field.
        field: String,
        /// Why.
        source: ClockError,
    },
    /// A value out of its bounds.
    #[error("scenario field `{field}` {problem}")]
    Bound {
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    title: String,
    #[serde(default)]
    description: String,
    date: String,
    start: String,
    end: String,
    #[serde(default)]
    seed: u64,
    fleet: RawFleet,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    customers: RawCustomers,
    #[serde(default)]
    clickhouse: RawClickHouse,
    #[serde(default)]
    generator: RawGenerator,
    #[serde(default)]
    rollout: RawRollout,
    #[serde(default, rename = "event")]
    events: Vec<RawEvent>,
    #[serde(default, rename = "fault")]
    faults: Vec<RawFault>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFleet {
    pops: u32,
    nodes_per_pop: u32,
    regions: u32,
    requests_per_node: f64,
    pop_weight_spread: f64,
    bot_share: f64,
    bot_share_spread: f64,
    canary_pops: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawProxy {
    fl_share: f64,
    restart: String,
    wedge_share: f64,
    wedge_after: String,
    fl_module_off: ModuleOff,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCustomers {
    block_rule_share: f64,
    block_below: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawClickHouse {
    nodes: u32,
    r0_only_columns: u32,
    change_from: Option<String>,
    change_every: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawGenerator {
    from: Option<String>,
    every: String,
    retrain_every: Option<String>,
    weight_drift: f64,
    propagation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRollout {
    watch: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    share: Option<f64>,
    #[serde(default)]
    target: Option<RestartTarget>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    pops: Option<u32>,
    #[serde(default)]
    duration: Option<String>,
}

// === impl Raw* defaults ===

impl Default for RawFleet {
    fn default() -> Self {
        RawFleet {
            pops: 330,
            nodes_per_pop: 4,
            regions: 6,
            requests_per_node: 1_000.0,
            pop_weight_spread: 0.5,
            bot_share: 0.3,
            bot_share_spread: 0.03,
            canary_pops: 1,
        }
    }
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            fl_share: 0.25,
            restart: "10s".to_owned(),
            wedge_share: 0.0,
            wedge_after: "20m".to_owned(),
            fl_module_off: ModuleOff::Unscored,
        }
    }
}

impl Default for RawCustomers {
    fn default() -> Self {
        RawCustomers {
            block_rule_share: 0.3,
            block_below: 30,
        }
    }
}

impl Default for RawClickHouse {
    fn default() -> Self {
        RawClickHouse {
            nodes: 1,
            r0_only_columns: 0,
            change_from: None,
            change_every: "5m".to_owned(),
        }
    }
}

impl Default for RawGenerator {
    fn default() -> Self {
        RawGenerator {
            from: None,
            every: "5m".to_owned(),
            retrain_every: None,
            weight_drift: 0.0,
            propagation: "5s".to_owned(),
        }
    }
}

// === impl Scenario ===

impl Scenario {
    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::from_toml(text);
        }
        let path = Path::new(name_or_path);
        let not_found = |source| ScenarioError::NotFound {
            name: name_or_path.to_owned(),
            builtin: BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            source,
        };
        let file = std::fs::File::open(path).map_err(not_found)?;
        let mut text = String::new();
        file.take(MAX_SCENARIO_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(not_found)?;
        if text.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::TooLarge);
        }
        Scenario::from_toml(&text)
    }

    /// Reads and checks a scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        if text.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::TooLarge);
        }
        let raw: RawScenario = toml::from_str(text)?;
        Scenario::try_from(raw)
    }

    /// Every node of the fleet.
    pub fn node_count(&self) -> usize {
        (self.fleet.pops as usize).saturating_mul(self.fleet.nodes_per_pop as usize)
    }

    /// The same scenario on another fleet size (from the command line); the result is checked
    /// like a file.
    pub fn resized(
        mut self,
        pops: Option<u32>,
        nodes_per_pop: Option<u32>,
    ) -> Result<Scenario, ScenarioError> {
        if let Some(p) = pops {
            self.fleet.pops = p;
        }
        if let Some(n) = nodes_per_pop {
            self.fleet.nodes_per_pop = n;
        }
        check_fleet(&self.fleet)?;
        Ok(self)
    }
}

impl TryFrom<RawScenario> for Scenario {
    type Error = ScenarioError;

    fn try_from(raw: RawScenario) -> Result<Self, Self::Error> {
        let calendar = Calendar::parse(&raw.date).map_err(clock("date"))?;
        let start = parse_time_of_day(&raw.start).map_err(clock("start"))?;
        let end = parse_time_of_day(&raw.end).map_err(clock("end"))?;
        if end <= start || end >= DAY {
            return bound("end", "must be after start, on the same day");
        }
        if raw.name.is_empty() || raw.name.len() > 64 {
            return bound("name", "must be 1 to 64 bytes");
        }
        let f = raw.fleet;
        let fleet = Fleet {
            pops: f.pops,
            nodes_per_pop: f.nodes_per_pop,
            regions: f.regions,
            requests_per_node: f.requests_per_node,
            pop_weight_spread: f.pop_weight_spread,
            bot_share: f.bot_share,
            bot_share_spread: f.bot_share_spread,
            canary_pops: f.canary_pops,
        };
        check_fleet(&fleet)?;
        let p = raw.proxy;
        let proxy = Proxy {
            fl_share: share("proxy.fl_share", p.fl_share)?,
            restart_ms: parse_duration(&p.restart).map_err(clock("proxy.restart"))?,
            wedge_share: share("proxy.wedge_share", p.wedge_share)?,
            wedge_after_ms: parse_duration(&p.wedge_after).map_err(clock("proxy.wedge_after"))?,
            fl_module_off: p.fl_module_off,
        };
        if proxy.restart_ms == 0 {
            return bound("proxy.restart", "must be longer than 0");
        }
        let c = raw.customers;
        let customers = Customers {
            block_rule_share: share("customers.block_rule_share", c.block_rule_share)?,
            block_below: c.block_below,
        };
        if !(1..=100).contains(&customers.block_below) {
            return bound("customers.block_below", "must be 1 to 100");
        }
        let ch = raw.clickhouse;
        if ch.nodes == 0 || ch.nodes > MAX_CLICKHOUSE_NODES {
            return bound(
                "clickhouse.nodes",
                &format!("must be 1 to {MAX_CLICKHOUSE_NODES}"),
            );
        }
        if ch.r0_only_columns > MAX_R0_ONLY_COLUMNS {
            return bound(
                "clickhouse.r0_only_columns",
                &format!("must be at most {MAX_R0_ONLY_COLUMNS}"),
            );
        }
        let mut clickhouse = ClickHouse {
            nodes: ch.nodes,
            r0_only_columns: ch.r0_only_columns,
            change_from: ch
                .change_from
                .as_deref()
                .map(parse_time_of_day)
                .transpose()
                .map_err(clock("clickhouse.change_from"))?,
            change_every_ms: parse_duration(&ch.change_every)
                .map_err(clock("clickhouse.change_every"))?,
        };
        if raw.faults.len() > MAX_FAULTS {
            return bound("fault", &format!("lists more than {MAX_FAULTS} faults"));
        }
        let faults = raw
            .faults
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                fault::check(
                    f,
                    &format!("fault[{i}]"),
                    |field, s| {
                        parse_time_of_day(s).map_err(|source| ScenarioError::Clock {
                            field: field.to_owned(),
                            source,
                        })
                    },
                    |field, s| {
                        parse_duration(s).map_err(|source| ScenarioError::Clock {
                            field: field.to_owned(),
                            source,
                        })
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        fold_duplicate_rows(&faults, &mut clickhouse)?;
        let g = raw.generator;
        let generator = Generator {
            from: g
                .from
                .as_deref()
                .map(parse_time_of_day)
                .transpose()
                .map_err(clock("generator.from"))?
                .unwrap_or(start),
            every_ms: parse_duration(&g.every).map_err(clock("generator.every"))?,
            retrain_every_ms: g
                .retrain_every
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(clock("generator.retrain_every"))?,
            weight_drift: share("generator.weight_drift", g.weight_drift)?,
            propagation_ms: parse_duration(&g.propagation)
                .map_err(clock("generator.propagation"))?,
        };
        if generator.every_ms < MIN_GENERATOR_EVERY_MS {
            return bound("generator.every", "must be at least 10s");
        }
        if generator.retrain_every_ms == Some(0) {
            return bound("generator.retrain_every", "must be longer than 0");
        }
        let rollout = Rollout {
            watch_ms: match raw.rollout.watch.as_deref() {
                Some(w) => parse_duration(w).map_err(clock("rollout.watch"))?,
                None => rampart_rollout::DEFAULT_WATCH_MS,
            },
        };
        if rollout.watch_ms > MAX_WATCH_MS {
            return bound("rollout.watch", "must be at most 24h");
        }
        if raw.events.len() > MAX_EVENTS {
            return bound("event", &format!("lists more than {MAX_EVENTS} events"));
        }
        let mut events = raw
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| event(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        // Stable: events at the same time keep their file order.
        events.sort_by_key(|e| e.at);
        Ok(Scenario {
            name: raw.name,
            title: raw.title,
            description: raw.description,
            calendar,
            date: raw.date,
            start,
            end,
            seed: raw.seed,
            fleet,
            proxy,
            customers,
            clickhouse,
            generator,
            rollout,
            events,
            faults,
        })
    }
}

/// The 18 November fault written as `[[fault]] kind = "duplicate_rows"` is the cluster's
/// permission change: the same fields as `[clickhouse] change_from`, `change_every` and
/// `r0_only_columns`, so both spellings replay the same day.
fn fold_duplicate_rows(faults: &[Fault], ch: &mut ClickHouse) -> Result<(), ScenarioError> {
    let mut dup = faults.iter().enumerate().filter_map(|(i, f)| match f.kind {
        FaultKind::DuplicateRows {
            every_ms,
            extra_columns,
        } => Some((i, f.at, every_ms, extra_columns)),
        _ => None,
    });
    let Some((i, at, every_ms, extra_columns)) = dup.next() else {
        return Ok(());
    };
    if let Some((j, ..)) = dup.next() {
        return bound(
            &format!("fault[{j}].kind"),
            "duplicate_rows may appear once (the cluster takes the change once)",
        );
    }
    if ch.change_from.is_some() {
        return bound(
            &format!("fault[{i}]"),
            "duplicate_rows and clickhouse.change_from say the same thing: keep one",
        );
    }
    if extra_columns > MAX_R0_ONLY_COLUMNS {
        return bound(
            &format!("fault[{i}].extra_columns"),
            &format!("must be at most {MAX_R0_ONLY_COLUMNS}"),
        );
    }
    ch.change_from = Some(at);
    ch.change_every_ms = every_ms;
    ch.r0_only_columns = extra_columns;
    Ok(())
}

fn check_fleet(f: &Fleet) -> Result<(), ScenarioError> {
    if f.pops == 0 || f.pops > MAX_POPS {
        return bound("fleet.pops", &format!("must be 1 to {MAX_POPS}"));
    }
    if f.nodes_per_pop == 0 || f.nodes_per_pop > MAX_NODES_PER_POP {
        return bound(
            "fleet.nodes_per_pop",
            &format!("must be 1 to {MAX_NODES_PER_POP}"),
        );
    }
    if u64::from(f.pops) * u64::from(f.nodes_per_pop) > MAX_NODES {
        return bound("fleet", &format!("has more than {MAX_NODES} nodes"));
    }
    if f.regions == 0 || f.regions > f.pops {
        return bound("fleet.regions", "must be 1 to the number of PoPs");
    }
    if !(f.requests_per_node.is_finite()
        && f.requests_per_node > 0.0
        && f.requests_per_node <= MAX_REQUESTS_PER_NODE)
    {
        return bound(
            "fleet.requests_per_node",
            &format!("must be above 0 and at most {MAX_REQUESTS_PER_NODE}"),
        );
    }
    share("fleet.pop_weight_spread", f.pop_weight_spread)?;
    share("fleet.bot_share", f.bot_share)?;
    share("fleet.bot_share_spread", f.bot_share_spread)?;
    if f.canary_pops >= f.pops {
        return bound("fleet.canary_pops", "must be fewer than the PoPs");
    }
    Ok(())
}

fn event(i: usize, e: RawEvent) -> Result<Event, ScenarioError> {
    let field = |name: &str| format!("event[{i}].{name}");
    let at = parse_time_of_day(&e.at).map_err(|source| ScenarioError::Clock {
        field: field("at"),
        source,
    })?;
    let action = match e.action.as_deref() {
        None | Some("note") => Action::Note,
        Some("stop_generation") => Action::StopGeneration,
        Some("resume_generation") => Action::ResumeGeneration,
        Some("push_last_good") => Action::PushLastGood,
        Some("rollback_last_good") => Action::RollbackLastGood,
        Some("restart") => Action::Restart {
            target: e.target.unwrap_or(RestartTarget::Unhealthy),
            share: share(&field("share"), e.share.unwrap_or(1.0))?,
        },
        Some("kill_switch") => Action::KillSwitch {
            enabled: e.enabled.ok_or_else(|| ScenarioError::Bound {
                field: field("enabled"),
                problem: "is required for a kill_switch".to_owned(),
            })?,
        },
        Some("partition") => Action::Partition {
            pops: e.pops.unwrap_or(1),
            duration_ms: parse_duration(e.duration.as_deref().unwrap_or("5m")).map_err(
                |source| ScenarioError::Clock {
                    field: field("duration"),
                    source,
                },
            )?,
        },
        Some(other) => {
            return Err(ScenarioError::Bound {
                field: field("action"),
                problem: format!(
                    "{other:?} is not one of note, stop_generation, resume_generation, \
                     push_last_good, rollback_last_good, restart, kill_switch, partition"
                ),
            });
        }
    };
    if let Some(n) = &e.note
        && n.len() > 512
    {
        return Err(ScenarioError::Bound {
            field: field("note"),
            problem: "must be at most 512 bytes".to_owned(),
        });
    }
    Ok(Event {
        at,
        action,
        note: e.note,
    })
}

fn share(field: &str, v: f64) -> Result<f64, ScenarioError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(ScenarioError::Bound {
            field: field.to_owned(),
            problem: "must be between 0 and 1".to_owned(),
        })
    }
}

fn bound<T>(field: &str, problem: &str) -> Result<T, ScenarioError> {
    Err(ScenarioError::Bound {
        field: field.to_owned(),
        problem: problem.to_owned(),
    })
}

fn clock(field: &'static str) -> impl Fn(ClockError) -> ScenarioError {
    move |source| ScenarioError::Clock {
        field: field.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{HOUR, MINUTE, SECOND};

    #[test]
    fn the_builtin_scenarios_parse() {
        for (name, text) in BUILTIN {
            let s = Scenario::from_toml(text).unwrap();
            assert_eq!(&s.name, name);
            assert!(s.end > s.start);
            assert!(s.events.windows(2).all(|w| w[0].at <= w[1].at));
        }
        let s = Scenario::load("nov18").unwrap();
        assert_eq!(s.node_count(), 1320);
        assert_eq!(s.clickhouse.change_from, Some(11 * HOUR + 5 * MINUTE));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let base = "name='x'\ntitle='t'\ndate='2025-11-18'\nstart='11:00'\nend='12:00'\n[fleet]\n";
        assert!(Scenario::from_toml(base).is_ok());
        for (extra, what) in [
            ("pops = 0\n", "fleet.pops"),
            ("bot_share = 2.0\n", "fleet.bot_share"),
            ("canary_pops = 400\n", "fleet.canary_pops"),
            ("popz = 3\n", "unknown field `popz`"),
        ] {
            let e = Scenario::from_toml(&format!("{base}{extra}")).unwrap_err();
            // Each error names its own field: any TOML error would not do.
            let msg = e.to_string();
            assert!(msg.contains(what), "{extra:?}: {msg}");
        }
        let bad_event = format!("{base}[[event]]\nat='11:10'\naction='explode'\n");
        let msg = Scenario::from_toml(&bad_event).unwrap_err().to_string();
        assert!(msg.contains("explode"), "{msg}");
        let bad_time = base.replace("end='12:00'", "end='10:00'");
        let msg = Scenario::from_toml(&bad_time).unwrap_err().to_string();
        assert!(msg.contains("end"), "{msg}");
    }

    #[test]
    fn the_watch_defaults_to_the_production_policy_and_is_bounded() {
        let base = "name='x'\ntitle='t'\ndate='2025-11-18'\nstart='11:00'\nend='12:00'\n[fleet]\n";
        let s = Scenario::from_toml(base).unwrap();
        assert_eq!(s.rollout.watch_ms, rampart_rollout::DEFAULT_WATCH_MS);
        let s = Scenario::from_toml(&format!("{base}[rollout]\nwatch = '90s'\n")).unwrap();
        assert_eq!(s.rollout.watch_ms, 90 * SECOND);
        for (watch, what) in [("'25h'", "at most"), ("'soon'", "rollout.watch")] {
            let text = format!("{base}[rollout]\nwatch = {watch}\n");
            let msg = Scenario::from_toml(&text).unwrap_err().to_string();
            assert!(msg.contains(what) && msg.contains("rollout.watch"), "{msg}");
        }
        // nov18 and dec5 keep their results: no watch.
        for name in ["nov18", "dec5"] {
            assert_eq!(Scenario::load(name).unwrap().rollout.watch_ms, 0, "{name}");
        }
        let afd = Scenario::load("afd-oct29").unwrap();
        assert_eq!(afd.rollout.watch_ms, 10 * MINUTE);
    }

    #[test]
    fn a_missing_scenario_names_the_builtin_ones() {
        let e = Scenario::load("/no/such/scenario.toml").unwrap_err();
        assert!(e.to_string().contains("nov18"), "{e}");
    }

    #[test]
    fn resizing_is_checked() {
        let s = Scenario::load("nov18").unwrap();
        assert_eq!(
            s.clone().resized(Some(330), Some(50)).unwrap().node_count(),
            16_500
        );
        assert!(s.resized(Some(0), None).is_err());
    }
}
