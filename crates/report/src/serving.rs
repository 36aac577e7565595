//! Serving mode in the cost model (`costs.serving.mode`): what an arm costs in real time and in
//! batches, and the verdict under the mode the spec did not choose, so the report can say when
//! the answer depends on it.
//!
//! - Real time (the default): hosted calls at list price (batch rates only where the provider or
//!   `costs.batch_api` says so); a fine-tune on a serving machine kept up 24/7
//!   (`finetune_hourly_usd × 730` a month) plus its measured compute per request; a local prompt
//!   arm at its measured compute per request.
//! - Batch: hosted calls at batch-API rates; a self-hosted model (fine-tune or local prompt arm)
//!   pays only for the machine hours its traffic needs at the throughput measured in the run:
//!   `mean compute seconds ÷ utilisation` per request at the serving machine's hourly price
//!   (`finetune_hourly_usd` for a fine-tune, the device's `cost_per_hour` for a local prompt arm),
//!   and no 24/7 machine. Upkeep hours stay.
//!
//! The arithmetic of each mode is `cost::arm_cost`'s (which reads `costs.serving.mode`); this
//! module feeds it a `bench-serving` measurement when there is one, adds review, and recosts
//! every arm under the other mode.

use domain::{ArmKind, CostAssumptions, RunResults, ServingAssumptions, ServingBench, ServingMode};
use serde::{Deserialize, Serialize};

use crate::cost::{self, ArmCost, ArmCostInputs, Measured, PricingUsed};
use crate::decision::{ArmReport, DecisionReport, Verdict, pick, verdict_of};
use crate::explain::describe_named;
use crate::figures::usd;

/// What the cost model of one arm reads.
pub(crate) struct Parts<'a> {
    pub arm: &'a str,
    pub kind: ArmKind,
    pub measured: &'a Measured,
    pub review: Option<&'a crate::review::ArmReview>,
    pub bench: Option<&'a ServingBench>,
}

impl<'a> Parts<'a> {
    pub(crate) fn of(a: &'a ArmReport) -> Self {
        Parts {
            arm: &a.arm,
            kind: a.kind,
            measured: &a.measured,
            review: a.review.as_ref(),
            bench: a.serving_bench.as_ref(),
        }
    }
}

/// The cost model of one arm under `costs` (whose `serving.mode` decides), review included.
/// With a `bench-serving` measurement, a self-hosted arm's machine time per request is
/// `1 ÷ items per second` at the chosen batch size instead of the run's compute seconds.
pub(crate) fn arm_cost(a: &Parts<'_>, costs: &CostAssumptions, inputs: &ArmCostInputs) -> ArmCost {
    let (arm, kind) = (a.arm, a.kind);
    let mut m = a.measured.clone();
    let pricing = cost::pricing_for(inputs, arm, kind, &m, costs);
    let benched = a
        .bench
        .filter(|_| matches!(pricing, PricingUsed::Compute { .. }) && m.mean_compute_seconds > 0.0);
    if let Some(b) = benched {
        m.mean_compute_seconds = 1.0 / b.items_per_second;
    }
    let mut c = cost::arm_cost(kind, &m, pricing, costs);
    if let Some(b) = benched {
        c.cost_per_request_basis += &format!(
            " (bench-serving: batch size {}, {:.2} items/s, p95 {:.0} ms)",
            b.batch_size, b.items_per_second, b.latency_p95_ms
        );
    }
    let review = a.review;
    match review {
        Some(r) => c.with_review(crate::review::review_cost(r.reviewed_share(), costs), costs),
        None => c,
    }
}

