//! `rampart up`: the whole of rampart on one machine, from one command, with nothing else
//! installed: a control plane (`--auto-rollout`), an origin, edges across PoPs (one canary),
//! the generator on the embedded catalog publishing on a schedule, and realistic traffic
//! from the built-in sample. It prints the URLs and a live summary; Ctrl-C stops everything.
//!
//! # Layout
//! - [`cli`]: [`UpArgs`] and [`run`], the supervisor from start to Ctrl-C.
//! - [`system`]: what `rampart up` starts (the edges' PoPs, the generator) and stops.
//! - [`console`]: what it prints: URLs, the live summary, rollout changes, inject stops.
//! - [`policy`]: [`POLICY`], the rollout policy cut to a minute.
//! - [`workdir`]: keys, tokens and policy created in the work dir.
//! - [`trust`]: the root of trust (root keys, root, keyset, director key) in the work dir.
//! - [`child`]: a child process of the same binary, stopped by PID and waited for.
//! - [`stack`]: starting `rampart control` and `rampart edge` children.
//! - [`enroll`]: a bootstrap token per edge, so each edge enrolls with its own credential.
//! - [`origin`]: a tiny in-process origin that counts what the edges forward.
//! - [`load`]: realistic traffic at a bounded rate against the edges.
//! - [`inject`]: `--inject nov18`, each layer stopping its file.
//! - [`status`]: reading an edge's admin API.
//! - [`state`]: `DIR/up.json`, the running stack for scripts (URLs, token files, PIDs).
//!
//! # The decision that matters
//! **Every part is the real binary.** The control plane, each edge and the generator are
//! children of the running executable (`std::env::current_exe()`) with the same flags an
//! operator would give; the supervisor only starts, watches and stops them. What a user sees
//! here is what runs in production, and the tests drive the same code.

pub mod child;
pub mod cli;
pub mod console;
pub mod enroll;
pub mod inject;
pub mod load;
pub mod nats;
pub mod origin;
pub mod policy;
pub mod stack;
pub mod state;
pub mod status;
pub mod supervise;
pub mod system;
pub mod trust;
pub mod workdir;

pub use cli::{Scenario, UpArgs, run};
pub use console::{SUMMARY_INTERVAL, WATCH_INTERVAL};
pub use policy::POLICY;
pub use system::{MAX_EDGES, POPS};
