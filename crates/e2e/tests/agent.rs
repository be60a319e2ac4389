//! The edge agent against a real control plane (in-process, on loopback): kill switches both
//! ways, ACK and NACK with issue codes, counters and the score histogram in heartbeats, a
//! restart reported once, enrollment with a one-time bootstrap token and the credential kept
//! across restarts, and a control plane that does not know the credential refusing the node.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_api::{
    AckNack, Client, IssueEnrollment, KillSwitchSet, Labels, Module, StartRollout, Transport,
};
use rampart_artifact::Keyring;
use rampart_artifact::testing::{key, other_key, signed, signed_by};
use rampart_control::{Config, Server};
use rampart_e2e::control_plane::{ADMIN, ADMIN2, tokens};
use rampart_edge::agent::{Agent, AgentConfig, AgentReport};
use rampart_edge::bot::ModelCompiler;
use rampart_edge::metrics::Metrics;
use rampart_ingest::Store;
use rampart_up::inject::{catalog_document, nov18_document};
use tokio::sync::watch;

async fn control(data: &std::path::Path, listen: SocketAddr) -> Server {
    // `other_key` is trusted by the control plane and not by the edge.
    let keys = Keyring::new([key().public(), other_key().public()]);
    let mut c = Config::new(data.to_owned(), tokens(), keys);
    c.listen = listen;
    c.beat_interval_ms = 100;
    c.rollout_policy.tick_ms = 100;
    Server::start(c).await.unwrap()
}

