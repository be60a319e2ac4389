//! The accept loop: a connection cap, a cap per client address, HTTP/1.1 connections with a
//! header timeout and an idle timeout, an optional handshake (TLS) per connection, and a
//! bounded graceful drain.
//!
//! # The timeouts
//! A new connection must deliver its first complete request head within `header_timeout`
//! of its accept, handshake included (short: a slow-loris client that dribbles bytes, or
//! sends nothing, gives its slot back quickly). After a request, a connection with no
//! request in progress for `idle_timeout` is closed (an idle keep-alive connection). Both
//! are kept by a watchdog task per connection on a [`LazyTimer`], not by hyper's
//! header-read timeout, which arms and drops a boxed timer on every request (about a
//! microsecond each on the edge's request path). A request counts as in progress from its
//! head until its response body is finished or dropped, so a long-poll is never idle.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};
use tokio::time::Instant;

use crate::timer::LazyTimer;

/// How long the accept loop pauses after an accept error (out of file descriptors, say), so
/// a persistent error cannot spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What a connection over its client's cap is told before it is closed.
const OVER_CLIENT_CAP: &[u8] =
    b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// What a connection over the connection cap is told before it is closed (with
/// [`WhenFull::Refuse`]).
const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// What the loop does with a new connection while `max_connections` are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Leave it in the kernel's accept queue until a slot frees (the edge: a burst is
    /// served late rather than refused; past the queue the kernel drops SYNs).
    Wait,
    /// Accept it, answer 503 with `retry-after: 1` and close it at once (the control
    /// plane: a client learns at once that it must back off, and it is counted).
    Refuse,
}

/// Where the loop reports what happens to connections (the edge's metrics, the control
/// plane's [`ConnStats`]). Called once per connection event, never per request.
pub trait Events: Send + Sync + fmt::Debug {
    /// A connection was admitted.
    fn opened(&self) {}
    /// An admitted connection closed (however).
    fn closed(&self) {}
    /// A connection was refused because `max_connections` were open ([`WhenFull::Refuse`]).
    fn refused_over_cap(&self) {}
    /// A connection was refused because its client address held its cap.
    fn refused_per_client(&self) {}
    /// A connection was closed for want of a first request head in time.
    fn header_timeout(&self) {}
    /// A connection was closed after `idle_timeout` without a request in progress.
    fn idle_closed(&self) {}
    /// A connection's handshake failed or timed out (counted by the [`Handshake`] itself
    /// when it knows more; the loop only closes the connection).
    fn handshake_failed(&self) {}
}

/// The connection counters the control plane shows: a plain [`Events`] over atomics.
#[derive(Debug, Default)]
pub struct ConnStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused_over_cap: AtomicU64,
    refused_per_client: AtomicU64,
    closed_header_timeout: AtomicU64,
    closed_idle: AtomicU64,
    handshake_failures: AtomicU64,
}

/// A copy of [`ConnStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    /// Connections open now.
    pub open: u64,
    /// Connections admitted since start.
    pub accepted: u64,
    /// Refused at the connection cap.
    pub refused_over_cap: u64,
    /// Refused at the per-client cap.
    pub refused_per_client: u64,
    /// Closed without a request head in time.
    pub closed_header_timeout: u64,
    /// Closed idle.
    pub closed_idle: u64,
    /// Handshakes that failed or timed out.
    pub handshake_failures: u64,
}

/// What turns an accepted TCP stream into the stream HTTP is spoken over: nothing
/// ([`Plain`]) or a TLS handshake. It runs in the connection's own task, after the
/// connection was admitted, so it is bounded by the caps and by the header timeout (and by
/// any timeout of its own).
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The stream, or `None` when the handshake failed (the connection is closed).
    fn handshake(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send;
}

/// No handshake: HTTP over the TCP stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

/// How a listener serves its connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections served at once; what happens to the next ones: `when_full`.
    pub max_connections: usize,
    /// See [`WhenFull`].
    pub when_full: WhenFull,
    /// Connections one client address may hold at once (shared by every listener given the
    /// same [`PerClient`]); `None`: no cap.
    pub per_client: Option<Arc<PerClient>>,
    /// A new connection with no complete request head for this long is closed.
    pub header_timeout: Duration,
    /// After a request, a connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// After shutdown is asked, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
}

/// Open connections per client address, against a cap. The map holds only addresses with
/// an open connection, so it is bounded by the connection caps.
#[derive(Debug)]
pub struct PerClient {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection's place in its client's count; given back on drop.
#[derive(Debug)]
struct ClientSlot {
    owner: Arc<PerClient>,
    ip: IpAddr,
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
    /// Whether a request head ever arrived.
    started: AtomicBool,
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
    events: Option<Arc<dyn Events>>,
    _permit: OwnedSemaphorePermit,
    _client: Option<ClientSlot>,
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
            started: AtomicBool::new(false),
        }
    }

    /// When the connection is due to close if nothing happens in between: `header_timeout`
    /// after the accept until a first head arrives, then `idle_timeout` after the last
    /// request finished.
    fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Instant {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Instant::now() + idle_timeout;
        }
        if !self.started.load(Ordering::Relaxed) {
            return self.epoch + header_timeout;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        self.epoch + since + idle_timeout
    }
}

// === impl Busy ===

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        activity.started.store(true, Ordering::Relaxed);
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

// === impl ServeOptions ===

impl ServeOptions {
    /// One timeout for both the first head and idleness, no cap per client, new connections
    /// wait when full: the edge admin listener's and the tests' setting.
    pub fn simple(max_connections: usize, idle_timeout: Duration, drain_timeout: Duration) -> Self {
        ServeOptions {
            max_connections,
            when_full: WhenFull::Wait,
            per_client: None,
            header_timeout: idle_timeout,
            idle_timeout,
            drain_timeout,
        }
    }
}

