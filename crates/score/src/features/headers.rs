//! Header features, from one pass over the header map in wire order.

use http::HeaderMap;

use crate::catalog::FeatureId as F;
use crate::features::Features;
use crate::features::agent::{Agent, SEC_CH_UA_SINCE_CHROME};

/// Fills the `hdr_*` features. `agent` is what the user-agent pass found, for the
/// cross-checks between the user agent and the client hints.
pub(super) fn scan(headers: &HeaderMap, agent: &Agent, f: &mut Features) {
    let mut count = 0usize;
    let mut ua_at: Option<usize> = None;
    let mut accept_at: Option<usize> = None;
    let (mut language_seen, mut encoding_seen) = (false, false);
    let mut sec_ch_ua = false;

    for (position, (name, value)) in headers.iter().enumerate() {
        count += 1;
        let value = value.as_bytes();
        // `HeaderName` is always lower case, so the names compare as written.
        let presence = match name.as_str() {
            "host" => {
                f.flag(F::HdrHostFirst, position == 0);
                None
            }
            "user-agent" => {
                ua_at.get_or_insert(position);
                None
            }
            "accept" => {
                if accept_at.is_none() {
                    accept_at = Some(position);
                    let trimmed = value.trim_ascii();
                    f.flag(F::HdrAcceptIsWildcard, trimmed == b"*/*");
                    f.flag(
                        F::HdrAcceptHasHtml,
                        memchr::memmem::find(value, b"text/html").is_some(),
                    );
                }
                Some(F::HdrHasAccept)
            }
            "accept-language" => {
                if !language_seen {
                    language_seen = true;
                    let ranges = list(value).count();
                    f.count_u8(F::HdrAcceptLanguageCount, ranges);
                }
                Some(F::HdrHasAcceptLanguage)
            }
            "accept-encoding" => {
                if !encoding_seen {
                    encoding_seen = true;
                    for coding in list(value) {
                        let coding = coding
                            .split(|&b| b == b';')
                            .next()
                            .unwrap_or(coding)
                            .trim_ascii();
                        if coding.eq_ignore_ascii_case(b"br") {
                            f.flag(F::HdrAcceptEncodingHasBr, true);
                        } else if coding.eq_ignore_ascii_case(b"zstd") {
                            f.flag(F::HdrAcceptEncodingHasZstd, true);
                        }
                    }
                }
                Some(F::HdrHasAcceptEncoding)
            }
            "sec-ch-ua" => {
                sec_ch_ua = true;
                Some(F::HdrHasSecChUa)
            }
            "cookie" => Some(F::HdrHasCookie),
            "referer" => Some(F::HdrHasReferer),
            "sec-ch-ua-mobile" => Some(F::HdrHasSecChUaMobile),
            "sec-ch-ua-platform" => Some(F::HdrHasSecChUaPlatform),
            "sec-fetch-site" => Some(F::HdrHasSecFetchSite),
            "sec-fetch-mode" => Some(F::HdrHasSecFetchMode),
            "sec-fetch-dest" => Some(F::HdrHasSecFetchDest),
            "sec-fetch-user" => Some(F::HdrHasSecFetchUser),
            "upgrade-insecure-requests" => Some(F::HdrHasUpgradeInsecureRequests),
            "dnt" => Some(F::HdrHasDnt),
            "cache-control" => Some(F::HdrHasCacheControl),
            "pragma" => Some(F::HdrHasPragma),
            "connection" => Some(F::HdrHasConnection),
            "x-requested-with" => Some(F::HdrHasXRequestedWith),
            "origin" => Some(F::HdrHasOrigin),
            "authorization" => Some(F::HdrHasAuthorization),
            "x-forwarded-for" => Some(F::HdrHasXForwardedFor),
            _ => None,
        };
        if let Some(id) = presence {
            f.flag(id, true);
        }
    }

    f.count_u8(F::HdrCount, count);
    f.flag(
        F::HdrUaBeforeAccept,
        matches!((ua_at, accept_at), (Some(u), Some(a)) if u < a),
    );
    f.flag(
        F::HdrSecChUaWithoutChromium,
        sec_ch_ua && agent.chromium_major.is_none(),
    );
    f.flag(
        F::HdrChromiumWithoutSecChUa,
        !sec_ch_ua
            && agent
                .chromium_major
                .is_some_and(|m| m >= SEC_CH_UA_SINCE_CHROME),
    );
}

