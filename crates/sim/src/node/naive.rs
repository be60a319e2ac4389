//! The naive proxy: Cloudflare's FL2 and FL as they met the file of 18 November.
//!
//! Loading a file appends its features into room preallocated for
//! [`ROOM`](rampart_artifact::limits::DEFAULT_MAX_FEATURES) of them. FL2 `unwrap()`s the
//! error of a file that does not fit: the simulator records a crash (an event, never a panic
//! of its own), keeps the node down for the restart time, and boots it into whatever file the
//! distribution left on disk, which is the same file. The old FL keeps running and scores
//! every request 0. A wedge-prone FL2 node that crash-loops long enough stays down until an
//! operator restarts it: the long tail of the day.
//!
//! Every proxy keeps a last-known-good file: one that served [`SOAK_MS`] without a crash (the
//! proxies of 29 October 2025 had such a rule). An operator's rollback loads it, which is the
//! bad file again when the bad file soaked before it killed the process
//! ([`Proxy::die`], a process fault of [`crate::fault`]). With rampart's blessed
//! last-known-good ([`Proxy::require_blessing`]) the file must also be among the versions
//! the control plane blessed, as rampart's store requires it.
//!
//! Each boot after a death reports it with the next beat (the digest active, the uptime and
//! the time on that digest), as an edge does: the rollout's restarts and death gates see it.
//!
//! With a [`Supervisor`], boots go through rampart's crash-loop sentinel: the journal holds
//! the events rampart's ingest store writes (boot, activated, clean exit), and
//! [`rampart_ingest::sentinel::decide`] poisons a version the process keeps dying
//! after, so the next boot serves the last file that had served its soak.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_artifact::limits::{DEFAULT_MAX_FEATURES, HARD_MAX_FEATURES};
use rampart_artifact::{Contract, ContractSpec, Digest, validate};
use rampart_ingest::VersionDigest;
use rampart_ingest::sentinel::{Event, Rule, SentinelConfig, decide};
use rampart_rollout::{Apply, BeatDeath};
use rampart_score::Model;

use crate::clock::SECOND;
use crate::node::{MAX_DEATHS_PER_BEAT, Report, Serving};
use crate::producer::Publication;
use crate::scenario::ModuleOff;
use crate::traffic::{ModelId, Models};

/// Features the naive proxy preallocates room for.
pub const ROOM: usize = DEFAULT_MAX_FEATURES;
/// Seconds a file must serve without a crash before the supervisor keeps it as last known
/// good (rampart's default soak).
pub const SOAK_MS: u64 = rampart_ingest::config::DEFAULT_SOAK_SECS * SECOND;
/// Journal events a supervisor keeps (rampart compacts its journal the same way: old runs
/// cannot matter to a decision whose window is a minute).
pub const MAX_JOURNAL_EVENTS: usize = 64;

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The old proxy: survives a bad file, scores 0.
    Fl,
    /// The new proxy: panics on a bad file.
    Fl2,
}

/// One naive proxy.
#[derive(Debug)]
pub struct Proxy {
    kind: Kind,
    state: State,
    desired: Option<Arc<Publication>>,
    loaded: Loaded,
    module_enabled: bool,
    module_off: ModuleOff,
    restart_ms: u64,
    wedge: Option<u64>,
    crash_loop_since: Option<u64>,
    supervisor: Option<Supervisor>,
    report: Report,
    crashes: u64,
    /// The last file that served its soak (60 s without a crash, rampart's default as the
    /// proxies of 29 October 2025 had it): what a rollback to last-known-good loads.
    lkg: Option<Arc<Publication>>,
    /// When the file loaded now was activated (cleared at boot).
    serving_since: Option<u64>,
    /// The file the process last died on by a process fault: reloading it does not end the
    /// crash loop, loading another file does.
    died_on: Option<Digest>,
    /// When the process last booted.
    up_since: u64,
    /// The death the next boot detects: the digest active, uptime and time on it.
    dying: Option<BeatDeath>,
    /// Whether last-known-good takes only a version the control plane blessed.
    require_blessing: bool,
    /// Every file that was its last-known-good, oldest first.
    lkg_ever: Vec<Digest>,
    /// The blessed versions, newest first, as last handed out.
    blessed: Arc<[VersionDigest]>,
}

