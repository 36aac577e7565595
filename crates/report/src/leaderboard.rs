//! The leaderboard: one row per arm of a run with its quality on the chosen metric (and a 95%
//! bootstrap interval), errors, eval cost, latency and tokens, ranked best first, and its
//! rendering as a table, JSON (the stable shape of [`LeaderboardRow`]), CSV or Markdown.
//!
//! It reads `domain::RunResults` only and judges nothing: which arm to ship, and what it costs
//! over time, is the decision report's job (`decision`, `cost`).

use std::collections::{BTreeMap, BTreeSet};

use domain::{ArmInfo, ArmKind, RunResults};
use serde::{Deserialize, Serialize};

use crate::format::{self, Align, Format, Table};
use crate::index::ResultIndex;

/// One arm on the leaderboard. Serialised field names are a public contract
/// (`leaderboard --format json`, which scripts read): add fields, never rename them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// `prompt@provider`, or the fine-tune id.
    pub arm: String,
    /// `prompt` or `finetune`.
    pub kind: ArmKind,
    pub provider: Option<String>,
    pub prompt: Option<String>,
    /// The model the arm calls or was trained from.
    pub model: String,
    /// Eval items of the run: the denominator of `quality`.
    pub n: usize,
    /// Items without a usable value of `metric`: the call failed, or the answer has no score
    /// for `metric`. Each counts 0 in `quality`.
    pub errors: usize,
    /// Items not asked yet (a run that is not finished): no call at all. Each counts 0 in
    /// `quality` too, but none is a failure; 0 for a finished run.
    #[serde(default)]
    pub unanswered: usize,
    /// Answers cut off at the token limit (`finish_reason: length`): scored as they are, but
    /// a sign that `max_tokens` is too low for this arm.
    #[serde(default)]
    pub truncated: usize,
    /// Arms with `choices`: how many answers found their label each way (`likelihood`,
    /// `schema`, `exact`, `first_word`, `contains`, `unmapped`); empty for free text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub choice_via: BTreeMap<String, usize>,
    /// Arms with `choices`: the mean confidence of the answers that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_confidence: Option<f64>,
    /// How well confidence predicts a pass on `metric` (pass/fail metrics, answers with a
    /// confidence: a label's probability, or the tokens' geometric-mean probability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::calibration::Calibration>,
    /// The scorer id `quality` is the mean of.
    pub metric: String,
    /// Mean of `metric` over all `n` items, errors counted as 0.
    pub quality: f64,
    /// 95% percentile-bootstrap interval of `quality`.
    pub ci_low: f64,
    pub ci_high: f64,
    /// What this arm's eval calls cost, summed (training is not included; the decision report
    /// accounts for it).
    pub cost_usd: f64,
    /// Mean recorded cost of a successful call, × 1000: cache hits are left out when other
    /// calls exist (a cached answer is free now, but not in production).
    pub cost_per_1k_usd: f64,
    /// Median and 95th percentile latency of successful calls (cache hits left out when other
    /// calls exist); `null` when the arm has no successful call.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Prompt and completion tokens, summed over every call of the arm.
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Fine-tunes: how long training took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// Fine-tunes: where the PEFT adapter was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_path: Option<String>,
    /// Every scorer of the run, by id: its mean over all `n` items, computed as `quality` is.
    pub scores: BTreeMap<String, f64>,
}

/// The leaderboard of a run on `metric`, best first: by `quality` descending, then
/// `cost_per_1k_usd` ascending, then arm name.
///
/// Quality is the mean of `metric` over **every** eval item of the run, not only the answered
/// ones: an item whose call failed or never ran, or whose answer has no `metric` score, counts
/// 0 and is counted in `errors`, so an arm cannot rank higher by failing on hard items. The eval
/// items are the run's stored items (or, when none were stored, the items its calls name). A
/// run with no items gives every arm quality 0 with the interval [0, 0]. A run that declared
/// `review:` leaves its calibration items out of every figure (see [`crate::review`]).
///
/// An unknown `metric` is not an error here (every item counts as an error); check it with
/// [`metrics`] first.
pub fn leaderboard(results: &RunResults, metric: &str) -> Vec<LeaderboardRow> {
    let view = crate::review::quality_view(results);
    let results = view.as_ref();
    let index = ResultIndex::new(results);
    let scorers = metrics(results);
    let mut rows: Vec<LeaderboardRow> = results
        .arms
        .iter()
        .map(|arm| row(results, &index, &scorers, arm, metric))
        .collect();
    rows.sort_by(|x, y| {
        y.quality
            .total_cmp(&x.quality)
            .then_with(|| x.cost_per_1k_usd.total_cmp(&y.cost_per_1k_usd))
            .then_with(|| x.arm.cmp(&y.arm))
    });
    rows
}

