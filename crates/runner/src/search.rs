//! The prompt search of each optimised arm (`optimize:`), before the run's own pass: candidates
//! (`experiment::optimize`) answer the dev split in rungs of successive halving, each rung a
//! pass of [`answer`] over a plan whose items are the rung's dev rows, stored as calls of arms
//! `opt@provider~cNN` (never of the run's arms or items, so no quality figure sees them). The
//! best candidate's prompt becomes the optimised arm's, and the eval items are answered with it
//! like every arm's.
//!
//! Every choice follows from what is stored: a rerun (after Ctrl-C, a crash or a budget stop)
//! walks the same rungs, answers only what no earlier invocation answered, and picks the same
//! winner. Hosted candidates share the run's budget and, within it, the block's own
//! `max_cost_usd`.

use std::collections::HashMap;

use domain::SearchRecord;
use experiment::optimize::{CANDIDATE_SEPARATOR, Rung, affordable, schedule, schedule_calls};
use experiment::{Arm, Candidate, OptimizeSpec, Plan, PromptSpec};

use crate::Error;
use crate::budget::Budget;
use crate::execute::{Invocation, answer};
use crate::hosted::Lane;
use crate::similar::Embedders;

/// Searches the prompt of every optimised arm in `arms` and puts the winner in its place.
pub(crate) async fn optimize_arms(
    inv: &Invocation<'_>,
    arms: &mut [Arm],
    lanes: &[(String, Lane)],
    embedders: &Embedders,
) -> Result<(), Error> {
    for warning in inv.plan.warnings() {
        inv.events.note(warning).await;
    }
    // Each block's proposal call is made once, charged to its first optimised arm.
    let mut proposed: HashMap<String, Vec<String>> = HashMap::new();
    for arm in arms.iter_mut() {
        let Some(block) = inv.plan.optimize_block(&arm.prompt().id) else {
            continue;
        };
        if inv.cancel.is_cancelled() {
            return Ok(());
        }
        if !proposed.contains_key(&block.id) {
            let left = search_budget(inv, block, arm.id()).await?.limit();
            let charged = format!("{}{CANDIDATE_SEPARATOR}propose", arm.id());
            let found = crate::propose::proposals(inv, block, lanes, &charged, left).await?;
            proposed.insert(block.id.clone(), found);
        }
        let extra = proposed.get(&block.id).map_or(&[][..], Vec::as_slice);
        let pool = crate::bootstrap::demo_pool(inv, block, arm, lanes, embedders).await?;
        if inv.cancel.is_cancelled() {
            return Ok(());
        }
        let search = Search::new(inv, block, arm, extra, pool.as_deref());
        if let Some(winner) = search.run(lanes, embedders).await? {
            set_prompt(arm, winner);
        }
    }
    Ok(())
}

fn set_prompt(arm: &mut Arm, winner: PromptSpec) {
    match arm {
        Arm::Hosted { prompt, .. } | Arm::Local { prompt, .. } => *prompt = winner,
        Arm::Finetune { .. } => {}
    }
}

/// One optimised arm's search.
struct Search<'a> {
    inv: &'a Invocation<'a>,
    block: &'a OptimizeSpec,
    arm: &'a Arm,
    provider: String,
    /// The candidates it can afford, in search order.
    candidates: Vec<Candidate>,
    /// How many the grid had.
    available: usize,
    /// The plan with the dev rows as its items.
    dev_plan: Plan,
}

/// How far a candidate got: the deepest rung on which it answered at least half the items, and
/// its mean there over the items it answered.
#[derive(Clone, Copy, Debug, Default)]
struct Standing {
    rung: Option<usize>,
    items: usize,
    mean: f64,
}

impl<'a> Search<'a> {
    fn new(
        inv: &'a Invocation<'a>,
        block: &'a OptimizeSpec,
        arm: &'a Arm,
        proposed: &[String],
        demo_pool: Option<&[experiment::Row]>,
    ) -> Self {
        let plan = inv.plan;
        let mut candidates = match demo_pool {
            Some(rows) => block.candidates_with_demos(plan, proposed, rows),
            None => block.candidates(plan, proposed),
        };
        let dev: Vec<_> = plan.dataset.dev.iter().take(block.dev).cloned().collect();
        let available = candidates.len();
        candidates.truncate(affordable(available, dev.len(), block.max_calls));
        let mut dev_plan = plan.clone();
        dev_plan.dataset.eval = dev;
        Search {
            inv,
            block,
            provider: arm.provider_id().unwrap_or_default().to_owned(),
            arm,
            candidates,
            available,
            dev_plan,
        }
    }