/// The measurement of `arm` the cost model uses: the fastest batch size whose p95 latency is
/// within `latency_slo_ms` (any, without one); when none is, the fastest of the smallest
/// latency, with a warning.
pub(crate) fn chosen_bench(
    results: &RunResults,
    arm: &str,
    costs: &CostAssumptions,
) -> (Option<ServingBench>, Option<String>) {
    let rows: Vec<&ServingBench> = results
        .serving_bench
        .iter()
        .filter(|b| b.arm == arm)
        .collect();
    let fastest = |rows: &mut dyn Iterator<Item = &&ServingBench>| {
        rows.max_by(|x, y| x.items_per_second.total_cmp(&y.items_per_second))
            .map(|b| (*b).clone())
    };
    let slo = costs.serving.latency_slo_ms;
    let within = fastest(
        &mut rows
            .iter()
            .filter(|b| slo.is_none_or(|s| b.latency_p95_ms <= s)),
    );
    if within.is_some() || rows.is_empty() {
        return (within, None);
    }
    let best = rows
        .iter()
        .min_by(|x, y| x.latency_p95_ms.total_cmp(&y.latency_p95_ms))
        .map(|b| (*b).clone());
    let warning = best.as_ref().map(|b| {
        format!(
            "`{arm}`: no measured batch size keeps p95 latency within the {} ms SLO; costed at \
             batch size {} (p95 {:.0} ms).",
            slo.unwrap_or_default(),
            b.batch_size,
            b.latency_p95_ms
        )
    });
    (best, warning)
}

/// The `bench-serving` table: batch size, items per second, p50 and p95 latency.
pub fn render_serving_bench(rows: &[ServingBench]) -> String {
    let mut out = format!(
        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>7}\n",
        "arm", "batch", "items/s", "p50 ms", "p95 ms", "items"
    );
    for b in rows {
        out.push_str(&format!(
            "{:<24} {:>10} {:>10.2} {:>10.0} {:>10.0} {:>7}\n",
            b.arm, b.batch_size, b.items_per_second, b.latency_p50_ms, b.latency_p95_ms, b.items
        ));
    }
    out
}

/// Rows of the report's benchmark table: every measurement, the one each arm is costed at
/// marked; `None` without measurements.
pub(crate) fn bench_rows(r: &DecisionReport) -> Option<(Vec<&'static str>, Vec<Vec<String>>)> {
    if r.serving_bench.is_empty() {
        return None;
    }
    let headers = vec![
        "arm",
        "batch size",
        "items/s",
        "p50 ms",
        "p95 ms",
        "costed at",
    ];
    let used = |b: &ServingBench| {
        r.arms.iter().any(|a| {
            a.serving_bench
                .as_ref()
                .is_some_and(|u| u.arm == b.arm && u.batch_size == b.batch_size)
        })
    };
    let rows = r
        .serving_bench
        .iter()
        .map(|b| {
            vec![
                b.arm.clone(),
                b.batch_size.to_string(),
                format!("{:.2}", b.items_per_second),
                format!("{:.0}", b.latency_p50_ms),
                format!("{:.0}", b.latency_p95_ms),
                if used(b) { "yes" } else { "" }.to_owned(),
            ]
        })
        .collect();
    Some((headers, rows))
}

/// One serving mode: each arm's cost and the verdict under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeOutcome {
    pub mode: ServingMode,
    /// Whether this is the mode the spec declared (or the default).
    pub declared: bool,
    /// Per arm, in run order.
    pub arms: Vec<ModeArm>,
    pub verdict: Verdict,
    pub recommended_arm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeArm {
    pub arm: String,
    pub cost_per_request_usd: f64,
    pub fixed_monthly_usd: f64,
    pub horizon_total_usd: f64,
}

/// The declared mode (from the arms as costed) and the other one, recosted.
pub(crate) fn both_modes(
    arms: &[ArmReport],
    costs: &CostAssumptions,
    inputs: &ArmCostInputs,
    target: f64,
) -> Vec<ModeOutcome> {
    let declared = outcome(arms, costs.serving.mode, true, target, |a| a.cost.clone());
    let mut other_costs = costs.clone();
    other_costs.serving.mode = costs.serving.mode.other();
    let other = outcome(arms, other_costs.serving.mode, false, target, |a| {
        arm_cost(&Parts::of(a), &other_costs, inputs)
    });
    vec![declared, other]
}

