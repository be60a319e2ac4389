//! The accept loop shared by the proxy and the admin listener: a connection cap, HTTP/1.1
//! connections with an idle timeout, and a bounded graceful drain.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::metrics::Metrics;

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

/// Accepts connections on `listener` and serves each with `handler` until `shutdown`, then
/// stops accepting and drains for at most `drain_timeout`.
pub async fn serve<F, Fut, B>(
    listener: TcpListener,
    options: ServeOptions,
    metrics: Option<Arc<Metrics>>,
    mut shutdown: ShutdownSignal,
    handler: F,
) -> Drained
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.idle_timeout)
        .keep_alive(true);
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
        let handler = handler.clone();
        let service = service_fn(move |req| handler(req, peer));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        if let Some(m) = &metrics {
            m.connection_opened();
        }
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            if let Some(m) = &metrics {
                m.connection_closed();
            }
            drop(permit);
        });
    }
    drop(listener);
    match tokio::time::timeout(options.drain_timeout, graceful.shutdown()).await {
        Ok(()) => Drained::Clean,
        Err(_) => Drained::TimedOut,
    }
}
