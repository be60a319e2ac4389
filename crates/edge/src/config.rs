//! The edge's settings: a TOML file (`--config`) and flags, merged (flags win) and checked
//! into one [`Config`].
//!
//! Relative paths in the file are relative to the file's directory, so a config file and its
//! keys can move together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_artifact::{Contract, Keyring};
use rampart_ingest::config::{
    DEFAULT_SOAK_REQUESTS, DEFAULT_SOAK_SECS, DEFAULT_STANDALONE_SOAK_SECS,
};
use rampart_ingest::sentinel::{
    DEFAULT_CRASH_THRESHOLD, DEFAULT_RECURRENCE_DEATHS, DEFAULT_RECURRENCE_WINDOW_SECS,
    DEFAULT_SAFE_MODE_THRESHOLD, DEFAULT_WINDOW_SECS,
};
use serde::Deserialize;

use crate::agent::AgentConfig;
use crate::module::{FailPolicy, Rules};
use crate::proxy::{OriginTimeouts, Upstream};
use rampart_ingest::ModuleStateLost;

/// Where the proxy listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Where the admin API listens unless told otherwise: loopback only.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// Client connections served at once; more wait in the kernel's accept queue. Each costs a
/// task and two sockets (client and pooled origin), so this bounds file descriptors too.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Proxy worker threads when not set: one per available core (each runs its own
/// single-threaded runtime, listener and origin pool).
pub const DEFAULT_WORKERS: usize = 0;

/// Most proxy worker threads accepted.
pub const MAX_WORKERS: usize = 256;

/// Admin connections served at once: operators and one scraper, not traffic.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// A kept-alive client connection with no request for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A new client connection with no complete request head for this long is closed (a
/// slow-loris client, or one that sends nothing, gives its slot back quickly).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Client connections one address may hold at once across every worker; more are answered
/// 429 and closed. Behind a load balancer every client has its address: raise it, or set 0
/// (no cap).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 1_024;

/// After SIGTERM/SIGINT, how long in-flight requests may take before they are cut.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the watch dir is listed.
pub const DEFAULT_WATCH_POLL: Duration = Duration::from_millis(200);

/// Largest config file read.
pub const MAX_CONFIG_FILE_BYTES: usize = 64 * 1024;

/// The edge's settings after merging file and flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// The origin.
    pub upstream: Upstream,
    /// Where the admin API listens.
    pub admin: SocketAddr,
    /// The admin token's file (`None`: `DATA_DIR/admin.token`, made at the first start).
    pub admin_token_file: Option<PathBuf>,
    /// Last-known-good, archive, journal and switches.
    pub data_dir: PathBuf,
    /// Feature files dropped here are applied.
    pub watch_dir: Option<PathBuf>,
    /// How often the watch dir is listed.
    pub watch_poll: Duration,
    /// Keys whose signatures are trusted.
    pub keyring: Keyring,
    /// What this edge accepts.
    pub contract: Contract,
    /// Block rule and fail policy.
    pub rules: Rules,
    /// Soak before a version becomes last-known-good.
    pub soak: Soak,
    /// Crash-loop thresholds.
    pub sentinel: Sentinel,
    /// The kill switch at boot when `module.json` and its copy are both unreadable.
    pub module_state_lost: ModuleStateLost,
    /// Connection and time bounds.
    pub limits: Limits,
    /// Whether the test hooks (a module panic on request) are on. Off unless the process
    /// started with `RAMPART_TEST_HOOKS=1`.
    pub test_hooks: bool,
    /// The control plane this edge follows (`--control`); `None`: watch dir and admin only.
    pub control: Option<AgentConfig>,
    /// The root and keyset (`--root`, `--keyset`): artifacts from the keyset's generator keys
    /// only (instead of `keyring`), orders signed by its director keys, rotation without
    /// restart. `None`: `keyring` and unsigned answers (the legacy/dev path).
    pub trust: Option<crate::trust::TrustConfig>,
    /// The kill bucket to watch over NATS (`--nats`; needs `trust`): kill switches that
    /// reach the edge without the control plane.
    pub nats: Option<crate::agent::kill::KillWatchConfig>,
}

