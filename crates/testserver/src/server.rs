//! The HTTP side: `POST /v1/chat/completions`, which authenticates, counts and logs a request,
//! applies the configured latency and fault, and writes the response; and the routes of the
//! files and batches endpoints, whose handlers are `batches.rs`.
//!
//! It keeps per-request work small (one JSON parse, a few atomics, two short mutex holds) so one
//! process can hold hundreds of requests in flight for a benchmark. It is not a general
//! OpenAI emulator: no streaming, no tools, no embeddings.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::batches::{self, BatchState};
use crate::faults::{Fault, FaultState};
use crate::structured::{self, Refusal, Shape};
use crate::wire::{self, ChatRequest};
use crate::{RequestLogEntry, ServerConfig};

/// The log keeps the most recent entries only, so a long benchmark cannot grow it without bound.
pub(crate) const LOG_CAPACITY: usize = 100_000;

/// State shared by every handler.
pub(crate) struct Shared {
    pub latency: Duration,
    pub rules: Vec<(String, String)>,
    pub context_rules: Vec<crate::ContextRule>,
    pub default_answers: Vec<String>,
    pub require_api_key: Option<String>,
    pub structured_outputs: bool,
    pub logprobs: bool,
    pub token_logprobs: HashMap<String, Vec<f32>>,
    pub faults: FaultState,
    pub started: Instant,
    pub total: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub per_prompt: Mutex<HashMap<u64, u64>>,
    pub log: Mutex<VecDeque<RequestLogEntry>>,
    /// Cancelled on shutdown: ends latency sleeps and stalls so the server stops promptly.
    pub cancel: CancellationToken,
    /// Files and batches (`batches.rs`).
    pub batch: BatchState,
}

pub(crate) type SharedState = Arc<Shared>;

impl Shared {
    pub(crate) fn new(config: ServerConfig, cancel: CancellationToken) -> Self {
        Self {
            latency: config.latency,
            rules: config.rules,
            context_rules: config.context_rules,
            default_answers: config.default_answers,
            require_api_key: config.require_api_key,
            structured_outputs: config.structured_outputs,
            logprobs: config.logprobs,
            token_logprobs: config.token_logprobs,
            faults: FaultState::new(config.faults),
            started: Instant::now(),
            total: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            per_prompt: Mutex::new(HashMap::new()),
            log: Mutex::new(VecDeque::new()),
            cancel,
            batch: BatchState::new(config.batch),
        }
    }

    /// Sleeps for `d` unless the server shuts down first; returns whether the sleep completed.
    async fn pause(&self, d: Duration) -> bool {
        if d.is_zero() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// The answer this server gives `request` in `shape`: by context rule, then by rule, then
    /// by hash, shaped, cut at the request's token limit, with logprobs when asked for.
    pub(crate) fn scripted(&self, request: &ChatRequest, shape: &Shape) -> Scripted {
        let texts = request.texts();
        let last_user = request.last_user_message();
        let scripted = match self.context_rules.iter().find(|r| r.matches(&texts)) {
            Some(rule) => rule.answer.clone(),
            None => wire::choose_answer(&self.rules, &self.default_answers, &last_user),
        };
        let (content, scripted_by) = structured::shaped_answer(shape, &scripted);
        let (answer, cut) = wire::limit_answer(content, request.answer_limit());
        let logprobs = (request.logprobs == Some(true)).then(|| {
            let scripts = &self.token_logprobs;
            structured::logprobs_block(&answer, &scripted_by, scripts, request.top_logprobs)
        });
        Scripted {
            model: request.model.clone(),
            prompt_tokens: texts.iter().map(|t| wire::count_tokens(t)).sum(),
            answer,
            cut,
            logprobs,
        }
    }

    fn record(&self, entry: RequestLogEntry) {
        // Poisoning would mean a handler panicked while holding the lock; the data is still a
        // consistent map or queue, so keep serving.
        let mut counts = self.per_prompt.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(entry.prompt_hash).or_insert(0) += 1;
        drop(counts);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }
}

/// A successful answer, ready to be written as a `chat.completion` body.
pub(crate) struct Scripted {
    model: String,
    prompt_tokens: u32,
    pub answer: String,
    cut: bool,
    logprobs: Option<Value>,
}

impl Scripted {
    /// The `chat.completion` body, its id numbered `index`.
    pub(crate) fn body(&self, index: u64) -> Vec<u8> {
        let (model, answer) = (&self.model, &self.answer);
        let logprobs = self.logprobs.as_ref();
        wire::completion_body(index, model, answer, self.cut, self.prompt_tokens, logprobs)
    }
}

/// Counts a request as in flight for as long as its handler future lives, including when the
/// client disconnects and the future is dropped.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/files", post(batches::upload))
        .route("/v1/files/{id}/content", get(batches::content))
        .route("/v1/batches", post(batches::create).get(batches::list))
        .route("/v1/batches/{id}", get(batches::retrieve))
        .route("/v1/batches/{id}/cancel", post(batches::cancel))
        .with_state(shared)
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &*shared;
    let _in_flight = InFlight::enter(shared);
    let index = shared.total.fetch_add(1, Ordering::SeqCst) + 1;
    let at = shared.started.elapsed();

    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let api_key_matched = shared
        .require_api_key
        .as_deref()
        .map(|key| authorization.and_then(|a| a.strip_prefix("Bearer ")) == Some(key));

