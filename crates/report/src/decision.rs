//! The decision report: per-arm quality with a bootstrap CI, paired comparisons of the prompt
//! arm to beat against each fine-tune, the cost model at the declared traffic, break-even
//! volumes, and the verdict (stay, escalate or neither) with its reasons and what would change it.
//!
//! # The verdict rule
//!
//! The quality target says what is good enough; once an arm is good enough, money decides.
//!
//! 1. An arm *meets the target* when the mean of the decision metric over the eval items (failed
//!    or missing calls count 0) is at least `quality_target`. The point estimate decides; the CI
//!    and the paired tests are reported beside it so a reader sees how firm it is.
//! 2. Of the arms that meet the target, the **recommended arm** is the one with the lowest total
//!    cost over the horizon at the declared traffic. Ties go to a prompt arm (staying needs no
//!    migration), then to higher quality.
//! 3. The verdict is **stay** when that arm is a prompt arm, **escalate** when it is a fine-tune,
//!    and **neither** when no arm meets the target (then no arm is recommended, and the closest
//!    arm and its gap are named).
//!
//! So a fine-tune that beats a passing prompt arm on quality but costs more does not win (the
//! target already says what quality is needed), and a fine-tune that is cheaper and also passes
//! does win. When the prompt arms miss and a fine-tune passes, the fine-tune wins even if its
//! advantage is not statistically decisive; the reasons then say so plainly.
//!
//! The *prompt arm to beat* (the baseline of comparisons and break-even volumes) is the prompt arm
//! rule 2 would pick among prompt arms alone, or the best-scoring prompt arm when none passes.
//!
//! The sentences are written in `explain`; rendering lives in `render` and `html`; the arithmetic
//! in `cost` and `break_even`; the statistics in `scoring`.

use domain::{ArmKind, CostAssumptions, Decision, RunResults, RunStatus};
use serde::{Deserialize, Serialize};

use crate::break_even::BreakEven;
use crate::ceiling::{self, PromptCeiling};
use crate::cost::{self, ArmCost, ArmCostInputs, Measured, PricingUsed, Source};
use crate::explain::Explainer;
use crate::index::ResultIndex;
use crate::review::{ArmReview, ReviewSummary};

/// Bootstrap resamples and seed for every CI and paired test: scoring's defaults, so the report
/// and the leaderboard print the same intervals.
const BOOTSTRAP_RESAMPLES: usize = scoring::DEFAULT_RESAMPLES;
const BOOTSTRAP_SEED: u64 = scoring::DEFAULT_SEED;
/// Traffic multipliers the verdict is recomputed at.
pub const SENSITIVITY_FACTORS: [f64; 2] = [0.1, 10.0];
/// Slack for comparing a mean with the target, so 270/300 counts as 0.9.
pub(crate) const EPS: f64 = 1e-9;

/// What the report recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Stay with a prompt arm.
    Stay,
    /// Escalate to a fine-tune.
    Escalate,
    /// No arm meets the quality target.
    Neither,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Stay => "stay",
            Verdict::Escalate => "escalate",
            Verdict::Neither => "neither",
        }
    }
}

