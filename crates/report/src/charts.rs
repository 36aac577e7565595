//! The report's charts as inline SVG: quality against cost per request (with CI whiskers and
//! the Pareto frontier), total cost over the horizon against daily volume (with break-even
//! points), training loss curves, latency box plots, and, under `review:`, accuracy against
//! coverage.
//!
//! Each takes the finished [`DecisionReport`] (and the run's records where it needs raw curves or
//! latencies) and returns one `<svg>`; the drawing kit is `svg`, the page around them `html`.

use domain::{ArmKind, LossSplit, RunResults};

use crate::decision::{ArmReport, DecisionReport, SENSITIVITY_FACTORS};
use crate::figures::{count, factor, num, quality, usd};
use crate::index::ResultIndex;
use crate::render::break_even_line;
use crate::svg::{Axis, Plot, Shape, color, esc};

pub(crate) fn placeholder(text: &str) -> String {
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 560 120\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"280\" y=\"64\" text-anchor=\"middle\" class=\"note\">{}</text></svg>",
        esc(text)
    )
}

fn shape(a: &ArmReport, size: f64) -> Shape {
    match a.kind {
        ArmKind::Prompt => Shape::Circle(size),
        ArmKind::Finetune => Shape::Diamond(size * 1.3),
    }
}

/// Dollars on an axis: `$0.000001`, `$0.0005`, `$12.50`; no padding zeros on tiny prices.
fn fmt_usd(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("${}", num(v))
    } else {
        usd(v)
    }
}

pub(crate) fn fmt_quality(v: f64) -> String {
    format!("{v:.2}")
}

