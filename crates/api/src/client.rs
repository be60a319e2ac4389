//! A small typed client for the `/v1` API, with timeouts and bounded reads.
//!
//! Every method is one request, cancellation-safe (drop the future to give up), and returns
//! the typed answer or a [`ClientError`] that says whether retrying can help. The edge agent
//! drives [`Client::heartbeat`] from a tokio task:
//!
//! ```no_run
//! # async fn agent(client: rampart_api::Client) -> Result<(), rampart_api::ClientError> {
//! use rampart_api::Heartbeat;
//! let mut beat = Heartbeat::empty(0);
//! loop {
//!     beat.wait_ms = 1_000; // the control plane holds the answer until a change, or 1 s
//!     let answer = client.heartbeat("edge-1", &beat).await?;
//!     if answer.changed {
//!         // fetch answer.desired by digest, apply it, set beat.verdict, apply kill switches
//!     }
//!     beat.seen = Some(answer.etag);
//!     beat.seq += 1;
//! #   break;
//! }
//! # Ok(()) }
//! ```
//!
//! # Whom the client trusts
//! A [`Transport`] says it: `https://` against the web PKI roots, or against one CA file
//! instead of them (`rampart up`'s local CA, an operator's own); `http://` only when
//! [`Transport::plain_http`] allows it, and then only to a loopback host, so a bearer token
//! never crosses a network in clear. Redirects are never followed.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_artifact::Digest;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::artifact::{ArtifactList, ArtifactMeta, DiffView, PublishResult};
use crate::audit::AuditPage;
use crate::error::{ApiError, is_refusal};
use crate::fleet::{ContractList, NodeList, NodeView, RegisterAnswer, Registration};
use crate::heartbeat::{Heartbeat, HeartbeatAnswer};
use crate::identity::{
    ApprovalList, ApprovalView, Approved, Decision, Enrolled, EnrollmentIssued, IssueEnrollment,
    NodeRemoved, RemoveNode,
};
use crate::killswitch::{KillSwitchList, KillSwitchSet};
use crate::limits::{
    CLIENT_CONNECT_TIMEOUT_MS, CLIENT_LONG_POLL_MARGIN_MS, CLIENT_PUBLISH_TIMEOUT_MS,
    CLIENT_REQUEST_TIMEOUT_MS, MAX_ARTIFACT_BODY, MAX_LONG_POLL_MS,
};
use crate::nats_link::NatsLink;
use crate::rollout::{RolloutAction, RolloutCommand, RolloutList, RolloutView, StartRollout};
use crate::routes;

/// The largest JSON answer the client reads (a fleet of thousands of nodes with their
/// contracts fits; a runaway server does not fill the client's memory).
pub const MAX_ANSWER_BODY: usize = 32 * 1024 * 1024;

/// Largest CA file (PEM) a client or a flag reads.
pub const MAX_CA_FILE_BYTES: usize = 256 * 1024;

/// How a client reaches the control plane: whom it trusts over TLS, and whether plain HTTP
/// (loopback only) is allowed. The default trusts the web PKI roots and refuses `http://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// A CA bundle (PEM) trusted *instead of* the web PKI roots (`--ca`, `--control-ca`).
    pub ca_pem: Option<String>,
    /// Whether an `http://` URL is accepted, to a loopback host only (`--plain-http`).
    pub plain_http: bool,
}

// === impl Transport ===

impl Transport {
    /// The transport a binary's flags describe: `--ca FILE` (read now, so a missing or
    /// oversized file stops the start) and `--plain-http`.
    pub fn from_flags(
        ca: Option<&std::path::Path>,
        plain_http: bool,
    ) -> Result<Self, rampart_host::file::Error> {
        let ca_pem = ca
            .map(|p| rampart_host::file::read_text(p, MAX_CA_FILE_BYTES))
            .transpose()?;
        Ok(Transport { ca_pem, plain_http })
    }
}

