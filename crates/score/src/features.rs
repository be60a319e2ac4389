//! Feature extraction: one request in, one fixed array of numbers out, no allocation.
//!
//! [`extract`] reads the user agent once (`agent`), the headers once (`headers`), the path
//! and query once (`target`), and counts the request in the [`RateTable`]. Every value is
//! finite; integer features saturate at the maximum of their ClickHouse type.

mod agent;
mod headers;
mod target;

pub use agent::{SEC_CH_UA_SINCE_CHROME, UA_SCAN_LIMIT};
pub use target::STATIC_EXTENSIONS;

use crate::catalog::{COUNT, FeatureId};
use crate::rate::RateTable;
use crate::request::RequestView;

/// The value of every catalog feature for one request, indexed by [`FeatureId`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    values: [f32; COUNT],
}

/// Computes every catalog feature of `req`, and counts it in `rate`.
///
/// Allocates nothing (after the user-agent automaton is built, once per process); reads
/// no clock (time is `req.now_ms`).
pub fn extract(req: &RequestView<'_>, rate: &RateTable) -> Features {
    let mut f = Features::zeroed();
    let agent = agent::scan(user_agent(req), &mut f);
    finish(req, rate, f, &agent)
}

/// [`extract`], reusing the user-agent scan from `memo` when the request carries the same
/// user agent as the last one seen with it (and remembering this one's otherwise).
///
/// The user-agent scan is most of the extraction's cost, and a client connection sends the
/// same user agent on every request: the edge keeps one memo per client connection. The
/// result is exactly [`extract`]'s (a property test holds it to that).
pub fn extract_memo(req: &RequestView<'_>, rate: &RateTable, memo: &mut AgentMemo) -> Features {
    let ua = user_agent(req);
    if let Some((f, agent)) = &memo.scanned
        && memo.ua == ua
    {
        return finish(req, rate, f.clone(), agent);
    }
    let mut f = Features::zeroed();
    let agent = agent::scan(ua, &mut f);
    if ua.len() <= MAX_MEMO_UA {
        memo.ua.clear();
        memo.ua.extend_from_slice(ua);
        memo.scanned = Some((f.clone(), agent));
    } else {
        memo.scanned = None;
    }
    finish(req, rate, f, &agent)
}

/// Longest user agent an [`AgentMemo`] keeps (longer ones are scanned every time): bounds
/// the memory a client connection can make the edge hold.
pub const MAX_MEMO_UA: usize = 1024;

/// The last user agent scanned on one client connection and what its scan found.
#[derive(Debug, Clone, Default)]
pub struct AgentMemo {
    ua: Vec<u8>,
    scanned: Option<(Features, agent::Agent)>,
}

fn user_agent<'a>(req: &RequestView<'a>) -> &'a [u8] {
    req.headers
        .get(http::header::USER_AGENT)
        .map_or(&b""[..], |v| v.as_bytes())
}

/// Everything after the user-agent scan.
fn finish(
    req: &RequestView<'_>,
    rate: &RateTable,
    mut f: Features,
    agent: &agent::Agent,
) -> Features {
    headers::scan(req.headers, agent, &mut f);
    target::scan(req.method, req.version, req.path, req.query, &mut f);
    let count = rate.hit(req.client, req.now_ms);
    f.set(FeatureId::ClientRate1m, count as f32);
    f.set(FeatureId::ClientRateLog2, (count.max(1) as f32).log2());
    f
}

// === impl Features ===

impl Features {
    /// Every feature 0.
    pub fn zeroed() -> Self {
        Features {
            values: [0.0; COUNT],
        }
    }

    /// The value of one feature.
    pub fn get(&self, id: FeatureId) -> f32 {
        self.values.get(id.index()).copied().unwrap_or(0.0)
    }

    /// Sets one feature; a non-finite value is stored as 0 so scoring never sees one.
    pub fn set(&mut self, id: FeatureId, value: f32) {
        if let Some(slot) = self.values.get_mut(id.index()) {
            *slot = if value.is_finite() { value } else { 0.0 };
        }
    }

    /// All values, in catalog order.
    pub fn as_slice(&self) -> &[f32] {
        &self.values
    }

    /// `(id, value)` pairs in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = (FeatureId, f32)> + '_ {
        FeatureId::ALL
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    fn flag(&mut self, id: FeatureId, on: bool) {
        self.set(id, if on { 1.0 } else { 0.0 });
    }

    fn count_u8(&mut self, id: FeatureId, n: usize) {
        self.set(id, n.min(usize::from(u8::MAX)) as f32);
    }

