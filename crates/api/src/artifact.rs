//! Artifacts as the API shows them: publish results, metadata, lists and diffs.

use rampart_artifact::{Diff, Digest, Feature};
use serde::{Deserialize, Serialize};

/// What the control plane knows about one stored artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMeta {
    /// The digest of the document's canonical bytes: the artifact's name.
    pub digest: Digest,
    /// The artifact kind ([`crate::KIND_FEATURES`]).
    pub kind: String,
    /// The document's version.
    pub version: u64,
    /// Its feature count.
    pub features: usize,
    /// Size of the stored (signed) bytes.
    pub size: usize,
    /// The key id whose signature verified.
    pub signer: String,
    /// The document's `created_at`.
    pub created_at: String,
    /// The document's `provenance.source`.
    pub source: String,
    /// When it was first published, ms since the Unix epoch.
    pub published_at_ms: u64,
    /// Who published it (a token name).
    pub published_by: String,
    /// Set when a rollout failed with it: it can be neither published nor rolled out again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad: Option<BadMark>,
    /// Whether the fleet has blessed it (its rollout finished its watch, and it is among
    /// the newest blessed versions sent to edges as last-known-good candidates).
    #[serde(default)]
    pub blessed: bool,
}

/// Why and when an artifact was marked bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadMark {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Why, with the numbers.
    pub reason: String,
    /// The rollout that found it bad, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<u64>,
}

/// The answer to a publish: 201 when stored now, 200 when the same digest was already there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishResult {
    /// The stored artifact.
    pub artifact: ArtifactMeta,
    /// Whether this publish stored it (`false`: it was already stored, nothing changed).
    pub created: bool,
    /// The consumers whose contracts it was validated against.
    pub checked_against: Vec<String>,
}

/// A page of artifacts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactList {
    /// The artifacts.
    pub artifacts: Vec<ArtifactMeta>,
}

/// What changed between two stored artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffView {
    /// The old artifact.
    pub old: Digest,
    /// The new artifact.
    pub new: Digest,
    /// Old version.
    pub old_version: u64,
    /// New version.
    pub new_version: u64,
    /// Features in the old file.
    pub old_count: usize,
    /// Features in the new file.
    pub new_count: usize,
    /// Names only in the new file.
    pub added: Vec<Feature>,
    /// Names only in the old file.
    pub removed: Vec<Feature>,
    /// Names in both whose type or weight changed.
    pub changed: Vec<ChangeView>,
    /// The bias, when it changed: (old, new).
    pub bias: Option<(f64, f64)>,
    /// New count over old count (2.0 on 18 November).
    pub count_ratio: f64,
    /// Share of names added or removed.
    pub name_churn: f64,
}

/// A feature whose type or weight changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeView {
    /// The name.
    pub name: String,
    /// Old type.
    pub old_type: String,
    /// New type.
    pub new_type: String,
    /// Old weight.
    pub old_weight: f64,
    /// New weight.
    pub new_weight: f64,
}

// === impl DiffView ===

impl DiffView {
    /// The view of an artifact-crate [`Diff`] between two digests.
    pub fn new(old: Digest, new: Digest, diff: &Diff) -> Self {
        DiffView {
            old,
            new,
            old_version: diff.old_version,
            new_version: diff.new_version,
            old_count: diff.old_count,
            new_count: diff.new_count,
            added: diff.added.clone(),
            removed: diff.removed.clone(),
            changed: diff
                .changed
                .iter()
                .map(|c| ChangeView {
                    name: c.name.clone(),
                    old_type: c.ty.0.clone(),
                    new_type: c.ty.1.clone(),
                    old_weight: c.weight.0,
                    new_weight: c.weight.1,
                })
                .collect(),
            bias: diff.bias,
            count_ratio: diff.count_ratio(),
            name_churn: diff.name_churn(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_artifact::{Document, testing};

    fn doc(version: u64, names: &[&str]) -> Document {
        testing::document(version, testing::named(names, 1.0))
    }

    #[test]
    fn a_diff_view_carries_the_doubling_and_round_trips() {
        let old = doc(1, &["a", "b"]);
        let new = doc(2, &["a", "b", "a", "b"]);
        let view = DiffView::new(old.digest(), new.digest(), &Diff::between(&old, &new));
        assert_eq!((view.old_count, view.new_count), (2, 4));
        assert!(
            (view.count_ratio - 2.0).abs() < 1e-9,
            "{}",
            view.count_ratio
        );
        let back: DiffView = serde_json::from_str(&serde_json::to_string(&view).unwrap()).unwrap();
        assert_eq!(back, view);
    }
}
