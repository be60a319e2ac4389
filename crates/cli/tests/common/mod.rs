//! What the process-level tests share: a real fleet on loopback (one `rampart control`,
//! `rampart edge` children following it over TLS with the stack's certificates and their own
//! enrolled credentials), its clients, and bounded waits.
//!
//! Each test binary uses part of it, hence `dead_code` allowed here.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rampart_api::{Client, RolloutView, StartRollout};
use rampart_artifact::Digest;
use rampart_up::stack::{self, ControlProc, ControlSpec, EdgeProc, EdgeSpec};
use rampart_up::status;
use rampart_up::workdir::Workdir;

/// How often the bounded waits poll.
pub const POLL: Duration = Duration::from_millis(20);

/// What a fleet is made of.
pub struct FleetSpec<'a> {
    /// The control plane's policy (TOML).
    pub policy: &'a str,
    /// The heartbeat interval the control plane tells the edges.
    pub beat_ms: u64,
    /// `(id, pop, region)` of each edge.
    pub nodes: &'a [(&'a str, &'a str, &'a str)],
    /// The edge that takes canary waves.
    pub canary: &'a str,
    /// Extra arguments of every edge.
    pub edge_extra: Vec<String>,
    /// Every edge runs with `RAMPART_TEST_HOOKS=1`.
    pub test_hooks: bool,
}

/// A running fleet. The control plane trusts the work dir's key and its rotated key; the
/// edges trust the first only.
pub struct Fleet {
    pub work: Workdir,
    pub control_spec: ControlSpec,
    pub control: Option<ControlProc>,
    pub edges: Vec<EdgeProc>,
    pub admin: Client,
    pub anon: Client,
    pub publisher: Client,
    nodes: usize,
    _dir: tempfile::TempDir,
}

impl Fleet {
    pub fn start(origin: SocketAddr, spec: &FleetSpec<'_>) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let work = Workdir::create(&dir.path().join("stack"), spec.policy).unwrap();
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_rampart"));
        let control_spec = ControlSpec {
            exe: exe.clone(),
            listen: stack::free_addr().unwrap(),
            pubkeys: vec![work.pubkey.clone(), work.rotated_pubkey.clone()],
            beat_interval_ms: spec.beat_ms,
            auto_rollout: false,
            extra: Vec::new(),
        };
        let control = stack::start_control(&control_spec, &work).unwrap();
        let edges = spec
            .nodes
            .iter()
            .map(|(id, pop, region)| {
                let edge = EdgeSpec {
                    exe: exe.clone(),
                    id: (*id).into(),
                    pop: (*pop).into(),
                    region: (*region).into(),
                    canary: *id == spec.canary,
                    upstream: origin,
                    control: control.url.clone(),
                    pubkeys: vec![work.pubkey.clone()],
                    extra: spec.edge_extra.clone(),
                    test_hooks: spec.test_hooks,
                    agent_control: None,
                };
                stack::start_edge(&edge, &work).unwrap()
            })
            .collect();
        let url = control.url.clone();
        let tls = work.transport().unwrap();
        Fleet {
            admin: Client::with_transport(&url, Some(work.admin_secret.clone()), &tls).unwrap(),
            anon: Client::with_transport(&url, None, &tls).unwrap(),
            publisher: Client::with_transport(&url, Some(work.publisher_secret.clone()), &tls)
                .unwrap(),
            work,
            control_spec,
            control: Some(control),
            edges,
            nodes: spec.nodes.len(),
            _dir: dir,
        }
    }

    pub fn edge(&self, id: &str) -> &EdgeProc {
        self.edges.iter().find(|e| e.spec.id == id).unwrap()
    }

    pub fn proxies(&self) -> Vec<SocketAddr> {
        self.edges.iter().map(|e| e.proxy).collect()
    }

    /// SIGKILLs edge `id` by its PID (a crash, as far as it can tell) and starts it again on
    /// the same data dir, as a supervisor would; returns the killed PID.
    pub fn sigkill_and_restart(&mut self, id: &str) -> u32 {
        let at = self.edges.iter().position(|e| e.spec.id == id).unwrap();
        let old = self.edges.remove(at);
        let pid = old.child.pid();
        let spec = old.spec.clone();
        old.child.kill();
        self.edges
            .push(stack::start_edge(&spec, &self.work).unwrap());
        pid
    }

    pub async fn publish(&self, signed: Vec<u8>) -> Digest {
        self.publisher
            .publish(signed)
            .await
            .unwrap()
            .artifact
            .digest
    }

    /// Starts a rollout of `digest` with every wave baking `bake_ms` and no watch.
    pub async fn rollout(&self, digest: Digest, bake_ms: u64) -> RolloutView {
        self.start_rollout(&StartRollout {
            digest,
            reason: Some("process test".into()),
            break_glass: false,
            bake_ms: Some(bake_ms),
            watch_ms: Some(0),
        })
        .await
    }

    /// Starts a rollout as `req` asks.
    pub async fn start_rollout(&self, req: &StartRollout) -> RolloutView {
        self.admin.rollout_start(req).await.unwrap().done().unwrap()
    }

    pub async fn wait_rollout(
        &self,
        id: u64,
        secs: u64,
        what: impl Fn(&RolloutView) -> bool,
    ) -> RolloutView {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(v) = self.anon.rollout_status(id).await
                && what(&v)
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "rollout {id}: not reached in {secs} s: {:#?}",
            self.anon.rollout_status(id).await
        );
    }

    /// Waits until every node registered and beats (a beat at or after `since_ms`).
    pub async fn wait_beating(&self, since_ms: u64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(list) = self.anon.nodes().await
                && list.nodes.len() == self.nodes
                && list
                    .nodes
                    .iter()
                    .all(|n| n.last_beat_ms.is_some_and(|at| at >= since_ms))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not every edge beats: {:#?}", self.anon.nodes().await);
    }

    /// An edge's `/status`.
    pub async fn status(&self, id: &str) -> serde_json::Value {
        status::get_json(self.edge(id).admin, "/status")
            .await
            .unwrap()
    }

    /// The version an edge serves, from its own admin API.
    pub async fn serving(&self, id: &str) -> Option<u64> {
        self.status(id).await["active"]["version"].as_u64()
    }

    pub async fn all_serve(&self, version: u64) -> bool {
        for e in &self.edges {
            if self.serving(&e.spec.id).await != Some(version) {
                return false;
            }
        }
        true
    }

    /// Stops every process by PID (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(mut self) {
        for e in self.edges.drain(..) {
            e.child.stop(Duration::from_secs(10));
        }
        if let Some(c) = self.control.take() {
            c.child.stop(Duration::from_secs(10));
        }
    }
}

/// Polls `check` every [`POLL`] until it is true, or fails the test naming `what`.
pub async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
