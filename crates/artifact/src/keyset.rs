//! The root of trust, TUF style: a **root** document names the root keys and how many of
//! them (`threshold`, k of n) must sign; a **keyset** document, signed by k root keys, names
//! the keys of each role: `generator` (feature files), `director` (the control plane's
//! orders), `operator` (people, for the big switches). Both are DSSE envelopes
//! ([`Envelope`]) with their own payload types, so a signed feature file can never pass for
//! a keyset, nor the other way round.
//!
//! ```json
//! {"schema":"rampart.root/v1","version":1,"expires":"2027-12-05T00:00:00Z",
//!  "threshold":2,"keys":["-----BEGIN PUBLIC KEY-----\n…"]}
//! {"schema":"rampart.keyset/v1","version":3,"expires":"2027-03-01T00:00:00Z",
//!  "generator":["-----BEGIN PUBLIC KEY-----\n…"],"director":[…],"operator":[…]}
//! ```
//!
//! Verification is pure (the time is an argument) and refuses, with a typed
//! [`TrustError`]: a signature count below the threshold, a signature whose key id the root
//! does not name, a signature that does not verify, an expired document, and a version lower
//! than the one already trusted (rollback; the same version with other content too). A new
//! root ([`Root::rotate`]) must be signed by k of the old root's keys **and** by its own
//! threshold of its own keys, and carry a higher version.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::document::Digest;
use crate::envelope::{Envelope, EnvelopeError};
use crate::keys::{KeyId, Keyring, PublicKey, SecretKey};

/// The DSSE payload type of a root document.
pub const ROOT_PAYLOAD_TYPE: &str = "application/vnd.rampart.root.v1+json";

/// The DSSE payload type of a keyset document.
pub const KEYSET_PAYLOAD_TYPE: &str = "application/vnd.rampart.keyset.v1+json";

/// The `schema` of a root document.
pub const ROOT_SCHEMA: &str = "rampart.root/v1";

/// The `schema` of a keyset document.
pub const KEYSET_SCHEMA: &str = "rampart.keyset/v1";

/// The largest root or keyset file read (a few dozen PEM keys fit many times over).
pub const MAX_TRUST_FILE_BYTES: usize = 64 * 1024;

/// Most root keys a root names.
pub const MAX_ROOT_KEYS: usize = 8;

/// Most keys one role of a keyset names (rotation needs two at a time; room for a few more).
pub const MAX_ROLE_KEYS: usize = 8;

/// Most signatures on a root or keyset envelope: a root rotation carries k old and k new.
pub const MAX_TRUST_SIGNATURES: usize = 2 * MAX_ROOT_KEYS;

/// A root: the trust anchor. Built only by [`Root::trust`] or [`Root::rotate`].
#[derive(Debug, Clone)]
pub struct Root {
    version: u64,
    expires_ms: u64,
    expires: String,
    threshold: usize,
    keys: Keyring,
    digest: Digest,
}

/// A verified keyset. Built only by [`Keyset::verify`].
#[derive(Debug, Clone)]
pub struct Keyset {
    version: u64,
    expires_ms: u64,
    expires: String,
    generator: Keyring,
    director: Keyring,
    operator: Keyring,
    digest: Digest,
}

/// What a root document says, before signing ([`RootSpec::sign`]).
#[derive(Debug, Clone)]
pub struct RootSpec {
    /// From 1; a rotation raises it.
    pub version: u64,
    /// RFC 3339; after it the root is refused.
    pub expires: String,
    /// How many root keys must sign a keyset (k of n).
    pub threshold: usize,
    /// The root keys.
    pub keys: Vec<PublicKey>,
}

