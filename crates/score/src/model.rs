//! A feature file compiled for the request path: ids and weights in room reserved up front.
//!
//! This is where Cloudflare's FL2 called `append_with_names(..).unwrap()` on a file with
//! more features than its 200 preallocated slots. Here every way a file can fail to fit is a
//! [`CompileError`], returned before anything is swapped in, and the edge keeps its model.

use rampart_artifact::{Digest, Document, Validated, limits::HARD_MAX_FEATURES};

use crate::catalog::{COUNT, FeatureId};
use crate::features::Features;
use crate::score::{Score, score_logit};

/// Largest room [`Model::compile`] reserves: the most features any contract may allow.
pub const MAX_ROOM: usize = HARD_MAX_FEATURES;

/// A model ready to score requests.
///
/// Weights are stored as `f32`, like the features: a 200-term dot product in `f32` is exact
/// to about 1e-5 of the logit, far below what moves a score by one point. The bench `dot_200`
/// measures `f64` at the same speed (the loop is bound by the gather), so `f32` wins on
/// memory alone: half the model's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    version: u64,
    digest: Digest,
    bias: f32,
    ids: Vec<FeatureId>,
    weights: Vec<f32>,
    room: usize,
}

/// Why a validated feature file cannot become a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// The file has more features than the room reserved (the 18 November 2025 crash, as a
    /// value instead of a panic).
    #[error("{count} features do not fit the room for {room}")]
    TooManyFeatures {
        /// Features in the file.
        count: usize,
        /// The room, from the contract's `max_features`.
        room: usize,
    },
    /// The room asked for is larger than [`MAX_ROOM`].
    #[error("room for {room} features is over the maximum of {max}")]
    RoomTooLarge {
        /// The room asked for.
        room: usize,
        /// [`MAX_ROOM`].
        max: usize,
    },
    /// A feature this module has no extractor for.
    // "catalogue" stays in these two messages: they reach `/status` and the control plane
    // verbatim, and the workspace spells the word "catalog" everywhere else.
    #[error("feature `{name}` is not in the extractor catalogue")]
    UnknownFeature {
        /// Its name.
        name: String,
    },
    /// A feature whose type is not the catalog's.
    #[error("feature `{name}` has type {found}, the catalogue says {expected}")]
    TypeMismatch {
        /// Its name.
        name: String,
        /// The catalog's type.
        expected: &'static str,
        /// The file's type.
        found: String,
    },
    /// A feature listed twice (the 18 November duplicate rows).
    #[error("feature `{name}` appears more than once")]
    DuplicateFeature {
        /// Its name.
        name: String,
    },
    /// A weight or the bias that is not a finite `f32` (too large for one).
    #[error("weight of `{name}` is not a finite f32")]
    NonFinite {
        /// The feature's name, or `model.bias`.
        name: String,
    },
}

// === impl Model ===

impl Model {
    /// Compiles a validated feature file into room for `room` features (the contract's
    /// `max_features`). Checks the count against the room before reading any feature, and
    /// allocates only at compile time: scoring never does.
    pub fn compile(validated: &Validated, room: usize) -> Result<Model, CompileError> {
        Self::from_document(validated.document(), validated.digest(), room)
    }

    /// The checks of [`compile`](Self::compile), on any document: the model does not rely on
    /// validation having refused duplicates or unknown names.
    fn from_document(doc: &Document, digest: Digest, room: usize) -> Result<Model, CompileError> {
        if room > MAX_ROOM {
            return Err(CompileError::RoomTooLarge {
                room,
                max: MAX_ROOM,
            });
        }
        let count = doc.features.len();
        if count > room {
            return Err(CompileError::TooManyFeatures { count, room });
        }
        let bias = finite_f32(doc.model.bias).ok_or_else(|| CompileError::NonFinite {
            name: "model.bias".to_owned(),
        })?;
        let mut ids = Vec::with_capacity(room);
        let mut weights = Vec::with_capacity(room);
        let mut seen = [false; COUNT];
        for feature in &doc.features {
            let name = || feature.name.clone();
            let id = FeatureId::from_name(&feature.name)
                .ok_or_else(|| CompileError::UnknownFeature { name: name() })?;
            if feature.ty != id.ty() {
                return Err(CompileError::TypeMismatch {
                    name: name(),
                    expected: id.ty(),
                    found: feature.ty.clone(),
                });
            }
            match seen.get_mut(id.index()) {
                Some(s) if !*s => *s = true,
                _ => return Err(CompileError::DuplicateFeature { name: name() }),
            }
            let weight =
                finite_f32(feature.weight).ok_or(CompileError::NonFinite { name: name() })?;
            ids.push(id);
            weights.push(weight);
        }
        Ok(Model {
            version: doc.version,
            digest,
            bias,
            ids,
            weights,
            room,
        })
    }

