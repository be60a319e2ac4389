//! rampart's edge: a real ingest [`Store`] per node, compiling with the real scorer's
//! [`Model`], on the node's own data dir.
//!
//! Everything the edge does with a file is the store's doing: the bounded read, the signature,
//! the contract, the poisoned list, the compile into 200 preallocated slots, the atomic swap,
//! the journal, last-known-good after a soak, the kill switch, and the version rule (a
//! rollback is taken only back to a file this node served). The node only offers files to it
//! as the edge's agent does, feeds its soak meter and ticks it, and reads its snapshot.
//! As the agent does with a control plane, it hands the store the blessed versions of each
//! heartbeat answer ([`Store::set_blessed`], with `require_blessing`: last-known-good only
//! once blessed) and reports the deaths the store found at boot in its next beat
//! ([`Store::pending_deaths`], then [`Store::deaths_reported`]).

use std::path::PathBuf;
use std::sync::Arc;

use rampart_artifact::{Digest, Keyring, Validated};
use rampart_ingest::{
    ApplyOutcome, BootError, Channel, Compiler, Config, SentinelConfig, Store, VersionDigest,
};
use rampart_rollout::observation::MAX_NACK_CODES;
use rampart_rollout::{Apply, BeatDeath};
use rampart_score::{CompileError, Model, edge_contract};

use crate::clock::{Calendar, SECOND};
use crate::node::{MAX_DEATHS_PER_BEAT, Report, Serving};
use crate::producer::Publication;
use crate::traffic::Models;

/// Applied files each node keeps to vouch for a rollback the control plane sends (the store's
/// minimum is 1; last-known-good vouches too, and a small archive keeps a 16,500-node
/// fleet's data dirs small).
pub const ARCHIVE_LEN: usize = 2;
/// Requests recorded into the soak meter per step at most: the meter needs a count, not every
/// request of a scaled-up rate.
pub const SOAK_RECORDS_PER_STEP: u64 = 2_000;
/// Ticks continue this long past the soak, so the promotion tick is not missed.
const SOAK_MARGIN_MS: u64 = 2 * SECOND;

/// Compiles a validated file into a [`Model`] with room for `room` features, as the edge does.
#[derive(Debug, Clone, Copy)]
pub struct ModelCompiler {
    room: usize,
}

/// One rampart edge.
#[derive(Debug)]
pub struct Edge {
    config: Config,
    calendar: Calendar,
    store: Option<Store<ModelCompiler>>,
    down_until: Option<u64>,
    restart_ms: u64,
    desired: Option<Arc<Publication>>,
    serving: Serving,
    soak_left: u64,
    tick_until: u64,
    report: Report,
    nacks: u64,
    rollbacks: u64,
    crashes: u64,
    /// The control plane's blessed versions, as last handed out (again to a store that
    /// booted since, as the next heartbeat answer would).
    blessed: Option<Arc<[VersionDigest]>>,
    /// The store booted after a death it has not reported yet.
    deaths_pending: bool,
    /// Every version that was in its last-known-good, oldest first.
    lkg_ever: Vec<Digest>,
    /// The store's last-known-good writes when `lkg_ever` was last brought up to date.
    lkg_writes: u64,
}

/// How a guarded edge is set up beyond its data dir.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The sentinel's thresholds.
    pub sentinel: SentinelConfig,
    /// Whether last-known-good takes only blessed versions.
    pub require_blessing: bool,
}

// === impl ModelCompiler ===

impl Compiler for ModelCompiler {
    type Model = Model;
    type Error = CompileError;

    fn compile(&self, validated: &Validated) -> Result<Model, CompileError> {
        Model::compile(validated, self.room)
    }
}

// === impl Edge ===

impl Edge {
    /// Boots a store on `data_dir` trusting `keyring`.
    pub fn boot(
        data_dir: PathBuf,
        keyring: Keyring,
        edge: EdgeConfig,
        calendar: Calendar,
        restart_ms: u64,
        now: u64,
    ) -> Result<Edge, BootError> {
        let mut config = Config::new(data_dir, edge_contract(), keyring);
        config.archive_len = ARCHIVE_LEN;
        config.sentinel = edge.sentinel;
        config.require_blessing = edge.require_blessing;
        let mut edge = Edge {
            config,
            calendar,
            store: None,
            down_until: None,
            restart_ms,
            desired: None,
            serving: Serving::Unscored,
            soak_left: 0,
            tick_until: 0,
            report: Report::default(),
            nacks: 0,
            rollbacks: 0,
            crashes: 0,
            blessed: None,
            deaths_pending: false,
            lkg_ever: Vec::new(),
            lkg_writes: 0,
        };
        edge.start(now)?;
        Ok(edge)
    }