/// The scorer ids with at least one score in the run, sorted.
pub fn metrics(results: &RunResults) -> Vec<String> {
    let ids: BTreeSet<&str> = results.scores.iter().map(|s| s.scorer.as_str()).collect();
    ids.into_iter().map(str::to_string).collect()
}

/// The value of `metric` for each eval item of the run, in item order, as `quality` counts it:
/// the score of a successful call, else 0. `compare` and the leaderboard pair arms on these.
pub fn metric_values(results: &RunResults, arm: &str, metric: &str) -> Vec<f64> {
    let view = crate::review::quality_view(results);
    ResultIndex::new(&view).values(arm, metric).0
}

fn row(
    results: &RunResults,
    index: &ResultIndex<'_>,
    scorers: &[String],
    arm: &ArmInfo,
    metric: &str,
) -> LeaderboardRow {
    let (values, missing) = index.values(&arm.arm, metric);
    let unanswered = index.unanswered(&arm.arm);
    let (quality, (ci_low, ci_high)) = if values.is_empty() {
        (0.0, (0.0, 0.0))
    } else {
        (
            scoring::mean(&values),
            scoring::bootstrap_ci(&values, scoring::DEFAULT_RESAMPLES, scoring::DEFAULT_SEED),
        )
    };
    let scores = scorers
        .iter()
        .map(|s| {
            let (xs, _) = index.values(&arm.arm, s);
            let m = if xs.is_empty() {
                0.0
            } else {
                scoring::mean(&xs)
            };
            (s.clone(), m)
        })
        .collect();

    let calls = index.arm_calls(&arm.arm);
    let priced = index.fresh_ok_calls(&arm.arm);
    let latencies = index.latencies(&arm.arm);
    let latency = |q| (!latencies.is_empty()).then(|| scoring::percentile(&latencies, q));
    let cost_per_1k_usd = if priced.is_empty() {
        0.0
    } else {
        priced.iter().map(|c| c.cost_usd).sum::<f64>() / priced.len() as f64 * 1000.0
    };
    let training = results.training.iter().find(|t| t.arm == arm.arm);

    LeaderboardRow {
        arm: arm.arm.clone(),
        kind: arm.kind,
        provider: arm.provider.clone(),
        prompt: arm.prompt.clone(),
        model: arm.model.clone(),
        n: values.len(),
        errors: missing - unanswered,
        unanswered,
        truncated: index
            .ok_calls(&arm.arm)
            .iter()
            .filter(|c| c.truncated)
            .count(),
        choice_via: choice_via(index, &arm.arm),
        mean_confidence: mean_confidence(index, &arm.arm),
        calibration: crate::calibration::arm_calibration(index, &arm.arm, metric),
        metric: metric.to_string(),
        quality,
        ci_low,
        ci_high,
        cost_usd: calls.iter().map(|c| c.cost_usd).sum(),
        cost_per_1k_usd,
        latency_p50_ms: latency(50.0),
        latency_p95_ms: latency(95.0),
        tokens_in: calls.iter().map(|c| u64::from(c.prompt_tokens)).sum(),
        tokens_out: calls.iter().map(|c| u64::from(c.completion_tokens)).sum(),
        train_seconds: training.map(|t| t.train_seconds),
        adapter_path: training.and_then(|t| t.adapter_path.clone()),
        scores,
    }
}

