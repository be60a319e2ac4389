//! The user-agent profiles traffic is made from: real browsers with their share of traffic,
//! and real bot user agents with their family's tags.

use std::path::{Path, PathBuf};

use http::HeaderValue;
use rampart_host::file;
use serde::Deserialize;

use crate::rng::Rng;

/// The embedded browser profiles (`data/user-agents/browsers.json`, a subset of the npm package
/// `user-agents`, BSD-2-Clause; see `data/user-agents/README.md`).
pub const EMBEDDED_BROWSERS: &str = include_str!("../../../data/user-agents/browsers.json");

/// The embedded bot user agents (`data/user-agents/bots.json`, a subset of the npm package
/// `crawler-user-agents`, MIT; see `data/user-agents/README.md`).
pub const EMBEDDED_BOTS: &str = include_str!("../../../data/user-agents/bots.json");

/// Largest data file [`Profiles::load`] reads: the shared browsers file is 3 MB.
pub const MAX_DATA_FILE: u64 = 32 * 1024 * 1024;

/// A real browser profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Browser {
    /// The User-Agent header it sends.
    #[serde(rename = "userAgent")]
    pub user_agent: String,
    /// `navigator.language` (`en-US`): the first range of its Accept-Language.
    pub language: String,
    /// `navigator.platform` (`Win32`, `MacIntel`, `iPhone`, `Linux x86_64`…).
    pub platform: String,
    /// `navigator.vendor`.
    #[serde(default)]
    pub vendor: String,
    /// `desktop`, `mobile` or `tablet`.
    #[serde(rename = "deviceCategory")]
    pub device_category: String,
    /// Its share of real traffic (relative; the generator normalizes).
    pub weight: f64,
}

/// One real bot user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotAgent {
    /// The User-Agent header it sends.
    pub user_agent: String,
    /// The family's pattern in `crawler-user-agents`.
    pub pattern: String,
    /// The family's tags (`search-engine`, `http-library`, `browser-automation`…).
    pub tags: Vec<String>,
}

/// Browser and bot profiles, checked: non-empty, finite non-negative weights, user agents that
/// are valid header values.
#[derive(Debug, Clone)]
pub struct Profiles {
    browsers: Vec<Browser>,
    bots: Vec<BotAgent>,
    /// Running sum of browser weights, for weighted choice by binary search.
    cumulative: Vec<f64>,
    dropped: usize,
}

/// Profiles that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A data file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A data file is larger than [`MAX_DATA_FILE`].
    #[error("{} is larger than {MAX_DATA_FILE} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A data file is not the expected JSON.
    #[error("{what} is not a valid profile list: {source}")]
    Json {
        /// Which file.
        what: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// No usable browser or no usable bot.
    #[error("no usable {what} profiles")]
    Empty {
        /// `browser` or `bot`.
        what: &'static str,
    },
}

#[derive(Debug, Deserialize)]
struct RawBotFamily {
    pattern: String,
    instances: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

// === impl Profiles ===

impl Profiles {
    /// The profiles compiled into the binary: needs no file at run time.
    pub fn embedded() -> Result<Self, ProfileError> {
        Self::from_json(EMBEDDED_BROWSERS, EMBEDDED_BOTS)
    }

    /// Reads `browsers.json` and `bots.json` from a directory (the layout of
    /// `shared/data/user-agents` and `data/user-agents`).
    pub fn load(dir: &Path) -> Result<Self, ProfileError> {
        let browsers = read_text(&dir.join("browsers.json"))?;
        let bots = read_text(&dir.join("bots.json"))?;
        Self::from_json(&browsers, &bots)
    }

    /// Parses the two JSON documents. Profiles whose user agent is not a valid header value,
    /// or whose weight is not finite and non-negative, are dropped and counted.
    pub fn from_json(browsers: &str, bots: &str) -> Result<Self, ProfileError> {
        let raw: Vec<Browser> =
            serde_json::from_str(browsers).map_err(|source| ProfileError::Json {
                what: "browsers".into(),
                source,
            })?;
        let families: Vec<RawBotFamily> =
            serde_json::from_str(bots).map_err(|source| ProfileError::Json {
                what: "bots".into(),
                source,
            })?;
        let total = raw.len() + families.iter().map(|f| f.instances.len()).sum::<usize>();
        let browsers: Vec<Browser> = raw
            .into_iter()
            .filter(|b| b.weight.is_finite() && b.weight >= 0.0 && header_safe(&b.user_agent))
            .collect();
        let bots: Vec<BotAgent> = families
            .into_iter()
            .flat_map(|f| {
                let (pattern, tags) = (f.pattern, f.tags);
                f.instances
                    .into_iter()
                    .filter(|ua| header_safe(ua))
                    .map(move |user_agent| BotAgent {
                        user_agent,
                        pattern: pattern.clone(),
                        tags: tags.clone(),
                    })
            })
            .collect();
        if browsers.is_empty() {
            return Err(ProfileError::Empty { what: "browser" });
        }
        if bots.is_empty() {
            return Err(ProfileError::Empty { what: "bot" });
        }
        let mut sum = 0.0;
        let cumulative = browsers
            .iter()
            .map(|b| {
                sum += b.weight;
                sum
            })
            .collect();
        let dropped = total - browsers.len() - bots.len();
        Ok(Profiles {
            browsers,
            bots,
            cumulative,
            dropped,
        })
    }

