//! Bootstrapped demonstrations (`demos.bootstrap: N`), as DSPy's BootstrapFewShot does them:
//! before an optimised arm's search, its first seed prompt answers the first N train rows, and
//! the search's demo sets are drawn only from the rows it answered right (a demonstration is a
//! trace that passed the metric; on a label task the passing trace is the gold answer). Rows a
//! model cannot get right even when asked directly, mislabelled or ambiguous ones among them,
//! then never teach it.
//!
//! The answers are stored as calls of arm `<optimised arm>~boot`, so a rerun pays for none of
//! them again and draws the same sets; they count in the search's budget and cost like its
//! candidates'. When fewer rows pass than a demo set holds (`demos.max`), the sets are drawn
//! from the whole train split, with a note.

use experiment::optimize::CANDIDATE_SEPARATOR;
use experiment::{Arm, OptimizeSpec, Row};

use crate::Error;
use crate::execute::{Invocation, answer};
use crate::hosted::Lane;
use crate::similar::Embedders;

/// A metric value at or above this counts as answered right.
const PASS: f64 = 0.5;

/// The arm the bootstrap's answers are stored under.
pub(crate) fn boot_arm(arm: &str) -> String {
    format!("{arm}{CANDIDATE_SEPARATOR}boot")
}

/// The train rows demo sets are drawn from: those of the first `demos.bootstrap` that `arm`'s
/// first seed prompt answers right; None when the block does not bootstrap, or too few pass.
pub(crate) async fn demo_pool(
    inv: &Invocation<'_>,
    block: &OptimizeSpec,
    arm: &Arm,
    lanes: &[(String, Lane)],
    embedders: &Embedders,
) -> Result<Option<Vec<Row>>, Error> {
    let plan = inv.plan;
    let n = block.demos.bootstrap.min(plan.dataset.train.len());
    let Some(seed) = block.from.first().and_then(|p| plan.prompt(p)) else {
        return Ok(None);
    };
    if n == 0 {
        return Ok(None);
    }
    let mut boot_plan = plan.clone();
    boot_plan.dataset.eval = plan.dataset.train[..n].to_vec();
    let mut boot = arm.clone();
    let id = boot_arm(arm.id());
    match &mut boot {
        Arm::Hosted {
            id: arm_id, prompt, ..
        }
        | Arm::Local {
            id: arm_id, prompt, ..
        } => {
            *arm_id = id.clone();
            *prompt = experiment::PromptSpec {
                id: block.id.clone(),
                ..seed.clone()
            };
        }
        Arm::Finetune { .. } => return Ok(None),
    }
    let sub = Invocation {
        plan: &boot_plan,
        store: inv.store,
        opts: inv.opts,
        cancel: inv.cancel.clone(),
        events: inv.events,
        run_id: inv.run_id,
        resumed: inv.resumed,
        rows: &boot_plan.dataset.eval,
        embedders: Embedders::default(),
    };
    let provider = arm.provider_id().unwrap_or_default();
    let lanes: Vec<(String, Lane)> = lanes
        .iter()
        .filter(|(p, _)| p == provider)
        .map(|(p, lane)| (p.clone(), lane.fresh()))
        .collect();
    let ready = tokio::spawn(async { Ok(()) });
    let budget = crate::search::search_budget(inv, block, arm.id()).await?;
    let pass = answer(
        &sub,
        embedders.clone(),
        &[boot],
        lanes,
        ready,
        budget,
        false,
    )
    .await?;
    pass.written.map_err(Error::Write)?;
    let scores = inv
        .store
        .item_scores(inv.run_id, &id, plan.primary_metric())
        .await?;
    let passed: Vec<Row> = boot_plan
        .dataset
        .eval
        .iter()
        .filter(|r| scores.get(&r.id).is_some_and(|&v| v >= PASS))
        .cloned()
        .collect();
    let kept = passed.len() >= block.demos.max.max(1);
    inv.events
        .note(format!(
            "optimize {}: the seed answered {} of {n} train rows right; demo sets are drawn from {}",
            arm.id(),
            passed.len(),
            if kept { "those" } else { "the whole train split (too few)" }
        ))
        .await;
    Ok(kept.then_some(passed))
}
