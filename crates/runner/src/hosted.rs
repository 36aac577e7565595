//! Prompt arms on hosted (OpenAI-compatible) providers: one scheduler loop that answers every
//! pending item of every such arm together, bounded by each provider's `max_concurrency` and by
//! the global `-j` cap, with the budget checked before each call is scheduled.
//!
//! Each provider is a lane: items wait in its queue, are rendered and looked up in the response
//! cache a chunk at a time ahead of their turn (`lookahead`), and the ones the cache cannot
//! answer wait in its ready list for a slot. Cache hits and items that share a key with an
//! earlier one are answered by the loop itself; only paid calls become tasks.
//!
//! The loop owns all of its state (lanes, counters, budget), so nothing here is locked. Futures
//! are spawned only when a slot is free: ten thousand items never become ten thousand tasks. The
//! HTTP details (retries, rate limits, `Retry-After`) are the providers crate's; storage is the
//! writer's. On cancellation the loop stops scheduling, lets in-flight calls finish within the
//! grace period, then abandons the rest (they are answered again on resume).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{GenerationParams, Pricing};
use experiment::{Plan, PromptSpec};
use providers::Client;
use store::CachedAnswer;
use tokio::sync::mpsc;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::budget::{Budget, call_cost_upper_bound};
use crate::call::{Answered, answer, unsent};
use crate::events::{Emitter, Event};
use crate::grace::Grace;
use crate::lookahead::{LOOKAHEAD, Leaders, Lookup, Prepared, Unwritten, spawn_lookup};
use crate::writer::Written;

/// One provider: its client, its limit, and the items waiting for it (arms interleaved, so all
/// of a provider's arms advance together).
pub(crate) struct Lane {
    pub client: Client,
    pub base_url: String,
    pub model: String,
    pub pricing: Pricing,
    pub max_concurrency: usize,
    in_flight: usize,
    /// (arm, item) not prepared yet.
    queue: VecDeque<(usize, usize)>,
    /// Prepared items the cache did not answer, waiting for a slot.
    ready: VecDeque<Prepared>,
    /// A lookup of this lane's next chunk is running.
    looking_up: bool,
    /// Why the provider refused this run's key (HTTP 401 or 403): nothing more is sent to it,
    /// and its remaining items fail with this reason (cached answers are still served).
    refused: Option<String>,
}

impl Lane {
    pub(crate) fn new(
        client: Client,
        base_url: String,
        model: String,
        pricing: Pricing,
        max_concurrency: usize,
    ) -> Self {
        Self {
            client,
            base_url,
            model,
            pricing,
            max_concurrency,
            in_flight: 0,
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            looking_up: false,
            refused: None,
        }
    }

    /// A lane of the same provider with nothing queued, for another pass over other items (the
    /// client, and with it the provider's concurrency and rate limits, is shared).
    pub(crate) fn fresh(&self) -> Self {
        Self::new(
            self.client.clone(),
            self.base_url.clone(),
            self.model.clone(),
            self.pricing,
            self.max_concurrency,
        )
    }
}

/// One prompt arm on a hosted provider, and what this invocation did with it.
pub(crate) struct HostedArm {
    pub arm: Arc<str>,
    pub prompt: PromptSpec,
    /// The run's generation parameters with this prompt's `choices`.
    pub params: Arc<GenerationParams>,
    pub total: u64,
    pub done: u64,
    pub errors: u64,
    pub cost_usd: f64,
    /// When this arm's last progress event went out.
    pub last_progress: Option<Instant>,
}

/// Least time between two progress events of one arm. Bars redraw at most 8 times a second, so
/// more events would only cost CPU on the hot path; the final count is always sent.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub(crate) struct HostedOutcome {
    pub answered: u64,
    pub failed: u64,
    /// Items never scheduled because the budget would not cover them.
    pub budget_stopped: bool,
    /// Calls still running when the grace period ran out.
    pub abandoned: usize,
}

struct InFlight {
    lane: usize,
    arm: usize,
    reserved: f64,
    key: Option<String>,
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

/// What the loop works with, borrowed from `execute` for the length of [`run`].
pub(crate) struct Context<'a> {
    pub plan: &'a Plan,
    pub shared: Arc<Shared>,
    pub budget: &'a mut Budget,
    /// Most calls in flight over all lanes.
    pub jobs: usize,
    pub writer: mpsc::Sender<Written>,
    pub unwritten: Unwritten,
    pub events: &'a Emitter,
    pub stop: &'a CancellationToken,
    pub grace: Grace,
}