    /// The browser profiles.
    pub fn browsers(&self) -> &[Browser] {
        &self.browsers
    }

    /// The bot user agents.
    pub fn bots(&self) -> &[BotAgent] {
        &self.bots
    }

    /// Profiles dropped at load (not a valid header value, or a bad weight).
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// A browser chosen with probability proportional to its traffic weight (uniformly when
    /// every weight is 0).
    pub fn pick_browser(&self, rng: &mut Rng) -> Option<&Browser> {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        if total <= 0.0 {
            return rng.pick(&self.browsers);
        }
        let target = rng.unit() * total;
        let i = self.cumulative.partition_point(|c| *c <= target);
        self.browsers.get(i).or(self.browsers.last())
    }

    /// A bot user agent, uniformly.
    pub fn pick_bot(&self, rng: &mut Rng) -> Option<&BotAgent> {
        rng.pick(&self.bots)
    }
}

// === impl BotAgent ===

impl BotAgent {
    /// Whether the family carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

fn header_safe(ua: &str) -> bool {
    !ua.trim().is_empty() && HeaderValue::from_str(ua).is_ok()
}

fn read_text(path: &Path) -> Result<String, ProfileError> {
    let limit = usize::try_from(MAX_DATA_FILE).unwrap_or(usize::MAX);
    file::read_text(path, limit).map_err(|e| match e {
        file::Error::TooLarge { path, .. } => ProfileError::TooLarge { path },
        e => ProfileError::Io {
            path: path.to_owned(),
            source: e.into_io(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_subset_loads_with_its_sizes() {
        let p = Profiles::embedded().unwrap();
        assert_eq!(p.browsers().len(), 300);
        assert_eq!(p.bots().len(), 150);
        assert_eq!(p.dropped(), 0);
        assert!(p.bots().iter().any(|b| b.has_tag("http-library")));
        assert!(p.bots().iter().any(|b| b.has_tag("browser-automation")));
    }

    #[test]
    fn weighted_choice_follows_weights() {
        let browsers = r#"[
            {"userAgent":"A","language":"en-US","platform":"Win32","deviceCategory":"desktop","weight":9},
            {"userAgent":"B","language":"en-US","platform":"Win32","deviceCategory":"desktop","weight":1}
        ]"#;
        let bots = r#"[{"pattern":"x","instances":["x/1"],"tags":[]}]"#;
        let p = Profiles::from_json(browsers, bots).unwrap();
        let mut rng = Rng::new(3);
        let a = (0..10_000)
            .filter(|_| p.pick_browser(&mut rng).unwrap().user_agent == "A")
            .count();
        assert!((8700..9300).contains(&a), "{a}");
    }

    #[test]
    fn bad_profiles_are_dropped_and_empty_sets_refused() {
        let browsers = r#"[
            {"userAgent":"ok","language":"en","platform":"p","deviceCategory":"desktop","weight":1},
            {"userAgent":"bad\nline","language":"en","platform":"p","deviceCategory":"desktop","weight":1},
            {"userAgent":"neg","language":"en","platform":"p","deviceCategory":"desktop","weight":-1}
        ]"#;
        let bots = r#"[{"pattern":"x","instances":["x/1", ""],"tags":["seo"]}]"#;
        let p = Profiles::from_json(browsers, bots).unwrap();
        assert_eq!(p.browsers().len(), 1);
        assert_eq!(p.bots().len(), 1);
        assert_eq!(p.dropped(), 3);
        assert!(matches!(
            Profiles::from_json("[]", bots),
            Err(ProfileError::Empty { what: "browser" })
        ));
        assert!(matches!(
            Profiles::from_json(browsers, "[]"),
            Err(ProfileError::Empty { what: "bot" })
        ));
        assert!(matches!(
            Profiles::from_json("{", bots),
            Err(ProfileError::Json { .. })
        ));
    }

    #[test]
    fn load_reads_a_directory_and_reports_a_missing_one() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/user-agents");
        let p = Profiles::load(&dir).unwrap();
        assert_eq!(p.browsers(), Profiles::embedded().unwrap().browsers());
        assert!(matches!(
            Profiles::load(Path::new("/nonexistent/rampart")),
            Err(ProfileError::Io { .. })
        ));
    }
}
