//! Prompting's ceiling as the run measured it: the best prompt arm on the decision metric, and
//! what was tried to get there (how many prompt arms, their calls, dollars and machine time, and
//! what the `optimize:` searches tried). The verdict names it: when no search ran, a reader sees
//! that escalating rests only on the prompts somebody happened to write, and is pointed at the
//! spec's `optimize:` block; when one did, what it cost and how the chosen prompt scored on the
//! dev items it was chosen on beside the eval items (the optimism of selection).

use domain::{ArmKind, RunResults};
use serde::{Deserialize, Serialize};

use crate::decision::{ArmReport, best_quality};
use crate::figures::{count, duration, quality, usd};

/// `report --format json`'s `prompt_ceiling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptCeiling {
    /// The best prompt arm on the decision metric (ties: the cheaper over the horizon).
    pub arm: String,
    /// Its quality on the eval items, with the 95% bootstrap interval.
    pub eval_quality: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Prompt arms compared (each prompt × provider counts once).
    pub candidates: usize,
    /// Calls, dollars and machine minutes all those prompt arms spent on the eval.
    pub calls: usize,
    pub cost_usd: f64,
    pub minutes: f64,
    /// When the best arm is an optimised one: its chosen prompt's mean on the dev items it was
    /// chosen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_quality: Option<f64>,
    /// What the run's prompt searches tried; None when no `optimize:` block ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searched: Option<Searched>,
}

/// The prompt searches of a run, added up over its optimised arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Searched {
    /// The optimised arms.
    pub arms: Vec<String>,
    /// Candidate prompts considered, and the calls, dollars and machine minutes their dev
    /// answers took.
    pub candidates: usize,
    pub calls: usize,
    pub cost_usd: f64,
    pub minutes: f64,
}

/// The ceiling among `arms`' prompt arms; `totals` (horizon cost, `arms` order) breaks ties.
/// `None` when the run has no prompt arm.
pub(crate) fn prompt_ceiling(
    arms: &[ArmReport],
    totals: &[f64],
    results: &RunResults,
) -> Option<PromptCeiling> {
    let prompts: Vec<usize> = (0..arms.len())
        .filter(|&i| arms[i].kind == ArmKind::Prompt)
        .collect();
    let best = best_quality(arms, totals, |i| arms[i].kind == ArmKind::Prompt)?;
    let spent = |f: fn(&ArmReport) -> f64| prompts.iter().map(|&i| f(&arms[i])).sum::<f64>();
    Some(PromptCeiling {
        arm: arms[best].arm.clone(),
        eval_quality: arms[best].quality,
        ci_low: arms[best].ci_low,
        ci_high: arms[best].ci_high,
        candidates: prompts.len(),
        calls: prompts
            .iter()
            .map(|&i| arms[i].measured.answered + arms[i].measured.failed)
            .sum(),
        cost_usd: spent(|a| a.measured.eval_spend_usd),
        minutes: spent(|a| a.measured.eval_machine_seconds) / 60.0,
        dev_quality: results
            .searches
            .iter()
            .find(|s| s.chosen && s.arm == arms[best].arm)
            .and_then(|s| s.dev_score),
        searched: searched(results),
    })
}

/// What the run's searches tried, from their records and their candidates' calls.
fn searched(results: &RunResults) -> Option<Searched> {
    let mut arms: Vec<String> = Vec::new();
    for s in &results.searches {
        if !arms.contains(&s.arm) {
            arms.push(s.arm.clone());
        }
    }
    if arms.is_empty() {
        return None;
    }
    let spend: Vec<_> = arms
        .iter()
        .map(|a| crate::cost::search_spend(results, a))
        .collect();
    Some(Searched {
        candidates: results.searches.len(),
        calls: spend.iter().map(|s| s.calls).sum(),
        cost_usd: spend.iter().map(|s| s.cost_usd).sum(),
        minutes: spend.iter().map(|s| s.machine_seconds).sum::<f64>() / 60.0,
        arms,
    })
}