fn choice_via(index: &ResultIndex<'_>, arm: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for c in index.ok_calls(arm) {
        if let Some(choice) = &c.choice {
            *counts.entry(choice.via.as_str().to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

fn mean_confidence(index: &ResultIndex<'_>, arm: &str) -> Option<f64> {
    let xs: Vec<f64> = index
        .ok_calls(arm)
        .iter()
        .filter(|c| c.choice.is_some())
        .filter_map(|c| crate::calibration::confidence(c))
        .collect();
    (!xs.is_empty()).then(|| scoring::mean(&xs))
}

/// Prints the leaderboard. The table and Markdown show quality with its interval, cost,
/// latency and errors; JSON is the array of [`LeaderboardRow`]s; CSV has every field, with
/// one `scores.<id>` column per scorer.
pub fn render_leaderboard(rows: &[LeaderboardRow], format: Format) -> String {
    match format {
        Format::Json => format::json_pretty(rows),
        Format::Csv => csv(rows),
        Format::Table => human_table(rows, |t: &Table<'_>| t.text()),
        Format::Markdown => human_table(rows, |t: &Table<'_>| t.markdown()),
    }
}

const HUMAN_COLUMNS: [(&str, Align); 9] = [
    ("arm", Align::Left),
    ("kind", Align::Left),
    ("quality", Align::Left),
    ("n", Align::Right),
    ("errors", Align::Right),
    ("cost", Align::Right),
    ("per 1k", Align::Right),
    ("p50 ms", Align::Right),
    ("p95 ms", Align::Right),
];

type RowCount = fn(&LeaderboardRow) -> usize;

/// Counts shown after `errors` only when some arm has one: items not asked yet, and answers
/// cut off at the token limit.
const OPTIONAL_COUNTS: [(&str, RowCount); 2] = [
    ("unanswered", |r| r.unanswered),
    ("truncated", |r| r.truncated),
];

fn human_table(rows: &[LeaderboardRow], layout: fn(&Table<'_>) -> String) -> String {
    let mut header: Vec<String> = HUMAN_COLUMNS.iter().map(|(h, _)| h.to_string()).collect();
    let mut align: Vec<Align> = HUMAN_COLUMNS.iter().map(|(_, a)| *a).collect();
    if let Some(first) = rows.first() {
        header[2] = format!("{} [95% CI]", first.metric);
    }
    let at = 1 + HUMAN_COLUMNS
        .iter()
        .position(|(h, _)| *h == "errors")
        .unwrap_or(HUMAN_COLUMNS.len() - 1);
    let shown: Vec<_> = OPTIONAL_COUNTS
        .iter()
        .filter(|(_, count)| rows.iter().any(|r| count(r) > 0))
        .collect();
    for (k, (name, _)) in shown.iter().enumerate() {
        header.insert(at + k, (*name).to_owned());
        align.insert(at + k, Align::Right);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.arm.clone(),
                r.kind.to_string(),
                format::quality_ci(r.quality, r.ci_low, r.ci_high),
                r.n.to_string(),
                r.errors.to_string(),
                format::usd(r.cost_usd),
                format::usd(r.cost_per_1k_usd),
                format::millis(r.latency_p50_ms),
                format::millis(r.latency_p95_ms),
            ];
            for (k, (_, count)) in shown.iter().enumerate() {
                cells.insert(at + k, count(r).to_string());
            }
            cells
        })
        .collect();
    layout(&Table {
        header,
        align,
        rows: &cells,
    })
}

fn csv(rows: &[LeaderboardRow]) -> String {
    let scorers: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.scores.keys().map(String::as_str))
        .collect();
    let mut header: Vec<String> = [
        "arm",
        "kind",
        "provider",
        "prompt",
        "model",
        "n",
        "errors",
        "unanswered",
        "truncated",
        "metric",
        "quality",
        "ci_low",
        "ci_high",
        "cost_usd",
        "cost_per_1k_usd",
        "latency_p50_ms",
        "latency_p95_ms",
        "tokens_in",
        "tokens_out",
        "train_seconds",
        "adapter_path",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    header.extend(scorers.iter().map(|s| format!("scores.{s}")));
    let num = |x: Option<f64>| x.map(format::csv_number).unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.arm.clone(),
                r.kind.to_string(),
                r.provider.clone().unwrap_or_default(),
                r.prompt.clone().unwrap_or_default(),
                r.model.clone(),
                r.n.to_string(),
                r.errors.to_string(),
                r.unanswered.to_string(),
                r.truncated.to_string(),
                r.metric.clone(),
                format::csv_number(r.quality),
                format::csv_number(r.ci_low),
                format::csv_number(r.ci_high),
                format::csv_number(r.cost_usd),
                format::csv_number(r.cost_per_1k_usd),
                num(r.latency_p50_ms),
                num(r.latency_p95_ms),
                r.tokens_in.to_string(),
                r.tokens_out.to_string(),
                num(r.train_seconds),
                r.adapter_path.clone().unwrap_or_default(),
            ];
            cells.extend(scorers.iter().map(|s| num(r.scores.get(*s).copied())));
            cells
        })
        .collect();
    Table {
        header,
        align: Vec::new(),
        rows: &cells,
    }
    .csv()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::testing::{FEW_SHOT, LORA, ZERO_SHOT, reviews};

    fn check(format: Format, expected: Expect) {
        let rows = leaderboard(&reviews(), "equals");
        expected.assert_eq(&render_leaderboard(&rows, format));
    }

    #[test]
    fn ranks_by_quality_then_cost() {
        let rows = leaderboard(&reviews(), "equals");
        let order: Vec<&str> = rows.iter().map(|r| r.arm.as_str()).collect();
        // The fine-tune and few-shot tie at 5/6; the fine-tune is cheaper per request.
        assert_eq!(order, [LORA, FEW_SHOT, ZERO_SHOT]);
    }

    #[test]
    fn errors_count_as_zero() {
        let rows = leaderboard(&reviews(), "equals");
        let by_arm = |arm: &str| rows.iter().find(|r| r.arm == arm).unwrap();
        // zero-shot: r4 wrong, r5 answered but unscored, r6 failed → 3/6 with 2 errors.
        let z = by_arm(ZERO_SHOT);
        assert_eq!((z.n, z.errors, z.quality), (6, 2, 0.5));
        // few-shot: r6 wrong, no errors.
        let f = by_arm(FEW_SHOT);
        assert_eq!((f.n, f.errors, f.quality), (6, 0, 5.0 / 6.0));
        // the fine-tune has not answered r6 yet (the run is interrupted): it counts 0, apart
        // from the errors.
        let l = by_arm(LORA);
        assert_eq!(
            (l.n, l.errors, l.unanswered, l.quality),
            (6, 0, 1, 5.0 / 6.0)
        );
        assert_eq!((z.unanswered, f.unanswered), (0, 0));
        // f1 has a score for zero-shot's r5 (0: "negative" vs "positive"), so one error only.
        let f1 = leaderboard(&reviews(), "f1");
        let z = f1.iter().find(|r| r.arm == ZERO_SHOT).unwrap();
        assert_eq!((z.errors, z.quality), (1, 0.5));
        assert_eq!(z.scores["equals"], 0.5);
    }

    #[test]
    fn truncated_answers_are_counted_and_shown_only_when_there_are_some() {
        let plain = render_leaderboard(&leaderboard(&reviews(), "equals"), Format::Table);
        assert!(!plain.contains("truncated"), "{plain}");
        let mut results = reviews();
        for c in results.calls.iter_mut().filter(|c| c.arm == FEW_SHOT) {
            c.truncated = c.item_id != "r6";
        }
        // A failed call is never counted as a truncated answer.
        results
            .calls
            .iter_mut()
            .find(|c| c.arm == ZERO_SHOT && c.error.is_some())
            .unwrap()
            .truncated = true;
        let rows = leaderboard(&results, "equals");
        let count = |arm: &str| rows.iter().find(|r| r.arm == arm).unwrap().truncated;
        assert_eq!((count(FEW_SHOT), count(ZERO_SHOT), count(LORA)), (5, 0, 0));
        let table = render_leaderboard(&rows, Format::Table);
        let header = table.lines().next().unwrap();
        assert!(header.contains("errors  unanswered  truncated"), "{header}");
    }

    #[test]
    fn measurements() {
        let rows = leaderboard(&reviews(), "equals");
        let f = rows.iter().find(|r| r.arm == FEW_SHOT).unwrap();
        // The cache hit is left out of cost per request and latency.
        assert!((f.cost_per_1k_usd - 0.04).abs() < 1e-12);
        assert!((f.cost_usd - 0.0002).abs() < 1e-12);
        assert_eq!(f.latency_p50_ms, Some(510.0)); // np.percentile([510, 480, 530, 900, 495], 50)
        assert_eq!(f.latency_p95_ms, Some(826.0)); // np.percentile([510, 480, 530, 900, 495], 95)
        assert_eq!((f.tokens_in, f.tokens_out), (1080, 12));
        let z = rows.iter().find(|r| r.arm == ZERO_SHOT).unwrap();
        // The failed call is not a latency sample but its tokens and cost count.
        assert_eq!(z.latency_p95_ms, Some(406.0)); // np.percentile([310, 290, 350, 420, 330], 95)
        assert_eq!(z.tokens_in, 240);
        assert!(z.ci_low <= z.quality && z.quality <= z.ci_high);
    }

    #[test]
    fn json_field_names() {
        let rows = leaderboard(&reviews(), "equals");
        let json: serde_json::Value =
            serde_json::from_str(&render_leaderboard(&rows, Format::Json)).unwrap();
        let keys = |arm: &str| -> Vec<String> {
            let row = json
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["arm"] == arm)
                .unwrap();
            row.as_object().unwrap().keys().cloned().collect()
        };
        let prompt_keys = [
            "arm",
            "ci_high",
            "ci_low",
            "cost_per_1k_usd",
            "cost_usd",
            "errors",
            "kind",
            "latency_p50_ms",
            "latency_p95_ms",
            "metric",
            "model",
            "n",
            "prompt",
            "provider",
            "quality",
            "scores",
            "tokens_in",
            "tokens_out",
            "truncated",
            "unanswered",
        ];
        assert_eq!(keys(ZERO_SHOT), prompt_keys);
        let mut finetune_keys = prompt_keys.to_vec();
        finetune_keys.extend(["train_seconds", "adapter_path"]);
        finetune_keys.sort();
        assert_eq!(keys(LORA), finetune_keys);
        let lora = json
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["arm"] == LORA)
            .unwrap();
        assert_eq!(lora["kind"], "finetune");
        assert_eq!(lora["provider"], serde_json::Value::Null);
        assert_eq!(lora["train_seconds"], 842.5);
        // The rows read back as they were written.
        let back: Vec<LeaderboardRow> =
            serde_json::from_str(&render_leaderboard(&rows, Format::Json)).unwrap();
        assert_eq!(back, rows);
    }

    #[test]
    fn metric_listing() {
        let results = reviews();
        assert_eq!(metrics(&results), ["equals", "f1"]);
        assert_eq!(
            metric_values(&results, ZERO_SHOT, "equals"),
            [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn empty_run() {
        let mut results = reviews();
        results.items.clear();
        results.calls.clear();
        results.scores.clear();
        let rows = leaderboard(&results, "equals");
        assert!(
            rows.iter()
                .all(|r| r.n == 0 && r.quality == 0.0 && r.ci_high == 0.0)
        );
        assert!(rows.iter().all(|r| r.latency_p50_ms.is_none()));
        expect![[r#"
            arm  kind  quality  n  errors  cost  per 1k  p50 ms  p95 ms
        "#]]
        .assert_eq(&render_leaderboard(&[], Format::Table));
    }

    #[test]
    fn table() {
        check(
            Format::Table,
            expect![[r#"
                arm             kind      equals [95% CI]     n  errors  unanswered        cost   per 1k  p50 ms  p95 ms
                smollm2-lora    finetune  0.833 [0.50, 1.00]  6       0           1   $0.000100  $0.0200      95     100
                few-shot@mock   prompt    0.833 [0.50, 1.00]  6       0           0   $0.000200  $0.0400     510     826
                zero-shot@mock  prompt    0.500 [0.17, 0.83]  6       2           0  $0.0000500  $0.0100     330     406
            "#]],
        );
    }

    #[test]
    fn markdown() {
        check(
            Format::Markdown,
            expect![[r#"
                | arm | kind | equals [95% CI] | n | errors | unanswered | cost | per 1k | p50 ms | p95 ms |
                | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
                | smollm2-lora | finetune | 0.833 [0.50, 1.00] | 6 | 0 | 1 | $0.000100 | $0.0200 | 95 | 100 |
                | few-shot@mock | prompt | 0.833 [0.50, 1.00] | 6 | 0 | 0 | $0.000200 | $0.0400 | 510 | 826 |
                | zero-shot@mock | prompt | 0.500 [0.17, 0.83] | 6 | 2 | 0 | $0.0000500 | $0.0100 | 330 | 406 |
            "#]],
        );
    }

    #[test]
    fn csv() {
        check(
            Format::Csv,
            expect![[r#"
                arm,kind,provider,prompt,model,n,errors,unanswered,truncated,metric,quality,ci_low,ci_high,cost_usd,cost_per_1k_usd,latency_p50_ms,latency_p95_ms,tokens_in,tokens_out,train_seconds,adapter_path,scores.equals,scores.f1
                smollm2-lora,finetune,,zero-shot,smollm2-135m-instruct,6,0,1,0,equals,0.8333333333333334,0.5,1,0.0001,0.02,95,100.2,200,10,842.5,runs/1/smollm2-lora/adapter,0.8333333333333334,0.8333333333333334
                few-shot@mock,prompt,mock,few-shot,mock-1,6,0,0,0,equals,0.8333333333333334,0.5,1,0.0002,0.04,510,826,1080,12,,,0.8333333333333334,0.7222222222222222
                zero-shot@mock,prompt,mock,zero-shot,mock-1,6,2,0,0,equals,0.5,0.16666666666666666,0.8333333333333334,0.00005,0.01,330,406,240,10,,,0.5,0.5
            "#]],
        );
    }

    #[test]
    fn json() {
        check(
            Format::Json,
            expect![[r#"
                [
                  {
                    "arm": "smollm2-lora",
                    "kind": "finetune",
                    "provider": null,
                    "prompt": "zero-shot",
                    "model": "smollm2-135m-instruct",
                    "n": 6,
                    "errors": 0,
                    "unanswered": 1,
                    "truncated": 0,
                    "metric": "equals",
                    "quality": 0.8333333333333334,
                    "ci_low": 0.5,
                    "ci_high": 1.0,
                    "cost_usd": 0.0001,
                    "cost_per_1k_usd": 0.02,
                    "latency_p50_ms": 95.0,
                    "latency_p95_ms": 100.2,
                    "tokens_in": 200,
                    "tokens_out": 10,
                    "train_seconds": 842.5,
                    "adapter_path": "runs/1/smollm2-lora/adapter",
                    "scores": {
                      "equals": 0.8333333333333334,
                      "f1": 0.8333333333333334
                    }
                  },
                  {
                    "arm": "few-shot@mock",
                    "kind": "prompt",
                    "provider": "mock",
                    "prompt": "few-shot",
                    "model": "mock-1",
                    "n": 6,
                    "errors": 0,
                    "unanswered": 0,
                    "truncated": 0,
                    "metric": "equals",
                    "quality": 0.8333333333333334,
                    "ci_low": 0.5,
                    "ci_high": 1.0,
                    "cost_usd": 0.0002,
                    "cost_per_1k_usd": 0.04,
                    "latency_p50_ms": 510.0,
                    "latency_p95_ms": 826.0,
                    "tokens_in": 1080,
                    "tokens_out": 12,
                    "scores": {
                      "equals": 0.8333333333333334,
                      "f1": 0.7222222222222222
                    }
                  },
                  {
                    "arm": "zero-shot@mock",
                    "kind": "prompt",
                    "provider": "mock",
                    "prompt": "zero-shot",
                    "model": "mock-1",
                    "n": 6,
                    "errors": 2,
                    "unanswered": 0,
                    "truncated": 0,
                    "metric": "equals",
                    "quality": 0.5,
                    "ci_low": 0.16666666666666666,
                    "ci_high": 0.8333333333333334,
                    "cost_usd": 0.00005,
                    "cost_per_1k_usd": 0.01,
                    "latency_p50_ms": 330.0,
                    "latency_p95_ms": 406.0,
                    "tokens_in": 240,
                    "tokens_out": 10,
                    "scores": {
                      "equals": 0.5,
                      "f1": 0.5
                    }
                  }
                ]
            "#]],
        );
    }
}
