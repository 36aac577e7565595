//! One invocation of a run, once the run exists: store its arms and items, work out what each
//! arm still has to answer, start local-model and fine-tune work beside the hosted scheduler,
//! wait for all of it, flush the writer and settle the run's status.
//!
//! The public entry point and the option types are in the crate root; this module is the order
//! of operations, not the operations themselves (those live in `hosted`, `local`, `worker`).

use std::collections::HashMap;
use std::sync::Arc;

use domain::{ArmInfo, Device, EvalItem, RunStatus, TrainingRecord};
use experiment::{Arm, FinetuneSpec, LocalProviderSpec, Plan, PromptSpec, Row};
use store::Store;
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::budget::Budget;
use crate::events::{self, ArmStart, Event};
use crate::grace::Grace;
use crate::hosted::{self, HostedArm, Lane};
use crate::local::{self, LocalArm};
use crate::lookahead::Unwritten;
use crate::worker::{self, FinetuneArm, WorkerContext};
use crate::{Error, ItemRef, RunOptions, RunSummary, Shared, SideContext, Tally, writer};

/// What one invocation works on, once its run exists.
pub(crate) struct Invocation<'a> {
    pub plan: &'a Plan,
    pub store: &'a Store,
    pub opts: &'a RunOptions,
    pub cancel: CancellationToken,
    pub events: &'a events::Emitter,
    pub run_id: i64,
    pub resumed: bool,
    /// The eval items of this invocation (`--limit` applied).
    pub rows: &'a [Row],
    /// The `similar` scorers' embedding models, loaded before the run was opened.
    pub embedders: crate::similar::Embedders,
}

/// What the selected arms still have to answer, sorted by where it runs.
#[derive(Default)]
struct Work {
    starts: Vec<ArmStart>,
    hosted: Vec<HostedArm>,
    /// Provider id → (index in `hosted`, pending item indices) of each of its arms.
    hosted_pending: HashMap<String, Vec<(usize, Vec<usize>)>>,
    /// Local providers in plan order, each with its arms.
    local: Vec<(LocalProviderSpec, Vec<LocalArm>)>,
    finetunes: Vec<FinetuneArm>,
    /// Items this invocation has to answer over all arms.
    to_answer: u64,
}

/// Stores the run's arms and items, searches the prompts of optimised arms (`search`), starts
/// every arm's pending work, waits for all of it and settles the run's status. `lanes` are the
/// connected hosted providers in plan order.
pub(crate) async fn execute(
    mut inv: Invocation<'_>,
    mut arms: Vec<Arm>,
    lanes: Vec<(String, Lane)>,
) -> Result<RunSummary, Error> {
    let items_stored = store_arms_and_items(&inv, &arms).await?;
    let embedders = std::mem::take(&mut inv.embedders);
    crate::search::optimize_arms(&inv, &mut arms, &lanes, &embedders).await?;
    let budget = budget(&inv).await?;
    let pass = answer(&inv, embedders, &arms, lanes, items_stored, budget, true).await?;
    if pass.budget_stopped {
        note_budget_stop(inv.events, &pass.budget).await;
    }
    let status = settle(&inv, pass.written, pass.budget_stopped, pass.batches_open).await?;
    finish(&inv, status, pass.tally, pass.to_answer).await
}

/// What one pass of [`answer`] did.
pub(crate) struct Pass {
    pub tally: Tally,
    /// Items the pass had to answer over all its arms.
    pub to_answer: u64,
    pub budget_stopped: bool,
    /// Batches left open for a later run to collect.
    pub batches_open: bool,
    pub budget: Budget,
    /// How the writer finished: a failed write fails the pass's caller.
    pub written: Result<(), store::Error>,
}