/// What a keyset document says, before signing ([`KeysetSpec::sign`]).
#[derive(Debug, Clone)]
pub struct KeysetSpec {
    /// From 1; every new keyset raises it.
    pub version: u64,
    /// RFC 3339; after it the keyset is refused (and artifacts and orders with it).
    pub expires: String,
    /// Keys whose feature files are accepted.
    pub generator: Vec<PublicKey>,
    /// Keys whose orders (heartbeat answers) edges accept.
    pub director: Vec<PublicKey>,
    /// Keys of operators (two-person actions).
    pub operator: Vec<PublicKey>,
}

/// Why a root or keyset was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Not an envelope of the right size and shape.
    #[error("{what}: {source}")]
    Envelope {
        /// `root` or `keyset`.
        what: &'static str,
        /// Why.
        source: EnvelopeError,
    },
    /// An envelope of another payload type (a feature file given as a keyset…).
    #[error("{what}: payload type {found:?}, expected {expected:?}")]
    PayloadType {
        /// `root` or `keyset`.
        what: &'static str,
        /// The one expected.
        expected: &'static str,
        /// The one found.
        found: String,
    },
    /// The payload is not a document of this kind.
    #[error("{what}: {reason}")]
    Malformed {
        /// `root` or `keyset`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A signature by a key the root does not name.
    #[error("{what}: signed by unknown key id(s) {keyids}")]
    UnknownKey {
        /// `root` or `keyset`.
        what: &'static str,
        /// The ids, quoted.
        keyids: String,
    },
    /// A signature by a named key that does not verify (tampered or forged).
    #[error("{what}: the signature of key {keyid} does not verify")]
    BadSignature {
        /// `root` or `keyset`.
        what: &'static str,
        /// The key.
        keyid: String,
    },
    /// Fewer valid signatures than the threshold.
    #[error("{what}: {valid} valid signature(s) by {by}, {threshold} needed")]
    BelowThreshold {
        /// `root` or `keyset`.
        what: &'static str,
        /// Whose keys: `the root`, `the old root`, `the new root`.
        by: &'static str,
        /// Valid distinct signatures.
        valid: usize,
        /// Needed.
        threshold: usize,
    },
    /// Past its expiry.
    #[error("{what} version {version} expired at {expires}")]
    Expired {
        /// `root` or `keyset`.
        what: &'static str,
        /// Its version.
        version: u64,
        /// When.
        expires: String,
    },
    /// A version lower than the one trusted, or the same version with other content.
    #[error("{what} version {version} would roll back version {trusted} already trusted")]
    Rollback {
        /// `root` or `keyset`.
        what: &'static str,
        /// The version offered.
        version: u64,
        /// The version trusted.
        trusted: u64,
    },
}

/// The root document as it is written and read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootDoc {
    schema: String,
    version: u64,
    expires: String,
    threshold: usize,
    keys: Vec<String>,
}

/// The keyset document as it is written and read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysetDoc {
    schema: String,
    version: u64,
    expires: String,
    generator: Vec<String>,
    director: Vec<String>,
    #[serde(default)]
    operator: Vec<String>,
}

// === impl RootSpec ===

impl RootSpec {
    /// The signed root: `signers` should be at least `threshold` of its own keys (a
    /// rotation also needs k of the old root's keys: pass them too).
    pub fn sign(&self, signers: &[&SecretKey]) -> Result<Envelope, TrustError> {
        let doc = RootDoc {
            schema: ROOT_SCHEMA.to_owned(),
            version: self.version,
            expires: self.expires.clone(),
            threshold: self.threshold,
            keys: pems(&self.keys, "root")?,
        };
        sign_doc(ROOT_PAYLOAD_TYPE, &doc, signers, "root")
    }
}

// === impl KeysetSpec ===

impl KeysetSpec {
    /// The signed keyset: `signers` should be at least the root's threshold of root keys.
    pub fn sign(&self, signers: &[&SecretKey]) -> Result<Envelope, TrustError> {
        let doc = KeysetDoc {
            schema: KEYSET_SCHEMA.to_owned(),
            version: self.version,
            expires: self.expires.clone(),
            generator: pems(&self.generator, "keyset")?,
            director: pems(&self.director, "keyset")?,
            operator: pems(&self.operator, "keyset")?,
        };
        sign_doc(KEYSET_PAYLOAD_TYPE, &doc, signers, "keyset")
    }
}

