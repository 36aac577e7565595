//! The cost model of the decision report, computed on what a run measured plus what the spec
//! assumes: per-request cost, upfront cost, fixed monthly cost, the total over the horizon,
//! time-to-ship, and the share of the total that is staff time.
//!
//! Everything here is arithmetic on plain records, so every figure can be checked by hand. It
//! deliberately does not choose an arm (`decision` does) nor format numbers for people (`render`).
//! Measured inputs ([`Measured`]) and declared ones ([`CostAssumptions`], [`ArmPricing`]) stay in
//! separate types so a report can always show which is which.

use std::collections::{BTreeMap, BTreeSet};

use domain::{ArmKind, CallRecord, ComputeSpec, CostAssumptions, Pricing, RunResults};
use serde::{Deserialize, Serialize};

use crate::index::ResultIndex;
use crate::review::ReviewCost;

/// Hours a 24/7 server runs in a month (8,760 / 12).
pub const SERVING_HOURS_PER_MONTH: f64 = 730.0;
/// Days in an average month (365.25 / 12), to turn the horizon into months.
pub const DAYS_PER_MONTH: f64 = 30.4375;
/// How one arm is paid for, as the run stored it with the arm (`ArmInfo::pricing`): `Hosted`
/// with its price, or `Compute` with its device's `cost_per_hour`. The rule that resolved it is
/// `domain`'s, so it exists once.
pub use domain::{ArmPricing, BATCH_API_PRICE_FACTOR};

/// What the decision report needs beyond `RunResults`' calls, `CostAssumptions` and `Decision`.
/// Every part is optional: without it the model infers what it can from the run and says so.
/// [`ArmCostInputs::from_results`] reads it from what the run stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmCostInputs {
    /// Pricing per arm name. A missing arm is inferred: compute-priced when its calls recorded
    /// compute seconds, hosted otherwise.
    pub arms: BTreeMap<String, ArmPricing>,
    /// Names of the `CostAssumptions` fields the spec set explicitly (e.g. `daily_requests`).
    /// `None` when unknown: a field equal to its default is then shown as a default.
    pub declared: Option<BTreeSet<String>>,
}

impl ArmCostInputs {
    /// What the run stored: each arm's pricing, and the cost assumptions its spec declared.
    pub fn from_results(results: &RunResults) -> Self {
        ArmCostInputs {
            arms: results
                .arms
                .iter()
                .filter_map(|a| a.pricing.map(|p| (a.arm.clone(), p)))
                .collect(),
            declared: results
                .run
                .settings
                .as_ref()
                .and_then(|s| s.declared_costs.clone()),
        }
    }

    /// Adds the pricing of one arm.
    pub fn with_arm(mut self, arm: impl Into<String>, pricing: ArmPricing) -> Self {
        self.arms.insert(arm.into(), pricing);
        self
    }
}

/// Where a figure that is not measured came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Written in the spec.
    Declared,
    /// Not in the spec: the documented default.
    Default,
    /// Not in the spec: derived from the run's own records.
    Inferred,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Declared => "declared",
            Source::Default => "default",
            Source::Inferred => "inferred",
        }
    }
}

/// What one arm's records say, before any assumption is applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Eval items of the run.
    pub items: usize,
    /// Items the arm answered without error.
    pub answered: usize,
    /// Items whose call failed; they count 0 in quality.
    pub failed: usize,
    /// Items not asked yet (a run that is not finished); they count 0 in quality too.
    #[serde(default)]
    pub unanswered: usize,
    /// Answers that came from the response cache (free this time, not in production).
    pub cache_hits: usize,
    /// What the eval cost, summed over its calls.
    pub eval_spend_usd: f64,
    /// Mean tokens of the successful calls.
    pub mean_prompt_tokens: f64,
    pub mean_completion_tokens: f64,
    /// Mean local compute seconds of the successful calls (0 for hosted arms).
    pub mean_compute_seconds: f64,
    /// Mean recorded cost of the successful calls that were not cache hits; `None` when none.
    pub mean_uncached_cost_usd: Option<f64>,
    /// Recorded dollars per compute hour (cost ÷ compute seconds), when compute was recorded.
    pub recorded_cost_per_hour: Option<f64>,
    /// Machine time of the eval: compute seconds for local arms; for hosted arms the summed call
    /// latency, capped at the run's wall time (calls overlap, so this is an upper bound).
    pub eval_machine_seconds: f64,
    /// Training time of a fine-tune.
    pub train_seconds: Option<f64>,
    /// The training examples a fine-tune learned from (its sweep point); `None` for prompt
    /// arms and for fine-tunes stored before sweeps existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_examples: Option<usize>,
    /// What the prompt search of an optimised arm cost (`optimize:`; its candidates' dev
    /// calls), in dollars and machine seconds; 0 for every other arm. Both count in upfront
    /// cost and time-to-ship, like training does for a fine-tune.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub search_spend_usd: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub search_machine_seconds: f64,
    /// Latency percentiles of successful calls (cache hits left out when others exist).
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Measured {
    /// Whether the arm's calls ran on local compute.
    pub fn ran_locally(&self) -> bool {
        self.mean_compute_seconds > 0.0
    }
}

