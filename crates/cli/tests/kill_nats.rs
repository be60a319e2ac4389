//! Kill switches on an independent path (issue 15): three real edges started with `--nats`
//! watch the kill bucket of a 3-server NATS cluster. With both control-plane replicas
//! SIGKILLed, `rampart killswitch set bot off --nats … --director-key …` turns the bot module
//! off on every edge within 2 s while traffic keeps flowing; a forged value (another key), a
//! replayed one (an older value put again) and another node's value are refused and counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rampart_api::{Client, KillSwitchSet, Module};
use rampart_artifact::testing::other_key;
use rampart_e2e::NatsCluster;
use rampart_up::child::Child;
use rampart_up::load::Load;
use rampart_up::origin::Origin;
use rampart_up::stack::{self, EdgeProc, EdgeSpec};
use rampart_up::status::get_json;
use rampart_up::trust::TrustFiles;
use rampart_up::workdir::Workdir;

const WAIT: Duration = Duration::from_secs(20);

/// The bound: every edge off within 2 s of the command.
const KILL_WITHIN: Duration = Duration::from_secs(2);

const NODES: [&str; 3] = ["edge-0", "edge-1", "edge-2"];

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rampart"))
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(edge: &EdgeProc) -> serde_json::Value {
    get_json(edge.admin, "/status").await.unwrap()
}

async fn module_enabled(edge: &EdgeProc) -> bool {
    status(edge).await["module_enabled"].as_bool().unwrap()
}

async fn kill_refused(edge: &EdgeProc, code: &str) -> u64 {
    status(edge).await["kill_watch"]["refused"][code]
        .as_u64()
        .unwrap_or(0)
}

/// A `rampart control` replica on the NATS store, with its own data dir, TLS and trust.
/// It listens on `listen` (fixed, so edges find a restarted replica again).
fn control(
    work: &Workdir,
    trust: &TrustFiles,
    name: &str,
    store: &str,
    listen: std::net::SocketAddr,
) -> (Child, String) {
    let tls = work.tls();
    let mut cmd = Command::new(exe());
    cmd.args(["control", "--store", store, "--listen", &listen.to_string()])
        .arg("--data-dir")
        .arg(work.dir(&format!("control/{name}")).unwrap())
        .arg("--token-file")
        .arg(&work.tokens)
        .arg("--policy")
        .arg(&work.policy)
        .args(["--beat-interval-ms", "100"])
        .arg("--tls-cert")
        .arg(&tls.server_cert)
        .arg("--tls-key")
        .arg(&tls.server_key)
        .args(trust.control_args())
        .env("RUST_LOG", "warn");
    let child = Child::start(name, cmd, &work.log(name)).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(work.log(name)).unwrap_or_default();
        panic!("{name} did not start: {e}\n{log}")
    });
    let url = child
        .first_line()
        .trim()
        .strip_prefix("rampart control listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {:?}", child.first_line()))
        .to_owned();
    (child, url)
}

/// Two replicas on `store`: `control-a` on `a_listen`, started first and leading, then
/// `control-b`, following.
async fn replicas(
    work: &Workdir,
    trust: &TrustFiles,
    store: &str,
    a_listen: std::net::SocketAddr,
) -> ((Child, String), (Child, String)) {
    let (a, a_url) = control(work, trust, "control-a", store, a_listen);
    until("a leads", async || {
        role(work, &a_url).await.as_deref() == Some("leader")
    })
    .await;
    let b_listen = stack::free_addr().unwrap();
    let (b, b_url) = control(work, trust, "control-b", store, b_listen);
    until("b follows", async || {
        role(work, &b_url).await.as_deref() == Some("follower")
    })
    .await;
    ((a, a_url), (b, b_url))
}

async fn role(work: &Workdir, url: &str) -> Option<String> {
    let c = Client::with_transport(url, None, &work.transport().unwrap()).unwrap();
    let h = c.health().await.ok()?;
    h["role"].as_str().map(str::to_owned)
}

