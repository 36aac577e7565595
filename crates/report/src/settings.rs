//! What a report assumes about a run beyond its records: the cost assumptions and decision the
//! run stored, or, for a run stored without them (by an earlier version whose plan record
//! could not be read), the documented defaults, with a note saying so. The defaults themselves
//! are `domain`'s (`CostAssumptions::default`, `Decision::DEFAULT_*`); this is the one place
//! that falls back to them.

use domain::{CostAssumptions, Decision, RunResults, RunSettings};

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
