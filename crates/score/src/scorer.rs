//! The bot module in one call: a shared rate table, extraction and the model.

use crate::features::{AgentMemo, Features, extract, extract_memo};
use crate::model::{Score, Unscored};
use crate::plan::Plan;
use crate::rate::RateTable;
use crate::request::RequestView;

/// What the request path holds for the bot module besides the plan: the rate table, shared
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
        plan: Option<&Plan>,
        req: &RequestView<'_>,
        memo: &mut AgentMemo,
    ) -> Score {
        match plan {
            Some(plan) => plan.score(&extract_memo(req, &self.rate, memo)),
            None => Score::Unscored(Unscored::NoPlan),
        }
    }

    /// Scores `req` with `plan`, or [`Unscored::NoPlan`] without one. Without a plan the
    /// request is not extracted, so it is not counted in the rate table either.
    pub fn score(&self, plan: Option<&Plan>, req: &RequestView<'_>) -> Score {
        match plan {
            Some(plan) => plan.score(&self.features(req)),
            None => Score::Unscored(Unscored::NoPlan),
        }
    }
}