/// Soak settings (seconds and requests without a module error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Soak {
    /// Seconds of serving.
    pub secs: u64,
    /// Requests served.
    pub requests: u64,
}

/// Crash-loop sentinel settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sentinel {
    /// Deaths after activating one version that poison it.
    pub crashes: u32,
    /// Seconds in which deaths count.
    pub window_secs: u64,
    /// Deaths in all that boot with the module off.
    pub safe_mode_after: u32,
    /// Deaths with one version active within `recurrence_window_secs`, at any uptime, that
    /// poison it (0: off).
    pub recurrence_deaths: u32,
    /// The recurrence window, seconds.
    pub recurrence_window_secs: u64,
}

/// Connection and time bounds of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Proxy worker threads; 0 means one per available core.
    pub workers: usize,
    /// Client connections served at once, per worker.
    pub max_connections: usize,
    /// Client connections one address may hold at once, all workers together; 0: no cap.
    pub max_connections_per_client: usize,
    /// Time a new connection has to send its first complete request head.
    pub header_timeout: Duration,
    /// Idle client connection timeout.
    pub idle_timeout: Duration,
    /// Drain bound at shutdown.
    pub drain_timeout: Duration,
    /// Timeouts toward the origin.
    pub origin: OriginTimeouts,
}

/// The config file: every field optional; flags override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--upstream`.
    pub upstream: Option<String>,
    /// `--admin`.
    pub admin: Option<SocketAddr>,
    /// `--admin-allow-remote`.
    pub admin_allow_remote: Option<bool>,
    /// `--admin-token-file`.
    pub admin_token_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--watch-dir`.
    pub watch_dir: Option<PathBuf>,
    /// `--watch-poll-ms`.
    pub watch_poll_ms: Option<u64>,
    /// `--pubkey`, repeatable.
    pub pubkeys: Option<Vec<PathBuf>>,
    /// `--contract`.
    pub contract: Option<PathBuf>,
    /// `--block-below`.
    pub block_below: Option<u8>,
    /// `--fail-policy`.
    pub fail_policy: Option<FailPolicy>,
    /// `--module-state-lost`.
    pub module_state_lost: Option<ModuleStateLost>,
    /// `--soak-secs`, `--soak-requests`.
    pub soak: Option<SoakFile>,
    /// `--sentinel-*`.
    pub sentinel: Option<SentinelFile>,
    /// `--max-connections` and the timeouts.
    pub limits: Option<LimitsFile>,
    /// `--control` and the node's identity.
    pub control: Option<ControlFile>,
    /// `--root`, `--keyset`, `--keyset-poll-ms`.
    pub trust: Option<TrustFile>,
}

/// `[trust]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    /// `--root`.
    pub root: Option<PathBuf>,
    /// `--keyset`.
    pub keyset: Option<PathBuf>,
    /// `--keyset-poll-ms`.
    pub poll_ms: Option<u64>,
}

