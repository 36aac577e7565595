//! Constructed runs for the decision-report tests: arms with chosen per-item correctness,
//! recorded costs, latencies and training curves, laid out as `store::results` returns them.
//!
//! The numbers are chosen so the cost model can be redone by hand (see `decide.rs`):
//! a prompt arm costs $0.002 a request (1000 tokens in at $1/Mtok + 100 out at $10/Mtok), a
//! fine-tune $0.0002 (0.36 compute seconds at $2/h) and trains for 2 hours.

use domain::{
    ArmInfo, ArmKind, CallRecord, CostAssumptions, Decision, EvalItem, LossPoint, Pricing, RunInfo,
    RunResults, RunSettings, RunStatus, ScoreRecord, TrainingRecord,
};
use report::{ArmCostInputs, ArmPricing};

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
        }
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

/// A completed run of `n` items answered by `arms`.
pub fn run(n: usize, arms: Vec<ArmSpec>) -> RunResults {
    let items: Vec<EvalItem> = (0..n)
        .map(|i| EvalItem {
            item_id: format!("item-{i:03}"),
            input: format!(
                "Review {i}: the film was {}.",
                if i.is_multiple_of(2) { "fine" } else { "dull" }
            ),
            target: label(i).to_owned(),
        })
        .collect();
    let mut results = RunResults {
        run: RunInfo {
            id: 1,
            experiment: "movie-sentiment".to_owned(),
            status: RunStatus::Completed,
            started_ms: 1_700_000_000_000,
            finished_ms: Some(1_700_000_600_000),
            dataset_fingerprint: "fp".to_owned(),
            spec_hash: "hash".to_owned(),
            spec_json: "{}".to_owned(),
            settings: Some(settings()),
        },
        arms: Vec::new(),
        items,
        calls: Vec::new(),
        scores: Vec::new(),
        training: Vec::new(),
    };
    for spec in arms {
        results.arms.push(ArmInfo {
            arm: spec.name.to_owned(),
            kind: spec.kind,
            provider: (spec.kind == ArmKind::Prompt).then(|| "api".to_owned()),
            prompt: Some("zero-shot".to_owned()),
            model: "model".to_owned(),
            pricing: Some(pricing(spec.kind)),
        });
        for i in 0..n {
            let item_id = format!("item-{i:03}");
            let failed = spec.failed.contains(&i);
            let answer = spec
                .answers
                .iter()
                .find(|(k, _)| *k == i)
                .map(|(_, a)| (*a).to_owned())
                .unwrap_or_else(|| {
                    if spec.correct[i] {
                        label(i)
                    } else {
                        label(i + 1)
                    }
                    .to_owned()
                });
            let (prompt_tokens, completion_tokens, cost_usd) = match spec.kind {
                ArmKind::Prompt => (1000, 100, PRICE.cost(1000, 100)),
                ArmKind::Finetune => (1000, 100, spec.compute_seconds * FT_COST_PER_HOUR / 3600.0),
            };
            results.calls.push(CallRecord {
                arm: spec.name.to_owned(),
                item_id: item_id.clone(),
                response: (!failed).then_some(answer),
                prompt_tokens,
                completion_tokens,
                // Latencies spread over a range so box plots have a body.
                latency_ms: spec.latency_ms * (0.6 + 0.1 * (i % 9) as f64),
                cost_usd: if failed { 0.0 } else { cost_usd },
                attempts: if failed { 3 } else { 1 },
                cache_hit: false,
                error: failed.then(|| "HTTP 500: server error".to_owned()),
                compute_seconds: if failed { 0.0 } else { spec.compute_seconds },
                truncated: false,
                choice: None,
                token_logprobs: None,
            });
            if !failed {
                results.scores.push(ScoreRecord {
                    arm: spec.name.to_owned(),
                    item_id,
                    scorer: METRIC.to_owned(),
                    value: if spec.correct[i] { 1.0 } else { 0.0 },
                });
            }
        }
        if spec.kind == ArmKind::Finetune {
            results.training.push(TrainingRecord {
                arm: spec.name.to_owned(),
                status: domain::TrainingStatus::Completed,
                train_seconds: 7200.0,
                tokens_per_second: 900.0,
                peak_memory_bytes: 1 << 30,
                adapter_path: Some("adapter".to_owned()),
                checkpoint_dir: None,
                error: None,
                curve: curve(),
            });
        }
    }
    results
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
