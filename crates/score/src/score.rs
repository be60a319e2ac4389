//! The model's output: a bot score from 1 to 99, or no score at all.

/// Lowest real score: surely automated.
pub const MIN_SCORE: u8 = 1;

/// Highest real score: surely human.
pub const MAX_SCORE: u8 = 99;

/// The header value of a request without a score.
pub const UNSCORED_HEADER: &str = "unscored";

/// The result of scoring one request.
///
/// `Unscored` is not a low score: a `--block-below` rule never blocks it (see [`blocks`]);
/// what happens to unscored traffic is the edge's fail policy. On 18 November 2025 the old
/// proxy gave every request score 0 and customers' "block bots" rules blocked real users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Score {
    /// A real score, [`MIN_SCORE`]..=[`MAX_SCORE`]: 1 = surely automated, 99 = surely human.
    Scored(u8),
    /// No score, and why.
    Unscored(Unscored),
}

/// Why a request has no score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unscored {
    /// No model is loaded (nothing valid has arrived yet). Its label stays `no_plan`, the
    /// name dashboards already query.
    NoModel,
    /// The bot module is switched off (kill switch, or the crash-loop sentinel).
    ModuleOff,
    /// The module failed on this request (a non-finite sum; the edge also maps a caught
    /// panic here).
    ModuleError,
}

/// Whether a customer rule "block scores below `block_below`" blocks this request: only a
/// real score under the threshold does. Unscored requests are never blocked by the rule.
pub fn blocks(score: Score, block_below: Option<u8>) -> bool {
    match (score, block_below) {
        (Score::Scored(s), Some(threshold)) => s < threshold,
        _ => false,
    }
}

/// `1 + round(98 · sigmoid(z))`, clamped to 1..=99; a non-finite `z` is a module error.
pub fn score_logit(z: f32) -> Score {
    if !z.is_finite() {
        return Score::Unscored(Unscored::ModuleError);
    }
    // Two branches so exp never overflows to inf/inf.
    let p = if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    };
    let s = (1.0 + (98.0 * p).round()).clamp(f32::from(MIN_SCORE), f32::from(MAX_SCORE));
    Score::Scored(s as u8)
}

/// Header values of 0..=99, so a score becomes a header without formatting or allocating.
const HEADER_VALUES: [&str; 100] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64",
    "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80",
    "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96",
    "97", "98", "99",
];

// === impl Score ===

impl Score {
    /// A real score, if `s` is in 1..=99.
    pub fn scored(s: u8) -> Option<Score> {
        (MIN_SCORE..=MAX_SCORE)
            .contains(&s)
            .then_some(Score::Scored(s))
    }

    /// The value of the `x-rampart-bot-score` header: `"1"`..`"99"`, or `"unscored"`.
    /// A `Scored` value outside 1..=99 (only constructible by hand) is clamped into it.
    pub fn header_value(self) -> &'static str {
        match self {
            Score::Scored(s) => HEADER_VALUES
                .get(usize::from(s.clamp(MIN_SCORE, MAX_SCORE)))
                .copied()
                .unwrap_or(UNSCORED_HEADER),
            Score::Unscored(_) => UNSCORED_HEADER,
        }
    }

    /// The real score, if there is one.
    pub fn value(self) -> Option<u8> {
        match self {
            Score::Scored(s) => Some(s),
            Score::Unscored(_) => None,
        }
    }
}

// === impl Unscored ===

impl Unscored {
    /// A stable snake_case name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Unscored::NoModel => "no_plan",
            Unscored::ModuleOff => "module_off",
            Unscored::ModuleError => "module_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_map_to_1_through_99() {
        assert_eq!(score_logit(0.0), Score::Scored(50));
        assert_eq!(score_logit(1e30), Score::Scored(99));
        assert_eq!(score_logit(-1e30), Score::Scored(1));
        assert_eq!(score_logit(f32::MAX), Score::Scored(99));
        assert_eq!(score_logit(f32::MIN), Score::Scored(1));
        // sigmoid(2) = 0.8808: 1 + round(86.3) = 87.
        assert_eq!(score_logit(2.0), Score::Scored(87));
        assert_eq!(score_logit(-2.0), Score::Scored(13));
        let mut last = 0;
        for i in -200..=200 {
            let Score::Scored(s) = score_logit(i as f32 / 20.0) else {
                panic!("unscored at {i}");
            };
            assert!((1..=99).contains(&s));
            assert!(s >= last, "monotonic");
            last = s;
        }
    }

    #[test]
    fn a_non_finite_logit_is_a_module_error_not_a_score() {
        for z in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(score_logit(z), Score::Unscored(Unscored::ModuleError));
        }
    }

    #[test]
    fn header_values() {
        assert_eq!(Score::Scored(37).header_value(), "37");
        assert_eq!(Score::Scored(1).header_value(), "1");
        assert_eq!(Score::Scored(99).header_value(), "99");
        assert_eq!(Score::Scored(0).header_value(), "1");
        assert_eq!(Score::Scored(200).header_value(), "99");
        for u in [
            Unscored::NoModel,
            Unscored::ModuleOff,
            Unscored::ModuleError,
        ] {
            assert_eq!(Score::Unscored(u).header_value(), "unscored");
        }
        for s in 1..=99u8 {
            assert_eq!(Score::Scored(s).header_value(), s.to_string());
        }
    }

    #[test]
    fn unscored_is_never_blocked_and_scores_below_the_threshold_are() {
        for u in [
            Unscored::NoModel,
            Unscored::ModuleOff,
            Unscored::ModuleError,
        ] {
            for t in [None, Some(1), Some(30), Some(100), Some(255)] {
                assert!(!blocks(Score::Unscored(u), t));
            }
        }
        assert!(blocks(Score::Scored(29), Some(30)));
        assert!(!blocks(Score::Scored(30), Some(30)));
        assert!(!blocks(Score::Scored(1), None));
        assert!(blocks(Score::Scored(99), Some(100)));
    }

    #[test]
    fn constructors_and_names() {
        assert_eq!(Score::scored(0), None);
        assert_eq!(Score::scored(100), None);
        assert_eq!(Score::scored(5), Some(Score::Scored(5)));
        assert_eq!(Score::Scored(5).value(), Some(5));
        assert_eq!(Score::Unscored(Unscored::NoModel).value(), None);
        assert_eq!(Unscored::ModuleOff.as_str(), "module_off");
    }
}
