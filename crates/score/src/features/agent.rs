//! User-agent features, from one pass over its bytes.
//!
//! Character classes are counted and every token of interest is found in the same loop: the
//! loop steps an Aho-Corasick DFA (ASCII case-insensitive, all overlapping matches) one byte
//! at a time, so sixty-odd substrings cost one table lookup per byte rather than one search
//! each.

use std::sync::LazyLock;

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};

use crate::catalog::FeatureId as F;
use crate::features::Features;

/// Longest user-agent prefix scanned for tokens and character classes. `ua_length` still
/// reports the whole length; the ratios are over the prefix. Browsers send 100 to 300 bytes.
pub const UA_SCAN_LIMIT: usize = 2048;

/// The Chrome major version that started sending `sec-ch-ua` (March 2021).
pub const SEC_CH_UA_SINCE_CHROME: u32 = 89;

/// Most digits read as a major version; longer runs are not versions and read as 0.
const MAX_MAJOR_DIGITS: usize = 5;

/// What the header pass needs to know about the user agent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Agent {
    /// The major version of a `Chrome/` or `Chromium/` token (0 when unreadable), when there
    /// is one. `CriOS/` does not count: Chrome on iOS is WebKit and sends no client hints.
    pub chromium_major: Option<u32>,
}

/// What finding a pattern means.
#[derive(Debug, Clone, Copy)]
struct Mark {
    /// The flag it sets.
    flag: Option<F>,
    /// Its priority as the main browser token (0: not a browser version token).
    rank: u8,
    /// Whether it is a Chromium engine token (see [`Agent::chromium_major`]).
    chromium: bool,
}

const fn flag(id: F) -> Mark {
    Mark {
        flag: Some(id),
        rank: 0,
        chromium: false,
    }
}

const fn browser(id: Option<F>, rank: u8, chromium: bool) -> Mark {
    Mark {
        flag: id,
        rank,
        chromium,
    }
}

const BOT: Mark = flag(F::UaHasBotWord);
const LIB: Mark = flag(F::UaHasHttpLibrary);
const HEADLESS: Mark = flag(F::UaHasHeadless);
const URL: Mark = flag(F::UaHasUrl);

/// Every substring looked for, lower case (matching ignores ASCII case). Browser tokens rank
/// Edge and Opera over Firefox over Chrome over Safari's `Version/`, because Edge and Opera
/// also carry a `Chrome/` token and Chrome a `Safari/` one.
const PATTERNS: &[(&str, Mark)] = &[
    ("mozilla/", flag(F::UaHasMozilla)),
    ("compatible", flag(F::UaHasCompatible)),
    ("applewebkit", flag(F::UaHasApplewebkit)),
    ("gecko/", flag(F::UaHasGecko)),
    ("khtml", flag(F::UaHasKhtml)),
    ("chrome/", browser(Some(F::UaHasChrome), 2, true)),
    ("chromium/", browser(Some(F::UaHasChrome), 2, true)),
    ("crios/", browser(Some(F::UaHasChrome), 2, false)),
    ("firefox/", browser(Some(F::UaHasFirefox), 3, false)),
    ("fxios/", browser(Some(F::UaHasFirefox), 3, false)),
    ("safari/", flag(F::UaHasSafari)),
    ("version/", browser(None, 1, false)),
    ("edg/", browser(Some(F::UaHasEdge), 4, false)),
    ("edge/", browser(Some(F::UaHasEdge), 4, false)),
    ("edga/", browser(Some(F::UaHasEdge), 4, false)),
    ("edgios/", browser(Some(F::UaHasEdge), 4, false)),
    ("opr/", browser(Some(F::UaHasOpera), 4, false)),
    ("opera", flag(F::UaHasOpera)),
    ("mobile", flag(F::UaHasMobile)),
    ("windows", flag(F::UaHasWindows)),
    ("macintosh", flag(F::UaHasMacos)),
    ("linux", flag(F::UaHasLinux)),
    ("x11", flag(F::UaHasLinux)),
    ("android", flag(F::UaHasAndroid)),
    ("iphone", flag(F::UaHasIos)),
    ("ipad", flag(F::UaHasIos)),
    ("ipod", flag(F::UaHasIos)),
    ("bot", BOT),
    ("crawl", BOT),
    ("spider", BOT),
    ("slurp", BOT),
    ("scan", BOT),
    ("fetch", BOT),
    ("archiv", BOT),
    ("index", BOT),
    ("monitor", BOT),
    ("check", BOT),
    ("preview", BOT),
    ("validator", BOT),
    ("probe", BOT),
    ("uptime", BOT),
    ("synthetic", BOT),
    ("feed", BOT),
    ("curl", LIB),
    ("wget", LIB),
    ("python", LIB),
    ("aiohttp", LIB),
    ("httpx", LIB),
    ("go-http-client", LIB),
    ("java/", LIB),
    ("(java)", LIB),
    ("jakarta", LIB),
    ("okhttp", LIB),
    ("axios", LIB),
    ("node-fetch", LIB),
    ("node.js", LIB),
    ("undici", LIB),
    ("libwww", LIB),
    ("lwp::", LIB),
    ("scrapy", LIB),
    ("httpclient", LIB),
    ("http_request", LIB),
    ("httpunit", LIB),
    ("guzzle", LIB),
    ("php/", LIB),
    ("ruby", LIB),
    ("perl", LIB),
    ("winhttp", LIB),
    ("urllib", LIB),
    ("reqwest", LIB),
    ("postman", LIB),
    ("insomnia", LIB),
    ("httpie", LIB),
    ("mechanize", LIB),
    ("httrack", LIB),
    ("indy library", LIB),
    ("dart:io", LIB),
    ("colly", LIB),
    ("faraday", LIB),
    ("restsharp", LIB),
    ("typhoeus", LIB),
    ("headless", HEADLESS),
    ("phantomjs", HEADLESS),
    ("puppeteer", HEADLESS),
    ("playwright", HEADLESS),
    ("selenium", HEADLESS),
    ("webdriver", HEADLESS),
    ("htmlunit", HEADLESS),
    ("slimerjs", HEADLESS),
    ("jsdom", HEADLESS),
    ("lighthouse", HEADLESS),
    ("http://", URL),
    ("https://", URL),
    ("www.", URL),
];

