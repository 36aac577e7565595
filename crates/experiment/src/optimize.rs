//! The prompt search an `optimize:` block asks for, as data: the block itself, the candidates it
//! covers (the seed prompts as written, then instructions × demo sets, in the manner of DSPy's
//! BootstrapFewShotWithRandomSearch and MIPROv2's instruction × demo grid) and the successive
//! halving schedule that spends its call budget on dev-split minibatches.
//!
//! Everything here is deterministic in the plan's seed, so a rerun covers the same candidates in
//! the same order and a resumed search pays for no evaluation twice. Running the candidates is
//! the runner's; nothing here calls a model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, PromptSpec, Row};
use crate::rng::SplitMix64;

/// Dev items of a search's first rung: enough for a first cut, few enough to try many.
pub const FIRST_RUNG_ITEMS: usize = 20;
/// The fewest candidates a search must be able to afford on [`FIRST_RUNG_ITEMS`] dev items.
pub const MIN_CANDIDATES: usize = 4;
/// Dev splits smaller than this get a warning: selection on them is noisy.
pub const DEV_WARN_BELOW: usize = 30;
pub use domain::CANDIDATE_SEPARATOR;

/// One `optimize:` entry: search a prompt on each of `providers`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OptimizeSpec {
    /// The prompt id of the arms it adds (`opt@provider`); no prompt has it.
    pub id: String,
    /// Seed prompts (ids in [`Plan::prompts`]); the first one's template and `choices` are the
    /// candidates' too.
    pub from: Vec<String>,
    /// Provider ids; every provider when the spec lists none.
    pub providers: Vec<String>,
    /// Extra instructions (system messages) to try beside the seeds'.
    pub instructions: Vec<String>,
    /// A hosted model that writes more instructions.
    pub propose: Option<ProposeSpec>,
    pub demos: DemoSearch,
    /// Dev items the search scores candidates on: the first `dev` rows of [`Dataset::dev`].
    ///
    /// [`Dataset::dev`]: crate::plan::Dataset::dev
    pub dev: usize,
    /// Most candidate evaluations (calls) per provider.
    pub max_calls: usize,
    /// Most dollars the search may spend per provider.
    pub max_cost_usd: Option<f64>,
}

/// `propose: { provider, n }`: one call to a hosted provider asks for `n` instructions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProposeSpec {
    pub provider: String,
    pub n: usize,
}

/// `demos: { max, candidates, bootstrap }`: demo sets drawn from the train split, 1 to `max`
/// rows each; with `bootstrap: N`, drawn only from those of the first N train rows that the
/// first seed prompt answers right (DSPy's BootstrapFewShot: a demonstration is a trace that
/// passed the metric), which the runner finds before the search.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct DemoSearch {
    pub max: usize,
    pub candidates: usize,
    #[serde(default)]
    pub bootstrap: usize,
}

/// One prompt the search may try.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Candidate {
    /// `c00`, `c01`, … in search order.
    pub id: String,
    /// The seed prompt it came from (the first seed for grid candidates).
    pub seed: String,
    /// The prompt it answers with; its id is the block's.
    pub prompt: PromptSpec,
}

impl OptimizeSpec {
    /// The optimised arm on `provider`.
    pub fn arm_id(&self, provider: &str) -> String {
        format!("{}@{provider}", self.id)
    }

    /// The arm id under which `candidate`'s dev answers are stored.
    pub fn candidate_arm(&self, provider: &str, candidate: &Candidate) -> String {
        format!(
            "{}{CANDIDATE_SEPARATOR}{}",
            self.arm_id(provider),
            candidate.id
        )
    }

    /// The candidates, seeds first, then the grid of every instruction (the seeds', then
    /// `instructions`, then `proposed`; each once) × every demo set (none, then
    /// [`DemoSearch::candidates`] label-stratified sets), shuffled with the plan's seed so that
    /// a budget for only the first few tries a random sample of the grid.
    pub fn candidates(&self, plan: &Plan, proposed: &[String]) -> Vec<Candidate> {
        let d = &plan.dataset;
        self.candidates_over(&plan.prompts, &d.train, d.seed, proposed)
    }

