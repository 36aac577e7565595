//! `compare`: two arms of one run, item by item. The paired bootstrap says whether the gap in
//! the metric is real (McNemar's exact test too, for pass/fail metrics), and the items where
//! the two arms disagree are listed side by side, so a person can read what the numbers mean.
//!
//! It compares exactly two arms on one metric and picks no winner beyond the sign of the
//! difference; ranking all arms is the leaderboard's job, choosing one the decision report's.

use std::collections::HashMap;

use domain::RunResults;
use serde::{Deserialize, Serialize};

use crate::escape::{Sink, escape};
use crate::format::{self, Align, Format, Table};
use crate::index::{ResultIndex, succeeded};
use crate::leaderboard::metrics;

/// Why two arms cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The run has no arm of that name.
    #[error("unknown arm {arm:?}; known arms: {}", .known.join(", "))]
    UnknownArm { arm: String, known: Vec<String> },
    /// The run has scores, but none of this metric.
    #[error("no scores for metric {metric:?} in this run; known metrics: {}", .known.join(", "))]
    UnknownMetric { metric: String, known: Vec<String> },
}

/// Two arms compared on the same items. `a` is the first arm named, and every difference is
/// `a − b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// The scorer id compared.
    pub metric: String,
    /// Paired items: every eval item of the run.
    pub n: usize,
    /// Each arm's quality, as the leaderboard computes it (errors count 0).
    pub quality_a: f64,
    pub quality_b: f64,
    /// Items without a usable value for each arm (failed call, no call, or no score).
    pub errors_a: usize,
    pub errors_b: usize,
    /// `quality_a − quality_b`.
    pub diff: f64,
    /// 95% paired-bootstrap interval of `diff`.
    pub ci_low: f64,
    pub ci_high: f64,
    /// Two-sided paired-bootstrap p-value (`scoring::paired_bootstrap`).
    pub p_value: f64,
    /// McNemar's exact test, when every value of both arms is 0 or 1.
    pub mcnemar: Option<scoring::McNemar>,
    /// Whether the interval excludes 0: the data say which arm is better.
    pub decisive: bool,
    /// Items where the two arms score differently, largest gap first, then in item order.
    pub disagreements: Vec<Disagreement>,
}

/// One item the two arms score differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disagreement {
    pub item_id: String,
    /// The item's input and target; empty when the run did not store its items.
    pub input: String,
    pub target: String,
    /// Each arm's answer; `None` when its call failed or never ran.
    pub answer_a: Option<String>,
    pub answer_b: Option<String>,
    /// Each arm's value of the metric, errors as 0.
    pub score_a: f64,
    pub score_b: f64,
    /// Why a call failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_b: Option<String>,
}