    /// Runs the rungs and returns the winner's prompt (None when nothing could be scored).
    async fn run(
        &self,
        lanes: &[(String, Lane)],
        embedders: &Embedders,
    ) -> Result<Option<PromptSpec>, Error> {
        let rungs = schedule(self.candidates.len(), self.dev_plan.dataset.eval.len());
        self.announce(&rungs).await;
        let mut standings = vec![Standing::default(); self.candidates.len()];
        let mut alive: Vec<usize> = (0..self.candidates.len()).collect();
        for (j, rung) in rungs.iter().enumerate() {
            if j > 0 {
                alive = best(&standings, &alive, rung.candidates);
            }
            let stopped = self
                .rung(j, *rung, &alive, &mut standings, lanes, embedders)
                .await?;
            self.record(&standings, None).await?;
            if stopped || self.inv.cancel.is_cancelled() {
                break;
            }
        }
        let winner = best(&standings, &(0..standings.len()).collect::<Vec<_>>(), 1);
        let Some(&w) = winner.first().filter(|&&w| standings[w].rung.is_some()) else {
            return Ok(None);
        };
        self.record(&standings, Some(w)).await?;
        let s = standings[w];
        self.inv
            .events
            .note(format!(
                "optimize {}: chose {} ({}) at {:.3} on {} dev items",
                self.arm.id(),
                self.candidates[w].id,
                describe(&self.candidates[w]),
                s.mean,
                s.items
            ))
            .await;
        Ok(Some(self.candidates[w].prompt.clone()))
    }

    async fn announce(&self, rungs: &[Rung]) {
        let shape: Vec<String> = rungs
            .iter()
            .map(|r| format!("{}×{}", r.candidates, r.items))
            .collect();
        self.inv
            .events
            .note(format!(
                "optimize {}: {} of {} candidate prompts on {} dev items, rungs {} (at most {} calls)",
                self.arm.id(),
                self.candidates.len(),
                self.available,
                self.dev_plan.dataset.eval.len(),
                shape.join(", "),
                schedule_calls(rungs)
            ))
            .await;
    }

    /// Answers rung `j` with the `alive` candidates and updates their standings; true when the
    /// budget stopped it.
    async fn rung(
        &self,
        j: usize,
        rung: Rung,
        alive: &[usize],
        standings: &mut [Standing],
        lanes: &[(String, Lane)],
        embedders: &Embedders,
    ) -> Result<bool, Error> {
        let arms: Vec<Arm> = alive.iter().map(|&i| self.candidate_arm(i)).collect();
        let sub = Invocation {
            plan: &self.dev_plan,
            store: self.inv.store,
            opts: self.inv.opts,
            cancel: self.inv.cancel.clone(),
            events: self.inv.events,
            run_id: self.inv.run_id,
            resumed: self.inv.resumed,
            rows: &self.dev_plan.dataset.eval[..rung.items],
            // `answer` takes the embedders as an argument; this field is only the run's.
            embedders: Embedders::default(),
        };
        let lanes: Vec<(String, Lane)> = lanes
            .iter()
            .filter(|(id, _)| *id == self.provider)
            .map(|(id, lane)| (id.clone(), lane.fresh()))
            .collect();
        let ready = tokio::spawn(async { Ok(()) });
        let budget = search_budget(self.inv, self.block, self.arm.id()).await?;
        let pass = answer(&sub, embedders.clone(), &arms, lanes, ready, budget, false).await?;
        pass.written.map_err(Error::Write)?;
        let metric = self.inv.plan.primary_metric();
        for (&i, arm) in alive.iter().zip(&arms) {
            let scores = self
                .inv
                .store
                .item_scores(self.inv.run_id, arm.id(), metric)
                .await?;
            standings[i] = standing(standings[i], j, sub.rows, &scores);
        }
        if let Some(&lead) = best(standings, alive, 1).first() {
            self.inv
                .events
                .note(format!(
                    "optimize {}: rung {} ({} candidates × {} dev items) done; leading: {} at {:.3}",
                    self.arm.id(),
                    j + 1,
                    alive.len(),
                    rung.items,
                    self.candidates[lead].id,
                    standings[lead].mean
                ))
                .await;
        }
        if pass.budget_stopped {
            self.inv
                .events
                .note(format!(
                    "optimize {}: the budget stopped the search on rung {}; choosing among what \
                     it scored",
                    self.arm.id(),
                    j + 1
                ))
                .await;
        }
        Ok(pass.budget_stopped)
    }

