//! `rampart edge`: flags, the config file, and the process around a [`Node`]: tracing, a
//! quiet panic hook, the tokio runtime, signals.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rampart_artifact::{Contract, Keyring, PublicKey};

use rampart_api::Labels;
use rampart_api::limits::MAX_IDENT_LEN;
use rampart_host::file::read_text;

use crate::agent::AgentConfig;
use crate::agent::kill::{self, KillWatchConfig};
use crate::config::{
    self, Config, ControlFile, DEFAULT_ADMIN, DEFAULT_LISTEN, DEFAULT_WATCH_POLL, FileConfig,
    Limits, MAX_CONFIG_FILE_BYTES, MAX_WORKERS, Sentinel, Soak,
};
use crate::module::{FailPolicy, Rules};
use crate::node::Node;
use crate::proxy::{OriginTimeouts, Upstream};
use crate::server::Drained;
use crate::trust::{DEFAULT_KEYSET_POLL, MIN_KEYSET_POLL, TrustConfig};

/// The environment variable that turns the test hooks on, read once at start.
pub const TEST_HOOKS_ENV: &str = "RAMPART_TEST_HOOKS";

/// The exit code `rampart` gives an error returned from [`run`] (its `main` maps every error
/// to it), recorded in the boot journal as the cause of this run's end.
pub const EXIT_ERROR_CODE: i32 = 2;

/// Largest key or contract file read.
const MAX_SMALL_FILE_BYTES: usize = 1024 * 1024;

/// The `pop` and `region` of a node that does not say.
const DEFAULT_LABEL: &str = "local";

/// Where the host name is read for the default node id.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// At most one panic message per this interval reaches the log; the rest are counted.
const PANIC_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// After the drain (or a shutdown during boot), how long the process waits for blocking
/// threads (file reads, the store's writer) before it exits anyway: whatever a thread is
/// stuck on, SIGTERM ends the process within the drain bound plus this.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Run the edge proxy: score requests with the bot module and forward them to the origin.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EdgeArgs {
    /// What else than serving.
    #[command(subcommand)]
    pub command: Option<EdgeCommand>,
    /// Serving flags (boxed: they are many, and this struct sits in the CLI's verb enum).
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
}

/// `rampart edge <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum EdgeCommand {
    /// Print the contract this edge enforces, for producers to check against.
    Contract(ContractArgs),
    /// Record how the last run ended (for a supervisor, e.g. systemd's `ExecStopPost=`):
    /// the next boot reports the death with that cause. Nothing is written after a clean
    /// stop.
    RecordExit(RecordExitArgs),
}

/// `rampart edge record-exit`.
#[derive(Debug, clap::Args)]
pub struct RecordExitArgs {
    /// The edge's data dir.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The signal that killed it: a number or a name (`9`, `KILL`, `SIGKILL`).
    #[arg(long, value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// The code it exited with.
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub exit_code: Option<i32>,
}

/// `rampart edge contract`.
#[derive(Debug, clap::Args)]
pub struct ContractArgs {
    /// A contract file instead of the built-in edge contract.
    #[arg(long, value_name = "FILE")]
    pub contract: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    pub format: Format,
}

/// Output format of `rampart edge contract`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// TOML, the contract file format.
    Toml,
    /// JSON.
    Json,
}

