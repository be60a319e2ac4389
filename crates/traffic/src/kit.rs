//! Header sets: what each kind of client sends, in the order it sends it.
//!
//! Browsers differ by engine (Chromium sends client hints, `sec-fetch-*` since 76 and
//! `sec-ch-ua` since 89; Firefox sends `sec-fetch-*` and `priority`; Safari has its own order),
//! and by what they fetch (a page, an image, a script, an API call). Tools and crawlers send
//! the few headers their library sets. The sets follow what these clients put on the wire
//! over HTTP/1.1; the order matters because the edge's features read it.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::profile::BotAgent;
use crate::rng::stable_hash;

/// A kind of HTTP client, by the header set it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kit {
    /// Chrome, Edge, Opera, Samsung Internet and other Chromium browsers.
    Chromium,
    /// Firefox (Gecko).
    Firefox,
    /// Safari, and every browser on iOS (they all use WebKit).
    Safari,
    /// curl.
    Curl,
    /// GNU Wget.
    Wget,
    /// Python `requests` (urllib3).
    PythonRequests,
    /// Go's `net/http`.
    GoHttp,
    /// Python `httpx`.
    Httpx,
    /// Python `aiohttp`.
    Aiohttp,
    /// OkHttp (Android and JVM apps).
    Okhttp,
    /// axios (Node.js).
    Axios,
    /// node-fetch.
    NodeFetch,
    /// Java's `HttpURLConnection`.
    Java,
    /// Scrapy.
    Scrapy,
    /// PHP (Guzzle, curl extension).
    Php,
    /// A large search-engine crawler (Googlebot-like: `from`, brotli).
    CrawlerSearch,
    /// A crawler that asks for anything and no cache (Bingbot-like).
    CrawlerNoCache,
    /// A small crawler on a plain library: host, user agent, `*/*`.
    CrawlerMinimal,
    /// A crawler that sends a fixed English `accept-language`.
    CrawlerLanguage,
    /// A feed reader asking for RSS/Atom.
    FeedReader,
    /// A link-preview fetcher (asks for a byte range).
    SocialPreview,
    /// Chrome's new headless mode (Puppeteer, Playwright): a full Chromium set whose client
    /// hints name `HeadlessChrome`.
    HeadlessNew,
    /// Old headless Chrome: no client hints, no `sec-fetch-*`, no `accept-language`.
    HeadlessOld,
    /// PhantomJS (QtWebKit): its own order, `en-US,*`.
    PhantomJs,
    /// A scraper dressed as a browser: browser-like accept headers, but no client hints and no
    /// `sec-fetch-*`.
    Scraper,
    /// A Chromium set with the client hints removed: what a user-agent override in an
    /// automation tool leaves behind.
    HintlessChromium,
}

/// What is being fetched: browsers send different headers for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A page the user navigates to.
    Document,
    /// An image on the page.
    Image,
    /// A stylesheet.
    Style,
    /// A script.
    Script,
    /// A `fetch()` from the page's code.
    Api,
}

/// Everything a header set depends on besides the kit.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The User-Agent to send.
    pub user_agent: &'a str,
    /// The profile's language (`en-US`), for browsers.
    pub language: &'a str,
    /// The `host` header.
    pub host: &'a str,
    /// What is fetched.
    pub dest: Dest,
    /// The page it came from, when any.
    pub referer: Option<&'a str>,
    /// The cookie it holds for the site, when any.
    pub cookie: Option<&'a str>,
}

/// The most recent Chrome major that still lacked `sec-fetch-*` (sent from 76 on).
pub const SEC_FETCH_SINCE_CHROME: u32 = 76;
/// Chrome sends `sec-ch-ua` from 89 on (the edge's extractor uses the same number).
pub const SEC_CH_UA_SINCE_CHROME: u32 = 89;
/// Chrome advertises `zstd` in `accept-encoding` from 123 on.
pub const ZSTD_SINCE_CHROME: u32 = 123;

