//! `rampart up` as its edges' supervisor, the way systemd with `Restart=always` and
//! `ExecStopPost=rampart edge record-exit` is in production: an edge that dies has its exit
//! status recorded in its journal (so its next boot reports the death with its cause: the
//! signal, or the exit code), and is started again on the addresses it had, after a backoff
//! that doubles while it keeps dying young.
//!
//! The supervisor only restarts; it never decides which file an edge boots on. That is the
//! edge's own sentinel: deaths after a version poison it, and the restarted edge boots on the
//! version before (see `docs/edge-operations.md`).

use std::time::{Duration, Instant};

use rampart_edge::last_words::{exit_of, record_exit_in, signal_name};
use rampart_ingest::journal::{ExitRecord, SupervisorExit};

use crate::stack::{self, EdgeProc};
use crate::workdir::Workdir;

/// The first wait before an edge that died is started again.
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_secs(1);

/// The longest wait before an edge that keeps dying is started again (the wait doubles with
/// each death of a run shorter than [`STABLE_RUN`]).
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A run at least this long resets the backoff to [`RESTART_BACKOFF_MIN`].
pub const STABLE_RUN: Duration = Duration::from_secs(60);

/// What the supervisor knows of one edge.
#[derive(Debug, Clone)]
struct Watch {
    /// When its current run started.
    started: Instant,
    /// The wait before the next restart.
    backoff: Duration,
    /// Dead, to be started again at this instant.
    due: Option<Instant>,
    /// How many times it was started again.
    restarts: u32,
}

/// The supervisor of a stack's edges: call [`Supervisor::round`] every second or so.
#[derive(Debug)]
pub struct Supervisor {
    watches: Vec<Watch>,
}

/// What a [`Supervisor::round`] did.
#[derive(Debug, Default)]
pub struct Round {
    /// One line for the console per death and restart.
    pub lines: Vec<String>,
    /// Some edge was started again (its PID changed: `up.json` must be written again).
    pub restarted: bool,
}

// === impl Supervisor ===

impl Supervisor {
    /// Supervises `edges`, all started just now.
    pub fn new(edges: &[EdgeProc], now: Instant) -> Self {
        let watch = Watch {
            started: now,
            backoff: RESTART_BACKOFF_MIN,
            due: None,
            restarts: 0,
        };
        Self {
            watches: vec![watch; edges.len()],
        }
    }

    /// How many times the edge at `at` was started again.
    pub fn restarts(&self, at: usize) -> u32 {
        self.watches.get(at).map_or(0, |w| w.restarts)
    }

    /// Records the exit of every edge that died since the last round and starts again every
    /// dead edge whose backoff has passed. Blocks while an edge starts (up to the child start
    /// timeout).
    pub fn round(&mut self, edges: &mut [EdgeProc], work: &Workdir, now: Instant) -> Round {
        let mut round = Round::default();
        for (edge, watch) in edges.iter_mut().zip(self.watches.iter_mut()) {
            let id = edge.spec.id.clone();
            match watch.due {
                None => {
                    let Some(status) = edge.child.exit_status() else {
                        continue;
                    };
                    let lived = now.saturating_duration_since(watch.started);
                    watch.backoff = if lived >= STABLE_RUN {
                        RESTART_BACKOFF_MIN
                    } else if watch.restarts == 0 {
                        watch.backoff
                    } else {
                        (watch.backoff * 2).min(RESTART_BACKOFF_MAX)
                    };
                    watch.due = Some(now + watch.backoff);
                    let recorded = match exit_of(status) {
                        None => "how it ended is not known".to_owned(),
                        Some(exit) => match record_exit_in(&edge.data_dir, exit) {
                            Ok(ExitRecord::Recorded(_)) => "recorded in its journal".to_owned(),
                            Ok(ExitRecord::Clean) => "it had stopped cleanly".to_owned(),
                            Ok(ExitRecord::NoRun) => "its journal holds no run".to_owned(),
                            Err(e) => format!("cannot record it: {e}"),
                        },
                    };
                    round.lines.push(format!(
                        "supervisor: edge {id} died ({}) after {}: {recorded}; starting it \
                         again in {} s",
                        how(status),
                        secs(lived),
                        watch.backoff.as_secs()
                    ));
                }
                Some(due) if now >= due => match stack::restart_edge(edge, work) {
                    Ok(started) => {
                        *edge = started;
                        watch.started = now;
                        watch.due = None;
                        watch.restarts = watch.restarts.saturating_add(1);
                        round.restarted = true;
                        round.lines.push(format!(
                            "supervisor: edge {id} started again (pid {}, restart {})",
                            edge.child.pid(),
                            watch.restarts
                        ));
                    }
                    Err(e) => {
                        watch.backoff = (watch.backoff * 2).min(RESTART_BACKOFF_MAX);
                        watch.due = Some(now + watch.backoff);
                        round.lines.push(format!(
                            "supervisor: edge {id} did not start: {e}; trying again in {} s",
                            watch.backoff.as_secs()
                        ));
                    }
                },
                Some(_) => {}
            }
        }
        round
    }
}

/// `signal 6 (SIGABRT)`, `exit code 2`.
fn how(status: std::process::ExitStatus) -> String {
    match exit_of(status) {
        Some(SupervisorExit::Signal(n)) => match signal_name(n) {
            Some(name) => format!("signal {n}, SIG{name}"),
            None => format!("signal {n}"),
        },
        Some(SupervisorExit::Code(c)) => format!("exit code {c}"),
        None => status.to_string(),
    }
}

/// `12.3 s`.
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
