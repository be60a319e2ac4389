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

/// What one pass over a header map's names found. The request path runs it once per
/// message instead of hashing every name it might remove or replace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Bit `i` set: `HOP_BY_HOP[i]` is present.
    hop: u8,
    /// Some `Proxy-*` header is present.
    proxy: bool,
    /// `X-Forwarded-For` is present.
    pub(crate) xff: bool,
    /// The score header is present (a client trying to pick its own).
    pub(crate) score: bool,
}

impl Scan {
    /// One pass over the names of `headers`.
    pub(crate) fn of(headers: &HeaderMap) -> Scan {
        let mut scan = Scan::default();
        for name in headers.keys() {
            match name.as_str() {
                "connection" => scan.hop |= 1 << 0,
                "keep-alive" => scan.hop |= 1 << 1,
                "te" => scan.hop |= 1 << 2,
                "trailer" => scan.hop |= 1 << 3,
                "transfer-encoding" => scan.hop |= 1 << 4,
                "upgrade" => scan.hop |= 1 << 5,
                "x-forwarded-for" => scan.xff = true,
                "x-rampart-bot-score" => scan.score = true,
                n if n.starts_with("proxy-") => scan.proxy = true,
                _ => {}
            }
        }
        scan
    }
}

/// Removes hop-by-hop headers: those named by `Connection`, the fixed list, and every
/// `Proxy-*` header.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_hop_by_hop_scanned(headers, Scan::of(headers));
}

