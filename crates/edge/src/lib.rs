//! The rampart edge: an HTTP/1.1 reverse proxy that scores requests with the bot module.
//!
//! Work in progress: the proxy, admin API and wiring of issue 3 land here.

pub mod metrics;
pub mod module;
pub mod proxy;
pub mod server;
