//! Runs built in memory for the report's tests, laid out as `store::results` returns them: the
//! one fixture of the unit tests in `src/` and of the integration tests in `tests/it/`. Every run
//! starts from one base (`base_run`: run 1 of `movie-sentiment`) and one shape of call, arm and
//! training record, and differs only in what each family of tests needs:
//!
//! - [`reviews`]: six hand-written movie reviews, two prompt arms and a fine-tune, each call
//!   chosen by hand (a failed call, an answer with no `equals` score, a cache hit, an item the
//!   interrupted fine-tune never answered), scored by the real `equals` and `f1` scorers. The
//!   leaderboard and compare tests snapshot it.
//! - [`run`]: `n` items answered by [`ArmSpec`]s with chosen per-item correctness, priced so the
//!   cost model can be redone by hand (see `tests/it/decide.rs`): a prompt arm costs $0.002 a
//!   request (1000 tokens in at $1/Mtok + 100 out at $10/Mtok), a fine-tune $0.0002 (0.36
//!   compute seconds at $2/h) and trains for 2 hours.
//!
//! It is test code: compiled for this crate's unit tests, and for others (the integration tests)
//! only with the `testing` feature, so no build of the binary carries it.

use domain::{
    ArmInfo, ArmKind, CallRecord, CostAssumptions, Decision, EvalItem, LossPoint, Pricing, RunInfo,
    RunResults, RunSettings, RunStatus, ScoreRecord, ScorerKind, TrainingRecord, TrainingStatus,
};

use crate::{ArmCostInputs, ArmPricing};

/// When every fixture run started.
const STARTED_MS: i64 = 1_700_000_000_000;

/// The run every fixture starts from: run 1 of `movie-sentiment` over `items`, no arms yet.
fn base_run(
    status: RunStatus,
    seconds: i64,
    settings: Option<RunSettings>,
    items: Vec<EvalItem>,
) -> RunResults {
    RunResults {
        run: RunInfo {
            id: 1,
            experiment: "movie-sentiment".into(),
            status,
            started_ms: STARTED_MS,
            finished_ms: Some(STARTED_MS + seconds * 1000),
            dataset_fingerprint: "fp".into(),
            spec_hash: "hash".into(),
            spec_json: "{}".into(),
            settings,
        },
        arms: Vec::new(),
        items,
        calls: Vec::new(),
        scores: Vec::new(),
        training: Vec::new(),
        searches: Vec::new(),
        serving_bench: Vec::new(),
    }
}

fn item(id: &str, input: &str, target: &str) -> EvalItem {
    EvalItem {
        item_id: id.into(),
        input: input.into(),
        target: target.into(),
    }
}

/// An arm of `kind` with no stored pricing; a hosted one has a provider.
fn arm(name: &str, kind: ArmKind, provider: Option<&str>, prompt: &str, model: &str) -> ArmInfo {
    ArmInfo {
        arm: name.into(),
        kind,
        provider: provider.map(Into::into),
        prompt: Some(prompt.into()),
        model: model.into(),
        pricing: None,
        sweep: None,
        choices: None,
    }
}

/// A call of `arm` on `item` that answered `Ok(text)` at the first attempt, or failed with
/// `Err(error)` after three; no tokens, time or cost yet.
fn call(arm: &str, item: &str, answer: Result<&str, &str>) -> CallRecord {
    CallRecord {
        arm: arm.into(),
        item_id: item.into(),
        response: answer.ok().map(Into::into),
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0.0,
        cost_usd: 0.0,
        attempts: if answer.is_ok() { 1 } else { 3 },
        cache_hit: false,
        error: answer.err().map(Into::into),
        compute_seconds: 0.0,
        truncated: false,
        choice: None,
        token_logprobs: None,
    }
}

fn score(arm: &str, item: &str, scorer: &str, value: f64) -> ScoreRecord {
    ScoreRecord {
        arm: arm.into(),
        item_id: item.into(),
        scorer: scorer.into(),
        value,
    }
}

/// A fine-tune of `arm` that completed in `train_seconds`, using 1 GiB at its peak.
fn trained(arm: &str, train_seconds: f64, tokens_per_second: f64, adapter: &str) -> TrainingRecord {
    TrainingRecord {
        arm: arm.into(),
        status: TrainingStatus::Completed,
        train_seconds,
        tokens_per_second,
        peak_memory_bytes: 1 << 30,
        adapter_path: Some(adapter.into()),
        checkpoint_dir: None,
        error: None,
        curve: Vec::new(),
    }
}

