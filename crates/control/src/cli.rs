//! `rampart control`: flags, and the process around a [`Server`]: tracing, the runtime,
//! signals.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rampart_artifact::{Contract, Keyring, Keyset, PublicKey, Root, SecretKey};
use rampart_host::file;

use crate::auth::Tokens;
use crate::config::{
    Config, DEFAULT_LISTEN, DEFAULT_STALE_AFTER_MS, HEADER_TIMEOUT_MS, IDLE_TIMEOUT_MS,
    MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT, MAX_POLICY_FILE_BYTES, PolicyFile,
};
use crate::server::Server;
use crate::store::StoreSpec;
use crate::tls::ServerTls;
use crate::trust::TrustConfig;

/// Largest token, key or contract file read.
const MAX_SMALL_FILE_BYTES: usize = 1024 * 1024;

/// Run the control plane: artifact store, fleet registry, staged rollouts, kill switches.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// Where the API listens (port 0: any free port, printed on stdout).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where the store (`control.sqlite3`) lives.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The store: `sqlite` (in `--data-dir`) or `nats://HOST:PORT[,HOST:PORT…]` (a NATS
    /// JetStream cluster, see docs/nats.md).
    #[arg(long, value_name = "STORE", default_value = "sqlite", value_parser = parse_store)]
    pub store: StoreSpec,
    /// A token file: `NAME ROLE SECRET` per line (roles admin, publisher, edge), or one bare
    /// secret (an admin named `operator`); repeatable.
    #[arg(long, value_name = "FILE")]
    pub token_file: Vec<PathBuf>,
    /// An environment variable holding one admin token (named after the variable);
    /// repeatable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Vec<String>,
    /// A trusted public key (PEM); repeatable, at least one unless `--keyset` is given (the
    /// legacy/dev path: no rotation, no signed orders).
    #[arg(
        long = "pubkey",
        value_name = "FILE",
        required_unless_present = "keyset"
    )]
    pub pubkeys: Vec<PathBuf>,
    /// A contract every publish must satisfy besides the registered edges' ones; repeatable.
    #[arg(long, value_name = "FILE")]
    pub contract: Vec<PathBuf>,
    /// A TOML file with `[plan]` (waves) and `[rollout]` (timing, gates) policies.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The heartbeat interval told to edges, in ms.
    #[arg(long, value_name = "MS", default_value_t = rampart_api::limits::DEFAULT_BEAT_INTERVAL_MS)]
    pub beat_interval_ms: u64,
    /// A node silent this long is stale and left out of new rollouts, in ms.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_STALE_AFTER_MS)]
    pub stale_after_ms: u64,
    /// Most API connections open at once; past it a new one gets 503 and is closed. Lowered
    /// at start to the descriptor limit (`ulimit -n`) minus a reserve when that is smaller.
    #[arg(long, value_name = "N", default_value_t = MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most API connections one client address holds (0: no cap); past it a new one gets
    /// 429 and is closed. Edges behind one NAT share an address: keep it generous.
    #[arg(long, value_name = "N", default_value_t = MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,
    /// A new connection without a complete request head by then is closed, in ms.
    #[arg(long, value_name = "MS", default_value_t = HEADER_TIMEOUT_MS)]
    pub header_timeout_ms: u64,
    /// A keep-alive connection with no request in progress this long is closed, in ms
    /// (a waiting long-poll is in progress).
    #[arg(long, value_name = "MS", default_value_t = IDLE_TIMEOUT_MS)]
    pub idle_timeout_ms: u64,
    /// Roll out each newly published version by itself (staged and gated, audited), as soon
    /// as no rollout runs.
    #[arg(long)]
    pub auto_rollout: bool,
    /// The API's TLS certificate chain (PEM), reloaded when the file changes; with
    /// `--tls-key`. `rampart tls init DIR` makes one with a local CA.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "plain_http"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of TLS: refused unless `--listen` is a loopback address.
    #[arg(long)]
    pub plain_http: bool,
    /// The root of trust (`rampart keyset init`): verifies the keyset.
    #[arg(long, value_name = "FILE", requires = "keyset")]
    pub root: Option<PathBuf>,
    /// The keyset signed by the root: artifacts are accepted from its generator keys only.
    #[arg(long, value_name = "FILE", requires = "root")]
    pub keyset: Option<PathBuf>,
    /// How often the keyset file is re-read, ms.
    #[arg(long, value_name = "MS", default_value_t = crate::trust::DEFAULT_KEYSET_POLL_MS)]
    pub keyset_poll_ms: u64,
    /// The director key (PEM private key, not the generator's) that signs every order sent
    /// to edges; with a keyset it must be one of its director keys.
    #[arg(long, value_name = "FILE")]
    pub director_key: Option<PathBuf>,
    /// Start even though the database is behind its epoch file (emptied, truncated, older
    /// copy): a new epoch, audited with `--reason`.
    #[arg(long, requires = "reason")]
    pub reinitialize: bool,
    /// Why `--reinitialize` (recorded in the audit log).
    #[arg(long, value_name = "TEXT", requires = "reinitialize")]
    pub reason: Option<String>,
}