/// One pass of answering: every pending item of `arms` over `inv.rows` (rendered from
/// `inv.plan`), hosted arms through `lanes` within `budget`, local models and fine-tunes beside
/// them, every answer written before it returns. It neither stores arms or items nor settles
/// the run: the run's own pass and each rung of a prompt search are passes. `announce` tells
/// the UI which arms start (the run's pass does; a search's notes say what it does instead).
pub(crate) async fn answer(
    inv: &Invocation<'_>,
    embedders: crate::similar::Embedders,
    arms: &[Arm],
    lanes: Vec<(String, Lane)>,
    first: JoinHandle<Result<(), store::Error>>,
    mut budget: Budget,
    announce_arms: bool,
) -> Result<Pass, Error> {
    let shared = Arc::new(shared(inv, embedders));
    let mut work = pending_work(inv, arms).await?;
    let starts = std::mem::take(&mut work.starts);
    if announce_arms {
        announce(inv, starts).await;
    }

    // `stop` ends scheduling on the user's cancel and on a failed write alike.
    let stop = inv.cancel.child_token();
    let unwritten = Unwritten::default();
    let writer = writer::Writer::spawn(
        inv.store.clone(),
        inv.run_id,
        stop.clone(),
        unwritten.clone(),
        first,
    );
    let side_cx = side_context(inv, &shared, &writer, &stop);
    let hosted_cx = hosted_context(inv, &side_cx, &mut budget, unwritten, &stop);
    let side = spawn_side_work(inv, side_cx, work.local, work.finetunes);
    // The run's own pass collects open batches, and sends new ones with `--batch`, before
    // anything is asked in real time; a search's passes never do.
    let batched = match announce_arms {
        true => {
            let stage = crate::batch_api::Stage {
                plan: inv.plan,
                store: inv.store,
                run_id: inv.run_id,
                shared: hosted_cx.shared.clone(),
                writer: hosted_cx.writer.clone(),
                unwritten: hosted_cx.unwritten.clone(),
                events: inv.events,
                stop: &stop,
                budget: &mut *hosted_cx.budget,
                submit: inv.opts.batch,
            };
            let (hosted, pending) = (&mut work.hosted, &mut work.hosted_pending);
            crate::batch_api::stage(stage, &lanes, hosted, pending).await
        }
        false => crate::batch_api::StageOutcome::default(),
    };
    let hosted_out = run_hosted(
        hosted_cx,
        inv.opts.jobs,
        lanes,
        work.hosted_pending,
        &mut work.hosted,
    )
    .await;

    let mut tally = join_side_work(side).await;
    tally.answered += hosted_out.answered + batched.answered;
    tally.failed += hosted_out.failed + batched.failed;
    drop(shared);
    let written = writer.finish().await;
    if written.is_ok() && !batched.collected.is_empty() {
        // Only now are the batches' answers stored: until then a rerun collects them again.
        inv.store.collect_api_batches(&batched.collected).await?;
    }
    Ok(Pass {
        tally,
        to_answer: work.to_answer,
        budget_stopped: hosted_out.budget_stopped || batched.budget_stopped,
        batches_open: batched.left_open > 0,
        budget,
        written,
    })
}

/// Stores the run's arms, and starts storing its items (see [`spawn_store_items`]).
async fn store_arms_and_items(
    inv: &Invocation<'_>,
    arms: &[Arm],
) -> Result<JoinHandle<Result<(), store::Error>>, Error> {
    let infos: Vec<ArmInfo> = arms.iter().map(Arm::info).collect();
    inv.store.insert_arms(inv.run_id, &infos).await?;
    Ok(spawn_store_items(inv))
}

/// The plan's budget, less what earlier invocations of this run already spent.
async fn budget(inv: &Invocation<'_>) -> Result<Budget, Error> {
    let spent_before = inv.store.run_cost(inv.run_id).await?;
    Ok(Budget::new(inv.plan.budget_max_cost_usd, spent_before))
}

/// What the local-model and fine-tune tasks share.
fn side_context(
    inv: &Invocation<'_>,
    shared: &Arc<Shared>,
    writer: &writer::Writer,
    stop: &CancellationToken,
) -> SideContext {
    SideContext {
        shared: shared.clone(),
        writer: writer.sender(),
        events: inv.events.clone(),
        stop: stop.clone(),
        grace: Grace {
            period: inv.opts.grace,
            abort: inv.opts.abort.clone(),
        },
    }
}

