//! The bot module on the request path: the store's snapshot (through its read-only
//! [`Reader`]), rampart-score's extractors and model, behind the proxy's [`Module`] seam.

use rampart_artifact::Validated;
use rampart_ingest::{Compiler, Mode, Reader};
use std::sync::Arc;

use rampart_score::{CompileError, Model, RequestView, Score, Scorer, Unscored, extract_memo};

use crate::sample::RequestSample;

use crate::metrics::UnscoredReason;
use crate::module::{Inbound, Module, Scoring};

/// Compiles a validated file into a [`Model`] with room for the contract's `max_features`.
#[derive(Debug, Clone, Copy)]
pub struct ModelCompiler {
    room: usize,
}

/// The bot module: reads the store's snapshot once per request and scores with its model.
#[derive(Debug)]
pub struct BotModule {
    reader: Reader<Model>,
    scorer: Scorer,
    sample: Arc<RequestSample>,
}

// === impl ModelCompiler ===

impl ModelCompiler {
    /// Reserves room for `room` features (the contract's `max_features`).
    pub fn new(room: usize) -> Self {
        ModelCompiler { room }
    }
}

impl Compiler for ModelCompiler {
    type Model = Model;
    type Error = CompileError;

    fn compile(&self, validated: &Validated) -> Result<Model, CompileError> {
        Model::compile(validated, self.room)
    }
}

// === impl BotModule ===

impl BotModule {
    /// The module over the store's reader, with a default-sized rate table.
    pub fn new(reader: Reader<Model>) -> Self {
        BotModule {
            reader,
            scorer: Scorer::new(),
            sample: Arc::default(),
        }
    }

    /// The sample of recent scored requests ([`RequestSample`]).
    pub fn sample(&self) -> &Arc<RequestSample> {
        &self.sample
    }
}

impl Module for BotModule {
    fn evaluate(&self, request: &Inbound<'_>) -> Scoring {
        // One load: the model, the kill switch and the mode of this request belong together.
        let snapshot = self.reader.load();
        if !snapshot.module_enabled || snapshot.mode != Mode::Normal {
            return Scoring::Unscored(UnscoredReason::Disabled);
        }
        let Some(model) = snapshot.scoring_model() else {
            return Scoring::Unscored(UnscoredReason::NoModel);
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
        let features = match memo {
            Some(mut memo) => extract_memo(&view, self.scorer.rate(), &mut memo),
            None => self.scorer.features(&view),
        };
        let score = model.score(&features);
        self.sample.offer(&features, score);
        match score {
            Score::Scored(score) => Scoring::Scored(score),
            Score::Unscored(Unscored::NoModel) => Scoring::Unscored(UnscoredReason::NoModel),
            Score::Unscored(Unscored::ModuleOff) => Scoring::Unscored(UnscoredReason::Disabled),
            Score::Unscored(Unscored::ModuleError) => Scoring::Failed,
        }
    }

    fn record(&self, module_error: bool) {
        self.reader.record_request(module_error);
    }
}
