//! runner: turns a validated [`experiment::Plan`] into answered, scored and stored eval items.
//!
//! [`run`] finds or creates the run (a rerun of the same spec resumes the newest unfinished run),
//! then answers every pending item of every selected arm: hosted prompt arms through one bounded
//! scheduler (`hosted`, with the response cache looked up ahead in chunks by `lookahead`),
//! local-model arms on their own OS thread (`local`), fine-tunes in a
//! `finetune-worker` process (`worker`). Every answer is scored by every scorer and handed to a
//! single batching writer (`writer`). The budget is reserved before each hosted call (`budget`).
//!
//! Invariants: the runner never draws to the terminal (it emits [`Event`]s), never prints, never
//! blocks the async runtime on model work, never holds more futures than there are free slots,
//! and never records or logs an API key (keys live in [`domain::Secret`] from the environment).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domain::{GenerationParams, Pricing, RunStatus, ScoreRecord, ScorerSpec, Secret};
use experiment::{Arm, OpenAiProviderSpec, Plan};
use store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod batch_api;
mod batch_collect;
mod batch_submit;
mod bench;
mod bootstrap;
mod budget;
mod call;
mod events;
mod execute;
mod grace;
mod hosted;
mod kfold_probe;
mod knn_probe;
mod label_probs;
mod lease;
mod local;
mod lookahead;
mod plan;
mod preflight;
mod propose;
mod search;
mod search_estimate;
mod similar;
mod worker;
mod worker_log;
mod writer;

pub use bench::{BenchError, BenchRequest, bench_serving};
pub use events::{ArmStart, Event};
pub use kfold_probe::kfold_label_probabilities;
pub use knn_probe::{KnnProbe, knn_label_probabilities};
pub use label_probs::{
    LabelIssues, LabelProbs, ProbeError, RowProbs, Suspect, issues_from, label_issues,
    label_probabilities,
};
/// Process settings for local models on the CPU; `run` applies them before it starts.
pub use lease::observed_status;
pub use llm::cpu_env;
pub use plan::{ArmEstimate, Estimate, check_options, estimate};
pub use preflight::{MissingKey, missing_keys};
pub use worker::{WORKER_ENV, find_worker};

use execute::{Invocation, execute};
use hosted::Lane;

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
    /// Resume the run even if another process holds its lease (`--takeover`): for a process
    /// that died where its pid cannot be checked (another host) before its lease went stale.
    pub takeover: bool,
    /// Estimate only: nothing is spent or written (`--dry-run`).
    pub dry_run: bool,
    /// Send hosted arms' pending items through their provider's Batch API (`--batch`).
    /// Batches an earlier invocation left open are collected either way.
    pub batch: bool,
    /// Where fine-tune jobs keep their files (`<db dir>/.orchestrator`).
    pub artifacts_dir: PathBuf,
    /// The `finetune-worker` binary; found by [`find_worker`] when None.
    pub worker: Option<PathBuf>,
    /// See [`DEFAULT_GRACE`].
    pub grace: Duration,
    /// Cancelled (a second Ctrl-C): the grace period ends now. Calls still in flight are
    /// abandoned, a worker is killed, and what was answered is still written before [`run`]
    /// returns.
    pub abort: CancellationToken,
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
            takeover: false,
            dry_run: false,
            batch: false,
            artifacts_dir: PathBuf::from(".orchestrator"),
            worker: None,
            grace: DEFAULT_GRACE,
            abort: CancellationToken::new(),
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
    #[error(
        "run {run} is in progress in process {pid} on {host}; wait for it, or pass --takeover \
         if that process has died"
    )]
    InProgress { run: i64, pid: u32, host: String },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("writing results to the store failed")]
    Write(#[source] store::Error),
    #[error(
        "arm {arm}: {what} (${limit}) cannot buy the smallest prompt search, 4 candidates on 20 \
         dev items, which costs at least ${least:.4}; raise it"
    )]
    SearchBudget {
        arm: String,
        limit: f64,
        what: &'static str,
        least: f64,
    },
    #[error("scorer {scorer}: the embedding model did not load: {reason}")]
    Embedder { scorer: String, reason: String },
}

impl Error {
    /// The user asked for something the spec does not allow (exit code 1, not 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Store(err) | Error::Write(err) => err.is_user_fixable(),
            _ => matches!(
                self,
                Error::UnknownArm { .. }
                    | Error::NoItems
                    | Error::NothingToRun { .. }
                    | Error::InProgress { .. }
                    | Error::Client { .. }
                    | Error::SearchBudget { .. }
            ),
        }
    }
}

