//! The control API over NATS: how an edge reaches whichever control-plane replica leads
//! without knowing which one it is, and fetches artifacts from the object store.
//!
//! A [`Client`](crate::Client) built on `nats://HOST:PORT[,HOST:PORT…]` sends each request
//! as one NATS request on [`api_subject`] (`rampart.api`): the method and path in the
//! [`METHOD_HEADER`] and [`PATH_HEADER`] headers, the bearer token in `Authorization`, the
//! body as the payload. Only the leading replica subscribes (queue group [`API_QUEUE`]), and
//! it hands the request to the very router its HTTP listener serves, so authentication,
//! limits, long-polls and every answer are the same as over HTTP; the answer comes back with
//! its status in [`STATUS_HEADER`]. While no replica leads (a failover), a request meets
//! "no responders" at once and the edge retries with backoff, serving what it has.
//!
//! Only fleet traffic is served this way (registration, enrollment, heartbeats with their
//! ACK/NACK, health); everything else stays on HTTPS. Artifacts are not fetched through the
//! leader: they are read from the object store (`{ns}_ARTIFACTS`, named by digest), with the
//! object's size checked against the caller's limit before a byte is read. The edge verifies
//! what it fetched as always: NATS is not trusted for content.
//!
//! NATS without TLS carries the token in clear: like `http://`, a `nats://` link is
//! accepted only to loopback hosts, and only when plain transport is allowed.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::{HeaderMap, ServerAddr};
use reqwest::{StatusCode, Url};
use tokio::sync::OnceCell;

use crate::client::ClientError;

/// The namespace every rampart stream, bucket and subject is under when none is named.
pub const DEFAULT_NAMESPACE: &str = "RAMPART";

/// The object store of artifact bytes, named by digest (under the namespace:
/// `{ns}_ARTIFACTS`).
pub const ARTIFACTS_BUCKET: &str = "ARTIFACTS";

/// The queue group the leading replica serves [`api_subject`] in: one replica answers each
/// request.
pub const API_QUEUE: &str = "rampart-leader";

/// The request's HTTP method.
pub const METHOD_HEADER: &str = "Rampart-Method";

/// The request's path and query (`/v1/nodes/edge-1/heartbeat`).
pub const PATH_HEADER: &str = "Rampart-Path";

/// The answer's HTTP status.
pub const STATUS_HEADER: &str = "Rampart-Status";

/// How long a connection to the NATS servers may take.
pub const NATS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The subject of control API requests in namespace `ns` (`rampart.api`).
pub fn api_subject(ns: &str) -> String {
    format!("{}.api", ns.to_lowercase())
}

/// A client's NATS side: servers, namespace, and the connection made at first use.
pub(crate) struct NatsLink {
    servers: Vec<ServerAddr>,
    namespace: String,
    conn: OnceCell<async_nats::Client>,
}

