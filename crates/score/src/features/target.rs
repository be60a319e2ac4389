//! Method, protocol, path and query features.

use http::{Method, Version};

use crate::catalog::FeatureId as F;
use crate::features::Features;

/// File extensions of static assets (compared ignoring ASCII case).
pub const STATIC_EXTENSIONS: &[&[u8]] = &[
    b"css", b"js", b"mjs", b"map", b"png", b"jpg", b"jpeg", b"gif", b"svg", b"ico", b"webp",
    b"avif", b"woff", b"woff2", b"ttf",
];

/// Prefix of the RFC 8615 well-known URIs.
const WELL_KNOWN: &[u8] = b"/.well-known/";

/// Fills the `req_*`, `path_*` and `query_*` features.
pub(super) fn scan(
    method: &Method,
    version: Version,
    path: &str,
    query: Option<&str>,
    f: &mut Features,
) {
    let (get, head, post) = (
        *method == Method::GET,
        *method == Method::HEAD,
        *method == Method::POST,
    );
    f.flag(F::ReqMethodGet, get);
    f.flag(F::ReqMethodHead, head);
    f.flag(F::ReqMethodPost, post);
    f.flag(F::ReqMethodOther, !(get || head || post));
    f.flag(
        F::ReqHttp10,
        version == Version::HTTP_10 || version == Version::HTTP_09,
    );

    let path = path.as_bytes();
    let mut depth = 0usize;
    let mut last: &[u8] = &[];
    let mut dotdot = false;
    for segment in path.split(|&b| b == b'/') {
        if segment.is_empty() {
            continue;
        }
        depth += 1;
        last = segment;
        dotdot |= segment.windows(2).any(|w| w == b"..") || has_encoded_dot(segment);
    }
    // The last segment counts only if the path does not end with `/` (`/a.b/` is a folder).
    let file = if path.ends_with(b"/") { &[][..] } else { last };
    let extension = match file.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 => file.get(dot + 1..).filter(|e| !e.is_empty()),
        _ => None,
    };
    f.count_u16(F::PathLength, path.len());
    f.count_u8(F::PathDepth, depth);
    f.flag(F::PathHasExtension, extension.is_some());
    f.flag(F::PathIsRoot, path.is_empty() || path == b"/");
    f.flag(F::PathIsRobots, path == b"/robots.txt");
    f.flag(F::PathIsWellKnown, path.starts_with(WELL_KNOWN));
    f.flag(
        F::PathIsStatic,
        extension.is_some_and(|e| STATIC_EXTENSIONS.iter().any(|s| e.eq_ignore_ascii_case(s))),
    );
    f.flag(F::PathHasDotdot, dotdot);

    let query = query.unwrap_or("").as_bytes();
    f.count_u16(F::QueryLength, query.len());
    f.count_u8(
        F::QueryParamCount,
        query
            .split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .count(),
    );
}

/// Whether a segment holds `%2e` (an encoded `.`: nobody encodes a dot but a traversal probe).
fn has_encoded_dot(segment: &[u8]) -> bool {
    segment.windows(3).any(|w| w.eq_ignore_ascii_case(b"%2e"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(method: Method, path: &str, query: Option<&str>) -> Features {
        let mut f = Features::zeroed();
        scan(&method, Version::HTTP_11, path, query, &mut f);
        f
    }

    #[test]
    fn methods_are_one_hot() {
        for (m, id) in [
            (Method::GET, F::ReqMethodGet),
            (Method::HEAD, F::ReqMethodHead),
            (Method::POST, F::ReqMethodPost),
            (Method::OPTIONS, F::ReqMethodOther),
            (Method::from_bytes(b"PROPFIND").unwrap(), F::ReqMethodOther),
        ] {
            let f = features(m.clone(), "/", None);
            let hot: Vec<_> = [
                F::ReqMethodGet,
                F::ReqMethodHead,
                F::ReqMethodPost,
                F::ReqMethodOther,
            ]
            .into_iter()
            .filter(|i| f.get(*i) == 1.0)
            .collect();
            assert_eq!(hot, [id], "{m}");
        }
    }

    #[test]
    fn versions() {
        let mut f = Features::zeroed();
        scan(&Method::GET, Version::HTTP_10, "/", None, &mut f);
        assert_eq!(f.get(F::ReqHttp10), 1.0);
        let mut f = Features::zeroed();
        scan(&Method::GET, Version::HTTP_2, "/", None, &mut f);
        assert_eq!(f.get(F::ReqHttp10), 0.0);
    }

    #[test]
    fn path_shapes() {
        let f = features(Method::GET, "/", None);
        assert_eq!(f.get(F::PathIsRoot), 1.0);
        assert_eq!(f.get(F::PathDepth), 0.0);
        assert_eq!(f.get(F::PathHasExtension), 0.0);

        let f = features(Method::GET, "/static/app.v2.JS", None);
        assert_eq!(f.get(F::PathDepth), 2.0);
        assert_eq!(f.get(F::PathHasExtension), 1.0);
        assert_eq!(f.get(F::PathIsStatic), 1.0);
        assert_eq!(f.get(F::PathLength), 17.0);
        assert_eq!(f.get(F::PathIsRoot), 0.0);

        let f = features(Method::GET, "/robots.txt", None);
        assert_eq!(f.get(F::PathIsRobots), 1.0);
        assert_eq!(f.get(F::PathIsStatic), 0.0);

        let f = features(Method::GET, "/.well-known/security.txt", None);
        assert_eq!(f.get(F::PathIsWellKnown), 1.0);

        // A dot file and a folder with a dot have no extension.
        assert_eq!(
            features(Method::GET, "/.env", None).get(F::PathHasExtension),
            0.0
        );
        assert_eq!(
            features(Method::GET, "/v1.2/", None).get(F::PathHasExtension),
            0.0
        );
        assert_eq!(
            features(Method::GET, "/a.", None).get(F::PathHasExtension),
            0.0
        );
    }

    #[test]
    fn traversal_probes() {
        for p in ["/../etc/passwd", "/a/..", "/%2e%2e/x", "/.%2E/x", "/a..b"] {
            assert_eq!(
                features(Method::GET, p, None).get(F::PathHasDotdot),
                1.0,
                "{p}"
            );
        }
        assert_eq!(
            features(Method::GET, "/a.b/c.d", None).get(F::PathHasDotdot),
            0.0
        );
    }

    #[test]
    fn queries() {
        let f = features(Method::GET, "/s", Some("q=rust&&page=2&"));
        assert_eq!(f.get(F::QueryParamCount), 2.0);
        assert_eq!(f.get(F::QueryLength), 15.0);
        let f = features(Method::GET, "/s", None);
        assert_eq!(f.get(F::QueryParamCount), 0.0);
        assert_eq!(f.get(F::QueryLength), 0.0);
        let long = "a=1&".repeat(20_000);
        let f = features(Method::GET, "/s", Some(&long));
        assert_eq!(f.get(F::QueryLength), 65_535.0);
        assert_eq!(f.get(F::QueryParamCount), 255.0);
    }
}
