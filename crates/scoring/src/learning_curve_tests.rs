//! Tests of `learning_curve`: exact synthetic curves with known parameters come back, a noisy
//! curve matches SciPy's `curve_fit`, and the bootstrap interval brackets the truth.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn close(got: f64, expected: f64, tol: f64) {
    assert!(
        (got - expected).abs() <= tol,
        "got {got}, expected {expected}"
    );
}

fn power(a: f64, b: f64, c: f64, sizes: &[f64]) -> Vec<(f64, f64)> {
    sizes.iter().map(|&n| (n, a - b * n.powf(-c))).collect()
}

#[test]
fn an_exact_power_law_is_recovered_with_the_examples_its_target_needs() {
    for (a, b, c) in [(0.9, 0.8, 0.5), (0.95, 2.0, 0.3), (0.7, 5.0, 1.2)] {
        let pts = power(a, b, c, &[10.0, 20.0, 40.0, 80.0, 160.0]);
        let Some(CurveFit::PowerLaw {
            a: fa,
            b: fb,
            c: fc,
        }) = fit(&pts)
        else {
            panic!("not a power law: {:?}", fit(&pts));
        };
        close(fa, a, 1e-6);
        close(fb, b, 1e-5);
        close(fc, c, 1e-6);
    }
    // 0.9 − 0.8·n^(−1/2) = 0.85 at n = (0.8 / 0.05)² = 256.
    let f = fit(&power(0.9, 0.8, 0.5, &[10.0, 20.0, 40.0, 80.0])).unwrap();
    close(f.examples_for(0.85).unwrap(), 256.0, 1e-3);
    assert_eq!(
        f.examples_for(0.9),
        None,
        "the asymptote itself is never reached"
    );
    assert_eq!(f.examples_for(0.95), None);
}

#[test]
fn two_or_three_sizes_fit_a_log_linear_line() {
    // 0.3 + 0.1·ln n: 0.7 at n = e⁴.
    let pts: Vec<(f64, f64)> = [10.0f64, 100.0, 1000.0]
        .iter()
        .map(|&n| (n, 0.3 + 0.1 * n.ln()))
        .collect();
    let f = fit(&pts).unwrap();
    let CurveFit::LogLinear { alpha, beta } = f else {
        panic!("{f:?}")
    };
    close(alpha, 0.3, 1e-12);
    close(beta, 0.1, 1e-12);
    close(f.examples_for(0.7).unwrap(), 4f64.exp(), 1e-9);
    assert!(fit(&pts[..2]).is_some());
    assert_eq!(fit(&pts[..1]), None, "one size is no curve");
    assert_eq!(fit(&[(0.0, 0.5), (10.0, 0.6)]), None, "n = 0 is left out");
}

#[test]
fn a_noisy_curve_matches_scipy() {
    // Reference: SciPy 1.17.1,
    //   curve_fit(lambda n, a, b, c: a - b * n**(-c), [40, 80, 160, 320, 640],
    //             [0.612, 0.701, 0.748, 0.792, 0.806], p0=[0.85, 3, 0.5],
    //             bounds=([-inf, 0, 0.01], [inf, inf, 3]))
    //   → a = 0.84311985, b = 2.81968638, c = 0.67847666; (b / (a − 0.8))^(1/c) = 474.113.
    let pts = [
        (40.0, 0.612),
        (80.0, 0.701),
        (160.0, 0.748),
        (320.0, 0.792),
        (640.0, 0.806),
    ];
    let Some(f @ CurveFit::PowerLaw { a, b, c }) = fit(&pts) else {
        panic!("{:?}", fit(&pts));
    };
    close(a, 0.843_119_85, 1e-5);
    close(b, 2.819_686_38, 1e-3);
    close(c, 0.678_476_66, 1e-4);
    close(f.examples_for(0.8).unwrap(), 474.113, 0.5);
}

#[test]
fn a_falling_curve_is_flat_and_reaches_only_targets_below_it() {
    let pts = [(10.0, 0.8), (20.0, 0.78), (40.0, 0.76), (80.0, 0.74)];
    let f = fit(&pts).unwrap();
    close(f.predict(10.0), f.predict(1000.0), 1e-12);
    assert_eq!(f.examples_for(0.9), None);
    assert_eq!(f.examples_for(0.5), Some(1.0));
}

/// Items scored 0/1 with success probability on a known curve: the interval on the examples
/// the target needs holds the true figure.
#[test]
fn the_bootstrap_interval_brackets_the_true_examples_needed() {
    let (a, b, c) = (0.9, 0.8, 0.5);
    let sizes = [20.0, 40.0, 80.0, 160.0];
    let mut rng = StdRng::seed_from_u64(11);
    let scores: Vec<Vec<f64>> = sizes
        .iter()
        .map(|&n| {
            let p = a - b * f64::powf(n, -c);
            (0..2000)
                .map(|_| f64::from(u8::from(rng.random_bool(p))))
                .collect()
        })
        .collect();
    let (lo, hi) = examples_needed_ci(&sizes, &scores, 0.8, 400, 3).unwrap();
    // Truth: (0.8 / 0.1)² = 64.
    assert!(lo < 64.0 && 64.0 < hi, "[{lo}, {hi}]");
    assert!(hi.is_finite(), "2,000 items per size pin the curve down");
    let (_, never) = examples_needed_ci(&sizes, &scores, 0.89, 400, 3).unwrap();
    assert!(
        never.is_infinite(),
        "a target at the asymptote may never be met"
    );
}
