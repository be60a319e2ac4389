//! The edge agent: the edge's side of the control plane, as one tokio task.
//!
//! It enrolls the node when it has no credential yet (a one-time bootstrap token traded for
//! the node's own credential, kept in a `0600` file so a restart reuses it), registers the
//! node (labels, its contract, its software version), then heartbeats in a loop. Every call
//! carries the node's own credential: the control plane accepts a node's words only from it. Every beat carries the whole state: the version serving, the verdict (ACK/NACK) on
//! the version the control plane asked for (repeated until the ask changes), the last file
//! refused, the counters and scores since the last delivered beat, a restart when the
//! process before this one died, and the deaths of earlier runs from the boot journal (each
//! until an answer acknowledges it, then recorded as reported so a restart does not resend
//! it). The answer's blessed list (the signed order's, with a keyset) goes to
//! [`Store::set_blessed`]: with a control plane, last-known-good is only what the fleet
//! blessed. The beat is a long-poll: the control plane answers at once
//! when the node's desired state changed (a new version, a kill switch) and otherwise holds
//! it for one beat interval, so the long-poll *is* the interval and a change arrives in one
//! round trip.
//!
//! A new desired digest is fetched with the edge's own wire limit, offered with the same
//! [`Store::offer`] as the watch dir, as [`Channel::Control`] (the store's version rule lets
//! the control plane send the node back to a version it served before), and the verdict goes
//! up in the next beat. Kill switches from the answer drive [`Store::set_module_enabled`].
//!
//! # Layout
//! - [`backoff`]: exponential backoff with jitter for an unreachable control plane.
//! - [`beat`]: the pure parts of a heartbeat (deltas, verdict, refusal on the wire).
//! - [`kill`]: the kill bucket over NATS (`--nats`): signed kill switches watched without
//!   the control plane, applied through the same `set_module` as a heartbeat answer's.
//! - [`order`]: signed orders: verified with the keyset's director keys and admitted
//!   against the last one applied before anything of an answer is applied.
//!
//! # The decision that matters
//! **The request path never waits for the agent.** The proxy reads the store's snapshot;
//! the agent only writes the store through the same single writer as the watch dir, on a
//! blocking thread. When the control plane is unreachable the edge keeps serving what it has
//! (fail stale) and the agent retries with backoff, forever, until shutdown.

pub mod backoff;
pub mod beat;
pub mod kill;
pub mod order;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_api::limits::MAX_LONG_POLL_MS;
use rampart_api::{
    AckNack, Active, ApplyReport, Client, ClientError, Desired, ErrorCode, Heartbeat,
    HeartbeatAnswer, Labels, OrderRefusal, Registration, Scope, Transport,
};
use rampart_host::clock::now_ms;
use rampart_ingest::{ApplyOutcome, Channel, Mode, Store};
use serde::Serialize;
use tokio::sync::watch;

use crate::bot::ModelCompiler;
use crate::metrics::{Metrics, SCORE_SLOTS, Totals};

use self::backoff::Backoff;
use self::order::OrderGate;
use crate::trust::Trust;

/// Shortest beat interval the agent accepts (from a flag or the control plane): a shorter
/// one would turn the long-poll into a busy loop.
pub const MIN_BEAT_INTERVAL: Duration = Duration::from_millis(20);

/// Two beats are sent at least this far apart, whatever the answers say: a control plane
/// that answers every long-poll at once (while it shuts down, or a bug) costs at most 50
/// beats a second, not a spin.
pub const MIN_BEAT_GAP: Duration = Duration::from_millis(20);

/// Longest error text kept in the agent's report.
const MAX_ERROR_LEN: usize = 512;

/// Where and as whom the agent talks to the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The control plane's base URL.
    pub control: String,
    /// This node's credential, when it has one (from enrollment, read from its file).
    pub token: Option<String>,
    /// A one-time bootstrap token to enroll with when there is no credential yet.
    pub enroll_token: Option<String>,
    /// Where the credential from enrollment is written (mode 0600), for the next start.
    pub credential_file: Option<PathBuf>,
    /// This node's id in the fleet.
    pub node: String,
    /// Where it runs.
    pub labels: Labels,
    /// How long a beat long-polls; `None` takes the control plane's interval.
    pub beat_interval: Option<Duration>,
    /// Whom the agent trusts (`--control-ca`) and whether plain HTTP to loopback is allowed
    /// (`--control-plain-http`).
    pub transport: Transport,
}

