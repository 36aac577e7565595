//! Scores answers and aggregates scores: the scorers every arm is judged by, and the statistics
//! (means, percentiles, bootstrap intervals, paired tests, selective-prediction thresholds with a
//! guarantee) the leaderboard, `compare` and the decision report print, with the agreement
//! between two raters (Cohen's κ, Spearman's ρ) that a judge's calibration rests on.
//!
//! The crate does no IO and holds no state: strings and numbers in, numbers out. It knows
//! nothing of runs, arms or the store; `runner` scores answers with it, `report` aggregates.
//!
//! # Scorers
//!
//! Every scorer yields a value in [0, 1]; all but `f1` and `rouge-l` yield only 0 or 1.
//!
//! | kind | 1 when |
//! |---|---|
//! | `equals` | the normal forms of answer and target are equal ([`normalize_equals`]: first non-blank line, lowercased, trailing `. , ; : ! ?` and surrounding quotes stripped) |
//! | `contains` | the lowercased answer contains the lowercased, trimmed `value`, or the target when `value` is absent (an empty one always matches) |
//! | `regex` | the pattern matches anywhere in the raw answer (anchor with `^`/`$`, add `(?i)` for case-insensitivity); `{{target}}` is replaced by the regex-escaped target |
//! | `is-json` | the answer, or a fenced ```` ```json ```` block in it, parses as JSON |
//! | `json-field` | that JSON has the dotted `field` and its value, in string form, equals `value` or the target (normalised as `equals`; numbers compare as numbers) |
//! | `f1` | SQuAD token F1 (lowercase, ASCII punctuation and the articles a/an/the removed) |
//! | `rouge-l` | ROUGE-L F-measure (beta = 1) over lowercased alphanumeric tokens |
//! | `similar` | with `threshold`, the cosine of the answer's and the reference's sentence embeddings is at least the threshold; without, the score is `max(0, cosine)` ([`similar_score`]) |
//!
//! `similar` needs embeddings, which this crate does not compute: the runner embeds answer and
//! reference (crate `embed`) and hands [`cosine`] and [`similar_score`] the vectors; the text
//! scorers' [`Scorer::score`] scores a `similar` kind 0.
//!
//! [`Scorer::new`] checks a kind once (compiles its regex) so a spec is validated before any
//! call is paid for; [`score`] is the one-off convenience.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod agreement;
mod label_issues;
mod learning_curve;
mod scorers;
mod selective;
mod similar;
mod stats;
mod text;

pub use agreement::{KappaWeights, bootstrap_stat, cohen_kappa, spearman};
pub use label_issues::{LabelIssue, class_thresholds, label_issues};
pub use learning_curve::{
    CURVE_RESAMPLES, CurveFit, POWER_LAW_MIN_POINTS, examples_needed_ci, fit as fit_curve,
};
pub use scorers::{Scorer, score};
pub use selective::{
    CoveragePoint, Selection, Threshold, at_threshold, binomial_cdf, clopper_pearson_upper,
    risk_coverage, select_threshold,
};
pub use similar::{cosine, similar_score};
pub use stats::{
    DEFAULT_RESAMPLES, DEFAULT_SEED, McNemar, PairedDiff, bootstrap_ci, mcnemar, mean,
    paired_bootstrap, percentile,
};
pub use text::normalize_equals;

/// Why a scorer cannot be built from its spec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `regex` scorer's pattern (with a stand-in for `{{target}}`) does not compile.
    #[error("invalid regex pattern {pattern:?}")]
    InvalidRegex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
}
