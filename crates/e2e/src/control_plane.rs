//! A control plane in-process on 127.0.0.1:0 with fast gates, its tokens, and a client for
//! each role. Files are built and signed with [`rampart_artifact::testing`].

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: a failed setup fails the calling test"
)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rampart_api::{
    Client, IssueEnrollment, Labels, Registration, RolloutView, StartRollout, Transport,
};
use rampart_artifact::testing::{key, signed_by};
use rampart_artifact::{ContractSpec, Digest, Document, Keyring, SecretKey};
use rampart_control::auth::Tokens;
use rampart_control::tls::ServerTls;
use rampart_control::tls::authority::{self, TlsFiles};
use rampart_control::{Config, Server};

/// The admin's token (user `alice`).
pub const ADMIN: &str = "admin-secret-0123456789abcdef0123456789";
/// A second admin's token (user `bob`): approves what `alice` asks for.
pub const ADMIN2: &str = "admin2-secret-0123456789abcdef012345678";
/// The publisher's token (user `gen`).
pub const PUBLISHER: &str = "publisher-secret-0123456789abcdef01234";
/// The old shared edge token (user `edges`): loaded, allowed nothing (nodes enroll).
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
    /// `http://127.0.0.1:PORT`, or `https://` from [`Harness::start_tls`].
    pub url: String,
    /// From [`Harness::start_tls`]: the CA and the server pair (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// How the clients below reach it (the CA to trust, or plain HTTP on loopback).
    pub transport: Transport,
    /// A client with the admin token (`alice`).
    pub admin: Client,
    /// A client with the second admin's token (`bob`).
    pub admin2: Client,
    /// A client with the publisher token.
    pub publisher: Client,
    /// A client with the old shared edge token (refused for node writes).
    pub edge: Client,
    /// A client without a token.
    pub anon: Client,
    /// The credential of every node [`Harness::register`] enrolled.
    pub credentials: Mutex<BTreeMap<String, String>>,
}

/// Enrolls `node` through the API: `admin` issues a bootstrap token, a client with it
/// trades it for the node's credential, which is returned.
pub async fn enroll(admin: &Client, node: &str) -> String {
    let issued = admin
        .enrollment_issue(&IssueEnrollment {
            node: node.into(),
            reason: "test".into(),
            ttl_ms: None,
        })
        .await
        .unwrap();
    admin
        .with_token(Some(issued.token))
        .enroll(node)
        .await
        .unwrap()
        .credential
}

/// The tokens of [`ADMIN`], [`ADMIN2`], [`PUBLISHER`] and [`EDGE`].
pub fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.add_file(&format!(
        "alice admin {ADMIN}\nbob admin {ADMIN2}\ngen publisher {PUBLISHER}\nedges edge {EDGE}\n"
    ))
    .unwrap();
    t
}

/// Fast gates for tests: 100 ms ticks, 100 requests and scores suffice.
pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir.to_owned(), tokens(), Keyring::new([key().public()]));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.rollout_policy.tick_ms = 100;
    c.rollout_policy.watch_ms = 1_000; // a short watch after the last wave (issue 14)
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

    /// Starts a control plane with [`config`] changed by `tweak`, in plain HTTP on
    /// loopback.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        tweak(&mut c);
        let transport = Transport {
            ca_pem: None,
            plain_http: true,
        };
        Self::launch(dir, c, None, transport).await
    }

    /// Starts a control plane over TLS: a fresh CA and server certificate in `DIR/tls`
    /// (as `rampart tls init` makes them), clients trusting that CA only.
    pub async fn start_tls() -> Self {
        Self::start_tls_with(|_| {}).await
    }

    /// [`start_tls`](Self::start_tls) with [`config`] changed by `tweak`.
    pub async fn start_tls_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = authority::init(&dir.path().join("tls"), &[]).unwrap();
        let mut c = config(dir.path());
        c.tls = ServerTls::Files {
            cert: files.server_cert.clone(),
            key: files.server_key.clone(),
        };
        tweak(&mut c);
        let transport = Transport::from_flags(Some(&files.ca_cert), false).unwrap();
        Self::launch(dir, c, Some(files), transport).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        c: Config,
        tls: Option<TlsFiles>,
        transport: Transport,
    ) -> Self {
        let server = Server::start(c).await.unwrap();
        let url = server.url();
        let client = |token: Option<&str>| {
            Client::with_transport(&url, token.map(str::to_owned), &transport).unwrap()
        };
        Harness {
            admin: client(Some(ADMIN)),
            admin2: client(Some(ADMIN2)),
            credentials: Mutex::new(BTreeMap::new()),
            publisher: client(Some(PUBLISHER)),
            edge: client(Some(EDGE)),
            anon: client(None),
            server: Some(server),
            dir,
            key: key(),
            tls,
            transport,
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

    /// Enrolls `node` (once; its credential is kept) and answers a client with its
    /// credential.
    pub async fn node(&self, node: &str) -> Client {
        let known = self.credentials.lock().unwrap().get(node).cloned();
        let credential = match known {
            Some(c) => c,
            None => {
                let c = enroll(&self.admin, node).await;
                self.credentials
                    .lock()
                    .unwrap()
                    .insert(node.to_owned(), c.clone());
                c
            }
        };
        self.anon.with_token(Some(credential))
    }

    /// `(node, credential)` for each of `nodes`, enrolling those not enrolled yet: what
    /// [`crate::Fleet::start`] takes.
    pub async fn enrolled(&self, nodes: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in nodes {
            self.node(n).await;
            let c = self.credentials.lock().unwrap().get(*n).cloned().unwrap();
            out.push(((*n).to_owned(), c));
        }
        out
    }

    /// Registers `node` with `contract` (enrolling it first).
    pub async fn register_with(
        &self,
        node: &str,
        pop: &str,
        region: &str,
        canary: bool,
        contract: ContractSpec,
    ) {
        self.node(node)
            .await
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
                watch_ms: None,
            })
            .await
            .unwrap()
            .done()
            .unwrap()
    }

    /// A break-glass start of `digest` baking `bake_ms`: `alice` asks, `bob` approves.
    pub async fn break_glass(&self, digest: Digest, reason: &str, bake_ms: u64) -> RolloutView {
        let pending = self
            .admin
            .rollout_start(&StartRollout {
                digest,
                reason: Some(reason.into()),
                break_glass: true,
                bake_ms: Some(bake_ms),
                watch_ms: None,
            })
            .await
            .unwrap()
            .pending()
            .unwrap();
        let approved = self.admin2.approve(pending.id).await.unwrap();
        serde_json::from_value(approved.result).unwrap()
    }

    /// The digest a document gets (of its canonical bytes).
    pub fn sign_digest(&self, doc: &Document) -> Digest {
        doc.digest()
    }
}
