//! The receiving half of `run --batch` (`batch_api` is the sending half): items answered from
//! the response cache instead of being sent, an ended batch's output and error files read into
//! the same records a real-time call leaves (scored, cached, priced at batch rates, its
//! latency the batch's turnaround), and what becomes of an item a batch did not answer:
//! asked once more in real time in this invocation, or recorded failed, as `batch.on_failure`
//! says.
//!
//! Items that share a request (the same cache key), in one arm or in several arms of one
//! provider, are sent once; the others follow the answer of the one that was sent. An item the store already has a success for (answered in
//! real time after an earlier, interrupted collection) is left as it is.

use std::collections::HashMap;

use domain::{BatchFailure, Message};
use providers::{BatchRequest, CallError};
use store::{ApiBatch, CachedAnswer};

use crate::batch_api::{Stage, StageOutcome, Waiting};
use crate::call;
use crate::hosted::{self, HostedArm, Lane};

/// What the stage keeps between sending and collecting.
pub(crate) struct Collector {
    /// Item id → index in this invocation's rows.
    index: HashMap<String, usize>,
    /// (arm, item sent) → the cache key of its request.
    keys: HashMap<(usize, usize), String>,
    /// (provider's lane, cache key) → the (arm, item) sent with that request.
    sent: HashMap<(usize, String), (usize, usize)>,
    /// (arm, item sent) → the (arm, item)s of the same provider asking the same request.
    followers: HashMap<(usize, usize), Vec<(usize, usize)>>,
    /// (arm, item) to ask in real time in this invocation.
    retry: Vec<(usize, usize)>,
}

impl Collector {
    pub(crate) fn new(index: HashMap<String, usize>) -> Self {
        Self {
            index,
            keys: HashMap::new(),
            sent: HashMap::new(),
            followers: HashMap::new(),
            retry: Vec::new(),
        }
    }

    /// Item id → index in this invocation's rows.
    pub(crate) fn index(&self) -> &HashMap<String, usize> {
        &self.index
    }

    /// Answers what the response cache (or an answer not yet written) already has, sends each
    /// distinct request of a provider once (over all its arms), and returns the items of arm
    /// `a` on lane `l` to send.
    pub(crate) async fn answer_from_cache(
        &mut self,
        st: &Stage<'_>,
        (l, lane): (usize, &Lane),
        (a, arm): (usize, &mut HostedArm),
        rendered: Vec<(usize, Vec<Message>)>,
        out: &mut StageOutcome,
    ) -> Vec<(usize, Vec<Message>)> {
        if st.shared.no_cache {
            return rendered;
        }
        let mut leaders: Vec<(usize, Vec<Message>, String)> = Vec::new();
        for (item, messages) in rendered {
            let key = providers::cache_key(&lane.base_url, &lane.model, &messages, &arm.params);
            match self.sent.get(&(l, key.clone())) {
                Some(&leader) => self.followers.entry(leader).or_default().push((a, item)),
                None => {
                    self.sent.insert((l, key.clone()), (a, item));
                    leaders.push((item, messages, key));
                }
            }
        }
        let keys: Vec<String> = leaders.iter().map(|(_, _, k)| k.clone()).collect();
        let mut found = match st.store.cache_get_many(&keys).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %err, "reading the response cache failed; sending every item");
                HashMap::new()
            }
        };
        let mut to_send = Vec::new();
        for (item, messages, key) in leaders {
            let hit = found.remove(&key).or_else(|| st.unwritten.get(&key));
            match hit {
                Some(answer) => {
                    // Only this arm's items can follow it yet; a later arm's finds the cache.
                    self.sent.remove(&(l, key));
                    let followers = self.followers.remove(&(a, item)).unwrap_or_default();
                    for (_, i) in std::iter::once((a, item)).chain(followers) {
                        self.hit(st, arm, i, &answer, out).await;
                    }
                }
                None => {
                    self.keys.insert((a, item), key);
                    to_send.push((item, messages));
                }
            }
        }
        to_send
    }

    async fn hit(
        &self,
        st: &Stage<'_>,
        arm: &mut HostedArm,
        item: usize,
        answer: &CachedAnswer,
        out: &mut StageOutcome,
    ) {
        let written = call::from_cache(&st.shared, &arm.arm, item, answer).await;
        out.answered += 1;
        hosted::deliver(arm, written, None, st.events, &st.writer).await;
    }

    /// A batch that could not be made: its reservation is released, its row closed, and its
    /// items (with their followers) handled as failed lines.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn not_created(
        &mut self,
        st: &mut Stage<'_>,
        arms: &mut [HostedArm],
        row: ApiBatch,
        a: usize,
        reserved: f64,
        error: &CallError,
        out: &mut StageOutcome,
    ) {
        st.budget.settle(reserved, 0.0);
        st.events
            .note(format!(
                "arm {}: a batch could not be sent ({error})",
                row.arm
            ))
            .await;
        out.collected.push(row.id);
        let error = CallError::Batch {
            code: "not_submitted".into(),
            message: error.to_string(),
        };
        for id in &row.items {
            if let Some(&item) = self.index.get(id) {
                self.unanswered(st, arms, (a, item), &error, out).await;
            }
        }
    }

    /// An item (and its followers) its batch did not answer: back to the real-time pass, or
    /// recorded failed.
    async fn unanswered(
        &mut self,
        st: &Stage<'_>,
        arms: &mut [HostedArm],
        (a, item): (usize, usize),
        error: &CallError,
        out: &mut StageOutcome,
    ) {
        let followers = self.followers.remove(&(a, item)).unwrap_or_default();
        for (b, i) in std::iter::once((a, item)).chain(followers) {
            let arm = &mut arms[b];
            match st.plan.batch.on_failure {
                BatchFailure::Realtime => self.retry.push((b, i)),
                BatchFailure::Fail => {
                    let answered =
                        call::record(&st.shared, &arm.arm, i, Err(error.clone()), (0.0, 1)).await;
                    out.failed += 1;
                    hosted::deliver(
                        arm,
                        answered.written,
                        answered.failed,
                        st.events,
                        &st.writer,
                    )
                    .await;
                }
            }
        }
    }

    /// Puts the items to ask in real time back into their arms' pending lists.
    pub(crate) fn requeue(self, pending: &mut HashMap<String, Vec<(usize, Vec<usize>)>>) {
        for (a, item) in self.retry {
            let list = pending
                .values_mut()
                .flat_map(|arms| arms.iter_mut())
                .find(|(arm, _)| *arm == a);
            if let Some((_, items)) = list {
                items.push(item);
            }
        }
    }
}

