//! The root of trust of a local stack: root keys (2 of 3), the root document, a director
//! key for the control plane, and a keyset naming the work dir's generator key and that
//! director key, all under `DIR/keys/`. `rampart up` passes `--root`, `--keyset` and
//! `--director-key` to the control plane and `--root`, `--keyset` to every edge, so the
//! edges apply only orders the control plane signed, as in production.

use std::path::{Path, PathBuf};

use rampart_artifact::{KeysetSpec, PublicKey, Root, RootSpec, SecretKey, format_time};
use rampart_host::clock::now_ms;

use crate::workdir::{Workdir, WorkdirError};

/// Root keys made for a local stack.
pub const ROOT_KEYS: usize = 3;

/// Of which this many sign a keyset.
pub const ROOT_THRESHOLD: usize = 2;

/// A local stack's root and keyset last this long (a day: a stack is for a session).
pub const LOCAL_TRUST_MS: u64 = 24 * 60 * 60 * 1000;

/// The trust files of a stack.
#[derive(Debug, Clone)]
pub struct TrustFiles {
    /// `keys/root.json`.
    pub root: PathBuf,
    /// `keys/keyset.json`.
    pub keyset: PathBuf,
    /// `keys/director.key` (mode 0600).
    pub director_key: PathBuf,
    /// The root private keys, `keys/root-N.key` (mode 0600).
    pub root_keys: Vec<PathBuf>,
}

// === impl TrustFiles ===

impl TrustFiles {
    /// Makes root keys, the root, a director key and keyset version 1 (the work dir's
    /// generator key, the director key) in `work`'s `keys/`.
    pub fn create(work: &Workdir) -> Result<Self, WorkdirError> {
        let keys = work.dir("keys")?;
        let mut root_secrets = Vec::with_capacity(ROOT_KEYS);
        let mut root_keys = Vec::with_capacity(ROOT_KEYS);
        for i in 1..=ROOT_KEYS {
            let path = keys.join(format!("root-{i}.key"));
            root_secrets.push(new_key(&path)?);
            root_keys.push(path);
        }
        let director_key = keys.join("director.key");
        let director = new_key(&director_key)?;
        let spec = RootSpec {
            version: 1,
            expires: format_time(now_ms().saturating_add(LOCAL_TRUST_MS)),
            threshold: ROOT_THRESHOLD,
            keys: root_secrets.iter().map(SecretKey::public).collect(),
        };
        let refs: Vec<&SecretKey> = root_secrets.iter().collect();
        let root = keys.join("root.json");
        let envelope = spec.sign(&refs).map_err(key_err)?;
        write(&root, &envelope.to_json())?;
        let files = TrustFiles {
            root,
            keyset: keys.join("keyset.json"),
            director_key,
            root_keys,
        };
        let generator = work.signing_key()?.public();
        files.write_keyset(1, &[generator], &[director.public()])?;
        Ok(files)
    }

    /// Signs keyset `version` naming `generator` and `director` keys with the first
    /// [`ROOT_THRESHOLD`] root keys, checks it against the root, and writes it over the
    /// keyset file (edges and the control plane pick it up without restart).
    pub fn write_keyset(
        &self,
        version: u64,
        generator: &[PublicKey],
        director: &[PublicKey],
    ) -> Result<(), WorkdirError> {
        let bytes = self.sign_keyset(version, generator, director)?;
        write(&self.keyset, &bytes)
    }

    /// [`Self::write_keyset`]'s bytes, not written.
    pub fn sign_keyset(
        &self,
        version: u64,
        generator: &[PublicKey],
        director: &[PublicKey],
    ) -> Result<Vec<u8>, WorkdirError> {
        let mut signers = Vec::with_capacity(ROOT_THRESHOLD);
        for path in self.root_keys.iter().take(ROOT_THRESHOLD) {
            signers.push(read_key(path)?);
        }
        let refs: Vec<&SecretKey> = signers.iter().collect();
        let spec = KeysetSpec {
            version,
            expires: format_time(now_ms().saturating_add(LOCAL_TRUST_MS)),
            generator: generator.to_vec(),
            director: director.to_vec(),
            operator: Vec::new(),
        };
        let bytes = spec.sign(&refs).map_err(key_err)?.to_json();
        let root_bytes = std::fs::read(&self.root).map_err(|e| io_err(&self.root, e))?;
        let root = Root::trust(&root_bytes, now_ms()).map_err(key_err)?;
        rampart_artifact::Keyset::verify(&bytes, &root, None, now_ms()).map_err(key_err)?;
        Ok(bytes)
    }

    /// The director key.
    pub fn director(&self) -> Result<SecretKey, WorkdirError> {
        read_key(&self.director_key)
    }

    /// The control plane's flags: `--root`, `--keyset`, `--director-key`.
    pub fn control_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.root.display().to_string(),
            "--keyset".into(),
            self.keyset.display().to_string(),
            "--director-key".into(),
            self.director_key.display().to_string(),
        ]
    }

    /// An edge's flags: `--root`, `--keyset`.
    pub fn edge_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.root.display().to_string(),
            "--keyset".into(),
            self.keyset.display().to_string(),
        ]
    }
}

fn new_key(path: &Path) -> Result<SecretKey, WorkdirError> {
    let key = SecretKey::generate().map_err(key_err)?;
    let pem = key.to_pem().map_err(key_err)?;
    rampart_host::file::write_private(path, pem.as_bytes())
        .map_err(|e| io_err(path, e.into_io()))?;
    Ok(key)
}

fn read_key(path: &Path) -> Result<SecretKey, WorkdirError> {
    let pem = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    SecretKey::from_pem(&pem).map_err(key_err)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), WorkdirError> {
    rampart_host::file::write_atomic(path, bytes).map_err(|e| io_err(path, e.into_io()))
}

fn key_err(e: impl std::fmt::Display) -> WorkdirError {
    WorkdirError::Key(e.to_string())
}

fn io_err(path: &Path, source: std::io::Error) -> WorkdirError {
    WorkdirError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_has_a_root_a_keyset_and_a_director_key() {
        let dir = tempfile::tempdir().unwrap();
        let work = Workdir::create(&dir.path().join("stack"), "").unwrap();
        let files = TrustFiles::create(&work).unwrap();
        let root = Root::trust(&std::fs::read(&files.root).unwrap(), now_ms()).unwrap();
        assert_eq!((root.threshold(), root.keys().keys().len()), (2, 3));
        let keyset = rampart_artifact::Keyset::verify(
            &std::fs::read(&files.keyset).unwrap(),
            &root,
            None,
            now_ms(),
        )
        .unwrap();
        let generator = work.signing_key().unwrap().public();
        assert!(keyset.generator().get(generator.id().as_str()).is_some());
        let director = files.director().unwrap().public();
        assert!(keyset.director().get(director.id().as_str()).is_some());
        assert!(keyset.generator().get(director.id().as_str()).is_none());
        files.write_keyset(2, &[generator], &[director]).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.director_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the director key is private");
    }
}