/// Measures `arm` in `results` (indexed by `index`): counts, spend, means and latency
/// percentiles.
pub(crate) fn measure(results: &RunResults, index: &ResultIndex<'_>, arm: &str) -> Measured {
    let calls = index.arm_calls(arm);
    let ok = index.ok_calls(arm);
    let uncached: Vec<_> = ok.iter().filter(|c| !c.cache_hit).collect();
    let items = index.items.len();
    let mean = |f: &dyn Fn(&CallRecord) -> f64| {
        if ok.is_empty() {
            0.0
        } else {
            ok.iter().map(|c| f(c)).sum::<f64>() / ok.len() as f64
        }
    };
    let compute_total: f64 = calls.iter().map(|c| c.compute_seconds).sum();
    let cost_total: f64 = calls.iter().map(|c| c.cost_usd).sum();
    let latency_total: f64 = calls.iter().map(|c| c.latency_ms).sum::<f64>() / 1000.0;
    let wall = results
        .run
        .finished_ms
        .map(|end| (end - results.run.started_ms).max(0) as f64 / 1000.0);
    let eval_machine_seconds = if compute_total > 0.0 {
        compute_total
    } else {
        wall.map_or(latency_total, |w| latency_total.min(w))
    };
    let search = search_spend(results, arm);
    let latencies = index.latencies(arm);
    let (latency_p50_ms, latency_p95_ms) = if latencies.is_empty() {
        (None, None)
    } else {
        (
            Some(scoring::percentile(&latencies, 50.0)),
            Some(scoring::percentile(&latencies, 95.0)),
        )
    };
    Measured {
        items,
        answered: ok.len(),
        failed: items.saturating_sub(ok.len() + index.unanswered(arm)),
        unanswered: index.unanswered(arm),
        cache_hits: calls.iter().filter(|c| c.cache_hit).count(),
        eval_spend_usd: cost_total,
        mean_prompt_tokens: mean(&|c| f64::from(c.prompt_tokens)),
        mean_completion_tokens: mean(&|c| f64::from(c.completion_tokens)),
        mean_compute_seconds: mean(&|c| c.compute_seconds),
        mean_uncached_cost_usd: (!uncached.is_empty())
            .then(|| uncached.iter().map(|c| c.cost_usd).sum::<f64>() / uncached.len() as f64),
        recorded_cost_per_hour: (compute_total > 0.0).then(|| cost_total / compute_total * 3600.0),
        eval_machine_seconds,
        train_seconds: results
            .training
            .iter()
            .find(|t| t.arm == arm)
            .map(|t| t.train_seconds),
        train_examples: results
            .arms
            .iter()
            .find(|a| a.arm == arm && a.kind == ArmKind::Finetune)
            .and_then(|a| a.sweep.as_ref())
            .map(|s| s.examples),
        latency_p50_ms,
        latency_p95_ms,
        search_spend_usd: search.cost_usd,
        search_machine_seconds: search.machine_seconds,
    }
}

/// Calls, dollars and machine seconds of the prompt search behind optimised arm `arm`: the
/// calls of its candidates (`arm~cNN`). Machine time is compute seconds for local candidates
/// and summed latency for hosted ones (an upper bound: calls overlap).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct SearchSpend {
    pub calls: usize,
    pub cost_usd: f64,
    pub machine_seconds: f64,
}

pub(crate) fn search_spend(results: &RunResults, arm: &str) -> SearchSpend {
    let prefix = format!("{arm}{}", domain::CANDIDATE_SEPARATOR);
    let mut out = SearchSpend::default();
    for c in results.calls.iter().filter(|c| c.arm.starts_with(&prefix)) {
        out.calls += 1;
        out.cost_usd += c.cost_usd;
        out.machine_seconds += if c.compute_seconds > 0.0 {
            c.compute_seconds
        } else {
            c.latency_ms / 1000.0
        };
    }
    out
}

