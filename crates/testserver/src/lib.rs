//! An OpenAI-compatible chat-completions server on loopback, for tests and benchmarks: it
//! answers deterministically, reports `usage`, waits a configurable latency, and injects faults
//! (429 with `Retry-After`, 500, stalls, malformed or truncated bodies, 400) on the requests a
//! test chooses. It honours `response_format` (a JSON-schema enum of labels) and `logprobs`, or
//! refuses them with a 400 when told to, as servers without them do. It counts requests and
//! keeps a request log so tests can assert what a client actually sent.
//!
//! It also serves OpenAI's files and batches endpoints (the Batch API), with a compressed
//! completion time and its own faults: see [`BatchConfig`].
//!
//! It is a test double, not an emulator: no streaming, and token counts are whitespace words. The log records whether a request carried
//! an `Authorization` header and whether it matched `require_api_key`, never the key itself.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use testserver::{Fault, FaultPlan, ServerConfig};
//! let server = testserver::spawn(ServerConfig {
//!     default_answers: vec!["positive".into(), "negative".into()],
//!     faults: FaultPlan::none().first_n("item-3", 1, Fault::ServerError),
//!     ..ServerConfig::default()
//! })
//! .await?;
//! let base_url = server.base_url(); // http://127.0.0.1:PORT/v1
//! # server.shutdown().await; Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod batches;
mod faults;
mod server;
mod structured;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use batches::BatchConfig;
pub use faults::{Fault, FaultPlan, FaultRule, Trigger};
pub use structured::DEFAULT_LOGPROB;
pub use wire::{count_tokens, prompt_hash};

use server::Shared;

/// How the server answers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Time every request waits before its answer. Default zero.
    pub latency: Duration,
    /// `(key, answer)`: if the last user message contains `key`, answer `answer`. First match
    /// wins.
    pub rules: Vec<(String, String)>,
    /// Rules that look at the whole conversation, checked before `rules`: see [`ContextRule`].
    pub context_rules: Vec<ContextRule>,
    /// When no rule matches, one of these, chosen by a stable hash of the last user message
    /// ([`prompt_hash`]); `"ok"` when empty.
    pub default_answers: Vec<String>,
    /// Which requests fail and how. Default: none.
    pub faults: FaultPlan,
    /// When set, requests without `Authorization: Bearer <key>` get `401`.
    pub require_api_key: Option<String>,
    /// Whether `response_format` (`json_object`, or a `json_schema` whose `answer` property is
    /// a string enum) is honoured. When false, a request that sets one other than `text` gets
    /// a 400 saying `response_format` is not supported, as servers without structured outputs
    /// answer. Default true.
    pub structured_outputs: bool,
    /// Whether `logprobs: true` is honoured; when false such a request gets a 400. Default true.
    pub logprobs: bool,
    /// Answer text (the label, for a structured answer) to the log-probabilities of its
    /// whitespace tokens, reported when a request asks for `logprobs`. Tokens beyond a list, of
    /// answers not listed, and a structured answer's JSON framing get [`DEFAULT_LOGPROB`].
    pub token_logprobs: HashMap<String, Vec<f32>>,
    /// How the files and batches endpoints behave.
    pub batch: BatchConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            rules: Vec::new(),
            context_rules: Vec::new(),
            default_answers: Vec::new(),
            faults: FaultPlan::default(),
            require_api_key: None,
            structured_outputs: true,
            logprobs: true,
            token_logprobs: HashMap::new(),
            batch: BatchConfig::default(),
        }
    }
}

/// Answer `answer` when every string of `context` appears in some message before the last one
/// (a system message, a demonstration) and the last message contains `last_user`: how a test
/// scripts a model that does well only with a given instruction and demonstrations.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRule {
    pub context: Vec<String>,
    pub last_user: String,
    pub answer: String,
}

impl ContextRule {
    pub(crate) fn matches(&self, texts: &[String]) -> bool {
        let Some((last, before)) = texts.split_last() else {
            return false;
        };
        last.contains(&self.last_user)
            && self
                .context
                .iter()
                .all(|c| before.iter().any(|t| t.contains(c.as_str())))
    }
}

/// What the server saw of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLogEntry {
    /// 1-based position in arrival order.
    pub index: u64,
    /// Arrival time since the server started.
    pub at: Duration,
    pub model: String,
    /// The last `user` message ("" when the body did not parse).
    pub last_user_message: String,
    /// [`prompt_hash`] of `last_user_message`.
    pub prompt_hash: u64,
    pub authorization_present: bool,
    /// Whether the bearer token equalled `require_api_key`; None when no key is required.
    pub api_key_matched: Option<bool>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
    /// The status the server answered (or began to answer) with.
    pub status: u16,
    /// The `type` of the request's `response_format` (`"json_schema"`, `"text"`, ...); None
    /// when it sent none.
    pub response_format: Option<String>,
    /// Whether the request asked for `logprobs: true`.
    pub logprobs: bool,
}

/// A running server. Dropping it stops the server in the background; [`TestServer::shutdown`]
/// stops it and waits.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Starts a server on `127.0.0.1` with a free port.
pub async fn spawn(config: ServerConfig) -> std::io::Result<TestServer> {
    spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
}

/// Starts a server on `addr` (port 0 picks a free one).
pub async fn spawn_on(addr: SocketAddr, config: ServerConfig) -> std::io::Result<TestServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let shared = Arc::new(Shared::new(config, cancel.clone()));
    let app = server::router(shared.clone());
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(cause = %e, "test server stopped with an error");
        }
    });
    tracing::debug!(%addr, "test server listening");
    Ok(TestServer {
        addr,
        shared,
        cancel,
        task: Some(task),
    })
}

impl TestServer {
    /// The base URL clients use: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// Requests received so far whose last user message was `last_user_message`.
    pub fn requests_for(&self, last_user_message: &str) -> u64 {
        self.requests_for_hash(prompt_hash(last_user_message))
    }

    /// Requests received so far whose last user message has this [`prompt_hash`].
    pub fn requests_for_hash(&self, hash: u64) -> u64 {
        let counts = self
            .shared
            .per_prompt
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.get(&hash).copied().unwrap_or(0)
    }

    /// The most recent requests (up to 100,000), oldest first.
    pub fn requests_log(&self) -> Vec<RequestLogEntry> {
        let log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }

    /// Batches created so far through `POST /v1/batches` (those whose response was lost too).
    pub fn batches_created(&self) -> u64 {
        self.shared.batch.created()
    }

    /// How many lines with this `custom_id` went into created batches: a client that never
    /// submits an item twice keeps this at most 1.
    pub fn batch_lines_for(&self, custom_id: &str) -> u64 {
        self.shared.batch.lines_for(custom_id)
    }

    /// Requests being handled right now.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests that were ever handled at the same time.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Stops accepting, cuts short any latency or stall, and waits (up to 5 s) for open
    /// connections to finish.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            tracing::warn!("test server did not stop within 5 s; aborting it");
            task.abort();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
