//! `train_sizes`, `few_shot_sizes` and `label_noise` become plan entries: each point is one
//! more fine-tune (or prompt) right after the declared one, differing only in its training
//! rows (or demonstrations) or in the share of their labels flipped. Sizes are checked against
//! the train split here; a size equal to the declared one, and noise 0, are the declared entry
//! itself and add nothing.

use crate::decode::{Ctx, Spanned};
use crate::plan::{Dataset, FinetuneSpec, PromptSpec};
use crate::raw::{RawFinetune, RawPrompt, RawSweep, Size};
use crate::sweep::{label_flips, noise_id, size_id};

/// The fine-tunes with their `train_sizes` and `label_noise` points after each.
pub(super) fn finetunes(
    cx: &mut Ctx<'_>,
    raw: &[RawFinetune],
    declared: Vec<FinetuneSpec>,
    dataset: &Dataset,
) -> Vec<FinetuneSpec> {
    let rows = dataset.train.len();
    let mut out = Vec::with_capacity(declared.len());
    for (r, mut ft) in raw.iter().zip(declared) {
        ft.train_size = rows;
        let sizes = sizes(cx, &r.sweep, rows, "train_sizes", "rows of the train split");
        let noise = noise(cx, &r.sweep, dataset, None);
        if sizes.iter().any(|&n| n != rows) || !noise.is_empty() {
            ft.family = Some(ft.id.clone());
        }
        let points: Vec<FinetuneSpec> = sizes
            .into_iter()
            .filter(|&n| n != rows)
            .map(|n| FinetuneSpec {
                id: size_id(&ft.id, n, false),
                train_size: n,
                ..ft.clone()
            })
            .chain(noise.into_iter().map(|level| FinetuneSpec {
                id: noise_id(&ft.id, level),
                label_noise: level,
                ..ft.clone()
            }))
            .collect();
        out.push(ft);
        out.extend(points);
    }
    out
}

/// The prompts with their `few_shot_sizes` and `label_noise` points after each.
pub(super) fn prompts(
    cx: &mut Ctx<'_>,
    raw: &[RawPrompt],
    declared: Vec<PromptSpec>,
    dataset: &Dataset,
) -> Vec<PromptSpec> {
    let rows = dataset.train.len();
    let mut out = Vec::with_capacity(declared.len());
    for (r, mut p) in raw.iter().zip(declared) {
        let what = "rows of the train split to draw demonstrations from";
        let sizes = sizes(cx, &r.sweep, rows, "few_shot_sizes", what);
        let noise = noise(cx, &r.sweep, dataset, Some((&p, &r.few_shot)));
        if sizes.iter().any(|&k| k != p.few_shot) || !noise.is_empty() {
            p.family = Some(p.id.clone());
        }
        let points: Vec<PromptSpec> = sizes
            .into_iter()
            .filter(|&k| k != p.few_shot)
            .map(|k| PromptSpec {
                id: size_id(&p.id, k, true),
                few_shot: k,
                ..p.clone()
            })
            .chain(noise.into_iter().map(|level| PromptSpec {
                id: noise_id(&p.id, level),
                label_noise: level,
                ..p.clone()
            }))
            .collect();
        out.push(p);
        out.extend(points);
    }
    out
}

/// The flip order every `label_noise` point uses, when any prompt or fine-tune declares one.
pub(super) fn flips(raw_prompts: &[RawPrompt], raw_finetunes: &[RawFinetune], ds: &mut Dataset) {
    let any = raw_prompts.iter().map(|p| &p.sweep);
    let mut any = any.chain(raw_finetunes.iter().map(|f| &f.sweep));
    if any.any(|s| !s.label_noise.is_empty()) {
        ds.label_flips = label_flips(&ds.train, ds.seed);
    }
}

/// The sizes of `key`, resolved against `rows` and sorted; a size beyond `rows`, or two
/// entries meaning the same size, is reported.
fn sizes(cx: &mut Ctx<'_>, sweep: &RawSweep, rows: usize, key: &str, what: &str) -> Vec<usize> {
    let mut out: Vec<(usize, &Spanned<Size>)> = Vec::new();
    for s in &sweep.sizes {
        let n = match s.value {
            Size::Count(n) => n,
            Size::Share(x) => ((x * rows as f64).round() as usize).max(1),
        };
        if n > rows {
            cx.error(
                s.pos,
                format!("`{key}` asks for {n}, more than the {rows} {what}"),
            );
        } else if out.iter().any(|(m, _)| *m == n) {
            cx.error(s.pos, format!("`{key}` lists the size {n} twice"));
        } else {
            out.push((n, s));
        }
    }
    let mut sizes: Vec<usize> = out.into_iter().map(|(n, _)| n).collect();
    sizes.sort_unstable();
    sizes
}

/// The noise levels above 0, sorted. `prompt` is the prompt and its `few_shot` when the
/// levels flip demonstrations, which it must show.
fn noise(
    cx: &mut Ctx<'_>,
    sweep: &RawSweep,
    dataset: &Dataset,
    prompt: Option<(&PromptSpec, &Spanned<usize>)>,
) -> Vec<f64> {
    let Some(first) = sweep.label_noise.first() else {
        return Vec::new();
    };
    let labels: std::collections::BTreeSet<&str> =
        dataset.train.iter().map(|r| r.target.as_str()).collect();
    if labels.len() < 2 {
        cx.error(
            first.pos,
            format!(
                "`label_noise` flips labels to another label, but the train split has {}",
                if labels.is_empty() {
                    "no rows".to_owned()
                } else {
                    "only one label".to_owned()
                }
            ),
        );
        return Vec::new();
    }
    if let Some((p, few_shot)) = prompt
        && p.few_shot == 0
    {
        cx.error(
            few_shot.pos,
            format!(
                "`label_noise` flips the labels of demonstrations, but prompt `{}` shows none: \
                 set `few_shot`",
                p.id
            ),
        );
        return Vec::new();
    }
    let mut levels: Vec<f64> = Vec::new();
    for x in &sweep.label_noise {
        if levels.contains(&x.value) {
            cx.error(
                x.pos,
                format!("`label_noise` lists the level {} twice", x.value),
            );
        } else {
            levels.push(x.value);
        }
    }
    levels.retain(|&x| x > 0.0);
    levels.sort_by(f64::total_cmp);
    levels
}
