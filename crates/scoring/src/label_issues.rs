//! Label issues by confident learning (Northcutt, Jiang & Chuang, JAIR 2021), as cleanlab's
//! `find_label_issues(labels, pred_probs, filter_by="confident_learning",
//! return_indices_ranked_by="self_confidence")` finds them. Given out-of-sample probabilities
//! of every class for every row:
//!
//! 1. each class `j` gets a threshold `t_j`, the mean probability of `j` over the rows labelled
//!    `j` (how confident the model is, on average, when the label is right);
//! 2. each row is counted in the confident joint at (given label, `j*`), where `j*` is the most
//!    probable class among those whose probability reaches its threshold; a row where no class
//!    reaches its threshold is not counted;
//! 3. a row counted off the diagonal (`j*` ≠ its label) is a label issue, and issues are ranked by
//!    self-confidence, the probability of the given label, lowest first.
//!
//! Pure arithmetic; where the probabilities come from is the caller's business, but they must be
//! out of sample (a model that saw the row's label would vouch for it).

/// A row whose label is probably wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelIssue {
    /// Index of the row in the input.
    pub row: usize,
    pub given: usize,
    /// The class confident learning counts it under.
    pub likely: usize,
    /// Probability of the given label.
    pub self_confidence: f64,
}

/// Per class, the mean probability of that class over the rows labelled with it; None for a
/// class no row has.
pub fn class_thresholds(labels: &[usize], probs: &[Vec<f64>], classes: usize) -> Vec<Option<f64>> {
    let mut sum = vec![0.0; classes];
    let mut n = vec![0usize; classes];
    for (&label, p) in labels.iter().zip(probs) {
        if let Some(&v) = p.get(label) {
            sum[label] += v;
            n[label] += 1;
        }
    }
    sum.iter()
        .zip(&n)
        .map(|(&s, &k)| (k > 0).then(|| s / k as f64))
        .collect()
}

/// The class row `p` is counted under in the confident joint, if any.
fn confident_class(p: &[f64], thresholds: &[Option<f64>]) -> Option<usize> {
    // cleanlab compares against `threshold - 1e-6`, so a row at a class's mean counts.
    p.iter()
        .enumerate()
        .filter(|&(j, &v)| {
            thresholds
                .get(j)
                .copied()
                .flatten()
                .is_some_and(|t| v >= t - 1e-6)
        })
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(j, _)| j)
}

/// The label issues of `labels` (class indices) given `probs` (one row of `classes`
/// probabilities per label), lowest self-confidence first (ties: input order).
pub fn label_issues(labels: &[usize], probs: &[Vec<f64>], classes: usize) -> Vec<LabelIssue> {
    let thresholds = class_thresholds(labels, probs, classes);
    let mut issues: Vec<LabelIssue> = labels
        .iter()
        .zip(probs)
        .enumerate()
        .filter_map(|(row, (&given, p))| {
            let likely = confident_class(p, &thresholds)?;
            (likely != given).then(|| LabelIssue {
                row,
                given,
                likely,
                self_confidence: p.get(given).copied().unwrap_or(0.0),
            })
        })
        .collect();
    issues.sort_by(|a, b| {
        a.self_confidence
            .total_cmp(&b.self_confidence)
            .then(a.row.cmp(&b.row))
    });
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand computation, three classes and eight rows:
    /// thresholds: class 0 rows {0,1,2} → (0.9 + 0.8 + 0.2)/3 = 0.6333; class 1 rows {3,4,5} →
    /// (0.7 + 0.6 + 0.1)/3 = 0.4667; class 2 rows {6,7} → (0.8 + 0.5)/2 = 0.65.
    /// Row 2 (label 0, p = [0.2, 0.7, 0.1]): only class 1 reaches its threshold → issue, sc 0.2.
    /// Row 5 (label 1, p = [0.1, 0.1, 0.8]): class 2 → issue, sc 0.1. Row 7 (label 2,
    /// p = [0.3, 0.2, 0.5]): no class reaches its threshold → not counted. The rest stay on
    /// the diagonal. Ranked: row 5 (0.1), then row 2 (0.2).
    #[test]
    fn confident_learning_matches_a_hand_computation() {
        let labels = [0, 0, 0, 1, 1, 1, 2, 2];
        let probs: Vec<Vec<f64>> = [
            [0.9, 0.05, 0.05],
            [0.8, 0.1, 0.1],
            [0.2, 0.7, 0.1],
            [0.2, 0.7, 0.1],
            [0.3, 0.6, 0.1],
            [0.1, 0.1, 0.8],
            [0.1, 0.1, 0.8],
            [0.3, 0.2, 0.5],
        ]
        .iter()
        .map(|r| r.to_vec())
        .collect();
        let t = class_thresholds(&labels, &probs, 3);
        assert!((t[0].unwrap() - 1.9 / 3.0).abs() < 1e-12);
        assert!((t[1].unwrap() - 1.4 / 3.0).abs() < 1e-12);
        assert!((t[2].unwrap() - 0.65).abs() < 1e-12);
        let issues = label_issues(&labels, &probs, 3);
        let got: Vec<(usize, usize, usize)> =
            issues.iter().map(|i| (i.row, i.given, i.likely)).collect();
        assert_eq!(got, [(5, 1, 2), (2, 0, 1)]);
        assert!((issues[0].self_confidence - 0.1).abs() < 1e-12);
    }

    #[test]
    fn a_class_nobody_has_gets_no_threshold() {
        let issues = label_issues(&[0, 0], &[vec![0.9, 0.1, 0.0], vec![0.4, 0.6, 0.0]], 3);
        // Class 1 has no rows, so no threshold: row 1 cannot be counted under it.
        assert!(issues.is_empty());
        assert_eq!(class_thresholds(&[0], &[vec![1.0, 0.0]], 2)[1], None);
    }
}
