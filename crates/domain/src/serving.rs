//! How production traffic is served, as `costs.serving:` states it: in real time (hosted calls
//! at list price, a self-hosted model on a machine kept up around the clock) or in batches
//! (hosted calls at batch-API rates, a self-hosted model on a machine only for the hours its
//! traffic needs). The arithmetic is `report`'s.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServingMode {
    /// Answers in seconds: hosted at list price, self-hosted 24/7.
    #[default]
    Realtime,
    /// Answers within `batch_window_hours`: hosted at batch rates, self-hosted by the hour.
    Batch,
}

impl ServingMode {
    pub const ALL: [ServingMode; 2] = [ServingMode::Realtime, ServingMode::Batch];

    pub fn as_str(self) -> &'static str {
        match self {
            ServingMode::Realtime => "realtime",
            ServingMode::Batch => "batch",
        }
    }

    /// The other mode, which the report sets beside the declared one.
    pub fn other(self) -> Self {
        match self {
            ServingMode::Realtime => ServingMode::Batch,
            ServingMode::Batch => ServingMode::Realtime,
        }
    }
}

/// `costs.serving:` beyond `finetune_hourly_usd` (which stays in `CostAssumptions`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServingAssumptions {
    pub mode: ServingMode,
    /// Hours within which a batch's answers must come back. Default 24 (the batch APIs'
    /// completion window).
    pub batch_window_hours: f64,
    /// Share of a self-hosted machine's hours spent answering, in (0, 1]: batch serving pays
    /// for `needed hours ÷ utilisation`. Default 0.6.
    pub utilisation: f64,
    /// p95 latency a self-hosted arm must keep: the report costs it at the fastest batch size
    /// `bench-serving` measured within it. None: the fastest measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_slo_ms: Option<f64>,
}

impl ServingAssumptions {
    /// Hours hosted batch APIs promise results within (OpenAI, Anthropic, Gemini, Together).
    pub const BATCH_API_WINDOW_HOURS: f64 = 24.0;
    pub const DEFAULT_UTILISATION: f64 = 0.6;
}

impl Default for ServingAssumptions {
    fn default() -> Self {
        Self {
            mode: ServingMode::Realtime,
            batch_window_hours: Self::BATCH_API_WINDOW_HOURS,
            utilisation: Self::DEFAULT_UTILISATION,
            latency_slo_ms: None,
        }
    }
}
