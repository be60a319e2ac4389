//! The traffic stream: which client sends what, when, from where.

use std::net::{IpAddr, Ipv4Addr};

use http::{Method, Version};

use crate::kit::{Dest, Kit, Shape, header_map};
use crate::profile::{BotAgent, Browser, Profiles};
use crate::request::{Kind, Label, Labelled, Request};
use crate::rng::{Rng, stable_hash};

/// Default share of requests sent by bots.
pub const DEFAULT_BOT_SHARE: f64 = 0.3;
/// Default share of bot requests that carry a real browser's user agent.
pub const DEFAULT_IMITATOR_SHARE: f64 = 0.25;
/// Share of imitators that send a browser's exact header set too: headers cannot tell them
/// apart, which keeps the fitted model honest about what it can see.
pub const PERFECT_IMITATOR_SHARE: f64 = 0.1;
/// Share of browser requests that are subresources (images, scripts, styles, API calls)
/// rather than page navigations.
pub const SUBRESOURCE_SHARE: f64 = 0.5;
/// Mean gap between two requests of the stream, in milliseconds.
pub const MEAN_GAP_MS: u64 = 20;
/// Addresses a bot family sends from (a small pool, so it repeats); humans and imitators
/// (which rent residential proxies) send from the whole shared address space.
pub const BOT_ADDRESSES_PER_FAMILY: u64 = 16;

/// How the stream is composed.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// Share of requests from bots (0..1).
    pub bot_share: f64,
    /// Share of bot requests with a browser's user agent (0..1).
    pub imitator_share: f64,
    /// The `host` every request names.
    pub host: String,
}

/// An endless, deterministic stream of labelled requests: browsers chosen by their traffic
/// weight, bots uniformly among the bot user agents.
#[derive(Debug, Clone)]
pub struct Traffic<'p> {
    profiles: &'p Profiles,
    mix: Mix,
    rng: Rng,
    now_ms: u64,
}

const PAGES: &[&str] = &[
    "/",
    "/products",
    "/products/{n}",
    "/products/{n}/reviews",
    "/search",
    "/cart",
    "/account",
    "/blog/{n}-how-to-choose",
    "/help/shipping",
    "/category/{n}",
];
const ASSETS_IMAGE: &[&str] = &["/img/p{n}.webp", "/img/hero.avif", "/favicon.ico"];
const ASSETS_SCRIPT: &[&str] = &["/static/app.{n}.js", "/static/vendor.{n}.js"];
const ASSETS_STYLE: &[&str] = &["/static/site.{n}.css"];
const API_PATHS: &[&str] = &[
    "/api/v1/products",
    "/api/v1/cart",
    "/api/v1/search",
    "/api/v1/products/{n}",
];
const PROBES: &[&str] = &[
    "/wp-login.php",
    "/.env",
    "/.git/config",
    "/admin/",
    "/.well-known/security.txt",
    "/cgi-bin/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/phpmyadmin/index.php",
];

// === impl Mix ===

impl Default for Mix {
    fn default() -> Self {
        Mix {
            bot_share: DEFAULT_BOT_SHARE,
            imitator_share: DEFAULT_IMITATOR_SHARE,
            host: "shop.example".to_owned(),
        }
    }
}

// === impl Traffic ===

impl<'p> Traffic<'p> {
    /// A stream over `profiles`; the same seed gives the same stream.
    pub fn new(profiles: &'p Profiles, mix: Mix, seed: u64) -> Self {
        Traffic {
            profiles,
            mix,
            rng: Rng::new(seed),
            now_ms: 0,
        }
    }

    /// The next request.
    pub fn next_request(&mut self) -> Option<Labelled> {
        let rng = &mut self.rng;
        self.now_ms += rng.below(2 * MEAN_GAP_MS + 1);
        let host = &self.mix.host;
        let mut out = if rng.chance(self.mix.bot_share) {
            if rng.chance(self.mix.imitator_share) {
                imitator(self.profiles.pick_browser(rng)?, host, rng)
            } else {
                bot(self.profiles.pick_bot(rng)?, host, rng)
            }
        } else {
            human(self.profiles.pick_browser(rng)?, host, rng)
        };
        out.at_ms = self.now_ms;
        Some(out)
    }
}