/// A client of one control plane: one URL, or the replicas of an HA control plane
/// (`URL,URL,…`). Requests go to the current one; a connection refused moves on to the next,
/// and a follower's `503` naming the leader moves to the leader (each request is sent again
/// at most once per replica, and only when nothing was done: no connection, or a follower's
/// refusal).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Every replica given, in order.
    bases: Arc<[Url]>,
    /// Where requests go now (shared by clones: one learns the leader for all).
    current: Arc<std::sync::Mutex<Url>>,
    plain_http: bool,
    token: Option<String>,
    /// The NATS link when the URLs are `nats://` (see [`crate::nats_link`]).
    nats: Option<Arc<NatsLink>>,
}

/// The most control-plane URLs one client takes (`URL,URL,…`).
pub const MAX_CONTROL_URLS: usize = 8;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL (or a path joined to it) is not a valid http(s) URL.
    #[error("invalid control-plane URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// An `http://` URL where plain HTTP is not allowed, or to a host that is not loopback.
    #[error("refusing plain HTTP to {url:?}: {reason}")]
    PlainHttp {
        /// The URL given.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// The CA bundle holds no usable certificate.
    #[error("invalid CA bundle: {0}")]
    Ca(String),
    /// Could not connect (a certificate not signed by the trusted CA included), timed out,
    /// or the connection broke. The text carries every cause.
    #[error("control plane unreachable: {}", causes(.0))]
    Transport(#[source] reqwest::Error),
    /// The control plane answered with an error body.
    #[error("control plane answered {status}: {error}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body.
        error: ApiError,
    },
    /// The control plane (or something in between) answered a status without an error body.
    #[error("unexpected answer {status}: {excerpt}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        excerpt: String,
    },
    /// The answer is not the JSON expected.
    #[error("cannot read the answer: {0}")]
    Decode(#[source] serde_json::Error),
    /// The answer is larger than the client reads.
    #[error("answer larger than {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// Over NATS: no connection, no replica leading (no responders), or no answer in time.
    #[error("control plane over NATS: {0}")]
    Nats(String),
}

