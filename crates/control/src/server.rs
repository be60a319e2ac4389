//! One running control plane: the SQLite store, the service, the HTTP listener (over TLS
//! unless plain HTTP on loopback was asked for) and the rollout driver, started together and
//! stopped together.
//!
//! The listener is the shared accept loop ([`rampart_serve::serve_with`]), the edge's: a
//! connection cap that refuses with 503 when full ([`WhenFull::Refuse`]), a per-client cap,
//! the TLS handshake in each connection's task, a header timeout and an idle timeout, and a
//! bounded drain. The axum router is called per request from that loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use rampart_serve::{
    ConnStats, Drained, Events, Handshake, PerClient, Plain, ServeOptions, ShutdownSignal,
    WhenFull, serve_with,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_service::Service as _;

use crate::config::{Config, ConnLimits, SHUTDOWN_GRACE_MS};
use crate::connections::Connections;
use crate::service::{Service, StartError};
use crate::store::AnyStore;
use crate::tls::{CertReloader, ServerTls, TlsError, TlsHandshake, TlsReport};
use crate::{api, driver};

/// A running control plane.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    tls: Option<Arc<CertReloader>>,
    service: Arc<Service<AnyStore>>,
    connections: Arc<Connections>,
    http: JoinHandle<Drained>,
    driver: JoinHandle<()>,
}

/// Why a control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store or the service.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS setting: no usable certificate pair, or plain HTTP off loopback.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

// === impl Server ===

