//! The reverse proxy: one request from a client to the origin and back, with the bot
//! module's decision in between.
//!
//! Bodies stream both ways (the client's [`Incoming`] body is the origin request's body and
//! the origin's is the client response's), connections to the origin are kept alive and
//! pooled per worker (each client connection leases one, see `proxy/origin.rs`), and every way the
//! origin can fail ends in a status: refused or reset → 502, no response head within the
//! timeout → 504.

pub mod conformance;
mod headers;
mod origin;

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use rampart_host::clock::now_ms;
use rampart_score::AgentMemo;

use headers::{Forwarding, Scan};
pub use headers::{SCORE_HEADER, X_FORWARDED_FOR};

use crate::metrics::Metrics;
use crate::module::{Boundary, Decision, Inbound};
use crate::proxy::origin::{OriginPool, Sender};
use crate::timer::LazyTimer;

/// The body of a proxied response: the origin's, streamed, or a short one of our own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Default time to open a TCP connection to the origin.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default time the origin has to send its response head (status and headers) after the
/// request was sent; the body may take longer.
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an idle pooled connection to the origin is kept.
pub const ORIGIN_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most idle connections each worker keeps to the origin (a client connection holds its
/// own while it lives; these are the ones left by closed client connections).
pub const ORIGIN_POOL_MAX_IDLE: usize = 1024;

/// At most one log line per this interval for origin failures; the rest are counted and the
/// count goes in the next line. A dead origin under load must not become a log flood.
pub const ORIGIN_LOG_INTERVAL_MS: u64 = 1_000;

/// Where requests go: `http://host:port`, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    authority: Authority,
}

/// An `--upstream` that is not `http://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not a URI at all.
    #[error("upstream is not a URL: {0}")]
    Invalid(String),
    /// A scheme other than `http` (TLS to the origin is not supported).
    #[error("upstream scheme must be http")]
    Scheme,
    /// No host.
    #[error("upstream has no host")]
    NoHost,
    /// A path, query or credentials, which the proxy would silently drop.
    #[error("upstream must be http://host[:port] without path, query or credentials")]
    Extra,
}

/// Timeouts toward the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginTimeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Response head after the request was sent.
    pub response_header: Duration,
}

/// The proxy's shared state; one per worker, shared by every connection it serves.
#[derive(Debug)]
pub struct Proxy {
    origin: OriginPool,
    upstream: Upstream,
    boundary: Boundary,
    metrics: Arc<Metrics>,
    timeouts: OriginTimeouts,
    origin_log: LogGate,
}

/// One client connection: who it is and the origin connection it leases.
///
/// Dropped when the client connection ends; the origin connection then goes back to the
/// worker's pool.
#[derive(Debug)]
pub struct ClientConn {
    proxy: Arc<Proxy>,
    client: IpAddr,
    state: Mutex<Option<Box<ConnState>>>,
}

/// What a client connection carries from one request to the next.
#[derive(Debug, Default)]
struct ConnState {
    /// The origin connection it leases.
    lease: Option<Sender>,
    /// The response-header timeout's timer, made on the first request.
    timer: Option<LazyTimer>,
    /// The forwarding header values of this client, built on the first request.
    forwarding: Option<Forwarding>,
    /// The bot module's memo of this client's user agent (a connection sends one agent).
    agent_memo: RefCell<AgentMemo>,
}

/// Lets one log line through per interval and counts the others; lock-free, so it can sit
/// on the request path.
#[derive(Debug, Default)]
struct LogGate {
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

// === impl Upstream ===

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: Uri = s
            .parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamError::Invalid(e.to_string()))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(UpstreamError::Scheme);
        }
        let authority = uri.authority().ok_or(UpstreamError::NoHost)?.clone();
        if authority.host().is_empty() {
            return Err(UpstreamError::NoHost);
        }
        let path_ok = matches!(uri.path(), "" | "/");
        if !path_ok || uri.query().is_some() || authority.as_str().contains('@') {
            return Err(UpstreamError::Extra);
        }
        Ok(Upstream { authority })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl Upstream {
    /// The origin-form request target sent to the origin for a client's request target
    /// (origin-form or absolute-form; an authority-form target becomes `/`).
    fn target_for(uri: &Uri) -> Uri {
        Uri::from(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        )
    }

    /// `host:port` to open TCP connections to (port 80 when the URL has none).
    fn connect_addr(&self) -> String {
        format!(
            "{}:{}",
            self.authority.host(),
            self.authority.port_u16().unwrap_or(80)
        )
    }

    /// The `Host` header value for requests that came without one (HTTP/1.0).
    fn host_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(self.authority.as_str()).ok()
    }
}

