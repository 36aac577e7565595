//! `batch:`: how `run --batch` sends hosted arms through a provider's Batch API: what becomes of
//! items a batch did not answer, and how often a batch is polled.

use serde::{Deserialize, Serialize};

/// What `run --batch` does with an item its batch did not answer (a failed line, an expired
/// or cancelled batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchFailure {
    /// Ask it once more as a real-time call, at list price, in the same invocation.
    #[default]
    Realtime,
    /// Record it as failed (a later run asks it again).
    Fail,
}

impl BatchFailure {
    pub const ALL: [BatchFailure; 2] = [BatchFailure::Realtime, BatchFailure::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchFailure::Realtime => "realtime",
            BatchFailure::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchSpec {
    pub on_failure: BatchFailure,
    /// Seconds before a batch's first status poll; each wait doubles up to `max_poll_seconds`.
    pub poll_seconds: f64,
    pub max_poll_seconds: f64,
    /// Most requests in one batch (OpenAI and Together: 50,000 per file); an arm with more
    /// pending items is sent as several batches.
    pub max_requests: usize,
}

impl BatchSpec {
    pub const DEFAULT_POLL_SECONDS: f64 = 5.0;
    pub const DEFAULT_MAX_POLL_SECONDS: f64 = 120.0;
    pub const DEFAULT_MAX_REQUESTS: usize = 50_000;
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            on_failure: BatchFailure::Realtime,
            poll_seconds: Self::DEFAULT_POLL_SECONDS,
            max_poll_seconds: Self::DEFAULT_MAX_POLL_SECONDS,
            max_requests: Self::DEFAULT_MAX_REQUESTS,
        }
    }
}
