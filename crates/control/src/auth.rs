//! Bearer tokens: named, with a role, compared in constant time.
//!
//! A token file holds one token per line, `NAME ROLE SECRET` (roles: `admin`, `publisher`,
//! `edge`), or a bare `SECRET` for a single admin token named `operator`; blank lines and
//! `#` comments are skipped. The name is what the audit log records as *who*.
//!
//! Nodes do not use this file: each node has its own credential, made at enrollment
//! ([`crate::enroll`]), and speaks only for itself ([`Caller::speaks_for`]). The `edge` role
//! is still read, so an old token file keeps loading, but it may no longer do anything: a
//! shared token that spoke for every node let one leaked secret forge any node's NACK.

use std::fmt;

use rampart_api::limits::MAX_IDENT_LEN;
use rampart_artifact::Digest;
use subtle::ConstantTimeEq;

/// The shortest secret accepted: 128 bits as hex. A short token is an operator error worth
/// refusing at start rather than a weak lock on the fleet.
pub const MIN_SECRET_LEN: usize = 32;

/// The most tokens a control plane loads.
pub const MAX_TOKENS: usize = 1_024;

/// What a token may do. Reads need no token at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The old shared edge token: read from token files, allowed nothing (nodes enroll).
    Edge,
    /// One node, by the credential it got at enrollment: register, heartbeat, contract, for
    /// its own node id only (the caller's name).
    Node,
    /// A generator: publish artifacts.
    Publisher,
    /// An operator: everything.
    Admin,
}

/// The writes, each allowed to some roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish an artifact.
    Publish,
    /// Register a node.
    Register,
    /// Send a heartbeat.
    Heartbeat,
    /// Start or command a rollout.
    Rollout,
    /// Set a kill switch.
    KillSwitch,
    /// Issue a bootstrap token for a node.
    Enroll,
    /// Remove a node.
    RemoveNode,
    /// Approve another admin's request.
    Approve,
}

/// A known token.
#[derive(Clone)]
pub struct Token {
    name: String,
    role: Role,
    /// sha256 of the secret: every comparison is over 32 bytes, so not even the secret's
    /// length leaks through timing.
    hash: Digest,
}

/// Every known token.
#[derive(Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Why a request is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `Authorization: Bearer` header, or a token nobody knows (401).
    #[error("a valid bearer token is required for writes")]
    Unauthenticated,
    /// A known token whose role may not do this (403).
    #[error("token {name:?} ({role}) may not {action}{hint}", hint = hint(*role, *action))]
    Forbidden {
        /// The token's name.
        name: String,
        /// Its role.
        role: Role,
        /// What it tried.
        action: Action,
    },
    /// A node's credential used for another node (403).
    #[error("the credential of node {caller:?} may not speak for node {node:?}")]
    OtherNode {
        /// Whose credential it is.
        caller: String,
        /// The node it tried to speak for.
        node: String,
    },
}

fn hint(role: Role, action: Action) -> &'static str {
    match (role, action) {
        (Role::Edge, Action::Register | Action::Heartbeat) => {
            " (the shared edge token no longer speaks for nodes: enroll each node with a bootstrap token, see docs/control-plane.md)"
        }
        _ => "",
    }
}

/// A token file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A line is neither `NAME ROLE SECRET` nor a bare secret.
    #[error("line {line}: expected `NAME ROLE SECRET` or a bare secret")]
    Format {
        /// 1-based line.
        line: usize,
    },
    /// An unknown role.
    #[error("line {line}: unknown role {role:?} (admin, publisher, edge)")]
    Role {
        /// 1-based line.
        line: usize,
        /// What was found.
        role: String,
    },
    /// A name that is not an identifier.
    #[error("line {line}: {problem}")]
    Name {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A secret under [`MIN_SECRET_LEN`] bytes.
    #[error("line {line}: the secret is shorter than {MIN_SECRET_LEN} bytes")]
    Short {
        /// 1-based line.
        line: usize,
    },
    /// Two tokens with one name, or one secret twice.
    #[error("line {line}: name or secret already used")]
    Duplicate {
        /// 1-based line.
        line: usize,
    },
    /// More than [`MAX_TOKENS`].
    #[error("more than {MAX_TOKENS} tokens")]
    TooMany,
}

