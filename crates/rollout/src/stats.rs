//! Two-sample statistics computed from histograms and counters in O(buckets): no per-request
//! data is kept, so a gate over a million requests costs the same as one over a hundred.
//!
//! Every number returned is finite (a NaN cannot be stored as JSON and would poison a
//! comparison), and an empty sample gives `None` rather than a made-up value.

use serde::{Deserialize, Serialize};

use crate::observation::{BUCKETS, ScoreHistogram};

/// The Kolmogorov–Smirnov two-sample test of two score histograms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ks {
    /// The largest distance between the two empirical CDFs, in [0, 1].
    pub d: f64,
    /// Asymptotic p-value of `d` for these sample sizes (conservative with ties).
    pub p_value: f64,
    /// Requests in the new sample.
    pub n_new: u64,
    /// Requests in the baseline sample.
    pub n_baseline: u64,
    /// The bucket where the distance is largest (0 unscored, else the score).
    pub at_bucket: u8,
    /// Share of new requests at or below `at_bucket`.
    pub cdf_new: f64,
    /// Share of baseline requests at or below `at_bucket`.
    pub cdf_baseline: f64,
}

/// The Mann–Whitney U test of two score histograms, with ties handled by midranks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U of the new sample: pairs (new, baseline) where new scores higher, ties counting ½.
    pub u: f64,
    /// `u / (n_new · n_baseline)`: the chance a new request outscores a baseline one; 0.5 is
    /// no shift, below 0.5 a shift down (towards "bot" or unscored).
    pub auc: f64,
    /// Normal approximation with the tie correction.
    pub z: f64,
    /// Two-sided p-value of `z`.
    pub p_value: f64,
}

/// The one-sided two-proportion z statistic: how far `events_a / n_a` is above
/// `events_b / n_b`, in standard errors of the pooled proportion. `None` if a sample is empty.
pub fn two_proportion_z(events_a: u64, n_a: u64, events_b: u64, n_b: u64) -> Option<f64> {
    if n_a == 0 || n_b == 0 {
        return None;
    }
    let (xa, na, xb, nb) = (
        events_a.min(n_a) as f64,
        n_a as f64,
        events_b.min(n_b) as f64,
        n_b as f64,
    );
    let p = (xa + xb) / (na + nb);
    let se = (p * (1.0 - p) * (1.0 / na + 1.0 / nb)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        // Both samples are all-events or all-clean: no difference.
        return Some(0.0);
    }
    Some(finite((xa / na - xb / nb) / se))
}

/// The lower end of the Wilson score interval of `events / n` at `z` standard errors: the
/// smallest rate the sample supports with that confidence. Unlike the normal approximation
/// it stays honest with a handful of events (4 errors in 500 requests do not prove a rate
/// above 0.5%). `None` if `n` is 0.
pub fn wilson_lower(events: u64, n: u64, z: f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    if events == 0 {
        return Some(0.0);
    }
    let (x, n) = (events.min(n) as f64, n as f64);
    let p = x / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = p + z2 / (2.0 * n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).max(0.0).sqrt();
    Some(finite(((center - half) / denom).clamp(0.0, 1.0)))
}

/// The KS test of `new` against `baseline`; `None` if either is empty.
pub fn ks_two_sample(new: &ScoreHistogram, baseline: &ScoreHistogram) -> Option<Ks> {
    let (n_new, n_base) = (new.total(), baseline.total());
    if n_new == 0 || n_base == 0 {
        return None;
    }
    let (fa, fb) = (n_new as f64, n_base as f64);
    let (mut ca, mut cb) = (0u64, 0u64);
    let mut best = (0.0f64, 0u8, 0.0, 0.0);
    for (k, (a, b)) in (0u8..).zip(new.counts().iter().zip(baseline.counts())) {
        ca = ca.saturating_add(*a);
        cb = cb.saturating_add(*b);
        let (pa, pb) = (ca as f64 / fa, cb as f64 / fb);
        let d = (pa - pb).abs();
        if d > best.0 {
            best = (d, k, pa, pb);
        }
    }
    let ne = fa * fb / (fa + fb);
    let sq = ne.sqrt();
    let lambda = (sq + 0.12 + 0.11 / sq) * best.0;
    Some(Ks {
        d: finite(best.0),
        p_value: kolmogorov_q(lambda),
        n_new,
        n_baseline: n_base,
        at_bucket: best.1,
        cdf_new: finite(best.2),
        cdf_baseline: finite(best.3),
    })
}

