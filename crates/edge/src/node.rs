//! One running edge: the store booted, the proxy and admin listeners, the soak ticker and
//! the watch-dir loop, and their orderly stop.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rampart_host::clock::now_ms;
use rampart_ingest::{BootError, Channel, SentinelConfig, SoakConfig, Store};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::abort_hook::AbortHook;
use crate::admin::{Admin, AdminToken, EdgeInfo};
use crate::agent::{Agent, AgentError};
use crate::bot::{BotModule, ModelCompiler};
use crate::config::{ADMIN_MAX_CONNECTIONS, Config};
use crate::metrics::Metrics;
use crate::module::Boundary;
use crate::proxy::{OriginTimeouts, Proxy, Upstream};
use crate::server::{
    Drained, PerClient, ServeOptions, ShutdownSignal, ShutdownTrigger, WhenFull, serve,
};
use crate::trust::Trust;
use crate::watch::Watcher;

/// How often the store's `tick` runs (soak promotion, log summaries).
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Pending connections the kernel queues per worker listener before refusing more.
const LISTEN_BACKLOG: u32 = 4096;

/// Idle timeout of admin connections.
const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Drain bound of the admin listener: its requests are short.
const ADMIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running edge.
#[derive(Debug)]
pub struct Node {
    listen: SocketAddr,
    admin_addr: SocketAddr,
    admin: Arc<Admin>,
    metrics: Arc<Metrics>,
    trigger: ShutdownTrigger,
    workers: Vec<std::thread::JoinHandle<Drained>>,
    admin_task: JoinHandle<Drained>,
    background: Vec<JoinHandle<()>>,
}

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not boot (an unusable data dir).
    #[error(transparent)]
    Store(#[from] BootError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The boot thread died.
    #[error("store boot did not finish: {0}")]
    Boot(String),
    /// A proxy worker thread could not start.
    #[error("proxy worker could not start: {0}")]
    Worker(String),
    /// The control plane agent could not be set up (its URL).
    #[error("control plane agent: {0}")]
    Agent(#[from] AgentError),
    /// The admin token could not be read or made.
    #[error(transparent)]
    AdminToken(#[from] crate::admin::TokenError),
    /// The root or keyset file is unusable.
    #[error("trust: {0}")]
    Trust(#[from] crate::trust::TrustStartError),
}

/// One proxy worker: a thread with a single-threaded runtime, its own listener (the
/// kernel spreads connections over the workers' `SO_REUSEPORT` sockets) and its own origin
/// pool. A request never leaves the thread that accepted it: no work stealing, no
/// cross-thread wake-ups on the request path (measured here with wrk, nginx origin on the
/// same 2 cores: about 47k req/s on one work-stealing runtime, about 61k this way).
struct Worker {
    index: usize,
    listener: std::net::TcpListener,
    upstream: Upstream,
    boundary: Boundary,
    metrics: Arc<Metrics>,
    origin: OriginTimeouts,
    options: ServeOptions,
    signal: ShutdownSignal,
}

// === impl Node ===

impl Node {
    /// Boots the store (serving last-known-good first), binds both listeners and starts
    /// serving.
    pub async fn start(config: Config) -> Result<Node, StartError> {
        let trust = match config.trust.clone() {
            Some(t) => Some(Arc::new(Trust::load(t, now_ms())?)),
            None => None,
        };
        // With a keyset, feature files come from its generator keys, whatever `--pubkey`.
        let keyring = trust.as_ref().map_or_else(
            || config.keyring.clone(),
            |t| t.keyset().generator().clone(),
        );
        let mut store_config =
            rampart_ingest::Config::new(config.data_dir.clone(), config.contract.clone(), keyring);
        store_config.soak = SoakConfig {
            secs: config.soak.secs,
            requests: config.soak.requests,
        };
        store_config.sentinel = SentinelConfig {
            crash_threshold: config.sentinel.crashes,
            window_secs: config.sentinel.window_secs,
            safe_mode_threshold: config.sentinel.safe_mode_after,
            recurrence_deaths: config.sentinel.recurrence_deaths,
            recurrence_window_secs: config.sentinel.recurrence_window_secs,
        };
        store_config.module_state_lost = config.module_state_lost;
        // With a control plane, last-known-good is what the fleet blessed, not only what
        // soaked here.
        store_config.require_blessing = config.control.is_some();
        let journal = store_config.layout().journal();
        let compiler = ModelCompiler::new(config.contract.max_features());
        let store =
            tokio::task::spawn_blocking(move || Store::boot(store_config, compiler, now_ms()))
                .await
                .map_err(|e| StartError::Boot(e.to_string()))??;
        // This run's boot is in the journal: from now on a panic or an error exit is this
        // run's, and is recorded for the next one to report.
        crate::last_words::arm(journal);
        let store = Arc::new(store);

        let bind = |addr: SocketAddr| async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            Ok::<_, StartError>((listener, local))
        };
        let workers = match config.limits.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let (listen, listeners) =
            bind_workers(config.listen, workers).map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let (admin_listener, admin_addr) = bind(config.admin).await?;

        let metrics = Arc::new(Metrics::default());
        let bot = Arc::new(BotModule::new(store.reader()));
        let sample = Arc::clone(bot.sample());
        let boundary = Boundary::new(bot, metrics.clone(), config.rules, config.test_hooks);
        let token =
            AdminToken::load_or_create(config.admin_token_file.as_deref(), &config.data_dir)?;
        let info = EdgeInfo {
            version: env!("CARGO_PKG_VERSION"),
            listen,
            admin: admin_addr,
            admin_token_file: token.path().to_owned(),
            upstream: config.upstream.to_string(),
            block_below: config.rules.block_below,
            fail_policy: config.rules.fail_policy.as_str(),
            watch_dir: config.watch_dir.clone(),
            test_hooks: config.test_hooks,
            started_at_ms: now_ms(),
        };
        // Built before anything listens: a bad control-plane URL stops the start.
        let agent = match config.control.clone() {
            Some(c) => {
                let agent = Agent::new(c, store.clone(), metrics.clone())?;
                Some(match &trust {
                    Some(t) => agent.with_trust(t.clone(), &config.data_dir)?,
                    None => agent,
                })
            }
            None => None,
        };
        let kill_watch = match (config.nats.clone(), &trust) {
            (Some(c), Some(t)) => Some(
                crate::agent::kill::KillWatch::new(c, store.clone(), t.clone(), &config.data_dir)
                    .map_err(|e| StartError::Boot(e.to_string()))?,
            ),
            (Some(_), None) => {
                return Err(StartError::Boot(
                    "--nats needs --root and --keyset: kill orders are verified with the keyset's director keys".into(),
                ));
            }
            (None, _) => None,
        };
        let mut admin = Admin::new(store.clone(), metrics.clone(), info, token).with_sample(sample);
        if let Some(w) = &kill_watch {
            admin = admin.with_kill_watch(w.report());
        }
        if let Some(a) = &agent {
            admin = admin.with_agent(a.report());
        }
        if let Some(t) = &trust {
            admin = admin.with_trust(t.clone());
        }
        let admin = Arc::new(admin);

        let (trigger, signal) = ShutdownSignal::new();
        let per_client = config.limits.max_connections_per_client;
        let options = ServeOptions {
            max_connections: config.limits.max_connections,
            // A burst waits in the kernel's queue rather than being refused.
            when_full: WhenFull::Wait,
            // One count for every worker: the cap is per address, not per worker.
            per_client: (per_client > 0).then(|| PerClient::new(per_client)),
            header_timeout: config.limits.header_timeout,
            idle_timeout: config.limits.idle_timeout,
            drain_timeout: config.limits.drain_timeout,
        };
        let mut worker_threads = Vec::with_capacity(listeners.len());
        for (index, listener) in listeners.into_iter().enumerate() {
            let worker = Worker {
                index,
                listener,
                upstream: config.upstream.clone(),
                boundary: boundary.clone(),
                metrics: metrics.clone(),
                origin: config.limits.origin,
                options: options.clone(),
                signal: trigger.signal(),
            };
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let handle = std::thread::Builder::new()
                .name(format!("rampart-proxy-{index}"))
                .spawn(move || worker.run(ready_tx))
                .map_err(|e| StartError::Worker(e.to_string()))?;
            match ready_rx.await {
                Ok(Ok(())) => worker_threads.push(handle),
                Ok(Err(e)) => {
                    trigger.trigger();
                    return Err(StartError::Worker(e));
                }
                Err(_) => {
                    trigger.trigger();
                    return Err(StartError::Worker("worker thread died at start".into()));
                }
            }
        }
        let admin_handler = admin.clone();
        let admin_task = tokio::spawn(serve(
            admin_listener,
            ServeOptions::simple(
                ADMIN_MAX_CONNECTIONS,
                ADMIN_IDLE_TIMEOUT,
                ADMIN_DRAIN_TIMEOUT,
            ),
            None,
            trigger.signal(),
            move |peer| {
                let admin = admin_handler.clone();
                move |req| admin.clone().handle(req, peer)
            },
        ));
        let abort_hook = config.test_hooks.then(AbortHook::default);
        let mut background = vec![tokio::spawn(tick_loop(store.clone(), signal, abort_hook))];
        if let Some(t) = trust {
            background.push(tokio::spawn(crate::trust::reload_loop(
                t,
                store.clone(),
                trigger.signal(),
            )));
        }
        if let Some(watch) = kill_watch {
            // Its own task, independent of the agent: it works while the control plane is down.
            let mut stop = trigger.signal();
            background.push(tokio::spawn(async move {
                watch.run(async move { stop.wait().await }).await;
            }));
        }
        if let Some(agent) = agent {
            // Its own task: the request path only ever reads the store's snapshot.
            let mut stop = trigger.signal();
            background.push(tokio::spawn(async move {
                agent.run(async move { stop.wait().await }).await;
            }));
        }
        if let Some(dir) = config.watch_dir.clone() {
            // A missing watch dir is created rather than polled in vain; if that fails the
            // loop reports it (once) and keeps trying.
            if let Err(e) = tokio::fs::create_dir_all(&dir).await {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot create the watch dir");
            }
            background.push(tokio::spawn(watch_loop(
                admin.clone(),
                dir,
                config.watch_poll,
                trigger.signal(),
            )));
        }
        tracing::info!(%listen, admin = %admin_addr, upstream = %config.upstream, workers, "edge serving");
        Ok(Node {
            listen,
            admin_addr,
            admin,
            metrics,
            trigger,
            workers: worker_threads,
            admin_task,
            background,
        })
    }

    /// Where the proxy listens.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store<ModelCompiler>> {
        self.admin.store()
    }

    /// The request-path counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops accepting and starts the drain; [`wait`](Self::wait) sees it through.
    pub fn shutdown(&self) {
        self.trigger.trigger();
    }

    /// Waits for the drain, stops the loops, and records a clean exit in the boot journal.
    pub async fn wait(self) -> Drained {
        let mut drained = Drained::Clean;
        for worker in self.workers {
            let joined = tokio::task::spawn_blocking(move || worker.join()).await;
            if !matches!(joined, Ok(Ok(Drained::Clean))) {
                drained = Drained::TimedOut;
            }
        }
        let _ = self.admin_task.await;
        for task in self.background {
            let _ = task.await;
        }
        let store = self.admin.store().clone();
        if tokio::task::spawn_blocking(move || store.clean_exit(now_ms()))
            .await
            .is_err()
        {
            tracing::error!("could not record the clean exit");
        }
        tracing::info!(?drained, "edge stopped");
        drained
    }
}

// === impl Worker ===

impl Worker {
    /// Serves until shutdown and the drain; tells `ready` once it accepts.
    fn run(self, ready: tokio::sync::oneshot::Sender<Result<(), String>>) -> Drained {
        // Per-request counters go to this worker's own shard (shard 0 is everyone else's).
        rampart_ingest::shard::enter(self.index.saturating_add(1));
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(format!("runtime: {e}")));
                return Drained::TimedOut;
            }
        };
        let Worker {
            index,
            listener,
            upstream,
            boundary,
            metrics,
            origin,
            options,
            signal,
        } = self;
        runtime.block_on(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready.send(Err(format!("listener: {e}")));
                    return Drained::TimedOut;
                }
            };
            let proxy = Arc::new(Proxy::new(upstream, boundary, metrics.clone(), origin));
            let _ = ready.send(Ok(()));
            let drained = serve(listener, options, Some(metrics), signal, move |peer| {
                let conn = proxy.connection(peer);
                move |req| conn.clone().handle(req)
            })
            .await;
            tracing::debug!(worker = index, ?drained, "proxy worker stopped");
            drained
        })
    }
}

