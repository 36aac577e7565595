//! Label probabilities for `data check`'s label issues: a prompt arm with `choices` on a local
//! provider scores every label after each train and eval row's rendered prompt, and the softmax
//! over the labels (as the arm's own answers compute it) is that row's probability of each one.
//!
//! The probabilities must be out of sample: a prompt never shows a row its own label (random
//! few-shot demonstrations leave the item out), but a prompt with fixed `demos` shows those rows
//! with their labels to every item, so they are left out and counted. Rows whose label is none
//! of the choices cannot be judged, and are counted too. The model runs on a blocking thread.

use std::collections::HashMap;

use domain::{Device, GenerationParams, Message};
use experiment::{Arm, Plan};
use serde::Serialize;

use crate::events::{Emitter, Event};

/// One row's probabilities, in the order of [`LabelProbs::labels`].
#[derive(Debug, Clone, PartialEq)]
pub struct RowProbs {
    pub split: &'static str,
    pub id: String,
    /// Index of its label among the choices.
    pub given: usize,
    pub probs: Vec<f64>,
}

/// What the probe produced.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelProbs {
    pub labels: Vec<String>,
    pub rows: Vec<RowProbs>,
    /// Rows left out: shown as fixed demonstrations (in sample), or labelled with no choice.
    pub demos_left_out: usize,
    pub unknown_labels: usize,
    /// Rows the model could not score (too long for its context, say).
    pub failed: usize,
}

/// Why the probe could not run; each is a sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    BadArm(String),
    #[error("{0}")]
    Model(String),
}

struct Probe {
    weights: domain::ModelSource,
    device: Device,
    batch: usize,
    params: GenerationParams,
    labels: Vec<String>,
    rows: Vec<(&'static str, String, usize, Vec<Message>)>,
    demos_left_out: usize,
    unknown_labels: usize,
}

/// The probabilities of every label for the train and eval rows of `plan` (at most `limit` of
/// each), from local prompt arm `arm`. Notes (a model fetched into the cache) go to `events`.
pub async fn label_probabilities(
    plan: &Plan,
    arm: &str,
    limit: Option<usize>,
    events: tokio::sync::mpsc::Sender<Event>,
) -> Result<LabelProbs, ProbeError> {
    let probe = probe(plan, arm, limit)?;
    let path = crate::local::resolve_model(&probe.weights, &Emitter::new(events))
        .await
        .map_err(ProbeError::Model)?;
    tokio::task::spawn_blocking(move || score(&path, probe))
        .await
        .map_err(|e| ProbeError::Model(format!("the scoring thread failed: {e}")))?
}

fn probe(plan: &Plan, arm: &str, limit: Option<usize>) -> Result<Probe, ProbeError> {
    let found = plan.arms().into_iter().find(|a| a.id() == arm);
    let refuse = || {
        let able: Vec<String> = plan
            .arms()
            .iter()
            .filter(|a| matches!(a, Arm::Local { .. } | Arm::Finetune { .. }))
            .filter(|a| a.prompt().choices.is_some())
            .map(|a| format!("`{}`", a.id()))
            .collect();
        let able = if able.is_empty() {
            "none".to_owned()
        } else {
            able.join(", ")
        };
        ProbeError::BadArm(format!(
            "`{arm}` is not a prompt arm with `choices` on a local provider nor a fine-tune \
             with `choices`, which label issues need (a probability for every label); such \
             arms in this spec: {able}"
        ))
    };
    let Some(Arm::Local {
        provider, prompt, ..
    }) = found
    else {
        return Err(refuse());
    };
    let Some(choices) = prompt.choices.clone() else {
        return Err(refuse());
    };
    let fixed: Vec<String> = prompt.demos.clone().unwrap_or_default();
    let mut p = Probe {
        weights: provider.weights.clone(),
        device: provider.device,
        batch: provider.batch_size.max(1),
        params: crate::arm_params(&plan.generation, &prompt),
        labels: choices.labels.clone(),
        rows: Vec::new(),
        demos_left_out: 0,
        unknown_labels: 0,
    };
    let take = limit.unwrap_or(usize::MAX);
    for (split, rows) in [("train", &plan.dataset.train), ("eval", &plan.dataset.eval)] {
        for row in rows.iter().take(take) {
            if fixed.contains(&row.id) {
                p.demos_left_out += 1;
                continue;
            }
            let Some(given) = choices.labels.iter().position(|l| *l == row.target) else {
                p.unknown_labels += 1;
                continue;
            };
            let messages = plan.render(&prompt, row);
            p.rows.push((split, row.id.clone(), given, messages));
        }
    }
    Ok(p)
}

fn score(path: &std::path::Path, p: Probe) -> Result<LabelProbs, ProbeError> {
    let mut model = llm::LocalModel::load(path, p.device)
        .map_err(|e| ProbeError::Model(format!("{}: {e}", path.display())))?;
    model.set_max_batch(p.batch);
    let mut out = LabelProbs {
        labels: p.labels,
        rows: Vec::with_capacity(p.rows.len()),
        demos_left_out: p.demos_left_out,
        unknown_labels: p.unknown_labels,
        failed: 0,
    };
    for chunk in p.rows.chunks(p.batch) {
        let prompts: Vec<Vec<Message>> = chunk.iter().map(|(_, _, _, m)| m.clone()).collect();
        for ((split, id, given, _), answer) in
            chunk.iter().zip(model.answer_each(&prompts, &p.params))
        {
            match answer.ok().and_then(|g| g.choice) {
                Some(choice) if choice.probabilities.len() == out.labels.len() => {
                    out.rows.push(RowProbs {
                        split,
                        id: id.clone(),
                        given: *given,
                        probs: choice.probabilities,
                    });
                }
                _ => out.failed += 1,
            }
        }
    }
    Ok(out)
}

/// A row whose label is probably wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    pub split: &'static str,
    pub id: String,
    pub input: String,
    pub label: String,
    pub likely: String,
    /// The probability of its label.
    pub self_confidence: f64,
}

