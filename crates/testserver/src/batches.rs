//! The Batch API side of the test server, as OpenAI's files and batches endpoints behave:
//! `POST /v1/files` (multipart, `purpose=batch`), `GET /v1/files/{id}/content`,
//! `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches` (newest first, `limit`,
//! `after`) and `POST /v1/batches/{id}/cancel`.
//!
//! A batch is checked when it is created (every line JSON with a unique `custom_id`, method
//! `POST`, the batch's endpoint); a bad file makes a `failed` batch with its errors. It stays
//! `in_progress` until [`BatchConfig::completion`] has passed (the 24 h window, compressed),
//! then every line is answered as `POST /v1/chat/completions` would answer it (no latency, no
//! per-request faults) and the batch completes. Faults a test can inject: lines that fail (in
//! the error file), a batch that expires part way, create calls whose response is lost after
//! the batch was made, and output in another order than the input.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::{SharedState, json_response};
use crate::structured;
use crate::wire::{self, ChatRequest};

/// How the batch endpoints behave.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// How long a batch stays `in_progress` after it is created. Default 200 ms.
    pub completion: Duration,
    /// Lines whose last user message contains one of these fail with a 500 (error file).
    pub failing_lines: Vec<String>,
    /// The batch expires instead of completing: only its first `n` lines (in input order) are
    /// answered, the rest get `batch_expired` in the error file, as OpenAI's expired batches do.
    pub expire_after: Option<usize>,
    /// The first `n` create calls make their batch and then answer 500, as a response lost on
    /// the way back looks to a client.
    pub lose_create_responses: u32,
    /// Output lines in reverse input order (OpenAI: the order "may not match"). Default true.
    pub shuffle_output: bool,
    /// No Batch API at all: every files and batches endpoint answers 404, as servers without
    /// one (vLLM's and llama.cpp's OpenAI servers, most gateways) do.
    pub unsupported: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            completion: Duration::from_millis(200),
            failing_lines: Vec::new(),
            expire_after: None,
            lose_create_responses: 0,
            shuffle_output: true,
            unsupported: false,
        }
    }
}

/// Files, batches and counters of one server.
pub(crate) struct BatchState {
    config: BatchConfig,
    files: Mutex<HashMap<String, Vec<u8>>>,
    /// In creation order.
    batches: Mutex<Vec<Batch>>,
    /// How many lines with each `custom_id` went into batches that were created.
    lines: Mutex<HashMap<String, u64>>,
    next_id: AtomicU64,
    creates: AtomicU64,
}

struct Batch {
    id: String,
    input_file_id: String,
    created: Instant,
    created_at: u64,
    status: &'static str,
    metadata: Value,
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    errors: Option<Value>,
    counts: (usize, usize, usize),
}

impl BatchState {
    pub(crate) fn new(config: BatchConfig) -> Self {
        Self {
            config,
            files: Mutex::new(HashMap::new()),
            batches: Mutex::new(Vec::new()),
            lines: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            creates: AtomicU64::new(0),
        }
    }