/// rampart's crash-loop sentinel around a naive process.
#[derive(Debug)]
pub struct Supervisor {
    config: SentinelConfig,
    journal: Vec<Event>,
    poisoned: Vec<u64>,
    safe_mode: bool,
    poisonings: u64,
    /// Of `poisonings`, those by the recurrence rule.
    recurrence_poisonings: u64,
}

/// Loads of naive proxies, shared by the fleet: every node that loads a digest gets the same
/// result, so it is computed once.
#[derive(Debug, Default)]
pub struct Loads {
    results: HashMap<Digest, Result<ModelId, usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Down { until: u64 },
    Wedged,
}

#[derive(Debug, Clone)]
enum Loaded {
    Nothing,
    Model(ModelId, Arc<Publication>),
    Broken(Arc<Publication>),
}

// === impl Proxy ===

impl Proxy {
    /// A proxy of `kind`, up, with nothing loaded. `wedge_after` makes it wedge-prone.
    pub fn new(
        kind: Kind,
        restart_ms: u64,
        module_off: ModuleOff,
        wedge_after: Option<u64>,
        supervisor: Option<Supervisor>,
    ) -> Proxy {
        Proxy {
            kind,
            state: State::Up,
            desired: None,
            loaded: Loaded::Nothing,
            module_enabled: true,
            module_off,
            restart_ms,
            wedge: wedge_after,
            crash_loop_since: None,
            supervisor,
            report: Report::default(),
            crashes: 0,
            lkg: None,
            serving_since: None,
            up_since: 0,
            dying: None,
            require_blessing: false,
            lkg_ever: Vec::new(),
            blessed: Arc::from(Vec::new()),
            died_on: None,
        }
    }

    /// From now on, a file becomes last-known-good only once it is blessed too.
    pub fn require_blessing(&mut self) {
        self.require_blessing = true;
    }

    /// The control plane's blessed versions, newest first (with a heartbeat answer).
    pub fn set_blessed(&mut self, blessed: Arc<[VersionDigest]>) {
        self.blessed = blessed;
    }

    /// Deaths detected since the last beat, reported where no rollout wants them.
    pub fn drop_deaths(&mut self) {
        self.report.deaths.clear();
    }

    /// Which proxy this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Crashes so far.
    pub fn crashes(&self) -> u64 {
        self.crashes
    }

    /// Versions the supervisor poisoned so far.
    pub fn poisonings(&self) -> u64 {
        self.supervisor.as_ref().map_or(0, |s| s.poisonings)
    }

    /// Of [`poisonings`](Self::poisonings), those by the recurrence rule.
    pub fn recurrence_poisonings(&self) -> u64 {
        self.supervisor
            .as_ref()
            .map_or(0, |s| s.recurrence_poisonings)
    }

    /// The distribution writes a new file to the node's disk; a running proxy loads it.
    pub fn offer(&mut self, p: Arc<Publication>, now: u64, loads: &mut Loads, models: &mut Models) {
        self.desired = Some(Arc::clone(&p));
        if self.state == State::Up {
            if let Some(sup) = &self.supervisor
                && sup.poisoned.contains(&p.version)
            {
                return;
            }
            self.load(p, now, loads, models);
        }
    }

    /// The bot module's kill switch.
    pub fn set_module_enabled(&mut self, enabled: bool) {
        self.module_enabled = enabled;
    }

    /// Boots a node whose restart time is over.
    pub fn advance(&mut self, now: u64, loads: &mut Loads, models: &mut Models) {
        if let State::Down { until } = self.state
            && now >= until
        {
            self.boot(now, loads, models);
        }
        if self.state == State::Up
            && let Loaded::Model(_, p) = &self.loaded
            && self
                .serving_since
                .is_some_and(|t| now.saturating_sub(t) >= SOAK_MS)
            && self.lkg.as_ref().is_none_or(|l| l.digest != p.digest)
            && (!self.require_blessing || self.blessed.iter().any(|b| b.digest == p.digest))
        {
            if !self.lkg_ever.contains(&p.digest) {
                self.lkg_ever.push(p.digest);
            }
            self.lkg = Some(Arc::clone(p));
        }
    }