/// The non-empty elements of a comma-separated header value, trimmed.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use http::header::{HeaderName, HeaderValue};

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

    fn features(pairs: &[(&str, &str)], chromium_major: Option<u32>) -> Features {
        let mut f = Features::zeroed();
        scan(&map(pairs), &Agent { chromium_major }, &mut f);
        f
    }

    #[test]
    fn chrome_headers() {
        let f = features(
            &[
                ("host", "example.com"),
                ("connection", "keep-alive"),
                (
                    "sec-ch-ua",
                    "\"Chromium\";v=\"153\", \"Google Chrome\";v=\"153\"",
                ),
                ("sec-ch-ua-mobile", "?0"),
                ("sec-ch-ua-platform", "\"Windows\""),
                ("upgrade-insecure-requests", "1"),
                ("user-agent", "Mozilla/5.0 … Chrome/153.0.0.0 Safari/537.36"),
                ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
                ("sec-fetch-site", "none"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-user", "?1"),
                ("sec-fetch-dest", "document"),
                ("accept-encoding", "gzip, deflate, br, zstd"),
                ("accept-language", "en-US,en;q=0.9,fr;q=0.8"),
            ],
            Some(153),
        );
        assert_eq!(f.get(F::HdrCount), 14.0);
        for id in [
            F::HdrHostFirst,
            F::HdrUaBeforeAccept,
            F::HdrHasSecChUa,
            F::HdrHasSecChUaMobile,
            F::HdrHasSecChUaPlatform,
            F::HdrHasSecFetchSite,
            F::HdrHasSecFetchMode,
            F::HdrHasSecFetchUser,
            F::HdrHasSecFetchDest,
            F::HdrHasUpgradeInsecureRequests,
            F::HdrHasConnection,
            F::HdrAcceptHasHtml,
            F::HdrAcceptEncodingHasBr,
            F::HdrAcceptEncodingHasZstd,
            F::HdrHasAcceptLanguage,
        ] {
            assert_eq!(f.get(id), 1.0, "{}", id.name());
        }
        assert_eq!(f.get(F::HdrAcceptLanguageCount), 3.0);
        assert_eq!(f.get(F::HdrAcceptIsWildcard), 0.0);
        assert_eq!(f.get(F::HdrChromiumWithoutSecChUa), 0.0);
        assert_eq!(f.get(F::HdrSecChUaWithoutChromium), 0.0);
        assert_eq!(f.get(F::HdrHasCookie), 0.0);
    }

    #[test]
    fn curl_headers() {
        let f = features(
            &[
                ("host", "example.com"),
                ("user-agent", "curl/8.5.0"),
                ("accept", "*/*"),
            ],
            None,
        );
        assert_eq!(f.get(F::HdrCount), 3.0);
        assert_eq!(f.get(F::HdrAcceptIsWildcard), 1.0);
        assert_eq!(f.get(F::HdrAcceptHasHtml), 0.0);
        assert_eq!(f.get(F::HdrHasAcceptLanguage), 0.0);
        assert_eq!(f.get(F::HdrHasSecFetchMode), 0.0);
        assert_eq!(f.get(F::HdrHostFirst), 1.0);
        assert_eq!(f.get(F::HdrUaBeforeAccept), 1.0);
    }

    #[test]
    fn googlebot_headers() {
        let f = features(
            &[
                ("host", "example.com"),
                ("connection", "keep-alive"),
                (
                    "accept",
                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                ),
                ("from", "googlebot(at)googlebot.com"),
                ("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1)"),
                ("accept-encoding", "gzip, deflate, br"),
            ],
            None,
        );
        assert_eq!(f.get(F::HdrCount), 6.0);
        assert_eq!(f.get(F::HdrAcceptHasHtml), 1.0);
        assert_eq!(f.get(F::HdrAcceptEncodingHasBr), 1.0);
        assert_eq!(f.get(F::HdrAcceptEncodingHasZstd), 0.0);
        assert_eq!(f.get(F::HdrUaBeforeAccept), 0.0, "accept came first");
        assert_eq!(f.get(F::HdrHasAcceptLanguage), 0.0);
    }

    #[test]
    fn client_hints_must_agree_with_the_user_agent() {
        let lying = features(&[("user-agent", "x"), ("sec-ch-ua", "\"Chromium\"")], None);
        assert_eq!(lying.get(F::HdrSecChUaWithoutChromium), 1.0);
        let missing = features(&[("user-agent", "Chrome/120")], Some(120));
        assert_eq!(missing.get(F::HdrChromiumWithoutSecChUa), 1.0);
        // Chrome before 89 never sent client hints.
        let old = features(&[("user-agent", "Chrome/55")], Some(55));
        assert_eq!(old.get(F::HdrChromiumWithoutSecChUa), 0.0);
    }

    #[test]
    fn order_comes_from_insertion_and_values_of_a_name_count_each() {
        let f = features(
            &[
                ("accept", "text/html"),
                ("host", "h"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("user-agent", "u"),
            ],
            None,
        );
        assert_eq!(f.get(F::HdrHostFirst), 0.0);
        assert_eq!(f.get(F::HdrUaBeforeAccept), 0.0);
        assert_eq!(f.get(F::HdrCount), 5.0);
    }

    #[test]
    fn encodings_are_tokens_not_substrings() {
        let f = features(&[("accept-encoding", "brotli, gzip;q=1, zstd;q=0.5")], None);
        assert_eq!(f.get(F::HdrAcceptEncodingHasBr), 0.0);
        assert_eq!(f.get(F::HdrAcceptEncodingHasZstd), 1.0);
        let f = features(&[("accept-language", " , ,")], None);
        assert_eq!(f.get(F::HdrAcceptLanguageCount), 0.0);
        assert_eq!(f.get(F::HdrHasAcceptLanguage), 1.0);
    }

    #[test]
    fn an_empty_map_is_all_zero() {
        let f = features(&[], None);
        assert!(f.as_slice().iter().all(|v| *v == 0.0));
    }

    #[test]
    fn counts_saturate() {
        let mut m = HeaderMap::new();
        for i in 0..300 {
            m.append(
                HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        let mut f = Features::zeroed();
        scan(&m, &Agent::default(), &mut f);
        assert_eq!(f.get(F::HdrCount), 255.0);
    }
}
