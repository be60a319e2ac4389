//! The edge's root of trust: the root file (`--root`) it anchors on and the keyset file
//! (`--keyset`) it re-reads every [`DEFAULT_KEYSET_POLL`] and rotates to without restart.
//!
//! A keyset that verifies against the root (k of n root signatures, unexpired, version not
//! below the current one) replaces the current one: feature files are then accepted from
//! its generator keys ([`Store::set_keyring`]) and orders from its director keys. One that
//! does not is refused, counted, shown in `/status` (`trust.last_refusal`) and on
//! `/metrics` (`rampart_edge_keyset_refused_total`), and the current keyset stays. A changed
//! root file is a root rotation ([`Root::rotate`]: k of the old root's keys and k of its
//! own).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_artifact::{Digest, Keyset, MAX_TRUST_FILE_BYTES, Root, TrustError};
use rampart_host::clock::now_ms;
use rampart_host::file;
use rampart_ingest::Store;
use serde::Serialize;
use tokio::time::MissedTickBehavior;

use crate::bot::ModelCompiler;
use crate::server::ShutdownSignal;

/// How often the root and keyset files are re-read, unless `--keyset-poll-ms` says.
pub const DEFAULT_KEYSET_POLL: Duration = Duration::from_secs(2);

/// The shortest poll interval accepted.
pub const MIN_KEYSET_POLL: Duration = Duration::from_millis(10);

/// Where the root and keyset are, and how often to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    /// The root file.
    pub root: PathBuf,
    /// The keyset file.
    pub keyset: PathBuf,
    /// How often both are re-read.
    pub poll: Duration,
}

/// The trust in use, shared by the agent (director keys) and the reload loop.
#[derive(Debug)]
pub struct Trust {
    config: TrustConfig,
    root: ArcSwap<Root>,
    keyset: ArcSwap<Keyset>,
    report: Mutex<TrustReport>,
}

/// What `/status` shows under `trust`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrustReport {
    /// The root file.
    pub root_file: String,
    /// The root's version.
    pub root_version: u64,
    /// k of the root keys.
    pub root_threshold: usize,
    /// The keyset file.
    pub keyset_file: String,
    /// The keyset's version.
    pub keyset_version: u64,
    /// When it expires, RFC 3339.
    pub keyset_expires: String,
    /// Generator key ids (feature files).
    pub generator_keys: Vec<String>,
    /// Director key ids (orders).
    pub director_keys: Vec<String>,
    /// Keysets (and roots) taken since start, the first one included.
    pub loaded_total: u64,
    /// Keysets (and roots) refused since start.
    pub refused_total: u64,
    /// The last refusal.
    pub last_refusal: Option<TrustRefusal>,
}

/// One refused keyset or root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustRefusal {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// `root` or `keyset`.
    pub file: String,
    /// A stable code ([`TrustError::code`], or `unreadable`).
    pub code: String,
    /// One line for people.
    pub message: String,
}

/// Why the trust files could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum TrustStartError {
    /// A file cannot be read.
    #[error("{0}")]
    File(#[from] file::Error),
    /// A file does not verify.
    #[error("{path}: {source}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        source: TrustError,
    },
}

/// The last bytes seen of both files, so an unchanged file is not verified (or refused,
/// and logged) again.
#[derive(Debug, Default)]
struct Seen {
    root: Option<Digest>,
    keyset: Option<Digest>,
}

// === impl Trust ===

impl Trust {
    /// Reads and verifies both files at `now_ms`; a failure stops the start.
    pub fn load(config: TrustConfig, now_ms: u64) -> Result<Self, TrustStartError> {
        let root_bytes = file::read_capped(&config.root, MAX_TRUST_FILE_BYTES)?;
        let root = Root::trust(&root_bytes, now_ms).map_err(|source| TrustStartError::Refused {
            path: config.root.clone(),
            source,
        })?;
        let keyset_bytes = file::read_capped(&config.keyset, MAX_TRUST_FILE_BYTES)?;
        let keyset = Keyset::verify(&keyset_bytes, &root, None, now_ms).map_err(|source| {
            TrustStartError::Refused {
                path: config.keyset.clone(),
                source,
            }
        })?;
        let trust = Trust {
            report: Mutex::new(TrustReport {
                root_file: config.root.display().to_string(),
                keyset_file: config.keyset.display().to_string(),
                ..TrustReport::default()
            }),
            config,
            root: ArcSwap::from_pointee(root),
            keyset: ArcSwap::from_pointee(keyset),
        };
        trust.took();
        Ok(trust)
    }

