//! `run --batch`: hosted prompt arms through their provider's Batch API, before the real-time
//! scheduler sees them. Every run (with `--batch` or not) first collects the batches an earlier
//! invocation left open; with `--batch`, each hosted arm's remaining items are answered from the
//! cache where they can be and the rest sent as batches (one arm per batch, `custom_id` = item
//! id), polled with backoff until they end, and collected (`batch_collect`).
//!
//! Never twice: a batch and its items are stored before anything is sent, its input file id
//! once uploaded, its remote id once created, and its metadata carries a token stored with it.
//! A process killed anywhere in between leaves a row that the next run finishes: nothing sent
//! (upload and create), uploaded (find the batch by its token, else create it), created (poll).
//! Items of a batch that is not collected are never asked in real time nor put in another batch.
//! A batch's requests are reserved on the budget at batch rates before it is sent, and those of
//! an earlier invocation's batch are reserved whatever the limit: they are already spent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::Message;
use experiment::Plan;
use providers::{BatchRequest, CallError, RemoteBatch};
use store::{ApiBatch, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::batch_collect::{self, Collector};
use crate::budget::{Budget, call_cost_upper_bound};
use crate::events::Emitter;
use crate::hosted::{HostedArm, Lane};
use crate::lookahead::Unwritten;
use crate::writer::Written;

/// What the batch stage works with, borrowed from the invocation's pass.
pub(crate) struct Stage<'a> {
    pub plan: &'a Plan,
    pub store: &'a Store,
    pub run_id: i64,
    pub shared: Arc<Shared>,
    pub writer: mpsc::Sender<Written>,
    pub unwritten: Unwritten,
    pub events: &'a Emitter,
    pub stop: &'a CancellationToken,
    pub budget: &'a mut Budget,
    /// `--batch`: send pending items as new batches (else only open ones are collected).
    pub submit: bool,
}

/// What the stage did.
#[derive(Debug, Default)]
pub(crate) struct StageOutcome {
    pub answered: u64,
    pub failed: u64,
    pub budget_stopped: bool,
    /// Batch rows whose answers went to the writer: collected once it has written them.
    pub collected: Vec<i64>,
    /// Batches this pass leaves open (cancelled, unreachable, beyond `--limit`): the run is
    /// not finished until a later one collects them.
    pub left_open: usize,
}

/// One arm's place in the pass: its index in `arms` and its provider's lane.
#[derive(Clone, Copy)]
struct ArmSlot {
    arm: usize,
    lane: usize,
}

/// A batch being waited for.
pub(crate) struct Waiting {
    pub row: ApiBatch,
    pub remote: RemoteBatch,
    pub arm: usize,
    pub lane: usize,
    /// What was reserved on the budget for its requests.
    pub reserved: f64,
}

/// Runs the stage: collects open batches, sends new ones when `submit`, waits for them all and
/// takes every item they hold (or held) out of `pending`; items to ask in real time now (failed
/// lines, when the spec says so) are put back.
pub(crate) async fn stage(
    mut st: Stage<'_>,
    lanes: &[(String, Lane)],
    arms: &mut [HostedArm],
    pending: &mut HashMap<String, Vec<(usize, Vec<usize>)>>,
) -> StageOutcome {
    let mut out = StageOutcome::default();
    let index: HashMap<String, usize> = st
        .shared
        .items
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    let mut collector = Collector::new(index);
    let Some(mut waiting) =
        resume_open(&mut st, lanes, arms, pending, &mut collector, &mut out).await
    else {
        return out;
    };
    if st.submit && !st.stop.is_cancelled() {
        let new = crate::batch_submit::submit_pending(
            &mut st,
            lanes,
            arms,
            pending,
            &mut collector,
            &mut out,
        )
        .await;
        waiting.extend(new);
    }
    wait_all(&mut st, lanes, arms, waiting, &mut collector, &mut out).await;
    collector.requeue(pending);
    out
}