/// Compares arms `a` and `b` of a run on `metric`, pairing them item by item with the
/// leaderboard's rule (an item without a usable value counts 0). Fails when an arm is not in
/// the run, or when the run has scores but none of `metric`.
pub fn compare(results: &RunResults, a: &str, b: &str, metric: &str) -> Result<Comparison, Error> {
    for arm in [a, b] {
        if !results.arms.iter().any(|x| x.arm == arm) {
            return Err(Error::UnknownArm {
                arm: arm.to_string(),
                known: results.arms.iter().map(|x| x.arm.clone()).collect(),
            });
        }
    }
    let known = metrics(results);
    if !known.is_empty() && !known.iter().any(|m| m == metric) {
        return Err(Error::UnknownMetric {
            metric: metric.to_string(),
            known,
        });
    }

    let view = crate::review::quality_view(results);
    let results = view.as_ref();
    let index = ResultIndex::new(results);
    let (xa, errors_a) = index.values(a, metric);
    let (xb, errors_b) = index.values(b, metric);
    let paired =
        scoring::paired_bootstrap(&xa, &xb, scoring::DEFAULT_RESAMPLES, scoring::DEFAULT_SEED);
    let is_binary = |xs: &[f64]| xs.iter().all(|&x| x == 0.0 || x == 1.0);
    let mcnemar = (!xa.is_empty() && is_binary(&xa) && is_binary(&xb)).then(|| {
        let pass = |xs: &[f64]| xs.iter().map(|&x| x == 1.0).collect::<Vec<_>>();
        scoring::mcnemar(&pass(&xa), &pass(&xb))
    });
    let n = xa.len();
    let (quality_a, quality_b, diff) = if n == 0 {
        (0.0, 0.0, 0.0)
    } else {
        (scoring::mean(&xa), scoring::mean(&xb), paired.diff)
    };
    let (ci_low, ci_high) = if n == 0 {
        (0.0, 0.0)
    } else {
        (paired.ci_low, paired.ci_high)
    };

    let item_text: HashMap<&str, (&str, &str)> = results
        .items
        .iter()
        .map(|i| (i.item_id.as_str(), (i.input.as_str(), i.target.as_str())))
        .collect();
    let answer = |arm: &str, item: &str| match index.call(arm, item) {
        Some(c) if succeeded(c) => (c.response.clone(), None),
        Some(c) => (None, c.error.clone()),
        None => (None, None),
    };
    let mut disagreements: Vec<Disagreement> = index
        .items
        .iter()
        .zip(xa.iter().zip(&xb))
        .filter(|(_, (sa, sb))| (*sa - *sb).abs() > 1e-12)
        .map(|(item, (&score_a, &score_b))| {
            let (input, target) = item_text.get(item).copied().unwrap_or(("", ""));
            let (answer_a, error_a) = answer(a, item);
            let (answer_b, error_b) = answer(b, item);
            Disagreement {
                item_id: item.to_string(),
                input: input.to_string(),
                target: target.to_string(),
                answer_a,
                answer_b,
                score_a,
                score_b,
                error_a,
                error_b,
            }
        })
        .collect();
    // Stable: items with equal gaps keep run order.
    disagreements.sort_by(|x, y| {
        (y.score_a - y.score_b)
            .abs()
            .total_cmp(&(x.score_a - x.score_b).abs())
    });

    Ok(Comparison {
        a: a.to_string(),
        b: b.to_string(),
        metric: metric.to_string(),
        n,
        quality_a,
        quality_b,
        errors_a,
        errors_b,
        diff,
        ci_low,
        ci_high,
        p_value: paired.p_value,
        mcnemar,
        decisive: n > 0 && (ci_low > 0.0 || ci_high < 0.0),
        disagreements,
    })
}

/// The verdict in one line: `A beats B by 0.070 [0.020, 0.120] on equals, p = 0.004 —
/// decisive`. When `b` is ahead the sentence is turned around (and the interval with it), so
/// the number printed is always the winner's lead.
pub fn summary(c: &Comparison) -> String {
    if c.n == 0 {
        return format!("{} and {} have no eval items to compare", c.a, c.b);
    }
    let verdict = if c.decisive {
        "decisive"
    } else {
        "not decisive (the 95% CI contains 0)"
    };
    let p = format::p_value(c.p_value);
    if c.diff == 0.0 {
        return format!(
            "{} and {} tie on {}: difference 0.000 [{:.3}, {:.3}], {p} — {verdict}",
            c.a, c.b, c.metric, c.ci_low, c.ci_high
        );
    }
    let (winner, loser, lead, lo, hi) = if c.diff > 0.0 {
        (&c.a, &c.b, c.diff, c.ci_low, c.ci_high)
    } else {
        // `+ 0.0` turns a negated zero into zero, so it never prints as `-0.000`.
        (&c.b, &c.a, -c.diff, -c.ci_high + 0.0, -c.ci_low + 0.0)
    };
    format!(
        "{winner} beats {loser} by {lead:.3} [{lo:.3}, {hi:.3}] on {}, {p} — {verdict}",
        c.metric
    )
}

