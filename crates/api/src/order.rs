//! Signed orders: what a heartbeat answer tells an edge to do, signed by the control plane's
//! **director key** (not the generator's), with an epoch and a sequence that never go back.
//!
//! ```json
//! {"payloadType":"application/vnd.rampart.order.v1+json",
//!  "payload":"<base64 of {node, epoch, seq, kind, desired, kill_switches, issued_at_ms}>",
//!  "signatures":[{"keyid":"…","sig":"…"}]}
//! ```
//!
//! The edge opens an order with the director keys of its current keyset ([`Order::open`])
//! and admits it against the last one it applied ([`admit`]): an order for another node, an
//! `(epoch, seq)` lower than the last applied, or the same `(epoch, seq)` with other content
//! is refused, and the edge keeps what it has (fail stale). New kinds of instruction
//! (blessing, pin) are new optional fields of [`Order`]: an edge that does not know one
//! refuses nothing it understands.

use rampart_artifact::{Digest, Envelope, Keyring, SecretKey};
use serde::{Deserialize, Serialize};

use crate::heartbeat::Desired;
use crate::killswitch::KillSwitches;

/// The DSSE payload type of an order.
pub const ORDER_PAYLOAD_TYPE: &str = "application/vnd.rampart.order.v1+json";

/// The largest order payload accepted, in bytes (an order is a few hundred bytes).
pub const MAX_ORDER_BYTES: usize = 16 * 1024;

/// One signed instruction to one node: everything it must do now (level-based, like the
/// heartbeat answer it travels in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The node it is for.
    pub node: String,
    /// The control plane's epoch (raised by `--reinitialize`).
    pub epoch: u64,
    /// The control plane's sequence: raised with every committed change of desired state.
    pub seq: u64,
    /// The artifact kind the `desired` is about.
    pub kind: String,
    /// The version to serve.
    pub desired: Option<Desired>,
    /// The switches to apply.
    pub kill_switches: KillSwitches,
    /// When the change of `seq` was committed, ms since the Unix epoch (control plane's
    /// clock): the same `(epoch, seq)` always carries the same content.
    pub issued_at_ms: u64,
    /// Versions the fleet has blessed, newest first (see
    /// [`HeartbeatAnswer::blessed`](crate::heartbeat::HeartbeatAnswer::blessed)); a new
    /// blessing raises `seq`. Absent from orders that bless nothing, so older encodings stay
    /// byte for byte.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blessed: Vec<crate::heartbeat::Active>,
}

/// The last order an edge applied, as it keeps it on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Its epoch.
    pub epoch: u64,
    /// Its sequence.
    pub seq: u64,
    /// The digest of its signed payload.
    pub digest: Digest,
}

/// What [`admit`] decided about an order that may be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Newer than the last applied.
    New,
    /// The very order applied last (a repeated answer).
    Same,
}

/// Why an edge refused an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRefusal {
    /// The answer carries no order while the edge has a keyset.
    #[error("the answer carries no signed order")]
    Unsigned,
    /// Not an order envelope (payload type, shape, size).
    #[error("not a signed order: {0}")]
    Malformed(String),
    /// Signed by no key of the keyset's director role.
    #[error("signed by no director key of the keyset: {0}")]
    UnknownKey(String),
    /// A director key's signature that does not verify.
    #[error("the signature of director key {0} does not verify")]
    BadSignature(String),
    /// The keyset in use expired.
    #[error("the keyset expired: {0}")]
    KeysetExpired(String),
    /// For another node.
    #[error("the order is for node {for_node:?}, not {node:?}")]
    OtherNode {
        /// This node.
        node: String,
        /// The node it names.
        for_node: String,
    },
    /// Older than the last applied (a replay, or a control plane whose epoch went back).
    #[error(
        "order (epoch {epoch}, seq {seq}) is older than (epoch {last_epoch}, seq {last_seq}) already applied"
    )]
    Older {
        /// The order's epoch.
        epoch: u64,
        /// The order's sequence.
        seq: u64,
        /// The last applied epoch.
        last_epoch: u64,
        /// The last applied sequence.
        last_seq: u64,
    },
    /// The edge cannot record the order on disk: it applies nothing it could forget.
    #[error("cannot record the order: {0}")]
    Unrecorded(String),
    /// The same `(epoch, seq)` as the last applied, with other content.
    #[error("order (epoch {epoch}, seq {seq}) was already applied with other content")]
    Conflict {
        /// Its epoch.
        epoch: u64,
        /// Its sequence.
        seq: u64,
    },
}

// === impl Order ===

impl Order {
    /// The signed envelope of this order.
    pub fn sign(&self, key: &SecretKey) -> Envelope {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        Envelope::sign_payload(ORDER_PAYLOAD_TYPE, payload, key)
    }

    /// Verifies `envelope` with the director keys and reads the order: every signature must
    /// be by a director key and verify, at least one must be there. Returns the order and
    /// the digest of its payload (its identity for [`admit`]).
    pub fn open(envelope: &Envelope, director: &Keyring) -> Result<(Order, Digest), OrderRefusal> {
        open_signed(envelope, director, ORDER_PAYLOAD_TYPE, MAX_ORDER_BYTES)
    }
}

