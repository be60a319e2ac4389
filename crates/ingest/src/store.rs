//! The store: the one place a feature file becomes the plan the request path runs.
//!
//! Readers call [`Store::snapshot`] (an atomic load, no lock). Writers (apply, tick, the
//! switches, break glass) serialize on one mutex that the request path never takes; only a
//! writer holding it stores into the `ArcSwap`, so a load-modify-store is never lost.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use rampart_artifact::{Digest, Issue, Policy, Validated, check};
use serde::{Deserialize, Serialize};

use crate::archive;
use crate::compiler::Compiler;
use crate::config::{Config, DataDir};
use crate::counters::{Counters, Metrics};
use crate::disk::{self, DiskError};
use crate::journal::{self, Journal, Poisoned};
use crate::limiter::{LogLimiter, Verdict};
use crate::lkg::{Lkg, Slot};
use crate::outcome::{ApplyOutcome, Rejection};
use crate::sentinel::{self, BootDecision, Event};
use crate::snapshot::{Active, Mode, Origin, Snapshot};
use crate::soak::{Meter, Soak};
use crate::status::{
    ActiveStatus, LastRejection, LkgStatus, SentinelStatus, Status, VersionDigest,
};

/// Largest `module.json` read (it holds a bool and a reason).
pub const MAX_MODULE_STATE_BYTES: usize = 4 * 1024;

/// Longest kill-switch reason kept (it is operator text, shown on `/status`).
pub const MAX_REASON_LEN: usize = 256;

/// The edge's feature-file store. See the crate docs for the flow.
pub struct Store<C: Compiler> {
    config: Config,
    layout: DataDir,
    compiler: C,
    current: ArcSwap<Snapshot<C::Plan>>,
    writer: Mutex<Writer>,
    meter: Meter,
    counters: Counters,
}

/// Why the store could not start. Only an unusable data dir stops a boot: a missing,
/// corrupt or poisoned last-known-good boots with no plan instead.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The data dir or one of its subdirectories cannot be created.
    #[error("data dir is unusable: {0}")]
    DataDir(#[source] DiskError),
}

/// State only writers touch.
#[derive(Debug)]
struct Writer {
    /// The validated document and exact bytes of the active version.
    active: Option<Held>,
    soak: Option<Soak>,
    poisoned: Vec<Poisoned>,
    pinned: Option<u64>,
    break_glass: bool,
    lkg: Lkg,
    lkg_problems: Vec<String>,
    journal: Option<Journal>,
    last_rejection: Option<LastRejection>,
    last_disk_error: Option<String>,
    limiter: LogLimiter,
    kill_reason: Option<String>,
    decision: BootDecision,
    boot_at_ms: u64,
    /// Whether the run before this boot died (no clean exit in the journal).
    restarted_after_death: bool,
}

#[derive(Debug)]
struct Held {
    validated: Validated,
    bytes: Arc<[u8]>,
}

/// `module.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ModuleState {
    enabled: bool,
    reason: String,
}

/// A file read from the data dir for break glass or boot.
enum Candidate {
    Missing,
    Bad(Rejection, Option<u64>),
    Good(Box<Validated>, Vec<u8>),
}

// === impl Store ===

