//! The bot module in one call: a shared rate table, extraction and the model.

use crate::features::{AgentMemo, Features, extract, extract_memo};
use crate::model::Model;
use crate::rate::RateTable;
use crate::request::RequestView;
use crate::score::{Score, Unscored};

/// What the request path holds for the bot module besides the model: the rate table, shared
/// by every worker thread (`&self` everywhere).
#[derive(Debug, Default)]
pub struct Scorer {
    rate: RateTable,
}

// === impl Scorer ===

impl Scorer {
    /// A scorer with a default-sized rate table and a random seed.
    pub fn new() -> Self {
        Scorer {
            rate: RateTable::new(),
        }
    }

    /// A scorer over the given rate table (a fixed seed, another size).
    pub fn with_rate(rate: RateTable) -> Self {
        Scorer { rate }
    }

    /// The rate table.
    pub fn rate(&self) -> &RateTable {
        &self.rate
    }

    /// Every feature of `req` (and counts it in the rate table).
    pub fn features(&self, req: &RequestView<'_>) -> Features {
        extract(req, &self.rate)
    }

    /// [`Scorer::score`] reusing the user-agent scan kept in `memo` (one per client
    /// connection); the same score as [`Scorer::score`].
    pub fn score_memo(
        &self,
        model: Option<&Model>,
        req: &RequestView<'_>,
        memo: &mut AgentMemo,
    ) -> Score {
        match model {
            Some(model) => model.score(&extract_memo(req, &self.rate, memo)),
            None => Score::Unscored(Unscored::NoModel),
        }
    }

    /// Scores `req` with `model`, or [`Unscored::NoModel`] without one. Without a model the
    /// request is not extracted, so it is not counted in the rate table either.
    pub fn score(&self, model: Option<&Model>, req: &RequestView<'_>) -> Score {
        match model {
            Some(model) => model.score(&self.features(req)),
            None => Score::Unscored(Unscored::NoModel),
        }
    }
}
