//! Fine-tune arms: each runs as a job of a `finetune-worker --serve` process (found next to the
//! running binary, or named by `ORCHESTRATOR_WORKER`), one job per device at a time; the
//! process serves the device's later arms too (`worker/pool.rs`). The runner writes the job
//! (train split formatted with the arm's prompt, eval prompts still unanswered) to the arm's
//! directory, reads the worker's JSON lines, stores the loss curve and the training record, and
//! scores the worker's answers like any call.
//!
//! A worker that crashes leaves its arm `failed` with the reason and the checkpoint directory
//! recorded; the other arms go on. Cancellation sends SIGTERM (the worker checkpoints and exits),
//! then kills it after the grace period. A rerun starts the worker on the same directory, where
//! it resumes from its checkpoint. This module never trains anything itself.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domain::{LossPoint, LossSplit, TrainingRecord, TrainingStatus};
use experiment::FinetuneSpec;
use finetune::job::{EvalPrompt, Example, FinetuneJob, WorkerEvent};
use sha2::{Digest, Sha256};
use tokio::process::Child;
use tokio::sync::Mutex;

use crate::events::{Emitter, Event};
use crate::grace::Grace;
use crate::local::resolve_model;
use crate::worker_log::WorkerLog;
use crate::{SideContext, Tally};

mod answers;
mod pool;

pub(crate) use pool::{Pool, spawn_serving};

/// Environment variable naming the worker binary, for installs where it is not beside us.
pub const WORKER_ENV: &str = "ORCHESTRATOR_WORKER";
const WORKER_NAME: &str = "finetune-worker";
/// Loss points buffered before they are written.
const LOSS_BATCH: usize = 32;

pub(crate) struct FinetuneArm {
    pub spec: FinetuneSpec,
    pub arm: Arc<str>,
    /// The run's generation parameters with the arm's prompt's `choices`.
    pub params: domain::GenerationParams,
    /// The train split rendered with the arm's prompt, the answer being the target.
    pub train: Vec<Example>,
    /// The pending eval items, rendered with the arm's prompt.
    pub eval: Vec<EvalPrompt>,
    pub pending: Vec<usize>,
    pub total: u64,
    pub done: u64,
    /// The training record an earlier invocation left, if any.
    pub previous: Option<TrainingRecord>,
}

pub(crate) struct WorkerContext {
    pub side: SideContext,
    pub run_id: i64,
    pub experiment: String,
    /// Continue from checkpoints of the same job (false with `--new`).
    pub resume: bool,
    pub artifacts_dir: PathBuf,
    pub worker: Option<PathBuf>,
    /// The idle serving worker of each device, kept between fine-tunes.
    pub pool: Pool,
}

/// The worker binary: the explicit path, else `$ORCHESTRATOR_WORKER`, else beside the current
/// executable (or one level up, where test harnesses live in `deps/`).
pub fn find_worker(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(WORKER_ENV) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = format!("{WORKER_NAME}{}", std::env::consts::EXE_SUFFIX);
    [dir.join(&name), dir.parent()?.join(&name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// [`find_worker`], or the sentence that says where it was looked for.
pub(crate) fn require_worker(explicit: Option<&Path>) -> Result<PathBuf, String> {
    find_worker(explicit).ok_or_else(|| {
        format!(
            "the {WORKER_NAME} binary was not found next to this program; set {WORKER_ENV} to \
             its path"
        )
    })
}

/// Where an arm's job, log, checkpoints and adapter live. Keyed by experiment, arm and what
/// decides the training ([`training_key`]), not by run or spec: any later run that trains the
/// same — a resumed one, a new one after a worker crashed, or one whose spec changed elsewhere
/// (a new prompt variant, another budget) — finds the checkpoints and continues from them, or
/// finds the finished adapter and only answers its items.
pub(crate) fn arm_dir(artifacts: &Path, experiment: &str, arm: &str, key: &str) -> Option<PathBuf> {
    let key = key.get(..16).unwrap_or(key);
    under_root(artifacts, &["finetunes", experiment, arm, key])
}

/// `root` joined with `names`, each of which must be one plain folder name (not empty, no `/`,
/// `.`, `..` or root), so nothing is written outside `root`. `experiment` already restricts ids
/// to such names; this holds for any plan.
fn under_root(root: &Path, names: &[&str]) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for name in names {
        let mut parts = Path::new(name).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(part)), None) if part == std::ffi::OsStr::new(name) => {
                path.push(part);
            }
            _ => return None,
        }
    }
    Some(path)
}

