//! Kill switches: a module turned off (requests pass unscored) fleet-wide or on one node,
//! delivered to edges in heartbeat answers, and, on the independent path, as signed
//! [`KillOrder`]s in a NATS KV bucket ([`KILL_BUCKET`]) that edges watch themselves, so a
//! switch set while every control-plane replica is down still reaches them.
//!
//! A kill order is a DSSE envelope of its own payload type ([`KILL_PAYLOAD_TYPE`]), signed by
//! a **director key** of the keyset, like an [`Order`](crate::Order), and opened with the same
//! rules ([`KillOrder::open`]); [`KillOrder::admit`] refuses another node's order and one
//! older than the last applied for its key, with the codes of
//! [`OrderRefusal`].

use rampart_artifact::{Digest, Envelope, Keyring, SecretKey};
use serde::{Deserialize, Serialize};

use crate::order::{Admitted, OrderRefusal};

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

/// The DSSE payload type of a kill order.
pub const KILL_PAYLOAD_TYPE: &str = "application/vnd.rampart.killswitch.v1+json";

/// The largest kill-order payload accepted, in bytes (one is a few hundred bytes).
pub const MAX_KILL_ORDER_BYTES: usize = 4 * 1024;

/// The largest KV value read as a kill order (the envelope around a payload of at most
/// [`MAX_KILL_ORDER_BYTES`], base64, and its signatures).
pub const MAX_KILL_VALUE_BYTES: usize = 8 * 1024;

/// The KV bucket of kill orders (under the NATS namespace: `{ns}_KILL`).
pub const KILL_BUCKET: &str = "KILL";

/// The KV key of the fleet's kill order.
pub const KILL_KEY_FLEET: &str = "fleet";

/// Values kept per key in the kill bucket: the audit trail of the break-glass path.
pub const KILL_HISTORY: i64 = 16;

/// Where a kill order applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillScope {
    /// Every node.
    Fleet,
    /// One node (overrides the fleet's order).
    Node(String),
}

/// A kill switch, signed, for edges to apply without the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillOrder {
    /// Which module.
    pub module: Module,
    /// Whether the module runs.
    pub enabled: bool,
    /// A node order that removes the node's own setting: it follows the fleet again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear: bool,
    /// The fleet or one node.
    pub scope: KillScope,
    /// Why.
    pub reason: String,
    /// Who (a token name, or `break-glass:<key id>`).
    pub set_by: String,
    /// Rises with every order under the same key: an edge never applies a lower one.
    pub seq: u64,
    /// When it was signed, ms since the Unix epoch (the signer's clock).
    pub issued_at_ms: u64,
}

// === impl KillScope ===

impl KillScope {
    /// The KV key: `fleet` or `node.<id>`.
    pub fn key(&self) -> String {
        match self {
            KillScope::Fleet => KILL_KEY_FLEET.to_owned(),
            KillScope::Node(id) => format!("node.{id}"),
        }
    }
}

// === impl KillOrder ===

impl KillOrder {
    /// The signed envelope of this order.
    pub fn sign(&self, key: &SecretKey) -> Envelope {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        Envelope::sign_payload(KILL_PAYLOAD_TYPE, payload, key)
    }

    /// Reads a KV value as an envelope (bounded before parsing); verifies nothing.
    pub fn envelope(value: &[u8]) -> Result<Envelope, OrderRefusal> {
        Envelope::from_json(
            value,
            MAX_KILL_VALUE_BYTES,
            rampart_artifact::MAX_TRUST_SIGNATURES,
        )
        .map_err(|e| OrderRefusal::Malformed(e.to_string()))
    }

    /// Verifies `envelope` with the director keys (the rules of
    /// [`Order::open`](crate::Order::open)) and reads the order and its payload digest.
    pub fn open(
        envelope: &Envelope,
        director: &Keyring,
    ) -> Result<(KillOrder, Digest), OrderRefusal> {
        crate::order::open_signed(envelope, director, KILL_PAYLOAD_TYPE, MAX_KILL_ORDER_BYTES)
    }

