//! The one JSON error body of the API, and artifact issues as they travel.

use std::fmt;

use rampart_artifact::Issue;
use serde::{Deserialize, Serialize};

/// Every error answer: `{ "error": code, "message": "...", "issues": [...] }`.
///
/// `error` is an [`ErrorCode`] string (kept a string on the wire so an older client still
/// reads a newer server's codes); `issues` is there when an artifact was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// A stable code, one of [`ErrorCode`].
    pub error: String,
    /// One line for people.
    pub message: String,
    /// The artifact issues, when the error is about an artifact's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<IssueReport>>,
    /// On a `503` from a control-plane replica that follows: the leader's URL, where the
    /// client sends the request again ([`Client`](crate::Client) does, once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// Whether an error answer with this status refuses the request itself, so the input is at
/// fault and sending it again fails the same way: 422 (the artifact does not verify or breaks
/// a contract), 409 (a conflict, or a digest marked bad), 413 (too large). The CLI exits 1
/// on a refusal and the generator records a held run; any other failure (unreachable, 5xx,
/// 401/403, a body that is not an [`ApiError`]) is an error (exit 2, nothing recorded).
/// The one rule for both the async [`Client`](crate::Client) and the generator's publisher.
pub fn is_refusal(status: u16) -> bool {
    matches!(status, 409 | 413 | 422)
}

/// The codes of [`ApiError::error`], each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the request is malformed (JSON, a field out of bounds, an unknown command).
    BadRequest,
    /// 401: a write without a bearer token, or with one the control plane does not know.
    Unauthorized,
    /// 403: the token is known but its role may not do this.
    Forbidden,
    /// 404: no such artifact, node or rollout.
    NotFound,
    /// 404 on a heartbeat: the node must register (again) first.
    UnknownNode,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the request conflicts with the state (a rollout already running for this kind,
    /// a command that does not apply in the rollout's phase).
    Conflict,
    /// 409: the artifact's digest is marked bad (a rollout failed with it); publish a new one.
    MarkedBad,
    /// 413: the body is over its cap.
    PayloadTooLarge,
    /// 415: an artifact must be sent as bytes, other bodies as JSON.
    UnsupportedMediaType,
    /// 422: the artifact does not verify or breaks a registered contract; `issues` says how.
    Invalid,
    /// 500: the control plane failed (its store, usually); the request may be retried.
    Internal,
    /// 503: the control plane is shutting down or its store is unavailable.
    Unavailable,
}

/// An artifact [`Issue`] on the wire: its stable code, its message, and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueReport {
    /// [`Issue::code`].
    pub code: String,
    /// The issue's one-line message.
    pub message: String,
    /// The issue's fields (`count`, `limit`, `name`…), as the artifact crate serializes them.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

// === impl ApiError ===

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            error: code.as_str().to_owned(),
            message: message.into(),
            issues: None,
            leader: None,
        }
    }

    /// An error about an artifact's content, with every issue.
    pub fn with_issues(code: ErrorCode, message: impl Into<String>, issues: &[Issue]) -> Self {
        ApiError {
            issues: Some(issues.iter().map(IssueReport::from).collect()),
            ..ApiError::new(code, message)
        }
    }

    /// The code, when this side knows it.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.error)
    }

    /// The issue codes, in order (empty when there are none).
    pub fn issue_codes(&self) -> Vec<&str> {
        self.issues
            .iter()
            .flatten()
            .map(|i| i.code.as_str())
            .collect()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.message)?;
        for issue in self.issues.iter().flatten() {
            write!(f, "\n  {}: {}", issue.code, issue.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

// === impl ErrorCode ===

impl ErrorCode {
    /// Every code.
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::UnknownNode,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::MarkedBad,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Invalid,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnknownNode => "unknown_node",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::MarkedBad => "marked_bad",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// The HTTP status that carries this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound | ErrorCode::UnknownNode => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::MarkedBad => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Invalid => 422,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The code for a wire string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl IssueReport ===

impl From<&Issue> for IssueReport {
    fn from(issue: &Issue) -> Self {
        let mut detail = match serde_json::to_value(issue) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        detail.remove("code");
        IssueReport {
            code: issue.code().to_owned(),
            message: issue.to_string(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_the_statuses_of_the_input_at_fault() {
        for code in [
            ErrorCode::Invalid,
            ErrorCode::MarkedBad,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
        ] {
            assert!(is_refusal(code.status()), "{code}");
        }
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ] {
            assert!(!is_refusal(code.status()), "{code}");
        }
        assert!(!is_refusal(200) && !is_refusal(201) && !is_refusal(502));
    }

    #[test]
    fn codes_round_trip_and_have_error_statuses() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
            assert!((400..600).contains(&c.status()), "{c}");
        }
        assert_eq!(ErrorCode::parse("nope"), None);
        assert_eq!(ErrorCode::Invalid.status(), 422);
    }

    #[test]
    fn issues_travel_with_code_message_and_fields() {
        let issue = Issue::TooManyFeatures {
            count: 400,
            limit: 200,
        };
        let e = ApiError::with_issues(ErrorCode::Invalid, "refused", &[issue]);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["error"], "invalid");
        assert_eq!(json["issues"][0]["code"], "too_many_features");
        assert_eq!(json["issues"][0]["detail"]["count"], 400);
        assert!(json["issues"][0]["detail"].get("code").is_none());
        let back: ApiError = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.issue_codes(), vec!["too_many_features"]);
        assert_eq!(back.code(), Some(ErrorCode::Invalid));
    }

    #[test]
    fn an_error_without_issues_has_no_issues_field() {
        let json = serde_json::to_string(&ApiError::new(ErrorCode::NotFound, "no")).unwrap();
        assert_eq!(json, r#"{"error":"not_found","message":"no"}"#);
    }
}