    /// A model from raw terms, repeats allowed and no room check: only for benchmarks that
    /// need more terms than the catalog has names (a 200-feature model).
    #[doc(hidden)]
    pub fn from_raw_for_bench(terms: &[(FeatureId, f32)], bias: f32) -> Model {
        Model {
            version: 0,
            digest: Digest::of(b"bench"),
            bias,
            ids: terms.iter().map(|(id, _)| *id).collect(),
            weights: terms.iter().map(|(_, w)| *w).collect(),
            room: terms.len(),
        }
    }

    /// Scores one request's features: `sigmoid(bias + Σ weight·value)`, mapped to 1..=99;
    /// [`Unscored::ModuleError`](crate::Unscored::ModuleError) if the sum is not finite.
    pub fn score(&self, features: &Features) -> Score {
        score_logit(self.logit(features))
    }

    /// `bias + Σ weight·value`.
    pub fn logit(&self, features: &Features) -> f32 {
        let values = features.as_slice();
        let mut sum = self.bias;
        for (id, w) in self.ids.iter().zip(&self.weights) {
            sum += w * values.get(id.index()).copied().unwrap_or(0.0);
        }
        sum
    }

    /// The version of the feature file this model came from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The digest of the feature file this model came from.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The model's bias.
    pub fn bias(&self) -> f32 {
        self.bias
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the model has no features (it then scores the bias alone).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The room the model was compiled into.
    pub fn room(&self) -> usize {
        self.room
    }

    /// `(feature, weight)` in file order.
    pub fn terms(&self) -> impl Iterator<Item = (FeatureId, f32)> + Clone + '_ {
        self.ids.iter().copied().zip(self.weights.iter().copied())
    }
}

/// `v` as a finite `f32`, or `None` when it is not finite or overflows `f32`.
fn finite_f32(v: f64) -> Option<f32> {
    let narrow = v as f32;
    narrow.is_finite().then_some(narrow)
}

#[cfg(test)]
mod tests {
    use rampart_artifact::testing::{self, feature};
    use rampart_artifact::{Contract, Feature, validate};

    use super::*;
    use crate::catalog::CATALOG;
    use crate::score::Unscored;

    fn doc(features: Vec<Feature>) -> Document {
        Document {
            model: rampart_artifact::Model { bias: 0.25 },
            ..testing::document(7, features)
        }
    }

    /// Validated against a permissive contract, so the model's own checks are what is tested.
    fn validated(d: &Document) -> Validated {
        let c = Contract::from_toml("max_features = 100000\nmax_abs_weight = 1e300").unwrap();
        validate(d, &c, None).unwrap()
    }

    fn catalog_doc(n: usize) -> Document {
        doc(CATALOG
            .iter()
            .take(n)
            .map(|e| feature(e.name, e.ty, 0.5))
            .collect())
    }

    #[test]
    fn compiles_into_the_room_and_keeps_the_provenance() {
        let d = catalog_doc(60);
        let v = validated(&d);
        let p = Model::compile(&v, 200).unwrap();
        assert_eq!(p.len(), 60);
        assert_eq!(p.room(), 200);
        assert!(p.ids.capacity() >= 200 && p.weights.capacity() >= 200);
        assert_eq!(p.version(), 7);
        assert_eq!(p.digest(), d.digest());
        assert_eq!(p.bias(), 0.25);
        let names: Vec<_> = p.terms().map(|(id, _)| id.name()).collect();
        assert_eq!(names, d.names().collect::<Vec<_>>());
    }

    #[test]
    fn more_features_than_the_room_is_a_typed_error() {
        // 201 features, room 200: the FL2 unwrap, as a value. Names are checked after the
        // count, so even a file of unknown names reports the count first.
        let d = doc((0..201)
            .map(|i| feature(&format!("f_{i}"), "Float32", 1.0))
            .collect());
        assert_eq!(
            Model::compile(&validated(&d), 200),
            Err(CompileError::TooManyFeatures {
                count: 201,
                room: 200
            })
        );
        // Exactly the room fits.
        let d = catalog_doc(CATALOG.len());
        assert!(Model::compile(&validated(&d), CATALOG.len()).is_ok());
        assert_eq!(
            Model::compile(&validated(&d), CATALOG.len() - 1),
            Err(CompileError::TooManyFeatures {
                count: CATALOG.len(),
                room: CATALOG.len() - 1
            })
        );
    }