impl Iterator for Traffic<'_> {
    type Item = Labelled;

    fn next(&mut self) -> Option<Labelled> {
        self.next_request()
    }
}

/// One request from a person using `browser`: a page or one of its subresources, with the
/// header set of the browser's engine.
pub fn human(browser: &Browser, host: &str, rng: &mut Rng) -> Labelled {
    let kit = Kit::for_browser(&browser.user_agent);
    let dest = if rng.chance(SUBRESOURCE_SHARE) {
        match rng.below(20) {
            0..=7 => Dest::Image,
            8..=11 => Dest::Script,
            12..=14 => Dest::Style,
            _ => Dest::Api,
        }
    } else {
        Dest::Document
    };
    let (path, query) = match dest {
        Dest::Document => page(rng),
        Dest::Image => (fill(rng.pick(ASSETS_IMAGE), rng), None),
        Dest::Script => (fill(rng.pick(ASSETS_SCRIPT), rng), None),
        Dest::Style => (fill(rng.pick(ASSETS_STYLE), rng), None),
        Dest::Api => (
            fill(rng.pick(API_PATHS), rng),
            Some(format!("page={}", rng.below(9) + 1)),
        ),
    };
    // Subresources always come from a page; half of navigations follow a link.
    let referer = (dest != Dest::Document || rng.chance(0.5)).then(|| format!("https://{host}/"));
    let cookie = rng
        .chance(0.6)
        .then(|| format!("sid={:016x}; consent=1", rng.next_u64()));
    let method = if dest == Dest::Api && rng.chance(0.3) {
        Method::POST
    } else {
        Method::GET
    };
    let shape = Shape {
        user_agent: &browser.user_agent,
        language: &browser.language,
        host,
        dest,
        referer: referer.as_deref(),
        cookie: cookie.as_deref(),
    };
    Labelled {
        request: Request {
            method,
            version: Version::HTTP_11,
            path,
            query,
            headers: header_map(&kit.headers(&shape)),
            client: shared_address(rng),
        },
        label: Label::Human,
        kind: Kind::Browser,
        kit,
        at_ms: 0,
    }
}

/// One request from a real bot user agent, with the header set of its library or family and
/// the paths its kind asks for.
pub fn bot(agent: &BotAgent, host: &str, rng: &mut Rng) -> Labelled {
    let kit = Kit::for_bot(agent);
    let kind = match kit {
        Kit::HeadlessNew | Kit::HeadlessOld | Kit::PhantomJs => Kind::Automation,
        Kit::Curl
        | Kit::Wget
        | Kit::PythonRequests
        | Kit::GoHttp
        | Kit::Httpx
        | Kit::Aiohttp
        | Kit::Okhttp
        | Kit::Axios
        | Kit::NodeFetch
        | Kit::Java
        | Kit::Scrapy
        | Kit::Php
            if agent.has_tag("http-library") =>
        {
            Kind::Tool
        }
        _ => Kind::Crawler,
    };
    let mut method = Method::GET;
    let (path, query) = if agent.has_tag("scanner") && rng.chance(0.5) {
        (fill(rng.pick(PROBES), rng), None)
    } else if agent.has_tag("monitoring") && rng.chance(0.4) {
        method = Method::HEAD;
        ("/".to_owned(), None)
    } else if kind == Kind::Tool && rng.chance(0.4) {
        if rng.chance(0.25) {
            method = Method::POST;
        }
        (
            fill(rng.pick(API_PATHS), rng),
            Some(format!("page={}", rng.below(50) + 1)),
        )
    } else if kind == Kind::Crawler && rng.chance(0.12) {
        let p = if rng.chance(0.7) {
            "/robots.txt"
        } else {
            "/sitemap.xml"
        };
        (p.to_owned(), None)
    } else {
        page(rng)
    };
    let version = if kit == Kit::CrawlerMinimal && rng.chance(0.2) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let shape = Shape {
        user_agent: &agent.user_agent,
        language: "en-US",
        host,
        dest: Dest::Document,
        referer: None,
        cookie: None,
    };
    Labelled {
        request: Request {
            method,
            version,
            path,
            query,
            headers: header_map(&kit.headers(&shape)),
            client: family_address(&agent.pattern, rng),
        },
        label: Label::Bot,
        kind,
        kit,
        at_ms: 0,
    }
}