// === impl OriginTimeouts ===

impl Default for OriginTimeouts {
    fn default() -> Self {
        OriginTimeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            response_header: DEFAULT_RESPONSE_HEADER_TIMEOUT,
        }
    }
}

// === impl Proxy ===

impl Proxy {
    /// A proxy to `upstream` with a pooled keep-alive client.
    pub fn new(
        upstream: Upstream,
        boundary: Boundary,
        metrics: Arc<Metrics>,
        timeouts: OriginTimeouts,
    ) -> Self {
        let origin = OriginPool::new(
            upstream.connect_addr(),
            timeouts.connect,
            ORIGIN_POOL_IDLE_TIMEOUT,
            ORIGIN_POOL_MAX_IDLE,
        );
        Proxy {
            origin,
            upstream,
            boundary,
            metrics,
            timeouts,
            origin_log: LogGate::default(),
        }
    }

    /// The state of a new client connection from `peer`; its requests go to
    /// [`ClientConn::handle`].
    pub fn connection(self: &Arc<Self>, peer: SocketAddr) -> Arc<ClientConn> {
        Arc::new(ClientConn {
            proxy: self.clone(),
            client: peer.ip(),
            state: Mutex::default(),
        })
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        client: IpAddr,
        state: &mut ConnState,
    ) -> Response<ProxyBody> {
        if request.method() == Method::CONNECT {
            // A tunnel would carry traffic past the bot module; this is a reverse proxy.
            return short(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n");
        }
        let (mut parts, body) = request.into_parts();
        if let Err(malformed) = conformance::check(&mut parts) {
            self.metrics.malformed();
            return bad_request(malformed);
        }
        // One pass over the names says what needs removing or replacing.
        let scan = Scan::of(&parts.headers);
        if scan.score {
            // A client must not be able to pick its own score.
            parts.headers.remove(SCORE_HEADER);
        }
        // The module sees the headers as the client sent them (count and order are features).
        let decision = self.boundary.evaluate(&Inbound {
            parts: &parts,
            client,
            now_ms: now_ms(),
            agent_memo: Some(&state.agent_memo),
        });
        let score = match decision {
            Decision::Forward(Some(score)) => headers::score_value(score),
            Decision::Forward(None) => headers::UNSCORED,
            Decision::Block(_) => {
                self.metrics.blocked();
                return short(StatusCode::FORBIDDEN, "blocked by bot rule\n");
            }
            Decision::Refuse => {
                self.metrics.failed_closed();
                return short(StatusCode::SERVICE_UNAVAILABLE, "bot module unavailable\n");
            }
        };
        headers::remove_hop_by_hop_scanned(&mut parts.headers, scan);
        state
            .forwarding
            .get_or_insert_with(|| Forwarding::new(client))
            .apply(&mut parts.headers, scan);
        parts.headers.insert(SCORE_HEADER, score);
        parts.uri = Upstream::target_for(&parts.uri);
        if !parts.headers.contains_key(header::HOST)
            && let Some(host) = self.upstream.host_value()
        {
            parts.headers.insert(header::HOST, host);
        }
        // HTTP/1.0 clients still get a kept-alive HTTP/1.1 connection to the origin.
        parts.version = Version::HTTP_11;
        let sent = self
            .origin
            .send(&mut state.lease, Request::from_parts(parts, body));
        let limit = self.timeouts.response_header;
        let timer = state.timer.get_or_insert_with(|| LazyTimer::new(limit));
        match timer.run(limit, sent).await {
            Some(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            // The client's own body broke (bad chunk framing): its fault, not the origin's.
            Some(Err(e)) if e.is_client_body() => {
                self.metrics.malformed();
                bad_request(conformance::Malformed::BadBody)
            }
            Some(Err(e)) => {
                self.metrics.origin_error();
                if let Some(suppressed) = self.origin_log.admit(now_ms(), ORIGIN_LOG_INTERVAL_MS) {
                    tracing::warn!(error = %e, upstream = %self.upstream, suppressed, "origin request failed: 502");
                }
                short(StatusCode::BAD_GATEWAY, "origin unreachable\n")
            }
            None => {
                self.metrics.origin_timeout();
                if let Some(suppressed) = self.origin_log.admit(now_ms(), ORIGIN_LOG_INTERVAL_MS) {
                    tracing::warn!(upstream = %self.upstream, suppressed, timeout = ?self.timeouts.response_header, "origin sent no response head in time: 504");
                }
                short(StatusCode::GATEWAY_TIMEOUT, "origin timed out\n")
            }
        }
    }
}

// === impl ClientConn ===

impl ClientConn {
    /// Serves one request of this connection. Never fails: every problem is a status.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let metrics = &self.proxy.metrics;
        let _in_flight = metrics.in_flight();
        // Requests on one connection come one at a time: the lock is never contended.
        // The state is boxed and the forwarding future too: both are large, and moving them
        // by value (in and out of the lock, into hyper's dispatcher) cost more per request
        // than one allocation.
        let mut state = self.lock().take().unwrap_or_default();
        let response = Box::pin(self.proxy.forward(request, self.client, &mut state)).await;
        *self.lock() = Some(state);
        metrics.response(response.status());
        Ok(response)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Box<ConnState>>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ClientConn {
    fn drop(&mut self) {
        if let Some(sender) = self.lock().as_mut().and_then(|s| s.lease.take()) {
            self.proxy.origin.give_back(sender);
        }
    }
}

// === impl LogGate ===

impl LogGate {
    /// `Some(failures suppressed since the last line)` when a line may be logged now.
    fn admit(&self, now_ms: u64, interval_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= interval_ms;
        // One thread wins the interval; the others count themselves as suppressed.
        if due
            && self
                .last_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// A short plain-text response of our own.
/// A 400 for a malformed request; the connection is closed after it, since what follows on
/// it cannot be trusted to be framed as the client meant.
fn bad_request(malformed: conformance::Malformed) -> Response<ProxyBody> {
    let mut response = short(StatusCode::BAD_REQUEST, malformed.message());
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

pub(crate) fn short(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_accepts_host_and_port_only() {
        let u: Upstream = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8080");
        assert!("http://origin/".parse::<Upstream>().is_ok());
        assert_eq!("https://o".parse::<Upstream>(), Err(UpstreamError::Scheme));
        assert_eq!(
            "http://o/base".parse::<Upstream>(),
            Err(UpstreamError::Extra)
        );
        assert_eq!("http://o/?q".parse::<Upstream>(), Err(UpstreamError::Extra));
        assert_eq!(
            "http://u:p@o".parse::<Upstream>(),
            Err(UpstreamError::Extra)
        );
        assert!(matches!(
            "not a url".parse::<Upstream>(),
            Err(UpstreamError::Invalid(_))
        ));
        assert_eq!("/path".parse::<Upstream>(), Err(UpstreamError::Scheme));
    }

    #[test]
    fn request_targets_are_rewritten_to_the_origin() {
        let origin_form: Uri = "/a/b?x=1".parse().unwrap();
        assert_eq!(Upstream::target_for(&origin_form), "/a/b?x=1");
        let absolute: Uri = "http://evil.example/p?q".parse().unwrap();
        assert_eq!(Upstream::target_for(&absolute), "/p?q");
        let authority_only: Uri = "evil.example:443".parse().unwrap();
        assert_eq!(Upstream::target_for(&authority_only), "/");
    }

    #[test]
    fn upstreams_give_a_connect_address_and_a_host() {
        let u: Upstream = "http://10.0.0.1:81".parse().unwrap();
        assert_eq!(u.connect_addr(), "10.0.0.1:81");
        assert_eq!(u.host_value().unwrap(), "10.0.0.1:81");
        let u: Upstream = "http://origin.internal".parse().unwrap();
        assert_eq!(u.connect_addr(), "origin.internal:80");
        let u: Upstream = "http://[::1]:8080".parse().unwrap();
        assert_eq!(u.connect_addr(), "[::1]:8080");
    }

    #[test]
    fn the_log_gate_lets_one_line_per_interval_and_counts_the_rest() {
        let gate = LogGate::default();
        assert_eq!(gate.admit(10_000, 1_000), Some(0));
        assert_eq!(gate.admit(10_001, 1_000), None);
        assert_eq!(gate.admit(10_500, 1_000), None);
        assert_eq!(gate.admit(11_000, 1_000), Some(2));
        assert_eq!(gate.admit(11_001, 1_000), None);
        // A clock that goes backwards does not open the gate.
        assert_eq!(gate.admit(5_000, 1_000), None);
        assert_eq!(gate.admit(12_000, 1_000), Some(2));
    }
}
