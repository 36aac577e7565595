//! Prompt arms on hosted (OpenAI-compatible) providers: one scheduler loop that answers every
//! pending item of every such arm together, bounded by each provider's `max_concurrency` and by
//! the global `-j` cap, with the budget checked before each call is scheduled.
//!
//! The loop owns all of its state (lanes, counters, budget), so nothing here is locked. Futures
//! are spawned only when a slot is free: ten thousand items never become ten thousand tasks. The
//! HTTP details (retries, rate limits, `Retry-After`) are the providers crate's; storage is the
//! writer's. On cancellation the loop stops scheduling, lets in-flight calls finish within the
//! grace period, then abandons the rest (they are answered again on resume).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{CallRecord, Message, Pricing};
use experiment::{Plan, PromptSpec};
use providers::Client;
use store::CachedAnswer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::budget::{Budget, call_cost_upper_bound};
use crate::events::{Emitter, Event};
use crate::writer::Written;

/// One provider: its client, its limit, and the items waiting for it (arms interleaved, so all
/// of a provider's arms advance together).
pub(crate) struct Lane {
    pub client: Client,
    pub base_url: String,
    pub model: String,
    pub pricing: Pricing,
    pub max_concurrency: usize,
    pub in_flight: usize,
    pub queue: VecDeque<(usize, usize)>,
}

/// One prompt arm on a hosted provider, and what this invocation did with it.
pub(crate) struct HostedArm {
    pub arm: Arc<str>,
    pub prompt: PromptSpec,
    pub total: u64,
    pub done: u64,
    pub errors: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Default)]
pub(crate) struct HostedOutcome {
    pub answered: u64,
    pub failed: u64,
    /// Items never scheduled because the budget would not cover them.
    pub budget_stopped: bool,
    /// Calls still running when the grace period ran out.
    pub abandoned: usize,
}

struct Answered {
    written: Written,
    failed: Option<String>,
}

struct InFlight {
    lane: usize,
    arm: usize,
    reserved: f64,
}

