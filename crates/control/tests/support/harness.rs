//! A control plane in-process on 127.0.0.1:0, clients for each role, signed documents, and
//! a simulated fleet that heartbeats through the real HTTP API.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_api::{
    Active, ApplyReport, Client, Heartbeat, Labels, Registration, RolloutView, StartRollout,
};
use rampart_artifact::{
    ContractSpec, Digest, Document, Envelope, Feature, Issue, Keyring, Model, Provenance, SCHEMA,
    SecretKey,
};
use rampart_control::auth::Tokens;
use rampart_control::{Config, Server};
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin-secret-0123456789abcdef0123456789";
pub const PUBLISHER: &str = "publisher-secret-0123456789abcdef01234";
pub const EDGE: &str = "edge-secret-0123456789abcdef0123456789ab";

/// Requests each simulated edge reports per beat: one per score 1..=99 and one unscored.
pub const REQUESTS_PER_BEAT: u64 = 100;

pub struct Harness {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub key: SecretKey,
    pub url: String,
    pub admin: Client,
    pub publisher: Client,
    pub edge: Client,
    pub anon: Client,
}

pub fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.add_file(&format!(
        "alice admin {ADMIN}\ngen publisher {PUBLISHER}\nedges edge {EDGE}\n"
    ))
    .unwrap();
    t
}

pub fn key() -> SecretKey {
    SecretKey::from_seed([7; 32])
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

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

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

    pub fn sign(&self, doc: &Document) -> Vec<u8> {
        Envelope::sign(doc, &self.key).to_json()
    }

    pub async fn register(&self, node: &str, pop: &str, region: &str, canary: bool) {
        self.register_with(node, pop, region, canary, ContractSpec::default())
            .await;
    }

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
}

/// A document with `n` features named `f0..`, version `version`, weights `weight`.
pub fn doc(version: u64, n: usize, weight: f64) -> Document {
    Document {
        schema: SCHEMA.into(),
        version,
        created_at: "2025-11-18T11:05:00Z".into(),
        provenance: Provenance {
            source: "catalog:test".into(),
            query: "q".into(),
            rows: n as u64,
            generator: "test".into(),
            generator_version: "0".into(),
            server_version: None,
        },
        model: Model { bias: 0.0 },
        features: (0..n)
            .map(|i| Feature {
                name: format!("f{i}"),
                ty: "Float64".into(),
                weight,
            })
            .collect(),
    }
}

/// The 18 November file: every feature twice.
pub fn doubled(version: u64, n: usize) -> Document {
    let mut d = doc(version, n, 0.5);
    let again = d.features.clone();
    d.features.extend(again);
    d
}

/// A simulated fleet: one task per node, heartbeating through the HTTP API, applying what
/// it is told (fetching the bytes) unless the digest is in `refuse` (then it NACKs, as an
/// edge whose contract the file breaks would).
pub struct Fleet {
    pub refuse: Arc<Mutex<HashSet<Digest>>>,
    pub client: Arc<Mutex<Client>>,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Fleet {
    pub fn start(client: Client, nodes: &[&str]) -> Self {
        let refuse = Arc::new(Mutex::new(HashSet::new()));
        let client = Arc::new(Mutex::new(client));
        let (stop, _) = tokio::sync::watch::channel(false);
        let tasks = nodes
            .iter()
            .map(|n| {
                tokio::spawn(agent(
                    Arc::clone(&client),
                    (*n).to_owned(),
                    Arc::clone(&refuse),
                    stop.subscribe(),
                ))
            })
            .collect();
        Fleet {
            refuse,
            client,
            tasks,
            stop,
        }
    }

    pub async fn stop(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// At most this many beats per simulated node: every test loop is bounded.
const MAX_BEATS: u64 = 5_000;

async fn agent(
    client: Arc<Mutex<Client>>,
    node: String,
    refuse: Arc<Mutex<HashSet<Digest>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut beat = Heartbeat::empty(0);
    let mut active: Option<Active> = None;
    for seq in 0..MAX_BEATS {
        if *stop.borrow_and_update() {
            return;
        }
        beat.seq = seq;
        beat.active = active;
        beat.counters.requests = REQUESTS_PER_BEAT;
        beat.scores = rampart_api::ScoreHistogram::default();
        for s in 1..=99u8 {
            beat.scores.record(s);
        }
        beat.scores.record_unscored();
        beat.wait_ms = 100;
        let c = client.lock().unwrap().clone();
        let answer = tokio::select! {
            a = c.heartbeat(&node, &beat) => a,
            _ = stop.changed() => return,
        };
        let answer = match answer {
            Ok(a) => a,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        beat.seen = Some(answer.etag.clone());
        beat.module_enabled = answer.kill_switches.bot.enabled;
        if let Some(d) = answer.desired
            && active.map(|a| a.digest) != Some(d.digest)
        {
            let refused = refuse.lock().unwrap().contains(&d.digest);
            if refused {
                beat.verdict = Some(ApplyReport::nack(
                    d.digest,
                    Some(d.version),
                    &[Issue::TooManyFeatures {
                        count: 400,
                        limit: 200,
                    }],
                    0,
                ));
            } else if c.fetch(&d.digest).await.is_ok() {
                active = Some(Active {
                    version: d.version,
                    digest: d.digest,
                });
                beat.verdict = Some(ApplyReport::ack(d.digest, d.version, 0));
            }
        }
    }
}

impl Harness {
    /// The digest a document gets (of its canonical bytes).
    pub fn sign_digest(&self, doc: &Document) -> Digest {
        doc.digest()
    }
}
