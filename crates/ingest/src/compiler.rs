//! The seam between ingestion and the bot module: turning a validated file into a model.

use rampart_artifact::Validated;

/// Compiles a validated feature file into what the request path runs (the edge implements it
/// with `rampart_score::Model::compile`; tests use a trivial one).
///
/// A compile error is a rejection like any other: the current model keeps serving. A panic in
/// `compile` is caught by the store and rejected the same way, so a compiler bug cannot take
/// down the thread that applies files.
pub trait Compiler: Send + Sync + 'static {
    /// What the request path runs.
    type Model: Send + Sync + 'static;
    /// Why a file does not compile (for example: it does not fit the preallocated room).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Builds the model for `validated`.
    fn compile(&self, validated: &Validated) -> Result<Self::Model, Self::Error>;
}
