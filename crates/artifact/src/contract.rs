//! What one consumer accepts, declared by the consumer and checked by every producer.
//!
//! A contract file (TOML) is read into a [`ContractSpec`] (plain, serde), then checked into
//! a [`Contract`] (bounds enforced, lookup sets built). Everything not set takes the
//! defaults from [`crate::limits`].

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::limits::{
    DEFAULT_MAX_ABS_WEIGHT, DEFAULT_MAX_BYTES, DEFAULT_MAX_FEATURES, DEFAULT_MAX_NAME_LEN,
    DEFAULT_MIN_FEATURES, HARD_MAX_BYTES, HARD_MAX_FEATURES, HARD_MAX_NAME_LEN,
};

/// ClickHouse type names a consumer accepts unless its contract says otherwise.
pub const DEFAULT_ALLOWED_TYPES: &[&str] = &[
    "Bool", "UInt8", "UInt16", "UInt32", "UInt64", "Int8", "Int16", "Int32", "Int64", "Float32",
    "Float64",
];

/// The contract file format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContractSpec {
    /// Who declares this contract (`edge`, `edge/fl`, a team).
    pub consumer: String,
    /// Most features the consumer has room for.
    pub max_features: usize,
    /// Fewest features that make sense (an empty file is a broken query).
    pub min_features: usize,
    /// Largest document, in bytes of its canonical form (or of a bare file).
    pub max_bytes: usize,
    /// Longest feature name, in bytes.
    pub max_name_len: usize,
    /// Largest magnitude of a weight or the bias.
    pub max_abs_weight: f64,
    /// ClickHouse type names accepted.
    pub allowed_types: Vec<String>,
    /// When set, the only names accepted (the consumer's extractor catalog).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_names: Option<Vec<String>>,
}

/// A checked contract, ready to validate against.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    spec: ContractSpec,
    allowed: HashSet<String>,
    known: Option<HashSet<String>>,
}

/// A contract file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// Not TOML, or fields of the wrong type or unknown.
    #[error("contract is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// Not JSON, or fields of the wrong type or unknown.
    #[error("contract is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A value out of its bounds.
    #[error("contract field `{field}` {problem}")]
    Bound {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

// === impl ContractSpec ===

impl Default for ContractSpec {
    fn default() -> Self {
        ContractSpec {
            consumer: "default".to_owned(),
            max_features: DEFAULT_MAX_FEATURES,
            min_features: DEFAULT_MIN_FEATURES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_name_len: DEFAULT_MAX_NAME_LEN,
            max_abs_weight: DEFAULT_MAX_ABS_WEIGHT,
            allowed_types: DEFAULT_ALLOWED_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            known_names: None,
        }
    }
}

// === impl Contract ===

impl Contract {
    /// Reads a contract from TOML.
    pub fn from_toml(text: &str) -> Result<Self, ContractError> {
        Self::try_from(toml::from_str::<ContractSpec>(text)?)
    }

    /// Reads a contract from JSON (as served by an edge or the control plane).
    pub fn from_json(text: &str) -> Result<Self, ContractError> {
        Self::try_from(serde_json::from_str::<ContractSpec>(text)?)
    }

    /// Reads a contract file in either format: JSON when it starts with `{`, else TOML.
    pub fn parse(text: &str) -> Result<Self, ContractError> {
        if text.trim_start().starts_with('{') {
            Self::from_json(text)
        } else {
            Self::from_toml(text)
        }
    }

    /// The contract as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.spec).unwrap_or_default()
    }

    /// The spec this contract was built from.
    pub fn spec(&self) -> &ContractSpec {
        &self.spec
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.spec.consumer
    }

    /// Most features accepted.
    pub fn max_features(&self) -> usize {
        self.spec.max_features
    }

    /// Fewest features accepted.
    pub fn min_features(&self) -> usize {
        self.spec.min_features
    }

    /// Largest document in bytes.
    pub fn max_bytes(&self) -> usize {
        self.spec.max_bytes
    }

    /// Longest name in bytes.
    pub fn max_name_len(&self) -> usize {
        self.spec.max_name_len
    }

    /// Largest magnitude of a weight.
    pub fn max_abs_weight(&self) -> f64 {
        self.spec.max_abs_weight
    }

    /// Whether a type name is accepted.
    pub fn allows_type(&self, ty: &str) -> bool {
        self.allowed.contains(ty)
    }

    /// Whether a feature name is known (always true without a list of known names).
    pub fn knows_name(&self, name: &str) -> bool {
        self.known.as_ref().is_none_or(|k| k.contains(name))
    }

    /// Whether this contract lists the names it knows.
    pub fn has_known_names(&self) -> bool {
        self.known.is_some()
    }
}

