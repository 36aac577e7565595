//! `choices:` on a prompt or in `generation:` (with `normalize_choices:` beside it): a list of
//! labels, or `from_targets`, read with their positions. The list is checked here (two to
//! [`MAX_CHOICES`] labels, none empty, none equal to another once case is folded); what
//! `from_targets` stands for needs the dataset, so `validate` resolves it.

use crate::decode::{Ctx, Fields};
use crate::yaml::Pos;

/// The most labels an answer can be constrained to: each is scored (local) or listed in the
/// request's schema (hosted) on every call.
pub(crate) const MAX_CHOICES: usize = 50;

/// The keyword for "the distinct targets of the train split".
const FROM_TARGETS: &str = "from_targets";

pub(crate) enum RawChoiceSet {
    Labels(Vec<String>),
    FromTargets,
}

pub(crate) struct RawChoices {
    pub pos: Pos,
    pub set: RawChoiceSet,
    pub normalize: bool,
}

/// The `choices` of a section, if it declares them; `normalize_choices` without `choices` is
/// an error.
pub(crate) fn choices(cx: &mut Ctx<'_>, f: &Fields<'_>) -> Option<RawChoices> {
    let normalize = f.bool(cx, "normalize_choices");
    let Some(list) = f.strings(cx, "choices", true) else {
        if let Some(n) = normalize {
            cx.error(
                n.pos,
                "`normalize_choices` needs `choices` beside it (a list of labels or `from_targets`)",
            );
        }
        return None;
    };
    let normalize = normalize.is_some_and(|n| n.value);
    let is_single = f.get("choices").is_some_and(|n| n.scalar().is_some());
    if is_single {
        let word = list.value.first().map_or("", |s| s.value.as_str());
        if word != FROM_TARGETS {
            cx.error(
                list.pos,
                format!(
                    "`choices` takes a list of labels (`[positive, negative]`) or `{FROM_TARGETS}`, \
                     found `{word}`"
                ),
            );
            return None;
        }
        return Some(RawChoices {
            pos: list.pos,
            set: RawChoiceSet::FromTargets,
            normalize,
        });
    }
    let labels: Vec<String> = list.value.iter().map(|s| s.value.clone()).collect();
    check_labels(cx, list.pos, &labels).then_some(RawChoices {
        pos: list.pos,
        set: RawChoiceSet::Labels(labels),
        normalize,
    })
}

/// Two to [`MAX_CHOICES`] labels, none blank, none equal to another once case is folded (the
/// free-text mapping could not tell them apart). Reports at `pos`; true when they are fine.
pub(crate) fn check_labels(cx: &mut Ctx<'_>, pos: Pos, labels: &[String]) -> bool {
    if labels.len() < 2 {
        cx.error(
            pos,
            format!(
                "`choices` needs at least two labels, found {}",
                labels.len()
            ),
        );
        return false;
    }
    if labels.len() > MAX_CHOICES {
        cx.error(
            pos,
            format!(
                "`choices` has {} labels; at most {MAX_CHOICES} are supported",
                labels.len()
            ),
        );
        return false;
    }
    if labels.iter().any(|l| l.trim().is_empty()) {
        cx.error(pos, "`choices` has an empty label");
        return false;
    }
    let mut seen = std::collections::BTreeSet::new();
    for l in labels {
        if !seen.insert(l.trim().to_lowercase()) {
            cx.error(
                pos,
                format!("`choices` lists `{l}` twice (labels are compared ignoring case)"),
            );
            return false;
        }
    }
    true
}
