//! How far an arm's confidence can be trusted: for each answer with a confidence (its label's
//! probability under `choices`, else the geometric mean of its tokens' probabilities, that is
//! `exp` of their mean log-probability) and a pass/fail value of the metric, the expected
//! calibration error over ten equal-width bins and the Brier score of confidence against
//! correctness.
//!
//! It measures only; what a threshold on confidence buys (review routing) is not here.

use domain::CallRecord;
use serde::{Deserialize, Serialize};

use crate::index::ResultIndex;

/// Bins of the expected calibration error: [0, 0.1), [0.1, 0.2), …, [0.9, 1.0].
pub const ECE_BINS: usize = 10;

/// An arm's calibration on the metric. Serialised in `leaderboard --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Answers with both a confidence and a pass/fail value.
    pub n: usize,
    /// Σ over bins of (answers in bin ÷ n) × |accuracy − mean confidence| of the bin.
    pub ece: f64,
    /// Mean of (confidence − correct)², correct being 1 or 0.
    pub brier: f64,
    pub mean_confidence: f64,
    /// Share of these answers that are correct.
    pub accuracy: f64,
}

/// The confidence of an answer, when the model or endpoint gave one.
pub fn confidence(call: &CallRecord) -> Option<f64> {
    if let Some(choice) = &call.choice {
        return choice.confidence;
    }
    let logprobs = call.token_logprobs.as_ref().filter(|l| !l.is_empty())?;
    let mean = logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64;
    Some(mean.exp())
}

/// Calibration from (confidence, correct) pairs; `None` when there are none.
pub fn calibration(pairs: &[(f64, bool)]) -> Option<Calibration> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let mut bins = [(0usize, 0.0f64, 0usize); ECE_BINS];
    for &(c, ok) in pairs {
        let b = ((c.clamp(0.0, 1.0) * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        bins[b].0 += 1;
        bins[b].1 += c;
        bins[b].2 += usize::from(ok);
    }
    let ece = bins
        .iter()
        .filter(|(count, _, _)| *count > 0)
        .map(|&(count, conf, right)| {
            let k = count as f64;
            (k / n) * (right as f64 / k - conf / k).abs()
        })
        .sum();
    let correct = |ok: bool| if ok { 1.0 } else { 0.0 };
    Some(Calibration {
        n: pairs.len(),
        ece,
        brier: pairs
            .iter()
            .map(|&(c, ok)| (c - correct(ok)).powi(2))
            .sum::<f64>()
            / n,
        mean_confidence: pairs.iter().map(|p| p.0).sum::<f64>() / n,
        accuracy: pairs.iter().filter(|p| p.1).count() as f64 / n,
    })
}

/// The calibration of `arm` on a pass/fail `metric`; `None` when the metric is not pass/fail
/// or no answer has a confidence.
pub(crate) fn arm_calibration(
    index: &ResultIndex<'_>,
    arm: &str,
    metric: &str,
) -> Option<Calibration> {
    if !index.is_binary(metric) {
        return None;
    }
    let pairs: Vec<(f64, bool)> = index
        .items
        .iter()
        .filter_map(|item| {
            let conf = confidence(index.call(arm, item)?)?;
            let value = index.value(arm, item, metric)?;
            Some((conf, value == 1.0))
        })
        .collect();
    calibration(&pairs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Reference, computed by hand (and with this Python, the usual ECE definition):
    /// ```text
    /// pairs = [(0.95,1),(0.9,1),(0.85,0),(0.6,1),(0.55,0),(0.3,0),(0.05,0)]
    /// bins: [0.9,1.0]: 0.95,0.9 -> acc 1, conf 0.925 -> |0.075| * 2/7
    ///       [0.8,0.9): 0.85 -> acc 0, conf 0.85 -> 0.85 * 1/7
    ///       [0.6,0.7): 0.6 -> acc 1 -> 0.4 * 1/7;  [0.5,0.6): 0.55 -> acc 0 -> 0.55 * 1/7
    ///       [0.3,0.4): 0.3 -> 0.3 * 1/7;  [0.0,0.1): 0.05 -> 0.05 * 1/7
    /// ece = (0.15 + 0.85 + 0.4 + 0.55 + 0.3 + 0.05) / 7 = 2.3 / 7 = 0.328571...
    /// brier = (0.0025 + 0.01 + 0.7225 + 0.16 + 0.3025 + 0.09 + 0.0025) / 7 = 1.29 / 7
    /// ```
    #[test]
    fn ece_and_brier_match_a_hand_computation() {
        let pairs = [
            (0.95, true),
            (0.9, true),
            (0.85, false),
            (0.6, true),
            (0.55, false),
            (0.3, false),
            (0.05, false),
        ];
        let c = calibration(&pairs).unwrap();
        assert_eq!(c.n, 7);
        assert!((c.ece - 2.3 / 7.0).abs() < 1e-12, "{c:?}");
        assert!((c.brier - 1.29 / 7.0).abs() < 1e-12, "{c:?}");
        assert!((c.accuracy - 3.0 / 7.0).abs() < 1e-12);
        assert!(calibration(&[]).is_none());
    }

    #[test]
    fn a_perfectly_calibrated_arm_has_no_error() {
        let pairs: Vec<(f64, bool)> = (0..10).map(|i| (1.0, i < 10)).collect();
        let c = calibration(&pairs).unwrap();
        assert_eq!((c.ece, c.brier), (0.0, 0.0));
    }
}
