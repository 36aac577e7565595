//! Prompt arms on `type: local` providers: the model is resolved (and fetched into the cache when
//! it is a known one that is missing), loaded once per provider, and asked in batches of
//! `batch_size` on a dedicated OS thread, so Candle's matrix work never blocks the async runtime.
//! Each answer's cost is its compute seconds × the device's `cost_per_hour`.
//!
//! One job per device at a time: the caller passes the device's lock, which fine-tune workers on
//! the same device also take. Cancellation is checked between batches.

use std::path::PathBuf;
use std::sync::Arc;

use domain::{CallRecord, Device, GenerationParams, Message, ModelSource};
use experiment::LocalProviderSpec;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::events::{Emitter, Event};
use crate::writer::Written;
use crate::{Shared, SideContext, Tally};

/// One prompt arm on the local provider, with its pending items' messages already rendered
/// (the generation thread does not borrow the plan).
pub(crate) struct LocalArm {
    pub arm: Arc<str>,
    /// The run's generation parameters with this arm's prompt's `choices`.
    pub params: GenerationParams,
    pub pending: Vec<(usize, Vec<Message>)>,
    pub total: u64,
    pub done: u64,
}

/// Answers every pending item of `arms` with the provider's model.
pub(crate) async fn run_provider(
    provider: LocalProviderSpec,
    arms: Vec<LocalArm>,
    cx: SideContext,
    device_lock: Arc<Mutex<()>>,
) -> Tally {
    let pending: u64 = arms.iter().map(|a| a.pending.len() as u64).sum();
    if pending == 0 {
        return Tally::default();
    }
    let SideContext {
        shared,
        writer,
        events,
        stop,
        grace,
    } = cx;
    let _device = tokio::select! {
        guard = device_lock.lock_owned() => guard,
        () = stop.cancelled() => return Tally::default(),
    };
    let path = match resolve_model(&provider.weights, &events).await {
        Ok(path) => path,
        Err(message) => {
            events
                .note(format!(
                    "provider {}: {message}; its {} item(s) are counted as failed",
                    provider.id, pending
                ))
                .await;
            return Tally::all_failed(pending);
        }
    };
    let (tx, rx) = oneshot::channel();
    let thread_stop = stop.clone();
    let thread_events = events.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("local-{}", provider.id))
        .spawn(move || {
            let out = generate_all(
                &provider,
                &path,
                arms,
                &shared,
                &writer,
                &thread_events,
                &thread_stop,
            );
            let _ = tx.send(out);
        });
    if let Err(err) = spawned {
        events
            .note(format!(
                "could not start a thread for local generation: {err}"
            ))
            .await;
        return Tally::all_failed(pending);
    }
    let mut rx = rx;
    tokio::select! {
        out = &mut rx => return out.unwrap_or_default(),
        () = stop.cancelled() => {}
    }
    // Cancelled: the thread stops after its current batch; wait for it a while, not forever.
    tokio::select! {
        out = rx => out.unwrap_or_default(),
        () = grace.until(Some(grace.deadline())) => {
            tracing::warn!("local generation did not stop within the grace period; abandoned");
            Tally::default()
        }
    }
}

/// The blocking part: load, then generate batch after batch, sending records as they come.
fn generate_all(
    provider: &LocalProviderSpec,
    path: &std::path::Path,
    arms: Vec<LocalArm>,
    shared: &Shared,
    writer: &mpsc::Sender<Written>,
    events: &Emitter,
    stop: &CancellationToken,
) -> Tally {
    let mut out = Tally::default();
    let started = std::time::Instant::now();
    let model = match llm::LocalModel::load(path, provider.device) {
        Ok(model) => model,
        Err(err) => {
            events.send_blocking(Event::Note(format!(
                "provider {}: loading {} failed: {err}; its items are counted as failed",
                provider.id,
                path.display()
            )));
            out.failed = arms.iter().map(|a| a.pending.len() as u64).sum();
            return out;
        }
    };
    tracing::info!(provider = %provider.id, seconds = started.elapsed().as_secs_f64(), "local model loaded");
    let answering = Answering {
        model: &model,
        shared,
        writer,
        events,
        batch: provider.batch_size.max(1),
        per_second: provider.cost_per_hour / 3600.0,
    };
    for arm in arms {
        if stop.is_cancelled() || answering.arm(arm, stop, &mut out).is_err() {
            break;
        }
    }
    out
}

/// The writer is gone: the run is over, nothing more can be stored.
struct WriterClosed;

/// What answering an arm needs, besides the arm.
struct Answering<'a> {
    model: &'a llm::LocalModel,
    shared: &'a Shared,
    writer: &'a mpsc::Sender<Written>,
    events: &'a Emitter,
    batch: usize,
    per_second: f64,
}

