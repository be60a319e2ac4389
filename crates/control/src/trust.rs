//! The control plane's keyset, re-read while it runs: a new keyset that verifies against the
//! root (k of n, unexpired, not older) and still names this control plane's director key
//! replaces the one in use, and publishes are then checked against its generator keys (and
//! the `--pubkey` keys, the legacy/dev path). One that does not is refused, counted and
//! logged, shown on `GET /v1/health` under `trust`, and the one in use stays. See
//! `docs/trust.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rampart_artifact::{Digest, Keyring, Keyset, MAX_TRUST_FILE_BYTES, Root};
use rampart_host::clock::now_ms;
use rampart_host::file;
use serde::Serialize;

use crate::service::Service;
use crate::store::Store;

/// How often the keyset file is re-read, unless `--keyset-poll-ms` says.
pub const DEFAULT_KEYSET_POLL_MS: u64 = 2_000;

/// The shortest poll interval accepted.
pub const MIN_KEYSET_POLL_MS: u64 = 10;

/// The root and keyset in use, and where the keyset file is.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The root, verified at start.
    pub root: Arc<Root>,
    /// The keyset, verified at start.
    pub keyset: Arc<Keyset>,
    /// The keyset file.
    pub keyset_file: PathBuf,
    /// The `--pubkey` keys, trusted besides the keyset's generator keys.
    pub pubkeys: Keyring,
    /// How often the keyset file is re-read.
    pub poll: Duration,
}

/// What `GET /v1/health` shows under `trust`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrustReport {
    /// The root's version.
    pub root_version: u64,
    /// The keyset's version.
    pub keyset_version: u64,
    /// When it expires, RFC 3339.
    pub keyset_expires: String,
    /// Keysets refused since start.
    pub refused_total: u64,
    /// The last refusal, one line.
    pub last_refusal: Option<String>,
}

// === impl TrustConfig ===

impl TrustConfig {
    /// The keys publishes are checked against with `keyset`.
    pub fn keyring(&self, keyset: &Keyset) -> Keyring {
        Keyring::new(
            self.pubkeys
                .keys()
                .iter()
                .chain(keyset.generator().keys())
                .cloned(),
        )
    }

    /// The report of the keyset in use.
    pub fn report(&self) -> TrustReport {
        TrustReport {
            root_version: self.root.version(),
            keyset_version: self.keyset.version(),
            keyset_expires: self.keyset.expires().to_owned(),
            refused_total: 0,
            last_refusal: None,
        }
    }
}

/// Re-reads the keyset file every poll interval until shutdown.
pub async fn reload_loop<S: Store>(svc: Arc<Service<S>>, config: TrustConfig) {
    let mut shutdown = svc.shutdown_signal();
    let mut interval =
        tokio::time::interval(config.poll.max(Duration::from_millis(MIN_KEYSET_POLL_MS)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut current = config.keyset.clone();
    let mut seen: Option<Digest> = None;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = interval.tick() => {}
        }
        let path = config.keyset_file.clone();
        let Ok(read) =
            tokio::task::spawn_blocking(move || file::read_capped(&path, MAX_TRUST_FILE_BYTES))
                .await
        else {
            continue;
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) => {
                if seen != Some(Digest::of(b"")) {
                    seen = Some(Digest::of(b""));
                    svc.keyset_refused(format!("unreadable: {e}"));
                }
                continue;
            }
        };
        let digest = Digest::of(&bytes);
        if seen == Some(digest) {
            continue;
        }
        seen = Some(digest);
        match Keyset::verify(&bytes, &config.root, Some(&current), now_ms()) {
            Ok(keyset) if keyset.digest() == current.digest() => {}
            Ok(keyset) => {
                let director = svc.config().director_key.as_ref().map(|k| k.public());
                if let Some(d) = director
                    && keyset.director().get(d.id().as_str()).is_none()
                {
                    svc.keyset_refused(format!(
                        "keyset version {} does not name this control plane's director key {}: \
                         edges would refuse every order; restart with a director key it names",
                        keyset.version(),
                        d.id()
                    ));
                    continue;
                }
                tracing::info!(
                    version = keyset.version(),
                    previous = current.version(),
                    "keyset rotated"
                );
                let keyset = Arc::new(keyset);
                svc.set_keyset(config.keyring(&keyset), &keyset);
                current = keyset;
            }
            Err(e) => svc.keyset_refused(e.to_string()),
        }
    }
}
