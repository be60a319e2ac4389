//! Area under the ROC curve: the probability that a random human scores above a random bot.

/// The AUC of `scores` for labels `positive` (ties count half), by the rank-sum
/// (Mann-Whitney) formula. `None` when either class is empty.
pub fn auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .copied()
        .zip(positive.iter().copied())
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_pos = pairs.iter().filter(|p| p.1).count();
    let n_neg = pairs.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while pairs
            .get(j + 1)
            .is_some_and(|p| pairs.get(i).is_some_and(|q| p.0 == q.0))
        {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        let pos = pairs
            .get(i..=j)
            .map_or(0, |s| s.iter().filter(|p| p.1).count());
        rank_sum += avg * pos as f64;
        i = j + 1;
    }
    let np = n_pos as f64;
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * n_neg as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_inverted_random_and_ties() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.1, 0.2, 0.8, 0.9], &[true, true, false, false]),
            Some(0.0)
        );
        assert_eq!(auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        // One misordered pair of four.
        assert_eq!(
            auc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auc(&[0.1], &[true]), None);
    }
}
