//! The control plane's settings, and every default as a named constant.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rampart_api::limits::DEFAULT_BEAT_INTERVAL_MS;
use rampart_artifact::{Contract, Keyring, SecretKey};
use rampart_rollout::{PlanPolicy, RolloutPolicy};
use serde::{Deserialize, Serialize};

use crate::auth::Tokens;
use crate::tls::ServerTls;

/// Where the API listens unless told otherwise (loopback: exposing it is a decision).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// A node without a heartbeat for this long is `stale`, and is left out of new rollout
/// plans (a plan with a dead node would hold its wave until the heartbeat gate fails it).
pub const DEFAULT_STALE_AFTER_MS: u64 = 10_000;

/// The rollout driver reconciles at least this often when a rollout asks for nothing sooner.
pub const MAX_RECONCILE_INTERVAL_MS: u64 = 1_000;

/// Two reconciles of one rollout are at least this far apart, however many heartbeats
/// nudge the driver: a thousand edges beating every second cost one reconcile per gap.
pub const MIN_RECONCILE_GAP_MS: u64 = 25;

/// A running rollout's observations are persisted at least this often even when its phase
/// does not change, so a restarted control plane resumes with recent evidence.
pub const PERSIST_OBSERVATIONS_MS: u64 = 5_000;

/// Auto-rollout tries a refused version again after this long (the fleet may have come up,
/// a contract may have changed); a version that started is never started again by it.
pub const AUTO_ROLLOUT_RETRY_MS: u64 = 30_000;

/// Heartbeats are written to the store in one transaction this often.
pub const BEAT_FLUSH_MS: u64 = 500;

/// How often the leader takes break-glass kill switches from the NATS kill bucket into its
/// state and audit log ([`Service::import_break_glass`](crate::service::Service::import_break_glass)).
pub const KILL_IMPORT_MS: u64 = 2_000;

/// Most nodes a control plane registers.
pub const MAX_NODES: usize = 100_000;

/// The policy file's largest size.
pub const MAX_POLICY_FILE_BYTES: usize = 64 * 1024;

/// Most connections open at once (`--max-connections`). Long-polls hold one each, so this
/// bounds the fleet one control plane serves at once. Past it a new connection is accepted,
/// answered 503 with `retry-after: 1` and closed (`refused_over_cap` in `/v1/health`), so
/// its descriptor comes back at once. At start the cap is lowered to the process's
/// descriptor budget (`RLIMIT_NOFILE` soft limit) minus [`FD_RESERVE`] when that is
/// smaller, with a warning: a cap above the budget would not protect anything.
pub const MAX_CONNECTIONS: usize = 16_384;

/// Descriptors kept out of the connection cap for everything else (SQLite and its journal,
/// the listener, certificate and keyset reads, logs, the connections being refused).
pub const FD_RESERVE: usize = 256;

/// Most connections one client address holds at once (`--max-connections-per-client`; 0: no
/// cap); over it a new one is answered 429 and closed. Generous because a fleet of edges
/// behind one NAT (or one load balancer) shares an address and each edge holds one
/// long-poll: 256 edges per address. Loopback counts like any other address.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;

/// A new connection (its TLS handshake included) that has not sent a complete request head
/// by then is closed (`--header-timeout-ms`): a client that sends nothing, or a partial
/// head, gives its descriptor back.
pub const HEADER_TIMEOUT_MS: u64 = 10_000;

/// A keep-alive connection with no request in progress for this long is closed
/// (`--idle-timeout-ms`). A long-poll heartbeat is a request in progress, not idleness, for
/// as long as it waits (at most `rampart_api::limits::MAX_LONG_POLL_MS`).
pub const IDLE_TIMEOUT_MS: u64 = 60_000;

/// Above this share of [`MAX_CONNECTIONS`] (in percent) the control plane keeps its
/// connections for the fleet: requests other than node registration, enrollment,
/// heartbeats and `/v1/health` are answered 503 with `retry-after`, and every response
/// closes its connection instead of keeping it alive (`shed` in `/v1/health`).
pub const HIGH_WATER_PERCENT: usize = 90;

