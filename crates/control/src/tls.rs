//! TLS for the control API: the listener, a certificate pair reloaded without restart, and
//! the local CA `rampart up` and `rampart tls init` make.
//!
//! # Layout
//! - [`ServerTls`]: the setting (certificate files, or plain HTTP on loopback only).
//! - [`CertReloader`]: a rustls certificate resolver that re-reads the pair when its files
//!   change, at most once per [`CERT_CHECK_INTERVAL_MS`].
//! - [`TlsHandshake`]: the handshake the shared accept loop ([`rampart_serve`]) runs in
//!   each connection's own task, after the connection caps admitted it (bounded in number
//!   and timed out; the header timeout counts from the accept, handshake included).
//! - [`authority`]: a local CA and a server certificate signed by it (rcgen).
//!
//! # The decision that matters
//! **A bad new pair never replaces a good one.** An operator (or a renewal job) writes the
//! certificate and the key one after the other; between the two writes the files do not
//! match. The reloader parses both and checks that the key is the certificate's before it
//! swaps; anything else is counted, logged, shown in `/v1/health`, and the previous pair
//! keeps serving. The next change of either file is tried again.

pub mod authority;

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rampart_artifact::Digest;
use rampart_host::clock::now_ms;
use rampart_host::file;
use rampart_serve::Handshake;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The certificate and key files are looked at (mtime and size) at most this often, on a
/// handshake: a renewed pair serves within this long of being written.
pub const CERT_CHECK_INTERVAL_MS: u64 = 1_000;

/// Largest certificate chain or key file (PEM) read.
pub const MAX_PEM_FILE_BYTES: usize = 256 * 1024;

/// A client that has not finished its TLS handshake by then is cut.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Most TLS handshakes in progress at once; more admitted connections wait for a turn
/// (within [`HANDSHAKE_TIMEOUT_MS`]).
pub const MAX_HANDSHAKES: usize = 1_024;

/// How the control API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTls {
    /// Plain HTTP: allowed only on a loopback listen address (tests, `--plain-http`).
    PlainHttp,
    /// TLS with this certificate chain and key (PEM), reloaded when the files change.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, SEC1 or PKCS#1).
        key: PathBuf,
    },
}

/// Why a certificate pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] file::Error),
    /// The certificate file holds no certificate, or a broken one.
    #[error("{path}: no usable certificate: {reason}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file holds no usable private key.
    #[error("{path}: no usable private key: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the certificate's, or rustls refused the pair.
    #[error("{cert} and {key} do not make a pair: {reason}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
    /// Plain HTTP asked for on an address other hosts can reach.
    #[error(
        "refusing plain HTTP on {0}: it is not a loopback address; give --tls-cert and --tls-key"
    )]
    PlainNotLoopback(SocketAddr),
    /// rustls refused the server settings.
    #[error("TLS settings: {0}")]
    Config(String),
    /// A certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

/// What `/v1/health` says about TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsReport {
    /// The certificate file.
    pub cert_file: String,
    /// The key file.
    pub key_file: String,
    /// `sha256:` of the leaf certificate serving now (DER).
    pub fingerprint: String,
    /// When that pair was loaded, ms since the Unix epoch.
    pub loaded_ms: u64,
    /// New pairs taken since start.
    pub reloads: u64,
    /// New pairs refused since start (the previous pair kept serving).
    pub rejected: u64,
    /// Why the last refused pair was refused.
    pub last_error: Option<String>,
    /// Handshakes that failed or timed out since start (a client that does not trust the
    /// certificate shows up here).
    pub handshake_failures: u64,
}

/// A certificate resolver that re-reads its pair when the files change. See the module docs.
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    state: Mutex<Loaded>,
    handshake_failures: AtomicU64,
}

/// The pair serving and what is known about the files.
struct Loaded {
    pair: Arc<CertifiedKey>,
    /// The files as last looked at (taken or refused: a refused pair is not parsed again
    /// until a file changes).
    stamp: Stamp,
    checked: Instant,
    report: TlsReport,
}

/// What says a file changed: its inode (a renamed-in file is a new one), modification time
/// and size, for both files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([(u64, Option<SystemTime>, u64); 2]);