/// The loop's state between two events.
struct Scheduler<'a> {
    cx: Context<'a>,
    lanes: Vec<Lane>,
    arms: &'a mut [HostedArm],
    leaders: Leaders,
    flights: HashMap<Id, InFlight>,
    next_lane: usize,
    out: HostedOutcome,
}

pub(crate) async fn run(
    mut cx: Context<'_>,
    lanes: Vec<Lane>,
    arms: &mut [HostedArm],
) -> HostedOutcome {
    cx.jobs = cx.jobs.max(1);
    let stop = cx.stop.clone();
    let grace = cx.grace.clone();
    let mut s = Scheduler {
        cx,
        lanes,
        arms,
        leaders: Leaders::default(),
        flights: HashMap::new(),
        next_lane: 0,
        out: HostedOutcome::default(),
    };
    let mut calls: JoinSet<Answered> = JoinSet::new();
    let mut lookups: JoinSet<Lookup> = JoinSet::new();
    let mut deadline: Option<tokio::time::Instant> = None;

    loop {
        if !s.halted() {
            s.look_ahead(&mut lookups).await;
            s.fail_refused().await;
            s.fill(&mut calls);
        }
        // Lookups matter only while there is scheduling to do.
        if calls.is_empty() && (s.halted() || lookups.is_empty()) {
            break;
        }
        if stop.is_cancelled() && deadline.is_none() {
            tracing::info!(
                in_flight = calls.len(),
                "stopping: waiting for calls in flight"
            );
            lookups.abort_all();
            deadline = Some(grace.deadline());
        }
        let halted = s.halted();
        tokio::select! {
            Some(joined) = calls.join_next_with_id(), if !calls.is_empty() => {
                s.call_done(joined).await;
            }
            Some(lookup) = lookups.join_next(), if !halted && !lookups.is_empty() => {
                match lookup {
                    Ok(lookup) => s.looked_up(lookup).await,
                    // Lookups are aborted only once the loop has stopped polling them, so this is
                    // a panic: a bug, raised here rather than losing the chunk's items quietly.
                    Err(err) => std::panic::resume_unwind(err.into_panic()),
                }
            }
            () = stop.cancelled(), if deadline.is_none() => {}
            () = grace.until(deadline), if deadline.is_some() => {
                s.out.abandoned = calls.len();
                tracing::warn!(abandoned = s.out.abandoned, "calls still in flight after the grace period were abandoned");
                calls.abort_all();
                break;
            }
            else => break,
        }
    }
    // Progress events may have been dropped on the way; the last word on each arm is not.
    for arm in s.arms.iter() {
        s.cx.events.send(progress_of(arm)).await;
    }
    s.out
}

