//! What a run leaves behind, as plain records: `store` writes and reads them, `report` and
//! `scoring` compute on them. One record per arm × eval item for calls, one per arm × item ×
//! scorer for scores.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ArmKind, ArmPricing, CostAssumptions, Decision, RunStatus};

/// One run of an experiment, as listed by `orchestrator runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: i64,
    pub experiment: String,
    pub status: RunStatus,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// sha256 of the dataset's content (and split), so two runs are comparable.
    pub dataset_fingerprint: String,
    /// sha256 of the normalised spec; a rerun resumes a run with the same hash.
    pub spec_hash: String,
    /// The validated plan (without its rows) as JSON: a record for people and tools. Nothing
    /// reads it back; what the report needs is in [`RunInfo::settings`] and [`ArmInfo`].
    pub spec_json: String,
    /// The assumptions the report runs on, as the run stored them; `None` for a run stored by
    /// a version that did not store them and whose `spec_json` could not supply them.
    pub settings: Option<RunSettings>,
}

/// What a run's report assumes beyond its records: the spec's `costs:`, `decision:` and `review:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub costs: CostAssumptions,
    /// Names of the `costs` fields the spec declared (the rest are defaults); `None` when
    /// unknown (a run of a version that did not record it).
    pub declared_costs: Option<BTreeSet<String>>,
    pub decision: Decision,
    /// The spec's `review:`; `None` when it has none (every answer is automated).
    #[serde(default)]
    pub review: Option<crate::ReviewSpec>,
}

/// One arm of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmInfo {
    /// `prompt@provider` for prompt arms, the fine-tune id for fine-tunes.
    pub arm: String,
    pub kind: ArmKind,
    pub provider: Option<String>,
    pub prompt: Option<String>,
    /// The model the arm calls or trains on.
    pub model: String,
    /// How the arm is paid for, as the run priced it; `None` for an arm stored by a version that
    /// did not record it (and that the upgrade could not derive).
    pub pricing: Option<ArmPricing>,
    /// Where the arm sits on a learning curve or a label-noise sweep: every fine-tune, and
    /// the prompt arms of a prompt with `few_shot_sizes` or `label_noise`. `None` for other
    /// prompt arms and for arms stored before sweeps existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepPoint>,
    /// The labels of the arm's `choices`, in the order of its calls'
    /// `ChoiceRecord::probabilities`; `None` for an arm without `choices` and for arms stored
    /// before the labels were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

/// One point of a sweep (`train_sizes`, `few_shot_sizes`, `label_noise`): an arm that differs
/// from the declared arm of its family only in how many examples it learned from, or in how
/// many of their labels were flipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The declared arm this point belongs with (its own id for the declared arm itself).
    pub family: String,
    /// The examples it learned from: a fine-tune's training rows, a prompt's demonstrations.
    pub examples: usize,
    /// The share of those examples whose label was flipped to another label (0 for clean data).
    pub label_noise: f64,
}

impl SweepPoint {
    /// A point with flipped labels measures tolerance to noise; it is never an arm to ship.
    pub fn is_noisy(&self) -> bool {
        self.label_noise > 0.0
    }
}

/// An eval item as stored with its run, for side-by-side comparisons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    pub item_id: String,
    pub input: String,
    pub target: String,
}

/// One answered (or failed) eval item of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub arm: String,
    pub item_id: String,
    /// The answer text; None when the call failed.
    pub response: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Wall time of the call, all attempts included.
    pub latency_ms: f64,
    pub cost_usd: f64,
    pub attempts: u32,
    pub cache_hit: bool,
    /// Why the call failed; never contains a secret.
    pub error: Option<String>,
    /// Local compute seconds this answer used (local and fine-tuned arms).
    pub compute_seconds: f64,
    /// The answer stopped at the token limit (`finish_reason: length`), not where the model
    /// ended it: it is kept and scored, and counted apart.
    #[serde(default)]
    pub truncated: bool,
    /// The label the answer chose, for an arm with `choices` (`response` is then the label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<crate::ChoiceRecord>,
    /// Log-probability of each answer token, where the model or endpoint gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_logprobs: Option<Vec<f32>>,
}

