//! From a validated plan to what this invocation runs: the arms the user selected (`--arms`), the
//! eval items (`--limit`), what each hosted provider charges, and the `--dry-run` estimate of what the run will cost.
//!
//! Nothing here touches the network, the store or the API keys' values.

use domain::ArmKind;
use experiment::{Arm, Plan, Row};
use serde::Serialize;

use crate::budget::{call_cost_upper_bound, prompt_tokens_upper_bound};
use crate::{Error, RunOptions, preflight, search_estimate};

/// The arms selected by `--arms` (all of them without it), in the plan's order. Naming a
/// declared arm with sweeps (`train_sizes`, `few_shot_sizes`, `label_noise`) selects its
/// whole family: the curve is what it was declared for.
pub(crate) fn select_arms(plan: &Plan, filter: Option<&[String]>) -> Result<Vec<Arm>, Error> {
    let all = plan.arms();
    let Some(filter) = filter else {
        return Ok(all);
    };
    for wanted in filter {
        if !all.iter().any(|a| a.id() == wanted) {
            return Err(Error::UnknownArm {
                arm: wanted.clone(),
                known: all.iter().map(|a| a.id().to_owned()).collect(),
            });
        }
    }
    let family = |a: &Arm| a.sweep().map(|s| s.family);
    Ok(all
        .into_iter()
        .filter(|a| {
            filter
                .iter()
                .any(|f| f == a.id() || family(a).as_deref() == Some(f.as_str()))
        })
        .collect())
}

/// Checks what the options ask of the plan (known arms, some items, an API key for at least one
/// selected arm) without doing anything, so the CLI can refuse before it opens the database.
pub fn check_options(plan: &Plan, opts: &RunOptions) -> Result<(), Error> {
    let selected = select_arms(plan, opts.arms.as_deref())?;
    if eval_rows(plan, opts.limit).is_empty() {
        return Err(Error::NoItems);
    }
    if !opts.dry_run {
        let missing = preflight::missing_for(plan, &selected, &opts.secrets);
        preflight::refuse_if_nothing_runs(&selected, &missing)?;
    }
    refuse_unaffordable_searches(plan, &selected)
}

/// Refuses a hosted optimised arm whose dollar budget (its block's `max_cost_usd`, or the run's
/// `budget.max_cost_usd`) cannot buy even the smallest search: 4 candidates on 20 dev items.
fn refuse_unaffordable_searches(plan: &Plan, selected: &[Arm]) -> Result<(), Error> {
    for arm in selected {
        let Arm::Hosted {
            prompt,
            pricing: Some(pricing),
            ..
        } = arm
        else {
            continue;
        };
        let Some(block) = plan.optimize_block(&prompt.id) else {
            continue;
        };
        let limits = [
            block
                .max_cost_usd
                .map(|l| (l, "its optimize block's budget.max_cost_usd")),
            plan.budget_max_cost_usd
                .map(|l| (l, "the run's budget.max_cost_usd")),
        ];
        let least = search_estimate::least_cost(plan, block, pricing);
        if let Some((limit, what)) = limits.into_iter().flatten().find(|(l, _)| *l < least) {
            return Err(Error::SearchBudget {
                arm: arm.id().to_owned(),
                limit,
                what,
                least,
            });
        }
    }
    Ok(())
}

/// The eval items of this invocation: the eval split, cut to `--limit`.
pub(crate) fn eval_rows(plan: &Plan, limit: Option<usize>) -> &[Row] {
    let rows = &plan.dataset.eval;
    &rows[..limit.unwrap_or(rows.len()).min(rows.len())]
}

/// What `--dry-run` prints: per arm, the items and the most the arm can cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub experiment: String,
    pub arms: Vec<ArmEstimate>,
    /// Sum of the arms' hosted costs (local compute is not included).
    pub total_usd: f64,
    pub budget_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmEstimate {
    pub arm: String,
    pub kind: ArmKind,
    pub provider: Option<String>,
    pub model: String,
    pub items: u64,
    /// Estimated prompt tokens over all items (hosted arms).
    pub prompt_tokens: u64,
    /// `max_tokens` × items: the most answer tokens the arm can be billed for.
    pub max_completion_tokens: u64,
    /// Upper bound of the arm's cost; None where it is local compute, priced after the fact.
    pub cost_usd: Option<f64>,
    /// Why there is no figure, or what it assumes.
    pub note: Option<String>,
    /// An optimised arm's prompt search: the most calls it makes on dev items ...
    pub search_calls: Option<u64>,
    /// ... and, hosted, the most they can cost (part of `total_usd`, not of `cost_usd`).
    pub search_cost_usd: Option<f64>,
}

/// Estimates the run without spending anything or touching the store. Cached answers and items
/// already answered by a resumable run are not subtracted: the figure is an upper bound.
pub fn estimate(plan: &Plan, opts: &RunOptions) -> Result<Estimate, Error> {
    let arms = select_arms(plan, opts.arms.as_deref())?;
    let rows = eval_rows(plan, opts.limit);
    let out: Vec<ArmEstimate> = arms
        .iter()
        .map(|a| estimate_arm(plan, a, rows, opts.batch))
        .collect();
    let total_usd = out
        .iter()
        .flat_map(|a| [a.cost_usd, a.search_cost_usd])
        .flatten()
        .sum();
    Ok(Estimate {
        experiment: plan.name.clone(),
        arms: out,
        total_usd,
        budget_usd: plan.budget_max_cost_usd,
    })
}

/// One arm's line of the estimate: a hosted arm's upper bound over `rows` (at batch rates with
/// `--batch`), or why there is none.
fn estimate_arm(plan: &Plan, arm: &Arm, rows: &[Row], batch: bool) -> ArmEstimate {
    let max_tokens = plan.generation.max_tokens;
    let items = rows.len() as u64;
    let mut e = ArmEstimate {
        arm: arm.id().to_owned(),
        kind: arm.kind(),
        provider: arm.provider_id().map(str::to_owned),
        model: arm.model().to_owned(),
        items,
        prompt_tokens: 0,
        max_completion_tokens: items * u64::from(max_tokens),
        cost_usd: None,
        note: None,
        search_calls: None,
        search_cost_usd: None,
    };
    if let Some(block) = plan.optimize_block(&arm.prompt().id) {
        let pricing = match arm {
            Arm::Hosted { pricing, .. } => pricing.as_ref(),
            _ => None,
        };
        let search = search_estimate::estimate(plan, block, pricing);
        e.search_calls = Some(search.calls as u64);
        e.search_cost_usd = search.cost_usd;
    }
    match arm {
        Arm::Hosted {
            provider,
            prompt,
            pricing,
            ..
        } => {
            let mut tokens = 0;
            let mut cost = 0.0;
            let pricing = pricing.map(|p| if batch { p.at_batch_rates() } else { p });
            for row in rows {
                let messages = plan.render(prompt, row);
                tokens += prompt_tokens_upper_bound(&messages);
                if let Some(p) = &pricing {
                    cost += call_cost_upper_bound(&messages, max_tokens, p);
                }
            }
            e.prompt_tokens = tokens;
            e.cost_usd = Some(cost);
            if pricing.is_none() {
                e.note = Some(format!("no known price for model {}", provider.model));
            } else if batch {
                e.note = Some("through the Batch API, at batch rates".to_string());
            }
        }
        Arm::Local { provider, .. } => {
            e.note = Some(format!(
                "local compute on {} at ${}/h, measured while it runs",
                provider.device, provider.cost_per_hour
            ));
        }
        Arm::Finetune { .. } => {
            e.note = Some("training and eval compute, measured while it runs".to_string());
        }
    }
    e
}
