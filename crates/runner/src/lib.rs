//! runner: turns a validated [`experiment::Plan`] into answered, scored and stored eval items.
//!
//! [`run`] finds or creates the run (a rerun of the same spec resumes the newest unfinished run),
//! then answers every pending item of every selected arm: hosted prompt arms through one bounded
//! scheduler (`hosted`), local-model arms on their own OS thread (`local`), fine-tunes in a
//! `finetune-worker` process (`worker`). Every answer is scored by every scorer and handed to a
//! single batching writer (`writer`). The budget is reserved before each hosted call (`budget`).
//!
//! Invariants: the runner never draws to the terminal (it emits [`Event`]s), never prints, never
//! blocks the async runtime on model work, never holds more futures than there are free slots,
//! and never records or logs an API key (keys live in [`domain::Secret`] from the environment).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domain::{
    ArmInfo, ArmKind, EvalItem, GenerationParams, RunStatus, ScoreRecord, ScorerSpec, Secret,
};
use experiment::{Plan, ProviderSpec};
use store::Store;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod budget;
mod events;
mod hosted;
mod local;
mod plan;
mod worker;
mod writer;

pub use events::{ArmStart, Event};
pub use plan::{ArmEstimate, Estimate, check_options, estimate};
pub use worker::{WORKER_ENV, find_worker};

use budget::Budget;
use hosted::{HostedArm, Lane};
use local::LocalArm;
use worker::{FinetuneArm, WorkerContext};

/// How long in-flight work may take to finish after cancellation before it is abandoned.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What one invocation of `orchestrator run` asks for, beyond the spec.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Only these arms (`--arms`); all when None.
    pub arms: Option<Vec<String>>,
    /// Only the first N eval items (`--limit`).
    pub limit: Option<usize>,
    /// Neither read nor write the response cache (`--no-cache`).
    pub no_cache: bool,
    /// Most calls in flight over all providers (`-j`); by default the sum of their limits.
    pub jobs: Option<usize>,
    /// Start a new run even when an unfinished one exists (`--new`).
    pub new: bool,
    /// Estimate only: nothing is spent or written (`--dry-run`).
    pub dry_run: bool,
    /// Where fine-tune jobs keep their files (`<db dir>/.orchestrator`).
    pub artifacts_dir: PathBuf,
    /// The `finetune-worker` binary; found by [`find_worker`] when None.
    pub worker: Option<PathBuf>,
    /// See [`DEFAULT_GRACE`].
    pub grace: Duration,
    /// Where API keys come from: the environment, unless a caller hands them in.
    pub secrets: Secrets,
}

/// Where providers' API keys are read: the process environment (the default), or a fixed set
/// (tests, embedding). Values are [`Secret`]s and never print.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    fixed: Option<HashMap<String, Secret>>,
}

impl Secrets {
    /// Keys from the environment variables named by each provider's `api_key_env`.
    pub fn from_env() -> Self {
        Self::default()
    }

    /// Exactly these keys, by variable name; the environment is not read.
    pub fn fixed(pairs: impl IntoIterator<Item = (String, Secret)>) -> Self {
        Self {
            fixed: Some(pairs.into_iter().collect()),
        }
    }

    /// The key named `var`; None when it is unset or empty.
    pub fn get(&self, var: &str) -> Option<Secret> {
        match &self.fixed {
            Some(keys) => keys.get(var).cloned(),
            None => std::env::var(var)
                .ok()
                .filter(|k| !k.trim().is_empty())
                .map(Secret::new),
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            arms: None,
            limit: None,
            no_cache: false,
            jobs: None,
            new: false,
            dry_run: false,
            artifacts_dir: PathBuf::from(".orchestrator"),
            worker: None,
            grace: DEFAULT_GRACE,
            secrets: Secrets::default(),
        }
    }
}

/// What a finished invocation did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run_id: i64,
    pub resumed: bool,
    pub status: RunStatus,
    /// Items answered by this invocation.
    pub answered: u64,
    /// Items that failed for good in this invocation; a rerun retries them.
    pub failed_items: u64,
    /// Items left unanswered because the budget or a cancellation stopped the run.
    pub unanswered: u64,
    /// Dollars the whole run has spent, earlier invocations included.
    pub spent_usd: f64,
    /// Arms that did not run, with the reason (a missing API key).
    pub skipped: Vec<(String, String)>,
}

