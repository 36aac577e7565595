//! Aggregates over per-item scores: mean, percentiles, 95% bootstrap confidence intervals, the
//! paired bootstrap between two arms answering the same items, and McNemar's test for pass/fail
//! metrics.
//!
//! Everything here is deterministic: resampling uses `rand`'s `StdRng` (ChaCha12) seeded by the
//! caller, so the same inputs and seed give the same interval on every run of the same build.
//! It deliberately knows nothing of arms, items or scorers: it sees slices of numbers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Resamples the reports use for bootstrap intervals and paired tests.
pub const DEFAULT_RESAMPLES: usize = 10_000;
/// Seed the reports use, so a leaderboard printed twice shows the same intervals.
pub const DEFAULT_SEED: u64 = 7;

/// Arithmetic mean; NaN for an empty slice (there is nothing to average).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The `q`-th percentile (`q` in 0..=100, clamped) with linear interpolation between the two
/// nearest ranks, as NumPy's default (`np.percentile(xs, q)`, method "linear"). NaN for an
/// empty slice.
pub fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_of_sorted(&sorted, q)
}

fn percentile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let rank = q.clamp(0.0, 100.0) / 100.0 * last as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(last);
    let frac = rank - lo as f64;
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// 95% percentile-bootstrap confidence interval of the mean: draw `resamples` samples of
/// `xs.len()` values with replacement, and take the 2.5th and 97.5th percentiles (as
/// [`percentile`]) of their means. `(NaN, NaN)` for an empty slice; with `resamples == 0` the
/// interval collapses to the mean.
pub fn bootstrap_ci(xs: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    if resamples == 0 {
        let m = mean(xs);
        return (m, m);
    }
    let mut means = resample_means(xs, resamples, seed);
    means.sort_by(f64::total_cmp);
    (
        percentile_of_sorted(&means, 2.5),
        percentile_of_sorted(&means, 97.5),
    )
}

