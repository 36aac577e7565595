//! Learning curves: quality against the number of training examples, fitted so a report can
//! say how many examples a quality target needs.
//!
//! With four or more sizes the fit is the saturating power law `q(n) = a − b·n^(−c)` (b ≥ 0,
//! 0 < c ≤ 3), the form learning curves of classifiers and fine-tuned language models follow
//! (Hestness et al. 2017; OpenAI's fine-tuning guide expects a roughly constant gain per
//! doubling, which is its large-`n` end). For each exponent `c` the best `a`, `b` are an
//! ordinary least-squares line in `x = n^(−c)`; `c` is found by a log-spaced grid and then
//! golden-section search around the best grid point. With two or three sizes a power law has
//! no residual to judge it by, so the fit is log-linear, `q(n) = α + β·ln n`, and says so.
//!
//! The interval on the examples a target needs is a percentile bootstrap over eval items: the
//! same resampled items for every size (the points are paired, as every arm answers the same
//! items), each resample refitted and solved. A resample whose curve never reaches the target
//! counts as infinitely many examples, so the upper end can be "never".

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Sizes a fit needs before it uses the power law rather than the log-linear form.
pub const POWER_LAW_MIN_POINTS: usize = 4;
/// Resamples for the interval on the examples needed: each refits the curve.
pub const CURVE_RESAMPLES: usize = 2_000;
const C_MIN: f64 = 0.01;
const C_MAX: f64 = 3.0;
const GRID: usize = 240;

/// The curve through the measured points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum CurveFit {
    /// `q(n) = a − b·n^(−c)`: `a` is the quality it levels off at.
    PowerLaw { a: f64, b: f64, c: f64 },
    /// `q(n) = alpha + beta·ln n`.
    LogLinear { alpha: f64, beta: f64 },
}

impl CurveFit {
    /// The fitted quality at `n` examples.
    pub fn predict(&self, n: f64) -> f64 {
        match *self {
            CurveFit::PowerLaw { a, b, c } => a - b * n.powf(-c),
            CurveFit::LogLinear { alpha, beta } => alpha + beta * n.ln(),
        }
    }

    /// The examples at which the fitted curve reaches `target`; `None` when it never does (a
    /// power law levelling off at or below it, a flat or falling line).
    pub fn examples_for(&self, target: f64) -> Option<f64> {
        let n = match *self {
            CurveFit::PowerLaw { a, b, c } => {
                if b <= 0.0 {
                    return (a >= target).then_some(1.0);
                }
                // An asymptote within rounding of the target is not a way to reach it: the
                // examples needed would be a power of a difference of ~1e-16.
                if a <= target + 1e-9 {
                    return None;
                }
                (b / (a - target)).powf(1.0 / c)
            }
            CurveFit::LogLinear { alpha, beta } => {
                if beta <= 0.0 {
                    return (alpha >= target).then_some(1.0);
                }
                ((target - alpha) / beta).exp()
            }
        };
        n.is_finite().then_some(n.max(1.0))
    }

    /// The form's name as a report prints it.
    pub fn form(&self) -> &'static str {
        match self {
            CurveFit::PowerLaw { .. } => "a − b·n^(−c)",
            CurveFit::LogLinear { .. } => "α + β·ln n",
        }
    }
}

/// Fits the points `(n, quality)`, `n > 0` (others are left out): the power law with at least
/// [`POWER_LAW_MIN_POINTS`] distinct sizes, else the log-linear line; `None` with fewer than
/// two distinct sizes.
pub fn fit(points: &[(f64, f64)]) -> Option<CurveFit> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, q)| *n > 0.0 && n.is_finite() && q.is_finite())
        .collect();
    let mut sizes: Vec<f64> = pts.iter().map(|p| p.0).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    match sizes.len() {
        0 | 1 => None,
        k if k < POWER_LAW_MIN_POINTS => log_linear(&pts),
        _ => power_law(&pts).or_else(|| log_linear(&pts)),
    }
}

fn log_linear(pts: &[(f64, f64)]) -> Option<CurveFit> {
    let xs: Vec<f64> = pts.iter().map(|p| p.0.ln()).collect();
    let (alpha, beta, _) = line(&xs, pts)?;
    Some(CurveFit::LogLinear { alpha, beta })
}