/// The TLS handshake the shared accept loop runs in each connection's task. See the
/// module docs.
#[derive(Clone)]
pub struct TlsHandshake {
    acceptor: TlsAcceptor,
    reloader: Arc<CertReloader>,
    slots: Arc<Semaphore>,
}

impl fmt::Debug for TlsHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsHandshake")
            .field("reloader", &self.reloader)
            .finish_non_exhaustive()
    }
}

// === impl ServerTls ===

impl ServerTls {
    /// Refuses plain HTTP on an address that is not loopback.
    pub fn check(&self, listen: SocketAddr) -> Result<(), TlsError> {
        match self {
            ServerTls::PlainHttp if !listen.ip().is_loopback() => {
                Err(TlsError::PlainNotLoopback(listen))
            }
            _ => Ok(()),
        }
    }
}

// === impl CertReloader ===

impl CertReloader {
    /// Loads the pair now; an unusable pair stops the start.
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        Self::with_interval(cert, key, Duration::from_millis(CERT_CHECK_INTERVAL_MS))
    }

    /// [`open`](Self::open) with another check interval (tests).
    pub fn with_interval(
        cert: &Path,
        key: &Path,
        interval: Duration,
    ) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(provider());
        let stamp = stamp(cert, key);
        let pair = load(cert, key, &provider)?;
        let report = TlsReport {
            cert_file: cert.display().to_string(),
            key_file: key.display().to_string(),
            fingerprint: fingerprint(&pair),
            loaded_ms: now_ms(),
            ..TlsReport::default()
        };
        Ok(Arc::new(CertReloader {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            interval,
            state: Mutex::new(Loaded {
                pair: Arc::new(pair),
                stamp,
                checked: Instant::now(),
                report,
            }),
            handshake_failures: AtomicU64::new(0),
        }))
    }

    /// The rustls server settings serving through this resolver (HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// What `/v1/health` shows.
    pub fn report(&self) -> TlsReport {
        let mut report = self.lock().report.clone();
        report.handshake_failures = self.handshake_failures.load(Ordering::Relaxed);
        report
    }

    /// Looks at the files now if the interval passed, and takes a changed pair that parses.
    pub fn refresh(&self) {
        let mut state = self.lock();
        if state.checked.elapsed() < self.interval {
            return;
        }
        state.checked = Instant::now();
        let now = stamp(&self.cert, &self.key);
        if now == state.stamp {
            return;
        }
        state.stamp = now;
        match load(&self.cert, &self.key, &self.provider) {
            Ok(pair) => {
                let print = fingerprint(&pair);
                tracing::info!(cert = %self.cert.display(), fingerprint = %print, "TLS certificate reloaded");
                state.pair = Arc::new(pair);
                state.report.fingerprint = print;
                state.report.loaded_ms = now_ms();
                state.report.reloads = state.report.reloads.saturating_add(1);
            }
            Err(e) => {
                tracing::warn!(cert = %self.cert.display(), "new TLS certificate refused, the previous one keeps serving: {e}");
                state.report.rejected = state.report.rejected.saturating_add(1);
                state.report.last_error = Some(e.to_string());
            }
        }
    }

    fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        // A panic while holding the lock cannot leave `Loaded` half-written (every field
        // is replaced whole), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(Arc::clone(&self.lock().pair))
    }
}

impl fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertReloader")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

// === impl TlsHandshake ===

impl TlsHandshake {
    /// Handshakes with `reloader`'s certificate (at most [`MAX_HANDSHAKES`] at once, each
    /// cut after [`HANDSHAKE_TIMEOUT_MS`], waiting for a turn included); a failed handshake
    /// is counted in the report.
    pub fn new(reloader: Arc<CertReloader>) -> Result<Self, TlsError> {
        Ok(TlsHandshake {
            acceptor: TlsAcceptor::from(reloader.server_config()?),
            reloader,
            slots: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
        })
    }
}

impl Handshake for TlsHandshake {
    type Io = TlsStream<TcpStream>;