    /// Candidate `i` as an arm of its own on the optimised arm's provider.
    fn candidate_arm(&self, i: usize) -> Arm {
        let c = &self.candidates[i];
        let id = self.block.candidate_arm(&self.provider, c);
        let mut arm = self.arm.clone();
        match &mut arm {
            Arm::Hosted {
                id: arm_id, prompt, ..
            }
            | Arm::Local {
                id: arm_id, prompt, ..
            } => {
                *arm_id = id;
                *prompt = c.prompt.clone();
            }
            Arm::Finetune { .. } => {}
        }
        arm
    }

    /// Stores every candidate's standing; `chosen` marks the winner once there is one.
    async fn record(&self, standings: &[Standing], chosen: Option<usize>) -> Result<(), Error> {
        let records: Vec<SearchRecord> = self
            .candidates
            .iter()
            .zip(standings)
            .enumerate()
            .map(|(i, (c, s))| SearchRecord {
                arm: self.arm.id().to_owned(),
                candidate: self.block.candidate_arm(&self.provider, c),
                seq: i as u32,
                seed_prompt: c.seed.clone(),
                instruction: c.prompt.system.clone(),
                demo_ids: c.prompt.demos.clone(),
                dev_items: s.items as u32,
                dev_score: s.rung.map(|_| s.mean),
                chosen: chosen == Some(i),
            })
            .collect();
        self.inv
            .store
            .upsert_searches(self.inv.run_id, &records)
            .await?;
        Ok(())
    }
}

/// What the search of optimised arm `arm` may still spend: the block's `max_cost_usd` less
/// what its candidates (and proposal call) cost so far, within what the run's budget has left.
pub(crate) async fn search_budget(
    inv: &Invocation<'_>,
    block: &OptimizeSpec,
    arm: &str,
) -> Result<Budget, Error> {
    let (store, run) = (inv.store, inv.run_id);
    let prefix = format!("{arm}{CANDIDATE_SEPARATOR}");
    let own = match block.max_cost_usd {
        Some(max) => Some(max - store.cost_of_arms_with_prefix(run, &prefix).await?),
        None => None,
    };
    let run_left = match inv.plan.budget_max_cost_usd {
        Some(max) => Some(max - store.run_cost(run).await?),
        None => None,
    };
    let limit = match (own, run_left) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Budget::new(limit.map(|l| l.max(0.0)), 0.0))
}

/// A candidate's standing after rung `j` over `rows`, given its stored scores: it moves to rung
/// `j` when it answered at least half of the rung's items.
fn standing(
    before: Standing,
    j: usize,
    rows: &[experiment::Row],
    scores: &HashMap<String, f64>,
) -> Standing {
    let values: Vec<f64> = rows
        .iter()
        .filter_map(|r| scores.get(&r.id).copied())
        .collect();
    if values.is_empty() || values.len() * 2 < rows.len() {
        return before;
    }
    Standing {
        rung: Some(j),
        items: values.len(),
        mean: values.iter().sum::<f64>() / values.len() as f64,
    }
}

/// The `k` best of `among`: deepest rung first, then the higher mean, then the earlier
/// candidate (seeds come first, so a tie keeps the prompt somebody wrote).
fn best(standings: &[Standing], among: &[usize], k: usize) -> Vec<usize> {
    let mut order = among.to_vec();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (standings[a], standings[b]);
        let depth = |s: Standing| s.rung.map_or(-1, |r| r as i64);
        depth(sb)
            .cmp(&depth(sa))
            .then(sb.mean.total_cmp(&sa.mean))
            .then(a.cmp(&b))
    });
    order.truncate(k);
    order
}

/// "seed `few-shot`" or "instruction 2 of the grid, 3 demos", for the search's notes.
fn describe(c: &Candidate) -> String {
    let demos = c.prompt.demos.as_ref().map_or(0, Vec::len);
    match (&c.prompt.demos, &c.prompt.system) {
        (None, _) => format!("seed prompt `{}` as written", c.seed),
        (Some(_), Some(system)) => {
            let short: String = system.chars().take(60).collect();
            format!("instruction \"{short}\", {demos} demos")
        }
        (Some(_), None) => format!("no instruction, {demos} demos"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rung: usize, mean: f64) -> Standing {
        Standing {
            rung: Some(rung),
            items: 20,
            mean,
        }
    }

    #[test]
    fn best_prefers_depth_then_mean_then_order() {
        let s = [
            at(0, 0.9),
            at(1, 0.5),
            at(1, 0.7),
            at(1, 0.7),
            Standing::default(),
        ];
        assert_eq!(best(&s, &[0, 1, 2, 3, 4], 3), vec![2, 3, 1]);
        assert_eq!(best(&s, &[4, 0], 1), vec![0]);
    }
}