impl Scheduler<'_> {
    fn halted(&self) -> bool {
        self.out.budget_stopped || self.cx.stop.is_cancelled()
    }

    /// Prepares the next chunk of every lane that is running short of looked-up items: renders
    /// the messages, computes the cache keys, parks duplicates of unresolved keys, answers keys
    /// whose answer is still on its way to the database, and starts one lookup for the rest.
    async fn look_ahead(&mut self, lookups: &mut JoinSet<Lookup>) {
        let mut hits = Vec::new();
        for (l, lane) in self.lanes.iter_mut().enumerate() {
            if lane.looking_up || lane.ready.len() >= LOOKAHEAD || lane.queue.is_empty() {
                continue;
            }
            let take = LOOKAHEAD.min(lane.queue.len());
            let mut chunk = Vec::with_capacity(take);
            for (arm, item) in lane.queue.drain(..take) {
                let row = &self.cx.plan.dataset.eval[item];
                let messages = self.cx.plan.render(&self.arms[arm].prompt, row);
                if self.cx.shared.no_cache {
                    lane.ready.push_back(Prepared {
                        arm,
                        item,
                        messages,
                        key: None,
                    });
                    continue;
                }
                let key = providers::cache_key(
                    &lane.base_url,
                    &lane.model,
                    &messages,
                    &self.arms[arm].params,
                );
                if self.leaders.park(&key, arm, item) {
                    continue;
                }
                if let Some(answer) = self.cx.unwritten.get(&key) {
                    hits.push((arm, item, answer));
                    continue;
                }
                self.leaders.lead(key.clone());
                chunk.push(Prepared {
                    arm,
                    item,
                    messages,
                    key: Some(key),
                });
            }
            if !chunk.is_empty() {
                lane.looking_up = true;
                spawn_lookup(lookups, self.cx.shared.store.clone(), l, chunk);
            }
        }
        for (arm, item, answer) in hits {
            self.hit(arm, item, &answer).await;
        }
    }

    /// A chunk's lookup is back: hits are answered (with the items parked behind them), the
    /// rest wait for a slot.
    async fn looked_up(&mut self, lookup: Lookup) {
        let Lookup {
            lane,
            chunk,
            mut found,
        } = lookup;
        self.lanes[lane].looking_up = false;
        for p in chunk {
            let answer = p.key.as_ref().and_then(|k| Some((k, found.remove(k)?)));
            match answer {
                Some((key, answer)) => {
                    self.hit(p.arm, p.item, &answer).await;
                    for (arm, item) in self.leaders.resolve(key) {
                        self.hit(arm, item, &answer).await;
                    }
                }
                None => self.lanes[lane].ready.push_back(p),
            }
        }
    }

    /// Spawns calls for ready items while there are free slots and the budget covers them.
    fn fill(&mut self, calls: &mut JoinSet<Answered>) {
        while calls.len() < self.cx.jobs {
            let Some(l) = pick_lane(&self.lanes, &mut self.next_lane) else {
                break;
            };
            let lane = &mut self.lanes[l];
            let Some(next) = lane.ready.front() else {
                break;
            };
            let max_tokens = self.arms[next.arm].params.max_tokens;
            let reserved = call_cost_upper_bound(&next.messages, max_tokens, &lane.pricing);
            if !self.cx.budget.try_reserve(reserved) {
                self.out.budget_stopped = true;
                break;
            }
            let Some(p) = lane.ready.pop_front() else {
                break;
            };
            lane.in_flight += 1;
            let arm = &self.arms[p.arm];
            let handle = calls.spawn(answer(
                self.cx.shared.clone(),
                lane.client.clone(),
                (arm.arm.clone(), arm.params.clone()),
                p.item,
                p.messages,
            ));
            self.flights.insert(
                handle.id(),
                InFlight {
                    lane: l,
                    arm: p.arm,
                    reserved,
                    key: p.key,
                },
            );
        }
    }

    /// A call task ended: settle its budget, record it, and resolve the items parked behind
    /// its key (they share a successful answer; after a failure one of them is asked next).
    async fn call_done(&mut self, joined: Result<(Id, Answered), JoinError>) {
        let (id, answered) = match joined {
            Ok((id, answered)) => (id, Some(answered)),
            Err(err) => {
                tracing::error!(error = %err, "a call task stopped abnormally");
                (err.id(), None)
            }
        };
        let Some(flight) = self.flights.remove(&id) else {
            return;
        };
        self.lanes[flight.lane].in_flight -= 1;
        if let Some(reason) = answered.as_ref().and_then(|a| a.refused.clone()) {
            self.refuse(flight.lane, reason).await;
        }
        let Some(mut answered) = answered else {
            self.cx.budget.settle(flight.reserved, 0.0);
            if let Some(key) = &flight.key {
                self.promote(flight.lane, key);
            }
            return;
        };
        self.cx
            .budget
            .settle(flight.reserved, answered.written.call.cost_usd);
        match (flight.key, answered.answer) {
            (Some(key), Some(answer)) => {
                // Kept where the look-ahead sees it until the writer has committed it.
                self.cx.unwritten.insert(key.clone(), answer.clone());
                answered.written.cache = Some((key.clone(), answer.clone()));
                self.deliver(flight.arm, answered.written, answered.failed)
                    .await;
                for (arm, item) in self.leaders.resolve(&key) {
                    self.hit(arm, item, &answer).await;
                }
            }
            (Some(key), None) => {
                self.deliver(flight.arm, answered.written, answered.failed)
                    .await;
                self.promote(flight.lane, &key);
            }
            (None, _) => {
                self.deliver(flight.arm, answered.written, answered.failed)
                    .await;
            }
        }
    }

    /// The provider of `lane` refused the key: say so once; from now on its items fail unsent.
    async fn refuse(&mut self, lane: usize, reason: String) {
        if self.lanes[lane].refused.is_some() {
            return;
        }
        self.cx
            .events
            .note(format!(
                "provider at {} refused the API key: its remaining items are not sent",
                self.lanes[lane].base_url
            ))
            .await;
        self.lanes[lane].refused = Some(reason);
    }

    /// Fails, without a call, every prepared item of a lane whose provider refused the key.
    async fn fail_refused(&mut self) {
        for l in 0..self.lanes.len() {
            let Some(reason) = self.lanes[l].refused.clone() else {
                continue;
            };
            while let Some(p) = self.lanes[l].ready.pop_front() {
                let call = unsent(
                    &self.arms[p.arm].arm,
                    &self.cx.shared.items[p.item].id,
                    &reason,
                );
                let written = Written {
                    call,
                    scores: Vec::new(),
                    cache: None,
                };
                self.deliver(p.arm, written, Some(reason.clone())).await;
                if let Some(key) = &p.key {
                    self.promote(l, key);
                }
            }
        }
    }

    /// The leader of `key` failed: the next item parked behind it goes to the front of its
    /// lane, to be asked in its place.
    fn promote(&mut self, lane: usize, key: &str) {
        if let Some((arm, item)) = self.leaders.promote(key) {
            let row = &self.cx.plan.dataset.eval[item];
            let messages = self.cx.plan.render(&self.arms[arm].prompt, row);
            self.lanes[lane].ready.push_front(Prepared {
                arm,
                item,
                messages,
                key: Some(key.to_owned()),
            });
        }
    }

    /// Answers item `item` of arm `arm` from the cache: no call, no cost.
    async fn hit(&mut self, arm: usize, item: usize, answer: &CachedAnswer) {
        let name = self.arms[arm].arm.clone();
        let written = crate::call::from_cache(&self.cx.shared, &name, item, answer).await;
        self.deliver(arm, written, None).await;
    }

    /// Counts a finished item, reports it, and hands its records to the writer.
    async fn deliver(&mut self, arm: usize, written: Written, failed: Option<String>) {
        if failed.is_some() {
            self.out.failed += 1;
        } else {
            self.out.answered += 1;
        }
        let arm = &mut self.arms[arm];
        deliver(arm, written, failed, self.cx.events, &self.cx.writer).await;
    }
}

