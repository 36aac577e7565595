//! Learning curves and label-noise sweeps as data: which train rows a `train_sizes` point
//! learns from, which labels a `label_noise` level flips, and the ids of the arms they become.
//!
//! Both are seeded by the dataset's split seed, so every fine-tune and prompt of a spec sees
//! the same subsets and the same flips (their curves are comparable point by point), and
//! both are nested: each subset holds every smaller one, and each noise level flips every row
//! a lower level flips (to the same wrong label), so a curve moves by adding data or noise
//! alone. Parsing the keys is `raw/sweep.rs`'s, expanding them into plan entries
//! `validate/sweep.rs`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::plan::{FinetuneSpec, Plan, Row};
use crate::rng::SplitMix64;

/// A train row's part in every `label_noise` level.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LabelFlip {
    /// Its place in the flip order: level `x` flips the rows ranked below `round(x × rows)`.
    pub rank: usize,
    /// The label it shows when flipped: another label of the train split, drawn uniformly.
    pub label: String,
}

/// For serde's `skip_serializing_if`: a share that is exactly zero.
pub(crate) fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Rows flipped at noise `level` out of `rows`.
pub(crate) fn flipped_count(level: f64, rows: usize) -> usize {
    ((level * rows as f64).round() as usize).min(rows)
}

/// The flip order and flipped labels of `train` (see [`LabelFlip`]); empty when the train
/// split has fewer than two labels, as nothing can then be flipped to another.
pub(crate) fn label_flips(train: &[Row], seed: u64) -> BTreeMap<String, LabelFlip> {
    let labels: Vec<&str> = train
        .iter()
        .map(|r| r.target.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if labels.len() < 2 {
        return BTreeMap::new();
    }
    let mut order: Vec<usize> = (0..train.len()).collect();
    SplitMix64::from_label(seed, "label-noise", "order").shuffle_prefix(&mut order, train.len());
    order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let row = &train[i];
            let others: Vec<&str> = labels
                .iter()
                .copied()
                .filter(|l| *l != row.target)
                .collect();
            let pick = SplitMix64::from_label(seed, "label-noise", &row.id).below(others.len());
            let flip = LabelFlip {
                rank,
                label: others[pick].to_owned(),
            };
            (row.id.clone(), flip)
        })
        .collect()
}

/// The order `train_sizes` subsets take rows in: every prefix is a subset, and each keeps the
/// labels' shares of the whole split as nearly as a prefix can (a row's key is its place in
/// its label's seeded shuffle, scaled by the label's size), so a small subset still shows
/// every frequent label. Returns indices into `train`.
pub(crate) fn nested_order(train: &[Row], seed: u64) -> Vec<usize> {
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, row) in train.iter().enumerate() {
        by_label.entry(row.target.as_str()).or_default().push(i);
    }
    let mut keyed: Vec<(f64, u64, usize)> = Vec::with_capacity(train.len());
    for (label, mut rows) in by_label {
        let n = rows.len();
        SplitMix64::from_label(seed, "train-sizes", label).shuffle_prefix(&mut rows, n);
        for (place, i) in rows.into_iter().enumerate() {
            let key = (place as f64 + 0.5) / n as f64;
            let tie = SplitMix64::from_label(seed, "train-sizes", &train[i].id).next_u64();
            keyed.push((key, tie, i));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// The arm id of a `train_sizes` point: `lora~n40`. `~` is outside the id alphabet, so a
/// derived id never meets a written one.
pub(crate) fn size_id(family: &str, size: usize, prompt: bool) -> String {
    let tag = if prompt { 'k' } else { 'n' };
    format!("{family}~{tag}{size}")
}

/// The arm id of a `label_noise` point: `lora~noise0.2`.
pub(crate) fn noise_id(family: &str, level: f64) -> String {
    format!("{family}~noise{level}")
}

impl Plan {
    /// The train rows fine-tune `ft` learns from, in file order: the first
    /// [`FinetuneSpec::train_size`] rows of [`nested_order`] (all of them for a declared
    /// fine-tune), with the labels its `label_noise` flips.
    pub fn finetune_train(&self, ft: &FinetuneSpec) -> Vec<Row> {
        let train = &self.dataset.train;
        let chosen: Vec<usize> = if ft.train_size == 0 || ft.train_size >= train.len() {
            (0..train.len()).collect()
        } else {
            let mut order = nested_order(train, self.dataset.seed);
            order.truncate(ft.train_size);
            order.sort_unstable();
            order
        };
        chosen
            .into_iter()
            .map(|i| {
                let row = &train[i];
                let target = self.noisy_target(row, ft.label_noise).to_owned();
                Row {
                    target,
                    ..row.clone()
                }
            })
            .collect()
    }

    /// `row`'s label at noise `level`: flipped when its rank falls below the level's count.
    pub fn noisy_target<'a>(&'a self, row: &'a Row, level: f64) -> &'a str {
        if level > 0.0
            && let Some(flip) = self.dataset.label_flips.get(&row.id)
            && flip.rank < flipped_count(level, self.dataset.train.len())
        {
            return &flip.label;
        }
        &row.target
    }
}
