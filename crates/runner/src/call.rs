//! One paid call of a hosted arm: ask the provider for an item's answer, score it, and turn
//! the outcome into the records the writer stores, noting a refused key (401/403) so the
//! scheduler in `hosted` stops sending to that provider. Also the record of an item that was
//! never sent. Scheduling, the budget and the cache are `hosted`'s, not this module's.

use std::sync::Arc;

use domain::{CallRecord, GenerationParams, Message};
use providers::Client;
use store::CachedAnswer;

use crate::Shared;
use crate::writer::Written;

/// What a call task hands back: the record to write, the error if it failed, and the answer
/// to cache if it succeeded.
pub(crate) struct Answered {
    pub written: Written,
    pub failed: Option<String>,
    pub answer: Option<CachedAnswer>,
    /// The provider refused the key (401/403): the reason, for every item still to send.
    pub refused: Option<String>,
}

/// The record of an item that was never sent, failed with `reason`.
pub(crate) fn unsent(arm: &str, item_id: &str, reason: &str) -> CallRecord {
    CallRecord {
        arm: arm.to_owned(),
        item_id: item_id.to_owned(),
        response: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0.0,
        cost_usd: 0.0,
        attempts: 0,
        cache_hit: false,
        error: Some(reason.to_owned()),
        compute_seconds: 0.0,
        truncated: false,
        choice: None,
        token_logprobs: None,
    }
}

/// The records of item `item` of `arm` answered from the cache: no call, no cost.
pub(crate) async fn from_cache(
    shared: &Arc<Shared>,
    arm: &str,
    item: usize,
    answer: &CachedAnswer,
) -> Written {
    let call = CallRecord {
        arm: arm.to_owned(),
        item_id: shared.items[item].id.clone(),
        response: Some(answer.text.clone()),
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: answer.completion_tokens,
        latency_ms: 0.0,
        cost_usd: 0.0,
        attempts: 0,
        cache_hit: true,
        error: None,
        compute_seconds: 0.0,
        truncated: answer.truncated,
        choice: answer.choice.clone(),
        token_logprobs: answer.token_logprobs.clone(),
    };
    let scores = shared.score_all_blocking(arm, item, &answer.text).await;
    Written {
        call,
        scores,
        cache: None,
    }
}

/// Asks the provider for one item's answer and scores it. The cache was consulted before this
/// task was spawned; this is a paid call.
pub(crate) async fn answer(
    shared: Arc<Shared>,
    client: Client,
    (arm, params): (Arc<str>, Arc<GenerationParams>),
    item: usize,
    messages: Vec<Message>,
) -> Answered {
    let outcome = client.chat(&messages, &params).await;
    let latency_ms = outcome.latency.as_secs_f64() * 1000.0;
    let attempts = outcome.attempts;
    record(&shared, &arm, item, outcome.result, (latency_ms, attempts)).await
}

/// The records of item `item`'s answer (scored) or failure, taking `latency_ms` over `attempts`
/// HTTP attempts: for a real-time call and for a line of a batch alike.
pub(crate) async fn record(
    shared: &Arc<Shared>,
    arm: &Arc<str>,
    item: usize,
    result: Result<providers::Answer, providers::CallError>,
    (latency_ms, attempts): (f64, u32),
) -> Answered {
    let row = &shared.items[item];
    match result {
        Ok(answer) => {
            let scores = shared.score_all_blocking(arm, item, &answer.text).await;
            let cached = CachedAnswer {
                text: answer.text.clone(),
                prompt_tokens: answer.usage.prompt_tokens,
                completion_tokens: answer.usage.completion_tokens,
                truncated: answer.truncated,
                choice: answer.choice.clone(),
                token_logprobs: answer.token_logprobs.clone(),
            };
            let call = CallRecord {
                arm: arm.to_string(),
                item_id: row.id.clone(),
                response: Some(answer.text),
                prompt_tokens: answer.usage.prompt_tokens,
                completion_tokens: answer.usage.completion_tokens,
                latency_ms,
                cost_usd: answer.cost_usd,
                attempts,
                cache_hit: false,
                error: None,
                compute_seconds: 0.0,
                truncated: answer.truncated,
                choice: answer.choice.clone(),
                token_logprobs: answer.token_logprobs.clone(),
            };
            Answered {
                written: Written {
                    call,
                    scores,
                    cache: None,
                },
                failed: None,
                answer: Some(cached),
                refused: None,
            }
        }
        Err(err) => {
            let error = err.to_string();
            tracing::debug!(arm = %arm, item = %row.id, cause = %error, "call failed");
            let refused = matches!(err.status(), Some(401 | 403)).then(|| {
                format!("not sent: the provider refused the API key earlier in this run ({error})")
            });
            let call = CallRecord {
                arm: arm.to_string(),
                item_id: row.id.clone(),
                response: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms,
                cost_usd: 0.0,
                attempts,
                cache_hit: false,
                error: Some(error.clone()),
                compute_seconds: 0.0,
                truncated: false,
                choice: None,
                token_logprobs: None,
            };
            Answered {
                written: Written {
                    call,
                    scores: Vec::new(),
                    cache: None,
                },
                failed: Some(error),
                answer: None,
                refused,
            }
        }
    }
}