/// The Mann–Whitney test of `new` against `baseline`; `None` if either is empty.
pub fn mann_whitney(new: &ScoreHistogram, baseline: &ScoreHistogram) -> Option<MannWhitney> {
    let (n_new, n_base) = (new.total(), baseline.total());
    if n_new == 0 || n_base == 0 {
        return None;
    }
    let (fa, fb) = (n_new as f64, n_base as f64);
    let n = fa + fb;
    let mut below_b = 0.0f64;
    let mut u = 0.0f64;
    let mut ties = 0.0f64;
    for (a, b) in new.counts().iter().zip(baseline.counts()).take(BUCKETS) {
        let (a, b) = (*a as f64, *b as f64);
        u += a * (below_b + 0.5 * b);
        below_b += b;
        let t = a + b;
        ties += t * t * t - t;
    }
    let mean = fa * fb / 2.0;
    let var = fa * fb / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    let z = if var > 0.0 && var.is_finite() {
        (u - mean) / var.sqrt()
    } else {
        0.0
    };
    let z = finite(z);
    Some(MannWhitney {
        u: finite(u),
        auc: finite(u / (fa * fb)),
        z,
        p_value: erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0),
    })
}

/// The most deaths [`death_rate_test`] sums the binomial tail over exactly; above it the
/// counts are scaled down to this total (same proportions), which only makes the test more
/// conservative. Deaths are rare: a fleet that reaches this many has other alarms.
pub const MAX_EXACT_DEATHS: u64 = 100_000;

/// Deaths on two versions compared per unit of exposure (node-time on each).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeathTest {
    /// Deaths on the new version (`a`).
    pub new_deaths: u64,
    /// Node-time on the new version, ms (`Ta`).
    pub new_exposure_ms: u64,
    /// Deaths on the previous version (`b`).
    pub previous_deaths: u64,
    /// Node-time on the previous version, ms (`Tb`).
    pub previous_exposure_ms: u64,
    /// Deaths per node-hour on the new version.
    pub new_per_node_hour: f64,
    /// Deaths per node-hour on the previous version.
    pub previous_per_node_hour: f64,
    /// `new_per_node_hour / previous_per_node_hour`; `None` when the previous version had no
    /// death (the ratio is unbounded).
    pub rate_ratio: Option<f64>,
    /// One-sided p-value: given `n = a + b` deaths, `P(X ≥ a)` for `X ~ Bin(n, Ta/(Ta+Tb))`,
    /// the chance that deaths spread by exposure alone put at least `a` on the new version.
    pub p_value: f64,
}

/// The conditional binomial test of two Poisson rates: deaths `a` in exposure `ta` (new)
/// against `b` in `tb` (previous). Conditioned on the `a + b` deaths seen, each fell on the
/// new version with probability `ta / (ta + tb)` if both versions die at the same rate; the
/// p-value is the upper tail at `a`. `None` when either exposure is zero (nothing to compare).
pub fn death_rate_test(a: u64, ta_ms: u64, b: u64, tb_ms: u64) -> Option<DeathTest> {
    if ta_ms == 0 || tb_ms == 0 {
        return None;
    }
    let hours = |ms: u64| ms as f64 / 3_600_000.0;
    let new_rate = finite(a as f64 / hours(ta_ms));
    let previous_rate = finite(b as f64 / hours(tb_ms));
    let rate_ratio = (b > 0).then(|| finite(new_rate / previous_rate));
    let share = ta_ms as f64 / (ta_ms as f64 + tb_ms as f64);
    let (ka, kn) = scaled(a, a.saturating_add(b));
    Some(DeathTest {
        new_deaths: a,
        new_exposure_ms: ta_ms,
        previous_deaths: b,
        previous_exposure_ms: tb_ms,
        new_per_node_hour: new_rate,
        previous_per_node_hour: previous_rate,
        rate_ratio,
        p_value: binomial_upper_tail(ka, kn, share),
    })
}

/// `(k, n)` scaled down to at most [`MAX_EXACT_DEATHS`] trials, the share kept.
fn scaled(k: u64, n: u64) -> (u64, u64) {
    if n <= MAX_EXACT_DEATHS {
        return (k, n);
    }
    let k = ((k as f64 / n as f64) * MAX_EXACT_DEATHS as f64).floor() as u64;
    (k.min(MAX_EXACT_DEATHS), MAX_EXACT_DEATHS)
}

/// `P(X ≥ k)` for `X ~ Bin(n, p)`, summed in log space (no underflow for large `n`).
fn binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // log pmf(0) = n ln q; pmf(j+1) = pmf(j) · (n−j)/(j+1) · p/q.
    let mut log_pmf = n as f64 * lq;
    let mut terms = Vec::new();
    for j in 0..n {
        if j >= k {
            terms.push(log_pmf);
        }
        log_pmf += ((n - j) as f64).ln() - ((j + 1) as f64).ln() + lp - lq;
    }
    terms.push(log_pmf); // j = n
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return 0.0;
    }
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    finite((max + sum.ln()).exp()).clamp(0.0, 1.0)
}

