//! Selective prediction with a guarantee: answer automatically only above a confidence
//! threshold, chosen on a calibration sample so that accuracy on the automated answers is at
//! least a target with probability at least `1 − delta`.
//!
//! Each candidate threshold λ is a hypothesis test (Learn-then-Test, Angelopoulos et al. 2021;
//! the selective guaranteed risk of Geifman & El-Yaniv 2017): of the `n` calibration answers with
//! confidence ≥ λ, `e` are wrong; the null "their error rate exceeds `1 − target`" is rejected
//! when the exact binomial p-value `P(X ≤ e)`, `X ~ Binomial(n, 1 − target)`, is at most the
//! level, which is the same as the one-sided Clopper–Pearson upper bound on the error rate being
//! at most `1 − target`. The family-wise error over all candidates is kept at `delta` by fixed
//! sequence testing (highest threshold first, stop at the first failure) or by Bonferroni.
//!
//! Candidates are the distinct calibration confidences that select at least the fewest answers
//! that could ever pass (`n ≥ ln δ / ln target`: below that, even a flawless sample fails), so
//! the fixed sequence does not stop on a handful of answers at the top; Bonferroni tests at most
//! [`BONFERRONI_CANDIDATES`] of them, evenly spread. The candidates depend on the confidences
//! only, never on which answers are right. Answers without a confidence are never automated.
//! Fixed sequence is the more powerful of the two when confidence orders answers well (the usual
//! case); Bonferroni does not stop at one unlucky threshold.

use domain::ReviewCorrection;
use serde::{Deserialize, Serialize};

/// P(X ≤ k) for X ~ Binomial(n, p), summed in log space so large `n` does not underflow.
pub fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_c = 0.0f64;
    let mut logs = Vec::with_capacity(k as usize + 1);
    for i in 0..=k {
        if i > 0 {
            log_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        logs.push(log_c + i as f64 * lp + (n - i) as f64 * lq);
    }
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logs.iter().map(|l| (l - max).exp()).sum();
    (max + sum.ln()).exp().min(1.0)
}

/// One-sided Clopper–Pearson upper bound on a binomial rate at confidence `1 − alpha`, after `k`
/// events in `n` trials: the rate `p` at which `P(X ≤ k | n, p) = alpha` (1 when `k = n` or
/// `n = 0`). Found by bisection, to 1e-12.
pub fn clopper_pearson_upper(k: u64, n: u64, alpha: f64) -> f64 {
    if k >= n {
        return 1.0;
    }
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0f64);
    while hi - lo > 1e-12 {
        let mid = 0.5 * (lo + hi);
        if binomial_cdf(k, n, mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A threshold that passed its test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Answers with confidence at least this are automated.
    pub threshold: f64,
    /// Calibration answers it automates, and how many of them are wrong.
    pub automated: usize,
    pub errors: usize,
    /// Clopper–Pearson upper bound on their error rate, at the per-test level.
    pub risk_bound: f64,
}

/// What [`select_threshold`] tried and chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The lowest threshold that passed (the largest automated share); `None` when none did, and
    /// every answer goes to review.
    pub chosen: Option<Threshold>,
    /// Candidate thresholds (see the module docs) and those tested before the sequence stopped.
    pub candidates: usize,
    pub tested: usize,
    /// Level of each test: `delta`, or `delta / candidates` with Bonferroni.
    pub level: f64,
    /// Fewest automated answers that can pass at all.
    pub min_automated: usize,
}

/// Most thresholds Bonferroni tests: every one more divides the level, so past a few dozen it
/// only loses power.
pub const BONFERRONI_CANDIDATES: usize = 20;

