//! Validated specifications that more than one crate reads: scorers (experiment → scoring),
//! LoRA hyper-parameters with their target modules and learning-rate schedulers (experiment →
//! runner → finetune worker), and the cost and decision assumptions (experiment → report). The
//! YAML parsing and checking live in `experiment`; the names here are the YAML's spelling.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Device;

/// One scorer of an experiment. `id` names its metric in the store and the leaderboard
/// (defaults to the scorer type, e.g. `equals`, or `json-field:name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerSpec {
    pub id: String,
    pub kind: ScorerKind,
}

impl ScorerSpec {
    /// Where a `similar` scorer stores its raw cosine in [−1, 1] beside its score: `ID.raw`.
    /// None for every other kind.
    pub fn raw_id(&self) -> Option<String> {
        matches!(self.kind, ScorerKind::Similar { .. }).then(|| format!("{}.raw", self.id))
    }
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
    /// Cosine similarity of the sentence embeddings of the answer and `value` (or the target)
    /// by the embedding `model` (as `experiment` resolved it): pass/fail at `threshold`, else
    /// `max(0, cos)`. The raw cosine is stored as well, under [`ScorerSpec::raw_id`].
    Similar {
        value: Option<String>,
        threshold: Option<f64>,
        model: crate::ModelSource,
    },
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
            ScorerKind::Similar { .. } => "similar",
        }
    }
    /// Whether the scorer yields only 0 or 1 (pass/fail), which makes McNemar's test apply.
    pub fn is_binary(&self) -> bool {
        match self {
            ScorerKind::F1 | ScorerKind::RougeL => false,
            ScorerKind::Similar { threshold, .. } => threshold.is_some(),
            _ => true,
        }
    }
}

/// A projection of a llama-family block that LoRA can adapt. Its YAML and JSON spelling is the
/// Hugging Face module name (`q_proj`, ..., `down_proj`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LoraTarget {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl LoraTarget {
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// The Hugging Face module name: `q_proj`, ..., `down_proj`.
    pub const fn hf_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q_proj",
            LoraTarget::K => "k_proj",
            LoraTarget::V => "v_proj",
            LoraTarget::O => "o_proj",
            LoraTarget::Gate => "gate_proj",
            LoraTarget::Up => "up_proj",
            LoraTarget::Down => "down_proj",
        }
    }

    /// The parent module in Hugging Face naming: `self_attn` or `mlp`.
    pub fn hf_parent(self) -> &'static str {
        match self {
            LoraTarget::Q | LoraTarget::K | LoraTarget::V | LoraTarget::O => "self_attn",
            LoraTarget::Gate | LoraTarget::Up | LoraTarget::Down => "mlp",
        }
    }

    /// A Hugging Face module name (`q_proj`); the short forms PEFT configs sometimes carry
    /// (`q`, `gate`) are accepted too.
    pub fn parse(name: &str) -> Option<Self> {
        let short = name.strip_suffix("_proj").unwrap_or(name);
        Some(match short {
            "q" => LoraTarget::Q,
            "k" => LoraTarget::K,
            "v" => LoraTarget::V,
            "o" => LoraTarget::O,
            "gate" => LoraTarget::Gate,
            "up" => LoraTarget::Up,
            "down" => LoraTarget::Down,
            _ => return None,
        })
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hf_name())
    }
}

impl From<LoraTarget> for String {
    fn from(t: LoraTarget) -> String {
        t.hf_name().to_string()
    }
}

impl TryFrom<String> for LoraTarget {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        LoraTarget::parse(&name).ok_or_else(|| format!("unknown LoRA target module `{name}`"))
    }
}

/// `lr_scheduler`: how the learning rate falls after warm-up (to zero at the last step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LrScheduler {
    Cosine,
    Linear,
}

impl LrScheduler {
    pub const ALL: [LrScheduler; 2] = [LrScheduler::Cosine, LrScheduler::Linear];

    /// The YAML spelling: `cosine` or `linear`.
    pub fn as_str(self) -> &'static str {
        match self {
            LrScheduler::Cosine => "cosine",
            LrScheduler::Linear => "linear",
        }
    }

    /// Reads the YAML spelling; the error is the message users see.
    pub fn parse(s: &str) -> Result<Self, String> {
        LrScheduler::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("unknown `lr_scheduler` `{s}`: expected `cosine` or `linear`"))
    }
}