impl<C: Compiler> Store<C> {
    /// Starts the store: runs the crash-loop sentinel over the boot journal, then serves
    /// last-known-good (current, else previous, else nothing) before anything else arrives.
    pub fn boot(config: Config, compiler: C, now_ms: u64) -> Result<Self, BootError> {
        let layout = config.layout();
        for dir in [
            layout.root().to_owned(),
            layout.lkg_dir(),
            layout.versions_dir(),
            layout.sentinel_dir(),
        ] {
            disk::ensure_dir(&dir).map_err(BootError::DataDir)?;
        }
        let mut problems: Vec<(String, DiskError)> = Vec::new();

        // Sentinel: decide from the past runs, then record this boot.
        let keep_ms = config.sentinel.window_secs.saturating_mul(2000);
        let (journal, events) =
            match Journal::open(&layout.journal(), config.journal_max_bytes, now_ms, keep_ms) {
                Ok((j, events)) => (Some(j), events),
                Err(e) => {
                    problems.push(("open journal".to_owned(), e));
                    (None, Vec::new())
                }
            };
        let decision = sentinel::decide(&events, now_ms, &config.sentinel);
        let restarted_after_death = sentinel::last_run_died(&events);
        let (mut poisoned, poisoned_err) = journal::read_poisoned(&layout.poisoned());
        if let Some(e) = poisoned_err {
            problems.push(("read poisoned list".to_owned(), e));
        }
        let counters = Counters::default();
        let mut newly_poisoned = false;
        for suspect in decision.poison() {
            if poisoned.iter().any(|p| p.version == suspect.version) {
                continue;
            }
            tracing::error!(
                version = suspect.version,
                digest = %suspect.digest,
                deaths = suspect.deaths,
                "crash loop: the process died {} times within {} s after activating version {}; \
                 it is poisoned and refused until a higher version comes",
                suspect.deaths,
                config.sentinel.window_secs,
                suspect.version,
            );
            poisoned.push(Poisoned {
                version: suspect.version,
                digest: suspect.digest,
                deaths: suspect.deaths,
                at_ms: now_ms,
            });
            counters.poisoned();
            newly_poisoned = true;
        }
        journal::trim_poisoned(&mut poisoned);
        if newly_poisoned && let Err(e) = journal::write_poisoned(&layout.poisoned(), &poisoned) {
            problems.push(("write poisoned list".to_owned(), e));
        }
        let mode = if decision.is_safe_mode() {
            let reason = format!(
                "crash loop: {} deaths within {} s after activations; the bot module is off \
                 (fail open) until an operator clears safe mode",
                decision.deaths(),
                config.sentinel.window_secs
            );
            tracing::error!(deaths = decision.deaths(), "SAFE MODE: {reason}");
            Mode::SafeMode { reason }
        } else {
            Mode::Normal
        };

        // The kill switch survives restarts: an operator who turned the module off because
        // it crashed the process must not see it come back on by itself.
        let (module_enabled, kill_reason) =
            match disk::read_capped(&layout.module_state(), MAX_MODULE_STATE_BYTES) {
                Ok(bytes) => match serde_json::from_slice::<ModuleState>(&bytes) {
                    Ok(state) => (state.enabled, Some(state.reason)),
                    Err(e) => {
                        problems.push((
                            "read module.json".to_owned(),
                            DiskError::Io {
                                op: "parse",
                                path: layout.module_state(),
                                source: e.into(),
                            },
                        ));
                        (true, None)
                    }
                },
                Err(e) if e.is_not_found() => (true, None),
                Err(e) => {
                    problems.push(("read module.json".to_owned(), e));
                    (true, None)
                }
            };

        let limiter = LogLimiter::new(config.log_interval_ms);
        let store = Store {
            current: ArcSwap::from_pointee(Snapshot::empty(module_enabled, mode)),
            writer: Mutex::new(Writer {
                active: None,
                soak: None,
                poisoned,
                pinned: None,
                break_glass: false,
                lkg: Lkg::default(),
                lkg_problems: Vec::new(),
                journal,
                last_rejection: None,
                last_disk_error: None,
                limiter,
                kill_reason,
                decision,
                boot_at_ms: now_ms,
                restarted_after_death,
            }),
            layout,
            compiler,
            config,
            meter: Meter::default(),
            counters,
        };
        {
            let mut w = store.lock();
            for (what, e) in problems {
                store.disk_failed(&mut w, &what, &e, now_ms);
            }
            store.journal(&mut w, Event::Boot { at_ms: now_ms }, now_ms);
            store.boot_from_lkg(&mut w, now_ms);
        }
        Ok(store)
    }

    /// The current snapshot as an owned `Arc` (admin and agent paths).
    pub fn snapshot(&self) -> Arc<Snapshot<C::Plan>> {
        self.current.load_full()
    }

