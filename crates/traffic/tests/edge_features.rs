//! The generated header sets agree with what the edge's extractors expect of each client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rampart_score::{FeatureId as F, RateTable, extract};
use rampart_traffic::kit::{SEC_FETCH_SINCE_CHROME, chrome_major};
use rampart_traffic::{Kind, Kit, Label, Mix, Profiles, Traffic};

#[test]
fn browsers_look_like_browsers_and_tools_like_tools() {
    let profiles = Profiles::embedded().unwrap();
    let rate = RateTable::new();
    let mut seen = 0;
    for (i, l) in Traffic::new(&profiles, Mix::default(), 11)
        .take(5000)
        .enumerate()
    {
        let f = extract(&l.request.view(i as u64 * 120_000), &rate);
        let ua = l.request.user_agent();
        match (l.label, l.kind) {
            (Label::Human, _) => {
                seen += 1;
                // A real browser never contradicts itself about client hints.
                assert_eq!(f.get(F::HdrChromiumWithoutSecChUa), 0.0, "{ua}");
                assert_eq!(f.get(F::HdrSecChUaWithoutChromium), 0.0, "{ua}");
                assert_eq!(f.get(F::HdrHasAcceptLanguage), 1.0, "{ua}");
                let old_chrome = l.kit == Kit::Chromium
                    && chrome_major(ua).is_some_and(|m| m < SEC_FETCH_SINCE_CHROME);
                assert_eq!(
                    f.get(F::HdrHasSecFetchMode),
                    f32::from(u8::from(!old_chrome)),
                    "{ua}"
                );
                assert_eq!(
                    f.get(F::UaHasBotWord) + f.get(F::UaHasHttpLibrary),
                    0.0,
                    "{ua}"
                );
            }
            (Label::Bot, Kind::Tool) => {
                assert_eq!(f.get(F::HdrHasSecFetchMode), 0.0, "{ua}");
                assert_eq!(f.get(F::HdrHasSecChUa), 0.0, "{ua}");
            }
            _ => {}
        }
    }
    assert!(seen > 3000, "{seen}");
}