/// sha256 over what decides a fine-tune's adapter: the base model, the hyper-parameters, the
/// device (numerics differ between devices) and the rendered training examples.
pub(crate) fn training_key(ft: &FinetuneArm) -> String {
    let inputs = (
        &ft.spec.base_model,
        &ft.spec.hyper,
        &ft.spec.compute.device,
        &ft.train,
    );
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&inputs).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Trains (or resumes) one fine-tune in a worker process and stores what it answers.
pub(crate) async fn run_finetune(
    mut ft: FinetuneArm,
    ctx: Arc<WorkerContext>,
    device_lock: Arc<Mutex<()>>,
) -> Tally {
    let pending = ft.pending.len() as u64;
    if pending == 0 {
        return Tally::default();
    }
    let stop = ctx.side.stop.clone();
    let _device = tokio::select! {
        guard = device_lock.lock_owned() => guard,
        () = stop.cancelled() => return Tally::default(),
    };
    let Some(out_dir) = arm_dir(
        &ctx.artifacts_dir,
        &ctx.experiment,
        &ft.arm,
        &training_key(&ft),
    ) else {
        let root = ctx.artifacts_dir.display();
        ctx.side
            .events
            .note(format!(
                "fine-tune {}: its id cannot name a folder in {root}",
                ft.arm
            ))
            .await;
        return Tally::all_failed(pending);
    };
    let mut record = running_record(ft.previous.take(), &ft.arm, &out_dir);
    let device = ft.spec.compute.device;
    let started = start_worker(&mut ft, &ctx, &out_dir).await;
    let (mut served, log) = match started {
        Ok(started) => started,
        Err(message) => {
            ctx.side
                .events
                .note(format!("fine-tune {}: {message}", ft.arm))
                .await;
            fail(&mut record, message);
            store_record(&ctx, &record).await;
            return Tally::all_failed(pending);
        }
    };
    store_record(&ctx, &record).await;

    let mut session = Session::new(&ft, &ctx);
    session.read(&mut ft, &mut record, &mut served).await;
    // A worker that ended its job with `done` or `error` and still runs serves the next one.
    let alive = session.ended
        && session.outcome != Outcome::Interrupted
        && served.child.try_wait().ok().flatten().is_none();
    let status = if alive {
        None
    } else {
        wait_for_exit(&mut served.child, session.kill_at, &ctx.side.grace).await
    };
    let answered = session.answered;
    // An interrupted fine-tune's unanswered items are not failures: a rerun answers them.
    let failed = match session.outcome {
        Outcome::Interrupted => 0,
        _ => pending.saturating_sub(answered),
    };
    settle(
        &ft,
        &ctx,
        &out_dir,
        &log,
        &mut record,
        session.outcome,
        Exit {
            ok: status.map_or(alive, |s| s.success()),
            status,
        },
    )
    .await;
    store_record(&ctx, &record).await;
    if alive {
        ctx.pool.put_back(device, served);
    }
    Tally { answered, failed }
}

/// The arm's training record as this invocation starts it: an earlier one continued, or new.
fn running_record(previous: Option<TrainingRecord>, arm: &str, out_dir: &Path) -> TrainingRecord {
    let mut record = previous.unwrap_or_else(|| TrainingRecord {
        arm: arm.to_owned(),
        status: TrainingStatus::Running,
        train_seconds: 0.0,
        tokens_per_second: 0.0,
        peak_memory_bytes: 0,
        adapter_path: None,
        checkpoint_dir: None,
        error: None,
        curve: Vec::new(),
    });
    record.status = TrainingStatus::Running;
    record.error = None;
    record.checkpoint_dir = Some(out_dir.display().to_string());
    record
}

