//! The accept loop every rampart HTTP listener runs: the edge's proxy workers and admin
//! API, and the control plane's API (plain or TLS).
//!
//! # Layout
//! - [`accept`]: [`serve`]/[`serve_with`]: a connection cap ([`WhenFull`]: wait in the
//!   kernel's queue, or refuse with 503), a cap per client address ([`PerClient`], 429), a
//!   [`Handshake`] per connection in its own task (TLS), the header timeout and the idle
//!   timeout, the graceful drain ([`ShutdownSignal`]), and what happens to connections
//!   reported through [`Events`] ([`ConnStats`] for a listener that only needs counters).
//! - [`timer`]: the per-connection timer both timeouts use instead of a timer per request.
//!
//! # The decision that matters
//! **A connection's timeouts cost nothing per request.** The header and idle timeouts are
//! kept by one watchdog task per connection reading a few atomics the request path bumps;
//! there is no timer armed or allocation made per request (the edge's request path measured
//! a microsecond per request for hyper's own header-read timer). The loop was the edge's
//! (`crates/edge/src/server.rs`) and moved here unchanged on its plain path, so the control
//! plane gets the same defence against slow clients instead of a second copy.

pub mod accept;
pub mod timer;

pub use accept::{
    ConnCounts, ConnStats, Drained, Events, Handshake, PerClient, Plain, ServeOptions,
    ShutdownSignal, ShutdownTrigger, WhenFull, serve, serve_with,
};