/// The price actually applied to an arm, with where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PricingUsed {
    /// Per-token price (`None`: unknown, the recorded call cost was used); `batch_api` halves it.
    Hosted {
        pricing: Option<Pricing>,
        batch_api: bool,
    },
    /// Dollars per machine hour, and where that rate came from.
    Compute { cost_per_hour: f64, source: Source },
}

/// The cost model's result for one arm. Every field is derived: measurements times assumptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmCost {
    /// What serving one request costs, in dollars.
    pub cost_per_request_usd: f64,
    /// How `cost_per_request_usd` was computed, in words.
    pub cost_per_request_basis: String,
    /// Paid once before shipping: staff hours, training and the eval itself.
    pub upfront_usd: f64,
    /// Paid every month whatever the traffic: 24/7 serving and upkeep of a fine-tune.
    pub fixed_monthly_usd: f64,
    /// `upfront + horizon_days × daily_requests × cost_per_request + months × fixed_monthly`.
    pub horizon_total_usd: f64,
    /// Declared staff hours plus measured machine hours (eval and training).
    pub time_to_ship_hours: f64,
    /// Staff dollars over the horizon ÷ `horizon_total_usd` (0 when the total is 0).
    pub staff_share: f64,
    pub breakdown: CostBreakdown,
}

/// The parts `ArmCost`'s totals are made of, so a reader can redo the sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostBreakdown {
    pub pricing: PricingUsed,
    /// Staff hours before shipping × hourly rate.
    pub staff_upfront_usd: f64,
    /// Training seconds × compute price (fine-tunes).
    pub train_usd: f64,
    /// Measured spend of the eval run.
    pub eval_spend_usd: f64,
    /// `finetune_hourly_usd × 730` (fine-tunes).
    pub serving_monthly_usd: f64,
    /// `mlops_hours_per_month × hourly_rate_usd` (fine-tunes).
    pub upkeep_monthly_usd: f64,
    /// Traffic cost over the horizon: `horizon_days × daily_requests × cost_per_request`.
    pub traffic_usd: f64,
    /// All staff dollars over the horizon (upfront hours and monthly upkeep).
    pub staff_horizon_usd: f64,
    /// Declared staff hours before shipping.
    pub human_hours: f64,
    /// Measured machine hours before shipping (eval and training).
    pub machine_hours: f64,
    /// Human review of low-confidence answers (`review:`), included in the per-request cost,
    /// the traffic cost and the staff dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewCost>,
}

impl ArmCost {
    /// The part of the horizon total that does not depend on traffic:
    /// `upfront + (horizon_days / 30.4375) × fixed_monthly`.
    pub fn volume_independent(&self, horizon_days: f64) -> f64 {
        self.upfront_usd + horizon_days / DAYS_PER_MONTH * self.fixed_monthly_usd
    }

    /// Adds human review: `review.per_request_usd` to every request, so to the traffic cost
    /// and the horizon total (and to staff dollars: reviews are staff time).
    pub fn with_review(mut self, review: ReviewCost, costs: &CostAssumptions) -> Self {
        let horizon = costs.horizon_days * costs.daily_requests * review.per_request_usd;
        self.cost_per_request_usd += review.per_request_usd;
        self.cost_per_request_basis += &format!(
            ", + review of {:.1}% of requests at ${:.4} each",
            review.reviewed_share * 100.0,
            review.cost_per_review_usd
        );
        self.horizon_total_usd += horizon;
        self.breakdown.traffic_usd += horizon;
        self.breakdown.staff_horizon_usd += horizon;
        self.staff_share = if self.horizon_total_usd > 0.0 {
            self.breakdown.staff_horizon_usd / self.horizon_total_usd
        } else {
            0.0
        };
        self.breakdown.review = Some(review);
        self
    }

    /// The horizon total at another traffic level.
    pub fn total_at(&self, daily_requests: f64, horizon_days: f64) -> f64 {
        self.volume_independent(horizon_days)
            + horizon_days * daily_requests * self.cost_per_request_usd
    }
}