pub(crate) fn fmt_volume(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn fmt_money_short(v: f64) -> String {
    format!("${}", fmt_volume(v))
}

fn fmt_ms(v: f64) -> String {
    format!("{} ms", trim(v))
}

fn fmt_plain(v: f64) -> String {
    trim(v)
}

/// A tick value without trailing zeros (`0.5`, `20`, `0.001`).
fn trim(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Arms no other arm beats on both cost and quality, by increasing cost.
fn pareto(arms: &[ArmReport]) -> Vec<usize> {
    let mut front: Vec<usize> = (0..arms.len())
        .filter(|&i| {
            let (ci, qi) = (arms[i].cost.cost_per_request_usd, arms[i].quality);
            !arms.iter().any(|b| {
                let (cj, qj) = (b.cost.cost_per_request_usd, b.quality);
                cj <= ci && qj >= qi && (cj < ci || qj > qi)
            })
        })
        .collect();
    front.sort_by(|&i, &j| {
        arms[i]
            .cost
            .cost_per_request_usd
            .total_cmp(&arms[j].cost.cost_per_request_usd)
    });
    front
}

pub(crate) fn quality_cost_chart(r: &DecisionReport) -> String {
    if r.arms.is_empty() {
        return placeholder("No arms in this run.");
    }
    let costs: Vec<f64> = r.arms.iter().map(|a| a.cost.cost_per_request_usd).collect();
    let positive: Vec<f64> = costs.iter().copied().filter(|c| *c > 0.0).collect();
    let (min_pos, max) = positive
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &c| {
            (lo.min(c), hi.max(c))
        });
    let x = if !positive.is_empty() && max / min_pos > 20.0 {
        // Free arms (cost 0) sit at the left edge of a log axis.
        let lo = if positive.len() < costs.len() {
            min_pos / 10.0
        } else {
            min_pos
        };
        Axis::log(lo, max, "cost per request (USD)", fmt_usd)
    } else {
        Axis::linear(
            0.0,
            if max > 0.0 { max * 1.1 } else { 0.001 },
            "cost per request (USD)",
            fmt_usd,
        )
    };
    let lo = r
        .arms
        .iter()
        .map(|a| a.ci_low.min(a.quality))
        .fold(r.quality_target, f64::min);
    let hi = r
        .arms
        .iter()
        .map(|a| a.ci_high.max(a.quality))
        .fold(r.quality_target, f64::max);
    let y = Axis::linear(
        (lo - 0.03).max(0.0),
        (hi + 0.03).min(1.0),
        &format!("quality ({})", r.metric),
        fmt_quality,
    );
    let mut p = Plot::new(x, y);
    p.hrule(
        r.quality_target,
        "#d9822b",
        "6 4",
        &format!("target {}", quality(r.quality_target)),
    );
    let front = pareto(&r.arms);
    let mut stairs = Vec::new();
    for &i in &front {
        let (c, q) = (costs[i], r.arms[i].quality);
        // A staircase: along at the previous frontier quality, then up to this arm.
        if let Some(&(_, prev_q)) = stairs.last() {
            stairs.push((c, prev_q));
        }
        stairs.push((c, q));
    }
    p.line(&stairs, "#888", 1.5, Some("5 4"));
    for (i, a) in r.arms.iter().enumerate() {
        let c = costs[i];
        p.whisker_y(c, a.ci_low, a.ci_high, color(i));
        if front.contains(&i) {
            p.marker(
                c,
                a.quality,
                Shape::Ring(11.0),
                "#555",
                "on the Pareto frontier",
            );
        }
        p.marker(
            c,
            a.quality,
            shape(a, 6.0),
            color(i),
            &format!(
                "{}: quality {} (95% CI {}–{}), {} per request",
                a.arm,
                quality(a.quality),
                quality(a.ci_low),
                quality(a.ci_high),
                usd(c)
            ),
        );
        let dy = if i % 2 == 0 { -9.0 } else { 15.0 };
        let right = p.x.fraction(c) > 0.7;
        p.label(
            c,
            a.quality,
            if right { -10.0 } else { 10.0 },
            dy,
            &short(&a.arm, 30),
            "lbl",
        );
    }
    p.finish("Quality against cost per request", true)
}

pub(crate) fn volume_chart(r: &DecisionReport) -> String {
    if r.arms.is_empty() {
        return placeholder("No arms in this run.");
    }
    let horizon = r.horizon_days();
    let declared = if r.daily_requests() > 0.0 {
        r.daily_requests()
    } else {
        1000.0
    };
    let (mut lo, mut hi) = (declared / 100.0, declared * 100.0);
    for v in r.break_even.iter().filter_map(|b| b.daily_requests) {
        lo = lo.min(v / 3.0);
        hi = hi.max(v * 3.0);
    }
    let x = Axis::log(lo, hi, "requests per day", fmt_volume);
    let (x_lo, x_hi) = (x.min, x.max);
    let samples: Vec<f64> = (0..=96)
        .map(|k| 10f64.powf(x_lo.log10() + (x_hi.log10() - x_lo.log10()) * f64::from(k) / 96.0))
        .collect();
    let curves: Vec<Vec<(f64, f64)>> = r
        .arms
        .iter()
        .map(|a| {
            samples
                .iter()
                .map(|&v| (v, a.cost.total_at(v, horizon)))
                .collect()
        })
        .collect();
    let all = curves.iter().flatten().map(|&(_, t)| t);
    let (t_lo, t_hi) = all.fold((f64::INFINITY, 0.0_f64), |(a, b), t| (a.min(t), b.max(t)));
    let y = if t_lo > 0.0 {
        Axis::log(t_lo, t_hi, "total over the horizon (USD)", fmt_money_short)
    } else {
        Axis::linear(
            t_lo.min(0.0),
            t_hi,
            "total over the horizon (USD)",
            fmt_money_short,
        )
    };
    let mut p = Plot::new(x, y);
    let label = format!("declared {}/day", count(declared));
    p.vrule(declared, "#333", "4 3", &label, true);
    for f in SENSITIVITY_FACTORS {
        p.vrule(declared * f, "#bbb", "2 4", &factor(f), false);
    }
    for (i, (a, pts)) in r.arms.iter().zip(&curves).enumerate() {
        let recommended = r.recommended_arm.as_deref() == Some(a.arm.as_str());
        let dash = (a.kind == ArmKind::Finetune).then_some("8 3");
        p.line(pts, color(i), if recommended { 3.5 } else { 2.0 }, dash);
    }
    for (k, b) in r.break_even.iter().enumerate() {
        let Some(v) = b.daily_requests else { continue };
        let Some(ft) = r.arms.iter().find(|a| a.arm == b.finetune_arm) else {
            continue;
        };
        let t = ft.cost.total_at(v, horizon);
        p.marker(v, t, Shape::Ring(7.0), "#111", &break_even_line(b));
        p.label(
            v,
            t,
            8.0,
            if k % 2 == 0 { 18.0 } else { -10.0 },
            &format!("break-even {}/day", count(v)),
            "lbl",
        );
    }
    p.finish("Total cost over the horizon against daily volume", true)
}

pub(crate) fn loss_chart(r: &DecisionReport, results: &RunResults) -> String {
    let curves: Vec<_> = results
        .training
        .iter()
        .filter(|t| !t.curve.is_empty())
        .collect();
    if curves.is_empty() {
        return placeholder("No training curves recorded in this run.");
    }
    let points = curves.iter().flat_map(|t| t.curve.iter());
    let (mut s_max, mut l_lo, mut l_hi) = (0.0_f64, f64::INFINITY, f64::NEG_INFINITY);
    for pt in points {
        s_max = s_max.max(pt.step as f64);
        l_lo = l_lo.min(pt.loss);
        l_hi = l_hi.max(pt.loss);
    }
    let x = Axis::linear(0.0, s_max.max(1.0), "optimizer step", fmt_plain);
    let y = Axis::linear(l_lo.min(l_hi), l_hi, "loss", fmt_plain);
    let mut p = Plot::new(x, y);
    for t in curves {
        let i = arm_index(r, &t.arm);
        for (split, dash) in [(LossSplit::Train, None), (LossSplit::Val, Some("6 4"))] {
            let mut pts: Vec<(f64, f64)> = t
                .curve
                .iter()
                .filter(|pt| pt.split == split)
                .map(|pt| (pt.step as f64, pt.loss))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            p.line(&pts, color(i), 2.0, dash);
            if split == LossSplit::Val {
                for &(s, l) in &pts {
                    p.marker(
                        s,
                        l,
                        Shape::Circle(3.0),
                        color(i),
                        &format!("{} validation loss {l:.4} at step {s}", t.arm),
                    );
                }
            }
            if let Some(&(s, l)) = pts.last() {
                // Validation sits above its line, training below, so the two never overlap.
                let dy = if split == LossSplit::Val { -10.0 } else { 16.0 };
                let text = format!("{} {split}", short(&t.arm, 24));
                p.label(s, l, -6.0, dy, &text, "lbl");
            }
        }
    }
    p.finish("Training loss", true)
}

fn arm_index(r: &DecisionReport, arm: &str) -> usize {
    r.arms
        .iter()
        .position(|a| a.arm == arm)
        .unwrap_or(r.arms.len())
}

/// Accuracy of the automated answers against coverage on the test items, one line per arm under
/// review, with the threshold each chose (a marker) and the target accuracy (a dashed rule).
pub(crate) fn risk_coverage_chart(r: &DecisionReport) -> String {
    let Some(summary) = r.review.as_ref().filter(|s| s.unavailable.is_none()) else {
        return placeholder("No review: the spec declares no `review:` block.");
    };
    let curves: Vec<(usize, &ArmReport)> = r
        .arms
        .iter()
        .enumerate()
        .filter(|(_, a)| a.review.as_ref().is_some_and(|v| !v.curve.is_empty()))
        .collect();
    if curves.is_empty() {
        return placeholder("No arm gave its answers a confidence, so every answer is reviewed.");
    }
    let target = summary.spec.target_accuracy;
    let lowest = curves
        .iter()
        .flat_map(|(_, a)| a.review.iter().flat_map(|v| v.curve.iter()))
        .map(|p| p.accuracy)
        .fold(target, f64::min);
    let x = Axis::linear(
        0.0,
        1.0,
        "coverage (share answered automatically)",
        fmt_quality,
    );
    let y = Axis::linear(lowest, 1.0, "accuracy of automated answers", fmt_quality);
    let mut p = Plot::new(x, y);
    p.hrule(
        target,
        "#888",
        "5 4",
        &format!("target {}", quality(target)),
    );
    for (i, a) in curves {
        let Some(v) = &a.review else { continue };
        let pts: Vec<(f64, f64)> = v.curve.iter().map(|c| (c.coverage, c.accuracy)).collect();
        p.line(&pts, color(i), 2.0, None);
        if let Some(acc) = v.automated_accuracy {
            let tip = format!(
                "{}: threshold {:.4} automates {} of the test items at accuracy {}",
                a.arm,
                v.threshold().unwrap_or(1.0),
                crate::figures::percent(v.coverage),
                quality(acc)
            );
            p.marker(v.coverage, acc, shape(a, 6.0), color(i), &tip);
        }
        if let Some(&(c, acc)) = pts.last() {
            p.label(c, acc, -6.0, -8.0, &short(&a.arm, 24), "lbl");
        }
    }
    p.finish("Accuracy against coverage", true)
}

/// Items per second against p95 latency, one line per benchmarked arm through its batch
/// sizes, with the SLO as a vertical rule.
pub(crate) fn bench_chart(r: &DecisionReport) -> String {
    if r.serving_bench.is_empty() {
        return placeholder("No bench-serving measurements for this run.");
    }
    let b = &r.serving_bench;
    let x_hi = b.iter().map(|m| m.latency_p95_ms).fold(0.0, f64::max);
    let y_hi = b.iter().map(|m| m.items_per_second).fold(0.0, f64::max);
    let slo = r
        .assumptions
        .iter()
        .find(|a| a.name == "latency_slo_ms")
        .and_then(|a| a.value.as_f64());
    let x = Axis::linear(
        0.0,
        x_hi.max(slo.unwrap_or(0.0)) * 1.05,
        "p95 latency per request",
        fmt_ms,
    );
    let y = Axis::linear(0.0, y_hi * 1.1, "items per second", fmt_plain);
    let mut p = Plot::new(x, y);
    if let Some(s) = slo {
        p.vrule(s, "#888", "5 4", &format!("SLO {} ms", trim(s)), true);
    }
    for (i, a) in r.arms.iter().enumerate() {
        let pts: Vec<(f64, f64, u32)> = b
            .iter()
            .filter(|m| m.arm == a.arm)
            .map(|m| (m.latency_p95_ms, m.items_per_second, m.batch_size))
            .collect();
        let line: Vec<(f64, f64)> = pts.iter().map(|&(x, y, _)| (x, y)).collect();
        p.line(&line, color(i), 2.0, None);
        for &(x, y, size) in &pts {
            let tip = format!("{}: batch {size}, {y:.2} items/s, p95 {x:.0} ms", a.arm);
            p.marker(x, y, shape(a, 5.0), color(i), &tip);
            p.label(x, y, 6.0, -6.0, &format!("{size}"), "lbl");
        }
    }
    p.finish("Throughput against latency", true)
}

pub(crate) fn latency_chart(r: &DecisionReport, results: &RunResults) -> String {
    let index = ResultIndex::new(results);
    let rows: Vec<(usize, Vec<f64>)> = r
        .arms
        .iter()
        .enumerate()
        .map(|(i, a)| (i, index.latencies(&a.arm)))
        .filter(|(_, xs)| !xs.is_empty())
        .collect();
    if rows.is_empty() {
        return placeholder("No successful calls, so no latencies.");
    }
    let all = rows.iter().flat_map(|(_, xs)| xs.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, 0.0_f64), |(a, b), v| (a.min(v), b.max(v)));
    let x = if lo > 0.0 && hi / lo > 30.0 {
        Axis::log(lo, hi, "latency (ms)", fmt_ms)
    } else {
        Axis::linear(0.0, hi.max(1.0), "latency (ms)", fmt_ms)
    };
    let longest = rows
        .iter()
        .map(|(i, _)| short(&r.arms[*i].arm, 26).chars().count())
        .max()
        .unwrap_or(0);
    let left = (longest as f64 * 6.4 + 16.0).clamp(70.0, 200.0);
    let y = Axis::linear(0.0, 1.0, "", fmt_plain);
    let mut p = Plot::new(x, y).with_rows(rows.len(), left);
    let n = rows.len();
    for (row, (i, xs)) in rows.iter().enumerate() {
        let q = [5.0, 25.0, 50.0, 75.0, 95.0].map(|q| scoring::percentile(xs, q));
        let arm = &r.arms[*i].arm;
        p.box_row(
            row,
            n,
            q,
            color(*i),
            &short(arm, 26),
            &format!(
                "{arm}: {} calls, p5 {:.0} · p25 {:.0} · p50 {:.0} · p75 {:.0} · p95 {:.0} ms",
                xs.len(),
                q[0],
                q[1],
                q[2],
                q[3],
                q[4]
            ),
        );
    }
    p.finish("Latency per request", false)
}

/// `s` cut to `n` characters with an ellipsis.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_keeps_arms_nothing_beats_on_both_cost_and_quality() {
        // (cost, quality): b dominates a (cheaper, better); c costs more but is better; d is
        // dominated by c (same cost, worse) — the frontier is b then c.
        let arm = |cost: f64, q: f64| {
            let measured = crate::cost::Measured::default();
            let pricing = crate::cost::PricingUsed::Hosted {
                pricing: None,
                batch_api: false,
            };
            let mut c = crate::cost::arm_cost(
                ArmKind::Prompt,
                &measured,
                pricing,
                &domain::CostAssumptions::default(),
            );
            c.cost_per_request_usd = cost;
            ArmReport {
                arm: format!("{cost}/{q}"),
                kind: ArmKind::Prompt,
                quality: q,
                ci_low: q,
                ci_high: q,
                meets_target: false,
                cost: c,
                measured,
                review: None,
                serving_bench: None,
                sweep: None,
            }
        };
        let arms = [
            arm(0.002, 0.8),
            arm(0.001, 0.85),
            arm(0.01, 0.95),
            arm(0.01, 0.9),
        ];
        assert_eq!(pareto(&arms), [1, 2]);
    }
}
