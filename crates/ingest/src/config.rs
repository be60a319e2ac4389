//! Everything the store is configured with, every default a named constant, and the layout
//! of the data dir.

use std::path::{Path, PathBuf};

use rampart_artifact::limits::wire_limit;
use rampart_artifact::{Contract, Keyring};

use crate::limiter::DEFAULT_LOG_INTERVAL_MS;
use crate::sentinel::SentinelConfig;

/// Seconds a new version must serve before it becomes last-known-good, with a control plane
/// (which must also bless it: its rollout watched the whole fleet for longer).
pub const DEFAULT_SOAK_SECS: u64 = 60;

/// Seconds a new version must serve before it becomes last-known-good without a control
/// plane (watch-dir mode): nobody else watches, so the local soak must outlast a file that
/// kills the process minutes after loading it (about 5 on 29 October 2025).
pub const DEFAULT_STANDALONE_SOAK_SECS: u64 = 10 * 60;

/// Last-known-good versions kept in `lkg/` (if the newest is poisoned, the one before
/// serves).
pub const DEFAULT_LKG_KEEP: usize = 3;

/// Most deaths of earlier runs waiting to be reported to the control plane; beyond it the
/// oldest are dropped (and counted).
pub const MAX_PENDING_DEATHS: usize = 64;

/// Requests a new version must serve, without a module error, before it becomes
/// last-known-good (an idle edge never promotes a file it has not exercised).
pub const DEFAULT_SOAK_REQUESTS: u64 = 1_000;

/// Applied files kept in `versions/` for `pin`.
pub const DEFAULT_ARCHIVE_LEN: usize = 16;

/// Largest boot journal before it is compacted (about 800 events).
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = 64 * 1024;

/// What the kill switch is at boot when `module.json` and its copy both exist but neither
/// can be read (damaged, truncated, not a regular file). A missing pair is a fresh data dir
/// (module on); a readable copy is used as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleStateLost {
    /// The module stays off until an operator (admin API) or the control plane (its next
    /// answer carries the fleet's switch) turns it on: an operator who turned it off because
    /// it crashed the process never sees it come back by itself. The default.
    #[default]
    Off,
    /// The module runs: scoring matters more here than the risk above.
    On,
}

/// `--module-state-lost` was neither `off` nor `on`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("module_state_lost must be `off` or `on`, not {0:?}")]
pub struct ParseModuleStateLostError(String);

impl std::str::FromStr for ModuleStateLost {
    type Err = ParseModuleStateLostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(ModuleStateLost::Off),
            "on" => Ok(ModuleStateLost::On),
            other => Err(ParseModuleStateLostError(other.chars().take(32).collect())),
        }
    }
}

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where last-known-good, the archive, the journal and the switches live.
    pub data_dir: PathBuf,
    /// What this edge accepts.
    pub contract: Contract,
    /// The keys whose signatures this edge trusts (files must be signed).
    pub keyring: Keyring,
    /// When a version becomes last-known-good.
    pub soak: SoakConfig,
    /// When the process is in a crash loop.
    pub sentinel: SentinelConfig,
    /// Applied files kept for `pin` ([`DEFAULT_ARCHIVE_LEN`]; at least 1).
    pub archive_len: usize,
    /// Journal size that triggers compaction ([`DEFAULT_JOURNAL_MAX_BYTES`]).
    pub journal_max_bytes: u64,
    /// Interval in which repeated failures of one kind are counted, not logged
    /// ([`DEFAULT_LOG_INTERVAL_MS`]).
    pub log_interval_ms: u64,
    /// The kill switch when its saved state is lost ([`ModuleStateLost::Off`]).
    pub module_state_lost: ModuleStateLost,
    /// Last-known-good versions kept ([`DEFAULT_LKG_KEEP`]; at least 1).
    pub lkg_keep: usize,
    /// Whether a soaked version must also be blessed by the control plane
    /// ([`Store::set_blessed`](crate::Store::set_blessed)) before it becomes last-known-good:
    /// `true` with a control plane, `false` (the default) in watch-dir mode.
    pub require_blessing: bool,
}