/// [`remove_hop_by_hop`] with the names already scanned: touches only what is there.
pub(crate) fn remove_hop_by_hop_scanned(headers: &mut HeaderMap, scan: Scan) {
    if scan.hop == 0 && !scan.proxy {
        return;
    }
    if scan.hop & 1 != 0 {
        // Names listed in Connection go with it. The usual tokens (`keep-alive`, `close`)
        // name nothing else to remove, so the list is only built (and allocated) for others.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                // `close` is an option, not a name, unless a header is really called so.
                let option_only = t.eq_ignore_ascii_case("close") && !headers.contains_key("close");
                !option_only
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if scan.hop & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if scan.proxy {
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
#[cfg(test)]
pub(crate) fn set_forwarding(headers: &mut HeaderMap, client: IpAddr) {
    let scan = Scan::of(headers);
    Forwarding::new(client).apply(headers, scan);
}

/// The forwarding headers of one client connection: the values that depend only on the
/// client (and its `Host`, which a connection rarely changes) are built once and reused,
/// so a request costs no formatting and no allocation here.
#[derive(Debug, Clone)]
pub(crate) struct Forwarding {
    client: IpAddr,
    /// `X-Forwarded-For` when the client sent none: just its address.
    alone: Option<HeaderValue>,
    /// The last `Host` seen and the `Forwarded` value built for it.
    last: Option<(HeaderValue, HeaderValue)>,
}

impl Forwarding {
    /// Nothing built yet for `client`.
    pub(crate) fn new(client: IpAddr) -> Self {
        Forwarding {
            client,
            alone: None,
            last: None,
        }
    }

    /// Sets `X-Forwarded-For` and `Forwarded` on a request whose names were `scan`ned.
    pub(crate) fn apply(&mut self, headers: &mut HeaderMap, scan: Scan) {
        let client = self.client;
        let xff = if scan.xff {
            chain(headers, client)
        } else {
            self.alone
                .get_or_insert_with(|| chain(&HeaderMap::new(), client))
                .clone()
        };
        headers.insert(X_FORWARDED_FOR, xff);
        let host = headers.get(header::HOST);
        let cached = match (&self.last, host) {
            (Some((h, v)), Some(host)) if h == host => Some(v.clone()),
            _ => None,
        };
        let value = match cached {
            Some(v) => v,
            None => {
                let v = forwarded(client, host);
                self.last = host.map(|h| (h.clone(), v.clone()));
                v
            }
        };
        headers.insert(header::FORWARDED, value);
    }
}

/// `X-Forwarded-For`: every line the client sent folded into one list, the client last.
fn chain(headers: &HeaderMap, client: IpAddr) -> HeaderValue {
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
    HeaderValue::from_maybe_shared(Bytes::from(chain)).unwrap_or_else(|_| address(client))
}

/// The client's address alone as a header value.
fn address(client: IpAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(client.to_string()))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// `Forwarded` for this hop: the client, the `Host` when it is plain, and the protocol.
fn forwarded(client: IpAddr, host: Option<&HeaderValue>) -> HeaderValue {
    let mut forwarded = String::with_capacity(64);
    let _ = match client {
        IpAddr::V4(v4) => write!(forwarded, "for={v4}"),
        IpAddr::V6(v6) => write!(forwarded, "for=\"[{v6}]\""),
    };
    if let Some(host) = host.and_then(|h| h.to_str().ok()).filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    }) {
        let _ = write!(forwarded, ";host=\"{host}\"");
    }
    forwarded.push_str(";proto=http");
    HeaderValue::from_maybe_shared(Bytes::from(forwarded))
        .unwrap_or_else(|_| HeaderValue::from_static("proto=http"))
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
    fn the_scan_finds_what_the_request_path_touches() {
        let h = map(&[
            ("Connection", "close"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-rampart-bot-score", "99"),
            ("proxy-authorization", "x"),
            ("accept", "*/*"),
        ]);
        let scan = Scan::of(&h);
        assert_eq!(scan.hop, 1);
        assert!(scan.proxy && scan.xff && scan.score);
        let plain = Scan::of(&map(&[("accept", "*/*"), ("user-agent", "ua")]));
        assert_eq!(plain, Scan::default());
    }

    #[test]
    fn nothing_to_remove_leaves_the_map_as_it_was() {
        let mut h = map(&[("accept", "*/*"), ("user-agent", "ua"), ("host", "a")]);
        let before = h.clone();
        remove_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn connection_tokens_that_name_real_headers_are_removed_and_usual_ones_skipped() {
        let mut h = map(&[
            ("connection", "Keep-Alive, close, X-Gone"),
            ("keep-alive", "timeout=5"),
            ("x-gone", "1"),
            ("close", "a header really named close"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        // A header that happens to be named by an option (even `close`) goes too.
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn a_connections_forwarding_values_are_reused_and_follow_the_host() {
        let client = IpAddr::from([192, 0, 2, 7]);
        let mut fwd = Forwarding::new(client);
        let mut first = map(&[("host", "a.example")]);
        let scan = Scan::of(&first);
        fwd.apply(&mut first, scan);
        assert_eq!(first["x-forwarded-for"], "192.0.2.7");
        assert_eq!(
            first["forwarded"],
            "for=192.0.2.7;host=\"a.example\";proto=http"
        );
        let mut again = map(&[("host", "a.example")]);
        let scan = Scan::of(&again);
        fwd.apply(&mut again, scan);
        assert_eq!(again, first);
        let mut other = map(&[("host", "b.example"), ("x-forwarded-for", "10.0.0.1")]);
        let scan = Scan::of(&other);
        fwd.apply(&mut other, scan);
        assert_eq!(
            other["forwarded"],
            "for=192.0.2.7;host=\"b.example\";proto=http"
        );
        assert_eq!(other["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        let mut no_host = map(&[]);
        let scan = Scan::of(&no_host);
        fwd.apply(&mut no_host, scan);
        assert_eq!(no_host["forwarded"], "for=192.0.2.7;proto=http");
        assert_eq!(no_host["x-forwarded-for"], "192.0.2.7");
    }

    #[test]
    fn score_values_stay_in_range() {
        assert_eq!(score_value(42), "42");
        assert_eq!(score_value(0), "1");
        assert_eq!(score_value(250), "99");
    }
}
