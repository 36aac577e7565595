//! Agreement between two raters of the same rows, as a judge's calibration against people's
//! labels needs it: Cohen's κ (unweighted for pass/fail, quadratic-weighted for ordinal
//! grades such as 1–5), Spearman's rank correlation for scores, and a percentile-bootstrap
//! interval of any such statistic over rows resampled in pairs.
//!
//! Definitions follow scikit-learn's `cohen_kappa_score` (labels are the union of both
//! raters', weights `|i−j|²` for quadratic) and SciPy's `spearmanr` (Pearson's r of average
//! ranks, ties sharing their mean rank). Pure arithmetic on slices; what the rows are is the
//! caller's business.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How disagreements between two grades count in [`cohen_kappa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KappaWeights {
    /// Every disagreement counts alike (nominal labels, pass/fail).
    Unweighted,
    /// A disagreement counts by the squared distance between the grades' ranks (ordinal
    /// grades: 2 against 3 costs less than 1 against 5).
    Quadratic,
}

/// Cohen's κ of two raters' labels of the same rows (pairs as `zip` takes them): observed
/// against chance agreement over the labels either rater used, in sorted order. `None` with no
/// rows, or when chance agreement is already perfect (both raters gave one and the same label
/// throughout), where κ is undefined.
pub fn cohen_kappa<T: Ord + Clone>(a: &[T], b: &[T], weights: KappaWeights) -> Option<f64> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let mut labels: Vec<T> = a[..n].iter().chain(&b[..n]).cloned().collect();
    labels.sort();
    labels.dedup();
    let k = labels.len();
    let index = |x: &T| labels.binary_search(x).unwrap_or(0);
    let mut joint = vec![vec![0.0; k]; k];
    for (x, y) in a.iter().zip(b) {
        joint[index(x)][index(y)] += 1.0;
    }
    let rows: Vec<f64> = joint.iter().map(|r| r.iter().sum()).collect();
    let cols: Vec<f64> = (0..k).map(|j| joint.iter().map(|r| r[j]).sum()).collect();
    let weight = |i: usize, j: usize| match weights {
        KappaWeights::Unweighted => f64::from(u8::from(i != j)),
        KappaWeights::Quadratic => (i as f64 - j as f64).powi(2),
    };
    let (mut observed, mut expected) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            observed += weight(i, j) * joint[i][j];
            expected += weight(i, j) * rows[i] * cols[j] / n as f64;
        }
    }
    (expected > 0.0).then(|| 1.0 - observed / expected)
}

/// Spearman's ρ of paired values (pairs as `zip` takes them): Pearson's r of their ranks, tied
/// values sharing their mean rank. `None` with fewer than two pairs or when either side is
/// constant.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    pearson(&ranks(&x[..n]), &ranks(&y[..n]))
}

/// Average ranks, from 1, ties sharing the mean of the ranks they span.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&i, &j| xs[i].total_cmp(&xs[j]));
    let mut out = vec![0.0; xs.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && xs[order[end]] == xs[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// 95% percentile-bootstrap interval of `stat` over `n` paired rows: `resamples` draws of `n`
/// row indices with replacement, `stat` of each (draws where it is undefined are skipped),
/// and the 2.5th and 97.5th percentiles of the rest. `None` when no draw was defined.
pub fn bootstrap_stat(
    n: usize,
    resamples: usize,
    seed: u64,
    stat: impl Fn(&[usize]) -> Option<f64>,
) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let draws: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            stat(&idx)
        })
        .collect();
    if draws.is_empty() {
        return None;
    }
    Some((
        crate::percentile(&draws, 2.5),
        crate::percentile(&draws, 97.5),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} against {b}");
    }

    // The reference values come from scikit-learn 1.9.1 and SciPy 1.17.1:
    //   from sklearn.metrics import cohen_kappa_score; from scipy.stats import spearmanr
    //   cohen_kappa_score([1,1,0,1,0,0,1,1,1,0,1,0], [1,0,0,1,0,1,1,1,0,0,1,0])   # 0.5
    //   a3, b3 = [0,1,2,2,1,0,2,1,0,2], [0,2,2,2,1,0,1,1,0,2]
    //   cohen_kappa_score(a3, b3)                        # 0.696969696969697
    //   cohen_kappa_score(a3, b3, weights="quadratic")   # 0.855072463768116
    //   spearmanr([1,2,3,4,5,3,2,4,5,1], [1.5,2,2,4.5,5,3,1,4,4.8,2.5]).statistic
    //                                                    # 0.851916777110271
    //   spearmanr([1,2,3,4,5], [5,6,7,8,7]).statistic    # 0.8207826816681233

    #[test]
    fn kappa_matches_scikit_learn() {
        let a = [1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0];
        let b = [1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0];
        close(cohen_kappa(&a, &b, KappaWeights::Unweighted).unwrap(), 0.5);
        let a3 = [0, 1, 2, 2, 1, 0, 2, 1, 0, 2];
        let b3 = [0, 2, 2, 2, 1, 0, 1, 1, 0, 2];
        let k = cohen_kappa(&a3, &b3, KappaWeights::Unweighted).unwrap();
        close(k, 0.696969696969697);
        let q = cohen_kappa(&a3, &b3, KappaWeights::Quadratic).unwrap();
        close(q, 0.855072463768116);
    }

    #[test]
    fn kappa_is_undefined_without_chance_disagreement() {
        assert_eq!(cohen_kappa::<u8>(&[], &[], KappaWeights::Unweighted), None);
        let same = [true; 5];
        assert_eq!(cohen_kappa(&same, &same, KappaWeights::Unweighted), None);
        let perfect = [false, true, false, true];
        close(
            cohen_kappa(&perfect, &perfect, KappaWeights::Unweighted).unwrap(),
            1.0,
        );
    }

    #[test]
    fn spearman_matches_scipy_with_and_without_ties() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 2.0, 4.0, 5.0, 1.0];
        let y = [1.5, 2.0, 2.0, 4.5, 5.0, 3.0, 1.0, 4.0, 4.8, 2.5];
        close(spearman(&x, &y).unwrap(), 0.851916777110271);
        let s = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        close(s, 0.8207826816681233);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0], &[2.0]), None);
    }

    #[test]
    fn the_bootstrap_interval_holds_the_statistic_and_is_seeded() {
        let a: Vec<u8> = (0..60).map(|i| u8::from(i % 3 != 0)).collect();
        let b: Vec<u8> = (0..60)
            .map(|i| u8::from(i % 3 != 0 || i % 7 == 0))
            .collect();
        let kappa = |idx: &[usize]| {
            let pick = |v: &[u8]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
            cohen_kappa(&pick(&a), &pick(&b), KappaWeights::Unweighted)
        };
        let all: Vec<usize> = (0..60).collect();
        let k = kappa(&all).unwrap();
        let (lo, hi) = bootstrap_stat(60, 2000, 7, kappa).unwrap();
        assert!(lo <= k && k <= hi && lo < hi, "{lo} {k} {hi}");
        assert_eq!(bootstrap_stat(60, 2000, 7, kappa), Some((lo, hi)));
        assert_eq!(bootstrap_stat(0, 10, 7, kappa), None);
    }
}
