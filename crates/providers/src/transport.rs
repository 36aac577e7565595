//! The HTTP transport installed under `async-openai`, and why it exists.
//!
//! `async-openai` 0.43 builds and serialises the request, adds the `Authorization` header and
//! deserialises the response, which we want. Three things it does we do not want, and its
//! `middleware` feature (`Client::with_http_service`) lets us replace the layer that does them:
//!
//! 1. Its default executor wraps every request in `OpenAIRetryLayer`, which retries 429, 5xx
//!    and connect errors up to 3 times with its own backoff. Those attempts would be invisible
//!    to us: not counted, not rate-limited, not jittered. Installing our service drops that
//!    layer, so exactly one HTTP request goes out per attempt and `Client` owns retries.
//! 2. On a failed status it keeps the status but drops the headers, so `Retry-After` is lost;
//!    and a 4xx body that is not OpenAI's error JSON (a gateway's HTML 429) even loses the
//!    status, becoming a deserialisation error. Here a non-success status is turned into
//!    [`AttemptFailure::Status`] with status, `Retry-After` and body, carried to `Client` inside
//!    `OpenAIError::Boxed` (the error variant the middleware feature adds for this).
//! 3. It logs failed bodies (`tracing::warn!` of 5xx bodies, `error!` of undecodable ones),
//!    and a careless server can echo the key in a body. Failed statuses never reach it (see 2),
//!    and success bodies are checked to parse as a chat completion here first
//!    ([`AttemptFailure::Malformed`]), so its body-logging paths never run. Our own errors
//!    carry bodies only through `Redactor`.
//!
//! Reading the whole body here also separates a cut-off body ([`AttemptFailure::Body`]) from a
//! connection that failed before any response. This module classifies nothing as retryable;
//! `Client` does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::CreateChatCompletionResponse;
use reqwest::header::RETRY_AFTER;

use crate::retry::parse_retry_after;

/// Why one HTTP exchange failed, with what `Client` needs to classify and redact it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptFailure {
    /// The server answered with a non-success status. `body` is raw: redact before showing.
    #[error("HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// Reading the response body failed (the connection closed mid-body).
    #[error("reading the response body failed")]
    Body {
        #[source]
        source: reqwest::Error,
    },
    /// A success status whose body is not a chat completion. `body` is raw: redact it.
    #[error("malformed response: {reason}")]
    Malformed { reason: String, body: String },
}

/// A tower service sending one request per call with a shared `reqwest` connection pool.
#[derive(Clone, Debug)]
pub(crate) struct ChatTransport {
    http: reqwest::Client,
}

impl ChatTransport {
    pub(crate) fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

fn fail(failure: AttemptFailure) -> OpenAIError {
    OpenAIError::Boxed(Box::new(failure))
}

impl tower::Service<HttpRequestFactory> for ChatTransport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // reqwest's pool queues internally; concurrency is bounded by `Client`'s semaphore.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
            let status = response.status();
            let headers = response.headers().clone();

            if !status.is_success() {
                let retry_after = headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                // The status is what matters; a body that cannot be read is left out.
                let body = match response.bytes().await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(_) => String::new(),
                };
                return Err(fail(AttemptFailure::Status {
                    status: status.as_u16(),
                    retry_after,
                    body,
                }));
            }

            let bytes = response
                .bytes()
                .await
                .map_err(|source| fail(AttemptFailure::Body { source }))?;
            if let Err(e) = serde_json::from_slice::<CreateChatCompletionResponse>(&bytes) {
                return Err(fail(AttemptFailure::Malformed {
                    reason: e.to_string(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                }));
            }

            // Hand async-openai the same response, with the body already buffered.
            let mut rebuilt = http::Response::new(bytes);
            *rebuilt.status_mut() = status;
            *rebuilt.headers_mut() = headers;
            Ok(reqwest::Response::from(rebuilt))
        })
    }
}
