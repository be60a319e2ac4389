//! The rampart feature file: the artifact every other crate passes around.
//!
//! A feature file (schema `rampart.features/v1`) lists the request features a bot model
//! reads, with their ClickHouse types and weights, plus the model's bias and the file's
//! provenance. It travels as a DSSE envelope signed with ed25519; a bare document is accepted
//! for inspection. A [`Contract`] is what one consumer accepts (at most 200 features by
//! default, 1 MiB, some types, a name rule, optionally the names it knows).
//!
//! The one decision that matters: **the same pure code validates everywhere**. The generator
//! checks its output against every consumer's contract before publishing, the control plane
//! checks again, and the edge checks once more before it swaps anything in; none of them may
//! panic, and each reports every issue at once, typed ([`Issue`]).
//!
//! # Layout
//! - [`limits`]: every bound, and [`read_bounded`](limits::read_bounded).
//! - `document`: [`Document`], canonical bytes, [`Digest`].
//! - `decode`: untrusted bytes to a document (size, depth, JSON, shape).
//! - `envelope` and `keys`: the signed form, keys and [`Keyring`].
//! - `keyset`: the root of trust (TUF style): a [`Root`] (k of n root keys) signs a
//!   [`Keyset`] (generator, director and operator keys) with an expiry and a version that
//!   cannot go back; see `docs/trust.md`.
//! - `contract`: [`Contract`] and its file format.
//! - `validate`: [`validate`] and [`Validated`].
//! - `diff`: [`Diff`] between two files.
//! - `testing` (feature `test-util`): builders of documents, keys and signed files for the
//!   workspace's tests and benches.
//!
//! # Untrusted input
//! [`check`] takes bytes: size is compared with the limit before parsing, nesting is bounded
//! by a byte scan before parsing, duplicate JSON keys are refused, and the payload of an
//! envelope is verified before it is parsed.

pub mod limits;

mod contract;
mod decode;
mod diff;
mod document;
mod envelope;
mod issue;
mod keys;
mod keyset;
mod validate;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use contract::{Contract, ContractError, ContractSpec, DEFAULT_ALLOWED_TYPES};
pub use decode::{Decoded, decode, scan_depth};
pub use diff::{Change, Diff};
pub use document::{Digest, Document, Feature, Model, ParseDigestError, Provenance, SCHEMA};
pub use envelope::{Envelope, EnvelopeError, PAYLOAD_TYPE, Signature, Signers, pae};
pub use issue::{Issue, Report, quote};
pub use keys::{KeyError, KeyId, Keyring, PublicKey, SecretKey};
pub use keyset::{
    KEYSET_PAYLOAD_TYPE, KEYSET_SCHEMA, Keyset, KeysetSpec, MAX_ROLE_KEYS, MAX_ROOT_KEYS,
    MAX_TRUST_FILE_BYTES, MAX_TRUST_SIGNATURES, ROOT_PAYLOAD_TYPE, ROOT_SCHEMA, Root, RootSpec,
    TrustError, format_time, parse_time,
};
pub use validate::{Validated, validate};

use issue::Issues;

/// What [`check`] needs besides the bytes.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The consumer's contract.
    pub contract: &'a Contract,
    /// Trusted keys. When set, the input must be an envelope signed by one of them; when
    /// `None`, signatures are not checked (inspection).
    pub keyring: Option<&'a Keyring>,
    /// The version currently held, which the input must be above.
    pub previous: Option<&'a Document>,
}

/// A feature file that passed [`check`].
#[derive(Debug, Clone)]
pub struct Checked {
    /// The validated document and its digest.
    pub validated: Validated,
    /// The key whose signature verified, when a keyring was given.
    pub signer: Option<KeyId>,
    /// Whether the input was an envelope (signed), whether or not it was verified.
    pub enveloped: bool,
}

/// Decodes, verifies and validates untrusted bytes in one pass and reports every issue
/// found: the signature, the shape and the contract are all checked when they can be.
pub fn check(bytes: &[u8], policy: &Policy<'_>) -> Result<Checked, Vec<Issue>> {
    let contract = policy.contract;
    let mut issues = Issues::default();
    let Some(partial) = decode::decode_lenient(bytes, contract.max_bytes(), &mut issues) else {
        return Err(issues.into_vec());
    };
    let mut signer = None;
    match (&partial.envelope, policy.keyring) {
        (Some(envelope), Some(keyring)) => match envelope.verify(keyring) {
            Ok(id) => signer = Some(id),
            Err(issue) => issues.push(issue),
        },
        (None, Some(_)) => issues.push(Issue::Unsigned),
        (_, None) => {}
    }
    validate::content(
        &partial.document,
        partial.feature_count,
        partial.skip,
        contract,
        policy.previous,
        &mut issues,
    );
    let enveloped = partial.envelope.is_some();
    let validated = validate::finish(partial.document, contract, issues)?;
    Ok(Checked {
        validated,
        signer,
        enveloped,
    })
}