    async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> Option<Self::Io> {
        let timeout = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
        let handshake = async {
            let _slot = self.slots.acquire().await;
            self.acceptor.accept(tcp).await
        };
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                self.reloader.handshake_failed();
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                self.reloader.handshake_failed();
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}

/// The crypto provider: ring, named rather than taken from the process default (two
/// providers compiled in would make the default ambiguous).
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// `sha256:<hex>` of a certificate (DER), as `/v1/health` shows it.
pub fn cert_fingerprint(der: &[u8]) -> String {
    // `Digest` prints as `sha256:<hex>`.
    Digest::of(der).to_string()
}

fn fingerprint(pair: &CertifiedKey) -> String {
    pair.cert
        .first()
        .map(|c| cert_fingerprint(c.as_ref()))
        .unwrap_or_default()
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.ino(), m.modified().ok(), m.len()))
            .unwrap_or((0, None, 0))
    };
    Stamp([one(cert), one(key)])
}

/// Reads and checks a pair: at least one certificate, one private key, and the key is the
/// leaf certificate's.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = file::read_capped(cert, MAX_PEM_FILE_BYTES)?;
    let key_pem = file::read_capped(key, MAX_PEM_FILE_BYTES)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Cert {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_owned(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let pair = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    // `from_der` lets a pair it cannot compare through; this one it can.
    pair.keys_match().map_err(|e| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::authority::{Authority, Issued};

    // Renamed into place (a new inode), as a renewal job writes, so the change is seen
    // even within one tick of the file system's clock.
    fn write(dir: &Path, issued: &Issued) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("server.pem"), dir.join("server.key"));
        file::write_atomic(&c, issued.cert_pem.as_bytes()).unwrap();
        file::write_atomic(&k, issued.key_pem.as_bytes()).unwrap();
        (c, k)
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let plain = ServerTls::PlainHttp;
        assert!(plain.check("127.0.0.1:0".parse().unwrap()).is_ok());
        assert!(plain.check("[::1]:0".parse().unwrap()).is_ok());
        let e = plain.check("0.0.0.0:7700".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a loopback"), "{e}");
        assert!(plain.check("10.1.2.3:7700".parse().unwrap()).is_err());
    }

    #[test]
    fn a_changed_pair_is_taken_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::generate().unwrap();
        let first = ca.issue_server(&[]).unwrap();
        let (c, k) = write(dir.path(), &first);
        let r = CertReloader::with_interval(&c, &k, Duration::ZERO).unwrap();
        let before = r.report();
        assert_eq!(before.fingerprint, cert_fingerprint(&first.cert_der));

        let second = ca.issue_server(&[]).unwrap();
        write(dir.path(), &second);
        r.refresh();
        let after = r.report();
        assert_eq!(after.fingerprint, cert_fingerprint(&second.cert_der));
        assert_eq!(after.reloads, 1);

        // A new certificate with the old key: not a pair, the second keeps serving.
        let third = ca.issue_server(&[]).unwrap();
        file::write_atomic(&c, third.cert_pem.as_bytes()).unwrap();
        r.refresh();
        let refused = r.report();
        assert_eq!(refused.fingerprint, after.fingerprint);
        assert_eq!(refused.rejected, 1);
        assert!(refused.last_error.unwrap().contains("pair"));
        // Garbage in the key file: refused too, and not parsed again until it changes.
        file::write_atomic(&k, b"-----BEGIN PRIVATE KEY-----\nnope\n").unwrap();
        r.refresh();
        r.refresh();
        assert_eq!(r.report().rejected, 2);
        // The matching key arrives: taken.
        file::write_atomic(&k, third.key_pem.as_bytes()).unwrap();
        r.refresh();
        assert_eq!(r.report().fingerprint, cert_fingerprint(&third.cert_der));
    }

    #[test]
    fn an_unusable_pair_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.pem");
        std::fs::write(&c, "not pem").unwrap();
        assert!(matches!(
            CertReloader::open(&c, &c),
            Err(TlsError::Cert { .. })
        ));
        assert!(matches!(
            CertReloader::open(&dir.path().join("missing"), &c),
            Err(TlsError::Read(_))
        ));
    }
}
