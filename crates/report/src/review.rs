//! Selective human review (`review:`): the eval items are split once into a calibration part,
//! which chooses each arm's confidence threshold with `scoring::select_threshold`'s guarantee,
//! and a test part, on which every quality figure of the report is computed and the threshold's
//! coverage and accuracy are measured.
//!
//! The split is a pure function of the item ids and the spec's seed (each id hashed, the lowest
//! hashes taken), so every view of one run (leaderboard, compare, report) sees the same halves,
//! and a rerun with the same items gets the same split. Reviewed answers are taken as right: the
//! reviewer is simulated by the gold label, and the report says so.

use std::borrow::Cow;
use std::collections::BTreeSet;

use domain::{CostAssumptions, ReviewSpec, RunResults};
use scoring::{CoveragePoint, Selection};
use serde::{Deserialize, Serialize};

use crate::calibration::confidence;
use crate::decision::ArmReport;
use crate::figures::{count, percent, usd};
use crate::index::{ResultIndex, succeeded};

/// Most points a stored or drawn risk–coverage curve keeps.
const CURVE_POINTS: usize = 101;

/// One arm under review, for the decision report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReview {
    /// The threshold search on the calibration items.
    pub selection: Selection,
    /// Share of the test items the threshold automates (the report's `ReviewSummary` counts
    /// them); the arm's `quality` is then that of what ships.
    pub coverage: f64,
    /// Accuracy of the automated test answers; `None` when none is automated.
    pub automated_accuracy: Option<f64>,
    /// Accuracy against coverage on the test items, highest confidence first (at most 101
    /// points).
    pub curve: Vec<CoveragePoint>,
}

/// The run's review settings and split, when the run declared `review:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewSummary {
    pub spec: ReviewSpec,
    pub calibration_items: usize,
    pub test_items: usize,
    /// Why review could not be applied (the metric is not pass/fail); arms then carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// The calibration item ids of `items` under `spec`.
pub fn calibration_split<'a>(items: &[&'a str], spec: &ReviewSpec) -> BTreeSet<&'a str> {
    let mut keyed: Vec<(u64, &str)> = items.iter().map(|&id| (key(spec.seed, id), id)).collect();
    keyed.sort_unstable();
    let n = items.len();
    let mut take = (spec.calibration * n as f64).round() as usize;
    if n >= 2 {
        take = take.clamp(1, n - 1);
    }
    keyed.into_iter().take(take).map(|(_, id)| id).collect()
}

/// FNV-1a of the id, then SplitMix64's finaliser with the seed: stable across builds and
/// platforms (std's hashers are not).
fn key(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The records every quality figure is computed on: without the calibration items when the run
/// declared `review:`, else the run as it is.
pub fn quality_view(results: &RunResults) -> Cow<'_, RunResults> {
    let Some(spec) = results.run.settings.as_ref().and_then(|s| s.review) else {
        return Cow::Borrowed(results);
    };
    let index = ResultIndex::new(results);
    let held: BTreeSet<String> = calibration_split(&index.items, &spec)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut view = results.clone();
    view.items.retain(|i| !held.contains(&i.item_id));
    view.calls.retain(|c| !held.contains(&c.item_id));
    view.scores.retain(|s| !held.contains(&s.item_id));
    Cow::Owned(view)
}

/// The confidence of `arm`'s answer to `item`; `None` without a successful call or a
/// confidence.
fn answer_confidence(index: &ResultIndex<'_>, arm: &str, item: &str) -> Option<f64> {
    index
        .call(arm, item)
        .filter(|c| succeeded(c))
        .and_then(confidence)
}

/// (confidence, correct) of `arm` on `items` under pass/fail `metric`; an item without a
/// successful call has no confidence and counts wrong.
fn pairs(
    index: &ResultIndex<'_>,
    arm: &str,
    metric: &str,
    items: &[&str],
) -> Vec<(Option<f64>, bool)> {
    items
        .iter()
        .map(|item| {
            (
                answer_confidence(index, arm, item),
                index.value(arm, item, metric) == Some(1.0),
            )
        })
        .collect()
}

impl ArmReview {
    /// The chosen threshold; `None` when every answer goes to review.
    pub fn threshold(&self) -> Option<f64> {
        self.selection.chosen.map(|t| t.threshold)
    }

    /// `1 − coverage`: the share a person answers.
    pub fn reviewed_share(&self) -> f64 {
        1.0 - self.coverage
    }
}

/// What reviewing an arm's low-confidence share costs at the declared traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReviewCost {
    pub reviewed_share: f64,
    /// `reviewed_share × daily_requests`.
    pub reviews_per_day: f64,
    /// `costs.review.cost_per_review_usd`, else its minutes at the staff hourly rate.
    pub cost_per_review_usd: f64,
    pub minutes_per_review: f64,
    /// `reviewed_share × cost_per_review_usd`: what review adds to each request.
    pub per_request_usd: f64,
    /// `reviews_per_day × cost_per_review_usd`.
    pub daily_usd: f64,
    /// `reviews_per_day × minutes_per_review / 60`.
    pub staff_hours_per_day: f64,
}

/// The cost of reviewing `reviewed_share` of the traffic under `costs`.
pub fn review_cost(reviewed_share: f64, costs: &CostAssumptions) -> ReviewCost {
    let cost_per_review_usd = costs.review.cost_per_review(costs.hourly_rate_usd);
    let minutes_per_review = costs.review.minutes();
    let reviews_per_day = reviewed_share * costs.daily_requests;
    ReviewCost {
        reviewed_share,
        reviews_per_day,
        cost_per_review_usd,
        minutes_per_review,
        per_request_usd: reviewed_share * cost_per_review_usd,
        daily_usd: reviews_per_day * cost_per_review_usd,
        staff_hours_per_day: reviews_per_day * minutes_per_review / 60.0,
    }
}