/// Everything `orchestrator report` shows, in every format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionReport {
    pub experiment: String,
    pub run_id: i64,
    pub run_status: RunStatus,
    /// The decision metric (a scorer id) and the quality it must reach.
    pub metric: String,
    pub quality_target: f64,
    /// Whether every score of the metric is 0 or 1 (then McNemar's test applies).
    pub binary_metric: bool,
    pub verdict: Verdict,
    /// The arm to ship; `None` when no arm meets the target.
    pub recommended_arm: Option<String>,
    /// Why, in plain sentences: the verdict, quality gaps and their significance, cost at the
    /// declared volume, time-to-ship.
    pub reasons: Vec<String>,
    /// What would change the verdict: traffic, quality gaps.
    pub would_change: Vec<String>,
    /// With `neither`: the arm closest to the target.
    pub closest: Option<Closest>,
    /// The prompt arm every fine-tune is compared with (see the module docs).
    pub baseline_prompt_arm: Option<String>,
    /// The fine-tune chosen the same way among fine-tunes: the one the HTML report sets
    /// against `baseline_prompt_arm` item by item.
    pub best_finetune_arm: Option<String>,
    /// The best prompt arm and what prompting tried to reach it; `None` without prompt arms.
    #[serde(default)]
    pub prompt_ceiling: Option<PromptCeiling>,
    /// Measured quality and the derived cost model, one per arm in run order.
    pub arms: Vec<ArmReport>,
    /// The baseline prompt arm against each fine-tune.
    pub break_even: Vec<BreakEven>,
    /// Each fine-tune (`a`) against the baseline prompt arm (`b`).
    pub comparisons: Vec<PairedComparison>,
    /// The verdict at other traffic levels.
    pub sensitivity: Vec<Sensitivity>,
    /// Every cost assumption, marked declared or default.
    pub assumptions: Vec<Assumption>,
    /// Things that make the numbers less trustworthy (failed items, unknown prices, …).
    pub warnings: Vec<String>,
    /// The run's `review:` and its calibration/test split; `None` without `review:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewSummary>,
    /// Every arm's cost and the verdict in each serving mode, the declared one first.
    #[serde(default)]
    pub serving: Vec<crate::serving::ModeOutcome>,
    /// The run's `bench-serving` measurements, by arm then batch size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serving_bench: Vec<domain::ServingBench>,
    /// Learning curves and noise sweeps (`train_sizes`, `few_shot_sizes`, `label_noise`).
    #[serde(default, skip_serializing_if = "crate::curves::Curves::is_empty")]
    pub curves: crate::curves::Curves,
    /// Eval items whose label is probably wrong; `None` when no arm stored a probability for
    /// every label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_issues: Option<crate::label_issues::LabelIssues>,
}

/// One arm: its measured quality, its raw measurements and the cost model derived from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub arm: String,
    pub kind: ArmKind,
    /// Mean of the decision metric over all eval items.
    pub quality: f64,
    /// 95% bootstrap percentile interval of `quality`.
    pub ci_low: f64,
    pub ci_high: f64,
    pub meets_target: bool,
    /// Derived: measurements × assumptions.
    #[serde(flatten)]
    pub cost: ArmCost,
    /// Measured in the run, before any assumption.
    pub measured: Measured,
    /// With `review:`: the threshold, coverage and risk–coverage curve. `quality` and its CI
    /// are then those of what ships (reviewed answers count right).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ArmReview>,
    /// The `bench-serving` measurement its serving cost uses (see `serving::chosen_bench`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_bench: Option<domain::ServingBench>,
    /// Its point on a learning curve or noise sweep, as the run stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<domain::SweepPoint>,
}

impl ArmReport {
    /// Whether the verdict may recommend it: every arm but a `label_noise` point, which
    /// measures tolerance to noise and is never a way to ship.
    pub fn shippable(&self) -> bool {
        !self
            .sweep
            .as_ref()
            .is_some_and(domain::SweepPoint::is_noisy)
    }
}

/// The arm nearest the target when none reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closest {
    pub arm: String,
    pub quality: f64,
    /// `quality_target − quality`.
    pub gap: f64,
}

/// `a` against `b` on the same items: `diff = quality(a) − quality(b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    pub a: String,
    pub b: String,
    pub quality_a: f64,
    pub quality_b: f64,
    pub diff: f64,
    /// 95% paired-bootstrap interval of `diff`.
    pub ci_low: f64,
    pub ci_high: f64,
    /// Two-sided paired-bootstrap p-value.
    pub p_value: f64,
    /// The interval excludes 0.
    pub decisive: bool,
    /// McNemar's exact test, for pass/fail metrics.
    pub mcnemar: Option<scoring::McNemar>,
}

/// The verdict if traffic were `factor ×` the declared one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    pub factor: f64,
    pub daily_requests: f64,
    pub verdict: Verdict,
    pub recommended_arm: Option<String>,
}

/// One cost assumption as the report used it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assumption {
    /// The `CostAssumptions` field name (the YAML key).
    pub name: String,
    pub value: serde_json::Value,
    pub unit: String,
    pub source: Source,
}