// === impl Root ===

impl Root {
    /// Trusts a root file as the anchor (given by the operator, `--root FILE`): it must be
    /// well formed, unexpired, and signed by its own threshold of its own keys, with no
    /// other signature.
    pub fn trust(bytes: &[u8], now_ms: u64) -> Result<Self, TrustError> {
        let envelope = open(bytes, ROOT_PAYLOAD_TYPE, "root")?;
        let root = Self::parse(&envelope)?;
        require(&envelope, &root.keys, root.threshold, "root", "the root")?;
        root.check_expiry(now_ms)?;
        Ok(root)
    }

    /// Rotates to a new root: it must be signed by this root's threshold of this root's keys
    /// **and** by its own threshold of its own keys (no key outside both), carry a higher
    /// version, and be unexpired. The same root again is `Ok` (a re-read file).
    pub fn rotate(&self, bytes: &[u8], now_ms: u64) -> Result<Self, TrustError> {
        let envelope = open(bytes, ROOT_PAYLOAD_TYPE, "root")?;
        let new = Self::parse(&envelope)?;
        if new.digest == self.digest {
            return Ok(self.clone());
        }
        if new.version <= self.version {
            return Err(TrustError::Rollback {
                what: "root",
                version: new.version,
                trusted: self.version,
            });
        }
        let both = Keyring::new(
            self.keys
                .keys()
                .iter()
                .chain(
                    new.keys
                        .keys()
                        .iter()
                        .filter(|k| self.keys.get(k.id().as_str()).is_none()),
                )
                .cloned(),
        );
        let signers = envelope.signers(&both);
        refuse_unknown_or_bad(&signers, "root")?;
        count(
            &signers.valid,
            &self.keys,
            self.threshold,
            "root",
            "the old root",
        )?;
        count(
            &signers.valid,
            &new.keys,
            new.threshold,
            "root",
            "the new root",
        )?;
        new.check_expiry(now_ms)?;
        Ok(new)
    }

    fn parse(envelope: &Envelope) -> Result<Self, TrustError> {
        let doc: RootDoc = parse_doc(envelope.payload(), "root")?;
        if doc.schema != ROOT_SCHEMA {
            return Err(malformed(
                "root",
                format!("schema {:?}, expected {ROOT_SCHEMA:?}", doc.schema),
            ));
        }
        if doc.version == 0 {
            return Err(malformed("root", "version must be at least 1"));
        }
        let keys = keyring(&doc.keys, MAX_ROOT_KEYS, "root", "keys")?;
        if keys.is_empty() {
            return Err(malformed("root", "names no key"));
        }
        if doc.threshold == 0 || doc.threshold > keys.keys().len() {
            return Err(malformed(
                "root",
                format!(
                    "threshold {} must be between 1 and the number of keys ({})",
                    doc.threshold,
                    keys.keys().len()
                ),
            ));
        }
        Ok(Root {
            version: doc.version,
            expires_ms: parse_time(&doc.expires, "root")?,
            expires: doc.expires,
            threshold: doc.threshold,
            keys,
            digest: Digest::of(envelope.payload()),
        })
    }

    fn check_expiry(&self, now_ms: u64) -> Result<(), TrustError> {
        expiry(self.expires_ms, now_ms, "root", self.version, &self.expires)
    }

    /// Its version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many root keys must sign.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The root keys.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// When it expires, RFC 3339.
    pub fn expires(&self) -> &str {
        &self.expires
    }

    /// When it expires, ms since the Unix epoch.
    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }

    /// The digest of its payload.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

// === impl Keyset ===

