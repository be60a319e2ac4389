//! The HTTP face of the [`Service`]: axum routes under `/v1` exactly as
//! [`rampart_api::routes::ALL`] lists them, bearer-token checks on writes, capped bodies,
//! and every failure as one JSON [`rampart_api::ApiError`].

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rampart_api::Decision;
use rampart_api::limits::{DEFAULT_PAGE, MAX_ARTIFACT_BODY, MAX_ID, MAX_JSON_BODY, MAX_PAGE};
use rampart_api::{ErrorCode, RolloutCommand, routes};
use rampart_artifact::Digest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::auth::{Action, Caller};
use crate::config::HIGH_WATER_PERCENT;
use crate::connections::{Connections, is_fleet};
use crate::openapi;
use crate::service::{Error, Service};
use crate::store::Store;
use crate::tls::CertReloader;

/// Most requests served at once (long-polls included: one per edge). Past it, a request is
/// answered 503 at once rather than queued, and the edge retries with backoff.
pub const MAX_IN_FLIGHT: usize = 16_384;

/// `retry-after` on a request shed near the connection cap, in seconds.
const SHED_RETRY_AFTER_S: &str = "5";

type Shared<S> = State<Arc<Service<S>>>;

/// The certificate `/v1/health` reports on: a request extension the server adds when it
/// serves TLS.
#[derive(Debug, Clone)]
pub struct TlsStatus(pub Arc<CertReloader>);

/// The router over a service.
pub fn router<S: Store>(service: Arc<Service<S>>) -> Router {
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    Router::new()
        .route(routes::OPENAPI, get(openapi_json))
        .route(routes::HEALTH, get(health::<S>))
        .route(routes::ARTIFACTS, post(publish::<S>).get(artifacts::<S>))
        .route(routes::ARTIFACT, get(artifact::<S>))
        .route(routes::ARTIFACT_META, get(artifact_meta::<S>))
        .route(routes::ARTIFACT_DIFF, get(artifact_diff::<S>))
        .route(routes::CONTRACTS, get(contracts::<S>))
        .route(routes::NODES, post(register::<S>).get(nodes::<S>))
        .route(routes::NODE, get(node::<S>).delete(remove_node::<S>))
        .route(routes::NODE_ENROLL, post(enroll::<S>))
        .route(routes::ENROLLMENTS, post(issue_enrollment::<S>))
        .route(routes::APPROVALS, get(approvals::<S>))
        .route(routes::APPROVAL, post(approve::<S>))
        .route(routes::HEARTBEAT, post(heartbeat::<S>))
        .route(
            routes::ROLLOUTS,
            post(start_rollout::<S>).get(rollouts::<S>),
        )
        .route(routes::ROLLOUT, get(rollout::<S>))
        .route(routes::ROLLOUT_COMMAND, post(rollout_command::<S>))
        .route(
            routes::KILLSWITCHES,
            get(kill_switches::<S>).put(set_kill_switch::<S>),
        )
        .route(routes::AUDIT, get(audit::<S>))
        .merge(crate::dashboard::router::<S>())
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let limit = Arc::clone(&limit);
                async move {
                    let conns = req.extensions().get::<Arc<Connections>>().cloned();
                    let shedding = conns.as_ref().is_some_and(|c| c.shedding());
                    if shedding && !is_fleet(req.method(), req.uri().path()) {
                        if let Some(c) = &conns {
                            c.count_shed();
                        }
                        return shed_response();
                    }
                    let mut resp = match limit.try_acquire_owned() {
                        Ok(_permit) => next.run(req).await,
                        Err(_) => Error::new(
                            ErrorCode::Unavailable,
                            format!("more than {MAX_IN_FLIGHT} requests in flight; retry"),
                        )
                        .into_response(),
                    };
                    if shedding {
                        // Near the cap a connection is given back after its request.
                        resp.headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    resp
                }
            },
        ))
        .with_state(service)
}

/// 503 for a request that is not fleet traffic while the connections are above the
/// high-water mark (see [`crate::connections`]).
fn shed_response() -> Response {
    let mut resp = Error::new(
        ErrorCode::Unavailable,
        format!(
            "the control plane is near its connection cap ({HIGH_WATER_PERCENT}% or more in use) \
             and serves only node registration, enrollment, heartbeats and health; retry later"
        ),
    )
    .into_response();
    let headers = resp.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from_static(SHED_RETRY_AFTER_S));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

