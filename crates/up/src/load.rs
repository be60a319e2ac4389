//! Realistic traffic against the edges at a bounded rate: the labelled requests of
//! `rampart-traffic` (real browsers and bots from the embedded sample), spread round-robin
//! over the edges' proxy addresses, with every answer counted from the client's side.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_traffic::{Mix, ProfileError, Profiles, Traffic};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// How often the sender wakes to send what the rate allows.
pub const TICK: Duration = Duration::from_millis(10);

/// Requests in flight at once; past it, requests are skipped (and counted), so a stuck edge
/// never makes the load pile up.
pub const MAX_IN_FLIGHT: usize = 256;

/// Time one request may take, end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Highest rate accepted, requests per second.
pub const MAX_RATE: u32 = 20_000;

/// Loopback source addresses the requests come from (127.0.1.1 and up; on Linux every
/// 127/8 address is local). Each generated client address maps to one of them, so the
/// edges' per-client rate features see many clients, as they would in front of real
/// traffic, instead of one client sending everything.
pub const SOURCES: u8 = 64;

/// What the clients saw.
#[derive(Debug, Default)]
pub struct LoadStats {
    sent: AtomicU64,
    ok: AtomicU64,
    blocked: AtomicU64,
    errors_5xx: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// A snapshot of [`LoadStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTotals {
    /// Requests sent.
    pub sent: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Answered 403 (a `--block-below` rule).
    pub blocked: u64,
    /// Answered 5xx.
    pub errors_5xx: u64,
    /// Answered anything else (1xx, 3xx, a 4xx other than 403): the traffic asks for none
    /// of these, so each is a failure too.
    pub other: u64,
    /// No answer: refused, reset, timed out.
    pub failed: u64,
    /// Not sent: too many in flight.
    pub skipped: u64,
}

/// What to send: where, how fast, how many, and one optional extra header.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Edges' proxy addresses, served round-robin.
    pub targets: Vec<SocketAddr>,
    /// Requests per second (at most [`MAX_RATE`]).
    pub rate: u32,
    /// The seed of the request stream.
    pub seed: u64,
    /// Requests to send in all (sent or skipped); the load ends after them.
    pub max_requests: u64,
    /// A header added to every request (a drill's fault trigger, say).
    pub header: Option<(http::HeaderName, http::HeaderValue)>,
}

/// Running traffic; stopped when dropped.
#[derive(Debug)]
pub struct Load {
    stats: Arc<LoadStats>,
    permits: Arc<Semaphore>,
    task: JoinHandle<()>,
}

// === impl LoadStats ===

impl LoadStats {
    /// The counts now.
    pub fn totals(&self) -> LoadTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LoadTotals {
            sent: get(&self.sent),
            ok: get(&self.ok),
            blocked: get(&self.blocked),
            errors_5xx: get(&self.errors_5xx),
            other: get(&self.other),
            failed: get(&self.failed),
            skipped: get(&self.skipped),
        }
    }
}

// === impl LoadTotals ===

impl LoadTotals {
    /// Requests that failed for the client: 5xx, an unexpected status, or no answer.
    pub fn failures(&self) -> u64 {
        self.errors_5xx
            .saturating_add(self.other)
            .saturating_add(self.failed)
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &LoadTotals) -> LoadTotals {
        LoadTotals {
            sent: self.sent.saturating_sub(earlier.sent),
            ok: self.ok.saturating_sub(earlier.ok),
            blocked: self.blocked.saturating_sub(earlier.blocked),
            errors_5xx: self.errors_5xx.saturating_sub(earlier.errors_5xx),
            other: self.other.saturating_sub(earlier.other),
            failed: self.failed.saturating_sub(earlier.failed),
            skipped: self.skipped.saturating_sub(earlier.skipped),
        }
    }
}

// === impl Load ===

impl Load {
    /// Sends `rate` requests a second (at most [`MAX_RATE`]) over `targets`, round-robin,
    /// from the stream seeded with `seed`, until dropped.
    pub fn start(targets: Vec<SocketAddr>, rate: u32, seed: u64) -> Result<Load, ProfileError> {
        Load::start_spec(LoadSpec {
            targets,
            rate,
            seed,
            max_requests: u64::MAX,
            header: None,
        })
    }

