//! Reading an edge's admin API (`/status`) from the supervisor: one small GET, bounded.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Time for one admin request.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest admin answer read.
pub const MAX_ADMIN_ANSWER: usize = 4 * 1024 * 1024;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No answer in time, refused, or reset.
    #[error("admin {addr}{path}: {detail}")]
    Request {
        /// The admin address.
        addr: SocketAddr,
        /// The path.
        path: String,
        /// What happened.
        detail: String,
    },
}

/// `GET http://addr{path}` as JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value, StatusError> {
    let body = get(addr, path).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::Request {
        addr,
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// `GET http://addr{path}` as text (`/metrics`).
pub async fn get_text(addr: SocketAddr, path: &str) -> Result<String, StatusError> {
    let body = get(addr, path).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn get(addr: SocketAddr, path: &str) -> Result<Bytes, StatusError> {
    let fail = |detail: String| StatusError::Request {
        addr,
        path: path.to_owned(),
        detail,
    };
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
    let fetch = async {
        let response = client.get(uri).await.map_err(|e| fail(e.to_string()))?;
        let body = Limited::new(response.into_body(), MAX_ADMIN_ANSWER)
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        Ok(body)
    };
    tokio::time::timeout(ADMIN_TIMEOUT, fetch)
        .await
        .map_err(|_| fail(format!("no answer within {ADMIN_TIMEOUT:?}")))?
}
