//! The report's sweep charts as inline SVG: quality against examples (each learning curve's
//! points with their CIs, its fitted curve dashed, the examples the target needs ringed) and
//! quality against the share of labels flipped. The figures come from `curves`; the drawing
//! kit is `svg`.

use crate::charts::{fmt_quality, fmt_volume, placeholder};
use crate::curves::{CurvePoint, Curves};
use crate::decision::DecisionReport;
use crate::figures::{count, percent, quality};
use crate::svg::{Axis, Plot, Shape, color};

/// Samples of a fitted curve drawn as a line.
const FIT_SAMPLES: usize = 48;

/// Quality against examples, one colour per learning curve, on a log axis when every point
/// has examples (a few-shot curve from 0 demonstrations draws on a linear one).
pub(crate) fn learning_chart(r: &DecisionReport) -> String {
    let c: &Curves = &r.curves;
    if c.learning.is_empty() {
        return placeholder("No learning curve: declare `train_sizes` or `few_shot_sizes`.");
    }
    let target = r.quality_target;
    let all = c.learning.iter().flat_map(|l| l.points.iter());
    let x_hi = all.clone().map(|p| p.examples as f64).fold(1.0, f64::max);
    let needed_hi = c
        .learning
        .iter()
        .filter_map(|l| l.needed.as_ref()?.examples)
        .filter(|&n| n <= 4.0 * x_hi)
        .fold(x_hi, f64::max);
    let zero = all.clone().any(|p| p.examples == 0);
    let x_lo = all
        .clone()
        .map(|p| p.examples as f64)
        .fold(needed_hi, f64::min);
    let label = "examples learned from (training rows, or demonstrations)";
    let x = if zero {
        Axis::linear(0.0, needed_hi, label, fmt_volume)
    } else {
        Axis::log(x_lo, needed_hi, label, fmt_volume)
    };
    let lows = all.clone().map(|p| p.ci_low).fold(target, f64::min);
    let highs = all.map(|p| p.ci_high).fold(target, f64::max);
    let mut p = Plot::new(x, Axis::linear(lows, highs, "quality", fmt_quality));
    p.hrule(
        target,
        "#888",
        "5 4",
        &format!("target {}", quality(target)),
    );
    for (i, l) in c.learning.iter().enumerate() {
        if let Some(fit) = &l.fit {
            let lo = l.points.iter().map(|q| q.examples).filter(|&n| n > 0).min();
            let lo = lo.map_or(1.0, |n| n as f64);
            let line: Vec<(f64, f64)> = (0..=FIT_SAMPLES)
                .map(|s| lo * (needed_hi / lo).powf(s as f64 / FIT_SAMPLES as f64))
                .map(|n| (n, fit.predict(n)))
                .collect();
            p.line(&line, color(i), 1.5, Some("6 4"));
        }
        let pts: Vec<(f64, f64)> = l
            .points
            .iter()
            .map(|q| (q.examples as f64, q.quality))
            .collect();
        p.line(&pts, color(i), 2.0, None);
        for q in &l.points {
            let what = format!("{} examples", q.examples);
            dot(&mut p, q.examples as f64, q, color(i), &what);
        }
        if let Some(n) = l.needed.as_ref().and_then(|d| d.examples)
            && n <= needed_hi
        {
            let tip = format!(
                "{}: the fit reaches the target at {} examples",
                l.family,
                count(n)
            );
            p.marker(n, target, Shape::Ring(7.0), color(i), &tip);
        }
        if let Some(last) = l.points.last() {
            p.label(
                last.examples as f64,
                last.quality,
                6.0,
                -8.0,
                &l.family,
                "lbl",
            );
        }
    }
    p.finish("Quality against training examples", true)
}

/// Quality against the share of labels flipped, one line per noise sweep.
pub(crate) fn noise_chart(r: &DecisionReport) -> String {
    let c: &Curves = &r.curves;
    if c.noise.is_empty() {
        return placeholder("No noise sweep: declare `label_noise`.");
    }
    let target = r.quality_target;
    let all = c.noise.iter().flat_map(|n| n.points.iter());
    let x_hi = all.clone().map(|p| p.label_noise).fold(0.1, f64::max);
    let lows = all.clone().map(|p| p.ci_low).fold(target, f64::min);
    let highs = all.map(|p| p.ci_high).fold(target, f64::max);
    let x = Axis::linear(0.0, x_hi, "share of labels flipped", percent);
    let mut p = Plot::new(x, Axis::linear(lows, highs, "quality", fmt_quality));
    p.hrule(
        target,
        "#888",
        "5 4",
        &format!("target {}", quality(target)),
    );
    for (i, n) in c.noise.iter().enumerate() {
        let pts: Vec<(f64, f64)> = n
            .points
            .iter()
            .map(|q| (q.label_noise, q.quality))
            .collect();
        p.line(&pts, color(i), 2.0, None);
        for q in &n.points {
            let what = format!("{} flipped", percent(q.label_noise));
            dot(&mut p, q.label_noise, q, color(i), &what);
        }
        if let Some(last) = n.points.last() {
            p.label(last.label_noise, last.quality, 6.0, -8.0, &n.family, "lbl");
        }
    }
    p.finish("Quality against label noise", true)
}

/// A point at `x` (its examples or its noise, whichever the chart plots) with its CI whisker.
fn dot(p: &mut Plot, x: f64, q: &CurvePoint, fill: &str, what: &str) {
    p.whisker_y(x, q.ci_low, q.ci_high, fill);
    let tip = format!(
        "{}: {what}, quality {} (95% CI {}–{})",
        q.arm,
        quality(q.quality),
        quality(q.ci_low),
        quality(q.ci_high)
    );
    p.marker(x, q.quality, Shape::Circle(4.5), fill, &tip);
}