const CHROME_DOC: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
const CHROME_IMG: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
const FIREFOX_DOC: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const FIREFOX_IMG: &str = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";
const SAFARI_DOC: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const SAFARI_IMG: &str = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";
const CSS: &str = "text/css,*/*;q=0.1";
const API: &str = "application/json, text/plain, */*";
const ANY: &str = "*/*";

// === impl Kit ===

impl Kit {
    /// The kit of a real browser's user agent: its engine.
    pub fn for_browser(user_agent: &str) -> Kit {
        if ["iPhone", "iPad", "iPod"]
            .iter()
            .any(|t| user_agent.contains(t))
        {
            Kit::Safari
        } else if user_agent.contains("Firefox/") {
            Kit::Firefox
        } else if user_agent.contains("Chrome/") || user_agent.contains("Chromium/") {
            Kit::Chromium
        } else if user_agent.contains("Safari/") {
            Kit::Safari
        } else {
            Kit::Firefox
        }
    }

    /// The kit of a real bot user agent: the library it names, else its family's habits,
    /// else a crawler set chosen by a hash of the user agent (stable across runs).
    pub fn for_bot(bot: &BotAgent) -> Kit {
        let ua = bot.user_agent.to_ascii_lowercase();
        let has = |s: &str| ua.contains(s);
        if has("headlesschrome") || has("puppeteer") || has("playwright") {
            return Kit::HeadlessNew;
        }
        if has("phantomjs") {
            return Kit::PhantomJs;
        }
        let by_name = [
            ("curl", Kit::Curl),
            ("wget", Kit::Wget),
            ("python-requests", Kit::PythonRequests),
            ("python-urllib", Kit::PythonRequests),
            ("go-http-client", Kit::GoHttp),
            ("httpx", Kit::Httpx),
            ("aiohttp", Kit::Aiohttp),
            ("okhttp", Kit::Okhttp),
            ("axios", Kit::Axios),
            ("node-fetch", Kit::NodeFetch),
            ("java", Kit::Java),
            ("scrapy", Kit::Scrapy),
            ("guzzle", Kit::Php),
            ("php", Kit::Php),
        ];
        if let Some((_, kit)) = by_name.iter().find(|(name, _)| has(name)) {
            return *kit;
        }
        let h = stable_hash(bot.user_agent.as_bytes());
        if bot.has_tag("browser-automation") {
            return if h.is_multiple_of(2) {
                Kit::HeadlessOld
            } else {
                Kit::HeadlessNew
            };
        }
        if bot.has_tag("http-library") {
            return pick(
                h,
                &[
                    Kit::PythonRequests,
                    Kit::GoHttp,
                    Kit::Curl,
                    Kit::Java,
                    Kit::Okhttp,
                ],
            );
        }
        if bot.has_tag("feed-reader") {
            return Kit::FeedReader;
        }
        if bot.has_tag("social-preview") {
            return Kit::SocialPreview;
        }
        if bot.has_tag("search-engine") {
            return pick(h, &[Kit::CrawlerSearch, Kit::CrawlerNoCache]);
        }
        pick(
            h,
            &[
                Kit::CrawlerMinimal,
                Kit::CrawlerSearch,
                Kit::CrawlerLanguage,
                Kit::PythonRequests,
                Kit::GoHttp,
                Kit::CrawlerNoCache,
            ],
        )
    }

    /// Whether this is a real browser's set.
    pub fn is_browser(self) -> bool {
        matches!(self, Kit::Chromium | Kit::Firefox | Kit::Safari)
    }

