//! Arbitrary bytes in the user agent, headers, path and query never make extraction or
//! scoring panic, and every feature stays finite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/traffic.rs"]
mod traffic;

use std::net::{IpAddr, Ipv6Addr};

use http::header::{HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Version};
use proptest::prelude::*;
use rampart_score::{FeatureId, Model, RateTable, RequestView, Score, extract};

fn value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        "[A-Z]{1,12}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::HTTP_09),
        Just(Version::HTTP_10),
        Just(Version::HTTP_11),
        Just(Version::HTTP_2),
        Just(Version::HTTP_3),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_requests_never_panic_and_stay_finite(
        ua in proptest::collection::vec(any::<u8>(), 0..400),
        headers in proptest::collection::vec(
            ("[a-z0-9-]{1,24}", proptest::collection::vec(any::<u8>(), 0..200)),
            0..40,
        ),
        path in any::<String>(),
        query in proptest::option::of(any::<String>()),
        method in method(),
        version in version(),
        client in any::<u128>(),
        now_ms in any::<u64>(),
        weights in proptest::collection::vec(-1000.0f32..1000.0, 1..120),
        bias in -1000.0f32..1000.0,
    ) {
        let mut map = HeaderMap::new();
        if let Some(v) = value(&ua) {
            map.append(USER_AGENT, v);
        }
        for (name, bytes) in &headers {
            if let (Ok(n), Some(v)) = (HeaderName::from_bytes(name.as_bytes()), value(bytes)) {
                map.append(n, v);
            }
        }
        let req = RequestView {
            method: &method,
            version,
            path: &path,
            query: query.as_deref(),
            headers: &map,
            client: IpAddr::V6(Ipv6Addr::from(client)),
            now_ms,
        };
        let rate = RateTable::with_slots(64, 1);
        let f = extract(&req, &rate);
        for (id, v) in f.iter() {
            prop_assert!(v.is_finite(), "{} = {v}", id.name());
            prop_assert!(v >= 0.0, "{} = {v}", id.name());
        }
        let terms: Vec<_> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| (FeatureId::ALL[i % FeatureId::ALL.len()], *w))
            .collect();
        let model = Model::from_raw_for_bench(&terms, bias);
        match model.score(&f) {
            Score::Scored(s) => prop_assert!((1..=99).contains(&s)),
            Score::Unscored(u) => prop_assert_eq!(u, rampart_score::Unscored::ModuleError),
        }
        prop_assert_eq!(traffic::example_model().score(&f).value().is_some(), true);
    }

    #[test]
    fn arbitrary_user_agents_give_flags_of_0_or_1(ua in "[ -~]{0,300}") {
        let mut map = HeaderMap::new();
        map.append(USER_AGENT, HeaderValue::from_str(&ua).unwrap());
        let req = traffic::view(&map, 1, 0);
        let f = extract(&req, &RateTable::with_slots(1, 0));
        for (id, v) in f.iter() {
            if id.ty() == "UInt8" && id.name().contains("_has_") {
                prop_assert!(v == 0.0 || v == 1.0, "{} = {v}", id.name());
            }
        }
        prop_assert_eq!(f.get(FeatureId::UaLength), ua.len() as f32);
    }
}