/// What the hosted scheduler works with: the side tasks' context, plus the budget and the
/// calls not yet written (`jobs` is set by [`run_hosted`] once the lanes are known).
fn hosted_context<'a>(
    inv: &Invocation<'a>,
    side: &SideContext,
    budget: &'a mut Budget,
    unwritten: Unwritten,
    stop: &'a CancellationToken,
) -> hosted::Context<'a> {
    hosted::Context {
        plan: inv.plan,
        shared: side.shared.clone(),
        budget,
        jobs: 0,
        writer: side.writer.clone(),
        unwritten,
        events: inv.events,
        stop,
        grace: side.grace.clone(),
    }
}

/// Stores how the run ended, given how its writer finished; a failed write fails the run, and
/// is then the error returned.
async fn settle(
    inv: &Invocation<'_>,
    write_result: Result<(), store::Error>,
    budget_stopped: bool,
    batches_open: bool,
) -> Result<RunStatus, Error> {
    // Open batches hold answers to come: like a cancelled run, this one is resumed to finish.
    let status = final_status(
        write_result.is_ok(),
        inv.cancel.is_cancelled() || batches_open,
        budget_stopped,
    );
    inv.store.set_run_status(inv.run_id, status).await?;
    write_result.map_err(Error::Write)?;
    Ok(status)
}

/// Tells the UI which arms start, and how far each one already is.
async fn announce(inv: &Invocation<'_>, arms: Vec<ArmStart>) {
    inv.events
        .send(Event::RunStarted {
            run_id: inv.run_id,
            resumed: inv.resumed,
            arms,
        })
        .await;
}

/// Says that the budget stopped scheduling, and how much of it was spent.
async fn note_budget_stop(events: &events::Emitter, budget: &Budget) {
    let limit = budget.limit().unwrap_or(0.0);
    events
        .note(format!(
            "budget reached: ${:.4} of ${limit:.2} spent; scheduling stopped before a call could exceed it",
            budget.spent()
        ))
        .await;
}

/// How the run ended: a failed write fails it, else a cancel interrupts it, else the budget
/// or completion.
fn final_status(written: bool, cancelled: bool, budget_stopped: bool) -> RunStatus {
    if !written {
        RunStatus::Failed
    } else if cancelled {
        RunStatus::Interrupted
    } else if budget_stopped {
        RunStatus::BudgetExceeded
    } else {
        RunStatus::Completed
    }
}

/// Stores the eval items while the first calls are out (tens of milliseconds for ten thousand
/// rows); the writer waits for them before it writes anything, so items still land before the
/// calls that answer them, and a failure to store them fails the run.
fn spawn_store_items(inv: &Invocation<'_>) -> JoinHandle<Result<(), store::Error>> {
    let items: Vec<EvalItem> = inv
        .rows
        .iter()
        .map(|r| EvalItem {
            item_id: r.id.clone(),
            input: r.input.clone(),
            target: r.target.clone(),
        })
        .collect();
    let store = inv.store.clone();
    let run_id = inv.run_id;
    tokio::spawn(async move { store.insert_items(run_id, &items).await }.in_current_span())
}

/// What every answering task shares: the items' ids and targets, the scorers, the parameters.
fn shared(inv: &Invocation<'_>, embedders: crate::similar::Embedders) -> Shared {
    Shared {
        items: inv
            .rows
            .iter()
            .map(|r| ItemRef {
                id: r.id.clone(),
                target: r.target.clone(),
            })
            .collect(),
        scorers: inv.plan.scorers.clone(),
        embedders,
        store: inv.store.clone(),
        no_cache: inv.opts.no_cache,
    }
}