impl Keyset {
    /// Verifies a keyset file against `root`: signed by the root's threshold of root keys
    /// (no other signature), unexpired, and not older than `current` (the one trusted now;
    /// the same version is accepted only with the same content).
    pub fn verify(
        bytes: &[u8],
        root: &Root,
        current: Option<&Keyset>,
        now_ms: u64,
    ) -> Result<Self, TrustError> {
        let envelope = open(bytes, KEYSET_PAYLOAD_TYPE, "keyset")?;
        require(&envelope, &root.keys, root.threshold, "keyset", "the root")?;
        let keyset = Self::parse(&envelope)?;
        if let Some(current) = current
            && (keyset.version < current.version
                || (keyset.version == current.version && keyset.digest != current.digest))
        {
            return Err(TrustError::Rollback {
                what: "keyset",
                version: keyset.version,
                trusted: current.version,
            });
        }
        expiry(
            keyset.expires_ms,
            now_ms,
            "keyset",
            keyset.version,
            &keyset.expires,
        )?;
        Ok(keyset)
    }

    fn parse(envelope: &Envelope) -> Result<Self, TrustError> {
        let doc: KeysetDoc = parse_doc(envelope.payload(), "keyset")?;
        if doc.schema != KEYSET_SCHEMA {
            return Err(malformed(
                "keyset",
                format!("schema {:?}, expected {KEYSET_SCHEMA:?}", doc.schema),
            ));
        }
        if doc.version == 0 {
            return Err(malformed("keyset", "version must be at least 1"));
        }
        Ok(Keyset {
            version: doc.version,
            expires_ms: parse_time(&doc.expires, "keyset")?,
            generator: keyring(&doc.generator, MAX_ROLE_KEYS, "keyset", "generator")?,
            director: keyring(&doc.director, MAX_ROLE_KEYS, "keyset", "director")?,
            operator: keyring(&doc.operator, MAX_ROLE_KEYS, "keyset", "operator")?,
            expires: doc.expires,
            digest: Digest::of(envelope.payload()),
        })
    }

    /// Whether it has expired at `now_ms` (a keyset trusted at load expires while in use:
    /// callers check before each use).
    pub fn check_expiry(&self, now_ms: u64) -> Result<(), TrustError> {
        expiry(
            self.expires_ms,
            now_ms,
            "keyset",
            self.version,
            &self.expires,
        )
    }

    /// Its version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it expires, RFC 3339.
    pub fn expires(&self) -> &str {
        &self.expires
    }

    /// When it expires, ms since the Unix epoch.
    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }

    /// Keys whose feature files are accepted.
    pub fn generator(&self) -> &Keyring {
        &self.generator
    }

    /// Keys whose orders are accepted.
    pub fn director(&self) -> &Keyring {
        &self.director
    }

    /// Operators' keys.
    pub fn operator(&self) -> &Keyring {
        &self.operator
    }

    /// The digest of its payload.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

/// Parses RFC 3339 text to ms since the Unix epoch (0 for times before it).
pub fn parse_time(text: &str, what: &'static str) -> Result<u64, TrustError> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| malformed(what, format!("expires {text:?} is not RFC 3339: {e}")))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    Ok(u64::try_from(ms).unwrap_or(0))
}

/// `ms` since the Unix epoch as RFC 3339 (UTC, seconds).
pub fn format_time(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_owned())
}

fn open(
    bytes: &[u8],
    payload_type: &'static str,
    what: &'static str,
) -> Result<Envelope, TrustError> {
    let envelope = Envelope::from_json(bytes, MAX_TRUST_FILE_BYTES, MAX_TRUST_SIGNATURES)
        .map_err(|source| TrustError::Envelope { what, source })?;
    if envelope.payload_type() != payload_type {
        return Err(TrustError::PayloadType {
            what,
            expected: payload_type,
            found: crate::issue::quote(envelope.payload_type()),
        });
    }
    Ok(envelope)
}

fn parse_doc<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    what: &'static str,
) -> Result<T, TrustError> {
    serde_json::from_slice(payload).map_err(|e| malformed(what, e.to_string()))
}

