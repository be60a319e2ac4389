//! `rampart up`'s flags and its supervisor: start everything, watch, stop on a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rampart_api::Client;
use rampart_generate::schedule::parse_interval;
use rampart_host::clock::now_ms;
use rampart_host::file;

use crate::console::{
    SUMMARY_INTERVAL, WATCH_INTERVAL, new_lines, print_stops, print_urls, rollout_change,
    summary_line,
};
use crate::inject;
use crate::load::Load;
use crate::origin::Origin;
use crate::policy::POLICY;
use crate::stack::{self, ControlSpec};
use crate::state;
use crate::supervise::Supervisor;
use crate::system::{MAX_EDGES, Running, edge_specs, inject_target, start_generator};
use crate::trust::TrustFiles;
use crate::workdir::Workdir;

/// Largest policy file read (the control plane reads it again with its own bound).
const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Run the whole system on this machine: control plane, origin, edges, generator, traffic.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Work dir for keys, tokens, data and logs [default: a new dir in the temp dir].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// How often the generator runs on the embedded catalog (`30s`, `5m`).
    #[arg(long, default_value = "30s", value_parser = parse_interval)]
    pub every: Duration,
    /// Throw a known-bad file at the stack and show which layer stops it.
    #[arg(long, value_enum, value_name = "SCENARIO")]
    pub inject: Option<Scenario>,
    /// Edges to start.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_EDGES)))]
    pub edges: u16,
    /// PoPs to spread them over (the first edge of the first PoP is the canary).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=6))]
    pub pops: u16,
    /// Send no traffic (rollouts then wait for evidence until you send some).
    #[arg(long)]
    pub no_traffic: bool,
    /// Requests per second sent to the edges, all together.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// The heartbeat interval the control plane tells the edges, ms.
    #[arg(long, default_value_t = 1000)]
    pub beat_interval_ms: u64,
    /// A rollout policy file (`[plan]`, `[rollout]`, as for `rampart control --policy`)
    /// [default: the production defaults with bakes of 20 s and 10 s].
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Where the control plane keeps its state: one process on SQLite, or replicas on a
    /// 3-node NATS JetStream cluster (one leads by a lease; `nats-server` on PATH).
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    pub engine: Engine,
    /// With `--engine nats`: control-plane replicas to start.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_REPLICAS)))]
    pub replicas: u8,
}

/// Most control-plane replicas `rampart up --engine nats` starts.
pub const MAX_REPLICAS: u8 = 3;

/// NATS servers `rampart up --engine nats` starts (one cluster, every stream replicated 3).
pub const NATS_SERVERS: usize = 3;

/// How long the first replica may take to lead (the lease, on a new cluster).
const FIRST_LEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The control plane's engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// One `rampart control` on SQLite in the work dir (the embedded default).
    Sqlite,
    /// A 3-node NATS JetStream cluster on loopback and `--replicas` control planes on it.
    Nats,
}

/// A bad file to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The 18 November 2025 file (every feature twice, past 200), and a file each later
    /// layer must stop: one the edges refuse, one whose every score is 1.
    Nov18,
}

