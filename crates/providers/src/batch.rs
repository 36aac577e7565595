//! OpenAI's Batch API for one endpoint: a JSONL file of chat requests uploaded to `/files`, a
//! batch made of it at `/batches`, its status polled, and its output and error files read back
//! into the same [`Answer`]s and [`CallError`]s a real-time call gives, priced at batch rates.
//!
//! These calls go through `reqwest` directly, not `async-openai`: the chat transport insists on
//! chat-completion bodies, and the batch calls need their own rules. Reads (status, listing,
//! file contents) and uploads are retried like chat calls, since repeating them costs nothing.
//! Creating a batch is never retried here: a create whose response was lost may still have made
//! the batch, and a second one would answer (and bill) every line twice. Each batch carries a
//! caller-chosen token in its `metadata`, and [`Client::find_batch`] finds it by that token, so
//! the caller can tell a lost response from a batch that was never made.
//!
//! Requests in a batch are built as [`Client::chat`] builds them, with the optional parts
//! (`response_format`, `logprobs`) decided from the endpoint's settings alone, not from what the
//! client has learnt: a line's request and its reading agree even when read by another process.

use std::collections::HashMap;
use std::time::Duration;

use async_openai::types::chat::{CreateChatCompletionRequest, CreateChatCompletionResponse};
use domain::{GenerationParams, Message};
use serde_json::{Value, json};

use crate::choices::{Extras, Support};
use crate::client::{Call, Client};
use crate::request::{build_request, requested_max_tokens};
use crate::{Answer, CallError};

/// The `metadata` key that carries the caller's token.
const TOKEN_KEY: &str = "orchestrator_batch";
/// Least time allowed for uploading or downloading a batch file.
const FILE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most pages of 100 batches [`Client::find_batch`] reads.
const FIND_PAGES: usize = 20;

/// Where a batch is, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
    Failed,
}

impl BatchStatus {
    const ALL: [BatchStatus; 8] = [
        BatchStatus::Validating,
        BatchStatus::InProgress,
        BatchStatus::Finalizing,
        BatchStatus::Completed,
        BatchStatus::Expired,
        BatchStatus::Cancelling,
        BatchStatus::Cancelled,
        BatchStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
            BatchStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<BatchStatus> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// No more lines will be answered: its files (if any) are final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Completed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
                | BatchStatus::Failed
        )
    }
}

/// A batch as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteBatch {
    pub id: String,
    pub status: BatchStatus,
    pub input_file_id: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// The token given to [`Client::create_batch`], when the batch has one.
    pub token: Option<String>,
    /// Why a `failed` batch was refused (its validation errors), as `line N: message`.
    pub errors: Vec<String>,
}

/// One request of a batch: its `custom_id`, and what it asks.
#[derive(Debug, Clone, Copy)]
pub struct BatchRequest<'a> {
    pub custom_id: &'a str,
    pub messages: &'a [Message],
    pub params: &'a GenerationParams,
}

impl Client {
    /// The optional request parts of a batch line: the endpoint's settings with nothing
    /// refused, the same in every process.
    fn batch_extras(&self, params: &GenerationParams) -> Extras {
        let inner = &*self.inner;
        Support::default().extras(&inner.endpoint, params, inner.reasoning_model)
    }

    /// The chat request a batch line carries for `request`, with the optional parts it has.
    fn batch_request(&self, request: &BatchRequest<'_>) -> (CreateChatCompletionRequest, Extras) {
        let inner = &*self.inner;
        let extras = self.batch_extras(request.params);
        let built = build_request(
            &inner.endpoint.model,
            request.messages,
            request.params,
            inner.reasoning_model,
            extras,
        );
        (built, extras)
    }

    /// The JSONL line (without its newline) that asks `request` in a batch.
    pub fn batch_line(&self, request: BatchRequest<'_>) -> String {
        let (body, _) = self.batch_request(&request);
        json!({
            "custom_id": request.custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body,
        })
        .to_string()
    }