/// The one check of a signed order (an [`Order`], a
/// [`KillOrder`](crate::killswitch::KillOrder)): its payload type, its size before parsing,
/// every signature by a director key and valid (at least one), then the payload as `T`.
/// Returns it with the digest of its payload (its identity for admission).
pub(crate) fn open_signed<T: serde::de::DeserializeOwned>(
    envelope: &Envelope,
    director: &Keyring,
    payload_type: &str,
    max_bytes: usize,
) -> Result<(T, Digest), OrderRefusal> {
    if envelope.payload_type() != payload_type {
        return Err(OrderRefusal::Malformed(format!(
            "payload type {}",
            rampart_artifact::quote(envelope.payload_type())
        )));
    }
    if envelope.payload().len() > max_bytes {
        return Err(OrderRefusal::Malformed(format!(
            "{} bytes, at most {max_bytes}",
            envelope.payload().len()
        )));
    }
    let signers = envelope.signers(director);
    if let Some(bad) = signers.bad.first() {
        return Err(OrderRefusal::BadSignature(bad.to_string()));
    }
    if signers.valid.is_empty() || !signers.unknown.is_empty() {
        return Err(OrderRefusal::UnknownKey(if signers.unknown.is_empty() {
            "no signature".to_owned()
        } else {
            signers.unknown.join(", ")
        }));
    }
    let order = serde_json::from_slice::<T>(envelope.payload())
        .map_err(|e| OrderRefusal::Malformed(e.to_string()))?;
    Ok((order, Digest::of(envelope.payload())))
}

/// Whether `order` (with payload `digest`) may be applied by `node` after `last`.
pub fn admit(
    node: &str,
    order: &Order,
    digest: &Digest,
    last: Option<&Applied>,
) -> Result<Admitted, OrderRefusal> {
    if order.node != node {
        return Err(OrderRefusal::OtherNode {
            node: node.to_owned(),
            for_node: order.node.clone(),
        });
    }
    let Some(last) = last else {
        return Ok(Admitted::New);
    };
    match (order.epoch, order.seq).cmp(&(last.epoch, last.seq)) {
        std::cmp::Ordering::Greater => Ok(Admitted::New),
        std::cmp::Ordering::Equal if *digest == last.digest => Ok(Admitted::Same),
        std::cmp::Ordering::Equal => Err(OrderRefusal::Conflict {
            epoch: order.epoch,
            seq: order.seq,
        }),
        std::cmp::Ordering::Less => Err(OrderRefusal::Older {
            epoch: order.epoch,
            seq: order.seq,
            last_epoch: last.epoch,
            last_seq: last.seq,
        }),
    }
}

// === impl OrderRefusal ===

impl OrderRefusal {
    /// A stable code for the metric and `/status`.
    pub fn code(&self) -> &'static str {
        match self {
            OrderRefusal::Unsigned => "unsigned",
            OrderRefusal::Malformed(_) => "malformed",
            OrderRefusal::UnknownKey(_) => "unknown_key",
            OrderRefusal::BadSignature(_) => "bad_signature",
            OrderRefusal::KeysetExpired(_) => "keyset_expired",
            OrderRefusal::OtherNode { .. } => "other_node",
            OrderRefusal::Older { .. } => "older",
            OrderRefusal::Conflict { .. } => "conflict",
            OrderRefusal::Unrecorded(_) => "unrecorded",
        }
    }

    /// Every code, for metrics that list them all.
    pub const CODES: [&'static str; 9] = [
        "unsigned",
        "malformed",
        "unknown_key",
        "bad_signature",
        "keyset_expired",
        "other_node",
        "older",
        "conflict",
        "unrecorded",
    ];
}

#[cfg(test)]
mod tests {
    use rampart_artifact::testing::{key, other_key};

    use super::*;

    fn order(node: &str, epoch: u64, seq: u64) -> Order {
        Order {
            node: node.to_owned(),
            epoch,
            seq,
            kind: crate::KIND_FEATURES.to_owned(),
            desired: None,
            kill_switches: KillSwitches::default(),
            issued_at_ms: 5,
            blessed: Vec::new(),
        }
    }

    #[test]
    fn an_order_that_blesses_nothing_encodes_as_before_blessings_existed() {
        let json = serde_json::to_string(&order("fra-1", 1, 2)).unwrap();
        assert!(!json.contains("blessed"), "{json}");
        let mut blessing = order("fra-1", 1, 3);
        blessing.blessed.push(crate::heartbeat::Active {
            version: 7,
            digest: rampart_artifact::Digest::of(b"v7"),
        });
        let json = serde_json::to_string(&blessing).unwrap();
        assert!(json.contains("\"blessed\":[{\"version\":7"), "{json}");
        assert_eq!(serde_json::from_str::<Order>(&json).unwrap(), blessing);
    }

