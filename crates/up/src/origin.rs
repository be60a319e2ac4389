//! A tiny origin: answers every request `200 ok`, and counts what the edges sent it (requests,
//! and the bot score each carried in `x-rampart-bot-score`), so a demo or a test can see from
//! the origin's side what the edges did.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The header the edge puts the bot score in.
pub const SCORE_HEADER: &str = "x-rampart-bot-score";

/// How long the origin waits after a failed accept.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Slots of the origin's score count: 0 is "no score header", `s` is score `s`.
pub const SCORE_SLOTS: usize = 100;

/// What the origin saw.
#[derive(Debug)]
pub struct OriginCounts {
    requests: AtomicU64,
    scores: [AtomicU64; SCORE_SLOTS],
}

/// A running origin; stopped when dropped.
#[derive(Debug)]
pub struct Origin {
    addr: SocketAddr,
    counts: Arc<OriginCounts>,
    task: JoinHandle<()>,
}

// === impl OriginCounts ===

impl Default for OriginCounts {
    fn default() -> Self {
        OriginCounts {
            requests: AtomicU64::new(0),
            scores: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl OriginCounts {
    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests received per score (slot 0: without a score).
    pub fn scores(&self) -> [u64; SCORE_SLOTS] {
        std::array::from_fn(|i| self.scores.get(i).map_or(0, |c| c.load(Ordering::Relaxed)))
    }

    fn record(&self, score: Option<u8>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let slot = score.map_or(0, |s| usize::from(s.clamp(1, 99)));
        if let Some(c) = self.scores.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// === impl Origin ===

impl Origin {
    /// Listens on `addr` (port 0: any free port) and serves until dropped.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Origin> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(OriginCounts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, usually: wait instead of spinning.
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                };
                let counts = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let counts = counts.clone();
                        async move {
                            let score = req
                                .headers()
                                .get(SCORE_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u8>().ok());
                            counts.record(score);
                            let mut response =
                                Response::new(Full::new(Bytes::from_static(b"ok\n")));
                            *response.status_mut() = StatusCode::OK;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Origin { addr, counts, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it saw.
    pub fn counts(&self) -> &Arc<OriginCounts> {
        &self.counts
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