/// The Kolmogorov distribution's tail `Q(λ) = 2 Σ (-1)^(j-1) exp(-2 j² λ²)`
/// (Numerical Recipes' `probks`); 1 where the series has not converged (tiny λ).
fn kolmogorov_q(lambda: f64) -> f64 {
    const EPS_TERM: f64 = 0.001;
    const EPS_SUM: f64 = 1.0e-8;
    if !lambda.is_finite() || lambda <= 0.0 {
        return 1.0;
    }
    let a2 = -2.0 * lambda * lambda;
    let mut fac = 2.0;
    let mut sum = 0.0;
    let mut previous = 0.0f64;
    for j in 1..=100u32 {
        let jf = f64::from(j);
        let term = fac * (a2 * jf * jf).exp();
        sum += term;
        if term.abs() <= EPS_TERM * previous || term.abs() <= EPS_SUM * sum {
            return sum.clamp(0.0, 1.0);
        }
        fac = -fac;
        previous = term.abs();
    }
    1.0
}

/// The complementary error function (Numerical Recipes' `erfcc`, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * poly.exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

/// `x`, or 0 for NaN and ±`f64::MAX` for infinities: every stored number stays JSON.
pub(crate) fn finite(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(f64::MIN, f64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binomial_tail_matches_hand_computed_values() {
        // Bin(3, 0.5): P(X ≥ 2) = 4/8, P(X ≥ 3) = 1/8.
        assert!((binomial_upper_tail(2, 3, 0.5) - 0.5).abs() < 1e-12);
        assert!((binomial_upper_tail(3, 3, 0.5) - 0.125).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(0, 3, 0.5), 1.0);
        assert_eq!(binomial_upper_tail(4, 3, 0.5), 0.0);
        // Bin(10, 0.1): P(X ≥ 1) = 1 − 0.9^10.
        assert!((binomial_upper_tail(1, 10, 0.1) - (1.0 - 0.9f64.powi(10))).abs() < 1e-12);
        // Large n stays finite and in [0, 1].
        let p = binomial_upper_tail(60_000, 100_000, 0.5);
        assert!((0.0..1e-100).contains(&p), "{p}");
    }

    #[test]
    fn deaths_on_a_version_with_little_exposure_are_significant() {
        // 6 deaths in 10 node-hours on the new version, 1 in 100 on the previous one.
        let t = death_rate_test(6, 36_000_000, 1, 360_000_000).unwrap();
        assert!((t.new_per_node_hour - 0.6).abs() < 1e-9);
        assert!((t.previous_per_node_hour - 0.01).abs() < 1e-9);
        assert!((t.rate_ratio.unwrap() - 60.0).abs() < 1e-6);
        // Bin(7, 1/11): P(X ≥ 6) is about 3e-6.
        assert!(t.p_value < 1e-5 && t.p_value > 1e-7, "{}", t.p_value);
        // The same deaths spread by exposure: not significant.
        let even = death_rate_test(1, 36_000_000, 10, 360_000_000).unwrap();
        assert!(even.p_value > 0.5, "{}", even.p_value);
        // No death on the previous version: the ratio is unbounded.
        assert_eq!(death_rate_test(3, 1, 0, 1).unwrap().rate_ratio, None);
        // No exposure on one side: nothing to compare.
        assert_eq!(death_rate_test(3, 0, 0, 1), None);
        assert_eq!(death_rate_test(3, 1, 0, 0), None);
        // Huge counts are scaled, not summed forever, and stay in range.
        let big = death_rate_test(u64::MAX / 4, 1_000, u64::MAX / 4, 1_000).unwrap();
        assert!((0.0..=1.0).contains(&big.p_value));
    }

    fn hist(pairs: &[(usize, u64)]) -> ScoreHistogram {
        let mut h = ScoreHistogram::new();
        for &(b, n) in pairs {
            h.add_to(b, n);
        }
        h
    }

    #[test]
    fn identical_samples_have_no_distance() {
        let h = hist(&[(5, 10), (80, 30), (95, 60)]);
        let ks = ks_two_sample(&h, &h).unwrap();
        assert_eq!(ks.d, 0.0);
        assert_eq!(ks.p_value, 1.0);
        let mw = mann_whitney(&h, &h).unwrap();
        assert!((mw.auc - 0.5).abs() < 1e-12);
        assert!(mw.z.abs() < 1e-9);
        assert!((mw.p_value - 1.0).abs() < 1e-6);
    }

    #[test]
    fn disjoint_samples_are_fully_apart() {
        let low = hist(&[(1, 100)]);
        let high = hist(&[(90, 100)]);
        let ks = ks_two_sample(&low, &high).unwrap();
        assert_eq!(ks.d, 1.0);
        assert_eq!(ks.at_bucket, 1);
        assert!(ks.p_value < 1e-30, "{}", ks.p_value);
        let mw = mann_whitney(&low, &high).unwrap();
        assert_eq!(mw.u, 0.0);
        assert_eq!(mw.auc, 0.0);
        assert!(mw.z < -10.0);
        assert_eq!(mann_whitney(&high, &low).unwrap().auc, 1.0);
    }

    #[test]
    fn ks_matches_the_asymptotic_formula() {
        // 100 vs 100, half of the new sample moved up: D = 0.5, ne = 50.
        let a = hist(&[(10, 50), (60, 50)]);
        let b = hist(&[(10, 100)]);
        let ks = ks_two_sample(&a, &b).unwrap();
        assert!((ks.d - 0.5).abs() < 1e-12);
        let ne: f64 = 50.0;
        let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * 0.5;
        let expected = 2.0 * (-2.0 * lambda * lambda).exp();
        assert!((ks.p_value / expected - 1.0).abs() < 1e-6);
        // A small distance with small samples is not significant.
        let c = hist(&[(10, 9), (60, 1)]);
        let d = hist(&[(10, 8), (60, 2)]);
        assert!(ks_two_sample(&c, &d).unwrap().p_value > 0.9);
    }

    #[test]
    fn mann_whitney_counts_ties_as_half() {
        // new = {1, 2}, baseline = {2, 3}: pairs new>base: none; ties: (2,2) → U = 0.5.
        let a = hist(&[(1, 1), (2, 1)]);
        let b = hist(&[(2, 1), (3, 1)]);
        let mw = mann_whitney(&a, &b).unwrap();
        assert_eq!(mw.u, 0.5);
        assert_eq!(mw.auc, 0.125);
    }

    #[test]
    fn empty_samples_give_none() {
        let h = hist(&[(3, 1)]);
        assert!(ks_two_sample(&ScoreHistogram::new(), &h).is_none());
        assert!(mann_whitney(&h, &ScoreHistogram::new()).is_none());
        assert_eq!(two_proportion_z(0, 0, 1, 10), None);
    }

    #[test]
    fn two_proportion_z_is_signed_and_finite() {
        let z = two_proportion_z(50, 1000, 10, 1000).unwrap();
        assert!(z > 5.0, "{z}");
        assert!(two_proportion_z(10, 1000, 50, 1000).unwrap() < -5.0);
        assert_eq!(two_proportion_z(0, 1000, 0, 5000), Some(0.0));
        assert_eq!(two_proportion_z(7, 7, 9, 9), Some(0.0));
        // Events above the total are clamped, not a NaN.
        assert!(two_proportion_z(99, 10, 0, 10).unwrap().is_finite());
    }

    #[test]
    fn wilson_lower_bound_is_conservative_with_few_events() {
        // 4 of 500 (0.8%): the data support no more than about 0.2% at 3 sigma.
        let lb = wilson_lower(4, 500, 3.0).unwrap();
        assert!(lb > 0.001 && lb < 0.003, "{lb}");
        // 300 of 10,000: about 2.5%.
        let lb = wilson_lower(300, 10_000, 3.0).unwrap();
        assert!((lb - 0.0254).abs() < 0.001, "{lb}");
        assert_eq!(wilson_lower(0, 100, 3.0), Some(0.0));
        assert!(wilson_lower(100, 100, 3.0).unwrap() > 0.9);
        assert_eq!(wilson_lower(1, 0, 3.0), None);
    }

    #[test]
    fn erfc_and_q_agree_with_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_793).abs() < 1e-7);
        // Q(1.36) ≈ 0.049 (the 5% critical value of the Kolmogorov distribution).
        assert!((kolmogorov_q(1.36) - 0.0494).abs() < 1e-3);
        assert_eq!(kolmogorov_q(0.0), 1.0);
        assert_eq!(kolmogorov_q(f64::NAN), 1.0);
    }

    #[test]
    fn huge_counts_stay_finite() {
        let a = hist(&[(1, u64::MAX / 4), (99, u64::MAX / 4)]);
        let b = hist(&[(50, u64::MAX / 2)]);
        let ks = ks_two_sample(&a, &b).unwrap();
        let mw = mann_whitney(&a, &b).unwrap();
        for x in [ks.d, ks.p_value, mw.u, mw.auc, mw.z, mw.p_value] {
            assert!(x.is_finite());
        }
    }
}
