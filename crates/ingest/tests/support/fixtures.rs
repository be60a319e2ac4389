//! Signed feature files, a trivial compiler and a counting log subscriber for the
//! integration tests. Documents, keys and signatures come from `rampart_artifact::testing`;
//! what is here is the broken files this crate's tests feed the store.

#![allow(dead_code)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rampart_artifact::testing::{contract_knowing, doubled, signed_by};
pub use rampart_artifact::testing::{doc, key, other_key, signed};
use rampart_artifact::{Contract, Envelope, Keyring, PAYLOAD_TYPE, Validated};
use rampart_ingest::{Compiler, Config, SoakConfig};

/// The name of the feature whose presence makes [`TestModel::score`] panic, as FL2's
/// `append_with_names(..).unwrap()` did: the test-only hook for a real panic.
pub const PANIC_FEATURE: &str = "fl2_unwrap";

/// The name that makes [`TestCompiler`] panic inside `compile`.
pub const COMPILE_PANIC_FEATURE: &str = "compile_panic";

/// The contract of the tests: the defaults (200 features, 1 MiB), with a catalog of known
/// names `f_0`..`f_299` plus the two hook names.
pub fn contract() -> Contract {
    contract_knowing(300, &[PANIC_FEATURE, COMPILE_PANIC_FEATURE]).unwrap()
}

/// A store config on `dir` with the test contract, the trusted key, and a soak of 0 s and
/// 0 requests (promoted on the first tick) unless a test sets its own.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir, contract(), Keyring::new([key().public()]));
    c.soak = SoakConfig {
        secs: 0,
        requests: 0,
    };
    c
}

/// A good signed file of `version` with 60 features.
pub fn good(version: u64) -> Vec<u8> {
    signed(&doc(version, 60))
}

/// The 18 November file: every one of 120 features twice (240, over the 200 limit).
pub fn november_18(version: u64) -> Vec<u8> {
    signed(&doubled(version, 120))
}

/// 201 distinct features.
pub fn too_many(version: u64) -> Vec<u8> {
    signed(&doc(version, 201))
}

/// A signed file cut in half.
pub fn truncated(version: u64) -> Vec<u8> {
    let mut b = good(version);
    b.truncate(b.len() / 2);
    b
}

/// A file whose payload was changed after signing.
pub fn bad_signature(version: u64) -> Vec<u8> {
    let mut env = Envelope::sign(&doc(version, 60), &key());
    let mut tampered = doc(version, 60);
    tampered.features[0].weight = 999.0;
    env.set_payload(tampered.canonical_bytes());
    env.to_json()
}

/// A good file signed by a key the edge does not trust.
pub fn other_keys_signature(version: u64) -> Vec<u8> {
    signed_by(&doc(version, 60), &other_key())
}

/// A file with a feature no extractor knows.
pub fn unknown_name(version: u64) -> Vec<u8> {
    let mut d = doc(version, 60);
    d.features[3].name = "ja5_fingerprint_v9".into();
    signed(&d)
}

/// A file with a weight far beyond the contract's bound.
pub fn huge_weight(version: u64) -> Vec<u8> {
    let mut d = doc(version, 60);
    d.features[5].weight = 1e12;
    signed(&d)
}

/// A signed payload that is not a document at all.
pub fn signed_garbage() -> Vec<u8> {
    Envelope::sign_payload(PAYLOAD_TYPE, b"[1,2,3]".to_vec(), &key()).to_json()
}

/// A good file whose features include `name` (a hook name).
pub fn with_feature(version: u64, name: &str) -> Vec<u8> {
    let mut d = doc(version, 60);
    d.features[0].name = name.to_owned();
    signed(&d)
}

/// The model of the tests: the feature names, in room for `room` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct TestModel {
    pub names: Vec<String>,
}

impl TestModel {
    /// What the request path would do with the model. Panics when the model holds
    /// [`PANIC_FEATURE`]: a real panic, not a simulated one.
    pub fn score(&self) -> usize {
        if self.names.iter().any(|n| n == PANIC_FEATURE) {
            panic!(
                "called `Result::unwrap()` on an `Err` value: the feature file has {PANIC_FEATURE}"
            );
        }
        self.names.len()
    }
}

/// Compiles a model of names into `room` slots: more features than that is an error, as in the
/// score crate's preallocated model.
#[derive(Debug, Clone)]
pub struct TestCompiler {
    pub room: usize,
    pub compiled: Arc<AtomicUsize>,
}

#[derive(Debug)]
pub struct NoRoom {
    pub count: usize,
    pub room: usize,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} features do not fit the room for {}",
            self.count, self.room
        )
    }
}

impl std::error::Error for NoRoom {}

impl TestCompiler {
    pub fn new(room: usize) -> Self {
        TestCompiler {
            room,
            compiled: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Compiler for TestCompiler {
    type Model = TestModel;
    type Error = NoRoom;

    fn compile(&self, validated: &Validated) -> Result<TestModel, NoRoom> {
        let names: Vec<String> = validated.document().names().map(str::to_owned).collect();
        if names.iter().any(|n| n == COMPILE_PANIC_FEATURE) {
            panic!("compiler bug triggered by {COMPILE_PANIC_FEATURE}");
        }
        if names.len() > self.room {
            return Err(NoRoom {
                count: names.len(),
                room: self.room,
            });
        }
        self.compiled.fetch_add(1, Ordering::Relaxed);
        Ok(TestModel { names })
    }
}

/// A tracing subscriber that counts the events at WARN and above (the log lines a flood
/// would produce) and drops everything.
#[derive(Debug, Clone, Default)]
pub struct CountingSubscriber {
    pub events: Arc<AtomicUsize>,
}

impl tracing::Subscriber for CountingSubscriber {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