    let request: Result<ChatRequest, _> = serde_json::from_slice(&body);
    let (model, last_user, texts) = match &request {
        Ok(r) => (r.model.clone(), r.last_user_message(), r.texts()),
        Err(_) => (String::new(), String::new(), Vec::new()),
    };
    let shape = match &request {
        Ok(r) => structured::check(r, shared.structured_outputs, shared.logprobs),
        Err(_) => Ok(Shape::Text),
    };

    let fault = match (&request, api_key_matched) {
        (Ok(_), None | Some(true)) => {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            shared.faults.decide(index, &refs)
        }
        _ => None,
    };
    let status = match (&request, api_key_matched, &fault) {
        (_, Some(false), _) => StatusCode::UNAUTHORIZED,
        (Err(_), _, _) => StatusCode::BAD_REQUEST,
        (Ok(_), _, Some(f)) => fault_status(f),
        (Ok(_), _, None) if shape.is_err() => StatusCode::BAD_REQUEST,
        (Ok(_), _, None) => StatusCode::OK,
    };
    let sent = request.as_ref().ok();
    shared.record(RequestLogEntry {
        index,
        at,
        model: model.clone(),
        prompt_hash: wire::prompt_hash(&last_user),
        last_user_message: last_user.clone(),
        authorization_present: authorization.is_some(),
        api_key_matched,
        fault: fault.clone(),
        status: status.as_u16(),
        response_format: sent.and_then(|r| structured::format_type(r.response_format.as_ref())),
        logprobs: sent.is_some_and(|r| r.logprobs == Some(true)),
    });

    if !shared.pause(shared.latency).await {
        return shutting_down();
    }

    let request = match (request, api_key_matched) {
        (_, Some(false)) => {
            // Never echo the key a client sent, not even a wrong one.
            let body = wire::error_body(
                "Incorrect API key provided.",
                "invalid_request_error",
                Some("invalid_api_key"),
            );
            return json_response(StatusCode::UNAUTHORIZED, body);
        }
        (Err(e), _) => {
            let body = wire::error_body(
                &format!("could not parse the request body as a chat completion request: {e}"),
                "invalid_request_error",
                None,
            );
            return json_response(StatusCode::BAD_REQUEST, body);
        }
        (Ok(r), _) => r,
    };

    let shape = match (shape, &fault) {
        (Ok(shape), _) => shape,
        // An injected fault wins over a refusal, as it does over a success.
        (Err(_), Some(_)) => Shape::Text,
        (Err(refusal), None) => return refused(&refusal),
    };
    let scripted = shared.scripted(&request, &shape);
    let answer = scripted.answer.clone();
    let completion = || scripted.body(index);