    fn count_u16(&mut self, id: FeatureId, n: usize) {
        self.set(id, n.min(usize::from(u16::MAX)) as f32);
    }
}

impl Default for Features {
    fn default() -> Self {
        Self::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::header::{HeaderName, HeaderValue};
    use http::{HeaderMap, Method, Version};

    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        m
    }

    fn run(headers: &HeaderMap, path: &str, rate: &RateTable) -> Features {
        let req = RequestView {
            method: &Method::GET,
            version: Version::HTTP_11,
            path,
            query: None,
            headers,
            client: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            now_ms: 120_000,
        };
        extract(&req, rate)
    }

    #[test]
    fn chrome_curl_and_googlebot_differ_where_they_should() {
        let chrome = map(&[
            ("host", "a.example"),
            ("sec-ch-ua", "\"Chromium\";v=\"153\""),
            (
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/153.0.0.0 Safari/537.36",
            ),
            ("accept", "text/html,*/*;q=0.8"),
            ("sec-fetch-mode", "navigate"),
            ("accept-language", "en-US,en;q=0.9"),
        ]);
        let curl = map(&[
            ("host", "a.example"),
            ("user-agent", "curl/7.29.0"),
            ("accept", "*/*"),
        ]);
        let googlebot = map(&[
            ("host", "a.example"),
            ("accept", "text/html"),
            (
                "user-agent",
                "Mozilla/5.0 (compatible; Googlebot-Mobile/2.1; +http://www.google.com/bot.html)",
            ),
        ]);
        let rate = RateTable::with_slots(1024, 0);
        let c = run(&chrome, "/", &rate);
        let k = run(&curl, "/robots.txt", &RateTable::with_slots(1024, 0));
        let g = run(&googlebot, "/a/b.html", &RateTable::with_slots(1024, 0));

        assert_eq!(c.get(FeatureId::UaHasChrome), 1.0);
        assert_eq!(c.get(FeatureId::HdrHasSecFetchMode), 1.0);
        assert_eq!(c.get(FeatureId::HdrAcceptLanguageCount), 2.0);
        assert_eq!(c.get(FeatureId::HdrChromiumWithoutSecChUa), 0.0);
        assert_eq!(c.get(FeatureId::PathIsRoot), 1.0);
        assert_eq!(c.get(FeatureId::ReqMethodGet), 1.0);

        assert_eq!(k.get(FeatureId::UaHasHttpLibrary), 1.0);
        assert_eq!(k.get(FeatureId::HdrAcceptIsWildcard), 1.0);
        assert_eq!(k.get(FeatureId::HdrCount), 3.0);
        assert_eq!(k.get(FeatureId::PathIsRobots), 1.0);

        assert_eq!(g.get(FeatureId::UaHasBotWord), 1.0);
        assert_eq!(g.get(FeatureId::UaHasUrl), 1.0);
        assert_eq!(g.get(FeatureId::HdrUaBeforeAccept), 0.0);
        assert_eq!(g.get(FeatureId::PathDepth), 2.0);
        assert_eq!(g.get(FeatureId::PathHasExtension), 1.0);

        // The rate counts this client: second request, second count.
        assert_eq!(c.get(FeatureId::ClientRate1m), 1.0);
        assert_eq!(c.get(FeatureId::ClientRateLog2), 0.0);
        let again = run(&chrome, "/", &rate);
        assert_eq!(again.get(FeatureId::ClientRate1m), 2.0);
        assert_eq!(again.get(FeatureId::ClientRateLog2), 1.0);
    }

    #[test]
    fn a_request_without_headers_is_an_empty_user_agent() {
        let f = run(&HeaderMap::new(), "", &RateTable::with_slots(1, 0));
        assert_eq!(f.get(FeatureId::UaIsEmpty), 1.0);
        assert_eq!(f.get(FeatureId::HdrCount), 0.0);
        assert_eq!(f.get(FeatureId::PathIsRoot), 1.0);
    }

    #[test]
    fn set_refuses_non_finite_values() {
        let mut f = Features::zeroed();
        f.set(FeatureId::UaLength, f32::NAN);
        f.set(FeatureId::HdrCount, f32::INFINITY);
        assert_eq!(f.get(FeatureId::UaLength), 0.0);
        assert_eq!(f.get(FeatureId::HdrCount), 0.0);
        f.set(FeatureId::HdrCount, 3.0);
        assert_eq!(
            f.iter().nth(FeatureId::HdrCount.index()),
            Some((FeatureId::HdrCount, 3.0))
        );
    }
}