    /// The headers this client sends for `shape`, in wire order.
    pub fn headers(self, s: &Shape<'_>) -> Vec<(&'static str, String)> {
        let mut h = Headers::default();
        match self {
            Kit::Chromium => chromium(&mut h, s, Hints::Real),
            Kit::HeadlessNew => chromium(&mut h, s, Hints::Headless),
            Kit::HintlessChromium => chromium(&mut h, s, Hints::None),
            Kit::Firefox => firefox(&mut h, s),
            Kit::Safari => safari(&mut h, s),
            Kit::Curl => {
                h.host(s).ua(s).add("accept", ANY);
            }
            Kit::Wget => {
                h.ua(s)
                    .add("accept", ANY)
                    .add("accept-encoding", "identity")
                    .host(s)
                    .add("connection", "Keep-Alive");
            }
            Kit::PythonRequests => {
                h.host(s)
                    .ua(s)
                    .add("accept-encoding", "gzip, deflate")
                    .add("accept", ANY)
                    .add("connection", "keep-alive");
            }
            Kit::GoHttp => {
                h.host(s).ua(s).add("accept-encoding", "gzip");
            }
            Kit::Httpx => {
                h.host(s)
                    .add("accept", ANY)
                    .add("accept-encoding", "gzip, deflate")
                    .add("connection", "keep-alive")
                    .ua(s);
            }
            Kit::Aiohttp => {
                h.host(s)
                    .ua(s)
                    .add("accept", ANY)
                    .add("accept-encoding", "gzip, deflate");
            }
            Kit::Okhttp => {
                h.host(s)
                    .add("connection", "Keep-Alive")
                    .add("accept-encoding", "gzip")
                    .ua(s);
            }
            Kit::Axios => {
                h.add("accept", API)
                    .ua(s)
                    .host(s)
                    .add("connection", "close");
            }
            Kit::NodeFetch => {
                h.add("accept-encoding", "gzip,deflate")
                    .ua(s)
                    .add("connection", "close")
                    .add("accept", ANY)
                    .host(s);
            }
            Kit::Java => {
                h.ua(s)
                    .host(s)
                    .add(
                        "accept",
                        "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
                    )
                    .add("connection", "keep-alive");
            }
            Kit::Scrapy => {
                h.host(s)
                    .add("accept", FIREFOX_DOC)
                    .add("accept-language", "en")
                    .ua(s)
                    .add("accept-encoding", "gzip, deflate");
            }
            Kit::Php => {
                h.host(s).ua(s);
            }
            Kit::CrawlerSearch => {
                h.host(s)
                    .add("connection", "keep-alive")
                    .add("accept", FIREFOX_DOC)
                    .add("from", "crawler@search.example")
                    .ua(s)
                    .add("accept-encoding", "gzip, deflate, br");
            }
            Kit::CrawlerNoCache => {
                h.host(s)
                    .add("accept", ANY)
                    .add("accept-encoding", "gzip, deflate")
                    .ua(s)
                    .add("cache-control", "no-cache")
                    .add("pragma", "no-cache");
            }
            Kit::CrawlerMinimal => {
                h.host(s).ua(s).add("accept", ANY);
            }
            Kit::CrawlerLanguage => {
                h.host(s)
                    .ua(s)
                    .add("accept", FIREFOX_DOC)
                    .add("accept-language", "en-US,en;q=0.5")
                    .add("accept-encoding", "gzip")
                    .add("connection", "close");
            }
            Kit::FeedReader => {
                h.host(s)
                    .ua(s)
                    .add(
                        "accept",
                        "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.8",
                    )
                    .add("accept-encoding", "gzip");
            }
            Kit::SocialPreview => {
                h.host(s)
                    .add("accept", ANY)
                    .ua(s)
                    .add("accept-encoding", "deflate, gzip")
                    .add("range", "bytes=0-524287");
            }
            Kit::HeadlessOld => {
                h.host(s)
                    .add("connection", "keep-alive")
                    .add("upgrade-insecure-requests", "1")
                    .ua(s)
                    .add("accept", CHROME_DOC)
                    .add("accept-encoding", "gzip, deflate");
            }
            Kit::PhantomJs => {
                h.ua(s)
                    .add("accept", FIREFOX_DOC)
                    .add("connection", "Keep-Alive")
                    .add("accept-encoding", "gzip, deflate")
                    .add("accept-language", "en-US,*")
                    .host(s);
            }
            Kit::Scraper => {
                h.host(s)
                    .ua(s)
                    .add("accept", FIREFOX_DOC)
                    .add("accept-language", "en-US,en;q=0.9")
                    .add("accept-encoding", "gzip, deflate, br")
                    .add("connection", "keep-alive");
            }
        }
        h.0
    }
}