/// The supporting figures under the summary: each arm's quality and errors, and McNemar's test
/// when it applies.
fn details(c: &Comparison) -> Vec<String> {
    let mut lines = vec![format!(
        "{}: {} {} ({}), {} {} ({}), over {} paired items",
        c.metric,
        c.a,
        format::quality(c.quality_a),
        errors(c.errors_a),
        c.b,
        format::quality(c.quality_b),
        errors(c.errors_b),
        c.n
    )];
    if let Some(m) = &c.mcnemar {
        lines.push(format!(
            "McNemar exact test: {} items only {} passes, {} only {} passes, {}",
            m.a_only,
            c.a,
            m.b_only,
            c.b,
            format::p_value(m.p_value)
        ));
    }
    lines
}

/// Longest input, target and answer shown in table form; JSON, CSV and Markdown keep the full
/// text.
const INPUT_CHARS: usize = 40;
const TARGET_CHARS: usize = 20;
const ANSWER_CHARS: usize = 30;

/// Prints a comparison: the summary and details, then the disagreements side by side (A is
/// the first arm named, B the second). The table truncates long text; Markdown keeps it; JSON is
/// the [`Comparison`] with its `summary`; CSV is the disagreements alone, one per record.
pub fn render_compare(c: &Comparison, format: Format) -> String {
    match format {
        Format::Json => {
            #[derive(Serialize)]
            struct WithSummary<'a> {
                summary: String,
                #[serde(flatten)]
                comparison: &'a Comparison,
            }
            format::json_pretty(&WithSummary {
                summary: summary(c),
                comparison: c,
            })
        }
        Format::Csv => disagreement_csv(c),
        Format::Table => {
            let mut out = summary(c) + "\n";
            for line in details(c) {
                out.push_str(&format!("  {line}\n"));
            }
            out.push('\n');
            out.push_str(&disagreement_heading(c));
            if !c.disagreements.is_empty() {
                out.push_str(&disagreement_table(c, true, |t: &Table<'_>| t.text()));
            }
            // The summary and heading name the arms; cells are escaped already.
            escape(&out, Sink::Text).into_owned()
        }
        Format::Markdown => {
            let mut out = format!("**{}**\n\n", format::markdown_cell(&summary(c)));
            for line in details(c) {
                out.push_str(&format!("- {}\n", format::markdown_cell(&line)));
            }
            out.push('\n');
            out.push_str(&disagreement_heading(c));
            if !c.disagreements.is_empty() {
                out.push('\n');
                out.push_str(&disagreement_table(c, false, |t: &Table<'_>| t.markdown()));
            }
            escape(&out, Sink::Text).into_owned()
        }
    }
}

fn errors(n: usize) -> String {
    match n {
        1 => "1 error".to_string(),
        n => format!("{n} errors"),
    }
}

fn disagreement_heading(c: &Comparison) -> String {
    if c.disagreements.is_empty() {
        return format!("The arms agree on all {} items.\n", c.n);
    }
    format!(
        "{} of {} items disagree (A = {}, B = {}):\n",
        c.disagreements.len(),
        c.n,
        c.a,
        c.b
    )
}

/// An answer as a person reads it: the text, or why there is none.
fn shown_answer(answer: &Option<String>, error: &Option<String>) -> String {
    match (answer, error) {
        (Some(text), _) => text.clone(),
        (None, Some(e)) => format!("[error: {e}]"),
        (None, None) => "[no answer]".to_string(),
    }
}

fn disagreement_table(c: &Comparison, truncate: bool, layout: fn(&Table<'_>) -> String) -> String {
    let cut = |s: &str, max| {
        if truncate {
            format::truncate(s, max)
        } else {
            s.to_string()
        }
    };
    let score = |x: f64| {
        if x == 0.0 || x == 1.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.3}")
        }
    };
    let rows: Vec<Vec<String>> = c
        .disagreements
        .iter()
        .map(|d| {
            vec![
                d.item_id.clone(),
                cut(&d.input, INPUT_CHARS),
                cut(&d.target, TARGET_CHARS),
                cut(&shown_answer(&d.answer_a, &d.error_a), ANSWER_CHARS),
                score(d.score_a),
                cut(&shown_answer(&d.answer_b, &d.error_b), ANSWER_CHARS),
                score(d.score_b),
            ]
        })
        .collect();
    layout(&Table {
        header: ["item", "input", "target", "A answer", "A", "B answer", "B"]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        align: vec![
            Align::Left,
            Align::Left,
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Left,
            Align::Right,
        ],
        rows: &rows,
    })
}

fn disagreement_csv(c: &Comparison) -> String {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    let rows: Vec<Vec<String>> = c
        .disagreements
        .iter()
        .map(|d| {
            vec![
                d.item_id.clone(),
                d.input.clone(),
                d.target.clone(),
                opt(&d.answer_a),
                opt(&d.answer_b),
                format::csv_number(d.score_a),
                format::csv_number(d.score_b),
                opt(&d.error_a),
                opt(&d.error_b),
            ]
        })
        .collect();
    Table {
        header: [
            "item_id", "input", "target", "answer_a", "answer_b", "score_a", "score_b", "error_a",
            "error_b",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect(),
        align: Vec::new(),
        rows: &rows,
    }
    .csv()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use domain::{ArmInfo, ArmKind, CallRecord, EvalItem, RunResults, ScoreRecord};
    use expect_test::{Expect, expect};

    use super::*;
    use crate::testing::{FEW_SHOT, LORA, ZERO_SHOT, reviews};

    fn check(a: &str, b: &str, metric: &str, format: Format, expected: Expect) {
        let c = compare(&reviews(), a, b, metric).unwrap();
        expected.assert_eq(&render_compare(&c, format));
    }

    /// A run of two arms `a` and `b` whose metric `m` takes the given values item by item.
    fn synthetic(a: &[f64], b: &[f64]) -> RunResults {
        let mut results = reviews();
        results.arms = ["a", "b"]
            .map(|arm| ArmInfo {
                arm: arm.into(),
                kind: ArmKind::Prompt,
                provider: Some("p".into()),
                prompt: Some(arm.into()),
                model: "m".into(),
                pricing: None,
                sweep: None,
                choices: None,
            })
            .to_vec();
        results.items = (0..a.len())
            .map(|i| EvalItem {
                item_id: format!("i{i}"),
                input: format!("input {i}"),
                target: "t".into(),
            })
            .collect();
        results.calls.clear();
        results.scores.clear();
        for (arm, xs) in [("a", a), ("b", b)] {
            for (i, &x) in xs.iter().enumerate() {
                results.calls.push(CallRecord {
                    arm: arm.into(),
                    item_id: format!("i{i}"),
                    response: Some(format!("{arm} says {x}")),
                    prompt_tokens: 1,
                    completion_tokens: 1,
                    latency_ms: 1.0,
                    cost_usd: 0.0,
                    attempts: 1,
                    cache_hit: false,
                    error: None,
                    compute_seconds: 0.0,
                    truncated: false,
                    choice: None,
                    token_logprobs: None,
                });
                results.scores.push(ScoreRecord {
                    arm: arm.into(),
                    item_id: format!("i{i}"),
                    scorer: "m".into(),
                    value: x,
                });
            }
        }
        results
    }

    fn pass_fail(n: usize, passes: usize) -> Vec<f64> {
        (0..n).map(|i| if i < passes { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn unknown_arm_lists_known_arms() {
        let err = compare(&reviews(), FEW_SHOT, "nope", "equals").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown arm "nope"; known arms: zero-shot@mock, few-shot@mock, smollm2-lora"#
        );
        assert!(matches!(err, Error::UnknownArm { arm, .. } if arm == "nope"));
    }

    #[test]
    fn unknown_metric_lists_known_metrics() {
        let err = compare(&reviews(), FEW_SHOT, LORA, "exact").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"no scores for metric "exact" in this run; known metrics: equals, f1"#
        );
    }

    #[test]
    fn pairs_items_and_lists_disagreements() {
        let c = compare(&reviews(), FEW_SHOT, ZERO_SHOT, "equals").unwrap();
        assert_eq!((c.n, c.errors_a, c.errors_b), (6, 0, 2));
        assert_eq!((c.quality_a, c.quality_b), (5.0 / 6.0, 0.5));
        assert!((c.diff - 1.0 / 3.0).abs() < 1e-12);
        // few-shot alone passes r4 and r5 (zero-shot's r5 has no score); both fail r6.
        let ids: Vec<&str> = c.disagreements.iter().map(|d| d.item_id.as_str()).collect();
        assert_eq!(ids, ["r4", "r5"]);
        let m = c.mcnemar.unwrap();
        // scipy.stats.binomtest(2, 2, 0.5).pvalue -> 0.5
        assert_eq!((m.a_only, m.b_only, m.p_value), (2, 0, 0.5));
        assert!(!c.decisive, "two items decide nothing: {c:?}");
        assert!(c.ci_low <= 0.0);
    }

    #[test]
    fn continuous_metric_has_no_mcnemar_and_sorts_by_gap() {
        let c = compare(&reviews(), ZERO_SHOT, FEW_SHOT, "f1").unwrap();
        assert!(c.mcnemar.is_none());
        let gaps: Vec<(&str, f64)> = c
            .disagreements
            .iter()
            .map(|d| (d.item_id.as_str(), d.score_a - d.score_b))
            .collect();
        // r4: 0 vs 1; r5: 0 vs 1/3 (one shared token of five); r6 both 0 (zero-shot errored).
        assert_eq!(gaps[0], ("r4", -1.0));
        assert_eq!(gaps[1].0, "r5");
        assert!((gaps[1].1 + 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(gaps.len(), 2);
    }

    #[test]
    fn a_clear_gap_is_decisive() {
        let results = synthetic(&pass_fail(60, 54), &pass_fail(60, 20));
        let c = compare(&results, "a", "b", "m").unwrap();
        assert!(c.decisive && c.ci_low > 0.0, "{c:?}");
        // scipy.stats.binomtest(34, 34, 0.5).pvalue -> 1.1641532182693481e-10
        let m = c.mcnemar.unwrap();
        assert_eq!((m.a_only, m.b_only), (34, 0));
        assert!((m.p_value - 1.1641532182693481e-10).abs() < 1e-20);
        assert_eq!(
            summary(&c),
            "a beats b by 0.567 [0.433, 0.683] on m, p < 0.001 — decisive"
        );
        let reversed = compare(&results, "b", "a", "m").unwrap();
        assert!(reversed.decisive && reversed.ci_high < 0.0);
        assert_eq!(
            summary(&reversed),
            "a beats b by 0.567 [0.433, 0.683] on m, p < 0.001 — decisive"
        );
    }

    #[test]
    fn identical_arms_tie() {
        let xs = pass_fail(10, 7);
        let c = compare(&synthetic(&xs, &xs), "a", "b", "m").unwrap();
        assert!(!c.decisive && c.disagreements.is_empty());
        expect![[r#"
            a and b tie on m: difference 0.000 [0.000, 0.000], p = 1.000 — not decisive (the 95% CI contains 0)
              m: a 0.700 (0 errors), b 0.700 (0 errors), over 10 paired items
              McNemar exact test: 0 items only a passes, 0 only b passes, p = 1.000

            The arms agree on all 10 items.
        "#]].assert_eq(&render_compare(&c, Format::Table));
    }

    #[test]
    fn table() {
        check(
            FEW_SHOT,
            ZERO_SHOT,
            "equals",
            Format::Table,
            expect![[r#"
                few-shot@mock beats zero-shot@mock by 0.333 [0.000, 0.667] on equals, p = 0.177 — not decisive (the 95% CI contains 0)
                  equals: few-shot@mock 0.833 (0 errors), zero-shot@mock 0.500 (2 errors), over 6 paired items
                  McNemar exact test: 2 items only few-shot@mock passes, 0 only zero-shot@mock passes, p = 0.500

                2 of 6 items disagree (A = few-shot@mock, B = zero-shot@mock):
                item  input                                     target    A answer                        A  B answer  B
                r4    Two hours I will never get back.          negative  negative                        1  positive  0
                r5    Not bad at all, honestly a pleasant sur…  positive  Positive The reviewer is plea…  1  negative  0
            "#]],
        );
    }

    #[test]
    fn table_for_a_continuous_metric() {
        check(
            ZERO_SHOT,
            FEW_SHOT,
            "f1",
            Format::Table,
            expect![[r#"
                few-shot@mock beats zero-shot@mock by 0.222 [0.000, 0.556] on f1, p = 0.177 — not decisive (the 95% CI contains 0)
                  f1: zero-shot@mock 0.500 (1 error), few-shot@mock 0.722 (0 errors), over 6 paired items

                2 of 6 items disagree (A = zero-shot@mock, B = few-shot@mock):
                item  input                                     target    A answer  A  B answer                            B
                r4    Two hours I will never get back.          negative  positive  0  negative                            1
                r5    Not bad at all, honestly a pleasant sur…  positive  negative  0  Positive The reviewer is plea…  0.333
            "#]],
        );
    }

    #[test]
    fn markdown() {
        check(
            FEW_SHOT,
            ZERO_SHOT,
            "equals",
            Format::Markdown,
            expect![[r#"
            **few-shot@mock beats zero-shot@mock by 0.333 [0.000, 0.667] on equals, p = 0.177 — not decisive (the 95% CI contains 0)**

            - equals: few-shot@mock 0.833 (0 errors), zero-shot@mock 0.500 (2 errors), over 6 paired items
            - McNemar exact test: 2 items only few-shot@mock passes, 0 only zero-shot@mock passes, p = 0.500

            2 of 6 items disagree (A = few-shot@mock, B = zero-shot@mock):

            | item | input | target | A answer | A | B answer | B |
            | --- | --- | --- | --- | ---: | --- | ---: |
            | r4 | Two hours I will never get back. | negative | negative | 1 | positive | 0 |
            | r5 | Not bad at all, honestly a pleasant surprise. | positive | Positive<br>The reviewer is pleasantly surprised. | 1 | negative | 0 |
        "#]],
        );
    }

    #[test]
    fn json() {
        check(
            FEW_SHOT,
            ZERO_SHOT,
            "equals",
            Format::Json,
            expect![[r#"
            {
              "summary": "few-shot@mock beats zero-shot@mock by 0.333 [0.000, 0.667] on equals, p = 0.177 — not decisive (the 95% CI contains 0)",
              "a": "few-shot@mock",
              "b": "zero-shot@mock",
              "metric": "equals",
              "n": 6,
              "quality_a": 0.8333333333333334,
              "quality_b": 0.5,
              "errors_a": 0,
              "errors_b": 2,
              "diff": 0.3333333333333333,
              "ci_low": 0.0,
              "ci_high": 0.6666666666666666,
              "p_value": 0.17678232176782321,
              "mcnemar": {
                "a_only": 2,
                "b_only": 0,
                "p_value": 0.5
              },
              "decisive": false,
              "disagreements": [
                {
                  "item_id": "r4",
                  "input": "Two hours I will never get back.",
                  "target": "negative",
                  "answer_a": "negative",
                  "answer_b": "positive",
                  "score_a": 1.0,
                  "score_b": 0.0
                },
                {
                  "item_id": "r5",
                  "input": "Not bad at all, honestly a pleasant surprise.",
                  "target": "positive",
                  "answer_a": "Positive\nThe reviewer is pleasantly surprised.",
                  "answer_b": "negative",
                  "score_a": 1.0,
                  "score_b": 0.0
                }
              ]
            }
        "#]],
        );
    }

    #[test]
    fn csv() {
        check(
            FEW_SHOT,
            ZERO_SHOT,
            "equals",
            Format::Csv,
            expect![[r#"
            item_id,input,target,answer_a,answer_b,score_a,score_b,error_a,error_b
            r4,Two hours I will never get back.,negative,negative,positive,1,0,,
            r5,"Not bad at all, honestly a pleasant surprise.",positive,"Positive
            The reviewer is pleasantly surprised.",negative,1,0,,
        "#]],
        );
    }
}