// === impl Role ===

impl Role {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "publisher" => Some(Role::Publisher),
            "edge" => Some(Role::Edge),
            _ => None,
        }
    }

    /// Whether this role may do `action`.
    pub fn allows(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Publisher => action == Action::Publish,
            Role::Edge => false,
            Role::Node => matches!(action, Action::Register | Action::Heartbeat),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Edge => "edge",
            Role::Node => "node",
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Publish => "publish",
            Action::Register => "register",
            Action::Heartbeat => "heartbeat",
            Action::Rollout => "drive rollouts",
            Action::KillSwitch => "set kill switches",
            Action::Enroll => "enroll nodes",
            Action::RemoveNode => "remove nodes",
            Action::Approve => "approve requests",
        })
    }
}

// === impl Caller ===

impl Caller {
    /// Whether this caller may speak for `node`: only the node's own credential may.
    pub fn speaks_for(&self, node: &str) -> Result<(), Denied> {
        if self.role == Role::Node && self.name == node {
            Ok(())
        } else if self.role == Role::Node {
            Err(Denied::OtherNode {
                caller: self.name.clone(),
                node: node.to_owned(),
            })
        } else {
            Err(Denied::Forbidden {
                name: self.name.clone(),
                role: self.role,
                action: Action::Heartbeat,
            })
        }
    }
}

// === impl Token ===

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

// === impl Tokens ===

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.tokens).finish()
    }
}

impl Tokens {
    /// Reads a token file's text and adds its tokens.
    pub fn add_file(&mut self, text: &str) -> Result<(), TokenError> {
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = raw.split_whitespace().collect();
            match fields.as_slice() {
                [secret] => self.add(line, "operator", Role::Admin, secret)?,
                [name, role, secret] => {
                    let role = Role::parse(role).ok_or_else(|| TokenError::Role {
                        line,
                        role: (*role).to_owned(),
                    })?;
                    self.add(line, name, role, secret)?;
                }
                _ => return Err(TokenError::Format { line }),
            }
        }
        Ok(())
    }

    /// Adds one admin token (from an environment variable).
    pub fn add_admin(&mut self, name: &str, secret: &str) -> Result<(), TokenError> {
        self.add(1, name, Role::Admin, secret.trim())
    }

    fn add(&mut self, line: usize, name: &str, role: Role, secret: &str) -> Result<(), TokenError> {
        rampart_api::check_ident("name", name, MAX_IDENT_LEN).map_err(|e| TokenError::Name {
            line,
            problem: e.to_string(),
        })?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::Short { line });
        }
        if self.tokens.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let hash = Digest::of(secret.as_bytes());
        if self.tokens.iter().any(|t| t.name == name || t.hash == hash) {
            return Err(TokenError::Duplicate { line });
        }
        self.tokens.push(Token {
            name: name.to_owned(),
            role,
            hash,
        });
        Ok(())
    }

    /// How many tokens are known.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is known (then every write is refused).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Who holds `secret`, compared in constant time against every token (no early exit:
    /// the time taken does not say which token, or how much of one, matched).
    pub fn identify(&self, secret: &str) -> Option<Caller> {
        let presented = Digest::of(secret.as_bytes());
        let mut found: Option<&Token> = None;
        for token in &self.tokens {
            let eq: bool = token.hash.as_bytes().ct_eq(presented.as_bytes()).into();
            if eq {
                found = Some(token);
            }
        }
        found.map(|t| Caller {
            name: t.name.clone(),
            role: t.role,
        })
    }

    /// Checks an `Authorization` header value for `action`.
    pub fn authorize(&self, header: Option<&str>, action: Action) -> Result<Caller, Denied> {
        let secret = bearer(header).ok_or(Denied::Unauthenticated)?;
        let caller = self.identify(secret).ok_or(Denied::Unauthenticated)?;
        permit(caller, action)
    }
}

