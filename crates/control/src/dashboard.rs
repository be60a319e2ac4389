//! The operators' dashboard, served by the control plane itself under `/ui/`: fleet, rollouts
//! with their gate numbers, artifacts with their diffs and contract checks, and the audit
//! log, kept live by polling the `/v1` API.
//!
//! # Layout
//! - this file: the routes, and the headers every dashboard answer carries;
//! - [`check`]: the one read `/v1` lacks, which consumers' contracts a stored artifact
//!   passes today;
//! - `dashboard/assets/`: the page, its script and its style sheet, embedded at build time
//!   (`include_str!`), so `cargo build` alone produces the whole dashboard: no Node step.
//!
//! # The decision that matters
//! **The server never puts data into HTML.** The page is a fixed shell; the script reads the
//! same public JSON as the CLI and builds the DOM with `textContent`, never `innerHTML`, and
//! the Content-Security-Policy allows only this origin's script and style (no inline code),
//! so a hostile value (a rollout reason, an edge's rejection message) stays text.

pub mod check;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::service::{Error, Service};
use crate::store::Store;

/// Where the dashboard lives; `/` redirects here.
pub const PREFIX: &str = "/ui/";
/// The page.
pub const PAGE: &str = "/ui/";
/// Its script.
pub const SCRIPT: &str = "/ui/dashboard.js";
/// Its style sheet.
pub const STYLE: &str = "/ui/dashboard.css";
/// `GET` which consumers' contracts a stored artifact passes (JSON, see [`check`]).
pub const CHECKS: &str = "/ui/checks/{digest}";

/// Only this origin's script, style and API; no inline code, no frames, no forms posted
/// anywhere (the script sends every write itself, with the bearer token).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("dashboard/assets/index.html");
const DASHBOARD_JS: &str = include_str!("dashboard/assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard/assets/dashboard.css");

type Shared<S> = State<Arc<Service<S>>>;

/// The dashboard's routes, merged into the API router (which adds the in-flight limit and
/// the state).
pub fn router<S: Store>() -> Router<Arc<Service<S>>> {
    Router::new()
        .route("/", get(to_page))
        .route("/ui", get(to_page))
        .route(PAGE, get(page))
        .route(SCRIPT, get(script))
        .route(STYLE, get(style))
        .route(CHECKS, get(checks::<S>))
        .layer(axum::middleware::map_response(harden))
}

/// Headers on every dashboard answer: the policy above, no MIME sniffing (a JSON answer is
/// never run as script), no framing, no referrer, and revalidation so a new binary's page
/// is seen at once.
async fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn to_page() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static(PAGE))],
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

async fn checks<S: Store>(
    State(svc): Shared<S>,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let raw = p
            .map(|Path(v)| v)
            .map_err(|e| Error::bad_request(format!("invalid path: {e}")))?;
        let digest = raw.parse().map_err(|_| {
            Error::bad_request(format!("{raw:?} is not a digest (sha256:<64 hex digits>)"))
        })?;
        check::against_contracts(&svc, digest).await
    }
    .await;
    match result {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_script_and_style_and_has_no_inline_code() {
        assert!(INDEX_HTML.contains(r#"<script src="/ui/dashboard.js" defer></script>"#));
        assert!(INDEX_HTML.contains(r#"href="/ui/dashboard.css""#));
        // One <script> tag, and it has a src: the CSP refuses inline code anyway, and an
        // inline block would break the page.
        assert_eq!(INDEX_HTML.matches("<script").count(), 1);
        for attr in [
            " onclick=",
            " onload=",
            " onerror=",
            " style=",
            "javascript:",
        ] {
            assert!(!INDEX_HTML.contains(attr), "inline {attr} in the page");
        }
    }

    #[test]
    fn the_script_never_writes_markup() {
        for sink in [
            ".innerHTML",
            ".outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!DASHBOARD_JS.contains(sink), "{sink} in dashboard.js");
        }
    }

    #[test]
    fn every_control_in_the_page_is_labelled() {
        // Each input, select and textarea has an id that a <label for> names.
        for tag in ["<input", "<select", "<textarea"] {
            for (at, _) in INDEX_HTML.match_indices(tag) {
                let rest = INDEX_HTML.get(at..).unwrap_or_default();
                let end = rest.find('>').unwrap_or(rest.len());
                let element = rest.get(..end).unwrap_or_default();
                let id = element
                    .split("id=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or_else(|| panic!("no id: {element}"));
                assert!(
                    INDEX_HTML.contains(&format!("for=\"{id}\"")),
                    "no <label for=\"{id}\">"
                );
            }
        }
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_no_framing() {
        assert!(CSP.contains("script-src 'self';"));
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
        assert!(CSP.contains("frame-ancestors 'none'"));
    }
}
