//! The signed envelope: DSSE (in-toto's Dead Simple Signing Envelope) with ed25519.
//!
//! ```json
//! {"payloadType":"application/vnd.rampart.features.v1+json",
//!  "payload":"<base64 of the document's canonical bytes>",
//!  "signatures":[{"keyid":"<16 hex>","sig":"<base64 ed25519 signature>"}]}
//! ```
//!
//! The signature covers `PAE(payloadType, payload)` (DSSE's pre-authentication encoding), so
//! the payload type cannot be swapped and the bytes that were signed are exactly the bytes
//! that are parsed: the payload is verified before it is parsed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::document::Document;
use crate::issue::{Issue, quote};
use crate::keys::{KeyId, Keyring, SecretKey};

/// The DSSE payload type of a v1 feature file.
pub const PAYLOAD_TYPE: &str = "application/vnd.rampart.features.v1+json";

/// A signed feature file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    payload_type: String,
    payload: Vec<u8>,
    signatures: Vec<Signature>,
}

/// One signature on an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Id of the signing key (may be empty: then every trusted key is tried).
    pub keyid: String,
    /// The raw signature bytes.
    pub sig: Vec<u8>,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "payloadType")]
    payload_type: &'a str,
    payload: String,
    signatures: Vec<WireSig<'a>>,
}

#[derive(Serialize)]
struct WireSig<'a> {
    keyid: &'a str,
    sig: String,
}

/// An envelope as serde reads it (owned).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireEnvelope {
    #[serde(rename = "payloadType")]
    pub(crate) payload_type: String,
    pub(crate) payload: String,
    pub(crate) signatures: Vec<WireSignature>,
}

/// One signature as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireSignature {
    #[serde(default)]
    pub(crate) keyid: String,
    pub(crate) sig: String,
}

/// Why bytes are not an envelope ([`Envelope::from_json`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Larger than the caller's limit (checked before parsing).
    #[error("{size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not the JSON of an envelope (or base64 that does not decode).
    #[error("not a signed envelope: {0}")]
    Malformed(String),
    /// No signature, or more than the caller allows.
    #[error("{count} signatures; between 1 and {limit} are accepted")]
    Signatures {
        /// How many it carries.
        count: usize,
        /// The most accepted.
        limit: usize,
    },
}

/// Which keys of a keyring signed an envelope ([`Envelope::signers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signers {
    /// Trusted keys whose signature verifies, each once, in the envelope's order.
    pub valid: Vec<KeyId>,
    /// Key ids the keyring does not hold (quoted, bounded).
    pub unknown: Vec<String>,
    /// Trusted keys whose signature does not verify.
    pub bad: Vec<KeyId>,
}

// === impl Envelope ===

impl Envelope {
    /// Signs a document's canonical bytes.
    pub fn sign(document: &Document, key: &SecretKey) -> Self {
        Self::sign_payload(PAYLOAD_TYPE, document.canonical_bytes(), key)
    }

    /// Signs arbitrary bytes under a payload type: for test corpora of signed bad files.
    pub fn sign_payload(payload_type: &str, payload: Vec<u8>, key: &SecretKey) -> Self {
        let sig = key.sign(&pae(payload_type, &payload));
        Envelope {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: vec![Signature {
                keyid: key.public().id().as_str().to_owned(),
                sig: sig.to_vec(),
            }],
        }
    }

    pub(crate) fn from_parts(
        payload_type: String,
        payload: Vec<u8>,
        signatures: Vec<Signature>,
    ) -> Self {
        Envelope {
            payload_type,
            payload,
            signatures,
        }
    }

    /// Adds another key's signature (for key rotation: old and new key both sign).
    pub fn add_signature(&mut self, key: &SecretKey) {
        let sig = key.sign(&pae(&self.payload_type, &self.payload));
        self.signatures.push(Signature {
            keyid: key.public().id().as_str().to_owned(),
            sig: sig.to_vec(),
        });
    }

    /// The payload bytes, as signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Replaces the payload and keeps the signatures: for tampering tests.
    pub fn set_payload(&mut self, payload: Vec<u8>) {
        self.payload = payload;
    }

    /// The payload type.
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The signatures.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The key ids on the envelope.
    pub fn keyids(&self) -> impl Iterator<Item = &str> {
        self.signatures.iter().map(|s| s.keyid.as_str())
    }

