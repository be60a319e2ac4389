//! ed25519 signing keys, public keys with their ids, and the keyring a consumer trusts.
//!
//! Files are PEM: PKCS#8 for the private key, SubjectPublicKeyInfo for the public key, so
//! `openssl pkey` reads them too. A key id is the first 8 bytes of the sha256 of the raw
//! public key, in hex.

use std::fmt;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::document::hex;

/// A private signing key. Its `Debug` output never shows the key.
pub struct SecretKey(SigningKey);

/// A public key and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

/// A key id: 16 hex digits derived from the public key.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct KeyId(String);

/// The public keys a consumer trusts.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<PublicKey>,
}

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM text is not a key of the expected kind.
    #[error("not an ed25519 {kind} key in PEM form: {reason}")]
    Pem {
        /// `private` or `public`.
        kind: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

// === impl SecretKey ===

impl SecretKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// A key from a 32-byte seed (deterministic; for tests and fixtures).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(SecretKey)
            .map_err(|e| KeyError::Pem {
                kind: "private",
                reason: e.to_string(),
            })
    }

    /// Writes a PKCS#8 (v1) PEM private key, readable by `openssl pkey`.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        // PKCS#8 v1 (no embedded public key): OpenSSL 3.0 cannot read the v2 form.
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::Pem {
            kind: "private",
            reason: e.to_string(),
        })
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::new(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, ..)", self.public().id())
    }
}

// === impl PublicKey ===

impl PublicKey {
    fn new(key: VerifyingKey) -> Self {
        let hash = Sha256::digest(key.as_bytes());
        let id = KeyId(hex(hash.get(..8).unwrap_or(&[])));
        PublicKey { key, id }
    }

    /// Reads a SubjectPublicKeyInfo PEM public key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::new)
            .map_err(|e| KeyError::Pem {
                kind: "public",
                reason: e.to_string(),
            })
    }

    /// Writes a SubjectPublicKeyInfo PEM public key.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Pem {
                kind: "public",
                reason: e.to_string(),
            })
    }

    /// This key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Whether `sig` is this key's signature of `message` (strict: no malleable forms).
    pub(crate) fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

// === impl KeyId ===

impl KeyId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Keyring ===

impl Keyring {
    /// A keyring of these keys.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Keyring {
            keys: keys.into_iter().collect(),
        }
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id.0 == id)
    }

    /// All trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        let sk = SecretKey::from_seed([7; 32]);
        let pem = sk.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let back = SecretKey::from_pem(&pem).unwrap();
        assert_eq!(back.public(), sk.public());
        let pub_pem = sk.public().to_pem().unwrap();
        assert!(
            pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"),
            "{pub_pem}"
        );
        assert_eq!(PublicKey::from_pem(&pub_pem).unwrap(), sk.public());
    }

    #[test]
    fn a_public_key_is_not_a_private_key() {
        let sk = SecretKey::from_seed([7; 32]);
        let pub_pem = sk.public().to_pem().unwrap();
        assert!(matches!(
            SecretKey::from_pem(&pub_pem),
            Err(KeyError::Pem {
                kind: "private",
                ..
            })
        ));
        assert!(PublicKey::from_pem("garbage").is_err());
    }

    #[test]
    fn key_ids_differ_and_have_16_hex_digits() {
        let a = SecretKey::from_seed([1; 32]).public();
        let b = SecretKey::from_seed([2; 32]).public();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().as_str().len(), 16);
        assert!(a.id().as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let sk = SecretKey::from_seed([9; 32]);
        let dbg = format!("{sk:?}");
        assert!(dbg.contains(sk.public().id().as_str()));
        assert!(!dbg.contains("[9, 9"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = SecretKey::generate().unwrap().public();
        let b = SecretKey::generate().unwrap().public();
        assert_ne!(a, b);
    }

    #[test]
    fn verification_is_strict_about_length() {
        let sk = SecretKey::from_seed([3; 32]);
        let sig = sk.sign(b"m");
        assert!(sk.public().verifies(b"m", &sig));
        assert!(!sk.public().verifies(b"n", &sig));
        assert!(!sk.public().verifies(b"m", &sig[..63]));
    }
}