/// `rampart edge record-exit`: one line on stdout says what was recorded.
fn record_exit(args: &RecordExitArgs) -> anyhow::Result<ExitCode> {
    use rampart_ingest::journal::ExitRecord;
    let exit = crate::last_words::supervisor_exit(args.signal.as_deref(), args.exit_code, |k| {
        std::env::var(k).ok()
    })
    .map_err(anyhow::Error::msg)?;
    let journal = rampart_ingest::DataDir::new(&args.data_dir).journal();
    let done = crate::last_words::record_exit_in(&args.data_dir, exit)
        .with_context(|| format!("cannot record the exit in {}", journal.display()))?;
    let line = match done {
        ExitRecord::Recorded(_) => format!("recorded {exit:?} for the last run"),
        ExitRecord::Clean => "the last run stopped cleanly: nothing recorded".to_owned(),
        ExitRecord::NoRun => format!("no run in {}: nothing recorded", journal.display()),
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout does not undo the record.
    let _ = writeln!(out, "{line}");
    Ok(ExitCode::SUCCESS)
}

/// Flags of `rampart edge`; each may also be set in the `--config` file (flags win).
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with the same settings (keys are the flag names with `_`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the proxy listens [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The origin, http://host:port.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Where the admin API listens; loopback only unless --admin-allow-remote
    /// [default: 127.0.0.1:9901].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Allow a non-loopback --admin address.
    #[arg(long)]
    pub admin_allow_remote: bool,
    /// The admin API's bearer token for writes [default: DATA_DIR/admin.token, made at the
    /// first start].
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Where last-known-good, the archive, the boot journal and the switches live.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Feature files dropped here are applied (debounced).
    #[arg(long, value_name = "DIR")]
    pub watch_dir: Option<PathBuf>,
    /// How often the watch dir is listed, in ms [default: 200].
    #[arg(long, value_name = "MS")]
    pub watch_poll_ms: Option<u64>,
    /// A trusted public key (PEM); repeatable.
    #[arg(long = "pubkey", value_name = "FILE")]
    pub pubkeys: Vec<PathBuf>,
    /// The contract to enforce [default: the built-in edge contract].
    #[arg(long, value_name = "FILE")]
    pub contract: Option<PathBuf>,
    /// Block (403) requests whose real score is below N; unscored is never blocked.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub block_below: Option<u8>,
    /// What a bot module failure does to the request: open (forward unscored) or closed (503)
    /// [default: open].
    #[arg(long, value_name = "POLICY")]
    pub fail_policy: Option<FailPolicy>,
    /// The bot module at boot when its saved kill switch (`module.json` and its copy) is
    /// unreadable: off (until an operator or the control plane turns it on) or on
    /// [default: off].
    #[arg(long, value_name = "off|on")]
    pub module_state_lost: Option<rampart_ingest::ModuleStateLost>,
    /// Seconds a new version serves before it becomes last-known-good [default: 60 with
    /// --control (which must also bless it), 600 without].
    #[arg(long, value_name = "SECS")]
    pub soak_secs: Option<u64>,
    /// Requests a new version serves before it becomes last-known-good [default: 1000].
    #[arg(long, value_name = "N")]
    pub soak_requests: Option<u64>,
    /// Deaths after activating a version that poison it [default: 3].
    #[arg(long, value_name = "N")]
    pub sentinel_crashes: Option<u32>,
    /// Window in which deaths count, seconds [default: 60].
    #[arg(long, value_name = "SECS")]
    pub sentinel_window_secs: Option<u64>,
    /// Deaths in the window that boot with the bot module off [default: 6].
    #[arg(long, value_name = "N")]
    pub sentinel_safe_mode_after: Option<u32>,
    /// Deaths with one version active, at any uptime, within the recurrence window, that
    /// poison it [default: 3; 0: off].
    #[arg(long, value_name = "N")]
    pub sentinel_recurrence_deaths: Option<u32>,
    /// The recurrence window, seconds [default: 1800].
    #[arg(long, value_name = "SECS")]
    pub sentinel_recurrence_window_secs: Option<u64>,
    /// Proxy worker threads, each with its own listener and origin pool
    /// [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Client connections served at once, per worker [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Client connections one address may hold at once, all workers together; more are
    /// answered 429 (0: no cap) [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections_per_client: Option<usize>,
    /// Time a new client connection has to send its first complete request head, ms
    /// [default: 10000].
    #[arg(long, value_name = "MS")]
    pub header_timeout_ms: Option<u64>,
    /// Origin connect timeout, ms [default: 2000].
    #[arg(long, value_name = "MS")]
    pub connect_timeout_ms: Option<u64>,
    /// Time the origin has to send its response head, ms [default: 15000].
    #[arg(long, value_name = "MS")]
    pub response_header_timeout_ms: Option<u64>,
    /// Idle client connection timeout, seconds [default: 60].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Drain bound at shutdown, seconds [default: 10].
    #[arg(long, value_name = "SECS")]
    pub drain_timeout_secs: Option<u64>,
    /// Follow this control plane (https://host:port): register, heartbeat, take the versions
    /// and kill switches it sends. The replicas of an HA control plane as `URL,URL,…`: the
    /// agent moves to the next when one refuses connections, and to the leader a follower
    /// names. Or over NATS, `nats://HOST:PORT[,HOST:PORT…]` (loopback, with
    /// --control-plain-http: no TLS yet): requests reach whichever replica leads, artifacts
    /// come from the object store. Without it: the watch dir and the admin API only.
    #[arg(long, value_name = "URL[,URL…]")]
    pub control: Option<String>,
    /// This node's id in the fleet [default: the host name].
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// The node's point of presence, a rollout fault domain [default: local].
    #[arg(long, value_name = "POP")]
    pub pop: Option<String>,
    /// The region holding the PoP [default: local].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Take canary waves.
    #[arg(long)]
    pub canary: bool,
    /// This node's credential file: read at start when it exists, written (mode 0600) by
    /// enrollment [default: DATA_DIR/node.credential].
    #[arg(long, value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,
    /// A one-time bootstrap token (from `rampart node enroll`) to enroll this node with when
    /// it has no credential yet; the credential then goes to the credential file.
    #[arg(long, value_name = "FILE")]
    pub enroll_token_file: Option<PathBuf>,
    /// How long each heartbeat long-polls, ms [default: the control plane's interval].
    #[arg(long, value_name = "MS")]
    pub beat_interval_ms: Option<u64>,
    /// Trust this CA (PEM) for --control instead of the web PKI roots.
    #[arg(long, value_name = "FILE")]
    pub control_ca: Option<PathBuf>,
    /// Allow an http:// --control URL, to a loopback host only.
    #[arg(long)]
    pub control_plain_http: bool,
    /// The root of trust (`rampart keyset init`); with `--keyset`, replaces `--pubkey`.
    #[arg(long, value_name = "FILE", requires = "keyset")]
    pub root: Option<PathBuf>,
    /// The keyset signed by the root: feature files from its generator keys, orders from
    /// its director keys; re-read every --keyset-poll-ms and rotated without restart.
    #[arg(long, value_name = "FILE", requires = "root")]
    pub keyset: Option<PathBuf>,
    /// How often the root and keyset files are re-read, ms [default: 2000].
    #[arg(long, value_name = "MS")]
    pub keyset_poll_ms: Option<u64>,
    /// Watch the kill bucket of this NATS cluster (nats://HOST:PORT[,HOST:PORT…]): kill
    /// switches signed by a director key reach the edge without the control plane. Needs
    /// --root and --keyset (flags or `[trust]`). Default with `--control nats://…` and a
    /// keyset: the same servers.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
}

/// SIGTERM and SIGINT, watched from creation on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

// === impl ServeArgs ===

impl ServeArgs {
    /// Merges the config file (if any) under the flags and reads keys and contract.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => {
                let text = read_text(path, MAX_CONFIG_FILE_BYTES)?;
                let base = path.parent().unwrap_or(Path::new("."));
                FileConfig::parse(&text, base)
                    .with_context(|| format!("config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let soak_file = file.soak.unwrap_or_default();
        let sentinel_file = file.sentinel.unwrap_or_default();
        let limits_file = file.limits.unwrap_or_default();
        let control_file = file.control.unwrap_or_default();
        let trust_file = file.trust.unwrap_or_default();

        let upstream_text = self
            .upstream
            .clone()
            .or(file.upstream)
            .context("--upstream is required (flag or config file)")?;
        let upstream: Upstream = upstream_text
            .parse()
            .with_context(|| format!("--upstream {upstream_text:?}"))?;
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .context("--data-dir is required (flag or config file)")?;
        let listen = match self.listen.or(file.listen) {
            Some(a) => a,
            None => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        let admin = match self.admin.or(file.admin) {
            Some(a) => a,
            None => DEFAULT_ADMIN.parse().context("default admin address")?,
        };
        let allow_remote = self.admin_allow_remote || file.admin_allow_remote.unwrap_or(false);
        config::check_admin(admin, allow_remote)?;

        let pubkeys = if self.pubkeys.is_empty() {
            file.pubkeys.unwrap_or_default()
        } else {
            self.pubkeys.clone()
        };
        let mut keys = Vec::with_capacity(pubkeys.len());
        for path in &pubkeys {
            let pem = read_text(path, MAX_SMALL_FILE_BYTES)?;
            keys.push(
                PublicKey::from_pem(&pem)
                    .with_context(|| format!("public key {}", path.display()))?,
            );
        }
        let trust = match (
            self.root.clone().or(trust_file.root),
            self.keyset.clone().or(trust_file.keyset),
        ) {
            (Some(root), Some(keyset)) => Some(TrustConfig {
                root,
                keyset,
                poll: self
                    .keyset_poll_ms
                    .or(trust_file.poll_ms)
                    .map_or(DEFAULT_KEYSET_POLL, Duration::from_millis)
                    .max(MIN_KEYSET_POLL),
            }),
            (None, None) => None,
            _ => bail!("root and keyset go together (flags or [trust] in the config file)"),
        };
        if keys.is_empty() && trust.is_none() {
            tracing::warn!("no --pubkey: every feature file will be refused as unsigned");
        }
        let contract = load_contract(self.contract.as_deref().or(file.contract.as_deref()))?;

        // The kill bucket is watched on --nats, or, with a control plane reached over NATS
        // and a keyset to verify kill orders with, on the same servers.
        let control_over_nats = self
            .control
            .clone()
            .or(control_file.url.clone())
            .filter(|u| u.trim_start().starts_with("nats://") && trust.is_some());
        let nats = match self.nats.as_ref().or(control_over_nats.as_ref()) {
            Some(url) => {
                let node = self
                    .node_id
                    .clone()
                    .or(control_file.node_id.clone())
                    .unwrap_or_else(default_node_id);
                rampart_api::check_ident("--node-id", &node, MAX_IDENT_LEN)?;
                Some(KillWatchConfig {
                    servers: nats_servers(url)?,
                    namespace: kill::DEFAULT_NAMESPACE.to_owned(),
                    node,
                })
            }
            None => None,
        };
        let control = self.agent(control_file, &data_dir)?;
        let soak_defaults = if control.is_some() {
            Soak::default()
        } else {
            Soak::standalone()
        };
        let sentinel_defaults = Sentinel::default();
        let limits_defaults = Limits::default();
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let config = Config {
            listen,
            upstream,
            admin,
            admin_token_file: self.admin_token_file.clone().or(file.admin_token_file),
            data_dir: data_dir.clone(),
            watch_dir: self.watch_dir.clone().or(file.watch_dir),
            watch_poll: self
                .watch_poll_ms
                .or(file.watch_poll_ms)
                .map_or(DEFAULT_WATCH_POLL, ms)
                .max(ms(10)),
            keyring: Keyring::new(keys),
            contract,
            rules: Rules {
                block_below: self.block_below.or(file.block_below),
                fail_policy: self.fail_policy.or(file.fail_policy).unwrap_or_default(),
            },
            module_state_lost: self
                .module_state_lost
                .or(file.module_state_lost)
                .unwrap_or_default(),
            soak: Soak {
                secs: self
                    .soak_secs
                    .or(soak_file.secs)
                    .unwrap_or(soak_defaults.secs),
                requests: self
                    .soak_requests
                    .or(soak_file.requests)
                    .unwrap_or(soak_defaults.requests),
            },
            sentinel: Sentinel {
                crashes: self
                    .sentinel_crashes
                    .or(sentinel_file.crashes)
                    .unwrap_or(sentinel_defaults.crashes),
                window_secs: self
                    .sentinel_window_secs
                    .or(sentinel_file.window_secs)
                    .unwrap_or(sentinel_defaults.window_secs),
                safe_mode_after: self
                    .sentinel_safe_mode_after
                    .or(sentinel_file.safe_mode_after)
                    .unwrap_or(sentinel_defaults.safe_mode_after),
                recurrence_deaths: self
                    .sentinel_recurrence_deaths
                    .or(sentinel_file.recurrence_deaths)
                    .unwrap_or(sentinel_defaults.recurrence_deaths),
                recurrence_window_secs: self
                    .sentinel_recurrence_window_secs
                    .or(sentinel_file.recurrence_window_secs)
                    .unwrap_or(sentinel_defaults.recurrence_window_secs),
            },
            limits: Limits {
                workers: self
                    .workers
                    .map(usize::from)
                    .or(limits_file.workers)
                    .unwrap_or(limits_defaults.workers)
                    .min(MAX_WORKERS),
                max_connections: self
                    .max_connections
                    .or(limits_file.max_connections)
                    .unwrap_or(limits_defaults.max_connections)
                    .max(1),
                max_connections_per_client: self
                    .max_connections_per_client
                    .or(limits_file.max_connections_per_client)
                    .unwrap_or(limits_defaults.max_connections_per_client),
                header_timeout: self
                    .header_timeout_ms
                    .or(limits_file.header_timeout_ms)
                    .map_or(limits_defaults.header_timeout, ms)
                    .max(ms(1)),
                idle_timeout: self
                    .idle_timeout_secs
                    .or(limits_file.idle_timeout_secs)
                    .map_or(limits_defaults.idle_timeout, secs),
                drain_timeout: self
                    .drain_timeout_secs
                    .or(limits_file.drain_timeout_secs)
                    .map_or(limits_defaults.drain_timeout, secs),
                origin: OriginTimeouts {
                    connect: self
                        .connect_timeout_ms
                        .or(limits_file.connect_timeout_ms)
                        .map_or(limits_defaults.origin.connect, ms),
                    response_header: self
                        .response_header_timeout_ms
                        .or(limits_file.response_header_timeout_ms)
                        .map_or(limits_defaults.origin.response_header, ms),
                },
            },
            test_hooks: false,
            control,
            trust,
            nats,
        };
        if let Some(b) = config.rules.block_below
            && !(1..=99).contains(&b)
        {
            bail!("block_below must be 1 to 99, not {b}");
        }
        Ok(config)
    }
}

// === impl ServeArgs (control plane) ===

impl ServeArgs {
    /// The agent's settings when `--control` (or `[control] url`) is given.
    fn agent(&self, file: ControlFile, data_dir: &Path) -> anyhow::Result<Option<AgentConfig>> {
        let Some(url) = self.control.clone().or(file.url.clone()) else {
            return Ok(None);
        };
        let transport = self.control_transport(&file)?;
        let node = match self.node_id.clone().or(file.node_id) {
            Some(id) => id,
            None => default_node_id(),
        };
        let labels = Labels {
            pop: self
                .pop
                .clone()
                .or(file.pop)
                .unwrap_or_else(|| DEFAULT_LABEL.to_owned()),
            region: self
                .region
                .clone()
                .or(file.region)
                .unwrap_or_else(|| DEFAULT_LABEL.to_owned()),
            canary: self.canary || file.canary.unwrap_or(false),
        };
        rampart_api::check_ident("--node-id", &node, MAX_IDENT_LEN)?;
        labels.check()?;
        let credential_file = self
            .control_token_file
            .clone()
            .or(file.token_file)
            .unwrap_or_else(|| data_dir.join(CREDENTIAL_FILE));
        let (token, enroll_token) = credentials(
            &credential_file,
            self.enroll_token_file.clone().or(file.enroll_token_file),
        )?;
        // Checked now, so a bad URL stops the start instead of a retry loop.
        rampart_api::Client::with_transport(&url, None, &transport)
            .with_context(|| format!("--control {url:?}"))?;
        let beat_interval = match self.beat_interval_ms.or(file.beat_interval_ms) {
            Some(0) => bail!("--beat-interval-ms must be at least 1"),
            Some(ms) => Some(Duration::from_millis(ms)),
            None => None,
        };
        Ok(Some(AgentConfig {
            control: url,
            token,
            enroll_token,
            credential_file: Some(credential_file),
            node,
            labels,
            beat_interval,
            transport,
        }))
    }

    /// `--control-ca` and `--control-plain-http` (or `[control] ca_file`, `plain_http`).
    fn control_transport(&self, file: &ControlFile) -> anyhow::Result<rampart_api::Transport> {
        let ca = self.control_ca.clone().or_else(|| file.ca_file.clone());
        let plain = self.control_plain_http || file.plain_http.unwrap_or(false);
        Ok(rampart_api::Transport::from_flags(ca.as_deref(), plain)?)
    }
}

/// The node's credential file in the data dir unless `--control-token-file` says otherwise.
pub const CREDENTIAL_FILE: &str = "node.credential";

/// The credential from its file when there is one (a restart reuses it), else the bootstrap
/// token to enroll with; neither: a warning, and the control plane will refuse the node.
fn credentials(
    credential_file: &Path,
    enroll_file: Option<PathBuf>,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    if credential_file.exists() {
        let text = read_text(credential_file, MAX_SMALL_FILE_BYTES)?;
        let secret = rampart_api::token::secret(&text)
            .with_context(|| format!("no credential in {}", credential_file.display()))?;
        return Ok((Some(secret), None));
    }
    match enroll_file {
        Some(path) => {
            let text = read_text(&path, MAX_SMALL_FILE_BYTES)?;
            let token = rampart_api::token::secret(&text)
                .with_context(|| format!("no bootstrap token in {}", path.display()))?;
            Ok((None, Some(token)))
        }
        None => {
            tracing::warn!(
                file = %credential_file.display(),
                "--control without a credential file or --enroll-token-file: the control plane will refuse this node (401)"
            );
            Ok((None, None))
        }
    }
}

/// The host name, made a valid node id; `edge` when there is none.
/// `nats://HOST:PORT[,HOST:PORT…]` (each may carry its own `nats://`) as server URLs.
fn nats_servers(url: &str) -> anyhow::Result<Vec<String>> {
    let rest = url
        .strip_prefix("nats://")
        .with_context(|| format!("--nats {url:?}: expected nats://HOST:PORT[,HOST:PORT…]"))?;
    let servers: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("nats://{}", s.strip_prefix("nats://").unwrap_or(s)))
        .collect();
    if servers.is_empty() {
        bail!("--nats {url:?}: no server");
    }
    Ok(servers)
}

fn default_node_id() -> String {
    let host = read_text(Path::new(HOSTNAME_FILE), MAX_IDENT_LEN * 4).unwrap_or_default();
    let id: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_IDENT_LEN)
        .collect();
    if id.is_empty() { "edge".to_owned() } else { id }
}

/// Runs `rampart edge`: serves until SIGTERM or SIGINT, drains, records a clean exit.
pub fn run(args: EdgeArgs) -> anyhow::Result<ExitCode> {
    rampart_host::log::init();
    if let Some(EdgeCommand::RecordExit(r)) = args.command {
        return record_exit(&r);
    }
    if let Some(EdgeCommand::Contract(c)) = args.command {
        let contract = load_contract(c.contract.as_deref())?;
        let text = match c.format {
            Format::Toml => contract.to_toml(),
            Format::Json => {
                serde_json::to_string_pretty(contract.spec()).context("contract as JSON")? + "\n"
            }
        };
        // Not print!: it panics when stdout is a closed pipe (`| head`).
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Err(e) => Err(e).context("cannot write to stdout"),
        };
    }
    let mut config = args.serve.resolve()?;
    config.test_hooks = std::env::var(TEST_HOOKS_ENV).is_ok_and(|v| v == "1");
    if config.test_hooks {
        tracing::warn!("{TEST_HOOKS_ENV}=1: test hooks are on; never run production like this");
    }
    install_quiet_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let served = runtime.block_on(async move {
        // Signals are watched before the node starts, so a SIGTERM during boot drains
        // instead of killing the process mid-boot.
        let mut signals = Signals::watch()?;
        let node = tokio::select! {
            node = Node::start(config) => node?,
            () = signals.wait() => {
                tracing::warn!("shutdown requested during boot: exiting before serving");
                return Ok(());
            }
        };
        {
            // The addresses on stdout, one line, so a supervisor (`rampart up`, a test) that
            // asked for port 0 learns the ports, as with `rampart control`.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "rampart edge listening on http://{} admin http://{}",
                node.listen_addr(),
                node.admin_addr()
            );
            let _ = out.flush();
        }
        signals.wait().await;
        tracing::info!("shutdown requested: draining");
        node.shutdown();
        match node.wait().await {
            Drained::Clean => {}
            Drained::TimedOut => tracing::warn!("drain timed out; remaining connections cut"),
        }
        Ok::<_, anyhow::Error>(())
    });
    // Dropping a runtime waits for every blocking task without bound; a thread stuck in the
    // kernel must not keep a stopped edge alive.
    runtime.shutdown_timeout(EXIT_GRACE);
    if served.is_err() {
        crate::last_words::exited(EXIT_ERROR_CODE);
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The built-in edge contract, or a contract file.
fn load_contract(path: Option<&Path>) -> anyhow::Result<Contract> {
    match path {
        None => Ok(rampart_score::edge_contract()),
        Some(p) => {
            let text = read_text(p, MAX_SMALL_FILE_BYTES)?;
            Contract::from_toml(&text).with_context(|| format!("contract {}", p.display()))
        }
    }
}

/// Replaces the default panic hook with one that logs at most one panic per
/// [`PANIC_LOG_INTERVAL`] and counts the rest: a module panicking on every request must
/// not turn into a flood of backtraces that eats the CPU and the disk (18 November).
fn install_quiet_panic_hook() {
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    std::panic::set_hook(Box::new(|info| {
        // First, before anything that could fail: the next run reports the death as a panic.
        crate::last_words::panicked();
        let now = Instant::now();
        // try_lock: a panic while another thread logs one is counted, never waited for.
        let due = match LAST.try_lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| now.duration_since(t) >= PANIC_LOG_INTERVAL);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let suppressed = SUPPRESSED.swap(0, Ordering::Relaxed);
            tracing::error!(suppressed, "panic: {info}");
        } else {
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        }
    }));
}