// --- reviews: six hand-written items ---

pub const ZERO_SHOT: &str = "zero-shot@mock";
pub const FEW_SHOT: &str = "few-shot@mock";
pub const LORA: &str = "smollm2-lora";

const REVIEWS: [(&str, &str, &str); 6] = [
    ("r1", "A moving, beautifully acted film.", "positive"),
    ("r2", "The plot drags and the jokes fall flat.", "negative"),
    (
        "r3",
        "I laughed, I cried, I want to see it again.",
        "positive",
    ),
    ("r4", "Two hours I will never get back.", "negative"),
    (
        "r5",
        "Not bad at all, honestly a pleasant surprise.",
        "positive",
    ),
    (
        "r6",
        "Visually stunning but emotionally hollow: a long, tedious slog that wastes a \
         talented cast.",
        "negative",
    ),
];

/// (arm, item, answer or error, latency ms, cost, cache hit)
type ReviewCall = (
    &'static str,
    &'static str,
    Result<&'static str, &'static str>,
    f64,
    f64,
    bool,
);

const REVIEW_CALLS: [ReviewCall; 17] = [
    (ZERO_SHOT, "r1", Ok("positive"), 310.0, 0.00001, false),
    (ZERO_SHOT, "r2", Ok("negative"), 290.0, 0.00001, false),
    (ZERO_SHOT, "r3", Ok("Positive."), 350.0, 0.00001, false),
    (ZERO_SHOT, "r4", Ok("positive"), 420.0, 0.00001, false),
    // Answered, but its `equals` score is missing below: an error for `equals`.
    (ZERO_SHOT, "r5", Ok("negative"), 330.0, 0.00001, false),
    (
        ZERO_SHOT,
        "r6",
        Err("HTTP 500: internal server error"),
        1200.0,
        0.0,
        false,
    ),
    (FEW_SHOT, "r1", Ok("positive"), 0.4, 0.0, true),
    (FEW_SHOT, "r2", Ok("negative"), 510.0, 0.00004, false),
    (FEW_SHOT, "r3", Ok("positive"), 480.0, 0.00004, false),
    (FEW_SHOT, "r4", Ok("negative"), 530.0, 0.00004, false),
    (
        FEW_SHOT,
        "r5",
        Ok("Positive\nThe reviewer is pleasantly surprised."),
        900.0,
        0.00004,
        false,
    ),
    (
        FEW_SHOT,
        "r6",
        Ok("positive | visually stunning"),
        495.0,
        0.00004,
        false,
    ),
    (LORA, "r1", Ok("positive"), 95.0, 0.00002, false),
    (LORA, "r2", Ok("negative"), 90.0, 0.00002, false),
    (LORA, "r3", Ok("positive"), 101.0, 0.00002, false),
    (LORA, "r4", Ok("negative"), 88.0, 0.00002, false),
    (LORA, "r5", Ok("positive"), 97.0, 0.00002, false),
    // LORA never answered r6: the run was interrupted.
];

/// The six-review run: interrupted after a minute, with no stored settings or pricing.
pub fn reviews() -> RunResults {
    let items = REVIEWS.iter().map(|(id, x, y)| item(id, x, y)).collect();
    let mut results = base_run(RunStatus::Interrupted, 60, None, items);
    results.arms = vec![
        arm(
            ZERO_SHOT,
            ArmKind::Prompt,
            Some("mock"),
            "zero-shot",
            "mock-1",
        ),
        arm(
            FEW_SHOT,
            ArmKind::Prompt,
            Some("mock"),
            "few-shot",
            "mock-1",
        ),
        arm(
            LORA,
            ArmKind::Finetune,
            None,
            "zero-shot",
            "smollm2-135m-instruct",
        ),
    ];
    for (arm, item, answer, latency_ms, cost_usd, cache_hit) in REVIEW_CALLS {
        results.calls.push(CallRecord {
            prompt_tokens: if arm == FEW_SHOT { 180 } else { 40 },
            completion_tokens: if answer.is_ok() { 2 } else { 0 },
            latency_ms,
            cost_usd,
            cache_hit,
            compute_seconds: if arm == LORA {
                latency_ms / 1000.0
            } else {
                0.0
            },
            ..call(arm, item, answer)
        });
        let target = REVIEWS.iter().find(|r| r.0 == item).map(|r| r.2);
        // Every call names an item of REVIEWS; the snapshots would show a score left out.
        let (Ok(text), Some(target)) = (answer, target) else {
            continue;
        };
        for (id, kind) in [("equals", ScorerKind::Equals), ("f1", ScorerKind::F1)] {
            if arm == ZERO_SHOT && item == "r5" && id == "equals" {
                continue;
            }
            let value = scoring::score(&kind, text, target);
            results.scores.push(score(arm, item, id, value));
        }
    }
    results
        .training
        .push(trained(LORA, 842.5, 1500.0, "runs/1/smollm2-lora/adapter"));
    results
}

