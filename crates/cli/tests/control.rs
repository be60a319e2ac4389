//! The real `rampart control` process: SIGKILLed in the middle of a rollout, restarted on
//! the same data dir, it resumes the rollout where it stood and has lost nothing it had
//! acknowledged, on SQLite and on a NATS R3 store. The rollout-client verbs are driven
//! against it too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rampart_api::{Client, KillSwitchSet, Labels, Module, Registration, RolloutView, StartRollout};
use rampart_artifact::ContractSpec;
use rampart_artifact::testing::{doc_weighted, doubled, key, signed};
use rampart_e2e::Fleet;
use rampart_e2e::control_plane::{ADMIN, ADMIN2, EDGE, PUBLISHER, enroll};

/// A `rampart control` child, killed when dropped.
struct Control {
    child: Child,
    url: String,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    std::fs::write(dir.join("admin.token"), ADMIN).unwrap();
    std::fs::write(dir.join("admin2.token"), ADMIN2).unwrap();
    std::fs::write(dir.join("key.pub"), key().public().to_pem().unwrap()).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        "[rollout]\ntick_ms = 100\n[rollout.gates]\nmin_requests = 100\n\
         [rollout.gates.shift]\nmin_scores = 100\nalpha = 0.001\nmin_d = 0.1\n",
    )
    .unwrap();
}

