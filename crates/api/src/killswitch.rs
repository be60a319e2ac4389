//! Kill switches: a module turned off (requests pass unscored) fleet-wide or on one node,
//! delivered to edges in heartbeat answers.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_IDENT_LEN, MAX_REASON_LEN};
use crate::{Invalid, check_ident, check_text};

/// A module that can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// The bot-scoring module.
    Bot,
}

/// Where a switch's setting comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Nobody set it: the module is on.
    Default,
    /// Set for the whole fleet.
    Fleet,
    /// Set for this node (overrides the fleet setting).
    Node,
}

/// An operator sets a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchSet {
    /// Which module.
    pub module: Module,
    /// `false` turns it off (requests pass unscored), `true` on.
    pub enabled: bool,
    /// One node, or the fleet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Remove the node's own setting so it follows the fleet again (needs `node`).
    #[serde(default)]
    pub clear: bool,
    /// Why (required: it goes to the audit log).
    pub reason: String,
}

/// One switch as a node must apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchState {
    /// Whether the module runs.
    pub enabled: bool,
    /// Where the setting comes from.
    pub scope: Scope,
    /// Why it was set, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who set it (a token name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_by: Option<String>,
    /// When, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
}

/// Every switch as a node must apply it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitches {
    /// The bot module.
    pub bot: SwitchState,
}

/// One stored setting (fleet, or one node's override).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchEntry {
    /// Which module.
    pub module: Module,
    /// The node, or `None` for the fleet.
    pub node: Option<String>,
    /// Whether the module runs.
    pub enabled: bool,
    /// Why.
    pub reason: String,
    /// Who (a token name).
    pub set_by: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Every stored setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchList {
    /// Fleet settings first, then node overrides by node id.
    pub switches: Vec<KillSwitchEntry>,
}

// === impl Module ===

impl Module {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Bot => "bot",
        }
    }

    /// The module for a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bot" => Some(Module::Bot),
            _ => None,
        }
    }
}

// === impl KillSwitchSet ===

impl KillSwitchSet {
    /// Checks the wire bounds.
    pub fn check(&self) -> Result<(), Invalid> {
        if let Some(node) = &self.node {
            check_ident("node", node, MAX_IDENT_LEN)?;
        } else if self.clear {
            return Err(Invalid::new("clear", "needs a node"));
        }
        if self.reason.trim().is_empty() {
            return Err(Invalid::new("reason", "is required"));
        }
        check_text("reason", &self.reason, MAX_REASON_LEN)
    }
}

// === impl SwitchState ===

impl Default for SwitchState {
    /// On, by default.
    fn default() -> Self {
        SwitchState {
            enabled: true,
            scope: Scope::Default,
            reason: None,
            set_by: None,
            at_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_needs_a_reason_and_clear_needs_a_node() {
        let mut s = KillSwitchSet {
            module: Module::Bot,
            enabled: false,
            node: None,
            clear: false,
            reason: "scores drift".into(),
        };
        assert!(s.check().is_ok());
        s.reason = "  ".into();
        assert_eq!(s.check().unwrap_err().field, "reason");
        s.reason = "x".into();
        s.clear = true;
        assert_eq!(s.check().unwrap_err().field, "clear");
        s.node = Some("edge-1".into());
        assert!(s.check().is_ok());
    }

    #[test]
    fn modules_are_named_on_the_wire() {
        assert_eq!(serde_json::to_string(&Module::Bot).unwrap(), "\"bot\"");
        assert_eq!(Module::parse("bot"), Some(Module::Bot));
        assert_eq!(Module::parse("waf"), None);
        assert!(KillSwitches::default().bot.enabled);
    }
}
