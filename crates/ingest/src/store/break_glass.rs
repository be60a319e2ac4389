//! Break glass: what an operator does by hand, with nothing but the local data dir. Pin an
//! archived version, force last-known-good, end either, leave safe mode, and the kill switch
//! (also driven by the control plane, and kept in `module.json` across restarts).
//!
//! None of this goes through [`Store::offer`]: break glass may serve a version below the one
//! serving without the control plane's say, and a pin holds off every offer until `unpin`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compiler::Compiler;
use crate::config::{DataDir, ModuleStateLost};
use crate::disk::{self, DiskError};
use crate::outcome::{ApplyOutcome, Rejection};
use crate::snapshot::{Channel, Mode};

use super::{Candidate, Store, kept};

/// Largest `module.json` read (it holds a bool and a reason).
pub const MAX_MODULE_STATE_BYTES: usize = 4 * 1024;

/// Longest kill-switch reason kept (it is operator text, shown on `/status`).
pub const MAX_REASON_LEN: usize = 256;

/// `module.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ModuleState {
    enabled: bool,
    reason: String,
}

// === impl Store ===

impl<C: Compiler> Store<C> {
    /// The kill switch: `false` lets every request pass unscored. Takes effect at once,
    /// survives new offers and restarts (it is written to `module.json`).
    pub fn set_module_enabled(&self, enabled: bool, reason: impl Into<String>) {
        let mut reason: String = reason.into();
        if reason.len() > MAX_REASON_LEN {
            let mut end = MAX_REASON_LEN;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        let mut w = self.lock();
        let next = self.shared.current.load().with_module_enabled(enabled);
        self.shared.current.store(Arc::new(next));
        let state = ModuleState {
            enabled,
            reason: reason.clone(),
        };
        let written = serde_json::to_vec(&state)
            .map_err(|e| DiskError::Io {
                op: "encode",
                path: self.layout.module_state(),
                source: e.into(),
            })
            .and_then(|bytes| {
                // The first, then the copy: a damaged file at boot falls back to the other.
                disk::write_atomic(&self.layout.module_state(), &bytes)?;
                disk::write_atomic(&self.layout.module_state_copy(), &bytes)
            });
        if let Err(e) = written {
            // The switch holds in memory; only its survival across a restart is lost.
            let now = w.boot_at_ms;
            self.disk_failed(&mut w, "write module.json", &e, now);
        }
        tracing::warn!(enabled, reason = %reason, "bot module kill switch set");
        w.kill_reason = Some(reason);
    }

    /// Leaves safe mode (an operator has looked at the crash loop): the module runs again
    /// when the kill switch allows it.
    pub fn clear_safe_mode(&self, reason: &str) {
        let _w = self.lock();
        let next = self.shared.current.load().with_mode(Mode::Normal);
        self.shared.current.store(Arc::new(next));
        tracing::warn!(reason, "safe mode cleared by an operator");
    }

    /// Break glass: serves last-known-good from disk (the newest of its history that
    /// verifies and is not poisoned), re-verified, and pins it: offered files are refused
    /// until [`unpin`](Self::unpin).
    pub fn force_last_known_good(&self, now_ms: u64) -> ApplyOutcome {
        let mut w = self.lock();
        let mut first: Option<(Rejection, Option<u64>)> = None;
        let mut outcome = None;
        let history: Vec<u64> = w.lkg.history().iter().map(|vd| vd.version).collect();
        for version in history {
            let tried = match self.candidate(&self.layout.lkg_file(version), Some(version)) {
                Candidate::Missing => continue,
                Candidate::Bad(rejection, version) => Err((rejection, version)),
                Candidate::Good(validated, bytes) => self.activate_checked(
                    &mut w,
                    *validated,
                    bytes,
                    Channel::LastKnownGood,
                    now_ms,
                    true,
                ),
            };
            match tried {
                Ok(o) => {
                    outcome = Some(o);
                    break;
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        let (outcome, version) = match outcome {
            Some(o) => {
                w.pinned = o.serving().map(|(v, _)| v);
                w.break_glass = true;
                tracing::warn!(version = ?w.pinned, "break glass: last-known-good forced and pinned");
                let v = w.pinned;
                (o, v)
            }
            None => {
                let (rejection, version) = first.unwrap_or_else(|| {
                    (
                        Rejection::Io("no last-known-good in the data dir".to_owned()),
                        None,
                    )
                });
                (
                    ApplyOutcome::Rejected {
                        kept: kept(&w),
                        rejection,
                    },
                    version,
                )
            }
        };
        self.finish(&mut w, &outcome, Channel::LastKnownGood, version, now_ms);
        outcome
    }

    /// Break glass: serves `version` from the data dir's archive (`versions/<v>.rfeat`),
    /// re-verified (an older version is allowed: that is the point), and pins it.
    pub fn pin(&self, version: u64, now_ms: u64) -> ApplyOutcome {
        let mut w = self.lock();
        let tried = match self.candidate(&self.layout.version_file(version), Some(version)) {
            Candidate::Missing => Err((
                Rejection::Io(format!("version {version} is not archived in the data dir")),
                Some(version),
            )),
            Candidate::Bad(rejection, v) => Err((rejection, v)),
            Candidate::Good(validated, bytes) => {
                self.activate_checked(&mut w, *validated, bytes, Channel::Pinned, now_ms, false)
            }
        };
        let outcome = match tried {
            Ok(o) => {
                w.pinned = Some(version);
                w.break_glass = true;
                tracing::warn!(version, "break glass: version pinned");
                o
            }
            Err((rejection, _)) => ApplyOutcome::Rejected {
                kept: kept(&w),
                rejection,
            },
        };
        self.finish(&mut w, &outcome, Channel::Pinned, Some(version), now_ms);
        outcome
    }

    /// Ends break glass: offered files are applied again, under their channel's version
    /// rule against the version now serving. Returns the version that was pinned.
    pub fn unpin(&self) -> Option<u64> {
        let mut w = self.lock();
        w.break_glass = false;
        let was = w.pinned.take();
        if let Some(v) = was {
            tracing::warn!(version = v, "break glass ended: version unpinned");
        }
        was
    }
}

/// The kill switch as `module.json` (else its copy) left it: `(enabled, reason)`. It
/// survives restarts: an operator who turned the module off because it crashed the process
/// must not see it come back on by itself. Both missing is a fresh data dir (on). One
/// unreadable: the other is used, and the problem is reported. Both unreadable: `lost`
/// decides, and the problem is reported.
pub(super) fn read_module_state(
    layout: &DataDir,
    lost: ModuleStateLost,
    problems: &mut Vec<String>,
) -> (bool, Option<String>) {
    let primary = read_one(&layout.module_state());
    let copy = || read_one(&layout.module_state_copy());
    match primary {
        Ok(Some(state)) => (state.enabled, Some(state.reason)),
        primary => match (primary, copy()) {
            (Ok(None), Ok(None)) => (true, None),
            (primary, Ok(Some(state))) => {
                let why = match primary {
                    Err(e) => e,
                    Ok(_) => "missing".to_owned(),
                };
                problems.push(format!(
                    "module.json: {why}; the kill switch was read from module.copy.json \
                     (enabled: {})",
                    state.enabled
                ));
                (state.enabled, Some(state.reason))
            }
            (primary, copy) => {
                let say = |r: Result<Option<ModuleState>, String>| match r {
                    Err(e) => e,
                    Ok(_) => "missing".to_owned(),
                };
                let enabled = lost == ModuleStateLost::On;
                let reason = format!(
                    "kill switch state lost at boot (module.json: {}; module.copy.json: {}): \
                     module {} by policy module_state_lost={}",
                    say(primary),
                    say(copy),
                    if enabled { "on" } else { "off" },
                    if enabled { "on" } else { "off" },
                );
                tracing::error!("{reason}");
                problems.push(reason.clone());
                (enabled, Some(reason))
            }
        },
    }
}

/// One copy: `Ok(None)` when missing, the error as text when unreadable or not JSON.
fn read_one(path: &std::path::Path) -> Result<Option<ModuleState>, String> {
    match disk::read_capped(path, MAX_MODULE_STATE_BYTES) {
        Ok(bytes) => serde_json::from_slice::<ModuleState>(&bytes)
            .map(Some)
            .map_err(|e| format!("not a valid state ({e})")),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
