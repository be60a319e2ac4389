//! The bot module on the request path: the store's snapshot (through its read-only
//! [`Reader`]), rampart-score's extractors and plan, behind the proxy's [`Module`] seam.

use rampart_artifact::Validated;
use rampart_ingest::{Compiler, Mode, Reader};
use rampart_score::{CompileError, Plan, RequestView, Score, Scorer, Unscored};

use crate::metrics::UnscoredReason;
use crate::module::{Inbound, Module, Scoring};

/// Compiles a validated file into a [`Plan`] with room for the contract's `max_features`.
#[derive(Debug, Clone, Copy)]
pub struct PlanCompiler {
    room: usize,
}

/// The bot module: reads the store's snapshot once per request and scores with its plan.
#[derive(Debug)]
pub struct BotModule {
    reader: Reader<Plan>,
    scorer: Scorer,
}

// === impl PlanCompiler ===

impl PlanCompiler {
    /// Reserves room for `room` features (the contract's `max_features`).
    pub fn new(room: usize) -> Self {
        PlanCompiler { room }
    }
}

impl Compiler for PlanCompiler {
    type Plan = Plan;
    type Error = CompileError;

    fn compile(&self, validated: &Validated) -> Result<Plan, CompileError> {
        Plan::compile(validated, self.room)
    }
}

// === impl BotModule ===

impl BotModule {
    /// The module over the store's reader, with a default-sized rate table.
    pub fn new(reader: Reader<Plan>) -> Self {
        BotModule {
            reader,
            scorer: Scorer::new(),
        }
    }
}

impl Module for BotModule {
    fn evaluate(&self, request: &Inbound<'_>) -> Scoring {
        // One load: the plan, the kill switch and the mode of this request belong together.
        let snapshot = self.reader.load();
        if !snapshot.module_enabled || snapshot.mode != Mode::Normal {
            return Scoring::Unscored(UnscoredReason::Disabled);
        }
        let Some(plan) = snapshot.scoring_plan() else {
            return Scoring::Unscored(UnscoredReason::NoPlan);
        };
        let parts = request.parts;
        let view = RequestView {
            method: &parts.method,
            version: parts.version,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            client: request.client,
            now_ms: request.now_ms,
        };
        // The connection's memo, unless a panic left it borrowed (then just scan again).
        let memo = request.agent_memo.and_then(|m| m.try_borrow_mut().ok());
        let score = match memo {
            Some(mut memo) => self.scorer.score_memo(Some(plan), &view, &mut memo),
            None => self.scorer.score(Some(plan), &view),
        };
        match score {
            Score::Scored(score) => Scoring::Scored(score),
            Score::Unscored(Unscored::NoPlan) => Scoring::Unscored(UnscoredReason::NoPlan),
            Score::Unscored(Unscored::ModuleOff) => Scoring::Unscored(UnscoredReason::Disabled),
            Score::Unscored(Unscored::ModuleError) => Scoring::Failed,
        }
    }

    fn record(&self, module_error: bool) {
        self.reader.record_request(module_error);
    }
}