    /// NACKs so far.
    pub fn nacks(&self) -> u64 {
        self.nacks
    }

    /// Rollbacks taken: files applied below the version serving.
    pub fn rollbacks(&self) -> u64 {
        self.rollbacks
    }

    /// Deaths of the process (process faults).
    pub fn crashes(&self) -> u64 {
        self.crashes
    }

    /// The process dies now (a process fault of the file it serves): no clean exit, so the
    /// store's sentinel sees a death at the next boot; down for the restart time, then a boot
    /// on whatever the store boots on, and the desired file offered again.
    pub fn crash(&mut self, now: u64) {
        if self.store.take().is_some() {
            self.crashes += 1;
            self.down_until = Some(now.saturating_add(self.restart_ms));
            self.serving = Serving::Down;
        }
    }

    /// A file from the control plane (or the naive push).
    pub fn offer(&mut self, p: Arc<Publication>, now: u64, models: &mut Models) {
        self.desired = Some(Arc::clone(&p));
        if self.store.is_some() {
            self.apply(&p, now, models);
        }
    }

    /// The control plane's blessed versions, newest first (with a heartbeat answer): the
    /// store may now promote a soaked version it was waiting on, so it ticks at once.
    pub fn set_blessed(&mut self, blessed: Arc<[VersionDigest]>, now: u64) {
        if let Some(store) = &self.store {
            let at = self.calendar.unix_ms(now);
            store.set_blessed(&blessed, at);
            store.tick(at);
        }
        self.blessed = Some(blessed);
        self.note_lkg();
    }

    /// Every version that was in its last-known-good.
    pub fn lkg_ever(&self) -> &[Digest] {
        &self.lkg_ever
    }

    /// Notes what a tick may have written as last-known-good.
    fn note_lkg(&mut self) {
        let Some(store) = &self.store else {
            return;
        };
        let writes = store.metrics().lkg_writes;
        if writes == self.lkg_writes {
            return;
        }
        self.lkg_writes = writes;
        for vd in store.status().lkg.history {
            if !self.lkg_ever.contains(&vd.digest) {
                self.lkg_ever.push(vd.digest);
            }
        }
    }

    /// Deaths the store found at boot and has not reported, at most
    /// [`MAX_DEATHS_PER_BEAT`]: reported now (the control plane answers every beat in a
    /// replay), so they leave the store's queue.
    pub fn take_deaths(&mut self, now: u64) -> Vec<BeatDeath> {
        if !self.deaths_pending {
            return Vec::new();
        }
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let deaths = store.pending_deaths(MAX_DEATHS_PER_BEAT);
        let ids: Vec<u64> = deaths.iter().map(|d| d.detected_at_ms).collect();
        store.deaths_reported(&ids, self.calendar.unix_ms(now));
        self.deaths_pending = !store.pending_deaths(1).is_empty();
        deaths
            .into_iter()
            .map(|d| BeatDeath {
                detected_at_ms: d.detected_at_ms,
                active: d.active.map(|(_, digest)| digest),
                uptime_ms: Some(d.uptime_ms),
                active_for_ms: d.active_for_ms,
            })
            .collect()
    }

    /// The kill switch (delivered with heartbeats, or set locally).
    pub fn set_module_enabled(&mut self, enabled: bool, models: &mut Models) {
        if let Some(store) = &self.store {
            let reason = if enabled {
                "kill switch cleared"
            } else {
                "kill switch set fleet-wide"
            };
            store.set_module_enabled(enabled, reason);
        }
        self.refresh(models, false);
    }

    /// Boots after a restart; feeds the soak meter and ticks the store while a soak runs.
    pub fn advance(
        &mut self,
        now: u64,
        requests: u64,
        models: &mut Models,
    ) -> Result<(), BootError> {
        if let Some(until) = self.down_until
            && now >= until
        {
            self.down_until = None;
            self.start(now)?;
            self.report.restarts = self.report.restarts.saturating_add(1);
            if let Some(p) = self.desired.clone() {
                self.apply(&p, now, models);
            }
            self.refresh(models, false);
        }
        if let Some(store) = &self.store
            && now <= self.tick_until
        {
            let n = self.soak_left.min(requests).min(SOAK_RECORDS_PER_STEP);
            let reader = store.reader();
            for _ in 0..n {
                reader.record_request(false);
            }
            self.soak_left -= n;
            store.tick(self.calendar.unix_ms(now));
            self.note_lkg();
        }
        Ok(())
    }

