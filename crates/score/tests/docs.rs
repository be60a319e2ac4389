//! The user-facing page `docs/score.md` lists every extractor with its type.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_score::CATALOG;
use rampart_score::example::EXAMPLE_WEIGHTS;

fn page() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/score.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_catalog_table_lists_every_extractor_with_its_type() {
    let page = page();
    for e in CATALOG {
        let row = format!("| `{}` | {} |", e.name, e.ty);
        assert!(page.contains(&row), "docs/score.md lacks the row {row}");
    }
}

#[test]
fn the_example_model_is_described_with_its_size() {
    let sentence = format!("{} features", EXAMPLE_WEIGHTS.len());
    assert!(
        page().contains(&sentence),
        "docs/score.md should say `{sentence}`"
    );
}
