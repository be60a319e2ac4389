//! The fit on the full shared data reproduces the committed catalog, byte for byte, and meets
//! the AUC goal on held-out user agents. Reads `../shared/data/user-agents` (the fit's input;
//! the product itself never does).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use rampart_fit::{FitOptions, GOAL_AUC, TARGET_FEATURES, fit};
use rampart_generate::{Catalog, catalog};
use rampart_traffic::Profiles;

#[test]
fn the_committed_catalog_is_what_the_fit_produces_and_meets_the_goal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = root.join("../shared/data/user-agents");
    let profiles = Profiles::load(&data).unwrap_or_else(|e| {
        panic!(
            "the shared user-agent data is needed at {}: {e}",
            data.display()
        )
    });
    // The options `rampart model fit` uses by default, run from the repository root.
    let result = fit(
        &profiles,
        &FitOptions {
            data: "../shared/data/user-agents".into(),
            seed: 1,
            features: TARGET_FEATURES,
        },
    )
    .unwrap();
    let last = result.evaluations.last().unwrap();
    assert!(last.auc >= GOAL_AUC, "{:?}", result.evaluations);
    assert_eq!(result.catalog.features.len(), TARGET_FEATURES);
    assert_eq!(
        result.catalog,
        Catalog::parse(catalog::EMBEDDED).unwrap(),
        "catalog/features.catalog.json is stale: run `rampart model fit` from the repository root"
    );
    let report = std::fs::read_to_string(root.join("docs/model.md")).unwrap();
    assert_eq!(
        report, result.report,
        "docs/model.md is stale: run `rampart model fit`"
    );
}
