//! The edge's side of signed orders: before the agent applies anything from a heartbeat
//! answer, the answer's order is verified with the keyset's director keys and admitted
//! against the last order applied ([`rampart_api::order::admit`]), which is kept in the
//! data dir (`order.json`, mode 0600) so a restart does not forget it.
//!
//! A refused answer changes nothing (fail stale): it is counted by code (the metric
//! `rampart_edge_orders_refused_total{code}`), the last refusal shows in `/status` under
//! `control.orders`, and the agent keeps heartbeating.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rampart_api::{Admitted, Applied, HeartbeatAnswer, Order, OrderRefusal, order};
use rampart_host::file;
use serde::Serialize;

use crate::trust::Trust;

/// The file in the data dir that holds the last order applied.
pub const ORDER_FILE: &str = "order.json";

/// The largest order file read.
pub const MAX_ORDER_FILE_BYTES: usize = 4 * 1024;

/// The last order applied, and what was refused.
#[derive(Debug)]
pub struct OrderGate {
    path: PathBuf,
    last: Option<Applied>,
    report: OrdersReport,
}

/// What `/status` shows under `control.orders`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OrdersReport {
    /// Whether orders must be signed (a keyset is loaded).
    pub signed: bool,
    /// The epoch of the last order applied.
    pub epoch: Option<u64>,
    /// Its sequence.
    pub seq: Option<u64>,
    /// Orders refused since start, by code.
    pub refused: BTreeMap<&'static str, u64>,
    /// The last refusal.
    pub last_refusal: Option<OrderRefusalReport>,
}

/// One refused order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRefusalReport {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// A stable code ([`OrderRefusal::code`]).
    pub code: &'static str,
    /// One line for people.
    pub message: String,
}

