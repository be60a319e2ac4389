//! The store: the one place a feature file becomes the model the request path runs.
//!
//! Files come in one way, [`Store::offer`] ([`Store::offer_file`] reads one first): verified
//! once, then the version rule by [`Channel`] (see `store/offer`), then poisoned list,
//! compile, journal and swap. Break glass (pin, force last-known-good, safe mode, the kill
//! switch) is kept apart in `break_glass`. The request path holds a [`Reader`]: loads and
//! request counts, nothing that writes.
//!
//! Readers load the snapshot atomically, without a lock. Writers (offer, tick, break glass)
//! serialize on one mutex that the request path never takes; only a writer holding it stores
//! into the `ArcSwap`, so a load-modify-store is never lost.
//!
//! # Layout
//! - `store.rs`: [`Store`], its boot, the public entry points, and what they share (the
//!   data-dir candidate, last-known-good promotion, journal, rejection bookkeeping).
//! - `offer`: the version rule by channel and the steps after verification (poisoned,
//!   compile, journal, swap).
//! - `break_glass`: what an operator does by hand: pin, unpin, force last-known-good, clear
//!   safe mode, the kill switch and its `module.json`.
//! - `reader`: [`Reader`], the request path's read-only handle.

mod break_glass;
mod offer;
mod reader;

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rampart_artifact::{Digest, Issue, Policy, Validated, check};

use crate::archive;
use crate::compiler::Compiler;
use crate::config::{Config, DataDir, MAX_PENDING_DEATHS};
use crate::counters::{ApplyCounters, Metrics};
use crate::disk::{self, DiskError};
use crate::journal::{self, Journal, Poisoned};
use crate::limiter::{LogLimiter, Throttle};
use crate::lkg::{self, Legacy, Lkg};
use crate::outcome::{ApplyOutcome, Rejection};
use crate::sentinel::{self, ALIVE_INTERVAL_MS, BootDecision, Death, Event};
use crate::snapshot::{Channel, Mode, Snapshot};
use crate::soak::Soak;
use crate::status::{
    ActiveStatus, LastRejection, LkgStatus, SentinelStatus, Status, VersionDigest,
};

pub use self::break_glass::{MAX_MODULE_STATE_BYTES, MAX_REASON_LEN};
pub use self::reader::Reader;

use self::reader::Shared;

/// The edge's feature-file store. See the crate docs for the flow.
pub struct Store<C: Compiler> {
    config: Config,
    layout: DataDir,
    compiler: C,
    /// What readers see: the snapshot, the soak meter, the counters.
    shared: Arc<Shared<C::Model>>,
    writer: Mutex<Writer>,
    /// The keys a feature file must be signed with: the config's at boot, then whatever the
    /// edge's keyset says ([`Store::set_keyring`], a rotation without restart).
    keyring: arc_swap::ArcSwap<rampart_artifact::Keyring>,
}

/// Why the store could not start. Only an unusable data dir stops a boot: a missing,
/// corrupt or poisoned last-known-good boots with no model instead.
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
    boot_problems: Vec<String>,
    journal: Option<Journal>,
    last_rejection: Option<LastRejection>,
    last_disk_error: Option<String>,
    limiter: LogLimiter,
    kill_reason: Option<String>,
    decision: BootDecision,
    boot_at_ms: u64,
    /// Whether the run before this boot died (no clean exit in the journal).
    restarted_after_death: bool,
    /// The control plane's latest blessed list; `None` until one arrives.
    blessed: Option<Vec<VersionDigest>>,
    /// Deaths of earlier runs not yet acknowledged, oldest first (at most
    /// [`MAX_PENDING_DEATHS`]).
    pending_deaths: VecDeque<Death>,
    /// When [`Event::Alive`] was last written.
    alive_ms: u64,
}

#[derive(Debug)]
struct Held {
    validated: Validated,
    bytes: Arc<[u8]>,
}

