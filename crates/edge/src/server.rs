//! The accept loop shared by the proxy and the admin listener: a connection cap, HTTP/1.1
//! connections with an idle timeout, and a bounded graceful drain.
//!
//! # The idle timeout
//! A connection with no request in progress for `idle_timeout` is closed: that covers an
//! idle keep-alive connection and a request head that is slow to arrive (a slow-loris
//! client dribbling bytes never completes a head, so it counts as idle). It is kept by a
//! watchdog task per connection on a [`LazyTimer`], not by hyper's header-read timeout,
//! which arms and drops a boxed timer on every request (about a microsecond each on the
//! edge's request path). A request counts as in progress from its head until its response
//! body is finished or dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::timer::LazyTimer;

/// How long the accept loop pauses after an accept error (out of file descriptors, say), so
/// a persistent error cannot spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// How a listener serves its connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Connections served at once; the next ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A connection with no request head for this long is closed (covers both a slow first
    /// request and an idle keep-alive connection: hyper's header-read timer starts when it
    /// waits for the next head).
    pub idle_timeout: Duration,
    /// After shutdown is asked, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
}

/// What the idle watchdog of one connection reads.
#[derive(Debug)]
struct Activity {
    /// When the connection was accepted; times below are milliseconds after it.
    epoch: Instant,
    /// Requests whose response has not finished.
    busy: AtomicU32,
    /// When the last request finished (0: none yet).
    idle_since_ms: AtomicU64,
}

/// One request in progress on a connection; dropped with its response body.
#[derive(Debug)]
struct Busy(Arc<Activity>);

/// A response body that keeps its request counted as in progress until it is finished.
#[derive(Debug)]
struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

/// An accepted connection's slot and count; given back when its task ends, however.
#[derive(Debug)]
struct OpenConn {
    metrics: Option<Arc<Metrics>>,
    _permit: OwnedSemaphorePermit,
}

/// A shutdown request that every task can wait on; dropping the sender counts as one.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

/// The side that asks for shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// How a listener's drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished its in-flight request and closed.
    Clean,
    /// The drain timeout passed with connections still open; they were cut.
    TimedOut,
}

// === impl Activity ===

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            busy: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// When the connection is due to close if nothing happens in between.
    fn deadline(&self, idle_timeout: Duration) -> Instant {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Instant::now() + idle_timeout;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        self.epoch + since + idle_timeout
    }
}

// === impl Busy ===

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = u64::try_from(a.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.idle_since_ms.store(ms, Ordering::Relaxed);
        a.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl Tracked ===

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl OpenConn ===

impl OpenConn {
    fn new(metrics: Option<Arc<Metrics>>, permit: OwnedSemaphorePermit) -> Self {
        if let Some(m) = &metrics {
            m.connection_opened();
        }
        OpenConn {
            metrics,
            _permit: permit,
        }
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.connection_closed();
        }
    }
}

// === impl ShutdownSignal ===

impl ShutdownSignal {
    /// A new trigger and its signal.
    pub fn new() -> (ShutdownTrigger, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), ShutdownSignal(rx))
    }

    /// Resolves once shutdown is asked (or the trigger is gone).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped: nobody can ask any more, so stop too.
        let _ = self.0.wait_for(|asked| *asked).await;
    }

    /// Whether shutdown has been asked.
    pub fn is_asked(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }
}

// === impl ShutdownTrigger ===

impl ShutdownTrigger {
    /// Asks every listener and loop to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Another signal for the same trigger.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal(self.0.subscribe())
    }
}

/// Accepts connections on `listener` until `shutdown`, then stops accepting and drains for
/// at most `drain_timeout`.
///
/// `connection` is called once per accepted connection with the peer's address and returns
/// the handler of that connection's requests (so per-connection state lives in it).
pub async fn serve<C, H, Fut, B>(
    listener: TcpListener,
    options: ServeOptions,
    metrics: Option<Arc<Metrics>>,
    mut shutdown: ShutdownSignal,
    connection: C,
) -> Drained
where
    C: Fn(SocketAddr) -> H,
    H: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small responses must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let handler = connection(peer);
        let service = {
            let activity = activity.clone();
            service_fn(move |req| {
                let busy = Busy::start(activity.clone());
                let response = handler(req);
                async move {
                    let response = response.await?;
                    Ok::<_, Infallible>(response.map(|inner| Tracked { inner, _busy: busy }))
                }
            })
        };
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let open = OpenConn::new(metrics.clone(), permit);
        let task = tokio::spawn(async move {
            let _open = open;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
        // The watchdog: closes the connection once it has been idle for the timeout.
        let idle_timeout = options.idle_timeout;
        tokio::spawn(async move {
            let abort = task.abort_handle();
            let mut timer = LazyTimer::new(idle_timeout);
            tokio::select! {
                _ = task => {}
                () = timer.until(|| activity.deadline(idle_timeout)) => {
                    tracing::debug!(%peer, ?idle_timeout, "idle connection closed");
                    abort.abort();
                }
            }
        });
    }
    drop(listener);
    match tokio::time::timeout(options.drain_timeout, graceful.shutdown()).await {
        Ok(()) => Drained::Clean,
        Err(_) => Drained::TimedOut,
    }
}