/// What each arm still has to answer: the items the store has no success for.
async fn pending_work(inv: &Invocation<'_>, arms: &[Arm]) -> Result<Work, Error> {
    let mut work = Work::default();
    let mut previous_training = None;
    let total = inv.rows.len() as u64;
    for arm in arms {
        let completed = inv.store.completed_items(inv.run_id, arm.id()).await?;
        let pending: Vec<usize> = inv
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !completed.contains(&r.id))
            .map(|(i, _)| i)
            .collect();
        let done = total - pending.len() as u64;
        work.to_answer += pending.len() as u64;
        work.starts.push(ArmStart {
            arm: arm.id().to_owned(),
            kind: arm.kind(),
            total,
            done,
        });
        let name: Arc<str> = Arc::from(arm.id());
        match arm {
            Arm::Hosted {
                provider, prompt, ..
            } => {
                let arm = HostedArm {
                    arm: name,
                    prompt: prompt.clone(),
                    params: Arc::new(crate::arm_params(&inv.plan.generation, prompt)),
                    total,
                    done,
                    errors: 0,
                    cost_usd: 0.0,
                    last_progress: None,
                };
                work.add_hosted(&provider.id, arm, pending);
            }
            Arm::Local {
                provider, prompt, ..
            } => {
                let pending = pending
                    .into_iter()
                    .map(|i| (i, inv.plan.render(prompt, &inv.rows[i])))
                    .collect();
                let local = LocalArm {
                    arm: name,
                    params: crate::arm_params(&inv.plan.generation, prompt),
                    pending,
                    total,
                    done,
                };
                work.add_local(provider, local);
            }
            Arm::Finetune { spec, prompt } => {
                // The stored training records are read once, and only if a fine-tune has
                // something left to do.
                if previous_training.is_none() && !pending.is_empty() {
                    previous_training = Some(inv.store.results(inv.run_id).await?.training);
                }
                let previous = previous_training
                    .as_ref()
                    .and_then(|t| t.iter().find(|r| r.arm == spec.id).cloned());
                work.finetunes.push(finetune_arm(
                    inv, spec, prompt, name, pending, done, previous,
                ));
            }
        }
    }
    Ok(work)
}

impl Work {
    /// A hosted arm, queued under its provider's lane.
    fn add_hosted(&mut self, provider: &str, arm: HostedArm, pending: Vec<usize>) {
        let entry = self.hosted_pending.entry(provider.to_owned()).or_default();
        entry.push((self.hosted.len(), pending));
        self.hosted.push(arm);
    }

    /// A local arm, grouped with the other arms of its provider (one model load for all).
    fn add_local(&mut self, provider: &LocalProviderSpec, arm: LocalArm) {
        match self.local.iter_mut().find(|(p, _)| p.id == provider.id) {
            Some((_, arms)) => arms.push(arm),
            None => self.local.push((provider.clone(), vec![arm])),
        }
    }
}

/// A fine-tune's job material: the train split and its pending eval items, rendered with its
/// prompt (nothing is rendered when nothing is pending).
fn finetune_arm(
    inv: &Invocation<'_>,
    spec: &FinetuneSpec,
    prompt: &PromptSpec,
    arm: Arc<str>,
    pending: Vec<usize>,
    done: u64,
    previous: Option<TrainingRecord>,
) -> FinetuneArm {
    let plan = inv.plan;
    let (train, eval) = if pending.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let train = plan
            .finetune_train(spec)
            .iter()
            .map(|row| finetune::job::Example {
                messages: plan.render_finetune(spec, prompt, row),
                answer: row.target.clone(),
            })
            .collect();
        let eval = pending
            .iter()
            .map(|&i| finetune::job::EvalPrompt {
                item_id: inv.rows[i].id.clone(),
                messages: plan.render_finetune(spec, prompt, &inv.rows[i]),
            })
            .collect();
        (train, eval)
    };
    FinetuneArm {
        spec: spec.clone(),
        params: crate::arm_params(&plan.generation, prompt),
        arm,
        train,
        eval,
        pending,
        total: inv.rows.len() as u64,
        done,
        previous,
    }
}

