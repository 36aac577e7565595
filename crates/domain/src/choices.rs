//! Answers constrained to a set of labels (`choices:` in the YAML): the resolved label set, how
//! an answer was mapped onto it, and the record of that choice that every answer stores.
//!
//! It holds vocabulary and two small rules that every producer of a choice shares (the softmax
//! over label log-likelihoods, and the mapping of free text onto a label), so local models,
//! fine-tunes and hosted endpoints record choices alike. It decides nothing about providers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The labels an answer must be one of, resolved from the spec (a list, or the distinct
/// targets of the train split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choices {
    /// In the spec's order (or sorted, for `from_targets`); distinct, non-empty.
    pub labels: Vec<String>,
    /// Rank local log-likelihoods per byte of the label (lm-evaluation-harness's `acc_norm`)
    /// instead of summed (`acc`).
    #[serde(default)]
    pub normalize: bool,
}

/// How an answer's label was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceVia {
    /// The label with the highest log-likelihood after the prompt (local models).
    Likelihood,
    /// The endpoint's structured output (a JSON-schema enum) named it.
    Schema,
    /// Free text equal to a label, case-folded and trimmed.
    Exact,
    /// The free text's first word or first line is a label.
    FirstWord,
    /// The free text contains exactly one label.
    Contains,
    /// No label could be read from the free text.
    Unmapped,
}

