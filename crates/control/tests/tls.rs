//! The control API over TLS, on a real socket: a renewed certificate pair is served to new
//! connections without a restart, a broken one is refused and the previous pair keeps
//! serving, and `/v1/health` says which.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rampart_control::tls::authority::{Authority, Issued};
use rampart_control::tls::{CERT_CHECK_INTERVAL_MS, ServerTls, cert_fingerprint, provider};
use rampart_e2e::Harness;
use rampart_host::file::write_atomic;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;

/// Writes the pair the way a renewal job does: each file renamed into place.
fn install(dir: &Path, pair: &Issued) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    write_atomic(&key, pair.key_pem.as_bytes()).unwrap();
    write_atomic(&cert, pair.cert_pem.as_bytes()).unwrap();
    (cert, key)
}

/// A new connection trusting `ca` only: the leaf certificate's fingerprint, and the
/// `/v1/health` answer read over it.
async fn connect(addr: std::net::SocketAddr, ca: &str) -> (String, serde_json::Value) {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    tls.write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (
        cert_fingerprint(leaf.as_ref()),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_serves_new_connections_and_a_broken_one_is_refused() {
    let files = tempfile::tempdir().unwrap();
    let ca = Authority::generate().unwrap();
    let first = ca.issue_server(&[]).unwrap();
    let (cert, key) = install(files.path(), &first);
    let h = Harness::start_tls_with(|c| c.tls = ServerTls::Files { cert, key }).await;
    let addr = h.server.as_ref().unwrap().addr();

    let (seen, health) = connect(addr, ca.cert_pem()).await;
    assert_eq!(seen, cert_fingerprint(&first.cert_der));
    assert!(
        seen.starts_with("sha256:") && seen.len() == 7 + 64,
        "{seen}"
    );
    assert_eq!(health["tls"]["fingerprint"], seen.as_str());
    assert_eq!(health["tls"]["reloads"], 0);

    // Renewed: a new connection gets the new certificate, without a restart.
    let second = ca.issue_server(&[]).unwrap();
    install(files.path(), &second);
    let want = cert_fingerprint(&second.cert_der);
    let mut seen = String::new();
    for _ in 0..(CERT_CHECK_INTERVAL_MS / 50 * 10) {
        seen = connect(addr, ca.cert_pem()).await.0;
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, want, "the renewed certificate serves");
    let (_, health) = connect(addr, ca.cert_pem()).await;
    assert_eq!(health["tls"]["reloads"], 1, "{health}");
    assert_eq!(health["tls"]["fingerprint"], want.as_str());
    // (A look between the key's write and the certificate's may have refused the
    // half-written pair once: that is the rule, and it is counted.)
    let rejected = health["tls"]["rejected"].as_u64().unwrap();

    // Broken: a new certificate without its key (the old key stays). Refused, counted,
    // and the second pair keeps serving.
    let third = ca.issue_server(&[]).unwrap();
    write_atomic(&files.path().join("server.pem"), third.cert_pem.as_bytes()).unwrap();
    let mut health = serde_json::Value::Null;
    for _ in 0..(CERT_CHECK_INTERVAL_MS / 50 * 10) {
        let (fp, h) = connect(addr, ca.cert_pem()).await;
        assert_eq!(fp, want, "the previous pair keeps serving");
        health = h;
        if health["tls"]["rejected"].as_u64() > Some(rejected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        health["tls"]["rejected"].as_u64(),
        Some(rejected + 1),
        "{health}"
    );
    assert_eq!(health["tls"]["reloads"], 1, "{health}");
    assert_eq!(health["tls"]["fingerprint"], want.as_str());
    let why = health["tls"]["last_error"].as_str().unwrap();
    assert!(why.contains("do not make a pair"), "{why}");

    // The clients of the harness (trusting another CA) fail their handshake: counted (by
    // the server's handshake task, which may finish after the client gave up).
    assert!(h.anon.nodes().await.is_err());
    let server = h.server.as_ref().unwrap();
    let mut failures = 0;
    for _ in 0..100 {
        failures = server.tls_report().unwrap().handshake_failures;
        if failures >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failures >= 1, "a failed handshake is counted");
}

#[tokio::test]
async fn plain_http_on_an_address_other_hosts_reach_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = rampart_e2e::control_plane::config(dir.path());
    c.listen = "0.0.0.0:0".parse().unwrap();
    c.tls = ServerTls::PlainHttp;
    let e = rampart_control::Server::start(c).await.unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    assert!(
        !dir.path().join("control.sqlite3").exists(),
        "refused before the store is opened"
    );
}
