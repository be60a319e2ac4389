//! Connections to the origin: each client connection leases one keep-alive origin
//! connection for as long as it lives, and gives it back to its worker's idle pool when it
//! closes.
//!
//! # Why not hyper-util's pooled client
//! The pooled client looks a connection up in a shared map (hashing the scheme and
//! authority) and hands it back when each response body ends, on every request. Measured
//! with `scripts/bench-edge.sh` (the `bare-*` rows), that bookkeeping cost about 10% of
//! the proxy's throughput. A client connection's requests come one after another (HTTP/1.1
//! without pipelining, as hyper's server serves them), so the origin connection that
//! served one request is free for the next by the time it arrives: the lease needs no map,
//! and the pool is touched only when client connections open and close.
//!
//! # Failure
//! A leased connection the origin has closed is noticed before use and replaced. A request
//! that hyper could not write at all (the connection closed just before) comes back whole
//! and is tried once more on a fresh connection; anything else is the caller's 502.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An origin connection ready to carry requests (with the client's body type).
pub(crate) type Sender<B = Incoming> = SendRequest<B>;

/// Why no response came from the origin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OriginError {
    /// TCP connect failed or timed out.
    #[error("connect to {addr}: {reason}")]
    Connect {
        /// The origin address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

// === impl OriginError ===

impl OriginError {
    /// Whether the exchange failed because the client's own request body broke while it
    /// streamed (hyper's "user body" error caused by the incoming body's error: an invalid
    /// chunk size, a connection cut mid-body), not because of the origin.
    pub(crate) fn is_client_body(&self) -> bool {
        match self {
            OriginError::Http(e) => {
                e.is_user()
                    && std::error::Error::source(e)
                        .is_some_and(|s| s.downcast_ref::<hyper::Error>().is_some())
            }
            OriginError::Connect { .. } => false,
        }
    }
}

/// One worker's idle origin connections (a worker is single-threaded: the lock is never
/// contended, it only makes the type `Sync`).
#[derive(Debug)]
pub(crate) struct OriginPool<B = Incoming> {
    /// `host:port` to connect to.
    addr: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle<B>>>,
}

#[derive(Debug)]
struct Idle<B> {
    sender: Sender<B>,
    since: Instant,
}

// === impl OriginPool ===

impl<B> OriginPool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub(crate) fn new(
        addr: String,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        OriginPool {
            addr,
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Idle connections held now.
    #[cfg(test)]
    pub(crate) fn idle_len(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Sends `request` on `lease` (or a pooled or new connection when the lease is empty or
    /// closed); on success the connection stays in `lease` for the client's next request.
    pub(crate) async fn send(
        &self,
        lease: &mut Option<Sender<B>>,
        request: Request<B>,
    ) -> Result<Response<Incoming>, OriginError> {
        // The lease's connection finished the client's previous exchange before this
        // request was read, so it is ready at once unless the origin closed it.
        let leased = match lease.take() {
            Some(mut s) if !s.is_closed() => s.ready().await.ok().map(|()| s),
            _ => None,
        };
        let mut sender = match leased.or_else(|| self.checkout()) {
            Some(s) => s,
            None => Box::pin(self.connect()).await?,
        };
        let request = match sender.try_send_request(request).await {
            Ok(response) => {
                *lease = Some(sender);
                return Ok(response);
            }
            Err(mut e) => match e.take_message() {
                // Never written: the connection was closing. Once more on a new one.
                Some(request) => request,
                None => return Err(OriginError::Http(e.into_error())),
            },
        };
        let mut sender = Box::pin(self.connect()).await?;
        let response = sender.send_request(request).await?;
        *lease = Some(sender);
        Ok(response)
    }

    /// Gives a client connection's origin connection back, if it can still carry requests.
    pub(crate) fn give_back(&self, sender: Sender<B>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// The most recently idle connection that is still open and ready; stale ones go.
    fn checkout(&self) -> Option<Sender<B>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        // Oldest first: they are the ones past the idle timeout.
        idle.retain(|i| !i.sender.is_closed() && now.duration_since(i.since) < self.idle_timeout);
        while let Some(i) = idle.pop() {
            if i.sender.is_ready() {
                return Some(i.sender);
            }
            // Open but busy (a response body a closed client left unread): not reusable.
        }
        None
    }

    /// A new connection, its task spawned on the current runtime. Callers box this future:
    /// it is large and rare, and inline it would make every request's future (moved a few
    /// times per request) larger.
    async fn connect(&self) -> Result<Sender<B>, OriginError> {
        let failed = |reason: String| OriginError::Connect {
            addr: self.addr.clone(),
            reason,
        };
        let tcp = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(self.addr.as_str()),
        )
        .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => {
                return Err(failed(format!(
                    "timed out after {:?}",
                    self.connect_timeout
                )));
            }
        };
        // Small requests must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "origin connection ended with an error");
            }
        });
        sender.ready().await?;
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty, Full};
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;

    type Pool = OriginPool<Empty<Bytes>>;

    /// An origin that counts the connections it accepts; with `close`, it ends each
    /// connection after one response.
    async fn origin(close: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(!close)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    fn pool(addr: String) -> Pool {
        OriginPool::new(addr, Duration::from_secs(2), Duration::from_secs(60), 4)
    }

    async fn get(pool: &Pool, lease: &mut Option<Sender<Empty<Bytes>>>) -> String {
        let req = Request::get("/").body(Empty::new()).unwrap();
        let resp = pool.send(lease, req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_lease_carries_a_clients_requests_on_one_connection() {
        let (addr, accepted) = origin(false).await;
        let pool = pool(addr);
        let mut lease = None;
        for _ in 0..5 {
            assert_eq!(get(&pool, &mut lease).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert!(lease.is_some());
    }

    #[tokio::test]
    async fn a_closed_clients_connection_serves_the_next_client() {
        let (addr, accepted) = origin(false).await;
        let pool = pool(addr);
        let mut first = None;
        get(&pool, &mut first).await;
        pool.give_back(first.take().unwrap());
        assert_eq!(pool.idle_len(), 1);
        let mut second = None;
        get(&pool, &mut second).await;
        assert_eq!(pool.idle_len(), 0);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connections_the_origin_closes_are_replaced_without_an_error() {
        let (addr, accepted) = origin(true).await;
        let pool = pool(addr);
        let mut lease = None;
        for _ in 0..5 {
            assert_eq!(get(&pool, &mut lease).await, "ok");
            // Give the origin's close time to arrive, as between real requests.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
        // A closed connection is not kept for later.
        pool.give_back(lease.take().unwrap());
        assert_eq!(pool.idle_len(), 0);
    }

    #[tokio::test]
    async fn the_idle_pool_is_bounded() {
        let (addr, _) = origin(false).await;
        let pool = pool(addr);
        let mut leases: Vec<Option<Sender<Empty<Bytes>>>> = (0..6).map(|_| None).collect();
        for lease in &mut leases {
            // Each client holds its own connection while the others are open.
            let req = Request::get("/").body(Empty::new()).unwrap();
            let resp = pool.send(lease, req).await.unwrap();
            resp.into_body().collect().await.unwrap();
        }
        for lease in leases {
            pool.give_back(lease.unwrap());
        }
        assert_eq!(pool.idle_len(), 4);
    }

    #[tokio::test]
    async fn a_refused_connect_is_an_error_naming_the_origin() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = pool(addr.clone());
        let req = Request::get("/").body(Empty::new()).unwrap();
        let err = pool.send(&mut None, req).await.unwrap_err();
        assert!(matches!(err, OriginError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&addr), "{err}");
    }
}