struct Edge {
    store: Arc<Store<ModelCompiler>>,
    metrics: Arc<Metrics>,
    report: watch::Receiver<AgentReport>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// An edge agent for `fra-1` on plain HTTP: with `enroll_token` it enrolls first and keeps
/// its credential in `data/node.credential`; with `token` it uses that credential.
fn edge(
    url: &str,
    data: &std::path::Path,
    token: Option<String>,
    enroll_token: Option<String>,
) -> Edge {
    let plain = Transport {
        ca_pem: None,
        plain_http: true,
    };
    edge_with(url, data, token, enroll_token, plain)
}

/// [`edge`] over `transport`.
fn edge_with(
    url: &str,
    data: &std::path::Path,
    token: Option<String>,
    enroll_token: Option<String>,
    transport: Transport,
) -> Edge {
    let contract = rampart_score::edge_contract();
    let config = rampart_ingest::Config::new(
        data.to_owned(),
        contract.clone(),
        Keyring::new([key().public()]),
    );
    let store =
        Arc::new(Store::boot(config, ModelCompiler::new(contract.max_features()), 1).unwrap());
    let metrics = Arc::new(Metrics::default());
    let agent = Agent::new(
        AgentConfig {
            control: url.to_owned(),
            token,
            enroll_token,
            credential_file: Some(data.join("node.credential")),
            node: "fra-1".into(),
            labels: Labels {
                pop: "fra".into(),
                region: "eu".into(),
                canary: true,
            },
            beat_interval: None,
            transport,
        },
        store.clone(),
        metrics.clone(),
    )
    .unwrap();
    let report = agent.report();
    let (stop, mut rx) = watch::channel(false);
    let task = tokio::spawn(agent.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    Edge {
        store,
        metrics,
        report,
        stop,
        task,
    }
}

async fn wait_done(admin: &Client) -> rampart_api::RolloutView {
    for _ in 0..200 {
        if let Some(v) = admin.rollouts(1).await.unwrap().rollouts.into_iter().next()
            && v.done
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no rollout ended");
}

async fn until(
    report: &watch::Receiver<AgentReport>,
    what: impl Fn(&AgentReport) -> bool,
) -> AgentReport {
    let mut rx = report.clone();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|r| what(r)))
        .await
        .expect("in time")
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_its_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let listen = rampart_up::stack::free_addr().unwrap();
    let server = control(&dir.path().join("control"), listen).await;
    let url = format!("http://{listen}");
    let admin = Client::new(&url, Some(ADMIN.into())).unwrap();
    let admin2 = Client::new(&url, Some(ADMIN2.into())).unwrap();
    let boot = admin
        .enrollment_issue(&IssueEnrollment {
            node: "fra-1".into(),
            reason: "new edge".into(),
            ttl_ms: None,
        })
        .await
        .unwrap();
    let edge_dir = dir.path().join("edge");
    let e = edge(&url, &edge_dir, None, Some(boot.token.clone()));
    let r = until(&e.report, |r| r.registered && r.beats > 0).await;
    assert!(r.enrolled);
    // The credential is kept, owner-only, and the bootstrap token is spent.
    let credential_file = edge_dir.join("node.credential");
    let credential = std::fs::read_to_string(&credential_file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&credential_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let e2 = Client::new(&url, Some(boot.token))
        .unwrap()
        .enroll("fra-1")
        .await;
    assert_eq!(e2.unwrap_err().status(), Some(401));

    // Requests counted on the request path reach the control plane as deltas.
    for s in [1u8, 50, 50, 99] {
        e.metrics.response(http::StatusCode::OK);
        e.metrics.score(s);
    }
    e.metrics.response(http::StatusCode::BAD_GATEWAY);
    e.metrics
        .unscored(rampart_edge::metrics::UnscoredReason::NoModel);
    // (The control plane keeps the last beat; a later empty beat replaces it, so the check
    // looks for a beat that carried them.)
    let mut carried = false;
    for _ in 0..100 {
        let node = admin.node("fra-1").await.unwrap();
        if node.health == rampart_api::Health::Degraded {
            carried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(carried, "a beat with a 5xx makes the node degraded");

    // Healthy traffic from now on, so the gates have evidence.
    let metrics = e.metrics.clone();
    let traffic = tokio::spawn(async move {
        for i in 0..100_000u64 {
            for _ in 0..10 {
                metrics.response(http::StatusCode::OK);
                metrics.score(u8::try_from(20 + i % 70).unwrap());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    // A version: fetched, applied, ACKed.
    let v1 = catalog_document(1).unwrap();
    let d1 = admin.publish(signed(&v1)).await.unwrap().artifact.digest;
    let start = |digest| StartRollout {
        digest,
        reason: Some("test".into()),
        break_glass: false,
        bake_ms: Some(100),
        watch_ms: Some(0),
    };
    admin
        .rollout_start(&start(d1))
        .await
        .unwrap()
        .done()
        .unwrap();
    until(&e.report, |r| {
        r.verdict
            .as_ref()
            .is_some_and(|v| v.digest == d1 && v.verdict == AckNack::Ack)
    })
    .await;
    assert_eq!(e.store.snapshot().version(), Some(1));
    let done = wait_done(&admin).await;
    assert_eq!(done.phase, "succeeded", "{done:?}");

    // The control plane refuses the 18 November file against the contract the edge
    // registered.
    let refused = admin
        .publish(signed(&nov18_document(2).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422));

    // A file the edge refuses (a key it does not trust): NACK with the issue code, the
    // version serving stays, the rollout rolls back.
    let d2 = admin
        .publish(signed_by(&catalog_document(2).unwrap(), &other_key()))
        .await
        .unwrap()
        .artifact
        .digest;
    admin
        .rollout_start(&start(d2))
        .await
        .unwrap()
        .done()
        .unwrap();
    let r = until(&e.report, |r| {
        r.verdict
            .as_ref()
            .is_some_and(|v| v.digest == d2 && v.verdict == AckNack::Nack)
    })
    .await;
    assert_eq!(r.verdict.unwrap().issues, ["unknown_key"]);
    assert_eq!(e.store.snapshot().version(), Some(1));
    let done = wait_done(&admin).await;
    assert_eq!(done.phase, "rolled_back", "{done:?}");

    // Kill switch off, then on again, fleet-wide from the control plane: alice asks, bob
    // approves.
    for enabled in [false, true] {
        let pending = admin
            .killswitch_set(&KillSwitchSet {
                module: Module::Bot,
                enabled,
                node: None,
                clear: false,
                reason: "drill".into(),
            })
            .await
            .unwrap()
            .pending()
            .unwrap();
        admin2.approve(pending.id).await.unwrap();
        until(&e.report, |r| r.kill_switch == Some(enabled)).await;
        for _ in 0..100 {
            if e.store.snapshot().module_enabled == enabled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(e.store.snapshot().module_enabled, enabled);
    }

    // The control plane restarts on its store: the credential still works.
    server.shutdown().await;
    let after = until(&e.report, |r| !r.connected).await;
    assert!(after.failures > 0);
    let server = control(&dir.path().join("control"), listen).await;
    until(&e.report, |r| r.connected && r.registered).await;
    let nodes = admin.nodes().await.unwrap().nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].active.map(|a| a.version),
        Some(1),
        "it reports what it serves"
    );
    e.stop.send_replace(true);
    e.task.await.unwrap();

    // A restarted edge reuses its stored credential (no bootstrap token left).
    let e = edge(&url, &edge_dir, Some(credential.clone()), None);
    let r = until(&e.report, |r| r.connected && r.beats > 0).await;
    assert!(r.enrolled);
    e.stop.send_replace(true);
    e.task.await.unwrap();

    // A control plane that never enrolled this node (another store) refuses it: 401, the
    // edge keeps serving what it has and says why.
    server.shutdown().await;
    let server = control(&dir.path().join("control-new"), listen).await;
    let e = edge(&url, &edge_dir, Some(credential), None);
    let r = until(&e.report, |r| r.failures > 0).await;
    assert!(
        r.last_error.as_deref().unwrap_or("").contains("401"),
        "{r:?}"
    );
    assert!(admin.nodes().await.unwrap().nodes.is_empty());

    traffic.abort();
    e.stop.send_replace(true);
    e.task.await.unwrap();
    server.shutdown().await;
}

/// A recording stand-in for the control plane's two edge routes: every heartbeat body is
/// kept, registration always succeeds, and a beat that saw the current etag is held for its
/// `wait_ms` (at most 100 ms), like the real long-poll.
async fn recorder() -> (
    SocketAddr,
    Arc<std::sync::Mutex<Vec<rampart_api::Heartbeat>>>,
) {
    use http_body_util::{BodyExt as _, Full};
    let beats = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kept = beats.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let answer = if path.ends_with("/heartbeat") {
                                let beat: rampart_api::Heartbeat =
                                    serde_json::from_slice(&body).unwrap();
                                let seen = beat.seen.clone();
                                let wait = beat.wait_ms.min(100);
                                kept.lock().unwrap().push(beat);
                                if seen.as_deref() == Some("e1") {
                                    tokio::time::sleep(Duration::from_millis(wait)).await;
                                }
                                serde_json::json!({
                                    "desired": null,
                                    "kill_switches": { "bot": { "enabled": true, "scope": "default" } },
                                    "etag": "e1",
                                    "beat_interval_ms": 50,
                                    "changed": seen.as_deref() != Some("e1"),
                                })
                            } else {
                                serde_json::json!({ "node": "fra-1", "created": true, "beat_interval_ms": 50 })
                            };
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                bytes::Bytes::from(answer.to_string()),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, beats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_carry_a_restart_once_and_every_request_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("edge");
    {
        // A run that booted and never recorded a clean exit: it died.
        let contract = rampart_score::edge_contract();
        let config =
            rampart_ingest::Config::new(data.clone(), contract, Keyring::new([key().public()]));
        drop(Store::boot(config, ModelCompiler::new(200), 1).unwrap());
    }
    let (addr, beats) = recorder().await;
    let e = edge(&format!("http://{addr}"), &data, None, None);
    assert!(e.store.restarted_after_death());
    // Requests while the agent beats: 30 rounds of 3 scored, 1 unscored, 1 5xx.
    for _ in 0..30 {
        for s in [10u8, 50, 90] {
            e.metrics.response(http::StatusCode::OK);
            e.metrics.score(s);
        }
        e.metrics
            .unscored(rampart_edge::metrics::UnscoredReason::Disabled);
        e.metrics.response(http::StatusCode::BAD_GATEWAY);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Two more long-polls deliver the last counts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    e.stop.send_replace(true);
    e.task.await.unwrap();
    let beats = beats.lock().unwrap().clone();
    assert!(beats.len() >= 3, "{}", beats.len());
    assert_eq!(
        beats[0].counters.restarts, 1,
        "the first beat reports the death"
    );
    assert!(beats.iter().skip(1).all(|b| b.counters.restarts == 0));
    assert_eq!((beats[0].seen.as_deref(), beats[0].wait_ms), (None, 0));
    assert_eq!(
        (beats[1].seen.as_deref(), beats[1].wait_ms),
        (Some("e1"), 50)
    );
    let sum = |f: &dyn Fn(&rampart_api::Heartbeat) -> u64| beats.iter().map(f).sum::<u64>();
    assert_eq!(sum(&|b| b.counters.requests), 120);
    assert_eq!(sum(&|b| b.counters.errors_5xx), 30);
    assert_eq!(
        sum(&|b| b.scores.buckets[49]),
        30,
        "score 50, exactly once each"
    );
    assert_eq!(sum(&|b| b.scores.unscored), 30);
    assert_eq!(sum(&|b| b.scores.total()), 120);
    assert!(
        beats.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "seq counts beats"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_the_right_ca_the_agent_registers_beats_and_takes_a_version() {
    let h = rampart_e2e::Harness::start_tls().await;
    assert!(h.url.starts_with("https://"), "{}", h.url);
    let dir = tempfile::tempdir().unwrap();
    let credential = rampart_e2e::control_plane::enroll(&h.admin, "fra-1").await;
    let e = edge_with(
        &h.url,
        dir.path(),
        Some(credential),
        None,
        h.transport.clone(),
    );
    until(&e.report, |r| r.registered && r.beats > 1).await;
    assert_eq!(h.anon.nodes().await.unwrap().nodes.len(), 1);

    let d1 = h
        .publisher
        .publish(signed(&catalog_document(1).unwrap()))
        .await
        .unwrap()
        .artifact
        .digest;
    h.admin
        .rollout_start(&StartRollout {
            digest: d1,
            reason: Some("test".into()),
            break_glass: false,
            bake_ms: Some(100),
            watch_ms: Some(0),
        })
        .await
        .unwrap();
    until(&e.report, |r| {
        r.verdict
            .as_ref()
            .is_some_and(|v| v.digest == d1 && v.verdict == AckNack::Ack)
    })
    .await;
    assert_eq!(e.store.snapshot().version(), Some(1));
    // Every handshake so far was a good one.
    let health = h.server.as_ref().unwrap().tls_report().unwrap();
    assert_eq!(health.handshake_failures, 0, "{health:?}");
    let _ = e.stop.send(true);
    e.task.await.unwrap();
}
