//! What every rampart service needs from its host, written once: a bounded read of a regular
//! file, a durable atomic replace, the wall clock, and log setup.
//!
//! The pure crates (`rampart-artifact`, `rampart-rollout`) do no I/O and take time as an
//! argument; the services that call them (edge, ingest, control plane, generator, `rampart
//! up`, the CLI) get their bytes, their files and their `now` from here.
//!
//! # Layout
//! - [`file`](mod@file): [`read_capped`](file::read_capped) (metadata length, then
//!   [`read_bounded`](rampart_artifact::limits::read_bounded)),
//!   [`write_atomic`](file::write_atomic) (temp file, fsync, rename, fsync of the directory),
//!   [`write_private`](file::write_private) (the same, mode 0600, for secrets), and their one
//!   [`Error`](file::Error).
//! - [`clock`]: [`now_ms`](clock::now_ms), wall-clock milliseconds since the Unix epoch.
//! - [`secret`]: [`random_hex`](secret::random_hex), tokens from the OS's randomness.
//! - [`limiter`]: [`LogLimiter`](limiter::LogLimiter), rate-limited logging (a flood of one
//!   failure is one line, then one summary per interval); used by ingestion and by the
//!   control plane for failures a client causes.
//! - [`process`]: [`open_files_limit`](process::open_files_limit), the descriptor budget
//!   servers size their connection caps by.
//! - `log` (feature `log`): `log::init`, `tracing` to stderr with `RUST_LOG`.
//!
//! # The decision that matters
//! **No async runtime and no subscriber unless asked for.** Every function here is blocking
//! std I/O, so the edge's ingestion library can use it without tokio; the `tracing`
//! subscriber sits behind the `log` feature, which only binaries (edge, control) turn on.

pub mod clock;
pub mod file;
pub mod limiter;
#[cfg(feature = "log")]
pub mod log;
pub mod process;
pub mod secret;
