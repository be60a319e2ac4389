//! The admin API (loopback by default): health, status, metrics, the kill switch and break
//! glass. Everything here works with nothing but the local store: no control plane needed.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | `ok` while the process serves |
//! | `GET /status` | JSON: the store's status (top level), `edge` settings, recent `watch` outcomes, the `control` plane agent's report |
//! | `GET /metrics` | Prometheus text |
//! | `GET /sample` | JSON lines: the bot module's sample of recent requests, extractor values and score only ([`crate::sample`]), for `rampart artifact shadow --sample` |
//! | `POST /killswitch/bot` | `{"enabled": bool, "reason": "…"}` |
//! | `POST /break-glass/lkg` | serve last-known-good now |
//! | `POST /break-glass/pin` | `{"version": N}`: serve an archived version, ignore new files |
//! | `POST /break-glass/unpin` | end the pin |
//!
//! Writes need the admin token ([`token`]: `Authorization: Bearer TOKEN`, `401` without it)
//! and are refused before they are read when a browser could be sending them on a web
//! page's behalf (cross-site request forgery, DNS rebinding): the `Host` must be an IP address
//! or `localhost`, an `Origin` (browsers send one with every POST) must be this API's own, a
//! `Sec-Fetch-Site` must not say another site, and the body must be `application/json`, a
//! type no page can send to another origin without a preflight this API never answers.
//! Free-text `reason`s refuse control characters (no forged log lines) and are bounded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use rampart_host::clock::now_ms;
use rampart_ingest::{ApplyOutcome, Mode, Store};
use serde::{Deserialize, Serialize};

pub mod token;

pub use token::{ADMIN_TOKEN_FILE, AdminToken, TokenError};

use crate::agent::AgentReport;
use crate::bot::ModelCompiler;
use crate::metrics::{Metrics, family};

/// Largest admin request body: the commands are a few dozen bytes of JSON.
pub const MAX_ADMIN_BODY: usize = 4 * 1024;

/// Watch-dir outcomes kept for `/status`, newest last.
pub const MAX_RECENT_EVENTS: usize = 64;

/// Longest file name kept in a watch event.
const MAX_EVENT_NAME: usize = 128;

/// What the admin API serves from.
#[derive(Debug)]
pub struct Admin {
    token: AdminToken,
    store: Arc<Store<ModelCompiler>>,
    metrics: Arc<Metrics>,
    info: EdgeInfo,
    recent: Mutex<VecDeque<WatchEvent>>,
    agent: Option<tokio::sync::watch::Receiver<AgentReport>>,
    kill_watch: Option<tokio::sync::watch::Receiver<crate::agent::kill::KillReport>>,
    trust: Option<Arc<crate::trust::Trust>>,
    sample: Option<Arc<crate::sample::RequestSample>>,
}

/// The proxy's settings, for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeInfo {
    /// This build.
    pub version: &'static str,
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// Where the admin API listens.
    pub admin: SocketAddr,
    /// Where the admin token is (the file, never the secret).
    pub admin_token_file: PathBuf,
    /// The origin.
    pub upstream: String,
    /// `--block-below`.
    pub block_below: Option<u8>,
    /// `--fail-policy`.
    pub fail_policy: &'static str,
    /// The watch dir.
    pub watch_dir: Option<PathBuf>,
    /// Whether the test hooks are on (never in production).
    pub test_hooks: bool,
    /// When the process started, ms since the Unix epoch.
    pub started_at_ms: u64,
}