/// The rows of train and eval whose label is probably wrong, by confident learning over an
/// arm's label probabilities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelIssues {
    pub arm: String,
    pub labels: Vec<String>,
    pub scored: usize,
    pub left_out_demos: usize,
    pub unknown_labels: usize,
    pub failed: usize,
    /// Per label: the mean probability of it over the rows labelled with it (None: no row).
    pub thresholds: Vec<Option<f64>>,
    /// Lowest self-confidence first.
    pub suspects: Vec<Suspect>,
}

/// [`label_probabilities`], then confident learning over them ([`issues_from`]).
pub async fn label_issues(
    plan: &Plan,
    arm: &str,
    limit: Option<usize>,
    events: tokio::sync::mpsc::Sender<Event>,
) -> Result<LabelIssues, ProbeError> {
    let p = label_probabilities(plan, arm, limit, events).await?;
    Ok(issues_from(plan, arm, p))
}

/// Confident learning (`scoring::label_issues`) over `p`, the probabilities of probe `probe`.
pub fn issues_from(plan: &Plan, probe: &str, p: LabelProbs) -> LabelIssues {
    let given: Vec<usize> = p.rows.iter().map(|r| r.given).collect();
    let probs: Vec<Vec<f64>> = p.rows.iter().map(|r| r.probs.clone()).collect();
    let k = p.labels.len();
    let inputs: HashMap<(&str, &str), &str> =
        [("train", &plan.dataset.train), ("eval", &plan.dataset.eval)]
            .into_iter()
            .flat_map(|(split, rows)| {
                rows.iter()
                    .map(move |r| ((split, r.id.as_str()), r.input.as_str()))
            })
            .collect();
    let suspects = scoring::label_issues(&given, &probs, k)
        .into_iter()
        .filter_map(|issue| {
            let row = p.rows.get(issue.row)?;
            let input = inputs.get(&(row.split, row.id.as_str())).copied();
            Some(Suspect {
                split: row.split,
                id: row.id.clone(),
                input: input.unwrap_or_default().to_owned(),
                label: p.labels.get(issue.given)?.clone(),
                likely: p.labels.get(issue.likely)?.clone(),
                self_confidence: issue.self_confidence,
            })
        })
        .collect();
    LabelIssues {
        arm: probe.to_owned(),
        thresholds: scoring::class_thresholds(&given, &probs, k),
        scored: p.rows.len(),
        left_out_demos: p.demos_left_out,
        unknown_labels: p.unknown_labels,
        failed: p.failed,
        labels: p.labels,
        suspects,
    }
}
