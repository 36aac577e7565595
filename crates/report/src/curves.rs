//! Learning curves and noise sweeps in the decision report: the arms of one family (a declared
//! fine-tune or prompt and its `train_sizes` / `few_shot_sizes` / `label_noise` points) set
//! against the examples they learned from, or the share of labels flipped.
//!
//! A learning curve's fit and its interval are `scoring::learning_curve`'s; this module picks
//! the points, says how many examples the target needs and what labelling them costs
//! (`labelling_minutes_per_example`), and flags a figure that extrapolates beyond twice the
//! largest size measured. A noise curve names the highest level at which the arm still meets
//! the target. The verdict never recommends a noisy point (`ArmReport::shippable`).

use domain::ArmKind;
use serde::{Deserialize, Serialize};

use crate::decision::{ArmReport, EPS};
use crate::figures::{count, percent, quality, usd};

/// How far beyond the largest measured size a forecast is still read as more than a guess.
pub const EXTRAPOLATION_FACTOR: f64 = 2.0;

/// Every family's curves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learning: Vec<LearningCurve>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise: Vec<NoiseCurve>,
}

impl Curves {
    pub fn is_empty(&self) -> bool {
        self.learning.is_empty() && self.noise.is_empty()
    }
}

/// One arm on a curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub arm: String,
    pub examples: usize,
    pub label_noise: f64,
    pub quality: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Quality against the examples learned from (training rows, or demonstrations), clean labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningCurve {
    /// The declared arm.
    pub family: String,
    pub kind: ArmKind,
    /// By examples, ascending.
    pub points: Vec<CurvePoint>,
    /// `None` with fewer than two sizes above zero.
    pub fit: Option<scoring::CurveFit>,
    /// What the fit says the target needs; `None` without a fit.
    pub needed: Option<ExamplesNeeded>,
    /// How the fit was made, in sentences (its form, points left out).
    pub notes: Vec<String>,
}

/// The examples the quality target needs, by the fitted curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExamplesNeeded {
    /// `None`: the fitted curve never reaches the target.
    pub examples: Option<f64>,
    /// 95% bootstrap interval over eval items; an upper end of `None` means "never".
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// The figure lies beyond [`EXTRAPOLATION_FACTOR`] × the largest measured size.
    pub extrapolated: bool,
    /// `examples × labelling_minutes_per_example`, for fine-tunes when that is declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelling_hours: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelling_usd: Option<f64>,
}

/// Quality against the share of labels flipped, at the declared arm's examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseCurve {
    pub family: String,
    pub kind: ArmKind,
    /// By noise, ascending; the clean declared arm first.
    pub points: Vec<CurvePoint>,
    /// The highest level measured at which the arm still meets the target (with every lower
    /// level meeting it too); `None` when even clean labels miss it.
    pub tolerated: Option<f64>,
}

/// What the curves need besides the arms: their per-item scores (aligned across arms), the
/// target, and the labelling price.
pub(crate) struct CurveInputs<'a> {
    pub arms: &'a [ArmReport],
    pub scores: &'a [Vec<f64>],
    pub target: f64,
    pub labelling_minutes: Option<f64>,
    pub hourly_rate: f64,
}

/// Every family with at least two clean sizes gets a learning curve, every family with a
/// noisy point a noise curve; families in run order.
pub(crate) fn curves(x: &CurveInputs<'_>) -> Curves {
    let mut families: Vec<&str> = Vec::new();
    for s in x.arms.iter().filter_map(|a| a.sweep.as_ref()) {
        if !families.contains(&s.family.as_str()) {
            families.push(&s.family);
        }
    }
    let mut out = Curves::default();
    for family in families {
        let members: Vec<usize> = (0..x.arms.len())
            .filter(|&i| x.arms[i].sweep.as_ref().is_some_and(|s| s.family == family))
            .collect();
        out.learning.extend(learning_curve(x, family, &members));
        out.noise.extend(noise_curve(x, family, &members));
    }
    out
}

fn point(a: &ArmReport) -> Option<CurvePoint> {
    let s = a.sweep.as_ref()?;
    Some(CurvePoint {
        arm: a.arm.clone(),
        examples: s.examples,
        label_noise: s.label_noise,
        quality: a.quality,
        ci_low: a.ci_low,
        ci_high: a.ci_high,
    })
}