/// How long a graceful shutdown waits for requests in flight (long-polls are answered at
/// once on shutdown).
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;

/// A consumer contract counts in publish validation once this many enrolled, live nodes of
/// its consumer group share it (a smaller group: all of its nodes): one node, compromised or
/// misconfigured, cannot block every publish.
pub const DEFAULT_CONTRACT_QUORUM: usize = 2;

/// A node not seen for this long (10 minutes) has its contract aged out of publish
/// validation, with an audit entry; it counts again from its next heartbeat.
pub const DEFAULT_CONTRACT_MAX_AGE_MS: u64 = 600_000;

/// What a node's word is worth: `[nodes]` in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodePolicy {
    /// See [`DEFAULT_CONTRACT_QUORUM`] (at least 1).
    pub contract_quorum: usize,
    /// See [`DEFAULT_CONTRACT_MAX_AGE_MS`].
    pub contract_max_age_ms: u64,
}

/// How the API's connections are bounded (flags `--max-connections`,
/// `--max-connections-per-client`, `--header-timeout-ms`, `--idle-timeout-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// See [`MAX_CONNECTIONS`] (lowered to the descriptor budget at start).
    pub max_connections: usize,
    /// See [`MAX_CONNECTIONS_PER_CLIENT`]; 0: no cap.
    pub max_connections_per_client: usize,
    /// See [`HEADER_TIMEOUT_MS`].
    pub header_timeout_ms: u64,
    /// See [`IDLE_TIMEOUT_MS`].
    pub idle_timeout_ms: u64,
    /// How long a shutdown waits for requests in flight: [`SHUTDOWN_GRACE_MS`].
    pub drain_ms: u64,
}

/// Everything a control plane needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API's address (port 0: any free port, see [`crate::Server::addr`]).
    pub listen: SocketAddr,
    /// Where the store lives (SQLite; TLS and epoch files in every case).
    pub data_dir: PathBuf,
    /// Which store: SQLite in `data_dir` (the default) or NATS JetStream.
    pub store: crate::store::StoreSpec,
    /// Who may write.
    pub tokens: Tokens,
    /// Keys an artifact must be signed with.
    pub keyring: Keyring,
    /// Contracts every publish is checked against besides the registered ones (when none is
    /// registered or given, the default contract: 200 features, 1 MiB).
    pub contracts: Vec<Contract>,
    /// How rollouts cut the fleet into waves.
    pub plan_policy: PlanPolicy,
    /// Rollout timing and gate thresholds.
    pub rollout_policy: RolloutPolicy,
    /// The heartbeat interval told to edges.
    pub beat_interval_ms: u64,
    /// See [`DEFAULT_STALE_AFTER_MS`].
    pub stale_after_ms: u64,
    /// Connection caps and timeouts.
    pub connections: ConnLimits,
    /// Start a rollout by itself whenever the newest published artifact is above the fleet's
    /// version and nothing runs (staged and gated like any other; audited as `control`).
    pub auto_rollout: bool,
    /// Contract quorum and ageing.
    pub node_policy: NodePolicy,
    /// TLS for the API (`--tls-cert`/`--tls-key`), or plain HTTP, which
    /// [`crate::Server::start`] refuses on an address that is not loopback. [`Config::new`]
    /// sets plain HTTP (its listen address is loopback); `rampart control` asks for one of
    /// the two explicitly.
    pub tls: ServerTls,
    /// The director key: signs the order in every heartbeat answer (epoch, sequence). `None`
    /// sends unsigned answers, which edges with a keyset refuse (the legacy/dev path).
    pub director_key: Option<Arc<SecretKey>>,
    /// `--reinitialize --reason TEXT`: start on a new epoch even when the database is behind
    /// its epoch file (audited with this reason). See [`crate::epoch`].
    pub reinitialize: Option<String>,
    /// The root and keyset (`--root`, `--keyset`), re-read while running ([`crate::trust`]);
    /// `keyring` then already holds the keyset's generator keys.
    pub trust: Option<crate::trust::TrustConfig>,
}