// === impl ControlArgs ===

impl ControlArgs {
    /// The config these flags describe (reads the files they name).
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut tokens = Tokens::default();
        for f in &self.token_file {
            tokens
                .add_file(&read_text(f)?)
                .with_context(|| format!("token file {}", f.display()))?;
        }
        for var in &self.token_env {
            let secret = std::env::var(var).with_context(|| format!("--token-env {var}"))?;
            let name = var
                .to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            tokens
                .add_admin(&name, &secret)
                .with_context(|| format!("token in ${var}"))?;
        }
        if tokens.is_empty() {
            tracing::warn!("no token given: every write will be refused (401)");
        }
        let mut keys = Vec::new();
        for f in &self.pubkeys {
            keys.push(
                PublicKey::from_pem(&read_text(f)?)
                    .with_context(|| format!("public key {}", f.display()))?,
            );
        }
        let trust = match (&self.root, &self.keyset) {
            (Some(root), Some(keyset_file)) => {
                let (root, keyset) = load_keyset(root, keyset_file)?;
                Some(TrustConfig {
                    root: Arc::new(root),
                    keyset: Arc::new(keyset),
                    keyset_file: keyset_file.clone(),
                    pubkeys: Keyring::new(keys.clone()),
                    poll: Duration::from_millis(self.keyset_poll_ms),
                })
            }
            _ => None,
        };
        let keyring = match &trust {
            Some(t) => t.keyring(&t.keyset),
            None => Keyring::new(keys),
        };
        let mut config = Config::new(self.data_dir.clone(), tokens, keyring);
        config.listen = self.listen;
        config.store = self.store.clone();
        if let Some(f) = &self.director_key {
            let key = SecretKey::from_pem(&read_text(f)?)
                .with_context(|| format!("director key {}", f.display()))?;
            if let Some(t) = &trust {
                let keyset = &t.keyset;
                if keyset.director().get(key.public().id().as_str()).is_none() {
                    bail!(
                        "director key {} ({}) is not a director key of keyset {} (version {}): edges would refuse every order",
                        f.display(),
                        key.public().id(),
                        keyset.version(),
                        self.keyset.as_deref().unwrap_or(Path::new("")).display()
                    );
                }
            }
            config.director_key = Some(Arc::new(key));
        } else if self.keyset.is_some() {
            bail!("--keyset needs --director-key: edges with the keyset refuse unsigned orders");
        }
        config.trust = trust;
        if self.reinitialize {
            let reason = self.reason.clone().unwrap_or_default();
            rampart_api::check_text("--reason", &reason, rampart_api::limits::MAX_MESSAGE_LEN)
                .context("--reason")?;
            if reason.trim().is_empty() {
                bail!("--reinitialize needs a --reason that says why");
            }
            config.reinitialize = Some(reason);
        }
        for f in &self.contract {
            config.contracts.push(
                Contract::from_toml(&read_text(f)?)
                    .with_context(|| format!("contract {}", f.display()))?,
            );
        }
        if let Some(f) = &self.policy {
            let bytes = file::read_capped(f, MAX_POLICY_FILE_BYTES)?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("{} is not UTF-8", f.display()))?;
            let policy: PolicyFile =
                toml::from_str(&text).with_context(|| format!("policy {}", f.display()))?;
            config.plan_policy = policy.plan;
            config.rollout_policy = policy.rollout;
            if policy.nodes.contract_quorum == 0 {
                bail!(
                    "policy {}: [nodes] contract_quorum must be at least 1",
                    f.display()
                );
            }
            config.node_policy = policy.nodes;
        }
        if self.beat_interval_ms == 0 {
            bail!("--beat-interval-ms must be at least 1");
        }
        config.beat_interval_ms = self.beat_interval_ms;
        for (flag, v) in [
            ("--max-connections", self.max_connections as u64),
            ("--header-timeout-ms", self.header_timeout_ms),
            ("--idle-timeout-ms", self.idle_timeout_ms),
        ] {
            if v == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        config.connections.max_connections = self.max_connections;
        config.connections.max_connections_per_client = self.max_connections_per_client;
        config.connections.header_timeout_ms = self.header_timeout_ms;
        config.connections.idle_timeout_ms = self.idle_timeout_ms;
        config.stale_after_ms = self.stale_after_ms;
        config.auto_rollout = self.auto_rollout;
        config.tls = self.server_tls()?;
        Ok(config)
    }

    /// `--tls-cert`/`--tls-key`, or `--plain-http` on loopback; neither is an error.
    fn server_tls(&self) -> anyhow::Result<ServerTls> {
        let tls = match (&self.tls_cert, &self.tls_key, self.plain_http) {
            (Some(cert), Some(key), false) => ServerTls::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None, true) => ServerTls::PlainHttp,
            _ => bail!(
                "give --tls-cert FILE and --tls-key FILE (`rampart tls init DIR` makes a pair), \
                 or --plain-http on a loopback --listen address"
            ),
        };
        tls.check(self.listen)?;
        Ok(tls)
    }
}

