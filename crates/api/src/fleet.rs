//! Nodes: what an edge says when it registers, and the fleet as operators see it.

use rampart_artifact::ContractSpec;
use serde::{Deserialize, Serialize};

use crate::heartbeat::{Active, ApplyReport, Desired, Rejection};
use crate::killswitch::KillSwitches;
use crate::limits::{MAX_IDENT_LEN, MAX_SOFTWARE_VERSION_LEN};
use crate::{Invalid, check_ident, check_text};

/// An edge introduces itself: who it is, where it runs, and what it accepts.
///
/// Registering again (after a restart, or with a new contract) replaces the node's labels,
/// contract and version; its desired state and history stay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The node id, unique in the fleet (`[A-Za-z0-9._-]`, at most 64 bytes).
    pub node: String,
    /// Where it runs; rollouts plan waves from these.
    pub labels: Labels,
    /// The feature-file contract the edge enforces: every publish is checked against it.
    pub contract: ContractSpec,
    /// The edge's software version.
    pub software_version: String,
}

/// Where a node runs. Waves are planned by fault domain from these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// Point of presence (a city, a data centre).
    pub pop: String,
    /// Region holding the PoP.
    pub region: String,
    /// Whether the node takes canary waves.
    #[serde(default)]
    pub canary: bool,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAnswer {
    /// The node id registered.
    pub node: String,
    /// Whether the node was new to the control plane.
    pub created: bool,
    /// How often to beat, in ms.
    pub beat_interval_ms: u64,
}

/// How a node looks from its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Registered, no heartbeat yet.
    New,
    /// Beating, on its desired version, no errors in its last beat.
    Healthy,
    /// Beating, but its last beat had 5xx, module errors or restarts, or it NACKed.
    Degraded,
    /// No heartbeat within the stale horizon: unreachable, or down.
    Stale,
}

/// One node of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node id.
    pub node: String,
    /// Its labels.
    pub labels: Labels,
    /// Its software version.
    pub software_version: String,
    /// The contract it registered.
    pub contract: ContractSpec,
    /// When it first registered, ms since the Unix epoch.
    pub registered_at_ms: u64,
    /// Its last heartbeat, ms since the Unix epoch.
    pub last_beat_ms: Option<u64>,
    /// What it serves, from its last heartbeat.
    pub active: Option<Active>,
    /// What it should serve.
    pub desired: Option<Desired>,
    /// Its verdict on the desired version, from its last heartbeat.
    pub verdict: Option<ApplyReport>,
    /// The last file it refused.
    pub last_rejection: Option<Rejection>,
    /// Whether the bot module was on in its last heartbeat.
    pub module_enabled: Option<bool>,
    /// The kill switches it should apply.
    pub kill_switches: KillSwitches,
    /// Its health.
    pub health: Health,
    /// The latest death it reported since this control plane started (the version active
    /// then, uptime, cause), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_death: Option<crate::heartbeat::Death>,
}

/// The fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    /// Every node, by id.
    pub nodes: Vec<NodeView>,
}

/// The consumer contracts every publish is checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractList {
    /// Distinct contracts: the registered nodes' and the control plane's own.
    pub contracts: Vec<ContractSpec>,
}

// === impl Registration ===

impl Registration {
    /// Checks the wire bounds (the contract itself is checked by the artifact crate).
    pub fn check(&self) -> Result<(), Invalid> {
        check_ident("node", &self.node, MAX_IDENT_LEN)?;
        self.labels.check()?;
        check_text(
            "software_version",
            &self.software_version,
            MAX_SOFTWARE_VERSION_LEN,
        )
    }
}

// === impl Labels ===

impl Labels {
    /// Checks the wire bounds.
    pub fn check(&self) -> Result<(), Invalid> {
        check_ident("labels.pop", &self.pop, MAX_IDENT_LEN)?;
        check_ident("labels.region", &self.region, MAX_IDENT_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registration {
        Registration {
            node: "edge-1".into(),
            labels: Labels {
                pop: "fra".into(),
                region: "eu".into(),
                canary: true,
            },
            contract: ContractSpec::default(),
            software_version: "0.1.0".into(),
        }
    }

    #[test]
    fn a_registration_round_trips_and_checks() {
        let r = reg();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Registration>(&json).unwrap(), r);
        assert!(r.check().is_ok());
    }

    #[test]
    fn bad_fields_are_named() {
        let mut r = reg();
        r.labels.pop = "fra 1".into();
        assert_eq!(r.check().unwrap_err().field, "labels.pop");
        let mut r = reg();
        r.node = String::new();
        assert_eq!(r.check().unwrap_err().field, "node");
        let mut r = reg();
        r.software_version = "1\n2".into();
        assert_eq!(r.check().unwrap_err().field, "software_version");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = serde_json::to_value(reg()).unwrap();
        v["colour"] = "blue".into();
        assert!(serde_json::from_value::<Registration>(v).is_err());
    }
}