/// What the agent last did, for `/status` and for whoever watches it (benchmarks, tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentReport {
    /// The control plane's URL.
    pub control: String,
    /// This node's id.
    pub node: String,
    /// Whether the node has its own credential (from its file or enrollment).
    pub enrolled: bool,
    /// Whether the control plane accepted the registration (reset on `unknown_node`).
    pub registered: bool,
    /// Whether the last call to the control plane succeeded.
    pub connected: bool,
    /// Beats answered since start.
    pub beats: u64,
    /// Calls that failed since the last success.
    pub failures: u64,
    /// When the last answer came, ms since the Unix epoch.
    pub last_answer_ms: Option<u64>,
    /// The last failure, one line.
    pub last_error: Option<String>,
    /// The long-poll interval in use, ms.
    pub beat_interval_ms: u64,
    /// What the control plane wants served.
    pub desired: Option<Desired>,
    /// The verdict on it, as reported.
    pub verdict: Option<ApplyReport>,
    /// When a beat first carried this verdict, ms since the Unix epoch.
    pub verdict_sent_ms: Option<u64>,
    /// The bot module's switch as the control plane last set it, if it ever did.
    pub kill_switch: Option<bool>,
    /// Signed orders: the last applied, refusals (`None` without a keyset: unsigned
    /// answers are applied, the legacy/dev path).
    pub orders: Option<self::order::OrdersReport>,
}

/// The edge agent of one node. See the module docs.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    client: Client,
    store: Arc<Store<ModelCompiler>>,
    metrics: Arc<Metrics>,
    report: watch::Sender<AgentReport>,
    /// The keyset whose director keys sign orders.
    trust: Option<Arc<Trust>>,
    /// The gate of the last order applied, until [`Agent::run`] takes it into its loop.
    gate: Option<OrderGate>,
}

/// Why the agent could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The control plane URL is unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The record of the last order applied is unusable.
    #[error(transparent)]
    OrderFile(#[from] self::order::OrderFileError),
}

/// The loop's own state between beats.
#[derive(Debug)]
struct Cycle {
    /// The client with the node's credential once it has one.
    client: Client,
    /// No credential yet, and a bootstrap token to get one with.
    enroll: Option<String>,
    seq: u64,
    registered: bool,
    interval: Duration,
    seen: Option<String>,
    verdict: Option<ApplyReport>,
    verdict_sent: bool,
    /// Totals of the last delivered beat: the next beat reports what came after them.
    delivered: Totals,
    /// The process before this one died: reported as one restart until a beat delivers it.
    restart_pending: bool,
    /// The control plane's bot switch last applied.
    switch: Option<bool>,
    backoff: Backoff,
    last_sent: Option<tokio::time::Instant>,
    unknown_node_in_a_row: u32,
    /// The gate of signed orders, when the edge has a keyset.
    orders: Option<OrderGate>,
    /// The blessed list last handed to the store.
    blessed: Option<Vec<Active>>,
}

/// What one exchange with the control plane came to.
enum Step {
    Continue,
    Retry(String),
    Stop,
}

// === impl Agent ===

