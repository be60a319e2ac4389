//! A control plane in-process on 127.0.0.1:0 with fast gates, its tokens, and a client for
//! each role. Files are built and signed with [`rampart_artifact::testing`].

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: a failed setup fails the calling test"
)]

use std::time::Duration;

use rampart_api::{Client, Labels, Registration, RolloutView, StartRollout};
use rampart_artifact::testing::{key, signed_by};
use rampart_artifact::{ContractSpec, Digest, Document, Keyring, SecretKey};
use rampart_control::auth::Tokens;
use rampart_control::{Config, Server};

/// The admin's token (user `alice`).
pub const ADMIN: &str = "admin-secret-0123456789abcdef0123456789";
/// The publisher's token (user `gen`).
pub const PUBLISHER: &str = "publisher-secret-0123456789abcdef01234";
/// The edges' token (user `edges`).
pub const EDGE: &str = "edge-secret-0123456789abcdef0123456789ab";

/// A control plane on a free loopback port, in a temporary data dir, trusting
/// [`testing::key`](rampart_artifact::testing::key).
#[derive(Debug)]
pub struct Harness {
    /// The running server (`None` once a test has taken it to stop it).
    pub server: Option<Server>,
    /// The data dir, removed when the harness is dropped.
    pub dir: tempfile::TempDir,
    /// The key the control plane trusts.
    pub key: SecretKey,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A client with the admin token.
    pub admin: Client,
    /// A client with the publisher token.
    pub publisher: Client,
    /// A client with the edges' token.
    pub edge: Client,
    /// A client without a token.
    pub anon: Client,
}

/// The tokens of [`ADMIN`], [`PUBLISHER`] and [`EDGE`].
pub fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.add_file(&format!(
        "alice admin {ADMIN}\ngen publisher {PUBLISHER}\nedges edge {EDGE}\n"
    ))
    .unwrap();
    t
}

/// Fast gates for tests: 100 ms ticks, 100 requests and scores suffice.
pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir.to_owned(), tokens(), Keyring::new([key().public()]));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.rollout_policy.tick_ms = 100;
    c.rollout_policy.gates.min_requests = 100;
    c.rollout_policy.gates.shift.min_scores = 100;
    c.beat_interval_ms = 100;
    c
}

// === impl Harness ===

impl Harness {
    /// Starts a control plane with [`config`].
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a control plane with [`config`] changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        tweak(&mut c);
        let server = Server::start(c).await.unwrap();
        let url = format!("http://{}", server.addr());
        Harness {
            admin: Client::new(&url, Some(ADMIN.into())).unwrap(),
            publisher: Client::new(&url, Some(PUBLISHER.into())).unwrap(),
            edge: Client::new(&url, Some(EDGE.into())).unwrap(),
            anon: Client::new(&url, None).unwrap(),
            server: Some(server),
            dir,
            key: key(),
            url,
        }
    }

    /// `doc` signed by the key the control plane trusts.
    pub fn sign(&self, doc: &Document) -> Vec<u8> {
        signed_by(doc, &self.key)
    }

    /// Registers `node` with the default contract.
    pub async fn register(&self, node: &str, pop: &str, region: &str, canary: bool) {
        self.register_with(node, pop, region, canary, ContractSpec::default())
            .await;
    }

    /// Registers `node` with `contract`.
    pub async fn register_with(
        &self,
        node: &str,
        pop: &str,
        region: &str,
        canary: bool,
        contract: ContractSpec,
    ) {
        self.edge
            .register(&Registration {
                node: node.into(),
                labels: Labels {
                    pop: pop.into(),
                    region: region.into(),
                    canary,
                },
                contract,
                software_version: "test".into(),
            })
            .await
            .unwrap();
    }

    /// Polls a rollout until it is done (at most `secs` seconds).
    pub async fn wait_done(&self, id: u64, secs: u64) -> RolloutView {
        for _ in 0..secs * 20 {
            let v = self.anon.rollout_status(id).await.unwrap();
            if v.done {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let v = self.anon.rollout_status(id).await.unwrap();
        panic!(
            "rollout {id} not done after {secs} s: {}",
            serde_json::to_string_pretty(&v).unwrap()
        );
    }

    /// Starts a rollout of `digest` baking `bake_ms` per wave.
    pub async fn start_rollout(&self, digest: Digest, bake_ms: u64) -> RolloutView {
        self.admin
            .rollout_start(&StartRollout {
                digest,
                reason: Some("test".into()),
                break_glass: false,
                bake_ms: Some(bake_ms),
            })
            .await
            .unwrap()
    }

    /// The digest a document gets (of its canonical bytes).
    pub fn sign_digest(&self, doc: &Document) -> Digest {
        doc.digest()
    }
}
