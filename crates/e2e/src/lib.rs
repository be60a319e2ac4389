//! Tests and load scripts that span rampart's services, and the harness they share.
//!
//! A crate's own tests stay beside it; what needs two services at once lives here: the edge's
//! agent against a real control plane (`tests/agent.rs`), the replay against the control
//! plane's driver (`tests/differential.rs`), and the load scripts that measure
//! how fast a file or a kill switch reaches a fleet (`examples/`). The harness below is shared
//! by the control plane's API tests and the CLI's tests of the `rampart control` process.
//!
//! # Layout
//! - [`control_plane`]: [`Harness`]: a control plane in-process on loopback with fast gates,
//!   its tokens, and a client for each role; in plain HTTP ([`Harness::start`]) or over TLS
//!   with a fresh CA its clients trust ([`Harness::start_tls`]).
//! - [`fleet`]: [`Fleet`]: simulated edges that heartbeat through the real HTTP API, ACK what
//!   they are told or NACK it.
//! - [`nats`]: [`NatsCluster`]: 1 or 3 real `nats-server` processes with JetStream on
//!   loopback (temporary store dirs, routes, stopped by PID), for the NATS store's tests.
//! - `tests/agent.rs`: the edge agent (`rampart-edge`) following a control plane.
//! - `tests/differential.rs`: the rollout runner as the replay (`rampart-sim`) wraps it and as
//!   the control plane's driver wraps it, fed the same fleet, heartbeats and clock, decide the
//!   same waves, rollbacks and bad marks.
//! - `examples/propagation.rs`: N real edge agents; time to ACK a pushed file, and to roll
//!   back after NACKs.
//! - `examples/killswitch_fanout.rs`: N long-polling simulated edges; time until a kill switch
//!   flip reaches all, and heartbeats per second.
//!
//! The one decision that matters: **services are started in-process on port 0, never mocked.**
//! Each test gets a real control plane (SQLite in a temporary dir, axum on loopback) and real
//! HTTP between the parts, so what passes here is what the binaries do; only the fleet may be
//! simulated, and then through the same wire types and client the edge uses.
//!
//! Test-only: the harness panics on a failed setup, which fails the test that called it.
//! Documents, keys and signed files come from `rampart_artifact::testing`.

pub mod control_plane;
pub mod fleet;
pub mod nats;

pub use control_plane::Harness;
pub use fleet::Fleet;
pub use nats::NatsCluster;
