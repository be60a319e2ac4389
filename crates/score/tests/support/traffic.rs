//! Real user agents and realistic header sets, shared by the integration tests.
//!
//! The user agents are copied from `shared/data/user-agents` (browsers: the npm package
//! `user-agents` 2.1.198, BSD-2-Clause; bots: the npm package `crawler-user-agents` 1.60.0,
//! MIT); the header sets are what each client sends on a first page load over HTTP/1.1, in
//! wire order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::net::{IpAddr, Ipv4Addr};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Version};
use rampart_artifact::validate;
use rampart_score::{Model, RequestView, edge_contract, example_document};

/// How a client shapes its headers; `{ua}` stands for its user agent.
#[derive(Debug, Clone, Copy)]
pub enum Kit {
    ChromeDesktop,
    ChromeMobile,
    Safari,
    Firefox,
    Curl,
    GoHttp,
    Httpx,
    Aiohttp,
    Okhttp,
    Axios,
    NodeFetch,
    Scrapy,
    Crawler,
    OldHeadless,
    Puppeteer,
}

/// Browsers that real people use: must score high.
pub const BROWSERS: &[(&str, Kit)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/153.0.0.0 Safari/537.36",
        Kit::ChromeDesktop,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/145.0.0.0 Safari/537.36",
        Kit::ChromeDesktop,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Safari/537.36 Edg/154.0.0.0",
        Kit::ChromeDesktop,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/152.0.0.0 Safari/537.36 OPR/136.0.0.0 (Edition std-2)",
        Kit::ChromeDesktop,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Mobile Safari/537.36",
        Kit::ChromeMobile,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0.0.0 Mobile Safari/537.36",
        Kit::ChromeMobile,
    ),
    (
        "Mozilla/5.0 (Linux; Android 15; CPH2653) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/149.0.0.0 Mobile Safari/537.36",
        Kit::ChromeMobile,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.6 Mobile/15E148 Safari/604.1",
        Kit::Safari,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.6.1 Safari/605.1.15",
        Kit::Safari,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/148.0.0.0 Mobile/15E148 Safari/604.1",
        Kit::Safari,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 26_6_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/439.4.980558000 Mobile/15E148 Safari/604.1",
        Kit::Safari,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:140.0) Gecko/20100101 Firefox/140.0",
        Kit::Firefox,
    ),
];

/// Tools, libraries, crawlers and automated browsers: must score low.
pub const AUTOMATED: &[(&str, Kit)] = &[
    ("curl/7.29.0", Kit::Curl),
    ("Go-http-client/1.1", Kit::GoHttp),
    ("python-httpx/0.16.1", Kit::Httpx),
    ("Python/3.9 aiohttp/3.7.3", Kit::Aiohttp),
    ("okhttp/2.7.5", Kit::Okhttp),
    ("axios/0.19.0", Kit::Axios),
    (
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        Kit::NodeFetch,
    ),
    ("Scrapy/1.0.3 (+http://scrapy.org)", Kit::Scrapy),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 6_0 like Mac OS X) AppleWebKit/536.26 (KHTML, like Gecko) Version/6.0 Mobile/10A5376e Safari/8536.25 (compatible; Googlebot-Mobile/2.1; +http://www.google.com/bot.html)",
        Kit::Crawler,
    ),
    (
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        Kit::Crawler,
    ),
    (
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        Kit::Crawler,
    ),
    (
        "MJ12bot/v1.2.0 (http://majestic12.co.uk/bot.php?+)",
        Kit::Crawler,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 11_0 like Mac OS X) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/40.0.3754.1902 Mobile Safari/537.36; Bytespider",
        Kit::Crawler,
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-SearchBot/1.0; +https://www.anthropic.com)",
        Kit::Crawler,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/74.0.3729.169 Safari/537.36",
        Kit::OldHeadless,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36 Puppeteer",
        Kit::Puppeteer,
    ),
];

const HTML_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