    /// The process dies now (a process fault of the file it serves): down for the restart
    /// time, then a boot into the file on disk, the same one.
    pub fn die(&mut self, now: u64) {
        if self.state != State::Up {
            return;
        }
        self.died_on = self.active().map(|p| p.digest);
        self.crash(now, self.died_on);
    }

    /// An operator rolls the node back to its own last-known-good file: the distribution
    /// now holds it, and a running proxy loads it.
    pub fn rollback_last_good(&mut self, now: u64, loads: &mut Loads, models: &mut Models) {
        if let Some(lkg) = self.lkg.clone() {
            self.offer(lkg, now, loads, models);
        }
    }

    /// Every file that was its last-known-good.
    pub fn lkg_ever(&self) -> &[Digest] {
        &self.lkg_ever
    }

    /// Its last-known-good file.
    pub fn last_good(&self) -> Option<&Arc<Publication>> {
        self.lkg.as_ref()
    }

    /// An operator restart: down for the restart time, then a fresh boot (wedge cleared).
    pub fn restart(&mut self, now: u64) {
        self.state = State::Down {
            until: now.saturating_add(self.restart_ms),
        };
        self.crash_loop_since = None;
    }

    /// How requests are answered now.
    pub fn serving(&self) -> Serving {
        if self.state != State::Up {
            return Serving::Down;
        }
        let safe_mode = self.supervisor.as_ref().is_some_and(|s| s.safe_mode);
        if !self.module_enabled || safe_mode {
            return match (self.kind, self.module_off, safe_mode) {
                (Kind::Fl, ModuleOff::Error, false) => Serving::Failing,
                _ => Serving::Unscored,
            };
        }
        match &self.loaded {
            Loaded::Nothing => Serving::Unscored,
            Loaded::Model(id, _) => Serving::Scored(*id),
            Loaded::Broken(_) => Serving::ScoreZero,
        }
    }

    /// The file being served (or failing to be), if up.
    pub fn active(&self) -> Option<&Arc<Publication>> {
        if self.state != State::Up {
            return None;
        }
        match &self.loaded {
            Loaded::Nothing => None,
            Loaded::Model(_, p) | Loaded::Broken(p) => Some(p),
        }
    }

    /// Whether an operator would count it as unhealthy.
    pub fn unhealthy(&self) -> bool {
        self.state != State::Up || matches!(self.serving(), Serving::Failing | Serving::ScoreZero)
    }

    /// Whether it is wedged.
    pub fn wedged(&self) -> bool {
        self.state == State::Wedged
    }

    /// What happened since the last heartbeat (and resets it).
    pub fn take_report(&mut self) -> Report {
        std::mem::take(&mut self.report)
    }

    fn boot(&mut self, now: u64, loads: &mut Loads, models: &mut Models) {
        if let (Some(wedge_after), Some(since)) = (self.wedge, self.crash_loop_since)
            && now.saturating_sub(since) >= wedge_after
        {
            // The crash loop's error reports and core dumps have eaten the machine.
            self.state = State::Wedged;
            return;
        }
        self.state = State::Up;
        self.report.restarts = self.report.restarts.saturating_add(1);
        if let Some(mut death) = self.dying.take()
            && self.report.deaths.len() < MAX_DEATHS_PER_BEAT
        {
            death.detected_at_ms = now;
            self.report.deaths.push(death);
        }
        self.up_since = now;
        self.loaded = Loaded::Nothing;
        self.serving_since = None;
        let mut file = self.desired.clone();
        if let Some(sup) = self.supervisor.as_mut() {
            sup.boot(now);
            if let Some(f) = &file
                && sup.poisoned.contains(&f.version)
            {
                // As rampart's store boots: on last-known-good unless it is poisoned too
                // (a file that soaked before it killed the process), else on nothing.
                file = self
                    .lkg
                    .clone()
                    .filter(|l| !sup.poisoned.contains(&l.version));
            }
        }
        if let Some(f) = file {
            self.load(f, now, loads, models);
        }
    }

