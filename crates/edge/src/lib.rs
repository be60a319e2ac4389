//! The rampart edge: an HTTP/1.1 reverse proxy that scores every request with the bot
//! module, ingests feature files without ever letting a bad one take it down, and answers
//! operators on a loopback admin API.
//!
//! A request goes: accept (a connection cap) → the bot module behind its boundary (one
//! snapshot load, extract, score, under `catch_unwind`) → the customer rule (`--block-below`)
//! and the fail policy → hop-by-hop headers out, `X-Forwarded-For`/`Forwarded` and
//! `x-rampart-bot-score` in → the origin over the keep-alive connection this client
//! connection leases from its worker's pool, bodies streamed both ways → 502/504 when the
//! origin fails, never a hang.
//!
//! # Layout
//! - [`cli`]: `rampart edge` flags, the config file, the process (tracing, panic hook,
//!   runtime, signals).
//! - [`config`]: the merged settings and every default as a named constant.
//! - [`node`]: one running edge: store boot, one proxy worker per core (each a
//!   single-threaded runtime with its own `SO_REUSEPORT` listener and origin pool), the
//!   admin listener, soak ticker, watch loop, shutdown.
//! - [`proxy`]: forwarding one request (and the origin connection leases); [`server`]: the
//!   accept loop, cap, idle watchdog and drain (from [`rampart_serve`], which the control
//!   plane serves through too); [`timer`]: the per-connection timer both timeouts use
//!   instead of a timer per request.
//! - [`module`]: the module seam and its boundary (panics caught, fail policy, block rule).
//! - [`bot`]: the real module: the ingest store's snapshot (through its read-only
//!   [`Reader`](rampart_ingest::Reader)) and rampart-score's model.
//! - [`admin`]: health, status, metrics, kill switch, safe-mode clear, break glass.
//! - [`agent`]: the control plane's side of the edge: register, heartbeat (long-poll),
//!   fetch desired versions and offer them to the store (ACK/NACK), kill switches; fail stale
//!   when it is gone. With a keyset, nothing of an answer is applied before its signed order
//!   verifies with a director key and is newer than the last applied ([`agent::order`]).
//!   With `--nats`, [`agent::kill`] watches the kill bucket itself: signed kill switches that
//!   reach the edge while every control-plane replica is down.
//! - [`trust`]: the root and keyset files (`--root`, `--keyset`), re-read and rotated without
//!   restart; the store then takes files from the keyset's generator keys.
//! - [`last_words`]: a panic that escapes every boundary, or an exit with an error, written
//!   to the boot journal so the next run reports the death with its cause;
//!   [`abort_hook`]: the test hook that aborts some seconds after a marked file activates.
//! - [`metrics`]: request-path counters (atomics, one shard per worker thread).
//!   [`watch`]: the watch dir's debounce.
//!
//! # The decision that matters
//! **A module failure is that request's failure, never the worker's.** The bot module is
//! reached only through [`module::Boundary`], which runs it under `catch_unwind` and turns
//! any panic or error into the fail policy's answer for that one request (forward unscored,
//! or 503), counted on `/metrics`. Everything else the module could trip on (a file over
//! 200 features, an unknown name) was refused before it was swapped in, and the version
//! serving stays.

pub mod abort_hook;
pub mod admin;
pub mod agent;
pub mod bot;
pub mod cli;
pub mod config;
pub mod last_words;
pub mod metrics;
pub mod module;
pub mod node;
pub mod proxy;
pub mod sample;
pub mod server;
/// The per-connection timer, shared with the accept loop ([`rampart_serve::timer`]).
pub use rampart_serve::timer;
pub mod trust;
pub mod watch;

pub use cli::{EdgeArgs, run};
pub use config::Config;
pub use node::{Node, StartError};