// === impl Error ===

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(self.body())).into_response();
        if self.code == ErrorCode::Unauthorized {
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

fn ok<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn reply<T: Serialize>(result: Result<T, Error>) -> Response {
    match result {
        Ok(v) => ok(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

fn authorize<S: Store>(
    svc: &Service<S>,
    headers: &HeaderMap,
    action: Action,
) -> Result<Caller, Error> {
    svc.authenticate(authorization(headers), action)
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// 200 with the result, or 202 with the approval a second admin must give.
fn decided<T: Serialize>(result: Result<Decision<T>, Error>, done: StatusCode) -> Response {
    match result {
        Ok(Decision::Done(v)) => ok(done, &v),
        Ok(Decision::Pending(a)) => ok(StatusCode::ACCEPTED, &a),
        Err(e) => e.into_response(),
    }
}

/// Reads a body of at most `limit` bytes; the length header is checked first.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Error> {
    let too_large = || {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!("body larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit)) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b.to_vec()),
        Err(e) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                Err(too_large())
            } else {
                Err(Error::bad_request(format!("cannot read the body: {e}")))
            }
        }
    }
}

/// The media type JSON bodies are sent as.
const JSON: &str = "application/json";

/// The media types a publish may be sent as: the envelope's bytes, or the same bytes
/// declared as the JSON they are.
const ARTIFACT_MEDIA: &[&str] = &["application/octet-stream", JSON];

/// Whether a Content-Type value names `want`: its type and subtype compared without case
/// (RFC 9110 §8.3.1), parameters such as `charset` allowed, nothing glued on
/// (`application/jsonp` is not JSON).
fn media_type_is(value: &str, want: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(want)
}

/// 415 unless the request declares one of `allowed`. A body without a Content-Type is
/// refused too: every write route reads a body, and guessing its type is how a form post
/// from a browser would get in.
fn require_media(headers: &HeaderMap, allowed: &[&str]) -> Result<(), Error> {
    let expected = allowed.join(" or ");
    match headers.get(CONTENT_TYPE).map(|v| v.to_str()) {
        None => Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("no Content-Type: send the body as {expected}"),
        )),
        Some(Ok(ct)) if allowed.iter().any(|want| media_type_is(ct, want)) => Ok(()),
        Some(Ok(ct)) => Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("expected {expected}, got {:?}", cut(ct)),
        )),
        Some(Err(_)) => Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("expected {expected}, got a Content-Type that is not text"),
        )),
    }
}