/// Per-item quality of what ships under review, on the items of `index` (the quality view):
/// the metric where the answer is automated (confidence at least `threshold`), 1 where a
/// person reviews it.
pub(crate) fn system_values(
    index: &ResultIndex<'_>,
    arm: &str,
    metric: &str,
    threshold: Option<f64>,
) -> Vec<f64> {
    index
        .items
        .iter()
        .map(
            |item| match (answer_confidence(index, arm, item), threshold) {
                (Some(c), Some(t)) if c >= t => index.value(arm, item, metric).unwrap_or(0.0),
                _ => 1.0,
            },
        )
        .collect()
}

/// The review summary of the run and each arm's review, in `arms` order; `None` without
/// `review:`.
pub(crate) fn review(
    results: &RunResults,
    metric: &str,
    arms: &[&str],
) -> Option<(ReviewSummary, Vec<Option<ArmReview>>)> {
    let spec = results.run.settings.as_ref()?.review?;
    let index = ResultIndex::new(results);
    let cal_ids = calibration_split(&index.items, &spec);
    let (cal, test): (Vec<&str>, Vec<&str>) =
        index.items.iter().partition(|id| cal_ids.contains(*id));
    let mut summary = ReviewSummary {
        spec,
        calibration_items: cal.len(),
        test_items: test.len(),
        unavailable: None,
    };
    if !index.is_binary(metric) {
        summary.unavailable = Some(format!(
            "review needs a pass/fail metric, and `{metric}` is graded"
        ));
        return Some((summary, vec![None; arms.len()]));
    }
    let per_arm = arms
        .iter()
        .map(|arm| Some(arm_review(&index, arm, metric, &spec, &cal, &test)))
        .collect();
    Some((summary, per_arm))
}

fn arm_review(
    index: &ResultIndex<'_>,
    arm: &str,
    metric: &str,
    spec: &ReviewSpec,
    cal: &[&str],
    test: &[&str],
) -> ArmReview {
    let selection = scoring::select_threshold(
        &pairs(index, arm, metric, cal),
        spec.target_accuracy,
        spec.delta,
        spec.correction,
    );
    let test_pairs = pairs(index, arm, metric, test);
    let (coverage, automated_accuracy) = match &selection.chosen {
        Some(t) => scoring::at_threshold(&test_pairs, t.threshold),
        None => (0.0, None),
    };
    ArmReview {
        coverage,
        automated_accuracy,
        curve: thin(scoring::risk_coverage(&test_pairs)),
        selection,
    }
}

/// At most [`CURVE_POINTS`] points, evenly spaced along the curve, the last one kept.
fn thin(curve: Vec<CoveragePoint>) -> Vec<CoveragePoint> {
    if curve.len() <= CURVE_POINTS {
        return curve;
    }
    let last = curve.len() - 1;
    (0..CURVE_POINTS)
        .map(|i| curve[i * last / (CURVE_POINTS - 1)])
        .collect()
}

/// The reason sentence of review: the guarantee, how the threshold was chosen, and per arm the
/// share automated and reviewed with what review costs a day.
pub(crate) fn sentence(summary: &ReviewSummary, arms: &[ArmReport]) -> Option<String> {
    if summary.unavailable.is_some() {
        return None;
    }
    let s = &summary.spec;
    let per_arm: Vec<String> = arms
        .iter()
        .filter_map(|a| {
            let r = a.review.as_ref()?;
            let cost = a.cost.breakdown.review?;
            Some(format!(
                "`{}` automates {} and reviews {} ({} a day, {} a day)",
                a.arm,
                percent(r.coverage),
                percent(r.reviewed_share()),
                count(cost.reviews_per_day),
                usd(cost.daily_usd)
            ))
        })
        .collect();
    Some(format!(
        "With review (accuracy of automated answers at least {} with probability {}; thresholds \
         chosen on {} calibration items by {} testing, measured on the other {}; reviewed \
         answers count as right, the reviewer simulated by the gold label): {}. Quality, costs \
         and the verdict include review.",
        percent(s.target_accuracy),
        percent(1.0 - s.delta),
        summary.calibration_items,
        s.correction.as_str().replace('_', "-"),
        summary.test_items,
        per_arm.join("; ")
    ))
}

/// Rows of the review table, shared by the text, Markdown and HTML reports; `None` without
/// review.
pub(crate) fn rows(r: &crate::DecisionReport) -> Option<(Vec<&'static str>, Vec<Vec<String>>)> {
    r.review.as_ref().filter(|s| s.unavailable.is_none())?;
    let headers = vec![
        "arm",
        "threshold",
        "calibration: automated / wrong",
        "error bound",
        "test: automated",
        "accuracy automated",
        "reviews/day",
        "review $/day",
        "review staff h/day",
    ];
    let rows = r
        .arms
        .iter()
        .filter_map(|a| {
            let v = a.review.as_ref()?;
            let cost = a.cost.breakdown.review?;
            let chosen = v.selection.chosen;
            Some(vec![
                a.arm.clone(),
                chosen.map_or("none passed".to_owned(), |t| format!("{:.4}", t.threshold)),
                chosen.map_or("–".to_owned(), |t| {
                    format!("{} / {}", t.automated, t.errors)
                }),
                chosen.map_or("–".to_owned(), |t| format!("{:.3}", t.risk_bound)),
                percent(v.coverage),
                v.automated_accuracy
                    .map_or("–".to_owned(), crate::figures::quality),
                count(cost.reviews_per_day),
                usd(cost.daily_usd),
                crate::figures::hours(cost.staff_hours_per_day),
            ])
        })
        .collect();
    Some((headers, rows))
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
