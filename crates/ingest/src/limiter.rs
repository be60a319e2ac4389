//! Rate-limited logging: the one limiter every service uses lives in
//! [`rampart_host::limiter`]; re-exported here so ingestion's callers keep their paths.

pub use rampart_host::limiter::*;
