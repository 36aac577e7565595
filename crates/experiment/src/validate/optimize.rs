//! `optimize:` blocks against the rest of the spec: their seeds are prompts, their providers
//! exist (a proposer is a hosted one), the dev split is drawn from rows outside eval (those the
//! split leaves unused, else the train split's) and is big enough, and the call budget buys a search of at least [`MIN_CANDIDATES`] candidates on
//! [`FIRST_RUNG_ITEMS`] dev items. A search that cannot be afforded is refused here, before a
//! database exists or a call is made.

use crate::decode::{Ctx, Spanned};
use crate::optimize::{DemoSearch, FIRST_RUNG_ITEMS, MIN_CANDIDATES, OptimizeSpec, ProposeSpec};
use crate::plan::{Dataset, PromptSpec, ProviderSpec, Row};
use crate::raw::{RawOptimize, RawSpec};
use crate::rng::SplitMix64;

use super::unknown;

/// The prompt ids and the `optimize` ids share one namespace (both name arms `x@provider`).
pub(super) fn ids(raw: &RawSpec) -> impl Iterator<Item = Option<&Spanned<String>>> {
    raw.prompts
        .iter()
        .map(|p| p.id.as_ref())
        .chain(raw.optimize.iter().map(|o| o.id.as_ref()))
}

/// Decides the dev split the blocks need (the largest `dev`): a seeded sample of the rows the
/// eval/train split left out, when there are enough of them (`dataset` hands those over in
/// `ds.dev`), so the train split stays whole; else a seeded sample moved out of the train split,
/// which keeps the rest in file order. Either way the sample keeps its sampled order, so each
/// rung's prefix is a random sample too. Without `optimize:` the dev split is empty.
pub(super) fn carve_dev(cx: &mut Ctx<'_>, raw: &RawSpec, ds: &mut Dataset) {
    let spare = std::mem::take(&mut ds.dev);
    let Some(largest) = raw.optimize.iter().max_by_key(|o| o.dev.value) else {
        return;
    };
    let n = largest.dev.value;
    if spare.len() >= n {
        ds.dev = sample(spare, n, ds.seed);
        return;
    }
    if n > ds.train.len() {
        cx.error(
            largest.dev.pos,
            format!(
                "`dev: {n}` needs rows outside eval: the split leaves {} unused and the train \
                 split has {}; lower `dev`, or leave rows out of `dataset.split`",
                spare.len(),
                ds.train.len()
            ),
        );
        return;
    }
    let mut order: Vec<usize> = (0..ds.train.len()).collect();
    SplitMix64::from_label(ds.seed, "dev", "").shuffle_prefix(&mut order, n);
    let mut slots: Vec<Option<Row>> = std::mem::take(&mut ds.train)
        .into_iter()
        .map(Some)
        .collect();
    ds.dev = order[..n].iter().filter_map(|&i| slots[i].take()).collect();
    ds.train = slots.into_iter().flatten().collect();
}

/// `n` of `rows`, drawn with the split seed, in drawn order.
fn sample(mut rows: Vec<Row>, n: usize, seed: u64) -> Vec<Row> {
    SplitMix64::from_label(seed, "dev", "spare").shuffle_prefix(&mut rows, n);
    rows.truncate(n);
    rows
}