    fn id(&self, prefix: &str) -> String {
        format!(
            "{prefix}-test-{}",
            self.next_id.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// Batches created so far (lost responses included).
    pub(crate) fn created(&self) -> u64 {
        lock(&self.batches).len() as u64
    }

    /// How many lines with `custom_id` went into created batches.
    pub(crate) fn lines_for(&self, custom_id: &str) -> u64 {
        lock(&self.lines).get(custom_id).copied().unwrap_or(0)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        wire::error_body(message, "invalid_request_error", None),
    )
}

/// A 404 when the server has no Batch API, else a 401 when it requires a key and the request
/// lacks it.
fn refuse_key(shared: &SharedState, headers: &HeaderMap) -> Option<Response> {
    if shared.batch.config.unsupported {
        return Some(error(StatusCode::NOT_FOUND, "Not Found"));
    }
    let key = shared.require_api_key.as_deref()?;
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "));
    (sent != Some(key)).then(|| error(StatusCode::UNAUTHORIZED, "Incorrect API key provided."))
}

pub(crate) async fn upload(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if let Some(refused) = refuse_key(&shared, &headers) {
        return refused;
    }
    let (mut purpose, mut file) = (None, None);
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let Ok(bytes) = field.bytes().await else {
            return error(StatusCode::BAD_REQUEST, "could not read the multipart body");
        };
        match name.as_str() {
            "purpose" => purpose = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "file" => file = Some(bytes.to_vec()),
            _ => {}
        }
    }
    let (Some(purpose), Some(file)) = (purpose, file) else {
        return error(StatusCode::BAD_REQUEST, "`purpose` and `file` are required");
    };
    let state = &shared.batch;
    let id = state.id("file");
    let size = file.len();
    lock(&state.files).insert(id.clone(), file);
    let body = json!({
        "id": id, "object": "file", "bytes": size, "created_at": unix_now(),
        "filename": "batch.jsonl", "purpose": purpose,
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

pub(crate) async fn content(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = refuse_key(&shared, &headers) {
        return refused;
    }
    match lock(&shared.batch.files).get(&id) {
        Some(bytes) => json_response(StatusCode::OK, bytes.clone()),
        None => error(StatusCode::NOT_FOUND, &format!("no such file: {id}")),
    }
}

#[derive(Deserialize)]
pub(crate) struct CreateBatch {
    input_file_id: String,
    endpoint: String,
    completion_window: String,
    #[serde(default)]
    metadata: Option<Value>,
}

pub(crate) async fn create(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = refuse_key(&shared, &headers) {
        return refused;
    }
    let request: CreateBatch = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad batch request: {e}")),
    };
    if request.endpoint != "/v1/chat/completions" || request.completion_window != "24h" {
        return error(
            StatusCode::BAD_REQUEST,
            "only /v1/chat/completions with a 24h completion window is supported",
        );
    }
    let state = &shared.batch;
    let Some(input) = lock(&state.files).get(&request.input_file_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "no such input file");
    };
    let (custom_ids, errors) = check_lines(&input);
    let mut batch = Batch {
        id: state.id("batch"),
        input_file_id: request.input_file_id,
        created: Instant::now(),
        created_at: unix_now(),
        status: "in_progress",
        metadata: request.metadata.unwrap_or(Value::Null),
        output_file_id: None,
        error_file_id: None,
        errors: None,
        counts: (custom_ids.len(), 0, 0),
    };
    if !errors.is_empty() {
        batch.status = "failed";
        batch.errors = Some(json!({ "object": "list", "data": errors }));
    } else {
        let mut lines = lock(&state.lines);
        for id in custom_ids {
            *lines.entry(id).or_insert(0) += 1;
        }
    }
    let object = batch_object(&batch);
    lock(&state.batches).push(batch);
    if state.creates.fetch_add(1, Ordering::SeqCst) < u64::from(state.config.lose_create_responses)
    {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the response was lost (injected by the test server)",
        );
    }
    json_response(StatusCode::OK, object.to_string().into_bytes())
}

/// The `custom_id`s of an input file's lines, and what is wrong with it (OpenAI's validation
/// error objects: `code`, `message`, `line`).
fn check_lines(input: &[u8]) -> (Vec<String>, Vec<Value>) {
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in String::from_utf8_lossy(input).lines().enumerate() {
        let bad =
            |code: &str, message: &str| json!({"code": code, "message": message, "line": n + 1});
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            errors.push(bad("invalid_json_line", "the line is not JSON"));
            continue;
        };
        let Some(id) = value["custom_id"].as_str() else {
            errors.push(bad("missing_custom_id", "the line has no custom_id"));
            continue;
        };
        if value["method"] != "POST" || value["url"] != "/v1/chat/completions" {
            errors.push(bad(
                "invalid_url",
                "the line must POST /v1/chat/completions",
            ));
        }
        if !seen.insert(id.to_owned()) {
            errors.push(bad("duplicate_custom_id", "the custom_id is used twice"));
        }
        ids.push(id.to_owned());
    }
    if ids.is_empty() && errors.is_empty() {
        errors
            .push(json!({"code": "empty_file", "message": "the file has no lines", "line": null}));
    }
    (ids, errors)
}

/// Runs `f` on batch `id`, brought up to date, and answers with the batch object.
fn with_batch(
    shared: &SharedState,
    headers: &HeaderMap,
    id: &str,
    f: impl FnOnce(&mut Batch),
) -> Response {
    if let Some(refused) = refuse_key(shared, headers) {
        return refused;
    }
    let mut batches = lock(&shared.batch.batches);
    let Some(batch) = batches.iter_mut().find(|b| b.id == id) else {
        return error(StatusCode::NOT_FOUND, &format!("no such batch: {id}"));
    };
    advance(shared, batch);
    f(batch);
    json_response(StatusCode::OK, batch_object(batch).to_string().into_bytes())
}

pub(crate) async fn retrieve(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_batch(&shared, &headers, &id, |_| {})
}