impl ChoiceVia {
    pub const ALL: [ChoiceVia; 6] = [
        ChoiceVia::Likelihood,
        ChoiceVia::Schema,
        ChoiceVia::Exact,
        ChoiceVia::FirstWord,
        ChoiceVia::Contains,
        ChoiceVia::Unmapped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChoiceVia::Likelihood => "likelihood",
            ChoiceVia::Schema => "schema",
            ChoiceVia::Exact => "exact",
            ChoiceVia::FirstWord => "first_word",
            ChoiceVia::Contains => "contains",
            ChoiceVia::Unmapped => "unmapped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for ChoiceVia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an answer chose, as stored with its call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRecord {
    /// The label, or `None` when the free text named none (`via` is `Unmapped`).
    pub label: Option<String>,
    pub via: ChoiceVia,
    /// Probability of `label`: its softmax share over the labels' log-likelihoods (local), or
    /// the probability of its tokens where the endpoint returned log-probabilities; `None`
    /// when nothing measured it.
    pub confidence: Option<f64>,
    /// One probability per label, in label order, when every label was scored (local models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probabilities: Vec<f64>,
}

/// Softmax of `scores` (natural-log likelihoods), computed stably; empty in, empty out.
pub fn softmax(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return vec![1.0 / scores.len().max(1) as f64; scores.len()];
    }
    let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// The choice of the label with the highest score (summed log-likelihoods, or per byte of the
/// label when `choices.normalize`); ties go to the earlier label.
pub fn choose_by_likelihood(choices: &Choices, logliks: &[f64]) -> ChoiceRecord {
    let ranked: Vec<f64> = if choices.normalize {
        logliks
            .iter()
            .zip(&choices.labels)
            .map(|(l, label)| l / label.len().max(1) as f64)
            .collect()
    } else {
        logliks.to_vec()
    };
    let probabilities = softmax(&ranked);
    let best = (0..ranked.len()).fold(None, |best: Option<usize>, i| match best {
        Some(b) if ranked[b] >= ranked[i] => Some(b),
        _ => Some(i),
    });
    ChoiceRecord {
        label: best.map(|b| choices.labels[b].clone()),
        via: ChoiceVia::Likelihood,
        confidence: best.map(|b| probabilities[b]),
        probabilities,
    }
}

/// Maps a free-text answer onto a label: equal after case-folding and trimming, else its first
/// word or first line is one, else it contains exactly one label as a whole word. The mapping
/// is recorded in `via`; an answer naming no label (or several) is `Unmapped`.
pub fn map_free_text(choices: &Choices, text: &str) -> (Option<String>, ChoiceVia) {
    let fold = |s: &str| {
        s.trim()
            .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
            .to_lowercase()
    };
    let folded: Vec<String> = choices.labels.iter().map(|l| fold(l)).collect();
    let find = |candidate: &str| {
        let c = fold(candidate);
        folded.iter().position(|l| *l == c)
    };
    let label = |i: usize| Some(choices.labels[i].clone());
    if let Some(i) = find(text) {
        return (label(i), ChoiceVia::Exact);
    }
    let first_line = text.trim().lines().next().unwrap_or("");
    let first_word = first_line.split_whitespace().next().unwrap_or("");
    if let Some(i) = find(first_word).or_else(|| find(first_line)) {
        return (label(i), ChoiceVia::FirstWord);
    }
    let words: Vec<String> = text.split_whitespace().map(fold).collect();
    let joined = format!(" {} ", words.join(" "));
    let found: Vec<usize> = (0..folded.len())
        .filter(|&i| !folded[i].is_empty() && joined.contains(&format!(" {} ", folded[i])))
        .collect();
    match found.as_slice() {
        [i] => (label(*i), ChoiceVia::Contains),
        _ => (None, ChoiceVia::Unmapped),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn labels(xs: &[&str]) -> Choices {
        Choices {
            labels: xs.iter().map(|s| s.to_string()).collect(),
            normalize: false,
        }
    }

    #[test]
    fn free_text_maps_exact_then_first_word_then_contains() {
        let c = labels(&["positive", "negative", "very negative"]);
        let check = |text: &str, label: Option<&str>, via: ChoiceVia| {
            assert_eq!(
                map_free_text(&c, text),
                (label.map(str::to_string), via),
                "{text:?}"
            );
        };
        check(" Positive. ", Some("positive"), ChoiceVia::Exact);
        check("very negative", Some("very negative"), ChoiceVia::Exact);
        check(
            "Negative: the reviewer hated it",
            Some("negative"),
            ChoiceVia::FirstWord,
        );
        check(
            "I would say it is positive overall.",
            Some("positive"),
            ChoiceVia::Contains,
        );
        check(
            "positive or negative, hard to tell",
            Some("positive"),
            ChoiceVia::FirstWord,
        );
        check(
            "it is neither positive nor negative",
            None,
            ChoiceVia::Unmapped,
        );
        check("no idea", None, ChoiceVia::Unmapped);
        check("", None, ChoiceVia::Unmapped);
    }

    /// Reference: Python, `e = [math.exp(v - max(x)) for v in x]; [v / sum(e) for v in e]` for
    /// x = [-1.2, -0.3, -2.5], rounded to 5 places.
    #[test]
    fn softmax_matches_numpy() {
        let p = softmax(&[-1.2, -0.3, -2.5]);
        let expected = [0.26794, 0.65903, 0.07302];
        for (a, b) in p.iter().zip(expected) {
            assert!((a - b).abs() < 1e-4, "{p:?}");
        }
        assert_eq!(softmax(&[]), Vec::<f64>::new());
    }

    #[test]
    fn likelihood_picks_the_best_label_summed_or_per_byte() {
        let mut c = labels(&["no", "absolutely"]);
        // Summed: "no" (-2.0) beats "absolutely" (-3.0); per byte: -1.0 against -0.3.
        let summed = choose_by_likelihood(&c, &[-2.0, -3.0]);
        assert_eq!(summed.label.as_deref(), Some("no"));
        c.normalize = true;
        let per_byte = choose_by_likelihood(&c, &[-2.0, -3.0]);
        assert_eq!(per_byte.label.as_deref(), Some("absolutely"));
        let p = per_byte.confidence.unwrap();
        assert!((p - 1.0 / (1.0 + (-0.7f64).exp())).abs() < 1e-12, "{p}");
        assert_eq!(per_byte.probabilities.len(), 2);
    }
}