/// The automaton over [`PATTERNS`], built on first use. `None` only if building failed,
/// which a test rules out; the token flags then stay 0 rather than anything panicking.
static MATCHER: LazyLock<Option<DFA>> = LazyLock::new(|| {
    DFA::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .prefilter(false)
        .build(PATTERNS.iter().map(|(p, _)| p))
        .ok()
});

/// Fills the `ua_*` features from the user agent and returns what the header pass needs.
pub(super) fn scan(ua: &[u8], f: &mut Features) -> Agent {
    let scanned = ua.get(..UA_SCAN_LIMIT).unwrap_or(ua);
    let dfa = MATCHER.as_ref();
    let mut state = dfa.and_then(|d| d.start_state(Anchored::No).ok());

    let (mut digits, mut uppers, mut parens, mut slashes, mut semicolons) = (0, 0, 0, 0, 0);
    let (mut tokens, mut token_len, mut max_token) = (0usize, 0usize, 0usize);
    let (mut at_seen, mut email) = (false, false);
    let mut prev = b' ';
    // (rank, end) of the best browser token so far, and the end of the Chromium token.
    let mut main: (u8, usize) = (0, 0);
    let mut chromium_end: Option<usize> = None;

    for (i, &b) in scanned.iter().enumerate() {
        let next = scanned.get(i + 1).copied().unwrap_or(b' ');
        match b {
            b'0'..=b'9' => digits += 1,
            b'A'..=b'Z' => uppers += 1,
            b'(' => parens += 1,
            b'/' => slashes += 1,
            b';' => semicolons += 1,
            b'@' if is_local_part(prev) && next.is_ascii_alphabetic() => at_seen = true,
            b'.' if at_seen && next.is_ascii_alphabetic() => email = true,
            _ => {}
        }
        if b == b' ' || b == b'\t' {
            token_len = 0;
            at_seen = false;
        } else {
            if token_len == 0 {
                tokens += 1;
            }
            token_len += 1;
            max_token = max_token.max(token_len);
        }
        prev = b;

        if let (Some(d), Some(sid)) = (dfa, state.as_mut()) {
            *sid = d.next_state(Anchored::No, *sid, b);
            if d.is_match(*sid) {
                for k in 0..d.match_len(*sid) {
                    let pid = d.match_pattern(*sid, k);
                    let Some((_, mark)) = PATTERNS.get(pid.as_usize()) else {
                        continue;
                    };
                    if let Some(id) = mark.flag {
                        f.flag(id, true);
                    }
                    if mark.rank > main.0 {
                        main = (mark.rank, i + 1);
                    }
                    if mark.chromium && chromium_end.is_none() {
                        chromium_end = Some(i + 1);
                    }
                }
            }
        }
    }

    let len = scanned.len().max(1) as f32;
    f.count_u16(F::UaLength, ua.len());
    f.flag(F::UaIsEmpty, ua.trim_ascii().is_empty());
    f.count_u8(F::UaTokenCount, tokens);
    f.count_u16(F::UaMaxTokenLen, max_token);
    f.set(F::UaDigitRatio, digits as f32 / len);
    f.set(F::UaUpperRatio, uppers as f32 / len);
    f.count_u8(F::UaParenCount, parens);
    f.count_u8(F::UaSlashCount, slashes);
    f.count_u8(F::UaSemicolonCount, semicolons);
    f.flag(F::UaHasEmail, email);
    if main.0 > 0 {
        f.set(F::UaBrowserMajor, major_at(scanned, main.1) as f32 / 100.0);
    }
    Agent {
        chromium_major: chromium_end.map(|end| major_at(scanned, end)),
    }
}