fn outcome(
    arms: &[ArmReport],
    mode: ServingMode,
    declared: bool,
    target: f64,
    cost_of: impl Fn(&ArmReport) -> ArmCost,
) -> ModeOutcome {
    let costs: Vec<ArmCost> = arms.iter().map(cost_of).collect();
    let totals: Vec<f64> = costs.iter().map(|c| c.horizon_total_usd).collect();
    let pick = pick(arms, &totals, target, |_| true);
    ModeOutcome {
        mode,
        declared,
        arms: arms
            .iter()
            .zip(&costs)
            .map(|(a, c)| ModeArm {
                arm: a.arm.clone(),
                cost_per_request_usd: c.cost_per_request_usd,
                fixed_monthly_usd: c.fixed_monthly_usd,
                horizon_total_usd: c.horizon_total_usd,
            })
            .collect(),
        verdict: verdict_of(arms, pick),
        recommended_arm: pick.map(|i| arms[i].arm.clone()),
    }
}

/// What the mode the spec did not choose would do to the verdict, in words; `None` when the run
/// has no arms.
pub(crate) fn sentence(r: &DecisionReport) -> Option<String> {
    let declared = r.serving.iter().find(|m| m.declared)?;
    let other = r.serving.iter().find(|m| !m.declared)?;
    let how = match other.mode {
        ServingMode::Batch => {
            "Served in batches (hosted calls at batch-API rates, self-hosted \
                               models only for the machine-hours their traffic needs)"
        }
        ServingMode::Realtime => {
            "Served in real time (hosted calls at list price, self-hosted \
                                  models on a machine kept up 24/7)"
        }
    };
    let total = |m: &ModeOutcome| {
        let name = m.recommended_arm.as_deref()?;
        let a = m.arms.iter().find(|a| a.arm == name)?;
        Some(format!(" ({} over the horizon)", usd(a.horizon_total_usd)))
    };
    let verdict = describe_named(other.verdict, other.recommended_arm.as_deref());
    Some(if other.recommended_arm == declared.recommended_arm {
        format!(
            "{how}, the verdict would be the same: {verdict}{}.",
            total(other).unwrap_or_default()
        )
    } else {
        format!(
            "{how}, the verdict would change: {verdict}{}.",
            total(other).unwrap_or_default()
        )
    })
}

/// Rows of the side-by-side table of both modes, shared by the text, Markdown and HTML
/// reports: per arm the cost per request and horizon total in each mode, then each verdict.
pub(crate) fn rows(r: &DecisionReport) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let [first, second] = &r.serving[..] else {
        return None;
    };
    let label = |m: &ModeOutcome| {
        let mark = if m.declared { " (declared)" } else { "" };
        format!("{}{mark}", m.mode.as_str())
    };
    let headers = vec![
        "arm".to_owned(),
        format!("{}: $/request", label(first)),
        format!("{}: horizon total", label(first)),
        format!("{}: $/request", label(second)),
        format!("{}: horizon total", label(second)),
    ];
    let mut rows: Vec<Vec<String>> = first
        .arms
        .iter()
        .zip(&second.arms)
        .map(|(a, b)| {
            vec![
                a.arm.clone(),
                usd(a.cost_per_request_usd),
                usd(a.horizon_total_usd),
                usd(b.cost_per_request_usd),
                usd(b.horizon_total_usd),
            ]
        })
        .collect();
    let verdict = |m: &ModeOutcome| describe_named(m.verdict, m.recommended_arm.as_deref());
    rows.push(vec![
        "verdict".to_owned(),
        String::new(),
        verdict(first),
        String::new(),
        verdict(second),
    ]);
    Some((headers, rows))
}

/// A warning when batches are declared with a window shorter than hosted batch APIs promise.
pub(crate) fn window_warning(r: &DecisionReport, costs: &CostAssumptions) -> Option<String> {
    let s = &costs.serving;
    let hosted = r
        .arms
        .iter()
        .any(|a| matches!(a.cost.breakdown.pricing, PricingUsed::Hosted { .. }));
    (s.mode == ServingMode::Batch
        && hosted
        && s.batch_window_hours < ServingAssumptions::BATCH_API_WINDOW_HOURS)
        .then(|| {
            format!(
                "`batch_window_hours` is {}, but hosted batch APIs promise results only within 24 h \
                 (most Anthropic batches finish within an hour): hosted arms may miss the window.",
                s.batch_window_hours
            )
        })
}

#[cfg(test)]
#[path = "serving_tests.rs"]
mod tests;
