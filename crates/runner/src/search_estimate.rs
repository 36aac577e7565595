//! What an optimised arm's prompt search can cost, before it runs: the candidates it can afford
//! within `max_calls`, the calls its rungs make, and on a hosted provider an upper bound of
//! their price (for `--dry-run`) and a floor (for refusing a budget that cannot buy the least
//! search `validate` allows: [`MIN_CANDIDATES`] candidates on [`FIRST_RUNG_ITEMS`] dev items).
//!
//! The calls of `demos.bootstrap` are counted too; demo sets are then drawn from whichever
//! train rows pass, which the estimate cannot know, so it prices sets drawn from the whole split.
//! Proposed instructions (`propose:`) are not known before the run: each of the `n` is counted
//! as long as the longest written instruction. Pure arithmetic over the plan; no IO.

use domain::{Message, Pricing};
use experiment::optimize::{
    FIRST_RUNG_ITEMS, MIN_CANDIDATES, affordable, schedule, schedule_calls,
};
use experiment::{Candidate, OptimizeSpec, Plan, Row};

use crate::budget::call_cost_upper_bound;

/// What a search can cost.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchEstimate {
    /// Candidates it can afford, and how many the grid has.
    pub candidates: usize,
    pub available: usize,
    /// Calls its rungs make at most.
    pub calls: usize,
    /// Upper bound of their price (capped by the block's `max_cost_usd`); None off a hosted
    /// provider or without a price.
    pub cost_usd: Option<f64>,
}

/// The candidates the search can try, with the proposals counted (see the module docs).
fn candidates(plan: &Plan, block: &OptimizeSpec) -> Vec<Candidate> {
    let n = block.propose.as_ref().map_or(0, |p| p.n);
    let longest = block
        .instructions
        .iter()
        .map(String::len)
        .chain(block.from.iter().filter_map(|p| {
            plan.prompt(p)
                .and_then(|s| s.system.as_ref())
                .map(String::len)
        }))
        .max()
        .unwrap_or(200);
    let proposed: Vec<String> = (0..n)
        .map(|i| format!("{i:>width$}", width = longest.max(4)))
        .collect();
    block.candidates(plan, &proposed)
}

fn dev_rows<'a>(plan: &'a Plan, block: &OptimizeSpec) -> &'a [Row] {
    let dev = &plan.dataset.dev;
    &dev[..block.dev.min(dev.len())]
}

/// The search of `block` on a provider priced `pricing` (None: local compute).
pub(crate) fn estimate(
    plan: &Plan,
    block: &OptimizeSpec,
    pricing: Option<&Pricing>,
) -> SearchEstimate {
    let all = candidates(plan, block);
    let dev = dev_rows(plan, block);
    let k = affordable(all.len(), dev.len(), block.max_calls);
    let rungs = schedule(k, dev.len());
    let cost_usd = pricing.map(|p| {
        let max_tokens = plan.generation.max_tokens;
        let cost = |c: &Candidate, rows: &[Row]| -> f64 {
            rows.iter()
                .map(|r| call_cost_upper_bound(&plan.render(&c.prompt, r), max_tokens, p))
                .sum()
        };
        // Whichever candidates survive, a rung costs at most its dearest ones on its new items.
        let mut previous = 0;
        let mut total = 0.0;
        for rung in &rungs {
            let rows = &dev[previous..rung.items];
            let mut costs: Vec<f64> = all[..k].iter().map(|c| cost(c, rows)).collect();
            costs.sort_by(|a, b| b.total_cmp(a));
            total += costs.iter().take(rung.candidates).sum::<f64>();
            previous = rung.items;
        }
        total
    });
    let (boot_calls, boot_cost) = bootstrap(plan, block, pricing);
    SearchEstimate {
        candidates: k,
        available: all.len(),
        calls: schedule_calls(&rungs) + boot_calls,
        // The block's `max_cost_usd` caps the bootstrap and the rungs together.
        cost_usd: cost_usd.map(|c| {
            let total = c + boot_cost.unwrap_or(0.0);
            block.max_cost_usd.map_or(total, |m| total.min(m))
        }),
    }
}

/// The calls of `demos.bootstrap` (the first seed on the first N train rows) and their most.
fn bootstrap(plan: &Plan, block: &OptimizeSpec, pricing: Option<&Pricing>) -> (usize, Option<f64>) {
    let n = block.demos.bootstrap.min(plan.dataset.train.len());
    let Some(seed) = block.from.first().and_then(|p| plan.prompt(p)) else {
        return (0, None);
    };
    let cost = pricing.map(|p| {
        plan.dataset.train[..n]
            .iter()
            .map(|r| call_cost_upper_bound(&plan.render(seed, r), plan.generation.max_tokens, p))
            .sum()
    });
    (n, cost)
}

/// The least the smallest search can cost on a provider priced `pricing`: its
/// [`MIN_CANDIDATES`] cheapest candidates on [`FIRST_RUNG_ITEMS`] dev items, counting half the
/// estimated prompt tokens and no answer, so that only a budget certainly too small is refused.
pub(crate) fn least_cost(plan: &Plan, block: &OptimizeSpec, pricing: &Pricing) -> f64 {
    let dev = dev_rows(plan, block);
    let rows = &dev[..FIRST_RUNG_ITEMS.min(dev.len())];
    let floor = |messages: &[Message]| -> u64 {
        let tokens: u64 = messages
            .iter()
            .map(|m| u64::from(providers::estimate_tokens(&m.content)))
            .sum();
        tokens / 2
    };
    let mut costs: Vec<f64> = candidates(plan, block)
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| pricing.cost(floor(&plan.render(&c.prompt, r)), 0))
                .sum()
        })
        .collect();
    costs.sort_by(f64::total_cmp);
    costs.iter().take(MIN_CANDIDATES).sum()
}
