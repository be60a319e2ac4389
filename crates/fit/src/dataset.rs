//! The labelled samples: requests made by the traffic generator from every profile of the data,
//! turned into the edge's extractor values, and split by user agent.

use rampart_score::catalog::COUNT;
use rampart_score::{RateTable, extract};
use rampart_traffic::{Kind, Labelled, Profiles, Rng, bot, human, imitator, rng::stable_hash};

/// Requests made from each browser profile (a page and subresources vary between them).
pub const REQUESTS_PER_BROWSER: usize = 3;
/// Requests made from each bot user agent.
pub const REQUESTS_PER_BOT: usize = 6;
/// Imitator requests (a browser user agent sent by a bot), as a share of all bot requests.
pub const IMITATOR_SHARE: f64 = 0.25;
/// One user agent in this many goes to the held-out part (by a hash of the user agent, so a
/// user agent is never on both sides).
pub const HOLDOUT_ONE_IN: u64 = 5;
/// The host every sample names.
pub const HOST: &str = "shop.example";
/// Milliseconds between two samples: more than the rate window, so each sample is the first
/// request of its client in its minute (the data has no per-client timing to learn from).
pub const SAMPLE_SPACING_MS: u64 = 120_000;

/// Samples: extractor values, labels, kinds and the split.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// One row of [`COUNT`] extractor values per sample, in catalog order.
    pub rows: Vec<[f32; COUNT]>,
    /// True for a human.
    pub human: Vec<bool>,
    /// The kind of client.
    pub kind: Vec<Kind>,
    /// True when the sample is held out.
    pub test: Vec<bool>,
}

// === impl Dataset ===

impl Dataset {
    /// Builds the samples from every profile, deterministically from `seed`.
    pub fn build(profiles: &Profiles, seed: u64) -> Dataset {
        let mut rng = Rng::new(seed);
        let mut samples: Vec<Labelled> = Vec::new();
        for b in profiles.browsers() {
            for _ in 0..REQUESTS_PER_BROWSER {
                samples.push(human(b, HOST, &mut rng));
            }
        }
        let mut bots = 0usize;
        for a in profiles.bots() {
            for _ in 0..REQUESTS_PER_BOT {
                samples.push(bot(a, HOST, &mut rng));
                bots += 1;
            }
        }
        // imitators / (bots + imitators) = IMITATOR_SHARE
        let imitators = (bots as f64 * IMITATOR_SHARE / (1.0 - IMITATOR_SHARE)).round() as usize;
        for _ in 0..imitators {
            if let Some(b) = profiles.pick_browser(&mut rng) {
                samples.push(imitator(b, HOST, &mut rng));
            }
        }
        let rate = RateTable::new();
        let mut ds = Dataset {
            rows: Vec::with_capacity(samples.len()),
            human: Vec::with_capacity(samples.len()),
            kind: Vec::with_capacity(samples.len()),
            test: Vec::with_capacity(samples.len()),
        };
        for (i, s) in samples.iter().enumerate() {
            let f = extract(&s.request.view(i as u64 * SAMPLE_SPACING_MS), &rate);
            let mut row = [0.0f32; COUNT];
            row.copy_from_slice(f.as_slice());
            ds.rows.push(row);
            ds.human.push(!s.label.is_bot());
            ds.kind.push(s.kind);
            ds.test.push(is_held_out(s.request.user_agent()));
        }
        ds
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Whether a user agent belongs to the held-out part.
pub fn is_held_out(user_agent: &str) -> bool {
    stable_hash(user_agent.as_bytes()).is_multiple_of(HOLDOUT_ONE_IN)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_embedded_profiles_make_a_split_labelled_dataset() {
        let p = Profiles::embedded().unwrap();
        let ds = Dataset::build(&p, 1);
        let browsers = p.browsers().len() * REQUESTS_PER_BROWSER;
        let bots = p.bots().len() * REQUESTS_PER_BOT;
        assert_eq!(ds.human.iter().filter(|h| **h).count(), browsers);
        assert!(ds.len() > browsers + bots);
        let held = ds.test.iter().filter(|t| **t).count() as f64 / ds.len() as f64;
        // One user agent in five, but the embedded subset repeats its most common user agents
        // (same agent, other language), so the share of samples moves more than that.
        assert!((0.05..0.6).contains(&held), "{held}");
        for kind in [
            Kind::Browser,
            Kind::Tool,
            Kind::Crawler,
            Kind::Automation,
            Kind::Imitator,
        ] {
            assert!(ds.kind.contains(&kind), "{kind:?}");
        }
        // Deterministic.
        let again = Dataset::build(&p, 1);
        assert_eq!(again.rows, ds.rows);
    }

    #[test]
    fn a_user_agent_is_never_on_both_sides() {
        let p = Profiles::embedded().unwrap();
        let mut rng = Rng::new(2);
        let mut train = HashSet::new();
        let mut test = HashSet::new();
        for b in p.browsers() {
            let l = human(b, HOST, &mut rng);
            let ua = l.request.user_agent().to_owned();
            if is_held_out(&ua) {
                test.insert(ua);
            } else {
                train.insert(ua);
            }
        }
        assert!(train.is_disjoint(&test));
        assert!(!test.is_empty() && !train.is_empty());
    }
}