// --- run: n items, arms of chosen correctness, priced for hand computation ---

pub const METRIC: &str = "equals";
pub const PRICE: Pricing = Pricing {
    input_per_mtok: 1.0,
    output_per_mtok: 10.0,
};
pub const FT_COST_PER_HOUR: f64 = 2.0;

pub struct ArmSpec {
    pub name: &'static str,
    pub kind: ArmKind,
    /// Which items the arm answers right.
    pub correct: Vec<bool>,
    /// Items whose call failed (no answer, no score).
    pub failed: Vec<usize>,
    pub compute_seconds: f64,
    pub latency_ms: f64,
    /// Answers that replace the generated one, by item index.
    pub answers: Vec<(usize, &'static str)>,
    /// The confidence of each answer, by item index (stored as one token's log-probability);
    /// empty: no confidence.
    pub confidence: Vec<f64>,
}

impl ArmSpec {
    /// A hosted prompt arm right on `correct`.
    pub fn prompt(name: &'static str, correct: Vec<bool>) -> Self {
        ArmSpec {
            name,
            kind: ArmKind::Prompt,
            correct,
            failed: Vec::new(),
            compute_seconds: 0.0,
            latency_ms: 400.0,
            answers: Vec::new(),
            confidence: Vec::new(),
        }
    }

    /// A fine-tune right on `correct`, answering in 0.36 compute seconds.
    pub fn finetune(name: &'static str, correct: Vec<bool>) -> Self {
        ArmSpec {
            name,
            kind: ArmKind::Finetune,
            correct,
            failed: Vec::new(),
            compute_seconds: 0.36,
            latency_ms: 90.0,
            answers: Vec::new(),
            confidence: Vec::new(),
        }
    }

    /// The same arm, answering item `i` with confidence `confidence[i]`.
    pub fn with_confidence(mut self, confidence: Vec<f64>) -> Self {
        self.confidence = confidence;
        self
    }