    /// The keyset in use.
    pub fn keyset(&self) -> Arc<Keyset> {
        self.keyset.load_full()
    }

    /// What `/status` shows.
    pub fn report(&self) -> TrustReport {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrustReport> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the root and keyset in use in the report.
    fn took(&self) {
        let root = self.root.load();
        let keyset = self.keyset.load();
        let ids = |ring: &rampart_artifact::Keyring| -> Vec<String> {
            ring.keys().iter().map(|k| k.id().to_string()).collect()
        };
        let mut r = self.lock();
        r.root_version = root.version();
        r.root_threshold = root.threshold();
        r.keyset_version = keyset.version();
        r.keyset_expires = keyset.expires().to_owned();
        r.generator_keys = ids(keyset.generator());
        r.director_keys = ids(keyset.director());
        r.loaded_total = r.loaded_total.saturating_add(1);
    }

    fn refused(&self, file: &str, code: &str, message: String, at_ms: u64) {
        tracing::warn!(file, code, "{message}; keeping the keyset in use");
        let mut r = self.lock();
        r.refused_total = r.refused_total.saturating_add(1);
        r.last_refusal = Some(TrustRefusal {
            at_ms,
            file: file.to_owned(),
            code: code.to_owned(),
            message,
        });
    }

    /// Re-reads both files once; a changed, valid root or keyset is taken (and the store
    /// given the new generator keys), a changed, invalid one refused. Blocking (file I/O).
    fn poll(&self, seen: &mut Seen, store: &Store<ModelCompiler>, now_ms: u64) {
        if let Some(bytes) = self.changed(&self.config.root, &mut seen.root, "root", now_ms) {
            let current = self.root.load_full();
            match current.rotate(&bytes, now_ms) {
                Ok(root) if root.digest() == current.digest() => {}
                Ok(root) => {
                    tracing::info!(version = root.version(), "root rotated");
                    self.root.store(Arc::new(root));
                    self.took();
                }
                Err(e) => self.refused("root", e.code(), e.to_string(), now_ms),
            }
        }
        if let Some(bytes) = self.changed(&self.config.keyset, &mut seen.keyset, "keyset", now_ms) {
            let current = self.keyset.load_full();
            match Keyset::verify(&bytes, &self.root.load(), Some(&current), now_ms) {
                Ok(keyset) if keyset.digest() == current.digest() => {}
                Ok(keyset) => {
                    tracing::info!(
                        version = keyset.version(),
                        previous = current.version(),
                        "keyset rotated"
                    );
                    store.set_keyring(keyset.generator().clone());
                    self.keyset.store(Arc::new(keyset));
                    self.took();
                }
                Err(e) => self.refused("keyset", e.code(), e.to_string(), now_ms),
            }
        }
    }

    /// The file's bytes when they differ from the last seen (`None`: unchanged, or
    /// unreadable, which is refused once per spell).
    fn changed(
        &self,
        path: &Path,
        last: &mut Option<Digest>,
        what: &str,
        now_ms: u64,
    ) -> Option<Vec<u8>> {
        match file::read_capped(path, MAX_TRUST_FILE_BYTES) {
            Ok(bytes) => {
                let digest = Digest::of(&bytes);
                if last.as_ref() == Some(&digest) {
                    return None;
                }
                *last = Some(digest);
                Some(bytes)
            }
            Err(e) => {
                // The digest of nothing: a second failure in a row is not counted again.
                let marker = Digest::of(b"");
                if last.as_ref() != Some(&marker) {
                    *last = Some(marker);
                    self.refused(what, "unreadable", e.to_string(), now_ms);
                }
                None
            }
        }
    }
}

/// Re-reads the trust files every poll interval until shutdown.
pub async fn reload_loop(
    trust: Arc<Trust>,
    store: Arc<Store<ModelCompiler>>,
    mut signal: ShutdownSignal,
) {
    let mut interval = tokio::time::interval(trust.config.poll.max(MIN_KEYSET_POLL));
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seen = Some(Seen::default());
    loop {
        tokio::select! {
            () = signal.wait() => return,
            _ = interval.tick() => {}
        }
        let mut s = seen.take().unwrap_or_default();
        let t = trust.clone();
        let st = store.clone();
        match tokio::task::spawn_blocking(move || {
            t.poll(&mut s, &st, now_ms());
            s
        })
        .await
        {
            Ok(s) => seen = Some(s),
            Err(e) => tracing::error!(error = %e, "keyset reload failed; trying again"),
        }
    }
}