/// One file applied from the watch dir, for `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchEvent {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The file name (truncated).
    pub file: String,
    /// `applied`, `unchanged` or `rejected`.
    pub outcome: &'static str,
    /// The version serving afterwards.
    pub serving: Option<u64>,
    /// The rejection code (`invalid`, `compile`, `poisoned`, `pinned`, `io`).
    pub code: Option<&'static str>,
    /// The artifact issue codes of an invalid file.
    pub issues: Vec<&'static str>,
    /// One line for people.
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillSwitch {
    enabled: bool,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearSafeMode {
    /// Why (logged, and kept in the store's status like the kill switch's reason).
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pin {
    version: u64,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    edge: &'a EdgeInfo,
    connections_open: u64,
    /// The store's fields sit at the top level (`active`, `last_rejection`, `lkg`, …).
    #[serde(flatten)]
    store: rampart_ingest::Status,
    watch: Vec<WatchEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    control: Option<AgentReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust: Option<crate::trust::TrustReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<crate::sample::SampleStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kill_watch: Option<crate::agent::kill::KillReport>,
}

// === impl Admin ===

impl Admin {
    /// The admin state over `store`.
    pub fn new(
        store: Arc<Store<ModelCompiler>>,
        metrics: Arc<Metrics>,
        info: EdgeInfo,
        token: AdminToken,
    ) -> Self {
        Admin {
            token,
            store,
            metrics,
            info,
            recent: Mutex::new(VecDeque::with_capacity(MAX_RECENT_EVENTS)),
            agent: None,
            kill_watch: None,
            trust: None,
            sample: None,
        }
    }

    /// Serves the bot module's sample of recent requests on `GET /sample` (JSON lines) and
    /// its size on `/status` under `sample`.
    pub fn with_sample(mut self, sample: Arc<crate::sample::RequestSample>) -> Self {
        self.sample = Some(sample);
        self
    }

    /// Shows the root and keyset in use, and their refusals, on `/status` under `trust`
    /// and on `/metrics`.
    pub fn with_trust(mut self, trust: Arc<crate::trust::Trust>) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Shows the kill bucket watch on `/status` under `kill_watch` and on `/metrics`.
    pub fn with_kill_watch(
        mut self,
        report: tokio::sync::watch::Receiver<crate::agent::kill::KillReport>,
    ) -> Self {
        self.kill_watch = Some(report);
        self
    }

    /// Shows the edge agent's report on `/status` under `control`.
    pub fn with_agent(mut self, report: tokio::sync::watch::Receiver<AgentReport>) -> Self {
        self.agent = Some(report);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store<ModelCompiler>> {
        &self.store
    }

    /// Remembers a watch-dir outcome for `/status` (the oldest goes past the bound).
    pub fn record_watch(&self, file: &str, outcome: &ApplyOutcome, at_ms: u64) {
        let event = WatchEvent::new(file, outcome, at_ms);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() >= MAX_RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    /// The recent watch-dir outcomes, oldest first.
    pub fn recent_watch(&self) -> Vec<WatchEvent> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.iter().cloned().collect()
    }

    /// Serves one admin request.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        if method == Method::POST {
            if let Some(refusal) = write_refusal(request.headers()) {
                return Ok(refusal);
            }
            if !self.token.allows(request.headers()) {
                let mut resp = text(
                    StatusCode::UNAUTHORIZED,
                    format!(
                        "writes need Authorization: Bearer TOKEN, the token in {}\n",
                        self.token.path().display()
                    ),
                );
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rampart-edge-admin\""),
                );
                return Ok(resp);
            }
        }
        let response = match (method, path.as_str()) {
            (Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".to_owned()),
            (Method::GET, "/status") => self.status().await,
            (Method::GET, "/metrics") => self.metrics_text().await,
            (Method::GET, "/sample") => match &self.sample {
                Some(sample) => {
                    let mut resp = text(StatusCode::OK, sample.jsonl());
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-ndjson"),
                    );
                    resp
                }
                None => text(StatusCode::NOT_FOUND, "no bot module sample\n".to_owned()),
            },
            (Method::POST, "/killswitch/bot") => match body::<KillSwitch>(request).await {
                Ok(cmd) => self.kill_switch(cmd).await,
                Err(resp) => resp,
            },
            (Method::POST, "/safe-mode/clear") => match body::<ClearSafeMode>(request).await {
                Ok(cmd) => self.clear_safe_mode(cmd).await,
                Err(resp) => resp,
            },
            (Method::POST, "/break-glass/lkg") => {
                let store = self.store.clone();
                outcome(blocking(move || store.force_last_known_good(now_ms())).await)
            }
            (Method::POST, "/break-glass/pin") => match body::<Pin>(request).await {
                Ok(Pin { version }) => {
                    let store = self.store.clone();
                    outcome(blocking(move || store.pin(version, now_ms())).await)
                }
                Err(resp) => resp,
            },
            (Method::POST, "/break-glass/unpin") => {
                let store = self.store.clone();
                match blocking(move || store.unpin()).await {
                    Ok(was) => json(StatusCode::OK, &serde_json::json!({ "unpinned": was })),
                    Err(resp) => resp,
                }
            }
            (_, "/healthz" | "/status" | "/metrics" | "/sample") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".to_owned())
            }
            (
                _,
                "/killswitch/bot" | "/safe-mode/clear" | "/break-glass/lkg" | "/break-glass/pin"
                | "/break-glass/unpin",
            ) => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".to_owned()),
            _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
        };
        Ok(response)
    }

    async fn status(&self) -> Response<Full<Bytes>> {
        let store = self.store.clone();
        let status = match blocking(move || store.status()).await {
            Ok(s) => s,
            Err(resp) => return resp,
        };
        json(
            StatusCode::OK,
            &StatusBody {
                edge: &self.info,
                connections_open: self.metrics.connections_open(),
                store: status,
                watch: self.recent_watch(),
                control: self.agent.as_ref().map(|r| r.borrow().clone()),
                trust: self.trust.as_ref().map(|t| t.report()),
                sample: self.sample.as_ref().map(|s| s.status()),
                kill_watch: self.kill_watch.as_ref().map(|r| r.borrow().clone()),
            },
        )
    }

    async fn kill_switch(&self, cmd: KillSwitch) -> Response<Full<Bytes>> {
        let store = self.store.clone();
        let reason = cmd
            .reason
            .unwrap_or_else(|| "set through the admin API".to_owned());
        if let Some(refusal) = reason_refusal(&reason) {
            return refusal;
        }
        let enabled = cmd.enabled;
        let logged = reason.clone();
        match blocking(move || store.set_module_enabled(enabled, reason)).await {
            Ok(()) => {
                tracing::warn!(enabled, reason = %logged, "bot module kill switch set");
                let snapshot = self.store.snapshot();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "module_enabled": snapshot.module_enabled,
                        "scoring": snapshot.scoring_model().is_some(),
                    }),
                )
            }
            Err(resp) => resp,
        }
    }

    /// Leaves the sentinel's safe mode (after 6 deaths the edge boots with the module off
    /// and stays so until an operator has looked). Harmless when not in safe mode.
    async fn clear_safe_mode(&self, cmd: ClearSafeMode) -> Response<Full<Bytes>> {
        let store = self.store.clone();
        let was = self.store.snapshot().mode != Mode::Normal;
        let reason = cmd
            .reason
            .unwrap_or_else(|| "cleared through the admin API".to_owned());
        if let Some(refusal) = reason_refusal(&reason) {
            return refusal;
        }
        match blocking(move || store.clear_safe_mode(&reason)).await {
            Ok(()) => {
                let snapshot = self.store.snapshot();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "was_safe_mode": was,
                        "mode": snapshot.mode,
                        "module_enabled": snapshot.module_enabled,
                        "scoring": snapshot.scoring_model().is_some(),
                    }),
                )
            }
            Err(resp) => resp,
        }
    }

    async fn metrics_text(&self) -> Response<Full<Bytes>> {
        let mut out = String::with_capacity(8 * 1024);
        self.metrics.render(&mut out);
        let snapshot = self.store.snapshot();
        let store = self.store.metrics();
        family(
            &mut out,
            "rampart_edge_applies_total",
            "counter",
            "Feature files offered to the store, by outcome.",
        );
        for (outcome, n) in [
            ("applied", store.applied),
            ("unchanged", store.unchanged),
            ("rejected", store.rejected),
        ] {
            let _ = writeln!(
                out,
                "rampart_edge_applies_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        family(
            &mut out,
            "rampart_edge_rejections_total",
            "counter",
            "Feature files refused, by rejection code.",
        );
        for c in &store.rejections {
            let _ = writeln!(
                out,
                "rampart_edge_rejections_total{{code=\"{}\"}} {}",
                c.code, c.count
            );
        }
        family(
            &mut out,
            "rampart_edge_rejected_issues_total",
            "counter",
            "Issues found in refused feature files, by artifact issue code.",
        );
        for c in &store.issues {
            let _ = writeln!(
                out,
                "rampart_edge_rejected_issues_total{{code=\"{}\"}} {}",
                c.code, c.count
            );
        }
        for (name, kind, help, value) in [
            (
                "rampart_edge_active_version",
                "gauge",
                "Version of the feature file serving (0: none).",
                snapshot.version().unwrap_or(0),
            ),
            (
                "rampart_edge_module_enabled",
                "gauge",
                "1 when the bot module's kill switch is on.",
                u64::from(snapshot.module_enabled),
            ),
            (
                "rampart_edge_scoring",
                "gauge",
                "1 when requests are scored (plan, kill switch and mode allow it).",
                u64::from(snapshot.scoring_model().is_some()),
            ),
            (
                "rampart_edge_lkg_writes_total",
                "counter",
                "Last-known-good files written.",
                store.lkg_writes,
            ),
            (
                "rampart_edge_disk_errors_total",
                "counter",
                "Failed reads or writes in the data dir.",
                store.disk_errors,
            ),
            (
                "rampart_edge_log_suppressed_total",
                "counter",
                "Failures counted but not logged because of the log rate limit.",
                store.log_suppressed,
            ),
            (
                "rampart_edge_poisoned_total",
                "counter",
                "Versions poisoned by the crash-loop sentinel.",
                store.poisoned,
            ),
            (
                "rampart_edge_lkg_unblessed_total",
                "counter",
                "Last-known-good versions removed because the control plane no longer blesses them.",
                store.lkg_unblessed,
            ),
            (
                "rampart_edge_deaths_found_total",
                "counter",
                "Deaths of earlier runs found unreported in the boot journal at boot.",
                store.deaths_found,
            ),
            (
                "rampart_edge_deaths_reported_total",
                "counter",
                "Deaths of earlier runs the control plane acknowledged.",
                store.deaths_reported,
            ),
            (
                "rampart_edge_deaths_dropped_total",
                "counter",
                "Deaths dropped unreported because the queue was full.",
                store.deaths_dropped,
            ),
            (
                "rampart_edge_deaths_pending",
                "gauge",
                "Deaths of earlier runs waiting to be reported.",
                store
                    .deaths_found
                    .saturating_sub(store.deaths_dropped)
                    .saturating_sub(store.deaths_reported),
            ),
            (
                "rampart_edge_soak_requests_total",
                "counter",
                "Requests the bot module ran on, as recorded for the soak.",
                store.requests,
            ),
        ] {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(agent) = &self.agent {
            let r = agent.borrow().clone();
            for (name, kind, help, value) in [
                (
                    "rampart_edge_control_connected",
                    "gauge",
                    "1 when the last call to the control plane succeeded.",
                    u64::from(r.connected),
                ),
                (
                    "rampart_edge_control_beats_total",
                    "counter",
                    "Heartbeats the control plane answered.",
                    r.beats,
                ),
                (
                    "rampart_edge_control_failures",
                    "gauge",
                    "Calls to the control plane that failed since the last success.",
                    r.failures,
                ),
            ] {
                family(&mut out, name, kind, help);
                let _ = writeln!(out, "{name} {value}");
            }
            if let Some(orders) = &r.orders {
                let name = "rampart_edge_orders_refused_total";
                family(
                    &mut out,
                    name,
                    "counter",
                    "Heartbeat answers whose signed order was refused (nothing applied), by code.",
                );
                for (code, n) in &orders.refused {
                    let _ = writeln!(out, "{name}{{code=\"{code}\"}} {n}");
                }
            }
        }
        if let Some(kill) = &self.kill_watch {
            let r = kill.borrow().clone();
            for (name, kind, help, value) in [
                (
                    "rampart_edge_kill_connected",
                    "gauge",
                    "1 while the kill bucket is watched over NATS.",
                    u64::from(r.connected),
                ),
                (
                    "rampart_edge_kill_applied_total",
                    "counter",
                    "Kill orders from the kill bucket applied (newer than the last under their key).",
                    r.applied_total,
                ),
            ] {
                family(&mut out, name, kind, help);
                let _ = writeln!(out, "{name} {value}");
            }
            let name = "rampart_edge_kill_refused_total";
            family(
                &mut out,
                name,
                "counter",
                "Kill orders from the kill bucket refused (nothing applied), by code.",
            );
            for (code, n) in &r.refused {
                let _ = writeln!(out, "{name}{{code=\"{code}\"}} {n}");
            }
        }
        if let Some(trust) = &self.trust {
            let t = trust.report();
            for (name, kind, help, value) in [
                (
                    "rampart_edge_keyset_version",
                    "gauge",
                    "The version of the keyset in use.",
                    t.keyset_version,
                ),
                (
                    "rampart_edge_keyset_loaded_total",
                    "counter",
                    "Keysets and roots taken since start (the first included).",
                    t.loaded_total,
                ),
                (
                    "rampart_edge_keyset_refused_total",
                    "counter",
                    "Keysets and roots refused since start (the one in use stays).",
                    t.refused_total,
                ),
            ] {
                family(&mut out, name, kind, help);
                let _ = writeln!(out, "{name} {value}");
            }
        }
        let mut resp = text(StatusCode::OK, out);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    }
}

// === impl WatchEvent ===

impl WatchEvent {
    fn new(file: &str, outcome: &ApplyOutcome, at_ms: u64) -> Self {
        let file: String = file.chars().take(MAX_EVENT_NAME).collect();
        match outcome {
            ApplyOutcome::Applied { version, .. } => WatchEvent {
                at_ms,
                file,
                outcome: "applied",
                serving: Some(*version),
                code: None,
                issues: Vec::new(),
                message: None,
            },
            ApplyOutcome::Unchanged { version, .. } => WatchEvent {
                at_ms,
                file,
                outcome: "unchanged",
                serving: Some(*version),
                code: None,
                issues: Vec::new(),
                message: None,
            },
            ApplyOutcome::Rejected { kept, rejection } => WatchEvent {
                at_ms,
                file,
                outcome: "rejected",
                serving: kept.map(|(v, _)| v),
                code: Some(rejection.code()),
                issues: rejection.issues().iter().map(|i| i.code()).collect(),
                message: Some(rejection.to_string()),
            },
        }
    }
}

/// Reads a small JSON body, or the response that refuses it.
/// Why a write must not be served, checked on its headers before its body is read: what a
/// browser sends on a web page's behalf is refused, what curl and the CLI send passes.
fn write_refusal(headers: &HeaderMap) -> Option<Response<Full<Bytes>>> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // A DNS-rebinding page reaches this port under its own domain name, and says so in Host.
    let Some(host) = value(header::HOST.as_str()).filter(|h| local_authority(h)) else {
        return Some(text(
            StatusCode::FORBIDDEN,
            "writes need Host to be an IP address or localhost\n".to_owned(),
        ));
    };
    if let Some(origin) = value(header::ORIGIN.as_str()) {
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !own {
            return Some(text(
                StatusCode::FORBIDDEN,
                "cross-origin writes are refused\n".to_owned(),
            ));
        }
    }
    if value("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
        return Some(text(
            StatusCode::FORBIDDEN,
            "writes from another site are refused\n".to_owned(),
        ));
    }
    let json = value(header::CONTENT_TYPE.as_str()).is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Some(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "writes take Content-Type: application/json\n".to_owned(),
        ));
    }
    None
}