/// One request from a bot that sends `browser`'s user agent: with a tool's, a scraper's or a
/// hint-less automation header set, or (rarely, [`PERFECT_IMITATOR_SHARE`]) a real browser
/// driven by a program, which behaves exactly like a person's (header set, subresources,
/// referer, cookies) and cannot be told apart by these features.
pub fn imitator(browser: &Browser, host: &str, rng: &mut Rng) -> Labelled {
    if rng.chance(PERFECT_IMITATOR_SHARE) {
        let mut l = human(browser, host, rng);
        l.label = Label::Bot;
        l.kind = Kind::Imitator;
        return l;
    }
    let kit = match rng.below(6) {
        0 => Kit::PythonRequests,
        1 => Kit::GoHttp,
        2 => Kit::Curl,
        3 => Kit::Scraper,
        4 => Kit::HintlessChromium,
        _ => Kit::Axios,
    };
    let (path, query) = page(rng);
    // Scrapers follow links (some send the page they came from) and keep some cookies.
    let referer = rng.chance(0.3).then(|| format!("https://{host}/"));
    let cookie = rng
        .chance(0.2)
        .then(|| format!("sid={:016x}", rng.next_u64()));
    let shape = Shape {
        user_agent: &browser.user_agent,
        language: &browser.language,
        host,
        dest: Dest::Document,
        referer: referer.as_deref(),
        cookie: cookie.as_deref(),
    };
    Labelled {
        request: Request {
            method: Method::GET,
            version: Version::HTTP_11,
            path,
            query,
            headers: header_map(&kit.headers(&shape)),
            client: shared_address(rng),
        },
        label: Label::Bot,
        kind: Kind::Imitator,
        kit,
        at_ms: 0,
    }
}

fn page(rng: &mut Rng) -> (String, Option<String>) {
    let path = fill(rng.pick(PAGES), rng);
    let query = if path == "/search" {
        Some(format!(
            "q=item+{}&page={}",
            rng.below(1000),
            rng.below(5) + 1
        ))
    } else if rng.chance(0.15) {
        Some(format!("utm_source=news&utm_campaign={}", rng.below(100)))
    } else {
        None
    };
    (path, query)
}

fn fill(template: Option<&&str>, rng: &mut Rng) -> String {
    let t = template.copied().unwrap_or("/");
    if t.contains("{n}") {
        t.replace("{n}", &(rng.below(5000) + 1).to_string())
    } else {
        t.to_owned()
    }
}

/// An address anywhere in 100.64.0.0/10 (shared address space: never a real client).
fn shared_address(rng: &mut Rng) -> IpAddr {
    let offset = rng.below(1 << 22) as u32;
    IpAddr::V4(Ipv4Addr::from(0x6440_0000 | offset))
}