/// What [`run`] returns: an estimate for `--dry-run`, else the summary of the run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Planned(Estimate),
    Finished(RunSummary),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown arm {arm:?} in --arms; the experiment's arms are: {}", known.join(", "))]
    UnknownArm { arm: String, known: Vec<String> },
    #[error("the experiment has no eval items to answer")]
    NoItems,
    #[error("nothing to run: every selected arm was skipped ({})", reasons.join("; "))]
    NothingToRun { reasons: Vec<String> },
    #[error("provider {provider}: {source}")]
    Client {
        provider: String,
        #[source]
        source: providers::Error,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("writing results to the store failed: {0}")]
    Write(#[source] store::Error),
}

impl Error {
    /// The user asked for something the spec does not allow (exit code 1, not 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::UnknownArm { .. }
                | Error::NoItems
                | Error::NothingToRun { .. }
                | Error::Client { .. }
        )
    }
}

/// What call tasks, the local-model thread and fine-tune tasks read: the eval items' ids and
/// targets (indexed like the plan's eval rows), the scorers and the generation parameters. Only
/// this, not the plan with its whole dataset, is shared, so a run holds one copy of the data.
pub(crate) struct Shared {
    pub items: Vec<ItemRef>,
    pub scorers: Vec<ScorerSpec>,
    pub store: Store,
    pub params: GenerationParams,
    pub no_cache: bool,
}

pub(crate) struct ItemRef {
    pub id: String,
    pub target: String,
}

impl Shared {
    /// Every scorer's value for the answer of `arm` to item number `item`.
    pub(crate) fn score_all(&self, arm: &str, item: usize, answer: &str) -> Vec<ScoreRecord> {
        let row = &self.items[item];
        self.scorers
            .iter()
            .map(|s| ScoreRecord {
                arm: arm.to_string(),
                item_id: row.id.clone(),
                scorer: s.id.clone(),
                value: scoring::score(&s.kind, answer, &row.target),
            })
            .collect()
    }
}