/// `rampart killswitch set bot STATE --nats URL --director-key KEY --reason REASON [--node]`.
fn break_glass(nats: &str, key: &std::path::Path, state: &str, reason: &str) -> String {
    let out = Command::new(exe())
        .args(["killswitch", "set", "bot", state, "--nats", nats])
        .arg("--director-key")
        .arg(key)
        .args(["--reason", reason])
        .env_remove("RAMPART_CONTROL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "killswitch set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_control_plane_replica_killed_the_bot_module_turns_off_on_every_edge_within_2s()
{
    let mut nats = NatsCluster::start(3);
    nats.wait_ready(Duration::from_secs(20));
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let work = Workdir::create(&dir.path().join("stack"), "").unwrap();
    let trust = TrustFiles::create(&work).unwrap();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();

    // Two replicas: a leads, b follows.
    let a_listen = stack::free_addr().unwrap();
    let ((a, a_url), (b, b_url)) = replicas(&work, &trust, &url, a_listen).await;

    let mut extra = trust.edge_args();
    extra.extend(["--nats".into(), url.clone()]);
    let edges: Vec<EdgeProc> = NODES
        .iter()
        .map(|id| {
            stack::start_edge(
                &EdgeSpec {
                    exe: exe(),
                    id: (*id).into(),
                    pop: "fra".into(),
                    region: "eu".into(),
                    canary: false,
                    upstream: origin.addr(),
                    control: a_url.clone(),
                    pubkeys: Vec::new(),
                    extra: extra.clone(),
                    test_hooks: false,
                    agent_control: None,
                },
                &work,
            )
            .unwrap()
        })
        .collect();
    for edge in &edges {
        until("the edge watches the kill bucket", async || {
            status(edge).await["kill_watch"]["connected"] == true
                && status(edge).await["control"]["orders"]["seq"].is_u64()
        })
        .await;
        assert!(module_enabled(edge).await);
    }

    // Writer (a): a switch set through the leader's API is put in the bucket too.
    let admin = Client::with_transport(
        &a_url,
        Some(work.admin_secret.clone()),
        &work.transport().unwrap(),
    )
    .unwrap();
    let set = |enabled: bool, clear: bool| KillSwitchSet {
        module: Module::Bot,
        enabled,
        node: Some("edge-1".into()),
        clear,
        reason: "api path".into(),
    };
    admin.killswitch_set(&set(false, false)).await.unwrap();
    until("edge-1 off by the leader's node switch", async || {
        !module_enabled(&edges[1]).await
            && status(&edges[1]).await["kill_watch"]["node_seq"].is_u64()
    })
    .await;
    admin.killswitch_set(&set(true, true)).await.unwrap();
    until("edge-1 follows the fleet again", async || {
        module_enabled(&edges[1]).await
            && status(&edges[1]).await["kill_watch"]["last_applied"]["clear"] == true
    })
    .await;

    // Traffic through every edge, all along.
    let load = Load::start(edges.iter().map(|e| e.proxy).collect(), 60, 7).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every control-plane replica dies.
    for (child, name) in [(&a, "a"), (&b, "b")] {
        let ok = Command::new("kill")
            .args(["-KILL", &child.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "SIGKILL {name}");
    }
    until("both replicas gone", async || {
        role(&work, &a_url).await.is_none() && role(&work, &b_url).await.is_none()
    })
    .await;

    // Break-glass: no control plane.
    let key = &trust.director_key;
    let start = Instant::now();
    let said = break_glass(&url, key, "off", "incident 99: control plane down");
    assert!(said.contains("OFF on the fleet"), "{said}");
    let mut off_after = Vec::new();
    for edge in &edges {
        until("the edge turned the module off", async || {
            !module_enabled(edge).await
        })
        .await;
        off_after.push(start.elapsed());
    }
    let worst = start.elapsed();
    println!(
        "kill switch over NATS, both control planes SIGKILLed: every edge off after {worst:?} \
         (per edge, polled in turn: {off_after:?}; includes starting the CLI process)"
    );
    assert!(worst <= KILL_WITHIN, "every edge off after {worst:?}");
    let reason = status(&edges[0]).await["kill_switch_reason"].clone();
    assert!(reason.to_string().contains("incident 99"), "{reason}");

    // Traffic keeps flowing, unscored.
    let before = load.stats().totals();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after = load.stats().totals().since(&before);
    assert!(after.ok > 20, "{after:?}");
    assert_eq!(
        after.blocked, 0,
        "module off: nothing scored, nothing blocked: {after:?}"
    );
    assert_eq!(
        load.stats().totals().failures(),
        0,
        "{:?}",
        load.stats().totals()
    );

    // Replay: the value just written, put again after a newer one.
    let client = async_nats::connect(&nats.urls()[0]).await.unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value("RAMPART_KILL")
        .await
        .unwrap();
    let captured = kv.entry("fleet").await.unwrap().unwrap().value;
    break_glass(&url, key, "off", "incident 99: still down");
    for edge in &edges {
        until("the newer order applied", async || {
            status(edge).await["kill_watch"]["last_applied"]["reason"] == "incident 99: still down"
        })
        .await;
    }
    kv.put("fleet", captured).await.unwrap();
    for edge in &edges {
        until("the replay refused", async || {
            kill_refused(edge, "older").await >= 1
        })
        .await;
    }

    // Forged: signed by a key outside the keyset, saying "on".
    let forger = dir.path().join("forger.key");
    std::fs::write(&forger, other_key().to_pem().unwrap()).unwrap();
    break_glass(&url, &forger, "on", "forged");
    for edge in &edges {
        until("the forgery refused", async || {
            kill_refused(edge, "unknown_key").await >= 1
        })
        .await;
    }

    // Another node's value (edge-1's, signed) put under edge-0's key.
    let edge1 = kv.entry("node.edge-1").await.unwrap().unwrap().value;
    kv.put("node.edge-0", edge1).await.unwrap();
    until("edge-0 refused edge-1's order", async || {
        kill_refused(&edges[0], "other_node").await >= 1
    })
    .await;
    let metrics = rampart_up::status::get_text(edges[0].admin, "/metrics")
        .await
        .unwrap();
    for code in ["older", "unknown_key", "other_node"] {
        let name = format!("rampart_edge_kill_refused_total{{code=\"{code}\"}} ");
        let n: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&name))
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
            .parse()
            .unwrap();
        assert!(n >= 1, "{name}{n}");
    }

    // Nothing refused changed anything: still off everywhere, traffic still flowing.
    for edge in &edges {
        assert!(!module_enabled(edge).await);
    }

    // A control plane comes back: it takes the break-glass switch into its state and audit
    // log (the newest one, "still down"), and its own answers now say off too.
    drop((a, b));
    let (a, a_url) = control(&work, &trust, "control-a", &url, a_listen);
    let admin = Client::with_transport(
        &a_url,
        Some(work.admin_secret.clone()),
        &work.transport().unwrap(),
    )
    .unwrap();
    until(
        "the break-glass switch in the control plane's state",
        async || {
            admin.killswitches().await.is_ok_and(|l| {
                l.switches.iter().any(|s| {
                    s.node.is_none()
                        && !s.enabled
                        && s.set_by.starts_with("break-glass:")
                        && s.reason == "incident 99: still down"
                })
            })
        },
    )
    .await;
    let audit = admin.audit(0, 1_000).await.unwrap().entries;
    let imported: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "killswitch.break_glass")
        .collect();
    assert_eq!(imported.len(), 1, "{imported:?}");
    assert_eq!(imported[0].subject, "bot@fleet");
    assert_eq!(
        imported[0].reason.as_deref(),
        Some("incident 99: still down")
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let again = admin.audit(0, 1_000).await.unwrap().entries;
    assert_eq!(
        again
            .iter()
            .filter(|e| e.action == "killswitch.break_glass")
            .count(),
        1,
        "imported once"
    );
    for edge in &edges {
        until("the edge hears the control plane again", async || {
            status(edge).await["control"]["connected"] == true
        })
        .await;
        assert!(!module_enabled(edge).await);
    }
    // One NATS server of three SIGKILLed: the watches that used it reconnect on their own,
    // and the next break-glass switch still reaches every edge.
    nats.kill(0);
    let start = Instant::now();
    let alive = nats.urls()[1..].join(",");
    break_glass(&alive, key, "off", "incident 99: a server lost");
    let put_after = start.elapsed();
    for edge in &edges {
        until("the switch after a NATS server died", async || {
            status(edge).await["kill_watch"]["last_applied"]["reason"]
                == "incident 99: a server lost"
        })
        .await;
    }
    println!(
        "kill switch with one NATS server of three SIGKILLed: put after {put_after:?}, every edge had it after {:?}",
        start.elapsed()
    );
    load.stop();
    assert_eq!(
        load.stats().totals().failures(),
        0,
        "{:?}",
        load.stats().totals()
    );
    for edge in edges {
        edge.child.stop(Duration::from_secs(5));
    }
    drop(a);
    drop(nats);
}

/// Short waves, gates judged on a few requests: the rollouts here are about transport.
const FAST_POLICY: &str = "\
[plan]
canary_bake_ms = 300
[rollout]
shadow = \"off\"
tick_ms = 100
baseline_wait_ms = 300
[rollout.gates]
min_requests = 20
[rollout.gates.shift]
min_scores = 20
";

/// Edges over NATS alone: three real edges whose only control URL is `nats://…` enroll
/// (through the supervisor's bootstrap token), register, beat and ACK through whichever
/// replica leads, fetch the file from the object store, and follow a second rollout after
/// the leader is SIGKILLed, with nothing changed on their side and no failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_over_nats_alone_follow_rollouts_through_a_leader_sigkill() {
    let mut nats = NatsCluster::start(3);
    nats.wait_ready(Duration::from_secs(20));
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let work = Workdir::create(&dir.path().join("stack"), FAST_POLICY).unwrap();
    let trust = TrustFiles::create(&work).unwrap();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let started = Instant::now();
    let ((a, a_url), (_b, b_url)) =
        replicas(&work, &trust, &url, stack::free_addr().unwrap()).await;

    let edges: Vec<EdgeProc> = NODES
        .iter()
        .enumerate()
        .map(|(i, id)| {
            stack::start_edge(
                &EdgeSpec {
                    exe: exe(),
                    id: (*id).into(),
                    pop: "fra".into(),
                    region: "eu".into(),
                    canary: i == 0,
                    upstream: origin.addr(),
                    control: a_url.clone(),
                    pubkeys: Vec::new(),
                    extra: trust.edge_args(),
                    test_hooks: false,
                    agent_control: Some(url.clone()),
                },
                &work,
            )
            .unwrap()
        })
        .collect();
    for edge in &edges {
        until("the edge beats over NATS", async || {
            let s = status(edge).await;
            s["control"]["connected"] == true
                && s["control"]["orders"]["seq"].is_u64()
                // With a keyset, `--control nats://…` watches the kill bucket by itself.
                && s["kill_watch"]["connected"] == true
        })
        .await;
        let s = status(edge).await;
        assert!(
            s["control"]["control"]
                .as_str()
                .unwrap()
                .starts_with("nats://"),
            "{s}"
        );
    }
    println!("edges beating over NATS after {:?}", started.elapsed());
    let load = Load::start(edges.iter().map(|e| e.proxy).collect(), 60, 7).unwrap();

    let admin = Client::with_transport(
        &format!("{a_url},{b_url}"),
        Some(work.admin_secret.clone()),
        &work.transport().unwrap(),
    )
    .unwrap();
    let key = work.signing_key().unwrap();
    let roll = async |version: u64| {
        let doc = rampart_up::inject::catalog_document(version).unwrap();
        let digest = admin
            .publish(rampart_artifact::Envelope::sign(&doc, &key).to_json())
            .await
            .unwrap()
            .artifact
            .digest;
        let r = admin
            .rollout_start(&rampart_api::StartRollout {
                digest,
                reason: Some("over NATS".into()),
                break_glass: false,
                bake_ms: Some(300),
                watch_ms: Some(0),
            })
            .await
            .unwrap()
            .done()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = admin.rollout_status(r.id).await.unwrap();
            if v.done {
                assert_eq!(v.phase, "succeeded", "{v:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rollout {version} did not finish: {v:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let nodes = admin.nodes().await.unwrap().nodes;
        for n in &nodes {
            assert_eq!(n.active.map(|a| a.version), Some(version), "{n:?}");
            assert!(
                n.verdict.as_ref().is_some_and(|v| v.digest == digest),
                "ACKed over NATS: {n:?}"
            );
        }
    };
    roll(1).await;
    println!("rollout 1 done after {:?}", started.elapsed());

    // The leader dies; the edges are not told anything.
    let ok = Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "SIGKILL a");
    until("b leads", async || {
        role(&work, &b_url).await.as_deref() == Some("leader")
    })
    .await;
    println!("b leads after {:?}", started.elapsed());
    roll(2).await;
    println!("rollout 2 done after {:?}", started.elapsed());
    for edge in &edges {
        assert_eq!(status(edge).await["control"]["connected"], true);
    }
    load.stop();
    let totals = load.stats().totals();
    assert!(totals.ok > 50, "{totals:?}");
    assert_eq!(totals.failures(), 0, "{totals:?}");
    for edge in edges {
        edge.child.stop(Duration::from_secs(5));
    }
}
