//! The HTTP face of the [`Service`]: axum routes under `/v1` exactly as
//! [`rampart_api::routes::ALL`] lists them, bearer-token checks on writes, capped bodies,
//! and every failure as one JSON [`rampart_api::ApiError`].

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rampart_api::limits::{DEFAULT_PAGE, MAX_ARTIFACT_BODY, MAX_JSON_BODY, MAX_PAGE};
use rampart_api::{ErrorCode, RolloutCommand, routes};
use rampart_artifact::Digest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::auth::{Action, Caller, Denied};
use crate::openapi;
use crate::service::{Error, Service};
use crate::store::Store;

/// Most requests served at once (long-polls included: one per edge). Past it, a request is
/// answered 503 at once rather than queued, and the edge retries with backoff.
pub const MAX_IN_FLIGHT: usize = 16_384;

type Shared<S> = State<Arc<Service<S>>>;

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
        .route(routes::NODE, get(node::<S>))
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
                    match limit.try_acquire_owned() {
                        Ok(_permit) => next.run(req).await,
                        Err(_) => Error::new(
                            ErrorCode::Unavailable,
                            format!("more than {MAX_IN_FLIGHT} requests in flight; retry"),
                        )
                        .into_response(),
                    }
                }
            },
        ))
        .with_state(service)
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
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    svc.config
        .tokens
        .authorize(header, action)
        .map_err(|d| match d {
            Denied::Unauthenticated => Error::new(ErrorCode::Unauthorized, d.to_string()),
            Denied::Forbidden { .. } => Error::new(ErrorCode::Forbidden, d.to_string()),
        })
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

async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Error> {
    if let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
        && !ct.starts_with("application/json")
    {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("expected application/json, got {ct}"),
        ));
    }
    let bytes = read_body(headers, body, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
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

fn number(q: &[(String, String)], key: &str, default: u64, max: u64) -> Result<u64, Error> {
    match param(q, key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| Error::bad_request(format!("{key} must be a number")))
            .map(|n| n.min(max)),
    }
}

fn limit(q: &[(String, String)]) -> Result<usize, Error> {
    let n = number(q, "limit", DEFAULT_PAGE as u64, MAX_PAGE as u64)?;
    Ok(usize::try_from(n).unwrap_or(MAX_PAGE).max(1))
}

async fn openapi_json() -> Response {
    ok(StatusCode::OK, &openapi::document())
}

async fn health<S: Store>(State(svc): Shared<S>) -> Response {
    let (nodes, running) = {
        let fleet = svc.fleet();
        (fleet.nodes.len(), fleet.running.len())
    };
    ok(
        StatusCode::OK,
        &serde_json::json!({ "status": "ok", "nodes": nodes, "running_rollouts": running }),
    )
}

async fn publish<S: Store>(State(svc): Shared<S>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let caller = authorize(&svc, &headers, Action::Publish)?;
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
        let reg = read_json(&headers, body).await?;
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
            authorize(&svc, &headers, Action::Heartbeat)?;
            let node = path(p)?;
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
        svc.start_rollout(&caller, req).await
    }
    .await;
    match result {
        Ok(v) => ok(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
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
    s.parse()
        .map_err(|_| Error::bad_request(format!("{s:?} is not a rollout id")))
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
    reply(
        async {
            let caller = authorize(&svc, &headers, Action::KillSwitch)?;
            let set = read_json(&headers, body).await?;
            svc.set_kill_switch(&caller, set).await
        }
        .await,
    )
}

async fn audit<S: Store>(State(svc): Shared<S>, RawQuery(q): RawQuery) -> Response {
    reply(
        async {
            let q = query(q.as_deref(), &["after", "limit"])?;
            let after = number(&q, "after", 0, u64::MAX)?;
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