    /// [`Self::candidates`] with demo sets drawn from `demo_rows` (train rows the bootstrap
    /// kept) instead of the whole train split.
    pub fn candidates_with_demos(
        &self,
        plan: &Plan,
        proposed: &[String],
        demo_rows: &[Row],
    ) -> Vec<Candidate> {
        let d = &plan.dataset;
        self.candidates_over(&plan.prompts, demo_rows, d.seed, proposed)
    }

    /// [`Self::candidates`] over the plan's parts, for `validate`, which has no plan yet.
    pub(crate) fn candidates_over(
        &self,
        all_prompts: &[PromptSpec],
        train: &[Row],
        seed: u64,
        proposed: &[String],
    ) -> Vec<Candidate> {
        let seeds: Vec<PromptSpec> = self
            .from
            .iter()
            .filter_map(|p| all_prompts.iter().find(|x| &x.id == p))
            .map(PromptSpec::outside_sweeps)
            .collect();
        let Some(first) = seeds.first() else {
            return Vec::new();
        };
        let mut prompts: Vec<(String, PromptSpec)> = seeds
            .iter()
            .map(|s| {
                let prompt = PromptSpec {
                    id: self.id.clone(),
                    ..s.clone()
                };
                (s.id.clone(), prompt)
            })
            .collect();
        let mut instructions: Vec<Option<String>> = Vec::new();
        let written = seeds.iter().map(|s| s.system.clone());
        let extra = self.instructions.iter().chain(proposed).cloned().map(Some);
        for i in written.chain(extra) {
            let i = i.filter(|s| !s.trim().is_empty());
            if !instructions.contains(&i) {
                instructions.push(i);
            }
        }
        let mut grid = Vec::new();
        for instruction in &instructions {
            for demos in std::iter::once(Vec::new()).chain(self.demo_sets(train, seed)) {
                let prompt = PromptSpec {
                    id: self.id.clone(),
                    system: instruction.clone(),
                    few_shot: demos.len(),
                    demos: Some(demos),
                    ..first.clone()
                };
                if !prompts.iter().any(|(_, p)| same_prompt(p, &prompt)) {
                    grid.push((first.id.clone(), prompt));
                }
            }
        }
        let mut rng = SplitMix64::from_label(seed, "optimize-grid", &self.id);
        let k = grid.len();
        rng.shuffle_prefix(&mut grid, k);
        prompts.extend(grid);
        prompts
            .into_iter()
            .enumerate()
            .map(|(i, (seed, prompt))| Candidate {
                id: format!("c{i:02}"),
                seed,
                prompt,
            })
            .collect()
    }

    /// [`DemoSearch::candidates`] demo sets of train row ids, sizes cycling through 1 to
    /// [`DemoSearch::max`], each drawn label by label in turn (so a set of two on a two-label
    /// task shows both labels), seeded by the set's number.
    fn demo_sets(&self, train: &[Row], seed: u64) -> Vec<Vec<String>> {
        let max = self.demos.max.min(train.len());
        if max == 0 {
            return Vec::new();
        }
        let mut by_label: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
        for row in train {
            by_label.entry(row.target.as_str()).or_default().push(row);
        }
        (0..self.demos.candidates)
            .map(|k| {
                let size = 1 + k % max;
                let label = format!("{}/{k}", self.id);
                let mut rng = SplitMix64::from_label(seed, "optimize-demos", &label);
                let mut pools: Vec<Vec<&Row>> = by_label.values().cloned().collect();
                for pool in &mut pools {
                    let n = pool.len();
                    rng.shuffle_prefix(pool, n);
                }
                let n = pools.len();
                rng.shuffle_prefix(&mut pools, n);
                round_robin(pools, size)
            })
            .collect()
    }
}

/// Up to `size` row ids, taking one from each pool in turn.
fn round_robin(mut pools: Vec<Vec<&Row>>, size: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(size);
    let mut depth = 0;
    while out.len() < size && pools.iter().any(|p| p.len() > depth) {
        for pool in &mut pools {
            if out.len() < size
                && let Some(row) = pool.get(depth)
            {
                out.push(row.id.clone());
            }
        }
        depth += 1;
    }
    out
}

