//! TLS between real processes: an edge pointed at a control plane whose certificate another
//! CA signed changes nothing (the attack of issue 12, "a fake control plane owns the edge"),
//! the same edge setup with the right CA follows it, and plain HTTP is refused off loopback
//! by `rampart control`, `rampart edge` and the client verbs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rampart_api::{Client, KillSwitchSet, Module};
use rampart_artifact::Envelope;
use rampart_up::inject::catalog_document;
use rampart_up::stack::{self, ControlSpec, EdgeProc, EdgeSpec};
use rampart_up::status;
use rampart_up::workdir::Workdir;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rampart"))
}

fn edge_spec(id: &str, control: &str, work: &Workdir) -> EdgeSpec {
    EdgeSpec {
        exe: exe(),
        id: id.into(),
        pop: "fra".into(),
        region: "eu".into(),
        canary: true,
        upstream: stack::free_addr().unwrap(),
        control: control.into(),
        pubkeys: vec![work.pubkey.clone()],
        extra: vec!["--beat-interval-ms".into(), "100".into()],
        test_hooks: false,
        agent_control: None,
    }
}

async fn edge_status(edge: &EdgeProc) -> serde_json::Value {
    status::get_json(edge.admin, "/status").await.unwrap()
}

/// Polls an edge's `/status` until `what` holds (at most 20 s).
async fn until(edge: &EdgeProc, what: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..200 {
        let s = edge_status(edge).await;
        if what(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("edge {}: {}", edge.spec.id, edge_status(edge).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_changes_nothing_for_a_control_plane_signed_by_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    // The fake control plane: a real one, with its own CA, which turns the bot module off
    // fleet-wide for whoever follows it.
    let fake = Workdir::create(&dir.path().join("fake"), "").unwrap();
    let control = stack::start_control(
        &ControlSpec {
            exe: exe(),
            listen: stack::free_addr().unwrap(),
            pubkeys: vec![fake.pubkey.clone()],
            beat_interval_ms: 100,
            auto_rollout: false,
            extra: Vec::new(),
        },
        &fake,
    )
    .unwrap();
    assert!(control.url.starts_with("https://"), "{}", control.url);
    let fake_admin = Client::with_transport(
        &control.url,
        Some(fake.admin_secret.clone()),
        &fake.transport().unwrap(),
    )
    .unwrap();
    let asked = fake_admin
        .killswitch_set(&KillSwitchSet {
            module: Module::Bot,
            enabled: false,
            node: None,
            clear: false,
            reason: "by attacker".into(),
        })
        .await
        .unwrap();
    // Fleet-wide: the fake's second admin grants it.
    let rampart_api::Decision::Pending(pending) = asked else {
        panic!("a fleet-wide switch took effect with one admin");
    };
    Client::with_transport(
        &control.url,
        Some(fake.approver_secret.clone()),
        &fake.transport().unwrap(),
    )
    .unwrap()
    .approve(pending.id)
    .await
    .unwrap();

    // The edge trusts its own CA, and even holds a credential the fake would accept (the
    // fake enrolled fra-1): only the certificate stands between them.
    let own = Workdir::create(&dir.path().join("own"), "").unwrap();
    let credential = rampart_e2e::control_plane::enroll(&fake_admin, "fra-1").await;
    let own_data = own.dir("edges/fra-1/data").unwrap();
    std::fs::write(
        own_data.join(rampart_edge::cli::CREDENTIAL_FILE),
        credential,
    )
    .unwrap();
    let edge = stack::start_edge(&edge_spec("fra-1", &control.url, &own), &own).unwrap();
    let signed = Envelope::sign(&catalog_document(1).unwrap(), &own.signing_key().unwrap());
    stack::drop_into(&edge.watch_dir, "v1.json", &signed.to_json()).unwrap();
    let before = until(&edge, |s| s["active"]["version"] == 1).await;
    assert_eq!(before["module_enabled"], true);

    // It tries, fails on the certificate, says so, and keeps what it has.
    let s = until(&edge, |s| s["control"]["failures"].as_u64() >= Some(3)).await;
    assert_eq!(s["control"]["registered"], false, "{s}");
    assert_eq!(s["control"]["connected"], false, "{s}");
    assert_eq!(s["control"]["kill_switch"], serde_json::Value::Null, "{s}");
    let why = s["control"]["last_error"].as_str().unwrap();
    assert!(
        why.contains("invalid peer certificate: UnknownIssuer"),
        "{why}"
    );
    assert_eq!(
        s["module_enabled"], true,
        "the kill switch is untouched: {s}"
    );
    assert_eq!(s["active"]["version"], 1, "the edge keeps its state: {s}");
    assert!(
        fake_admin.nodes().await.unwrap().nodes.is_empty(),
        "no registration reached the fake"
    );

    // The control experiment: the same setup trusting the fake's CA is owned by it, so the
    // CA is what protected the first edge.
    let owned = stack::start_edge(&edge_spec("fra-2", &control.url, &fake), &fake).unwrap();
    let s = until(&owned, |s| s["module_enabled"] == false).await;
    assert_eq!(s["control"]["registered"], true, "{s}");
    assert_eq!(edge_status(&edge).await["module_enabled"], true);
    let _ = (owned, edge, control);
}

fn rampart(args: &[&str]) -> (i32, String) {
    let out = Command::new(exe()).args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plain_http_is_refused_off_loopback_by_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let key = rampart_artifact::testing::key();
    std::fs::write(dir.path().join("key.pub"), key.public().to_pem().unwrap()).unwrap();
    let control = |extra: &[&str]| {
        let mut args = vec!["control", "--data-dir"];
        let data = d("data");
        let pubkey = d("key.pub");
        args.extend([data.as_str(), "--pubkey", pubkey.as_str()]);
        args.extend(extra);
        rampart(&args)
    };
    // No TLS and no --plain-http: refused, whatever the address.
    let (code, err) = control(&["--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--tls-cert"), "{err}");
    // --plain-http on an address other hosts reach: refused.
    let (code, err) = control(&["--listen", "0.0.0.0:0", "--plain-http"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(!Path::new(&d("data")).join("control.sqlite3").exists());

    // An edge following a control plane over plain HTTP off loopback: refused at start.
    let edge = |url: &str, extra: &[&str]| {
        let mut args = vec![
            "edge",
            "--upstream",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--control",
            url,
        ];
        let data = d("edge");
        let pubkey = d("key.pub");
        args.extend(["--data-dir", data.as_str(), "--pubkey", pubkey.as_str()]);
        args.extend(extra);
        rampart(&args)
    };
    let (code, err) = edge("http://10.0.0.1:7700", &["--control-plain-http"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("loopback"), "{err}");
    let (code, err) = edge("http://127.0.0.1:7700", &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("plain HTTP"), "{err}");

    // A client verb with a token: refused before anything is sent.
    std::fs::write(dir.path().join("admin.token"), "s3cret").unwrap();
    let token = d("admin.token");
    for url in ["http://10.0.0.1:7700", "http://control.example:7700"] {
        let (code, err) = rampart(&[
            "killswitch",
            "set",
            "bot",
            "off",
            "--reason",
            "drill",
            "--control",
            url,
            "--plain-http",
            "--token-file",
            &token,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("loopback"), "{err}");
    }
}
