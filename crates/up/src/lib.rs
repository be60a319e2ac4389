//! `rampart up`: the whole of rampart on one machine, from one command, with nothing else
//! installed: a control plane (`--auto-rollout`), an origin, edges across PoPs (one canary),
//! the generator on the embedded catalog publishing on a schedule, and realistic traffic
//! from the built-in sample. It prints the URLs and a live summary; Ctrl-C stops everything.
//!
//! # Layout
//! - [`workdir`]: keys, tokens and policy created in the work dir.
//! - [`child`]: a child process of the same binary, stopped by PID and waited for.
//! - [`stack`]: starting `rampart control` and `rampart edge` children.
//! - [`origin`]: a tiny in-process origin that counts what the edges forward.
//! - [`load`]: realistic traffic at a bounded rate against the edges.
//! - [`inject`]: `--inject nov18`, each layer stopping its file.
//! - [`status`]: reading an edge's admin API.
//! - [`state`]: `DIR/up.json`, the running stack for scripts (URLs, token files, PIDs).
//!
//! # The decision that matters
//! **Every part is the real binary.** The control plane, each edge and the generator are
//! children of the running executable (`std::env::current_exe()`) with the same flags an
//! operator would give; the supervisor only starts, watches and stops them. What a user sees
//! here is what runs in production, and the tests drive the same code.

pub mod child;
pub mod inject;
pub mod load;
pub mod origin;
pub mod stack;
pub mod state;
pub mod status;
pub mod workdir;

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rampart_api::Client;
use rampart_generate::schedule::parse_interval;

use crate::child::{Child, STOP_GRACE};
use crate::load::Load;
use crate::origin::Origin;
use crate::stack::{ControlSpec, EdgeProc, EdgeSpec};
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

/// How often the live summary prints a line.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// How often rollout changes and generator lines are looked for.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Largest policy file read (the control plane reads it again with its own bound).
const MAX_POLICY_BYTES: u64 = 64 * 1024;

/// Largest piece of the generator's log read per look.
const MAX_LOG_READ: u64 = 64 * 1024;

/// The rollout policy of `rampart up`: the production defaults, with bakes and sample sizes
/// cut so a rollout takes about a minute at the default traffic (200 requests a second).
pub const POLICY: &str = "\
[plan]
canary_bake_ms = 20000

[[plan.waves]]
share = 0.1
bake_ms = 10000

[[plan.waves]]
share = 0.5
bake_ms = 10000

[[plan.waves]]
share = 1.0
bake_ms = 10000

[rollout]
tick_ms = 500
baseline_wait_ms = 5000

[rollout.gates]
min_requests = 300

[rollout.gates.shift]
min_scores = 300
";

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
}

/// A bad file to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The 18 November 2025 file (every feature twice, past 200), and a file each later
    /// layer must stop: one the edges refuse, one whose every score is 1.
    Nov18,
}

/// Everything `rampart up` started, stopped in reverse.
struct Running {
    control: stack::ControlProc,
    edges: Vec<EdgeProc>,
    generator: Child,
}

// === impl Running ===

