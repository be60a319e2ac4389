//! The rampart fleet simulator: replays an incident (18 November 2025 by default) on a
//! virtual clock against the naive pipeline, against rampart with every layer, and against
//! each layer alone, and reports what the fleet's users saw.
//!
//! Every layer is the real code: the generator's [`Job`](rampart_generate::Job) with its
//! guards, [`rampart_artifact::check`] for the control plane's validation, the control
//! plane's own rollout runner ([`rampart_rollout::runner`]) with its gates and its watch
//! after the last wave, blessing by [`Rollout::blessing`](rampart_rollout::Rollout::blessing), one
//! [`rampart_ingest::Store`] per edge node fed through [`offer`](rampart_ingest::Store::offer)
//! as the edge's agent does (blessed versions to [`set_blessed`](rampart_ingest::Store::set_blessed),
//! deaths from [`pending_deaths`](rampart_ingest::Store::pending_deaths) into heartbeats),
//! with the real [`rampart_score::Model`], the crash-loop sentinel's
//! [`decide`](rampart_ingest::sentinel::decide). What is modelled is what is not rampart: the
//! ClickHouse cluster, the naive proxies (FL2 panics, FL scores 0), traffic volume, operators.
//!
//! # Layout
//! - [`clock`]: virtual time, the scenario's calendar.
//! - [`scenario`]: the TOML format and the built-in scenarios (`scenarios/*.toml`).
//! - [`fault`]: `[[fault]]` entries and the marks they leave on published files.
//! - [`source`]: the ClickHouse cluster and the retrained model.
//! - [`producer`]: the naive generator and rampart's.
//! - [`control`]: validation, instant push or staged rollout.
//! - [`node`]: the naive proxy and rampart's edge; [`fleet`]: PoPs, deliveries, traffic.
//! - [`traffic`]: the scored request sample.
//! - [`mode`]: naive, rampart, ablation, and the layers.
//! - [`replay`](mod@replay): the loop; [`report`]: summary.json, SVG charts, report.html.
//!
//! # The decision that matters
//! **Sample the traffic, not the fleet.** Every node is a full instance (its own store on its
//! own data dir, its own sentinel journal, its own heartbeats), because the layers under test
//! are per node and their failures are per node. What is sampled is the traffic: a few
//! thousand realistic requests per 5-minute bucket, scored once by each model in use, scaled to
//! each node's rate and its PoP's bot share. A score is a pure function of the model and the
//! request, so this is exact for the sample and costs nothing per node.

pub mod clock;
pub mod control;
pub mod fault;
pub mod fleet;
pub mod mode;
pub mod node;
pub mod producer;
pub mod replay;
pub mod report;
pub mod scenario;
pub mod source;
pub mod traffic;

pub use mode::{Layer, Layers, Mode, Variant};
pub use replay::{Progress, SimError, replay};
pub use report::Report;
pub use report::summary::Summary;
pub use scenario::{Scenario, ScenarioError};