/// Runs `rampart control` until SIGTERM or SIGINT.
pub fn run(args: ControlArgs) -> anyhow::Result<ExitCode> {
    rampart_host::log::init();
    let config = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let server = Server::start(config).await?;
        {
            // The address on stdout, one line, so a script (or a test) that asked for port 0
            // learns the port.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "rampart control listening on {}", server.url());
            let _ = out.flush();
        }
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown requested");
        server.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reads and verifies a root and the keyset it signs, at the wall clock's time.
fn load_keyset(root: &Path, keyset: &Path) -> anyhow::Result<(Root, Keyset)> {
    let now = rampart_host::clock::now_ms();
    let root_bytes = file::read_capped(root, rampart_artifact::MAX_TRUST_FILE_BYTES)?;
    let root_doc =
        Root::trust(&root_bytes, now).with_context(|| format!("root {}", root.display()))?;
    let bytes = file::read_capped(keyset, rampart_artifact::MAX_TRUST_FILE_BYTES)?;
    let keyset = Keyset::verify(&bytes, &root_doc, None, now)
        .with_context(|| format!("keyset {}", keyset.display()))?;
    Ok((root_doc, keyset))
}

fn read_text(path: &Path) -> Result<String, file::Error> {
    file::read_text(path, MAX_SMALL_FILE_BYTES)
}

/// `--store`: `sqlite` or a `nats://` URL list.
fn parse_store(text: &str) -> Result<StoreSpec, String> {
    StoreSpec::parse(text).map_err(|e| match e {
        crate::store::StoreError::Backend(why) => {
            format!("expected `sqlite` or `nats://HOST:PORT[,HOST:PORT…]` ({why})")
        }
        other => other.to_string(),
    })
}