    /// What the request path reads: one atomic load, never blocked by a writer, and no
    /// reference-count increment (arc-swap's guard), so worker threads do not contend on
    /// the snapshot's counter. Hold it for one request, not longer.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot<C::Plan>>> {
        self.current.load()
    }

    /// Offers a file's bytes: verified, validated against the contract, refused if
    /// poisoned, compiled, then swapped in. Any failure keeps the current version serving,
    /// and is counted, remembered for `/status` and logged (rate-limited).
    pub fn apply(&self, bytes: &[u8], origin: Origin, now_ms: u64) -> ApplyOutcome {
        let mut w = self.lock();
        let (outcome, version) = self.apply_locked(&mut w, bytes, origin, now_ms);
        self.finish(&mut w, &outcome, origin, version, now_ms);
        outcome
    }

    /// Offers a file the control plane sends a node back to when a rollout rolls back.
    ///
    /// [`apply`](Self::apply) refuses any version not above the one serving (a replayed old
    /// file must not win). A rollback needs exactly that, so here a version **below** the
    /// one serving is accepted only when this node served that very file before: its digest
    /// is last-known-good (current or previous) or it is archived under its version. It is
    /// verified again (signature, contract, poisoned list, compile) like any file. Any other
    /// lower version is refused as `version_not_above`, as `apply` would. A version that is
    /// not below the one serving (or a node serving nothing) goes through `apply` unchanged.
    pub fn apply_rollback(&self, bytes: &[u8], origin: Origin, now_ms: u64) -> ApplyOutcome {
        let mut w = self.lock();
        let (outcome, version) = self.rollback_locked(&mut w, bytes, origin, now_ms);
        self.finish(&mut w, &outcome, origin, version, now_ms);
        outcome
    }

    /// Offers a file: its length from metadata is checked against the contract's wire limit
    /// before a byte is read (a 100 MB file costs one `stat`), then it is read with a cap.
    pub fn apply_file(&self, path: &Path, origin: Origin, now_ms: u64) -> ApplyOutcome {
        match disk::read_capped(path, self.config.max_file_bytes()) {
            Ok(bytes) => self.apply(&bytes, origin, now_ms),
            Err(e) => {
                let rejection = match e {
                    DiskError::TooLarge { size, limit, .. } => {
                        Rejection::Invalid(vec![Issue::TooLarge {
                            what: "file",
                            size,
                            limit,
                        }])
                    }
                    other => Rejection::Io(other.to_string()),
                };
                let mut w = self.lock();
                let outcome = ApplyOutcome::Rejected {
                    kept: kept(&w),
                    rejection,
                };
                self.finish(&mut w, &outcome, origin, None, now_ms);
                outcome
            }
        }
    }

    /// Called for every request the module saw; `module_error` when it failed (error or
    /// panic caught). Relaxed atomic adds only: safe on the request path.
    pub fn record_request(&self, module_error: bool) {
        self.counters.request(module_error);
        self.meter.record(module_error);
    }

    /// Called about once a second: promotes the active version to last-known-good once it
    /// has served its soak, and writes the summaries of rate-limited logs.
    pub fn tick(&self, now_ms: u64) {
        let mut w = self.lock();
        for summary in w.limiter.flush(now_ms) {
            tracing::warn!(
                kind = %summary.kind,
                suppressed = summary.suppressed,
                "{summary}"
            );
            self.counters.log_line();
        }
        let (requests, errors) = self.meter.take();
        let due = match w.soak.as_mut() {
            Some(soak) => soak.due(now_ms, requests, errors, &self.config.soak),
            None => false,
        };
        if due {
            self.promote(&mut w, now_ms);
        }
    }

    /// Records a clean shutdown in the boot journal, so the next boot does not count this
    /// run as a death. Not called on drop: a panic unwinding must count as a death.
    pub fn clean_exit(&self, now_ms: u64) {
        let mut w = self.lock();
        self.journal(&mut w, Event::CleanExit { at_ms: now_ms }, now_ms);
        tracing::info!("clean exit recorded");
    }

    /// The kill switch: `false` lets every request pass unscored. Takes effect at once,
    /// survives new applies and restarts (it is written to `module.json`).
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
        let next = self.current.load().with_module_enabled(enabled);
        self.current.store(Arc::new(next));
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
            .and_then(|bytes| disk::write_atomic(&self.layout.module_state(), &bytes));
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
        let next = self.current.load().with_mode(Mode::Normal);
        self.current.store(Arc::new(next));
        tracing::warn!(reason, "safe mode cleared by an operator");
    }

    /// Break glass: serves last-known-good from disk (current, else previous), re-verified,
    /// and pins it: new files are refused until [`unpin`](Self::unpin).
    pub fn force_last_known_good(&self, now_ms: u64) -> ApplyOutcome {
        let mut w = self.lock();
        let mut first: Option<(Rejection, Option<u64>)> = None;
        let mut outcome = None;
        for slot in [Slot::Current, Slot::Previous] {
            let tried = match self.candidate(&slot.path(&self.layout), None) {
                Candidate::Missing => continue,
                Candidate::Bad(rejection, version) => Err((rejection, version)),
                Candidate::Good(validated, bytes) => self.activate_checked(
                    &mut w,
                    *validated,
                    bytes,
                    Origin::LastKnownGood,
                    now_ms,
                    slot == Slot::Current,
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
        self.finish(&mut w, &outcome, Origin::LastKnownGood, version, now_ms);
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
                self.activate_checked(&mut w, *validated, bytes, Origin::Pinned, now_ms, false)
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
        self.finish(&mut w, &outcome, Origin::Pinned, Some(version), now_ms);
        outcome
    }

    /// Ends break glass: new files are applied again (above the version now serving).
    /// Returns the version that was pinned.
    pub fn unpin(&self) -> Option<u64> {
        let mut w = self.lock();
        w.break_glass = false;
        let was = w.pinned.take();
        if let Some(v) = was {
            tracing::warn!(version = v, "break glass ended: version unpinned");
        }
        was
    }

    /// The last file refused, from any origin (cheap: no disk access, unlike
    /// [`status`](Self::status)); the edge agent reports it in every heartbeat.
    pub fn last_rejection(&self) -> Option<LastRejection> {
        self.lock().last_rejection.clone()
    }

    /// Whether the process run before this one died (booted and never recorded a clean
    /// exit), as the boot journal tells. The edge agent reports it as a restart.
    pub fn restarted_after_death(&self) -> bool {
        self.lock().restarted_after_death
    }

    /// The counters as plain numbers, for `/metrics`.
    pub fn metrics(&self) -> Metrics {
        self.counters.read()
    }

    /// The whole state, for `/status`.
    pub fn status(&self) -> Status {
        let snapshot = self.snapshot();
        let w = self.lock();
        let active = snapshot.active.as_ref().map(|a| ActiveStatus {
            version: a.version,
            digest: a.digest,
            origin: a.origin,
            since_ms: a.activated_at_ms,
            features: w
                .active
                .as_ref()
                .map_or(0, |h| h.validated.document().features.len()),
        });
        Status {
            active,
            module_enabled: snapshot.module_enabled,
            kill_switch_reason: w.kill_reason.clone(),
            mode: snapshot.mode.clone(),
            scoring: snapshot.scoring_plan().is_some(),
            last_rejection: w.last_rejection.clone(),
            lkg: LkgStatus {
                current: w.lkg.current,
                previous: w.lkg.previous,
                boot_problems: w.lkg_problems.clone(),
            },
            soak: w.soak.clone(),
            poisoned: w.poisoned.clone(),
            sentinel: SentinelStatus {
                decision: w.decision.clone(),
                boot_at_ms: w.boot_at_ms,
                config: self.config.sentinel.clone(),
                journal_ok: w.journal.is_some(),
            },
            pinned: w.pinned,
            break_glass: w.break_glass,
            archive: archive::list(&self.layout.versions_dir()).unwrap_or_default(),
            last_disk_error: w.last_disk_error.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A writer that panicked left consistent state (every field is replaced whole),
        // so a poisoned lock is taken over rather than propagated.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply_locked(
        &self,
        w: &mut Writer,
        bytes: &[u8],
        origin: Origin,
        now_ms: u64,
    ) -> (ApplyOutcome, Option<u64>) {
        let reject = |w: &Writer, rejection, version| {
            (
                ApplyOutcome::Rejected {
                    kept: kept(w),
                    rejection,
                },
                version,
            )
        };
        if let Some(pinned) = w.pinned {
            return reject(w, Rejection::Pinned { pinned }, None);
        }
        if let Some(held) = &w.active
            && *held.bytes == *bytes
        {
            // The exact bytes already verified: the watcher re-reading the same file.
            return (unchanged(held), Some(held.validated.version()));
        }
        let previous = w.active.as_ref().map(|h| h.validated.document());
        let validated = match check(bytes, &self.policy(previous)) {
            Ok(checked) => checked.validated,
            Err(issues) => {
                if let Some(held) = &w.active
                    && let [Issue::VersionNotAbove { version, .. }] = issues.as_slice()
                    && *version == held.validated.version()
                    && check(bytes, &self.policy(None))
                        .is_ok_and(|c| c.validated.digest() == held.validated.digest())
                {
                    // The same document in other bytes (signed again): not a regression.
                    return (unchanged(held), Some(*version));
                }
                let version = issues.iter().find_map(|i| match i {
                    Issue::VersionNotAbove { version, .. } => Some(*version),
                    _ => None,
                });
                return reject(w, Rejection::Invalid(issues), version);
            }
        };
        let version = validated.version();
        match self.activate_checked(w, validated, bytes.to_vec(), origin, now_ms, false) {
            Ok(outcome) => {
                if matches!(outcome, ApplyOutcome::Applied { .. })
                    && let Err(e) =
                        archive::store(&self.layout, version, bytes, self.config.archive_len)
                {
                    self.disk_failed(w, "archive", &e, now_ms);
                }
                (outcome, Some(version))
            }
            Err((rejection, v)) => reject(w, rejection, v),
        }
    }

    fn rollback_locked(
        &self,
        w: &mut Writer,
        bytes: &[u8],
        origin: Origin,
        now_ms: u64,
    ) -> (ApplyOutcome, Option<u64>) {
        let reject = |w: &Writer, rejection, version| {
            (
                ApplyOutcome::Rejected {
                    kept: kept(w),
                    rejection,
                },
                version,
            )
        };
        if let Some(pinned) = w.pinned {
            return reject(w, Rejection::Pinned { pinned }, None);
        }
        let Some(serving) = w.active.as_ref().map(|h| h.validated.version()) else {
            return self.apply_locked(w, bytes, origin, now_ms);
        };
        let validated = match check(bytes, &self.policy(None)) {
            Ok(checked) => checked.validated,
            Err(issues) => return reject(w, Rejection::Invalid(issues), None),
        };
        let version = validated.version();
        if version >= serving {
            return self.apply_locked(w, bytes, origin, now_ms);
        }
        let digest = validated.digest();
        let in_lkg = [w.lkg.current, w.lkg.previous]
            .iter()
            .flatten()
            .any(|vd| vd.digest == digest);
        let archived = || {
            matches!(
                self.candidate(&self.layout.version_file(version), Some(version)),
                Candidate::Good(archived, _) if archived.digest() == digest
            )
        };
        if !(in_lkg || archived()) {
            // Never served here: an old file replayed, not a rollback this node can vouch for.
            let issue = Issue::VersionNotAbove {
                version,
                previous: serving,
            };
            return reject(w, Rejection::Invalid(vec![issue]), Some(version));
        }
        match self.activate_checked(w, validated, bytes.to_vec(), origin, now_ms, in_lkg) {
            Ok(outcome) => {
                if matches!(outcome, ApplyOutcome::Applied { .. }) {
                    tracing::warn!(
                        version,
                        from = serving,
                        "rolled back to a version served before"
                    );
                }
                (outcome, Some(version))
            }
            Err((rejection, v)) => reject(w, rejection, v),
        }
    }

    fn policy<'a>(&'a self, previous: Option<&'a rampart_artifact::Document>) -> Policy<'a> {
        Policy {
            contract: &self.config.contract,
            keyring: Some(&self.config.keyring),
            previous,
        }
    }

    /// Reads and verifies a data-dir file (no version rule: break glass may go back).
    fn candidate(&self, path: &Path, expect_version: Option<u64>) -> Candidate {
        let bytes = match disk::read_capped(path, self.config.max_file_bytes()) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Candidate::Missing,
            Err(DiskError::TooLarge { size, limit, .. }) => {
                return Candidate::Bad(
                    Rejection::Invalid(vec![Issue::TooLarge {
                        what: "file",
                        size,
                        limit,
                    }]),
                    None,
                );
            }
            Err(e) => return Candidate::Bad(Rejection::Io(e.to_string()), None),
        };
        match check(&bytes, &self.policy(None)) {
            Ok(c) => {
                let found = c.validated.version();
                match expect_version {
                    Some(want) if want != found => Candidate::Bad(
                        Rejection::Io(format!(
                            "{} holds version {found}, not {want}",
                            path.display()
                        )),
                        Some(found),
                    ),
                    _ => Candidate::Good(Box::new(c.validated), bytes),
                }
            }
            Err(issues) => Candidate::Bad(Rejection::Invalid(issues), None),
        }
    }

    /// The steps after verification: poisoned, same digest, compile, swap.
    fn activate_checked(
        &self,
        w: &mut Writer,
        validated: Validated,
        bytes: Vec<u8>,
        origin: Origin,
        now_ms: u64,
        soaked: bool,
    ) -> Result<ApplyOutcome, (Rejection, Option<u64>)> {
        let version = validated.version();
        if w.poisoned.iter().any(|p| p.version == version) {
            return Err((Rejection::Poisoned { version }, Some(version)));
        }
        if let Some(held) = &w.active
            && held.validated.digest() == validated.digest()
        {
            return Ok(unchanged(held));
        }
        let plan = self
            .compile(&validated)
            .map_err(|message| (Rejection::Compile(message), Some(version)))?;
        let digest = validated.digest();
        // Journal first: a death right after the swap is blamed on the new version.
        self.journal(
            w,
            Event::Activated {
                at_ms: now_ms,
                version,
                digest,
            },
            now_ms,
        );
        let active = Active {
            version,
            digest,
            plan: Arc::new(plan),
            origin,
            activated_at_ms: now_ms,
        };
        let next = self.current.load().with_active(Some(active));
        self.current.store(Arc::new(next));
        w.active = Some(Held {
            validated,
            bytes: Arc::from(bytes),
        });
        self.meter.reset();
        let done = soaked || w.lkg.current.is_some_and(|c| c.digest == digest);
        w.soak = Some(Soak::start(version, digest, now_ms, done));
        Ok(ApplyOutcome::Applied { version, digest })
    }

    /// Compiles with the compiler's panics caught: a compiler bug rejects one file instead
    /// of killing the thread that applies files.
    fn compile(&self, validated: &Validated) -> Result<C::Plan, String> {
        match catch_unwind(AssertUnwindSafe(|| self.compiler.compile(validated))) {
            Ok(Ok(plan)) => Ok(plan),
            Ok(Err(e)) => Err(e.to_string()),
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned());
                Err(format!("the compiler panicked: {what}"))
            }
        }
    }

    fn boot_from_lkg(&self, w: &mut Writer, now_ms: u64) {
        let mut usable = Vec::new();
        for slot in [Slot::Current, Slot::Previous] {
            match self.candidate(&slot.path(&self.layout), None) {
                Candidate::Missing => {}
                Candidate::Bad(rejection, version) => {
                    w.lkg_problems.push(format!("{}: {rejection}", slot.name()));
                    self.record_rejection(w, &rejection, Origin::Boot, version, now_ms);
                }
                Candidate::Good(validated, bytes) => {
                    let vd = VersionDigest {
                        version: validated.version(),
                        digest: validated.digest(),
                    };
                    if w.poisoned.iter().any(|p| p.version == vd.version) {
                        // Not kept as a known-good file: the next promotion overwrites it.
                        w.lkg_problems.push(format!(
                            "{}: version {} is poisoned",
                            slot.name(),
                            vd.version
                        ));
                        continue;
                    }
                    match slot {
                        Slot::Current => w.lkg.current = Some(vd),
                        Slot::Previous => w.lkg.previous = Some(vd),
                    }
                    usable.push((slot, validated, bytes));
                }
            }
        }
        for (slot, validated, bytes) in usable {
            match self.activate_checked(
                w,
                *validated,
                bytes,
                Origin::Boot,
                now_ms,
                slot == Slot::Current,
            ) {
                Ok(outcome) => {
                    self.counters.outcome(&outcome);
                    tracing::info!(
                        version = ?outcome.serving().map(|(v, _)| v),
                        from = slot.name(),
                        "serving last-known-good"
                    );
                    return;
                }
                Err((rejection, v)) => {
                    w.lkg_problems.push(format!("{}: {rejection}", slot.name()));
                    self.record_rejection(w, &rejection, Origin::Boot, v, now_ms);
                }
            }
        }
        tracing::warn!("no usable last-known-good: serving no plan (requests pass unscored)");
    }

    /// Writes the active version as last-known-good.
    fn promote(&self, w: &mut Writer, now_ms: u64) {
        let Some(held) = &w.active else {
            return;
        };
        let vd = VersionDigest {
            version: held.validated.version(),
            digest: held.validated.digest(),
        };
        let bytes = Arc::clone(&held.bytes);
        match w.lkg.promote(&self.layout, &bytes, vd) {
            Ok(wrote) => {
                if let Some(soak) = w.soak.as_mut() {
                    soak.done = true;
                }
                if wrote {
                    self.counters.lkg_write();
                    tracing::info!(version = vd.version, digest = %vd.digest, "written as last-known-good");
                }
            }
            // The soak stays due: the next tick tries again (its log is rate-limited).
            Err(e) => self.disk_failed(w, "write last-known-good", &e, now_ms),
        }
    }

    fn journal(&self, w: &mut Writer, event: Event, now_ms: u64) {
        let Some(journal) = w.journal.as_mut() else {
            return;
        };
        if let Err(e) = journal.append(event) {
            // A journal that cannot be written blinds the sentinel: stop trying, and say so
            // on /status (`journal_ok: false`).
            w.journal = None;
            self.disk_failed(w, "append to journal", &e, now_ms);
        }
    }

    fn finish(
        &self,
        w: &mut Writer,
        outcome: &ApplyOutcome,
        origin: Origin,
        version: Option<u64>,
        now_ms: u64,
    ) {
        match outcome {
            ApplyOutcome::Rejected { rejection, .. } => {
                self.record_rejection(w, rejection, origin, version, now_ms);
            }
            ApplyOutcome::Applied { version, digest } => {
                self.counters.outcome(outcome);
                tracing::info!(version, digest = %digest, ?origin, "feature file applied");
            }
            ApplyOutcome::Unchanged { .. } => self.counters.outcome(outcome),
        }
    }

    fn record_rejection(
        &self,
        w: &mut Writer,
        rejection: &Rejection,
        origin: Origin,
        version: Option<u64>,
        now_ms: u64,
    ) {
        self.counters.rejected(rejection);
        w.last_rejection = Some(LastRejection {
            at_ms: now_ms,
            origin,
            version,
            code: rejection.code(),
            message: rejection.to_string(),
            issues: rejection.issues().to_vec(),
        });
        let kept = kept(w).map(|(v, _)| v);
        match w.limiter.observe(&rejection.kind(), now_ms) {
            Verdict::Log { suppressed } => {
                self.counters.log_line();
                tracing::warn!(
                    code = rejection.code(),
                    ?origin,
                    version,
                    kept,
                    suppressed,
                    "feature file rejected, keeping the current version: {rejection}"
                );
            }
            Verdict::Suppress => self.counters.log_suppressed(),
        }
    }

    fn disk_failed(&self, w: &mut Writer, what: &str, error: &DiskError, now_ms: u64) {
        self.counters.disk_error();
        w.last_disk_error = Some(format!("{what}: {error}"));
        match w.limiter.observe(&format!("disk:{what}"), now_ms) {
            Verdict::Log { suppressed } => {
                self.counters.log_line();
                tracing::error!(suppressed, "data dir: {what}: {error}");
            }
            Verdict::Suppress => self.counters.log_suppressed(),
        }
    }
}

impl<C: Compiler> fmt::Debug for Store<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.config.data_dir)
            .field("snapshot", &self.current.load())
            .finish_non_exhaustive()
    }
}

fn kept(w: &Writer) -> Option<(u64, Digest)> {
    w.active
        .as_ref()
        .map(|h| (h.validated.version(), h.validated.digest()))
}

fn unchanged(held: &Held) -> ApplyOutcome {
    ApplyOutcome::Unchanged {
        version: held.validated.version(),
        digest: held.validated.digest(),
    }
}
