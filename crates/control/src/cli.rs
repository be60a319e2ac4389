//! `rampart control`: flags, and the process around a [`Server`]: tracing, the runtime,
//! signals.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use rampart_artifact::{Contract, Keyring, PublicKey};
use rampart_host::file;

use crate::auth::Tokens;
use crate::config::{
    Config, DEFAULT_LISTEN, DEFAULT_STALE_AFTER_MS, MAX_POLICY_FILE_BYTES, PolicyFile,
};
use crate::server::Server;

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
    /// A token file: `NAME ROLE SECRET` per line (roles admin, publisher, edge), or one bare
    /// secret (an admin named `operator`); repeatable.
    #[arg(long, value_name = "FILE")]
    pub token_file: Vec<PathBuf>,
    /// An environment variable holding one admin token (named after the variable);
    /// repeatable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Vec<String>,
    /// A trusted public key (PEM); repeatable, at least one.
    #[arg(long = "pubkey", value_name = "FILE", required = true)]
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
    /// Roll out each newly published version by itself (staged and gated, audited), as soon
    /// as no rollout runs.
    #[arg(long)]
    pub auto_rollout: bool,
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
        let mut config = Config::new(self.data_dir.clone(), tokens, Keyring::new(keys));
        config.listen = self.listen;
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
        }
        if self.beat_interval_ms == 0 {
            bail!("--beat-interval-ms must be at least 1");
        }
        config.beat_interval_ms = self.beat_interval_ms;
        config.stale_after_ms = self.stale_after_ms;
        config.auto_rollout = self.auto_rollout;
        Ok(config)
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
            let _ = writeln!(out, "rampart control listening on http://{}", server.addr());
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

fn read_text(path: &Path) -> Result<String, file::Error> {
    file::read_text(path, MAX_SMALL_FILE_BYTES)
}
