//! The control plane's settings, and every default as a named constant.

use std::net::SocketAddr;
use std::path::PathBuf;

use rampart_api::limits::DEFAULT_BEAT_INTERVAL_MS;
use rampart_artifact::{Contract, Keyring};
use rampart_rollout::{PlanPolicy, RolloutPolicy};
use serde::{Deserialize, Serialize};

use crate::auth::Tokens;

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

/// Most nodes a control plane registers.
pub const MAX_NODES: usize = 100_000;

/// The policy file's largest size.
pub const MAX_POLICY_FILE_BYTES: usize = 64 * 1024;

/// Most connections served at once; more wait in the kernel's backlog. Long-polls hold one
/// each, so this bounds the fleet one control plane serves at once.
pub const MAX_CONNECTIONS: usize = 16_384;

/// How long a graceful shutdown waits for requests in flight (long-polls are answered at
/// once on shutdown).
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;

/// Everything a control plane needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API's address (port 0: any free port, see [`crate::Server::addr`]).
    pub listen: SocketAddr,
    /// Where the store lives.
    pub data_dir: PathBuf,
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
    /// Start a rollout by itself whenever the newest published artifact is above the fleet's
    /// version and nothing runs (staged and gated like any other; audited as `control`).
    pub auto_rollout: bool,
}

/// The policy file (TOML): how waves are cut and gates judge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyFile {
    /// Waves.
    pub plan: PlanPolicy,
    /// Timing and gates.
    pub rollout: RolloutPolicy,
}

// === impl Config ===

impl Config {
    /// A config with every default, for `data_dir` and `keyring`.
    pub fn new(data_dir: PathBuf, tokens: Tokens, keyring: Keyring) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            data_dir,
            tokens,
            keyring,
            contracts: Vec::new(),
            plan_policy: PlanPolicy::default(),
            rollout_policy: RolloutPolicy::default(),
            beat_interval_ms: DEFAULT_BEAT_INTERVAL_MS,
            stale_after_ms: DEFAULT_STALE_AFTER_MS,
            auto_rollout: false,
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
    fn a_policy_file_may_set_only_what_it_changes() {
        let p: PolicyFile = toml::from_str("[rollout]\ntick_ms = 250\n").unwrap();
        assert_eq!(p.rollout.tick_ms, 250);
        assert_eq!(p.plan, PlanPolicy::default());
        assert!(toml::from_str::<PolicyFile>("[rollouts]\n").is_err());
    }
}