/// The batches earlier invocations left open, for the arms of this pass: their items taken
/// out of `pending`, their requests reserved on the budget, each one finished as far as it
/// got. None (and the run stopped) when the store cannot say which batches are open.
async fn resume_open(
    st: &mut Stage<'_>,
    lanes: &[(String, Lane)],
    arms: &mut [HostedArm],
    pending: &mut HashMap<String, Vec<(usize, Vec<usize>)>>,
    collector: &mut Collector,
    out: &mut StageOutcome,
) -> Option<Vec<Waiting>> {
    let slots = slots(lanes, arms, pending);
    let open = match st.store.open_api_batches(st.run_id).await {
        Ok(open) => open,
        Err(err) => {
            let note = format!("reading this run's batches failed ({err}); stopping");
            st.events.note(note).await;
            st.stop.cancel();
            return None;
        }
    };
    let mut waiting = Vec::new();
    for row in open {
        let Some(&slot) = slots.get(row.arm.as_str()) else {
            continue;
        };
        let index = collector.index();
        take_items(pending, &lanes[slot.lane].0, slot.arm, &row.items, index);
        if let Some(outside) = row.items.iter().find(|id| !index.contains_key(*id)) {
            // Its answers could not be stored beside items this invocation does not have.
            st.events
                .note(format!(
                    "arm {}: a batch holds item {outside}, beyond --limit; run without --limit to collect it",
                    row.arm
                ))
                .await;
            out.left_open += 1;
            continue;
        }
        let (lane, arm) = (&lanes[slot.lane].1, &arms[slot.arm]);
        let messages = render_items(st, arm, &row.items, index);
        let reserved = batch_upper_bound(lane, arm, &messages);
        // Already sent: reserved whatever the limit.
        st.budget.commit(reserved);
        match ensure_remote(st, lane, arm, &row, &messages).await {
            Remote::Known(remote) => waiting.push(Waiting {
                row,
                remote,
                arm: slot.arm,
                lane: slot.lane,
                reserved,
            }),
            Remote::NotMade(err) => {
                collector
                    .not_created(st, arms, row, slot.arm, reserved, &err, out)
                    .await
            }
            Remote::Unknown(err) => unreachable_now(st, &row, &err, out).await,
        }
    }
    Some(waiting)
}

/// A batch whose provider could not be asked about it: it stays open, its items in it.
pub(crate) async fn unreachable_now(
    st: &Stage<'_>,
    row: &ApiBatch,
    err: &CallError,
    out: &mut StageOutcome,
) {
    out.left_open += 1;
    st.events
        .note(format!(
            "arm {}: could not reach batch {} ({err}); its {} items wait for a later run",
            row.arm,
            row.remote_id.as_deref().unwrap_or(&row.token),
            row.items.len()
        ))
        .await;
}

/// Where each hosted arm of the pass is, by name.
fn slots(
    lanes: &[(String, Lane)],
    arms: &[HostedArm],
    pending: &HashMap<String, Vec<(usize, Vec<usize>)>>,
) -> HashMap<String, ArmSlot> {
    let mut slots = HashMap::new();
    for (lane, (provider, _)) in lanes.iter().enumerate() {
        for (arm, _) in pending.get(provider).into_iter().flatten() {
            slots.insert(arms[*arm].arm.to_string(), ArmSlot { arm: *arm, lane });
        }
    }
    slots
}

/// Removes `items` (by id) from arm `arm`'s pending list under `provider`.
fn take_items(
    pending: &mut HashMap<String, Vec<(usize, Vec<usize>)>>,
    provider: &str,
    arm: usize,
    items: &[String],
    index: &HashMap<String, usize>,
) {
    let Some(arms) = pending.get_mut(provider) else {
        return;
    };
    let taken: std::collections::HashSet<usize> = items
        .iter()
        .filter_map(|id| index.get(id).copied())
        .collect();
    for (a, list) in arms.iter_mut() {
        if *a == arm {
            list.retain(|i| !taken.contains(i));
        }
    }
}

/// The messages of each of `items` (by id; ids not in this invocation's rows are left out).
pub(crate) fn render_items(
    st: &Stage<'_>,
    arm: &HostedArm,
    items: &[String],
    index: &HashMap<String, usize>,
) -> Vec<(usize, Vec<Message>)> {
    items
        .iter()
        .filter_map(|id| index.get(id).copied())
        .map(|i| (i, st.plan.render(&arm.prompt, &st.plan.dataset.eval[i])))
        .collect()
}

/// The most `messages` can cost at batch rates.
fn batch_upper_bound(lane: &Lane, arm: &HostedArm, messages: &[(usize, Vec<Message>)]) -> f64 {
    let pricing = lane.pricing.at_batch_rates();
    messages
        .iter()
        .map(|(_, m)| call_cost_upper_bound(m, arm.params.max_tokens, &pricing))
        .sum()
}

/// What is known of a row's remote batch.
pub(crate) enum Remote {
    Known(RemoteBatch),
    /// It was certainly not made (the upload failed, or the create failed and no batch carries
    /// the row's token): its items may be asked another way.
    NotMade(CallError),
    /// It may exist, but the provider could not be asked: its items stay in it.
    Unknown(CallError),
}