    #[test]
    fn the_18_november_file_fails_on_count_then_on_duplicates() {
        // Every feature twice. The artifact validator refuses duplicates before a model is
        // ever compiled; the model checks again on its own (defense in depth), tested here on
        // the document directly since no `Validated` can hold duplicates.
        let mut d = catalog_doc(60);
        let copy = d.features.clone();
        d.features.extend(copy);
        let compile = |room| Model::from_document(&d, d.digest(), room);
        assert_eq!(
            compile(200),
            Err(CompileError::DuplicateFeature {
                name: "ua_length".into()
            })
        );
        assert_eq!(
            compile(60),
            Err(CompileError::TooManyFeatures {
                count: 120,
                room: 60
            })
        );
        // The real file (every feature of a 120-feature catalog twice) is over 200: the
        // count stops it before any name is read.
        let big = doc((0..240)
            .map(|i| feature(&format!("f_{}", i % 120), "Float32", 1.0))
            .collect());
        assert_eq!(
            Model::from_document(&big, big.digest(), 200),
            Err(CompileError::TooManyFeatures {
                count: 240,
                room: 200
            })
        );
    }

    #[test]
    fn unknown_names_and_wrong_types() {
        let d = doc(vec![
            feature("ua_length", "UInt16", 1.0),
            feature("bot_score", "Float32", 1.0),
        ]);
        assert_eq!(
            Model::compile(&validated(&d), 200),
            Err(CompileError::UnknownFeature {
                name: "bot_score".into()
            })
        );
        let d = doc(vec![feature("ua_length", "Float64", 1.0)]);
        assert_eq!(
            Model::compile(&validated(&d), 200),
            Err(CompileError::TypeMismatch {
                name: "ua_length".into(),
                expected: "UInt16",
                found: "Float64".into()
            })
        );
    }

    #[test]
    fn weights_too_large_for_f32_are_refused() {
        let d = doc(vec![feature("ua_length", "UInt16", 1e300)]);
        assert_eq!(
            Model::compile(&validated(&d), 200),
            Err(CompileError::NonFinite {
                name: "ua_length".into()
            })
        );
        let mut d = doc(vec![feature("ua_length", "UInt16", 1.0)]);
        d.model.bias = -1e200;
        assert_eq!(
            Model::compile(&validated(&d), 200),
            Err(CompileError::NonFinite {
                name: "model.bias".into()
            })
        );
    }

    #[test]
    fn room_is_bounded() {
        let v = validated(&catalog_doc(3));
        assert_eq!(
            Model::compile(&v, usize::MAX),
            Err(CompileError::RoomTooLarge {
                room: usize::MAX,
                max: MAX_ROOM
            })
        );
    }

    #[test]
    fn extreme_weights_still_score_1_to_99() {
        let mut f = Features::zeroed();
        f.set(FeatureId::UaLength, 65_535.0);
        f.set(FeatureId::HdrCount, 255.0);
        for w in [-1e30_f32, -1000.0, -1.0, 0.0, 1.0, 1000.0, 1e30] {
            let p = Model::from_raw_for_bench(
                &[(FeatureId::UaLength, w), (FeatureId::HdrCount, w)],
                0.0,
            );
            let s = p.score(&f).value().unwrap();
            assert!((1..=99).contains(&s), "{w}: {s}");
        }
        // A sum that overflows f32 is a module error, never a score.
        let p = Model::from_raw_for_bench(
            &[
                (FeatureId::UaLength, f32::MAX),
                (FeatureId::HdrCount, f32::MAX),
            ],
            0.0,
        );
        assert_eq!(p.score(&f), Score::Unscored(Unscored::ModuleError));
    }

    #[test]
    fn the_logit_is_bias_plus_the_dot_product() {
        let mut f = Features::zeroed();
        f.set(FeatureId::UaLength, 100.0);
        f.set(FeatureId::HdrHasAcceptLanguage, 1.0);
        let p = Model::from_raw_for_bench(
            &[
                (FeatureId::UaLength, 0.01),
                (FeatureId::HdrHasAcceptLanguage, 2.0),
                (FeatureId::UaIsEmpty, -5.0),
            ],
            -0.5,
        );
        assert!((p.logit(&f) - 2.5).abs() < 1e-6);
        assert_eq!(p.score(&Features::zeroed()), score_logit(-0.5));
    }
}