/// Runs (or resumes) the experiment. See the crate docs for what happens and in which order.
pub async fn run(
    plan: &Plan,
    store: &Store,
    opts: RunOptions,
    cancel: CancellationToken,
    events: mpsc::Sender<Event>,
) -> Result<RunOutcome, Error> {
    if opts.dry_run {
        return Ok(RunOutcome::Planned(estimate(plan, &opts)?));
    }
    let events = events::Emitter::new(events);
    let selected = plan::select_arms(plan, opts.arms.as_deref())?;
    let rows = plan::eval_rows(plan, opts.limit);
    if rows.is_empty() {
        return Err(Error::NoItems);
    }

    // Providers first: which hosted ones have a key (and a client), which are skipped.
    let mut clients: HashMap<String, Lane> = HashMap::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut skipped_providers: HashSet<String> = HashSet::new();
    for provider in &plan.providers {
        let ProviderSpec::OpenAi(spec) = provider else {
            continue;
        };
        if !selected
            .iter()
            .any(|a| a.provider.as_deref() == Some(spec.id.as_str()))
        {
            continue;
        }
        let Some(key) = opts.secrets.get(&spec.api_key_env) else {
            skipped_providers.insert(spec.id.clone());
            continue;
        };
        let base_url = plan::base_url(spec);
        let pricing = match plan::pricing(spec) {
            Some(p) => p,
            None => {
                events
                    .note(format!(
                        "provider {}: no known price for model {}; its calls are recorded at $0",
                        spec.id, spec.model
                    ))
                    .await;
                domain::Pricing {
                    input_per_mtok: 0.0,
                    output_per_mtok: 0.0,
                }
            }
        };
        let endpoint = providers::Endpoint {
            id: spec.id.clone(),
            base_url: base_url.clone(),
            model: spec.model.clone(),
            api_key: Some(key),
            max_concurrency: spec.max_concurrency.max(1),
            requests_per_minute: spec.requests_per_minute,
            timeout: Duration::try_from_secs_f64(spec.timeout_secs)
                .unwrap_or(Duration::from_secs(60)),
            max_retries: spec.max_retries,
            pricing,
        };
        let client = providers::Client::new(endpoint).map_err(|source| Error::Client {
            provider: spec.id.clone(),
            source,
        })?;
        clients.insert(
            spec.id.clone(),
            Lane {
                client,
                base_url,
                model: spec.model.clone(),
                pricing,
                max_concurrency: spec.max_concurrency.max(1),
                in_flight: 0,
                queue: Default::default(),
            },
        );
    }
    let mut arms = Vec::new();
    for arm in selected {
        match arm.provider.as_deref() {
            Some(p) if skipped_providers.contains(p) => {
                let env = match plan.provider(p) {
                    Some(ProviderSpec::OpenAi(s)) => s.api_key_env.clone(),
                    _ => String::new(),
                };
                skipped.push((arm.arm.clone(), format!("{env} is not set")));
            }
            _ => arms.push(arm),
        }
    }
    for provider in &skipped_providers {
        let env = match plan.provider(provider) {
            Some(ProviderSpec::OpenAi(s)) => s.api_key_env.as_str(),
            _ => "",
        };
        events
            .note(format!(
                "skipping provider {provider}: {env} is not set (its arms do not run)"
            ))
            .await;
    }

    if arms.is_empty() {
        let mut reasons: Vec<String> = skipped_providers
            .iter()
            .map(|p| match plan.provider(p) {
                Some(ProviderSpec::OpenAi(s)) => format!("provider {p} needs {}", s.api_key_env),
                _ => format!("provider {p}"),
            })
            .collect();
        reasons.sort();
        return Err(Error::NothingToRun { reasons });
    }

    // The run: resume the newest unfinished one with this spec unless asked not to.
    let resumable = if opts.new {
        None
    } else {
        store.resumable_run(&plan.name, &plan.spec_hash).await?
    };
    let (run_id, resumed) = match resumable {
        Some(info) => {
            store.set_run_status(info.id, RunStatus::Running).await?;
            (info.id, true)
        }
        None => {
            let spec_json = serde_json::to_string(&plan_without_rows(plan)).unwrap_or_default();
            let id = store
                .create_run(
                    &plan.name,
                    &plan.spec_hash,
                    &plan.dataset.fingerprint,
                    &spec_json,
                )
                .await?;
            (id, false)
        }
    };
    let span = tracing::info_span!("run", run = run_id, experiment = %plan.name);
    let result = execute(
        plan, store, &opts, cancel, &events, run_id, resumed, arms, clients, skipped, rows,
    )
    .instrument(span)
    .await;
    match result {
        Ok(summary) => Ok(RunOutcome::Finished(summary)),
        Err(err) => {
            if let Err(mark) = store.set_run_status(run_id, RunStatus::Failed).await {
                tracing::error!(error = %mark, "marking the run failed did not work either");
            }
            Err(err)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute(
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
    {
        let items: Vec<EvalItem> = rows
            .iter()
            .map(|r| EvalItem {
                item_id: r.id.clone(),
                input: r.input.clone(),
                target: r.target.clone(),
            })
            .collect();
        store.insert_items(run_id, &items).await?;
    }

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
                            messages: plan.render(&prompt, row),
                            answer: row.target.clone(),
                        })
                        .collect();
                    let eval = pending
                        .iter()
                        .map(|&i| finetune::job::EvalPrompt {
                            item_id: rows[i].id.clone(),
                            messages: plan.render(&prompt, &rows[i]),
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
    let writer = writer::Writer::spawn(store.clone(), run_id, stop.clone());
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
            opts.grace,
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
        spec_hash: plan.spec_hash.clone(),
        resume: !opts.new,
        artifacts_dir: opts.artifacts_dir.clone(),
        worker: opts.worker.clone(),
        grace: opts.grace,
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
        plan,
        shared.clone(),
        lanes,
        &mut hosted_arms,
        &mut budget,
        jobs,
        writer.sender(),
        events,
        &stop,
        opts.grace,
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
fn plan_without_rows(plan: &Plan) -> Plan {
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
        decision: plan.decision.clone(),
    }
}