pub(crate) async fn cancel(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_batch(&shared, &headers, &id, |batch| {
        if batch.status == "in_progress" {
            batch.status = "cancelled";
        }
    })
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

pub(crate) async fn list(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(refused) = refuse_key(&shared, &headers) {
        return refused;
    }
    let limit = query.limit.unwrap_or(20).clamp(1, 100);
    let mut batches = lock(&shared.batch.batches);
    let newest_first: Vec<&mut Batch> = batches.iter_mut().rev().collect();
    let start = match &query.after {
        Some(after) => match newest_first.iter().position(|b| &b.id == after) {
            Some(i) => i + 1,
            None => return error(StatusCode::NOT_FOUND, "no such batch for `after`"),
        },
        None => 0,
    };
    let mut page = Vec::new();
    let total = newest_first.len();
    for batch in newest_first.into_iter().skip(start).take(limit) {
        advance(&shared, batch);
        page.push(batch_object(batch));
    }
    let body = json!({
        "object": "list",
        "first_id": page.first().map(|b| b["id"].clone()),
        "last_id": page.last().map(|b| b["id"].clone()),
        "has_more": start + page.len() < total,
        "data": page,
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// Finishes an `in_progress` batch whose completion time has passed: answers its lines and
/// stores the output and error files.
fn advance(shared: &SharedState, batch: &mut Batch) {
    let state = &shared.batch;
    if batch.status != "in_progress" || batch.created.elapsed() < state.config.completion {
        return;
    }
    let input = lock(&state.files)
        .get(&batch.input_file_id)
        .cloned()
        .unwrap_or_default();
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    let text = String::from_utf8_lossy(&input).into_owned();
    for (n, line) in text.lines().enumerate() {
        let value: Value = serde_json::from_str(line).unwrap_or_default();
        let custom_id = value["custom_id"].as_str().unwrap_or_default().to_owned();
        let id = format!("batch_req_{}_{n}", batch.id);
        if state.config.expire_after.is_some_and(|k| n >= k) {
            let error = json!({"code": "batch_expired", "message": "This request could not be executed before the completion window expired."});
            errors
                .push(json!({"id": id, "custom_id": custom_id, "response": null, "error": error}));
            continue;
        }
        let (status, body) = answer_line(shared, &value["body"], n as u64 + 1);
        let line = json!({
            "id": id, "custom_id": custom_id, "error": null,
            "response": {"status_code": status, "request_id": format!("req_{n}"), "body": body},
        });
        if status == 200 {
            output.push(line)
        } else {
            errors.push(line)
        }
    }
    if state.config.shuffle_output {
        output.reverse();
        errors.reverse();
    }
    batch.counts = (batch.counts.0, output.len(), errors.len());
    batch.output_file_id = store_lines(state, &output);
    batch.error_file_id = store_lines(state, &errors);
    batch.status = if state.config.expire_after.is_some() {
        "expired"
    } else {
        "completed"
    };
}

/// What `POST /v1/chat/completions` would answer `body` with: a status and a JSON body.
fn answer_line(shared: &SharedState, body: &Value, index: u64) -> (u16, Value) {
    let request: ChatRequest = match serde_json::from_value(body.clone()) {
        Ok(r) => r,
        Err(e) => {
            return (
                400,
                json!({"error": {"message": e.to_string(), "type": "invalid_request_error"}}),
            );
        }
    };
    let last_user = request.last_user_message();
    if shared
        .batch
        .config
        .failing_lines
        .iter()
        .any(|m| last_user.contains(m.as_str()))
    {
        let error =
            json!({"message": "The server had an error (injected).", "type": "server_error"});
        return (500, json!({ "error": error }));
    }
    match structured::check(&request, shared.structured_outputs, shared.logprobs) {
        Err(refusal) => (
            400,
            json!({"error": {"message": refusal.message, "type": "invalid_request_error", "param": refusal.param}}),
        ),
        Ok(shape) => {
            let body = shared.scripted(&request, &shape).body(index);
            (200, serde_json::from_slice(&body).unwrap_or_default())
        }
    }
}

/// Stores `lines` as a JSONL file; None when there are none (OpenAI leaves the id null).
fn store_lines(state: &BatchState, lines: &[Value]) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line.to_string().as_bytes());
        bytes.push(b'\n');
    }
    let id = state.id("file");
    lock(&state.files).insert(id.clone(), bytes);
    Some(id)
}

fn batch_object(b: &Batch) -> Value {
    json!({
        "id": b.id, "object": "batch", "endpoint": "/v1/chat/completions",
        "errors": b.errors, "input_file_id": b.input_file_id, "completion_window": "24h",
        "status": b.status, "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
        "created_at": b.created_at, "expires_at": b.created_at + 86_400,
        "request_counts": {"total": b.counts.0, "completed": b.counts.1, "failed": b.counts.2},
        "metadata": b.metadata,
    })
}
