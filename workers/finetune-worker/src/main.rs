//! `finetune-worker --job job.json`: runs one fine-tune job in its own process, so a crash,
//! an out-of-memory kill or a Ctrl-C costs one arm at most, and the orchestrator's async
//! runtime never waits on a matmul. `finetune-worker --serve` runs the jobs whose paths arrive
//! on stdin one after another in one process, which spares each later job the model load
//! (0.9 s for SmolLM2) and the first step's warm-up (growing the heap to the step's peak, page
//! by page: about 4 s of SmolLM2's first 8 × 128 step on 2 cores, against 1.2–1.6 s for the
//! steps after it). Jobs on the same base model and device share it, adapters removed between
//! them.
//!
//! It loads the base model, trains a LoRA adapter (or resumes the job's newest checkpoint, or
//! skips training that already finished), writes the PEFT adapter, loads it back, answers the
//! eval prompts in batches and exits. Its stdout carries only the protocol of
//! [`finetune::job`] (one JSON event per line); logs go to stderr (`ORCHESTRATOR_LOG` sets
//! the filter). It never opens the database: the runner stores what it reports.
//!
//! Exit codes ([`finetune::job::exit`]): 0 done; 1 bad job (unreadable, invalid, model
//! missing); 2 failure; 130 interrupted (SIGINT/SIGTERM: the flag is checked between steps
//! and batches, a checkpoint is written, and rerunning the job resumes; a second signal exits
//! at once).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Parser;
use finetune::job::{FinetuneJob, WorkerEvent, exit};
use finetune::train::{self, TrainOutcome};
use llm::LocalModel;

/// Runs one LoRA fine-tune job and answers its eval prompts, reporting JSON lines on stdout.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The job file (`FinetuneJob` as JSON), written by the orchestrator's runner.
    #[arg(long, required_unless_present = "serve", conflicts_with = "serve")]
    job: Option<PathBuf>,
    /// Read job files from stdin, one path a line, and run each in turn in this process (its
    /// loaded base model, the memory it has grown to and its threads stay warm); every job's
    /// events end with `done` or `error`. Exits at the end of the input, or on an interrupt
    /// (130).
    #[arg(long)]
    serve: bool,
}

/// Where a failure came from, which decides the exit code.
enum Failure {
    BadJob(anyhow::Error),
    Failed(anyhow::Error),
    Interrupted,
}

/// Prints events on stdout, one line each, flushed at once. A broken pipe means the runner
/// is gone: the worker then cancels itself (checkpointing on the way out).
struct Events {
    cancel: Arc<AtomicBool>,
}

impl Events {
    fn emit(&self, event: &WorkerEvent) {
        let mut out = std::io::stdout().lock();
        let line = event.to_json_line();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }
}

fn main() {
    // Before any thread starts: restart with the CPU settings Candle and glibc read at start-up
    // (returns only when they were present already, or when restarting failed).
    let cpu_env = llm::cpu_env::apply();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ORCHESTRATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cpu_env {
        Ok(()) => tracing::debug!("cpu settings: {}", llm::cpu_env::describe()),
        Err(e) => {
            tracing::warn!(error = %e, "could not restart with the CPU settings; going on without them")
        }
    }
    let args = Args::parse();
    let cancel = Arc::new(AtomicBool::new(false));
    let events = Events {
        cancel: cancel.clone(),
    };
    if let Err(e) = install_signal_handlers(&cancel) {
        events.emit(&WorkerEvent::Error {
            message: format!("installing signal handlers: {e}"),
        });
        std::process::exit(exit::FAILURE);
    }
    let code = match &args.job {
        Some(job) => exit_code(run(job, &events, &cancel, &mut None), &events),
        None => serve(&events, &cancel),
    };
    std::process::exit(code);
}

/// The exit code of a job's outcome, after its `error` event where it has one.
fn exit_code(outcome: Result<(), Failure>, events: &Events) -> i32 {
    match outcome {
        Ok(()) => exit::OK,
        Err(Failure::Interrupted) => {
            tracing::warn!("interrupted; rerun the job to resume from its checkpoint");
            exit::INTERRUPTED
        }
        Err(Failure::BadJob(e)) => {
            events.emit(&WorkerEvent::Error {
                message: format!("{e:#}"),
            });
            exit::BAD_JOB
        }
        Err(Failure::Failed(e)) => {
            events.emit(&WorkerEvent::Error {
                message: format!("{e:#}"),
            });
            exit::FAILURE
        }
    }
}

/// `--serve`: the jobs named on stdin, one after another, each on the base model the one before
/// left loaded when it is the same (see [`run`]). A job that fails has said so in its `error`
/// event and the next one loads its base model afresh; an interrupt ends the process, as it
/// ends a single job.
fn serve(events: &Events, cancel: &AtomicBool) -> i32 {
    let mut kept = None;
    for line in std::io::stdin().lines() {
        let Ok(line) = line else {
            return exit::FAILURE;
        };
        let path = line.trim();
        if path.is_empty() {
            continue;
        }
        if cancel.load(Ordering::SeqCst) {
            return exit::INTERRUPTED;
        }
        let code = exit_code(run(Path::new(path), events, cancel, &mut kept), events);
        if code == exit::INTERRUPTED {
            return code;
        }
    }
    exit::OK
}