/// Whether `b` may end the local part of an e-mail address.
fn is_local_part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+')
}

/// The number starting at `at` (a version's major), 0 when there is none or it is longer
/// than [`MAX_MAJOR_DIGITS`].
fn major_at(bytes: &[u8], at: usize) -> u32 {
    let rest = bytes.get(at..).unwrap_or(&[]);
    let mut major = 0u32;
    for (n, b) in rest.iter().enumerate() {
        if !b.is_ascii_digit() {
            break;
        }
        if n == MAX_MAJOR_DIGITS {
            return 0;
        }
        major = major * 10 + u32::from(b - b'0');
    }
    major
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(ua: &str) -> (Features, Agent) {
        let mut f = Features::zeroed();
        let a = scan(ua.as_bytes(), &mut f);
        (f, a)
    }

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/153.0.0.0 Safari/537.36";
    const FIREFOX: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:140.0) Gecko/20100101 Firefox/140.0";
    const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.6 Mobile/15E148 Safari/604.1";
    const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Safari/537.36 Edg/154.0.0.0";
    const CRIOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/148.0.0.0 Mobile/15E148 Safari/604.1";
    const GOOGLEBOT: &str = "DoCoMo/2.0 N905i(c100;TB;W24H16) (compatible; Googlebot-Mobile/2.1; +http://www.google.com/bot.html)";

    #[test]
    fn the_automaton_builds() {
        assert!(MATCHER.is_some());
    }

    #[test]
    fn a_chrome_user_agent() {
        let (f, a) = features(CHROME);
        for id in [
            F::UaHasMozilla,
            F::UaHasApplewebkit,
            F::UaHasKhtml,
            F::UaHasChrome,
            F::UaHasSafari,
            F::UaHasWindows,
        ] {
            assert_eq!(f.get(id), 1.0, "{}", id.name());
        }
        for id in [
            F::UaHasGecko,
            F::UaHasFirefox,
            F::UaHasEdge,
            F::UaHasBotWord,
            F::UaHasHttpLibrary,
            F::UaHasHeadless,
            F::UaHasUrl,
            F::UaHasEmail,
            F::UaIsEmpty,
            F::UaHasCompatible,
        ] {
            assert_eq!(f.get(id), 0.0, "{}", id.name());
        }
        assert_eq!(f.get(F::UaLength), CHROME.len() as f32);
        assert_eq!(f.get(F::UaTokenCount), 12.0);
        assert_eq!(f.get(F::UaParenCount), 2.0);
        assert_eq!(f.get(F::UaSemicolonCount), 2.0);
        assert_eq!(f.get(F::UaSlashCount), 4.0);
        assert_eq!(f.get(F::UaMaxTokenLen), "AppleWebKit/537.36".len() as f32);
        assert!((f.get(F::UaBrowserMajor) - 1.53).abs() < 1e-6);
        assert_eq!(a.chromium_major, Some(153));
    }

    #[test]
    fn browser_tokens_rank_edge_over_chrome_and_chrome_over_safari() {
        let (f, a) = features(EDGE);
        assert_eq!(f.get(F::UaHasEdge), 1.0);
        assert!((f.get(F::UaBrowserMajor) - 1.54).abs() < 1e-6);
        assert_eq!(a.chromium_major, Some(154));
        let (f, _) = features(FIREFOX);
        assert_eq!(f.get(F::UaHasGecko), 1.0);
        assert_eq!(f.get(F::UaHasMacos), 1.0);
        assert!((f.get(F::UaBrowserMajor) - 1.40).abs() < 1e-6);
        let (f, a) = features(SAFARI_IOS);
        assert_eq!(f.get(F::UaHasIos), 1.0);
        assert_eq!(f.get(F::UaHasMacos), 0.0, "iOS says `like Mac OS X`");
        assert_eq!(f.get(F::UaHasMobile), 1.0);
        assert!((f.get(F::UaBrowserMajor) - 0.26).abs() < 1e-6);
        assert_eq!(a.chromium_major, None);
        let (f, a) = features(CRIOS);
        assert_eq!(f.get(F::UaHasChrome), 1.0);
        assert!((f.get(F::UaBrowserMajor) - 1.48).abs() < 1e-6);
        assert_eq!(
            a.chromium_major, None,
            "Chrome on iOS sends no client hints"
        );
    }

    #[test]
    fn a_crawler_user_agent() {
        let (f, a) = features(GOOGLEBOT);
        assert_eq!(f.get(F::UaHasBotWord), 1.0);
        assert_eq!(f.get(F::UaHasCompatible), 1.0);
        assert_eq!(f.get(F::UaHasUrl), 1.0);
        assert_eq!(f.get(F::UaHasMozilla), 0.0);
        assert_eq!(f.get(F::UaBrowserMajor), 0.0);
        assert_eq!(a.chromium_major, None);
    }

    #[test]
    fn tools_libraries_and_headless_browsers() {
        for ua in [
            "curl/7.29.0",
            "Go-http-client/1.1",
            "python-httpx/0.16.1",
            "Python/3.9 aiohttp/3.7.3",
            "okhttp/2.7.5",
            "axios/0.19.0",
            "2Bone_LinkChecker/1.0 libwww-perl/6.03",
        ] {
            assert_eq!(features(ua).0.get(F::UaHasHttpLibrary), 1.0, "{ua}");
        }
        for ua in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/74.0.3729.169 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36; Selenium",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Playwright/1.40.0",
        ] {
            let (f, _) = features(ua);
            assert_eq!(f.get(F::UaHasHeadless), 1.0, "{ua}");
            assert_eq!(f.get(F::UaHasHttpLibrary), 0.0, "{ua}");
        }
        // Matching ignores case.
        assert_eq!(features("CURL/8").0.get(F::UaHasHttpLibrary), 1.0);
        assert_eq!(features("SomeSPIDER").0.get(F::UaHasBotWord), 1.0);
    }

    #[test]
    fn email_needs_an_address_shape() {
        let with = "Claude-Web/1.0 (web crawler; +https://www.anthropic.com/; bots@anthropic.com)";
        assert_eq!(features(with).0.get(F::UaHasEmail), 1.0);
        // A version after `@` is not an address (a real browser UA in the data set).
        let ecosia = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0 Mobile Safari/537.36 (Ecosia android@150.0.0.0)";
        assert_eq!(features(ecosia).0.get(F::UaHasEmail), 0.0);
        assert_eq!(features("a @b.c").0.get(F::UaHasEmail), 0.0);
    }

    #[test]
    fn empty_and_odd_user_agents() {
        let (f, a) = features("");
        assert_eq!(f.get(F::UaIsEmpty), 1.0);
        assert_eq!(f.get(F::UaLength), 0.0);
        assert_eq!(f.get(F::UaDigitRatio), 0.0);
        assert_eq!(a.chromium_major, None);
        assert_eq!(features("   ").0.get(F::UaIsEmpty), 1.0);
        // No digits after the token, or too many: 0, not garbage.
        assert_eq!(features("Chrome/W.X.Y.Z").0.get(F::UaBrowserMajor), 0.0);
        assert_eq!(features("Chrome/1234567").0.get(F::UaBrowserMajor), 0.0);
        assert_eq!(features("Chrome/").1.chromium_major, Some(0));
    }

    #[test]
    fn long_user_agents_saturate_and_are_scanned_up_to_the_limit() {
        let long = format!("{}curl/1", "a".repeat(70_000));
        let (f, _) = features(&long);
        assert_eq!(f.get(F::UaLength), f32::from(u16::MAX));
        assert_eq!(f.get(F::UaMaxTokenLen), UA_SCAN_LIMIT as f32);
        assert_eq!(f.get(F::UaHasHttpLibrary), 0.0, "past the scan limit");
        let many = "x ".repeat(1000);
        assert_eq!(features(&many).0.get(F::UaTokenCount), 255.0);
    }

    #[test]
    fn ratios() {
        let (f, _) = features("AB12cd");
        assert!((f.get(F::UaDigitRatio) - 2.0 / 6.0).abs() < 1e-6);
        assert!((f.get(F::UaUpperRatio) - 2.0 / 6.0).abs() < 1e-6);
    }

    #[test]
    fn majors() {
        assert_eq!(major_at(b"Chrome/120.0", 7), 120);
        assert_eq!(major_at(b"x", 5), 0);
        assert_eq!(major_at(b"99999", 0), 99_999);
        assert_eq!(major_at(b"999999", 0), 0);
    }
}
