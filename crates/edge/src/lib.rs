//! The rampart edge: an HTTP/1.1 reverse proxy that scores requests with the bot module.
//!
//! Work in progress: the proxy, admin API and wiring of issue 3 land here.
