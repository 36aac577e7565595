//! A cheaper probe of label probabilities for `data check`: sentence embeddings of every train
//! and eval input (all-MiniLM-L6-v2 by default, through `embed`), and for each row a vote of
//! its `k` most similar rows in the other folds (cross-validation, so the row's own label never
//! votes), weighted by cosine similarity and smoothed. The probabilities are out of fold, as
//! confident learning requires (cleanlab: "never provide" in-sample predictions).
//!
//! Folds come from a hash of the row id, so the same data gives the same folds. The search is
//! exhaustive: every pair of rows in different folds, which is seconds for thousands of rows.

use std::collections::BTreeSet;

use domain::ModelSource;
use experiment::Plan;

use crate::events::{Emitter, Event};
use crate::label_probs::{LabelProbs, ProbeError, RowProbs};

/// Texts embedded per call.
const EMBED_BATCH: usize = 32;
/// Added to every class's vote, so no probability is zero.
const SMOOTHING: f64 = 0.01;

/// How the kNN probe runs.
#[derive(Debug, Clone)]
pub struct KnnProbe {
    pub model: ModelSource,
    pub folds: usize,
    pub neighbours: usize,
}

/// Label probabilities of the train and eval rows of `plan` (at most `limit` of each) from
/// their embeddings' out-of-fold neighbours; the labels are the distinct targets, sorted.
pub async fn knn_label_probabilities(
    plan: &Plan,
    probe: &KnnProbe,
    limit: Option<usize>,
    events: tokio::sync::mpsc::Sender<Event>,
) -> Result<LabelProbs, ProbeError> {
    let take = limit.unwrap_or(usize::MAX);
    let rows: Vec<(&'static str, String, String, String)> =
        [("train", &plan.dataset.train), ("eval", &plan.dataset.eval)]
            .into_iter()
            .flat_map(|(split, rows)| {
                rows.iter()
                    .take(take)
                    .map(move |r| (split, r.id.clone(), r.input.clone(), r.target.clone()))
            })
            .collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|r| r.3.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if labels.len() < 2 || rows.len() < probe.folds.max(2) {
        return Err(ProbeError::BadArm(
            "the kNN probe needs at least two labels and a row per fold".to_owned(),
        ));
    }
    let path = crate::local::resolve_model(&probe.model, &Emitter::new(events))
        .await
        .map_err(ProbeError::Model)?;
    let texts: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
    let vectors = tokio::task::spawn_blocking(move || embed_all(&path, &texts))
        .await
        .map_err(|e| ProbeError::Model(format!("the embedding thread failed: {e}")))??;
    let given: Vec<usize> = rows
        .iter()
        .map(|r| labels.iter().position(|l| *l == r.3).unwrap_or(0))
        .collect();
    let folds: Vec<usize> = rows.iter().map(|r| fold(&r.1, probe.folds)).collect();
    let probs = vote(&vectors, &given, &folds, labels.len(), probe.neighbours);
    Ok(LabelProbs {
        rows: rows
            .into_iter()
            .zip(given)
            .zip(probs)
            .map(|(((split, id, _, _), given), probs)| RowProbs {
                split,
                id,
                given,
                probs,
            })
            .collect(),
        labels,
        demos_left_out: 0,
        unknown_labels: 0,
        failed: 0,
    })
}

fn embed_all(path: &std::path::Path, texts: &[String]) -> Result<Vec<Vec<f32>>, ProbeError> {
    let model_err =
        |e: &dyn std::fmt::Display| ProbeError::Model(format!("{}: {e}", path.display()));
    let embedder = embed::Embedder::load(path).map_err(|e| model_err(&e))?;
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(EMBED_BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.extend(embedder.embed(&refs).map_err(|e| model_err(&e))?);
    }
    Ok(out)
}

/// The fold of row `id`: FNV-1a of the id, modulo `folds`.
pub(crate) fn fold(id: &str, folds: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % folds.max(1) as u64) as usize
}

/// Per row, the smoothed, similarity-weighted label shares of its `k` most similar rows in
/// other folds (vectors are unit length, so the dot product is the cosine).
pub(crate) fn vote(
    vectors: &[Vec<f32>],
    labels: &[usize],
    folds: &[usize],
    classes: usize,
    k: usize,
) -> Vec<Vec<f64>> {
    (0..vectors.len())
        .map(|i| {
            let mut near: Vec<(f32, usize)> = (0..vectors.len())
                .filter(|&j| folds[j] != folds[i])
                .map(|j| (dot(&vectors[i], &vectors[j]), j))
                .collect();
            near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut votes = vec![SMOOTHING; classes];
            for &(sim, j) in near.iter().take(k.max(1)) {
                votes[labels[j]] += f64::from(sim.max(0.0));
            }
            let total: f64 = votes.iter().sum();
            votes.iter().map(|v| v / total).collect()
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tight clusters in 2-D; row 3 sits in cluster 0 but carries label 1. Folds alternate,
    /// so each row's neighbours come from the other fold only. Hand computation for row 3 with
    /// k = 2: its other-fold neighbours are rows 0 and 2 (cluster 0, label 0, cosines ≈ 1), so
    /// label 0 gets ≈ 2 + 0.01 and label 1 0.01: p(1) ≈ 0.005.
    #[test]
    fn a_row_among_the_other_label_gets_a_low_probability_of_its_own() {
        let unit = |x: f32, y: f32| {
            let n = (x * x + y * y).sqrt();
            vec![x / n, y / n]
        };
        let vectors = vec![
            unit(1.0, 0.05),
            unit(1.0, 0.1),
            unit(1.0, 0.0),
            unit(1.0, 0.08),
            unit(0.05, 1.0),
            unit(0.0, 1.0),
        ];
        let labels = [0, 0, 0, 1, 1, 1];
        let folds = [0, 0, 1, 1, 0, 1];
        let p = vote(&vectors, &labels, &folds, 2, 2);
        assert!(p[3][1] < 0.01, "{:?}", p[3]);
        assert!(
            p[4][1] > 0.3,
            "row 4's one other-fold neighbour of its cluster is row 5: {:?}",
            p[4]
        );
        for row in &p {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let issues = scoring::label_issues(&labels, &p, 2);
        assert_eq!(issues.first().map(|i| i.row), Some(3));
    }
}
