//! What an apply did: an outcome, not a bool.

use rampart_artifact::{Digest, Issue};
use serde::Serialize;

/// The result of offering a file to the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// The file is now serving.
    Applied {
        /// Its version.
        version: u64,
        /// Its digest.
        digest: Digest,
    },
    /// The file is the one already serving (same digest); nothing changed.
    Unchanged {
        /// The version serving.
        version: u64,
        /// Its digest.
        digest: Digest,
    },
    /// The file was refused; `kept` is still serving.
    Rejected {
        /// The version and digest still serving, if any.
        kept: Option<(u64, Digest)>,
        /// Why.
        rejection: Rejection,
    },
}

/// Why a file was refused. Each kind has a stable [`code`](Rejection::code) for metrics.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rejection {
    /// Too large, not a feature file, badly signed, or outside the contract: every issue
    /// found, as `rampart_artifact::check` reports them.
    #[error("invalid feature file: {}", first_issue(.0))]
    Invalid(Vec<Issue>),
    /// Valid, but the bot module could not build a model from it (or its compiler panicked).
    #[error("does not compile: {0}")]
    Compile(String),
    /// The crash-loop sentinel poisoned this version; a higher one is needed.
    #[error("version {version} is poisoned: the process kept dying after activating it")]
    Poisoned {
        /// The version.
        version: u64,
    },
    /// An operator pinned a version (break glass); new files wait for `unpin`.
    #[error("version {pinned} is pinned by an operator; unpin to apply files")]
    Pinned {
        /// The pinned version.
        pinned: u64,
    },
    /// The file could not be read (not found, permission), or a break-glass source is
    /// missing.
    #[error("cannot read the file: {0}")]
    Io(String),
}

// === impl ApplyOutcome ===

impl ApplyOutcome {
    /// `applied`, `unchanged` or `rejected`.
    pub fn code(&self) -> &'static str {
        match self {
            ApplyOutcome::Applied { .. } => "applied",
            ApplyOutcome::Unchanged { .. } => "unchanged",
            ApplyOutcome::Rejected { .. } => "rejected",
        }
    }

    /// The rejection, when rejected.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            ApplyOutcome::Rejected { rejection, .. } => Some(rejection),
            _ => None,
        }
    }

    /// The version serving after this outcome.
    pub fn serving(&self) -> Option<(u64, Digest)> {
        match self {
            ApplyOutcome::Applied { version, digest }
            | ApplyOutcome::Unchanged { version, digest } => Some((*version, *digest)),
            ApplyOutcome::Rejected { kept, .. } => *kept,
        }
    }
}

// === impl Rejection ===

impl Rejection {
    /// Every rejection code, in a fixed order (metrics pre-register them).
    pub const CODES: &'static [&'static str] = &["invalid", "compile", "poisoned", "pinned", "io"];

    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "invalid",
            Rejection::Compile(_) => "compile",
            Rejection::Poisoned { .. } => "poisoned",
            Rejection::Pinned { .. } => "pinned",
            Rejection::Io(_) => "io",
        }
    }

    /// The artifact issues, for `Invalid`; empty otherwise.
    pub fn issues(&self) -> &[Issue] {
        match self {
            Rejection::Invalid(issues) => issues,
            _ => &[],
        }
    }

    /// The code of the rejection and of its first issue (`invalid:too_many_features`): the
    /// kind a flood of rejections is counted under in logs.
    pub fn kind(&self) -> String {
        match self.issues().first() {
            Some(issue) => format!("{}:{}", self.code(), issue.code()),
            None => self.code().to_owned(),
        }
    }
}

fn first_issue(issues: &[Issue]) -> String {
    match issues {
        [] => "no issue reported".to_owned(),
        [one] => format!("{}: {one}", one.code()),
        [first, rest @ ..] => format!("{}: {first} (and {} more)", first.code(), rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_and_kinds_name_the_first_issue() {
        let r = Rejection::Invalid(vec![
            Issue::TooManyFeatures {
                count: 240,
                limit: 200,
            },
            Issue::Empty,
        ]);
        assert_eq!(r.kind(), "invalid:too_many_features");
        assert!(r.to_string().contains("240 features"), "{r}");
        assert!(r.to_string().contains("and 1 more"), "{r}");
        for r in [
            r,
            Rejection::Compile(String::new()),
            Rejection::Poisoned { version: 1 },
            Rejection::Pinned { pinned: 1 },
            Rejection::Io(String::new()),
        ] {
            assert!(Rejection::CODES.contains(&r.code()), "{}", r.code());
        }
    }

    #[test]
    fn serializes_with_its_code_and_issues() {
        let v = serde_json::to_value(ApplyOutcome::Rejected {
            kept: None,
            rejection: Rejection::Invalid(vec![Issue::Empty]),
        })
        .unwrap();
        assert_eq!(v["outcome"], "rejected");
        assert_eq!(v["rejection"]["code"], "invalid");
        assert_eq!(v["rejection"]["detail"][0]["code"], "empty");
    }
}
