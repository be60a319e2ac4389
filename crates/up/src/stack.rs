//! Starting the real processes of a stack: `rampart control` and `rampart edge` children of
//! one binary, each with its data dir and log in a [`Workdir`], each stopped by PID.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::child::{Child, ChildError};
use crate::workdir::Workdir;

/// What `rampart control` prints first, before its URL.
const CONTROL_LINE: &str = "rampart control listening on ";

/// What `rampart edge` prints first: `… on http://PROXY admin http://ADMIN`.
const EDGE_LINE: &str = "rampart edge listening on http://";

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct ControlSpec {
    /// The `rampart` binary.
    pub exe: PathBuf,
    /// A fixed address (so edges find it again after a restart).
    pub listen: SocketAddr,
    /// Trusted keys.
    pub pubkeys: Vec<PathBuf>,
    /// The heartbeat interval told to edges.
    pub beat_interval_ms: u64,
    /// `--auto-rollout`.
    pub auto_rollout: bool,
    /// Extra arguments.
    pub extra: Vec<String>,
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlProc {
    /// The process.
    pub child: Child,
    /// Its URL.
    pub url: String,
}

/// How to start one edge.
#[derive(Debug, Clone)]
pub struct EdgeSpec {
    /// The `rampart` binary.
    pub exe: PathBuf,
    /// Node id.
    pub id: String,
    /// PoP label.
    pub pop: String,
    /// Region label.
    pub region: String,
    /// Takes canary waves.
    pub canary: bool,
    /// The origin.
    pub upstream: SocketAddr,
    /// The control plane's URL.
    pub control: String,
    /// Trusted keys.
    pub pubkeys: Vec<PathBuf>,
    /// Extra arguments (`--soak-secs`, `--contract`…).
    pub extra: Vec<String>,
    /// Starts it with `RAMPART_TEST_HOOKS=1` ([`rampart_edge::cli::TEST_HOOKS_ENV`]): the
    /// panic header works. Tests and drills only.
    pub test_hooks: bool,
    /// Where the edge's agent reaches the control plane, when not at `control`: a
    /// `nats://` URL (fleet traffic over NATS, loopback, plain). `control` stays the HTTPS
    /// URL the supervisor issues the edge's bootstrap token through.
    pub agent_control: Option<String>,
}

/// A running edge.
#[derive(Debug)]
pub struct EdgeProc {
    /// The process.
    pub child: Child,
    /// Its spec.
    pub spec: EdgeSpec,
    /// Where its proxy listens.
    pub proxy: SocketAddr,
    /// Where its admin API listens.
    pub admin: SocketAddr,
    /// Its watch dir.
    pub watch_dir: PathBuf,
    /// Its data dir (store, journal, identity).
    pub data_dir: PathBuf,
}

/// Why a process of the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The child did not start.
    #[error(transparent)]
    Child(#[from] ChildError),
    /// It printed something else than its address.
    #[error("{name}: unexpected first line {line:?}")]
    Line {
        /// The child.
        name: String,
        /// What it printed.
        line: String,
    },
    /// The work dir failed.
    #[error(transparent)]
    Workdir(#[from] crate::workdir::WorkdirError),
    /// No free port.
    #[error("no free port on loopback: {0}")]
    Port(std::io::Error),
    /// An edge's bootstrap token.
    #[error(transparent)]
    Enroll(#[from] crate::enroll::EnrollError),
}

/// A free port on 127.0.0.1, for a process that must keep its address across restarts.
pub fn free_addr() -> Result<SocketAddr, StackError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(StackError::Port)?;
    listener.local_addr().map_err(StackError::Port)
}

/// Starts `rampart control` with the work dir's tokens and policy, its store in
/// `DIR/control/data`.
pub fn start_control(spec: &ControlSpec, work: &Workdir) -> Result<ControlProc, StackError> {
    start_control_named(spec, work, "control")
}

/// [`start_control`] as `name`: its data dir `DIR/<name>/data`, its log `logs/<name>.log`
/// (the replicas of an HA control plane each have their own).
pub fn start_control_named(
    spec: &ControlSpec,
    work: &Workdir,
    name: &str,
) -> Result<ControlProc, StackError> {
    let mut cmd = Command::new(&spec.exe);
    cmd.arg("control")
        .arg("--listen")
        .arg(spec.listen.to_string())
        .arg("--data-dir")
        .arg(work.dir(&format!("{name}/data"))?)
        .arg("--token-file")
        .arg(&work.tokens)
        .arg("--policy")
        .arg(&work.policy)
        .arg("--beat-interval-ms")
        .arg(spec.beat_interval_ms.to_string());
    let tls = work.tls();
    cmd.arg("--tls-cert")
        .arg(&tls.server_cert)
        .arg("--tls-key")
        .arg(&tls.server_key);
    for key in &spec.pubkeys {
        cmd.arg("--pubkey").arg(key);
    }
    if spec.auto_rollout {
        cmd.arg("--auto-rollout");
    }
    cmd.args(&spec.extra).env("RUST_LOG", log_filter());
    let child = Child::start(name, cmd, &work.log(name))?;
    let url = child
        .first_line()
        .trim()
        .strip_prefix(CONTROL_LINE)
        .map(str::to_owned)
        .ok_or_else(|| StackError::Line {
            name: name.into(),
            line: child.first_line().to_owned(),
        })?;
    Ok(ControlProc { child, url })
}

/// Starts `rampart edge` following the control plane, with its data and watch dirs under
/// `DIR/edges/<id>/`, one proxy worker, proxy and admin on free ports. Its log is appended
/// to, so a restarted edge keeps the last words of the run before.
pub fn start_edge(spec: &EdgeSpec, work: &Workdir) -> Result<EdgeProc, StackError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    start_edge_on(spec, work, any, any)
}

/// Starts a dead edge again on the addresses it had, so its clients and `up.json` still
/// find it (the edge's listeners set `SO_REUSEADDR`); its data dir, journal and identity are
/// the ones it had.
pub fn restart_edge(dead: &EdgeProc, work: &Workdir) -> Result<EdgeProc, StackError> {
    start_edge_on(&dead.spec, work, dead.proxy, dead.admin)
}

fn start_edge_on(
    spec: &EdgeSpec,
    work: &Workdir,
    listen: SocketAddr,
    admin: SocketAddr,
) -> Result<EdgeProc, StackError> {
    let base = format!("edges/{}", spec.id);
    let watch_dir = work.dir(&format!("{base}/watch"))?;
    let data_dir = work.dir(&format!("{base}/data"))?;
    let enroll_token = crate::enroll::bootstrap(
        &spec.control,
        &work.transport()?,
        &work.admin_secret,
        &spec.id,
        &data_dir,
        &work.root.join(&base).join("enroll.token"),
    )?;
    let mut cmd = Command::new(&spec.exe);
    cmd.arg("edge")
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--admin")
        .arg(admin.to_string())
        .args(["--workers", "1"])
        .arg("--upstream")
        .arg(format!("http://{}", spec.upstream))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--watch-dir")
        .arg(&watch_dir)
        .arg("--control")
        .arg(spec.agent_control.as_ref().unwrap_or(&spec.control))
        .arg("--control-ca")
        .arg(work.tls().ca_cert)
        .args([
            "--node-id",
            &spec.id,
            "--pop",
            &spec.pop,
            "--region",
            &spec.region,
        ]);
    if spec.canary {
        cmd.arg("--canary");
    }
    if spec.agent_control.is_some() {
        // NATS has no TLS yet: loopback only, and said explicitly.
        cmd.arg("--control-plain-http");
    }
    if let Some(file) = &enroll_token {
        cmd.arg("--enroll-token-file").arg(file);
    }
    for key in &spec.pubkeys {
        cmd.arg("--pubkey").arg(key);
    }
    cmd.args(&spec.extra).env("RUST_LOG", log_filter());
    if spec.test_hooks {
        cmd.env(rampart_edge::cli::TEST_HOOKS_ENV, "1");
    }
    let name = format!("edge-{}", spec.id);
    let child = Child::start(&name, cmd, &work.log(&name))?;
    let (proxy, admin) = parse_edge_line(child.first_line()).ok_or_else(|| StackError::Line {
        name: name.clone(),
        line: child.first_line().to_owned(),
    })?;
    Ok(EdgeProc {
        child,
        spec: spec.clone(),
        proxy,
        admin,
        watch_dir,
        data_dir,
    })
}

/// `rampart edge listening on http://A admin http://B` → (A, B).
pub fn parse_edge_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix(EDGE_LINE)?;
    let (proxy, admin) = rest.split_once(" admin http://")?;
    Some((proxy.parse().ok()?, admin.parse().ok()?))
}

/// Writes `bytes` into an edge's watch dir the way a publisher should: a hidden temp file, then renamed (`rampart_host::file::write_atomic`).
pub fn drop_into(watch_dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    rampart_host::file::write_atomic(&watch_dir.join(name), bytes)
        .map_err(rampart_host::file::Error::into_io)
}

/// The children's log level: `RUST_LOG` if set, else `info`.
fn log_filter() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_line_gives_both_addresses() {
        assert_eq!(
            parse_edge_line(
                "rampart edge listening on http://127.0.0.1:8080 admin http://127.0.0.1:9901\n"
            ),
            Some((
                "127.0.0.1:8080".parse().unwrap(),
                "127.0.0.1:9901".parse().unwrap()
            ))
        );
        assert_eq!(parse_edge_line("something else"), None);
    }
}
