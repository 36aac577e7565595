//! One invocation of a run, once the run exists: store its arms and items, work out what each
//! arm still has to answer, start local-model and fine-tune work beside the hosted scheduler,
//! wait for all of it, flush the writer and settle the run's status.
//!
//! The public entry point and the option types are in the crate root; this module is the order
//! of operations, not the operations themselves (those live in `hosted`, `local`, `worker`).

use std::collections::HashMap;
use std::sync::Arc;

use domain::{ArmInfo, ArmKind, EvalItem, RunStatus};
use experiment::{Plan, ProviderSpec};
use store::Store;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::budget::Budget;
use crate::events::{self, ArmStart, Event};
use crate::grace::Grace;
use crate::hosted::{self, HostedArm, Lane};
use crate::local::{self, LocalArm};
use crate::lookahead::Unwritten;
use crate::worker::{self, FinetuneArm, WorkerContext};
use crate::{Error, ItemRef, RunOptions, RunSummary, Shared, writer};

#[allow(clippy::too_many_arguments)]
pub(crate) async fn execute(
    plan: &Plan,
    store: &Store,
    opts: &RunOptions,
    cancel: CancellationToken,
    events: &events::Emitter,
    run_id: i64,
    resumed: bool,
    arms: Vec<experiment::ArmPlan>,
    mut lanes_by_provider: HashMap<String, Lane>,
    skipped: Vec<(String, String)>,
    rows: &[experiment::Row],
) -> Result<RunSummary, Error> {
    let infos: Vec<ArmInfo> = arms
        .iter()
        .map(|a| ArmInfo {
            arm: a.arm.clone(),
            kind: a.kind,
            provider: a.provider.clone(),
            prompt: a.prompt.clone(),
            model: a.model.clone(),
        })
        .collect();
    store.insert_arms(run_id, &infos).await?;
    // The eval items are stored while the first calls are out (tens of milliseconds for ten
    // thousand rows); the writer waits for them before it writes anything, so items still land
    // before the calls that answer them, and a failure to store them fails the run.
    let items: Vec<EvalItem> = rows
        .iter()
        .map(|r| EvalItem {
            item_id: r.id.clone(),
            input: r.input.clone(),
            target: r.target.clone(),
        })
        .collect();
    let items_stored = tokio::spawn({
        let store = store.clone();
        async move { store.insert_items(run_id, &items).await }.in_current_span()
    });

    let shared = Arc::new(Shared {
        items: rows
            .iter()
            .map(|r| ItemRef {
                id: r.id.clone(),
                target: r.target.clone(),
            })
            .collect(),
        scorers: plan.scorers.clone(),
        store: store.clone(),
        params: plan.generation.clone(),
        no_cache: opts.no_cache,
    });

    // What each arm still has to answer.
    let mut starts = Vec::new();
    let mut hosted_arms: Vec<HostedArm> = Vec::new();
    let mut hosted_pending: HashMap<String, Vec<(usize, Vec<usize>)>> = HashMap::new();
    let mut local_jobs: HashMap<String, Vec<LocalArm>> = HashMap::new();
    let mut finetunes: Vec<FinetuneArm> = Vec::new();
    let mut previous_training = None;
    let mut to_answer = 0u64;
    for arm in &arms {
        let completed = store.completed_items(run_id, &arm.arm).await?;
        let pending: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !completed.contains(&r.id))
            .map(|(i, _)| i)
            .collect();
        let total = rows.len() as u64;
        let done = total - pending.len() as u64;
        to_answer += pending.len() as u64;
        starts.push(ArmStart {
            arm: arm.arm.clone(),
            kind: arm.kind,
            total,
            done,
        });
        let prompt = arm.prompt.as_deref().and_then(|p| plan.prompt(p)).cloned();
        match (
            arm.kind,
            arm.provider.as_deref().and_then(|p| plan.provider(p)),
        ) {
            (ArmKind::Prompt, Some(ProviderSpec::OpenAi(spec))) => {
                let Some(prompt) = prompt else { continue };
                let entry = hosted_pending.entry(spec.id.clone()).or_default();
                entry.push((hosted_arms.len(), pending));
                hosted_arms.push(HostedArm {
                    arm: Arc::from(arm.arm.as_str()),
                    prompt,
                    total,
                    done,
                    errors: 0,
                    cost_usd: 0.0,
                    last_progress: None,
                });
            }
            (ArmKind::Prompt, Some(ProviderSpec::Local(spec))) => {
                let Some(prompt) = prompt else { continue };
                let pending = pending
                    .into_iter()
                    .map(|i| (i, plan.render(&prompt, &rows[i])))
                    .collect();
                local_jobs
                    .entry(spec.id.clone())
                    .or_default()
                    .push(LocalArm {
                        arm: Arc::from(arm.arm.as_str()),
                        pending,
                        total,
                        done,
                    });
            }
            (ArmKind::Finetune, _) => {
                let Some(spec) = plan.finetunes.iter().find(|f| f.id == arm.arm) else {
                    continue;
                };
                let Some(prompt) = plan.prompt(&spec.prompt).cloned() else {
                    continue;
                };
                if previous_training.is_none() && !pending.is_empty() {
                    previous_training = Some(store.results(run_id).await?.training);
                }
                let previous = previous_training
                    .as_ref()
                    .and_then(|t| t.iter().find(|r| r.arm == arm.arm).cloned());
                let (train, eval) = if pending.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    let train = plan
                        .dataset
                        .train
                        .iter()
                        .map(|row| finetune::job::Example {
                            messages: plan.render_finetune(spec, &prompt, row),
                            answer: row.target.clone(),
                        })
                        .collect();
                    let eval = pending
                        .iter()
                        .map(|&i| finetune::job::EvalPrompt {
                            item_id: rows[i].id.clone(),
                            messages: plan.render_finetune(spec, &prompt, &rows[i]),
                        })
                        .collect();
                    (train, eval)
                };
                finetunes.push(FinetuneArm {
                    spec: spec.clone(),
                    arm: Arc::from(arm.arm.as_str()),
                    train,
                    eval,
                    pending,
                    total,
                    done,
                    previous,
                });
            }
            _ => {}
        }
    }
    events
        .send(Event::RunStarted {
            run_id,
            resumed,
            arms: starts,
        })
        .await;

    // `stop` ends scheduling on the user's cancel and on a failed write alike.
    let stop = cancel.child_token();
    let grace = Grace {
        period: opts.grace,
        abort: opts.abort.clone(),
    };
    let unwritten = Unwritten::default();
    let writer = writer::Writer::spawn(
        store.clone(),
        run_id,
        stop.clone(),
        unwritten.clone(),
        items_stored,
    );
    let spent_before = store.run_cost(run_id).await?;
    let mut budget = Budget::new(plan.budget_max_cost_usd, spent_before);

    // Local models and fine-tunes run beside the hosted scheduler, one job per device at a time.
    let mut device_locks: HashMap<String, Arc<Mutex<()>>> = HashMap::new();
    let mut side: JoinSet<(u64, u64)> = JoinSet::new();
    for provider in &plan.providers {
        let ProviderSpec::Local(spec) = provider else {
            continue;
        };
        let Some(arms) = local_jobs.remove(&spec.id) else {
            continue;
        };
        let lock = device_locks
            .entry(local::device_key(spec.device))
            .or_default()
            .clone();
        let task = local::run_provider(
            spec.clone(),
            arms,
            shared.clone(),
            writer.sender(),
            events.clone(),
            stop.clone(),
            lock,
            grace.clone(),
        );
        side.spawn(
            async move {
                let o = task.await;
                (o.answered, o.failed)
            }
            .in_current_span(),
        );
    }
    let ctx = Arc::new(WorkerContext {
        shared: shared.clone(),
        run_id,
        experiment: plan.name.clone(),
        resume: !opts.new,
        artifacts_dir: opts.artifacts_dir.clone(),
        worker: opts.worker.clone(),
        grace: grace.clone(),
    });
    for ft in finetunes {
        let lock = device_locks
            .entry(local::device_key(ft.spec.compute.device))
            .or_default()
            .clone();
        let task = worker::run_finetune(
            ft,
            ctx.clone(),
            writer.sender(),
            events.clone(),
            stop.clone(),
            lock,
        );
        side.spawn(
            async move {
                let o = task.await;
                (o.answered, o.failed)
            }
            .in_current_span(),
        );
    }

    // Hosted prompt arms: lanes in the plan's provider order.
    let mut lanes = Vec::new();
    let mut lane_arms = Vec::new();
    for provider in &plan.providers {
        if let (Some(lane), Some(arms)) = (
            lanes_by_provider.remove(provider.id()),
            hosted_pending.remove(provider.id()),
        ) {
            lanes.push(lane);
            lane_arms.push(arms);
        }
    }
    hosted::fill_lanes(&mut lanes, lane_arms);
    let jobs = opts.jobs.unwrap_or_else(|| {
        lanes
            .iter()
            .map(|l| l.max_concurrency)
            .sum::<usize>()
            .max(1)
    });
    let hosted_out = hosted::run(
        hosted::Context {
            plan,
            shared: shared.clone(),
            budget: &mut budget,
            jobs,
            writer: writer.sender(),
            unwritten,
            events,
            stop: &stop,
            grace: grace.clone(),
        },
        lanes,
        &mut hosted_arms,
    )
    .await;
    if hosted_out.budget_stopped {
        let limit = budget.limit().unwrap_or(0.0);
        events
            .note(format!(
                "budget reached: ${:.4} of ${limit:.2} spent; scheduling stopped before a call could exceed it",
                budget.spent()
            ))
            .await;
    }

    let mut answered = hosted_out.answered;
    let mut failed = hosted_out.failed;
    while let Some(joined) = side.join_next().await {
        match joined {
            Ok((a, f)) => {
                answered += a;
                failed += f;
            }
            Err(err) => {
                tracing::error!(error = %err, "a local or fine-tune task stopped abnormally")
            }
        }
    }
    drop(shared);
    let write_result = writer.finish().await;

    let spent = store.run_cost(run_id).await?;
    let unanswered = to_answer.saturating_sub(answered + failed);
    let status = if write_result.is_err() {
        RunStatus::Failed
    } else if cancel.is_cancelled() {
        RunStatus::Interrupted
    } else if hosted_out.budget_stopped {
        RunStatus::BudgetExceeded
    } else {
        RunStatus::Completed
    };
    store.set_run_status(run_id, status).await?;
    write_result.map_err(Error::Write)?;
    events
        .send(Event::RunFinished {
            status,
            failed_items: failed,
            spent,
        })
        .await;
    Ok(RunSummary {
        run_id,
        resumed,
        status,
        answered,
        failed_items: failed,
        unanswered,
        spent_usd: spent,
        skipped,
    })
}

/// The plan as a run stores it (`spec_json`): everything it ran with except the dataset's rows.
/// The eval items are stored as items, and the fingerprint identifies the data, so the rows would
/// only make every run record (and every `runs` listing) megabytes larger.
pub(crate) fn plan_without_rows(plan: &Plan) -> Plan {
    let d = &plan.dataset;
    Plan {
        name: plan.name.clone(),
        description: plan.description.clone(),
        spec_path: plan.spec_path.clone(),
        spec_hash: plan.spec_hash.clone(),
        dataset: experiment::Dataset {
            eval: Vec::new(),
            train: Vec::new(),
            fingerprint: d.fingerprint.clone(),
            input_field: d.input_field.clone(),
            target_field: d.target_field.clone(),
            seed: d.seed,
        },
        providers: plan.providers.clone(),
        prompts: plan.prompts.clone(),
        finetunes: plan.finetunes.clone(),
        generation: plan.generation.clone(),
        scorers: plan.scorers.clone(),
        budget_max_cost_usd: plan.budget_max_cost_usd,
        costs: plan.costs.clone(),
        declared_costs: plan.declared_costs.clone(),
        decision: plan.decision.clone(),
    }
}