fn malformed(what: &'static str, reason: impl Into<String>) -> TrustError {
    TrustError::Malformed {
        what,
        reason: reason.into(),
    }
}

fn keyring(
    pems: &[String],
    max: usize,
    what: &'static str,
    role: &str,
) -> Result<Keyring, TrustError> {
    if pems.len() > max {
        return Err(malformed(
            what,
            format!("{role}: {} keys, at most {max}", pems.len()),
        ));
    }
    let mut keys: Vec<PublicKey> = Vec::with_capacity(pems.len());
    let mut seen = BTreeSet::new();
    for (i, pem) in pems.iter().enumerate() {
        let key =
            PublicKey::from_pem(pem).map_err(|e| malformed(what, format!("{role}[{i}]: {e}")))?;
        if !seen.insert(key.id().clone()) {
            return Err(malformed(
                what,
                format!("{role}: key {} named twice", key.id()),
            ));
        }
        keys.push(key);
    }
    Ok(Keyring::new(keys))
}

fn pems(keys: &[PublicKey], what: &'static str) -> Result<Vec<String>, TrustError> {
    keys.iter()
        .map(|k| k.to_pem().map_err(|e| malformed(what, e.to_string())))
        .collect()
}

fn sign_doc<T: Serialize>(
    payload_type: &str,
    doc: &T,
    signers: &[&SecretKey],
    what: &'static str,
) -> Result<Envelope, TrustError> {
    let payload = serde_json::to_vec(doc).map_err(|e| malformed(what, e.to_string()))?;
    let Some((first, rest)) = signers.split_first() else {
        return Err(TrustError::BelowThreshold {
            what,
            by: "the signer",
            valid: 0,
            threshold: 1,
        });
    };
    let mut envelope = Envelope::sign_payload(payload_type, payload, first);
    for key in rest {
        envelope.add_signature(key);
    }
    Ok(envelope)
}

/// Every signature by a key of `keys`, each valid, at least `threshold` distinct.
fn require(
    envelope: &Envelope,
    keys: &Keyring,
    threshold: usize,
    what: &'static str,
    by: &'static str,
) -> Result<Vec<KeyId>, TrustError> {
    let signers = envelope.signers(keys);
    refuse_unknown_or_bad(&signers, what)?;
    count(&signers.valid, keys, threshold, what, by)?;
    Ok(signers.valid)
}

fn refuse_unknown_or_bad(
    signers: &crate::envelope::Signers,
    what: &'static str,
) -> Result<(), TrustError> {
    if let Some(bad) = signers.bad.first() {
        return Err(TrustError::BadSignature {
            what,
            keyid: bad.to_string(),
        });
    }
    if !signers.unknown.is_empty() {
        return Err(TrustError::UnknownKey {
            what,
            keyids: signers.unknown.join(", "),
        });
    }
    Ok(())
}

fn count(
    valid: &[KeyId],
    keys: &Keyring,
    threshold: usize,
    what: &'static str,
    by: &'static str,
) -> Result<(), TrustError> {
    let n = valid
        .iter()
        .filter(|id| keys.get(id.as_str()).is_some())
        .count();
    if n < threshold {
        return Err(TrustError::BelowThreshold {
            what,
            by,
            valid: n,
            threshold,
        });
    }
    Ok(())
}

fn expiry(
    expires_ms: u64,
    now_ms: u64,
    what: &'static str,
    version: u64,
    expires: &str,
) -> Result<(), TrustError> {
    if now_ms >= expires_ms {
        return Err(TrustError::Expired {
            what,
            version,
            expires: expires.to_owned(),
        });
    }
    Ok(())
}

// === impl TrustError ===

