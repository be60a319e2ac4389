//! What changed between two feature files: for people (`rampart artifact diff`) and for the
//! generator's delta guard.

use std::collections::HashMap;

use serde::Serialize;

use crate::document::{Document, Feature};

/// The difference between an old and a new document, by feature name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
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
    pub changed: Vec<Change>,
    /// The bias, when it changed: (old, new).
    pub bias: Option<(f64, f64)>,
}

/// A feature whose type or weight changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The name.
    pub name: String,
    /// Old and new type.
    pub ty: (String, String),
    /// Old and new weight.
    pub weight: (f64, f64),
}

// === impl Diff ===

impl Diff {
    /// Compares two documents. Duplicate names count once (the first occurrence) for the
    /// name sets; the counts are the raw lengths.
    pub fn between(old: &Document, new: &Document) -> Self {
        let old_by_name = first_by_name(&old.features);
        let new_by_name = first_by_name(&new.features);
        let mut added = Vec::new();
        let mut changed = Vec::new();
        for f in unique(&new.features, &new_by_name) {
            match old_by_name.get(f.name.as_str()) {
                None => added.push(f.clone()),
                Some(o) if o.ty != f.ty || o.weight.to_bits() != f.weight.to_bits() => changed
                    .push(Change {
                        name: f.name.clone(),
                        ty: (o.ty.clone(), f.ty.clone()),
                        weight: (o.weight, f.weight),
                    }),
                Some(_) => {}
            }
        }
        let removed = unique(&old.features, &old_by_name)
            .filter(|f| !new_by_name.contains_key(f.name.as_str()))
            .cloned()
            .collect();
        Diff {
            old_version: old.version,
            new_version: new.version,
            old_count: old.features.len(),
            new_count: new.features.len(),
            added,
            removed,
            changed,
            bias: (old.model.bias.to_bits() != new.model.bias.to_bits())
                .then_some((old.model.bias, new.model.bias)),
        }
    }

    /// New count over old count (infinite when the old file had none).
    pub fn count_ratio(&self) -> f64 {
        if self.old_count == 0 {
            return if self.new_count == 0 {
                1.0
            } else {
                f64::INFINITY
            };
        }
        self.new_count as f64 / self.old_count as f64
    }

    /// The share of the old names that are gone or replaced: `max(added, removed) / old`.
    /// Replacing 12 names of 60 is 0.2.
    pub fn name_churn(&self) -> f64 {
        let moved = self.added.len().max(self.removed.len());
        if self.old_count == 0 {
            return if moved == 0 { 0.0 } else { 1.0 };
        }
        moved as f64 / self.old_count as f64
    }

    /// Whether nothing a scorer reads changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.bias.is_none()
            && self.old_count == self.new_count
    }
}

fn first_by_name(features: &[Feature]) -> HashMap<&str, &Feature> {
    let mut map = HashMap::with_capacity(features.len());
    for f in features {
        map.entry(f.name.as_str()).or_insert(f);
    }
    map
}

/// The features in file order, each name once.
fn unique<'a>(
    features: &'a [Feature],
    firsts: &'a HashMap<&str, &Feature>,
) -> impl Iterator<Item = &'a Feature> {
    features.iter().filter(move |f| {
        firsts
            .get(f.name.as_str())
            .is_some_and(|first| std::ptr::eq(*first, *f))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn doc(names: &[&str]) -> Document {
        testing::document(1, testing::named(names, 1.0))
    }

    #[test]
    fn added_removed_changed() {
        let old = doc(&["a", "b", "c"]);
        let mut new = doc(&["a", "b", "d"]);
        new.features[1].weight = 2.0;
        new.model.bias = 0.5;
        let d = Diff::between(&old, &new);
        assert_eq!(
            d.added.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["d"]
        );
        assert_eq!(
            d.removed
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].weight, (1.0, 2.0));
        assert_eq!(d.bias, Some((0.0, 0.5)));
        assert!((d.name_churn() - 1.0 / 3.0).abs() < 1e-9);
        assert!(!d.is_empty());
    }

    #[test]
    fn doubling_by_duplicates_shows_in_the_ratio_not_the_names() {
        let old = doc(&["a", "b"]);
        let new = doc(&["a", "b", "a", "b"]);
        let d = Diff::between(&old, &new);
        assert!(d.added.is_empty() && d.removed.is_empty());
        assert_eq!(d.count_ratio(), 2.0);
        assert!(!d.is_empty());
    }

    #[test]
    fn identical_is_empty() {
        let d = Diff::between(&doc(&["a"]), &doc(&["a"]));
        assert!(d.is_empty());
        assert_eq!(d.count_ratio(), 1.0);
        assert_eq!(d.name_churn(), 0.0);
    }

    #[test]
    fn from_nothing() {
        let d = Diff::between(&doc(&[]), &doc(&["a"]));
        assert_eq!(d.count_ratio(), f64::INFINITY);
        assert_eq!(d.name_churn(), 1.0);
    }
}