    /// Uploads a JSONL batch file (`purpose=batch`); returns its file id.
    pub async fn upload_batch_file(&self, jsonl: Vec<u8>) -> Result<String, CallError> {
        let url = self.url("/files");
        let body = self
            .with_read_retries(|| {
                let part = reqwest::multipart::Part::bytes(jsonl.clone())
                    .file_name("orchestrator-batch.jsonl")
                    .mime_str("application/jsonl")
                    .map_err(|e| CallError::InvalidRequest {
                        message: e.to_string(),
                    });
                let url = url.clone();
                async move {
                    let form = reqwest::multipart::Form::new()
                        .text("purpose", "batch")
                        .part("file", part?);
                    let request = self.inner.http.post(url).multipart(form);
                    self.send(request, FILE_TIMEOUT).await
                }
            })
            .await?;
        let value = self.json(&body)?;
        string_field(&value, "id").ok_or_else(|| self.malformed("the file has no id", &body))
    }

    /// Makes a batch of the uploaded file, its `metadata` carrying `token`. Sent once: when it
    /// fails, the batch may still have been made; ask [`Client::find_batch`] before trying
    /// again.
    pub async fn create_batch(
        &self,
        input_file_id: &str,
        token: &str,
    ) -> Result<RemoteBatch, CallError> {
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": { TOKEN_KEY: token },
        });
        let request = self.inner.http.post(self.url("/batches")).json(&body);
        let timeout = self.inner.endpoint.timeout;
        let bytes = self.send(request, timeout).await?;
        self.batch_of(&bytes)
    }

    /// The batch's current state.
    pub async fn retrieve_batch(&self, id: &str) -> Result<RemoteBatch, CallError> {
        let url = self.url(&format!("/batches/{id}"));
        let timeout = self.inner.endpoint.timeout;
        let bytes = self
            .with_read_retries(|| self.send(self.inner.http.get(url.clone()), timeout))
            .await?;
        self.batch_of(&bytes)
    }

    /// The newest batch whose metadata carries `token`, looking back (newest first) no further
    /// than batches created before `not_before` (Unix seconds).
    pub async fn find_batch(
        &self,
        token: &str,
        not_before: u64,
    ) -> Result<Option<RemoteBatch>, CallError> {
        let timeout = self.inner.endpoint.timeout;
        let mut after: Option<String> = None;
        for _ in 0..FIND_PAGES {
            let mut url = self.url("/batches?limit=100");
            if let Some(after) = &after {
                url.push_str(&format!("&after={after}"));
            }
            let bytes = self
                .with_read_retries(|| self.send(self.inner.http.get(url.clone()), timeout))
                .await?;
            let page = self.json(&bytes)?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            let mut oldest = u64::MAX;
            for value in &data {
                let batch = self.batch_from(value, &bytes)?;
                oldest = oldest.min(batch.created_at);
                if batch.token.as_deref() == Some(token) {
                    return Ok(Some(batch));
                }
            }
            let more = page["has_more"].as_bool().unwrap_or(false);
            after = data.last().and_then(|v| string_field(v, "id"));
            if !more || after.is_none() || oldest < not_before {
                break;
            }
        }
        Ok(None)
    }

    /// The contents of an output or error file.
    pub async fn batch_file(&self, file_id: &str) -> Result<Vec<u8>, CallError> {
        let url = self.url(&format!("/files/{file_id}/content"));
        self.with_read_retries(|| self.send(self.inner.http.get(url.clone()), FILE_TIMEOUT))
            .await
    }

    /// Every line of an output or error file whose `custom_id` is one of `requests`, read into
    /// the answer (priced at batch rates) or the error it holds. Lines of other ids are skipped.
    pub fn read_batch_lines(
        &self,
        file: &[u8],
        requests: &HashMap<&str, BatchRequest<'_>>,
    ) -> Vec<(String, Result<Answer, CallError>)> {
        let text = String::from_utf8_lossy(file);
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                tracing::warn!(endpoint = %self.inner.endpoint.id, "a batch file line is not JSON; skipped");
                continue;
            };
            let Some(request) = value["custom_id"].as_str().and_then(|id| requests.get(id)) else {
                tracing::warn!(endpoint = %self.inner.endpoint.id, "a batch line names no request of this batch; skipped");
                continue;
            };
            out.push((
                request.custom_id.to_owned(),
                self.read_line(&value, request),
            ));
        }
        out
    }

    fn read_line(&self, line: &Value, request: &BatchRequest<'_>) -> Result<Answer, CallError> {
        let r = &self.inner.redactor;
        if let Some(error) = line.get("error").filter(|e| !e.is_null()) {
            return Err(CallError::Batch {
                code: r.excerpt(error["code"].as_str().unwrap_or("error")),
                message: r.excerpt(error["message"].as_str().unwrap_or_default()),
            });
        }
        let response = &line["response"];
        let body = &response["body"];
        let status = response["status_code"].as_u64().unwrap_or(0);
        if status != 200 {
            return Err(CallError::Http {
                status: u16::try_from(status).unwrap_or(0),
                body_excerpt: r.excerpt(&crate::client::error_summary(&body.to_string())),
            });
        }
        let completion: CreateChatCompletionResponse = serde_json::from_value(body.clone())
            .map_err(|e| CallError::Malformed {
                reason: r.excerpt(&e.to_string()),
                body_excerpt: r.excerpt(&body.to_string()),
            })?;
        let inner = &*self.inner;
        let (built, extras) = self.batch_request(request);
        let call = Call {
            messages: request.messages,
            choices: request.params.choices.as_ref(),
            extras,
        };
        let pricing = inner.endpoint.pricing.at_batch_rates();
        self.answer(completion, &call, requested_max_tokens(&built), pricing)
            .map_err(|failed| failed.error)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.endpoint.base_url)
    }

    /// Sends one request with the key; the body of a success, else the error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let key = self
            .inner
            .endpoint
            .api_key
            .as_ref()
            .map_or("", |k| k.expose());
        let r = &self.inner.redactor;
        let exchange = async {
            let response = request.bearer_auth(key).send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let (status, bytes) =
            match tokio::time::timeout(timeout.max(Duration::from_secs(1)), exchange).await {
                Err(_) => return Err(CallError::Timeout { after: timeout }),
                Ok(Err(e)) if e.is_timeout() => return Err(CallError::Timeout { after: timeout }),
                Ok(Err(e)) => {
                    return Err(CallError::Connection {
                        message: r.excerpt(&crate::client::chain(&e)),
                    });
                }
                Ok(Ok(pair)) => pair,
            };
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes);
            return Err(CallError::Http {
                status: status.as_u16(),
                body_excerpt: r.excerpt(&crate::client::error_summary(&body)),
            });
        }
        Ok(bytes.to_vec())
    }

    /// Up to `1 + max_retries` tries of a call that is safe to repeat.
    async fn with_read_retries<F, Fut>(&self, mut call: F) -> Result<Vec<u8>, CallError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, CallError>>,
    {
        let mut retries = 0;
        loop {
            match call().await {
                Err(e) if e.is_retryable() && retries < self.inner.endpoint.max_retries => {
                    tokio::time::sleep(self.retry.delay(retries, None)).await;
                    retries += 1;
                }
                other => return other,
            }
        }
    }

    fn json(&self, bytes: &[u8]) -> Result<Value, CallError> {
        serde_json::from_slice(bytes).map_err(|e| self.malformed(&e.to_string(), bytes))
    }

    fn malformed(&self, reason: &str, bytes: &[u8]) -> CallError {
        let r = &self.inner.redactor;
        CallError::Malformed {
            reason: r.excerpt(reason),
            body_excerpt: r.excerpt(&String::from_utf8_lossy(bytes)),
        }
    }

    fn batch_of(&self, bytes: &[u8]) -> Result<RemoteBatch, CallError> {
        let value = self.json(bytes)?;
        self.batch_from(&value, bytes)
    }

    fn batch_from(&self, value: &Value, bytes: &[u8]) -> Result<RemoteBatch, CallError> {
        let status = value["status"].as_str().and_then(BatchStatus::parse);
        let (Some(id), Some(status)) = (string_field(value, "id"), status) else {
            return Err(self.malformed("not a batch object (no id or known status)", bytes));
        };
        let errors = value["errors"]["data"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        let message = e["message"].as_str().unwrap_or("invalid");
                        match e["line"].as_u64() {
                            Some(line) => format!("line {line}: {message}"),
                            None => message.to_owned(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(RemoteBatch {
            id,
            status,
            input_file_id: string_field(value, "input_file_id").unwrap_or_default(),
            output_file_id: string_field(value, "output_file_id"),
            error_file_id: string_field(value, "error_file_id"),
            created_at: value["created_at"].as_u64().unwrap_or(0),
            token: value["metadata"][TOKEN_KEY].as_str().map(str::to_owned),
            errors,
        })
    }
}

fn string_field(value: &Value, key: &str) -> Option<String> {
    value[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