// === impl Signals ===

impl Signals {
    fn watch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Resolves on the first SIGTERM or SIGINT.
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Top {
        #[command(flatten)]
        edge: EdgeArgs,
    }

    fn parse(args: &[&str]) -> Result<EdgeArgs, clap::Error> {
        let mut all = vec!["edge"];
        all.extend_from_slice(args);
        Top::try_parse_from(all).map(|t| t.edge)
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("edge.toml");
        std::fs::write(
            &cfg,
            "upstream = \"http://127.0.0.1:9000\"\ndata_dir = \"d\"\nblock_below = 10\n\
             fail_policy = \"closed\"\nmodule_state_lost = \"on\"\n[soak]\nsecs = 7\n",
        )
        .unwrap();
        let args = parse(&[
            "--config",
            cfg.to_str().unwrap(),
            "--block-below",
            "20",
            "--listen",
            "127.0.0.1:7000",
        ])
        .unwrap();
        let c = args.serve.resolve().unwrap();
        assert_eq!(c.rules.block_below, Some(20));
        assert_eq!(c.rules.fail_policy, FailPolicy::Closed);
        assert_eq!(c.module_state_lost, rampart_ingest::ModuleStateLost::On);
        assert_eq!(c.soak.secs, 7);
        assert_eq!(c.soak.requests, Soak::default().requests);
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.data_dir, dir.path().join("d"));
        assert_eq!(c.upstream.to_string(), "http://127.0.0.1:9000");
        assert_eq!(c.contract.consumer(), "edge");
        assert!(!c.test_hooks);
    }

    #[test]
    fn required_settings_and_bad_values_are_reported() {
        let e = parse(&["--data-dir", "/tmp/x"]).unwrap().serve.resolve();
        assert!(format!("{:#}", e.unwrap_err()).contains("--upstream"));
        let e = parse(&["--upstream", "http://o:1"])
            .unwrap()
            .serve
            .resolve();
        assert!(format!("{:#}", e.unwrap_err()).contains("--data-dir"));
        let e = parse(&["--upstream", "https://o:1", "--data-dir", "/tmp/x"])
            .unwrap()
            .serve
            .resolve();
        assert!(format!("{:#}", e.unwrap_err()).contains("http"));
        assert!(parse(&["--block-below", "0"]).is_err());
        assert!(parse(&["--block-below", "100"]).is_err());
        assert!(parse(&["--fail-policy", "ajar"]).is_err());
    }

    #[test]
    fn a_remote_admin_address_needs_the_explicit_flag() {
        let base = ["--upstream", "http://o:1", "--data-dir", "/tmp/x"];
        let mut args = base.to_vec();
        args.extend(["--admin", "0.0.0.0:9901"]);
        let e = parse(&args).unwrap().serve.resolve().unwrap_err();
        assert!(format!("{e:#}").contains("--admin-allow-remote"), "{e:#}");
        args.push("--admin-allow-remote");
        assert!(parse(&args).unwrap().serve.resolve().is_ok());
    }

    #[test]
    fn an_edge_enrolls_once_then_uses_its_stored_credential() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let boot = dir.path().join("boot.token");
        std::fs::write(&boot, "b00t-0123456789abcdef0123456789abcdef\n").unwrap();
        let args = [
            "--upstream",
            "http://o:1",
            "--data-dir",
            data.to_str().unwrap(),
            "--control",
            "http://127.0.0.1:7700",
            "--control-plain-http",
            "--node-id",
            "fra-1",
            "--enroll-token-file",
            boot.to_str().unwrap(),
        ];
        let resolve = || {
            parse(&args)
                .unwrap()
                .serve
                .resolve()
                .unwrap()
                .control
                .unwrap()
        };
        let first = resolve();
        assert_eq!(
            first.enroll_token.as_deref(),
            Some("b00t-0123456789abcdef0123456789abcdef")
        );
        assert!(first.token.is_none());
        let file = data.join(CREDENTIAL_FILE);
        assert_eq!(first.credential_file.as_deref(), Some(file.as_path()));
        // What enrollment leaves behind is what the next start uses; the spent bootstrap
        // token is not sent again.
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(&file, "cred-0123456789abcdef0123456789abcdef").unwrap();
        let again = resolve();
        assert_eq!(
            again.token.as_deref(),
            Some("cred-0123456789abcdef0123456789abcdef")
        );
        assert!(again.enroll_token.is_none());
    }

    #[test]
    fn control_flags_make_the_agent_settings() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("edge.token");
        std::fs::write(
            &token,
            "edges edge s3cret-0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let base = ["--upstream", "http://o:1", "--data-dir", "/tmp/x"];
        let c = parse(&base).unwrap().serve.resolve().unwrap();
        assert!(c.control.is_none());
        let mut args = base.to_vec();
        args.extend([
            "--control",
            "http://127.0.0.1:7700",
            "--node-id",
            "fra-1",
            "--pop",
            "fra",
            "--canary",
            "--control-token-file",
            token.to_str().unwrap(),
            "--beat-interval-ms",
            "250",
            "--control-plain-http",
        ]);
        let a = parse(&args)
            .unwrap()
            .serve
            .resolve()
            .unwrap()
            .control
            .unwrap();
        assert_eq!(a.node, "fra-1");
        assert_eq!(
            (a.labels.pop.as_str(), a.labels.region.as_str()),
            ("fra", DEFAULT_LABEL)
        );
        assert!(a.labels.canary);
        assert_eq!(
            a.token.as_deref(),
            Some("s3cret-0123456789abcdef0123456789abcdef")
        );
        assert_eq!(a.beat_interval, Some(Duration::from_millis(250)));
        assert!(a.enroll_token.is_none());
        let mut bad = base.to_vec();
        bad.extend(["--control", "http://h:1", "--node-id", "a/b"]);
        assert!(parse(&bad).unwrap().serve.resolve().is_err());
        let mut bad = base.to_vec();
        bad.extend(["--control", "ftp://h:1"]);
        assert!(parse(&bad).unwrap().serve.resolve().is_err());
        // Plain HTTP: only with the flag, and only to loopback.
        let mut plain = base.to_vec();
        plain.extend(["--control", "http://127.0.0.1:7700"]);
        let e = parse(&plain).unwrap().serve.resolve().unwrap_err();
        assert!(format!("{e:#}").contains("plain HTTP"), "{e:#}");
        let mut remote = base.to_vec();
        remote.extend(["--control", "http://10.0.0.1:7700", "--control-plain-http"]);
        let e = parse(&remote).unwrap().serve.resolve().unwrap_err();
        assert!(format!("{e:#}").contains("loopback"), "{e:#}");
        assert!(!default_node_id().is_empty());
        assert_eq!(
            rampart_api::token::secret("\n  bare  \n"),
            Some("bare".into())
        );
    }

    #[test]
    fn the_contract_subcommand_parses() {
        let a = parse(&["contract", "--format", "json"]).unwrap();
        assert!(matches!(
            a.command,
            Some(EdgeCommand::Contract(ContractArgs {
                format: Format::Json,
                ..
            }))
        ));
    }

    #[test]
    fn unreadable_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "not a key").unwrap();
        let e = parse(&[
            "--upstream",
            "http://o:1",
            "--data-dir",
            "/tmp/x",
            "--pubkey",
            key.to_str().unwrap(),
        ])
        .unwrap()
        .serve
        .resolve()
        .unwrap_err();
        assert!(format!("{e:#}").contains("k.pem"), "{e:#}");
    }
}
