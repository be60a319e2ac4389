//! Which consumers' contracts a stored artifact passes today.
//!
//! Publishing checked the file against the contracts registered *then*; edges register,
//! re-register and tighten their contracts afterwards. The dashboard shows the answer for
//! the contracts of now, with the same `rampart_artifact::check` the edges run.

use rampart_api::IssueReport;
use rampart_artifact::{Contract, Digest, Policy, check};
use serde::{Deserialize, Serialize};

use crate::service::{Error, Service};
use crate::store::Store;

/// Most issues listed per consumer; the rest are counted in [`ContractCheck::more`].
pub const MAX_ISSUES_LISTED: usize = 20;

/// An artifact against every contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractChecks {
    /// The artifact.
    pub digest: Digest,
    /// One per distinct contract (as `GET /v1/contracts` lists them).
    pub checks: Vec<ContractCheck>,
}

/// An artifact against one contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractCheck {
    /// Who declared the contract.
    pub consumer: String,
    /// Whether the artifact verifies and validates under it.
    pub passes: bool,
    /// The first [`MAX_ISSUES_LISTED`] issues.
    pub issues: Vec<IssueReport>,
    /// Issues beyond those listed.
    pub more: usize,
}

/// Checks the stored bytes of `digest` against every current contract.
pub async fn against_contracts<S: Store>(
    svc: &Service<S>,
    digest: Digest,
) -> Result<ContractChecks, Error> {
    let bytes = svc.artifact_bytes(digest).await?;
    let specs = svc.contracts().contracts;
    let keyring = svc.keyring();
    // Decoding a large file is CPU work: keep it off the threads that answer heartbeats.
    let checks = tokio::task::spawn_blocking(move || {
        specs
            .into_iter()
            .map(|spec| {
                let consumer = spec.consumer.clone();
                let contract = Contract::try_from(spec)
                    .map_err(|e| Error::internal(format!("contract of {consumer}: {e}")))?;
                let policy = Policy {
                    contract: &contract,
                    keyring: Some(&keyring),
                    previous: None,
                };
                let found = check(&bytes, &policy).err().unwrap_or_default();
                Ok(ContractCheck {
                    consumer,
                    passes: found.is_empty(),
                    more: found.len().saturating_sub(MAX_ISSUES_LISTED),
                    issues: found
                        .iter()
                        .take(MAX_ISSUES_LISTED)
                        .map(IssueReport::from)
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()
    })
    .await
    .map_err(|e| Error::internal(format!("contract check did not finish: {e}")))??;
    Ok(ContractChecks { digest, checks })
}
