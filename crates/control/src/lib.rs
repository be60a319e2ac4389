//! The rampart control plane: stores signed feature files, checks each against every edge's
//! contract, rolls them out in gated waves with automatic rollback, and tells edges what to
//! serve and which modules to switch off, through heartbeats they long-poll.
//!
//! # Layout
//! - [`store`]: the [`Store`] trait (batches of writes, applied atomically), its SQLite
//!   backend ([`SqliteStore`]: WAL, `synchronous=FULL`, migrations), its NATS JetStream
//!   backend ([`store::NatsStore`]: a fenced, de-duplicated commit log replayed into the same
//!   SQLite model) and [`store::AnyStore`], the one chosen by `--store`.
//! - [`ha`]: on NATS, 2–3 replicas elect one leader by a lease; followers follow the log,
//!   serve reads and answer writes with the leader's address.
//! - [`nats_api`]: on NATS, the leader serves fleet traffic (registration, enrollment,
//!   heartbeats) over NATS request/reply through the same router as HTTP.
//! - [`fleet`]: the in-memory mirror every request reads (nodes, desired versions, kill
//!   switches, running rollouts with their observations).
//! - [`service`]: the operations (publish, register, heartbeat long-poll, kill switches,
//!   audit), HTTP-free.
//! - [`driver`]: rollouts: start, commands, and the reconcile loop around `rampart-rollout`.
//! - [`api`]: axum routes under `/v1`; [`openapi`]: `/openapi.json`.
//! - [`dashboard`]: the operators' web page under `/ui/`, embedded in the binary.
//! - [`tls`]: the API over rustls, certificates reloaded without restart, the local CA.
//! - [`epoch`]: the epoch kept in the database and in `control.epoch` beside it; a database
//!   behind its file refuses to start without `--reinitialize`.
//! - [`trust`]: the keyset re-read while running (generator keys for publishes).
//! - [`auth`]: named bearer tokens with roles, compared in constant time.
//! - [`enroll`]: node identity: bootstrap tokens, per-node credentials, a node speaks only
//!   for itself, node removal, contract ageing.
//! - [`approvals`]: two admins for a fleet-wide kill switch and a break-glass rollout.
//! - [`client_log`]: the one rate limit on ERROR/WARN lines about failures a client can
//!   cause.
//! - [`config`]: settings and their defaults; [`server`]: one running control plane, served
//!   through the accept loop the edge uses too ([`rampart_serve`]: connection cap, per-client
//!   cap, header and idle timeouts, drain); [`connections`]: what `/v1/health` shows about
//!   them, and fleet traffic first near the cap; [`cli`]: `rampart control`.
//!
//! # The decision that matters
//! **A change is committed before anyone hears of it, and a rollout step is committed with
//! its effects.** Every write is a [`store::Batch`] applied atomically and fsynced; only then
//! does the in-memory mirror change and do long-polling edges wake. A reconcile stores the
//! rollout's next state in the same batch as the desired versions, bad mark and audit
//! entries it decided, so a SIGKILL at any instant leaves either the step or none of it, and
//! a restarted control plane resumes every rollout where the store says it stood.

pub mod api;
pub mod approvals;
pub mod auth;
pub mod cli;
pub mod client_log;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod driver;
pub mod enroll;
pub mod epoch;
pub mod fleet;
pub mod ha;
pub mod nats_api;
pub mod openapi;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
pub mod trust;

pub use config::Config;
pub use server::{ServeError, Server};
pub use service::{Clock, Error, Service};
pub use store::{SqliteStore, Store};