async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Error> {
    require_media(headers, &[JSON])?;
    let bytes = read_body(headers, body, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
}

/// At most 64 characters of a client's value, for an error message.
fn cut(s: &str) -> String {
    const SHOWN: usize = 64;
    if s.chars().count() > SHOWN {
        format!("{}…", s.chars().take(SHOWN).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// A numeric id from a path or query `param`: decimal, from `min` to [`MAX_ID`] (ids are
/// SQLite integers, signed 64-bit: a larger one names nothing and is the client's mistake,
/// a 400 naming the parameter, not a store failure).
fn id(param: &str, what: &str, min: u64, s: &str) -> Result<u64, Error> {
    match s.parse::<u64>() {
        Ok(n) if (min..=MAX_ID).contains(&n) => Ok(n),
        _ => Err(Error::bad_request(format!(
            "{param} ({what}) must be a whole number from {min} to {MAX_ID}; got {:?}",
            cut(s)
        ))),
    }
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, Error> {
    p.map(|Path(v)| v)
        .map_err(|e| Error::bad_request(format!("invalid path: {e}")))
}

fn digest(s: &str) -> Result<Digest, Error> {
    s.parse()
        .map_err(|_| Error::bad_request(format!("{s:?} is not a digest (sha256:<64 hex digits>)")))
}

/// Query parameters: `key=value` pairs whose values are digests or numbers (no escaping
/// needed), each key at most once.
fn query(raw: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&k) {
            return Err(Error::bad_request(format!(
                "unknown query parameter {k:?} (allowed: {})",
                allowed.join(", ")
            )));
        }
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(Error::bad_request(format!(
                "query parameter {k:?} given twice"
            )));
        }
        let v = v.replace("%3A", ":").replace("%3a", ":");
        out.push((k.to_owned(), v));
    }
    Ok(out)
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The page size: `limit` from 1 to [`MAX_PAGE`], as `/openapi.json` documents it; out of
/// bounds is a 400, not a silent clamp.
fn limit(q: &[(String, String)]) -> Result<usize, Error> {
    let Some(v) = param(q, "limit") else {
        return Ok(DEFAULT_PAGE);
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(Error::bad_request(format!(
            "query parameter limit (page size) must be a whole number from 1 to {MAX_PAGE}; got {:?}",
            cut(v)
        ))),
    }
}

async fn openapi_json() -> Response {
    ok(StatusCode::OK, &openapi::document())
}

async fn health<S: Store>(
    State(svc): Shared<S>,
    tls: Option<axum::Extension<TlsStatus>>,
    conns: Option<axum::Extension<Arc<Connections>>>,
) -> Response {
    let (nodes, running) = {
        let fleet = svc.fleet();
        (fleet.nodes.len(), fleet.running.len())
    };
    // `tls` is null in plain HTTP; over TLS it names the certificate serving, its reloads
    // and the refused pairs (a renewal that did not take shows here).
    let tls = tls.map(|axum::Extension(TlsStatus(t))| t.report());
    // Caps, timeouts and what they closed or refused; null when the router is served
    // without the shared accept loop (unit tests).
    let connections = conns.map(|axum::Extension(c)| c.report());
    ok(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "role": if svc.is_leader() { "leader" } else { "follower" },
            "leader": svc.leader_url(),
            "nodes": nodes,
            "running_rollouts": running,
            "refused": svc.refusals(),
            "tls": tls,
            "epoch": svc.order_state().epoch,
            "seq": svc.order_state().seq,
            "trust": svc.trust_report(),
            "log_suppressed": crate::client_log::suppressed(),
            "connections": connections,
        }),
    )
}

async fn publish<S: Store>(State(svc): Shared<S>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let caller = authorize(&svc, &headers, Action::Publish)?;
        require_media(&headers, ARTIFACT_MEDIA)?;
        let bytes = read_body(&headers, body, MAX_ARTIFACT_BODY).await?;
        svc.publish(&caller, bytes).await
    }
    .await;
    match result {
        Ok(r) if r.created => ok(StatusCode::CREATED, &r),
        other => reply(other),
    }
}

async fn artifacts<S: Store>(State(svc): Shared<S>, RawQuery(q): RawQuery) -> Response {
    reply(
        async {
            let q = query(q.as_deref(), &["limit"])?;
            svc.artifacts(limit(&q)?).await
        }
        .await,
    )
}

async fn artifact<S: Store>(
    State(svc): Shared<S>,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let d = digest(&path(p)?)?;
        Ok::<_, Error>((d, svc.artifact_bytes(d).await?))
    }
    .await;
    match result {
        Ok((d, bytes)) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, "application/octet-stream".to_owned()),
                (
                    axum::http::HeaderName::from_static("x-rampart-digest"),
                    d.to_string(),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn artifact_meta<S: Store>(
    State(svc): Shared<S>,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    reply(async { svc.artifact_meta(digest(&path(p)?)?).await }.await)
}

async fn artifact_diff<S: Store>(
    State(svc): Shared<S>,
    p: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    reply(
        async {
            let d = digest(&path(p)?)?;
            let q = query(q.as_deref(), &["against"])?;
            let against = param(&q, "against").map(digest).transpose()?;
            svc.diff(d, against).await
        }
        .await,
    )
}

async fn contracts<S: Store>(State(svc): Shared<S>) -> Response {
    ok(StatusCode::OK, &svc.contracts())
}

async fn register<S: Store>(State(svc): Shared<S>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let caller = authorize(&svc, &headers, Action::Register)?;
        let reg: rampart_api::Registration = read_json(&headers, body).await?;
        reg.check()?;
        svc.speaks_for(&caller, &reg.node).await?;
        svc.register(&caller, reg).await
    }
    .await;
    match result {
        Ok(r) if r.created => ok(StatusCode::CREATED, &r),
        other => reply(other),
    }
}

async fn nodes<S: Store>(State(svc): Shared<S>) -> Response {
    ok(StatusCode::OK, &svc.nodes())
}

async fn node<S: Store>(State(svc): Shared<S>, p: Result<Path<String>, PathRejection>) -> Response {
    reply(path(p).and_then(|n| svc.node(&n)))
}