    fn applied(o: &Order) -> Applied {
        let env = o.sign(&key());
        Applied {
            epoch: o.epoch,
            seq: o.seq,
            digest: Digest::of(env.payload()),
        }
    }

    #[test]
    fn an_order_opens_only_with_a_director_key() {
        let director = Keyring::new([key().public()]);
        let env = order("a", 1, 1).sign(&key());
        let (o, _) = Order::open(&env, &director).unwrap();
        assert_eq!(o, order("a", 1, 1));
        let stranger = order("a", 1, 1).sign(&other_key());
        assert_eq!(
            Order::open(&stranger, &director).unwrap_err().code(),
            "unknown_key"
        );
        let mut tampered = env.clone();
        tampered.set_payload(serde_json::to_vec(&order("a", 1, 2)).unwrap());
        assert_eq!(
            Order::open(&tampered, &director).unwrap_err().code(),
            "bad_signature"
        );
        let feature_file = Envelope::sign_payload(
            rampart_artifact::PAYLOAD_TYPE,
            env.payload().to_vec(),
            &key(),
        );
        assert_eq!(
            Order::open(&feature_file, &director).unwrap_err().code(),
            "malformed"
        );
        // One unknown signature beside a good one is refused too.
        let mut both = env;
        both.add_signature(&other_key());
        assert_eq!(
            Order::open(&both, &director).unwrap_err().code(),
            "unknown_key"
        );
    }

    #[test]
    fn orders_cannot_go_backwards() {
        let last = applied(&order("a", 2, 10));
        let d = |o: &Order| Digest::of(o.sign(&key()).payload());
        let same = order("a", 2, 10);
        assert_eq!(
            admit("a", &same, &d(&same), Some(&last)).unwrap(),
            Admitted::Same
        );
        let newer = order("a", 2, 11);
        assert_eq!(
            admit("a", &newer, &d(&newer), Some(&last)).unwrap(),
            Admitted::New
        );
        let next_epoch = order("a", 3, 1);
        assert_eq!(
            admit("a", &next_epoch, &d(&next_epoch), Some(&last)).unwrap(),
            Admitted::New
        );
        let older = order("a", 2, 9);
        assert_eq!(
            admit("a", &older, &d(&older), Some(&last))
                .unwrap_err()
                .code(),
            "older"
        );
        let lower_epoch = order("a", 1, 500);
        assert_eq!(
            admit("a", &lower_epoch, &d(&lower_epoch), Some(&last))
                .unwrap_err()
                .code(),
            "older"
        );
        let mut changed = order("a", 2, 10);
        changed.kill_switches.bot.enabled = !changed.kill_switches.bot.enabled;
        assert_eq!(
            admit("a", &changed, &d(&changed), Some(&last))
                .unwrap_err()
                .code(),
            "conflict"
        );
        let other = order("b", 9, 9);
        assert_eq!(
            admit("a", &other, &d(&other), Some(&last))
                .unwrap_err()
                .code(),
            "other_node"
        );
        assert_eq!(admit("a", &older, &d(&older), None).unwrap(), Admitted::New);
    }

    proptest::proptest! {
        /// An order is admitted exactly when its (epoch, seq) is above the last applied, or
        /// equal with the same payload; a replay of anything applied before never is.
        #[test]
        fn admitted_exactly_when_newer(
            last in (0u64..4, 0u64..4),
            next in (0u64..4, 0u64..4),
            enabled: bool,
        ) {
            let applied_order = order("a", last.0, last.1);
            let applied = applied(&applied_order);
            let mut o = order("a", next.0, next.1);
            o.kill_switches.bot.enabled = enabled;
            let digest = Digest::of(o.sign(&key()).payload());
            let verdict = admit("a", &o, &digest, Some(&applied));
            match next.cmp(&last) {
                std::cmp::Ordering::Greater => proptest::prop_assert_eq!(verdict, Ok(Admitted::New)),
                std::cmp::Ordering::Less => proptest::prop_assert!(verdict.is_err()),
                std::cmp::Ordering::Equal => proptest::prop_assert_eq!(
                    verdict.is_ok(),
                    o == applied_order
                ),
            }
        }
    }

    #[test]
    fn every_code_is_listed() {
        let all = [
            OrderRefusal::Unsigned,
            OrderRefusal::Malformed(String::new()),
            OrderRefusal::UnknownKey(String::new()),
            OrderRefusal::BadSignature(String::new()),
            OrderRefusal::KeysetExpired(String::new()),
            OrderRefusal::OtherNode {
                node: String::new(),
                for_node: String::new(),
            },
            OrderRefusal::Older {
                epoch: 0,
                seq: 0,
                last_epoch: 0,
                last_seq: 0,
            },
            OrderRefusal::Conflict { epoch: 0, seq: 0 },
            OrderRefusal::Unrecorded(String::new()),
        ];
        let codes: Vec<_> = all.iter().map(OrderRefusal::code).collect();
        assert_eq!(codes, OrderRefusal::CODES);
    }
}