impl Agent {
    /// An agent for `config`, serving from `store` and counting from `metrics`.
    pub fn new(
        config: AgentConfig,
        store: Arc<Store<ModelCompiler>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AgentError> {
        let client =
            Client::with_transport(&config.control, config.token.clone(), &config.transport)?;
        Ok(Self::with_client(config, client, store, metrics))
    }

    /// An agent with a client already built (many agents in one process share one client
    /// and its connection pool).
    pub fn with_client(
        config: AgentConfig,
        client: Client,
        store: Arc<Store<ModelCompiler>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let report = AgentReport {
            control: config.control.clone(),
            node: config.node.clone(),
            enrolled: config.token.is_some(),
            ..AgentReport::default()
        };
        let (report, _) = watch::channel(report);
        Agent {
            config,
            client,
            store,
            metrics,
            report,
            trust: None,
            gate: None,
        }
    }

    /// Requires every answer to carry an order signed by a director key of `trust`'s
    /// keyset, newer than the last one applied (read from, and kept in, `data_dir`).
    pub fn with_trust(mut self, trust: Arc<Trust>, data_dir: &Path) -> Result<Self, AgentError> {
        let gate = OrderGate::open(data_dir)?;
        let report = gate.report().clone();
        self.report.send_modify(|r| r.orders = Some(report));
        self.trust = Some(trust);
        self.gate = Some(gate);
        Ok(self)
    }

    /// Follows what the agent does; every change of its report wakes the receiver.
    pub fn report(&self) -> watch::Receiver<AgentReport> {
        self.report.subscribe()
    }

    /// Registers and heartbeats until `shutdown` resolves. Never returns early: an
    /// unreachable or refusing control plane is retried with backoff, and the edge keeps
    /// serving what it has meanwhile.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut cycle = Cycle {
            client: self.client.with_token(self.config.token.clone()),
            enroll: self
                .config
                .enroll_token
                .clone()
                .filter(|_| self.config.token.is_none()),
            orders: self.gate.take(),
            seq: 0,
            registered: false,
            interval: self
                .config
                .beat_interval
                .unwrap_or(Duration::from_millis(
                    rampart_api::limits::DEFAULT_BEAT_INTERVAL_MS,
                ))
                .clamp(MIN_BEAT_INTERVAL, Duration::from_millis(MAX_LONG_POLL_MS)),
            seen: None,
            verdict: None,
            verdict_sent: false,
            // From zero: the first beat reports everything counted since the edge started.
            delivered: Totals {
                requests: 0,
                errors_5xx: 0,
                module_errors: 0,
                scores: [0; SCORE_SLOTS],
            },
            restart_pending: self.store.restarted_after_death(),
            switch: None,
            backoff: Backoff::new(seed(&self.config.node)),
            last_sent: None,
            unknown_node_in_a_row: 0,
            blessed: None,
        };
        loop {
            let step = tokio::select! {
                () = &mut shutdown => Step::Stop,
                step = self.step(&mut cycle) => step,
            };
            match step {
                Step::Continue => {}
                Step::Stop => break,
                Step::Retry(error) => {
                    let delay = cycle.backoff.next_delay();
                    let failures = self.failed(&error);
                    // Logged when it starts and then at 1, 2, 4, 8… failures: a control plane
                    // down for an hour writes a dozen lines, not thousands.
                    if failures.is_power_of_two() {
                        tracing::warn!(
                            control = %self.config.control,
                            failures,
                            retry_in_ms = delay.as_millis(),
                            "control plane: {error}; serving what this edge has"
                        );
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::debug!(node = %self.config.node, "edge agent stopped");
    }

    /// Trades the bootstrap token for the node's credential, keeps it in its file, and uses
    /// it from now on.
    async fn enroll(&self, cycle: &mut Cycle, token: String) -> Step {
        let node = self.config.node.clone();
        let enrolled = match self.client.with_token(Some(token)).enroll(&node).await {
            Ok(e) => e,
            Err(e) => return Step::Retry(format!("enroll: {e}")),
        };
        cycle.enroll = None;
        cycle.client = self.client.with_token(Some(enrolled.credential.clone()));
        if let Some(path) = self.config.credential_file.clone() {
            let secret = enrolled.credential;
            let written = tokio::task::spawn_blocking(move || {
                rampart_host::file::write_private(&path, secret.as_bytes()).map(|()| path)
            })
            .await;
            match written {
                Ok(Ok(path)) => {
                    tracing::info!(node, file = %path.display(), "enrolled; credential stored");
                }
                // The bootstrap token is spent: keep the credential for this run and say so.
                Ok(Err(e)) => tracing::error!(
                    node,
                    error = %e,
                    "enrolled, but the credential could not be stored: the next start needs a new bootstrap token"
                ),
                Err(e) => {
                    tracing::error!(node, error = %e, "storing the credential did not finish")
                }
            }
        }
        self.report.send_modify(|r| r.enrolled = true);
        Step::Continue
    }

    /// One enrollment, registration or heartbeat round trip, with what it asked for done.
    async fn step(&self, cycle: &mut Cycle) -> Step {
        if let Some(token) = cycle.enroll.clone() {
            return self.enroll(cycle, token).await;
        }
        if !cycle.registered {
            return match cycle.client.register(&self.registration()).await {
                Ok(answer) => {
                    cycle.registered = true;
                    cycle.seen = None;
                    if self.config.beat_interval.is_none() {
                        cycle.interval = interval_from(answer.beat_interval_ms);
                    }
                    tracing::info!(
                        node = %self.config.node,
                        control = %self.config.control,
                        created = answer.created,
                        "registered with the control plane"
                    );
                    self.report.send_modify(|r| {
                        r.registered = true;
                        r.beat_interval_ms = millis(cycle.interval);
                    });
                    Step::Continue
                }
                Err(e) => Step::Retry(format!("register: {e}")),
            };
        }
        if let Some(last) = cycle.last_sent {
            tokio::time::sleep_until(last + MIN_BEAT_GAP).await;
        }
        let totals = self.metrics.totals();
        let beat = self.beat(cycle, &totals);
        cycle.last_sent = Some(tokio::time::Instant::now());
        if cycle.verdict.is_some() && !cycle.verdict_sent {
            cycle.verdict_sent = true;
            let at = now_ms();
            self.report.send_modify(|r| r.verdict_sent_ms = Some(at));
        }
        match cycle.client.heartbeat(&self.config.node, &beat).await {
            Ok(answer) => {
                cycle.unknown_node_in_a_row = 0;
                cycle.delivered = totals;
                if beat.counters.restarts > 0 {
                    cycle.restart_pending = false;
                }
                if !beat.deaths.is_empty() {
                    // The control plane has them: never sent again, even after a restart.
                    let reported: Vec<u64> = beat.deaths.iter().map(|d| d.detected_at_ms).collect();
                    let store = self.store.clone();
                    let sent = reported.len();
                    if tokio::task::spawn_blocking(move || {
                        store.deaths_reported(&reported, now_ms());
                    })
                    .await
                    .is_err()
                    {
                        tracing::error!(
                            "could not record the deaths as reported; they will be sent again"
                        );
                    } else {
                        tracing::info!(
                            deaths = sent,
                            "deaths of earlier runs reported to the control plane"
                        );
                    }
                }
                cycle.seq = cycle.seq.wrapping_add(1);
                cycle.backoff.reset();
                self.answered(cycle, answer).await;
                Step::Continue
            }
            Err(e) if e.api().and_then(|a| a.code()) == Some(ErrorCode::UnknownNode) => {
                // The control plane lost this node (a new data dir): register again, now
                // the first time, with backoff if it keeps forgetting.
                cycle.registered = false;
                cycle.unknown_node_in_a_row = cycle.unknown_node_in_a_row.saturating_add(1);
                self.report.send_modify(|r| r.registered = false);
                if cycle.unknown_node_in_a_row > 1 {
                    Step::Retry(format!("heartbeat: {e}"))
                } else {
                    Step::Continue
                }
            }
            Err(e) => Step::Retry(format!("heartbeat: {e}")),
        }
    }

    /// Acts on an answer: kill switches first (they are small and urgent), then the
    /// desired version.
    async fn answered(&self, cycle: &mut Cycle, answer: HeartbeatAnswer) {
        cycle.seen = Some(answer.etag.clone());
        if self.config.beat_interval.is_none() {
            cycle.interval = interval_from(answer.beat_interval_ms);
        }
        let answer = match self.verified(cycle, answer) {
            Ok(answer) => answer,
            Err(refusal) => {
                // Fail stale: nothing of the answer is applied; the beat goes on.
                self.refused_order(cycle, &refusal);
                return;
            }
        };
        self.apply_switch(cycle, &answer).await;
        self.apply_blessed(cycle, &answer).await;
        if let Some(desired) = &answer.desired {
            self.converge(cycle, desired).await;
        }
        let at = now_ms();
        self.report.send_modify(|r| {
            r.connected = true;
            r.registered = true;
            r.beats = r.beats.saturating_add(1);
            r.failures = 0;
            r.last_answer_ms = Some(at);
            r.last_error = None;
            r.beat_interval_ms = millis(cycle.interval);
            r.desired = answer.desired.clone();
            r.verdict = cycle.verdict.clone();
            r.kill_switch = cycle.switch;
            r.orders = cycle.orders.as_ref().map(|g| g.report().clone());
        });
    }

    /// The answer as its signed order says, when the edge has a keyset; the answer as it
    /// came otherwise (no keyset: the legacy/dev path). A newer order is written to
    /// `order.json` here, on the agent's task: a small file, once per change of desired
    /// state, and it must be durable before anything of the order is applied.
    fn verified(
        &self,
        cycle: &mut Cycle,
        answer: HeartbeatAnswer,
    ) -> Result<HeartbeatAnswer, OrderRefusal> {
        match (&self.trust, cycle.orders.as_mut()) {
            (Some(trust), Some(gate)) => gate.verify(&self.config.node, trust, &answer, now_ms()),
            _ => Ok(answer),
        }
    }

    /// Counts a refused order and shows it; the answer is otherwise a success (the control
    /// plane, or whoever answers, is reachable).
    fn refused_order(&self, cycle: &mut Cycle, refusal: &OrderRefusal) {
        let at = now_ms();
        let Some(gate) = cycle.orders.as_mut() else {
            return;
        };
        gate.refused(refusal, at);
        let total: u64 = gate.report().refused.values().sum();
        if total.is_power_of_two() {
            tracing::warn!(
                code = refusal.code(),
                refused = total,
                "order refused, keeping what this edge has: {refusal}"
            );
        }
        let report = gate.report().clone();
        self.report.send_modify(|r| {
            r.connected = true;
            r.beats = r.beats.saturating_add(1);
            r.failures = 0;
            r.last_answer_ms = Some(at);
            r.orders = Some(report);
        });
    }

    /// Turns the bot module on or off as the control plane says, when its setting changed.
    /// The first answer is applied only if someone set the switch at the control plane: an
    /// operator's local setting (admin API) stands until the control plane says otherwise.
    async fn apply_switch(&self, cycle: &mut Cycle, answer: &HeartbeatAnswer) {
        let bot = &answer.kill_switches.bot;
        if cycle.switch == Some(bot.enabled) {
            return;
        }
        let first_and_default = cycle.switch.is_none() && bot.scope == Scope::Default;
        cycle.switch = Some(bot.enabled);
        if first_and_default || self.store.snapshot().module_enabled == bot.enabled {
            return;
        }
        let reason = format!(
            "control plane ({:?}{}): {}",
            bot.scope,
            bot.set_by
                .as_deref()
                .map(|who| format!(", by {who}"))
                .unwrap_or_default(),
            bot.reason.as_deref().unwrap_or("no reason given")
        );
        if !set_module(&self.store, bot.enabled, reason).await {
            tracing::error!("could not apply the kill switch; retrying on the next answer");
            cycle.switch = None;
        }
    }

    /// Hands the answer's blessed list (from the verified order when signed) to the store
    /// when it changed: it gates last-known-good and prunes what the fleet unblessed.
    async fn apply_blessed(&self, cycle: &mut Cycle, answer: &HeartbeatAnswer) {
        if cycle.blessed.as_ref() == Some(&answer.blessed) {
            return;
        }
        let list = beat::blessed(&answer.blessed);
        let store = self.store.clone();
        if tokio::task::spawn_blocking(move || store.set_blessed(&list, now_ms()))
            .await
            .is_ok()
        {
            cycle.blessed = Some(answer.blessed.clone());
        } else {
            tracing::error!("could not apply the blessed list; retrying on the next answer");
        }
    }

    /// Brings the store to `desired` unless it serves it or already refused it.
    async fn converge(&self, cycle: &mut Cycle, desired: &Desired) {
        let snapshot = self.store.snapshot();
        let serving = snapshot.active.as_ref().map(|a| (a.version, a.digest));
        drop(snapshot);
        let about_this = cycle
            .verdict
            .as_ref()
            .filter(|v| v.digest == desired.digest);
        if serving.is_some_and(|(_, d)| d == desired.digest) {
            if about_this.is_none_or(|v| v.verdict != AckNack::Ack) {
                self.set_verdict(
                    cycle,
                    ApplyReport::ack(desired.digest, desired.version, now_ms()),
                );
            }
            return;
        }
        // A NACK stands until the control plane asks for something else: no fetch loop.
        if about_this.is_some_and(|v| v.verdict == AckNack::Nack) {
            return;
        }
        let limit = self.store.config().max_file_bytes();
        let bytes = match self.client.fetch_at_most(&desired.digest, limit).await {
            Ok(bytes) => bytes,
            Err(e) if e.is_retryable() => {
                // No verdict: the next answer asks again, and the fetch is retried then.
                tracing::warn!(digest = %desired.digest, error = %e, "fetch failed; will retry");
                return;
            }
            Err(e) => {
                let code = match e {
                    ClientError::TooLarge { .. } => beat::NACK_TOO_LARGE,
                    _ => beat::NACK_FETCH_FAILED,
                };
                tracing::warn!(digest = %desired.digest, error = %e, "cannot fetch the desired version: NACK");
                self.set_verdict(cycle, beat::nack_code(desired, code, now_ms()));
                return;
            }
        };
        let store = self.store.clone();
        let applied =
            tokio::task::spawn_blocking(move || store.offer(&bytes, Channel::Control, now_ms()))
                .await;
        let outcome = match applied {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "apply did not finish; will retry");
                return;
            }
        };
        let report = beat::verdict(desired, &outcome, now_ms());
        match (&outcome, report.verdict) {
            (ApplyOutcome::Applied { version, .. }, AckNack::Ack) => {
                tracing::info!(version, "control plane version applied: ACK");
            }
            (_, AckNack::Nack) => tracing::warn!(
                version = desired.version,
                issues = ?report.issues,
                "control plane version refused, keeping the current one: NACK"
            ),
            _ => {}
        }
        self.set_verdict(cycle, report);
    }

    fn set_verdict(&self, cycle: &mut Cycle, report: ApplyReport) {
        cycle.verdict = Some(report);
        cycle.verdict_sent = false;
        self.report.send_modify(|r| {
            r.verdict = cycle.verdict.clone();
            r.verdict_sent_ms = None;
        });
    }

    fn registration(&self) -> Registration {
        Registration {
            node: self.config.node.clone(),
            labels: self.config.labels.clone(),
            contract: self.store.config().contract.spec().clone(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    fn beat(&self, cycle: &Cycle, totals: &Totals) -> Heartbeat {
        let snapshot = self.store.snapshot();
        let (counters, scores) =
            beat::deltas(totals, &cycle.delivered, u64::from(cycle.restart_pending));
        Heartbeat {
            seq: cycle.seq,
            active: snapshot.active.as_ref().map(|a| Active {
                version: a.version,
                digest: a.digest,
            }),
            module_enabled: snapshot.module_enabled && snapshot.mode == Mode::Normal,
            verdict: cycle.verdict.clone(),
            last_rejection: self.store.last_rejection().as_ref().map(beat::rejection),
            counters,
            scores,
            seen: cycle.seen.clone(),
            wait_ms: if cycle.seen.is_some() {
                millis(cycle.interval)
            } else {
                0
            },
            deaths: self
                .store
                .pending_deaths(rampart_api::limits::MAX_DEATHS_PER_BEAT)
                .iter()
                .map(beat::death)
                .collect(),
        }
    }

    /// Records a failed call in the report; returns the failures in a row.
    fn failed(&self, error: &str) -> u64 {
        let text = beat::one_line(error, MAX_ERROR_LEN);
        let mut failures = 0;
        self.report.send_modify(|r| {
            r.connected = false;
            r.failures = r.failures.saturating_add(1);
            r.last_error = Some(text);
            failures = r.failures;
        });
        failures
    }
}

/// Turns the bot module on or off with `reason`: the one place where a kill switch from
/// outside the edge (a heartbeat answer's signed order, or the kill bucket over NATS,
/// [`kill`]) reaches the store. Blocking work on a blocking thread; `false` when it did not
/// finish.
pub(crate) async fn set_module(
    store: &Arc<Store<ModelCompiler>>,
    enabled: bool,
    reason: String,
) -> bool {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.set_module_enabled(enabled, reason))
        .await
        .is_ok()
}

/// The control plane's interval, within the agent's bounds.
fn interval_from(ms: u64) -> Duration {
    Duration::from_millis(ms).clamp(MIN_BEAT_INTERVAL, Duration::from_millis(MAX_LONG_POLL_MS))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A jitter seed that differs between nodes and between starts.
fn seed(node: &str) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    node.bytes()
        .fold(u64::from(nanos) ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}