/// The headers `kit` sends with user agent `ua`, in wire order.
pub fn headers(kit: Kit, ua: &str) -> Vec<(&'static str, String)> {
    let s = |v: &str| v.to_owned();
    let u = || ua.to_owned();
    match kit {
        Kit::ChromeDesktop | Kit::ChromeMobile => {
            let mobile = matches!(kit, Kit::ChromeMobile);
            vec![
                ("host", s("shop.example")),
                ("connection", s("keep-alive")),
                (
                    "sec-ch-ua",
                    s(
                        "\"Chromium\";v=\"153\", \"Not:A-Brand\";v=\"24\", \"Google Chrome\";v=\"153\"",
                    ),
                ),
                ("sec-ch-ua-mobile", s(if mobile { "?1" } else { "?0" })),
                (
                    "sec-ch-ua-platform",
                    s(if mobile { "\"Android\"" } else { "\"Windows\"" }),
                ),
                ("upgrade-insecure-requests", s("1")),
                ("user-agent", u()),
                ("accept", s(HTML_ACCEPT)),
                ("sec-fetch-site", s("none")),
                ("sec-fetch-mode", s("navigate")),
                ("sec-fetch-user", s("?1")),
                ("sec-fetch-dest", s("document")),
                ("accept-encoding", s("gzip, deflate, br, zstd")),
                ("accept-language", s("en-US,en;q=0.9")),
            ]
        }
        Kit::Safari => vec![
            ("host", s("shop.example")),
            (
                "accept",
                s("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ),
            ("sec-fetch-site", s("none")),
            ("accept-language", s("en-GB,en;q=0.9")),
            ("sec-fetch-mode", s("navigate")),
            ("accept-encoding", s("gzip, deflate, br")),
            ("user-agent", u()),
            ("sec-fetch-dest", s("document")),
            ("connection", s("keep-alive")),
        ],
        Kit::Firefox => vec![
            ("host", s("shop.example")),
            ("user-agent", u()),
            (
                "accept",
                s("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ),
            ("accept-language", s("en-US,en;q=0.5")),
            ("accept-encoding", s("gzip, deflate, br, zstd")),
            ("connection", s("keep-alive")),
            ("upgrade-insecure-requests", s("1")),
            ("sec-fetch-dest", s("document")),
            ("sec-fetch-mode", s("navigate")),
            ("sec-fetch-site", s("none")),
            ("sec-fetch-user", s("?1")),
            ("priority", s("u=0, i")),
        ],
        Kit::Curl => vec![
            ("host", s("shop.example")),
            ("user-agent", u()),
            ("accept", s("*/*")),
        ],
        Kit::GoHttp => vec![
            ("host", s("shop.example")),
            ("user-agent", u()),
            ("accept-encoding", s("gzip")),
        ],
        Kit::Httpx => vec![
            ("host", s("shop.example")),
            ("accept", s("*/*")),
            ("accept-encoding", s("gzip, deflate")),
            ("connection", s("keep-alive")),
            ("user-agent", u()),
        ],
        Kit::Aiohttp => vec![
            ("host", s("shop.example")),
            ("user-agent", u()),
            ("accept", s("*/*")),
            ("accept-encoding", s("gzip, deflate")),
        ],
        Kit::Okhttp => vec![
            ("host", s("shop.example")),
            ("connection", s("Keep-Alive")),
            ("accept-encoding", s("gzip")),
            ("user-agent", u()),
        ],
        Kit::Axios => vec![
            ("accept", s("application/json, text/plain, */*")),
            ("user-agent", u()),
            ("host", s("shop.example")),
            ("connection", s("close")),
        ],
        Kit::NodeFetch => vec![
            ("accept-encoding", s("gzip,deflate")),
            ("user-agent", u()),
            ("connection", s("close")),
            ("accept", s("*/*")),
            ("host", s("shop.example")),
        ],
        Kit::Scrapy => vec![
            ("host", s("shop.example")),
            (
                "accept",
                s("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ),
            ("accept-language", s("en")),
            ("user-agent", u()),
            ("accept-encoding", s("gzip,deflate")),
        ],
        Kit::Crawler => vec![
            ("host", s("shop.example")),
            ("connection", s("keep-alive")),
            (
                "accept",
                s("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ),
            ("from", s("crawler@example.org")),
            ("user-agent", u()),
            ("accept-encoding", s("gzip, deflate, br")),
        ],
        Kit::OldHeadless => vec![
            ("host", s("shop.example")),
            ("connection", s("keep-alive")),
            ("upgrade-insecure-requests", s("1")),
            ("user-agent", u()),
            ("accept", s(HTML_ACCEPT)),
            ("accept-encoding", s("gzip, deflate")),
        ],
        Kit::Puppeteer => vec![
            ("host", s("shop.example")),
            ("connection", s("keep-alive")),
            (
                "sec-ch-ua",
                s("\"Chromium\";v=\"120\", \"HeadlessChrome\";v=\"120\""),
            ),
            ("sec-ch-ua-mobile", s("?0")),
            ("sec-ch-ua-platform", s("\"Linux\"")),
            ("upgrade-insecure-requests", s("1")),
            ("user-agent", u()),
            ("accept", s(HTML_ACCEPT)),
            ("sec-fetch-site", s("none")),
            ("sec-fetch-mode", s("navigate")),
            ("sec-fetch-user", s("?1")),
            ("sec-fetch-dest", s("document")),
            ("accept-encoding", s("gzip, deflate, br")),
            ("accept-language", s("en-US,en;q=0.9")),
        ],
    }
}

/// A header map in the given order (as hyper builds it from the wire).
pub fn header_map(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

/// The request `GET /` from client `n` (each its own address) at `now_ms`.
pub fn view<'a>(headers: &'a HeaderMap, n: u32, now_ms: u64) -> RequestView<'a> {
    static GET: Method = Method::GET;
    RequestView {
        method: &GET,
        version: Version::HTTP_11,
        path: "/",
        query: None,
        headers,
        client: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)),
        now_ms,
    }
}

/// The example model, validated against the edge contract and compiled into its room.
pub fn example_model() -> Model {
    let contract = edge_contract();
    let v = validate(&example_document(1), &contract, None).unwrap();
    Model::compile(&v, contract.max_features()).unwrap()
}
