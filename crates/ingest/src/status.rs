//! What the admin `/status` shows: the store's whole state, serializable.

use rampart_artifact::{Digest, Issue};
use serde::Serialize;

use crate::journal::Poisoned;
use crate::sentinel::{BootDecision, Death, SentinelConfig};
use crate::snapshot::{Channel, Mode};
use crate::soak::Soak;

/// The store's state for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The version serving, if any.
    pub active: Option<ActiveStatus>,
    /// The kill switch (`false`: requests pass unscored).
    pub module_enabled: bool,
    /// Why the kill switch was last set, when it was.
    pub kill_switch_reason: Option<String>,
    /// Normal, or safe mode (module off) after a crash loop.
    pub mode: Mode,
    /// Whether requests are scored right now (model, switch and mode all allow it).
    pub scoring: bool,
    /// The last file refused, with its issues.
    pub last_rejection: Option<LastRejection>,
    /// Last-known-good on disk.
    pub lkg: LkgStatus,
    /// The soak of the active version.
    pub soak: Option<Soak>,
    /// Versions refused until a higher one comes.
    pub poisoned: Vec<Poisoned>,
    /// What the sentinel decided at boot.
    pub sentinel: SentinelStatus,
    /// The version an operator pinned (break glass), if any.
    pub pinned: Option<u64>,
    /// Whether an operator overrode the normal flow (pin or forced last-known-good).
    pub break_glass: bool,
    /// Versions archived in the data dir, available to pin.
    pub archive: Vec<u64>,
    /// The last failure to read or write the data dir (serving goes on from memory).
    pub last_disk_error: Option<String>,
    /// What went wrong reading the data dir at boot, besides last-known-good (in
    /// [`LkgStatus::boot_problems`]): the journal, the poisoned list, the kill switch's state.
    pub boot_problems: Vec<String>,
    /// Deaths of earlier runs not yet acknowledged by the control plane, oldest first.
    pub pending_deaths: Vec<Death>,
}

/// The version serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveStatus {
    /// Its version.
    pub version: u64,
    /// Its digest.
    pub digest: Digest,
    /// How it got here (`origin` on the wire).
    #[serde(rename = "origin")]
    pub channel: Channel,
    /// When it was swapped in, ms since the Unix epoch.
    pub since_ms: u64,
    /// Its feature count.
    pub features: usize,
}

/// The last refusal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRejection {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Where the file came from (`origin` on the wire).
    #[serde(rename = "origin")]
    pub channel: Channel,
    /// Its version, when it could be read.
    pub version: Option<u64>,
    /// The rejection code.
    pub code: &'static str,
    /// One line for people.
    pub message: String,
    /// The artifact issues (for `invalid`).
    pub issues: Vec<Issue>,
}

/// A version and its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VersionDigest {
    /// The version.
    pub version: u64,
    /// Its digest.
    pub digest: Digest,
}

/// Last-known-good on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LkgStatus {
    /// The newest entry of `history`: what a boot serves first.
    pub current: Option<VersionDigest>,
    /// Every version in `lkg/`, newest first (at most `lkg_keep`).
    pub history: Vec<VersionDigest>,
    /// Whether a version must be blessed by the control plane to be promoted.
    pub require_blessing: bool,
    /// The control plane's latest blessed list, newest first; `None` until one arrives.
    pub blessed: Option<Vec<VersionDigest>>,
    /// Problems found reading them at boot (a corrupt file, a poisoned version).
    pub boot_problems: Vec<String>,
}

/// The sentinel's boot decision and its thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentinelStatus {
    /// What this boot decided.
    pub decision: BootDecision,
    /// When this process booted, ms since the Unix epoch.
    pub boot_at_ms: u64,
    /// The thresholds in force.
    pub config: SentinelConfig,
    /// Whether the boot journal is being written (`false` after a data-dir failure: the
    /// next boot cannot see this run).
    pub journal_ok: bool,
}