/// SIGINT and SIGTERM raise `cancel`; the same signal arriving while it is already raised
/// exits at once with 130.
fn install_signal_handlers(cancel: &Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, exit::INTERRUPTED, cancel.clone())?;
        signal_hook::flag::register(sig, cancel.clone())?;
    }
    Ok(())
}

/// A base model kept between served jobs, with what it was loaded from.
struct Kept {
    path: PathBuf,
    device: domain::Device,
    model: LocalModel,
}

/// Runs one job: `kept` supplies its base model when it holds the same one, and holds it
/// afterwards (adapters removed: the exact weights from before the merge) for the next job.
/// A job that fails leaves nothing kept, so the next one loads afresh.
fn run(
    job_path: &Path,
    events: &Events,
    cancel: &AtomicBool,
    kept: &mut Option<Kept>,
) -> Result<(), Failure> {
    let job = read_job(job_path).map_err(Failure::BadJob)?;
    let _span = tracing::info_span!("finetune", arm = %job.arm).entered();

    let mut model = match kept.take() {
        Some(k) if k.path == job.base_model && k.device == job.compute.device => k.model,
        _ => LocalModel::load(&job.base_model, job.compute.device)
            .with_context(|| format!("loading base model {}", job.base_model.display()))
            .map_err(Failure::Failed)?,
    };
    let report = match train::train(&job, &mut model, &mut |e| events.emit(&e), cancel) {
        Ok(TrainOutcome::Finished(report)) => report,
        Ok(TrainOutcome::Interrupted { step, checkpoint }) => {
            tracing::info!(step, checkpoint = ?checkpoint, "training interrupted");
            return Err(Failure::Interrupted);
        }
        Err(
            e @ (finetune::Error::InvalidHyper { .. } | finetune::Error::NoTrainingExamples { .. }),
        ) => {
            return Err(Failure::BadJob(
                anyhow::Error::new(e).context("invalid job"),
            ));
        }
        Err(e) => return Err(Failure::Failed(anyhow::Error::new(e).context("training"))),
    };

    // Answer with the adapter as written (the best one), folded into the weights so that
    // generation costs what the base model costs.
    finetune::adapter::load_onto(&mut model, &report.adapter_path)
        .with_context(|| format!("loading adapter {}", report.adapter_path.display()))
        .map_err(Failure::Failed)?;
    model
        .model_mut()
        .merge_lora()
        .context("merging the adapter for generation")
        .map_err(Failure::Failed)?;
    answer(&job, &model, events, cancel)?;
    // Back to the base model before `done`: the next served job may start as soon as it reads it.
    let base = model.model_mut();
    base.set_training(false, 0);
    base.remove_lora()
        .context("removing the adapter")
        .map_err(Failure::Failed)?;
    *kept = Some(Kept {
        path: job.base_model.clone(),
        device: job.compute.device,
        model,
    });
    events.emit(&WorkerEvent::Done);
    Ok(())
}

fn read_job(path: &Path) -> anyhow::Result<FinetuneJob> {
    let bytes = std::fs::read(path).with_context(|| format!("reading job {}", path.display()))?;
    let job: FinetuneJob = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing job {}", path.display()))?;
    train::check_hyper(&job.hyper).context("invalid job")?;
    anyhow::ensure!(
        job.base_model.exists(),
        "base model {} does not exist",
        job.base_model.display()
    );
    anyhow::ensure!(!job.train.is_empty(), "the job has no training examples");
    Ok(job)
}

/// Answers the eval prompts, a batch at a time, emitting one `answer` event per item and
/// keeping a copy in `out_dir/answers.jsonl`.
fn answer(
    job: &FinetuneJob,
    model: &LocalModel,
    events: &Events,
    cancel: &AtomicBool,
) -> Result<(), Failure> {
    let path = job.out_dir.join("answers.jsonl");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("creating {}", path.display()))
        .map_err(Failure::Failed)?;
    // Sorting by prompt length inside `generate` keeps padding low; a chunk a few batches
    // wide gives it room to sort while the cancel flag is still checked regularly.
    let chunk = model.max_batch().max(1) * 4;
    for items in job.eval.chunks(chunk) {
        if cancel.load(Ordering::SeqCst) {
            return Err(Failure::Interrupted);
        }
        let prompts: Vec<Vec<domain::Message>> = items.iter().map(|p| p.messages.clone()).collect();
        let answers = model.answer_each(&prompts, &job.generation);
        for (item, outcome) in items.iter().zip(answers) {
            let item_id = item.item_id.clone();
            let event = match outcome {
                Ok(g) => WorkerEvent::Answer {
                    item_id,
                    text: g.text,
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.completion_tokens,
                    seconds: g.seconds,
                    truncated: g.finish_reason == llm::FinishReason::Length,
                    choice: g.choice,
                    token_logprobs: g.token_logprobs,
                },
                // One item that cannot be answered fails alone; the others go on.
                Err(err) => WorkerEvent::Unanswered {
                    item_id,
                    error: err.to_string(),
                },
            };
            writeln!(file, "{}", event.to_json_line())
                .with_context(|| format!("writing {}", path.display()))
                .map_err(Failure::Failed)?;
            events.emit(&event);
        }
    }
    Ok(())
}
