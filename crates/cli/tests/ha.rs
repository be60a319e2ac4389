//! Two `rampart control` replicas on one NATS R3 cluster: one leads by a lease. The leader
//! SIGKILLed mid-rollout, the other takes over within the lease time and finishes the
//! rollout with every audit entry exactly once; the leader frozen (SIGSTOP) past its lease,
//! the other takes over and moves the rollout, and the old one, resumed, writes nothing and
//! follows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_api::{AuditEntry, Client, Labels, Registration, RolloutView, StartRollout};
use rampart_artifact::ContractSpec;
use rampart_artifact::testing::{doc_weighted, key, signed};
use rampart_e2e::Fleet;
use rampart_e2e::control_plane::{ADMIN, ADMIN2, EDGE, PUBLISHER, enroll};

/// The lease time (`LEASE_TTL`) and the margin a takeover is allowed beyond it: the
/// follower's next look (`LEASE_RENEW`), the servers' expiry timer, the catch-up and marker.
const LEASE_TTL: Duration = Duration::from_secs(3);
const TAKEOVER_MARGIN: Duration = Duration::from_secs(3);

/// A `rampart control` replica, killed when dropped.
struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

fn setup(dir: &Path) {
    std::fs::write(
        dir.join("tokens"),
        format!(
            "alice admin {ADMIN}\nbob admin {ADMIN2}\ngen publisher {PUBLISHER}\nedges edge {EDGE}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("key.pub"), key().public().to_pem().unwrap()).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        "[rollout]\ntick_ms = 100\n[rollout.gates]\nmin_requests = 100\n\
         [rollout.gates.shift]\nmin_scores = 100\nalpha = 0.001\nmin_d = 0.1\n",
    )
    .unwrap();
}

/// Starts a replica on `dir/NAME` (its own data dir) and the store `store`.
fn spawn(dir: &Path, name: &str, store: &str) -> Replica {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["control", "--store", store])
        .args(["--listen", "127.0.0.1:0", "--plain-http", "--data-dir"])
        .arg(dir.join(name))
        .arg("--token-file")
        .arg(dir.join("tokens"))
        .arg("--pubkey")
        .arg(dir.join("key.pub"))
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .args(["--beat-interval-ms", "100"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("control plane started");
    let url = line
        .trim()
        .strip_prefix("rampart control listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Replica { child, url }
}

async fn role(url: &str) -> Option<(String, Option<String>)> {
    let h = Client::new(url, None).unwrap().health().await.ok()?;
    Some((
        h["role"].as_str()?.to_owned(),
        h["leader"].as_str().map(str::to_owned),
    ))
}

/// Waits until `url` reports `want`; returns how long it took.
async fn wait_role(url: &str, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if role(url).await.is_some_and(|(r, _)| r == want) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{url} is not {want} after {within:?}: {:?}",
        role(url).await
    );
}

async fn wait_for(
    client: &Client,
    id: u64,
    secs: u64,
    what: impl Fn(&RolloutView) -> bool,
) -> RolloutView {
    for _ in 0..secs * 20 {
        if let Ok(v) = client.rollout_status(id).await
            && what(&v)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "rollout {id}: condition not reached in {secs} s: {:?}",
        client.rollout_status(id).await
    );
}

const NODES: [(&str, &str, &str, bool); 6] = [
    ("fra-1", "fra", "eu", true),
    ("fra-2", "fra", "eu", false),
    ("ams-1", "ams", "eu", false),
    ("ams-2", "ams", "eu", false),
    ("iad-1", "iad", "us", false),
    ("iad-2", "iad", "us", false),
];

/// Two replicas (the first leads), six enrolled nodes beating to the leader, a rollout
/// started and in its second wave.
struct Scene {
    _dir: tempfile::TempDir,
    a: Replica,
    b: Replica,
    fleet: Fleet,
    rollout: RolloutView,
}

async fn scene(store: &str) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let a = spawn(dir.path(), "a", store);
    wait_role(&a.url, "leader", Duration::from_secs(10)).await;
    let b = spawn(dir.path(), "b", store);
    wait_role(&b.url, "follower", Duration::from_secs(10)).await;
    let (_, leader) = role(&b.url).await.unwrap();
    assert_eq!(
        leader.as_deref(),
        Some(a.url.as_str()),
        "b names a as leader"
    );

    // Every client knows both replicas: a refused connection moves on to the next one, and
    // a follower's 503 moves to the leader it names.
    let both = format!("{},{}", a.url, b.url);
    let admin = Client::new(&a.url, Some(ADMIN.into())).unwrap();
    let anon = Client::new(&both, None).unwrap();
    let mut enrolled = Vec::new();
    for (id, pop, region, canary) in NODES {
        let credential = enroll(&admin, id).await;
        enrolled.push((id.to_owned(), credential.clone()));
        anon.with_token(Some(credential))
            .register(&Registration {
                node: id.into(),
                labels: Labels {
                    pop: pop.into(),
                    region: region.into(),
                    canary,
                },
                contract: ContractSpec::default(),
                software_version: "test".into(),
            })
            .await
            .unwrap();
    }

    let fleet = Fleet::start(anon, &enrolled);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = admin
        .publish(signed(&doc_weighted(1, 10, 0.5)))
        .await
        .unwrap()
        .artifact
        .digest;
    let r = admin
        .rollout_start(&StartRollout {
            digest: v,
            reason: Some("ha".into()),
            break_glass: false,
            bake_ms: Some(1_500),
            watch_ms: Some(0),
        })
        .await
        .unwrap()
        .done()
        .unwrap();
    let rollout = wait_for(&admin, r.id, 60, |v| v.current_wave.is_some_and(|w| w >= 1)).await;
    // A write sent to the follower: it refuses with 503 naming the leader, and the client
    // sends it there once (and stays there).
    let to_b = Client::new(&b.url, Some(ADMIN.into())).unwrap();
    let published = to_b
        .publish(signed(&doc_weighted(2, 10, 0.5)))
        .await
        .unwrap();
    assert_eq!(published.artifact.version, 2);
    assert_eq!(
        to_b.base_url().trim_end_matches('/'),
        a.url.trim_end_matches('/'),
        "the client follows the leader"
    );
    // The follower serves reads, from the log.
    let follower = Client::new(&b.url, Some(ADMIN.into())).unwrap();
    let seen = wait_for(&follower, r.id, 10, |v| v.current_wave >= Some(1)).await;
    assert_eq!(seen.id, rollout.id);
    Scene {
        _dir: dir,
        a,
        b,
        fleet,
        rollout,
    }
}

/// Every audit entry once: no two entries alike but for their sequence and time.
fn assert_exactly_once(entries: &[AuditEntry]) {
    let mut seen = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "gapless");
        let key = (
            e.who.clone(),
            e.action.clone(),
            e.subject.clone(),
            e.reason.clone(),
            e.detail.to_string(),
        );
        assert!(
            seen.insert(key),
            "duplicate audit entry {e:?} in {entries:#?}"
        );
    }
}