/// One of the few addresses of a bot family, in 198.18.0.0/15 (benchmarking range).
fn family_address(pattern: &str, rng: &mut Rng) -> IpAddr {
    let base =
        (stable_hash(pattern.as_bytes()) % (1 << 11)) as u32 * BOT_ADDRESSES_PER_FAMILY as u32;
    let host = rng.below(BOT_ADDRESSES_PER_FAMILY) as u32;
    IpAddr::V4(Ipv4Addr::from(0xC612_0000 | ((base + host) & 0x1_FFFF)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Profiles {
        Profiles::embedded().unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let p = profiles();
        let a: Vec<_> = Traffic::new(&p, Mix::default(), 9).take(200).collect();
        let b: Vec<_> = Traffic::new(&p, Mix::default(), 9).take(200).collect();
        let c: Vec<_> = Traffic::new(&p, Mix::default(), 10).take(200).collect();
        let key = |v: &[Labelled]| {
            v.iter()
                .map(|l| {
                    (
                        l.request.user_agent().to_owned(),
                        l.request.path.clone(),
                        l.at_ms,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
    }

    #[test]
    fn the_mix_follows_its_shares() {
        let p = profiles();
        let n = 20_000;
        let stream: Vec<_> = Traffic::new(&p, Mix::default(), 1).take(n).collect();
        let bots = stream.iter().filter(|l| l.label == Label::Bot).count();
        let imitators = stream.iter().filter(|l| l.kind == Kind::Imitator).count();
        let share = bots as f64 / n as f64;
        assert!((share - DEFAULT_BOT_SHARE).abs() < 0.02, "{share}");
        let imitated = imitators as f64 / bots as f64;
        assert!(
            (imitated - DEFAULT_IMITATOR_SHARE).abs() < 0.03,
            "{imitated}"
        );
        assert!(stream.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        for kind in [
            Kind::Browser,
            Kind::Tool,
            Kind::Crawler,
            Kind::Automation,
            Kind::Imitator,
        ] {
            assert!(stream.iter().any(|l| l.kind == kind), "{kind:?}");
        }
    }

    #[test]
    fn humans_follow_the_traffic_weights() {
        let browsers = r#"[
            {"userAgent":"Heavy/1","language":"en-US","platform":"Win32","deviceCategory":"desktop","weight":3},
            {"userAgent":"Light/1","language":"en-US","platform":"Win32","deviceCategory":"desktop","weight":1}
        ]"#;
        let bots = r#"[{"pattern":"x","instances":["x/1"],"tags":[]}]"#;
        let p = Profiles::from_json(browsers, bots).unwrap();
        let mix = Mix {
            bot_share: 0.0,
            ..Mix::default()
        };
        let heavy = Traffic::new(&p, mix, 2)
            .take(8_000)
            .filter(|l| l.request.user_agent() == "Heavy/1")
            .count();
        assert!((5_700..6_300).contains(&heavy), "{heavy}");
    }

    #[test]
    fn humans_send_their_profile_language_and_bots_from_few_addresses() {
        let p = profiles();
        let mut rng = Rng::new(4);
        let fr = Browser {
            language: "fr-FR".into(),
            ..p.browsers()[0].clone()
        };
        let l = human(&fr, "h", &mut rng);
        let lang = l
            .request
            .headers
            .get("accept-language")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(lang.starts_with("fr-FR,fr;"), "{lang}");
        assert_eq!(l.label, Label::Human);
        let agent = &p.bots()[0];
        let addresses: std::collections::HashSet<_> = (0..200)
            .map(|_| bot(agent, "h", &mut rng).request.client)
            .collect();
        assert!(addresses.len() <= BOT_ADDRESSES_PER_FAMILY as usize);
    }

    #[test]
    fn imitators_carry_a_browser_user_agent_and_usually_not_its_headers() {
        let p = profiles();
        let mut rng = Rng::new(5);
        let b = &p.browsers()[0];
        let sample: Vec<_> = (0..500).map(|_| imitator(b, "h", &mut rng)).collect();
        assert!(
            sample
                .iter()
                .all(|l| l.request.user_agent() == b.user_agent)
        );
        assert!(sample.iter().all(|l| l.label == Label::Bot));
        let own = sample.iter().filter(|l| l.kit.is_browser()).count();
        assert!(own > 20 && own < 90, "{own}");
    }

    #[test]
    fn views_carry_the_request() {
        let p = profiles();
        let l = Traffic::new(&p, Mix::default(), 6).next().unwrap();
        let v = l.request.view(77);
        assert_eq!(v.now_ms, 77);
        assert_eq!(v.path, l.request.path);
        assert_eq!(v.headers.len(), l.request.headers.len());
    }
}