// === impl Client ===

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("Client")
            .field("base", &self.base().as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the control plane at `base_url`, sending `token` as a bearer token on
    /// every request when given (reads work without one): `https://` against the web PKI
    /// roots, or `http://` to a loopback host (`http://127.0.0.1:7000`, what tests and a
    /// local `--plain-http` control plane use). Binaries build theirs with
    /// [`Client::with_transport`], so that plain HTTP is an operator's explicit flag.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let loopback = Transport {
            ca_pem: None,
            plain_http: true,
        };
        Self::with_transport(base_url, token, &loopback)
    }

    /// A client of the control plane at `base_url` reached as `transport` says (see the
    /// module docs): a CA replaces the web PKI roots, and `http://` needs
    /// [`Transport::plain_http`] and a loopback host.
    pub fn with_transport(
        base_url: &str,
        token: Option<String>,
        transport: &Transport,
    ) -> Result<Self, ClientError> {
        let over_nats = base_url.trim_start().starts_with("nats://");
        let bases: Vec<Url> = base_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                if over_nats {
                    parse_nats_base(u)
                } else {
                    parse_base(u, transport.plain_http)
                }
            })
            .collect::<Result<_, _>>()?;
        let Some(base) = bases.first().cloned() else {
            return Err(ClientError::InvalidUrl {
                url: base_url.to_owned(),
                reason: "no URL".into(),
            });
        };
        if bases.len() > MAX_CONTROL_URLS {
            return Err(ClientError::InvalidUrl {
                url: base_url.to_owned(),
                reason: format!("more than {MAX_CONTROL_URLS} URLs"),
            });
        }
        if bases.iter().any(|b| b.scheme() != base.scheme()) {
            return Err(ClientError::InvalidUrl {
                url: base_url.to_owned(),
                reason: "every URL must have the same scheme".into(),
            });
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(CLIENT_CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS))
            // A redirect could lead the token somewhere else, or to plain HTTP.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(base.scheme() == "https");
        if let Some(pem) = &transport.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ClientError::Ca(causes(&e)))?;
            if certs.is_empty() {
                return Err(ClientError::Ca("no certificate in the PEM".into()));
            }
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(ClientError::Transport)?;
        let nats = if over_nats {
            Some(Arc::new(NatsLink::new(&bases, transport.plain_http)?))
        } else {
            None
        };
        Ok(Client {
            http,
            current: Arc::new(std::sync::Mutex::new(base)),
            bases: bases.into(),
            plain_http: transport.plain_http,
            token,
            nats,
        })
    }

    /// The same control plane (and connection pool) with another bearer token: a node's
    /// credential after enrollment, or a bootstrap token for it.
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client {
            http: self.http.clone(),
            bases: Arc::clone(&self.bases),
            current: Arc::clone(&self.current),
            plain_http: self.plain_http,
            token,
            nats: self.nats.clone(),
        }
    }

    /// The base URL requests go to now (the leader, once a follower named it).
    pub fn base_url(&self) -> String {
        self.base().as_str().to_owned()
    }

    fn base(&self) -> Url {
        match self.current.lock() {
            Ok(u) => u.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_base(&self, url: Url) {
        match self.current.lock() {
            Ok(mut u) => *u = url,
            Err(poisoned) => *poisoned.into_inner() = url,
        }
    }

    /// Sends `req`; when nothing was done (the connection was refused, or a follower answered
    /// 503 naming the leader), sends it again to the next replica or to the leader, each at
    /// most once, and remembers where it succeeded.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        if let Some(link) = &self.nats {
            // NATS routes the request to the leader: nothing to follow here.
            let request = req.build().map_err(ClientError::Transport)?;
            return link
                .send(request, Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS))
                .await;
        }
        let spare = req.try_clone();
        let first = req.send().await;
        let Some(spare) = spare else {
            return first.map_err(ClientError::Transport);
        };
        let now = self.base();
        match first {
            Err(e) if e.is_connect() && self.bases.len() > 1 => {
                let mut last = e;
                let at = self.bases.iter().position(|b| *b == now).unwrap_or(0);
                let others = self
                    .bases
                    .iter()
                    .cycle()
                    .skip(at + 1)
                    .take(self.bases.len() - 1);
                for other in others {
                    let Some(again) = spare.try_clone() else {
                        break;
                    };
                    match self.resend(again, &now, other).await {
                        Ok(resp) => {
                            self.set_base(other.clone());
                            return Ok(resp);
                        }
                        Err(e) if e.is_connect() => last = e,
                        Err(e) => return Err(ClientError::Transport(e)),
                    }
                }
                Err(ClientError::Transport(last))
            }
            Err(e) => Err(ClientError::Transport(e)),
            Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                let status = resp.status();
                let body = read_bounded(resp, MAX_ANSWER_BODY).await?;
                let error = error_from(status, &body);
                let leader = error
                    .api()
                    .and_then(|a| a.leader.as_deref())
                    .and_then(|l| parse_base(l, self.plain_http).ok())
                    .filter(|l| *l != now && l.scheme() == now.scheme());
                let Some(leader) = leader else {
                    return Err(error);
                };
                let resp = self
                    .resend(spare, &now, &leader)
                    .await
                    .map_err(ClientError::Transport)?;
                self.set_base(leader);
                Ok(resp)
            }
            Ok(resp) => Ok(resp),
        }
    }

    /// `req` (built against `from`) sent to the same path at `to`.
    async fn resend(
        &self,
        req: reqwest::RequestBuilder,
        from: &Url,
        to: &Url,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = req.build()?;
        let url = request.url().as_str();
        let rest = url.strip_prefix(from.as_str()).unwrap_or(url);
        if let Ok(moved) = join_base(to, rest) {
            *request.url_mut() = moved;
        }
        self.http.execute(request).await
    }

    /// Publishes a signed feature file (the envelope's bytes, as written by
    /// `rampart artifact sign`).
    pub async fn publish(&self, signed: Vec<u8>) -> Result<PublishResult, ClientError> {
        let req = self
            .request(Method::POST, routes::ARTIFACTS)?
            .timeout(Duration::from_millis(CLIENT_PUBLISH_TIMEOUT_MS))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(signed);
        self.json(req).await
    }

    /// The exact signed bytes of an artifact. The caller verifies them (the edge does, with
    /// its own keys and contract): the control plane is not trusted for content.
    pub async fn fetch(&self, digest: &Digest) -> Result<Vec<u8>, ClientError> {
        self.fetch_at_most(digest, MAX_ARTIFACT_BODY).await
    }

    /// [`fetch`](Self::fetch), refusing more than `limit` bytes before reading them (an edge
    /// passes `wire_limit` of its own contract: check before parse, at the first hop).
    pub async fn fetch_at_most(
        &self,
        digest: &Digest,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        if let Some(link) = &self.nats {
            return link
                .fetch(&digest.to_string(), limit.min(MAX_ARTIFACT_BODY))
                .await;
        }
        let req = self.request(Method::GET, &routes::artifact(digest))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        let body = read_bounded(resp, limit.min(MAX_ARTIFACT_BODY)).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(error_from(status, &body))
        }
    }

    /// Stored artifacts, newest first.
    pub async fn artifacts(&self, limit: usize) -> Result<ArtifactList, ClientError> {
        let path = format!("{}?limit={limit}", routes::ARTIFACTS);
        self.json(self.request(Method::GET, &path)?).await
    }

    /// What the control plane knows about an artifact.
    pub async fn artifact_meta(&self, digest: &Digest) -> Result<ArtifactMeta, ClientError> {
        self.json(self.request(Method::GET, &routes::artifact_meta(digest))?)
            .await
    }

    /// The difference of `digest` from `against` (default: the previous version stored).
    pub async fn diff(
        &self,
        digest: &Digest,
        against: Option<&Digest>,
    ) -> Result<DiffView, ClientError> {
        let mut path = routes::artifact_diff(digest);
        if let Some(a) = against {
            path = format!("{path}?against={a}");
        }
        self.json(self.request(Method::GET, &path)?).await
    }

    /// Registers (or re-registers) a node.
    pub async fn register(&self, reg: &Registration) -> Result<RegisterAnswer, ClientError> {
        self.json(self.request(Method::POST, routes::NODES)?.json(reg))
            .await
    }

    /// Sends a heartbeat and waits for the answer: at once when the node's desired state
    /// differs from `beat.seen`, else after at most `beat.wait_ms` (clamped to
    /// [`MAX_LONG_POLL_MS`]). The request's timeout covers the wait.
    pub async fn heartbeat(
        &self,
        node: &str,
        beat: &Heartbeat,
    ) -> Result<HeartbeatAnswer, ClientError> {
        let wait = beat.wait_ms.min(MAX_LONG_POLL_MS);
        let timeout = Duration::from_millis(wait.saturating_add(CLIENT_LONG_POLL_MARGIN_MS));
        let req = self
            .request(Method::POST, &routes::heartbeat(node))?
            .timeout(timeout)
            .json(beat);
        self.json(req).await
    }

    /// The fleet.
    pub async fn nodes(&self) -> Result<NodeList, ClientError> {
        self.json(self.request(Method::GET, routes::NODES)?).await
    }

    /// One node.
    pub async fn node(&self, node: &str) -> Result<NodeView, ClientError> {
        self.json(self.request(Method::GET, &routes::node(node))?)
            .await
    }

    /// Starts a rollout; a break-glass start answers the approval a second admin must give.
    pub async fn rollout_start(
        &self,
        start: &StartRollout,
    ) -> Result<Decision<RolloutView>, ClientError> {
        self.decision(self.request(Method::POST, routes::ROLLOUTS)?.json(start))
            .await
    }

    /// One rollout.
    pub async fn rollout_status(&self, id: u64) -> Result<RolloutView, ClientError> {
        self.json(self.request(Method::GET, &routes::rollout(id))?)
            .await
    }

    /// Rollouts, newest first.
    pub async fn rollouts(&self, limit: usize) -> Result<RolloutList, ClientError> {
        let path = format!("{}?limit={limit}", routes::ROLLOUTS);
        self.json(self.request(Method::GET, &path)?).await
    }

    /// An operator command on a rollout.
    pub async fn rollout_command(
        &self,
        id: u64,
        command: RolloutCommand,
        reason: Option<String>,
    ) -> Result<RolloutView, ClientError> {
        let body = RolloutAction {
            reason,
            mark_bad: false,
        };
        let req = self
            .request(Method::POST, &routes::rollout_command(id, command))?
            .json(&body);
        self.json(req).await
    }

    /// Promotes the current wave now (skips the rest of its bake; gates still apply).
    pub async fn rollout_promote(
        &self,
        id: u64,
        reason: Option<String>,
    ) -> Result<RolloutView, ClientError> {
        self.rollout_command(id, RolloutCommand::Promote, reason)
            .await
    }

    /// Pauses a rollout where it stands.
    pub async fn rollout_pause(
        &self,
        id: u64,
        reason: Option<String>,
    ) -> Result<RolloutView, ClientError> {
        self.rollout_command(id, RolloutCommand::Pause, reason)
            .await
    }

    /// Resumes a paused rollout.
    pub async fn rollout_resume(
        &self,
        id: u64,
        reason: Option<String>,
    ) -> Result<RolloutView, ClientError> {
        self.rollout_command(id, RolloutCommand::Resume, reason)
            .await
    }

    /// Stops a rollout; nodes already on the new version stay there.
    pub async fn rollout_abort(
        &self,
        id: u64,
        reason: Option<String>,
    ) -> Result<RolloutView, ClientError> {
        self.rollout_command(id, RolloutCommand::Abort, reason)
            .await
    }

    /// Stops a rollout and moves every node it touched back to the previous version;
    /// `mark_bad` also refuses the digest from now on.
    pub async fn rollout_rollback(
        &self,
        id: u64,
        reason: Option<String>,
        mark_bad: bool,
    ) -> Result<RolloutView, ClientError> {
        let body = RolloutAction { reason, mark_bad };
        let req = self
            .request(
                Method::POST,
                &routes::rollout_command(id, RolloutCommand::Rollback),
            )?
            .json(&body);
        self.json(req).await
    }

    /// The consumer contracts every publish is checked against.
    pub async fn contracts(&self) -> Result<ContractList, ClientError> {
        self.json(self.request(Method::GET, routes::CONTRACTS)?)
            .await
    }

    /// Sets a kill switch; answers every stored setting, or, for a fleet-wide switch, the
    /// approval a second admin must give.
    pub async fn killswitch_set(
        &self,
        set: &KillSwitchSet,
    ) -> Result<Decision<KillSwitchList>, ClientError> {
        self.decision(self.request(Method::PUT, routes::KILLSWITCHES)?.json(set))
            .await
    }

    /// Issues a one-time bootstrap token for a node (admin).
    pub async fn enrollment_issue(
        &self,
        req: &IssueEnrollment,
    ) -> Result<EnrollmentIssued, ClientError> {
        self.json(self.request(Method::POST, routes::ENROLLMENTS)?.json(req))
            .await
    }

    /// Trades this client's token (a bootstrap token) for `node`'s own credential.
    pub async fn enroll(&self, node: &str) -> Result<Enrolled, ClientError> {
        self.json(
            self.request(Method::POST, &routes::node_enroll(node))?
                .json(&serde_json::json!({})),
        )
        .await
    }

    /// Removes a node with its contract and credential (admin).
    pub async fn node_remove(&self, node: &str, reason: &str) -> Result<NodeRemoved, ClientError> {
        let body = RemoveNode {
            reason: reason.to_owned(),
        };
        self.json(
            self.request(Method::DELETE, &routes::node(node))?
                .json(&body),
        )
        .await
    }

    /// The requests waiting for a second admin.
    pub async fn approvals(&self) -> Result<ApprovalList, ClientError> {
        self.json(self.request(Method::GET, routes::APPROVALS)?)
            .await
    }

    /// Approves a pending request (an admin other than the one who asked).
    pub async fn approve(&self, id: u64) -> Result<Approved, ClientError> {
        self.json(
            self.request(Method::POST, &routes::approval(id))?
                .json(&serde_json::json!({})),
        )
        .await
    }

    /// Every stored kill-switch setting.
    pub async fn killswitches(&self) -> Result<KillSwitchList, ClientError> {
        self.json(self.request(Method::GET, routes::KILLSWITCHES)?)
            .await
    }

    /// A page of the audit log after sequence number `after` (0: from the start).
    pub async fn audit(&self, after: u64, limit: usize) -> Result<AuditPage, ClientError> {
        let path = format!("{}?after={after}&limit={limit}", routes::AUDIT);
        self.json(self.request(Method::GET, &path)?).await
    }

    /// `GET /v1/health`: the control plane's state and counters (nodes, rollouts, refusals,
    /// TLS, epoch and sequence, trust), as JSON.
    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.json(self.request(Method::GET, routes::HEALTH)?).await
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, ClientError> {
        // Join onto the base's path, so a control plane behind a prefix (`https://x/rampart/`)
        // works: strip the leading `/` of our absolute paths.
        let url = join_base(&self.base(), path).map_err(|reason| ClientError::InvalidUrl {
            url: path.to_owned(),
            reason,
        })?;
        let mut req = self.http.request(method, url);
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        Ok(req)
    }

    /// A write answered 202 with an approval, or 2xx with its result.
    async fn decision<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Decision<T>, ClientError> {
        let resp = self.send(req).await?;
        let status = resp.status();
        let body = read_bounded(resp, MAX_ANSWER_BODY).await?;
        if status == StatusCode::ACCEPTED {
            serde_json::from_slice::<ApprovalView>(&body)
                .map(Decision::Pending)
                .map_err(ClientError::Decode)
        } else if status.is_success() {
            serde_json::from_slice(&body)
                .map(Decision::Done)
                .map_err(ClientError::Decode)
        } else {
            Err(error_from(status, &body))
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send(req).await?;
        let status = resp.status();
        let body = read_bounded(resp, MAX_ANSWER_BODY).await?;
        if status.is_success() {
            serde_json::from_slice(&body).map_err(ClientError::Decode)
        } else {
            Err(error_from(status, &body))
        }
    }
}