impl Server {
    /// Opens the store (`config.store`: SQLite in `config.data_dir`, or NATS), binds `config.listen`, and starts serving and
    /// driving rollouts (resuming every rollout the store holds).
    pub async fn start(config: Config) -> Result<Server, ServeError> {
        config.tls.check(config.listen)?;
        let tls = open_tls(&config.tls)?;
        let listen = config.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: listen,
            source,
        })?;
        let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        let store = AnyStore::open(&config.store, &config.data_dir)
            .await
            .map_err(StartError::from)?;
        // On NATS, try for the lease before settling the epoch (a write): the first replica
        // on an empty log leads at once; the others start as followers.
        let me = crate::store::nats::LeaseHolder {
            id: format!("{}-{addr}", std::process::id()),
            url: url.clone(),
        };
        let leading = match &store {
            AnyStore::Nats(nats) => Some(nats.try_lead(&me).await.map_err(StartError::from)?),
            AnyStore::Sqlite(_) => None,
        };
        let service = Service::open(config, store).await?;
        service.set_url(url);
        if leading == Some(false) {
            let leader = match service.store() {
                AnyStore::Nats(nats) => nats.leader().await.ok().flatten().map(|h| h.url),
                AnyStore::Sqlite(_) => None,
            };
            service.set_role(crate::service::Role::Follower { leader });
        }
        let limits = config_limits(&service);
        let cap = limits.effective_cap(rampart_host::process::open_files_limit());
        if cap < limits.max_connections {
            tracing::warn!(
                configured = limits.max_connections,
                cap,
                "the connection cap is lowered to the descriptor limit (ulimit -n) minus a reserve; raise the limit to serve more"
            );
        }
        let stats = Arc::new(ConnStats::default());
        let connections = Connections::new(limits, cap, Arc::clone(&stats));
        let options = ServeOptions {
            max_connections: cap,
            when_full: WhenFull::Refuse,
            per_client: (limits.max_connections_per_client > 0)
                .then(|| PerClient::new(limits.max_connections_per_client)),
            header_timeout: Duration::from_millis(limits.header_timeout_ms),
            idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
            drain_timeout: Duration::from_millis(limits.drain_ms),
        };
        let (trigger, signal) = ShutdownSignal::new();
        let mut stop = service.shutdown_signal();
        tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            trigger.trigger();
        });
        let router =
            api::router(Arc::clone(&service)).layer(axum::Extension(Arc::clone(&connections)));
        // Fleet traffic over NATS reaches the same router (see `nats_api`).
        tokio::spawn(crate::nats_api::run(Arc::clone(&service), router.clone()));
        let events: Arc<dyn Events> = stats;
        let http = match &tls {
            Some(reloader) => {
                let router = router.layer(axum::Extension(api::TlsStatus(Arc::clone(reloader))));
                let handshake = TlsHandshake::new(Arc::clone(reloader))?;
                tokio::spawn(serve_router(
                    listener, options, events, signal, handshake, router,
                ))
            }
            None => tokio::spawn(serve_router(
                listener, options, events, signal, Plain, router,
            )),
        };
        let driver = tokio::spawn(driver::run(Arc::clone(&service)));
        if leading.is_some() {
            tokio::spawn(crate::ha::run(Arc::clone(&service), me));
        }
        if let Some(trust) = service.config().trust.clone() {
            tokio::spawn(crate::trust::reload_loop(Arc::clone(&service), trust));
        }
        let running = service.fleet().running.len();
        tracing::info!(%addr, tls = tls.is_some(), resumed_rollouts = running, "control plane listening");
        Ok(Server {
            addr,
            tls,
            service,
            connections,
            http,
            driver,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR` over TLS, `http://ADDR` in plain HTTP.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The certificate serving and its reloads; `None` in plain HTTP.
    pub fn tls_report(&self) -> Option<TlsReport> {
        self.tls.as_ref().map(|t| t.report())
    }

    /// The API's connection counters and caps (as `/v1/health` shows them).
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// The service.
    pub fn service(&self) -> &Arc<Service<AnyStore>> {
        &self.service
    }

    /// Stops: long-polls answer, requests in flight get [`SHUTDOWN_GRACE_MS`], the driver
    /// finishes its step and the last heartbeats are written.
    pub async fn shutdown(self) {
        self.service.begin_shutdown();
        let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
        let mut http = self.http;
        if tokio::time::timeout(grace, &mut http).await.is_err() {
            tracing::warn!("requests still in flight after the grace period: cut");
            http.abort();
        }
        let mut driver = self.driver;
        if tokio::time::timeout(grace, &mut driver).await.is_err() {
            driver.abort();
        }
        // A connection task drops its handle on the service (and so on the store and its
        // database lock) a moment after the drain saw it finish: wait for the last one, so a
        // control plane started on the same database right after this returns finds it free.
        let service = self.service;
        let mut waits = 0;
        while Arc::strong_count(&service) > 1 && waits < SHUTDOWN_GRACE_MS / RELEASE_POLL_MS {
            tokio::time::sleep(Duration::from_millis(RELEASE_POLL_MS)).await;
            waits += 1;
        }
        if Arc::strong_count(&service) > 1 {
            tracing::warn!("connections still hold the service after the grace period");
        }
    }
}

/// How often [`Server::shutdown`] checks that the last connection let go of the service.
const RELEASE_POLL_MS: u64 = 5;

/// The connection limits the service was configured with.
fn config_limits(service: &Service<AnyStore>) -> ConnLimits {
    service.config().connections
}

/// Serves `router` on `listener` through the shared accept loop until `signal`.
async fn serve_router<S: Handshake>(
    listener: TcpListener,
    options: ServeOptions,
    events: Arc<dyn Events>,
    signal: ShutdownSignal,
    handshake: S,
    router: Router,
) -> Drained {
    serve_with(
        listener,
        options,
        Some(events),
        signal,
        handshake,
        move |_peer| {
            let router = router.clone();
            move |req: axum::http::Request<hyper::body::Incoming>| {
                let mut router = router.clone();
                async move { router.call(req.map(Body::new)).await }
            }
        },
    )
    .await
}

/// The certificate reloader for `tls`, or `None` for plain HTTP.
fn open_tls(tls: &ServerTls) -> Result<Option<Arc<CertReloader>>, TlsError> {
    match tls {
        ServerTls::PlainHttp => Ok(None),
        ServerTls::Files { cert, key } => CertReloader::open(cert, key).map(Some),
    }
}