/// Binds `workers` listening sockets to one address with `SO_REUSEPORT`.
///
/// A fixed port is first bound once without `SO_REUSEPORT`: if another process (an old edge
/// that did not die) holds it, that fails instead of silently sharing its traffic.
fn bind_workers(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let socket = if bound.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(bound)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        // The first socket resolves port 0; the others join it.
        bound = listener.local_addr()?;
        listeners.push(listener.into_std()?);
    }
    Ok((bound, listeners))
}

/// Runs the store's `tick` once per [`TICK_INTERVAL`] until shutdown; with test hooks on,
/// also the [`AbortHook`].
async fn tick_loop(
    store: Arc<Store<ModelCompiler>>,
    mut signal: ShutdownSignal,
    mut abort_hook: Option<AbortHook>,
) {
    let mut interval = tokio::time::interval(TICK_INTERVAL);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = signal.wait() => return,
            _ = interval.tick() => {}
        }
        let ticked = store.clone();
        // Promotion writes last-known-good to disk: not on a runtime thread.
        if tokio::task::spawn_blocking(move || ticked.tick(now_ms()))
            .await
            .is_err()
        {
            tracing::error!("store tick failed");
        }
        if let Some(hook) = abort_hook.as_mut() {
            let active = store
                .snapshot()
                .active
                .as_ref()
                .map(|a| (a.digest, a.activated_at_ms));
            if hook.due(active, || store.with_active(Clone::clone), now_ms()) {
                crate::abort_hook::abort();
            }
        }
    }
}

