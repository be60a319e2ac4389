//! `rampart generate --publish`: the signed file goes to a real `rampart control` over TLS
//! (a CA and certificate made by `rampart tls init`, trusted with `--ca`), and the
//! generator's state dir records a version as published only once the control plane took it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rampart_api::{Client, Labels, Registration, Transport};
use rampart_artifact::ContractSpec;

const ADMIN: &str = "admin-secret-0123456789abcdef0123456789";
const PUBLISHER: &str = "publisher-secret-0123456789abcdef01234";
const EDGE: &str = "edge-secret-0123456789abcdef0123456789ab";

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

fn control(dir: &Path) -> Control {
    let init = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["tls", "init"])
        .arg(dir.join("tls"))
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["control", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--tls-cert")
        .arg(dir.join("tls/server.pem"))
        .arg("--tls-key")
        .arg(dir.join("tls/server.key"))
        .arg("--token-file")
        .arg(dir.join("tokens"))
        .arg("--pubkey")
        .arg(dir.join("key.pub"))
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
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let url = line
        .trim()
        .strip_prefix("rampart control listening on ")
        .unwrap()
        .to_owned();
    Control { child, url }
}

fn generate(dir: &Path, state: &str, url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["generate", "--source", "catalog:embedded", "--key"])
        .arg(dir.join("key.pem"))
        .arg("--state-dir")
        .arg(dir.join(state))
        .args(["--publish", url, "--publish-token-file"])
        .arg(dir.join("publisher.token"))
        .env("RAMPART_CA", dir.join("tls/ca.pem"))
        .output()
        .unwrap()
}

fn tls(dir: &Path) -> Transport {
    Transport::from_flags(Some(&dir.join("tls/ca.pem")), false).unwrap()
}

fn published_version(dir: &Path, state: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(state).join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["published"]["version"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_publishes_to_the_control_plane_and_records_only_what_it_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = rampart_artifact::testing::key();
    std::fs::write(d.join("key.pem"), key.to_pem().unwrap()).unwrap();
    std::fs::write(d.join("key.pub"), key.public().to_pem().unwrap()).unwrap();
    std::fs::write(
        d.join("tokens"),
        format!("alice admin {ADMIN}\ngen publisher {PUBLISHER}\nedges edge {EDGE}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("publisher.token"),
        format!("gen publisher {PUBLISHER}\n"),
    )
    .unwrap();
    let control = control(d);

    // Accepted: 201, recorded as version 1, listed by the control plane.
    let out = generate(d, "state-a", &control.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("published version 1"), "{stdout}");
    assert_eq!(published_version(d, "state-a"), Some(1));
    assert!(control.url.starts_with("https://"), "{}", control.url);
    let anon = Client::with_transport(&control.url, None, &tls(d)).unwrap();
    let listed = anon.artifacts(10).await.unwrap().artifacts;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].published_by, "gen");

    // An edge registers a contract the embedded catalog breaks (10 features at most): the
    // control plane refuses with 422, the run exits 1 with the issues, nothing is recorded.
    let admin = Client::with_transport(&control.url, Some(ADMIN.into()), &tls(d)).unwrap();
    let credential = rampart_e2e::control_plane::enroll(&admin, "tiny-1").await;
    Client::with_transport(&control.url, Some(credential), &tls(d))
        .unwrap()
        .register(&Registration {
            node: "tiny-1".into(),
            labels: Labels {
                pop: "fra".into(),
                region: "eu".into(),
                canary: true,
            },
            contract: ContractSpec {
                consumer: "tiny".into(),
                max_features: 10,
                ..ContractSpec::default()
            },
            software_version: "test".into(),
        })
        .await
        .unwrap();
    let out = generate(d, "state-b", &control.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("control plane") && stdout.contains("too_many_features"),
        "{stdout}"
    );
    assert_eq!(published_version(d, "state-b"), None);

    // Unreachable: exit 2, nothing recorded.
    let url = control.url.clone();
    drop(control);
    let out = generate(d, "state-c", &url);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(published_version(d, "state-c"), None);
}