/// Why the order file could not be read at start.
#[derive(Debug, thiserror::Error)]
pub enum OrderFileError {
    /// Unreadable.
    #[error(transparent)]
    File(#[from] file::Error),
    /// Not an order record: refusing to start rather than forgetting what was applied.
    #[error(
        "{path}: not a record of the last order applied ({reason}); move it away to start afresh"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

// === impl OrderGate ===

impl OrderGate {
    /// The gate of the data dir `dir`, with the last order applied read from its file.
    pub fn open(dir: &Path) -> Result<Self, OrderFileError> {
        let path = dir.join(ORDER_FILE);
        let last = match file::read_capped(&path, MAX_ORDER_FILE_BYTES) {
            Ok(bytes) => Some(serde_json::from_slice::<Applied>(&bytes).map_err(|e| {
                OrderFileError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let report = OrdersReport {
            signed: true,
            epoch: last.map(|l| l.epoch),
            seq: last.map(|l| l.seq),
            refused: OrderRefusal::CODES.iter().map(|c| (*c, 0)).collect(),
            last_refusal: None,
        };
        Ok(OrderGate { path, last, report })
    }

    /// The answer to act on: its desired state as the signed order says it, when the order
    /// verifies with `trust`'s director keys and is not older than the last applied (which
    /// it then becomes, on disk first). Blocking (writes the file).
    pub fn verify(
        &mut self,
        node: &str,
        trust: &Trust,
        answer: &HeartbeatAnswer,
        now_ms: u64,
    ) -> Result<HeartbeatAnswer, OrderRefusal> {
        let envelope = answer.order.as_ref().ok_or(OrderRefusal::Unsigned)?;
        let keyset = trust.keyset();
        keyset
            .check_expiry(now_ms)
            .map_err(|e| OrderRefusal::KeysetExpired(e.to_string()))?;
        let (order, digest) = Order::open(envelope, keyset.director())?;
        let admitted = order::admit(node, &order, &digest, self.last.as_ref())?;
        if admitted == Admitted::New {
            let applied = Applied {
                epoch: order.epoch,
                seq: order.seq,
                digest,
            };
            let bytes = serde_json::to_vec(&applied).unwrap_or_default();
            if let Err(e) = file::write_private(&self.path, &bytes) {
                // Applying an order that a restart would forget could let a replay of an
                // older one through: apply nothing until it can be written.
                return Err(OrderRefusal::Unrecorded(e.to_string()));
            }
            self.last = Some(applied);
            self.report.epoch = Some(order.epoch);
            self.report.seq = Some(order.seq);
        }
        Ok(HeartbeatAnswer {
            desired: order.desired,
            kill_switches: order.kill_switches,
            blessed: order.blessed,
            etag: answer.etag.clone(),
            beat_interval_ms: answer.beat_interval_ms,
            changed: answer.changed,
            order: answer.order.clone(),
        })
    }

    /// Counts a refusal.
    pub fn refused(&mut self, refusal: &OrderRefusal, at_ms: u64) {
        let code = refusal.code();
        let n = self.report.refused.entry(code).or_insert(0);
        *n = n.saturating_add(1);
        self.report.last_refusal = Some(OrderRefusalReport {
            at_ms,
            code,
            message: refusal.to_string(),
        });
    }

    /// What `/status` shows.
    pub fn report(&self) -> &OrdersReport {
        &self.report
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use rampart_api::{KillSwitches, Order};
    use rampart_artifact::{KeysetSpec, RootSpec, SecretKey, format_time};

    use super::*;
    use crate::trust::TrustConfig;

    pub(crate) const NOW: u64 = 1_800_000_000_000;
    const HOUR: u64 = 3_600_000;

    pub(crate) fn trust(dir: &Path, director: &SecretKey) -> Trust {
        let root_key = SecretKey::from_seed([1; 32]);
        let expires = format_time(NOW + HOUR);
        let root = RootSpec {
            version: 1,
            expires: expires.clone(),
            threshold: 1,
            keys: vec![root_key.public()],
        };
        let keyset = KeysetSpec {
            version: 1,
            expires,
            generator: Vec::new(),
            director: vec![director.public()],
            operator: Vec::new(),
        };
        let (r, k) = (dir.join("root.json"), dir.join("keyset.json"));
        std::fs::write(&r, root.sign(&[&root_key]).unwrap().to_json()).unwrap();
        std::fs::write(&k, keyset.sign(&[&root_key]).unwrap().to_json()).unwrap();
        let config = TrustConfig {
            root: r,
            keyset: k,
            poll: Duration::from_secs(1),
        };
        Trust::load(config, NOW).unwrap()
    }

    fn answer(order: Option<&Order>, key: &SecretKey) -> HeartbeatAnswer {
        HeartbeatAnswer {
            desired: None,
            kill_switches: KillSwitches::default(),
            etag: "e".into(),
            beat_interval_ms: 100,
            changed: true,
            order: order.map(|o| o.sign(key)),
            blessed: Vec::new(),
        }
    }

    fn order(seq: u64, enabled: bool) -> Order {
        let mut kill_switches = KillSwitches::default();
        kill_switches.bot.enabled = enabled;
        Order {
            node: "n".into(),
            epoch: 1,
            seq,
            kind: "features".into(),
            desired: None,
            kill_switches,
            issued_at_ms: seq,
            blessed: Vec::new(),
        }
    }

    #[test]
    fn the_gate_applies_the_signed_order_and_remembers_it() {
        let dir = tempfile::tempdir().unwrap();
        let director = SecretKey::from_seed([2; 32]);
        let trust = trust(dir.path(), &director);
        let mut gate = OrderGate::open(dir.path()).unwrap();
        let refused = gate.verify("n", &trust, &answer(None, &director), NOW);
        assert_eq!(refused.unwrap_err().code(), "unsigned");
        // The answer's unsigned fields say "on"; the signed order says "off": the order wins.
        let taken = gate
            .verify("n", &trust, &answer(Some(&order(3, false)), &director), NOW)
            .unwrap();
        assert!(!taken.kill_switches.bot.enabled);
        // Remembered across a restart of the gate.
        let mut again = OrderGate::open(dir.path()).unwrap();
        assert_eq!(
            (again.report().epoch, again.report().seq),
            (Some(1), Some(3))
        );
        let old = again.verify("n", &trust, &answer(Some(&order(2, true)), &director), NOW);
        assert_eq!(old.unwrap_err().code(), "older");
        again.refused(&OrderRefusal::Unsigned, NOW);
        assert_eq!(again.report().refused.get("unsigned"), Some(&1));
        assert_eq!(
            again.report().last_refusal.as_ref().unwrap().code,
            "unsigned"
        );
    }

    #[test]
    fn an_expired_keyset_or_an_unwritable_record_applies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let director = SecretKey::from_seed([2; 32]);
        let trust = trust(dir.path(), &director);
        let mut gate = OrderGate::open(dir.path()).unwrap();
        let late = gate.verify(
            "n",
            &trust,
            &answer(Some(&order(1, true)), &director),
            NOW + 2 * HOUR,
        );
        assert_eq!(late.unwrap_err().code(), "keyset_expired");
        let mut lost = OrderGate::open(&dir.path().join("gone")).unwrap();
        let unrecorded = lost.verify("n", &trust, &answer(Some(&order(1, true)), &director), NOW);
        assert_eq!(unrecorded.unwrap_err().code(), "unrecorded");
        std::fs::write(dir.path().join(ORDER_FILE), b"not json").unwrap();
        assert!(matches!(
            OrderGate::open(dir.path()),
            Err(OrderFileError::Corrupt { .. })
        ));
    }
}
