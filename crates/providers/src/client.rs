//! [`Client`]: one per endpoint. It owns the limits (a semaphore for `max_concurrency`, a GCRA
//! limiter for `requests_per_minute`), the retry loop, and the reading of `async-openai`'s
//! responses into our types (requests are built in `request.rs`). When an endpoint refuses
//! structured outputs or logprobs, it calls again without them (`choices.rs` decides).
//!
//! A call holds its concurrency permit from its first attempt to its result, backoff waits
//! included: while an endpoint is pushing back (429, 5xx), fewer requests reach it. Each attempt,
//! retries included, takes a rate-limit slot. The client does not cache: the runner checks the
//! store with [`crate::cache_key`] before calling.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, FinishReason,
};
use domain::{Choices, GenerationParams, Message, Usage};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::choices::{self, Extras, Support};
use crate::error::Redactor;
use crate::limiter::RateLimiter;
use crate::request::{build_request, is_reasoning_model, requested_max_tokens};
use crate::retry::RetryPolicy;
use crate::transport::{AttemptFailure, ChatTransport};
use crate::{Answer, CallError, CallOutcome, Endpoint, Error, estimate_prompt_tokens};

/// Reported prompt tokens are capped at this multiple of our estimate (a quarter token per
/// character, so 16x allows four tokens per character: byte-level BPE's worst case) ...
const PROMPT_USAGE_SLACK: u32 = 16;
/// ... plus this many, for the chat template's own tokens.
const PROMPT_USAGE_FLOOR: u32 = 256;

/// A client for one endpoint. Cloning is cheap and clones share the limits, so all calls to one
/// provider should go through clones of one `Client`.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    pub(crate) retry: RetryPolicy,
}

pub(crate) struct Inner {
    pub(crate) endpoint: Endpoint,
    openai: async_openai::Client<OpenAIConfig>,
    /// The same connection pool, for the batch endpoints (`batch.rs`).
    pub(crate) http: reqwest::Client,
    permits: Semaphore,
    limiter: Option<RateLimiter>,
    pub(crate) redactor: Redactor,
    pub(crate) reasoning_model: bool,
    /// What the endpoint has refused so far (structured outputs, logprobs).
    support: Support,
}

/// What one [`Client::chat`] call asks for, beyond its request.
pub(crate) struct Call<'a> {
    pub(crate) messages: &'a [Message],
    pub(crate) choices: Option<&'a Choices>,
    pub(crate) extras: Extras,
}

/// Attempts made by one call and when the first began.
#[derive(Default)]
struct Clock {
    attempts: u32,
    started: Option<Instant>,
}

impl Clock {
    fn start_attempt(&mut self) {
        self.started.get_or_insert_with(Instant::now);
        self.attempts += 1;
    }

    fn elapsed(&self) -> Duration {
        self.started.map(|s| s.elapsed()).unwrap_or_default()
    }
}

/// A failed attempt, classified.
pub(crate) struct Failed {
    pub(crate) error: CallError,
    retry_after: Option<Duration>,
    retryable: bool,
}

impl Failed {
    fn new(error: CallError) -> Self {
        let retryable = error.is_retryable();
        Self {
            error,
            retry_after: None,
            retryable,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.inner.endpoint;
        f.debug_struct("Client")
            .field("id", &e.id)
            .field("base_url", &e.base_url)
            .field("model", &e.model)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Checks the endpoint and builds its client, with the default [`RetryPolicy`].
    pub fn new(endpoint: Endpoint) -> Result<Client, Error> {
        let id = endpoint.id.clone();
        let base_url = endpoint.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::InvalidBaseUrl {
                endpoint: id,
                url: endpoint.base_url,
            });
        }
        let invalid = |field| Error::InvalidLimit {
            endpoint: id.clone(),
            field,
        };
        if endpoint.max_concurrency == 0 {
            return Err(invalid("max_concurrency"));
        }
        if endpoint.requests_per_minute == Some(0) {
            return Err(invalid("requests_per_minute"));
        }
        if endpoint.timeout.is_zero() {
            return Err(invalid("timeout"));
        }
        let key = endpoint.api_key.as_ref().map(|k| k.expose()).unwrap_or("");
        // async-openai parses "Bearer <key>" into a header with `unwrap`; check it here so a
        // bad key is an error, not a panic.
        if http::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
            return Err(Error::InvalidApiKey { endpoint: id });
        }