/// Puts each arm's pending items into its provider's lane, alternating between the arms.
pub(crate) fn fill_lanes(lanes: &mut [Lane], arms_by_lane: Vec<Vec<(usize, Vec<usize>)>>) {
    for (lane, arms) in lanes.iter_mut().zip(arms_by_lane) {
        let longest = arms.iter().map(|(_, items)| items.len()).max().unwrap_or(0);
        for i in 0..longest {
            for (arm, items) in &arms {
                if let Some(&item) = items.get(i) {
                    lane.queue.push_back((*arm, item));
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    plan: &Plan,
    shared: Arc<Shared>,
    mut lanes: Vec<Lane>,
    arms: &mut [HostedArm],
    budget: &mut Budget,
    jobs: usize,
    writer: mpsc::Sender<Written>,
    events: &Emitter,
    stop: &CancellationToken,
    grace: Duration,
) -> HostedOutcome {
    let mut out = HostedOutcome::default();
    let mut set: JoinSet<Answered> = JoinSet::new();
    let mut flights: HashMap<tokio::task::Id, InFlight> = HashMap::new();
    let mut next_lane = 0usize;
    let mut deadline: Option<tokio::time::Instant> = None;
    let jobs = jobs.max(1);
    let max_tokens = shared.params.max_tokens;

    loop {
        // Fill every free slot, lanes in turn.
        if !out.budget_stopped && !stop.is_cancelled() {
            while set.len() < jobs {
                let Some(l) = pick_lane(&lanes, &mut next_lane) else {
                    break;
                };
                let Some(&(arm_i, item_i)) = lanes[l].queue.front() else {
                    break;
                };
                let row = &plan.dataset.eval[item_i];
                let messages = plan.render(&arms[arm_i].prompt, row);
                let reserved = call_cost_upper_bound(&messages, max_tokens, &lanes[l].pricing);
                if !budget.try_reserve(reserved) {
                    out.budget_stopped = true;
                    break;
                }
                lanes[l].queue.pop_front();
                lanes[l].in_flight += 1;
                let lane = &lanes[l];
                let handle = set.spawn(answer(
                    shared.clone(),
                    lane.client.clone(),
                    cache_key(&shared, lane, &messages),
                    arms[arm_i].arm.clone(),
                    item_i,
                    messages,
                ));
                flights.insert(
                    handle.id(),
                    InFlight {
                        lane: l,
                        arm: arm_i,
                        reserved,
                    },
                );
            }
        }
        if set.is_empty() {
            break;
        }
        if stop.is_cancelled() && deadline.is_none() {
            tracing::info!(
                in_flight = set.len(),
                "stopping: waiting for calls in flight"
            );
            deadline = Some(tokio::time::Instant::now() + grace);
        }
        let joined = match deadline {
            None => tokio::select! {
                joined = set.join_next_with_id() => joined,
                () = stop.cancelled() => continue,
            },
            Some(deadline) => tokio::select! {
                joined = set.join_next_with_id() => joined,
                () = tokio::time::sleep_until(deadline) => {
                    out.abandoned = set.len();
                    tracing::warn!(abandoned = out.abandoned, "calls still in flight after the grace period were abandoned");
                    set.abort_all();
                    break;
                }
            },
        };
        let Some(joined) = joined else { break };
        let (id, answered) = match joined {
            Ok((id, answered)) => (id, Some(answered)),
            Err(err) => {
                tracing::error!(error = %err, "a call task stopped abnormally");
                (err.id(), None)
            }
        };
        let Some(flight) = flights.remove(&id) else {
            continue;
        };
        lanes[flight.lane].in_flight -= 1;
        let Some(answered) = answered else {
            budget.settle(flight.reserved, 0.0);
            continue;
        };
        let arm = &mut arms[flight.arm];
        let cost = answered.written.call.cost_usd;
        budget.settle(flight.reserved, cost);
        arm.cost_usd += cost;
        if let Some(error) = answered.failed {
            arm.errors += 1;
            out.failed += 1;
            events
                .send(Event::CallFailed {
                    arm: arm.arm.to_string(),
                    item: answered.written.call.item_id.clone(),
                    error,
                })
                .await;
        } else {
            arm.done += 1;
            out.answered += 1;
        }
        events.progress(progress_of(arm));
        if writer.send(answered.written).await.is_err() {
            // The writer failed and has already cancelled `stop`; the loop winds down.
            tracing::debug!("result writer gone");
        }
    }
    // Progress events may have been dropped on the way; the last word on each arm is not.
    for arm in arms.iter() {
        events.send(progress_of(arm)).await;
    }
    out
}

fn progress_of(arm: &HostedArm) -> Event {
    Event::ArmProgress {
        arm: arm.arm.to_string(),
        done: arm.done,
        total: arm.total,
        cost_usd: arm.cost_usd,
        errors: arm.errors,
    }
}

/// The next lane, in turn, that has both an item waiting and a free slot.
fn pick_lane(lanes: &[Lane], next: &mut usize) -> Option<usize> {
    let n = lanes.len();
    for k in 0..n {
        let i = (*next + k) % n;
        let lane = &lanes[i];
        if lane.in_flight < lane.max_concurrency && !lane.queue.is_empty() {
            *next = (i + 1) % n;
            return Some(i);
        }
    }
    None
}

fn cache_key(shared: &Shared, lane: &Lane, messages: &[Message]) -> Option<String> {
    (!shared.no_cache)
        .then(|| providers::cache_key(&lane.base_url, &lane.model, messages, &shared.params))
}

/// Answers one item: from the cache when it can, else from the provider; then scores it.
async fn answer(
    shared: Arc<Shared>,
    client: Client,
    key: Option<String>,
    arm: Arc<str>,
    item: usize,
    messages: Vec<Message>,
) -> Answered {
    let row = &shared.items[item];
    let started = Instant::now();
    if let Some(key) = &key {
        match shared.store.cache_get(key).await {
            Ok(Some(hit)) => {
                let call = CallRecord {
                    arm: arm.to_string(),
                    item_id: row.id.clone(),
                    response: Some(hit.text.clone()),
                    prompt_tokens: hit.prompt_tokens,
                    completion_tokens: hit.completion_tokens,
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                    cost_usd: 0.0,
                    attempts: 0,
                    cache_hit: true,
                    error: None,
                    compute_seconds: 0.0,
                };
                let scores = shared.score_all(&arm, item, &hit.text);
                return Answered {
                    written: Written {
                        call,
                        scores,
                        cache: None,
                    },
                    failed: None,
                };
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cache lookup failed; calling the provider"),
        }
    }
    let outcome = client.chat(&messages, &shared.params).await;
    let latency_ms = outcome.latency.as_secs_f64() * 1000.0;
    match outcome.result {
        Ok(answer) => {
            let scores = shared.score_all(&arm, item, &answer.text);
            let cache = key.map(|k| {
                (
                    k,
                    CachedAnswer {
                        text: answer.text.clone(),
                        prompt_tokens: answer.usage.prompt_tokens,
                        completion_tokens: answer.usage.completion_tokens,
                    },
                )
            });
            let call = CallRecord {
                arm: arm.to_string(),
                item_id: row.id.clone(),
                response: Some(answer.text),
                prompt_tokens: answer.usage.prompt_tokens,
                completion_tokens: answer.usage.completion_tokens,
                latency_ms,
                cost_usd: answer.cost_usd,
                attempts: outcome.attempts,
                cache_hit: false,
                error: None,
                compute_seconds: 0.0,
            };
            Answered {
                written: Written {
                    call,
                    scores,
                    cache,
                },
                failed: None,
            }
        }
        Err(err) => {
            let error = err.to_string();
            tracing::debug!(arm = %arm, item = %row.id, cause = %error, "call failed");
            let call = CallRecord {
                arm: arm.to_string(),
                item_id: row.id.clone(),
                response: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms,
                cost_usd: 0.0,
                attempts: outcome.attempts,
                cache_hit: false,
                error: Some(error.clone()),
                compute_seconds: 0.0,
            };
            Answered {
                written: Written {
                    call,
                    scores: Vec::new(),
                    cache: None,
                },
                failed: Some(error),
            }
        }
    }
}