fn fail(record: &mut TrainingRecord, message: String) {
    record.status = TrainingStatus::Failed;
    record.error = Some(message);
}

/// Stores the training record; a failure is logged, not fatal (the answers matter more).
async fn store_record(ctx: &WorkerContext, record: &TrainingRecord) {
    if let Err(err) = ctx.side.store().upsert_training(ctx.run_id, record).await {
        tracing::error!(error = %err, "storing the training record failed");
    }
}

/// Writes the job and hands it to the device's serving worker (started if there is none),
/// with its stdout ready to read and its stderr going to the device's log, beside the arms'
/// folders.
async fn start_worker(
    ft: &mut FinetuneArm,
    ctx: &WorkerContext,
    out_dir: &Path,
) -> Result<(pool::Served, WorkerLog), String> {
    let job_path = prepare(ft, ctx, out_dir, &ctx.side.events).await?;
    let worker = require_worker(ctx.worker.as_deref())?;
    // `out_dir` is ARTIFACTS/EXPERIMENT/ARM/KEY: the log goes in ARTIFACTS/EXPERIMENT.
    let log_dir = out_dir.ancestors().nth(2).unwrap_or(out_dir);
    let device = ft.spec.compute.device;
    ctx.pool.start(device, &worker, log_dir, &job_path).await
}

/// How the worker's output ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Still reading, or the output ended without `done` or an error.
    Open,
    /// The worker said `done`.
    Finished,
    /// The worker reported an error, or its output could not be read.
    Failed(String),
    /// The user cancelled; the worker was asked to checkpoint and stop.
    Interrupted,
}

/// What reading one worker's output accumulates.
struct Session<'a> {
    ctx: &'a WorkerContext,
    /// Item id → index in the run's items, for the pending items.
    rows: HashMap<String, usize>,
    per_second: f64,
    cost: f64,
    errors: u64,
    answered: u64,
    loss_points: Vec<LossPoint>,
    outcome: Outcome,
    /// When the worker is killed if it has not stopped after SIGTERM.
    kill_at: Option<tokio::time::Instant>,
    /// The job's last event (`done` or `error`) was read.
    ended: bool,
}

impl<'a> Session<'a> {
    fn new(ft: &FinetuneArm, ctx: &'a WorkerContext) -> Self {
        Session {
            ctx,
            rows: ft
                .pending
                .iter()
                .map(|&i| (ctx.side.shared.items[i].id.clone(), i))
                .collect(),
            per_second: ft.spec.compute.cost_per_hour / 3600.0,
            cost: 0.0,
            errors: 0,
            answered: 0,
            loss_points: Vec::new(),
            outcome: Outcome::Open,
            kill_at: None,
            ended: false,
        }
    }