fn learning_curve(x: &CurveInputs<'_>, family: &str, members: &[usize]) -> Option<LearningCurve> {
    let mut clean: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| x.arms[i].shippable())
        .collect();
    clean.sort_by_key(|&i| x.arms[i].sweep.as_ref().map_or(0, |s| s.examples));
    let points: Vec<CurvePoint> = clean.iter().filter_map(|&i| point(&x.arms[i])).collect();
    if points.len() < 2 {
        return None;
    }
    let kind = x.arms[clean[0]].kind;
    let mut notes = Vec::new();
    let fitted: Vec<usize> = clean
        .iter()
        .copied()
        .filter(|&i| x.arms[i].sweep.as_ref().is_some_and(|s| s.examples > 0))
        .collect();
    if fitted.len() < clean.len() {
        notes.push("the point at 0 examples is shown but left out of the fit".to_owned());
    }
    let sizes: Vec<f64> = fitted.iter().map(|&i| examples_of(&x.arms[i])).collect();
    let pts: Vec<(f64, f64)> = sizes
        .iter()
        .zip(&fitted)
        .map(|(&n, &i)| (n, x.arms[i].quality))
        .collect();
    let fit = scoring::fit_curve(&pts);
    match &fit {
        Some(f @ scoring::CurveFit::PowerLaw { .. }) => notes.push(format!(
            "fitted {} on {} sizes by least squares",
            f.form(),
            pts.len()
        )),
        Some(f) => notes.push(format!(
            "fitted {} on {} sizes: a power law needs at least {}",
            f.form(),
            pts.len(),
            scoring::POWER_LAW_MIN_POINTS
        )),
        None => notes.push("too few sizes above 0 to fit a curve".to_owned()),
    }
    let scores: Vec<Vec<f64>> = fitted.iter().map(|&i| x.scores[i].clone()).collect();
    let largest = sizes.iter().copied().fold(0.0, f64::max);
    let needed = fit.map(|f| needed(x, kind, &f, &sizes, &scores, largest));
    Some(LearningCurve {
        family: family.to_owned(),
        kind,
        points,
        fit,
        needed,
        notes,
    })
}

fn examples_of(a: &ArmReport) -> f64 {
    a.sweep.as_ref().map_or(0.0, |s| s.examples as f64)
}

fn needed(
    x: &CurveInputs<'_>,
    kind: ArmKind,
    fit: &scoring::CurveFit,
    sizes: &[f64],
    scores: &[Vec<f64>],
    largest: f64,
) -> ExamplesNeeded {
    let examples = fit.examples_for(x.target);
    let ci = scoring::examples_needed_ci(
        sizes,
        scores,
        x.target,
        scoring::CURVE_RESAMPLES,
        scoring::DEFAULT_SEED,
    );
    let finite = |v: f64| v.is_finite().then_some(v);
    let labelling_hours = match (kind, x.labelling_minutes, examples) {
        (ArmKind::Finetune, Some(minutes), Some(n)) => Some(n.ceil() * minutes / 60.0),
        _ => None,
    };
    ExamplesNeeded {
        examples,
        ci_low: ci.and_then(|c| finite(c.0)),
        ci_high: ci.and_then(|c| finite(c.1)),
        extrapolated: examples.is_none_or(|n| n > EXTRAPOLATION_FACTOR * largest),
        labelling_hours,
        labelling_usd: labelling_hours.map(|h| h * x.hourly_rate),
    }
}

fn noise_curve(x: &CurveInputs<'_>, family: &str, members: &[usize]) -> Option<NoiseCurve> {
    let declared = members.iter().copied().find(|&i| x.arms[i].arm == family)?;
    let examples = x.arms[declared].sweep.as_ref()?.examples;
    let mut on: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| {
            x.arms[i]
                .sweep
                .as_ref()
                .is_some_and(|s| s.examples == examples)
        })
        .collect();
    if on.iter().all(|&i| x.arms[i].shippable()) {
        return None;
    }
    on.sort_by(|&i, &j| noise_of(&x.arms[i]).total_cmp(&noise_of(&x.arms[j])));
    let points: Vec<CurvePoint> = on.iter().filter_map(|&i| point(&x.arms[i])).collect();
    let tolerated = points
        .iter()
        .take_while(|p| p.quality + EPS >= x.target)
        .last()
        .map(|p| p.label_noise);
    Some(NoiseCurve {
        family: family.to_owned(),
        kind: x.arms[declared].kind,
        points,
        tolerated,
    })
}

fn noise_of(a: &ArmReport) -> f64 {
    a.sweep.as_ref().map_or(0.0, |s| s.label_noise)
}