/// `[control]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlFile {
    /// `--control`.
    pub url: Option<String>,
    /// `--node-id`.
    pub node_id: Option<String>,
    /// `--pop`.
    pub pop: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--canary`.
    pub canary: Option<bool>,
    /// `--control-token-file`.
    pub token_file: Option<PathBuf>,
    /// `--enroll-token-file`.
    pub enroll_token_file: Option<PathBuf>,
    /// `--beat-interval-ms`.
    pub beat_interval_ms: Option<u64>,
    /// `--control-ca`.
    pub ca_file: Option<PathBuf>,
    /// `--control-plain-http`.
    pub plain_http: Option<bool>,
}

/// `[soak]` in the config file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoakFile {
    /// Seconds.
    pub secs: Option<u64>,
    /// Requests.
    pub requests: Option<u64>,
}

/// `[sentinel]` in the config file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelFile {
    /// Deaths that poison a version.
    pub crashes: Option<u32>,
    /// Window in seconds.
    pub window_secs: Option<u64>,
    /// Deaths that boot with the module off.
    pub safe_mode_after: Option<u32>,
    /// Deaths of one version, at any uptime, that poison it.
    pub recurrence_deaths: Option<u32>,
    /// The recurrence window, seconds.
    pub recurrence_window_secs: Option<u64>,
}

/// `[limits]` in the config file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Proxy worker threads.
    pub workers: Option<usize>,
    /// Client connections served at once.
    pub max_connections: Option<usize>,
    /// Client connections per address (0: no cap).
    pub max_connections_per_client: Option<usize>,
    /// First request head timeout, ms.
    pub header_timeout_ms: Option<u64>,
    /// Origin connect timeout, ms.
    pub connect_timeout_ms: Option<u64>,
    /// Origin response-head timeout, ms.
    pub response_header_timeout_ms: Option<u64>,
    /// Idle client connection timeout, s.
    pub idle_timeout_secs: Option<u64>,
    /// Drain bound at shutdown, s.
    pub drain_timeout_secs: Option<u64>,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A required setting is missing.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A setting has an unusable value.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The flag or key.
        setting: &'static str,
        /// Why.
        reason: String,
    },
}

// === impl FileConfig ===

impl FileConfig {
    /// Parses the file's text; `base` is the file's directory, against which relative paths
    /// are resolved.
    pub fn parse(text: &str, base: &Path) -> Result<Self, toml::de::Error> {
        let mut file: FileConfig = toml::from_str(text)?;
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut file.data_dir {
            rebase(p);
        }
        if let Some(p) = &mut file.watch_dir {
            rebase(p);
        }
        if let Some(p) = &mut file.contract {
            rebase(p);
        }
        if let Some(p) = &mut file.admin_token_file {
            rebase(p);
        }
        for p in file.pubkeys.iter_mut().flatten() {
            rebase(p);
        }
        if let Some(p) = file.control.as_mut().and_then(|c| c.token_file.as_mut()) {
            rebase(p);
        }
        if let Some(p) = file
            .control
            .as_mut()
            .and_then(|c| c.enroll_token_file.as_mut())
        {
            rebase(p);
        }
        if let Some(p) = file.control.as_mut().and_then(|c| c.ca_file.as_mut()) {
            rebase(p);
        }
        if let Some(t) = file.trust.as_mut() {
            for p in [&mut t.root, &mut t.keyset].into_iter().flatten() {
                rebase(p);
            }
        }
        Ok(file)
    }
}

// === impl Soak ===

impl Default for Soak {
    /// The store's defaults with a control plane (60 s and 1,000 requests).
    fn default() -> Self {
        Soak {
            secs: DEFAULT_SOAK_SECS,
            requests: DEFAULT_SOAK_REQUESTS,
        }
    }
}

impl Soak {
    /// The defaults without a control plane (watch-dir mode): 10 minutes and 1,000 requests,
    /// since no fleet-wide watch blesses the version.
    pub fn standalone() -> Self {
        Soak {
            secs: DEFAULT_STANDALONE_SOAK_SECS,
            ..Soak::default()
        }
    }
}

// === impl Sentinel ===

impl Default for Sentinel {
    /// The store's defaults (3 deaths in 60 s poison a version, 6 turn the module off).
    fn default() -> Self {
        Sentinel {
            crashes: DEFAULT_CRASH_THRESHOLD,
            window_secs: DEFAULT_WINDOW_SECS,
            safe_mode_after: DEFAULT_SAFE_MODE_THRESHOLD,
            recurrence_deaths: DEFAULT_RECURRENCE_DEATHS,
            recurrence_window_secs: DEFAULT_RECURRENCE_WINDOW_SECS,
        }
    }
}

// === impl Limits ===

impl Default for Limits {
    fn default() -> Self {
        Limits {
            workers: DEFAULT_WORKERS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            origin: OriginTimeouts::default(),
        }
    }
}

// === impl Config ===

impl Config {
    /// A config with every default, for tests and embedding: listen and admin on
    /// 127.0.0.1 port 0, no watch dir, the given origin, data dir, keys and contract.
    pub fn new(
        upstream: Upstream,
        data_dir: PathBuf,
        keyring: Keyring,
        contract: Contract,
    ) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token_file: None,
            data_dir,
            watch_dir: None,
            watch_poll: DEFAULT_WATCH_POLL,
            keyring,
            contract,
            rules: Rules::default(),
            soak: Soak::default(),
            sentinel: Sentinel::default(),
            module_state_lost: ModuleStateLost::default(),
            limits: Limits::default(),
            test_hooks: false,
            control: None,
            trust: None,
            nats: None,
        }
    }
}

/// Refuses an admin address that is not loopback unless explicitly allowed: the admin API
/// can turn the bot module off and force versions.
pub fn check_admin(admin: SocketAddr, allow_remote: bool) -> Result<(), ConfigError> {
    if admin.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting: "--admin",
            reason: format!(
                "{admin} is not a loopback address; the admin API can switch the bot module \
                 off, so pass --admin-allow-remote to expose it deliberately"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_paths_are_rebased() {
        let text = r#"
            listen = "127.0.0.1:8081"
            upstream = "http://127.0.0.1:9000"
            admin = "127.0.0.1:9902"
            data_dir = "data"
            watch_dir = "/abs/watch"
            pubkeys = ["keys/a.pub", "/etc/b.pub"]
            contract = "edge.toml"
            admin_token_file = "admin.token"
            block_below = 20
            fail_policy = "closed"
            [soak]
            secs = 5
            [sentinel]
            crashes = 2
            [limits]
            max_connections = 10
            response_header_timeout_ms = 500
            [control]
            url = "https://control.internal:7700"
            ca_file = "tls/ca.pem"
        "#;
        let f = FileConfig::parse(text, Path::new("/etc/rampart")).unwrap();
        assert_eq!(f.data_dir.unwrap(), Path::new("/etc/rampart/data"));
        assert_eq!(f.watch_dir.unwrap(), Path::new("/abs/watch"));
        assert_eq!(
            f.admin_token_file.unwrap(),
            Path::new("/etc/rampart/admin.token")
        );
        assert_eq!(
            f.pubkeys.unwrap(),
            [
                PathBuf::from("/etc/rampart/keys/a.pub"),
                PathBuf::from("/etc/b.pub")
            ]
        );
        assert_eq!(f.fail_policy, Some(FailPolicy::Closed));
        assert_eq!(f.soak.unwrap().secs, Some(5));
        assert_eq!(f.limits.unwrap().response_header_timeout_ms, Some(500));
        let control = f.control.unwrap();
        assert_eq!(
            control.ca_file.unwrap(),
            Path::new("/etc/rampart/tls/ca.pem")
        );
        assert_eq!(control.plain_http, None);
    }

    #[test]
    fn the_trust_table_rebases_its_paths() {
        let text =
            "[trust]\nroot = \"trust/root.json\"\nkeyset = \"/srv/keyset.json\"\npoll_ms = 500\n";
        let t = FileConfig::parse(text, Path::new("/etc/rampart"))
            .unwrap()
            .trust
            .unwrap();
        assert_eq!(t.root.unwrap(), Path::new("/etc/rampart/trust/root.json"));
        assert_eq!(t.keyset.unwrap(), Path::new("/srv/keyset.json"));
        assert_eq!(t.poll_ms, Some(500));
        assert!(FileConfig::parse("[trust]\nroots = \"x\"", Path::new("/")).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(FileConfig::parse("listne = \"x\"", Path::new("/")).is_err());
        assert!(FileConfig::parse("fail_policy = \"ajar\"", Path::new("/")).is_err());
        assert!(FileConfig::parse("[soak]\nsecondz = 1", Path::new("/")).is_err());
        assert!(FileConfig::parse("", Path::new("/")).is_ok());
    }

    #[test]
    fn admin_must_be_loopback_unless_allowed() {
        let local: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let v6: SocketAddr = "[::1]:9901".parse().unwrap();
        let remote: SocketAddr = "0.0.0.0:9901".parse().unwrap();
        assert!(check_admin(local, false).is_ok());
        assert!(check_admin(v6, false).is_ok());
        assert!(check_admin(remote, false).is_err());
        assert!(check_admin(remote, true).is_ok());
    }

    #[test]
    fn the_example_config_file_parses() {
        let text = include_str!("../examples/edge.toml");
        let f = FileConfig::parse(text, Path::new("/etc/rampart")).unwrap();
        assert_eq!(f.block_below, Some(20));
        assert_eq!(f.fail_policy, Some(FailPolicy::Open));
        assert_eq!(f.limits.unwrap().max_connections, Some(10_000));
        assert_eq!(f.sentinel.unwrap().safe_mode_after, Some(6));
    }
}