        let http = reqwest::Client::builder()
            .connect_timeout(endpoint.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|source| Error::HttpClient {
                endpoint: id.clone(),
                source,
            })?;
        // Every setting explicit: `OpenAIConfig::new()` would otherwise pick up
        // OPENAI_API_KEY, OPENAI_ORG_ID and OPENAI_PROJECT_ID from the environment and send
        // them to whatever server this endpoint names.
        let config = OpenAIConfig::new()
            .with_api_base(base_url.clone())
            .with_api_key(key)
            .with_org_id("")
            .with_project_id("");
        // `with_http_service` replaces async-openai's executor, and with it its built-in
        // retry layer: see transport.rs for why.
        let openai = async_openai::Client::build(http.clone(), config)
            .with_http_service(ChatTransport::new(http.clone()));

        let reasoning_model = is_reasoning_model(&endpoint.model);
        let inner = Inner {
            openai,
            http,
            permits: Semaphore::new(endpoint.max_concurrency),
            limiter: endpoint.requests_per_minute.map(RateLimiter::per_minute),
            redactor: Redactor::new(endpoint.api_key.clone()),
            reasoning_model,
            support: Support::default(),
            endpoint: Endpoint {
                base_url,
                ..endpoint
            },
        };
        Ok(Client {
            inner: Arc::new(inner),
            retry: RetryPolicy::default(),
        })
    }

    /// The same client (sharing its limits) with another backoff policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Waits for a concurrency permit and the rate limiter, then calls with retries. When the
    /// endpoint refuses a part it may lack (structured outputs, logprobs: see `choices.rs`), the
    /// call is made again without it, and so are the client's later calls.
    pub async fn chat(&self, messages: &[Message], params: &GenerationParams) -> CallOutcome {
        let inner = &*self.inner;
        let endpoint = &inner.endpoint;
        // The semaphore is never closed, so `acquire` cannot fail; were it closed, calling
        // without a permit beats failing the item.
        let _permit = inner.permits.acquire().await.ok();
        let mut call = Call {
            messages,
            choices: params.choices.as_ref(),
            extras: inner
                .support
                .extras(endpoint, params, inner.reasoning_model),
        };
        let mut clock = Clock::default();
        loop {
            let request = build_request(
                &endpoint.model,
                messages,
                params,
                inner.reasoning_model,
                call.extras,
            );
            let result = self.with_retries(request, &call, &mut clock).await;
            // Each refusal drops a part the request carried, so this loops at most twice.
            if let Err(error) = &result
                && let Some(feature) = choices::refused(error, call.extras)
            {
                tracing::info!(
                    endpoint = %endpoint.id, ?feature, cause = %error,
                    "the endpoint refused a request part; calling without it from now on"
                );
                inner.support.refuse(feature);
                call.extras = call.extras.without(feature);
                continue;
            }
            return CallOutcome {
                result,
                attempts: clock.attempts,
                latency: clock.elapsed(),
            };
        }
    }

    /// Up to `1 + max_retries` attempts of `request`, counted on `clock`.
    async fn with_retries(
        &self,
        request: CreateChatCompletionRequest,
        call: &Call<'_>,
        clock: &mut Clock,
    ) -> Result<Answer, CallError> {
        let inner = &*self.inner;
        let endpoint = &inner.endpoint;
        let mut retries = 0u32;
        loop {
            if let Some(limiter) = &inner.limiter {
                limiter.until_ready().await;
            }
            clock.start_attempt();
            let failed = match self.attempt(request.clone(), call).await {
                Ok(answer) => return Ok(answer),
                Err(failed) => failed,
            };
            if !failed.retryable || retries >= endpoint.max_retries {
                tracing::debug!(
                    endpoint = %endpoint.id, attempts = clock.attempts, cause = %failed.error,
                    "call failed"
                );
                return Err(failed.error);
            }
            let delay = self.retry.delay(retries, failed.retry_after);
            retries += 1;
            tracing::debug!(
                endpoint = %endpoint.id, attempt = clock.attempts,
                delay_ms = delay.as_millis() as u64,
                retry_after = failed.retry_after.is_some(), cause = %failed.error,
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange under the endpoint's timeout.
    async fn attempt(
        &self,
        request: CreateChatCompletionRequest,
        call: &Call<'_>,
    ) -> Result<Answer, Failed> {
        let inner = &*self.inner;
        let timeout = inner.endpoint.timeout;
        let max_tokens = requested_max_tokens(&request);
        match tokio::time::timeout(timeout, inner.openai.chat().create(request)).await {
            Err(_) => Err(Failed::new(CallError::Timeout { after: timeout })),
            Ok(Err(e)) => Err(self.classify(e, timeout)),
            Ok(Ok(response)) => {
                let pricing = inner.endpoint.pricing;
                self.answer(response, call, max_tokens, pricing)
            }
        }
    }

    /// Reads a chat completion into an [`Answer`] priced at `pricing`.
    pub(crate) fn answer(
        &self,
        response: CreateChatCompletionResponse,
        call: &Call<'_>,
        max_tokens: Option<u32>,
        pricing: domain::Pricing,
    ) -> Result<Answer, Failed> {
        let messages = call.messages;
        let Some(choice) = response.choices.into_iter().next() else {
            return Err(Failed::new(CallError::Malformed {
                reason: "the response has no choices".into(),
                body_excerpt: String::new(),
            }));
        };
        if choice.finish_reason == Some(FinishReason::ContentFilter) {
            return Err(Failed::new(CallError::NoAnswer {
                reason: "the provider's content filter withheld the answer".into(),
            }));
        }
        let truncated = choice.finish_reason == Some(FinishReason::Length);
        let message = choice.message;
        let tokens = choice.logprobs.and_then(|l| l.content);
        let Some(text) = message.content.or(message.refusal) else {
            return Err(Failed::new(CallError::NoAnswer {
                reason: "the response's message has `content: null`".into(),
            }));
        };
        let text = self.inner.redactor.redact_key(&text);
        let usage = match response.usage {
            Some(u) => {
                self.bounded_usage(u.prompt_tokens, u.completion_tokens, messages, max_tokens)
            }
            None => {
                // Some compatible servers omit `usage`; an estimate prices the call better
                // than zero would.
                tracing::debug!(endpoint = %self.inner.endpoint.id, "response has no usage; estimating tokens");
                Usage {
                    prompt_tokens: estimate_prompt_tokens(messages),
                    completion_tokens: crate::estimate_tokens(&text),
                }
            }
        };
        let cost_usd = pricing.cost(
            u64::from(usage.prompt_tokens),
            u64::from(usage.completion_tokens),
        );
        let read = choices::read(text, tokens.as_deref(), call.choices, call.extras.schema);
        Ok(Answer {
            text: read.text,
            usage,
            cost_usd,
            truncated,
            choice: read.choice,
            token_logprobs: read.token_logprobs,
        })
    }

    /// The usage a server reports, within what the request allows: at most `max_tokens` answer
    /// tokens, and prompt tokens at most a generous multiple of our own count, so a server that
    /// claims 2^32 tokens cannot spend a budget it never used. Capping is logged as a warning.
    fn bounded_usage(
        &self,
        prompt: u32,
        completion: u32,
        messages: &[Message],
        max_tokens: Option<u32>,
    ) -> Usage {
        let prompt_cap = estimate_prompt_tokens(messages)
            .saturating_mul(PROMPT_USAGE_SLACK)
            .saturating_add(PROMPT_USAGE_FLOOR);
        let completion_cap = max_tokens.unwrap_or(u32::MAX);
        let usage = Usage {
            prompt_tokens: prompt.min(prompt_cap),
            completion_tokens: completion.min(completion_cap),
        };
        if usage.prompt_tokens < prompt || usage.completion_tokens < completion {
            tracing::warn!(
                endpoint = %self.inner.endpoint.id,
                reported_prompt = prompt, reported_completion = completion,
                capped_prompt = usage.prompt_tokens, capped_completion = usage.completion_tokens,
                "the server reported more tokens than the request can use; priced at the cap"
            );
        }
        usage
    }

    /// Turns an `async-openai` error into a redacted [`CallError`] plus retry hints.
    fn classify(&self, error: OpenAIError, timeout: Duration) -> Failed {
        let r = &self.inner.redactor;
        match error {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<AttemptFailure>() {
                Ok(failure) => match *failure {
                    AttemptFailure::Status {
                        status,
                        retry_after,
                        body,
                    } => {
                        let error = CallError::Http {
                            status,
                            body_excerpt: r.excerpt(&error_summary(&body)),
                        };
                        // OpenAI answers 429 for an exhausted quota too; waiting will not
                        // refill it.
                        let retryable =
                            error.is_retryable() && !body.contains("insufficient_quota");
                        Failed {
                            error,
                            retry_after,
                            retryable,
                        }
                    }
                    AttemptFailure::Body { source } => {
                        if source.is_timeout() {
                            return Failed::new(CallError::Timeout { after: timeout });
                        }
                        Failed::new(CallError::Truncated {
                            message: r.excerpt(&chain(&source)),
                        })
                    }
                    AttemptFailure::Malformed { reason, body } => {
                        Failed::new(CallError::Malformed {
                            reason: r.excerpt(&reason),
                            body_excerpt: r.excerpt(&body),
                        })
                    }
                },
                Err(other) => Failed::new(CallError::Connection {
                    message: r.excerpt(&chain(other.as_ref())),
                }),
            },
            OpenAIError::Reqwest(e) => {
                let message = r.excerpt(&chain(&e));
                Failed::new(if e.is_timeout() {
                    CallError::Timeout { after: timeout }
                } else if e.is_builder() {
                    CallError::InvalidRequest { message }
                } else if e.is_body() || e.is_decode() {
                    CallError::Truncated { message }
                } else {
                    CallError::Connection { message }
                })
            }
            // Our transport turns failed statuses and bad bodies into `Boxed` before
            // async-openai sees them; these two arms are for completeness.
            OpenAIError::ApiError(api) => Failed::new(CallError::Http {
                status: api.status_code.as_u16(),
                body_excerpt: r.excerpt(&api.api_error.to_string()),
            }),
            OpenAIError::JSONDeserialize(e, body) => Failed::new(CallError::Malformed {
                reason: r.excerpt(&e.to_string()),
                body_excerpt: r.excerpt(&body),
            }),
            OpenAIError::InvalidArgument(message) => Failed::new(CallError::InvalidRequest {
                message: r.excerpt(&message),
            }),
            other => Failed::new(CallError::Connection {
                message: r.excerpt(&chain(&other)),
            }),
        }
    }
}

/// The readable part of an error body: OpenAI's `{"error": {"message", "type", "code"}}` as
/// `message (type: .., code: ..)`, anything else as it came.
pub(crate) fn error_summary(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_owned();
    };
    let error = &value["error"];
    let Some(message) = error["message"].as_str().or_else(|| error.as_str()) else {
        return body.to_owned();
    };
    let details: Vec<String> = ["type", "code"]
        .iter()
        .filter_map(|k| error[*k].as_str().map(|v| format!("{k}: {v}")))
        .collect();
    if details.is_empty() {
        message.to_owned()
    } else {
        format!("{message} ({})", details.join(", "))
    }
}

/// An error and its sources, joined by `: ` (reqwest's own message hides the root cause,
/// e.g. "connection refused", in its sources).
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_summarised() {
        assert_eq!(
            error_summary(
                r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
            ),
            "Rate limit reached (type: requests, code: rate_limit_exceeded)"
        );
        assert_eq!(error_summary(r#"{"error":"overloaded"}"#), "overloaded");
        assert_eq!(error_summary("<html>502</html>"), "<html>502</html>");
        assert_eq!(error_summary(r#"{"detail":"x"}"#), r#"{"detail":"x"}"#);
    }

    #[test]
    fn rejects_bad_endpoints_without_printing_the_key() {
        let endpoint = Endpoint {
            id: "p".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
            model: "m".into(),
            api_key: Some(domain::Secret::new("sk-bad\nkey")),
            max_concurrency: 1,
            requests_per_minute: None,
            timeout: Duration::from_secs(1),
            max_retries: 0,
            structured_outputs: None,
            logprobs: None,
            pricing: domain::Pricing {
                input_per_mtok: 0.0,
                output_per_mtok: 0.0,
            },
        };
        let err = Client::new(endpoint.clone()).unwrap_err();
        assert!(matches!(err, Error::InvalidApiKey { .. }));
        assert!(!err.to_string().contains("sk-bad"));
        let err = Client::new(Endpoint {
            base_url: "api.openai.com".into(),
            api_key: None,
            ..endpoint.clone()
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidBaseUrl { .. }));
        let err = Client::new(Endpoint {
            max_concurrency: 0,
            api_key: None,
            ..endpoint
        })
        .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidLimit {
                field: "max_concurrency",
                ..
            }
        ));
    }
}