/// Collects an ended batch: reads its files, records every item's answer or failure, settles
/// its reservation, and marks the row for collection once written. A file that cannot be read
/// leaves the batch open for the next run.
pub(crate) async fn collect(
    st: &mut Stage<'_>,
    c: &mut Collector,
    lane: &Lane,
    arms: &mut [HostedArm],
    w: Waiting,
    out: &mut StageOutcome,
) {
    let (name, params) = (arms[w.arm].arm.clone(), arms[w.arm].params.clone());
    let items = crate::batch_api::render_items(st, &arms[w.arm], &w.row.items, &c.index);
    let requests: HashMap<&str, BatchRequest<'_>> = items
        .iter()
        .map(|(i, m)| {
            let id = st.shared.items[*i].id.as_str();
            (
                id,
                BatchRequest {
                    custom_id: id,
                    messages: m,
                    params: &params,
                },
            )
        })
        .collect();
    let mut results = HashMap::new();
    for file in [&w.remote.output_file_id, &w.remote.error_file_id]
        .into_iter()
        .flatten()
    {
        match lane.client.batch_file(file).await {
            Ok(bytes) => results.extend(lane.client.read_batch_lines(&bytes, &requests)),
            Err(err) => {
                st.events
                    .note(format!(
                        "batch {}: reading its results failed ({err}); a later run collects it",
                        w.remote.id
                    ))
                    .await;
                out.left_open += 1;
                return;
            }
        }
    }
    let done = st
        .store
        .completed_items(st.run_id, &name)
        .await
        .unwrap_or_default();
    let latency_ms = turnaround_ms(w.remote.created_at);
    let mut spent = 0.0;
    let (mut answered, mut unanswered) = (0u64, 0u64);
    for (item, messages) in &items {
        let id = &st.shared.items[*item].id;
        if done.contains(id) {
            continue;
        }
        match results.remove(id.as_str()) {
            Some(Ok(answer)) => {
                spent += answer.cost_usd;
                answered += 1;
                let at = (w.arm, *item, messages.as_slice());
                c.answered(st, lane, arms, at, answer, latency_ms, out)
                    .await;
            }
            result => {
                unanswered += 1;
                let error = match result {
                    Some(Err(e)) => e,
                    _ => missing(&w),
                };
                c.unanswered(st, arms, (w.arm, *item), &error, out).await;
            }
        }
    }
    st.budget.settle(w.reserved, spent);
    out.collected.push(w.row.id);
    st.events
        .note(format!(
            "arm {name}: batch {} {}: {answered} answered, {unanswered} not (${spent:.4} at batch rates)",
            w.remote.id,
            w.remote.status.as_str()
        ))
        .await;
}

impl Collector {
    /// Records a line's answer (with its cache entry) and answers its followers with it.
    #[allow(clippy::too_many_arguments)]
    async fn answered(
        &mut self,
        st: &Stage<'_>,
        lane: &Lane,
        arms: &mut [HostedArm],
        (a, item, messages): (usize, usize, &[Message]),
        answer: providers::Answer,
        latency_ms: f64,
        out: &mut StageOutcome,
    ) {
        let arm = &mut arms[a];
        let mut answered =
            call::record(&st.shared, &arm.arm, item, Ok(answer), (latency_ms, 1)).await;
        let cached = answered.answer.take();
        let key = self.keys.remove(&(a, item));
        if let (Some(answer), false) = (&cached, st.shared.no_cache) {
            // A batch sent by an earlier invocation has no key noted: the request gives it.
            let key = key.unwrap_or_else(|| {
                providers::cache_key(&lane.base_url, &lane.model, messages, &arm.params)
            });
            st.unwritten.insert(key.clone(), answer.clone());
            answered.written.cache = Some((key, answer.clone()));
        }
        out.answered += 1;
        hosted::deliver(arm, answered.written, None, st.events, &st.writer).await;
        let followers = self.followers.remove(&(a, item)).unwrap_or_default();
        if let Some(answer) = cached {
            for (b, i) in followers {
                self.hit(st, &mut arms[b], i, &answer, out).await;
            }
        }
    }
}

/// The error of an item its batch's files do not mention.
fn missing(w: &Waiting) -> CallError {
    let message = if w.remote.errors.is_empty() {
        format!(
            "the batch ended `{}` without a line for this request",
            w.remote.status.as_str()
        )
    } else {
        format!("the batch was refused: {}", w.remote.errors.join("; "))
    };
    CallError::Batch {
        code: format!("batch_{}", w.remote.status.as_str()),
        message,
    }
}

/// Milliseconds from the batch's creation to now: how long its answers took.
fn turnaround_ms(created_at: u64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    ((now - created_at as f64) * 1000.0).max(0.0)
}