/// Resolves the pricing of `arm`: the declared one, else inferred from its records.
pub fn pricing_for(
    inputs: &ArmCostInputs,
    arm: &str,
    kind: ArmKind,
    measured: &Measured,
    costs: &CostAssumptions,
) -> PricingUsed {
    let batch = costs.batch_api || costs.serving.mode == domain::ServingMode::Batch;
    match inputs.arms.get(arm) {
        // Batch rates in production when the provider says so, or the cost assumptions do
        // (`batch_api`, or serving in batches).
        Some(ArmPricing::Hosted { pricing, batch_api }) => PricingUsed::Hosted {
            pricing: *pricing,
            batch_api: *batch_api || batch,
        },
        Some(ArmPricing::Compute { cost_per_hour }) => PricingUsed::Compute {
            cost_per_hour: *cost_per_hour,
            source: Source::Declared,
        },
        None if kind == ArmKind::Finetune || measured.ran_locally() => {
            match measured.recorded_cost_per_hour {
                Some(rate) => PricingUsed::Compute {
                    cost_per_hour: rate,
                    source: Source::Inferred,
                },
                None => PricingUsed::Compute {
                    cost_per_hour: ComputeSpec::default().cost_per_hour,
                    source: Source::Default,
                },
            }
        }
        None => PricingUsed::Hosted {
            pricing: None,
            batch_api: batch,
        },
    }
}

/// The cost model for one arm.
///
/// - cost per request: hosted, mean tokens × price (half with `batch_api`), or the mean recorded
///   cost of uncached calls when the price is unknown; compute, mean compute seconds × hourly
///   price, or the mean recorded cost when no compute seconds were recorded;
/// - upfront: prompt, `prompt_iteration_hours × rate + eval spend` (+ the search's spend for an
///   optimised arm); fine-tune, `train_seconds × hourly price + data prep hours × rate + eval
///   spend`, where data prep is its training examples × `labelling_minutes_per_example` when
///   that is declared (see [`data_prep_hours`]), else `data_prep_hours`;
/// - fixed monthly: fine-tune, `finetune_hourly_usd × 730 + mlops_hours_per_month × rate`;
///   prompt arms, 0 (the model charges serving and upkeep to the fine-tune only);
/// - served in batches (`costs.serving.mode: batch`, see `serving`): a compute-priced arm pays
///   `mean compute seconds ÷ utilisation` per request at its serving machine's price
///   (`finetune_hourly_usd` for a fine-tune, its device's for a local prompt arm), and a
///   fine-tune has no 24/7 machine: its fixed monthly cost is the upkeep alone;
/// - time-to-ship: the same declared staff hours, plus measured eval, training and search hours.
pub fn arm_cost(
    kind: ArmKind,
    measured: &Measured,
    pricing: PricingUsed,
    costs: &CostAssumptions,
) -> ArmCost {
    let batch = costs.serving.mode == domain::ServingMode::Batch;
    let (cost_per_request_usd, cost_per_request_basis) = batch
        .then(|| per_request_in_batches(kind, measured, pricing, costs))
        .flatten()
        .unwrap_or_else(|| per_request(measured, pricing));
    let rate = costs.hourly_rate_usd;
    let train_seconds = measured.train_seconds.unwrap_or(0.0);
    let (human_hours, train_usd, serving_monthly_usd, upkeep_monthly_usd) = match kind {
        ArmKind::Prompt => (costs.prompt_iteration_hours, 0.0, 0.0, 0.0),
        ArmKind::Finetune => {
            let hourly = match pricing {
                PricingUsed::Compute { cost_per_hour, .. } => cost_per_hour,
                PricingUsed::Hosted { .. } => ComputeSpec::default().cost_per_hour,
            };
            (
                data_prep_hours(measured, costs),
                train_seconds / 3600.0 * hourly,
                if batch {
                    0.0
                } else {
                    costs.finetune_hourly_usd * SERVING_HOURS_PER_MONTH
                },
                costs.mlops_hours_per_month * rate,
            )
        }
    };
    let staff_upfront_usd = human_hours * rate;
    let upfront_usd =
        staff_upfront_usd + train_usd + measured.eval_spend_usd + measured.search_spend_usd;
    let fixed_monthly_usd = serving_monthly_usd + upkeep_monthly_usd;
    let months = costs.horizon_days / DAYS_PER_MONTH;
    let traffic_usd = costs.horizon_days * costs.daily_requests * cost_per_request_usd;
    let horizon_total_usd = upfront_usd + traffic_usd + months * fixed_monthly_usd;
    let staff_horizon_usd = staff_upfront_usd + months * upkeep_monthly_usd;
    let machine_hours =
        (measured.eval_machine_seconds + train_seconds + measured.search_machine_seconds) / 3600.0;
    ArmCost {
        cost_per_request_usd,
        cost_per_request_basis,
        upfront_usd,
        fixed_monthly_usd,
        horizon_total_usd,
        time_to_ship_hours: human_hours + machine_hours,
        staff_share: if horizon_total_usd > 0.0 {
            staff_horizon_usd / horizon_total_usd
        } else {
            0.0
        },
        breakdown: CostBreakdown {
            pricing,
            staff_upfront_usd,
            train_usd,
            eval_spend_usd: measured.eval_spend_usd,
            serving_monthly_usd,
            upkeep_monthly_usd,
            traffic_usd,
            staff_horizon_usd,
            human_hours,
            machine_hours,
            review: None,
        },
    }
}