async fn finish(client: &Client, rollout: &RolloutView) -> Vec<AuditEntry> {
    let done = wait_for(client, rollout.id, 90, |v| v.done).await;
    assert_eq!(done.phase, "succeeded", "{done:?}");
    let nodes = client.nodes().await.unwrap().nodes;
    assert!(
        nodes.iter().all(|n| n.active.map(|a| a.version) == Some(1)),
        "{nodes:?}"
    );
    let audit = client.audit(0, 1000).await.unwrap().entries;
    assert_exactly_once(&audit);
    let starts = audit
        .iter()
        .filter(|e| e.action == "rollout.started")
        .count();
    assert_eq!(starts, 1, "resumed, not started again");
    audit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_sigkilled_mid_rollout_another_replica_takes_over_and_finishes() {
    let cluster = rampart_e2e::NatsCluster::start(3);
    let mut s = scene(&cluster.url()).await;
    let killed = Instant::now();
    s.a.child.kill().unwrap(); // SIGKILL
    s.a.child.wait().unwrap();
    let took = wait_role(&s.b.url, "leader", LEASE_TTL + TAKEOVER_MARGIN).await;
    eprintln!(
        "takeover after SIGKILL: {:?} (to /v1/health role=leader)",
        killed.elapsed()
    );
    assert!(took <= LEASE_TTL + TAKEOVER_MARGIN);
    // The fleet's client knew both replicas: its beats moved to b when a's port refused
    // them. The admin's does too.
    let admin = Client::new(&format!("{},{}", s.a.url, s.b.url), Some(ADMIN.into())).unwrap();
    let resumed = admin.rollout_status(s.rollout.id).await.unwrap();
    assert!(
        resumed.current_wave >= s.rollout.current_wave,
        "{resumed:?}"
    );
    finish(&admin, &s.rollout).await;
    s.fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_writes_nothing_once_resumed_and_follows() {
    let cluster = rampart_e2e::NatsCluster::start(3);
    let s = scene(&cluster.url()).await;
    s.a.signal("-STOP");
    wait_role(&s.b.url, "leader", LEASE_TTL + TAKEOVER_MARGIN).await;
    // A frozen process's port still accepts connections (nothing refuses them): the fleet is
    // pointed at b by hand.
    *s.fleet.client.lock().unwrap() = Client::new(&s.b.url, None).unwrap();
    let admin = Client::new(&s.b.url, Some(ADMIN.into())).unwrap();
    // The new leader moves the rollout on.
    let moved = wait_for(&admin, s.rollout.id, 60, |v| {
        v.done || v.current_wave > s.rollout.current_wave
    })
    .await;
    let audit_before = admin.audit(0, 1000).await.unwrap().entries;
    s.a.signal("-CONT");
    // The old leader, resumed, steps down and names the new one.
    wait_role(&s.a.url, "follower", LEASE_TTL + TAKEOVER_MARGIN).await;
    let old = Client::new(&s.a.url, Some(ADMIN.into())).unwrap();
    for _ in 0..100 {
        if role(&s.a.url).await.and_then(|(_, l)| l).as_deref() == Some(s.b.url.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        role(&s.a.url).await.and_then(|(_, l)| l).as_deref(),
        Some(s.b.url.as_str())
    );
    // A write sent to the old leader: it refuses (503 naming b), and the client lands it at b.
    old.publish(signed(&doc_weighted(3, 10, 0.5)))
        .await
        .unwrap();
    assert_eq!(
        old.base_url().trim_end_matches('/'),
        s.b.url.trim_end_matches('/'),
        "the old leader named the new one"
    );
    let audit = finish(&admin, &s.rollout).await;
    // Nothing but the new leader's entries after the takeover: the log before SIGCONT is a
    // prefix, and the whole log has each entry once (a write by the old leader would repeat
    // a step of the rollout).
    assert_eq!(&audit[..audit_before.len()], &audit_before[..]);
    assert!(moved.current_wave >= s.rollout.current_wave);
    // The old leader's view converges on the same log.
    for _ in 0..100 {
        if old.audit(0, 1000).await.unwrap().entries == audit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(old.audit(0, 1000).await.unwrap().entries, audit);
    s.fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_nats_server_of_three_sigkilled_mid_rollout_loses_nothing_and_catches_up() {
    let mut cluster = rampart_e2e::NatsCluster::start(3);
    let s = scene(&cluster.url()).await;
    let both = format!("{},{}", s.a.url, s.b.url);
    let admin = Client::new(&both, Some(ADMIN.into())).unwrap();
    let before = admin.audit(0, 1000).await.unwrap().entries;
    // Each of the three in turn would do; the first is in every replica's server list.
    cluster.kill(0);
    let audit = finish(&admin, &s.rollout).await;
    // Everything acknowledged before the kill is there, in order, once.
    assert_eq!(&audit[..before.len()], &before[..]);
    // Restarted on its store dir, the server catches up (healthy = JetStream current).
    cluster.restart(0);
    cluster.wait_ready(Duration::from_secs(30));
    let after = admin.audit(0, 1000).await.unwrap().entries;
    assert_eq!(after, audit, "nothing moved while the server came back");
    s.fleet.stop().await;
}