impl Answering<'_> {
    /// Answers the arm's pending items a batch at a time, each item on its own account (an
    /// item that cannot be answered fails alone), until done or cancelled.
    fn arm(
        &self,
        mut arm: LocalArm,
        stop: &CancellationToken,
        out: &mut Tally,
    ) -> Result<(), WriterClosed> {
        let mut errors = 0u64;
        let mut cost = 0.0;
        for chunk in arm.pending.chunks(self.batch) {
            if stop.is_cancelled() {
                return Ok(());
            }
            let prompts: Vec<Vec<Message>> =
                chunk.iter().map(|(_, messages)| messages.clone()).collect();
            let outcomes = self.model.answer_each(&prompts, &arm.params);
            for (&(item, _), outcome) in chunk.iter().zip(outcomes) {
                let written = self.record(&arm.arm, item, outcome);
                cost += written.call.cost_usd;
                if let Some(error) = &written.call.error {
                    errors += 1;
                    out.failed += 1;
                    self.events.send_blocking(Event::CallFailed {
                        arm: arm.arm.to_string(),
                        item: written.call.item_id.clone(),
                        error: error.clone(),
                    });
                } else {
                    arm.done += 1;
                    out.answered += 1;
                }
                self.writer
                    .blocking_send(written)
                    .map_err(|_| WriterClosed)?;
            }
            self.events.progress(progress(&arm, cost, errors));
        }
        // The last word on the arm is delivered even when progress events were dropped.
        self.events.send_blocking(progress(&arm, cost, errors));
        Ok(())
    }

    /// The call record of one item's outcome, with its scores when it was answered.
    fn record(
        &self,
        arm: &str,
        item: usize,
        outcome: Result<llm::Generation, llm::Error>,
    ) -> Written {
        let id = &self.shared.items[item].id;
        let (call, scores) = match outcome {
            Ok(g) => {
                let call = CallRecord {
                    arm: arm.to_string(),
                    item_id: id.clone(),
                    response: Some(g.text.clone()),
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.completion_tokens,
                    latency_ms: g.seconds * 1000.0,
                    cost_usd: g.seconds * self.per_second,
                    attempts: 1,
                    cache_hit: false,
                    error: None,
                    compute_seconds: g.seconds,
                    truncated: g.finish_reason == llm::FinishReason::Length,
                    token_logprobs: (!g.token_logprobs.is_empty()).then_some(g.token_logprobs),
                    choice: g.choice,
                };
                (call, self.shared.score_all(arm, item, &g.text))
            }
            Err(err) => (failed_call(arm, id, item_error(id, &err)), Vec::new()),
        };
        Written {
            call,
            scores,
            cache: None,
        }
    }
}

fn progress(arm: &LocalArm, cost_usd: f64, errors: u64) -> Event {
    Event::ArmProgress {
        arm: arm.arm.to_string(),
        done: arm.done,
        total: arm.total,
        cost_usd,
        errors,
    }
}

/// The stored reason an item was not answered: its id, then the engine's words (which, for a
/// prompt too long, name its tokens and the model's context).
fn item_error(id: &str, err: &llm::Error) -> String {
    match err {
        llm::Error::ContextOverflow { .. } | llm::Error::EmptyPrompt => {
            format!("item {id:?}: {err}")
        }
        _ => format!("item {id:?}: local generation failed: {err}"),
    }
}

pub(crate) fn failed_call(arm: &str, item: &str, error: String) -> CallRecord {
    CallRecord {
        arm: arm.to_string(),
        item_id: item.to_string(),
        response: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0.0,
        cost_usd: 0.0,
        attempts: 1,
        cache_hit: false,
        error: Some(error),
        compute_seconds: 0.0,
        truncated: false,
        choice: None,
        token_logprobs: None,
    }
}

/// The model's weights on disk: a path as given, a cached known model, or a known model fetched
/// now (with download progress as events). The error is a sentence for the user.
pub(crate) async fn resolve_model(
    source: &ModelSource,
    events: &Emitter,
) -> Result<PathBuf, String> {
    let name = match source {
        ModelSource::Path(path) => return Ok(path.clone()),
        ModelSource::Named(name) => name,
    };
    match models::resolve(name) {
        Ok(resolved) => Ok(resolved.path),
        Err(models::Error::NotCached { name, pull_command }) => {
            events
                .note(format!("fetching model {name} into the cache (once)"))
                .await;
            let progress_events = events.clone();
            let model = name.clone();
            models::pull(&name, move |done, total| {
                progress_events.progress(Event::ModelDownload {
                    model: model.clone(),
                    done,
                    total,
                });
            })
            .await
            .map_err(|err| {
                format!("model {name} could not be fetched ({err}); fetch it with `{pull_command}`")
            })
        }
        Err(err) => Err(format!("model {name} is not available: {err}")),
    }
}

/// The key of a device's lock: `auto` shares the lock of the device it most likely means.
pub(crate) fn device_key(device: Device) -> String {
    device.to_string()
}
