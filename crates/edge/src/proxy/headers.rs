//! Header rewriting between client and origin: hop-by-hop removal, forwarding headers.

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rampart_score::Score;

/// The header that carries the bot score to the origin (`1`..`99` or `unscored`).
pub const SCORE_HEADER: HeaderName = HeaderName::from_static("x-rampart-bot-score");

/// `X-Forwarded-For`: the chain of client addresses.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Hop-by-hop headers (RFC 9110 §7.6.1 and the de-facto `Keep-Alive`, `Proxy-Connection`):
/// they describe one connection, so a proxy must not pass them on.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The `unscored` header value.
pub(crate) const UNSCORED: HeaderValue = HeaderValue::from_static("unscored");

/// Removes hop-by-hop headers: those named by `Connection`, the fixed list, and every
/// `Proxy-*` header.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Names listed in Connection are collected first: they are removed together with
    // Connection itself. Allocates only when the header is present.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if headers.keys().any(|k| k.as_str().starts_with("proxy-")) {
        let proxies: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxies {
            headers.remove(name);
        }
    }
}

/// Appends the client to `X-Forwarded-For` and sets `Forwarded` (RFC 7239) to this hop
/// only: a client-sent `Forwarded` is replaced so it cannot speak for earlier hops.
///
/// Each value is built in one `String` whose buffer becomes the header value without a copy
/// (this runs on every request).
pub(crate) fn set_forwarding(headers: &mut HeaderMap, client: IpAddr) {
    // Every X-Forwarded-For line is folded into one list, ours last.
    let mut chain = String::with_capacity(48);
    for prev in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(text) = prev.to_str()
            && !text.trim().is_empty()
        {
            chain.push_str(text.trim());
            chain.push_str(", ");
        }
    }
    let _ = write!(chain, "{client}");
    // Header text plus an address is always a valid value; if not, the chain restarts here
    // rather than forwarding junk.
    let xff = HeaderValue::from_maybe_shared(Bytes::from(chain))
        .or_else(|_| HeaderValue::from_maybe_shared(Bytes::from(client.to_string())));
    if let Ok(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    let mut forwarded = String::with_capacity(64);
    let _ = match client {
        IpAddr::V4(v4) => write!(forwarded, "for={v4}"),
        IpAddr::V6(v6) => write!(forwarded, "for=\"[{v6}]\""),
    };
    if let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
    {
        let _ = write!(forwarded, ";host=\"{host}\"");
    }
    forwarded.push_str(";proto=http");
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(forwarded)) {
        headers.insert(header::FORWARDED, v);
    }
}

/// The header value of a score: `1`..`99` (clamped into that range), without allocating.
pub(crate) fn score_value(score: u8) -> HeaderValue {
    HeaderValue::from_static(Score::Scored(score).header_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, bogus header"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("accept", "*/*"),
            ("user-agent", "ua"),
        ]);
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept", "user-agent"]);
    }

    #[test]
    fn xff_is_appended_and_forwarded_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=6.6.6.6"),
            ("host", "example.com:8080"),
        ]);
        set_forwarding(&mut h, IpAddr::from([192, 0, 2, 7]));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.7;host=\"example.com:8080\";proto=http"
        );
    }

    #[test]
    fn xff_lines_are_folded_and_ipv6_is_quoted() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        set_forwarding(&mut h, "2001:db8::1".parse().unwrap());
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 2001:db8::1");
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\";proto=http");
    }

    #[test]
    fn a_strange_host_is_left_out_of_forwarded() {
        let mut h = map(&[("host", "a\"b")]);
        set_forwarding(&mut h, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(h["forwarded"], "for=127.0.0.1;proto=http");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn score_values_stay_in_range() {
        assert_eq!(score_value(42), "42");
        assert_eq!(score_value(0), "1");
        assert_eq!(score_value(250), "99");
    }
}