impl Running {
    /// What `DIR/up.json` says about this stack.
    fn state(&self, origin: &Origin) -> state::State {
        let mut children = vec![state::ChildState {
            name: self.control.child.name().to_owned(),
            pid: self.control.child.pid(),
        }];
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
            control: self.control.url.clone(),
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
    fn stop(self) {
        for e in &self.edges {
            e.child.terminate();
        }
        for e in self.edges {
            let name = e.child.name().to_owned();
            report_exit(&name, e.child.stop(STOP_GRACE));
        }
        report_exit("generator", self.generator.stop(STOP_GRACE));
        report_exit("control", self.control.child.stop(STOP_GRACE));
    }
}

fn report_exit(name: &str, status: Option<std::process::ExitStatus>) {
    match status {
        Some(s) if s.success() => println!("  stopped {name}"),
        Some(s) => println!("  stopped {name} ({s})"),
        None => println!("  stopped {name} (exit unknown)"),
    }
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
        Some(path) => {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            anyhow::ensure!(
                meta.len() <= MAX_POLICY_BYTES,
                "{} is over {MAX_POLICY_BYTES} bytes",
                path.display()
            );
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        }
        None => POLICY.to_owned(),
    };
    let work = Workdir::create(&root, &policy).context("cannot create the work dir")?;
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
    let control = stack::start_control(
        &ControlSpec {
            exe: exe.clone(),
            listen: stack::free_addr()?,
            pubkeys: vec![work.pubkey.clone(), work.rotated_pubkey.clone()],
            beat_interval_ms: args.beat_interval_ms,
            auto_rollout: true,
            extra: Vec::new(),
        },
        &work,
    )?;
    let mut edges = Vec::new();
    for spec in edge_specs(args, &exe, origin.addr(), &control.url, &work) {
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
    let generator = start_generator(&exe, &work, &control.url, args.every)?;
    let running = Running {
        control,
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

    let anon = Client::new(&running.control.url, None)?;
    let started = Instant::now();
    runtime.block_on(async {
        let mut summary = tokio::time::interval(SUMMARY_INTERVAL);
        let mut watch = tokio::time::interval(WATCH_INTERVAL);
        let mut seen_rollout = String::new();
        let mut log_offset = 0u64;
        let mut inject = inject;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = summary.tick() => {
                    let line = summary_line(&anon, &origin, load.as_ref(), started).await;
                    println!("{line}");
                }
                _ = watch.tick() => {
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

/// The edges: `--edges` spread round-robin over `--pops` PoPs; the first is the canary.
fn edge_specs(
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
            })
        })
        .collect()
}

/// `rampart generate --every` on the embedded catalog, publishing to the control plane.
fn start_generator(
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
        .arg("--every")
        .arg(format!("{}s", every.as_secs().max(1)));
    Ok(Child::spawn("generator", cmd, &work.log("generator"))?)
}

fn inject_target(running: &Running, work: &Workdir) -> anyhow::Result<inject::Target> {
    let canary = running
        .edges
        .iter()
        .find(|e| e.spec.canary)
        .context("no canary edge")?;
    Ok(inject::Target {
        publisher: Client::new(&running.control.url, Some(work.publisher_secret.clone()))?,
        anon: Client::new(&running.control.url, None)?,
        key: work.signing_key()?,
        rotated: work.rotated_signing_key()?,
        canary: canary.spec.id.clone(),
        canary_admin: canary.admin,
        canary_watch: canary.watch_dir.clone(),
    })
}

fn print_urls(running: &Running, origin: &Origin, work: &Workdir, state_file: &Path) {
    let url = &running.control.url;
    println!();
    println!("  control plane   {url}          (API under /v1, /openapi.json)");
    println!("  dashboard       {url}/ui/");
    println!("  origin          http://{}", origin.addr());
    for e in &running.edges {
        println!(
            "  edge {:<10} proxy http://{}   admin http://{}/status{}",
            e.spec.id,
            e.proxy,
            e.admin,
            if e.spec.canary { "   (canary)" } else { "" }
        );
    }
    println!();
    println!(
        "  try: rampart rollout watch --control {url}\n       rampart killswitch set bot off --control {url} --token-file {} --reason drill",
        work.admin_token.display()
    );
    println!("  logs: {}/logs/   stop: Ctrl-C", work.root.display());
    println!(
        "  state: {} (URLs, token files, PIDs as JSON; removed when stopped)",
        state_file.display()
    );
    println!();
}

/// One line: the fleet's versions and health, the latest rollout, traffic and the origin.
async fn summary_line(
    anon: &Client,
    origin: &Origin,
    load: Option<&Load>,
    started: Instant,
) -> String {
    let mut line = format!("[{:>4}s]", started.elapsed().as_secs());
    match anon.nodes().await {
        Ok(list) => {
            let mut versions: BTreeMap<String, usize> = BTreeMap::new();
            let mut healthy = 0;
            for n in &list.nodes {
                let v = n
                    .active
                    .map_or("none".to_owned(), |a| format!("v{}", a.version));
                *versions.entry(v).or_insert(0) += 1;
                if n.health == rampart_api::Health::Healthy {
                    healthy += 1;
                }
            }
            let spread: Vec<String> = versions.iter().map(|(v, n)| format!("{v}×{n}")).collect();
            line.push_str(&format!(
                " fleet {} ({healthy}/{} healthy)",
                spread.join(" "),
                list.nodes.len()
            ));
        }
        Err(_) => line.push_str(" control plane unreachable"),
    }
    if let Ok(list) = anon.rollouts(1).await
        && let Some(r) = list.rollouts.first()
    {
        line.push_str(&format!(
            " | rollout #{} v{} {}{}",
            r.id,
            r.target.version,
            r.phase,
            r.current_wave
                .map(|w| format!(" wave {}/{}", w + 1, r.waves.len()))
                .unwrap_or_default()
        ));
    }
    if let Some(load) = load {
        let t = load.stats().totals();
        line.push_str(&format!(
            " | traffic {} sent, {} failed, {} blocked",
            t.sent,
            t.failures(),
            t.blocked
        ));
    }
    // Of the requests the edges scored, the share they called likely automated (<30).
    let scores = origin.counts().scores();
    let scored: u64 = scores.iter().skip(1).sum();
    let low: u64 = scores.iter().skip(1).take(29).sum();
    line.push_str(&format!(
        " | origin {} requests, {} unscored, {:.0}% of scored <30",
        origin.counts().requests(),
        scores.first().copied().unwrap_or(0),
        if scored > 0 {
            100.0 * low as f64 / scored as f64
        } else {
            0.0
        }
    ));
    line
}

/// A line when the latest rollout changed phase or wave.
async fn rollout_change(anon: &Client, seen: &mut String) -> Option<String> {
    let r = anon.rollouts(1).await.ok()?.rollouts.into_iter().next()?;
    let key = format!("{}:{}:{:?}", r.id, r.phase, r.current_wave);
    if *seen == key {
        return None;
    }
    *seen = key;
    let wave = r
        .current_wave
        .and_then(|w| r.waves.get(w))
        .map(|w| format!(" {} ({})", w.name, w.nodes.join(", ")))
        .unwrap_or_default();
    let outcome = r.outcome.map(|o| format!(": {o}")).unwrap_or_default();
    Some(format!(
        "rollout #{} of v{}: {}{wave}{outcome}",
        r.id, r.target.version, r.phase
    ))
}

/// Lines appended to `path` since `offset`.
fn new_lines(path: &Path, offset: &mut u64) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    let Ok(n) = file.take(MAX_LOG_READ).read_to_string(&mut text) else {
        return Vec::new();
    };
    // Only whole lines; a partial last line waits for the next look.
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    *offset += u64::try_from(whole.min(n)).unwrap_or(0);
    text.get(..whole)
        .unwrap_or("")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn print_stops(stops: &[inject::Stop]) {
    println!();
    println!("inject nov18: who stopped what");
    for s in stops {
        println!("  {:<48} {:<28} {}", s.file, s.layer, s.detail);
    }
    println!();
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
