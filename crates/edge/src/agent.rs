//! The edge agent: the edge's side of the control plane, as one tokio task.
//!
//! It registers the node (labels, its contract, its software version), then heartbeats in a
//! loop. Every beat carries the whole state: the version serving, the verdict (ACK/NACK) on
//! the version the control plane asked for (repeated until the ask changes), the last file
//! refused, the counters and scores since the last delivered beat, and a restart when the
//! process before this one died. The beat is a long-poll: the control plane answers at once
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
//!
//! # The decision that matters
//! **The request path never waits for the agent.** The proxy reads the store's snapshot;
//! the agent only writes the store through the same single writer as the watch dir, on a
//! blocking thread. When the control plane is unreachable the edge keeps serving what it has
//! (fail stale) and the agent retries with backoff, forever, until shutdown.

pub mod backoff;
pub mod beat;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_api::limits::MAX_LONG_POLL_MS;
use rampart_api::{
    AckNack, Active, ApplyReport, Client, ClientError, Desired, ErrorCode, Heartbeat,
    HeartbeatAnswer, Labels, Registration, Scope,
};
use rampart_host::clock::now_ms;
use rampart_ingest::{ApplyOutcome, Channel, Mode, Store};
use serde::Serialize;
use tokio::sync::watch;

use crate::bot::ModelCompiler;
use crate::metrics::{Metrics, SCORE_SLOTS, Totals};

use self::backoff::Backoff;

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
    /// The bearer token of the `edge` role, when the control plane wants one (it does).
    pub token: Option<String>,
    /// This node's id in the fleet.
    pub node: String,
    /// Where it runs.
    pub labels: Labels,
    /// How long a beat long-polls; `None` takes the control plane's interval.
    pub beat_interval: Option<Duration>,
}

/// What the agent last did, for `/status` and for whoever watches it (benchmarks, tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentReport {
    /// The control plane's URL.
    pub control: String,
    /// This node's id.
    pub node: String,
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
}

/// The edge agent of one node. See the module docs.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    client: Client,
    store: Arc<Store<ModelCompiler>>,
    metrics: Arc<Metrics>,
    report: watch::Sender<AgentReport>,
}

/// Why the agent could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The control plane URL is unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The loop's own state between beats.
#[derive(Debug)]
struct Cycle {
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
        let client = Client::new(&config.control, config.token.clone())?;
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
            ..AgentReport::default()
        };
        let (report, _) = watch::channel(report);
        Agent {
            config,
            client,
            store,
            metrics,
            report,
        }
    }

    /// Follows what the agent does; every change of its report wakes the receiver.
    pub fn report(&self) -> watch::Receiver<AgentReport> {
        self.report.subscribe()
    }

    /// Registers and heartbeats until `shutdown` resolves. Never returns early: an
    /// unreachable or refusing control plane is retried with backoff, and the edge keeps
    /// serving what it has meanwhile.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut cycle = Cycle {
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

    /// One registration or one heartbeat round trip, with what it asked for done.
    async fn step(&self, cycle: &mut Cycle) -> Step {
        if !cycle.registered {
            return match self.client.register(&self.registration()).await {
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
        match self.client.heartbeat(&self.config.node, &beat).await {
            Ok(answer) => {
                cycle.unknown_node_in_a_row = 0;
                cycle.delivered = totals;
                if beat.counters.restarts > 0 {
                    cycle.restart_pending = false;
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
        self.apply_switch(cycle, &answer).await;
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
        let store = self.store.clone();
        let enabled = bot.enabled;
        if tokio::task::spawn_blocking(move || store.set_module_enabled(enabled, reason))
            .await
            .is_err()
        {
            tracing::error!("could not apply the kill switch; retrying on the next answer");
            cycle.switch = None;
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