/// The policy file (TOML): how waves are cut and gates judge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyFile {
    /// Waves.
    pub plan: PlanPolicy,
    /// Timing and gates.
    pub rollout: RolloutPolicy,
    /// Contract quorum and ageing.
    pub nodes: NodePolicy,
}

// === impl NodePolicy ===

impl Default for NodePolicy {
    fn default() -> Self {
        NodePolicy {
            contract_quorum: DEFAULT_CONTRACT_QUORUM,
            contract_max_age_ms: DEFAULT_CONTRACT_MAX_AGE_MS,
        }
    }
}

// === impl ConnLimits ===

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: MAX_CONNECTIONS,
            max_connections_per_client: MAX_CONNECTIONS_PER_CLIENT,
            header_timeout_ms: HEADER_TIMEOUT_MS,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            drain_ms: SHUTDOWN_GRACE_MS,
        }
    }
}

impl ConnLimits {
    /// The connection cap this process can honour: `max_connections`, lowered to
    /// `open_files - FD_RESERVE` when the descriptor budget is smaller (at least 1).
    pub fn effective_cap(&self, open_files: Option<u64>) -> usize {
        let budget = open_files
            .and_then(|n| usize::try_from(n).ok())
            .map_or(usize::MAX, |n| n.saturating_sub(FD_RESERVE));
        self.max_connections.min(budget).max(1)
    }

    /// Open connections from which the control plane sheds all but fleet traffic
    /// ([`HIGH_WATER_PERCENT`] of `cap`, at least 1).
    pub fn high_water(cap: usize) -> usize {
        (cap.saturating_mul(HIGH_WATER_PERCENT) / 100).max(1)
    }
}

// === impl Config ===

impl Config {
    /// A config with every default, for `data_dir` and `keyring`.
    pub fn new(data_dir: PathBuf, tokens: Tokens, keyring: Keyring) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            data_dir,
            store: crate::store::StoreSpec::Sqlite,
            tokens,
            keyring,
            contracts: Vec::new(),
            plan_policy: PlanPolicy::default(),
            rollout_policy: RolloutPolicy::default(),
            beat_interval_ms: DEFAULT_BEAT_INTERVAL_MS,
            stale_after_ms: DEFAULT_STALE_AFTER_MS,
            connections: ConnLimits::default(),
            auto_rollout: false,
            node_policy: NodePolicy::default(),
            tls: ServerTls::PlainHttp,
            director_key: None,
            reinitialize: None,
            trust: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_listen_address_is_the_documented_one() {
        let c = Config::new(PathBuf::from("x"), Tokens::default(), Keyring::default());
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn the_connection_cap_fits_the_descriptor_budget() {
        let l = ConnLimits::default();
        assert_eq!(l.effective_cap(None), MAX_CONNECTIONS);
        assert_eq!(l.effective_cap(Some(1_000_000)), MAX_CONNECTIONS);
        // The common default soft limit: the cap leaves the reserve free.
        assert_eq!(l.effective_cap(Some(1_024)), 1_024 - FD_RESERVE);
        // A budget below the reserve still serves one connection.
        assert_eq!(l.effective_cap(Some(10)), 1);
        assert_eq!(ConnLimits::high_water(16_384), 14_745);
        assert_eq!(ConnLimits::high_water(1), 1);
    }

    #[test]
    fn a_policy_file_may_set_only_what_it_changes() {
        let p: PolicyFile = toml::from_str("[rollout]\ntick_ms = 250\n").unwrap();
        assert_eq!(p.rollout.tick_ms, 250);
        assert_eq!(p.plan, PlanPolicy::default());
        assert!(toml::from_str::<PolicyFile>("[rollouts]\n").is_err());
        assert_eq!(p.nodes, NodePolicy::default());
        let n: PolicyFile = toml::from_str("[nodes]\ncontract_quorum = 3\n").unwrap();
        assert_eq!(n.nodes.contract_quorum, 3);
        assert_eq!(n.nodes.contract_max_age_ms, DEFAULT_CONTRACT_MAX_AGE_MS);
    }
}