/// Counts a finished item on its arm, reports it (progress at most every
/// [`PROGRESS_INTERVAL`], a failure always), and hands its records to the writer.
pub(crate) async fn deliver(
    arm: &mut HostedArm,
    written: Written,
    failed: Option<String>,
    events: &Emitter,
    writer: &mpsc::Sender<Written>,
) {
    arm.cost_usd += written.call.cost_usd;
    if let Some(error) = failed {
        arm.errors += 1;
        events
            .send(Event::CallFailed {
                arm: arm.arm.to_string(),
                item: written.call.item_id.clone(),
                error,
            })
            .await;
    } else {
        arm.done += 1;
    }
    let now = Instant::now();
    let finished = arm.done + arm.errors >= arm.total;
    if finished
        || arm
            .last_progress
            .is_none_or(|last| now.duration_since(last) >= PROGRESS_INTERVAL)
    {
        arm.last_progress = Some(now);
        events.progress(progress_of(arm));
    }
    if writer.send(written).await.is_err() {
        // The writer failed and has already cancelled `stop`; the loop winds down.
        tracing::debug!("result writer gone");
    }
}

pub(crate) fn progress_of(arm: &HostedArm) -> Event {
    Event::ArmProgress {
        arm: arm.arm.to_string(),
        done: arm.done,
        total: arm.total,
        cost_usd: arm.cost_usd,
        errors: arm.errors,
    }
}

/// The next lane, in turn, that has both an item ready and a free slot.
fn pick_lane(lanes: &[Lane], next: &mut usize) -> Option<usize> {
    let n = lanes.len();
    for k in 0..n {
        let i = (*next + k) % n;
        let lane = &lanes[i];
        if lane.in_flight < lane.max_concurrency && !lane.ready.is_empty() {
            *next = (i + 1) % n;
            return Some(i);
        }
    }
    None
}
