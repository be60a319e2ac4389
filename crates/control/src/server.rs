//! One running control plane: the SQLite store, the service, the HTTP listener and the
//! rollout driver, started together and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::{Config, SHUTDOWN_GRACE_MS};
use crate::service::{Service, StartError};
use crate::store::SqliteStore;
use crate::{api, driver};

/// A running control plane.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    service: Arc<Service<SqliteStore>>,
    http: JoinHandle<std::io::Result<()>>,
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
}

// === impl Server ===

impl Server {
    /// Opens the store in `config.data_dir`, binds `config.listen`, and starts serving and
    /// driving rollouts (resuming every rollout the store holds).
    pub async fn start(config: Config) -> Result<Server, ServeError> {
        let store = SqliteStore::open(&config.data_dir).map_err(StartError::from)?;
        let listen = config.listen;
        let service = Service::open(config, store).await?;
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
        let router = api::router(Arc::clone(&service));
        let mut stop = service.shutdown_signal();
        let http = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        let driver = tokio::spawn(driver::run(Arc::clone(&service)));
        let running = service.fleet().running.len();
        tracing::info!(%addr, resumed_rollouts = running, "control plane listening");
        Ok(Server {
            addr,
            service,
            http,
            driver,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service.
    pub fn service(&self) -> &Arc<Service<SqliteStore>> {
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
    }
}
