//! The work directory of a stack: signing keys, bearer tokens, the rollout policy, and a
//! place per process for its data and log. Everything a stack needs is created here, so
//! nothing else has to be installed or configured.
//!
//! ```text
//! DIR/
//!   keys/rampart.key, rampart.pub    the generator's signing key (edges and control trust it)
//!   keys/rotated.key, rotated.pub    a new key only the control plane trusts yet (--inject)
//!   tokens                           the control plane's token file (two admins, publisher)
//!   admin.token, approver.token, publisher.token
//!                                    approver: the second admin a fleet kill switch or
//!                                    break glass needs (`rampart approval grant`)
//!   policy.toml                      waves and gates
//!   tls/ca.pem, ca.key               the local CA (edges, generator and CLI trust it)
//!   tls/server.pem, server.key       the control plane's certificate (127.0.0.1, ::1, localhost)
//!   control/, edges/<id>/, generator/, logs/
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rampart_api::Transport;
use rampart_artifact::SecretKey;
use rampart_control::tls::TlsError;
use rampart_control::tls::authority::{self, TlsFiles};

/// Random bytes in each bearer secret (hex-encoded: twice as many characters, over the
/// control plane's minimum of 32).
const SECRET_BYTES: usize = 24;

/// The files of a work directory.
#[derive(Debug, Clone)]
pub struct Workdir {
    /// The directory.
    pub root: PathBuf,
    /// The signing key (PEM).
    pub key: PathBuf,
    /// Its public key.
    pub pubkey: PathBuf,
    /// A second key, trusted by the control plane only (a rotation half done).
    pub rotated_key: PathBuf,
    /// Its public key.
    pub rotated_pubkey: PathBuf,
    /// The control plane's token file.
    pub tokens: PathBuf,
    /// The admin's secret, in a file.
    pub admin_token: PathBuf,
    /// The publisher's secret, in a file.
    pub publisher_token: PathBuf,
    /// The second admin's secret, in a file: approves what the first asks.
    pub approver_token: PathBuf,
    /// The admin's secret.
    pub admin_secret: String,
    /// The second admin's secret.
    pub approver_secret: String,
    /// The publisher's secret.
    pub publisher_secret: String,
    /// The rollout policy.
    pub policy: PathBuf,
}

/// Why a work directory could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    /// A file or directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// No randomness for keys or tokens.
    #[error("no randomness for keys and tokens: {0}")]
    Random(String),
    /// A key could not be encoded.
    #[error("key: {0}")]
    Key(String),
    /// The local CA or the control plane's certificate could not be made or read.
    #[error("TLS: {0}")]
    Tls(String),
}

// === impl Workdir ===

