//! Guarded ingestion of feature files on the edge: whatever arrives, the request path keeps
//! serving, and a bad file fails small.
//!
//! On 18 November 2025 a feature file with every feature twice reached Cloudflare's proxy,
//! which `unwrap()`-panicked on it and restarted into the same file, again and again. Here a
//! file comes in one way, [`Store::offer`]: a size bound before reading, the signature and
//! digest, the edge's [`Contract`](rampart_artifact::Contract), the version rule of its
//! [`Channel`] (the watch dir must be newer; the control plane may send the node back to a
//! version it served), the sentinel's poisoned list, and the bot module's own [`Compiler`];
//! only then is it swapped in. Any failure leaves the version serving in place and becomes an
//! [`ApplyOutcome::Rejected`], counted, shown on `/status` and logged once ([`LogLimiter`]).
//!
//! Around that: a version that served its soak (and, with a control plane, that the fleet
//! blessed: [`Store::set_blessed`]) is written to disk as **last-known-good**, a history of
//! the last three, and the newest is served first at the next start; a **crash-loop
//! sentinel** reads a boot journal and poisons a version the process keeps dying after, soon
//! after loading it or at any uptime but again and again (then turns the module off), and
//! the same journal yields the **deaths** the edge reports ([`Store::pending_deaths`]); a **kill
//! switch** and **break glass** (force last-known-good, pin an archived version) work with
//! nothing but the local data dir.
//!
//! # Layout
//! - [`store`]: [`Store`], the one writer: boot, [`Store::offer`] and the version rule
//!   (`store/offer`), tick, break glass and the kill switch apart (`store/break_glass`), and
//!   [`Reader`], the request path's read-only handle (`store/reader`).
//! - [`snapshot`]: [`Snapshot`], everything the request path reads, behind one `ArcSwap`.
//! - [`compiler`]: the [`Compiler`] seam to the bot module (no dependency on the scorer).
//! - [`outcome`]: [`ApplyOutcome`] and [`Rejection`].
//! - [`sentinel`]: the pure crash-loop decision; [`journal`]: its files.
//! - [`soak`], `lkg`, `archive`: last-known-good promotion, its history on disk, the pin
//!   archive.
//! - [`isolation`]: the one way a panic is caught, so the edge's panic hook can tell a
//!   caught panic from one that kills the process.
//! - [`isolation`]: the one way a panic is caught, so the edge's panic hook can tell a
//!   caught panic from one that kills the process.
//! - [`limiter`]: rate-limited logging. [`counters`] and [`status`]: what operators see.
//! - [`config`]: every knob with its named default, and the data-dir layout; [`disk`]: the
//!   capped read and the atomic write everything uses.
//!
//! # The decision that matters
//! Everything the request path reads is **one immutable [`Snapshot`] behind one
//! `ArcSwap`**, replaced whole by a single writer: a request sees an old model or a new model,
//! with the kill switch and safe mode that go with it, never a mix, and never waits for a
//! writer. Every check happens before the swap, so the swap itself cannot fail.

pub mod compiler;
pub mod config;
pub mod counters;
pub mod disk;
pub mod isolation;
pub mod journal;
pub mod limiter;
pub mod outcome;
pub mod sentinel;
pub mod shard;
pub mod snapshot;
pub mod soak;
pub mod status;
pub mod store;

mod archive;
mod lkg;

pub use compiler::Compiler;
pub use config::{Config, DataDir, ModuleStateLost, SoakConfig};
pub use counters::{ApplyCounters, CodeCount, Metrics};
pub use disk::DiskError;
pub use journal::Poisoned;
pub use limiter::LogLimiter;
pub use outcome::{ApplyOutcome, Rejection};
pub use sentinel::{BootDecision, Death, DeathCause, Event, Rule, SentinelConfig, Suspect};
pub use snapshot::{Active, Channel, Mode, Snapshot};
pub use status::{Status, VersionDigest};
pub use store::{BootError, Reader, Store};