/// A file read from the data dir for break glass, boot or a rollback.
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
        let keep_ms = config.sentinel.horizon_ms().saturating_mul(2);
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
        let mut pending_deaths: VecDeque<Death> = sentinel::deaths(&events, now_ms).into();
        let found = pending_deaths.len() as u64;
        let mut dropped = 0u64;
        while pending_deaths.len() > MAX_PENDING_DEATHS {
            pending_deaths.pop_front();
            dropped += 1;
        }
        let (mut poisoned, poisoned_err) = journal::read_poisoned(&layout.poisoned());
        if let Some(e) = poisoned_err {
            problems.push(("read poisoned list".to_owned(), e));
        }
        let counters = ApplyCounters::default();
        counters.deaths(found, dropped);
        let mut newly_poisoned = false;
        for suspect in decision.poison() {
            if poisoned.iter().any(|p| p.version == suspect.version) {
                continue;
            }
            let window = match suspect.rule {
                sentinel::Rule::CrashLoop => config.sentinel.window_secs,
                sentinel::Rule::Recurrence => config.sentinel.recurrence_window_secs,
            };
            tracing::error!(
                version = suspect.version,
                digest = %suspect.digest,
                deaths = suspect.deaths,
                rule = ?suspect.rule,
                "crash loop: the process died {} times within {} s while version {} was active; \
                 it is poisoned and refused until a higher version comes",
                suspect.deaths,
                window,
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
        let mut boot_problems: Vec<String> = problems
            .iter()
            .map(|(what, e)| format!("{what}: {e}"))
            .collect();
        let (module_enabled, kill_reason) =
            break_glass::read_module_state(&layout, config.module_state_lost, &mut boot_problems);
        let shared = Shared::new(Snapshot::empty(module_enabled, mode), counters);

        let limiter = LogLimiter::new(config.log_interval_ms);
        let store = Store {
            keyring: arc_swap::ArcSwap::from_pointee(config.keyring.clone()),
            writer: Mutex::new(Writer {
                active: None,
                soak: None,
                poisoned,
                pinned: None,
                break_glass: false,
                lkg: Lkg::default(),
                lkg_problems: Vec::new(),
                boot_problems,
                journal,
                last_rejection: None,
                last_disk_error: None,
                limiter,
                kill_reason,
                decision,
                boot_at_ms: now_ms,
                restarted_after_death,
                blessed: None,
                pending_deaths,
                alive_ms: now_ms,
            }),
            shared: Arc::new(shared),
            layout,
            compiler,
            config,
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

    /// The request path's handle: snapshot loads and request counts only (cheap to clone).
    pub fn reader(&self) -> Reader<C::Model> {
        Reader::new(Arc::clone(&self.shared))
    }

    /// The current snapshot as an owned `Arc` (admin and agent paths).
    pub fn snapshot(&self) -> Arc<Snapshot<C::Model>> {
        self.shared.current.load_full()
    }

    /// Offers a file's bytes, from the watch dir or the control plane: the one way a file
    /// comes in. It is verified (signature, contract), held to the version rule of its
    /// `channel` (only [`Channel::Control`] may send the node back to a version it served
    /// before; any other channel must be above the version serving), refused if poisoned,
    /// compiled, then swapped in. Any failure keeps the current version serving, and is
    /// counted, remembered for `/status` and logged (rate-limited).
    pub fn offer(&self, bytes: &[u8], channel: Channel, now_ms: u64) -> ApplyOutcome {
        let mut w = self.lock();
        let (outcome, version) = self.offer_locked(&mut w, bytes, channel, now_ms);
        self.finish(&mut w, &outcome, channel, version, now_ms);
        outcome
    }

    /// [`offer`](Self::offer)s a file on disk: its length from metadata is checked against
    /// the contract's wire limit before a byte is read (a 100 MB file costs one `stat`), then
    /// it is read with a cap. A file that cannot be read is refused like a bad one.
    pub fn offer_file(&self, path: &Path, channel: Channel, now_ms: u64) -> ApplyOutcome {
        match disk::read_capped(path, self.config.max_file_bytes()) {
            Ok(bytes) => self.offer(&bytes, channel, now_ms),
            Err(e) => {
                let mut w = self.lock();
                let outcome = ApplyOutcome::Rejected {
                    kept: kept(&w),
                    rejection: unreadable(e),
                };
                self.finish(&mut w, &outcome, channel, None, now_ms);
                outcome
            }
        }
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
            self.shared.counters.log_line();
        }
        if now_ms.saturating_sub(w.alive_ms) >= ALIVE_INTERVAL_MS {
            w.alive_ms = now_ms;
            self.journal(&mut w, Event::Alive { at_ms: now_ms }, now_ms);
        }
        let (requests, errors) = self.shared.meter.take();
        let due = match w.soak.as_mut() {
            Some(soak) => soak.due(now_ms, requests, errors, &self.config.soak),
            None => false,
        };
        if due && self.blessed_or_free(&w) {
            self.promote(&mut w, now_ms);
        }
    }

    /// The control plane's blessed versions, newest first (the answer's or the verified
    /// order's `blessed`): authoritative once received. A version soaked here becomes
    /// last-known-good only once it is in this list (with
    /// [`Config::require_blessing`]); a version in `lkg/` that the list no longer holds is
    /// removed (a rollback after the rollout's watch unblesses it). An empty list removes
    /// nothing: it cannot tell a control plane that blesses nothing yet from one that does
    /// not bless, and emptying last-known-good would leave a restart with nothing to serve.
    pub fn set_blessed(&self, blessed: &[VersionDigest], now_ms: u64) {
        let mut w = self.lock();
        if w.blessed.as_deref() == Some(blessed) {
            return;
        }
        w.blessed = Some(blessed.to_vec());
        tracing::info!(blessed = ?blessed.iter().map(|b| b.version).collect::<Vec<_>>(), "blessed versions from the control plane");
        if blessed.is_empty() {
            return;
        }
        let unblessed: Vec<VersionDigest> = w
            .lkg
            .history()
            .iter()
            .filter(|h| !blessed.contains(h))
            .copied()
            .collect();
        for vd in unblessed {
            match w.lkg.remove(&self.layout, vd.version) {
                Ok(_) => {
                    self.shared.counters.lkg_unblessed();
                    tracing::warn!(
                        version = vd.version,
                        digest = %vd.digest,
                        "no longer blessed by the control plane: removed from last-known-good"
                    );
                    if let Some(soak) = w.soak.as_mut()
                        && soak.digest == vd.digest
                    {
                        // It may be blessed again: then its soak promotes it again.
                        soak.done = false;
                    }
                }
                Err(e) => self.disk_failed(&mut w, "remove unblessed last-known-good", &e, now_ms),
            }
        }
    }

    /// Whether the active version may be promoted as far as blessing goes.
    fn blessed_or_free(&self, w: &Writer) -> bool {
        if !self.config.require_blessing {
            return true;
        }
        let (Some(held), Some(blessed)) = (&w.active, &w.blessed) else {
            return false;
        };
        let digest = held.validated.digest();
        blessed.iter().any(|b| b.digest == digest)
    }

    /// Deaths of earlier runs still to report, oldest first, at most `max`: send them until
    /// [`deaths_reported`](Self::deaths_reported) says the control plane has them.
    pub fn pending_deaths(&self, max: usize) -> Vec<Death> {
        self.lock()
            .pending_deaths
            .iter()
            .take(max)
            .cloned()
            .collect()
    }

    /// The control plane answered a beat carrying the deaths detected at `detected_at_ms`:
    /// each is written to the journal as reported ([`Event::DeathReported`], so a restart
    /// does not send it again) and leaves the queue.
    pub fn deaths_reported(&self, detected_at_ms: &[u64], now_ms: u64) {
        let mut w = self.lock();
        for at in detected_at_ms {
            let Some(index) = w
                .pending_deaths
                .iter()
                .position(|d| d.detected_at_ms == *at)
            else {
                continue;
            };
            w.pending_deaths.remove(index);
            self.journal(
                &mut w,
                Event::DeathReported {
                    at_ms: now_ms,
                    detected_at_ms: *at,
                },
                now_ms,
            );
            self.shared.counters.death_reported();
        }
    }

    /// Records a clean shutdown in the boot journal, so the next boot does not count this
    /// run as a death. Not called on drop: a panic unwinding must count as a death.
    pub fn clean_exit(&self, now_ms: u64) {
        let mut w = self.lock();
        self.journal(&mut w, Event::CleanExit { at_ms: now_ms }, now_ms);
        tracing::info!("clean exit recorded");
    }

    /// The last file refused, from any channel (cheap: no disk access, unlike
    /// [`status`](Self::status)); the edge agent reports it in every heartbeat.
    pub fn last_rejection(&self) -> Option<LastRejection> {
        self.lock().last_rejection.clone()
    }

    /// Whether the process run before this one died (booted and never recorded a clean
    /// exit), as the boot journal tells. The edge agent reports it as a restart.
    pub fn restarted_after_death(&self) -> bool {
        self.lock().restarted_after_death
    }

    /// Runs `f` on the validated document serving, if any (under the writer lock: keep it
    /// short). The edge's test hook reads its marker this way.
    pub fn with_active<R>(&self, f: impl FnOnce(&Validated) -> R) -> Option<R> {
        self.lock().active.as_ref().map(|h| f(&h.validated))
    }

    /// The counters as plain numbers, for `/metrics`.
    pub fn metrics(&self) -> Metrics {
        self.shared.counters.read()
    }

    /// The whole state, for `/status`.
    pub fn status(&self) -> Status {
        let snapshot = self.snapshot();
        let w = self.lock();
        let active = snapshot.active.as_ref().map(|a| ActiveStatus {
            version: a.version,
            digest: a.digest,
            channel: a.channel,
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
            scoring: snapshot.scoring_model().is_some(),
            last_rejection: w.last_rejection.clone(),
            lkg: LkgStatus {
                current: w.lkg.newest(),
                history: w.lkg.history().to_vec(),
                require_blessing: self.config.require_blessing,
                blessed: w.blessed.clone(),
                boot_problems: w.lkg_problems.clone(),
            },
            pending_deaths: w.pending_deaths.iter().cloned().collect(),
            boot_problems: w.boot_problems.clone(),
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

    fn policy<'a>(
        &'a self,
        keyring: &'a rampart_artifact::Keyring,
        previous: Option<&'a rampart_artifact::Document>,
    ) -> Policy<'a> {
        Policy {
            contract: &self.config.contract,
            keyring: Some(keyring),
            previous,
        }
    }

    /// Replaces the keys feature files must be signed with, from the next file on (a key
    /// rotation: what serves stays; last-known-good on disk is not re-checked until boot).
    pub fn set_keyring(&self, keyring: rampart_artifact::Keyring) {
        self.keyring.store(Arc::new(keyring));
    }

    /// The keys feature files must be signed with now.
    pub fn keyring(&self) -> Arc<rampart_artifact::Keyring> {
        self.keyring.load_full()
    }

    /// Reads and verifies a data-dir file (no version rule: boot, break glass and a
    /// rollback's archive look-up decide that themselves).
    fn candidate(&self, path: &Path, expect_version: Option<u64>) -> Candidate {
        let bytes = match disk::read_capped(path, self.config.max_file_bytes()) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Candidate::Missing,
            Err(e) => return Candidate::Bad(unreadable(e), None),
        };
        let keyring = self.keyring.load();
        match check(&bytes, &self.policy(&keyring, None)) {
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

    /// Reads `lkg/` (migrating a `current`/`previous` layout first), then serves the newest
    /// valid version that is not poisoned. A poisoned version is removed from `lkg/`: it is
    /// not known good.
    fn boot_from_lkg(&self, w: &mut Writer, now_ms: u64) {
        for legacy in Legacy::ALL {
            match self.candidate(&legacy.path(&self.layout), None) {
                Candidate::Missing => {}
                Candidate::Bad(rejection, _) => {
                    w.lkg_problems
                        .push(format!("{}: {rejection}", legacy.name()));
                }
                Candidate::Good(validated, _) => {
                    let version = validated.version();
                    match lkg::migrate(&self.layout, legacy, version) {
                        Ok(()) => tracing::info!(
                            version,
                            from = legacy.name(),
                            "last-known-good moved to the history layout"
                        ),
                        Err(e) => self.disk_failed(w, "migrate last-known-good", &e, now_ms),
                    }
                }
            }
        }
        let versions = match lkg::list(&self.layout) {
            Ok(v) => v,
            Err(e) => {
                self.disk_failed(w, "list last-known-good", &e, now_ms);
                Vec::new()
            }
        };
        let mut usable = Vec::new();
        for version in versions {
            let path = self.layout.lkg_file(version);
            let name = format!("lkg/{version}.rfeat");
            match self.candidate(&path, Some(version)) {
                Candidate::Missing => {}
                Candidate::Bad(rejection, found) => {
                    w.lkg_problems.push(format!("{name}: {rejection}"));
                    self.record_rejection(w, &rejection, Channel::Boot, found, now_ms);
                }
                Candidate::Good(validated, bytes) => {
                    let vd = VersionDigest {
                        version: validated.version(),
                        digest: validated.digest(),
                    };
                    if w.poisoned.iter().any(|p| p.version == vd.version) {
                        w.lkg_problems
                            .push(format!("{name}: version {} is poisoned", vd.version));
                        w.lkg.found(vd);
                        if let Err(e) = w.lkg.remove(&self.layout, vd.version) {
                            self.disk_failed(w, "remove poisoned last-known-good", &e, now_ms);
                        }
                        continue;
                    }
                    w.lkg.found(vd);
                    usable.push((name, validated, bytes));
                }
            }
        }
        for (name, validated, bytes) in usable {
            match self.activate_checked(w, *validated, bytes, Channel::Boot, now_ms, true) {
                Ok(outcome) => {
                    self.shared.counters.outcome(&outcome);
                    tracing::info!(
                        version = ?outcome.serving().map(|(v, _)| v),
                        from = %name,
                        "serving last-known-good"
                    );
                    return;
                }
                Err((rejection, v)) => {
                    w.lkg_problems.push(format!("{name}: {rejection}"));
                    self.record_rejection(w, &rejection, Channel::Boot, v, now_ms);
                }
            }
        }
        tracing::warn!("no usable last-known-good: serving no model (requests pass unscored)");
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
        match w
            .lkg
            .promote(&self.layout, &bytes, vd, self.config.lkg_keep)
        {
            Ok(wrote) => {
                if let Some(soak) = w.soak.as_mut() {
                    soak.done = true;
                }
                if wrote {
                    self.shared.counters.lkg_write();
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
        channel: Channel,
        version: Option<u64>,
        now_ms: u64,
    ) {
        match outcome {
            ApplyOutcome::Rejected { rejection, .. } => {
                self.record_rejection(w, rejection, channel, version, now_ms);
            }
            ApplyOutcome::Applied { version, digest } => {
                self.shared.counters.outcome(outcome);
                tracing::info!(version, digest = %digest, origin = ?channel, "feature file applied");
            }
            ApplyOutcome::Unchanged { .. } => self.shared.counters.outcome(outcome),
        }
    }

    fn record_rejection(
        &self,
        w: &mut Writer,
        rejection: &Rejection,
        channel: Channel,
        version: Option<u64>,
        now_ms: u64,
    ) {
        self.shared.counters.rejected(rejection);
        w.last_rejection = Some(LastRejection {
            at_ms: now_ms,
            channel,
            version,
            code: rejection.code(),
            message: rejection.to_string(),
            issues: rejection.issues().to_vec(),
        });
        let kept = kept(w).map(|(v, _)| v);
        match w.limiter.observe(&rejection.kind(), now_ms) {
            Throttle::Log { suppressed } => {
                self.shared.counters.log_line();
                tracing::warn!(
                    code = rejection.code(),
                    origin = ?channel,
                    version,
                    kept,
                    suppressed,
                    "feature file rejected, keeping the current version: {rejection}"
                );
            }
            Throttle::Suppress => self.shared.counters.log_suppressed(),
        }
    }

    fn disk_failed(&self, w: &mut Writer, what: &str, error: &DiskError, now_ms: u64) {
        self.shared.counters.disk_error();
        w.last_disk_error = Some(format!("{what}: {error}"));
        match w.limiter.observe(&format!("disk:{what}"), now_ms) {
            Throttle::Log { suppressed } => {
                self.shared.counters.log_line();
                tracing::error!(suppressed, "data dir: {what}: {error}");
            }
            Throttle::Suppress => self.shared.counters.log_suppressed(),
        }
    }
}

impl<C: Compiler> fmt::Debug for Store<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.config.data_dir)
            .field("snapshot", &self.shared.current.load())
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

/// A file that could not be read, as a refusal: over the cap is an invalid file (the
/// contract's wire limit), anything else an I/O failure.
fn unreadable(error: DiskError) -> Rejection {
    match error {
        DiskError::TooLarge { size, limit, .. } => Rejection::Invalid(vec![Issue::TooLarge {
            what: "file",
            size,
            limit,
        }]),
        other => Rejection::Io(other.to_string()),
    }
}
