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

use domain::{ArmKind, CostAssumptions, ServingAssumptions, ServingMode};
use serde::{Deserialize, Serialize};

use crate::cost::{self, ArmCost, ArmCostInputs, Measured, PricingUsed};
use crate::decision::{ArmReport, DecisionReport, Verdict, pick, verdict_of};
use crate::explain::describe_named;
use crate::figures::usd;
use crate::review::ArmReview;

/// The cost model of one arm under `costs` (whose `serving.mode` decides), review included.
pub(crate) fn arm_cost(
    arm: &str,
    kind: ArmKind,
    measured: &Measured,
    review: Option<&ArmReview>,
    costs: &CostAssumptions,
    inputs: &ArmCostInputs,
) -> ArmCost {
    let pricing = cost::pricing_for(inputs, arm, kind, measured, costs);
    let mut c = cost::arm_cost(kind, measured, pricing, costs);
    if costs.serving.mode == ServingMode::Batch {
        c = in_batches(c, kind, measured, costs);
    }
    match review {
        Some(r) => c.with_review(crate::review::review_cost(r.reviewed_share, costs), costs),
        None => c,
    }
}

/// Self-hosted serving by the hour instead of 24/7 (hosted batch rates come from
/// `cost::pricing_for`).
fn in_batches(mut c: ArmCost, kind: ArmKind, m: &Measured, costs: &CostAssumptions) -> ArmCost {
    let PricingUsed::Compute { cost_per_hour, .. } = c.breakdown.pricing else {
        return c;
    };
    if m.mean_compute_seconds <= 0.0 {
        return c;
    }
    let hourly = match kind {
        ArmKind::Finetune => costs.finetune_hourly_usd,
        ArmKind::Prompt => cost_per_hour,
    };
    let u = costs.serving.utilisation;
    let per_request = m.mean_compute_seconds / u * hourly / 3600.0;
    let months = costs.horizon_days / cost::DAYS_PER_MONTH;
    let traffic = costs.horizon_days * costs.daily_requests * per_request;
    let saved_fixed = c.breakdown.serving_monthly_usd;
    c.cost_per_request_usd = per_request;
    c.cost_per_request_basis = format!(
        "measured {:.3} compute s per request ÷ utilisation {u} × ${hourly}/h, served in batches \
         ({:.1} machine-hours a day)",
        m.mean_compute_seconds,
        machine_hours_per_day(m, costs)
    );
    c.horizon_total_usd += traffic - c.breakdown.traffic_usd - months * saved_fixed;
    c.fixed_monthly_usd -= saved_fixed;
    c.breakdown.serving_monthly_usd = 0.0;
    c.breakdown.traffic_usd = traffic;
    c.staff_share = if c.horizon_total_usd > 0.0 {
        c.breakdown.staff_horizon_usd / c.horizon_total_usd
    } else {
        0.0
    };
    c
}

/// Machine-hours a day a self-hosted arm needs in batches at the declared traffic.
pub fn machine_hours_per_day(m: &Measured, costs: &CostAssumptions) -> f64 {
    costs.daily_requests * m.mean_compute_seconds / 3600.0 / costs.serving.utilisation
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
        arm_cost(
            &a.arm,
            a.kind,
            &a.measured,
            a.review.as_ref(),
            &other_costs,
            inputs,
        )
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