// === impl ClientError ===

impl ClientError {
    /// Whether the same request may succeed later: the control plane was unreachable, busy,
    /// or failed on its side. A 4xx will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Nats(_) => true,
            ClientError::Api { status, .. } | ClientError::Status { status, .. } => {
                *status >= 500 || *status == 429
            }
            ClientError::InvalidUrl { .. }
            | ClientError::PlainHttp { .. }
            | ClientError::Ca(_)
            | ClientError::Decode(_)
            | ClientError::TooLarge { .. } => false,
        }
    }

    /// Whether the control plane refused the request itself ([`is_refusal`]: 422, 409, 413,
    /// with its error body): the input is at fault. An answer without the API's error body
    /// came from something in between and is not a refusal.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Api { status, .. } if is_refusal(*status))
    }

    /// The API error body, when the control plane sent one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One control-plane URL: http(s), usable as a base, plain HTTP only as allowed.
fn parse_base(url: &str, plain_http: bool) -> Result<Url, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let base = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(invalid("must be an http:// or https:// URL".into()));
    }
    check_plain_http(&base, plain_http)?;
    Ok(base)
}

/// One `nats://HOST:PORT` server of a control plane reached over NATS.
fn parse_nats_base(url: &str) -> Result<Url, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let with_scheme = if url.starts_with("nats://") {
        url.to_owned()
    } else {
        format!("nats://{url}")
    };
    let base = Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
    if base.host_str().is_none_or(str::is_empty) || base.cannot_be_a_base() {
        return Err(invalid("expected nats://HOST:PORT".into()));
    }
    Ok(base)
}