    /// The answer to item `i`: the one given in `answers`, or else its label if the arm is
    /// right on it and the other label if not.
    fn answer(&self, i: usize) -> String {
        let given = self.answers.iter().find(|(k, _)| *k == i).map(|(_, a)| *a);
        given
            .unwrap_or_else(|| {
                if self.correct[i] {
                    label(i)
                } else {
                    label(i + 1)
                }
            })
            .to_owned()
    }
}

/// Right on items `from..to` of `n`.
pub fn right(n: usize, from: usize, to: usize) -> Vec<bool> {
    (0..n).map(|i| i >= from && i < to).collect()
}

/// The assumptions of the hand computations, at `daily` requests a day.
pub fn assumptions(daily: f64) -> CostAssumptions {
    CostAssumptions {
        daily_requests: daily,
        horizon_days: 365.0,
        hourly_rate_usd: 100.0,
        prompt_iteration_hours: 5.0,
        data_prep_hours: 40.0,
        mlops_hours_per_month: 2.0,
        finetune_hourly_usd: 1.0,
        batch_api: false,
        review: domain::ReviewCosts::default(),
        serving: domain::ServingAssumptions::default(),
        labelling_minutes_per_example: None,
    }
}

pub fn decision(target: f64) -> Decision {
    Decision {
        metric: METRIC.to_owned(),
        quality_target: target,
    }
}

/// What the run stored beyond its records: the assumptions at 10,000 requests a day, every
/// one declared but `batch_api`, and the decision at a 0.9 target.
pub fn settings() -> RunSettings {
    RunSettings {
        costs: assumptions(10_000.0),
        declared_costs: Some(
            [
                "daily_requests",
                "horizon_days",
                "hourly_rate_usd",
                "prompt_iteration_hours",
                "data_prep_hours",
                "mlops_hours_per_month",
                "finetune_hourly_usd",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        ),
        decision: decision(0.9),
        review: None,
    }
}

/// How an arm of `kind` is paid for: hosted at [`PRICE`], or compute at [`FT_COST_PER_HOUR`].
pub fn pricing(kind: ArmKind) -> ArmPricing {
    match kind {
        ArmKind::Prompt => ArmPricing::Hosted {
            pricing: Some(PRICE),
            batch_api: false,
        },
        ArmKind::Finetune => ArmPricing::Compute {
            cost_per_hour: FT_COST_PER_HOUR,
        },
    }
}

/// The cost inputs the run stored: hosted pricing for prompt arms, compute pricing for
/// fine-tunes, every assumption but `batch_api` declared.
pub fn inputs(results: &RunResults) -> ArmCostInputs {
    ArmCostInputs::from_results(results)
}

/// A completed run of `n` items answered by `arms`, ten minutes long, with [`settings`].
pub fn run(n: usize, arms: Vec<ArmSpec>) -> RunResults {
    let items = (0..n)
        .map(|i| {
            let mood = if i.is_multiple_of(2) { "fine" } else { "dull" };
            let input = format!("Review {i}: the film was {mood}.");
            item(&item_id(i), &input, label(i))
        })
        .collect();
    let mut results = base_run(RunStatus::Completed, 600, Some(settings()), items);
    for spec in arms {
        let provider = (spec.kind == ArmKind::Prompt).then_some("api");
        results.arms.push(ArmInfo {
            pricing: Some(pricing(spec.kind)),
            ..arm(spec.name, spec.kind, provider, "zero-shot", "model")
        });
        for i in 0..n {
            answer_item(&mut results, &spec, i);
        }
        if spec.kind == ArmKind::Finetune {
            results.training.push(TrainingRecord {
                curve: curve(),
                ..trained(spec.name, 7200.0, 900.0, "adapter")
            });
        }
    }
    results
}

/// The call (and, unless it failed, the score) of `spec` on item `i`.
fn answer_item(results: &mut RunResults, spec: &ArmSpec, i: usize) {
    let id = item_id(i);
    let failed = spec.failed.contains(&i);
    let answer = spec.answer(i);
    let cost_usd = match spec.kind {
        ArmKind::Prompt => PRICE.cost(1000, 100),
        ArmKind::Finetune => spec.compute_seconds * FT_COST_PER_HOUR / 3600.0,
    };
    let outcome = if failed {
        Err("HTTP 500: server error")
    } else {
        Ok(answer.as_str())
    };
    results.calls.push(CallRecord {
        // A failed call still reports its tokens, as a provider does.
        prompt_tokens: 1000,
        completion_tokens: 100,
        // Latencies spread over a range so box plots have a body.
        latency_ms: spec.latency_ms * (0.6 + 0.1 * (i % 9) as f64),
        cost_usd: if failed { 0.0 } else { cost_usd },
        compute_seconds: if failed { 0.0 } else { spec.compute_seconds },
        token_logprobs: spec.confidence.get(i).map(|c| vec![c.ln() as f32]),
        ..call(spec.name, &id, outcome)
    });
    if !failed {
        let value = if spec.correct[i] { 1.0 } else { 0.0 };
        results.scores.push(score(spec.name, &id, METRIC, value));
    }
}

fn item_id(i: usize) -> String {
    format!("item-{i:03}")
}

fn label(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "positive"
    } else {
        "negative"
    }
}

/// A falling loss curve: training every step, validation every 10.
fn curve() -> Vec<LossPoint> {
    let mut pts = Vec::new();
    for step in 1..=60u64 {
        let s = step as f64;
        pts.push(LossPoint {
            step,
            epoch: s / 30.0,
            split: domain::LossSplit::Train,
            loss: 2.2 * (-s / 14.0).exp() + 0.35 + 0.04 * (s * 1.7).sin(),
        });
        if step % 10 == 0 {
            pts.push(LossPoint {
                step,
                epoch: s / 30.0,
                split: domain::LossSplit::Val,
                loss: 2.0 * (-s / 16.0).exp() + 0.45,
            });
        }
    }
    pts
}
