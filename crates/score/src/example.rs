//! A hand-weighted example model, shipped until `rampart model fit` produces a real one.
//!
//! The weights encode what every bot-detection write-up agrees on: browsers send many
//! headers (language, fetch metadata, client hints) and a long `Mozilla/…` user agent with
//! an engine and a platform; tools send three headers and name themselves; crawlers say
//! `bot` and link their documentation; a client hammering the edge is automated. They were
//! set by hand against a few dozen real user agents with realistic header sets (see
//! `tests/separation.rs`), not fitted: treat the scores as plausible, not calibrated.

use rampart_artifact::{Document, Feature, Model, Provenance, SCHEMA};

use crate::catalog::FeatureId as F;

/// `provenance.source` of the example model.
pub const EXAMPLE_SOURCE: &str = "catalog:example";

/// `created_at` of the example model: fixed, so its digest depends only on its version.
pub const EXAMPLE_CREATED_AT: &str = "2025-11-18T10:00:00Z";

/// The intercept: a request with no evidence either way leans automated.
pub const EXAMPLE_BIAS: f64 = -3.5;

/// The example model's features and weights, in file order. Positive pushes towards human.
pub const EXAMPLE_WEIGHTS: &[(F, f64)] = &[
    // User agent: shape.
    (F::UaLength, 0.004),
    (F::UaIsEmpty, -3.0),
    (F::UaTokenCount, 0.03),
    (F::UaMaxTokenLen, -0.005),
    (F::UaDigitRatio, -1.0),
    (F::UaUpperRatio, -0.5),
    (F::UaParenCount, 0.2),
    (F::UaSemicolonCount, 0.05),
    // User agent: engine, browser and platform tokens.
    (F::UaHasMozilla, 0.5),
    (F::UaHasCompatible, -1.0),
    (F::UaHasApplewebkit, 0.2),
    (F::UaHasGecko, 0.3),
    (F::UaHasKhtml, 0.1),
    (F::UaHasChrome, 0.2),
    (F::UaHasFirefox, 0.3),
    (F::UaHasSafari, 0.2),
    (F::UaHasEdge, 0.1),
    (F::UaHasOpera, 0.1),
    (F::UaHasMobile, 0.1),
    (F::UaHasWindows, 0.2),
    (F::UaHasMacos, 0.2),
    (F::UaHasLinux, -0.1),
    (F::UaHasAndroid, 0.2),
    (F::UaHasIos, 0.2),
    (F::UaBrowserMajor, 0.3),
    // User agent: automation that says so. Large on purpose: a declared crawler or a
    // headless browser is automated whatever headers it copies.
    (F::UaHasBotWord, -8.0),
    (F::UaHasHttpLibrary, -6.0),
    (F::UaHasHeadless, -10.0),
    (F::UaHasUrl, -2.0),
    (F::UaHasEmail, -1.0),
    // Headers: what browsers send.
    (F::HdrCount, 0.04),
    (F::HdrHasAccept, 0.1),
    (F::HdrHasAcceptLanguage, 1.0),
    (F::HdrHasAcceptEncoding, 0.2),
    (F::HdrHasCookie, 0.4),
    (F::HdrHasReferer, 0.3),
    (F::HdrHasSecChUa, 0.3),
    (F::HdrHasSecChUaMobile, 0.1),
    (F::HdrHasSecChUaPlatform, 0.1),
    (F::HdrHasSecFetchSite, 0.4),
    (F::HdrHasSecFetchMode, 0.2),
    (F::HdrHasSecFetchDest, 0.2),
    (F::HdrHasSecFetchUser, 0.2),
    (F::HdrHasUpgradeInsecureRequests, 0.2),
    (F::HdrHasCacheControl, 0.05),
    (F::HdrHasAuthorization, -0.3),
    (F::HdrAcceptIsWildcard, -1.0),
    (F::HdrAcceptHasHtml, 0.4),
    (F::HdrAcceptLanguageCount, 0.05),
    (F::HdrAcceptEncodingHasBr, 0.3),
    (F::HdrAcceptEncodingHasZstd, 0.2),
    // Headers: contradictions between the user agent and the client hints.
    (F::HdrSecChUaWithoutChromium, -1.5),
    (F::HdrChromiumWithoutSecChUa, -1.0),
    // Method, protocol, path.
    (F::ReqMethodGet, 0.1),
    (F::ReqMethodHead, -1.0),
    (F::ReqMethodOther, -0.5),
    (F::ReqHttp10, -1.5),
    (F::PathDepth, 0.05),
    (F::PathIsStatic, 0.2),
    (F::PathIsRobots, -2.0),
    (F::PathIsWellKnown, -0.5),
    (F::PathHasDotdot, -2.5),
    // Rate: the log term costs a page load with its assets (50 a minute) about 1 point of
    // logit; the linear term makes 600 a minute cost 7.
    (F::ClientRate1m, -0.01),
    (F::ClientRateLog2, -0.15),
];

/// The example model as a feature file of version `version`, valid against
/// [`edge_contract`](crate::edge_contract).
pub fn example_document(version: u64) -> Document {
    Document {
        schema: SCHEMA.to_owned(),
        version,
        created_at: EXAMPLE_CREATED_AT.to_owned(),
        provenance: Provenance {
            source: EXAMPLE_SOURCE.to_owned(),
            query: "rampart_score::example::EXAMPLE_WEIGHTS".to_owned(),
            rows: EXAMPLE_WEIGHTS.len() as u64,
            generator: "rampart".to_owned(),
            generator_version: env!("CARGO_PKG_VERSION").to_owned(),
            server_version: None,
        },
        model: Model { bias: EXAMPLE_BIAS },
        features: EXAMPLE_WEIGHTS
            .iter()
            .map(|(id, weight)| Feature {
                name: id.name().to_owned(),
                ty: id.ty().to_owned(),
                weight: *weight,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use rampart_artifact::validate;

    use super::*;
    use crate::catalog::edge_contract;
    use crate::model::Model;

    #[test]
    fn the_example_validates_against_the_edge_contract_and_compiles() {
        let d = example_document(3);
        let contract = edge_contract();
        let v = validate(&d, &contract, None).unwrap();
        let p = Model::compile(&v, contract.max_features()).unwrap();
        assert_eq!(p.version(), 3);
        assert_eq!(p.len(), EXAMPLE_WEIGHTS.len());
        assert!((55..=70).contains(&p.len()), "{}", p.len());
        assert_eq!(d.provenance.source, "catalog:example");
        assert_eq!(d.provenance.generator, "rampart");
    }

    #[test]
    fn the_digest_depends_on_the_version_only() {
        assert_eq!(example_document(1).digest(), example_document(1).digest());
        assert_ne!(example_document(1).digest(), example_document(2).digest());
    }
}