/// The one sentence the verdict adds about the ceiling, on `metric`.
pub(crate) fn sentence(c: &PromptCeiling, metric: &str) -> String {
    let tried = format!(
        "{} with `{}` (95% CI {}–{}), best of {} prompt arm{}: {} calls, {} and {}",
        quality(c.eval_quality),
        c.arm,
        quality(c.ci_low),
        quality(c.ci_high),
        c.candidates,
        if c.candidates == 1 { "" } else { "s" },
        count(c.calls as f64),
        usd(c.cost_usd),
        duration(c.minutes * 60.0)
    );
    let Some(s) = &c.searched else {
        return format!(
            "Prompting's ceiling was not searched: on `{metric}` the hand-written prompts reach {tried}. Add an `optimize:` block (seed prompts, demos from the train split, a dev split) to search instructions and demo sets before escalating."
        );
    };
    let dev = c.dev_quality.map_or(String::new(), |d| {
        format!(" ({} on the dev items it was chosen on)", quality(d))
    });
    format!(
        "Prompting's ceiling as searched: on `{metric}` {q} with `{arm}`{dev}, 95% CI {lo}–{hi}, after a search of {n} candidate prompt{plural} ({calls} calls, {usd} and {time}) beside {k} prompt arm{kp} on eval.",
        q = quality(c.eval_quality),
        arm = c.arm,
        lo = quality(c.ci_low),
        hi = quality(c.ci_high),
        n = s.candidates,
        plural = if s.candidates == 1 { "" } else { "s" },
        calls = count(s.calls as f64),
        usd = usd(s.cost_usd),
        time = duration(s.minutes * 60.0),
        k = c.candidates,
        kp = if c.candidates == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::decide;
    use crate::testing::{ArmSpec, assumptions, decision, inputs, right, run};

    /// Hand computation (the fixture's pricing, `report::testing`): each prompt arm answers 100
    /// items at $0.002, so $0.20 each; each call's latency is 400 ms × (0.6 + 0.1 × (i mod 9)),
    /// 39.84 s an arm.
    #[test]
    fn names_the_best_prompt_arm_and_what_prompting_spent() {
        let results = run(
            100,
            vec![
                ArmSpec::prompt("zero-shot@api", right(100, 0, 60)),
                ArmSpec::prompt("few-shot@api", right(100, 0, 70)),
                ArmSpec::finetune("lora", right(100, 0, 95)),
            ],
        );
        let r = decide(
            &results,
            &assumptions(1000.0),
            &decision(0.9),
            &inputs(&results),
        );
        let c = r.prompt_ceiling.clone().expect("the run has prompt arms");
        assert_eq!(c.arm, "few-shot@api");
        assert!((c.eval_quality - 0.70).abs() < 1e-12);
        assert_eq!((c.candidates, c.calls), (2, 200));
        assert!((c.cost_usd - 0.40).abs() < 1e-12, "{}", c.cost_usd);
        assert!(
            (c.minutes - 2.0 * 39.84 / 60.0).abs() < 1e-9,
            "{}",
            c.minutes
        );
        let line = r.reasons.last().unwrap();
        assert!(
            line.starts_with("Prompting's ceiling was not searched: on `equals` the hand-written prompts reach 0.700 with `few-shot@api`")
                && line.contains("best of 2 prompt arms: 200 calls, $0.40")
                && line.contains("Add an `optimize:` block"),
            "{line}"
        );
    }

    #[test]
    fn no_prompt_arm_no_ceiling() {
        let results = run(10, vec![ArmSpec::finetune("lora", right(10, 0, 9))]);
        let r = decide(
            &results,
            &assumptions(1000.0),
            &decision(0.9),
            &inputs(&results),
        );
        assert_eq!(r.prompt_ceiling, None);
        assert!(
            !r.reasons.iter().any(|l| l.contains("ceiling")),
            "{:?}",
            r.reasons
        );
    }
}