    /// Reads the worker's JSON lines until the job's last event, or until its output ends (or
    /// it is killed after a cancel).
    async fn read(
        &mut self,
        ft: &mut FinetuneArm,
        record: &mut TrainingRecord,
        served: &mut pool::Served,
    ) {
        let stop = self.ctx.side.stop.clone();
        let (child, lines) = (&mut served.child, &mut served.lines);
        while !self.ended {
            let line = tokio::select! {
                line = lines.next_line() => line,
                () = stop.cancelled(), if self.kill_at.is_none() => {
                    self.outcome = Outcome::Interrupted;
                    terminate(child);
                    self.kill_at = Some(self.ctx.side.grace.deadline());
                    continue;
                }
                () = self.ctx.side.grace.until(self.kill_at) => {
                    tracing::warn!(arm = %ft.arm, "the worker did not stop within the grace period; killed");
                    let _ = child.start_kill();
                    self.kill_at = None;
                    break;
                }
            };
            let line = match line {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(err) => {
                    self.set_failed(format!("reading the worker's output failed: {err}"));
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<WorkerEvent>(&line) {
                Ok(event) => self.handle(ft, record, event).await,
                Err(err) => {
                    tracing::debug!(arm = %ft.arm, line = %line, error = %err, "not a worker event");
                }
            }
        }
        self.flush_losses(&ft.arm).await;
        self.ctx
            .side
            .events
            .send(Event::ArmProgress {
                arm: ft.arm.to_string(),
                done: ft.done,
                total: ft.total,
                cost_usd: self.cost,
                errors: self.errors,
            })
            .await;
    }

    /// A failure the worker reported; a cancellation already under way stays the outcome.
    fn set_failed(&mut self, message: String) {
        if self.outcome != Outcome::Interrupted {
            self.outcome = Outcome::Failed(message);
        }
    }

    async fn handle(
        &mut self,
        ft: &mut FinetuneArm,
        record: &mut TrainingRecord,
        event: WorkerEvent,
    ) {
        match event {
            WorkerEvent::Started {
                total_steps,
                resumed_from_step,
            } => {
                tracing::info!(arm = %ft.arm, total_steps, ?resumed_from_step, "training started");
            }
            WorkerEvent::Step {
                step,
                total_steps,
                epoch,
                loss,
                tokens_per_second,
                eta_seconds,
                ..
            } => {
                self.loss_points.push(LossPoint {
                    step,
                    epoch,
                    split: LossSplit::Train,
                    loss,
                });
                self.ctx.side.events.progress(Event::TrainProgress {
                    arm: ft.arm.to_string(),
                    step,
                    total_steps,
                    loss,
                    tokens_per_second,
                    eta: Duration::try_from_secs_f64(eta_seconds).ok(),
                });
                if self.loss_points.len() >= LOSS_BATCH {
                    self.flush_losses(&ft.arm).await;
                }
            }
            WorkerEvent::Validation { step, epoch, loss } => {
                self.loss_points.push(LossPoint {
                    step,
                    epoch,
                    split: LossSplit::Val,
                    loss,
                });
                self.flush_losses(&ft.arm).await;
            }
            WorkerEvent::Checkpoint { step, path } => {
                tracing::info!(arm = %ft.arm, step, path = %path.display(), "checkpoint written");
                self.flush_losses(&ft.arm).await;
            }
            WorkerEvent::Trained {
                train_seconds,
                tokens_per_second,
                peak_memory_bytes,
                adapter_path,
                curve,
                ..
            } => {
                // The full curve: steps this session did not run (an earlier session's, or a
                // finished training reused by this run) are stored too; the rest upsert.
                self.loss_points.extend(curve);
                self.flush_losses(&ft.arm).await;
                record.train_seconds = train_seconds;
                record.tokens_per_second = tokens_per_second;
                record.peak_memory_bytes = peak_memory_bytes;
                record.adapter_path = Some(adapter_path.display().to_string());
                record.status = TrainingStatus::Completed;
                store_record(self.ctx, record).await;
                self.ctx
                    .side
                    .events
                    .note(format!(
                        "fine-tune {}: trained in {:.0} s, adapter at {}",
                        ft.arm,
                        record.train_seconds,
                        adapter_path.display()
                    ))
                    .await;
            }
            answer @ WorkerEvent::Answer { .. } => self.answer(ft, answer).await,
            WorkerEvent::Unanswered { item_id, error } => {
                self.unanswered(ft, &item_id, error).await;
            }
            WorkerEvent::Done => {
                self.ended = true;
                if self.outcome == Outcome::Open {
                    self.outcome = Outcome::Finished;
                }
            }
            WorkerEvent::Error { message } => {
                self.ended = true;
                self.errors += 1;
                self.set_failed(message);
            }
        }
    }

    async fn flush_losses(&mut self, arm: &str) {
        if self.loss_points.is_empty() {
            return;
        }
        if let Err(err) = self
            .ctx
            .side
            .store()
            .insert_loss_points(self.ctx.run_id, arm, &self.loss_points)
            .await
        {
            tracing::error!(arm, error = %err, "storing loss points failed");
        }
        self.loss_points.clear();
    }
}

/// How the worker's part in a job ended: well (exited 0, or still serving after `done`), and
/// its exit status if it exited.
struct Exit {
    ok: bool,
    status: Option<std::process::ExitStatus>,
}

/// Waits for the worker to exit. After a cancel it gets the rest of the grace period, then is
/// killed.
async fn wait_for_exit(
    child: &mut Child,
    kill_at: Option<tokio::time::Instant>,
    grace: &Grace,
) -> Option<std::process::ExitStatus> {
    match kill_at {
        Some(deadline) => tokio::select! {
            status = child.wait() => status.ok(),
            () = grace.until(Some(deadline)) => {
                let _ = child.start_kill();
                child.wait().await.ok()
            }
        },
        None => child.wait().await.ok(),
    }
}

/// The training record's final status: interrupted, completed, or failed with the reason (the
/// worker's own, else its exit status or signal and the first panic or allocation failure in
/// its log, see `worker_log.rs`).
async fn settle(
    ft: &FinetuneArm,
    ctx: &WorkerContext,
    out_dir: &Path,
    log: &WorkerLog,
    record: &mut TrainingRecord,
    outcome: Outcome,
    exit: Exit,
) {
    let Exit {
        ok: exited_ok,
        status,
    } = exit;
    let reason = match outcome {
        Outcome::Interrupted => {
            record.status = TrainingStatus::Interrupted;
            return;
        }
        Outcome::Finished if exited_ok => {
            record.status = TrainingStatus::Completed;
            return;
        }
        Outcome::Failed(message) => message,
        Outcome::Finished | Outcome::Open => {
            let code = status.map_or_else(|| "unknown status".to_string(), |s| s.to_string());
            let tail = log.crash_reason();
            if tail.is_empty() {
                format!("the worker exited ({code}) before finishing")
            } else {
                format!("the worker exited ({code}) before finishing: {tail}")
            }
        }
    };
    ctx.side
        .events
        .note(format!(
            "fine-tune {} failed: {reason} (checkpoints kept in {}; rerun to resume)",
            ft.arm,
            out_dir.display()
        ))
        .await;
    fail(record, reason);
}

/// Resolves the base model and writes the job file; returns the job's path.
async fn prepare(
    ft: &mut FinetuneArm,
    ctx: &WorkerContext,
    out_dir: &Path,
    events: &Emitter,
) -> Result<PathBuf, String> {
    let base_model = resolve_model(&ft.spec.base_weights, events).await?;
    let job = FinetuneJob {
        resume: ctx.resume,
        arm: ft.arm.to_string(),
        base_model,
        base_model_name: Some(models::base_model_name(&ft.spec.base_model)),
        hyper: ft.spec.hyper.clone(),
        compute: ft.spec.compute.clone(),
        train: std::mem::take(&mut ft.train),
        eval: std::mem::take(&mut ft.eval),
        generation: ft.params.clone(),
        out_dir: out_dir.to_path_buf(),
    };
    let json = serde_json::to_vec(&job).map_err(|e| format!("encoding the job failed: {e}"))?;
    let job_path = out_dir.join("job.json");
    tokio::fs::create_dir_all(out_dir)
        .await
        .map_err(|e| format!("creating {} failed: {e}", out_dir.display()))?;
    tokio::fs::write(&job_path, json)
        .await
        .map_err(|e| format!("writing {} failed: {e}", job_path.display()))?;
    Ok(job_path)
}

/// Asks the worker to stop (it saves a checkpoint first).
fn terminate(child: &Child) {
    let Some(pid) = child.id() else { return };
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Err(err) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    ) {
        tracing::warn!(pid, error = %err, "sending SIGTERM to the worker failed");
    }
}