async fn heartbeat<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    body: Body,
) -> Response {
    reply(
        async {
            let caller = authorize(&svc, &headers, Action::Heartbeat)?;
            let node = path(p)?;
            svc.speaks_for(&caller, &node).await?;
            let beat = read_json(&headers, body).await?;
            svc.heartbeat(&node, beat).await
        }
        .await,
    )
}

async fn start_rollout<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let caller = authorize(&svc, &headers, Action::Rollout)?;
        let req = read_json(&headers, body).await?;
        svc.rollout_decision(&caller, req).await
    }
    .await;
    decided(result, StatusCode::CREATED)
}

async fn rollouts<S: Store>(State(svc): Shared<S>, RawQuery(q): RawQuery) -> Response {
    reply(
        async {
            let q = query(q.as_deref(), &["limit"])?;
            svc.rollouts(limit(&q)?).await
        }
        .await,
    )
}

fn rollout_id(s: &str) -> Result<u64, Error> {
    id("path parameter id", "a rollout id", 1, s)
}

async fn rollout<S: Store>(
    State(svc): Shared<S>,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    reply(async { svc.rollout(rollout_id(&path(p)?)?).await }.await)
}

async fn rollout_command<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Response {
    reply(
        async {
            let caller = authorize(&svc, &headers, Action::Rollout)?;
            let (id, cmd) = path(p)?;
            let id = rollout_id(&id)?;
            let cmd = RolloutCommand::parse(&cmd).ok_or_else(|| {
                Error::not_found(format!(
                    "no rollout command {cmd:?} (promote, pause, resume, abort, rollback)"
                ))
            })?;
            let bytes = read_body(&headers, body, MAX_JSON_BODY).await?;
            let action = if bytes.iter().all(u8::is_ascii_whitespace) {
                rampart_api::RolloutAction::default()
            } else {
                require_media(&headers, &[JSON])?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))?
            };
            svc.command_rollout(&caller, id, cmd, action).await
        }
        .await,
    )
}

async fn kill_switches<S: Store>(State(svc): Shared<S>) -> Response {
    ok(StatusCode::OK, &svc.kill_switches())
}

async fn set_kill_switch<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let caller = authorize(&svc, &headers, Action::KillSwitch)?;
        let set = read_json(&headers, body).await?;
        svc.kill_switch_decision(&caller, set).await
    }
    .await;
    decided(result, StatusCode::OK)
}

async fn issue_enrollment<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let caller = authorize(&svc, &headers, Action::Enroll)?;
        let req = read_json(&headers, body).await?;
        svc.issue_enrollment(&caller, req).await
    }
    .await;
    match result {
        Ok(v) => ok(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

async fn enroll<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    body: Body,
) -> Response {
    reply(
        async {
            let node = path(p)?;
            // The body is empty or `{}`; read (capped) so a client may send either.
            read_body(&headers, body, MAX_JSON_BODY).await?;
            svc.enroll(&node, authorization(&headers)).await
        }
        .await,
    )
}

async fn remove_node<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    body: Body,
) -> Response {
    reply(
        async {
            let caller = authorize(&svc, &headers, Action::RemoveNode)?;
            let node = path(p)?;
            let req = read_json(&headers, body).await?;
            svc.remove_node(&caller, &node, req).await
        }
        .await,
    )
}

async fn approvals<S: Store>(State(svc): Shared<S>) -> Response {
    ok(StatusCode::OK, &svc.pending_approvals())
}

async fn approve<S: Store>(
    State(svc): Shared<S>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    body: Body,
) -> Response {
    reply(
        async {
            let caller = authorize(&svc, &headers, Action::Approve)?;
            let id = id("path parameter id", "an approval id", 1, &path(p)?)?;
            read_body(&headers, body, MAX_JSON_BODY).await?;
            svc.approve(&caller, id).await
        }
        .await,
    )
}

async fn audit<S: Store>(State(svc): Shared<S>, RawQuery(q): RawQuery) -> Response {
    reply(
        async {
            let q = query(q.as_deref(), &["after", "limit"])?;
            let after = match param(&q, "after") {
                None => 0,
                Some(v) => id("query parameter after", "an audit sequence number", 0, v)?,
            };
            svc.audit(after, limit(&q)?).await
        }
        .await,
    )
}

async fn no_route() -> Response {
    Error::not_found("no such route; see /openapi.json").into_response()
}

async fn no_method() -> Response {
    Error::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route; see /openapi.json",
    )
    .into_response()
}