    match fault {
        None => json_response(StatusCode::OK, completion()),
        Some(Fault::Stall(d)) => {
            if !shared.pause(d).await {
                return shutting_down();
            }
            json_response(StatusCode::OK, completion())
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let body = wire::error_body(
                "Rate limit reached for requests (injected by the test server).",
                "requests",
                Some("rate_limit_exceeded"),
            );
            let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, body);
            if let Ok(v) = HeaderValue::from_str(&retry_after_value(retry_after_secs)) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Some(Fault::ServerError) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::error_body(
                "The server had an error while processing your request (injected).",
                "server_error",
                None,
            ),
        ),
        Some(Fault::BadRequest) => json_response(
            StatusCode::BAD_REQUEST,
            wire::error_body(
                "Invalid request (injected by the test server).",
                "invalid_request_error",
                None,
            ),
        ),
        Some(Fault::MalformedJson) => {
            let mut body = completion();
            body.truncate(body.len() / 2);
            body.extend_from_slice(b"<<not json>>");
            json_response(StatusCode::OK, body)
        }
        Some(Fault::TruncatedBody) => truncated_response(completion()),
        Some(Fault::NullContent) => {
            edited_completion(completion(), |c| c["message"]["content"] = Value::Null)
        }
        Some(Fault::ContentFilter) => edited_completion(completion(), |c| {
            c["message"]["content"] = Value::Null;
            c["finish_reason"] = json!("content_filter");
        }),
        Some(Fault::EchoKeyInAnswer) => {
            let echoed = format!("{answer} (you sent {})", authorization.unwrap_or("nothing"));
            edited_completion(completion(), |c| c["message"]["content"] = json!(echoed))
        }
        Some(Fault::EscapeSequences) => {
            let hostile = format!("\u{1b}[2J\u{1b}]0;pwned\u{7}{answer}\u{202e}desrever");
            edited_completion(completion(), |c| c["message"]["content"] = json!(hostile))
        }
        Some(Fault::HugeUsage { tokens }) => {
            let mut body: Value = serde_json::from_slice(&completion()).unwrap_or_default();
            body["usage"] = json!({
                "prompt_tokens": tokens, "completion_tokens": tokens,
                "total_tokens": tokens.saturating_add(tokens),
            });
            json_response(StatusCode::OK, body.to_string().into_bytes())
        }
        Some(Fault::EchoAuthorization { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let message = format!(
                "upstream rejected the request; headers were: Authorization: {}",
                authorization.unwrap_or("<none>")
            );
            json_response(
                status,
                wire::error_body(&message, "invalid_request_error", None),
            )
        }
    }
}

/// A 400 for a request part this server is set not to support, in OpenAI's error shape.
fn refused(refusal: &Refusal) -> Response {
    let body = wire::error_body_for(
        &refusal.message,
        "invalid_request_error",
        None,
        Some(refusal.param),
    );
    json_response(StatusCode::BAD_REQUEST, body)
}

fn fault_status(fault: &Fault) -> StatusCode {
    match fault {
        Fault::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Fault::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        Fault::BadRequest => StatusCode::BAD_REQUEST,
        Fault::EchoAuthorization { status } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
        }
        Fault::Stall(_)
        | Fault::MalformedJson
        | Fault::TruncatedBody
        | Fault::NullContent
        | Fault::ContentFilter
        | Fault::EchoKeyInAnswer
        | Fault::EscapeSequences
        | Fault::HugeUsage { .. } => StatusCode::OK,
    }
}

/// A `200 OK` completion whose first choice `edit` changed.
fn edited_completion(body: Vec<u8>, edit: impl FnOnce(&mut Value)) -> Response {
    let mut value: Value = serde_json::from_slice(&body).unwrap_or_default();
    edit(&mut value["choices"][0]);
    json_response(StatusCode::OK, value.to_string().into_bytes())
}

/// `Retry-After` as whole seconds when `secs` is whole (the standard form), else a decimal.
fn retry_after_value(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs}")
    }
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Announces the full length, sends half of the body, then fails the body stream: hyper stops
/// writing and closes the connection, so the client sees a response cut off mid-body.
fn truncated_response(full: Vec<u8>) -> Response {
    let announced = full.len();
    let half = Bytes::from(full).slice(..announced / 2);
    // The pause before failing makes the body stream return `Pending` once, which is when hyper
    // flushes the headers and the first half; failing at once would abort before anything is
    // written and look like a dropped connection instead.
    let rest = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err::<Bytes, _>(io::Error::other(
            "body truncated on purpose by the test server",
        ))
    };
    let chunks = futures::stream::once(async { Ok(half) }).chain(futures::stream::once(rest));
    let mut response = Response::new(Body::from_stream(chunks));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(announced));
    response
}

fn shutting_down() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        wire::error_body("the test server is shutting down", "server_error", None),
    )
}
