//! What runs: the naive pipeline, rampart with every layer, or each layer alone.

use serde::Serialize;

/// The `--mode` of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The pipeline of 18 November 2025.
    Naive,
    /// Every layer of rampart on (with the naive run beside it, for the charts).
    Rampart,
    /// Each layer alone on top of the naive pipeline (with the naive run beside them).
    Ablation,
}

/// A layer of defence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The generator's query names its database.
    ScopedQuery,
    /// The producer guards (duplicates, contracts, delta, flapping).
    GeneratorGuards,
    /// The control plane validates every published file against every contract.
    ControlValidation,
    /// Shadow scoring: the candidate and the serving file score the embedded labelled sample,
    /// in the generator before it publishes and in the control plane before wave 0; a
    /// candidate beyond policy is held before any node is told.
    Shadow,
    /// Waves by fault domain with health gates (NACK, restarts, 5xx, module errors,
    /// heartbeats, convergence).
    CanaryGates,
    /// The edge's ingest store: verify, validate, compile or NACK and keep last-known-good.
    EdgeIngestion,
    /// The crash-loop sentinel: poison a version the process keeps dying after.
    Sentinel,
    /// The score-distribution gate of the rollout.
    ScoreShiftGate,
    /// The rollout watches the whole fleet after the last wave (restarts and the death gate
    /// over the deaths edges report) before it blesses the version.
    Watch,
    /// Edges promote a version to last-known-good only once the control plane blessed it.
    BlessedLkg,
    /// The sentinel's recurrence rule: deaths with one version active, whatever the uptime
    /// at each, poison it.
    Recurrence,
}

/// Which gates a staged rollout uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gates {
    /// Every gate.
    All,
    /// Every gate but the score shift.
    Health,
    /// Only the score shift.
    ScoreShift,
    /// Only restarts and deaths (what the watch judges a file that kills the process by).
    Watch,
    /// No gate can fail: waves only, with shadow scoring before wave 0 (the control plane's
    /// hold alone).
    Shadow,
}

/// The layers of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Layers {
    /// See [`Layer::ScopedQuery`].
    pub scoped_query: bool,
    /// See [`Layer::GeneratorGuards`].
    pub generator_guards: bool,
    /// See [`Layer::ControlValidation`].
    pub control_validation: bool,
    /// See [`Layer::Shadow`]: the generator's output check (when its guards run) and the
    /// control plane's hold before wave 0 (when files are rolled out).
    pub shadow: bool,
    /// A staged rollout with these gates (`None`: every file goes to the whole fleet at once).
    pub rollout: Option<Gates>,
    /// See [`Layer::EdgeIngestion`].
    pub edge_ingestion: bool,
    /// See [`Layer::Sentinel`] (on a guarded edge the store's own sentinel always runs).
    pub sentinel: bool,
    /// See [`Layer::Watch`]: the staged rollout watches after its last wave.
    pub watch: bool,
    /// See [`Layer::BlessedLkg`].
    pub blessed_lkg: bool,
    /// See [`Layer::Recurrence`] (in the store's sentinel on a guarded edge, in the
    /// supervisor's on a naive one).
    pub recurrence: bool,
}

/// One run of a replay: a name and its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// Short key (`naive`, `rampart`, `only_edge_ingestion`…).
    pub key: String,
    /// For people.
    pub label: String,
    /// The single layer it adds to the naive pipeline (ablation rows).
    pub layer: Option<Layer>,
    /// Its layers.
    pub layers: Layers,
}

// === impl Mode ===

impl Mode {
    /// Parses `naive`, `rampart` or `ablation`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "naive" => Some(Mode::Naive),
            "rampart" => Some(Mode::Rampart),
            "ablation" => Some(Mode::Ablation),
            _ => None,
        }
    }

    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Naive => "naive",
            Mode::Rampart => "rampart",
            Mode::Ablation => "ablation",
        }
    }

    /// The runs of this mode, the naive one first.
    pub fn variants(self) -> Vec<Variant> {
        let mut out = vec![Variant::naive()];
        match self {
            Mode::Naive => {}
            Mode::Rampart => out.push(Variant::rampart()),
            Mode::Ablation => out.extend(Layer::ALL.iter().map(|l| Variant::only(*l))),
        }
        out
    }
}

// === impl Layer ===

impl Layer {
    /// Every layer, in the order a file meets them.
    pub const ALL: &[Layer] = &[
        Layer::ScopedQuery,
        Layer::GeneratorGuards,
        Layer::ControlValidation,
        Layer::Shadow,
        Layer::CanaryGates,
        Layer::ScoreShiftGate,
        Layer::Watch,
        Layer::EdgeIngestion,
        Layer::Sentinel,
        Layer::Recurrence,
        Layer::BlessedLkg,
    ];

