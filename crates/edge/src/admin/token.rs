//! The admin API's credential: a bearer token in a file only the edge's user can read.
//!
//! Reading `/status` and `/metrics` needs nothing; every write (kill switch, break glass,
//! safe mode) needs `Authorization: Bearer TOKEN`. The token is `--admin-token-file`, or
//! `DATA_DIR/admin.token`, made at the first start (256 random bits, mode 0600) and kept:
//! whoever may read the edge's data dir may steer it, nobody else, and no web page.

use std::path::{Path, PathBuf};

use http::{HeaderMap, header};
use rampart_artifact::Digest;
use rampart_host::file::{self, read_text, write_private};
use rampart_host::secret::{TOKEN_BYTES, random_hex};

/// The token file's name in the data dir when no `--admin-token-file` is given.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A token file's largest size.
pub const MAX_TOKEN_FILE_BYTES: usize = 4 * 1024;

/// Shortest token accepted from a given file: a guessable token is no credential.
pub const MIN_TOKEN_LEN: usize = 32;

/// The credential writes must present.
#[derive(Clone)]
pub struct AdminToken {
    /// Compared by digest, so comparing leaks nothing about the secret's bytes.
    digest: Digest,
    path: PathBuf,
}

/// Why the admin token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or made.
    #[error("admin token file: {0}")]
    File(#[from] file::Error),
    /// No randomness.
    #[error("admin token: no randomness: {0}")]
    Random(std::io::Error),
    /// The file holds no token, or a short one.
    #[error(
        "admin token file {}: needs one line holding a token of at least {MIN_TOKEN_LEN} characters",
        .0.display()
    )]
    Weak(PathBuf),
}

// === impl AdminToken ===

impl AdminToken {
    /// The token of `given`, or of `DATA_DIR/admin.token`, made there when missing.
    pub fn load_or_create(given: Option<&Path>, data_dir: &Path) -> Result<Self, TokenError> {
        let path = given.map_or_else(|| data_dir.join(ADMIN_TOKEN_FILE), Path::to_path_buf);
        if given.is_none() && !path.exists() {
            let secret = random_hex(TOKEN_BYTES).map_err(TokenError::Random)?;
            write_private(&path, format!("{secret}\n").as_bytes())?;
        }
        let text = read_text(&path, MAX_TOKEN_FILE_BYTES)?;
        let secret = rampart_api::token::secret(&text)
            .filter(|s| s.len() >= MIN_TOKEN_LEN)
            .ok_or_else(|| TokenError::Weak(path.clone()))?;
        Ok(AdminToken {
            digest: Digest::of(secret.as_bytes()),
            path,
        })
    }

    /// Whether `headers` carry this token as `Authorization: Bearer TOKEN`.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| Digest::of(t.trim().as_bytes()) == self.digest)
    }

    /// Where the token is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_token_is_made_once_in_the_data_dir_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = AdminToken::load_or_create(None, dir.path()).unwrap();
        let second = AdminToken::load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.digest, second.digest);
        let secret = std::fs::read_to_string(dir.path().join(ADMIN_TOKEN_FILE)).unwrap();
        assert!(first.allows(&bearer(secret.trim())));
        assert!(!first.allows(&bearer("0".repeat(64).as_str())));
        assert!(!first.allows(&HeaderMap::new()));
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            format!("Basic {}", secret.trim()).parse().unwrap(),
        );
        assert!(!first.allows(&basic));
    }

    #[test]
    fn a_given_file_must_exist_and_hold_a_strong_token() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            AdminToken::load_or_create(Some(&missing), dir.path()),
            Err(TokenError::File(_))
        ));
        let weak = dir.path().join("weak");
        std::fs::write(&weak, "hunter2\n").unwrap();
        assert!(matches!(
            AdminToken::load_or_create(Some(&weak), dir.path()),
            Err(TokenError::Weak(_))
        ));
        let good = dir.path().join("good");
        std::fs::write(&good, format!("# ops\n{}\n", "a".repeat(40))).unwrap();
        let t = AdminToken::load_or_create(Some(&good), dir.path()).unwrap();
        assert!(t.allows(&bearer(&"a".repeat(40))));
        assert!(
            !dir.path().join(ADMIN_TOKEN_FILE).exists(),
            "a given file is not copied"
        );
    }
}