/// What call tasks, the local-model thread and fine-tune tasks read: the eval items' ids and
/// targets (indexed like the plan's eval rows) and the scorers; each arm carries its own
/// generation parameters. Only this, not the plan with its whole dataset, is shared, so a run
/// holds one copy of the data.
pub(crate) struct Shared {
    pub items: Vec<ItemRef>,
    pub scorers: Vec<ScorerSpec>,
    /// The embedding models of the `similar` scorers.
    pub embedders: similar::Embedders,
    pub store: Store,
    pub no_cache: bool,
}

/// The generation parameters of an arm answering with `prompt`: the run's, constrained to the
/// prompt's `choices` (which already fall back to `generation.choices`).
pub(crate) fn arm_params(
    generation: &GenerationParams,
    prompt: &experiment::PromptSpec,
) -> GenerationParams {
    GenerationParams {
        choices: prompt.choices.clone(),
        ..generation.clone()
    }
}

/// What the tasks beside the hosted scheduler (local-model providers, fine-tunes) work with.
#[derive(Clone)]
pub(crate) struct SideContext {
    pub shared: Arc<Shared>,
    pub writer: mpsc::Sender<writer::Written>,
    pub events: events::Emitter,
    pub stop: CancellationToken,
    /// See [`RunOptions::grace`] and [`RunOptions::abort`].
    pub grace: grace::Grace,
}

impl SideContext {
    pub(crate) fn store(&self) -> &Store {
        &self.shared.store
    }
}

/// What a local-model provider or a fine-tune answered in this invocation.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub answered: u64,
    pub failed: u64,
}

impl Tally {
    /// Nothing answered: every one of `pending` items failed.
    pub(crate) fn all_failed(pending: u64) -> Self {
        Tally {
            answered: 0,
            failed: pending,
        }
    }
}

pub(crate) struct ItemRef {
    pub id: String,
    pub target: String,
}

impl Shared {
    /// Every scorer's value for the answer of `arm` to item number `item` (and a `similar`
    /// scorer's raw cosine). Embeds with Candle when a `similar` scorer is configured: on the
    /// async runtime, call [`Shared::score_all_blocking`].
    pub(crate) fn score_all(&self, arm: &str, item: usize, answer: &str) -> Vec<ScoreRecord> {
        let row = &self.items[item];
        self.scorers
            .iter()
            .flat_map(|s| {
                self.embedders
                    .records(s, (arm, &row.id), answer, &row.target)
            })
            .collect()
    }