/// The validated blocks; None when one is broken (every problem is reported).
pub(super) fn blocks(
    cx: &mut Ctx<'_>,
    raw: &RawSpec,
    prompts: &[PromptSpec],
    providers: &[ProviderSpec],
    dataset: &Dataset,
) -> Option<Vec<OptimizeSpec>> {
    raw.optimize
        .iter()
        .map(|o| block(cx, o, prompts, providers, dataset))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

fn block(
    cx: &mut Ctx<'_>,
    o: &RawOptimize,
    prompts: &[PromptSpec],
    providers: &[ProviderSpec],
    dataset: &Dataset,
) -> Option<OptimizeSpec> {
    let prompt_ids: Vec<&str> = prompts.iter().map(|p| p.id.as_str()).collect();
    let provider_ids: Vec<&str> = providers.iter().map(ProviderSpec::id).collect();
    let mut ok = true;
    for seed in &o.from {
        if !prompt_ids.contains(&seed.value.as_str()) {
            cx.error(seed.pos, unknown("prompt", &seed.value, &prompt_ids));
            ok = false;
        }
    }
    let on: Vec<String> = match &o.providers {
        Some(list) => {
            for p in list {
                if !provider_ids.contains(&p.value.as_str()) {
                    cx.error(p.pos, unknown("provider", &p.value, &provider_ids));
                    ok = false;
                }
            }
            list.iter().map(|p| p.value.clone()).collect()
        }
        None => provider_ids.iter().map(|p| (*p).to_owned()).collect(),
    };
    if on.is_empty() {
        cx.error(
            o.pos,
            "`optimize` needs a provider to search on: add `providers`",
        );
        ok = false;
    }
    let propose = o.propose.as_ref().map(|(p, n)| {
        let hosted = providers
            .iter()
            .any(|x| x.id() == p.value && matches!(x, ProviderSpec::OpenAi(_)));
        if !hosted {
            let message = if provider_ids.contains(&p.value.as_str()) {
                format!(
                    "`propose.provider` must be a hosted (`type: openai`) provider; `{}` is local",
                    p.value
                )
            } else {
                unknown("provider", &p.value, &provider_ids)
            };
            cx.error(p.pos, message);
            ok = false;
        }
        ProposeSpec {
            provider: p.value.clone(),
            n: *n,
        }
    });
    if o.dev.value < FIRST_RUNG_ITEMS {
        cx.error(
            o.dev.pos,
            format!(
                "`dev: {}` is too few items to choose a prompt on: the search needs at least \
                 {FIRST_RUNG_ITEMS}",
                o.dev.value
            ),
        );
        ok = false;
    }
    let b = &o.bootstrap;
    if b.value > 0 && (b.value > dataset.train.len() || b.value < o.demos_max.value) {
        cx.error(
            b.pos,
            format!(
                "`bootstrap: {}` must be between `demos.max` ({}) and the train split's {} rows",
                b.value,
                o.demos_max.value,
                dataset.train.len()
            ),
        );
        ok = false;
    }
    let floor = MIN_CANDIDATES * FIRST_RUNG_ITEMS;
    if o.max_calls.value < floor {
        cx.error(
            o.max_calls.pos,
            format!(
                "`max_calls: {}` cannot buy a search: {MIN_CANDIDATES} candidates on \
                 {FIRST_RUNG_ITEMS} dev items take {floor} calls",
                o.max_calls.value
            ),
        );
        ok = false;
    }
    let spec = OptimizeSpec {
        id: o.id.as_ref()?.value.clone(),
        from: o.from.iter().map(|s| s.value.clone()).collect(),
        providers: on,
        instructions: o.instructions.clone(),
        propose,
        demos: DemoSearch {
            max: o.demos_max.value,
            candidates: o.demo_sets,
            bootstrap: o.bootstrap.value,
        },
        dev: o.dev.value,
        max_calls: o.max_calls.value,
        max_cost_usd: o.max_cost_usd,
    };
    if !ok || o.from.is_empty() {
        return None;
    }
    let grid = spec
        .candidates_over(prompts, &dataset.train, dataset.seed, &[])
        .len()
        + spec.propose.as_ref().map_or(0, |p| p.n);
    if grid < MIN_CANDIDATES {
        cx.error(
            o.pos,
            format!(
                "`optimize` `{}` has only {grid} candidate prompt(s) to compare; a search needs \
                 at least {MIN_CANDIDATES}: add `instructions`, `demos` (from a train split) or \
                 more seed prompts in `from`",
                spec.id
            ),
        );
        return None;
    }
    Some(spec)
}