/// The secret of an `Authorization: Bearer SECRET` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    header
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        })
        .filter(|s| !s.is_empty())
}

/// `caller`, when its role may do `action`.
pub fn permit(caller: Caller, action: Action) -> Result<Caller, Denied> {
    if caller.role.allows(action) {
        Ok(caller)
    } else {
        Err(Denied::Forbidden {
            name: caller.name,
            role: caller.role,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";
    const C: &str = "00000000000000000000000000000000";

    fn tokens() -> Tokens {
        let mut t = Tokens::default();
        t.add_file(&format!(
            "# operators\nalice admin {A}\n\ngen publisher {B}\nedge-fra edge {C}\n"
        ))
        .unwrap();
        t
    }

    #[test]
    fn each_role_may_do_its_own_writes() {
        let t = tokens();
        let bearer = |s: &str| format!("Bearer {s}");
        assert_eq!(
            t.authorize(Some(&bearer(A)), Action::Rollout).unwrap().name,
            "alice"
        );
        assert!(t.authorize(Some(&bearer(B)), Action::Publish).is_ok());
        assert!(matches!(
            t.authorize(Some(&bearer(B)), Action::Rollout),
            Err(Denied::Forbidden { .. })
        ));
        let shared = t
            .authorize(Some(&bearer(C)), Action::Heartbeat)
            .unwrap_err();
        assert!(shared.to_string().contains("enroll"), "{shared}");
        assert!(matches!(
            t.authorize(Some(&bearer(C)), Action::Publish),
            Err(Denied::Forbidden { .. })
        ));
    }

    #[test]
    fn a_missing_malformed_or_unknown_token_is_unauthenticated() {
        let t = tokens();
        for h in [
            None,
            Some("Basic abc"),
            Some(A),
            Some("Bearer 0123456789abcdef0123456789abcdeX"),
            Some("Bearer "),
        ] {
            assert_eq!(
                t.authorize(h, Action::Publish),
                Err(Denied::Unauthenticated),
                "{h:?}"
            );
        }
        assert!(
            t.authorize(Some(&format!("bearer {A}")), Action::Publish)
                .is_ok()
        );
    }

    #[test]
    fn a_node_speaks_for_itself_only() {
        let node = Caller {
            name: "fra-1".into(),
            role: Role::Node,
        };
        assert!(node.speaks_for("fra-1").is_ok());
        assert!(matches!(
            node.speaks_for("fra-2"),
            Err(Denied::OtherNode { .. })
        ));
        let admin = Caller {
            name: "alice".into(),
            role: Role::Admin,
        };
        assert!(matches!(
            admin.speaks_for("fra-1"),
            Err(Denied::Forbidden { .. })
        ));
        assert!(Role::Node.allows(Action::Heartbeat) && !Role::Node.allows(Action::Publish));
    }

    #[test]
    fn a_bare_secret_is_the_operator() {
        let mut t = Tokens::default();
        t.add_file(A).unwrap();
        let c = t.identify(A).unwrap();
        assert_eq!((c.name.as_str(), c.role), ("operator", Role::Admin));
    }

    #[test]
    fn bad_token_files_say_which_line() {
        let mut t = Tokens::default();
        assert_eq!(t.add_file("a b"), Err(TokenError::Format { line: 1 }));
        assert_eq!(
            t.add_file(&format!("\nx root {A}")),
            Err(TokenError::Role {
                line: 2,
                role: "root".into()
            })
        );
        assert_eq!(t.add_file("short"), Err(TokenError::Short { line: 1 }));
        assert!(matches!(
            t.add_file(&format!("a/b admin {A}")),
            Err(TokenError::Name { line: 1, .. })
        ));
        assert_eq!(
            t.add_file(&format!("x admin {A}\ny edge {A}")),
            Err(TokenError::Duplicate { line: 2 })
        );
    }

    #[test]
    fn debug_never_shows_a_secret_or_its_hash() {
        let t = tokens();
        let s = format!("{t:?}");
        assert!(s.contains("alice") && !s.contains(A));
        assert!(!s.contains(&Digest::of(A.as_bytes()).to_string()));
    }
}
