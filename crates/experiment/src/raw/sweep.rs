//! The sweep keys of prompts and fine-tunes as written: `train_sizes` (whole numbers of rows,
//! or fractions of the train split), `few_shot_sizes` (numbers of demonstrations) and
//! `label_noise` (shares of labels to flip). Only their form is checked here; whether a size
//! fits the train split, and the arms they become, are `validate/sweep.rs`'s.

use crate::decode::{Ctx, Fields, Spanned};
use crate::yaml::{Scalar, Value};

/// Points of one sweep key at most: each point trains an adapter or answers every eval item
/// once more, so a longer list is almost surely a slip.
pub(crate) const MAX_POINTS: usize = 16;

/// One size as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Size {
    /// A number of rows (or demonstrations).
    Count(usize),
    /// A share of the train split, in (0, 1].
    Share(f64),
}

/// A prompt's or fine-tune's sweep keys; empty lists when not written.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawSweep {
    /// `train_sizes` (fine-tunes) or `few_shot_sizes` (prompts).
    pub sizes: Vec<Spanned<Size>>,
    pub label_noise: Vec<Spanned<f64>>,
}

/// Reads `key` (`train_sizes` with fractions allowed, `few_shot_sizes` without) and
/// `label_noise`.
pub(crate) fn sweep(cx: &mut Ctx<'_>, f: &Fields<'_>, key: &str, fractions: bool) -> RawSweep {
    let sizes = numbers(cx, f, key)
        .into_iter()
        .filter_map(|(n, pos)| {
            let size = match n {
                Number::Int(i) if i >= i64::from(fractions) => {
                    Size::Count(usize::try_from(i).unwrap_or(usize::MAX))
                }
                Number::Float(x) if fractions && x > 0.0 && x <= 1.0 => Size::Share(x),
                _ => {
                    let expected = if fractions {
                        "whole numbers of rows (at least 1), or shares of the train split \
                         (more than 0.0 and at most 1.0)"
                    } else {
                        "whole numbers of demonstrations, zero or more"
                    };
                    cx.error(pos, format!("`{key}` must list {expected}, found {n}"));
                    return None;
                }
            };
            Some(Spanned { value: size, pos })
        })
        .collect();
    let label_noise = numbers(cx, f, "label_noise")
        .into_iter()
        .filter_map(|(n, pos)| {
            let x = n.value();
            if (0.0..1.0).contains(&x) {
                Some(Spanned { value: x, pos })
            } else {
                cx.error(
                    pos,
                    format!("`label_noise` must list shares at least 0 and less than 1, found {n}"),
                );
                None
            }
        })
        .collect();
    RawSweep { sizes, label_noise }
}

/// A list entry as YAML typed it: `1` is a count, `1.0` the whole split.
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn value(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(x) => x,
        }
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// The finite numbers of list `key`, with where each is written; a problem is reported and
/// the entry left out.
fn numbers(cx: &mut Ctx<'_>, f: &Fields<'_>, key: &str) -> Vec<(Number, crate::yaml::Pos)> {
    let Some(node) = f.get(key) else {
        return Vec::new();
    };
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`{key}` must be a list of numbers, found {}",
                node.describe()
            ),
        );
        return Vec::new();
    };
    if items.is_empty() {
        cx.error(node.pos, format!("`{key}` must list at least one value"));
    }
    if items.len() > MAX_POINTS {
        cx.error(
            node.pos,
            format!("`{key}` lists {} values; at most {MAX_POINTS}", items.len()),
        );
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item.scalar() {
            Some(Scalar::Int(i)) => out.push((Number::Int(i), item.pos)),
            Some(Scalar::Float(x)) if x.is_finite() => out.push((Number::Float(x), item.pos)),
            _ => cx.error(
                item.pos,
                format!("`{key}` must list numbers, found {}", item.describe()),
            ),
        }
    }
    out
}