/// Runs `rampart up` until SIGINT or SIGTERM.
pub fn run(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the rampart executable")?;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("rampart-up-{}-{}", std::process::id(), now_ms()))
        }
    };
    let policy = match &args.policy {
        Some(path) => file::read_text(path, MAX_POLICY_BYTES)?,
        None => POLICY.to_owned(),
    };
    let work = Workdir::create(&root, &policy).context("cannot create the work dir")?;
    let trust = TrustFiles::create(&work).context("cannot create the root of trust")?;
    // One left by a run that was killed would name processes that are gone.
    state::remove(&root).context("cannot remove an old up.json")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let _guard = runtime.enter();
    // Signals are watched before anything starts, so a Ctrl-C during start still stops
    // what was started.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot watch SIGINT")?;

    println!("rampart up: work dir {}", root.display());
    let origin = runtime
        .block_on(Origin::start(SocketAddr::from(([127, 0, 0, 1], 0))))
        .context("cannot start the origin")?;
    let nats = match args.engine {
        Engine::Sqlite => None,
        Engine::Nats => {
            // A new stream for a new root of trust: a log left by an earlier run in this
            // work dir holds files signed by keys this run replaced.
            let dir = work.root.join("nats");
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
            let cluster = crate::nats::NatsCluster::start(NATS_SERVERS, &dir)
                .context("cannot start the NATS cluster")?;
            println!(
                "rampart up: NATS JetStream, {NATS_SERVERS} servers: {}",
                cluster.url()
            );
            Some(cluster)
        }
    };
    let control_spec = |extra: Vec<String>| -> anyhow::Result<ControlSpec> {
        Ok(ControlSpec {
            exe: exe.clone(),
            listen: stack::free_addr()?,
            pubkeys: vec![work.pubkey.clone(), work.rotated_pubkey.clone()],
            beat_interval_ms: args.beat_interval_ms,
            auto_rollout: true,
            extra,
        })
    };
    let store_args = |nats: &crate::nats::NatsCluster| {
        let mut extra = trust.control_args();
        extra.extend(["--store".to_owned(), nats.url()]);
        extra
    };
    let (control, replicas) = match &nats {
        None => (
            stack::start_control(&control_spec(trust.control_args())?, &work)?,
            Vec::new(),
        ),
        Some(cluster) => {
            // One replica first: on an empty log the first to lead writes the first epoch.
            let first = stack::start_control_named(
                &control_spec(store_args(cluster))?,
                &work,
                "control-0",
            )?;
            runtime.block_on(wait_leader(&first.url, &work, FIRST_LEADER_TIMEOUT))?;
            let mut others = Vec::new();
            for i in 1..args.replicas {
                others.push(stack::start_control_named(
                    &control_spec(store_args(cluster))?,
                    &work,
                    &format!("control-{i}"),
                )?);
            }
            (first, others)
        }
    };
    let control_urls = std::iter::once(&control)
        .chain(&replicas)
        .map(|c| c.url.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut edges = Vec::new();
    for mut spec in edge_specs(args, &exe, origin.addr(), &control_urls, &work) {
        spec.extra.extend(trust.edge_args());
        // On NATS, edges send fleet traffic over NATS to whichever replica leads, fetch
        // files from the object store and watch the kill bucket (`--control nats://…`).
        spec.agent_control = nats.as_ref().map(crate::nats::NatsCluster::url);
        match stack::start_edge(&spec, &work) {
            Ok(e) => edges.push(e),
            Err(e) => {
                for started in edges {
                    drop(started);
                }
                return Err(e.into());
            }
        }
    }
    let generator = start_generator(&exe, &work, &control_urls, args.every)?;
    let mut running = Running {
        control,
        replicas,
        nats,
        edges,
        generator,
    };
    // Once it exists, every URL in it answers. A stack a script cannot find is not started.
    let state_file = running
        .state(&origin)
        .write(&work)
        .with_context(|| format!("cannot write {}", root.join(state::FILE).display()))?;
    print_urls(&running, &origin, &work, &state_file);

    let load = if args.no_traffic {
        None
    } else {
        let targets = running.edges.iter().map(|e| e.proxy).collect();
        Some(Load::start(targets, args.rate, now_ms()).context("cannot load the traffic sample")?)
    };
    let inject = match args.inject {
        Some(Scenario::Nov18) => {
            let target = inject_target(&running, &work)?;
            Some(runtime.spawn(async move {
                let say = |line: String| println!("{line}");
                inject::nov18(&target, &say).await
            }))
        }
        None => None,
    };

    let anon = Client::with_transport(&running.control_urls(), None, &work.transport()?)?;
    if running.nats.is_some() {
        let leader = runtime.block_on(leader_of(&running, &work));
        println!(
            "rampart up: {} control-plane replicas on NATS; leader: {}",
            1 + running.replicas.len(),
            leader.as_deref().unwrap_or("none yet")
        );
    }
    let started = Instant::now();
    runtime.block_on(async {
        let mut summary = tokio::time::interval(SUMMARY_INTERVAL);
        let mut watch = tokio::time::interval(WATCH_INTERVAL);
        let mut seen_rollout = String::new();
        let mut log_offset = 0u64;
        let mut inject = inject;
        let mut supervisor = Supervisor::new(&running.edges, Instant::now());
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = summary.tick() => {
                    let line = summary_line(&anon, &origin, load.as_ref(), started).await;
                    println!("{line}");
                }
                _ = watch.tick() => {
                    // An edge starting again blocks this thread (at most the child start
                    // timeout): the console waits; traffic and the origin run on the
                    // runtime's workers.
                    let round = supervisor.round(&mut running.edges, &work, Instant::now());
                    // up.json names the new PIDs before the console says they started.
                    if round.restarted
                        && let Err(e) = running.state(&origin).write(&work)
                    {
                        println!("supervisor: cannot write {}: {e}", state::FILE);
                    }
                    for line in &round.lines {
                        println!("{line}");
                    }
                    if let Some(line) = rollout_change(&anon, &mut seen_rollout).await {
                        println!("{line}");
                    }
                    for line in new_lines(running.generator.log(), &mut log_offset) {
                        println!("generator: {line}");
                    }
                    if inject.as_ref().is_some_and(tokio::task::JoinHandle::is_finished)
                        && let Some(handle) = inject.take()
                    {
                        match handle.await {
                            Ok(Ok(stops)) => print_stops(&stops),
                            Ok(Err(e)) => println!("inject: stopped: {e:#}"),
                            Err(e) => println!("inject: failed: {e}"),
                        }
                    }
                }
            }
        }
    });
    println!("rampart up: stopping");
    drop(load);
    running.stop();
    if let Err(e) = state::remove(&root) {
        println!("  cannot remove {}: {e}", state::FILE);
    }
    drop(origin);
    runtime.shutdown_timeout(Duration::from_secs(2));
    println!(
        "rampart up: stopped; keys, data and logs are in {}",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits until the replica at `url` says it leads.
async fn wait_leader(url: &str, work: &Workdir, within: Duration) -> anyhow::Result<()> {
    let client = Client::with_transport(url, None, &work.transport()?)?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(h) = client.health().await
            && h.get("role").and_then(|r| r.as_str()) == Some("leader")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the control plane at {url} did not lead within {within:?}")
}

/// The URL of the replica that leads, as each replica's `/v1/health` says.
pub(crate) async fn leader_of(running: &Running, work: &Workdir) -> Option<String> {
    let transport = work.transport().ok()?;
    for c in std::iter::once(&running.control).chain(&running.replicas) {
        let Ok(client) = Client::with_transport(&c.url, None, &transport) else {
            continue;
        };
        if let Ok(h) = client.health().await
            && h.get("role").and_then(|r| r.as_str()) == Some("leader")
        {
            return Some(c.url.clone());
        }
    }
    None
}
