//! Validated specifications that more than one crate reads: scorers (experiment → scoring),
//! LoRA hyper-parameters (experiment → runner → finetune worker), and the cost and decision
//! assumptions (experiment → report). The YAML parsing and checking live in `experiment`.

use serde::{Deserialize, Serialize};

use crate::Device;

/// One scorer of an experiment. `id` names its metric in the store and the leaderboard
/// (defaults to the scorer type, e.g. `equals`, or `json-field:name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerSpec {
    pub id: String,
    pub kind: ScorerKind,
}

/// What a scorer checks. Each yields a value in [0, 1] per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ScorerKind {
    /// Normalised answer (trimmed, case-folded, first line) equals the normalised target.
    Equals,
    /// The answer contains `value` (or the target when `value` is absent), case-folded.
    Contains { value: Option<String> },
    /// The answer matches `pattern` (the target substituted for `{{target}}`).
    Regex { pattern: String },
    /// The answer parses as JSON (a fenced ```json block is accepted).
    IsJson,
    /// The answer is JSON whose `field` (a dotted path) equals the target (or `value`).
    JsonField {
        field: String,
        value: Option<String>,
    },
    /// Token-level F1 between answer and target (SQuAD normalisation).
    F1,
    /// ROUGE-L F-measure between answer and target.
    RougeL,
}

impl ScorerKind {
    /// The YAML `type` of this scorer.
    pub fn type_name(&self) -> &'static str {
        match self {
            ScorerKind::Equals => "equals",
            ScorerKind::Contains { .. } => "contains",
            ScorerKind::Regex { .. } => "regex",
            ScorerKind::IsJson => "is-json",
            ScorerKind::JsonField { .. } => "json-field",
            ScorerKind::F1 => "f1",
            ScorerKind::RougeL => "rouge-l",
        }
    }
    /// Whether the scorer yields only 0 or 1 (pass/fail), which makes McNemar's test apply.
    pub fn is_binary(&self) -> bool {
        !matches!(self, ScorerKind::F1 | ScorerKind::RougeL)
    }
}

/// LoRA fine-tune hyper-parameters, named as axolotl names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraHyper {
    pub lora_r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    /// Hugging Face module names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    pub lora_target_modules: Vec<String>,
    pub learning_rate: f64,
    pub num_epochs: usize,
    pub micro_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub sequence_len: usize,
    /// Share of the train split held out for validation loss (0 disables it).
    pub val_set_size: f64,
    /// Epochs (or evaluations) without improvement before stopping; None never stops early.
    pub early_stopping_patience: Option<usize>,
    /// Evaluate validation loss every N optimizer steps; None evaluates once per epoch.
    pub eval_steps: Option<usize>,
    pub warmup_steps: usize,
    /// `cosine` or `linear`.
    pub lr_scheduler: String,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Also write merged weights (`W + alpha/r · B·A`) beside the adapter.
    pub merge_weights: bool,
}

impl Default for LoraHyper {
    fn default() -> Self {
        Self {
            lora_r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            lora_target_modules: vec!["q_proj".into(), "v_proj".into()],
            learning_rate: 2e-4,
            num_epochs: 2,
            micro_batch_size: 4,
            gradient_accumulation_steps: 1,
            sequence_len: 256,
            val_set_size: 0.1,
            early_stopping_patience: None,
            eval_steps: None,
            warmup_steps: 10,
            lr_scheduler: "cosine".into(),
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            seed: 7,
            merge_weights: false,
        }
    }
}

/// Where a fine-tune or local model computes, and what an hour of it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeSpec {
    pub device: Device,
    /// US dollars per hour of this device. Default 0.05 (a CPU slice).
    pub cost_per_hour: f64,
}

impl Default for ComputeSpec {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            cost_per_hour: 0.05,
        }
    }
}

/// `costs:` in the YAML: the assumptions the report's cost model runs on. Every field has a
/// stated default, and the report prints each next to its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostAssumptions {
    /// Requests a day in production. Default 10,000.
    pub daily_requests: f64,
    /// Days the decision is meant to hold. Default 365.
    pub horizon_days: f64,
    /// Loaded cost of an engineer-hour. Default 90.
    pub hourly_rate_usd: f64,
    /// Engineer-hours to iterate a prompt to production. Default 6.
    pub prompt_iteration_hours: f64,
    /// Engineer-hours to prepare training data for a fine-tune. Default 40.
    pub data_prep_hours: f64,
    /// Engineer-hours a month to keep a self-hosted fine-tune running. Default 8.
    pub mlops_hours_per_month: f64,
    /// Hourly price of the machine that serves a fine-tune 24/7. Default 0.60.
    pub finetune_hourly_usd: f64,
    /// Price hosted calls at batch-API rates (half price, hours of latency). Default false.
    pub batch_api: bool,
}

impl Default for CostAssumptions {
    fn default() -> Self {
        Self {
            daily_requests: 10_000.0,
            horizon_days: 365.0,
            hourly_rate_usd: 90.0,
            prompt_iteration_hours: 6.0,
            data_prep_hours: 40.0,
            mlops_hours_per_month: 8.0,
            finetune_hourly_usd: 0.60,
            batch_api: false,
        }
    }
}

/// `decision:` in the YAML: which metric decides, and what quality is good enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// A scorer id. Default: the first scorer.
    pub metric: String,
    /// Mean metric an arm must reach. Default [`Decision::DEFAULT_QUALITY_TARGET`].
    pub quality_target: f64,
}

impl Decision {
    /// `decision.quality_target` when the spec gives none.
    pub const DEFAULT_QUALITY_TARGET: f64 = 0.9;
    /// The scorer an experiment gets when it lists none, and so the metric that decides when
    /// nothing else names one.
    pub const DEFAULT_METRIC: &'static str = "equals";
}
