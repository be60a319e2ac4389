//! The rampart producer: turns a feature source into a signed feature file, and refuses to
//! publish one that would break a consumer.
//!
//! This is where the 18 November 2025 file was born: an unscoped `system.columns` query
//! returned every column twice once a second database became visible, and the doubled file
//! went out to the whole fleet. Here the query names its database, duplicates are an error,
//! every consumer contract is checked before publishing, a big jump against the last published
//! file is held for approval, and a good/bad/good alternation freezes publishing.
//!
//! # Layout
//! - [`source`]: [`Source`]: ClickHouse over HTTP ([`source::clickhouse`]) or a catalog file
//!   (the embedded one by default) → a [`Candidate`].
//! - [`catalog`]: [`Catalog`], the model file format, and the embedded catalog.
//! - [`guard`]: the producer guards, pure functions → [`Refusal`]s.
//! - [`state`]: the state directory (last published file, run history, freeze, counters).
//! - [`job`]: [`Job::run_once`]: one run, source to signed file, and its [`Outcome`].
//! - [`publish`]: `--publish URL`: the signed file to the control plane (`POST /v1/artifacts`).
//! - [`schedule`]: `--every`: runs on a cadence until a signal.
//! - [`cli`]: `rampart generate`'s flags and run (once, or `--every`), dispatched to by the binary.
//!
//! The one decision that matters: **guards are pure and all of them run.** Each guard is a
//! function of the candidate and of what came before (the last published file, the digests
//! of the last runs), so it is unit-tested without a database, and a run reports every reason
//! at once; nothing is written unless none refuses.

pub mod catalog;
pub mod cli;
pub mod guard;
pub mod job;
pub mod publish;
pub mod schedule;
pub mod source;
pub mod state;

pub use catalog::{Catalog, CatalogError};
pub use guard::Refusal;
pub use job::{GenerateError, Job, Outcome, Output, OutputCheck};
pub use source::{Candidate, Source, SourceError, Weights};
pub use state::{State, StateDir, StateError};