impl TrustError {
    /// A stable code for counters and `/status`.
    pub fn code(&self) -> &'static str {
        match self {
            TrustError::Envelope { .. } => "malformed",
            TrustError::PayloadType { .. } => "payload_type",
            TrustError::Malformed { .. } => "malformed",
            TrustError::UnknownKey { .. } => "unknown_key",
            TrustError::BadSignature { .. } => "bad_signature",
            TrustError::BelowThreshold { .. } => "below_threshold",
            TrustError::Expired { .. } => "expired",
            TrustError::Rollback { .. } => "rollback",
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const LATER: &str = "2030-01-01T00:00:00Z";
    const PAST: &str = "2020-01-01T00:00:00Z";

    fn sk(n: u8) -> SecretKey {
        SecretKey::from_seed([n; 32])
    }

    fn root_spec(version: u64, threshold: usize, seeds: &[u8]) -> RootSpec {
        RootSpec {
            version,
            expires: LATER.to_owned(),
            threshold,
            keys: seeds.iter().map(|s| sk(*s).public()).collect(),
        }
    }

    fn keyset_spec(version: u64) -> KeysetSpec {
        KeysetSpec {
            version,
            expires: LATER.to_owned(),
            generator: vec![sk(50).public()],
            director: vec![sk(60).public()],
            operator: vec![sk(70).public(), sk(71).public()],
        }
    }

    fn root_2_of_3() -> Root {
        let bytes = root_spec(1, 2, &[1, 2, 3])
            .sign(&[&sk(1), &sk(2)])
            .unwrap()
            .to_json();
        Root::trust(&bytes, NOW).unwrap()
    }

    #[test]
    fn a_root_signed_by_its_threshold_is_trusted() {
        let root = root_2_of_3();
        assert_eq!(
            (root.version(), root.threshold(), root.keys().keys().len()),
            (1, 2, 3)
        );
        let one = root_spec(1, 2, &[1, 2, 3])
            .sign(&[&sk(1)])
            .unwrap()
            .to_json();
        assert!(matches!(
            Root::trust(&one, NOW),
            Err(TrustError::BelowThreshold {
                valid: 1,
                threshold: 2,
                ..
            })
        ));
        // The same key twice counts once.
        let twice = root_spec(1, 2, &[1, 2, 3])
            .sign(&[&sk(1), &sk(1)])
            .unwrap()
            .to_json();
        assert!(matches!(
            Root::trust(&twice, NOW),
            Err(TrustError::BelowThreshold { valid: 1, .. })
        ));
    }

    #[test]
    fn a_bad_root_is_refused() {
        let zero = root_spec(1, 0, &[1]).sign(&[&sk(1)]).unwrap().to_json();
        assert!(matches!(
            Root::trust(&zero, NOW),
            Err(TrustError::Malformed { .. })
        ));
        let over = root_spec(1, 3, &[1, 2])
            .sign(&[&sk(1), &sk(2)])
            .unwrap()
            .to_json();
        assert!(matches!(
            Root::trust(&over, NOW),
            Err(TrustError::Malformed { .. })
        ));
        let dup = root_spec(1, 1, &[1, 1]).sign(&[&sk(1)]).unwrap().to_json();
        assert!(matches!(
            Root::trust(&dup, NOW),
            Err(TrustError::Malformed { .. })
        ));
        let mut old = root_spec(1, 1, &[1]);
        old.expires = PAST.to_owned();
        let old = old.sign(&[&sk(1)]).unwrap().to_json();
        assert!(matches!(
            Root::trust(&old, NOW),
            Err(TrustError::Expired { .. })
        ));
        let stranger = root_spec(1, 1, &[1])
            .sign(&[&sk(1), &sk(9)])
            .unwrap()
            .to_json();
        assert!(matches!(
            Root::trust(&stranger, NOW),
            Err(TrustError::UnknownKey { .. })
        ));
        assert!(matches!(
            Root::trust(b"{}", NOW),
            Err(TrustError::Envelope { .. })
        ));
        assert!(matches!(
            Root::trust(&vec![b' '; MAX_TRUST_FILE_BYTES + 1], NOW),
            Err(TrustError::Envelope {
                source: EnvelopeError::TooLarge { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_keyset_needs_k_root_signatures_and_nothing_else() {
        let root = root_2_of_3();
        let good = keyset_spec(1).sign(&[&sk(2), &sk(3)]).unwrap().to_json();
        let ks = Keyset::verify(&good, &root, None, NOW).unwrap();
        assert_eq!(ks.version(), 1);
        assert!(ks.generator().get(sk(50).public().id().as_str()).is_some());
        assert!(ks.director().get(sk(60).public().id().as_str()).is_some());
        assert_eq!(ks.operator().keys().len(), 2);

        let one = keyset_spec(1).sign(&[&sk(2)]).unwrap().to_json();
        assert_eq!(
            Keyset::verify(&one, &root, None, NOW).unwrap_err().code(),
            "below_threshold"
        );
        let stranger = keyset_spec(1)
            .sign(&[&sk(2), &sk(3), &sk(9)])
            .unwrap()
            .to_json();
        assert_eq!(
            Keyset::verify(&stranger, &root, None, NOW)
                .unwrap_err()
                .code(),
            "unknown_key"
        );
        // A generator key cannot sign a keyset.
        let by_generator = keyset_spec(1).sign(&[&sk(50)]).unwrap().to_json();
        assert_eq!(
            Keyset::verify(&by_generator, &root, None, NOW)
                .unwrap_err()
                .code(),
            "unknown_key"
        );
        let mut tampered = keyset_spec(1).sign(&[&sk(2), &sk(3)]).unwrap();
        let other = serde_json::to_vec(&serde_json::json!({"schema": KEYSET_SCHEMA})).unwrap();
        tampered.set_payload(other);
        assert_eq!(
            Keyset::verify(&tampered.to_json(), &root, None, NOW)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        let mut old = keyset_spec(1);
        old.expires = PAST.to_owned();
        let old = old.sign(&[&sk(1), &sk(2)]).unwrap().to_json();
        assert_eq!(
            Keyset::verify(&old, &root, None, NOW).unwrap_err().code(),
            "expired"
        );
        // A signed root is not a keyset.
        let a_root = root_spec(1, 2, &[1, 2, 3])
            .sign(&[&sk(1), &sk(2)])
            .unwrap()
            .to_json();
        assert_eq!(
            Keyset::verify(&a_root, &root, None, NOW)
                .unwrap_err()
                .code(),
            "payload_type"
        );
    }

    #[test]
    fn a_keyset_cannot_go_backwards() {
        let root = root_2_of_3();
        let v2 = Keyset::verify(
            &keyset_spec(2).sign(&[&sk(1), &sk(2)]).unwrap().to_json(),
            &root,
            None,
            NOW,
        )
        .unwrap();
        let v1 = keyset_spec(1).sign(&[&sk(1), &sk(2)]).unwrap().to_json();
        assert!(matches!(
            Keyset::verify(&v1, &root, Some(&v2), NOW),
            Err(TrustError::Rollback {
                version: 1,
                trusted: 2,
                ..
            })
        ));
        // The same file again is fine; the same version with other keys is not.
        let again = keyset_spec(2).sign(&[&sk(3), &sk(1)]).unwrap().to_json();
        assert_eq!(
            Keyset::verify(&again, &root, Some(&v2), NOW)
                .unwrap()
                .version(),
            2
        );
        let mut other = keyset_spec(2);
        other.generator.push(sk(51).public());
        let other = other.sign(&[&sk(1), &sk(2)]).unwrap().to_json();
        assert_eq!(
            Keyset::verify(&other, &root, Some(&v2), NOW)
                .unwrap_err()
                .code(),
            "rollback"
        );
        let v3 = keyset_spec(3).sign(&[&sk(1), &sk(2)]).unwrap().to_json();
        assert_eq!(
            Keyset::verify(&v3, &root, Some(&v2), NOW)
                .unwrap()
                .version(),
            3
        );
    }

    #[test]
    fn a_root_rotates_with_k_old_and_k_new_signatures() {
        let root = root_2_of_3();
        let next = root_spec(2, 2, &[3, 4, 5]);
        let ok = next
            .sign(&[&sk(1), &sk(2), &sk(4), &sk(5)])
            .unwrap()
            .to_json();
        let new = root.rotate(&ok, NOW).unwrap();
        assert_eq!(new.version(), 2);
        // Key 3 is in both: it counts for each.
        let shared = next.sign(&[&sk(1), &sk(3), &sk(4)]).unwrap().to_json();
        assert_eq!(root.rotate(&shared, NOW).unwrap().version(), 2);
        let only_new = next.sign(&[&sk(3), &sk(4), &sk(5)]).unwrap().to_json();
        assert!(matches!(
            root.rotate(&only_new, NOW),
            Err(TrustError::BelowThreshold {
                by: "the old root",
                ..
            })
        ));
        let only_old = next.sign(&[&sk(1), &sk(2)]).unwrap().to_json();
        assert!(matches!(
            root.rotate(&only_old, NOW),
            Err(TrustError::BelowThreshold {
                by: "the new root",
                ..
            })
        ));
        let same_version = root_spec(1, 2, &[3, 4, 5])
            .sign(&[&sk(1), &sk(2), &sk(4), &sk(5)])
            .unwrap()
            .to_json();
        assert_eq!(
            root.rotate(&same_version, NOW).unwrap_err().code(),
            "rollback"
        );
        // Keysets signed by the old root are refused by the new one.
        let by_old = keyset_spec(1).sign(&[&sk(1), &sk(2)]).unwrap().to_json();
        assert_eq!(
            Keyset::verify(&by_old, &new, None, NOW).unwrap_err().code(),
            "unknown_key"
        );
        // The same root again is not a rotation.
        let same = root_spec(1, 2, &[1, 2, 3])
            .sign(&[&sk(1), &sk(2)])
            .unwrap()
            .to_json();
        assert_eq!(root.rotate(&same, NOW).unwrap().version(), 1);
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z", "root").unwrap(), 1000);
        assert_eq!(format_time(NOW), "2027-01-15T08:00:00Z");
        assert_eq!(parse_time(&format_time(NOW), "root").unwrap(), NOW);
        assert!(parse_time("tomorrow", "root").is_err());
    }

    proptest! {
        // 4 thresholds x 16 subsets: 64 cases cover the space on average; each signs up to
        // eight times.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever subset of the root keys signs, the keyset is trusted exactly when the
        /// subset reaches the threshold.
        #[test]
        fn trusted_exactly_at_the_threshold(threshold in 1usize..=4, mask in 0u8..16) {
            let seeds = [1u8, 2, 3, 4];
            let spec = root_spec(1, threshold, &seeds);
            let all: Vec<SecretKey> = seeds.iter().map(|s| sk(*s)).collect();
            let all_refs: Vec<&SecretKey> = all.iter().collect();
            let root = Root::trust(&spec.sign(&all_refs).unwrap().to_json(), NOW).unwrap();
            let chosen: Vec<&SecretKey> = all.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, k)| k).collect();
            let signed = keyset_spec(1).sign(&chosen);
            match signed {
                Ok(env) => {
                    let verdict = Keyset::verify(&env.to_json(), &root, None, NOW);
                    prop_assert_eq!(verdict.is_ok(), chosen.len() >= threshold);
                }
                Err(_) => prop_assert!(chosen.is_empty()),
            }
        }

        /// Arbitrary bytes never panic and are never trusted.
        #[test]
        fn garbage_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let root = root_2_of_3();
            prop_assert!(Keyset::verify(&bytes, &root, None, NOW).is_err());
            prop_assert!(Root::trust(&bytes, NOW).is_err());
        }
    }
}