/// One sentence per curve for the verdict's reasons.
pub(crate) fn sentences(c: &Curves, target: f64, metric: &str) -> Vec<String> {
    let mut out: Vec<String> = c
        .learning
        .iter()
        .filter_map(|l| learning_sentence(l, target, metric))
        .collect();
    out.extend(c.noise.iter().map(|n| noise_sentence(n, target)));
    out
}

fn learning_sentence(l: &LearningCurve, target: f64, metric: &str) -> Option<String> {
    let (fit, needed) = (l.fit.as_ref()?, l.needed.as_ref()?);
    let what = match l.kind {
        ArmKind::Finetune => "training examples",
        ArmKind::Prompt => "demonstrations",
    };
    let largest = l.points.last().map_or(0, |p| p.examples);
    let head = format!("Learning curve of `{}` ({})", l.family, fit.form());
    let Some(n) = needed.examples else {
        let level = match fit {
            scoring::CurveFit::PowerLaw { a, .. } => format!(" levels off at {}, and", quality(*a)),
            scoring::CurveFit::LogLinear { .. } => String::new(),
        };
        return Some(format!(
            "{head}:{level} never reaches the target {} on `{metric}`: more {what} of this kind \
             are unlikely to be enough.",
            quality(target)
        ));
    };
    let ci = match (needed.ci_low, needed.ci_high) {
        (Some(lo), Some(hi)) => format!(" (95% CI {}–{})", count(lo), count(hi)),
        (Some(lo), None) => format!(" (95% CI {} to never)", count(lo)),
        _ => String::new(),
    };
    let labelling = match (needed.labelling_hours, needed.labelling_usd) {
        (Some(h), Some(d)) => format!(", {} hours of labelling ({})", count(h), usd(d)),
        _ => String::new(),
    };
    let warn = if needed.extrapolated {
        format!(
            "; that is beyond {EXTRAPOLATION_FACTOR}× the largest size, an extrapolation to \
             treat as a rough guide"
        )
    } else {
        String::new()
    };
    Some(format!(
        "{head}: the target {} needs about {} {what}{ci}{labelling}; the largest measured \
         size is {largest}{warn}.",
        quality(target),
        count(n.ceil())
    ))
}

fn noise_sentence(n: &NoiseCurve, target: f64) -> String {
    let measured: Vec<String> = n
        .points
        .iter()
        .map(|p| format!("{} at {}", quality(p.quality), percent(p.label_noise)))
        .collect();
    let head = match n.tolerated {
        Some(level) if level > 0.0 => format!(
            "`{}` still meets the target {} with {} of its labels flipped",
            n.family,
            quality(target),
            percent(level)
        ),
        Some(_) => format!(
            "`{}` meets the target {} only with clean labels",
            n.family,
            quality(target)
        ),
        None => format!(
            "`{}` misses the target {} even with clean labels",
            n.family,
            quality(target)
        ),
    };
    format!("{head} ({}).", measured.join(", "))
}

/// How each learning curve was fitted, one line per curve.
pub(crate) fn notes(c: &Curves) -> Vec<String> {
    c.learning
        .iter()
        .map(|l| format!("`{}`: {}.", l.family, l.notes.join("; ")))
        .collect()
}

/// The points of every curve as one table, for the text, Markdown and HTML reports.
pub(crate) fn rows(c: &Curves) -> Option<(Vec<&'static str>, Vec<Vec<String>>)> {
    if c.is_empty() {
        return None;
    }
    let headers = vec![
        "curve",
        "arm",
        "examples",
        "labels flipped",
        "quality",
        "95% CI",
        "fit",
    ];
    let mut rows = Vec::new();
    for l in &c.learning {
        for p in &l.points {
            let fitted = l
                .fit
                .filter(|_| p.examples > 0)
                .map_or("–".to_owned(), |f| quality(f.predict(p.examples as f64)));
            rows.push(row(&format!("{} · examples", l.family), p, fitted));
        }
    }
    for n in &c.noise {
        for p in &n.points {
            rows.push(row(&format!("{} · noise", n.family), p, "–".to_owned()));
        }
    }
    Some((headers, rows))
}

fn row(curve: &str, p: &CurvePoint, fitted: String) -> Vec<String> {
    vec![
        curve.to_owned(),
        p.arm.clone(),
        p.examples.to_string(),
        percent(p.label_noise),
        quality(p.quality),
        format!("{}–{}", quality(p.ci_low), quality(p.ci_high)),
        fitted,
    ]
}