/// The soak a version serves before it is written as last-known-good: both bounds must be
/// met, with no module error on the way (an error restarts the soak).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoakConfig {
    /// Seconds of serving ([`DEFAULT_SOAK_SECS`]).
    pub secs: u64,
    /// Requests served ([`DEFAULT_SOAK_REQUESTS`]).
    pub requests: u64,
}

/// The files under the data dir.
///
/// ```text
/// DATA_DIR/
///   lkg/<v>.rfeat           last-known-good: the exact signed bytes of the last
///                           `lkg_keep` soaked (and blessed) versions
///   versions/<v>.rfeat      the last `archive_len` applied files (for pin)
///   sentinel/journal        boot journal, JSON lines
///   sentinel/poisoned.json  versions refused until a higher one comes
///   module.json             the kill switch, so it survives a restart
///   module.copy.json        a second copy of it, written after the first
/// ```
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

// === impl Config ===

impl Config {
    /// A config with every default.
    pub fn new(data_dir: impl Into<PathBuf>, contract: Contract, keyring: Keyring) -> Self {
        Config {
            data_dir: data_dir.into(),
            contract,
            keyring,
            soak: SoakConfig::default(),
            sentinel: SentinelConfig::default(),
            archive_len: DEFAULT_ARCHIVE_LEN,
            journal_max_bytes: DEFAULT_JOURNAL_MAX_BYTES,
            log_interval_ms: DEFAULT_LOG_INTERVAL_MS,
            module_state_lost: ModuleStateLost::default(),
            lkg_keep: DEFAULT_LKG_KEEP,
            require_blessing: false,
        }
    }

    /// The largest file accepted: a signed envelope around a document at the contract's
    /// `max_bytes`. Files are refused by their length before a byte is read.
    pub fn max_file_bytes(&self) -> usize {
        wire_limit(self.contract.max_bytes())
    }

    /// The data dir's layout.
    pub fn layout(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }
}

// === impl SoakConfig ===

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            secs: DEFAULT_SOAK_SECS,
            requests: DEFAULT_SOAK_REQUESTS,
        }
    }
}

// === impl DataDir ===

impl DataDir {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        DataDir {
            root: root.to_owned(),
        }
    }

    /// The data dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `lkg/`.
    pub fn lkg_dir(&self) -> PathBuf {
        self.root.join("lkg")
    }

    /// `lkg/<version>.rfeat`: one last-known-good version.
    pub fn lkg_file(&self, version: u64) -> PathBuf {
        self.lkg_dir().join(format!("{version}.rfeat"))
    }

    /// `lkg/current.rfeat`: the layout before the history (migrated at boot).
    pub fn lkg_current(&self) -> PathBuf {
        self.lkg_dir().join("current.rfeat")
    }

    /// `lkg/previous.rfeat`: the layout before the history (migrated at boot).
    pub fn lkg_previous(&self) -> PathBuf {
        self.lkg_dir().join("previous.rfeat")
    }

    /// `versions/`.
    pub fn versions_dir(&self) -> PathBuf {
        self.root.join("versions")
    }

    /// `versions/<version>.rfeat`.
    pub fn version_file(&self, version: u64) -> PathBuf {
        self.versions_dir().join(format!("{version}.rfeat"))
    }

    /// `sentinel/`.
    pub fn sentinel_dir(&self) -> PathBuf {
        self.root.join("sentinel")
    }

    /// `sentinel/journal`.
    pub fn journal(&self) -> PathBuf {
        self.sentinel_dir().join("journal")
    }

    /// `sentinel/poisoned.json`.
    pub fn poisoned(&self) -> PathBuf {
        self.sentinel_dir().join("poisoned.json")
    }

    /// `module.json`.
    pub fn module_state(&self) -> PathBuf {
        self.root.join("module.json")
    }

    /// `module.copy.json`: the kill switch's second copy.
    pub fn module_state_copy(&self) -> PathBuf {
        self.root.join("module.copy.json")
    }
}
