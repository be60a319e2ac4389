//! The catalog file: the bot model as `rampart model fit` writes it, and the default source of
//! `rampart generate` (compiled in, so it needs nothing running).
//!
//! Format (`rampart.catalog/v1`, JSON):
//!
//! ```json
//! {
//!   "schema": "rampart.catalog/v1",
//!   "bias": -1.25,
//!   "features": [{"name": "ua_length", "type": "UInt16", "weight": 0.0123}, …],
//!   "fit": {"seed": 1, "data": "…", "samples": 30000, "holdout_auc": 0.99, …}
//! }
//! ```
//!
//! `features` are the columns of `http_requests_features` with their ClickHouse types and the
//! logistic weights of raw extractor values (positive pushes towards "human", like the edge's
//! score); `fit` is free-form provenance of the fit and is not copied into feature files.

use std::collections::HashSet;

use rampart_artifact::{Digest, Feature};
use serde::{Deserialize, Serialize};

/// The schema identifier of a catalog file.
pub const CATALOG_SCHEMA: &str = "rampart.catalog/v1";

/// Where the embedded catalog lives in the repository (shown in provenance).
pub const EMBEDDED_PATH: &str = "catalog/features.catalog.json";

/// The catalog compiled into the binary.
pub const EMBEDDED: &str = include_str!("../../../catalog/features.catalog.json");

/// Largest catalog file accepted, in bytes: 200 features take about 15 KiB.
pub const MAX_CATALOG_BYTES: usize = 1024 * 1024;

/// A bot model: features with types and weights, and a bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Always [`CATALOG_SCHEMA`].
    pub schema: String,
    /// Intercept of the logistic model.
    pub bias: f64,
    /// The features, in the order they are published.
    pub features: Vec<Feature>,
    /// How the model was fitted (free-form, for people).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub fit: serde_json::Value,
}

/// A catalog file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Larger than [`MAX_CATALOG_BYTES`].
    #[error("catalog is {size} bytes, over the limit of {MAX_CATALOG_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// Not the catalog JSON format.
    #[error("catalog is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// A schema other than [`CATALOG_SCHEMA`].
    #[error("catalog schema is {found:?}, expected {CATALOG_SCHEMA:?}")]
    Schema {
        /// The schema found.
        found: String,
    },
    /// A weight or the bias that is not finite.
    #[error("catalog weight of {name} is not finite")]
    NonFinite {
        /// The feature, or `bias`.
        name: String,
    },
}

// === impl Catalog ===

impl Catalog {
    /// The embedded catalog.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Catalog::parse(EMBEDDED)
    }

    /// Parses and checks a catalog (size first). Duplicate names are kept: the generator's
    /// duplicate guard reports them, as it would for a table.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        if text.len() > MAX_CATALOG_BYTES {
            return Err(CatalogError::TooLarge { size: text.len() });
        }
        let catalog: Catalog = serde_json::from_str(text)?;
        if catalog.schema != CATALOG_SCHEMA {
            return Err(CatalogError::Schema {
                found: catalog.schema,
            });
        }
        if !catalog.bias.is_finite() {
            return Err(CatalogError::NonFinite {
                name: "bias".into(),
            });
        }
        if let Some(f) = catalog.features.iter().find(|f| !f.weight.is_finite()) {
            return Err(CatalogError::NonFinite {
                name: f.name.clone(),
            });
        }
        Ok(catalog)
    }

    /// Pretty JSON with a trailing newline (the file in the repository).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The weight of a feature by name (the first, when listed twice).
    pub fn weight(&self, name: &str) -> Option<f64> {
        self.features
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.weight)
    }

    /// The feature names, each once.
    pub fn names(&self) -> HashSet<&str> {
        self.features.iter().map(|f| f.name.as_str()).collect()
    }
}

/// The sha256 of the embedded catalog's bytes, for provenance.
pub fn embedded_digest() -> Digest {
    Digest::of(EMBEDDED.as_bytes())
}

#[cfg(test)]
mod tests {
    use rampart_artifact::{Document, Model, testing, validate};
    use rampart_score::edge_contract;

    use super::*;

    #[test]
    fn the_embedded_catalog_is_a_60ish_feature_model_the_edge_accepts() {
        let c = Catalog::embedded().unwrap();
        assert!(
            (50..=70).contains(&c.features.len()),
            "{}",
            c.features.len()
        );
        let doc = Document {
            model: Model { bias: c.bias },
            ..testing::document(1, c.features.clone())
        };
        let contract = edge_contract();
        let v = validate(&doc, &contract, None).unwrap();
        rampart_score::Model::compile(&v, contract.max_features()).unwrap();
    }

    #[test]
    fn round_trips_and_refuses_what_is_wrong() {
        let c = Catalog::embedded().unwrap();
        assert_eq!(Catalog::parse(&c.to_json()).unwrap(), c);
        let first = &c.features[0];
        assert_eq!(c.weight(&first.name), Some(first.weight));
        assert_eq!(c.weight("nope"), None);
        assert!(matches!(
            Catalog::parse(r#"{"schema":"x","bias":0,"features":[]}"#),
            Err(CatalogError::Schema { .. })
        ));
        assert!(matches!(
            Catalog::parse(r#"{"schema":"rampart.catalog/v1","bias":0,"features":[],"extra":1}"#),
            Err(CatalogError::Json(_))
        ));
        assert!(matches!(
            Catalog::parse(&" ".repeat(MAX_CATALOG_BYTES + 1)),
            Err(CatalogError::TooLarge { .. })
        ));
        let huge = r#"{"schema":"rampart.catalog/v1","bias":1e999,"features":[]}"#;
        assert!(Catalog::parse(huge).is_err());
    }
}