    /// An operator restart: a clean exit, down for the restart time, then a boot on
    /// last-known-good and the desired file again.
    pub fn restart(&mut self, now: u64) {
        if let Some(store) = self.store.take() {
            store.clean_exit(self.calendar.unix_ms(now));
        }
        self.down_until = Some(now.saturating_add(self.restart_ms));
        self.serving = Serving::Down;
    }

    /// How requests are answered now.
    pub fn serving(&self) -> Serving {
        self.serving
    }

    /// The version being served, if any.
    pub fn active_version(&self) -> Option<(u64, rampart_artifact::Digest)> {
        let store = self.store.as_ref()?;
        let snap = store.snapshot();
        snap.active.as_ref().map(|a| (a.version, a.digest))
    }

    /// Whether an operator would count it as unhealthy.
    pub fn unhealthy(&self) -> bool {
        self.serving.fails()
    }

    /// What happened since the last heartbeat, with the deaths to report (and resets it).
    pub fn take_report(&mut self, now: u64) -> Report {
        let mut report = std::mem::take(&mut self.report);
        report.deaths = self.take_deaths(now);
        report
    }

    fn start(&mut self, now: u64) -> Result<(), BootError> {
        let compiler = ModelCompiler {
            room: self.config.contract.max_features(),
        };
        let at = self.calendar.unix_ms(now);
        let store = Store::boot(self.config.clone(), compiler, at)?;
        if let Some(blessed) = &self.blessed {
            store.set_blessed(blessed, at);
        }
        self.deaths_pending = !store.pending_deaths(1).is_empty();
        // A new store counts its writes from 0.
        self.lkg_writes = 0;
        self.store = Some(store);
        Ok(())
    }

    fn apply(&mut self, p: &Arc<Publication>, now: u64, models: &mut Models) {
        let Some(store) = &self.store else {
            return;
        };
        // As the edge's agent does: the store's version rule decides whether the control
        // plane may send this node back to a version it served.
        let before = store.snapshot().version();
        let outcome = store.offer(&p.bytes, Channel::Control, self.calendar.unix_ms(now));
        let apply = match &outcome {
            ApplyOutcome::Applied { version, digest } => {
                if before.is_some_and(|b| *version < b) {
                    self.rollbacks += 1;
                }
                self.soak_left = self.config.soak.requests;
                self.tick_until = now
                    .saturating_add(self.config.soak.secs.saturating_mul(SECOND))
                    .saturating_add(SOAK_MARGIN_MS);
                Apply::Accepted { digest: *digest }
            }
            ApplyOutcome::Unchanged { digest, .. } => Apply::Accepted { digest: *digest },
            ApplyOutcome::Rejected { rejection, .. } => {
                self.nacks += 1;
                let mut codes: Vec<String> = rejection
                    .issues()
                    .iter()
                    .map(|i| i.code().to_owned())
                    .collect();
                codes.dedup();
                if codes.is_empty() {
                    codes.push(rejection.code().to_owned());
                }
                codes.truncate(MAX_NACK_CODES);
                Apply::Rejected {
                    digest: p.digest,
                    codes,
                }
            }
        };
        self.report.apply = Some(apply);
        self.refresh(models, p.faulty);
    }

    /// Reads the snapshot once after anything that may change it.
    fn refresh(&mut self, models: &mut Models, faulty_if_new: bool) {
        let Some(store) = &self.store else {
            self.serving = Serving::Down;
            return;
        };
        let snap = store.snapshot();
        self.serving = match (snap.scoring_model(), snap.active.as_ref()) {
            (Some(_), Some(active)) => {
                let model = Arc::clone(&active.model);
                Serving::Scored(models.register(active.digest, || model, faulty_if_new))
            }
            _ => Serving::Unscored,
        };
    }
}

#[cfg(test)]
mod tests {
    use rampart_artifact::{Envelope, SecretKey};
    use rampart_score::example_document;

    use super::*;
    use crate::traffic::Pool;

    fn publication(version: u64, bias: f64, key: &SecretKey) -> Arc<Publication> {
        let mut doc = example_document(version);
        doc.model.bias = bias;
        Arc::new(Publication {
            version,
            digest: doc.digest(),
            bytes: Arc::from(Envelope::sign(&doc, key).to_json()),
            document: Arc::new(doc),
            faulty: false,
            epoch: 0,
            marks: Vec::new(),
        })
    }

