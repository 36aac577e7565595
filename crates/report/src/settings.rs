//! What a report assumes about a run beyond its records: the cost assumptions and decision the
//! run stored, or, for a run stored without them (by an earlier version whose plan record
//! could not be read), the documented defaults, with a note saying so. The defaults themselves
//! are `domain`'s (`CostAssumptions::default`, `Decision::DEFAULT_*`); this is the one place
//! that falls back to them. It also lists every assumption as the report shows it
//! ([`assumptions`]), marked declared, default or inferred.

use domain::{CostAssumptions, Decision, RunResults, RunSettings};

use crate::cost::{ArmCostInputs, Source};
use crate::decision::Assumption;

/// The settings a report of `results` runs on, and the note to show when they are defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Assumed {
    pub settings: RunSettings,
    /// Set when the run stored no settings and the defaults stand in.
    pub note: Option<String>,
}

/// The run's stored settings, or the defaults: the metric is then the first scorer that has
/// scores, else [`Decision::DEFAULT_METRIC`].
pub fn assumed_settings(results: &RunResults) -> Assumed {
    if let Some(settings) = &results.run.settings {
        return Assumed {
            settings: settings.clone(),
            note: None,
        };
    }
    let metric = results
        .scores
        .first()
        .map_or_else(|| Decision::DEFAULT_METRIC.to_owned(), |s| s.scorer.clone());
    Assumed {
        note: Some(missing_settings_note(results.run.id, &metric)),
        settings: RunSettings {
            costs: CostAssumptions::default(),
            declared_costs: None,
            decision: Decision {
                metric,
                quality_target: Decision::DEFAULT_QUALITY_TARGET,
            },
            review: None,
        },
    }
}

fn missing_settings_note(run: i64, metric: &str) -> String {
    format!(
        "run {run} has no stored cost assumptions or decision (an earlier version recorded it, \
         and its plan record could not supply them): the defaults are assumed, with `{metric}` \
         as the metric"
    )
}

/// Warnings about what the run did not store: its settings, and arms without their pricing
/// (their cost is then inferred from their records).
pub(crate) fn stored_input_warnings(results: &RunResults) -> Vec<String> {
    let mut warnings = Vec::new();
    if results.run.settings.is_none() {
        let metric = assumed_settings(results).settings.decision.metric;
        warnings.push(format!(
            "{}.",
            capitalise(&missing_settings_note(results.run.id, &metric))
        ));
    }
    let unpriced: Vec<&str> = results
        .arms
        .iter()
        .filter(|a| a.pricing.is_none())
        .map(|a| a.arm.as_str())
        .collect();
    if !unpriced.is_empty() {
        warnings.push(format!(
            "The pricing of {} was not stored with the run (an earlier version recorded it): \
             inferred from the recorded calls.",
            unpriced.join(", ")
        ));
    }
    warnings
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Every cost assumption the report used, each marked declared, default or inferred.
pub(crate) fn assumptions(
    costs: &CostAssumptions,
    inputs: &ArmCostInputs,
    review: bool,
) -> Vec<Assumption> {
    let d = CostAssumptions::default();
    let source = |name: &str, differs: bool| match &inputs.declared {
        Some(set) if set.contains(name) => Source::Declared,
        Some(_) => Source::Default,
        None if differs => Source::Declared,
        None => Source::Default,
    };
    let num = |name: &str, value: f64, default: f64, unit: &str| Assumption {
        name: name.to_owned(),
        value: serde_json::json!(value),
        unit: unit.to_owned(),
        source: source(name, value != default),
    };
    let mut list = vec![
        num(
            "daily_requests",
            costs.daily_requests,
            d.daily_requests,
            "requests/day",
        ),
        num("horizon_days", costs.horizon_days, d.horizon_days, "days"),
        num(
            "hourly_rate_usd",
            costs.hourly_rate_usd,
            d.hourly_rate_usd,
            "USD/engineer-hour",
        ),
        num(
            "prompt_iteration_hours",
            costs.prompt_iteration_hours,
            d.prompt_iteration_hours,
            "engineer-hours",
        ),
        num(
            "data_prep_hours",
            costs.data_prep_hours,
            d.data_prep_hours,
            "engineer-hours",
        ),
        num(
            "mlops_hours_per_month",
            costs.mlops_hours_per_month,
            d.mlops_hours_per_month,
            "engineer-hours/month",
        ),
        num(
            "finetune_hourly_usd",
            costs.finetune_hourly_usd,
            d.finetune_hourly_usd,
            "USD/hour of the serving machine",
        ),
        Assumption {
            name: "serving_mode".to_owned(),
            value: serde_json::json!(costs.serving.mode.as_str()),
            unit: "how production is served".to_owned(),
            source: source("serving_mode", costs.serving.mode != d.serving.mode),
        },
        num(
            "utilisation",
            costs.serving.utilisation,
            d.serving.utilisation,
            "share of a batch machine's hours",
        ),
        Assumption {
            name: "batch_api".to_owned(),
            value: serde_json::json!(costs.batch_api),
            unit: "hosted calls at half price".to_owned(),
            source: source("batch_api", costs.batch_api != d.batch_api),
        },
    ];
    if let Some(minutes) = costs.labelling_minutes_per_example {
        list.push(Assumption {
            name: "labelling_minutes_per_example".to_owned(),
            value: serde_json::json!(minutes),
            unit: "minutes per training example (a fine-tune's data prep, instead of \
                   data_prep_hours)"
                .to_owned(),
            source: Source::Declared,
        });
    }
    if let Some(slo) = costs.serving.latency_slo_ms {
        list.push(Assumption {
            name: "latency_slo_ms".to_owned(),
            value: serde_json::json!(slo),
            unit: "ms, p95 per request".to_owned(),
            source: Source::Declared,
        });
    }
    if costs.serving.mode == domain::ServingMode::Batch {
        list.push(num(
            "batch_window_hours",
            costs.serving.batch_window_hours,
            d.serving.batch_window_hours,
            "hours",
        ));
    }
    if review {
        let r = &costs.review;
        let minutes = num(
            "minutes_per_review",
            r.minutes(),
            domain::ReviewCosts::DEFAULT_MINUTES,
            "minutes",
        );
        let price = Assumption {
            name: "cost_per_review_usd".to_owned(),
            value: serde_json::json!(r.cost_per_review(costs.hourly_rate_usd)),
            unit: "USD/review".to_owned(),
            source: match r.cost_per_review_usd {
                Some(_) => Source::Declared,
                None => Source::Inferred,
            },
        };
        list.extend([price, minutes]);
    }
    list
}