    /// A stable snake_case key.
    pub fn key(self) -> &'static str {
        match self {
            Layer::ScopedQuery => "scoped_query",
            Layer::GeneratorGuards => "generator_guards",
            Layer::ControlValidation => "control_validation",
            Layer::Shadow => "shadow",
            Layer::CanaryGates => "canary_gates",
            Layer::EdgeIngestion => "edge_ingestion",
            Layer::Sentinel => "sentinel",
            Layer::ScoreShiftGate => "score_shift_gate",
            Layer::Watch => "watch",
            Layer::BlessedLkg => "blessed_lkg",
            Layer::Recurrence => "recurrence",
        }
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Layer::ScopedQuery => "generator: query names its database",
            Layer::GeneratorGuards => "generator: producer guards",
            Layer::ControlValidation => "control plane: validation",
            Layer::Shadow => "shadow scoring before publish and before wave 0",
            Layer::CanaryGates => "rollout: canary and health gates",
            Layer::EdgeIngestion => "edge: ingestion with last-known-good",
            Layer::Sentinel => "edge: crash-loop sentinel",
            Layer::ScoreShiftGate => "rollout: score-shift gate",
            Layer::Watch => "rollout: watch after the last wave, with the death gate",
            Layer::BlessedLkg => "edge: last-known-good only when blessed",
            Layer::Recurrence => "edge: sentinel's recurrence rule",
        }
    }
}

// === impl Layers ===

impl Layers {
    /// Nothing on: the pipeline of 18 November.
    pub const NAIVE: Layers = Layers {
        scoped_query: false,
        generator_guards: false,
        control_validation: false,
        shadow: false,
        rollout: None,
        edge_ingestion: false,
        sentinel: false,
        watch: false,
        blessed_lkg: false,
        recurrence: false,
    };

    /// Everything on.
    pub const ALL: Layers = Layers {
        scoped_query: true,
        generator_guards: true,
        control_validation: true,
        shadow: true,
        rollout: Some(Gates::All),
        edge_ingestion: true,
        sentinel: true,
        watch: true,
        blessed_lkg: true,
        recurrence: true,
    };

    /// The naive pipeline plus `layer`.
    pub fn only(layer: Layer) -> Layers {
        let mut l = Layers::NAIVE;
        match layer {
            Layer::ScopedQuery => l.scoped_query = true,
            Layer::GeneratorGuards => l.generator_guards = true,
            Layer::ControlValidation => l.control_validation = true,
            Layer::Shadow => {
                l.shadow = true;
                l.rollout = Some(Gates::Shadow);
            }
            Layer::CanaryGates => l.rollout = Some(Gates::Health),
            Layer::EdgeIngestion => l.edge_ingestion = true,
            Layer::Sentinel => l.sentinel = true,
            Layer::ScoreShiftGate => l.rollout = Some(Gates::ScoreShift),
            Layer::Watch => {
                l.rollout = Some(Gates::Watch);
                l.watch = true;
            }
            Layer::BlessedLkg => l.blessed_lkg = true,
            Layer::Recurrence => l.recurrence = true,
        }
        l
    }

    /// Whether `layer` is on.
    pub fn has(&self, layer: Layer) -> bool {
        match layer {
            Layer::ScopedQuery => self.scoped_query,
            Layer::GeneratorGuards => self.generator_guards,
            Layer::ControlValidation => self.control_validation,
            Layer::Shadow => self.shadow && (self.generator_guards || self.rollout.is_some()),
            Layer::CanaryGates => matches!(self.rollout, Some(Gates::All | Gates::Health)),
            Layer::EdgeIngestion => self.edge_ingestion,
            Layer::Sentinel => self.sentinel || self.edge_ingestion,
            Layer::ScoreShiftGate => matches!(self.rollout, Some(Gates::All | Gates::ScoreShift)),
            Layer::Watch => self.watch && self.rollout.is_some(),
            Layer::BlessedLkg => self.blessed_lkg,
            Layer::Recurrence => self.recurrence,
        }
    }
}

// === impl Variant ===

impl Variant {
    /// The naive pipeline.
    pub fn naive() -> Variant {
        Variant {
            key: "naive".to_owned(),
            label: "naive pipeline (18 November 2025)".to_owned(),
            layer: None,
            layers: Layers::NAIVE,
        }
    }

    /// Every layer.
    pub fn rampart() -> Variant {
        Variant {
            key: "rampart".to_owned(),
            label: "rampart, every layer".to_owned(),
            layer: None,
            layers: Layers::ALL,
        }
    }

    /// The naive pipeline plus one layer.
    pub fn only(layer: Layer) -> Variant {
        Variant {
            key: format!("only_{}", layer.key()),
            label: format!("only {}", layer.label()),
            layer: Some(layer),
            layers: Layers::only(layer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ablation_row_has_exactly_its_layer() {
        for layer in Layer::ALL {
            let l = Layers::only(*layer);
            for other in Layer::ALL {
                // The edge's store runs its own sentinel.
                let expected =
                    other == layer || (*layer == Layer::EdgeIngestion && *other == Layer::Sentinel);
                assert_eq!(l.has(*other), expected, "{layer:?} / {other:?}");
            }
        }
        for layer in Layer::ALL {
            assert!(Layers::ALL.has(*layer));
            assert!(!Layers::NAIVE.has(*layer));
        }
    }

    #[test]
    fn modes_parse_and_list_their_runs() {
        assert_eq!(Mode::parse("rampart"), Some(Mode::Rampart));
        assert_eq!(Mode::parse("x"), None);
        assert_eq!(Mode::Naive.variants().len(), 1);
        assert_eq!(Mode::Rampart.variants().len(), 2);
        assert_eq!(Mode::Ablation.variants().len(), 1 + Layer::ALL.len());
    }
}