/// The headers as an `http::HeaderMap` in the given order (as hyper builds one from the
/// wire). A pair that is not a valid header is skipped; the sets above are all valid (tested).
pub fn header_map(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// The Chrome major version in a user agent (`Chrome/153.` → 153), when there is one.
pub fn chrome_major(user_agent: &str) -> Option<u32> {
    let rest = user_agent
        .split_once("Chrome/")
        .or_else(|| user_agent.split_once("Chromium/"))?
        .1;
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .take(5)
        .collect();
    digits.parse().ok()
}

/// Accept-Language as a browser builds it from its language: the tag, its base language, and
/// English as a fallback for other languages. `q_step` is the engine's spacing of q values.
pub fn accept_language(language: &str, q_step: f32) -> String {
    let lang = if language.trim().is_empty() {
        "en-US"
    } else {
        language.trim()
    };
    let base = lang.split('-').next().unwrap_or(lang);
    let mut ranges = vec![lang.to_owned()];
    let mut q = 1.0f32;
    let mut next = |name: &str, ranges: &mut Vec<String>| {
        q = (q - q_step).max(0.1);
        ranges.push(format!("{name};q={q:.1}"));
    };
    if base != lang {
        next(base, &mut ranges);
    }
    if base != "en" {
        next("en-US", &mut ranges);
        next("en", &mut ranges);
    }
    ranges.join(",")
}

#[derive(Debug, Default)]
struct Headers(Vec<(&'static str, String)>);

impl Headers {
    fn add(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.0.push((name, value.into()));
        self
    }
    fn host(&mut self, s: &Shape<'_>) -> &mut Self {
        self.add("host", s.host)
    }
    fn ua(&mut self, s: &Shape<'_>) -> &mut Self {
        self.add("user-agent", s.user_agent)
    }
    fn maybe(&mut self, name: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.add(name, v);
        }
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hints {
    Real,
    Headless,
    None,
}

fn pick(hash: u64, kits: &[Kit]) -> Kit {
    let i = (hash % kits.len().max(1) as u64) as usize;
    kits.get(i).copied().unwrap_or(Kit::CrawlerMinimal)
}

fn chromium_platform(ua: &str) -> &'static str {
    if ua.contains("Android") {
        "\"Android\""
    } else if ua.contains("Windows") {
        "\"Windows\""
    } else if ua.contains("Macintosh") {
        "\"macOS\""
    } else if ua.contains("CrOS") {
        "\"Chrome OS\""
    } else {
        "\"Linux\""
    }
}

fn chromium_brand(ua: &str, hints: Hints) -> &'static str {
    if hints == Hints::Headless {
        "HeadlessChrome"
    } else if ua.contains("Edg/") {
        "Microsoft Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("SamsungBrowser/") {
        "Samsung Internet"
    } else {
        "Google Chrome"
    }
}

fn chromium(h: &mut Headers, s: &Shape<'_>, hints: Hints) {
    let ua = s.user_agent;
    let major = chrome_major(ua).unwrap_or(0);
    let mobile = ua.contains("Mobile") || ua.contains("Android");
    let hinted = hints != Hints::None && major >= SEC_CH_UA_SINCE_CHROME;
    let fetch = major >= SEC_FETCH_SINCE_CHROME;
    let sec_ch_ua = format!(
        "\"Chromium\";v=\"{major}\", \"Not:A-Brand\";v=\"24\", \"{}\";v=\"{major}\"",
        chromium_brand(ua, hints)
    );
    let encoding = if major >= ZSTD_SINCE_CHROME {
        "gzip, deflate, br, zstd"
    } else {
        "gzip, deflate, br"
    };
    let language = accept_language(s.language, 0.1);
    h.host(s).add("connection", "keep-alive");
    if s.dest == Dest::Document {
        if hinted {
            h.add("sec-ch-ua", sec_ch_ua)
                .add("sec-ch-ua-mobile", if mobile { "?1" } else { "?0" })
                .add("sec-ch-ua-platform", chromium_platform(ua));
        }
        h.add("upgrade-insecure-requests", "1")
            .ua(s)
            .add("accept", CHROME_DOC);
        if fetch {
            let site = if s.referer.is_some() {
                "same-origin"
            } else {
                "none"
            };
            h.add("sec-fetch-site", site)
                .add("sec-fetch-mode", "navigate")
                .add("sec-fetch-user", "?1")
                .add("sec-fetch-dest", "document");
        }
    } else {
        if hinted {
            h.add("sec-ch-ua-platform", chromium_platform(ua));
        }
        h.ua(s);
        if hinted {
            h.add("sec-ch-ua", sec_ch_ua)
                .add("sec-ch-ua-mobile", if mobile { "?1" } else { "?0" });
        }
        let (accept, mode, dest) = match s.dest {
            Dest::Image => (CHROME_IMG, "no-cors", "image"),
            Dest::Style => (CSS, "no-cors", "style"),
            Dest::Script => (ANY, "no-cors", "script"),
            Dest::Api | Dest::Document => (API, "cors", "empty"),
        };
        h.add("accept", accept);
        if fetch {
            h.add("sec-fetch-site", "same-origin")
                .add("sec-fetch-mode", mode)
                .add("sec-fetch-dest", dest);
        }
    }
    h.maybe("referer", s.referer)
        .add("accept-encoding", encoding)
        .add("accept-language", language)
        .maybe("cookie", s.cookie);
}

fn firefox(h: &mut Headers, s: &Shape<'_>) {
    let (accept, mode, dest) = match s.dest {
        Dest::Document => (FIREFOX_DOC, "navigate", "document"),
        Dest::Image => (FIREFOX_IMG, "no-cors", "image"),
        Dest::Style => (CSS, "no-cors", "style"),
        Dest::Script => (ANY, "no-cors", "script"),
        Dest::Api => (API, "cors", "empty"),
    };
    h.host(s)
        .ua(s)
        .add("accept", accept)
        .add("accept-language", accept_language(s.language, 0.2))
        .add("accept-encoding", "gzip, deflate, br, zstd")
        .maybe("referer", s.referer)
        .add("connection", "keep-alive")
        .maybe("cookie", s.cookie);
    if s.dest == Dest::Document {
        h.add("upgrade-insecure-requests", "1");
    }
    let site = match (s.dest, s.referer) {
        (Dest::Document, None) => "none",
        _ => "same-origin",
    };
    h.add("sec-fetch-dest", dest)
        .add("sec-fetch-mode", mode)
        .add("sec-fetch-site", site);
    if s.dest == Dest::Document {
        h.add("sec-fetch-user", "?1");
    }
    h.add(
        "priority",
        if s.dest == Dest::Document {
            "u=0, i"
        } else {
            "u=2"
        },
    );
}

fn safari(h: &mut Headers, s: &Shape<'_>) {
    let (accept, mode, dest) = match s.dest {
        Dest::Document => (SAFARI_DOC, "navigate", "document"),
        Dest::Image => (SAFARI_IMG, "no-cors", "image"),
        Dest::Style => (CSS, "no-cors", "style"),
        Dest::Script => (ANY, "no-cors", "script"),
        Dest::Api => (API, "cors", "empty"),
    };
    let site = match (s.dest, s.referer) {
        (Dest::Document, None) => "none",
        _ => "same-origin",
    };
    h.host(s)
        .add("accept", accept)
        .add("sec-fetch-site", site)
        .maybe("cookie", s.cookie)
        .add("sec-fetch-dest", dest)
        .add("accept-language", accept_language(s.language, 0.1))
        .add("sec-fetch-mode", mode)
        .ua(s)
        .maybe("referer", s.referer)
        .add("accept-encoding", "gzip, deflate, br")
        .add("connection", "keep-alive");
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/153.0.0.0 Safari/537.36";
    const OLD_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.77 Safari/537.36";
    const FIREFOX: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:140.0) Gecko/20100101 Firefox/140.0";
    const IOS_CHROME: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/148.0.0.0 Mobile/15E148 Safari/604.1";

    const ALL: &[Kit] = &[
        Kit::Chromium,
        Kit::Firefox,
        Kit::Safari,
        Kit::Curl,
        Kit::Wget,
        Kit::PythonRequests,
        Kit::GoHttp,
        Kit::Httpx,
        Kit::Aiohttp,
        Kit::Okhttp,
        Kit::Axios,
        Kit::NodeFetch,
        Kit::Java,
        Kit::Scrapy,
        Kit::Php,
        Kit::CrawlerSearch,
        Kit::CrawlerNoCache,
        Kit::CrawlerMinimal,
        Kit::CrawlerLanguage,
        Kit::FeedReader,
        Kit::SocialPreview,
        Kit::HeadlessNew,
        Kit::HeadlessOld,
        Kit::PhantomJs,
        Kit::Scraper,
        Kit::HintlessChromium,
    ];

    fn shape(ua: &str, dest: Dest) -> Shape<'_> {
        Shape {
            user_agent: ua,
            language: "fr-CA",
            host: "shop.example",
            dest,
            referer: None,
            cookie: None,
        }
    }

    fn names(kit: Kit, ua: &str, dest: Dest) -> Vec<&'static str> {
        kit.headers(&shape(ua, dest))
            .iter()
            .map(|(n, _)| *n)
            .collect()
    }

    #[test]
    fn every_kit_makes_a_valid_map_with_the_user_agent_and_host_once() {
        for kit in ALL {
            for dest in [
                Dest::Document,
                Dest::Image,
                Dest::Style,
                Dest::Script,
                Dest::Api,
            ] {
                let pairs = kit.headers(&shape(CHROME, dest));
                let map = header_map(&pairs);
                assert_eq!(map.len(), pairs.len(), "{kit:?} {dest:?}");
                assert_eq!(map.get_all("user-agent").iter().count(), 1, "{kit:?}");
                assert_eq!(map.get_all("host").iter().count(), 1, "{kit:?}");
            }
        }
    }

    #[test]
    fn chromium_navigation_is_in_chromes_order_with_hints() {
        let n = names(Kit::Chromium, CHROME, Dest::Document);
        assert_eq!(
            n,
            [
                "host",
                "connection",
                "sec-ch-ua",
                "sec-ch-ua-mobile",
                "sec-ch-ua-platform",
                "upgrade-insecure-requests",
                "user-agent",
                "accept",
                "sec-fetch-site",
                "sec-fetch-mode",
                "sec-fetch-user",
                "sec-fetch-dest",
                "accept-encoding",
                "accept-language",
            ]
        );
        let h = Kit::Chromium.headers(&shape(CHROME, Dest::Document));
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("sec-ch-ua-platform"), Some("\"Windows\""));
        assert_eq!(get("accept-encoding"), Some("gzip, deflate, br, zstd"));
        assert_eq!(
            get("accept-language"),
            Some("fr-CA,fr;q=0.9,en-US;q=0.8,en;q=0.7")
        );
        assert!(
            get("sec-ch-ua")
                .unwrap()
                .contains("\"Google Chrome\";v=\"153\"")
        );
    }

    #[test]
    fn old_chrome_has_no_hints_and_no_fetch_metadata() {
        let n = names(Kit::Chromium, OLD_CHROME, Dest::Document);
        assert!(!n.iter().any(|h| h.starts_with("sec-")), "{n:?}");
        assert!(n.contains(&"accept-language"));
    }

    #[test]
    fn subresources_differ_from_navigation() {
        let img = Kit::Chromium.headers(&Shape {
            referer: Some("https://shop.example/"),
            cookie: Some("sid=1"),
            ..shape(CHROME, Dest::Image)
        });
        let names: Vec<_> = img.iter().map(|(n, _)| *n).collect();
        assert!(!names.contains(&"upgrade-insecure-requests"));
        assert!(!names.contains(&"sec-fetch-user"));
        assert!(names.contains(&"referer") && names.contains(&"cookie"));
        assert!(img.contains(&("sec-fetch-dest", "image".to_owned())));
        assert!(img.contains(&("accept", CHROME_IMG.to_owned())));
    }

    #[test]
    fn firefox_and_safari_send_no_client_hints() {
        for (kit, ua) in [(Kit::Firefox, FIREFOX), (Kit::Safari, IOS_CHROME)] {
            let n = names(kit, ua, Dest::Document);
            assert!(!n.iter().any(|h| h.starts_with("sec-ch-ua")), "{kit:?}");
            assert!(n.contains(&"sec-fetch-mode"), "{kit:?}");
            assert!(n.contains(&"accept-language"), "{kit:?}");
        }
        assert_eq!(
            names(Kit::Firefox, FIREFOX, Dest::Document)[1],
            "user-agent"
        );
        assert_eq!(names(Kit::Safari, IOS_CHROME, Dest::Document)[1], "accept");
    }

    #[test]
    fn browsers_map_to_their_engine() {
        assert_eq!(Kit::for_browser(CHROME), Kit::Chromium);
        assert_eq!(Kit::for_browser(FIREFOX), Kit::Firefox);
        assert_eq!(Kit::for_browser(IOS_CHROME), Kit::Safari, "iOS is WebKit");
        assert_eq!(
            Kit::for_browser(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.6.1 Safari/605.1.15"
            ),
            Kit::Safari
        );
        assert!(Kit::Chromium.is_browser() && !Kit::Scraper.is_browser());
    }

    #[test]
    fn bots_map_to_their_library_or_family() {
        let bot = |ua: &str, tags: &[&str]| BotAgent {
            user_agent: ua.into(),
            pattern: "p".into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        };
        assert_eq!(Kit::for_bot(&bot("curl/8.5.0", &[])), Kit::Curl);
        assert_eq!(
            Kit::for_bot(&bot("python-requests/2.31", &["http-library"])),
            Kit::PythonRequests
        );
        assert_eq!(Kit::for_bot(&bot("Go-http-client/1.1", &[])), Kit::GoHttp);
        assert_eq!(
            Kit::for_bot(&bot("Mozilla/5.0 HeadlessChrome/120.0.0.0", &[])),
            Kit::HeadlessNew
        );
        assert_eq!(
            Kit::for_bot(&bot("SomeReader/1.0", &["feed-reader"])),
            Kit::FeedReader
        );
        let crawler = Kit::for_bot(&bot("Mozilla/5.0 (compatible; Foobot/1.0)", &["seo"]));
        assert!(!crawler.is_browser());
        assert_eq!(
            crawler,
            Kit::for_bot(&bot("Mozilla/5.0 (compatible; Foobot/1.0)", &["seo"])),
            "stable"
        );
    }

    #[test]
    fn headless_new_names_itself_in_client_hints_and_hintless_drops_them() {
        let h = Kit::HeadlessNew.headers(&shape(CHROME, Dest::Document));
        assert!(
            h.iter()
                .any(|(n, v)| *n == "sec-ch-ua" && v.contains("HeadlessChrome"))
        );
        let n = names(Kit::HintlessChromium, CHROME, Dest::Document);
        assert!(!n.iter().any(|h| h.starts_with("sec-ch-ua")));
        assert!(n.contains(&"sec-fetch-mode"));
    }

    #[test]
    fn accept_language_follows_the_profile() {
        assert_eq!(accept_language("en-US", 0.1), "en-US,en;q=0.9");
        assert_eq!(accept_language("en", 0.1), "en");
        assert_eq!(accept_language("", 0.1), "en-US,en;q=0.9");
        assert_eq!(
            accept_language("zh-CN", 0.2),
            "zh-CN,zh;q=0.8,en-US;q=0.6,en;q=0.4"
        );
    }

    #[test]
    fn chrome_majors() {
        assert_eq!(chrome_major(CHROME), Some(153));
        assert_eq!(chrome_major(FIREFOX), None);
        assert_eq!(chrome_major("Chrome/x"), None);
    }
}