/// Builds the decision report for a run. `inputs` carries what the records cannot say: each
/// arm's pricing and which assumptions the spec declared (see [`ArmCostInputs`]).
pub fn decide(
    results: &RunResults,
    costs: &CostAssumptions,
    decision: &Decision,
    inputs: &ArmCostInputs,
) -> DecisionReport {
    let metric = decision.metric.as_str();
    let target = decision.quality_target;
    let index = ResultIndex::new(results);
    // Quality is computed without the calibration items of `review:`; costs on the whole run.
    let view = crate::review::quality_view(results);
    let quality_index = ResultIndex::new(&view);
    let binary = quality_index.is_binary(metric);
    let mut warnings = Vec::new();
    let names: Vec<&str> = results.arms.iter().map(|a| a.arm.as_str()).collect();
    let (review, arm_reviews) = match crate::review::review(results, metric, &names) {
        Some((summary, per_arm)) => (Some(summary), per_arm),
        None => (None, vec![None; names.len()]),
    };
    if let Some(why) = review.as_ref().and_then(|r| r.unavailable.as_ref()) {
        warnings.push(format!("No review routing: {why}."));
    }

    if !matches!(results.run.status, RunStatus::Completed) {
        warnings.push(format!(
            "Run {} is {}: arms may be incomplete, and unanswered items count 0.",
            results.run.id, results.run.status
        ));
    }
    warnings.extend(crate::settings::stored_input_warnings(results));
    if !quality_index.has_scores(metric) {
        warnings.push(format!(
            "No scores were recorded for the metric `{metric}`: every arm's quality is 0."
        ));
    }

    let mut per_arm_scores = Vec::with_capacity(results.arms.len());
    let mut arms = Vec::with_capacity(results.arms.len());
    for (info, arm_review) in results.arms.iter().zip(arm_reviews) {
        let xs = match &arm_review {
            Some(r) => {
                crate::review::system_values(&quality_index, &info.arm, metric, r.threshold())
            }
            None => quality_index.values(&info.arm, metric).0,
        };
        let (q, (ci_low, ci_high)) = if xs.is_empty() {
            (0.0, (0.0, 0.0))
        } else {
            (
                scoring::mean(&xs),
                scoring::bootstrap_ci(&xs, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
            )
        };
        let measured = cost::measure(results, &index, &info.arm);
        let (serving_bench, bench_warning) =
            crate::serving::chosen_bench(results, &info.arm, costs);
        warnings.extend(bench_warning);
        let parts = crate::serving::Parts {
            arm: &info.arm,
            kind: info.kind,
            measured: &measured,
            review: arm_review.as_ref(),
            bench: serving_bench.as_ref(),
        };
        let arm_cost = crate::serving::arm_cost(&parts, costs, inputs);
        warnings.extend(arm_warnings(
            &info.arm, info.kind, &measured, &arm_cost, results,
        ));
        per_arm_scores.push(xs);
        arms.push(ArmReport {
            arm: info.arm.clone(),
            kind: info.kind,
            quality: q,
            ci_low,
            ci_high,
            meets_target: q + EPS >= target,
            cost: arm_cost,
            measured,
            review: arm_review,
            serving_bench,
            sweep: info.sweep.clone(),
        });
    }

    let curves = crate::curves::curves(&crate::curves::CurveInputs {
        arms: &arms,
        scores: &per_arm_scores,
        target,
        labelling_minutes: costs.labelling_minutes_per_example,
        hourly_rate: costs.hourly_rate_usd,
    });
    let label_issues = crate::label_issues::label_issues(results, &index, &arms);
    let totals: Vec<f64> = arms.iter().map(|a| a.cost.horizon_total_usd).collect();
    let recommended = pick(&arms, &totals, target, |_| true);
    let baseline = baseline_of(&arms, &totals, target, ArmKind::Prompt);

    let mut comparisons = Vec::new();
    let mut break_even = Vec::new();
    if let Some(p) = baseline {
        for (f, arm) in arms.iter().enumerate() {
            if arm.kind != ArmKind::Finetune || !arm.shippable() {
                continue;
            }
            comparisons.push(paired(
                &arms[f],
                &per_arm_scores[f],
                &arms[p],
                &per_arm_scores[p],
                binary,
            ));
            break_even.push(crate::break_even::break_even(
                (&arms[p].arm, &arms[p].cost),
                (&arm.arm, &arm.cost),
                costs.horizon_days,
            ));
        }
    }

    let sensitivity = SENSITIVITY_FACTORS
        .iter()
        .map(|&factor| {
            let daily = costs.daily_requests * factor;
            let totals: Vec<f64> = arms
                .iter()
                .map(|a| a.cost.total_at(daily, costs.horizon_days))
                .collect();
            let pick = pick(&arms, &totals, target, |_| true);
            Sensitivity {
                factor,
                daily_requests: daily,
                verdict: verdict_of(&arms, pick),
                recommended_arm: pick.map(|i| arms[i].arm.clone()),
            }
        })
        .collect();

    let verdict = verdict_of(&arms, recommended);
    let closest = match verdict {
        Verdict::Neither => best_quality(&arms, &totals, |_| true).map(|i| Closest {
            arm: arms[i].arm.clone(),
            quality: arms[i].quality,
            gap: target - arms[i].quality,
        }),
        _ => None,
    };

    let mut report = DecisionReport {
        experiment: results.run.experiment.clone(),
        run_id: results.run.id,
        run_status: results.run.status,
        metric: metric.to_owned(),
        quality_target: target,
        binary_metric: binary,
        verdict,
        recommended_arm: recommended.map(|i| arms[i].arm.clone()),
        reasons: Vec::new(),
        would_change: Vec::new(),
        closest,
        baseline_prompt_arm: baseline.map(|i| arms[i].arm.clone()),
        best_finetune_arm: baseline_of(&arms, &totals, target, ArmKind::Finetune)
            .map(|i| arms[i].arm.clone()),
        prompt_ceiling: ceiling::prompt_ceiling(&arms, &totals, results),
        arms,
        break_even,
        comparisons,
        sensitivity,
        assumptions: crate::settings::assumptions(costs, inputs, review.is_some()),
        warnings,
        review,
        serving: Vec::new(),
        serving_bench: results.serving_bench.clone(),
        curves,
        label_issues,
    };
    report.serving = crate::serving::both_modes(&report.arms, costs, inputs, target);
    let (reasons, would_change) = Explainer {
        r: &report,
        costs,
        items: quality_index.items.len(),
    }
    .explain(recommended, baseline);
    report.reasons = reasons;
    let curve_sentences = crate::curves::sentences(&report.curves, target, metric);
    report.reasons.extend(curve_sentences);
    if let Some(c) = &report.prompt_ceiling {
        report.reasons.push(ceiling::sentence(c, metric));
    }
    if let Some(s) = report
        .review
        .as_ref()
        .and_then(|r| crate::review::sentence(r, &report.arms))
    {
        report.reasons.push(s);
    }
    report.would_change = would_change;
    report
        .would_change
        .extend(crate::serving::sentence(&report));
    report
        .warnings
        .extend(crate::serving::window_warning(&report, costs));
    report
}

/// Whether `report --fail-under` should fail: the recommended arm's quality is below
/// `threshold` (default: the quality target), or no arm is recommended.
pub fn fail_under(report: &DecisionReport, threshold: Option<f64>) -> bool {
    let threshold = threshold.unwrap_or(report.quality_target);
    let recommended = report
        .recommended_arm
        .as_ref()
        .and_then(|name| report.arms.iter().find(|a| &a.arm == name));
    match recommended {
        Some(arm) => arm.quality + EPS < threshold,
        None => true,
    }
}

fn arm_warnings(
    arm: &str,
    kind: ArmKind,
    m: &Measured,
    c: &ArmCost,
    results: &RunResults,
) -> Vec<String> {
    let mut w = Vec::new();
    if m.failed > 0 {
        w.push(format!(
            "`{arm}`: {} of {} items failed; they count 0.",
            m.failed, m.items
        ));
    }
    if m.unanswered > 0 {
        w.push(format!(
            "`{arm}`: {} of {} items are not answered yet (the run is not finished); they count 0.",
            m.unanswered, m.items
        ));
    }
    match c.breakdown.pricing {
        PricingUsed::Hosted { pricing: None, .. } if m.mean_uncached_cost_usd.is_none() => {
            w.push(format!(
                "`{arm}`: no price and no uncached call, so its cost per request is unknown (counted as $0)."
            ))
        }
        PricingUsed::Compute {
            source: Source::Default,
            cost_per_hour,
        } => w.push(format!(
            "`{arm}`: no compute price given or recorded; assumed the default ${cost_per_hour}/h."
        )),
        _ => {}
    }
    if kind == ArmKind::Finetune {
        match results.training.iter().find(|t| t.arm == arm) {
            None => w.push(format!(
                "`{arm}`: no training record, so training time and cost count 0."
            )),
            Some(t) if t.status != domain::TrainingStatus::Completed => w.push(format!(
                "`{arm}`: training is `{}`, not completed.",
                t.status
            )),
            Some(_) => {}
        }
    }
    w
}

/// Rule 2 of the module docs: among allowed arms that meet the target, the cheapest over the
/// horizon (`totals`), prompt arms first on ties, then higher quality, then run order. Arms
/// that are not [`ArmReport::shippable`] are never picked.
pub(crate) fn pick(
    arms: &[ArmReport],
    totals: &[f64],
    target: f64,
    allow: impl Fn(usize) -> bool,
) -> Option<usize> {
    (0..arms.len())
        .filter(|&i| allow(i) && arms[i].shippable() && arms[i].quality + EPS >= target)
        .min_by(|&i, &j| {
            totals[i]
                .total_cmp(&totals[j])
                .then_with(|| kind_rank(arms[i].kind).cmp(&kind_rank(arms[j].kind)))
                .then_with(|| arms[j].quality.total_cmp(&arms[i].quality))
                .then_with(|| i.cmp(&j))
        })
}

fn kind_rank(kind: ArmKind) -> u8 {
    match kind {
        ArmKind::Prompt => 0,
        ArmKind::Finetune => 1,
    }
}

/// The highest-quality allowed (and shippable) arm; ties go to the cheaper one.
pub(crate) fn best_quality(
    arms: &[ArmReport],
    totals: &[f64],
    allow: impl Fn(usize) -> bool,
) -> Option<usize> {
    (0..arms.len())
        .filter(|&i| allow(i) && arms[i].shippable())
        .min_by(|&i, &j| {
            arms[j]
                .quality
                .total_cmp(&arms[i].quality)
                .then_with(|| totals[i].total_cmp(&totals[j]))
                .then_with(|| i.cmp(&j))
        })
}

/// The arm of `kind` the rule would pick among that kind alone, else its best-scoring arm.
fn baseline_of(arms: &[ArmReport], totals: &[f64], target: f64, kind: ArmKind) -> Option<usize> {
    pick(arms, totals, target, |i| arms[i].kind == kind)
        .or_else(|| best_quality(arms, totals, |i| arms[i].kind == kind))
}

pub(crate) fn verdict_of(arms: &[ArmReport], pick: Option<usize>) -> Verdict {
    match pick.map(|i| arms[i].kind) {
        Some(ArmKind::Prompt) => Verdict::Stay,
        Some(ArmKind::Finetune) => Verdict::Escalate,
        None => Verdict::Neither,
    }
}

fn paired(a: &ArmReport, xa: &[f64], b: &ArmReport, xb: &[f64], binary: bool) -> PairedComparison {
    let (diff, ci_low, ci_high, p) = if xa.is_empty() {
        (0.0, 0.0, 0.0, 1.0)
    } else {
        let d = scoring::paired_bootstrap(xa, xb, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
        (d.diff, d.ci_low, d.ci_high, d.p_value)
    };
    let mcnemar = (binary && !xa.is_empty()).then(|| {
        let pa: Vec<bool> = xa.iter().map(|&x| x > 0.5).collect();
        let pb: Vec<bool> = xb.iter().map(|&x| x > 0.5).collect();
        scoring::mcnemar(&pa, &pb)
    });
    PairedComparison {
        a: a.arm.clone(),
        b: b.arm.clone(),
        quality_a: a.quality,
        quality_b: b.quality,
        diff,
        ci_low,
        ci_high,
        p_value: p,
        decisive: ci_low > 0.0 || ci_high < 0.0,
        mcnemar,
    }
}