/// A fine-tune's data preparation in staff hours: its measured training examples ×
/// `labelling_minutes_per_example` when both are known, else the declared `data_prep_hours`.
pub fn data_prep_hours(measured: &Measured, costs: &CostAssumptions) -> f64 {
    match (costs.labelling_minutes_per_example, measured.train_examples) {
        (Some(minutes), Some(n)) => n as f64 * minutes / 60.0,
        _ => costs.data_prep_hours,
    }
}

/// A self-hosted arm served in batches: the machine-hours its traffic needs, per request;
/// `None` for hosted arms (their batch rate is in their pricing) and without compute seconds.
fn per_request_in_batches(
    kind: ArmKind,
    m: &Measured,
    pricing: PricingUsed,
    costs: &CostAssumptions,
) -> Option<(f64, String)> {
    let PricingUsed::Compute { cost_per_hour, .. } = pricing else {
        return None;
    };
    if m.mean_compute_seconds <= 0.0 {
        return None;
    }
    let hourly = match kind {
        ArmKind::Finetune => costs.finetune_hourly_usd,
        ArmKind::Prompt => cost_per_hour,
    };
    let u = costs.serving.utilisation;
    Some((
        m.mean_compute_seconds / u * hourly / 3600.0,
        format!(
            "measured {:.3} compute s per request ÷ utilisation {u} × ${hourly}/h, served in \
             batches ({:.1} machine-hours a day)",
            m.mean_compute_seconds,
            machine_hours_per_day(m, costs)
        ),
    ))
}

/// Machine-hours a day a self-hosted arm needs in batches at the declared traffic.
pub fn machine_hours_per_day(m: &Measured, costs: &CostAssumptions) -> f64 {
    costs.daily_requests * m.mean_compute_seconds / 3600.0 / costs.serving.utilisation
}

fn per_request(m: &Measured, pricing: PricingUsed) -> (f64, String) {
    match pricing {
        PricingUsed::Hosted { pricing, batch_api } => {
            let factor = if batch_api {
                BATCH_API_PRICE_FACTOR
            } else {
                1.0
            };
            let batch = if batch_api {
                ", batch API (half price)"
            } else {
                ""
            };
            match (pricing, m.mean_uncached_cost_usd) {
                (Some(p), _) => (
                    factor
                        * (m.mean_prompt_tokens * p.input_per_mtok
                            + m.mean_completion_tokens * p.output_per_mtok)
                        / 1_000_000.0,
                    format!(
                        "measured mean tokens {:.1} in + {:.1} out × price ${}/${} per Mtok{batch}",
                        m.mean_prompt_tokens,
                        m.mean_completion_tokens,
                        p.input_per_mtok,
                        p.output_per_mtok
                    ),
                ),
                (None, Some(cost)) => (
                    factor * cost,
                    format!("measured mean cost of uncached successful calls{batch}"),
                ),
                (None, None) => (
                    0.0,
                    "unknown: no price given and no uncached successful call; counted as 0"
                        .to_owned(),
                ),
            }
        }
        PricingUsed::Compute { cost_per_hour, .. } if m.mean_compute_seconds > 0.0 => (
            m.mean_compute_seconds * cost_per_hour / 3600.0,
            format!(
                "measured {:.3} compute s per request × ${cost_per_hour}/h",
                m.mean_compute_seconds
            ),
        ),
        PricingUsed::Compute { .. } => (
            m.mean_uncached_cost_usd.unwrap_or(0.0),
            "measured mean recorded cost (no compute seconds recorded)".to_owned(),
        ),
    }
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