impl Default for Contract {
    /// The defaults of [`crate::limits`]: 200 features, 1 MiB, numeric types, any safe name.
    fn default() -> Self {
        let spec = ContractSpec::default();
        Contract {
            allowed: spec.allowed_types.iter().cloned().collect(),
            known: None,
            spec,
        }
    }
}

impl TryFrom<ContractSpec> for Contract {
    type Error = ContractError;

    fn try_from(spec: ContractSpec) -> Result<Self, Self::Error> {
        let bound = |field, problem: String| Err(ContractError::Bound { field, problem });
        if spec.consumer.is_empty() || spec.consumer.len() > 128 {
            return bound("consumer", "must be 1 to 128 bytes".into());
        }
        if spec.max_features == 0 || spec.max_features > HARD_MAX_FEATURES {
            return bound("max_features", format!("must be 1 to {HARD_MAX_FEATURES}"));
        }
        if spec.min_features > spec.max_features {
            return bound(
                "min_features",
                format!("must not exceed max_features ({})", spec.max_features),
            );
        }
        if spec.max_bytes == 0 || spec.max_bytes > HARD_MAX_BYTES {
            return bound("max_bytes", format!("must be 1 to {HARD_MAX_BYTES}"));
        }
        if spec.max_name_len == 0 || spec.max_name_len > HARD_MAX_NAME_LEN {
            return bound("max_name_len", format!("must be 1 to {HARD_MAX_NAME_LEN}"));
        }
        if !(spec.max_abs_weight.is_finite() && spec.max_abs_weight > 0.0) {
            return bound("max_abs_weight", "must be a positive finite number".into());
        }
        if spec.allowed_types.is_empty() {
            return bound("allowed_types", "must list at least one type".into());
        }
        let allowed: HashSet<String> = spec.allowed_types.iter().cloned().collect();
        let known = match &spec.known_names {
            None => None,
            Some(names) => {
                if names.len() > HARD_MAX_FEATURES {
                    return bound(
                        "known_names",
                        format!("lists more than {HARD_MAX_FEATURES} names"),
                    );
                }
                let set: HashSet<String> = names.iter().cloned().collect();
                if set.len() != names.len() {
                    return bound("known_names", "lists a name twice".into());
                }
                Some(set)
            }
        };
        Ok(Contract {
            spec,
            allowed,
            known,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_either_format_and_refuses_neither() {
        let c = Contract::default();
        let json = serde_json::to_string(c.spec()).unwrap();
        assert_eq!(Contract::parse(&format!("  {json}")).unwrap(), c);
        assert_eq!(Contract::parse(&c.to_toml()).unwrap(), c);
        assert!(Contract::parse("{ not json").is_err());
        assert!(Contract::parse("= not toml").is_err());
    }

    #[test]
    fn an_empty_file_is_the_default_contract() {
        let c = Contract::from_toml("").unwrap();
        assert_eq!(c, Contract::default());
        assert_eq!(c.max_features(), 200);
        assert_eq!(c.max_bytes(), 1024 * 1024);
    }

    #[test]
    fn toml_round_trips() {
        let c = Contract::from_toml(
            "consumer = \"edge\"\nmax_features = 64\nknown_names = [\"a\", \"b\"]\n",
        )
        .unwrap();
        assert_eq!(Contract::from_toml(&c.to_toml()).unwrap(), c);
        assert!(c.knows_name("a") && !c.knows_name("c"));
        assert_eq!(c.max_features(), 64);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Contract::from_toml("max_featurez = 3").unwrap_err();
        assert!(e.to_string().contains("max_featurez"), "{e}");
    }

    #[test]
    fn bounds_are_enforced() {
        for (text, field) in [
            ("max_features = 0", "max_features"),
            ("max_features = 1000000", "max_features"),
            ("min_features = 300", "min_features"),
            ("max_bytes = 0", "max_bytes"),
            ("max_name_len = 5000", "max_name_len"),
            ("max_abs_weight = -1.0", "max_abs_weight"),
            ("max_abs_weight = nan", "max_abs_weight"),
            ("allowed_types = []", "allowed_types"),
            ("known_names = [\"a\", \"a\"]", "known_names"),
            ("consumer = \"\"", "consumer"),
        ] {
            match Contract::from_toml(text) {
                Err(ContractError::Bound { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_form_is_accepted() {
        let c = Contract::from_json(r#"{"consumer":"edge","max_features":10}"#).unwrap();
        assert_eq!(c.max_features(), 10);
    }
}