impl Workdir {
    /// Creates `root` (and its parents) with fresh keys, tokens and `policy` (TOML).
    pub fn create(root: &Path, policy: &str) -> Result<Workdir, WorkdirError> {
        for sub in ["keys", "control", "edges", "generator", "logs"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|source| io_err(&dir, source))?;
        }
        let w = Workdir {
            root: root.to_owned(),
            key: root.join("keys/rampart.key"),
            pubkey: root.join("keys/rampart.pub"),
            rotated_key: root.join("keys/rotated.key"),
            rotated_pubkey: root.join("keys/rotated.pub"),
            tokens: root.join("tokens"),
            admin_token: root.join("admin.token"),
            publisher_token: root.join("publisher.token"),
            approver_token: root.join("approver.token"),
            admin_secret: secret()?,
            approver_secret: secret()?,
            publisher_secret: secret()?,
            policy: root.join("policy.toml"),
        };
        for (private, public) in [(&w.key, &w.pubkey), (&w.rotated_key, &w.rotated_pubkey)] {
            let key = SecretKey::generate().map_err(|e| WorkdirError::Key(e.to_string()))?;
            let pem = key.to_pem().map_err(|e| WorkdirError::Key(e.to_string()))?;
            write_private(private, pem.as_bytes())?;
            let pem = key
                .public()
                .to_pem()
                .map_err(|e| WorkdirError::Key(e.to_string()))?;
            write(public, pem.as_bytes())?;
        }
        write_private(
            &w.tokens,
            format!(
                "operator admin {}\napprover admin {}\ngenerator publisher {}\n",
                w.admin_secret, w.approver_secret, w.publisher_secret
            )
            .as_bytes(),
        )?;
        write_private(&w.admin_token, w.admin_secret.as_bytes())?;
        write_private(&w.publisher_token, w.publisher_secret.as_bytes())?;
        write_private(&w.approver_token, w.approver_secret.as_bytes())?;
        write(&w.policy, policy.as_bytes())?;
        create_tls(&w)?;
        Ok(w)
    }

    /// The local CA and the control plane's certificate and keys (`DIR/tls/`).
    pub fn tls(&self) -> TlsFiles {
        TlsFiles::in_dir(&self.root.join("tls"))
    }

    /// How every client of the stack reaches the control plane: over TLS, trusting the
    /// local CA only.
    pub fn transport(&self) -> Result<Transport, WorkdirError> {
        Transport::from_flags(Some(&self.tls().ca_cert), false)
            .map_err(|e| WorkdirError::Tls(e.to_string()))
    }

    /// The signing key.
    pub fn signing_key(&self) -> Result<SecretKey, WorkdirError> {
        read_key(&self.key)
    }

    /// The rotated key (trusted by the control plane, not by the edges).
    pub fn rotated_signing_key(&self) -> Result<SecretKey, WorkdirError> {
        read_key(&self.rotated_key)
    }

    /// A subdirectory, created.
    pub fn dir(&self, rel: &str) -> Result<PathBuf, WorkdirError> {
        let dir = self.root.join(rel);
        fs::create_dir_all(&dir).map_err(|source| io_err(&dir, source))?;
        Ok(dir)
    }

    /// The log file of a process.
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }
}

/// A fresh local CA and server certificate for the control plane in `DIR/tls/`.
fn create_tls(w: &Workdir) -> Result<TlsFiles, WorkdirError> {
    authority::init(&w.root.join("tls"), &[])
        .map_err(|e: TlsError| WorkdirError::Tls(e.to_string()))
}

fn read_key(path: &Path) -> Result<SecretKey, WorkdirError> {
    let pem = fs::read_to_string(path).map_err(|source| io_err(path, source))?;
    SecretKey::from_pem(&pem).map_err(|e| WorkdirError::Key(e.to_string()))
}

fn secret() -> Result<String, WorkdirError> {
    rampart_host::secret::random_hex(SECRET_BYTES).map_err(|e| WorkdirError::Random(e.to_string()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), WorkdirError> {
    fs::write(path, bytes).map_err(|source| io_err(path, source))
}

/// Keys and tokens: readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), WorkdirError> {
    rampart_host::file::write_private(path, bytes).map_err(|e| io_err(path, e.into_io()))
}

fn io_err(path: &Path, source: io::Error) -> WorkdirError {
    WorkdirError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workdir_has_keys_tokens_and_policy() {
        let dir = tempfile::tempdir().unwrap();
        let w = Workdir::create(&dir.path().join("stack"), "[rollout]\ntick_ms = 100\n").unwrap();
        assert!(w.signing_key().is_ok() && w.rotated_signing_key().is_ok());
        assert_ne!(
            w.signing_key().unwrap().public(),
            w.rotated_signing_key().unwrap().public()
        );
        let tokens = fs::read_to_string(&w.tokens).unwrap();
        assert!(tokens.contains(&format!("approver admin {}", w.approver_secret)));
        assert_eq!(w.admin_secret.len(), SECRET_BYTES * 2);
        assert_ne!(w.admin_secret, w.approver_secret);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&w.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }
}