/// Local models and fine-tunes run beside the hosted scheduler, one job per device at a time.
fn spawn_side_work(
    inv: &Invocation<'_>,
    cx: SideContext,
    local: Vec<(LocalProviderSpec, Vec<LocalArm>)>,
    finetunes: Vec<FinetuneArm>,
) -> JoinSet<Tally> {
    let mut device_locks: HashMap<String, Arc<Mutex<()>>> = HashMap::new();
    let mut lock = |device: Device| {
        device_locks
            .entry(local::device_key(device))
            .or_default()
            .clone()
    };
    let mut side = JoinSet::new();
    for (provider, arms) in local {
        let device = lock(provider.device);
        side.spawn(local::run_provider(provider, arms, cx.clone(), device).in_current_span());
    }
    let worker_cx = Arc::new(WorkerContext {
        side: cx,
        run_id: inv.run_id,
        experiment: inv.plan.name.clone(),
        resume: !inv.opts.new,
        artifacts_dir: inv.opts.artifacts_dir.clone(),
        worker: inv.opts.worker.clone(),
        pool: worker::Pool::default(),
    });
    for ft in finetunes {
        let device = lock(ft.spec.compute.device);
        side.spawn(worker::run_finetune(ft, worker_cx.clone(), device).in_current_span());
    }
    side
}

/// Waits for every local-model and fine-tune task, adding up what they answered.
async fn join_side_work(mut side: JoinSet<Tally>) -> Tally {
    let mut tally = Tally::default();
    while let Some(joined) = side.join_next().await {
        match joined {
            Ok(t) => {
                tally.answered += t.answered;
                tally.failed += t.failed;
            }
            Err(err) => {
                tracing::error!(error = %err, "a local or fine-tune task stopped abnormally")
            }
        }
    }
    tally
}

/// Hosted prompt arms: one lane per connected provider, in the plan's provider order, with at
/// most `jobs` calls in flight (by default the sum of the providers' limits).
async fn run_hosted(
    mut cx: hosted::Context<'_>,
    jobs: Option<usize>,
    lanes_by_provider: Vec<(String, Lane)>,
    mut pending: HashMap<String, Vec<(usize, Vec<usize>)>>,
    arms: &mut [HostedArm],
) -> hosted::HostedOutcome {
    let mut lanes = Vec::new();
    let mut lane_arms = Vec::new();
    for (provider, lane) in lanes_by_provider {
        if let Some(arms) = pending.remove(&provider) {
            lanes.push(lane);
            lane_arms.push(arms);
        }
    }
    hosted::fill_lanes(&mut lanes, lane_arms);
    cx.jobs = jobs.unwrap_or_else(|| {
        lanes
            .iter()
            .map(|l| l.max_concurrency)
            .sum::<usize>()
            .max(1)
    });
    hosted::run(cx, lanes, arms).await
}

/// Reports the end of the invocation and what it did.
async fn finish(
    inv: &Invocation<'_>,
    status: RunStatus,
    tally: Tally,
    to_answer: u64,
) -> Result<RunSummary, Error> {
    let spent = inv.store.run_cost(inv.run_id).await?;
    inv.events
        .send(Event::RunFinished {
            status,
            failed_items: tally.failed,
            spent,
        })
        .await;
    Ok(RunSummary {
        run_id: inv.run_id,
        resumed: inv.resumed,
        status,
        answered: tally.answered,
        failed_items: tally.failed,
        unanswered: to_answer.saturating_sub(tally.answered + tally.failed),
        spent_usd: spent,
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
            dev: Vec::new(),
            fingerprint: d.fingerprint.clone(),
            input_field: d.input_field.clone(),
            target_field: d.target_field.clone(),
            seed: d.seed,
            label_flips: Default::default(),
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
        optimize: plan.optimize.clone(),
        review: plan.review,
        batch: plan.batch,
    }
}