    /// Sends what `spec` says until `spec.max_requests` or until dropped.
    pub fn start_spec(spec: LoadSpec) -> Result<Load, ProfileError> {
        let LoadSpec {
            targets,
            rate,
            seed,
            max_requests,
            header,
        } = spec;
        let profiles = Profiles::embedded()?;
        let stats = Arc::new(LoadStats::default());
        let shared = stats.clone();
        let rate = rate.min(MAX_RATE);
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let held = permits.clone();
        let task = tokio::spawn(async move {
            if targets.is_empty() || rate == 0 {
                return;
            }
            let clients: Vec<Client<HttpConnector, Empty<Bytes>>> =
                (0..SOURCES).map(source_client).collect();
            let mut traffic = Traffic::new(&profiles, Mix::default(), seed);
            let start = tokio::time::Instant::now();
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut sent: u64 = 0;
            let mut next_target = 0usize;
            loop {
                interval.tick().await;
                let due = u64::try_from(start.elapsed().as_millis() * u128::from(rate) / 1000)
                    .unwrap_or(u64::MAX)
                    .min(max_requests);
                if sent >= max_requests {
                    return;
                }
                while sent < due {
                    sent += 1;
                    let Some(labelled) = traffic.next_request() else {
                        return;
                    };
                    let Some(target) = targets.get(next_target % targets.len()).copied() else {
                        return;
                    };
                    next_target = next_target.wrapping_add(1);
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        shared.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let r = labelled.request;
                    let Some(client) = clients.get(source_of(r.client)).cloned() else {
                        return;
                    };
                    let uri = match &r.query {
                        Some(q) => format!("http://{target}{}?{q}", r.path),
                        None => format!("http://{target}{}", r.path),
                    };
                    let mut builder = Request::builder()
                        .method(r.method)
                        .uri(uri)
                        .version(Version::HTTP_11);
                    if let Some(headers) = builder.headers_mut() {
                        *headers = r.headers;
                        if let Some((name, value)) = &header {
                            headers.insert(name.clone(), value.clone());
                        }
                    }
                    let Ok(request) = builder.body(Empty::<Bytes>::new()) else {
                        shared.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let stats = shared.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
                            let response = client.request(request).await?;
                            let status = response.status();
                            // Read the body so the connection goes back to the pool.
                            let _ = response.into_body().collect().await;
                            Ok::<_, hyper_util::client::legacy::Error>(status)
                        })
                        .await;
                        let counter = match answered {
                            Ok(Ok(s)) if s.is_server_error() => &stats.errors_5xx,
                            Ok(Ok(s)) if s == http::StatusCode::FORBIDDEN => &stats.blocked,
                            Ok(Ok(s)) if s.is_success() => &stats.ok,
                            Ok(Ok(_)) => &stats.other,
                            Ok(Err(_)) | Err(_) => &stats.failed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }
        });
        Ok(Load {
            stats,
            permits: held,
            task,
        })
    }

    /// The counts.
    pub fn stats(&self) -> &Arc<LoadStats> {
        &self.stats
    }

    /// Sends no more requests; those in flight finish (see [`Load::is_done`]).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Whether every request is sent (or skipped) and answered (or failed): a bounded load
    /// is over. A permit is taken before a request is handed to its task and given back
    /// after its answer is counted, so all permits back means nothing is in flight.
    pub fn is_done(&self) -> bool {
        self.task.is_finished() && self.permits.available_permits() == MAX_IN_FLIGHT
    }
}

/// A client whose connections leave from loopback source `i` (Linux), or from the default
/// address elsewhere.
fn source_client(i: u8) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    if cfg!(target_os = "linux") {
        connector.set_local_address(Some(IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            1,
            i.saturating_add(1),
        ))));
    }
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The source a generated client address sends from.
fn source_of(client: IpAddr) -> usize {
    let n = match client {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => (u128::from(v6) % u128::from(u32::MAX)) as u32,
    };
    usize::try_from(n % u32::from(SOURCES)).unwrap_or(0)
}

impl Drop for Load {
    fn drop(&mut self) {
        self.task.abort();
    }
}