/// Chooses the confidence threshold on calibration answers `(confidence, correct)`.
pub fn select_threshold(
    calibration: &[(Option<f64>, bool)],
    target_accuracy: f64,
    delta: f64,
    correction: ReviewCorrection,
) -> Selection {
    let min_automated = min_automated(target_accuracy, delta);
    let mut candidates: Vec<(f64, usize, usize)> = cumulative(calibration)
        .into_iter()
        .filter(|&(_, n, _)| n >= min_automated)
        .collect();
    if correction == ReviewCorrection::Bonferroni {
        candidates = spread(candidates, BONFERRONI_CANDIDATES);
    }
    let level = match correction {
        ReviewCorrection::FixedSequence => delta,
        ReviewCorrection::Bonferroni => delta / candidates.len().max(1) as f64,
    };
    let risk = 1.0 - target_accuracy;
    let passes = |n: usize, e: usize| binomial_cdf(e as u64, n as u64, risk) <= level;
    let mut chosen = None;
    let mut tested = 0;
    for &(threshold, n, e) in &candidates {
        tested += 1;
        if passes(n, e) {
            chosen = Some(Threshold {
                threshold,
                automated: n,
                errors: e,
                risk_bound: clopper_pearson_upper(e as u64, n as u64, level),
            });
        } else if correction == ReviewCorrection::FixedSequence {
            break;
        }
    }
    Selection {
        chosen,
        candidates: candidates.len(),
        tested,
        level,
        min_automated,
    }
}

/// At most `k` of `xs`, evenly spaced, first and last kept.
fn spread<T: Copy>(xs: Vec<T>, k: usize) -> Vec<T> {
    if xs.len() <= k || k < 2 {
        return xs;
    }
    let last = xs.len() - 1;
    (0..k)
        .map(|i| xs[(i * last + (k - 1) / 2) / (k - 1)])
        .collect()
}

/// Smallest `n` with `target^n ≤ delta`: fewer answers cannot pass even when all are right.
fn min_automated(target_accuracy: f64, delta: f64) -> usize {
    if target_accuracy >= 1.0 {
        return usize::MAX;
    }
    if target_accuracy <= 0.0 {
        return 1;
    }
    ((delta.ln() / target_accuracy.ln()).ceil() as usize).max(1)
}

/// For each distinct confidence, highest first: (confidence, answers at or above it, wrong ones
/// among them).
fn cumulative(pairs: &[(Option<f64>, bool)]) -> Vec<(f64, usize, usize)> {
    let mut scored: Vec<(f64, bool)> = pairs
        .iter()
        .filter_map(|&(c, ok)| c.filter(|c| c.is_finite()).map(|c| (c, ok)))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<(f64, usize, usize)> = Vec::new();
    let (mut n, mut e) = (0, 0);
    for (i, &(c, ok)) in scored.iter().enumerate() {
        n += 1;
        e += usize::from(!ok);
        let last_of_value = scored.get(i + 1).is_none_or(|next| next.0 != c);
        if last_of_value {
            out.push((c, n, e));
        }
    }
    out
}

/// One point of a risk–coverage curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoveragePoint {
    pub threshold: f64,
    /// Share of all answers (those without a confidence included) at or above the threshold.
    pub coverage: f64,
    /// Share of those that are correct.
    pub accuracy: f64,
}

/// Accuracy against coverage, highest confidence first: one point per distinct confidence.
pub fn risk_coverage(pairs: &[(Option<f64>, bool)]) -> Vec<CoveragePoint> {
    let total = pairs.len().max(1) as f64;
    cumulative(pairs)
        .into_iter()
        .map(|(threshold, n, e)| CoveragePoint {
            threshold,
            coverage: n as f64 / total,
            accuracy: (n - e) as f64 / n as f64,
        })
        .collect()
}

/// Share of `pairs` at or above `threshold` and their accuracy (`None` when there are none).
pub fn at_threshold(pairs: &[(Option<f64>, bool)], threshold: f64) -> (f64, Option<f64>) {
    let auto: Vec<bool> = pairs
        .iter()
        .filter(|(c, _)| c.is_some_and(|c| c >= threshold))
        .map(|&(_, ok)| ok)
        .collect();
    let coverage = auto.len() as f64 / pairs.len().max(1) as f64;
    let accuracy = (!auto.is_empty())
        .then(|| auto.iter().filter(|&&ok| ok).count() as f64 / auto.len() as f64);
    (coverage, accuracy)
}

#[cfg(test)]
#[path = "selective_tests.rs"]
mod tests;