    fn load(&mut self, p: Arc<Publication>, now: u64, loads: &mut Loads, models: &mut Models) {
        if let Some(sup) = self.supervisor.as_mut() {
            sup.activated(&p, now);
        }
        self.serving_since = Some(now);
        match loads.load(&p, models) {
            Ok(id) => {
                self.loaded = Loaded::Model(id, Arc::clone(&p));
                if self.died_on != Some(p.digest) {
                    self.died_on = None;
                    self.crash_loop_since = None;
                }
                self.report.apply = Some(Apply::Accepted { digest: p.digest });
            }
            Err(_count) => match self.kind {
                Kind::Fl => {
                    self.loaded = Loaded::Broken(Arc::clone(&p));
                    self.report.apply = Some(Apply::Accepted { digest: p.digest });
                }
                Kind::Fl2 => {
                    // `features.append_with_names(..).unwrap()`: the worker panics. The
                    // process dies; it comes back after the restart time, into the same file.
                    self.crash(now, Some(p.digest));
                }
            },
        }
    }

    /// The process dies with `active` (the file loaded, or the one whose load killed it).
    fn crash(&mut self, now: u64, active: Option<Digest>) {
        self.crashes += 1;
        self.dying = Some(BeatDeath {
            detected_at_ms: now,
            active,
            uptime_ms: Some(now.saturating_sub(self.up_since)),
            active_for_ms: self.serving_since.map(|t| now.saturating_sub(t)),
        });
        self.loaded = Loaded::Nothing;
        self.crash_loop_since.get_or_insert(now);
        self.state = State::Down {
            until: now.saturating_add(self.restart_ms),
        };
    }
}

// === impl Supervisor ===

impl Supervisor {
    /// A sentinel with rampart's default thresholds.
    pub fn new(config: SentinelConfig) -> Supervisor {
        Supervisor {
            config,
            journal: Vec::new(),
            poisoned: Vec::new(),
            safe_mode: false,
            poisonings: 0,
            recurrence_poisonings: 0,
        }
    }

    /// The sentinel's journal runs on virtual time: `decide` only compares the times in it
    /// with the `now` it is given.
    fn boot(&mut self, now: u64) {
        let decision = decide(&self.journal, now, &self.config);
        for suspect in decision.poison() {
            if !self.poisoned.contains(&suspect.version) {
                self.poisoned.push(suspect.version);
                self.poisonings += 1;
                if suspect.rule == Rule::Recurrence {
                    self.recurrence_poisonings += 1;
                }
            }
        }
        self.safe_mode = decision.is_safe_mode();
        self.journal.push(Event::Boot { at_ms: now });
        if self.journal.len() > MAX_JOURNAL_EVENTS {
            let cut = self.journal.len() - MAX_JOURNAL_EVENTS;
            self.journal.drain(..cut);
        }
    }

    fn activated(&mut self, p: &Publication, now: u64) {
        self.journal.push(Event::Activated {
            at_ms: now,
            version: p.version,
            digest: p.digest,
        });
    }
}

// === impl Loads ===

impl Loads {
    /// What loading `p` into room for [`ROOM`] features gives: a model, or the feature count
    /// that did not fit (or did not compile: the unwrap fails either way).
    pub fn load(&mut self, p: &Publication, models: &mut Models) -> Result<ModelId, usize> {
        if let Some(r) = self.results.get(&p.digest) {
            return *r;
        }
        let doc = &p.document;
        let count = doc.features.len();
        let result = if count > ROOM {
            Err(count)
        } else {
            // The naive proxy checks nothing; the contract here is only what a model needs.
            let permissive = Contract::try_from(ContractSpec {
                max_features: HARD_MAX_FEATURES,
                ..ContractSpec::default()
            })
            .unwrap_or_default();
            match validate(doc, &permissive, None)
                .ok()
                .and_then(|v| Model::compile(&v, ROOM).ok())
            {
                Some(model) => Ok(models.register(p.digest, || Arc::new(model), p.faulty)),
                None => Err(count),
            }
        };
        self.results.insert(p.digest, result);
        result
    }
}

