//! Resolves `choices:` into `domain::Choices`: a prompt's own, else `generation:`'s; the
//! keyword `from_targets` becomes the distinct targets of the train split, sorted.

use std::collections::BTreeSet;

use domain::Choices;

use crate::decode::Ctx;
use crate::plan::Row;
use crate::raw::{RawChoiceSet, RawChoices, check_labels};

/// The choices `raw` stands for, given the train split (`None` when the dataset could not be
/// read, which has been reported); `None` after reporting a problem.
pub(crate) fn resolve(
    cx: &mut Ctx<'_>,
    raw: &RawChoices,
    train: Option<&[Row]>,
) -> Option<Choices> {
    let labels = match &raw.set {
        RawChoiceSet::Labels(labels) => labels.clone(),
        RawChoiceSet::FromTargets => {
            let train = train?;
            if train.is_empty() {
                cx.error(
                    raw.pos,
                    "`choices: from_targets` takes the labels from the train split, which is \
                     empty: list the labels, or set `dataset.split.train`",
                );
                return None;
            }
            let distinct: BTreeSet<&str> = train.iter().map(|r| r.target.as_str()).collect();
            let labels: Vec<String> = distinct.into_iter().map(str::to_owned).collect();
            if !check_labels(cx, raw.pos, &labels) {
                return None;
            }
            labels
        }
    };
    Some(Choices {
        labels,
        normalize: raw.normalize,
    })
}
