//! Signed orders and keys that rotate, with real `rampart edge` (and `rampart control`)
//! processes on loopback:
//!
//! - an edge with a keyset following a fake control plane (one with the stack's own TLS
//!   certificate, and a credential the edge holds: only the order's signature stands
//!   between them) changes nothing on unsigned
//!   answers, on orders signed by a key outside the keyset's director keys, on orders for
//!   another node, on a replayed older order and on the same (epoch, seq) with other
//!   content; each refusal is counted by code on `/metrics` and the last one shows in
//!   `/status`, and the edge keeps heartbeating;
//! - a control plane on an emptied database refuses to start (naming `--reinitialize`), and
//!   the kill switch stays off on the edge even when a fresh control plane answers on the
//!   same address; `--reinitialize --reason` starts it on a higher epoch the edge accepts;
//! - the generator key rotates through new keysets while traffic runs through the edge:
//!   no failed request, the new key's file is taken, the retired key's refused, and a
//!   keyset that does not verify is refused and counted while the current one stays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_api::{
    Client, HeartbeatAnswer, KillSwitchSet, KillSwitches, Module, Order, RegisterAnswer, Scope,
    SwitchState,
};
use rampart_artifact::testing::signed_by;
use rampart_artifact::{PublicKey, SecretKey};
use rampart_up::inject::catalog_document;
use rampart_up::load::Load;
use rampart_up::origin::Origin;
use rampart_up::stack::{self, ControlSpec, EdgeProc, EdgeSpec};
use rampart_up::status::{get_json, get_text};
use rampart_up::trust::TrustFiles;
use rampart_up::workdir::Workdir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Upper bound of any one wait.
const WAIT: Duration = Duration::from_secs(20);

/// How often the edges re-read their keyset here.
const KEYSET_POLL_MS: &str = "100";

const NODE: &str = "fra-1";

/// An admin (or any token's) client of the stack's control plane, trusting its CA.
fn client(work: &Workdir, url: &str, secret: &str) -> Client {
    Client::with_transport(url, Some(secret.to_owned()), &work.transport().unwrap()).unwrap()
}

/// Sets a fleet-wide kill switch as `work`'s operator, granted by its approver (two admins).
async fn fleet_switch(work: &Workdir, url: &str, enabled: bool, reason: &str) {
    let asked = client(work, url, &work.admin_secret)
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled,
            node: None,
            clear: false,
            reason: reason.into(),
        })
        .await
        .unwrap();
    if let rampart_api::Decision::Pending(p) = asked {
        client(work, url, &work.approver_secret)
            .approve(p.id)
            .await
            .unwrap();
    }
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rampart"))
}

/// Polls `check` until it is true, or fails the test with `what`.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(edge: &EdgeProc) -> serde_json::Value {
    get_json(edge.admin, "/status").await.unwrap()
}

async fn refused(edge: &EdgeProc, code: &str) -> u64 {
    status(edge).await["control"]["orders"]["refused"][code]
        .as_u64()
        .unwrap_or(0)
}

async fn module_enabled(edge: &EdgeProc) -> bool {
    status(edge).await["module_enabled"].as_bool().unwrap()
}

/// A real edge following the fake control plane, which enrolls nobody: the edge already holds
/// a credential, so only the orders' signatures stand between them.
fn start_edge_following(
    fake: &Fake,
    work: &Workdir,
    trust: &TrustFiles,
    origin: SocketAddr,
) -> EdgeProc {
    let data = work.dir(&format!("edges/{NODE}/data")).unwrap();
    std::fs::write(
        data.join(rampart_edge::cli::CREDENTIAL_FILE),
        "fake-credential-0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    start_edge(work, trust, &fake.url(), origin)
}

/// A real edge following `control`; against a real control plane it enrolls with a bootstrap
/// token (`rampart up`'s way).
fn start_edge(work: &Workdir, trust: &TrustFiles, control: &str, origin: SocketAddr) -> EdgeProc {
    let mut extra = trust.edge_args();
    extra.extend(["--keyset-poll-ms".into(), KEYSET_POLL_MS.into()]);
    stack::start_edge(
        &EdgeSpec {
            exe: exe(),
            id: NODE.into(),
            pop: "fra".into(),
            region: "eu".into(),
            canary: true,
            upstream: origin,
            control: control.to_owned(),
            pubkeys: Vec::new(),
            extra,
            test_hooks: false,
            agent_control: None,
        },
        work,
    )
    .unwrap()
}

// --- a fake control plane ---

/// Answers registrations, and every heartbeat with the answer set last, over TLS with the
/// stack's own server certificate.
#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    answer: Arc<Mutex<HeartbeatAnswer>>,
    beats: Arc<Mutex<u64>>,
}