    /// The envelope as compact JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads an envelope of any payload type from JSON: the size is compared with `max_bytes`
    /// before parsing, the nesting is bounded by a byte scan, and the number of signatures
    /// must be between 1 and `max_signatures`. Nothing is verified: see [`Envelope::signers`].
    pub fn from_json(
        bytes: &[u8],
        max_bytes: usize,
        max_signatures: usize,
    ) -> Result<Self, EnvelopeError> {
        if bytes.len() > max_bytes {
            return Err(EnvelopeError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        crate::decode::scan_depth(bytes, crate::limits::MAX_DEPTH)
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let wire = serde_json::from_slice::<WireEnvelope>(bytes)
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        Self::from_wire(wire, max_signatures)
    }

    fn from_wire(wire: WireEnvelope, max_signatures: usize) -> Result<Self, EnvelopeError> {
        let count = wire.signatures.len();
        if count == 0 || count > max_signatures {
            return Err(EnvelopeError::Signatures {
                count,
                limit: max_signatures,
            });
        }
        let payload = BASE64
            .decode(&wire.payload)
            .map_err(|e| EnvelopeError::Malformed(format!("payload: {e}")))?;
        let mut signatures = Vec::with_capacity(count);
        for s in wire.signatures {
            signatures.push(Signature {
                sig: BASE64
                    .decode(&s.sig)
                    .map_err(|e| EnvelopeError::Malformed(format!("signature: {e}")))?,
                keyid: s.keyid,
            });
        }
        Ok(Envelope::from_parts(wire.payload_type, payload, signatures))
    }

    /// Sorts the signatures by the keys of `keyring`: each trusted key that verifies counts
    /// once (a repeated signature does not count twice), unknown ids and signatures that do
    /// not verify are listed. The caller decides what a threshold is and whether an unknown
    /// id is a refusal.
    pub fn signers(&self, keyring: &Keyring) -> Signers {
        let message = pae(&self.payload_type, &self.payload);
        let mut out = Signers::default();
        for sig in &self.signatures {
            match keyring.get(&sig.keyid) {
                Some(key) if key.verifies(&message, &sig.sig) => {
                    if !out.valid.contains(key.id()) {
                        out.valid.push(key.id().clone());
                    }
                }
                Some(key) => out.bad.push(key.id().clone()),
                None => out.unknown.push(quote(&sig.keyid)),
            }
        }
        out
    }

    /// Finds a signature by a trusted key that verifies. One is enough (threshold 1).
    pub fn verify(&self, keyring: &Keyring) -> Result<KeyId, Issue> {
        let message = pae(&self.payload_type, &self.payload);
        let mut failed: Option<&str> = None;
        for sig in &self.signatures {
            let candidates: Vec<_> = if sig.keyid.is_empty() {
                keyring.keys().iter().collect()
            } else {
                keyring.get(&sig.keyid).into_iter().collect()
            };
            for key in candidates {
                if key.verifies(&message, &sig.sig) {
                    return Ok(key.id().clone());
                }
                failed = Some(key.id().as_str());
            }
        }
        if let Some(keyid) = failed {
            return Err(Issue::BadSignature {
                keyid: keyid.to_owned(),
            });
        }
        let keyids: Vec<String> = self.signatures.iter().map(|s| quote(&s.keyid)).collect();
        let trusted: Vec<&str> = keyring.keys().iter().map(|k| k.id().as_str()).collect();
        Err(Issue::UnknownKey {
            keyids: keyids.join(", "),
            trusted: if trusted.is_empty() {
                "none".to_owned()
            } else {
                trusted.join(", ")
            },
        })
    }
}

/// The envelope's JSON form, for embedding in another message (an order in a heartbeat
/// answer): the same fields as [`Envelope::to_json`].
impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            payload_type: &self.payload_type,
            payload: BASE64.encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSig {
                    keyid: &s.keyid,
                    sig: BASE64.encode(&s.sig),
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

/// Reads at most [`MAX_SIGNATURES`](crate::limits::MAX_SIGNATURES) signatures; the size of
/// the whole message is the caller's limit.
impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireEnvelope::deserialize(deserializer)?;
        Envelope::from_wire(wire, crate::limits::MAX_SIGNATURES).map_err(serde::de::Error::custom)
    }
}

/// DSSE's pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(head.len() + payload.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn verifies_with_the_right_key_only() {
        let a = SecretKey::from_seed([1; 32]);
        let b = SecretKey::from_seed([2; 32]);
        let env = Envelope::sign_payload(PAYLOAD_TYPE, b"{}".to_vec(), &a);
        assert_eq!(
            env.verify(&Keyring::new([a.public()])).unwrap(),
            *a.public().id()
        );
        assert!(matches!(
            env.verify(&Keyring::new([b.public()])),
            Err(Issue::UnknownKey { .. })
        ));
        assert!(matches!(
            env.verify(&Keyring::default()),
            Err(Issue::UnknownKey { .. })
        ));
    }

    #[test]
    fn tampered_payload_fails() {
        let a = SecretKey::from_seed([1; 32]);
        let mut env = Envelope::sign_payload(PAYLOAD_TYPE, b"{\"a\":1}".to_vec(), &a);
        env.set_payload(b"{\"a\":2}".to_vec());
        assert!(matches!(
            env.verify(&Keyring::new([a.public()])),
            Err(Issue::BadSignature { .. })
        ));
    }

    #[test]
    fn swapped_payload_type_fails() {
        let a = SecretKey::from_seed([1; 32]);
        let env = Envelope::sign_payload(PAYLOAD_TYPE, b"{}".to_vec(), &a);
        let forged = Envelope::from_parts(
            "text/plain".into(),
            b"{}".to_vec(),
            env.signatures().to_vec(),
        );
        assert!(forged.verify(&Keyring::new([a.public()])).is_err());
    }

    #[test]
    fn rotation_any_trusted_signature_is_enough() {
        let old = SecretKey::from_seed([1; 32]);
        let new = SecretKey::from_seed([2; 32]);
        let mut env = Envelope::sign_payload(PAYLOAD_TYPE, b"{}".to_vec(), &old);
        env.add_signature(&new);
        assert_eq!(
            env.verify(&Keyring::new([new.public()])).unwrap(),
            *new.public().id()
        );
    }

    #[test]
    fn same_keyid_other_key_is_a_bad_signature() {
        let a = SecretKey::from_seed([1; 32]);
        let b = SecretKey::from_seed([2; 32]);
        let mut env = Envelope::sign_payload(PAYLOAD_TYPE, b"{}".to_vec(), &b);
        env.signatures[0].keyid = a.public().id().as_str().to_owned();
        assert!(matches!(
            env.verify(&Keyring::new([a.public()])),
            Err(Issue::BadSignature { .. })
        ));
    }
}