/// The remote batch of `row`, finishing what an earlier invocation began: upload and create
/// when nothing was sent, find it by its token when the file was up, else read it.
pub(crate) async fn ensure_remote(
    st: &Stage<'_>,
    lane: &Lane,
    arm: &HostedArm,
    row: &ApiBatch,
    messages: &[(usize, Vec<Message>)],
) -> Remote {
    let client = &lane.client;
    if let Some(id) = &row.remote_id {
        return match client.retrieve_batch(id).await {
            Ok(remote) => Remote::Known(remote),
            Err(err) => Remote::Unknown(err),
        };
    }
    let not_before = u64::try_from(row.created_ms / 1000)
        .unwrap_or(0)
        .saturating_sub(3600);
    let file = match &row.input_file_id {
        Some(file) => match client.find_batch(&row.token, not_before).await {
            Ok(Some(found)) => return known(st, row, found).await,
            Ok(None) => file.clone(),
            Err(err) => return Remote::Unknown(err),
        },
        None => {
            let file = match client
                .upload_batch_file(jsonl(st, lane, arm, messages))
                .await
            {
                Ok(file) => file,
                Err(err) => return Remote::NotMade(err),
            };
            // Unrecorded, a rerun could not tell that this batch may exist: make none.
            if let Err(err) = st.store.set_api_batch_file(row.id, &file).await {
                let message = format!("recording the batch's file failed: {err}");
                return Remote::NotMade(CallError::InvalidRequest { message });
            }
            file
        }
    };
    match client.create_batch(&file, &row.token).await {
        Ok(remote) => known(st, row, remote).await,
        // The response may be lost after the batch was made: look before giving up.
        Err(err) => match client.find_batch(&row.token, not_before).await {
            Ok(Some(found)) => known(st, row, found).await,
            Ok(None) => Remote::NotMade(err),
            Err(_) => Remote::Unknown(err),
        },
    }
}

async fn known(st: &Stage<'_>, row: &ApiBatch, remote: RemoteBatch) -> Remote {
    record_remote(st, row.id, &remote).await;
    Remote::Known(remote)
}

async fn record_remote(st: &Stage<'_>, row: i64, remote: &RemoteBatch) {
    let status = remote.status.as_str();
    if let Err(err) = st.store.set_api_batch_remote(row, &remote.id, status).await {
        tracing::warn!(error = %err, batch = %remote.id, "recording a batch's id failed");
    }
}

/// The batch file of `messages`: one line per item, `custom_id` its id.
pub(crate) fn jsonl(
    st: &Stage<'_>,
    lane: &Lane,
    arm: &HostedArm,
    messages: &[(usize, Vec<Message>)],
) -> Vec<u8> {
    let mut out = Vec::new();
    for (item, m) in messages {
        let line = lane.client.batch_line(BatchRequest {
            custom_id: &st.shared.items[*item].id,
            messages: m,
            params: &arm.params,
        });
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Polls every waiting batch with backoff (`batch.poll_seconds` doubling up to
/// `max_poll_seconds`) and collects each one as it ends. A cancel stops the waiting: the
/// batches stay open for the next run.
async fn wait_all(
    st: &mut Stage<'_>,
    lanes: &[(String, Lane)],
    arms: &mut [HostedArm],
    mut waiting: Vec<Waiting>,
    collector: &mut Collector,
    out: &mut StageOutcome,
) {
    let spec = st.plan.batch;
    let mut delay = Duration::from_secs_f64(spec.poll_seconds);
    let max = Duration::from_secs_f64(spec.max_poll_seconds);
    loop {
        let (ended, still): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|w| w.remote.status.is_terminal());
        waiting = still;
        for w in ended {
            let lane = &lanes[w.lane].1;
            batch_collect::collect(st, collector, lane, arms, w, out).await;
        }
        if waiting.is_empty() || st.stop.is_cancelled() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = st.stop.cancelled() => break,
        }
        delay = (delay * 2).min(max);
        for w in &mut waiting {
            poll(st, &lanes[w.lane].1, w).await;
        }
    }
    out.left_open += waiting.len();
    if !waiting.is_empty() {
        let ids: Vec<&str> = waiting.iter().map(|w| w.remote.id.as_str()).collect();
        st.events
            .note(format!(
                "stopped waiting for {} batch(es) ({}); a later run collects them",
                ids.len(),
                ids.join(", ")
            ))
            .await;
    }
}

/// Reads a waiting batch's status once; a failed read is logged and tried at the next poll.
async fn poll(st: &Stage<'_>, lane: &Lane, w: &mut Waiting) {
    match lane.client.retrieve_batch(&w.remote.id).await {
        Ok(remote) => {
            if remote.status != w.remote.status {
                st.events
                    .note(format!(
                        "arm {}: batch {} is {}",
                        w.row.arm,
                        remote.id,
                        remote.status.as_str()
                    ))
                    .await;
                if let Err(err) = st
                    .store
                    .set_api_batch_status(w.row.id, remote.status.as_str())
                    .await
                {
                    tracing::warn!(error = %err, "recording a batch's status failed");
                }
            }
            w.remote = remote;
        }
        Err(err) => {
            tracing::warn!(batch = %w.remote.id, error = %err, "polling a batch failed; trying again later");
        }
    }
}