impl Fake {
    async fn start(work: &Workdir) -> Fake {
        Fake::start_on("127.0.0.1:0".parse().unwrap(), work).await
    }

    async fn start_on(addr: SocketAddr, work: &Workdir) -> Fake {
        let tls = work.tls();
        let reloader =
            rampart_control::tls::CertReloader::open(&tls.server_cert, &tls.server_key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(reloader.server_config().unwrap());
        let listener = TcpListener::bind(addr).await.unwrap();
        let fake = Fake {
            addr: listener.local_addr().unwrap(),
            answer: Arc::new(Mutex::new(answer(switches(true), "e0"))),
            beats: Arc::default(),
        };
        let shared = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let fake = shared.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Head, then the body by Content-Length: the edge's requests are small.
                    let (head_end, length) = loop {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break (end + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let body = if head.contains("/heartbeat ") {
                        *fake.beats.lock().unwrap() += 1;
                        let answer = fake.answer.lock().unwrap().clone();
                        // Hold a beat that saw this answer, like a long-poll.
                        let seen = serde_json::from_slice::<serde_json::Value>(&buf[head_end..])
                            .ok()
                            .and_then(|b| b["seen"].as_str().map(str::to_owned));
                        if seen.as_deref() == Some(answer.etag.as_str()) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        serde_json::to_vec(&answer).unwrap()
                    } else {
                        serde_json::to_vec(&RegisterAnswer {
                            node: NODE.into(),
                            created: true,
                            beat_interval_ms: 100,
                        })
                        .unwrap()
                    };
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        fake
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn set(&self, answer: HeartbeatAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn beats(&self) -> u64 {
        *self.beats.lock().unwrap()
    }
}

fn switches(enabled: bool) -> KillSwitches {
    KillSwitches {
        bot: SwitchState {
            enabled,
            scope: Scope::Fleet,
            reason: Some("by attacker".into()),
            set_by: Some("mallory".into()),
            at_ms: Some(1),
        },
    }
}

/// An unsigned answer.
fn answer(kill_switches: KillSwitches, etag: &str) -> HeartbeatAnswer {
    HeartbeatAnswer {
        desired: None,
        kill_switches,
        etag: etag.into(),
        beat_interval_ms: 100,
        changed: true,
        order: None,
        blessed: Vec::new(),
    }
}

fn order(epoch: u64, seq: u64, enabled: bool) -> Order {
    Order {
        node: NODE.into(),
        epoch,
        seq,
        kind: "features".into(),
        desired: None,
        kill_switches: switches(enabled),
        issued_at_ms: seq,
        blessed: Vec::new(),
    }
}

/// An answer carrying `order` signed by `key` (its unsigned fields say the same).
fn signed(order: &Order, key: &SecretKey, etag: &str) -> HeartbeatAnswer {
    HeartbeatAnswer {
        order: Some(order.sign(key)),
        ..answer(order.kill_switches.clone(), etag)
    }
}

struct Stack {
    work: Workdir,
    trust: TrustFiles,
    origin: Origin,
    _dir: tempfile::TempDir,
}

async fn stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let work = Workdir::create(&dir.path().join("stack"), "").unwrap();
    let trust = TrustFiles::create(&work).unwrap();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Stack {
        work,
        trust,
        origin,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_control_plane_changes_nothing_and_old_orders_are_refused() {
    let s = stack().await;
    let fake = Fake::start(&s.work).await;
    let edge = start_edge_following(&fake, &s.work, &s.trust, s.origin.addr());
    let director = s.trust.director().unwrap();
    let stranger = SecretKey::generate().unwrap();

    // Unsigned: the attack of issue 12 (scoring off "by attacker").
    fake.set(answer(switches(false), "unsigned"));
    until("an unsigned answer refused", async || {
        refused(&edge, "unsigned").await >= 2
    })
    .await;
    assert!(
        module_enabled(&edge).await,
        "an unsigned answer turned scoring off"
    );

    // Signed, but by a key that is not a director key of the keyset.
    fake.set(signed(&order(9, 9, false), &stranger, "stranger"));
    until("a stranger's order refused", async || {
        refused(&edge, "unknown_key").await >= 2
    })
    .await;
    // The generator key is not a director key either.
    fake.set(signed(
        &order(9, 9, false),
        &s.work.signing_key().unwrap(),
        "generator",
    ));
    until("a generator-signed order refused", async || {
        refused(&edge, "unknown_key").await >= 4
    })
    .await;
    // For another node.
    let mut elsewhere = order(9, 9, false);
    elsewhere.node = "ams-1".into();
    fake.set(signed(&elsewhere, &director, "elsewhere"));
    until("another node's order refused", async || {
        refused(&edge, "other_node").await >= 1
    })
    .await;
    assert!(
        module_enabled(&edge).await,
        "a refused order turned scoring off"
    );
    let beats = fake.beats();
    until("heartbeats go on", async || fake.beats() > beats + 2).await;

    // A real order turns scoring off, the next one on again.
    fake.set(signed(&order(1, 5, false), &director, "off"));
    until("the signed order applied", async || {
        !module_enabled(&edge).await
    })
    .await;
    fake.set(signed(&order(1, 6, true), &director, "on"));
    until("the next signed order applied", async || {
        module_enabled(&edge).await
    })
    .await;

    // The old order replayed, and the same (epoch, seq) with other content.
    fake.set(signed(&order(1, 5, false), &director, "replay"));
    until("the replay refused", async || {
        refused(&edge, "older").await >= 1
    })
    .await;
    fake.set(signed(&order(1, 6, false), &director, "conflict"));
    until("the conflict refused", async || {
        refused(&edge, "conflict").await >= 1
    })
    .await;
    assert!(
        module_enabled(&edge).await,
        "a replayed order turned scoring off"
    );

    let st = status(&edge).await;
    let orders = &st["control"]["orders"];
    assert_eq!(
        (orders["epoch"].as_u64(), orders["seq"].as_u64()),
        (Some(1), Some(6)),
        "{st}"
    );
    assert_eq!(orders["last_refusal"]["code"], "conflict", "{st}");
    let metrics = get_text(edge.admin, "/metrics").await.unwrap();
    assert!(
        metrics.contains("rampart_edge_orders_refused_total{code=\"unsigned\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("rampart_edge_orders_refused_total{code=\"older\"} 0\n"));

    // The last order applied survives a restart: the replay is still refused after it.
    drop(edge);
    fake.set(signed(
        &order(1, 5, false),
        &director,
        "replay-after-restart",
    ));
    let edge = start_edge_following(&fake, &s.work, &s.trust, s.origin.addr());
    until("the replay refused after a restart", async || {
        refused(&edge, "older").await >= 1
    })
    .await;
    assert!(module_enabled(&edge).await);
}

// --- the real control plane ---

fn control_spec(s: &Stack, listen: SocketAddr) -> ControlSpec {
    ControlSpec {
        exe: exe(),
        listen,
        pubkeys: Vec::new(),
        beat_interval_ms: 100,
        auto_rollout: false,
        extra: s.trust.control_args(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_database_refuses_to_start_and_the_kill_switch_stays_off() {
    let s = stack().await;
    let listen = stack::free_addr().unwrap();
    let spec = control_spec(&s, listen);
    let control = stack::start_control(&spec, &s.work).unwrap();
    let edge = start_edge(&s.work, &s.trust, &control.url, s.origin.addr());
    let admin = client(&s.work, &control.url, &s.work.admin_secret);
    until("the edge registered", async || {
        status(&edge).await["control"]["orders"]["seq"]
            .as_u64()
            .is_some()
    })
    .await;
    fleet_switch(&s.work, &control.url, false, "incident 42").await;
    until("the kill switch reached the edge", async || {
        !module_enabled(&edge).await
    })
    .await;
    let seen = status(&edge).await["control"]["orders"]["epoch"].as_u64();
    assert_eq!(seen, Some(1));
    control.child.stop(Duration::from_secs(5));

    // The database is emptied (truncated, its journal gone).
    let data = s.work.dir("control/data").unwrap();
    std::fs::write(data.join("control.sqlite3"), b"").unwrap();
    for f in ["control.sqlite3-wal", "control.sqlite3-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let emptied = stack::start_control(&spec, &s.work);
    assert!(
        emptied.is_err(),
        "a control plane started on an emptied database"
    );
    let log = std::fs::read_to_string(s.work.log("control")).unwrap();
    assert!(log.contains("--reinitialize"), "{log}");

    // An operator starts a fresh control plane (a new data dir: the old one removed, epoch
    // file and all; the same director key) on the same address: its orders are not above
    // what the edge applied.
    std::fs::remove_dir_all(&data).unwrap();
    let fresh = stack::start_control(&spec, &s.work).unwrap();
    // It knows no node: the edge's credential is refused (401) and it keeps what it has.
    until("the edge refused by the fresh control plane", async || {
        status(&edge).await["control"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("401"))
    })
    .await;
    assert!(!module_enabled(&edge).await, "the kill switch was undone");
    // The operator enrolls the node again; the edge, restarted with the new credential, is
    // answered, and the fresh control plane's orders are not above what it applied.
    let credential = rampart_e2e::control_plane::enroll(
        &client(&s.work, &fresh.url, &s.work.admin_secret),
        NODE,
    )
    .await;
    let edge_data = s.work.dir(&format!("edges/{NODE}/data")).unwrap();
    edge.child.stop(Duration::from_secs(5));
    std::fs::write(
        edge_data.join(rampart_edge::cli::CREDENTIAL_FILE),
        credential,
    )
    .unwrap();
    let edge = start_edge(&s.work, &s.trust, &fresh.url, s.origin.addr());
    assert!(
        !module_enabled(&edge).await,
        "the kill switch was undone at boot"
    );
    until("the fresh control plane's orders refused", async || {
        refused(&edge, "older").await + refused(&edge, "conflict").await >= 2
    })
    .await;
    assert!(!module_enabled(&edge).await, "the kill switch was undone");
    fresh.child.stop(Duration::from_secs(5));

    // --reinitialize: a new epoch, audited; the edge takes it as newer.
    let mut again = spec.clone();
    again.extra.extend([
        "--reinitialize".into(),
        "--reason".into(),
        "disk replaced, state lost".into(),
    ]);
    let control = stack::start_control(&again, &s.work).unwrap();
    until("the reinitialized epoch applied", async || {
        status(&edge).await["control"]["orders"]["epoch"].as_u64() == Some(2)
    })
    .await;
    let audit = admin.audit(0, 100).await.unwrap();
    assert!(
        audit.entries.iter().any(|e| e.action == "reinitialize"
            && e.reason.as_deref() == Some("disk replaced, state lost")),
        "{audit:?}"
    );
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_key_rotates_under_traffic() {
    let s = stack().await;
    let fake = Fake::start(&s.work).await;
    let edge = start_edge_following(&fake, &s.work, &s.trust, s.origin.addr());
    let old = s.work.signing_key().unwrap();
    let new = s.work.rotated_signing_key().unwrap();
    let director: PublicKey = s.trust.director().unwrap().public();
    let serving = async |edge: &EdgeProc| status(edge).await["active"]["version"].as_u64();

    stack::drop_into(
        &edge.watch_dir,
        "v1.json",
        &signed_by(&catalog_document(1).unwrap(), &old),
    )
    .unwrap();
    until("v1 serving", async || serving(&edge).await == Some(1)).await;

    let load = Load::start(vec![edge.proxy], 200, 7).unwrap();
    let before = load.stats().totals();

    // Overlap: keyset 2 names both generator keys.
    s.trust
        .write_keyset(
            2,
            &[old.public(), new.public()],
            std::slice::from_ref(&director),
        )
        .unwrap();
    until("keyset 2 in use", async || {
        status(&edge).await["trust"]["keyset_version"] == 2
    })
    .await;
    stack::drop_into(
        &edge.watch_dir,
        "v2.json",
        &signed_by(&catalog_document(2).unwrap(), &new),
    )
    .unwrap();
    until("v2 (new key) serving", async || {
        serving(&edge).await == Some(2)
    })
    .await;

    // Retire the old key: keyset 3 names only the new one.
    s.trust
        .write_keyset(3, &[new.public()], std::slice::from_ref(&director))
        .unwrap();
    until("keyset 3 in use", async || {
        status(&edge).await["trust"]["keyset_version"] == 3
    })
    .await;
    stack::drop_into(
        &edge.watch_dir,
        "v3.json",
        &signed_by(&catalog_document(3).unwrap(), &old),
    )
    .unwrap();
    until("v3 (retired key) refused", async || {
        status(&edge).await["last_rejection"]["issues"][0]["code"] == "unknown_key"
    })
    .await;
    assert_eq!(
        serving(&edge).await,
        Some(2),
        "the retired key's file was taken"
    );
    stack::drop_into(
        &edge.watch_dir,
        "v4.json",
        &signed_by(&catalog_document(4).unwrap(), &new),
    )
    .unwrap();
    until("v4 (new key) serving", async || {
        serving(&edge).await == Some(4)
    })
    .await;

    // A keyset that goes back (version 1 again) and one signed by a single root key are
    // refused, counted, shown; keyset 3 stays.
    let back = s
        .trust
        .sign_keyset(1, &[old.public()], std::slice::from_ref(&director));
    assert!(back.is_ok());
    rampart_host::file::write_atomic(&s.trust.keyset, &back.unwrap()).unwrap();
    until("the rollback refused", async || {
        status(&edge).await["trust"]["last_refusal"]["code"] == "rollback"
    })
    .await;
    let st = status(&edge).await;
    assert_eq!(st["trust"]["keyset_version"], 3, "{st}");
    assert!(st["trust"]["refused_total"].as_u64().unwrap() >= 1, "{st}");
    let metrics = get_text(edge.admin, "/metrics").await.unwrap();
    assert!(
        metrics.contains("rampart_edge_keyset_version 3\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("rampart_edge_keyset_refused_total 0\n"),
        "{metrics}"
    );

    let after = load.stats().totals().since(&before);
    drop(load);
    assert!(
        after.sent > 100,
        "too little traffic to say anything: {after:?}"
    );
    assert_eq!(
        after.failed, 0,
        "requests failed during the rotation: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_director_key_rotates() {
    let s = stack().await;
    let listen = stack::free_addr().unwrap();
    let spec = control_spec(&s, listen);
    let control = stack::start_control(&spec, &s.work).unwrap();
    let edge = start_edge(&s.work, &s.trust, &control.url, s.origin.addr());
    let url = control.url.clone();
    let switch = async |enabled: bool| fleet_switch(&s.work, &url, enabled, "drill").await;
    switch(false).await;
    until("the old director's order applied", async || {
        !module_enabled(&edge).await
    })
    .await;

    // Overlap: keyset 2 names both director keys.
    let generator = s.work.signing_key().unwrap().public();
    let old = s.trust.director().unwrap();
    let new = SecretKey::generate().unwrap();
    s.trust
        .write_keyset(
            2,
            std::slice::from_ref(&generator),
            &[old.public(), new.public()],
        )
        .unwrap();
    until("keyset 2 in use", async || {
        status(&edge).await["trust"]["keyset_version"] == 2
    })
    .await;
    // The control plane restarts with the new director key (same data dir: epoch and seq
    // carry on).
    control.child.stop(Duration::from_secs(5));
    rampart_host::file::write_private(&s.trust.director_key, new.to_pem().unwrap().as_bytes())
        .unwrap();
    let control = stack::start_control(&spec, &s.work).unwrap();
    switch(true).await;
    until("the new director's order applied", async || {
        module_enabled(&edge).await
    })
    .await;

    // Retire the old key: keyset 3 names only the new one.
    s.trust
        .write_keyset(3, std::slice::from_ref(&generator), &[new.public()])
        .unwrap();
    until("keyset 3 in use", async || {
        status(&edge).await["trust"]["keyset_version"] == 3
    })
    .await;
    control.child.stop(Duration::from_secs(5));
    // A control plane with the retired key does not start against keyset 3 …
    rampart_host::file::write_private(&s.trust.director_key, old.to_pem().unwrap().as_bytes())
        .unwrap();
    assert!(stack::start_control(&spec, &s.work).is_err());
    // … and orders signed with it are refused by the edge, however new.
    let fake = Fake::start_on(listen, &s.work).await;
    fake.set(signed(&order(99, 1, false), &old, "retired"));
    until("the retired director's order refused", async || {
        refused(&edge, "unknown_key").await >= 1
    })
    .await;
    assert!(
        module_enabled(&edge).await,
        "a retired director key turned scoring off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_takes_a_new_keyset_without_restart() {
    let s = stack().await;
    let listen = stack::free_addr().unwrap();
    let mut spec = control_spec(&s, listen);
    spec.extra
        .extend(["--keyset-poll-ms".into(), KEYSET_POLL_MS.into()]);
    let control = stack::start_control(&spec, &s.work).unwrap();
    let publisher = client(&s.work, &control.url, &s.work.publisher_secret);
    let health = async || publisher.health().await.unwrap();
    let old = s.work.signing_key().unwrap();
    let new = s.work.rotated_signing_key().unwrap();
    let director = s.trust.director().unwrap().public();

    let refused = publisher
        .publish(signed_by(&catalog_document(1).unwrap(), &new))
        .await;
    assert!(refused.is_err(), "a key outside the keyset published");
    s.trust
        .write_keyset(
            2,
            &[old.public(), new.public()],
            std::slice::from_ref(&director),
        )
        .unwrap();
    until("keyset 2 in use", async || {
        health().await["trust"]["keyset_version"] == 2
    })
    .await;
    publisher
        .publish(signed_by(&catalog_document(1).unwrap(), &new))
        .await
        .unwrap();

    // A keyset that retires this control plane's director key is refused: it stays on 2.
    let stranger = SecretKey::generate().unwrap().public();
    s.trust
        .write_keyset(3, &[new.public()], std::slice::from_ref(&stranger))
        .unwrap();
    until("keyset 3 refused", async || {
        health().await["trust"]["refused_total"].as_u64() >= Some(1)
    })
    .await;
    let h = health().await;
    assert_eq!(h["trust"]["keyset_version"], 2, "{h}");
    assert!(
        h["trust"]["last_refusal"]
            .as_str()
            .unwrap()
            .contains("director key"),
        "{h}"
    );
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_rotates_on_a_running_edge() {
    use rampart_artifact::{KeysetSpec, RootSpec, format_time};
    let s = stack().await;
    let fake = Fake::start(&s.work).await;
    let edge = start_edge_following(&fake, &s.work, &s.trust, s.origin.addr());
    let old: Vec<SecretKey> = s
        .trust
        .root_keys
        .iter()
        .map(|p| SecretKey::from_pem(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    let new: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate().unwrap()).collect();
    let expires = format_time(rampart_host::clock::now_ms() + 3_600_000);
    let keyset = |version: u64, signers: &[&SecretKey]| {
        KeysetSpec {
            version,
            expires: expires.clone(),
            generator: vec![s.work.signing_key().unwrap().public()],
            director: vec![s.trust.director().unwrap().public()],
            operator: Vec::new(),
        }
        .sign(signers)
        .unwrap()
        .to_json()
    };
    let write = |path: &std::path::Path, bytes: &[u8]| {
        rampart_host::file::write_atomic(path, bytes).unwrap();
    };
    let trust = async || status(&edge).await["trust"].clone();
    let next = RootSpec {
        version: 2,
        expires: expires.clone(),
        threshold: 2,
        keys: new.iter().map(SecretKey::public).collect(),
    };

    // Signed by the new keys only: refused, root 1 stays.
    write(
        &s.trust.root,
        &next.sign(&[&new[0], &new[1]]).unwrap().to_json(),
    );
    until("the unendorsed root refused", async || {
        trust().await["last_refusal"]["code"] == "below_threshold"
    })
    .await;
    assert_eq!(trust().await["root_version"], 1);

    // Signed by 2 old and 2 new keys: taken.
    write(
        &s.trust.root,
        &next
            .sign(&[&old[0], &old[2], &new[1], &new[2]])
            .unwrap()
            .to_json(),
    );
    until("root 2 in use", async || trust().await["root_version"] == 2).await;

    // Keysets are now signed by the new root keys; the old ones no longer count.
    write(&s.trust.keyset, &keyset(2, &[&old[0], &old[1]]));
    until("a keyset by the old root refused", async || {
        trust().await["last_refusal"]["code"] == "unknown_key"
    })
    .await;
    assert_eq!(trust().await["keyset_version"], 1);
    write(&s.trust.keyset, &keyset(2, &[&new[0], &new[2]]));
    until("keyset 2 (new root) in use", async || {
        trust().await["keyset_version"] == 2
    })
    .await;
}