/// The power law with the least squared error, `b` held at 0 or above.
fn power_law(pts: &[(f64, f64)]) -> Option<CurveFit> {
    let sse = |c: f64| fit_at(pts, c).map_or(f64::INFINITY, |(_, _, e)| e);
    let ratio = (C_MAX / C_MIN).powf(1.0 / (GRID - 1) as f64);
    let grid: Vec<f64> = (0..GRID).map(|i| C_MIN * ratio.powi(i as i32)).collect();
    let best = (0..GRID).min_by(|&i, &j| sse(grid[i]).total_cmp(&sse(grid[j])))?;
    let lo = grid[best.saturating_sub(1)];
    let hi = grid[(best + 1).min(GRID - 1)];
    let c = golden_min(sse, lo, hi);
    let (a, b, _) = fit_at(pts, c)?;
    Some(CurveFit::PowerLaw { a, b, c })
}

/// `(a, b, sse)` of `q = a − b·n^(−c)` at exponent `c`, with `b` clamped at 0 (a curve that
/// falls with more data is fitted as flat).
fn fit_at(pts: &[(f64, f64)], c: f64) -> Option<(f64, f64, f64)> {
    let xs: Vec<f64> = pts.iter().map(|p| p.0.powf(-c)).collect();
    let (a, slope, sse) = line(&xs, pts)?;
    if slope <= 0.0 {
        return Some((a, -slope, sse));
    }
    let flat = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
    let sse = pts.iter().map(|p| (p.1 - flat).powi(2)).sum();
    Some((flat, 0.0, sse))
}

/// Least-squares line `q = intercept + slope·x` over `xs` and the points' qualities, with its
/// squared error; `None` when every `x` is the same.
fn line(xs: &[f64], pts: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let k = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / k;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / k;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= f64::EPSILON * mx.abs().max(1.0) {
        return None;
    }
    let sxy: f64 = xs.iter().zip(pts).map(|(x, p)| (x - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse = xs
        .iter()
        .zip(pts)
        .map(|(x, p)| (p.1 - intercept - slope * x).powi(2))
        .sum();
    Some((intercept, slope, sse))
}

/// The minimum of `f` on `[lo, hi]` by golden-section search (60 steps: far below f64 noise).
fn golden_min(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut x1, mut x2) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..60 {
        if f1 <= f2 {
            hi = x2;
            (x2, f2) = (x1, f1);
            x1 = hi - g * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            (x1, f1) = (x2, f2);
            x2 = lo + g * (hi - lo);
            f2 = f(x2);
        }
    }
    (lo + hi) / 2.0
}

/// The 95% percentile-bootstrap interval of the examples `target` needs. `sizes[p]` is point
/// `p`'s number of examples and `scores[p][i]` its score on eval item `i` (every point scored
/// on the same items, in the same order). Nearest-rank percentiles, so an infinite upper end
/// ("never") stays infinite. `None` when no point has items.
pub fn examples_needed_ci(
    sizes: &[f64],
    scores: &[Vec<f64>],
    target: f64,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    let items = scores.iter().map(Vec::len).min()?;
    if items == 0 || resamples == 0 || sizes.len() != scores.len() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut needed: Vec<f64> = Vec::with_capacity(resamples);
    let mut draw = vec![0usize; items];
    for _ in 0..resamples {
        draw.iter_mut()
            .for_each(|d| *d = rng.random_range(0..items));
        let pts: Vec<(f64, f64)> = sizes
            .iter()
            .zip(scores)
            .map(|(&n, xs)| (n, draw.iter().map(|&i| xs[i]).sum::<f64>() / items as f64))
            .collect();
        let n = fit(&pts).and_then(|f| f.examples_for(target));
        needed.push(n.unwrap_or(f64::INFINITY));
    }
    needed.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let r = (q * needed.len() as f64).ceil() as usize;
        needed[r.clamp(1, needed.len()) - 1]
    };
    Some((rank(0.025), rank(0.975)))
}

#[cfg(test)]
#[path = "learning_curve_tests.rs"]
mod tests;