/// `path` under `base` (a control plane behind a prefix, `https://x/rampart/`, works: the
/// leading `/` of our absolute paths is dropped).
fn join_base(base: &Url, path: &str) -> Result<Url, String> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    base.join(path.trim_start_matches('/'))
        .map_err(|e| e.to_string())
}

/// Refuses an `http://` base unless `allowed` and its host is loopback.
fn check_plain_http(base: &Url, allowed: bool) -> Result<(), ClientError> {
    if base.scheme() != "http" {
        return Ok(());
    }
    let refuse = |reason| {
        Err(ClientError::PlainHttp {
            url: base.as_str().to_owned(),
            reason,
        })
    };
    if !allowed {
        return refuse("use https://, or allow plain HTTP explicitly (loopback only)");
    }
    if !is_loopback(base) {
        return refuse(
            "plain HTTP is allowed to a loopback host only (127.0.0.0/8, ::1, localhost)",
        );
    }
    Ok(())
}

/// Whether the URL's host is a loopback address (or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// An error and every cause under it, on one line (a TLS failure hides three levels down).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Reads a body, refusing it as soon as it passes `limit` (the length header is checked
/// first, and the count again while reading).
async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, ClientError> {
    if resp
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit))
    {
        return Err(ClientError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ClientError::Transport)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(ClientError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_from(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(error) => ClientError::Api {
            status: status.as_u16(),
            error,
        },
        Err(_) => ClientError::Status {
            status: status.as_u16(),
            excerpt: String::from_utf8_lossy(body.get(..200).unwrap_or(body)).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(Client::new("http://127.0.0.1:7000", None).is_ok());
        assert!(
            Client::new("http://h:1", None).is_err(),
            "plain, not loopback"
        );
        assert!(Client::new("https://control.example/rampart", None).is_ok());
        assert!(matches!(
            Client::new("ftp://x", None),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(Client::new("not a url", None).is_err());
    }

    #[test]
    fn plain_http_needs_the_flag_and_a_loopback_host() {
        let strict = Transport::default();
        let plain = Transport {
            ca_pem: None,
            plain_http: true,
        };
        assert!(Client::with_transport("https://control.example", None, &strict).is_ok());
        for url in ["http://127.0.0.1:1", "http://[::1]:1", "http://localhost:1"] {
            assert!(matches!(
                Client::with_transport(url, Some("t".into()), &strict),
                Err(ClientError::PlainHttp { .. })
            ));
            assert!(
                Client::with_transport(url, Some("t".into()), &plain).is_ok(),
                "{url}"
            );
        }
        for url in [
            "http://10.0.0.1:1",
            "http://control.example",
            "http://127.0.0.1.nip.io",
        ] {
            let e = Client::with_transport(url, Some("t".into()), &plain).unwrap_err();
            assert!(matches!(e, ClientError::PlainHttp { .. }), "{url}");
            assert!(e.to_string().contains("loopback"));
            // `new` allows loopback only as well.
            assert!(Client::new(url, Some("t".into())).is_err(), "{url}");
        }
    }

    #[test]
    fn a_ca_bundle_without_a_certificate_is_refused() {
        let bad = Transport {
            ca_pem: Some("not a pem".into()),
            plain_http: false,
        };
        assert!(matches!(
            Client::with_transport("https://h:1", None, &bad),
            Err(ClientError::Ca(_))
        ));
    }

    #[test]
    fn paths_join_onto_a_prefixed_base() {
        let c = Client::new("http://127.0.0.1:1/rampart", None).unwrap();
        let req = c
            .request(Method::GET, "/v1/nodes")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(req.url().as_str(), "http://127.0.0.1:1/rampart/v1/nodes");
        let c = Client::new("http://127.0.0.1:1", None).unwrap();
        let req = c
            .request(Method::GET, "/v1/nodes")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(req.url().as_str(), "http://127.0.0.1:1/v1/nodes");
    }

    #[test]
    fn the_token_goes_in_the_header_and_never_in_debug() {
        let c = Client::new("http://127.0.0.1:1", Some("s3cret".into())).unwrap();
        let req = c
            .request(Method::GET, "/v1/nodes")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn errors_say_whether_to_retry() {
        let api = error_from(
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"error":"invalid","message":"m","issues":[{"code":"too_many_features","message":"x"}]}"#,
        );
        assert!(!api.is_retryable());
        assert!(api.is_refusal());
        assert_eq!(api.api().unwrap().issue_codes(), vec!["too_many_features"]);
        let proxy = error_from(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(proxy.is_retryable());
        assert!(!proxy.is_refusal());
        let proxy_too_large = error_from(StatusCode::PAYLOAD_TOO_LARGE, b"<html>413</html>");
        assert!(
            !proxy_too_large.is_refusal(),
            "not the control plane's answer"
        );
        let unauthorized = error_from(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"unauthorized","message":"m"}"#,
        );
        assert!(!unauthorized.is_refusal());
        assert_eq!(proxy.status(), Some(502));
    }
}
