//! The sending half of `run --batch` for items no batch holds yet: each hosted arm's pending
//! items, answered from the response cache where they can be (`batch_collect`), the rest sent
//! as batches of at most `batch.max_requests` requests while the budget covers them at batch
//! rates. A batch's row and items are stored before anything is sent (see `batch_api`).

use std::collections::HashMap;

use domain::Message;
use providers::CallError;
use sha2::{Digest, Sha256};
use store::ApiBatch;

use crate::batch_api::{Remote, Stage, StageOutcome, Waiting, ensure_remote, unreachable_now};
use crate::batch_collect::Collector;
use crate::budget::call_cost_upper_bound;
use crate::hosted::{HostedArm, Lane};

/// With `--batch`: every hosted arm's pending items, answered from the cache where they can
/// be, the rest sent in batches of at most `batch.max_requests` while the budget covers them at
/// batch rates. Nothing is left for the real-time pass but what the collector puts back.
pub(crate) async fn submit_pending(
    st: &mut Stage<'_>,
    lanes: &[(String, Lane)],
    arms: &mut [HostedArm],
    pending: &mut HashMap<String, Vec<(usize, Vec<usize>)>>,
    collector: &mut Collector,
    out: &mut StageOutcome,
) -> Vec<Waiting> {
    let mut waiting = Vec::new();
    for (l, (provider, lane)) in lanes.iter().enumerate() {
        let Some(list) = pending.get_mut(provider) else {
            continue;
        };
        for (arm, items) in list.iter_mut() {
            let items = std::mem::take(items);
            if out.budget_stopped || st.stop.is_cancelled() || items.is_empty() {
                continue;
            }
            let rendered: Vec<(usize, Vec<Message>)> = items
                .iter()
                .map(|&i| {
                    (
                        i,
                        st.plan.render(&arms[*arm].prompt, &st.plan.dataset.eval[i]),
                    )
                })
                .collect();
            let to_send = collector
                .answer_from_cache(st, (l, lane), (*arm, &mut arms[*arm]), rendered, out)
                .await;
            let sent = send_arm(st, (l, lane, provider), (*arm, &arms[*arm]), to_send, out).await;
            for s in sent {
                match s {
                    Sent::Waiting(w) => waiting.push(w),
                    Sent::NotCreated {
                        row,
                        reserved,
                        error,
                    } => {
                        collector
                            .not_created(st, arms, row, *arm, reserved, &error, out)
                            .await;
                    }
                }
            }
        }
    }
    waiting
}

/// What became of one batch of an arm.
enum Sent {
    Waiting(Waiting),
    NotCreated {
        row: ApiBatch,
        reserved: f64,
        error: CallError,
    },
}

/// Sends `to_send` of one arm as batches of at most `batch.max_requests` requests, each
/// reserved on the budget before it is stored and sent.
async fn send_arm(
    st: &mut Stage<'_>,
    (l, lane, provider): (usize, &Lane, &str),
    (a, arm): (usize, &HostedArm),
    to_send: Vec<(usize, Vec<Message>)>,
    out: &mut StageOutcome,
) -> Vec<Sent> {
    let pricing = lane.pricing.at_batch_rates();
    let mut sent = Vec::new();
    for (part, chunk) in to_send
        .chunks(st.plan.batch.max_requests.max(1))
        .enumerate()
    {
        let mut fit = Vec::new();
        let mut reserved = 0.0;
        for (item, messages) in chunk {
            let cost = call_cost_upper_bound(messages, arm.params.max_tokens, &pricing);
            if !st.budget.try_reserve(cost) {
                out.budget_stopped = true;
                break;
            }
            reserved += cost;
            fit.push((*item, messages.clone()));
        }
        if fit.is_empty() {
            break;
        }
        let ids: Vec<String> = fit
            .iter()
            .map(|(i, _)| st.shared.items[*i].id.clone())
            .collect();
        let token = token(st.run_id, &arm.arm, part);
        let row = match st
            .store
            .begin_api_batch(st.run_id, &arm.arm, provider, &token, &ids)
            .await
        {
            Ok(row) => row,
            Err(err) => {
                st.budget.settle(reserved, 0.0);
                st.events
                    .note(format!(
                        "recording a batch failed ({err}); nothing more is sent"
                    ))
                    .await;
                st.stop.cancel();
                break;
            }
        };
        match ensure_remote(st, lane, arm, &row, &fit).await {
            Remote::Known(remote) => {
                st.events
                    .note(format!(
                        "arm {}: sent batch {} of {} requests; waiting for it",
                        arm.arm,
                        remote.id,
                        fit.len()
                    ))
                    .await;
                sent.push(Sent::Waiting(Waiting {
                    row,
                    remote,
                    arm: a,
                    lane: l,
                    reserved,
                }));
            }
            Remote::NotMade(error) => sent.push(Sent::NotCreated {
                row,
                reserved,
                error,
            }),
            Remote::Unknown(error) => unreachable_now(st, &row, &error, out).await,
        }
        if out.budget_stopped {
            break;
        }
    }
    sent
}

/// A token no other batch has: in the remote batch's metadata, and stored with its row.
fn token(run: i64, arm: &str, part: usize) -> String {
    let mut h = Sha256::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(format!(
        "{run}\u{1f}{arm}\u{1f}{part}\u{1f}{}\u{1f}{nanos}",
        std::process::id()
    ));
    format!("orch-{}", &hex::encode(h.finalize())[..24])
}
