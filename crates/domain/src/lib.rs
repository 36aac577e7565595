//! The vocabulary every orchestrator crate shares: chat messages, generation parameters, arms,
//! scorer and cost specifications, and the result records a run stores and the reports read.
//!
//! This crate holds plain data and the few invariants that belong to it (a secret never prints).
//! It does no IO and knows nothing of YAML, SQL, HTTP or Candle; the crates above it do.

use std::fmt;

use serde::{Deserialize, Serialize};

mod batch_api;
mod choices;
mod prices;
mod results;
mod review;
mod serving;
mod specs;

pub use batch_api::{BatchFailure, BatchSpec};
pub use choices::*;
pub use prices::{
    ArmPricing, BATCH_API_PRICE_FACTOR, PRICES_AS_OF, builtin_pricing, resolve_pricing,
};
pub use results::*;
pub use review::{ReviewCorrection, ReviewCosts, ReviewSpec};
pub use serving::{ServingAssumptions, ServingMode};
pub use specs::*;

/// Who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message, as sent to a provider or formatted with a local chat template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// Sampling parameters shared by every arm of an experiment (`generation:` in the YAML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    /// Most tokens to generate per answer. Default 64.
    pub max_tokens: u32,
    /// 0 means greedy decoding. Default 0.
    pub temperature: f32,
    pub top_p: Option<f32>,
    /// Strings that end an answer early.
    pub stop: Vec<String>,
    /// Sampling seed, where the provider honours one.
    pub seed: Option<u64>,
    /// Labels the answer must be one of (`choices:`); `None` for free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Choices>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_tokens: 64,
            temperature: 0.0,
            top_p: None,
            stop: Vec::new(),
            seed: None,
            choices: None,
        }
    }
}

/// The two ways an arm answers: a prompt on a provider, or a fine-tuned model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArmKind {
    Prompt,
    Finetune,
}

impl ArmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArmKind::Prompt => "prompt",
            ArmKind::Finetune => "finetune",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prompt" => Some(ArmKind::Prompt),
            "finetune" => Some(ArmKind::Finetune),
            _ => None,
        }
    }
}

impl fmt::Display for ArmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run stands. Stored as TEXT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Interrupted,
    /// Finished, every item answered (some answers may be errors).
    Completed,
    /// Stopped before the end because `budget.max_cost_usd` would have been exceeded.
    BudgetExceeded,
    Failed,
}

impl RunStatus {
    /// Whether the run asked everything it was going to: completed, or stopped by its budget
    /// (what it has is final for that budget). A running, interrupted or failed run is not.
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::BudgetExceeded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Completed => "completed",
            RunStatus::BudgetExceeded => "budget_exceeded",
            RunStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "interrupted" => RunStatus::Interrupted,
            "completed" => RunStatus::Completed,
            "budget_exceeded" => RunStatus::BudgetExceeded,
            "failed" => RunStatus::Failed,
            _ => return None,
        })
    }
    /// A run in this state can be resumed by running the same spec again.
    pub fn is_resumable(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Interrupted | RunStatus::BudgetExceeded
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Price of a hosted model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Pricing {
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_per_mtok
            + completion_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// A secret read from the environment (an API key). It prints as `****` under `Debug` and
/// `Display`, is never serialised, and is read only where a request is built.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// Where local compute runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Device {
    Cpu,
    Cuda(usize),
    /// CUDA device 0 where the build has CUDA and one is present, else the CPU.
    Auto,
}

impl Device {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cpu" => Some(Device::Cpu),
            "auto" => Some(Device::Auto),
            "cuda" => Some(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

/// Where a local model's weights come from, as `experiment` resolved a spec's `model:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum ModelSource {
    /// A known name or `hf:` id: found in the weights cache, or fetched there, when the run
    /// starts.
    Named(String),
    /// A model file or folder on disk, checked to hold a model when the spec was loaded
    /// (relative paths are already joined to the spec's folder).
    Path(std::path::PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s} {s:?}"), "**** ****");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn device_parses() {
        assert_eq!(Device::parse("cuda:1"), Some(Device::Cuda(1)));
        assert_eq!(Device::parse("cpu"), Some(Device::Cpu));
        assert_eq!(Device::parse("gpu"), None);
    }

    #[test]
    fn training_enums_round_trip_their_stored_text() {
        for s in TrainingStatus::ALL {
            assert_eq!(TrainingStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TrainingStatus::Completed.to_string(), "completed");
        for s in [LossSplit::Train, LossSplit::Val] {
            assert_eq!(LossSplit::parse(s.as_str()), Some(s));
        }
        assert_eq!(LossSplit::parse("test"), None);
    }

    #[test]
    fn pricing_cost() {
        let p = Pricing {
            input_per_mtok: 0.15,
            output_per_mtok: 0.60,
        };
        assert!((p.cost(1_000_000, 1_000_000) - 0.75).abs() < 1e-12);
    }
}
