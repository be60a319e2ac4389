//! `--publish URL`: a signed file goes to the control plane (`POST /v1/artifacts` with the
//! publisher's bearer token), which checks it again against every registered edge contract.
//!
//! Blocking (ureq), like the ClickHouse source: a generator run is one short sequential job.
//! The answer decides what the state dir records: only a file the control plane **accepted**
//! becomes the published version; a refusal ([`rampart_api::error::is_refusal`], the same rule
//! as the CLI's) is a held run with the control plane's issues; an unreachable control plane
//! is an error and nothing is recorded.

use std::fmt;
use std::io::Read as _;
use std::time::Duration;

use rampart_api::{ApiError, PublishResult};

/// Time to connect to the control plane.
pub const PUBLISH_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time for the whole publish (the control plane verifies and fsyncs before it answers; the
/// largest artifact is about 85 MiB).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest answer read: a publish result or an error with every issue.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Where and as whom to publish.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// The control plane's base URL (`http://127.0.0.1:7700`).
    pub url: String,
    /// The bearer token of a `publisher` (or `admin`).
    pub token: Option<String>,
}

/// The control plane took the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// 201: stored now; 200: the same digest was already stored.
    pub status: u16,
    /// Its answer, when it could be read.
    pub result: Option<PublishResult>,
}

/// Why a publish did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The control plane refused the file itself (422 invalid, 409 marked bad, 413 too
    /// large): the input is at fault, the run is held (exit 1).
    #[error("the control plane refused it ({status}): {error}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its error body, with every issue.
        error: ApiError,
    },
    /// Unreachable, a timeout, a 5xx, a bad token, or an answer that is not the API's: the
    /// run failed (exit 2), nothing is recorded as published.
    #[error("cannot publish to {url}: {detail}")]
    Failed {
        /// The URL.
        url: String,
        /// What happened.
        detail: String,
    },
}

// === impl Target ===

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Target {
    /// Posts the signed envelope's bytes and reads the answer.
    pub fn publish(&self, signed: &[u8]) -> Result<Accepted, PublishError> {
        let failed = |detail: String| PublishError::Failed {
            url: self.url.clone(),
            detail,
        };
        let endpoint = format!(
            "{}{}",
            self.url.trim_end_matches('/'),
            rampart_api::routes::ARTIFACTS
        );
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(PUBLISH_CONNECT_TIMEOUT)
            .timeout(PUBLISH_TIMEOUT)
            .redirects(0)
            .build();
        let mut request = agent
            .post(&endpoint)
            .set("Content-Type", "application/octet-stream");
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        match request.send_bytes(signed) {
            Ok(response) => {
                let status = response.status();
                let body = read_body(response).map_err(failed)?;
                Ok(Accepted {
                    status,
                    result: serde_json::from_slice(&body).ok(),
                })
            }
            Err(ureq::Error::Status(status, response)) => {
                let body = read_body(response).unwrap_or_default();
                match serde_json::from_slice::<ApiError>(&body) {
                    Ok(error) if rampart_api::error::is_refusal(status) => {
                        Err(PublishError::Refused { status, error })
                    }
                    Ok(error) => Err(failed(format!("{status}: {error}"))),
                    Err(_) => Err(failed(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(body.get(..200).unwrap_or(&body))
                    ))),
                }
            }
            Err(ureq::Error::Transport(t)) => Err(failed(t.to_string())),
        }
    }
}

fn read_body(response: ureq::Response) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    response
        .into_reader()
        .take(MAX_ANSWER_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading the answer: {e}"))?;
    if buf.len() > MAX_ANSWER_BYTES {
        return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug() {
        let t = Target {
            url: "http://127.0.0.1:1".into(),
            token: Some("s3cret".into()),
        };
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn an_unreachable_control_plane_is_a_failure_not_a_refusal() {
        // Port 1 on loopback: nothing listens there.
        let t = Target {
            url: "http://127.0.0.1:1/".into(),
            token: None,
        };
        let e = t.publish(b"{}").unwrap_err();
        assert!(matches!(e, PublishError::Failed { .. }), "{e}");
    }
}
