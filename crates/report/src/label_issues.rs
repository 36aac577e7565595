//! Label issues in the eval split, as the decision report shows them: the eval items whose
//! stored label is probably wrong, by confident learning (`scoring::label_issues`) over the
//! label probabilities one arm's answers stored with their choices.
//!
//! The probe is the shippable arm of highest quality whose calls hold a probability for every
//! label (local prompt arms and fine-tunes with `choices`); its eval answers are out of sample,
//! since no arm learns from the eval split. Each suspect also says how many of the other arms
//! with `choices` chose the label confident learning finds likelier, which a reviewer reads as
//! corroboration. The train split is `orchestrator data check`'s: the report reads only what
//! the run stored, and a run stores answers to eval items only.

use std::collections::HashMap;

use domain::RunResults;
use serde::{Deserialize, Serialize};

use crate::decision::ArmReport;
use crate::figures::{count, percent};
use crate::format::truncate;
use crate::index::{ResultIndex, succeeded};

/// How much of an item's input a suspect keeps: enough to recognise it.
const INPUT_CHARS: usize = 160;

/// How many suspects the terminal and HTML tables list (the JSON keeps them all).
pub const SHOWN: usize = 20;

/// The eval items whose label is probably wrong, and how they were found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelIssues {
    /// The arm whose label probabilities rank the items.
    pub arm: String,
    pub labels: Vec<String>,
    /// Eval items ranked: a probability for every label, and a target among the labels.
    pub scored: usize,
    /// Eval items that could not be: no answer with every label's probability, or a target
    /// that is none of the labels.
    pub unscored: usize,
    /// Per label: the mean probability of it over the items labelled with it (None: no item).
    pub thresholds: Vec<Option<f64>>,
    /// Lowest self-confidence first.
    pub suspects: Vec<LabelSuspect>,
}

/// One eval item whose label is probably wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSuspect {
    pub item_id: String,
    /// Its input on one line, at most 160 characters.
    pub input: String,
    /// The stored label (the item's target).
    pub given: String,
    /// The label confident learning counts it under.
    pub likely: String,
    /// The probe's probability of `given`.
    pub self_confidence: f64,
    /// Other arms with `choices` that answered the item, and how many of them chose `likely`.
    pub others_answered: usize,
    pub others_likely: usize,
}

/// The label issues of `results`' eval items (looked up in `index`, the run's), from the best
/// probe among `arms` (the report's arms, in `results.arms` order); `None` when no arm stored
/// full probabilities.
pub(crate) fn label_issues(
    results: &RunResults,
    index: &ResultIndex<'_>,
    arms: &[ArmReport],
) -> Option<LabelIssues> {
    let probe = best_probe(results, arms, index)?;
    let labels = results.arms[probe].choices.clone()?;
    let arm = results.arms[probe].arm.as_str();
    let mut ids = Vec::new();
    let mut given = Vec::new();
    let mut probs = Vec::new();
    for item in &results.items {
        let full = index
            .call(arm, &item.item_id)
            .filter(|c| succeeded(c))
            .and_then(|c| c.choice.as_ref())
            .filter(|ch| ch.probabilities.len() == labels.len());
        let label = labels.iter().position(|l| *l == item.target);
        if let (Some(choice), Some(label)) = (full, label) {
            ids.push(item);
            given.push(label);
            probs.push(choice.probabilities.clone());
        }
    }
    let others = other_choices(results, probe, index);
    let suspects = scoring::label_issues(&given, &probs, labels.len())
        .into_iter()
        .map(|issue| {
            let item = ids[issue.row];
            let likely = labels[issue.likely].clone();
            let answered: Vec<&str> = others
                .iter()
                .filter_map(|o| o.get(item.item_id.as_str()).copied())
                .collect();
            LabelSuspect {
                item_id: item.item_id.clone(),
                input: truncate(&item.input, INPUT_CHARS),
                given: item.target.clone(),
                others_answered: answered.len(),
                others_likely: answered.iter().filter(|&&l| l == likely).count(),
                likely,
                self_confidence: issue.self_confidence,
            }
        })
        .collect();
    Some(LabelIssues {
        arm: arm.to_owned(),
        thresholds: scoring::class_thresholds(&given, &probs, labels.len()),
        scored: given.len(),
        unscored: results.items.len() - given.len(),
        labels,
        suspects,
    })
}

/// The shippable arm of highest quality (ties: run order) with stored labels and at least one
/// answer holding a probability for every one of them.
fn best_probe(results: &RunResults, arms: &[ArmReport], index: &ResultIndex<'_>) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, (info, report)) in results.arms.iter().zip(arms).enumerate() {
        let Some(labels) = &info.choices else {
            continue;
        };
        let probed = index.arm_calls(&info.arm).iter().any(|c| {
            c.choice
                .as_ref()
                .is_some_and(|ch| ch.probabilities.len() == labels.len())
        });
        if probed && report.shippable() && best.is_none_or(|b| report.quality > arms[b].quality) {
            best = Some(i);
        }
    }
    best
}

/// For every arm with `choices` but the probe: item → the label its answer chose.
fn other_choices<'a>(
    results: &'a RunResults,
    probe: usize,
    index: &ResultIndex<'a>,
) -> Vec<HashMap<&'a str, &'a str>> {
    results
        .arms
        .iter()
        .enumerate()
        .filter(|&(i, a)| i != probe && a.choices.is_some())
        .map(|(_, a)| {
            index
                .arm_calls(&a.arm)
                .iter()
                .filter(|c| succeeded(c))
                .filter_map(|c| {
                    let label = c.choice.as_ref()?.label.as_deref()?;
                    Some((c.item_id.as_str(), label))
                })
                .collect()
        })
        .collect()
}

/// The suspects table (the first [`SHOWN`]), or `None` when there is nothing to show.
pub(crate) fn rows(li: &LabelIssues) -> Option<(Vec<&'static str>, Vec<Vec<String>>)> {
    if li.suspects.is_empty() {
        return None;
    }
    let headers = vec![
        "item",
        "label",
        "likely",
        "p(label)",
        "other arms chose likely",
        "input",
    ];
    let rows = li
        .suspects
        .iter()
        .take(SHOWN)
        .map(|s| {
            vec![
                s.item_id.clone(),
                s.given.clone(),
                s.likely.clone(),
                format!("{:.3}", s.self_confidence),
                format!("{} of {}", s.others_likely, s.others_answered),
                s.input.clone(),
            ]
        })
        .collect();
    Some((headers, rows))
}

/// What the table rests on and what it leaves out, as sentences.
pub(crate) fn notes(li: &LabelIssues) -> Vec<String> {
    let flagged = li.suspects.len();
    let mut notes = vec![format!(
        "{} of {} eval items ({}) look mislabelled by confident learning over the label \
         probabilities of `{}`, the best arm that scored every label; lowest probability of \
         the stored label first.",
        count(flagged as f64),
        count(li.scored as f64),
        percent(flagged as f64 / li.scored.max(1) as f64),
        li.arm
    )];
    if flagged > SHOWN {
        notes.push(format!(
            "The first {SHOWN} are listed; the JSON report holds all {flagged}."
        ));
    }
    if li.unscored > 0 {
        notes.push(format!(
            "{} eval items were not ranked: no answer with a probability for every label, or a \
             target that is none of the labels.",
            count(li.unscored as f64)
        ));
    }
    notes.push(
        "A wrong label counts against every arm alike. `orchestrator data check` ranks the train \
         split too, and `--suspects FILE` writes the rows for review."
            .to_owned(),
    );
    notes
}
