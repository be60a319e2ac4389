//! The rampart bot module: score a request from 1 (surely automated) to 99 (surely human),
//! or leave it unscored, with a model that arrives as a feature file.
//!
//! Pure: no I/O, no clock (time comes in with the request), no async. The edge hands in
//! hyper's request parts as a [`RequestView`]; the ingest layer compiles each accepted
//! feature file into a [`Model`].
//!
//! The one decision that matters: **a file that does not fit is a value, not a panic.** On
//! 18 November 2025 Cloudflare's FL2 proxy `unwrap()`ed the error of appending more than its
//! 200 preallocated features and crash-looped. Here [`Model::compile`] reserves the room the
//! contract declares and returns [`CompileError::TooManyFeatures`] (or an unknown name, a
//! type mismatch, a duplicate, a non-finite weight), so the caller keeps the model it has.
//! Scoring itself cannot fail loudly either: a non-finite sum is
//! [`Unscored::ModuleError`], and "unscored" is never score 0.
//!
//! # Layout
//! - [`catalog`]: every extractor by name and ClickHouse type ([`CATALOG`], [`FeatureId`]),
//!   and the [`edge_contract`] built from it.
//! - [`request`]: [`RequestView`], the borrowed request.
//! - [`rate`]: [`RateTable`], per-client request counts in bounded memory, lock-free.
//! - [`features`]: [`Features`] and [`extract`]: one pass over the user agent, one over the
//!   headers, no heap allocation.
//! - [`model`]: [`Model`] (a feature file compiled for the request path) and [`CompileError`].
//! - [`score`]: [`Score`], [`Unscored`], [`blocks`].
//! - [`scorer`]: [`Scorer`], a rate table and the steps above in one call.
//! - [`example`]: a hand-weighted example model until a fitted one exists.

pub mod catalog;
pub mod example;
pub mod features;
pub mod model;
pub mod rate;
pub mod request;
pub mod score;
pub mod scorer;

pub use catalog::{CATALOG, Extractor, FeatureId, edge_contract, lookup};
pub use example::example_document;
pub use features::{AgentMemo, Features, MAX_MEMO_UA, extract, extract_memo};
pub use model::{CompileError, Model};
pub use rate::RateTable;
pub use request::RequestView;
pub use score::{Score, Unscored, blocks};
pub use scorer::Scorer;
