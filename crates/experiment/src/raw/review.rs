//! `review:` (route low-confidence answers to people, with a guarantee), `costs.review:` (what
//! one review costs) and `costs.serving.mode` (real time or batches): what shipping costs beyond
//! the tokens, read with their positions and checked in range. Whether the decision
//! metric is pass/fail, which review needs, is only known once answers are scored: the report
//! says so then.

use domain::{ReviewCorrection, ReviewCosts, ReviewSpec, ServingMode};

use crate::decode::{Ctx, Fields, fields, one_of};
use crate::yaml::Node;

const REVIEW: &[&str] = &[
    "target_accuracy",
    "delta",
    "calibration",
    "correction",
    "seed",
];
const REVIEW_COSTS: &[&str] = &["cost_per_review_usd", "minutes_per_review"];

fn open_unit(x: f64) -> bool {
    x > 0.0 && x < 1.0
}

/// `review:`; `None` when it is not a mapping or lacks `target_accuracy` (both reported).
pub(super) fn review(cx: &mut Ctx<'_>, node: &Node) -> Option<ReviewSpec> {
    let f = fields(cx, node, "`review`", REVIEW, &[])?;
    let between = "more than 0 and less than 1";
    let target = f
        .required(cx, "target_accuracy")
        .and_then(|_| f.number(cx, "target_accuracy", open_unit, between));
    let delta = f.number(cx, "delta", open_unit, between);
    let calibration = f.number(cx, "calibration", open_unit, between);
    let correction = correction(cx, &f);
    let seed = f.uint(cx, "seed", 0).map(|s| s.value);
    Some(ReviewSpec {
        target_accuracy: target?.value,
        delta: delta.map_or(ReviewSpec::DEFAULT_DELTA, |s| s.value),
        calibration: calibration.map_or(ReviewSpec::DEFAULT_CALIBRATION, |s| s.value),
        correction: correction.unwrap_or(ReviewCorrection::FixedSequence),
        seed: seed.unwrap_or(ReviewSpec::DEFAULT_SEED),
    })
}

fn correction(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<ReviewCorrection> {
    keyword(
        cx,
        f,
        "correction",
        "`correction`",
        &ReviewCorrection::ALL,
        |c| c.as_str(),
    )
}

/// A key whose value is one of `all`, spelled as `name` spells it.
pub(super) fn keyword<T: Copy>(
    cx: &mut Ctx<'_>,
    f: &Fields<'_>,
    key: &str,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Option<T> {
    let s = f.string(cx, key)?;
    let found = all.iter().copied().find(|&x| name(x) == s.value);
    if found.is_none() {
        let names: Vec<&str> = all.iter().map(|&x| name(x)).collect();
        cx.error(
            s.pos,
            format!(
                "unknown {what} `{}`: expected {}",
                s.value.escape_default(),
                one_of(&names)
            ),
        );
    }
    found
}

/// `costs.review:`, and the names of the fields written.
pub(super) fn review_costs(
    cx: &mut Ctx<'_>,
    node: &Node,
) -> Option<(ReviewCosts, Vec<&'static str>)> {
    let f = fields(cx, node, "`costs.review`", REVIEW_COSTS, &[])?;
    let ge0 = "zero or more";
    let cost = f.number(cx, "cost_per_review_usd", |x| x >= 0.0, ge0);
    let minutes = f.number(cx, "minutes_per_review", |x| x >= 0.0, ge0);
    let declared = [
        ("cost_per_review_usd", cost.is_some()),
        ("minutes_per_review", minutes.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, written)| written.then_some(name))
    .collect();
    Some((
        ReviewCosts {
            cost_per_review_usd: cost.map(|s| s.value),
            minutes_per_review: minutes.map(|s| s.value),
        },
        declared,
    ))
}

/// `costs.serving.mode`.
pub(super) fn serving_mode(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<ServingMode> {
    keyword(cx, f, "mode", "serving `mode`", &ServingMode::ALL, |m| {
        m.as_str()
    })
}