    /// [`Shared::score_all`] for async callers: on a blocking thread when it embeds.
    pub(crate) async fn score_all_blocking(
        self: &Arc<Self>,
        arm: &str,
        item: usize,
        answer: &str,
    ) -> Vec<ScoreRecord> {
        if self.embedders.is_empty() {
            return self.score_all(arm, item, answer);
        }
        let (shared, arm_owned, answer_owned) = (self.clone(), arm.to_string(), answer.to_string());
        let scored =
            tokio::task::spawn_blocking(move || shared.score_all(&arm_owned, item, &answer_owned))
                .await;
        // A panic in the blocking task is a bug; score on this thread rather than lose them.
        scored.unwrap_or_else(|_| self.score_all(arm, item, answer))
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
    // `experiment::load` already put `$OPENAI_BASE_URL` in place of the default base URL.
    let (arms, lanes) = connect_providers(plan, selected, &opts.secrets, &events).await?;
    let embedders = similar::Embedders::load(&plan.scorers, &events).await?;
    let owner = lease::this_process();
    let (run_id, resumed) = open_run(plan, store, &opts, &owner).await?;
    let heartbeat = lease::keep_alive(store.clone(), run_id, owner.clone());
    let span = tracing::info_span!("run", run = run_id, experiment = %plan.name);
    let invocation = Invocation {
        plan,
        store,
        opts: &opts,
        cancel,
        events: &events,
        run_id,
        resumed,
        rows,
        embedders,
    };
    let result = execute(invocation, arms, lanes).instrument(span).await;
    heartbeat.abort();
    if let Err(err) = store.release_lease(run_id, &owner).await {
        tracing::warn!(error = %err, "releasing the run's lease failed; the next run takes it over");
    }
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

/// Providers first: a client (a lane) for each hosted provider of the selected arms that has
/// its key; the arms of providers without one are left out with a note (the rule is
/// `preflight`'s, which the CLI applied before opening the store). Returns the arms that run
/// and the lanes in the plan's provider order.
async fn connect_providers(
    plan: &Plan,
    selected: Vec<Arm>,
    secrets: &Secrets,
    events: &events::Emitter,
) -> Result<(Vec<Arm>, Vec<(String, Lane)>), Error> {
    let missing = preflight::missing_for(plan, &selected, secrets);
    preflight::refuse_if_nothing_runs(&selected, &missing)?;
    for m in &missing {
        events
            .note(format!(
                "skipping provider {}: {} is not set (its arms do not run)",
                m.provider, m.env
            ))
            .await;
    }
    let mut lanes: Vec<(String, Lane)> = Vec::new();
    let mut arms = Vec::new();
    for arm in selected {
        let Arm::Hosted {
            provider, pricing, ..
        } = &arm
        else {
            arms.push(arm);
            continue;
        };
        if missing.iter().any(|m| m.provider == provider.id) {
            continue;
        }
        if !lanes.iter().any(|(id, _)| id == &provider.id) {
            // `missing_for` found this key set; read it once more for the client.
            let Some(key) = secrets.get(&provider.api_key_env) else {
                continue;
            };
            let lane = connect(provider, *pricing, key, events).await?;
            lanes.push((provider.id.clone(), lane));
        }
        arms.push(arm);
    }
    connect_proposers(plan, &arms, secrets, &mut lanes, events).await?;
    Ok((arms, lanes))
}

/// The hosted providers that write instructions for the searches of `arms` (`propose:`), when
/// no arm connected them already and their key is set (without it, the search goes on without
/// proposals and says so).
async fn connect_proposers(
    plan: &Plan,
    arms: &[Arm],
    secrets: &Secrets,
    lanes: &mut Vec<(String, Lane)>,
    events: &events::Emitter,
) -> Result<(), Error> {
    for arm in arms {
        let Some(p) = plan
            .optimize_block(&arm.prompt().id)
            .and_then(|b| b.propose.as_ref())
        else {
            continue;
        };
        if lanes.iter().any(|(id, _)| *id == p.provider) {
            continue;
        }
        let Some(experiment::ProviderSpec::OpenAi(spec)) =
            plan.providers.iter().find(|s| s.id() == p.provider)
        else {
            continue;
        };
        let Some(key) = secrets.get(&spec.api_key_env) else {
            continue;
        };
        let pricing = domain::resolve_pricing(spec.pricing, &spec.model);
        let lane = connect(spec, pricing, key, events).await?;
        lanes.push((spec.id.clone(), lane));
    }
    Ok(())
}

/// The client of one hosted provider, priced as the plan resolved it ($0 when unknown).
async fn connect(
    spec: &OpenAiProviderSpec,
    pricing: Option<Pricing>,
    key: Secret,
    events: &events::Emitter,
) -> Result<Lane, Error> {
    let pricing = match pricing {
        Some(p) => p,
        None => {
            events
                .note(format!(
                    "provider {}: no known price for model {}; its calls are recorded at $0",
                    spec.id, spec.model
                ))
                .await;
            Pricing {
                input_per_mtok: 0.0,
                output_per_mtok: 0.0,
            }
        }
    };
    let max_concurrency = spec.max_concurrency.max(1);
    let endpoint = providers::Endpoint {
        id: spec.id.clone(),
        base_url: spec.base_url.clone(),
        model: spec.model.clone(),
        api_key: Some(key),
        max_concurrency,
        requests_per_minute: spec.requests_per_minute,
        timeout: Duration::try_from_secs_f64(spec.timeout_secs).unwrap_or(Duration::from_secs(60)),
        max_retries: spec.max_retries,
        structured_outputs: spec.structured_outputs,
        logprobs: spec.logprobs,
        pricing,
    };
    let client = providers::Client::new(endpoint).map_err(|source| Error::Client {
        provider: spec.id.clone(),
        source,
    })?;
    Ok(Lane::new(
        client,
        spec.base_url.clone(),
        spec.model.clone(),
        pricing,
        max_concurrency,
    ))
}

/// The run: the newest unfinished one with this spec, resumed, unless `--new` asks for a fresh
/// one, claimed with a lease so no other process works on it at once (`lease.rs`). Either way
/// the run's report settings are (re)stored, so a run begun by an earlier version gets them on
/// resume. Returns the run's id and whether it was resumed.
async fn open_run(
    plan: &Plan,
    store: &Store,
    opts: &RunOptions,
    owner: &store::LeaseOwner,
) -> Result<(i64, bool), Error> {
    let (run_id, resumed) = lease::claim(store, plan, opts, owner).await?;
    store.set_run_settings(run_id, &plan.run_settings()).await?;
    Ok((run_id, resumed))
}
