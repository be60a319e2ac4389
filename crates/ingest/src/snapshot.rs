//! What the request path reads: one immutable value behind one `ArcSwap`.

use std::fmt;
use std::sync::Arc;

use rampart_artifact::Digest;
use serde::{Deserialize, Serialize};

/// Everything the request path needs, swapped as one value: it never sees a new model with an
/// old kill switch, or the reverse.
pub struct Snapshot<M> {
    /// The version serving, if any (a fresh edge with no last-known-good has none).
    pub active: Option<Active<M>>,
    /// The kill switch: `false` means requests pass unscored.
    pub module_enabled: bool,
    /// Whether the sentinel turned the module off.
    pub mode: Mode,
}

/// The version serving.
pub struct Active<M> {
    /// Its version.
    pub version: u64,
    /// Its digest.
    pub digest: Digest,
    /// The compiled model.
    pub model: Arc<M>,
    /// How it got here.
    pub channel: Channel,
    /// When it was swapped in, ms since the Unix epoch.
    pub activated_at_ms: u64,
}

/// The way a file came to the store, and so how a version became active; it picks the
/// version rule (only the control plane may send a node back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Loaded from last-known-good on disk at start.
    Boot,
    /// Forced from last-known-good by an operator (break glass).
    LastKnownGood,
    /// A file dropped in the watch dir.
    Watch,
    /// Sent by the control plane.
    Control,
    /// Pinned from the data dir's archive by an operator (break glass).
    Pinned,
}

/// Whether the module runs at all, as the sentinel decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// The module runs when the kill switch allows it.
    Normal,
    /// The process kept dying: the module is off (fail open) until an operator clears it or
    /// a later boot finds the deaths out of the window.
    SafeMode {
        /// Why, for `/status` and logs.
        reason: String,
    },
}

// === impl Snapshot ===

impl<M> Snapshot<M> {
    /// A snapshot with nothing active.
    pub fn empty(module_enabled: bool, mode: Mode) -> Self {
        Snapshot {
            active: None,
            module_enabled,
            mode,
        }
    }

    /// The model to score with, or `None` when requests must pass unscored: no version
    /// active, kill switch off, or safe mode. The one check the request path makes.
    pub fn scoring_model(&self) -> Option<&M> {
        if !self.module_enabled || self.mode != Mode::Normal {
            return None;
        }
        self.active.as_ref().map(|a| &*a.model)
    }

    /// The active version, if any.
    pub fn version(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.version)
    }

    /// The active digest, if any.
    pub fn digest(&self) -> Option<Digest> {
        self.active.as_ref().map(|a| a.digest)
    }

    /// The same snapshot with the kill switch set.
    pub(crate) fn with_module_enabled(&self, module_enabled: bool) -> Self {
        Snapshot {
            active: self.active.clone(),
            module_enabled,
            mode: self.mode.clone(),
        }
    }

    /// The same snapshot in another mode.
    pub(crate) fn with_mode(&self, mode: Mode) -> Self {
        Snapshot {
            active: self.active.clone(),
            module_enabled: self.module_enabled,
            mode,
        }
    }

    /// The same switches with another active version.
    pub(crate) fn with_active(&self, active: Option<Active<M>>) -> Self {
        Snapshot {
            active,
            module_enabled: self.module_enabled,
            mode: self.mode.clone(),
        }
    }
}

impl<M> fmt::Debug for Snapshot<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("active", &self.active)
            .field("module_enabled", &self.module_enabled)
            .field("mode", &self.mode)
            .finish()
    }
}

// === impl Active ===

impl<M> Clone for Active<M> {
    fn clone(&self) -> Self {
        Active {
            version: self.version,
            digest: self.digest,
            model: Arc::clone(&self.model),
            channel: self.channel,
            activated_at_ms: self.activated_at_ms,
        }
    }
}

impl<M> fmt::Debug for Active<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Active")
            .field("version", &self.version)
            .field("digest", &self.digest)
            .field("channel", &self.channel)
            .field("activated_at_ms", &self.activated_at_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> Active<&'static str> {
        Active {
            version: 3,
            digest: Digest::of(b"3"),
            model: Arc::new("model"),
            channel: Channel::Watch,
            activated_at_ms: 0,
        }
    }

    #[test]
    fn scoring_needs_a_model_the_switch_and_normal_mode() {
        let s = Snapshot::empty(true, Mode::Normal).with_active(Some(active()));
        assert_eq!(s.scoring_model(), Some(&"model"));
        assert_eq!(s.with_module_enabled(false).scoring_model(), None);
        let safe = s.with_mode(Mode::SafeMode {
            reason: "test".into(),
        });
        assert_eq!(safe.scoring_model(), None);
        assert_eq!(safe.version(), Some(3));
        assert_eq!(
            Snapshot::<&str>::empty(true, Mode::Normal).scoring_model(),
            None
        );
    }
}