    /// Whether `node` may apply this order, found under `key`, after the last one it applied
    /// under that key (`last`: its seq and payload digest). An order under a key other than
    /// its own scope's (another node's order copied under this node's key) is `other_node`.
    pub fn admit(
        &self,
        node: &str,
        key: &str,
        digest: &Digest,
        last: Option<(u64, Digest)>,
    ) -> Result<Admitted, OrderRefusal> {
        let mine = KillScope::Node(node.to_owned());
        if self.scope != KillScope::Fleet && self.scope != mine
            || key != self.scope.key()
            || (self.scope == KillScope::Fleet && self.clear)
        {
            return Err(OrderRefusal::OtherNode {
                node: node.to_owned(),
                for_node: match &self.scope {
                    KillScope::Fleet => format!("fleet (under key {key})"),
                    KillScope::Node(id) => format!("{id} (under key {key})"),
                },
            });
        }
        let Some((last_seq, last_digest)) = last else {
            return Ok(Admitted::New);
        };
        match self.seq.cmp(&last_seq) {
            std::cmp::Ordering::Greater => Ok(Admitted::New),
            std::cmp::Ordering::Equal if *digest == last_digest => Ok(Admitted::Same),
            std::cmp::Ordering::Equal => Err(OrderRefusal::Conflict {
                epoch: 0,
                seq: self.seq,
            }),
            std::cmp::Ordering::Less => Err(OrderRefusal::Older {
                epoch: 0,
                seq: self.seq,
                last_epoch: 0,
                last_seq,
            }),
        }
    }
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

    fn kill(scope: KillScope, seq: u64) -> KillOrder {
        KillOrder {
            module: Module::Bot,
            enabled: false,
            clear: false,
            scope,
            reason: "incident".into(),
            set_by: "ops".into(),
            seq,
            issued_at_ms: seq,
        }
    }

    #[test]
    fn a_kill_order_opens_only_with_a_director_key_and_never_goes_back() {
        use rampart_artifact::testing::{key, other_key};
        let director = Keyring::new([key().public()]);
        let fleet = kill(KillScope::Fleet, 10);
        let env = fleet.sign(&key());
        let (opened, digest) = KillOrder::open(&env, &director).unwrap();
        assert_eq!(opened, fleet);
        let forged = fleet.sign(&other_key());
        fn code<T: std::fmt::Debug>(r: Result<T, OrderRefusal>) -> &'static str {
            r.unwrap_err().code()
        }
        assert_eq!(code(KillOrder::open(&forged, &director)), "unknown_key");
        let mut tampered = env.clone();
        tampered.set_payload(serde_json::to_vec(&kill(KillScope::Fleet, 11)).unwrap());
        assert_eq!(code(KillOrder::open(&tampered, &director)), "bad_signature");
        // An order is not a kill order, whatever it says.
        let as_order =
            Envelope::sign_payload(crate::ORDER_PAYLOAD_TYPE, env.payload().to_vec(), &key());
        assert_eq!(code(KillOrder::open(&as_order, &director)), "malformed");

        assert_eq!(fleet.admit("a", "fleet", &digest, None), Ok(Admitted::New));
        assert_eq!(
            fleet.admit("a", "fleet", &digest, Some((10, digest))),
            Ok(Admitted::Same)
        );
        assert_eq!(
            fleet.admit("a", "fleet", &digest, Some((9, digest))),
            Ok(Admitted::New)
        );
        assert_eq!(
            code(fleet.admit("a", "fleet", &digest, Some((11, digest)))),
            "older"
        );
        let other = Digest::of(b"other");
        assert_eq!(
            code(fleet.admit("a", "fleet", &digest, Some((10, other)))),
            "conflict"
        );
        // Another node's order, or one copied under another key, is refused.
        let b = kill(KillScope::Node("b".into()), 3);
        assert_eq!(code(b.admit("a", "node.a", &digest, None)), "other_node");
        assert_eq!(code(b.admit("b", "fleet", &digest, None)), "other_node");
        assert_eq!(b.admit("b", "node.b", &digest, None), Ok(Admitted::New));
        assert_eq!(
            code(fleet.admit("a", "node.a", &digest, None)),
            "other_node"
        );
    }

    #[test]
    fn modules_are_named_on_the_wire() {
        assert_eq!(serde_json::to_string(&Module::Bot).unwrap(), "\"bot\"");
        assert_eq!(Module::parse("bot"), Some(Module::Bot));
        assert_eq!(Module::parse("waf"), None);
        assert!(KillSwitches::default().bot.enabled);
    }
}
