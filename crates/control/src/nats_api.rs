//! The control API over NATS, served by the leading replica (the client side, and the wire
//! format, are [`rampart_api::nats_link`]).
//!
//! While a replica leads it subscribes to `rampart.api` in the queue group
//! [`API_QUEUE`]; when it stops leading (or shuts down) it unsubscribes, so requests only
//! ever reach the leader, and during a failover they meet "no responders" at once. Each
//! request becomes an HTTP request handed to **the same router** the HTTP listener serves:
//! authentication by the node's credential, body limits, the heartbeat long-poll, signed
//! orders and every error are the HTTP API's own. Only fleet traffic
//! ([`is_fleet`]: registration, enrollment, heartbeats, health) is served; anything else is
//! refused with 403 and stays on HTTPS.

use std::sync::Arc;

use async_nats::HeaderMap;
use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use rampart_api::ErrorCode;
use rampart_api::nats_link::{API_QUEUE, METHOD_HEADER, PATH_HEADER, STATUS_HEADER, api_subject};
use tower_service::Service as _;

use crate::connections::is_fleet;
use crate::service::{Error, Service};
use crate::store::AnyStore;

/// The pause before subscribing again after the servers refused a subscription.
pub const RESUBSCRIBE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves the control API over NATS while this replica leads, until shutdown. Does
/// nothing on a SQLite store.
pub async fn run(service: Arc<Service<AnyStore>>, router: Router) {
    let AnyStore::Nats(store) = service.store() else {
        return;
    };
    let (client, ns) = store.api_link();
    let subject = api_subject(&ns);
    let mut role = service.role_signal();
    let mut shutdown = service.shutdown_signal();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if !service.is_leader() {
            tokio::select! {
                changed = role.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let mut sub = match client
            .queue_subscribe(subject.clone(), API_QUEUE.to_owned())
            .await
        {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(subject, "cannot serve the API over NATS: {e}; trying again");
                tokio::select! {
                    () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        tracing::info!(subject, "leading: serving fleet traffic over NATS");
        loop {
            tokio::select! {
                msg = sub.next() => match msg {
                    Some(msg) => {
                        tokio::spawn(answer(client.clone(), router.clone(), msg));
                    }
                    None => break,
                },
                changed = role.changed() => {
                    if changed.is_err() || !service.is_leader() {
                        break;
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        // Requests in flight are answered by their tasks; new ones go to the next leader.
        if let Err(e) = sub.unsubscribe().await {
            tracing::debug!("unsubscribing from {subject}: {e}");
        }
        tracing::info!(subject, "no longer serving fleet traffic over NATS");
    }
}

/// Answers one request on its reply subject.
async fn answer(client: async_nats::Client, router: Router, msg: async_nats::Message) {
    let Some(reply) = msg.reply.clone() else {
        return; // Nobody waits for an answer.
    };
    let limit = client.server_info().max_payload;
    let (status, content_type, body) = respond(router, &msg, limit).await;
    let mut headers = HeaderMap::new();
    headers.insert(STATUS_HEADER, status.as_str());
    if let Some(ct) = content_type {
        headers.insert(CONTENT_TYPE.as_str(), ct.as_str());
    }
    if let Err(e) = client.publish_with_headers(reply, headers, body).await {
        tracing::debug!("answering over NATS: {e}");
    }
}

/// The router's answer to the request in `msg`: status, content type, body (at most
/// `limit` bytes, the servers' payload cap).
async fn respond(
    mut router: Router,
    msg: &async_nats::Message,
    limit: usize,
) -> (StatusCode, Option<String>, Bytes) {
    let request = match request_of(msg) {
        Ok(r) => r,
        Err(e) => return parts(e.into_response(), limit).await,
    };
    let resp = match router.call(request).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    parts(resp, limit).await
}

/// The HTTP request a NATS message carries, when it is fleet traffic.
fn request_of(msg: &async_nats::Message) -> Result<Request<Body>, Error> {
    let bad = |what: &str| Error::new(ErrorCode::BadRequest, what.to_owned());
    let headers = msg.headers.as_ref().ok_or_else(|| {
        bad("a request over NATS needs the Rampart-Method and Rampart-Path headers")
    })?;
    let method = headers
        .get(METHOD_HEADER)
        .and_then(|v| Method::from_bytes(v.as_str().as_bytes()).ok())
        .ok_or_else(|| bad("missing or invalid Rampart-Method header"))?;
    let path = headers
        .get(PATH_HEADER)
        .map(|v| v.as_str().to_owned())
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| bad("missing or invalid Rampart-Path header"))?;
    let bare = path.split('?').next().unwrap_or_default();
    if !is_fleet(&method, bare) {
        return Err(Error::new(
            ErrorCode::Forbidden,
            format!(
                "{method} {bare} is not served over NATS: only registration, enrollment, \
                 heartbeats and health are; use the HTTPS API"
            ),
        ));
    }
    let mut builder = Request::builder().method(method).uri(path.as_str());
    for name in [AUTHORIZATION, CONTENT_TYPE] {
        if let Some(v) = headers.get(name.as_str()) {
            builder = builder.header(name, v.as_str());
        }
    }
    builder
        .body(Body::from(msg.payload.clone()))
        .map_err(|e| bad(&format!("invalid request: {e}")))
}

/// Status, content type and body of `resp`; a body over `limit` becomes a 500 that says so.
async fn parts(
    resp: axum::response::Response,
    limit: usize,
) -> (StatusCode, Option<String>, Bytes) {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match axum::body::to_bytes(resp.into_body(), limit).await {
        Ok(body) => (status, content_type, body),
        Err(_) => {
            let error = Error::new(
                ErrorCode::Internal,
                format!("the answer is larger than the NATS payload cap of {limit} bytes"),
            )
            .into_response();
            let status = error.status();
            match axum::body::to_bytes(error.into_body(), limit).await {
                Ok(body) => (status, Some("application/json".into()), body),
                Err(_) => (status, None, Bytes::new()),
            }
        }
    }
}
