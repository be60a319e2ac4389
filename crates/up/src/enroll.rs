//! Each edge `rampart up` starts gets its own identity: the supervisor, as the operator,
//! issues a one-time bootstrap token for the edge's node id, writes it to
//! `DIR/edges/<id>/enroll.token` (0600), and the edge enrolls with it
//! (`--enroll-token-file`), keeping its credential in its data dir. An edge restarted on
//! the same data dir reuses that credential and needs no new token.

use std::path::{Path, PathBuf};

use rampart_api::{Client, IssueEnrollment, Transport};
use rampart_edge::cli::CREDENTIAL_FILE;

/// How long an edge started by `up` has to use its bootstrap token (1 minute: it starts
/// at once).
pub const BOOTSTRAP_TTL_MS: u64 = 60_000;

/// Why an edge could not get a bootstrap token.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The control plane refused or could not be reached.
    #[error("bootstrap token for {node}: {source}")]
    Api {
        /// The node.
        node: String,
        /// Why (boxed: a client error carries the API's whole answer).
        source: Box<rampart_api::ClientError>,
    },
    /// The token file could not be written, or no runtime for the request.
    #[error("bootstrap token for {node}: {reason}")]
    Local {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
}

/// The bootstrap token file for `node` when its data dir has no credential yet, written
/// with a token the admin (`admin_secret`) issued on `control` (reached over `transport`); `None` when the edge has
/// its credential already. Blocking: it runs the request on its own thread, so it may be
/// called from inside or outside a tokio runtime.
pub fn bootstrap(
    control: &str,
    transport: &Transport,
    admin_secret: &str,
    node: &str,
    data_dir: &Path,
    token_file: &Path,
) -> Result<Option<PathBuf>, EnrollError> {
    if data_dir.join(CREDENTIAL_FILE).exists() {
        return Ok(None);
    }
    let local = |reason: String| EnrollError::Local {
        node: node.to_owned(),
        reason,
    };
    let client = Client::with_transport(control, Some(admin_secret.to_owned()), transport)
        .map_err(|source| EnrollError::Api {
            node: node.to_owned(),
            source: Box::new(source),
        })?;
    let req = IssueEnrollment {
        node: node.to_owned(),
        reason: "rampart up starts this edge".into(),
        ttl_ms: Some(BOOTSTRAP_TTL_MS),
    };
    let issued = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| local(format!("no runtime: {e}")))?;
            rt.block_on(client.enrollment_issue(&req))
                .map_err(|source| EnrollError::Api {
                    node: node.to_owned(),
                    source: Box::new(source),
                })
        })
        .join()
        .map_err(|_| local("the request thread failed".into()))?
    })?;
    rampart_host::file::write_private(token_file, issued.token.as_bytes())
        .map_err(|e| local(format!("{}: {e}", token_file.display())))?;
    Ok(Some(token_file.to_owned()))
}
