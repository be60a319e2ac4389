//! The extractor catalog: every feature the bot module can compute, by name.
//!
//! A feature file names features; the names refer to this list. The position of an entry in
//! [`CATALOG`] is its [`FeatureId`], and the ClickHouse type is the one the column
//! `http_requests_features.<name>` has, so that a file generated from `system.columns`
//! matches the catalog exactly (a different type is a compile error, not a cast).
//!
//! Values are raw, unscaled measurements (a length is a byte count) except where the help
//! text says otherwise; integers saturate at the maximum of their ClickHouse type.

use rampart_artifact::{Contract, ContractSpec};

/// One named extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extractor {
    /// The feature's name, as the ClickHouse column is named.
    pub name: &'static str,
    /// The ClickHouse type name of the column (`UInt8`, `Float32`…).
    pub ty: &'static str,
    /// What the value means, one line.
    pub help: &'static str,
}

/// The consumer name the edge declares in its contract.
pub const EDGE_CONSUMER: &str = "edge";

/// Declares [`FeatureId`] and [`CATALOG`] from one list, so the two cannot drift apart.
macro_rules! catalog {
    ($($variant:ident $name:literal $ty:ident $help:literal;)*) => {
        /// A feature the bot module computes; its discriminant is its index in [`CATALOG`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum FeatureId {
            $(
                #[doc = $help]
                $variant,
            )*
        }

        /// Every extractor, in [`FeatureId`] order.
        pub const CATALOG: &[Extractor] = &[
            $(Extractor { name: $name, ty: stringify!($ty), help: $help },)*
        ];

        impl FeatureId {
            /// Every id, in catalog order.
            pub const ALL: &[FeatureId] = &[$(FeatureId::$variant,)*];

            /// The feature's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(FeatureId::$variant => $name,)*
                }
            }

            /// The ClickHouse type name of the feature.
            pub const fn ty(self) -> &'static str {
                match self {
                    $(FeatureId::$variant => stringify!($ty),)*
                }
            }

            /// The id of a feature name, if the catalog has it.
            pub fn from_name(name: &str) -> Option<FeatureId> {
                match name {
                    $($name => Some(FeatureId::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

catalog! {
    UaLength "ua_length" UInt16 "Length of the User-Agent header in bytes (0 when absent).";
    UaIsEmpty "ua_is_empty" UInt8 "1 when the User-Agent header is absent or empty.";
    UaTokenCount "ua_token_count" UInt8 "Number of space-separated tokens in the User-Agent.";
    UaMaxTokenLen "ua_max_token_len" UInt16 "Length of the longest space-separated User-Agent token.";
    UaDigitRatio "ua_digit_ratio" Float32 "Share of ASCII digits among the User-Agent bytes scanned (0..1).";
    UaUpperRatio "ua_upper_ratio" Float32 "Share of ASCII upper-case letters among the User-Agent bytes scanned (0..1).";
    UaParenCount "ua_paren_count" UInt8 "Number of `(` in the User-Agent.";
    UaSlashCount "ua_slash_count" UInt8 "Number of `/` in the User-Agent.";
    UaSemicolonCount "ua_semicolon_count" UInt8 "Number of `;` in the User-Agent.";
    UaHasMozilla "ua_has_mozilla" UInt8 "1 when the User-Agent contains `Mozilla/`.";
    UaHasCompatible "ua_has_compatible" UInt8 "1 when the User-Agent contains `compatible` (crawlers and old MSIE say it).";
    UaHasApplewebkit "ua_has_applewebkit" UInt8 "1 when the User-Agent contains `AppleWebKit`.";
    UaHasGecko "ua_has_gecko" UInt8 "1 when the User-Agent contains the Gecko engine token `Gecko/` (not `like Gecko`).";
    UaHasKhtml "ua_has_khtml" UInt8 "1 when the User-Agent contains `KHTML`.";
    UaHasChrome "ua_has_chrome" UInt8 "1 when the User-Agent contains `Chrome/`, `Chromium/` or `CriOS/`.";
    UaHasFirefox "ua_has_firefox" UInt8 "1 when the User-Agent contains `Firefox/` or `FxiOS/`.";
    UaHasSafari "ua_has_safari" UInt8 "1 when the User-Agent contains `Safari/`.";
    UaHasEdge "ua_has_edge" UInt8 "1 when the User-Agent contains `Edg/`, `Edge/`, `EdgA/` or `EdgiOS/`.";
    UaHasOpera "ua_has_opera" UInt8 "1 when the User-Agent contains `OPR/` or `Opera`.";
    UaHasMobile "ua_has_mobile" UInt8 "1 when the User-Agent contains `Mobile`.";
    UaHasWindows "ua_has_windows" UInt8 "1 when the User-Agent contains `Windows`.";
    UaHasMacos "ua_has_macos" UInt8 "1 when the User-Agent contains `Macintosh` (iOS says `like Mac OS X` and does not count).";
    UaHasLinux "ua_has_linux" UInt8 "1 when the User-Agent contains `Linux` or `X11` (Android included).";
    UaHasAndroid "ua_has_android" UInt8 "1 when the User-Agent contains `Android`.";
    UaHasIos "ua_has_ios" UInt8 "1 when the User-Agent contains `iPhone`, `iPad` or `iPod`.";
    UaHasBotWord "ua_has_bot_word" UInt8 "1 when the User-Agent contains a crawler word: bot, crawl, spider, slurp, scan, fetch, archiv, index, monitor, check, preview, validator, probe, uptime, synthetic, feed (any case).";
    UaHasHttpLibrary "ua_has_http_library" UInt8 "1 when the User-Agent names an HTTP library or tool: curl, wget, python, aiohttp, httpx, go-http-client, java/, okhttp, axios, node-fetch, undici, libwww-perl, lwp::, scrapy, apache-httpclient, httpclient, guzzle, php/, ruby, perl/, winhttp, urllib, reqwest, postman, insomnia, mechanize, httrack, indy library… (any case).";
    UaHasHeadless "ua_has_headless" UInt8 "1 when the User-Agent names a headless or automated browser: Headless (HeadlessChrome), PhantomJS, Puppeteer, Playwright, Selenium, WebDriver, HtmlUnit, SlimerJS, jsdom, Lighthouse (any case).";
    UaHasUrl "ua_has_url" UInt8 "1 when the User-Agent contains `http://`, `https://` or `www.` (crawlers link their docs).";
    UaHasEmail "ua_has_email" UInt8 "1 when the User-Agent contains something shaped like an e-mail address (`x@y.z`).";
    UaBrowserMajor "ua_browser_major" Float32 "Major version of the main browser token (Edge, Opera, Firefox, Chrome, then Safari's Version/) divided by 100; 0 when none.";
    HdrCount "hdr_count" UInt8 "Number of header fields (each value counts).";
    HdrHasAccept "hdr_has_accept" UInt8 "1 when `accept` is present.";
    HdrHasAcceptLanguage "hdr_has_accept_language" UInt8 "1 when `accept-language` is present.";
    HdrHasAcceptEncoding "hdr_has_accept_encoding" UInt8 "1 when `accept-encoding` is present.";
    HdrHasCookie "hdr_has_cookie" UInt8 "1 when `cookie` is present.";
    HdrHasReferer "hdr_has_referer" UInt8 "1 when `referer` is present.";
    HdrHasSecChUa "hdr_has_sec_ch_ua" UInt8 "1 when `sec-ch-ua` is present.";
    HdrHasSecChUaMobile "hdr_has_sec_ch_ua_mobile" UInt8 "1 when `sec-ch-ua-mobile` is present.";
    HdrHasSecChUaPlatform "hdr_has_sec_ch_ua_platform" UInt8 "1 when `sec-ch-ua-platform` is present.";
    HdrHasSecFetchSite "hdr_has_sec_fetch_site" UInt8 "1 when `sec-fetch-site` is present.";
    HdrHasSecFetchMode "hdr_has_sec_fetch_mode" UInt8 "1 when `sec-fetch-mode` is present.";
    HdrHasSecFetchDest "hdr_has_sec_fetch_dest" UInt8 "1 when `sec-fetch-dest` is present.";
    HdrHasSecFetchUser "hdr_has_sec_fetch_user" UInt8 "1 when `sec-fetch-user` is present.";
    HdrHasUpgradeInsecureRequests "hdr_has_upgrade_insecure_requests" UInt8 "1 when `upgrade-insecure-requests` is present.";
    HdrHasDnt "hdr_has_dnt" UInt8 "1 when `dnt` is present.";
    HdrHasCacheControl "hdr_has_cache_control" UInt8 "1 when `cache-control` is present.";
    HdrHasPragma "hdr_has_pragma" UInt8 "1 when `pragma` is present.";
    HdrHasConnection "hdr_has_connection" UInt8 "1 when `connection` is present.";
    HdrHasXRequestedWith "hdr_has_x_requested_with" UInt8 "1 when `x-requested-with` is present.";
    HdrHasOrigin "hdr_has_origin" UInt8 "1 when `origin` is present.";
    HdrHasAuthorization "hdr_has_authorization" UInt8 "1 when `authorization` is present.";
    HdrHasXForwardedFor "hdr_has_x_forwarded_for" UInt8 "1 when `x-forwarded-for` is present (the client came through a proxy).";
    HdrAcceptIsWildcard "hdr_accept_is_wildcard" UInt8 "1 when the first `accept` is exactly `*/*` (what tools send).";
    HdrAcceptHasHtml "hdr_accept_has_html" UInt8 "1 when the first `accept` mentions `text/html`.";
    HdrAcceptLanguageCount "hdr_accept_language_count" UInt8 "Number of language ranges in the first `accept-language`.";
    HdrAcceptEncodingHasBr "hdr_accept_encoding_has_br" UInt8 "1 when the first `accept-encoding` lists `br`.";
    HdrAcceptEncodingHasZstd "hdr_accept_encoding_has_zstd" UInt8 "1 when the first `accept-encoding` lists `zstd`.";
    HdrHostFirst "hdr_host_first" UInt8 "1 when the first header field is `host` (wire order, see the header-order note).";
    HdrUaBeforeAccept "hdr_ua_before_accept" UInt8 "1 when `user-agent` comes before `accept` (both present, wire order).";
    HdrSecChUaWithoutChromium "hdr_sec_ch_ua_without_chromium" UInt8 "1 when `sec-ch-ua` is sent but the User-Agent has no `Chrome/` token: only Chromium browsers send client hints.";
    HdrChromiumWithoutSecChUa "hdr_chromium_without_sec_ch_ua" UInt8 "1 when the User-Agent claims Chrome 89 or later but `sec-ch-ua` is missing.";
    ReqMethodGet "req_method_get" UInt8 "1 for GET.";
    ReqMethodHead "req_method_head" UInt8 "1 for HEAD.";
    ReqMethodPost "req_method_post" UInt8 "1 for POST.";
    ReqMethodOther "req_method_other" UInt8 "1 for any other method.";
    ReqHttp10 "req_http10" UInt8 "1 for HTTP/1.0 or HTTP/0.9.";
    PathLength "path_length" UInt16 "Length of the path in bytes.";
    PathDepth "path_depth" UInt8 "Number of non-empty path segments.";
    PathHasExtension "path_has_extension" UInt8 "1 when the last path segment has a file extension (`name.ext`).";
    PathIsRoot "path_is_root" UInt8 "1 when the path is `/` (or empty).";
    PathIsRobots "path_is_robots" UInt8 "1 when the path is `/robots.txt`.";
    PathIsWellKnown "path_is_well_known" UInt8 "1 when the path starts with `/.well-known/`.";
    PathIsStatic "path_is_static" UInt8 "1 when the extension is a static asset (css, js, mjs, map, png, jpg, jpeg, gif, svg, ico, webp, avif, woff, woff2, ttf).";
    PathHasDotdot "path_has_dotdot" UInt8 "1 when the path has a `..` or an encoded dot (`%2e`): traversal probes.";
    QueryLength "query_length" UInt16 "Length of the query string in bytes (0 when none).";
    QueryParamCount "query_param_count" UInt8 "Number of non-empty `&`-separated query parameters.";
    ClientRate1m "client_rate_1m" Float32 "Requests from this client (IPv4 address, IPv6 /64) in the current minute, this one included; an estimate that may only over-count.";
    ClientRateLog2 "client_rate_log2" Float32 "log2 of client_rate_1m (0 for the first request of the minute).";
}

/// Number of extractors in the catalog: the length of every [`crate::Features`].
pub const COUNT: usize = CATALOG.len();

// The whole catalog fits the default room (200), so a file may use every extractor, and
// the `u8` discriminant of `FeatureId`.
const _: () = assert!(COUNT <= rampart_artifact::limits::DEFAULT_MAX_FEATURES);

/// The id of a feature name, if the catalog has it.
pub fn lookup(name: &str) -> Option<FeatureId> {
    FeatureId::from_name(name)
}

/// The contract this edge enforces: the defaults of `rampart_artifact` (200 features, 1 MiB,
/// numeric types) with consumer `edge` and every catalog name as the known names.
///
/// This is what `rampart edge contract` prints and what the generator checks by default.
pub fn edge_contract() -> Contract {
    let spec = ContractSpec {
        consumer: EDGE_CONSUMER.to_owned(),
        known_names: Some(CATALOG.iter().map(|e| e.name.to_owned()).collect()),
        ..ContractSpec::default()
    };
    // The spec is the defaults plus a list of distinct names shorter than the name limit, so
    // it cannot be refused; `edge_contract_is_the_catalog` proves it. Should it ever be, the
    // default contract still bounds size and count.
    Contract::try_from(spec).unwrap_or_default()
}

// === impl FeatureId ===

impl FeatureId {
    /// The index of this feature in [`CATALOG`] and in [`crate::Features`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The catalog entry of this feature.
    pub fn extractor(self) -> Extractor {
        Extractor {
            name: self.name(),
            ty: self.ty(),
            help: CATALOG.get(self.index()).map_or("", |e| e.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rampart_artifact::DEFAULT_ALLOWED_TYPES;

    use super::*;

    #[test]
    fn ids_and_catalog_agree() {
        assert_eq!(FeatureId::ALL.len(), COUNT);
        for (i, (id, e)) in FeatureId::ALL.iter().zip(CATALOG).enumerate() {
            assert_eq!(id.index(), i);
            assert_eq!(id.name(), e.name);
            assert_eq!(id.ty(), e.ty);
            assert_eq!(id.extractor(), *e);
            assert_eq!(lookup(e.name), Some(*id));
        }
    }

    #[test]
    fn names_are_unique_valid_and_types_are_allowed() {
        let mut seen = HashSet::new();
        for e in CATALOG {
            assert!(seen.insert(e.name), "{} twice", e.name);
            assert!(
                e.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                e.name
            );
            assert!(
                DEFAULT_ALLOWED_TYPES.contains(&e.ty),
                "{}: {}",
                e.name,
                e.ty
            );
            assert!(!e.help.is_empty(), "{}", e.name);
        }
    }

    #[test]
    fn the_names_the_issue_fixes_are_present_with_their_types() {
        for (name, ty) in [
            ("ua_length", "UInt16"),
            ("ua_digit_ratio", "Float32"),
            ("ua_has_bot_word", "UInt8"),
            ("ua_browser_major", "Float32"),
            ("hdr_count", "UInt8"),
            ("hdr_chromium_without_sec_ch_ua", "UInt8"),
            ("path_length", "UInt16"),
            ("query_param_count", "UInt8"),
            ("client_rate_1m", "Float32"),
            ("client_rate_log2", "Float32"),
        ] {
            let id = lookup(name).unwrap();
            assert_eq!(id.ty(), ty, "{name}");
        }
    }

    #[test]
    fn unknown_names_are_none() {
        assert_eq!(lookup(""), None);
        assert_eq!(lookup("UA_LENGTH"), None);
        assert_eq!(lookup("ua_length "), None);
        assert_eq!(lookup("bot_score"), None);
    }

    #[test]
    fn edge_contract_is_the_catalog() {
        let c = edge_contract();
        assert_eq!(c.consumer(), "edge");
        assert_eq!(c.max_features(), 200);
        assert_eq!(c.max_bytes(), 1024 * 1024);
        assert!(c.has_known_names());
        for e in CATALOG {
            assert!(c.knows_name(e.name), "{}", e.name);
        }
        assert!(!c.knows_name("bot_score"));
        // Built by the checked path, not the fallback.
        let spec = c.spec().clone();
        assert_eq!(spec.known_names.map(|n| n.len()), Some(COUNT));
    }
}