/// One scorer's value for one item of one arm, in [0, 1]; a `similar` scorer's raw cosine
/// (`ID.raw`, [`crate::ScorerSpec::raw_id`]) is in [−1, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    pub arm: String,
    pub item_id: String,
    pub scorer: String,
    pub value: f64,
}

/// A point of a training loss curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub step: u64,
    pub epoch: f64,
    pub split: LossSplit,
    pub loss: f64,
}

/// Which loss a [`LossPoint`] is. Stored as TEXT (`train`, `val`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossSplit {
    /// The mean loss of one optimizer step's training batches.
    Train,
    /// The mean loss over the held-out validation examples.
    Val,
}

impl LossSplit {
    pub fn as_str(self) -> &'static str {
        match self {
            LossSplit::Train => "train",
            LossSplit::Val => "val",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [LossSplit::Train, LossSplit::Val]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

impl fmt::Display for LossSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a fine-tune arm's training stands. Stored as TEXT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainingStatus {
    Running,
    /// The adapter is trained (this run, or reused from an earlier one).
    Completed,
    Failed,
    /// Stopped by Ctrl-C; its checkpoints let the next run resume.
    Interrupted,
}

impl TrainingStatus {
    pub const ALL: [TrainingStatus; 4] = [
        TrainingStatus::Running,
        TrainingStatus::Completed,
        TrainingStatus::Failed,
        TrainingStatus::Interrupted,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TrainingStatus::Running => "running",
            TrainingStatus::Completed => "completed",
            TrainingStatus::Failed => "failed",
            TrainingStatus::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        TrainingStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for TrainingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The training side of a fine-tune arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub arm: String,
    pub status: TrainingStatus,
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    pub peak_memory_bytes: u64,
    pub adapter_path: Option<String>,
    /// The directory with resumable checkpoints.
    pub checkpoint_dir: Option<String>,
    pub error: Option<String>,
    pub curve: Vec<LossPoint>,
}

/// Everything one run stored, as the leaderboard, compare and report read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub run: RunInfo,
    pub arms: Vec<ArmInfo>,
    pub items: Vec<EvalItem>,
    pub calls: Vec<CallRecord>,
    pub scores: Vec<ScoreRecord>,
    pub training: Vec<TrainingRecord>,
    /// The candidates of the run's prompt searches (`optimize:`), by optimised arm then order;
    /// empty for runs without one and for runs stored before searches existed.
    #[serde(default)]
    pub searches: Vec<SearchRecord>,
    /// `bench-serving` measurements of the run's local arms, by arm then batch size.
    #[serde(default)]
    pub serving_bench: Vec<ServingBench>,
}

/// Throughput and latency of a local arm answering the run's eval prompts `batch_size` at a
/// time (`orchestrator bench-serving`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingBench {
    pub arm: String,
    pub batch_size: u32,
    /// Prompts answered in the measurement.
    pub items: u32,
    pub items_per_second: f64,
    /// Per request: the time of the batch it was answered in.
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    /// Unix milliseconds.
    pub measured_ms: i64,
}

/// What separates an optimised arm's id from its candidates' (`opt@smollm2~c03`); no id of
/// the spec may contain it.
pub const CANDIDATE_SEPARATOR: char = '~';

/// One candidate of a prompt search: what it was and how it scored on the dev split. Its dev
/// answers are stored as calls of arm [`SearchRecord::candidate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRecord {
    /// The optimised arm (`opt@smollm2`).
    pub arm: String,
    /// The arm id its dev calls are stored under (`opt@smollm2~c03`).
    pub candidate: String,
    /// Its place in the search's order, from 0.
    pub seq: u32,
    /// The seed prompt it came from.
    pub seed_prompt: String,
    /// Its system message.
    pub instruction: Option<String>,
    /// Its fixed demonstrations (train row ids); None when it draws `few_shot` per item.
    pub demo_ids: Option<Vec<String>>,
    /// Dev items it was last scored on (its highest rung), and its mean there.
    pub dev_items: u32,
    pub dev_score: Option<f64>,
    /// The winner: the optimised arm answers the eval items with it.
    pub chosen: bool,
}
