//! `--publish URL`: a signed file goes to the control plane (`POST /v1/artifacts` with the
//! publisher's bearer token), which checks it again against every registered edge contract.
//!
//! Through [`rampart_api::Client`] (its own small runtime, on a thread of its own, so a
//! caller inside a runtime is fine): the same trust rule as every client (a CA file instead
//! of the web PKI, `http://` only when allowed and to loopback) and the same rule for what is
//! a refusal.
//! The answer decides what the state dir records: only a file the control plane **accepted**
//! becomes the published version; a refusal ([`rampart_api::error::is_refusal`], the same rule
//! as the CLI's) is a held run with the control plane's issues; an unreachable control plane
//! is an error and nothing is recorded.

use std::fmt;

use rampart_api::{ApiError, Client, ClientError, PublishResult, Transport};

/// Where and as whom to publish.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// The control plane's base URL (`http://127.0.0.1:7700`).
    pub url: String,
    /// The bearer token of a `publisher` (or `admin`).
    pub token: Option<String>,
    /// Whom to trust (`--ca`), and whether plain HTTP to loopback is allowed.
    pub transport: Transport,
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
        let client = Client::with_transport(&self.url, self.token.clone(), &self.transport)
            .map_err(|e| failed(e.to_string()))?;
        let body = signed.to_vec();
        let answer = std::thread::scope(|s| {
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
                Ok::<_, String>(rt.block_on(client.publish(body)))
            })
            .join()
        })
        .map_err(|_| failed("the publishing thread panicked".into()))?
        .map_err(failed)?;
        match answer {
            Ok(result) => Ok(Accepted {
                status: if result.created { 201 } else { 200 },
                result: Some(result),
            }),
            Err(ClientError::Api { status, error }) if rampart_api::error::is_refusal(status) => {
                Err(PublishError::Refused { status, error })
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug() {
        let t = Target {
            url: "http://127.0.0.1:1".into(),
            token: Some("s3cret".into()),
            transport: Transport::default(),
        };
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn an_unreachable_control_plane_is_a_failure_not_a_refusal() {
        // Port 1 on loopback: nothing listens there.
        let t = Target {
            url: "http://127.0.0.1:1/".into(),
            token: None,
            transport: Transport {
                ca_pem: None,
                plain_http: true,
            },
        };
        let e = t.publish(b"{}").unwrap_err();
        assert!(matches!(e, PublishError::Failed { .. }), "{e}");
    }

    #[test]
    fn plain_http_needs_the_flag_and_loopback_and_sends_nothing() {
        let mut t = Target {
            url: "http://127.0.0.1:1/".into(),
            token: Some("s3cret".into()),
            transport: Transport::default(),
        };
        let e = t.publish(b"{}").unwrap_err();
        assert!(e.to_string().contains("plain HTTP"), "{e}");
        t.url = "http://10.0.0.1:7700".into();
        t.transport.plain_http = true;
        let e = t.publish(b"{}").unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
