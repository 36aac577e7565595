//! Fine-tune arms: each runs as one `finetune-worker` process (found next to the running binary,
//! or named by `ORCHESTRATOR_WORKER`), one job per device at a time. The runner writes the job
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
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use domain::{CallRecord, LossPoint, LossSplit, TrainingRecord, TrainingStatus};
use experiment::FinetuneSpec;
use finetune::job::{EvalPrompt, Example, FinetuneJob, WorkerEvent};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::events::{Emitter, Event};
use crate::grace::Grace;
use crate::local::resolve_model;
use crate::writer::Written;

/// Environment variable naming the worker binary, for installs where it is not beside us.
pub const WORKER_ENV: &str = "ORCHESTRATOR_WORKER";
const WORKER_NAME: &str = "finetune-worker";
/// Loss points buffered before they are written.
const LOSS_BATCH: usize = 32;

pub(crate) struct FinetuneArm {
    pub spec: FinetuneSpec,
    pub arm: Arc<str>,
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

#[derive(Debug, Default)]
pub(crate) struct FinetuneOutcome {
    pub answered: u64,
    pub failed: u64,
}

pub(crate) struct WorkerContext {
    pub shared: Arc<Shared>,
    pub run_id: i64,
    pub experiment: String,
    /// Continue from checkpoints of the same job (false with `--new`).
    pub resume: bool,
    pub artifacts_dir: PathBuf,
    pub worker: Option<PathBuf>,
    pub grace: Grace,
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

/// Where an arm's job, log, checkpoints and adapter live. Keyed by experiment, arm and what
/// decides the training ([`training_key`]), not by run or spec: any later run that trains the
/// same — a resumed one, a new one after a worker crashed, or one whose spec changed elsewhere
/// (a new prompt variant, another budget) — finds the checkpoints and continues from them, or
/// finds the finished adapter and only answers its items.
/// None when a name would leave `artifacts` (see [`under_root`]).
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

pub(crate) async fn run_finetune(
    mut ft: FinetuneArm,
    ctx: Arc<WorkerContext>,
    writer: mpsc::Sender<Written>,
    events: Emitter,
    stop: CancellationToken,
    device_lock: Arc<Mutex<()>>,
) -> FinetuneOutcome {
    let pending = ft.pending.len() as u64;
    if pending == 0 {
        return FinetuneOutcome::default();
    }
    let _device = tokio::select! {
        guard = device_lock.lock_owned() => guard,
        () = stop.cancelled() => return FinetuneOutcome::default(),
    };
    let store = &ctx.shared.store;
    let Some(out_dir) = arm_dir(
        &ctx.artifacts_dir,
        &ctx.experiment,
        &ft.arm,
        &training_key(&ft),
    ) else {
        let root = ctx.artifacts_dir.display();
        events
            .note(format!(
                "fine-tune {}: its id cannot name a folder in {root}",
                ft.arm
            ))
            .await;
        return FinetuneOutcome {
            answered: 0,
            failed: pending,
        };
    };
    let mut record = ft.previous.take().unwrap_or_else(|| TrainingRecord {
        arm: ft.arm.to_string(),
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

    let fail = |record: &mut TrainingRecord, message: String| {
        record.status = TrainingStatus::Failed;
        record.error = Some(message);
    };

    let launched = match prepare(&mut ft, &ctx, &out_dir, &events).await {
        Ok(job_path) => launch(&ctx, &job_path, &out_dir).map_err(|e| e.to_string()),
        Err(message) => Err(message),
    };
    let mut child = match launched {
        Ok(child) => child,
        Err(message) => {
            events
                .note(format!("fine-tune {}: {message}", ft.arm))
                .await;
            fail(&mut record, message);
            if let Err(err) = store.upsert_training(ctx.run_id, &record).await {
                tracing::error!(error = %err, "storing the training record failed");
            }
            return FinetuneOutcome {
                answered: 0,
                failed: pending,
            };
        }
    };
    if let Err(err) = store.upsert_training(ctx.run_id, &record).await {
        tracing::error!(error = %err, "storing the training record failed");
    }

    let mut out = FinetuneOutcome::default();
    let rows: HashMap<&str, usize> = ft
        .pending
        .iter()
        .map(|&i| (ctx.shared.items[i].id.as_str(), i))
        .collect();
    let per_second = ft.spec.compute.cost_per_hour / 3600.0;
    let mut cost = 0.0;
    let mut errors = 0u64;
    let mut loss_points: Vec<LossPoint> = Vec::new();
    let mut worker_error: Option<String> = None;
    let mut finished = false;
    let mut interrupted = false;
    let mut kill_at: Option<tokio::time::Instant> = None;

    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill().await;
        fail(&mut record, "the worker's output could not be read".into());
        let _ = store.upsert_training(ctx.run_id, &record).await;
        return FinetuneOutcome {
            answered: 0,
            failed: pending,
        };
    };
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            () = stop.cancelled(), if kill_at.is_none() => {
                interrupted = true;
                terminate(&child);
                kill_at = Some(ctx.grace.deadline());
                continue;
            }
            () = ctx.grace.until(kill_at) => {
                tracing::warn!(arm = %ft.arm, "the worker did not stop within the grace period; killed");
                let _ = child.start_kill();
                kill_at = None;
                break;
            }
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(err) => {
                worker_error = Some(format!("reading the worker's output failed: {err}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let event: WorkerEvent = match serde_json::from_str(&line) {
            Ok(event) => event,
            Err(err) => {
                tracing::debug!(arm = %ft.arm, line = %line, error = %err, "not a worker event");
                continue;
            }
        };
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
                loss_points.push(LossPoint {
                    step,
                    epoch,
                    split: LossSplit::Train,
                    loss,
                });
                events.progress(Event::TrainProgress {
                    arm: ft.arm.to_string(),
                    step,
                    total_steps,
                    loss,
                    tokens_per_second,
                    eta: Duration::try_from_secs_f64(eta_seconds).ok(),
                });
                if loss_points.len() >= LOSS_BATCH {
                    flush_losses(&ctx, &ft.arm, &mut loss_points).await;
                }
            }
            WorkerEvent::Validation { step, epoch, loss } => {
                loss_points.push(LossPoint {
                    step,
                    epoch,
                    split: LossSplit::Val,
                    loss,
                });
                flush_losses(&ctx, &ft.arm, &mut loss_points).await;
            }
            WorkerEvent::Checkpoint { step, path } => {
                tracing::info!(arm = %ft.arm, step, path = %path.display(), "checkpoint written");
                flush_losses(&ctx, &ft.arm, &mut loss_points).await;
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
                loss_points.extend(curve);
                flush_losses(&ctx, &ft.arm, &mut loss_points).await;
                record.train_seconds = train_seconds;
                record.tokens_per_second = tokens_per_second;
                record.peak_memory_bytes = peak_memory_bytes;
                record.adapter_path = Some(adapter_path.display().to_string());
                record.status = TrainingStatus::Completed;
                if let Err(err) = store.upsert_training(ctx.run_id, &record).await {
                    tracing::error!(error = %err, "storing the training record failed");
                }
                events
                    .note(format!(
                        "fine-tune {}: trained in {:.0} s, adapter at {}",
                        ft.arm,
                        record.train_seconds,
                        adapter_path.display()
                    ))
                    .await;
            }
            WorkerEvent::Answer {
                item_id,
                text,
                prompt_tokens,
                completion_tokens,
                seconds,
            } => {
                let Some(&i) = rows.get(item_id.as_str()) else {
                    tracing::warn!(arm = %ft.arm, item = %item_id, "the worker answered an unknown item");
                    continue;
                };
                let row = &ctx.shared.items[i];
                let call = CallRecord {
                    arm: ft.arm.to_string(),
                    item_id: row.id.clone(),
                    response: Some(text.clone()),
                    prompt_tokens,
                    completion_tokens,
                    latency_ms: seconds * 1000.0,
                    cost_usd: seconds * per_second,
                    attempts: 1,
                    cache_hit: false,
                    error: None,
                    compute_seconds: seconds,
                };
                cost += call.cost_usd;
                let scores = ctx.shared.score_all(&ft.arm, i, &text);
                ft.done += 1;
                out.answered += 1;
                events.progress(Event::ArmProgress {
                    arm: ft.arm.to_string(),
                    done: ft.done,
                    total: ft.total,
                    cost_usd: cost,
                    errors,
                });
                let _ = writer
                    .send(Written {
                        call,
                        scores,
                        cache: None,
                    })
                    .await;
            }
            WorkerEvent::Done => finished = true,
            WorkerEvent::Error { message } => {
                errors += 1;
                worker_error = Some(message);
            }
        }
    }
    flush_losses(&ctx, &ft.arm, &mut loss_points).await;
    events
        .send(Event::ArmProgress {
            arm: ft.arm.to_string(),
            done: ft.done,
            total: ft.total,
            cost_usd: cost,
            errors,
        })
        .await;
    let status = match kill_at {
        // Still waiting for a stop: give it the rest of the grace period, then kill.
        Some(deadline) => tokio::select! {
            status = child.wait() => status.ok(),
            () = ctx.grace.until(Some(deadline)) => {
                let _ = child.start_kill();
                child.wait().await.ok()
            }
        },
        None => child.wait().await.ok(),
    };
    let exited_ok = status.is_some_and(|s| s.success());
    if interrupted {
        record.status = TrainingStatus::Interrupted;
    } else if finished && exited_ok && worker_error.is_none() {
        record.status = TrainingStatus::Completed;
    } else {
        let reason = worker_error.unwrap_or_else(|| {
            let code = status.map_or_else(|| "unknown status".to_string(), |s| s.to_string());
            let tail = log_tail(&out_dir.join("worker.log"));
            if tail.is_empty() {
                format!("the worker exited ({code}) before finishing")
            } else {
                format!("the worker exited ({code}) before finishing: {tail}")
            }
        });
        events
            .note(format!(
                "fine-tune {} failed: {reason} (checkpoints kept in {}; rerun to resume)",
                ft.arm,
                out_dir.display()
            ))
            .await;
        fail(&mut record, reason);
    }
    if let Err(err) = store.upsert_training(ctx.run_id, &record).await {
        tracing::error!(error = %err, "storing the training record failed");
    }
    if !interrupted {
        out.failed = pending.saturating_sub(out.answered);
    }
    out
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
        generation: ctx.shared.params.clone(),
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

fn launch(ctx: &WorkerContext, job_path: &Path, out_dir: &Path) -> Result<Child, String> {
    let worker = find_worker(ctx.worker.as_deref()).ok_or_else(|| {
        format!("the {WORKER_NAME} binary was not found next to this program; set {WORKER_ENV} to its path")
    })?;
    let log_path = out_dir.join("worker.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("opening {} failed: {e}", log_path.display()))?;
    let mut command = Command::new(&worker);
    command.arg("--job").arg(job_path).env("NO_COLOR", "1");
    // Its own process group: a Ctrl-C in the terminal reaches only us, and we forward exactly
    // one SIGTERM (a second signal would make the worker quit without its checkpoint).
    #[cfg(unix)]
    command.process_group(0);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {} failed: {e}", worker.display()))
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

async fn flush_losses(ctx: &WorkerContext, arm: &str, points: &mut Vec<LossPoint>) {
    if points.is_empty() {
        return;
    }
    if let Err(err) = ctx
        .shared
        .store
        .insert_loss_points(ctx.run_id, arm, points)
        .await
    {
        tracing::error!(arm, error = %err, "storing loss points failed");
    }
    points.clear();
}

/// The last non-empty line the worker wrote to its log, shortened.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.chars().take(300).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn arm_folders_stay_under_the_artifacts_root() {
        let root = Path::new("/work/.orchestrator");
        assert_eq!(
            arm_dir(root, "exp", "lora", "0123456789abcdef0123"),
            Some(root.join("finetunes/exp/lora/0123456789abcdef"))
        );
        for arm in ["../../../../x", "/abs/path", "a/b", "..", ".", "", "x/"] {
            assert_eq!(arm_dir(root, "exp", arm, "k"), None, "{arm:?}");
        }
        assert_eq!(arm_dir(root, "..", "lora", "k"), None);
    }
}