    #[test]
    fn a_soaked_version_waits_for_its_blessing_and_a_death_is_reported_once() {
        let key = SecretKey::from_seed([4; 32]);
        let dir = tempfile::tempdir().unwrap();
        let calendar = Calendar::parse("2025-10-29").unwrap();
        let config = EdgeConfig {
            sentinel: SentinelConfig::default(),
            require_blessing: true,
        };
        let keyring = Keyring::new([key.public()]);
        let mut edge =
            Edge::boot(dir.path().to_owned(), keyring, config, calendar, SECOND, 0).unwrap();
        let mut models = Models::new(Arc::new(Pool::new(1, 16).unwrap()), 30);
        let v1 = publication(1, 0.0, &key);
        edge.offer(Arc::clone(&v1), 0, &mut models);
        for s in 1..=70 {
            edge.advance(s * SECOND, 100, &mut models).unwrap();
        }
        // Soaked, not blessed: not last-known-good.
        assert!(edge.lkg_ever().is_empty());
        let blessed: Arc<[VersionDigest]> = Arc::from(vec![VersionDigest {
            version: 1,
            digest: v1.digest,
        }]);
        edge.set_blessed(blessed, 71 * SECOND);
        assert_eq!(edge.lkg_ever(), [v1.digest]);
        assert!(edge.take_report(72 * SECOND).deaths.is_empty());

        // It dies; the next boot finds the death and the next beat reports it, once.
        edge.crash(80 * SECOND);
        edge.advance(82 * SECOND, 100, &mut models).unwrap();
        let report = edge.take_report(82 * SECOND);
        assert_eq!(report.restarts, 1);
        let [death] = report.deaths.as_slice() else {
            panic!("one death: {:?}", report.deaths);
        };
        assert_eq!(death.active, Some(v1.digest));
        assert!(death.uptime_ms.is_some());
        assert!(edge.take_report(83 * SECOND).deaths.is_empty());
        // The blessing was handed to the new store too: it serves v1 from last-known-good.
        assert_eq!(edge.active_version().map(|(v, _)| v), Some(1));
    }

    #[test]
    fn a_rollback_is_an_offer_back_to_a_file_this_node_served() {
        let key = SecretKey::from_seed([3; 32]);
        let dir = tempfile::tempdir().unwrap();
        let calendar = Calendar::parse("2025-11-18").unwrap();
        let keyring = Keyring::new([key.public()]);
        let config = EdgeConfig {
            sentinel: SentinelConfig::default(),
            require_blessing: false,
        };
        let mut edge =
            Edge::boot(dir.path().to_owned(), keyring, config, calendar, SECOND, 0).unwrap();
        let mut models = Models::new(Arc::new(Pool::new(1, 16).unwrap()), 30);
        let v1 = publication(1, 0.0, &key);
        edge.offer(Arc::clone(&v1), 0, &mut models);
        edge.offer(publication(2, 0.0, &key), SECOND, &mut models);
        assert_eq!(edge.active_version().map(|(v, _)| v), Some(2));

        // The control plane sends the node back: the store's own rule takes it, as on the edge.
        edge.offer(v1, 2 * SECOND, &mut models);
        assert_eq!(
            edge.active_version(),
            Some((1, publication(1, 0.0, &key).digest))
        );
        let store = edge.store.as_ref().unwrap();
        assert_eq!(
            store.snapshot().active.as_ref().unwrap().channel,
            Channel::Control
        );
        assert_eq!(store.status().pinned, None);
        assert_eq!((edge.rollbacks(), edge.nacks()), (1, 0));
        assert!(matches!(
            edge.take_report(5 * SECOND).apply,
            Some(Apply::Accepted { .. })
        ));

        // Other content under a lower version was never served here: a NACK.
        edge.offer(publication(2, 0.0, &key), 3 * SECOND, &mut models);
        edge.offer(publication(1, 0.5, &key), 4 * SECOND, &mut models);
        assert_eq!(edge.active_version().map(|(v, _)| v), Some(2));
        assert_eq!((edge.rollbacks(), edge.nacks()), (1, 1));
        let Some(Apply::Rejected { codes, .. }) = edge.take_report(5 * SECOND).apply else {
            panic!("expected a NACK");
        };
        assert_eq!(codes, ["version_not_above"]);
    }
}