impl fmt::Display for LrScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<LrScheduler> for String {
    fn from(l: LrScheduler) -> String {
        l.as_str().to_string()
    }
}

impl TryFrom<String> for LrScheduler {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        LrScheduler::parse(&s)
    }
}

/// LoRA fine-tune hyper-parameters, named as axolotl names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraHyper {
    pub lora_r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub lora_target_modules: Vec<LoraTarget>,
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
    /// Also write a resumable checkpoint every N optimizer steps (at most
    /// [`LoraHyper::MAX_SAVE_STEPS`]), besides the one at each epoch's end; None checkpoints
    /// at epoch ends only. Left out of the serialised form when None, so job files and
    /// fingerprints of specs without it are what they were before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_steps: Option<usize>,
    pub warmup_steps: usize,
    pub lr_scheduler: LrScheduler,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Also write merged weights (`W + alpha/r · B·A`) beside the adapter.
    pub merge_weights: bool,
}

impl LoraHyper {
    /// The largest `save_steps` a spec may give: a million optimizer steps is far beyond any
    /// fine-tune this tool runs, so a larger value is a typo (and would never checkpoint).
    pub const MAX_SAVE_STEPS: usize = 1_000_000;
}

impl Default for LoraHyper {
    fn default() -> Self {
        Self {
            lora_r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            lora_target_modules: vec![LoraTarget::Q, LoraTarget::V],
            learning_rate: 2e-4,
            num_epochs: 2,
            micro_batch_size: 4,
            gradient_accumulation_steps: 1,
            sequence_len: 256,
            val_set_size: 0.1,
            early_stopping_patience: None,
            eval_steps: None,
            save_steps: None,
            warmup_steps: 10,
            lr_scheduler: LrScheduler::Cosine,
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
    /// Hourly price of the machine that serves a fine-tune (24/7 in real time, by the hour in
    /// batches). Default 0.60.
    pub finetune_hourly_usd: f64,
    /// Price hosted calls at batch-API rates (half price, hours of latency). Default false.
    pub batch_api: bool,
    /// `costs.review`: what a human review costs; read only when the spec has `review:`.
    #[serde(default)]
    pub review: crate::ReviewCosts,
    /// `costs.serving.mode`, `batch_window_hours` and `utilisation`.
    #[serde(default)]
    pub serving: crate::ServingAssumptions,
    /// `costs.staff.labelling_minutes_per_example`: minutes of a person's time to collect and
    /// label one training example. When set, a fine-tune's data preparation is its examples
    /// times this (and a learning curve says how many the target needs) instead of
    /// `data_prep_hours`. No default: unset keeps `data_prep_hours`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelling_minutes_per_example: Option<f64>,
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
            review: crate::ReviewCosts::default(),
            serving: crate::ServingAssumptions::default(),
            labelling_minutes_per_example: None,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lora_targets_and_schedulers_keep_the_yaml_spelling() {
        for t in LoraTarget::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.hf_name()));
            assert_eq!(serde_json::from_str::<LoraTarget>(&json).unwrap(), t);
        }
        assert_eq!(LoraTarget::parse("gate"), Some(LoraTarget::Gate));
        assert_eq!(LoraTarget::parse("mlp"), None);
        for l in LrScheduler::ALL {
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(serde_json::from_str::<LrScheduler>(&json).unwrap(), l);
        }
        let err = serde_json::from_str::<LrScheduler>("\"constant\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown `lr_scheduler` `constant`: expected `cosine` or `linear`"),
            "{err}"
        );
    }

    #[test]
    fn save_steps_is_left_out_when_unset() {
        let json = serde_json::to_value(LoraHyper::default()).unwrap();
        assert!(json.get("save_steps").is_none());
        assert_eq!(
            json["lora_target_modules"],
            serde_json::json!(["q_proj", "v_proj"])
        );
        assert_eq!(json["lr_scheduler"], "cosine");
        let back: LoraHyper = serde_json::from_value(json).unwrap();
        assert_eq!(back, LoraHyper::default());
    }
}