/// Polls the watch dir every `poll` until shutdown, applying settled files on a blocking
/// thread.
async fn watch_loop(admin: Arc<Admin>, dir: PathBuf, poll: Duration, mut signal: ShutdownSignal) {
    let mut interval = tokio::time::interval(poll);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut watcher = Some(Watcher::new(dir.clone()));
    let mut failing = false;
    loop {
        tokio::select! {
            () = signal.wait() => return,
            _ = interval.tick() => {}
        }
        let mut w = watcher.take().unwrap_or_else(|| Watcher::new(dir.clone()));
        let a = admin.clone();
        let polled = tokio::task::spawn_blocking(move || {
            let result = w.poll().map(|files| {
                for file in &files {
                    let at = now_ms();
                    let outcome = a.store().offer_file(file, Channel::Watch, at);
                    let name = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    a.record_watch(&name, &outcome, at);
                }
            });
            (w, result)
        })
        .await;
        match polled {
            Ok((w, result)) => {
                watcher = Some(w);
                match result {
                    // Logged once per failing spell, not once per poll.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot list the watch dir");
                    }
                    Err(_) => {}
                    Ok(()) => failing = false,
                }
            }
            Err(e) => tracing::error!(error = %e, "watch-dir poll failed; starting afresh"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_share_one_port() {
        let (addr, listeners) = bind_workers("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(listeners.len(), 3);
        for l in &listeners {
            assert_eq!(l.local_addr().unwrap(), addr);
        }
    }

    #[tokio::test]
    async fn a_port_held_by_another_process_is_not_shared() {
        // Another edge's worker socket, with SO_REUSEPORT like ours.
        let (held, _keep) = bind_workers("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let err = bind_workers(held, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