/// Whether a `Host` value names this machine by address or as `localhost` (with or without
/// a port), never by a domain name someone else controls.
fn local_authority(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// Why a reason is refused: it goes to the log and to `/status`, so it is bounded and holds
/// no control characters.
fn reason_refusal(reason: &str) -> Option<Response<Full<Bytes>>> {
    rampart_api::check_text("reason", reason, rampart_api::limits::MAX_REASON_LEN)
        .err()
        .map(|e| text(StatusCode::BAD_REQUEST, format!("{e}\n")))
}

async fn body<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<Full<Bytes>>> {
    let limited = Limited::new(request.into_body(), MAX_ADMIN_BODY);
    let bytes = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {MAX_ADMIN_BODY} bytes, or unreadable\n"),
            ));
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| text(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}\n")))
}

/// Runs a store call that may touch the disk on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response<Full<Bytes>>> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "admin store call failed");
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store call failed\n".to_owned(),
        )
    })
}

/// 200 with the outcome when the version is serving, 409 when refused.
fn outcome(result: Result<ApplyOutcome, Response<Full<Bytes>>>) -> Response<Full<Bytes>> {
    match result {
        Ok(o) => {
            let status = match o {
                ApplyOutcome::Rejected { .. } => StatusCode::CONFLICT,
                _ => StatusCode::OK,
            };
            json(status, &o)
        }
        Err(resp) => resp,
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            let mut resp = Response::new(Full::new(Bytes::from(bytes)));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize: {e}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
