//! A simulated fleet: one task per node, heartbeating through the control plane's real HTTP
//! API, applying what it is told or refusing it as an edge whose contract the file breaks.

#![allow(
    clippy::unwrap_used,
    reason = "test support: a poisoned lock means a test already failed"
)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_api::{Active, ApplyReport, Client, Heartbeat};
use rampart_artifact::{Digest, Issue};
use tokio::task::JoinHandle;

/// Requests each simulated edge reports per beat: one per score 1..=99 and one unscored.
pub const REQUESTS_PER_BEAT: u64 = 100;

/// A simulated fleet: one task per node, heartbeating through the HTTP API, applying what
/// it is told (fetching the bytes) unless the digest is in `refuse` (then it NACKs, as an
/// edge whose contract the file breaks would).
#[derive(Debug)]
pub struct Fleet {
    /// Digests every node NACKs.
    pub refuse: Arc<Mutex<HashSet<Digest>>>,
    /// The client the nodes beat with, each with its own credential (a test may swap it,
    /// for another URL).
    pub client: Arc<Mutex<Client>>,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

// === impl Fleet ===

impl Fleet {
    /// Starts one task per `(node, credential)`, beating through `client` with the node's
    /// own credential (see [`crate::control_plane::enroll`]).
    pub fn start(client: Client, nodes: &[(String, String)]) -> Self {
        let refuse = Arc::new(Mutex::new(HashSet::new()));
        let client = Arc::new(Mutex::new(client));
        let (stop, _) = tokio::sync::watch::channel(false);
        let tasks = nodes
            .iter()
            .map(|(n, credential)| {
                tokio::spawn(agent(
                    Arc::clone(&client),
                    n.clone(),
                    credential.clone(),
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

    /// Stops every node and waits for its task.
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
    credential: String,
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
        let c = client.lock().unwrap().with_token(Some(credential.clone()));
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