/// Whether two candidates would render every item alike.
fn same_prompt(a: &PromptSpec, b: &PromptSpec) -> bool {
    let demos = |p: &PromptSpec| p.demos.clone().unwrap_or_default();
    a.system == b.system
        && a.template == b.template
        && a.few_shot == b.few_shot
        && (a.few_shot == 0 || (a.demos.is_some() && demos(a) == demos(b)))
}

/// One rung of successive halving: `candidates` are scored on the first `items` dev items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rung {
    pub candidates: usize,
    pub items: usize,
}

/// Successive halving over `n` candidates and `dev` items: the first rung scores all of them on
/// [`FIRST_RUNG_ITEMS`] items (or all of `dev`), each next rung keeps the better half on twice
/// the items, until one candidate is left or every dev item is used.
pub fn schedule(n: usize, dev: usize) -> Vec<Rung> {
    let mut rungs = Vec::new();
    if n == 0 || dev == 0 {
        return rungs;
    }
    let mut rung = Rung {
        candidates: n,
        items: FIRST_RUNG_ITEMS.min(dev),
    };
    loop {
        rungs.push(rung);
        if rung.candidates == 1 || rung.items == dev {
            return rungs;
        }
        rung = Rung {
            candidates: rung.candidates.div_ceil(2),
            items: (rung.items * 2).min(dev),
        };
    }
}

/// Calls a [`schedule`] makes: each rung answers only the items its candidates have not
/// answered on an earlier rung (the items of a rung extend the previous rung's).
pub fn schedule_calls(rungs: &[Rung]) -> usize {
    let mut previous = 0;
    rungs
        .iter()
        .map(|r| {
            let new = r.candidates * (r.items - previous);
            previous = r.items;
            new
        })
        .sum()
}

/// The most of `available` candidates a search on `dev` items can try within `max_calls`.
pub fn affordable(available: usize, dev: usize, max_calls: usize) -> usize {
    (1..=available)
        .rev()
        .find(|&n| schedule_calls(&schedule(n, dev)) <= max_calls)
        .unwrap_or(0)
}

impl Plan {
    /// The `optimize:` block whose arms answer with prompt id `id`, if any.
    pub fn optimize_block(&self, id: &str) -> Option<&OptimizeSpec> {
        self.optimize.iter().find(|o| o.id == id)
    }

    /// What the spec asks for that runs, but not as well as it could: each line one warning.
    pub fn warnings(&self) -> Vec<String> {
        self.optimize
            .iter()
            .filter(|o| o.dev < DEV_WARN_BELOW)
            .map(|o| {
                format!(
                    "optimize `{}`: a dev split of {} items makes selection noisy; \
                     {DEV_WARN_BELOW} or more are advised",
                    o.id, o.dev
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand computation: 16 candidates on 50 dev items: rungs 16×20, 8×40, 4×50; calls
    /// 16·20 + 8·20 + 4·10 = 520.
    #[test]
    fn halving_schedule_and_its_calls() {
        let rungs = schedule(16, 50);
        let pairs: Vec<(usize, usize)> = rungs.iter().map(|r| (r.candidates, r.items)).collect();
        assert_eq!(pairs, vec![(16, 20), (8, 40), (4, 50)]);
        assert_eq!(schedule_calls(&rungs), 520);
        // 4 candidates on 20 items: one rung, 80 calls.
        assert_eq!(schedule_calls(&schedule(4, 20)), 80);
        // A long dev split halves down to one candidate: 4×20, 2×40, 1×80.
        assert_eq!(schedule_calls(&schedule(4, 200)), 80 + 40 + 40);
    }

    #[test]
    fn affordable_is_the_largest_fitting_count() {
        assert_eq!(affordable(16, 50, 520), 16);
        assert_eq!(affordable(16, 50, 519), 15);
        assert_eq!(affordable(3, 50, 10_000), 3);
        assert_eq!(affordable(16, 20, 79), 3);
    }
}
