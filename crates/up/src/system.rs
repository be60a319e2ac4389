//! What `rampart up` starts and stops: the control plane, edges spread over PoPs (the first
//! is the canary), and the generator on the embedded catalog.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use rampart_api::Client;

use crate::child::{Child, STOP_GRACE};
use crate::cli::UpArgs;
use crate::inject;
use crate::origin::Origin;
use crate::stack::{self, EdgeProc, EdgeSpec};
use crate::state;
use crate::workdir::Workdir;

/// PoPs edges are spread over, with their regions, in order of use.
pub const POPS: &[(&str, &str)] = &[
    ("fra", "eu"),
    ("iad", "us"),
    ("sin", "ap"),
    ("ams", "eu"),
    ("sjc", "us"),
    ("nrt", "ap"),
];

/// Most edges `rampart up` starts (each is a process with a proxy worker and an agent).
pub const MAX_EDGES: u16 = 64;

/// Everything `rampart up` started, stopped in reverse.
pub(crate) struct Running {
    pub(crate) control: stack::ControlProc,
    /// The other control-plane replicas (`--engine nats`).
    pub(crate) replicas: Vec<stack::ControlProc>,
    /// The NATS servers (`--engine nats`).
    pub(crate) nats: Option<crate::nats::NatsCluster>,
    pub(crate) edges: Vec<EdgeProc>,
    pub(crate) generator: Child,
}

// === impl Running ===

impl Running {
    /// What `DIR/up.json` says about this stack.
    pub(crate) fn state(&self, origin: &Origin) -> state::State {
        let mut children: Vec<state::ChildState> = self
            .nats
            .iter()
            .flat_map(|n| n.pids())
            .enumerate()
            .map(|(i, pid)| state::ChildState {
                name: format!("nats-n{i}"),
                pid,
            })
            .collect();
        children.extend(
            std::iter::once(&self.control)
                .chain(&self.replicas)
                .map(|c| state::ChildState {
                    name: c.child.name().to_owned(),
                    pid: c.child.pid(),
                }),
        );
        children.extend(self.edges.iter().map(|e| state::ChildState {
            name: e.child.name().to_owned(),
            pid: e.child.pid(),
        }));
        children.push(state::ChildState {
            name: self.generator.name().to_owned(),
            pid: self.generator.pid(),
        });
        state::State {
            pid: std::process::id(),
            control: self.control_urls(),
            origin: origin.addr(),
            children,
            edges: self
                .edges
                .iter()
                .map(|e| state::EdgeState {
                    id: e.spec.id.clone(),
                    pop: e.spec.pop.clone(),
                    region: e.spec.region.clone(),
                    canary: e.spec.canary,
                    proxy: e.proxy,
                    admin: e.admin,
                    pid: e.child.pid(),
                    watch_dir: e.watch_dir.clone(),
                })
                .collect(),
        }
    }

    /// Stops every child by PID: SIGTERM to all edges at once (they drain in parallel), then
    /// the generator and the control plane; each is waited for.
    pub(crate) fn stop(self) {
        for e in &self.edges {
            e.child.terminate();
        }
        for e in self.edges {
            let name = e.child.name().to_owned();
            report_exit(&name, e.child.stop(STOP_GRACE));
        }
        report_exit("generator", self.generator.stop(STOP_GRACE));
        for r in self.replicas {
            let name = r.child.name().to_owned();
            report_exit(&name, r.child.stop(STOP_GRACE));
        }
        let name = self.control.child.name().to_owned();
        report_exit(&name, self.control.child.stop(STOP_GRACE));
        if let Some(nats) = self.nats {
            let n = nats.len();
            nats.stop(STOP_GRACE);
            println!("  stopped {n} nats-server");
        }
    }

    /// Every control-plane replica's URL, `URL,URL,…` (what clients take).
    pub(crate) fn control_urls(&self) -> String {
        std::iter::once(&self.control)
            .chain(&self.replicas)
            .map(|c| c.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn report_exit(name: &str, status: Option<std::process::ExitStatus>) {
    match status {
        Some(s) if s.success() => println!("  stopped {name}"),
        Some(s) => println!("  stopped {name} ({s})"),
        None => println!("  stopped {name} (exit unknown)"),
    }
}

/// The edges: `--edges` spread round-robin over `--pops` PoPs; the first is the canary.
pub(crate) fn edge_specs(
    args: &UpArgs,
    exe: &Path,
    origin: SocketAddr,
    control: &str,
    work: &Workdir,
) -> Vec<EdgeSpec> {
    let pops = POPS
        .iter()
        .take(usize::from(args.pops).clamp(1, POPS.len()))
        .collect::<Vec<_>>();
    let mut per_pop: BTreeMap<&str, u32> = BTreeMap::new();
    (0..usize::from(args.edges))
        .filter_map(|i| {
            let (pop, region) = **pops.get(i % pops.len())?;
            let n = per_pop.entry(pop).or_insert(0);
            *n += 1;
            Some(EdgeSpec {
                exe: exe.to_owned(),
                id: format!("{pop}-{n}"),
                pop: pop.to_owned(),
                region: region.to_owned(),
                canary: i == 0,
                upstream: origin,
                control: control.to_owned(),
                pubkeys: vec![work.pubkey.clone()],
                // A short soak so last-known-good is written while you watch.
                extra: vec![
                    "--soak-secs".into(),
                    "20".into(),
                    "--soak-requests".into(),
                    "200".into(),
                ],
                test_hooks: false,
                agent_control: None,
            })
        })
        .collect()
}

/// `rampart generate --every` on the embedded catalog, publishing to the control plane.
pub(crate) fn start_generator(
    exe: &Path,
    work: &Workdir,
    url: &str,
    every: Duration,
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.args(["generate", "--source", "catalog:embedded", "--key"])
        .arg(&work.key)
        .arg("--state-dir")
        .arg(work.dir("generator/state")?)
        .args(["--publish", url, "--publish-token-file"])
        .arg(&work.publisher_token)
        .arg("--ca")
        .arg(work.tls().ca_cert)
        .arg("--every")
        .arg(format!("{}s", every.as_secs().max(1)));
    Ok(Child::spawn("generator", cmd, &work.log("generator"))?)
}

pub(crate) fn inject_target(running: &Running, work: &Workdir) -> anyhow::Result<inject::Target> {
    let canary = running
        .edges
        .iter()
        .find(|e| e.spec.canary)
        .context("no canary edge")?;
    Ok(inject::Target {
        publisher: Client::with_transport(
            &running.control_urls(),
            Some(work.publisher_secret.clone()),
            &work.transport()?,
        )?,
        anon: Client::with_transport(&running.control_urls(), None, &work.transport()?)?,
        key: work.signing_key()?,
        rotated: work.rotated_signing_key()?,
        canary: canary.spec.id.clone(),
        canary_admin: canary.admin,
        canary_watch: canary.watch_dir.clone(),
    })
}
