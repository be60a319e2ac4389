//! One edge node: what it serves, what it tells the control plane, how it fails.
//!
//! - [`naive`]: Cloudflare's proxies on 18 November. FL2 panics on a file over its 200
//!   preallocated features and restarts into the same file; the old FL scores every request 0.
//!   Optionally supervised by rampart's crash-loop sentinel ([`rampart_ingest::sentinel::decide`]
//!   over a journal of the same events the ingest store writes).
//! - [`guarded`]: rampart's edge: a real [`rampart_ingest::Store`] per node, on its own data
//!   dir, compiling files with the real [`rampart_score::Model`].

pub mod guarded;
pub mod naive;

use rampart_rollout::{Apply, BeatDeath};

use crate::traffic::ModelId;

/// How a node answers requests right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// The process is down (crashed, restarting, wedged): every request fails.
    Down,
    /// Up, but every request fails (the 5 December path).
    Failing,
    /// Scored by this model.
    Scored(ModelId),
    /// The old proxy on a file it could not load: every score is 0. The model that failed to
    /// load is remembered for the report.
    ScoreZero,
    /// Passed unscored (no model, module off, safe mode).
    Unscored,
}

/// A node of either kind.
#[derive(Debug)]
pub enum Node {
    /// The naive proxy.
    Naive(Box<naive::Proxy>),
    /// rampart's edge.
    Guarded(Box<guarded::Edge>),
}

/// What a node reports besides its traffic, taken at each heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The outcome of the last apply since the previous beat.
    pub apply: Option<Apply>,
    /// Restarts since the previous beat.
    pub restarts: u32,
    /// Deaths detected since the previous beat (at most [`MAX_DEATHS_PER_BEAT`]), each with
    /// the digest that was active: the evidence of the rollout's death gate.
    pub deaths: Vec<BeatDeath>,
}

/// Most deaths a node reports in one beat, as an edge does
/// (`rampart_api::limits::MAX_DEATHS_PER_BEAT`): an edge's store keeps the rest for the next
/// beats; a naive proxy, which detects at most one death per restart (10 s by default) and
/// beats every second, drops any past it.
pub const MAX_DEATHS_PER_BEAT: usize = 16;

// === impl Serving ===

impl Serving {
    /// Whether requests fail.
    pub fn fails(self) -> bool {
        matches!(self, Serving::Down | Serving::Failing)
    }
}