// === impl PerClient ===

impl PerClient {
    /// A cap of `cap` connections per client address (at least 1).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(PerClient {
            cap: cap.max(1),
            open: Mutex::default(),
        })
    }

    /// Counts a connection from `ip`, unless `ip` already holds the cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            owner: Arc::clone(self),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

// === impl OpenConn ===

impl OpenConn {
    fn new(
        events: Option<Arc<dyn Events>>,
        permit: OwnedSemaphorePermit,
        client: Option<ClientSlot>,
    ) -> Self {
        if let Some(e) = &events {
            e.opened();
        }
        OpenConn {
            events,
            _permit: permit,
            _client: client,
        }
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        if let Some(e) = &self.events {
            e.closed();
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

// === impl ConnStats ===

impl ConnStats {
    /// The counters now.
    pub fn counts(&self) -> ConnCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnCounts {
            open: get(&self.open),
            accepted: get(&self.accepted),
            refused_over_cap: get(&self.refused_over_cap),
            refused_per_client: get(&self.refused_per_client),
            closed_header_timeout: get(&self.closed_header_timeout),
            closed_idle: get(&self.closed_idle),
            handshake_failures: get(&self.handshake_failures),
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

impl Events for ConnStats {
    fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }
    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
    fn refused_over_cap(&self) {
        self.refused_over_cap.fetch_add(1, Ordering::Relaxed);
    }
    fn refused_per_client(&self) {
        self.refused_per_client.fetch_add(1, Ordering::Relaxed);
    }
    fn header_timeout(&self) {
        self.closed_header_timeout.fetch_add(1, Ordering::Relaxed);
    }
    fn idle_closed(&self) {
        self.closed_idle.fetch_add(1, Ordering::Relaxed);
    }
    fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }
}

// === impl Plain ===

impl Handshake for Plain {
    type Io = TcpStream;

    async fn handshake(&self, tcp: TcpStream, _peer: SocketAddr) -> Option<TcpStream> {
        Some(tcp)
    }
}

/// [`serve_with`] in plain HTTP.
pub async fn serve<C, H, Fut, B>(
    listener: TcpListener,
    options: ServeOptions,
    events: Option<Arc<dyn Events>>,
    shutdown: ShutdownSignal,
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
    serve_with(listener, options, events, shutdown, Plain, connection).await
}

/// Accepts connections on `listener` until `shutdown`, runs `handshake` on each in its own
/// task, then serves HTTP/1.1 on it; once shutdown is asked, stops accepting and drains for
/// at most `drain_timeout`.
///
/// `connection` is called once per accepted connection with the peer's address and returns
/// the handler of that connection's requests (so per-connection state lives in it).
pub async fn serve_with<S, C, H, Fut, B>(
    listener: TcpListener,
    options: ServeOptions,
    events: Option<Arc<dyn Events>>,
    mut shutdown: ShutdownSignal,
    handshake: S,
    connection: C,
) -> Drained
where
    S: Handshake,
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
        let permit = match options.when_full {
            WhenFull::Wait => tokio::select! {
                biased;
                () = shutdown.wait() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => Some(p),
                    Err(_) => break,
                },
            },
            // Taken after the accept: whether there is room is decided when the connection
            // is there, not when the loop started waiting for one.
            WhenFull::Refuse => None,
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
        let permit = match permit {
            Some(p) => p,
            None => match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(TryAcquireError::NoPermits) => {
                    // Full: told so without waiting (a full socket buffer just loses the
                    // courtesy), then closed, which gives the descriptor back at once.
                    let _ = stream.try_write(OVER_CAP);
                    if let Some(e) = &events {
                        e.refused_over_cap();
                    }
                    continue;
                }
                Err(TryAcquireError::Closed) => break,
            },
        };
        let client = match &options.per_client {
            None => None,
            Some(caps) => match caps.admit(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    // Over its cap: told so without waiting (a full socket buffer just loses
                    // the courtesy), then closed; the slot goes back at once.
                    let _ = stream.try_write(OVER_CLIENT_CAP);
                    if let Some(e) = &events {
                        e.refused_per_client();
                    }
                    drop(permit);
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
        let open = OpenConn::new(events.clone(), permit, client);
        let (watcher, builder, handshake) =
            (graceful.watcher(), builder.clone(), handshake.clone());
        let task = tokio::spawn(async move {
            let open = open;
            let Some(io) = handshake.handshake(stream, peer).await else {
                if let Some(e) = &open.events {
                    e.handshake_failed();
                }
                return;
            };
            let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
        // The watchdog: closes the connection once it has been idle for the timeout.
        let (header_timeout, idle_timeout) = (options.header_timeout, options.idle_timeout);
        let watch_events = events.clone();
        tokio::spawn(async move {
            let abort = task.abort_handle();
            let mut timer = LazyTimer::new(header_timeout.min(idle_timeout));
            tokio::select! {
                _ = task => {}
                () = timer.until(|| activity.deadline(header_timeout, idle_timeout)) => {
                    if activity.started.load(Ordering::Relaxed) {
                        if let Some(e) = &watch_events {
                            e.idle_closed();
                        }
                        tracing::debug!(%peer, ?idle_timeout, "idle connection closed");
                    } else {
                        if let Some(e) = &watch_events {
                            e.header_timeout();
                        }
                        tracing::debug!(%peer, ?header_timeout, "no request head in time: closed");
                    }
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