/// Starts `rampart control` on `dir/data`, with `--store STORE` when given.
fn spawn(dir: &Path, store: Option<&str>) -> Control {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.arg("control");
    if let Some(store) = store {
        cmd.args(["--store", store]);
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--plain-http", "--data-dir"])
        .arg(dir.join("data"))
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
    Control { child, url }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_control_plane_resumes_its_rollout_and_loses_nothing_acknowledged() {
    sigkilled_control_plane_resumes(None).await;
}

/// The same on a NATS JetStream store (3 servers, R3): the restarted process rebuilds its
/// state from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_control_plane_on_nats_resumes_its_rollout_and_loses_nothing_acknowledged() {
    let cluster = rampart_e2e::NatsCluster::start(3);
    sigkilled_control_plane_resumes(Some(&cluster.url())).await;
}

async fn sigkilled_control_plane_resumes(store: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut control = spawn(dir.path(), store);
    let admin = Client::new(&control.url, Some(ADMIN.into())).unwrap();
    let anon = Client::new(&control.url, None).unwrap();
    let mut enrolled = Vec::new();
    for (id, pop, region, canary) in NODES {
        let credential = enroll(&admin, id).await;
        enrolled.push((id.to_owned(), credential.clone()));
        let edge = anon.with_token(Some(credential));
        edge.register(&Registration {
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

    let sign = |d| signed(&d);
    let v1 = admin
        .publish(sign(doc_weighted(1, 10, 0.5)))
        .await
        .unwrap()
        .artifact
        .digest;
    let start = |digest, bake_ms| StartRollout {
        digest,
        reason: Some("test".into()),
        break_glass: false,
        bake_ms: Some(bake_ms),
        watch_ms: Some(0),
    };
    let r1 = admin
        .rollout_start(&start(v1, 200))
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(
        wait_for(&admin, r1.id, 60, |v| v.done).await.phase,
        "succeeded"
    );

    // v2 bakes long enough per wave to be killed in the middle.
    let v2 = admin
        .publish(sign(doc_weighted(2, 10, 0.6)))
        .await
        .unwrap()
        .artifact
        .digest;
    let r2 = admin
        .rollout_start(&start(v2, 1_500))
        .await
        .unwrap()
        .done()
        .unwrap();
    let before = wait_for(&admin, r2.id, 60, |v| {
        v.current_wave.is_some_and(|w| w >= 1)
    })
    .await;
    admin
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled: false,
            node: Some("iad-2".into()),
            clear: false,
            reason: "acknowledged just before the kill".into(),
        })
        .await
        .unwrap();
    let audit_before = admin.audit(0, 1000).await.unwrap().entries;
    control.child.kill().unwrap(); // SIGKILL
    control.child.wait().unwrap();

    let restarted = spawn(dir.path(), store);
    let admin = Client::new(&restarted.url, Some(ADMIN.into())).unwrap();
    // The nodes' credentials are in the store: they work against the restarted process.
    *fleet.client.lock().unwrap() = Client::new(&restarted.url, None).unwrap();

    // Resumed where it stood: same rollout, not back at the canary, not restarted.
    let after = admin.rollout_status(r2.id).await.unwrap();
    assert!(!after.done, "{after:?}");
    assert!(
        after.current_wave >= before.current_wave,
        "{:?} then {:?}",
        before.current_wave,
        after.current_wave
    );
    assert_eq!(after.started_at_ms, before.started_at_ms);
    assert_eq!(admin.rollouts(10).await.unwrap().rollouts.len(), 2);
    // Nothing acknowledged lost: the audit log before the kill is a prefix of the one after,
    // and the kill switch set just before is delivered.
    let audit_after = admin.audit(0, 1000).await.unwrap().entries;
    assert!(audit_after.len() >= audit_before.len());
    assert_eq!(&audit_after[..audit_before.len()], &audit_before[..]);
    let switches = admin.killswitches().await.unwrap().switches;
    assert_eq!(switches.len(), 1);
    assert_eq!(switches[0].node.as_deref(), Some("iad-2"));
    assert_eq!(admin.nodes().await.unwrap().nodes.len(), NODES.len());

    let done = wait_for(&admin, r2.id, 90, |v| v.done).await;
    assert_eq!(done.phase, "succeeded", "{done:?}");
    let nodes = admin.nodes().await.unwrap().nodes;
    assert!(
        nodes.iter().all(|n| n.active.map(|a| a.version) == Some(2)),
        "{nodes:?}"
    );
    let starts = audit_after
        .iter()
        .chain(
            &admin
                .audit(audit_after.last().map_or(0, |e| e.seq), 1000)
                .await
                .unwrap()
                .entries,
        )
        .filter(|e| e.action == "rollout.started" && e.subject == format!("rollout/{}", r2.id))
        .count();
    assert_eq!(starts, 1, "the rollout was resumed, not started again");
    fleet.stop().await;
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_and_killswitch_verbs_drive_a_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let control = spawn(dir.path(), None);
    let run_as = |token: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(args)
            .args(["--control", &control.url, "--plain-http", "--token-file"])
            .arg(dir.path().join(token))
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let run = |args: &[&str]| run_as("admin.token", args);
    // Each node enrolls with a bootstrap token from `rampart node enroll`.
    let anon = Client::new(&control.url, None).unwrap();
    let mut enrolled = Vec::new();
    for (id, pop, region, canary) in NODES {
        let boot = dir.path().join(format!("{id}.boot"));
        let (code, out, err) = run(&[
            "node",
            "enroll",
            id,
            "--reason",
            "new edge",
            "--out",
            boot.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let token = std::fs::read_to_string(&boot).unwrap();
        let credential = anon
            .with_token(Some(token))
            .enroll(id)
            .await
            .unwrap()
            .credential;
        enrolled.push((id.to_owned(), credential.clone()));
        let edge = anon.with_token(Some(credential));
        edge.register(&Registration {
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
    let fleet = Fleet::start(anon.clone(), &enrolled);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // `start FILE` publishes then starts; `watch` follows it to the end (exit 0).
    let file = dir.path().join("v1.signed");
    std::fs::write(&file, signed(&doc_weighted(1, 10, 0.5))).unwrap();
    let (code, out, err) = run(&[
        "rollout",
        "start",
        file.to_str().unwrap(),
        "--bake-ms",
        "200",
        "--watch-ms",
        "0",
        "--reason",
        "first",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("canary"), "{out}");
    let (code, out, err) = run(&[
        "rollout",
        "watch",
        "--interval-ms",
        "100",
        "--timeout-secs",
        "60",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().last().unwrap().contains("succeeded"), "{out}");
    let (code, out, _) = run(&["rollout", "status", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["phase"], "succeeded");

    // A bad file is refused with exit 1 and its issues; a refused command too.
    let bad = dir.path().join("bad.signed");
    std::fs::write(&bad, signed(&doubled(2, 150))).unwrap();
    let (code, _, err) = run(&["rollout", "start", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("duplicate_name") && err.contains("too_many_features"),
        "{err}"
    );
    let (code, _, err) = run(&["rollout", "pause", &v["id"].to_string()]);
    assert_eq!(code, 1, "pausing a finished rollout is refused: {err}");

    // Kill switch off and on, fleet-wide: alice asks, bob approves (alice may not).
    for (state, reason, shown) in [
        ("off", "drill", "bot OFF on the fleet"),
        ("on", "drill over", "bot on on the fleet"),
    ] {
        let (code, out, err) = run(&["killswitch", "set", "bot", state, "--reason", reason]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("waits for a second admin"), "{out}");
        let id = out
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches(':')
            .to_owned();
        let (code, out, _) = run(&["approval", "list"]);
        assert_eq!(code, 0);
        assert!(out.contains(&format!("approval {id}:")), "{out}");
        let (code, _, err) = run(&["approval", "grant", &id]);
        assert_eq!(code, 2, "the admin who asked cannot approve: {err}");
        assert!(err.contains("403"), "{err}");
        let (code, out, err) = run_as("admin2.token", &["approval", "grant", &id]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("took effect"), "{out}");
        let (_, out, _) = run(&["killswitch", "show"]);
        assert!(out.contains(shown), "{out}");
        assert!(out.contains("alice+bob"), "{out}");
    }

    // A node removed by name, with a reason: its credential stops working.
    let (code, out, err) = run(&["node", "remove", "iad-2", "--reason", "decommissioned"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed iad-2"), "{out}");
    let iad2 = &enrolled.iter().find(|(n, _)| n == "iad-2").unwrap().1;
    let e = anon
        .with_token(Some(iad2.clone()))
        .heartbeat("iad-2", &rampart_api::Heartbeat::empty(0))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    fleet.stop().await;
}