impl std::fmt::Debug for NatsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsLink")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl NatsLink {
    /// A link to the servers of `bases` (every one `nats://HOST:PORT`, loopback only).
    pub(crate) fn new(bases: &[Url], plain_allowed: bool) -> Result<Self, ClientError> {
        let mut servers = Vec::with_capacity(bases.len());
        for base in bases {
            let refuse = |reason: &'static str| ClientError::PlainHttp {
                url: base.as_str().to_owned(),
                reason,
            };
            if !plain_allowed {
                return Err(refuse(
                    "nats:// has no TLS yet: allow plain transport explicitly (loopback only)",
                ));
            }
            if !crate::client::is_loopback(base) {
                return Err(refuse(
                    "nats:// has no TLS yet: allowed to a loopback host only",
                ));
            }
            let host = base.host_str().unwrap_or_default();
            let port = base.port().unwrap_or(4222);
            let addr = format!("nats://{host}:{port}")
                .parse::<ServerAddr>()
                .map_err(|e| ClientError::InvalidUrl {
                    url: base.as_str().to_owned(),
                    reason: e.to_string(),
                })?;
            servers.push(addr);
        }
        Ok(NatsLink {
            servers,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            conn: OnceCell::new(),
        })
    }

    /// The connection, made at first use; async-nats reconnects it by itself afterwards.
    async fn conn(&self) -> Result<&async_nats::Client, ClientError> {
        self.conn
            .get_or_try_init(|| async {
                async_nats::ConnectOptions::new()
                    .connection_timeout(NATS_CONNECT_TIMEOUT)
                    .connect(self.servers.clone())
                    .await
                    .map_err(|e| ClientError::Nats(format!("connect: {e}")))
            })
            .await
    }

    /// Sends `req` as one NATS request and turns the reply into an HTTP response.
    pub(crate) async fn send(
        &self,
        req: reqwest::Request,
        default_timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let timeout = req.timeout().copied().unwrap_or(default_timeout);
        let url = req.url();
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(METHOD_HEADER, req.method().as_str());
        headers.insert(PATH_HEADER, path.as_str());
        for name in [
            reqwest::header::AUTHORIZATION,
            reqwest::header::CONTENT_TYPE,
        ] {
            if let Some(v) = req.headers().get(&name).and_then(|v| v.to_str().ok()) {
                headers.insert(name.as_str(), v);
            }
        }
        let body = req
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(bytes::Bytes::copy_from_slice)
            .unwrap_or_default();
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(body)
            .timeout(Some(timeout));
        let conn = self.conn().await?;
        let reply = conn
            .send_request(api_subject(&self.namespace), request)
            .await
            .map_err(|e| {
                ClientError::Nats(match e.kind() {
                    async_nats::RequestErrorKind::NoResponders => {
                        "no control-plane replica leads (no responders)".to_owned()
                    }
                    async_nats::RequestErrorKind::TimedOut => {
                        format!("no answer within {} ms", timeout.as_millis())
                    }
                    _ => e.to_string(),
                })
            })?;
        let status = reply
            .headers
            .as_ref()
            .and_then(|h| h.get(STATUS_HEADER))
            .and_then(|v| v.as_str().parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| ClientError::Nats("an answer without a status".into()))?;
        let mut resp = http::Response::new(reply.payload.to_vec());
        *resp.status_mut() = status;
        if let Some(ct) = reply
            .headers
            .as_ref()
            .and_then(|h| h.get(reqwest::header::CONTENT_TYPE.as_str()))
            .and_then(|v| http::HeaderValue::from_str(v.as_str()).ok())
        {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, ct);
        }
        Ok(reqwest::Response::from(resp))
    }

    /// The artifact named `digest` from the object store ([`read_object`]), refused before
    /// reading when the object is larger than `limit`.
    pub(crate) async fn fetch(&self, digest: &str, limit: usize) -> Result<Vec<u8>, ClientError> {
        let js = jetstream::new(self.conn().await?.clone());
        let bucket = format!("{}_{ARTIFACTS_BUCKET}", self.namespace);
        match read_object(&js, &bucket, digest, limit).await {
            Ok(ObjectRead::Bytes(bytes)) => Ok(bytes),
            Ok(ObjectRead::TooLarge { .. }) => Err(ClientError::TooLarge { limit }),
            Ok(ObjectRead::Missing) => Err(ClientError::Status {
                status: StatusCode::NOT_FOUND.as_u16(),
                excerpt: format!("no artifact {digest} in {bucket}"),
            }),
            Err(e) => Err(ClientError::Nats(format!("artifact {digest}: {e}"))),
        }
    }
}

/// What [`read_object`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRead {
    /// No such object (or it was deleted).
    Missing,
    /// Larger than the limit: nothing but its metadata was read.
    TooLarge {
        /// Its size, from its metadata.
        size: usize,
    },
    /// Its bytes.
    Bytes(Vec<u8>),
}

/// Reads object `name` of the object store `bucket` with direct gets: its metadata (the
/// last message on its meta subject), then its chunks in order, served by any replica and
/// **without creating a consumer** (the object store's own `get` creates one per read, and a
/// fleet reading a new file at once meets the servers' consumer limit). An object larger than
/// `limit` is refused from its metadata, before a chunk is read; chunks that add up to more
/// than `limit` or to another size than the metadata says are an error.
pub async fn read_object(
    js: &jetstream::Context,
    bucket: &str,
    name: &str,
    limit: usize,
) -> Result<ObjectRead, String> {
    use base64::Engine as _;
    let stream = js
        .get_stream_no_info(format!("OBJ_{bucket}"))
        .await
        .map_err(|e| format!("object store {bucket}: {e}"))?;
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(name);
    let meta = match stream
        .direct_get_last_for_subject(format!("$O.{bucket}.M.{encoded}"))
        .await
    {
        Ok(m) => m,
        Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => {
            return Ok(ObjectRead::Missing);
        }
        Err(e) => return Err(format!("metadata of {name}: {e}")),
    };
    let info: jetstream::object_store::ObjectInfo =
        serde_json::from_slice(&meta.payload).map_err(|e| format!("metadata of {name}: {e}"))?;
    if info.deleted {
        return Ok(ObjectRead::Missing);
    }
    if info.size > limit {
        return Ok(ObjectRead::TooLarge { size: info.size });
    }
    let chunks = format!("$O.{bucket}.C.{}", info.nuid);
    let mut bytes = Vec::with_capacity(info.size);
    let mut next = None;
    for i in 0..info.chunks {
        let chunk = stream
            .direct_get_next_for_subject(chunks.as_str(), next)
            .await
            .map_err(|e| format!("chunk {i} of {name}: {e}"))?;
        if bytes.len().saturating_add(chunk.payload.len()) > limit {
            return Err(format!("{name}: chunks larger than its metadata says"));
        }
        bytes.extend_from_slice(&chunk.payload);
        next = Some(chunk.sequence.saturating_add(1));
    }
    if bytes.len() != info.size {
        return Err(format!(
            "{name}: {} bytes in its chunks, {} in its metadata",
            bytes.len(),
            info.size
        ));
    }
    Ok(ObjectRead::Bytes(bytes))
}
