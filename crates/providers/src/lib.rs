//! Calls to hosted models: one [`Client`] per OpenAI-compatible chat-completions endpoint
//! (OpenAI, Groq, Together, vLLM, a gateway, the loopback test server), built on `async-openai`.
//! A call waits for a concurrency permit and a rate-limit slot, then tries up to
//! `1 + max_retries` times, backing off with full jitter or as `Retry-After` says, and returns an
//! [`Answer`] with token usage and its price, or a [`CallError`] — counted attempts either way.
//! A call with `choices` asks for a JSON-schema enum of the labels (and logprobs), falls back to
//! free text mapped onto the labels where the endpoint refuses or ignores that, and returns the
//! label with how it was read and its confidence ([`Answer::choice`]).
//!
//! Invariants: the API key lives in a [`domain::Secret`] and is sent only as the
//! `Authorization` header; no [`CallError`] text contains it, even when a server echoes it back.
//! This crate knows nothing of scoring, the store's schema or the terminal: it never prints,
//! it logs with `tracing`.
//!
//! The same [`Client`] speaks OpenAI's Batch API (`batch.rs`): a JSONL file of requests, a batch
//! polled to its end, its lines read into the same answers, priced at batch rates.
//!
//! Also here, because they are about calls: [`cache_key`] for the response cache and
//! [`estimate_tokens`] for dry runs. The price table is `domain::builtin_pricing`: the plan
//! resolves prices, and an [`Endpoint`] is handed the one it records calls at.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod batch;
mod cache_key;
mod choices;
mod client;
mod error;
mod limiter;
mod request;
mod retry;
mod transport;

use std::time::Duration;

pub use batch::{BatchRequest, BatchStatus, RemoteBatch};
pub use cache_key::cache_key;
pub use client::Client;
pub use error::{CallError, Error};
pub use retry::RetryPolicy;

/// One OpenAI-compatible endpoint and the limits that apply to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The provider id from the spec, used in logs.
    pub id: String,
    /// Up to and including the version, e.g. `https://api.openai.com/v1`; `/chat/completions`
    /// is appended.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>`; None sends an empty bearer token, which local
    /// servers ignore. (Never read from `OPENAI_API_KEY` behind the caller's back.)
    pub api_key: Option<domain::Secret>,
    /// Most calls in flight at once (at least 1).
    pub max_concurrency: usize,
    /// Most attempts started per minute, retries included; None for no limit.
    pub requests_per_minute: Option<u32>,
    /// Limit for one attempt, from sending the request to reading the whole body.
    pub timeout: Duration,
    /// Retries after the first attempt for retryable failures (429, 5xx, timeouts, broken
    /// connections, truncated or malformed bodies).
    pub max_retries: u32,
    /// Whether a call with `choices` sends `response_format` (a strict JSON-schema enum of the
    /// labels). None: send it, and if the endpoint refuses it with a 400, call again without it
    /// and send free text from then on (mapped onto the labels). `Some(true)`: always send it
    /// (a refusal is the call's error); `Some(false)`: never.
    pub structured_outputs: Option<bool>,
    /// Whether calls ask for `logprobs`. None: only calls with `choices` (never for OpenAI's
    /// reasoning models, which reject it), dropped like `structured_outputs` when refused.
    /// `Some(true)`: every call; `Some(false)`: none.
    pub logprobs: Option<bool>,
    pub pricing: domain::Pricing,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The answer's text; for a call with `choices`, the label it chose, or the raw text when
    /// it names none.
    pub text: String,
    pub usage: domain::Usage,
    /// `usage` priced with the endpoint's [`domain::Pricing`].
    pub cost_usd: f64,
    /// The server stopped at the token limit (`finish_reason: length`).
    pub truncated: bool,
    /// For a call with `choices`: the label, how it was read (`Schema` from a structured
    /// answer; `Exact`, `FirstWord`, `Contains` mapped from free text or from JSON naming no
    /// label; `Unmapped`), and, when logprobs came back, its confidence: `exp` of the summed
    /// logprobs of the tokens spelling the label in a JSON answer, of all content tokens for
    /// free text. None without `choices`.
    pub choice: Option<domain::ChoiceRecord>,
    /// The content tokens' logprobs, whenever the server returned them.
    pub token_logprobs: Option<Vec<f32>>,
}

/// What one [`Client::chat`] call produced.
#[derive(Debug)]
pub struct CallOutcome {
    pub result: Result<Answer, CallError>,
    /// HTTP attempts made (at least 1).
    pub attempts: u32,
    /// From the first attempt's start to the final result, backoff waits included; time queued
    /// for a concurrency permit or the first rate-limit slot is not included.
    pub latency: Duration,
}

/// An estimate of the tokens in `text`: characters / 4, rounded up. Real tokenizers differ by
/// model and language; this is only for `--dry-run` cost estimates before anything is spent.
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// An estimate of the prompt tokens of a chat request: [`estimate_tokens`] of each message plus
/// 4 per message for the chat format's role markers (OpenAI's published rule of thumb).
pub fn estimate_prompt_tokens(messages: &[domain::Message]) -> u32 {
    messages
        .iter()
        .map(|m| estimate_tokens(&m.content).saturating_add(4))
        .fold(0u32, u32::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_estimates_round_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("ééééé"), 2, "counts characters, not bytes");
        let msgs = [domain::Message::system("abcd"), domain::Message::user("")];
        assert_eq!(estimate_prompt_tokens(&msgs), 1 + 4 + 4);
    }
}