fn resample_means(xs: &[f64], resamples: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = xs.len();
    (0..resamples)
        .map(|_| (0..n).map(|_| xs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect()
}

/// The difference between two arms scored on the same items, with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDiff {
    /// `mean(a) - mean(b)`.
    pub diff: f64,
    /// 95% percentile-bootstrap interval of the difference.
    pub ci_low: f64,
    pub ci_high: f64,
    /// Two-sided bootstrap p-value for "no difference"; see [`paired_bootstrap`].
    pub p_value: f64,
}

/// Paired bootstrap: resample item indices with replacement (the same indices for both arms,
/// so each item keeps its pair) and recompute `mean(a) - mean(b)` on each resample.
///
/// - `diff` is the observed difference; `ci_low`/`ci_high` the 2.5th and 97.5th percentiles of
///   the resampled differences.
/// - `p_value = min(1, 2 · min(P(d* ≤ 0), P(d* ≥ 0)))`, the share of resampled differences
///   `d*` on each side of zero, each counted as `(1 + count) / (1 + resamples)` so that a finite
///   number of resamples never claims p = 0. Identical arms give p = 1.
///
/// Pairs are taken as `zip` takes them: values past the end of the shorter slice are ignored.
/// No pairs give NaN for the difference and interval and p = 1.
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> PairedDiff {
    if a.len() != b.len() {
        tracing::warn!(
            a = a.len(),
            b = b.len(),
            "paired bootstrap on slices of different lengths; extra values ignored"
        );
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let diff = mean(&diffs);
    if diffs.is_empty() || resamples == 0 {
        return PairedDiff {
            diff,
            ci_low: diff,
            ci_high: diff,
            p_value: 1.0,
        };
    }
    // Resampling the per-item differences is resampling item indices jointly: the mean of the
    // resampled differences is the difference of the resampled means.
    let mut boot = resample_means(&diffs, resamples, seed);
    boot.sort_by(f64::total_cmp);
    let at_most_zero = boot.iter().filter(|d| **d <= 0.0).count();
    let at_least_zero = boot.iter().filter(|d| **d >= 0.0).count();
    let share = |count: usize| (1 + count) as f64 / (1 + resamples) as f64;
    PairedDiff {
        diff,
        ci_low: percentile_of_sorted(&boot, 2.5),
        ci_high: percentile_of_sorted(&boot, 97.5),
        p_value: (2.0 * share(at_most_zero).min(share(at_least_zero))).min(1.0),
    }
}

/// McNemar's test on paired pass/fail outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Items `a` passed and `b` failed.
    pub a_only: u64,
    /// Items `b` passed and `a` failed.
    pub b_only: u64,
    /// Exact two-sided p-value: the binomial test of `a_only` successes in
    /// `a_only + b_only` trials with p = 1/2 (`scipy.stats.binomtest(a_only, n, 0.5).pvalue`).
    pub p_value: f64,
}

/// McNemar's exact test over items where exactly one of `a`, `b` passed. Pairs are taken as
/// `zip` takes them. No discordant pairs give p = 1.
pub fn mcnemar(a: &[bool], b: &[bool]) -> McNemar {
    let (mut a_only, mut b_only) = (0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        match (x, y) {
            (true, false) => a_only += 1,
            (false, true) => b_only += 1,
            _ => {}
        }
    }
    McNemar::from_counts(a_only, b_only)
}

impl McNemar {
    /// The exact test from the two discordant counts.
    pub fn from_counts(a_only: u64, b_only: u64) -> McNemar {
        let n = a_only + b_only;
        let k = a_only.min(b_only);
        // The binomial(n, 1/2) is symmetric, so the two-sided p-value is twice the lower tail.
        let p_value = (2.0 * binomial_half_cdf(k, n)).min(1.0);
        McNemar {
            a_only,
            b_only,
            p_value,
        }
    }

    /// The asymptotic variant with Edwards' continuity correction:
    /// `χ² = max(0, |a_only − b_only| − 1)² / (a_only + b_only)` on 1 degree of freedom, as
    /// `statsmodels`' `mcnemar(table, exact=False, correction=True)` except that equal counts
    /// give χ² = 0 and p = 1 (statsmodels squares the negative −1). Returns `(χ², p)`; `(0, 1)`
    /// without discordant pairs. The p-value is accurate to about 1e-7 relative.
    pub fn chi2_corrected(&self) -> (f64, f64) {
        let n = (self.a_only + self.b_only) as f64;
        if n == 0.0 {
            return (0.0, 1.0);
        }
        let d = (self.a_only as f64 - self.b_only as f64).abs() - 1.0;
        let stat = d.max(0.0).powi(2) / n;
        // The survival function of χ² with 1 degree of freedom is erfc(√(x/2)).
        (stat, erfc((stat / 2.0).sqrt()).min(1.0))
    }
}

/// P(X ≤ k) for X ~ Binomial(n, 1/2), `k ≤ n / 2`, summed in log space so large `n` does not
/// underflow: the terms grow with i up to k, so each is taken relative to the last.
fn binomial_half_cdf(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    // ln C(n, i) for i = 0..=k, by the ratio C(n, i) / C(n, i-1) = (n - i + 1) / i.
    let mut log_coeffs = Vec::with_capacity(k as usize + 1);
    let mut log_c = 0.0f64;
    log_coeffs.push(log_c);
    for i in 1..=k {
        log_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        log_coeffs.push(log_c);
    }
    let max = log_c;
    let sum: f64 = log_coeffs.iter().map(|l| (l - max).exp()).sum();
    (max + sum.ln() - n as f64 * std::f64::consts::LN_2).exp()
}

/// Complementary error function, Chebyshev fit from Numerical Recipes (`erfcc`): fractional
/// error below 1.2e-7 everywhere.
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
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, expected: f64, tol: f64) {
        assert!(
            (got - expected).abs() <= tol * expected.abs().max(1e-300)
                || (got - expected).abs() < 1e-15,
            "got {got:e}, expected {expected:e}"
        );
    }

    const XS: [f64; 10] = [3.1, -1.0, 4.0, 1.5, 9.2, 6.0, 2.6, 5.3, 5.0, 8.9];

    #[test]
    fn mean_matches_numpy() {
        close(mean(&XS), 4.46, 1e-12); // np.mean(xs) -> 4.46
        assert!(mean(&[]).is_nan());
    }

    #[test]
    fn percentile_matches_numpy() {
        // xs = [3.1, -1.0, 4.0, 1.5, 9.2, 6.0, 2.6, 5.3, 5.0, 8.9]
        let table = [
            (0.0, -1.0),    // np.percentile(xs, 0)
            (2.5, -0.4375), // np.percentile(xs, 2.5)
            (25.0, 2.725),  // np.percentile(xs, 25)
            (50.0, 4.5),    // np.percentile(xs, 50)
            (95.0, 9.065),  // np.percentile(xs, 95)
            (97.5, 9.1325), // np.percentile(xs, 97.5)
            (100.0, 9.2),   // np.percentile(xs, 100)
            (33.3, 3.0985), // np.percentile(xs, 33.3)
        ];
        for (q, expected) in table {
            close(percentile(&XS, q), expected, 1e-12);
        }
        assert_eq!(percentile(&[42.0], 95.0), 42.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert_eq!(percentile(&XS, 150.0), 9.2, "q is clamped");
    }

    #[test]
    fn mcnemar_exact_matches_scipy() {
        // (a_only, b_only, scipy.stats.binomtest(a_only, a_only + b_only, 0.5).pvalue)
        let table: [(u64, u64, f64); 10] = [
            (25, 4, 0.00010371580719947815),   // binomtest(25, 29, 0.5).pvalue
            (4, 25, 0.00010371580719947815),   // binomtest(4, 29, 0.5).pvalue
            (5, 5, 1.0),                       // binomtest(5, 10, 0.5).pvalue
            (6, 5, 1.0),                       // binomtest(6, 11, 0.5).pvalue
            (1, 0, 1.0),                       // binomtest(1, 1, 0.5).pvalue
            (7, 1, 0.0703125),                 // binomtest(7, 8, 0.5).pvalue
            (0, 10, 0.001953125),              // binomtest(0, 10, 0.5).pvalue
            (620, 540, 0.02032731115294521),   // binomtest(620, 1160, 0.5).pvalue
            (450, 600, 4.111890930721202e-06), // binomtest(450, 1050, 0.5).pvalue
            (5000, 5200, 0.04878796312682234), // binomtest(5000, 10200, 0.5).pvalue
        ];
        for (a_only, b_only, expected) in table {
            let m = McNemar::from_counts(a_only, b_only);
            close(m.p_value, expected, 1e-6);
        }
        assert_eq!(McNemar::from_counts(0, 0).p_value, 1.0);
        // Far in the tail: binomtest(0, 1000, 0.5).pvalue -> 1.8665272370064378e-301
        close(
            McNemar::from_counts(0, 1000).p_value,
            1.8665272370064378e-301,
            1e-9,
        );
    }

    #[test]
    fn mcnemar_counts_discordant_pairs() {
        let a = [true, true, false, false, true, true];
        let b = [true, false, true, false, false, false];
        let m = mcnemar(&a, &b);
        assert_eq!((m.a_only, m.b_only), (3, 1));
        assert_eq!(m, McNemar::from_counts(3, 1));
    }

    #[test]
    fn mcnemar_chi2_matches_statsmodels() {
        // stat = max(0, abs(b - c) - 1)**2 / (b + c); p = scipy.stats.chi2.sf(stat, 1)
        let table: [(u64, u64, f64, f64); 3] = [
            (25, 4, 13.793103448275861, 0.00020408400998040742), // chi2.sf(stat, 1)
            (10, 6, 0.5625, 0.4532547047537363),                 // chi2.sf(0.5625, 1)
            (5, 5, 0.0, 1.0),                                    // chi2.sf(0, 1)
        ];
        for (a_only, b_only, stat, p) in table {
            let (s, pv) = McNemar::from_counts(a_only, b_only).chi2_corrected();
            close(s, stat, 1e-12);
            close(pv, p, 2e-7);
        }
        assert_eq!(McNemar::from_counts(0, 0).chi2_corrected(), (0.0, 1.0));
    }

    #[test]
    fn erfc_matches_scipy() {
        // scipy.special.erfc(x)
        for (x, expected) in [
            (0.0, 1.0),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028516),
            (2.5, 0.00040695201744495886),
            (-1.0, 1.8427007929497148),
        ] {
            close(erfc(x), expected, 2e-7);
        }
    }

    fn pass_fail(n: usize, passes: usize) -> Vec<f64> {
        // Spread passes evenly so every prefix has about the same rate.
        (0..n)
            .map(|i| if (i * passes) % n < passes { 1.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn bootstrap_ci_contains_the_mean_and_narrows_with_n() {
        let mut last_width = f64::INFINITY;
        for n in [20, 80, 320, 1280] {
            let xs = pass_fail(n, n * 3 / 4);
            let m = mean(&xs);
            let (lo, hi) = bootstrap_ci(&xs, 2000, 1);
            assert!(lo < m && m < hi, "n={n}: {lo} < {m} < {hi}");
            assert!(lo >= 0.0 && hi <= 1.0);
            let width = hi - lo;
            assert!(width < last_width, "n={n}: width {width} >= {last_width}");
            last_width = width;
        }
        // With n = 1280 and p = 0.75 the normal approximation gives a width of about
        // 2 * 1.96 * sqrt(0.75 * 0.25 / 1280) = 0.0474.
        assert!((last_width - 0.0474).abs() < 0.006, "width {last_width}");
    }

    #[test]
    fn bootstrap_is_deterministic_for_a_seed() {
        let xs = pass_fail(50, 31);
        assert_eq!(bootstrap_ci(&xs, 500, 9), bootstrap_ci(&xs, 500, 9));
        assert_ne!(bootstrap_ci(&XS, 500, 9), bootstrap_ci(&XS, 500, 10));
        let b = pass_fail(50, 20);
        assert_eq!(
            paired_bootstrap(&xs, &b, 500, 3),
            paired_bootstrap(&xs, &b, 500, 3)
        );
    }

    #[test]
    fn bootstrap_edge_cases() {
        let (lo, hi) = bootstrap_ci(&[], 100, 0);
        assert!(lo.is_nan() && hi.is_nan());
        assert_eq!(bootstrap_ci(&[0.5], 100, 0), (0.5, 0.5));
        assert_eq!(bootstrap_ci(&[1.0, 1.0, 1.0], 100, 0), (1.0, 1.0));
        assert_eq!(bootstrap_ci(&XS, 0, 0), (4.46, 4.46));
    }

    #[test]
    fn paired_bootstrap_of_identical_arms_is_not_significant() {
        let a = pass_fail(100, 70);
        let d = paired_bootstrap(&a, &a, 1000, 5);
        assert_eq!(
            d,
            PairedDiff {
                diff: 0.0,
                ci_low: 0.0,
                ci_high: 0.0,
                p_value: 1.0
            }
        );
    }

    #[test]
    fn paired_bootstrap_finds_a_clear_difference() {
        let a = pass_fail(200, 180);
        let b = pass_fail(200, 100);
        let d = paired_bootstrap(&a, &b, 2000, 5);
        close(d.diff, 0.4, 1e-12);
        assert!(d.ci_low > 0.3 && d.ci_high < 0.5, "{d:?}");
        assert!(d.ci_low < d.diff && d.diff < d.ci_high);
        // No resample reaches 0, so p is the smallest the resamples can show: 2 / 2001.
        close(d.p_value, 2.0 / 2001.0, 1e-12);

        let reversed = paired_bootstrap(&b, &a, 2000, 5);
        close(reversed.diff, -0.4, 1e-12);
        close(reversed.ci_low, -d.ci_high, 1e-12);
        close(reversed.p_value, d.p_value, 1e-12);
    }

    #[test]
    fn paired_bootstrap_of_a_small_noisy_difference_is_not_decisive() {
        // 3 items where a wins, 2 where b wins, 15 ties.
        let a: Vec<f64> = [vec![1.0; 3], vec![0.0; 2], vec![1.0; 15]].concat();
        let b: Vec<f64> = [vec![0.0; 3], vec![1.0; 2], vec![1.0; 15]].concat();
        let d = paired_bootstrap(&a, &b, 4000, 11);
        close(d.diff, 0.05, 1e-12);
        assert!(d.ci_low < 0.0 && d.ci_high > 0.0, "{d:?}");
        assert!(d.p_value > 0.3, "{d:?}");
    }

    #[test]
    fn paired_bootstrap_pairs_like_zip() {
        let d = paired_bootstrap(&[1.0, 0.0, 1.0], &[0.0, 0.0], 100, 1);
        close(d.diff, 0.5, 1e-12);
        let empty = paired_bootstrap(&[], &[], 100, 1);
        assert!(empty.diff.is_nan());
        assert_eq!(empty.p_value, 1.0);
    }
}