#[cfg(test)]
mod tests {
    use rampart_artifact::{Envelope, SecretKey};
    use rampart_score::example_document;

    use super::*;
    use crate::traffic::Pool;

    fn publication(version: u64) -> Arc<Publication> {
        let key = SecretKey::from_seed([5; 32]);
        let doc = example_document(version);
        Arc::new(Publication {
            version,
            digest: doc.digest(),
            bytes: Arc::from(Envelope::sign(&doc, &key).to_json()),
            document: Arc::new(doc),
            faulty: false,
            epoch: 0,
            marks: Vec::new(),
        })
    }

    #[test]
    fn a_blessing_proxy_keeps_only_blessed_files_and_reports_its_deaths() {
        let mut models = Models::new(Arc::new(Pool::new(1, 16).unwrap()), 30);
        let mut loads = Loads::default();
        let mut p = Proxy::new(Kind::Fl2, 10 * SECOND, ModuleOff::Unscored, None, None);
        p.require_blessing();
        let v1 = publication(1);
        p.offer(Arc::clone(&v1), 0, &mut loads, &mut models);
        p.advance(SOAK_MS + SECOND, &mut loads, &mut models);
        assert!(p.last_good().is_none(), "soaked, not blessed");
        p.set_blessed(Arc::from(vec![VersionDigest {
            version: 1,
            digest: v1.digest,
        }]));
        p.advance(SOAK_MS + 2 * SECOND, &mut loads, &mut models);
        assert_eq!(p.last_good().map(|f| f.version), Some(1));
        assert_eq!(p.lkg_ever(), [v1.digest]);

        // A process fault: the next boot reports the death with the file it died with.
        p.die(100 * SECOND);
        p.advance(110 * SECOND, &mut loads, &mut models);
        let report = p.take_report();
        let [death] = report.deaths.as_slice() else {
            panic!("one death: {:?}", report.deaths);
        };
        assert_eq!(death.active, Some(v1.digest));
        assert_eq!(death.detected_at_ms, 110 * SECOND);
        assert_eq!(death.uptime_ms, Some(100 * SECOND));
        assert!(p.take_report().deaths.is_empty());
    }

    #[test]
    fn a_supervised_proxy_boots_on_nothing_rather_than_a_poisoned_last_known_good() {
        let mut models = Models::new(Arc::new(Pool::new(1, 16).unwrap()), 30);
        let mut loads = Loads::default();
        let sentinel = SentinelConfig {
            crash_threshold: u32::MAX,
            safe_mode_threshold: u32::MAX,
            ..SentinelConfig::default()
        };
        let mut p = Proxy::new(
            Kind::Fl2,
            10 * SECOND,
            ModuleOff::Unscored,
            None,
            Some(Supervisor::new(sentinel)),
        );
        let v2 = publication(2);
        p.offer(Arc::clone(&v2), 0, &mut loads, &mut models);
        p.advance(SOAK_MS + SECOND, &mut loads, &mut models);
        assert_eq!(p.last_good().map(|f| f.version), Some(2));
        // It kills the process every 5 minutes: the recurrence rule poisons it.
        let mut t = 5 * 60 * SECOND;
        for _ in 0..4 {
            p.die(t);
            t += 10 * SECOND;
            p.advance(t, &mut loads, &mut models);
            t += 5 * 60 * SECOND;
        }
        assert_eq!(p.recurrence_poisonings(), 1);
        assert!(
            p.active().is_none(),
            "nothing rather than the poisoned file"
        );
        assert_eq!(p.serving(), Serving::Unscored);
    }
}
